"""``deepchrome report``: the reproduction report, every claim, table and figure from one command.

Steps (each cached under ``--work``; a rerun reuses a finished step while the fingerprint of the
code, its config and its data is unchanged, see :mod:`deepchrome.report.cache`):

1. classifier table: every model config on every real cell, ``seeds`` seeds each; test AUROC and
   AUPRC mean and spread with 95% intervals, parameters, training time; the 12-parameter linear
   model against the CNN by a stated rule (:func:`summarize_classifiers`);
2. the same on a simulated release (known ground truth);
3. cross-cell summary (the experiment engine, single / test_on_rest / exclusive_all /
   inclusive_all);
4. GAN quality and its visualizations;
5. attribution figures.

The report is ``<out>/README.md`` with its figures beside it.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deepchrome import files
from deepchrome.errors import DeepChromeError
from deepchrome.messages import default_output
from deepchrome.report.cache import (
    Step,
    cached_step,
    data_fingerprint,
    provenance_sentence,
    runtime_sentence,
    timed_step,
)
from deepchrome.report.prose import write_report

#: The checkout's parent, where ../shared/data lives in a source checkout.
REPO = Path(__file__).resolve().parents[2]


def default_root() -> Path:
    """The real data the report reads without ``--root``: ``../shared/data/roadmap`` beside the working
    directory or beside the source checkout.

    Raises
    ------
    DeepChromeError
        If neither exists (an installed package run elsewhere): pass ``--root`` and ``--cells``.
    """
    candidates = [Path("../shared/data/roadmap"), REPO.parent / "shared" / "data" / "roadmap"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise DeepChromeError(
        f"no real data at {candidates[0]} or {candidates[1]}: pass --root (a release root) and --cells, "
        "e.g. --root data/example --cells S01 S02"
    )


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


#: Equivalence margin of the linear-vs-CNN verdicts, in test AUROC (the report states it).
MARGIN = 0.01
#: Cells a cross-cell verdict needs; with fewer it is "inconclusive" whatever its interval.
MIN_CELLS = 5
LINEAR, CNN = "linear (max)", "CNN, paper settings"


def _slug(name: str) -> str:
    return name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")


def _without_root(config: dict) -> dict:
    """A training config for a fingerprint: the data root's path is replaced by its files' digest."""
    config = copy.deepcopy(config)
    config.get("data", {}).pop("root", None)
    return config


def _fit(name: str, config: str, root: Path, cell: str, run_dir: Path, seed: int, overrides: dict,
         fast: dict) -> Step:  # fmt: skip
    """One classifier fit, cached under ``run_dir`` by the fingerprint of its config, data and the code."""
    from deepchrome.config import load_config
    from deepchrome.runs import train, write_metrics

    quiet = {"trainer.enable_progress_bar": False, "trainer.enable_model_summary": False}
    settings = load_config(config, {**overrides, **fast, **quiet, "seed_everything": seed, "data.root": str(root),
                                    "data.train_cells": [cell], "data.seed": seed})  # fmt: skip

    def compute(folder: Path) -> dict:
        start = time.perf_counter()
        metrics = train(settings, folder, overwrite=True).metrics  # the step cache owns the folder
        metrics["seconds"] = time.perf_counter() - start
        write_metrics(folder, metrics)
        return metrics

    fingerprint = {"step": "fit", "config": _without_root(settings), "data": data_fingerprint(root, [cell])}
    return cached_step(f"fit {name} {cell} seed {seed}", run_dir, fingerprint, compute,
                       lambda folder: json.loads((folder / "metrics.json").read_text()))  # fmt: skip


def classifier_table(root: Path, cells: list[str], seeds: int, work: Path, fast: dict, progress,
                     models: list[str]) -> tuple[pd.DataFrame, list[Step]]:  # fmt: skip
    """One row per model, cell and seed (with the run's 95% intervals and folder), and the fit steps."""
    rows, steps = [], []
    for name in models:
        config, overrides = MODELS[name]
        for cell in cells:
            for seed in range(seeds):
                run_dir = work / _slug(name) / f"{cell}-seed{seed}"
                step = _fit(name, config, root, cell, run_dir, seed, overrides, fast)
                metrics = step.value
                steps.append(step)
                number = {
                    k: np.nan if metrics.get(k) is None else metrics[k]  # metrics.json's null: NaN
                    for k in ("test_auroc", "test_auprc", *INTERVAL_KEYS)
                }
                rows.append({"model": name, "cell": cell, "seed": seed, "test_auroc": number["test_auroc"],
                             **{k: number[k] for k in INTERVAL_KEYS},
                             "test_auprc": number["test_auprc"], "parameters": metrics["n_parameters"],
                             "seconds": step.seconds, "epochs": metrics["epochs"],
                             "run_dir": str(run_dir)})  # fmt: skip
                progress.update(1)
    return pd.DataFrame(rows), steps


INTERVAL_KEYS = ("test_auroc_ci_low", "test_auroc_ci_high", "test_auprc_ci_low", "test_auprc_ci_high")
#: Words for :func:`deepchrome.stats.verdict`'s labels, difference = linear - CNN.
VERDICT_WORDS = {"a better": "the linear model is better", "b better": "the CNN is better",
                 "equivalent": "matches", "inconclusive": "inconclusive"}  # fmt: skip


def _interval(low: float, high: float) -> str:
    return f"[{low:.3f}, {high:.3f}]" if np.isfinite(low) and np.isfinite(high) else "(no interval)"


def verdict_rule(margin: float = MARGIN) -> str:
    """The stated rule of the linear-vs-CNN verdicts, as printed in the report."""
    return (
        f"Rule: difference = linear - CNN in test AUROC; equivalence margin +/-{margin:g}. *Matches* only when the "
        "whole 95% interval of the difference lies inside the margin (two one-sided tests at 2.5% each); *better* "
        "when the interval excludes 0; otherwise *inconclusive*. Within a cell the unit is the gene: DeLong's "
        "paired test of the two seed-0 runs on the same test genes. Across cells the unit is the cell: seeds are "
        "averaged within each cell first, then a 95% t-interval of the mean per-cell difference; with fewer than "
        f"{MIN_CELLS} cells the cross-cell verdict is *inconclusive* whatever the interval."
    )


def summarize_classifiers(table: pd.DataFrame, margin: float = MARGIN) -> tuple[pd.DataFrame, str]:
    """Per model and cell: mean and sd over seeds with seed 0's 95% intervals; the linear-vs-CNN verdicts.

    Parameters
    ----------
    table
        :func:`classifier_table`'s rows: model, cell, seed, test_auroc, test_auprc, the interval keys
        (``test_auroc_ci_low``...), parameters, seconds and ``run_dir`` (holding ``test_predictions.csv``).
    margin
        Equivalence margin in test AUROC (:func:`verdict_rule`).

    Returns
    -------
    summary, sentence
        ``summary``: one row per model and cell (the report's table). ``sentence``: the verdict of
        :data:`LINEAR` against :data:`CNN` per cell (DeLong, genes as unit, seed 0) and across cells
        (t-interval of seed-averaged per-cell differences, cells as unit; :data:`MIN_CELLS` needed),
        with the rule, then the best model on average.
    """
    from deepchrome.stats import average_seeds, compare_runs, paired_over_units, verdict

    table = table.copy()
    for key in INTERVAL_KEYS:
        if key not in table:
            table[key] = np.nan
    first = table[table.seed == table.seed.min()].set_index(["model", "cell"])
    summary = table.groupby(["model", "cell"], sort=False).agg(
        test_auroc=("test_auroc", "mean"), auroc_sd=("test_auroc", "std"), test_auprc=("test_auprc", "mean"),
        parameters=("parameters", "first"), seconds=("seconds", "mean"), seeds=("seed", "nunique"),
    ).reset_index()  # fmt: skip
    pairs = list(zip(summary.model, summary.cell, strict=True))
    summary.insert(4, "AUROC 95% CI (seed 0)",
                   [_interval(first.test_auroc_ci_low[p], first.test_auroc_ci_high[p]) for p in pairs])  # fmt: skip
    summary.insert(6, "AUPRC 95% CI (seed 0)",
                   [_interval(first.test_auprc_ci_low[p], first.test_auprc_ci_high[p]) for p in pairs])  # fmt: skip
    best = summary.groupby("model")["test_auroc"].mean().sort_values(ascending=False)
    tail = f"Best model on average: {best.index[0]} ({best.iloc[0]:.3f} mean test AUROC)."
    if not {LINEAR, CNN} <= set(table.model):
        return summary, f"The linear model and the CNN were not both run. {tail}"
    n_linear = int(table.loc[table.model == LINEAR, "parameters"].iloc[0])
    n_cnn = int(table.loc[table.model == CNN, "parameters"].iloc[0])
    # per cell: genes as the unit, seed 0's runs on the same test genes
    per_cell = []
    runs = first["run_dir"] if "run_dir" in first else pd.Series(dtype=object)
    for cell in dict.fromkeys(table.cell):
        linear, cnn = runs.get((LINEAR, cell)), runs.get((CNN, cell))
        if not (isinstance(linear, str) and isinstance(cnn, str)):
            per_cell.append(f"{cell}: no paired test (a seed-0 run is missing)")
            continue
        try:
            result = compare_runs(linear, cnn)
        except DeepChromeError as error:
            per_cell.append(f"{cell}: no paired test ({error})")
            continue
        judged = verdict(result.ci_low, result.ci_high, margin, result.n_genes)
        per_cell.append(f"{cell} {result.difference:+.3f} {_interval(result.ci_low, result.ci_high)} over "
                        f"{result.n_genes} genes, {VERDICT_WORDS[judged.label]}")  # fmt: skip
    # across cells: seeds averaged within a cell, cells as the unit
    wide = table[table.model.isin([LINEAR, CNN])].pivot_table(index=["cell", "seed"], columns="model",
                                                               values="test_auroc")  # fmt: skip
    wide = wide.dropna().reset_index()
    wide["difference"] = wide[LINEAR] - wide[CNN]
    cells = average_seeds(wide, "cell", "seed", "difference")
    across = paired_over_units(cells["difference"].to_numpy())
    judged = verdict(across["ci_low"], across["ci_high"], margin, len(cells), min_units=MIN_CELLS)
    few = (f"; only {len(cells)} cell(s), fewer than the {MIN_CELLS} a cross-cell verdict needs"
           if len(cells) < MIN_CELLS else "")  # fmt: skip
    sentence = (
        f"The {n_linear:,}-parameter linear model (max) against the {n_cnn:,}-parameter CNN (paper settings), "
        f"difference in test AUROC with its 95% interval. Per cell (seed 0, paired DeLong over the cell's test "
        f"genes): {'; '.join(per_cell)}. Across cells (seeds averaged within each cell, {len(cells)} cell(s) as the "
        f"unit, t-interval): {across['value']:+.3f} {_interval(across['ci_low'], across['ci_high'])}, "
        f"{VERDICT_WORDS[judged.label]}{few}. {tail}\n\n{verdict_rule(margin)}"
    )
    return summary, sentence


def _gan_row(cell: str, metrics: dict) -> dict:
    """One row of the GAN quality table from a GAN run's metrics.json (test split)."""
    # metrics.json writes an undefined value as null: read it back as NaN
    q = {key: np.nan if value is None else value for key, value in metrics["test_quality"].items()}
    met = metrics["targets_met_on_test"]
    real_profiles = [v for k, v in q.items() if k.startswith("profile_correlation_real/")]
    return {
        "cell": cell,
        "epochs": metrics["epochs"],
        "two-sample AUROC": round(q["two_sample_auroc"], 3),
        "(real)": round(q["two_sample_auroc_real"], 3),
        "(real) 97.5%": round(q.get("two_sample_auroc_real_q975", float("nan")), 3),
        "min profile r": round(q["profile_correlation_min"], 3),
        "(real) ": round(min(real_profiles), 3),
        "min corrected r": round(q["profile_correlation_corrected_min"], 3),
        "measured": q["profiles_measured"],
        "shortfall": round(q["profile_correlation_gap_max"], 3),
        "profile diff excess": round(q.get("profile_difference_excess", float("nan")), 3),
        "fidelity AUROC": round(q.get("conditional_fidelity_auroc", float("nan")), 3),
        "(real)  ": round(q.get("conditional_fidelity_auroc_real", float("nan")), 3),
        "(real 95% CI)": _interval(
            *(q.get(f"conditional_fidelity_auroc_real_ci_{e}", np.nan) for e in ("low", "high"))
        ),
        "fidelity gap": round(q.get("conditional_fidelity_gap", float("nan")), 3),
        "targets met": f"{sum(met.values())} of {len(met)}",
        "missed": ", ".join(k for k, ok in met.items() if not ok) or "none",
    }


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with files.atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def _best_checkpoint(run_dir: Path) -> str:
    return json.loads((run_dir / "metrics.json").read_text())["best_checkpoint"]


@default_output
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
    margin: float = MARGIN,
) -> Path:
    """Run every step (cached by fingerprint) and write ``<out>/README.md``.

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
    margin
        Equivalence margin of the linear-vs-CNN verdicts, in test AUROC (stated in the report).

    Returns
    -------
    Path
        The report's ``README.md``. Its runtime line is measured: this run's wall time when it
        computed every step, else the sum of the steps' times as measured by the runs that computed
        them (:func:`deepchrome.report.cache.runtime_sentence`).
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    root = Path(root) if root else default_root()
    from deepchrome.data.release import list_cells

    cells = cells or [c for c in ("E003", "E123") if c in list_cells(root)]
    if not cells:
        raise DeepChromeError(f"no cells to report on in {root}")
    out, work = Path(out), Path(work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    quick = {"trainer.max_epochs": 2} if fast else {}
    models = list(dict.fromkeys([CNN, LINEAR, *(models or MODELS)]))
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise DeepChromeError(f"unknown model(s) {', '.join(unknown)} (available: {', '.join(MODELS)})")
    total = len(models) * seeds * (len(cells) + 1) + 3
    progress = tqdm(total=total, desc="report", unit="step", disable=None)  # a bar on a terminal only

    real, steps = classifier_table(root, cells, seeds, work / "real", quick, progress, models)
    _write_csv(real.drop(columns="run_dir"), out / "classifiers_real.csv")
    real_summary, real_sentence = summarize_classifiers(real, margin)

    from deepchrome.data.simulate import simulate_release

    simulated_root = work / "simulated-data"
    simulation = {"n_cells": 1, "n_genes": simulated_genes, "seed": 0}
    steps.append(cached_step("simulated data", simulated_root, {"step": "simulate", **simulation},
                             lambda folder: simulate_release(folder, **simulation), lambda folder: None))  # fmt: skip
    simulated, simulated_steps = classifier_table(simulated_root, ["S01"], seeds, work / "simulated", quick, progress,
                                                  models)  # fmt: skip
    steps += simulated_steps
    _write_csv(simulated.drop(columns="run_dir"), out / "classifiers_simulated.csv")
    simulated_summary, simulated_sentence = summarize_classifiers(simulated, margin)

    # cross-cell summary
    from deepchrome.experiments import run_experiment

    experiment = {
        "models": {"cnn": "deepchrome", "linear": "linear"}, "overrides": quick,
        "families": ["single", "test_on_rest", "exclusive_all", "inclusive_all"],
        "selection": ["target_val", "strict"], "study_name": "report-cross-cell", "targets": cells,
    }  # fmt: skip
    every_cell = list_cells(root)
    expression = [root / "expression" / f"{c}.csv" for c in every_cell]
    steps.append(cached_step(
        "cross-cell experiment", work / "cross_cell",
        {"step": "cross_cell", "experiment": experiment, "data": data_fingerprint(root, every_cell, expression)},
        lambda folder: run_experiment({"root": str(root.resolve()), **experiment}, out=folder), lambda folder: None,
    ))  # fmt: skip
    # the experiment's own summary, one heading level down (its first line is the title)
    cross_summary = (work / "cross_cell" / "summary.md").read_text().split("\n", 2)[2].replace("\n## ", "\n### ")
    for name in ("test_on_rest_cnn.png", "families.png"):
        if (work / "cross_cell" / name).is_file():
            shutil.copy(work / "cross_cell" / name, out / f"cross_cell_{name}")
    progress.update(1)

    # GAN: one per real cell, trained for gan_minutes, judged on the test split
    gan_rows, gan_metrics = [], {}
    cnn_runs = {step.name: step for step in steps if step.name.startswith(f"fit {CNN} ")}
    cnn_steps = {cell: cnn_runs[f"fit {CNN} {cell} seed 0"] for cell in cells}
    cnn_checkpoints = {cell: _best_checkpoint(work / "real" / _slug(CNN) / f"{cell}-seed0") for cell in cells}
    from deepchrome.gan.fitting import fit_gan

    for cell in cells:
        settings = {"cell": cell, "minutes": None if fast else gan_minutes, "max_epochs": 2 if fast else None}
        step = cached_step(
            f"GAN {cell}", work / "gan" / cell,
            {"step": "gan", **settings, "classifier": cnn_steps[cell].key, "data": data_fingerprint(root, [cell])},
            lambda folder, s=settings: fit_gan(root, s["cell"], folder, cnn_checkpoints[s["cell"]],
                                               minutes=s["minutes"], max_epochs=s["max_epochs"], overwrite=True),
            lambda folder: json.loads((folder / "metrics.json").read_text()),
        )  # fmt: skip
        steps.append(step)
        gan_metrics[cell] = step.value
        gan_rows.append(_gan_row(cell, step.value))
    gan_table = pd.DataFrame(gan_rows)
    _write_csv(gan_table, out / "gan_quality.csv")
    from deepchrome.gan.visualize import visualize

    best_gan = gan_metrics[cells[0]]["best_checkpoint"] or str(work / "gan" / cells[0] / "checkpoints" / "last.ckpt")
    cnn_checkpoint = cnn_checkpoints[cells[0]]
    step = timed_step("GAN figures", lambda: visualize(best_gan, cnn_checkpoint, root, [cells[0]], out / "gan",
                                                       samples=32 if fast else 512,
                                                       bootstrap=5 if fast else 50, overwrite=True))  # fmt: skip
    steps.append(step)
    gan_summary = step.value
    progress.update(1)

    # attributions
    from deepchrome.interpret.explain import explain

    linear_checkpoint = _best_checkpoint(work / "real" / _slug(LINEAR) / f"{cells[0]}-seed0")
    step = timed_step("attributions", lambda: explain(cnn_checkpoint, root, [cells[0]], out / "attributions",
                                                      linear_checkpoint=linear_checkpoint, gene_figures=1,
                                                      n_steps=10 if fast else 50, overwrite=True))  # fmt: skip
    steps.append(step)
    attribution = step.value
    progress.update(1)
    progress.close()

    runtime = runtime_sentence(steps, time.perf_counter() - start)
    fit_minutes = sum(s.seconds for s in steps if s.name.startswith("fit ")) / 60
    return write_report(
        out, runtime=runtime, provenance=provenance_sentence(), fit_minutes=fit_minutes, cells=cells, root=root,
        simulated_genes=simulated_genes, seeds=seeds, real_sentence=real_sentence, real_summary=real_summary,
        simulated_sentence=simulated_sentence, simulated_summary=simulated_summary, cross_summary=cross_summary,
        gan_minutes=gan_minutes, gan_table=gan_table, gan_summary=gan_summary, gan_marks=gan_metrics[cells[0]]["marks"],
        attribution=attribution,
    )  # fmt: skip
