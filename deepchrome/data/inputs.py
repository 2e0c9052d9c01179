"""Cells -> model input: the one way every command turns release data into network input.

Training (the DataModule), prediction from a loaded checkpoint, attributions and the GAN's
visualizations all load cells here: the cells are checked against the release, the marks are
selected in the order the model expects, the bins must agree, and the model's stored transform
is applied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from deepchrome.data.cache import load_split
from deepchrome.data.example import resolve_root
from deepchrome.data.release import list_cells
from deepchrome.data.signals import HistoneSignals
from deepchrome.data.transform import SignalTransform
from deepchrome.errors import DeepChromeError


@dataclass
class StageData:
    """Signals of one stage, concatenated over cells.

    ``signals`` [genes, marks, bins] (compact dtype), ``labels`` [genes], ``cell_index`` [genes]
    into ``cells``, ``gene_ids`` [genes], ``marks`` in column order.
    """

    signals: np.ndarray
    labels: np.ndarray
    cell_index: np.ndarray
    gene_ids: np.ndarray
    cells: list[str]
    marks: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def cell_of_gene(self) -> np.ndarray:
        """The cell name of every gene [genes]."""
        return np.asarray(self.cells)[self.cell_index]


def check_cells(root: str | os.PathLike, cells: list[str], field: str = "cells") -> list[str]:
    """The cells under ``root``; raise naming ``field`` if one of ``cells`` is not there."""
    available = list_cells(resolve_root(root))
    unknown = [c for c in cells if c not in available]
    if unknown:
        raise DeepChromeError(
            f"{field}: cell(s) {', '.join(unknown)} not in {root} (available: {', '.join(available)})"
        )
    return available


def load_cells(
    root: str | os.PathLike,
    cells: list[str],
    split: str,
    marks: list[str] | tuple[str, ...] | None = None,
    n_bins: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    labels: bool = True,
) -> list[HistoneSignals]:
    """One split of several cells, marks selected and ordered as ``marks``, bins checked.

    Parameters
    ----------
    marks
        Marks in model order (``None``: the first cell's marks, which the others must have).
    n_bins
        Required bins per gene (``None``: the first cell's).
    labels
        Require labels (every split of the release has them).

    Raises
    ------
    DeepChromeError
        For unknown cells, missing marks, other bin counts or missing labels, naming the cell.
    """
    root = resolve_root(root)
    parts = []
    for cell in cells:
        signals = load_split(root, cell, split, cache_dir=cache_dir)
        wanted = marks if marks is not None else (parts[0].marks if parts else signals.marks)
        signals = signals.select_marks(list(wanted))
        expected = n_bins if n_bins is not None else (parts[0].n_bins if parts else signals.n_bins)
        if signals.n_bins != expected:
            raise DeepChromeError(f"cell {cell} {split} has {signals.n_bins} bins, expected {expected}")
        if labels and signals.labels is None:
            raise DeepChromeError(f"cell {cell} {split} has no labels")
        parts.append(signals)
    return parts


def concatenate(parts: list[HistoneSignals]) -> StageData:
    """Concatenate cells' signals into one :class:`StageData` (cells in the given order)."""
    if not parts:
        raise DeepChromeError("no cells to load")
    return StageData(
        signals=np.concatenate([p.signals for p in parts]),
        labels=np.concatenate([np.asarray(p.labels, dtype=np.int64) for p in parts]),
        cell_index=np.concatenate([np.full(p.n_genes, i) for i, p in enumerate(parts)]),
        gene_ids=np.concatenate([np.asarray(p.gene_ids) for p in parts]),
        cells=[p.cell for p in parts],
        marks=parts[0].marks,
    )


def model_input(signals: np.ndarray, transform: SignalTransform, chunk: int = 8192) -> torch.Tensor:
    """Raw signals [genes, marks, bins] -> transformed float32 model input [genes, marks, bins]."""
    pieces = [
        transform(torch.from_numpy(np.asarray(signals[start : start + chunk], dtype=np.float32)))
        for start in range(0, len(signals), chunk)
    ]
    if not pieces:
        return torch.zeros((0, *signals.shape[1:]), dtype=torch.float32)
    return torch.cat(pieces)
