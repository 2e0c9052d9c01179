"""Experiment grid on both engines: the stacked engine against the sequential one, in the same run.

1. Simulates a release (``--cells`` cells x ``--genes`` genes, split in thirds, written as binary
   caches as in bench_experiment_scale.py).
2. For each model (``--models``: the paper's CNN ``cnn``, the 12-parameter ``linear``) and each
   engine (``--engines``), runs ``deepchrome experiment --engine E`` on the families
   (``--families``) and selections (``--selection``) for ``--targets`` target cells, with early
   stopping (``--patience``) and ``--epochs`` epochs at most, in a fresh process.
3. Reports per model and engine: jobs, sample passes (training genes x epochs actually trained;
   a shared training counts once), wall time, samples/s, job samples/s (the sequential engine's
   passes for the same jobs / wall: the work both engines deliver), peak RSS; then the stacked
   engine's speed-up over the sequential one (sequential wall / stacked wall: the same jobs) and
   how far their per-job test AUROCs are apart (max and mean over result rows).

Target (CPU, 2 cores): stacked >= 1.5x the sequential engine on `single` of 8 full-size cells, CNN:
    python bench/bench_grid.py --cells 8 --families single --models cnn --epochs 2
Small version (about a minute):
    python bench/bench_grid.py --cells 4 --genes 900 --families single,test_on_rest,exclusive_all,inclusive_all \
        --epochs 3
Release-scale grid (hours on 2 cores): python bench/bench_grid.py --cells 56 --targets 56
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_experiment_scale import run, simulated_release  # noqa: E402 - the same release and process runner

MODELS = {"cnn": "deepchrome", "linear": "linear"}


def config_file(path: Path, root: Path, model: str, engine: str, args, targets: list[str]) -> Path:
    """An experiment config for one model and engine over the chosen families, selections and targets."""
    from deepchrome.config import load_config

    network = load_config(MODELS[model])
    network.pop("data", None)
    network["trainer"].update(max_epochs=args.epochs, enable_progress_bar=False, enable_model_summary=False)
    for callback in network["trainer"]["callbacks"]:
        if callback["class_path"].endswith("EarlyStopping"):
            callback["init_args"]["patience"] = args.patience
    path.write_text(yaml.safe_dump({
        "root": str(root), "models": {model: network}, "families": args.families.split(","),
        "selection": args.selection.split(","), "targets": targets, "study_name": path.stem, "k_random": 2,
        "engine": engine,
    }))  # fmt: skip
    return path


def passes(out: Path) -> tuple[int, int, int]:
    """Jobs, sample passes trained (a shared training once) and sample passes of the jobs one by one."""
    trainings: dict[tuple, int] = {}
    job_passes = 0
    folders = sorted((out / "jobs").iterdir())
    for folder in folders:
        metrics = json.loads((folder / "metrics.json").read_text())
        samples = int(metrics["train_genes"]) * int(metrics["epochs"])
        job_passes += samples
        shared = metrics.get("shared_training", 1) > 1
        key = (tuple(metrics["train_cells"]), metrics["train_genes"]) if shared else folder
        trainings[key] = max(trainings.get(key, 0), samples)
    return len(folders), sum(trainings.values()), job_passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=56)
    parser.add_argument("--genes", type=int, default=19_802)
    parser.add_argument("--targets", type=int, default=None, help="target cells (default: every cell)")
    parser.add_argument("--families", default="single,test_on_rest,exclusive_all,inclusive_all")
    parser.add_argument("--selection", default="target_val,strict")
    parser.add_argument("--models", default="cnn,linear")
    parser.add_argument("--engines", default="sequential,stacked")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=15)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root, cells, env, simulate_seconds = simulated_release(tmp, args.cells, args.genes)
        targets = cells[: args.targets or len(cells)]
        results = {}
        for model in args.models.split(","):
            for engine in args.engines.split(","):
                config = config_file(tmp / f"{model}_{engine}.yaml", root, model, engine, args, targets)
                out = tmp / f"{model}_{engine}"
                seconds, peak = run(config, out, 1, env)
                jobs, trained, job_samples = passes(out)
                results[(model, engine)] = pd.read_csv(out / "results.csv")
                rows.append({"model": model, "engine": engine, "jobs": jobs, "sample_passes": trained,
                             "job_passes": job_samples, "seconds": seconds, "peak_mb": peak})  # fmt: skip
    table = pd.DataFrame(rows)
    table["samples_per_s"] = table.sample_passes / table.seconds
    sequential = table[table.engine == "sequential"].set_index("model").job_passes
    table["job_samples_per_s"] = table.model.map(sequential) / table.seconds
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"\n{args.cells} cells x {args.genes:,} genes (simulated in {simulate_seconds:.0f} s), {len(targets)} "
          f"targets, families {args.families}, selection {args.selection}, <= {args.epochs} epochs (patience "
          f"{args.patience}), {os.cpu_count()} cores, OMP_NUM_THREADS={threads}")  # fmt: skip
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    for model in args.models.split(","):
        if (model, "sequential") in results and (model, "stacked") in results:
            keys = ["family", "target", "selection", "test_cell"]
            a = results[(model, "sequential")].set_index(keys).sort_index().test_auroc
            b = results[(model, "stacked")].set_index(keys).sort_index().test_auroc
            difference = (a - b).dropna()
            seconds = table.set_index(["model", "engine"]).seconds
            speedup = seconds[(model, "sequential")] / seconds[(model, "stacked")]
            print(
                f"{model}: stacked {speedup:.2f}x the sequential engine; test AUROC sequential - stacked over "
                f"{len(difference)} rows: max |d| {difference.abs().max():.4f}, mean {difference.mean():+.4f}"
            )


if __name__ == "__main__":
    main()
