"""``deepchrome report``: the reproduction report, every claim, table and figure from one command.

Steps (each cached under ``--work``; a rerun reuses finished steps):

1. classifier table: every model config on every real cell, ``seeds`` seeds each; test AUROC and
   AUPRC mean and spread, parameters, training time; a paired test of the 12-parameter linear
   model against the CNN;
2. the same on a simulated release (known ground truth);
3. cross-cell summary (the experiment engine, single / test_on_rest / exclusive_all /
   inclusive_all);
4. GAN quality and its visualizations;
5. attribution figures.

The report is ``<out>/README.md`` with its figures beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deepchrome import files
from deepchrome.errors import DeepChromeError
from deepchrome.report.prose import write_report

#: The checkout's parent, where ../shared/data lives in a source checkout.
REPO = Path(__file__).resolve().parents[2]
MODELS = {
    "CNN, paper settings": ("deepchrome", {}),
    "CNN, recommended": ("deepchrome_fast", {}),
    "linear (max)": ("linear", {"model.net.init_args.aggregate": "max"}),
    "linear (sum)": ("linear", {"model.net.init_args.aggregate": "sum"}),
    "linear (mean)": ("linear", {"model.net.init_args.aggregate": "mean"}),
    "linear (median)": ("linear", {"model.net.init_args.aggregate": "median"}),
    "linear (min)": ("linear", {"model.net.init_args.aggregate": "min"}),
    "MLP": ("mlp.yaml", {}),
    # Its LSTMs cost ~4 s per epoch on 2 cores even on 200 genes: capped to keep the report near 30 minutes.
    "AttentiveChrome": ("attentivechrome.yaml", {"trainer.max_epochs": 25}),
}


def _fit(config: str, root: Path, cell: str, run_dir: Path, seed: int, overrides: dict, fast: dict) -> dict:
    from deepchrome.config import load_config
    from deepchrome.runs import train, write_metrics

    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        return json.loads(metrics_path.read_text())
    quiet = {"trainer.enable_progress_bar": False, "trainer.enable_model_summary": False}
    settings = load_config(config, {**overrides, **fast, **quiet, "seed_everything": seed, "data.root": str(root),
                                    "data.train_cells": [cell], "data.seed": seed})  # fmt: skip
    start = time.perf_counter()
    metrics = train(settings, run_dir).metrics
    metrics["seconds"] = time.perf_counter() - start
    write_metrics(run_dir, metrics)
    return metrics


def classifier_table(root: Path, cells: list[str], seeds: int, work: Path, fast: dict, progress,
                     models: list[str]) -> pd.DataFrame:  # fmt: skip
    """One row per model, cell and seed."""
    rows = []
    for name in models:
        config, overrides = MODELS[name]
        for cell in cells:
            for seed in range(seeds):
                slug = name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
                metrics = _fit(config, root, cell, work / slug / f"{cell}-seed{seed}", seed,
                               overrides, fast)  # fmt: skip
                rows.append({"model": name, "cell": cell, "seed": seed, "test_auroc": metrics["test_auroc"],
                             "test_auprc": metrics["test_auprc"], "parameters": metrics["n_parameters"],
                             "seconds": metrics.get("seconds", np.nan), "epochs": metrics["epochs"]})  # fmt: skip
                progress.update(1)
    return pd.DataFrame(rows)


def summarize_classifiers(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Mean and standard deviation over seeds per model and cell, and the linear-vs-CNN verdict."""
    from scipy.stats import wilcoxon

    summary = table.groupby(["model", "cell"]).agg(
        test_auroc=("test_auroc", "mean"), auroc_sd=("test_auroc", "std"), test_auprc=("test_auprc", "mean"),
        parameters=("parameters", "first"), seconds=("seconds", "mean"),
    ).reset_index()  # fmt: skip
    cnn = table[table.model == "CNN, paper settings"].set_index(["cell", "seed"])["test_auroc"]
    linear = table[table.model == "linear (max)"].set_index(["cell", "seed"])["test_auroc"]
    difference = (linear - cnn).dropna()
    p = float(wilcoxon(difference).pvalue) if len(difference) > 1 and np.any(difference != 0) else float("nan")
    best = summary.groupby("model")["test_auroc"].mean().sort_values(ascending=False)
    matches = abs(difference.mean()) <= 0.01 or (p > 0.05 and abs(difference.mean()) <= 0.02)
    sentence = (
        f"The 12-parameter linear model (max) {'matches' if matches else 'does not match'} the 644,177-parameter CNN: "
        f"mean paired difference {difference.mean():+.3f} in test AUROC over {len(difference)} cell x seed pairs "
        f"(Wilcoxon p = {p:.3g}). Best model on average: {best.index[0]} ({best.iloc[0]:.3f})."
    )
    return summary, sentence


def _gan_row(cell: str, metrics: dict) -> dict:
    """One row of the GAN quality table from a GAN run's metrics.json (test split)."""
    q = metrics["test_quality"]
    met = metrics["targets_met_on_test"]
    real_profiles = [v for k, v in q.items() if k.startswith("profile_correlation_real/")]
    return {
        "cell": cell,
        "epochs": metrics["epochs"],
        "two-sample AUROC": round(q["two_sample_auroc"], 3),
        "(real)": round(q["two_sample_auroc_real"], 3),
        "min profile r": round(q["profile_correlation_min"], 3),
        "(real) ": round(min(real_profiles), 3),
        "min corrected r": round(q["profile_correlation_corrected_min"], 3),
        "measured": q["profiles_measured"],
        "shortfall": round(q["profile_correlation_gap_max"], 3),
        "fidelity AUROC": round(q.get("conditional_fidelity_auroc", float("nan")), 3),
        "(real)  ": round(q.get("conditional_fidelity_auroc_real", float("nan")), 3),
        "targets met": ", ".join(k for k, ok in met.items() if ok) or "none",
    }


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with files.atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def _best_checkpoint(run_dir: Path) -> str:
    return json.loads((run_dir / "metrics.json").read_text())["best_checkpoint"]


def run_report(
    out: str | Path = "docs/report",
    root: str | Path | None = None,
    cells: list[str] | None = None,
    seeds: int = 5,
    work: str | Path = "runs/report",
    simulated_genes: int = 600,
    fast: bool = False,
    models: list[str] | None = None,
    gan_minutes: int = 4,
) -> Path:
    """Run every step (cached) and write ``<out>/README.md``.

    Parameters
    ----------
    root, cells
        Real data (default ``../shared/data/roadmap``, E003 and E123).
    fast
        Tiny settings (1-3 epochs, few samples) for tests; the numbers are then meaningless.
    gan_minutes
        Training time of each cell's GAN.
    models
        Names from :data:`MODELS` (default all; the CNN with paper settings and linear (max) are
        always included: the GAN, attribution and linear-vs-CNN steps use them).
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    root = Path(root or REPO.parent / "shared" / "data" / "roadmap")
    from deepchrome.data.release import list_cells

    cells = cells or [c for c in ("E003", "E123") if c in list_cells(root)]
    if not cells:
        raise DeepChromeError(f"no cells to report on in {root}")
    out, work = Path(out), Path(work)
    out.mkdir(parents=True, exist_ok=True)
    from_empty = not work.is_dir() or not any(work.iterdir())
    work.mkdir(parents=True, exist_ok=True)
    quick = {"trainer.max_epochs": 2} if fast else {}
    models = list(dict.fromkeys(["CNN, paper settings", "linear (max)", *(models or MODELS)]))
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise DeepChromeError(f"unknown model(s) {', '.join(unknown)} (available: {', '.join(MODELS)})")
    total = len(models) * seeds * (len(cells) + 1) + 3
    progress = tqdm(total=total, desc="report", unit="step")

    real = classifier_table(root, cells, seeds, work / "real", quick, progress, models)
    _write_csv(real, out / "classifiers_real.csv")
    real_summary, real_sentence = summarize_classifiers(real)

    from deepchrome.data.simulate import simulate_release

    simulated_root = work / "simulated-data"
    if not (simulated_root / "ground_truth.json").is_file():
        simulate_release(simulated_root, n_cells=1, n_genes=simulated_genes, seed=0)
    simulated = classifier_table(simulated_root, ["S01"], seeds, work / "simulated", quick, progress, models)
    _write_csv(simulated, out / "classifiers_simulated.csv")
    simulated_summary, simulated_sentence = summarize_classifiers(simulated)

    # cross-cell summary
    from deepchrome.experiments import run_experiment

    run_experiment({
        "root": str(root.resolve()), "models": {"cnn": "deepchrome", "linear": "linear"},
        "overrides": quick, "families": ["single", "test_on_rest", "exclusive_all", "inclusive_all"],
        "selection": ["target_val", "strict"], "study_name": "report-cross-cell", "targets": cells,
    }, out=work / "cross_cell")  # fmt: skip
    # the experiment's own summary, one heading level down (its first line is the title)
    cross_summary = (work / "cross_cell" / "summary.md").read_text().split("\n", 2)[2].replace("\n## ", "\n### ")
    for name in ("test_on_rest_cnn.png", "families.png"):
        if (work / "cross_cell" / name).is_file():
            shutil.copy(work / "cross_cell" / name, out / f"cross_cell_{name}")
    progress.update(1)

    # GAN: one per real cell, trained for gan_minutes, judged on the test split
    gan_rows, gan_metrics = [], {}
    cnn_checkpoints = {cell: _best_checkpoint(work / "real" / "CNN_paper_settings" / f"{cell}-seed0") for cell in cells}
    for cell in cells:
        gan_dir = work / "gan" / cell
        if (gan_dir / "metrics.json").is_file():
            metrics = json.loads((gan_dir / "metrics.json").read_text())
        else:
            from gan.fitting import fit_gan

            metrics = fit_gan(root, cell, gan_dir, cnn_checkpoints[cell], minutes=None if fast else gan_minutes,
                              max_epochs=2 if fast else None)  # fmt: skip
        gan_metrics[cell] = metrics
        gan_rows.append(_gan_row(cell, metrics))
    gan_table = pd.DataFrame(gan_rows)
    _write_csv(gan_table, out / "gan_quality.csv")
    from gan.visualize import visualize

    best_gan = gan_metrics[cells[0]]["best_checkpoint"] or str(work / "gan" / cells[0] / "checkpoints" / "last.ckpt")
    cnn_checkpoint = cnn_checkpoints[cells[0]]
    gan_summary = visualize(best_gan, cnn_checkpoint, root, [cells[0]], out / "gan",
                            samples=32 if fast else 512, bootstrap=5 if fast else 50)  # fmt: skip
    progress.update(1)

    # attributions
    from deepchrome.interpret.explain import explain

    linear_checkpoint = _best_checkpoint(work / "real" / "linear_max" / f"{cells[0]}-seed0")
    attribution = explain(cnn_checkpoint, root, [cells[0]], out / "attributions", linear_checkpoint=linear_checkpoint,
                          gene_figures=1, n_steps=10 if fast else 50)  # fmt: skip
    progress.update(1)
    progress.close()

    minutes = (time.perf_counter() - start) / 60
    # the whole report's runtime is only measured by a run from an empty work folder; keep it
    timing = work / "timing.json"
    if from_empty:
        files.write_json(timing, {"minutes_from_empty": minutes, "cpu_count": os.cpu_count()})
    whole = json.loads(timing.read_text())["minutes_from_empty"] if timing.is_file() else None
    runtime = (
        f"the whole report, from an empty work folder, took **{whole:.1f} minutes**"
        if whole is not None
        else "the whole report's runtime was not measured (the work folder was not empty at the first run)"
    )
    fit_minutes = (real["seconds"].sum() + simulated["seconds"].sum()) / 60
    return write_report(
        out, minutes=minutes, runtime=runtime, fit_minutes=fit_minutes, cells=cells, root=root,
        simulated_genes=simulated_genes, seeds=seeds, real_sentence=real_sentence, real_summary=real_summary,
        simulated_sentence=simulated_sentence, simulated_summary=simulated_summary, cross_summary=cross_summary,
        gan_minutes=gan_minutes, gan_table=gan_table, gan_summary=gan_summary, gan_marks=gan_metrics[cells[0]]["marks"],
        attribution=attribution,
    )  # fmt: skip
