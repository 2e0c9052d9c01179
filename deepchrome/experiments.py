"""``deepchrome experiment``: DeepChrome 2.0's cross-cell experiments as one engine.

An experiment config lists models (training configs), families and target cells::

    root: ../../data/example            # release root (relative to this file)
    models: {linear: ../linear.yaml, cnn: ../deepchrome_fast.yaml}
    overrides: {trainer.max_epochs: 30} # applied to every model's config
    families: [single, test_on_rest, exclusive_all, inclusive_all, exclusive_random,
               inclusive_random, exclusive_high, inclusive_high, exclusive_somewhat,
               inclusive_somewhat, size]
    targets: null                       # null = every cell
    selection: [target_val, strict]
    k_random: 2
    thresholds: {high: 0.8, somewhat: 0.5}
    size: {fractions: [0.1, 0.25, 0.5, 1.0], n_cells: [1, 2, 4]}
    seed: 0

Families for a target cell T: ``single`` (train T), ``test_on_rest`` (train A, test every other
cell), ``inclusive_all``/``exclusive_all`` (all cells with/without T), ``*_random`` (T plus / only
``k_random`` seeded random other cells), ``*_high`` (cells with correlation to T >= ``high``) and
``*_somewhat`` (``somewhat`` <= r < ``high``), ``size`` (fractions of T's training genes, and T plus
random cells up to ``n_cells``). Every family is tested on T's test split.

Model selection: ``target_val`` (the paper's: validate on T's valid split, which leaks target labels
into exclusive runs) or ``strict`` (validate on the training cells' valid splits).

Cell-to-cell correlation: Pearson of log1p expression across common genes when tables exist
(``<root>/expression/<cell>.csv`` or ``expression_dir``), else of label vectors.

Jobs (distinct trainings; identical ones are shared between families) run on an optuna study with
a grid sampler over job ids, in the sweep engine's storage: several workers or machines share it,
a killed job is retried, a rerun skips finished jobs.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from deepchrome.errors import DeepChromeError

log = logging.getLogger(__name__)
FAMILIES = (
    "single", "test_on_rest", "inclusive_all", "exclusive_all", "inclusive_random", "exclusive_random",
    "inclusive_high", "exclusive_high", "inclusive_somewhat", "exclusive_somewhat", "size",
)  # fmt: skip
SELECTIONS = ("target_val", "strict")


# -- configuration ------------------------------------------------------------------------------
def load_experiment_config(path: str | os.PathLike) -> dict:
    """Read and validate an experiment config (paths resolved relative to it).

    Raises
    ------
    DeepChromeError
        For unknown families, selections or cells, thresholds outside [-1, 1], missing files.
    """
    from deepchrome.data.release import list_cells
    from deepchrome.sweep import load_with_overrides

    path = Path(path)
    if not path.is_file():
        raise DeepChromeError(f"experiment config {path} not found")
    raw = yaml.safe_load(path.read_text()) or {}
    root = (
        (path.parent / raw.get("root", "data/example")).resolve() if "root" in raw else Path("data/example").resolve()
    )
    cells = list_cells(root)
    models = {}
    for name, model_path in (raw.get("models") or {"linear": "../linear.yaml"}).items():
        model_file = (path.parent / model_path).resolve()
        if not model_file.is_file():
            raise DeepChromeError(f"{path}: model {name}: config {model_file} not found")
        config = load_with_overrides(model_file, raw.get("overrides"), f"{path}: overrides")
        config.setdefault("data", {})["root"] = str(root)
        models[name] = config
    families = raw.get("families") or list(FAMILIES)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise DeepChromeError(f"{path}: unknown famil(ies) {', '.join(unknown)} (available: {', '.join(FAMILIES)})")
    selection = raw.get("selection") or list(SELECTIONS)
    bad = [s for s in selection if s not in SELECTIONS]
    if bad:
        raise DeepChromeError(f"{path}: unknown selection {', '.join(bad)} (available: {', '.join(SELECTIONS)})")
    targets = raw.get("targets") or cells
    missing = [t for t in targets if t not in cells]
    if missing:
        raise DeepChromeError(
            f"{path}: target cell(s) {', '.join(missing)} not in {root} (available: {', '.join(cells)})"
        )
    thresholds = {"high": 0.8, "somewhat": 0.5, **(raw.get("thresholds") or {})}
    for name, value in thresholds.items():
        if not isinstance(value, int | float) or not -1 <= value <= 1:
            raise DeepChromeError(f"{path}: thresholds.{name} = {value!r}, expected a number in [-1, 1]")
    if thresholds["somewhat"] > thresholds["high"]:
        raise DeepChromeError(f"{path}: thresholds.somewhat ({thresholds['somewhat']}) > thresholds.high")
    expression_dir = raw.get("expression_dir")
    return {
        "root": root,
        "cells": cells,
        "models": models,
        "families": families,
        "selection": selection,
        "targets": targets,
        "k_random": int(raw.get("k_random", 2)),
        "thresholds": thresholds,
        "size": {"fractions": [0.1, 0.25, 0.5, 1.0], "n_cells": [1, 2, 4], **(raw.get("size") or {})},
        "seed": int(raw.get("seed", 0)),
        "expression_dir": (path.parent / expression_dir).resolve() if expression_dir else root / "expression",
        "study_name": raw.get("study_name", path.stem),
    }


# -- correlation between cells ------------------------------------------------------------------
def cell_correlations(root: Path, cells: list[str], expression_dir: Path | None = None) -> tuple[pd.DataFrame, str]:
    """Pearson correlation between cells: of log1p expression where every cell has a table, else of labels.

    Returns
    -------
    matrix
        DataFrame [cells x cells].
    source
        ``expression`` or ``labels``.
    """
    from deepchrome.data.cache import load_split
    from deepchrome.data.release import read_expression_table
    from deepchrome.data.signals import SPLITS

    if expression_dir is not None and all((expression_dir / f"{c}.csv").is_file() for c in cells):
        tables = {c: read_expression_table(expression_dir / f"{c}.csv") for c in cells}
        common = sorted(set.intersection(*(set(t.index) for t in tables.values())))
        values = pd.DataFrame({c: np.log1p(tables[c].reindex(common).to_numpy()) for c in cells})
        return values.corr(), "expression"
    labels = {}
    for cell in cells:
        parts = [load_split(root, cell, s) for s in SPLITS]
        labels[cell] = pd.Series(np.concatenate([p.labels for p in parts]),
                                 index=np.concatenate([p.gene_ids for p in parts]))  # fmt: skip
    common = sorted(set.intersection(*(set(s.index) for s in labels.values())))
    return pd.DataFrame({c: labels[c].reindex(common).to_numpy(float) for c in cells}).corr(), "labels"


# -- the job grid -------------------------------------------------------------------------------
def plan_jobs(settings: dict, correlation: pd.DataFrame) -> tuple[list[dict], list[dict], list[dict]]:
    """Expand families x models x targets x selection into distinct trainings.

    Returns
    -------
    jobs
        Distinct trainings: model, train/val/test cells, train fraction.
    rows
        One per reported result: family, model, target, selection, job id, test cell.
    skipped
        ``{family, target, reason}`` for combinations with an empty training set.
    """
    cells, seed = settings["cells"], settings["seed"]
    high, somewhat = settings["thresholds"]["high"], settings["thresholds"]["somewhat"]
    jobs: list[dict] = []
    index: dict = {}
    rows: list[dict] = []
    skipped: list[dict] = []

    def add(family, model, target, train, val, tests, selection, fraction=1.0, extra=None):
        key = (model, tuple(train), tuple(val), round(fraction, 6))
        if key not in index:
            index[key] = len(jobs)
            jobs.append({"model": model, "train_cells": list(train), "val_cells": list(val), "test_cells": [],
                         "train_fraction": fraction})  # fmt: skip
        job = jobs[index[key]]
        for test in tests:
            if test not in job["test_cells"]:
                job["test_cells"].append(test)
            rows.append({"family": family, "model": model, "target": target, "selection": selection,
                         "job": index[key], "test_cell": test, **(extra or {})})  # fmt: skip

    for model in settings["models"]:
        for target in settings["targets"]:
            others = [c for c in cells if c != target]
            rng = np.random.default_rng([seed, cells.index(target)])
            random_pick = sorted(
                rng.choice(others, size=min(settings["k_random"], len(others)), replace=False).tolist()
            )
            r = correlation.loc[target, others]
            partners = {
                "high": [c for c in others if r[c] >= high],
                "somewhat": [c for c in others if somewhat <= r[c] < high],
            }
            for family in settings["families"]:
                if family == "single":
                    add(family, model, target, [target], [target], [target], "target_val")
                    continue
                if family == "test_on_rest":
                    # the row of the train x test matrix where `target` is the training cell
                    add(family, model, target, [target], [target], others, "target_val")
                    continue
                if family == "size":
                    for fraction in settings["size"]["fractions"]:
                        add(family, model, target, [target], [target], [target], "target_val", float(fraction),
                            {"curve": "genes", "x": float(fraction)})  # fmt: skip
                    for n in settings["size"]["n_cells"]:
                        if n > len(cells):
                            continue
                        extra_cells = sorted(rng.choice(others, size=n - 1, replace=False).tolist()) if n > 1 else []
                        add(family, model, target, [target, *extra_cells], [target], [target], "target_val", 1.0,
                            {"curve": "cells", "x": n})  # fmt: skip
                    continue
                mode, kind = family.split("_", 1)
                chosen = {"all": others, "random": random_pick, **partners}[kind]
                if not chosen:
                    threshold = high if kind == "high" else somewhat
                    reason = f"no {kind} partner cells (threshold {threshold})"
                    skipped.append({"family": family, "model": model, "target": target, "reason": reason})
                    continue
                train = sorted(chosen + ([target] if mode == "inclusive" else []))
                for selection in settings["selection"]:
                    val = [target] if selection == "target_val" else train
                    add(family, model, target, train, val, [target], selection)
    return jobs, rows, skipped


# -- running ------------------------------------------------------------------------------------
def run_job(job: dict, settings: dict, run_dir: Path) -> dict:
    """Train one job and test it on its test cells; return its metrics."""
    from deepchrome.sweep import run_training

    config = copy.deepcopy(settings["models"][job["model"]])
    data = config.setdefault("data", {})
    data.update(train_cells=job["train_cells"], val_cells=job["val_cells"], test_cells=job["test_cells"],
                train_fraction=job["train_fraction"])  # fmt: skip
    start = time.perf_counter()
    metrics = run_training(config, run_dir)
    metrics["seconds"] = time.perf_counter() - start
    if len(job["test_cells"]) == 1:
        cell = job["test_cells"][0]
        metrics[f"test_{cell}_auroc"] = metrics["test_auroc"]
        metrics[f"test_{cell}_auprc"] = metrics["test_auprc"]
    return metrics


def run_experiment(
    config_path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    storage: str | None = None,
    n_jobs: int | None = None,
) -> dict:
    """Run (or join, or resume) an experiment and write its results, summary and figures.

    Returns
    -------
    dict
        Paths, job counts and the summary sentence.
    """
    import optuna

    from deepchrome.sweep import make_storage, retry_while_racing

    settings = load_experiment_config(config_path)
    out = Path(out or Path("runs") / "experiments" / settings["study_name"])
    out.mkdir(parents=True, exist_ok=True)
    correlation, source = cell_correlations(settings["root"], settings["cells"], settings["expression_dir"])
    correlation.to_csv(out / "cell_correlation.csv")
    jobs, rows, skipped = plan_jobs(settings, correlation)
    (out / "jobs.json").write_text(json.dumps({"jobs": jobs, "skipped": skipped}, indent=1))
    for item in skipped:
        log.warning("skipped %s for %s (%s): %s", item["family"], item["target"], item["model"], item["reason"])
    storage_url = storage or f"sqlite:///{(out / 'jobs.db').resolve()}"
    storage = make_storage(storage_url, heartbeat_interval=10)
    study = retry_while_racing(lambda: optuna.create_study(
        study_name=settings["study_name"], storage=storage,
        sampler=optuna.samplers.GridSampler({"job": list(range(len(jobs)))}, seed=settings["seed"]),
        direction="maximize", load_if_exists=True,
    ))  # fmt: skip
    done = _finished_jobs(study)
    todo = [i for i in range(len(jobs)) if i not in done]
    print(f"{len(jobs)} jobs ({len(done)} finished before, {len(todo)} to run); correlations from {source}")
    if todo and n_jobs != 0:

        def objective(trial):
            job_id = trial.suggest_categorical("job", list(range(len(jobs))))
            finished = _finished_jobs(study)
            if job_id in finished:  # another worker got there first
                trial.set_user_attr("duplicate_of", finished[job_id].number)
                return finished[job_id].value
            metrics = run_job(jobs[job_id], settings, out / "jobs" / f"{job_id:04d}-{trial.number}")
            trial.set_user_attr("metrics", {k: v for k, v in metrics.items() if isinstance(v, int | float)})
            return float(metrics["test_auroc"])

        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="jobs", unit="job")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study.optimize(objective, n_trials=n_jobs or len(todo), catch=(Exception,),
                       callbacks=[lambda s, t: bar.update(1)])  # fmt: skip
        bar.close()
    return write_results(study, jobs, rows, skipped, settings, correlation, source, out)


def _finished_jobs(study) -> dict:
    import optuna

    finished = {}
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if "metrics" in trial.user_attrs:
            finished.setdefault(trial.params["job"], trial)
    return finished


# -- results ------------------------------------------------------------------------------------
def write_results(study, jobs, rows, skipped, settings, correlation, source, out: Path) -> dict:
    """results.csv, summary.csv/summary.md and figures from the finished jobs."""
    finished = _finished_jobs(study)
    records = []
    for row in rows:
        trial = finished.get(row["job"])
        if trial is None:
            continue
        metrics = trial.user_attrs["metrics"]
        job = jobs[row["job"]]
        records.append({
            **{k: row[k] for k in ("family", "model", "target", "selection")},
            "test_cell": row["test_cell"],
            "train_cells": "+".join(job["train_cells"]),
            "n_train_cells": len(job["train_cells"]),
            "train_genes": metrics.get("train_genes"),
            "train_fraction": job["train_fraction"],
            "curve": row.get("curve"),
            "x": row.get("x"),
            "val_auroc": metrics.get("val_auroc"),
            "test_auroc": metrics.get(f"test_{row['test_cell']}_auroc"),
            "test_auprc": metrics.get(f"test_{row['test_cell']}_auprc"),
            "epochs": metrics.get("epochs"),
            "seconds": metrics.get("seconds"),
            "correlation": float(correlation.loc[row["target"], row["test_cell"]]),
        })  # fmt: skip
    results = pd.DataFrame(records)
    results.to_csv(out / "results.csv", index=False)
    summary, paired, sentence = summarize_results(results)
    summary.to_csv(out / "summary.csv", index=False)
    paired.to_csv(out / "paired_vs_single.csv", index=False)
    lines = [f"# {settings['study_name']}", "", f"Cell correlations from {source}. {sentence}", ""]
    if len(summary):
        lines += ["## Test AUROC per family", "", markdown_table(summary), ""]
    if len(paired):
        lines += ["## Against `single` (paired over target cells)", "", markdown_table(paired), ""]
    if skipped:
        lines += ["## Skipped", ""] + [
            f"- {s['family']} / {s['target']} / {s['model']}: {s['reason']}" for s in skipped
        ]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    if len(results):
        from deepchrome.experiment_figures import plot_all

        plot_all(results, correlation, out)
    return {"out": str(out), "jobs": len(jobs), "finished": len(finished), "rows": len(results),
            "skipped": len(skipped), "sentence": sentence}  # fmt: skip


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table (floats to 3 decimals)."""

    def cell(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def summarize_results(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Mean/median test AUROC per family, model and selection; paired differences against ``single``.

    Returns
    -------
    summary, paired, sentence
        ``paired`` has, per family/model/selection, the mean difference to ``single`` over target
        cells, wins/losses and the Wilcoxon signed-rank p-value; ``sentence`` says whether training
        on other cells (``exclusive_all``, strict selection when run) predicts as well as the
        target's own data: supported when the mean difference is >= -0.01.
    """
    from scipy.stats import wilcoxon

    if results.empty:
        return pd.DataFrame(), pd.DataFrame(), "No finished jobs yet."
    main = results[(results.family != "size") | (results.train_fraction == 1.0) & (results.n_train_cells == 1)]
    main = main[main.family != "test_on_rest"]
    summary = (main.groupby(["family", "model", "selection"])["test_auroc"]
               .agg(["mean", "median", "count"]).reset_index())  # fmt: skip
    single = results[results.family == "single"].set_index(["model", "target"])["test_auroc"]
    paired_rows = []
    for (family, model, selection), group in main.groupby(["family", "model", "selection"]):
        if family in ("single", "size"):
            continue
        group = group.set_index("target")["test_auroc"]
        base = single.xs(model, level="model").reindex(group.index)
        difference = (group - base).dropna()
        if difference.empty:
            continue
        p = float("nan")
        if len(difference) >= 2 and np.any(difference != 0):
            p = float(wilcoxon(difference).pvalue)
        paired_rows.append({"family": family, "model": model, "selection": selection, "targets": len(difference),
                            "mean_difference": difference.mean(), "wins": int((difference > 0).sum()),
                            "losses": int((difference < 0).sum()), "wilcoxon_p": p})  # fmt: skip
    paired = pd.DataFrame(paired_rows)
    sentence = "Cell-type independence was not tested (run exclusive_all and single)."
    if len(paired) and (paired.family == "exclusive_all").any():
        chosen = paired[paired.family == "exclusive_all"]
        chosen = chosen[chosen.selection == "strict"] if (chosen.selection == "strict").any() else chosen
        worst = chosen.sort_values("mean_difference").iloc[0]
        verdict = "supports" if worst["mean_difference"] >= -0.01 else "does not support"
        sentence = (
            f"The data {verdict} cell-type independence: training only on other cells "
            f"(exclusive_all, {worst['selection']} selection, {worst['model']}) changes the target's test AUROC by "
            f"{worst['mean_difference']:+.3f} on average against training on its own data "
            f"({worst['wins']} wins, {worst['losses']} losses over {worst['targets']} targets, "
            f"Wilcoxon p = {worst['wilcoxon_p']:.3g}; supported means a mean change of at least -0.01)."
        )
    return summary, paired, sentence
