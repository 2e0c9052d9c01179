"""Attribution figures, drawn with matplotlib (captum's time-series plot is broken with current
matplotlib). Every figure is written as PNG and PDF with the numbers behind it as CSV."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def save_figure(fig, path: str | os.PathLike, table: pd.DataFrame | None = None) -> list[Path]:
    """Write ``fig`` as ``path.png`` and ``path.pdf`` (and ``table`` as ``path.csv``); close it.

    Each file is written under a temporary name and renamed into place: whole or not at all.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        for suffix in (".png", ".pdf"):
            target = path.with_suffix(suffix)
            written.append(_replace_with(target, lambda tmp: fig.savefig(tmp, dpi=150, bbox_inches="tight")))
    finally:
        plt.close(fig)
    if table is not None:
        written.append(_replace_with(path.with_suffix(".csv"), lambda tmp: table.to_csv(tmp, index=False)))
    return written


def _replace_with(target: Path, write) -> Path:
    # The temporary name keeps the suffix (matplotlib picks the format from it); workers may share a folder.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp{target.suffix}")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def _tss_line(ax, n_bins: int) -> None:
    ax.axvline(n_bins / 2 + 0.5, color="black", lw=0.8, ls="--")


def plot_gene(
    signal: np.ndarray, attribution: np.ndarray, marks, gene_id: str, cell: str, probability: float, path, bin_size=100
) -> list[Path]:
    """Signal (marks x bins) beside attribution (marks x bins) for one gene; TSS dashed.

    Parameters
    ----------
    signal, attribution
        [marks, bins]: the raw signal and its attribution to the log-odds of high.
    """
    n_marks, n_bins = signal.shape
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.5 * n_marks + 2), sharey=True)
    extent = (0.5, n_bins + 0.5, n_marks - 0.5, -0.5)
    image = axes[0].imshow(signal, aspect="auto", cmap="viridis", extent=extent, interpolation="nearest")
    fig.colorbar(image, ax=axes[0], label="signal")
    limit = float(np.abs(attribution).max()) or 1.0
    image = axes[1].imshow(
        attribution, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, extent=extent, interpolation="nearest"
    )
    fig.colorbar(image, ax=axes[1], label="attribution to log-odds of high")
    for ax, title in zip(axes, ("signal", "attribution"), strict=True):
        _tss_line(ax, n_bins)
        ax.set_title(title)
        ax.set_xlabel(f"bin ({bin_size} bp; TSS dashed)")
    axes[0].set_yticks(range(n_marks), list(marks))
    fig.suptitle(f"gene {gene_id} ({cell}), P(high) = {probability:.2f}")
    rows = [(mark, b + 1, signal[m, b], attribution[m, b]) for m, mark in enumerate(marks) for b in range(n_bins)]
    return save_figure(fig, path, pd.DataFrame(rows, columns=["mark", "bin", "signal", "attribution"]))


def plot_cell_heatmaps(bins_table: pd.DataFrame, marks, cell: str, path, halves: bool = False) -> list[Path]:
    """Mark x bin heatmaps of mean attribution for genes predicted high and for genes predicted low
    (``halves``: the upper and lower half of P(high) instead)."""
    groups = [g for g in ("high", "low") if g in set(bins_table["group"])]
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 0.5 * len(marks) + 2), squeeze=False)
    pivots = {
        g: bins_table[bins_table.group == g]
        .pivot(index="mark", columns="bin", values="mean_attribution")
        .loc[list(marks)]
        for g in groups
    }
    limit = max(float(np.abs(p.to_numpy()).max()) for p in pivots.values()) or 1.0
    for number, (ax, group) in enumerate(zip(axes[0], groups, strict=True)):
        values = pivots[group].to_numpy()
        n_bins = values.shape[1]
        image = ax.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                          extent=(0.5, n_bins + 0.5, len(marks) - 0.5, -0.5), interpolation="nearest")  # fmt: skip
        _tss_line(ax, n_bins)
        ax.set_yticks(range(len(marks)), list(marks) if number == 0 else [])
        ax.set_xlabel("bin (TSS dashed)")
        label = (
            {"high": "upper half of P(high)", "low": "lower half of P(high)"}[group] if halves else f"predicted {group}"
        )
        ax.set_title(f"{cell}: genes {label}")
    fig.colorbar(image, ax=axes[0].tolist(), label="mean attribution to log-odds of high")
    return save_figure(fig, path, bins_table)


def plot_mark_importance(marks_table: pd.DataFrame, cell: str, path, linear: pd.DataFrame | None = None) -> list[Path]:
    """Bars of mean |attribution| per mark (standard-error bars over genes), and the linear model's
    per-mark effects beside them when given."""
    panels = 2 if linear is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.5), squeeze=False)
    ax = axes[0][0]
    ax.barh(marks_table["mark"], marks_table["importance"], xerr=marks_table["importance_se"], color="tab:blue")
    ax.invert_yaxis()
    ax.set_xlabel("mean |attribution| per gene")
    ax.set_title(f"{cell}: mark importance")
    table = marks_table.copy()
    if linear is not None:
        merged = marks_table[["mark"]].merge(linear, on="mark")
        colors = ["tab:red" if v > 0 else "tab:gray" for v in merged["linear_effect"]]
        axes[0][1].barh(merged["mark"], merged["linear_effect"], color=colors)
        axes[0][1].invert_yaxis()
        axes[0][1].axvline(0, color="black", lw=0.8)
        axes[0][1].set_xlabel(f"linear model effect on log-odds ({merged['aggregate'].iloc[0]} / scale)")
        axes[0][1].set_title("12-parameter linear model")
        table = table.merge(linear, on="mark", how="left")
    fig.tight_layout()
    return save_figure(fig, path, table)


def plot_groups(groups: pd.DataFrame, cell: str, path) -> list[Path]:
    """Per mark, its mean attribution among genes low vs high in each other mark (intervals over genes).

    ``groups`` is :func:`deepchrome.interpret.attributions.group_attributions`'s table. One panel per
    attributed mark; for each other mark two points (lower and upper tercile) with their intervals,
    filled where the difference's interval excludes 0 (a gate: the mark acts differently by that mark).
    """
    marks = list(dict.fromkeys(groups["mark"]))
    # not sharey: each panel lists the other marks, a different set per panel
    fig, axes = plt.subplots(1, len(marks), figsize=(3.6 * len(marks), 0.45 * len(marks) + 2), squeeze=False)
    for ax, mark in zip(axes[0], marks, strict=True):
        rows = groups[groups["mark"] == mark].reset_index(drop=True)
        for name, offset, color in (("low", -0.15, "tab:blue"), ("high", 0.15, "tab:red")):
            y = np.arange(len(rows)) + offset
            mean = rows[f"mean_{name}"].to_numpy(dtype=float)
            error = np.abs(rows[[f"mean_{name}_ci_low", f"mean_{name}_ci_high"]].to_numpy(dtype=float).T - mean)
            differs = rows["differs"].fillna(False).to_numpy(dtype=bool)
            ax.errorbar(mean, y, xerr=error, fmt="none", ecolor=color, lw=1)
            ax.scatter(mean[differs], y[differs], color=color, zorder=3, label=f"{name} tercile")
            ax.scatter(mean[~differs], y[~differs], facecolor="white", edgecolor=color, zorder=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(rows)), [f"by {b}" for b in rows["by_mark"]])
        ax.invert_yaxis()
        ax.set_title(f"attribution of {mark}", fontsize=9)
        ax.set_xlabel("mean attribution per gene")
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{cell}: attribution among genes low (blue) vs high (red) in another mark; filled: difference's "
                 "95% interval excludes 0", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return save_figure(fig, path, groups)
