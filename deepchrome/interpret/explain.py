"""``deepchrome explain``: attributions of a trained classifier on any data the data layer reads."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepchrome import files
from deepchrome.api import Classifier
from deepchrome.checkpoints import load_classifier
from deepchrome.config import check_whole_number
from deepchrome.data.inputs import check_cells, concatenate, load_cells, model_input
from deepchrome.errors import DeepChromeError
from deepchrome.interpret.attributions import (
    METHODS,
    attribute,
    group_attributions,
    linear_weights,
    make_baseline,
    shuffled_mark_check,
    summarize,
)
from deepchrome.messages import default_output


@default_output
def explain(
    checkpoint: str | os.PathLike,
    root: str | os.PathLike,
    cells: list[str],
    out: str | os.PathLike,
    split: str = "test",
    method: str = "integrated_gradients",
    baseline: str = "zeros",
    n_steps: int = 50,
    noise_tunnel: bool = False,
    genes: list[str] | None = None,
    linear_checkpoint: str | os.PathLike | None = None,
    gene_figures: int = 3,
    cache_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> dict:
    """Attribute a checkpoint's predictions on ``cells``' ``split`` and write arrays, tables, figures.

    Writes to ``out``: ``attributions.npz`` (``values`` [genes, marks, bins], ``delta`` [genes],
    ``log_odds`` [genes], ``gene_ids``, ``cells``, ``marks``), ``groups.csv``
    (:func:`~deepchrome.interpret.attributions.group_attributions` per cell), per cell
    ``<cell>_mark_importance.csv`` (:func:`~deepchrome.interpret.attributions.summarize`'s table with
    intervals over genes, joined with :func:`~deepchrome.interpret.attributions.shuffled_mark_check`'s
    ``noise`` flag), ``<cell>_heatmap`` (mark x bin means), ``<cell>_marks`` and ``<cell>_groups`` figures,
    and ``gene_<id>`` figures for the chosen (or the most confidently high) genes. PNG + PDF + CSV each.
    The outputs are written to a temporary folder inside ``out`` and moved in at the end
    (:func:`deepchrome.files.staged_output`): a failure leaves ``out`` as it was. An ``out`` that
    already holds an earlier explain's outputs is refused unless ``overwrite``; then that explain's
    files (listed in its ``explain.json``) are replaced or removed, and other files stay.

    Returns
    -------
    dict
        Paths and the ranked marks.

    Raises
    ------
    DeepChromeError
        For an unknown method, ``n_steps`` < 1, ``gene_figures`` < 0, an ``out`` that is a file or
        holds an earlier explain's outputs (without ``overwrite``), unreadable checkpoints or data,
        unknown cells or genes; all before anything is written.
    """
    from deepchrome.files import check_out_folder, staged_output

    if method not in METHODS:
        raise DeepChromeError(f"unknown attribution method {method!r} (available: {', '.join(METHODS)})")
    check_whole_number("--n-steps", n_steps, 1, 100_000)
    check_whole_number("--gene-figures", gene_figures, 0, 100_000)
    out = check_out_folder(out)
    earlier = earlier_outputs(out)
    if earlier and not overwrite:
        raise DeepChromeError(
            f"{out} already holds the outputs of an earlier explain ({earlier[0].name}, {len(earlier)} file(s)); "
            "pass --overwrite to replace them, or choose another --out"
        )
    classifier = Classifier.from_checkpoint(checkpoint)
    net, marks, transform = classifier.net, list(classifier.marks), classifier.transform
    check_cells(root, cells)
    parts = []
    for cell in cells:
        part = load_cells(root, [cell], split, None, classifier.n_bins, cache_dir)[0]
        if not set(marks) <= set(part.marks):
            raise DeepChromeError(
                f"{checkpoint}: checkpoint was trained on marks {', '.join(marks)}; cell {cell} has "
                f"{', '.join(part.marks)}"
            )
        parts.append(part.select_marks(marks))
    stage = concatenate(parts)
    raw, gene_ids, cell_of, labels = stage.signals, stage.gene_ids, stage.cell_of_gene, stage.labels
    if genes:
        unknown = [g for g in genes if g not in set(gene_ids)]
        if unknown:
            raise DeepChromeError(
                f"gene(s) {', '.join(unknown)} not in {', '.join(cells)} {split} "
                f"({len(gene_ids)} genes, e.g. {', '.join(gene_ids[:3])})"
            )
        chosen = np.isin(gene_ids, genes)
        raw, gene_ids, cell_of, labels = raw[chosen], gene_ids[chosen], cell_of[chosen], labels[chosen]
    x = model_input(raw, transform)
    zero_input = transform(torch.zeros(1, len(marks), 1)).reshape(-1)
    mark_mean = None
    if baseline == "mean":
        train = concatenate(load_cells(root, cells, "train", marks, classifier.n_bins, cache_dir)).signals
        mark_mean = model_input(train, transform).mean(dim=(0, 2))
    reference = make_baseline(x, baseline, zero_input=zero_input, mark_mean=mark_mean)
    linear = None
    if linear_checkpoint is not None:
        linear_net, linear_meta = load_classifier(linear_checkpoint)
        linear = linear_weights(linear_net, linear_meta["marks"])
        if linear is None:
            raise DeepChromeError(f"{linear_checkpoint} is not a LinearBaseline checkpoint")
    result = attribute(net, x, method=method, baseline=reference, n_steps=n_steps, noise_tunnel=noise_tunnel)
    # per cell: the shuffled-mark null (model-space inputs and true labels) and each gene's mark
    # levels (mean model input over bins) that split genes into terciles for groups.csv
    checks = {cell: shuffled_mark_check(net, x[cell_of == cell], labels[cell_of == cell], marks)
              for cell in dict.fromkeys(cell_of)}  # fmt: skip
    levels = x.mean(dim=-1).numpy()
    with staged_output(out) as stage:
        numbers = _write_outputs(stage, result, raw, gene_ids, cell_of, marks, genes, gene_figures, linear, net,
                                 checks, levels)  # fmt: skip
        summary = {"checkpoint": str(checkpoint), "method": method, "baseline": baseline, "n_steps": n_steps,
                   **numbers, "out": str(out)}  # fmt: skip
        written = sorted(p.name for p in stage.iterdir() if p.is_file()) + ["explain.json"]
        files.write_json(stage / "explain.json", {**summary, "files": written}, indent=1)
    for path in earlier:  # the earlier explain's files that this one did not replace
        if path.name not in written:
            path.unlink(missing_ok=True)
    return summary


#: The names explain writes (for an explain.json without its list of files).
_OUTPUT_NAMES = re.compile(
    r"(explain\.json|attributions\.npz|groups\.csv|.+_(heatmap|marks|groups)\.(png|pdf|csv)|.+_mark_importance\.csv"
    r"|gene_.+\.(png|pdf|csv))"
)


def earlier_outputs(out: Path) -> list[Path]:
    """The files of an earlier explain in ``out``: those its ``explain.json`` lists (plain names in
    ``out`` only), else those named as explain names its outputs; ``[]`` without an ``explain.json``
    and such files."""
    import json

    if not out.is_dir():
        return []
    listed = None
    with contextlib.suppress(OSError, ValueError):
        listed = json.loads((out / "explain.json").read_text()).get("files")
    if isinstance(listed, list) and all(isinstance(name, str) for name in listed):
        names = [name for name in listed if name == Path(name).name and _OUTPUT_NAMES.fullmatch(name)]
    else:
        names = [p.name for p in out.iterdir() if _OUTPUT_NAMES.fullmatch(p.name)]
    return [out / name for name in sorted(set(names)) if (out / name).is_file() and not (out / name).is_symlink()]


def _write_outputs(out: Path, result, raw, gene_ids, cell_of, marks, genes, gene_figures, linear, net, checks,
                   levels) -> dict:  # fmt: skip
    """Write the arrays, tables and figures of :func:`explain` into ``out``; the summary's numbers."""
    from deepchrome.interpret import figures

    with files.atomic_path(out / "attributions.npz") as tmp:
        np.savez_compressed(
            tmp, values=result.values, delta=result.delta if result.delta is not None else np.array([]),
            log_odds=result.log_odds, gene_ids=gene_ids.astype(str), cells=cell_of.astype(str), marks=np.array(marks),
        )  # fmt: skip
    predicted_high = result.log_odds > 0
    grouping = "predicted label (P(high) > 0.5)"
    if predicted_high.all() or not predicted_high.any():
        # A poorly calibrated model can call every gene high; compare the halves instead.
        predicted_high = result.log_odds > np.median(result.log_odds)
        grouping = "upper vs lower half of P(high) (the model predicts one class for all genes)"
    linear = linear if linear is not None else linear_weights(net, marks)
    ranked = None
    groups, noise = [], {}
    for cell in dict.fromkeys(cell_of):
        here = cell_of == cell
        marks_table, bins_table = summarize(result.values[here], predicted_high[here], marks)
        if checks[cell] is not None:
            marks_table = marks_table.merge(checks[cell], on="mark", how="left")
            noise[cell] = marks_table.loc[marks_table["noise"], "mark"].tolist()
        marks_table.insert(0, "cell", cell)
        bins_table.insert(0, "cell", cell)
        group_table = group_attributions(result.values[here], levels[here], marks)
        group_table.insert(0, "cell", cell)
        groups.append(group_table)
        figures.plot_groups(group_table, cell, out / f"{cell}_groups")
        ranked = ranked if ranked is not None else marks_table["mark"].tolist()
        figures.plot_cell_heatmaps(
            bins_table, marks, cell, out / f"{cell}_heatmap", halves=grouping.startswith("upper")
        )
        figures.plot_mark_importance(marks_table, cell, out / f"{cell}_marks", linear)
        with files.atomic_path(out / f"{cell}_mark_importance.csv") as tmp:
            marks_table.to_csv(tmp, index=False)
    with files.atomic_path(out / "groups.csv") as tmp:
        pd.concat(groups, ignore_index=True).to_csv(tmp, index=False)
    probability = 1 / (1 + np.exp(-result.log_odds))
    shown = np.flatnonzero(np.isin(gene_ids, genes)) if genes else np.argsort(-result.log_odds)[:gene_figures]
    for i in shown[: max(gene_figures, len(genes or []))]:
        figures.plot_gene(raw[i], result.values[i], marks, gene_ids[i], cell_of[i], float(probability[i]),
                          out / _file_name(f"gene_{gene_ids[i]}"))  # fmt: skip
    return {
        "genes": int(len(gene_ids)),
        "cells": list(dict.fromkeys(cell_of)),
        "ranked_marks": ranked,
        "grouping": grouping,
        # marks whose shuffling across genes does not lower the model's AUROC (None: one class only)
        "noise_marks": {cell: noise.get(cell) for cell in dict.fromkeys(cell_of)},
        "median_abs_delta": None if result.delta is None else float(np.median(np.abs(result.delta))),
    }


def _file_name(name: str) -> str:
    """``name`` as a plain file name: characters other than letters, digits, '.', '_', '-' become '_'
    (gene ids come from data files and could hold '/')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:150]
