"""`deepchrome prepare` vs deepTools `computeMatrix` on real K562 bigWigs: equality and speed.

20,000 TSSs are sampled (seed 0, both strands) inside the covered region of
../shared/data/k562_chr9 (chr9:4-6 Mb, hg19); both tools bin H3K27me3 and H3K27ac at TSS +/-5 kb
in 100 bp bins (mean of covered bases). The matrices are joined on gene and must agree within
1e-5 (NaN where deepTools has NaN). deepTools is installed by this script into its own virtual
environment (bench/.deeptools-venv, reused), never as a project dependency.

Run: python bench/bench_prepare.py [--genes 20000]
Targets: >= 10x faster than computeMatrix; 20,000 TSSs x 5 tracks in < 60 s. Both tools run as whole
processes, one after the other in the same run; the load average before and after is printed, since
other work on the machine slows both (and deepTools, using 2 processes, more), with the CPU seconds of
each (user + system, its worker processes included), which that work inflates much less.
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deepchrome.data.annotation import read_tss
from deepchrome.data.bigwig import extract_matrices
from deepchrome.data.release import read_release_csv

REPO = Path(__file__).resolve().parents[1]
K562 = REPO.parent / "shared" / "data" / "k562_chr9"
MARKS = ("H3K27me3", "H3K27ac")


def deeptools_bin() -> Path:
    venv = REPO / "bench" / ".deeptools-venv"
    tool = venv / "bin" / "computeMatrix"
    if not tool.exists():
        print("installing deepTools into bench/.deeptools-venv (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "deeptools"], check=True)
    return tool


def sample_tss(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    positions = rng.choice(np.arange(4_005_000, 5_995_000), size=n, replace=False)
    strands = rng.choice(["+", "-"], size=n)
    with open(path, "w") as handle:
        for i, (pos, strand) in enumerate(zip(positions, strands, strict=True)):
            handle.write(f"chr9\t{pos}\t{pos + 1}\tg{i:05d}\t0\t{strand}\n")


def read_computematrix(path: Path) -> dict[str, np.ndarray]:
    rows = {}
    with gzip.open(path, "rt") as handle:
        for line in handle:
            if line.startswith("@"):
                continue
            fields = line.rstrip("\n").split("\t")
            values = np.array([np.nan if v == "nan" else float(v) for v in fields[6:]])
            rows[fields[3]] = values.reshape(len(MARKS), -1)
    return rows


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``command`` as a whole process; return its wall seconds and CPU seconds (user + system).

    CPU seconds include the processes it started and waited for (deepTools' and prepare's workers);
    other work on the machine inflates them much less than the wall time.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def timed_prepare(tracks: dict[str, str], bed: Path, cell: str, tmp: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one `deepchrome prepare` command (CSV and cache included)."""
    env = {**os.environ, "DEEPCHROME_CACHE_DIR": str(tmp / "cache")}
    return timed(
        [sys.executable, "-m", "deepchrome.cli", "prepare", *[f"--bigwig={m}={p}" for m, p in tracks.items()],
         "--annotation", str(bed), "--no-labels", "--cell", cell, "--out", str(tmp / "out")],
        env,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--genes", type=int, default=20_000)
    args = parser.parse_args()
    if not K562.is_dir():
        sys.exit(f"real data not found at {K562}")
    tool = deeptools_bin()
    tracks = {m: str(K562 / f"K562_{m}.chr9_4-6Mb.bigwig") for m in MARKS}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bed = tmp / "tss.bed"
        sample_tss(bed, args.genes)
        deeptools_seconds, deeptools_cpu = timed(
            [str(tool), "reference-point", "--referencePoint", "TSS", "-b", "5000", "-a", "5000",
             "--binSize", "100", "--averageTypeBins", "mean", "-S", *tracks.values(), "-R", str(bed),
             "-o", str(tmp / "matrix.gz"), "-p", "2", "--quiet"],
        )  # fmt: skip
        ours_seconds, ours_cpu = timed_prepare(tracks, bed, "K562", tmp)
        # Five tracks (the real files reused under five mark names) for the 20,000 x 5 target.
        five = {f"mark{i + 1}": p for i, p in enumerate([*tracks.values(), str(K562 / "K562_RNA.chr9_4-6Mb.bigwig"),
                                                          *tracks.values()])}  # fmt: skip
        five_seconds, _ = timed_prepare(five, bed, "K562x5", tmp)
        reference = read_computematrix(tmp / "matrix.gz")
        tss = read_tss(bed)
        ours, _ = extract_matrices(tracks, tss)  # what prepare wrote, before NaN -> 0
        written = read_release_csv(tmp / "out/K562/classification/train.csv")
    index = {g: i for i, g in enumerate(tss.gene_id)}
    worst, nan_mismatch = 0.0, 0
    for gene, expected in reference.items():
        got = ours[index[gene]]
        nan_mismatch += int((np.isnan(got) != np.isnan(expected)).sum())
        both = ~np.isnan(expected) & ~np.isnan(got)
        worst = max(worst, float(np.abs(got[both] - expected[both]).max(initial=0)))
    rows = [index[g] for g in written.gene_ids]
    assert np.allclose(written.signals, np.nan_to_num(ours[rows]), atol=1e-5), "written CSV differs"
    agree = len(reference) == args.genes and nan_mismatch == 0 and worst <= 1e-5
    load_after = os.getloadavg()
    print(f"\n{args.genes:,} TSSs x {len(MARKS)} marks, TSS +/-5 kb, 100 bp bins, mean; {os.cpu_count()} cores")
    print(
        "load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}, after: {:.2f} {:.2f} {:.2f}".format(
            *load_before, *load_after
        )
    )
    print(f"{'tool':<44}{'wall s':>9}{'CPU s':>9}")
    print(f"{'deepTools computeMatrix reference-point -p 2':<44}{deeptools_seconds:>9.1f}{deeptools_cpu:>9.1f}")
    print(f"{'deepchrome prepare (incl. CSV + cache)':<44}{ours_seconds:>9.1f}{ours_cpu:>9.1f}")
    print(f"max |difference| {worst:.2e}, NaN mismatches {nan_mismatch}: {'AGREE' if agree else 'DISAGREE'}")
    print(
        f"deepchrome prepare, {args.genes:,} TSSs x 5 tracks: {five_seconds:.1f} s (target < 60 s): "
        f"{'PASS' if five_seconds < 60 else 'FAIL'}"
    )
    ratio = deeptools_seconds / ours_seconds
    print(
        f"deepchrome is {ratio:.1f}x faster in wall time (target >= 10x): {'PASS' if ratio >= 10 else 'FAIL'}; "
        f"{deeptools_cpu / ours_cpu:.1f}x less CPU time"
    )


if __name__ == "__main__":
    main()
