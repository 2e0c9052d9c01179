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
    margin = settings.get("margin", MARGIN)
    summary, paired, sentence = summarize_results(results, margin)
    for name, table in (("results", results), ("summary", summary), ("paired_vs_single", paired)):
        with files.atomic_path(out / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
    lines = [f"# {settings['study_name']}", "", f"Cell correlations (training genes) from {source}. {sentence}", ""]
    if len(summary):
        lines += ["## Test AUROC per family", "", markdown_table(summary), ""]
    if len(paired):
        lines += ["## Against `single` (paired over target cells)", "", paired_rule(margin), ""]
        lines += [markdown_table(paired), ""]
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


#: Default equivalence margin of the paired comparisons against ``single``, in test AUROC: a family
#: "matches" training on the target's own data only when the whole 95% interval of the mean
#: difference lies inside +/- this margin (the experiment config's ``margin`` changes it).
MARGIN = 0.01
#: Targets (cells) a paired verdict needs; with fewer it is "inconclusive" whatever the interval says.
MIN_TARGETS = 5
#: Words for :func:`deepchrome.stats.verdict`'s labels, difference = family - single.
VERDICT_WORDS = {"a better": "family better", "b better": "single better", "equivalent": "equivalent",
                 "inconclusive": "inconclusive"}  # fmt: skip


def paired_rule(margin: float = MARGIN) -> str:
    """The rule behind the paired table's ``verdict`` column, as one paragraph of the summary."""
    return (
        "Difference = family - single in test AUROC per target cell (one training per job; several rows of a "
        "target are averaged first), so target cells are the unit of replication. Interval: 95% Student t over "
        f"targets. Verdict against the margin +/-{margin:g}: *equivalent* when the whole interval lies inside "
        "the margin (two one-sided tests), *family better* / *single better* when it excludes 0, else "
        f"*inconclusive*; fewer than {MIN_TARGETS} targets is always *inconclusive*."
    )


def summarize_results(results: pd.DataFrame, margin: float = MARGIN) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Mean/median test AUROC per family, model and selection; paired differences against ``single``.

    Parameters
    ----------
    results
        One row per reported result (``results.csv``): family, model, target, selection,
        train_fraction, n_train_cells, test_auroc.
    margin
        Equivalence margin in test AUROC (see :func:`paired_rule`).

    Returns
    -------
    summary, paired, sentence
        ``paired`` has, per family/model/selection, the mean difference to ``single`` over target
        cells with its 95% t-interval (``ci_low``, ``ci_high``; :func:`deepchrome.stats.paired_over_units`),
        wins/losses and the ``verdict`` of :func:`paired_rule`. ``sentence`` says, per model, what the
        data say about cell-type independence: ``exclusive_all`` (strict selection when run) against
        ``single``; *supported* when the verdict is "equivalent" or "family better", *not supported*
        when "single better", else *inconclusive*.
    """
    from deepchrome.stats import paired_over_units, verdict

    if results.empty:
        return pd.DataFrame(), pd.DataFrame(), "No finished jobs yet."
    main = results[(results.family != "size") | (results.train_fraction == 1.0) & (results.n_train_cells == 1)]
    main = main[main.family != "test_on_rest"]
    summary = (main.groupby(["family", "model", "selection"])["test_auroc"]
               .agg(["mean", "median", "count"]).reset_index())  # fmt: skip
    single = results[results.family == "single"].groupby(["model", "target"])["test_auroc"].mean()
    paired_rows = []
    for (family, model, selection), group in main.groupby(["family", "model", "selection"]):
        if family in ("single", "size") or model not in single.index.get_level_values("model"):
            continue
        group = group.groupby("target")["test_auroc"].mean()
        difference = (group - single.xs(model, level="model").reindex(group.index)).dropna()
        if difference.empty:
            continue
        interval = paired_over_units(difference.to_numpy())
        judged = verdict(interval["ci_low"], interval["ci_high"], margin, len(difference), min_units=MIN_TARGETS)
        paired_rows.append({"family": family, "model": model, "selection": selection, "targets": len(difference),
                            "mean_difference": interval["value"], "ci_low": interval["ci_low"],
                            "ci_high": interval["ci_high"], "wins": int((difference > 0).sum()),
                            "losses": int((difference < 0).sum()), "verdict": VERDICT_WORDS[judged.label],
                            "reason": judged.reason})  # fmt: skip
    paired = pd.DataFrame(paired_rows)
    sentence = "Cell-type independence was not tested (run exclusive_all and single)."
    if len(paired) and (paired.family == "exclusive_all").any():
        chosen = paired[paired.family == "exclusive_all"]
        chosen = chosen[chosen.selection == "strict"] if (chosen.selection == "strict").any() else chosen
        parts = [_independence(row, margin) for row in chosen.itertuples(index=False)]
        sentence = (
            f"Cell-type independence (training only on other cells, exclusive_all with {chosen.selection.iloc[0]} "
            f"selection, against training on the target's own data; margin +/-{margin:g} test AUROC, target cells "
            f"as the unit): {'; '.join(parts)}."
        )
    return summary, paired.drop(columns="reason") if len(paired) else paired, sentence


def _independence(row, margin: float) -> str:
    """One model's part of the cell-type independence sentence."""
    claim = {"equivalent": f"supported (matches within +/-{margin:g})", "family better": "supported (better)",
             "single better": "not supported (worse)", "inconclusive": "inconclusive"}[row.verdict]  # fmt: skip
    interval = (f"95% interval [{row.ci_low:+.3f}, {row.ci_high:+.3f}]" if np.isfinite(row.ci_low)
                else "no interval from a single target")  # fmt: skip
    few = f", fewer than the {MIN_TARGETS} a verdict needs" if row.targets < MIN_TARGETS else ""
    return (f"{row.model}: {claim}, mean change {row.mean_difference:+.3f} ({interval}; {row.wins} wins, "
            f"{row.losses} losses over {row.targets} target(s){few})")  # fmt: skip


def finished_jobs(study) -> dict:
    """Job id -> its first COMPLETE trial with metrics."""
    import optuna

    finished = {}
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if "metrics" in trial.user_attrs:
            finished.setdefault(trial.params["job"], trial)
    return finished
