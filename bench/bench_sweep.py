"""A 30-trial sweep of the DeepChrome CNN on real E003 (../shared/data/roadmap), 2 cores:
with the median pruner and without pruning, in one run: total time, fraction pruned, time saved.

Run: python bench/bench_sweep.py [--trials 30]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna
import yaml

from deepchrome.sweep import run_sweep

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__)
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    base = yaml.safe_load((REPO / "configs" / "sweeps" / "cnn.yaml").read_text())
    base["base_config"] = str(REPO / "configs" / "deepchrome_fast.yaml")
    base["overrides"]["data.root"] = str(REPO.parent / "shared" / "data" / "roadmap")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, pruner in (
            ("median pruner", {"name": "median", "n_warmup_steps": 3}),
            ("no pruning", {"name": "none"}),
        ):
            config = {**base, "pruner": pruner, "study_name": name.replace(" ", "-")}
            path = Path(tmp) / f"{config['study_name']}.yaml"
            path.write_text(yaml.safe_dump(config))
            start = time.perf_counter()
            summary = run_sweep(path, n_trials=args.trials, sweep_dir=Path(tmp) / config["study_name"])
            seconds = time.perf_counter() - start
            study = optuna.load_study(study_name=config["study_name"],
                                      storage=f"sqlite:///{Path(tmp) / config['study_name'] / 'study.db'}")  # fmt: skip
            pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
            results[name] = (seconds, pruned / len(study.trials), summary.get("best_value"), summary.get("test_auroc"))
    print(f"\nCNN sweep on E003, {args.trials} trials each, TPE (seed 0), 2 cores")
    print(f"{'':<16}{'seconds':>9}{'pruned':>8}{'best val AUROC':>16}{'its test AUROC':>16}")
    for name, (seconds, pruned, best, test) in results.items():
        print(f"{name:<16}{seconds:>9.0f}{pruned:>8.0%}{best:>16.4f}{test:>16.4f}")
    saved = results["no pruning"][0] - results["median pruner"][0]
    print(f"pruning saved {saved:.0f} s ({saved / results['no pruning'][0]:.0%} of the unpruned sweep)")


if __name__ == "__main__":
    main()
