"""The job grid: cell-to-cell correlations and the trainings each family needs (shared when identical)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


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
