"""The job grid: cell-to-cell correlations and the trainings each family needs (shared when identical)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepchrome.errors import DeepChromeError


def cell_correlations(root: Path, cells: list[str], expression_dir: Path | None = None) -> tuple[pd.DataFrame, str]:
    """Pearson correlation between cells over their training genes: of log1p expression, else of labels.

    Partner cells (the ``*_high`` and ``*_somewhat`` families) are chosen from this matrix, so it must
    not see any target's test (or validation) labels: only genes in the training split of **every**
    cell enter it. Expression tables are used where every cell has one
    (``<expression_dir>/<cell>.csv``), restricted to those training genes; otherwise the training
    labels (0/1) themselves are correlated.

    Parameters
    ----------
    root
        Release root holding ``<cell>/classification/train.csv``.
    cells
        The cells to correlate (at least one).
    expression_dir
        Folder of ``<cell>.csv`` expression tables, or ``None`` for labels.

    Returns
    -------
    matrix
        DataFrame [cells x cells].
    source
        ``expression`` or ``labels``.

    Raises
    ------
    DeepChromeError
        Fewer than 3 genes in the training split of every cell (or in every expression table too).
    """
    from deepchrome.data.cache import load_split
    from deepchrome.data.release import read_expression_table
    from deepchrome.data.signals import normalize_gene_id

    train = {cell: load_split(root, cell, "train") for cell in cells}
    # gene ids in the release's short form, as expression tables are indexed when read
    ids = {cell: [normalize_gene_id(g) for g in part.gene_ids] for cell, part in train.items()}
    common = sorted(set.intersection(*(set(i) for i in ids.values())))
    if expression_dir is not None and all((expression_dir / f"{c}.csv").is_file() for c in cells):
        tables = {c: read_expression_table(expression_dir / f"{c}.csv") for c in cells}
        common = [g for g in common if all(g in t.index for t in tables.values())]
        _check_enough(common, cells, "training genes with expression in every table")
        values = pd.DataFrame({c: np.log1p(tables[c].reindex(common).to_numpy()) for c in cells})
        return values.corr(), "expression"
    _check_enough(common, cells, "genes in the training split of every cell")
    labels = {}
    for cell, part in train.items():
        labels[cell] = pd.Series(np.asarray(part.labels, dtype=float), index=ids[cell]).reindex(common).to_numpy()
    return pd.DataFrame(labels).corr(), "labels"


def _check_enough(genes: list[str], cells: list[str], what: str) -> None:
    if len(genes) < 3:
        raise DeepChromeError(
            f"cell correlations: only {len(genes)} {what} ({', '.join(cells)}); correlations need at least 3"
        )


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
