"""The data layer: one container, readers, a binary cache, a simulator and the DataModule."""

from deepchrome.data.cache import load_split
from deepchrome.data.release import (
    attach_expression,
    list_cells,
    read_expression_table,
    read_release_csv,
    read_wide_matrix,
    write_release_csv,
)
from deepchrome.data.signals import DEEPCHROME_MARKS, SPLITS, HistoneSignals, normalize_gene_id
from deepchrome.data.simulate import simulate_release


def __getattr__(name: str):
    # The DataModule pulls in Lightning (seconds to import); the readers don't need it.
    if name in ("HistoneDataModule", "SignalTransform"):
        from deepchrome.data import datamodule

        return getattr(datamodule, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEEPCHROME_MARKS",
    "SPLITS",
    "HistoneDataModule",
    "HistoneSignals",
    "SignalTransform",
    "attach_expression",
    "list_cells",
    "load_split",
    "normalize_gene_id",
    "read_expression_table",
    "read_release_csv",
    "read_wide_matrix",
    "simulate_release",
    "write_release_csv",
]
