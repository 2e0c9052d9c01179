"""How close `deepchrome experiment --plan`'s estimate comes to the time the jobs then take.

A small CNN experiment (the paper's configs/deepchrome.yaml, ``--epochs`` epochs, families
``single`` and ``size`` on 2 simulated cells of ``--genes`` genes) is planned (throughput measured
here) and then run by one worker; the plan's estimate is compared with the sum of the jobs'
measured seconds (``results.csv``; imports and worker start are outside both).

Run: python bench/bench_plan.py [--epochs 3] [--genes 3000] [--threads N]
Target: estimate / measured within 0.8 to 1.25.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--genes", type=int, default=3000, help="genes per simulated cell, split in thirds")
    parser.add_argument("--threads", type=int, help="torch threads of the plan and the jobs (default: the rule)")
    args = parser.parse_args()
    from deepchrome.data.simulate import simulate_release
    from deepchrome.experiments import plan_experiment, run_experiment

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["DEEPCHROME_CACHE_DIR"] = str(tmp / "cache")
        simulate_release(tmp / "release", n_cells=2, n_genes=args.genes, seed=0)
        config = {
            "root": str(tmp / "release"),
            "models": {"cnn": "deepchrome"},
            "overrides": {"trainer.max_epochs": args.epochs, "trainer.enable_progress_bar": False,
                          "trainer.enable_model_summary": False},
            "families": ["single", "size"],
            "selection": ["target_val"],
            "size": {"fractions": [0.5, 1.0], "n_cells": [1, 2]},
            "study_name": "plan_check",
            "threads": args.threads,
        }  # fmt: skip
        start = time.perf_counter()
        plan = plan_experiment(config)
        plan_seconds = time.perf_counter() - start
        run_experiment(config, out=tmp / "out")
        results = pd.read_csv(tmp / "out" / "results.csv")
    measured = results.drop_duplicates(["train_cells", "train_fraction", "target"]).seconds.sum()
    print(f"\n{plan.text()}\n")
    print(f"planning took {plan_seconds:.1f} s (the throughput measurement included)")
    ratio = plan.seconds / measured
    verdict = "PASS" if 0.8 <= ratio <= 1.25 else "FAIL"
    print(
        f"{plan.distinct_jobs} jobs: estimated {plan.seconds:.1f} s, measured {measured:.1f} s: "
        f"estimate / measured = {ratio:.2f} (target 0.8 to 1.25): {verdict}"
    )


if __name__ == "__main__":
    main()
