"""Two training workers on one machine against one alone: per-job speed with deepchrome's thread choice.

Each worker is its own process that runs the same jobs one after another: DeepChrome CNN fits
(configs/deepchrome.yaml, batch 32) on a simulated cell, a few epochs each, through
``deepchrome.fit`` with the default threads (:mod:`deepchrome.threads`: usable cores // training
processes on this machine, chosen again every epoch). The per-job time is measured inside each
worker (imports excluded); the first job of every worker warms up and is not counted.

(a) one worker alone; (a1) one worker alone with one thread; (b) two workers at once, each with
the default threads; optionally (c) two workers at once, each forced to one thread per core
(``--threads <cores>``), the oversubscription the default avoids.

On 2 cores each worker of (b) has one thread, so (a) / (b) is the product of two factors the bench
prints: what a lone worker gains from its second thread ((a1) / (a) in time: the target is out of
reach when it exceeds 1 / 0.8 = 1.25, whatever the thread choice) and what two one-thread workers
cost each other in shared caches and memory bandwidth ((b) / (a1) in time).

Run: python bench/bench_workers.py [--jobs 4] [--epochs 3] [--genes 3000] [--oversubscribed]
Target: (b) each worker >= 0.8x the per-job speed of (a), i.e. median job time (a) / (b) >= 0.8.
OMP_NUM_THREADS must be unset (it would override the choice being measured).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def worker(root: str, out: str, jobs: int, epochs: int, threads: int | None) -> None:
    """Run ``jobs`` CNN fits one after another; print each job's seconds."""
    import deepchrome

    quiet = {"trainer.enable_progress_bar": False, "trainer.enable_model_summary": False,
             "trainer.max_epochs": epochs, "data.root": root, "data.train_cells": ["S01"]}  # fmt: skip
    for job in range(jobs):
        start = time.perf_counter()
        deepchrome.fit("deepchrome", quiet, run_dir=Path(out) / f"job{job}", threads=threads)
        import torch

        print(f"JOB {time.perf_counter() - start:.4f} {torch.get_num_threads()}", flush=True)


def run_workers(count: int, root: Path, out: Path, args, threads: int | None) -> list[float]:
    """Start ``count`` workers at once; the per-job seconds of every worker's jobs after its first."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, __file__, "--worker", str(root), "--jobs", str(args.jobs), "--epochs", str(args.epochs)]
    if threads:
        command += ["--threads", str(threads)]
    processes = [subprocess.Popen([*command, "--out", str(out / f"w{i}")], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for i in range(count)]  # fmt: skip
    times = []
    for process in processes:
        stdout, stderr = process.communicate()
        if process.returncode:
            raise SystemExit(f"a worker failed ({process.returncode}):\n{stderr[-3000:]}")
        jobs = [line.split() for line in stdout.splitlines() if line.startswith("JOB ")]
        times += [float(seconds) for _, seconds, _ in jobs[1:]]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=4, help="jobs per worker, the first one not counted (default 4)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per job (default 3)")
    parser.add_argument("--genes", type=int, default=3000, help="genes of the simulated cell, split in thirds")
    parser.add_argument("--oversubscribed", action="store_true", help="also run (c): two workers, all cores each")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.out, args.jobs, args.epochs, args.threads)
        return
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        raise SystemExit("unset OMP_NUM_THREADS / MKL_NUM_THREADS: they replace the thread choice this bench measures")
    from deepchrome.data.cache import load_split
    from deepchrome.data.simulate import simulate_release
    from deepchrome.threads import usable_cores

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["DEEPCHROME_CACHE_DIR"] = str(tmp / "cache")
        os.environ["DEEPCHROME_WORKER_DIR"] = str(tmp / "workers")  # only this bench's workers count
        root = tmp / "release"
        simulate_release(root, n_cells=1, n_genes=args.genes, seed=0)
        for split in ("train", "valid", "test"):
            load_split(root, "S01", split)  # fill the cache before any worker starts
        rows = {"(a) one worker": run_workers(1, root, tmp / "a", args, None),
                "(a1) one worker, one thread": run_workers(1, root, tmp / "a1", args, 1),
                "(b) two workers, default threads": run_workers(2, root, tmp / "b", args, None)}  # fmt: skip
        if args.oversubscribed:
            rows["(c) two workers, all cores each"] = run_workers(2, root, tmp / "c", args, usable_cores())
    one = statistics.median(rows["(a) one worker"])
    print(f"\nDeepChromeCNN jobs ({args.genes // 3:,} training genes, {args.epochs} epochs, batch 32), "
          f"{usable_cores()} usable cores; per-job seconds inside each worker, "
          "first job of each not counted")  # fmt: skip
    print(f"{'setting':<40}{'jobs':>6}{'median s':>10}{'speed vs (a)':>14}")
    for name, times in rows.items():
        median = statistics.median(times)
        print(f"{name:<40}{len(times):>6}{median:>10.2f}{one / median:>14.2f}")
    two = statistics.median(rows["(b) two workers, default threads"])
    single = statistics.median(rows["(a1) one worker, one thread"])
    ratio = one / two
    print(f"(b) per-job speed / (a) = {ratio:.2f} (target >= 0.8): {'PASS' if ratio >= 0.8 else 'FAIL'}")
    print(
        f"  = (a) / (a1) {one / single:.2f} (a lone worker's gain from more threads, inverted: the best (b) can do)"
        f" x (a1) / (b) {single / two:.2f} (two one-thread workers slowing each other)"
    )


if __name__ == "__main__":
    main()
