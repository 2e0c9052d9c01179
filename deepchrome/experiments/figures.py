"""Figures of a cross-cell experiment (PNG + PDF; the numbers are in results.csv)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepchrome.interpret.figures import plt, save_figure


def transfer_matrix(results: pd.DataFrame, model: str) -> pd.DataFrame:
    """Train cell x test cell test AUROC (diagonal from ``single``), ordered by clustering."""
    rest = results[(results.family == "test_on_rest") & (results.model == model)]
    single = results[(results.family == "single") & (results.model == model)]
    cells = sorted(set(rest.target) | set(rest.test_cell) | set(single.target))
    matrix = pd.DataFrame(np.nan, index=cells, columns=cells)
    for row in rest.itertuples():
        matrix.loc[row.target, row.test_cell] = row.test_auroc
    for row in single.itertuples():
        matrix.loc[row.target, row.target] = row.test_auroc
    if len(cells) > 2:
        from scipy.cluster.hierarchy import leaves_list, linkage

        filled = matrix.apply(lambda r: r.fillna(r.mean()), axis=1).fillna(0.5).to_numpy()
        order = leaves_list(linkage(filled, method="average"))
        matrix = matrix.iloc[order, order]
    return matrix


def plot_all(results: pd.DataFrame, correlation: pd.DataFrame, out: Path) -> None:
    """Write every figure the results allow: transfer heatmap, AUROC vs correlation, learning
    curves, family bars."""
    for model in results.model.unique():
        if ((results.family == "test_on_rest") & (results.model == model)).any():
            matrix = transfer_matrix(results, model)
            fig, ax = plt.subplots(figsize=(1 + 0.5 * len(matrix), 0.8 + 0.45 * len(matrix)))
            image = ax.imshow(
                matrix.to_numpy(dtype=float), cmap="viridis", vmin=np.nanmin(matrix.to_numpy(dtype=float)), vmax=1
            )
            ax.set_xticks(range(len(matrix)), matrix.columns, rotation=90)
            ax.set_yticks(range(len(matrix)), matrix.index)
            ax.set_xlabel("test cell")
            ax.set_ylabel("training cell")
            ax.set_title(f"{model}: test AUROC (train x test)")
            fig.colorbar(image, ax=ax)
            save_figure(fig, out / f"test_on_rest_{model}", matrix.reset_index(names="train_cell"))
    rest = results[results.family == "test_on_rest"]
    if len(rest):
        fig, ax = plt.subplots(figsize=(5, 4))
        for model, group in rest.groupby("model"):
            ax.scatter(group.correlation, group.test_auroc, label=model, alpha=0.7)
        ax.set_xlabel("correlation between training and test cell")
        ax.set_ylabel("test AUROC")
        ax.legend()
        save_figure(fig, out / "auroc_vs_correlation")
    size = results[results.family == "size"]
    if len(size):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        for ax, curve, label in zip(axes, ("genes", "cells"), ("fraction of the target's training genes",
                                                                 "number of training cells"), strict=True):  # fmt: skip
            for model, group in size[size.curve == curve].groupby("model"):
                mean = group.groupby("x")["test_auroc"].agg(["mean", "std"]).reset_index()
                ax.errorbar(mean["x"], mean["mean"], yerr=mean["std"].fillna(0), marker="o", label=model, capsize=3)
            ax.set_xlabel(label)
            ax.set_ylabel("test AUROC (mean over targets)")
            ax.legend()
        fig.tight_layout()
        save_figure(fig, out / "learning_curves")
    families = results[(results.family != "test_on_rest") & ((results.family != "size") |
                        ((results.train_fraction == 1.0) & (results.n_train_cells == 1)))]  # fmt: skip
    if len(families):
        table = families.groupby(["family", "model", "selection"])["test_auroc"].agg(["mean", "std"]).reset_index()
        labels = [f"{r.family}\n{r.selection}" if r.family != "single" else "single" for r in table.itertuples()]
        fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(table)), 4))
        colors = {m: f"C{i}" for i, m in enumerate(table.model.unique())}
        ax.bar(range(len(table)), table["mean"], yerr=table["std"].fillna(0), capsize=3,
               color=[colors[m] for m in table.model])  # fmt: skip
        ax.set_xticks(range(len(table)), labels, rotation=90, fontsize=7)
        low = float(np.nanmin(table["mean"] - table["std"].fillna(0)))
        ax.set_ylim(max(0, low - 0.05), 1)
        ax.set_ylabel("test AUROC (mean over targets)")
        for model, color in colors.items():
            ax.bar([], [], color=color, label=model)
        ax.legend()
        save_figure(fig, out / "families", table)
