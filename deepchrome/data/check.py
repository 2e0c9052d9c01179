"""``deepchrome data check``: validate a release folder and summarize each cell."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from deepchrome.data.cache import load_split
from deepchrome.data.release import list_cells, read_release_csv, split_path
from deepchrome.data.signals import SPLITS
from deepchrome.errors import DeepChromeError


def check_release(root: str | os.PathLike, cells: list[str] | None = None, use_cache: bool = True) -> pd.DataFrame:
    """Validate every split file of every cell under ``root``.

    Returns
    -------
    pandas.DataFrame
        One row per cell: genes per split, bins, marks, positive-label fraction per split.

    Raises
    ------
    DeepChromeError
        At the first malformed file (the message names file, line and what was expected), for a
        missing split file, or for cells with other marks or bin counts than the first.
    """
    available = list_cells(root)
    if not available:
        raise DeepChromeError(f"{root}: no <cell>/classification/train.csv found")
    unknown = [c for c in cells or [] if c not in available]
    if unknown:
        raise DeepChromeError(f"cell(s) {', '.join(unknown)} not in {root} (available: {', '.join(available)})")
    rows = []
    reference = None
    for cell in cells or available:
        row: dict = {"cell": cell}
        for split in SPLITS:
            if not split_path(root, cell, split).is_file():
                raise DeepChromeError(f"{split_path(root, cell, split)}: file not found")
            if use_cache:
                signals = load_split(root, cell, split)
            else:
                signals = read_release_csv(split_path(root, cell, split), cell, split)
            shape = (signals.marks, signals.n_bins)
            if reference is None:
                reference = shape
            elif shape != reference:
                raise DeepChromeError(
                    f"{split_path(root, cell, split)}: {len(shape[0])} marks x {shape[1]} bins, "
                    f"expected {len(reference[0])} marks x {reference[1]} bins like the first file"
                )
            row[f"{split}_genes"] = signals.n_genes
            row[f"{split}_positive"] = round(float(np.mean(signals.labels)), 3)
        row["bins"] = reference[1]
        row["marks"] = ",".join(reference[0])
        rows.append(row)
    return pd.DataFrame(rows)
