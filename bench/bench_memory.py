"""Resident memory of the data module on the full-size release: 56 cells x 6,601/6,601/6,600 genes.

Writes the binary caches of a synthetic release (random counts; placeholder CSVs so the cache
fingerprints match) into a temporary folder, then, in a fresh process, sets up
``HistoneDataModule`` for training on all 56 cells (train + valid splits) and draws 200 batches.
Prints the peak resident memory (target: within 2 GB).

Run: python bench/bench_memory.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SIZES = {"train": 6601, "valid": 6601, "test": 6600}


def build(root: Path, cache: Path, n_cells: int = 56) -> list[str]:
    from deepchrome.data.cache import cache_folder, write_cache
    from deepchrome.data.signals import HistoneSignals

    rng = np.random.default_rng(0)
    cells = [f"C{i:03d}" for i in range(n_cells)]
    for cell in cells:
        for split, n in SIZES.items():
            source = root / cell / "classification" / f"{split}.csv"
            source.parent.mkdir(parents=True, exist_ok=True)
            source.write_text("placeholder: the cache holds the data\n")
            signals = HistoneSignals(rng.poisson(3, size=(n, 5, 100)).astype(np.uint16), rng.integers(0, 2, n),
                                     np.array([str(100000 + i) for i in range(n)]), cell=cell, split=split)  # fmt: skip
            write_cache(signals, cache_folder(source, cache), source)
    return cells


def measure(root: str) -> None:
    from deepchrome.data import HistoneDataModule

    dm = HistoneDataModule(root=root)
    dm.setup("fit")
    for number, _ in enumerate(dm.train_dataloader()):
        if number == 200:
            break
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    verdict = "PASS" if peak <= 2048 else "FAIL"
    print(f"{len(dm.train_cells)} cells, {len(dm.data['train']):,} training + {len(dm.data['val']):,} validation "
          f"genes: peak resident memory {peak:.0f} MB (target <= 2048 MB): {verdict}")  # fmt: skip


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--measure":
        measure(sys.argv[2])
        return
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "release", Path(tmp) / "cache"
        build(root, cache)
        env = {**os.environ, "DEEPCHROME_CACHE_DIR": str(cache)}
        subprocess.run([sys.executable, __file__, "--measure", str(root)], check=True, env=env)


if __name__ == "__main__":
    main()
