"""Cached load vs CSV parse of one full-size release cell (6,601 genes x 5 marks x 100 bins).

Run: python bench/bench_cache.py   (target: cached load >= 20x faster than parsing the CSV)
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from deepchrome.data import load_split, read_release_csv
from deepchrome.data.simulate import simulate_release


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "release"
        os.environ["DEEPCHROME_CACHE_DIR"] = str(Path(tmp) / "cache")
        simulate_release(root, n_cells=1, n_genes=19_803, seed=0)  # 6,601 genes per split
        csv = root / "S01" / "classification" / "train.csv"
        parsed = read_release_csv(csv)
        assert parsed.n_genes == 6601, parsed.n_genes
        parse = best_of(lambda: read_release_csv(csv, "S01", "train"))
        build_start = time.perf_counter()
        load_split(root, "S01", "train")  # parses and writes the cache
        build = time.perf_counter() - build_start
        # A cached load verifies every checksum and memory-maps the arrays; touching them all
        # (sum) makes the comparison fair to the parser, which materializes everything.
        cached = best_of(lambda: int(load_split(root, "S01", "train").signals.sum()))
    ratio = parse / cached
    print(f"{'step':<32}{'seconds':>10}")
    print(f"{'parse + validate CSV':<32}{parse:>10.4f}")
    print(f"{'first load (parse + write)':<32}{build:>10.4f}")
    print(f"{'cached load (verify + mmap)':<32}{cached:>10.4f}")
    print(f"cached load is {ratio:.0f}x faster than parsing (target >= 20x): {'PASS' if ratio >= 20 else 'FAIL'}")


if __name__ == "__main__":
    main()
