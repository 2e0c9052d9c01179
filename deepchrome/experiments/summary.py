"""An experiment's results table, per-family summary, paired comparisons and the written summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepchrome import files


def write_results(study, jobs, rows, skipped, settings, correlation, source, out: Path, failed_jobs=None) -> dict:
    """results.csv, summary.csv/summary.md and figures from the finished jobs; ``failed_jobs`` (job
    table rows out of attempts: job, model, train_cells, attempts, error) are listed in summary.md."""
    finished = finished_jobs(study)
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
    summary, paired, sentence = summarize_results(results)
    for name, table in (("results", results), ("summary", summary), ("paired_vs_single", paired)):
        with files.atomic_path(out / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
    lines = [f"# {settings['study_name']}", "", f"Cell correlations from {source}. {sentence}", ""]
    if len(summary):
        lines += ["## Test AUROC per family", "", markdown_table(summary), ""]
    if len(paired):
        lines += ["## Against `single` (paired over target cells)", "", markdown_table(paired), ""]
    if skipped:
        lines += ["## Skipped", ""] + [
            f"- {s['family']} / {s['target']} / {s['model']}: {s['reason']}" for s in skipped
        ]
    if failed_jobs:
        lines += ["", "## Failed jobs", ""] + [
            f"- job {j['job']} ({j['model']}, train {j['train_cells']}): {j['attempts']} attempts, "
            f"last error: {j['error']}"
            for j in failed_jobs
        ]
    files.write_text(out / "summary.md", "\n".join(lines) + "\n")
    if len(results):
        from deepchrome.experiments.figures import plot_all

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


def finished_jobs(study) -> dict:
    """Job id -> its first COMPLETE trial with metrics."""
    import optuna

    finished = {}
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if "metrics" in trial.user_attrs:
            finished.setdefault(trial.params["job"], trial)
    return finished
