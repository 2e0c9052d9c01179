"""The one container every reader returns and every consumer takes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from deepchrome.errors import DeepChromeError

#: The five marks of the DeepChrome release, in the release's column order.
DEEPCHROME_MARKS: tuple[str, ...] = ("H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3")

SPLITS: tuple[str, ...] = ("train", "valid", "test")


def normalize_gene_id(gene_id: str) -> str:
    """Return the release's short form of an Ensembl gene id.

    The DeepChrome release writes ``ENSG00000130749`` as ``130749``; expression tables keep the
    full id, sometimes with a version suffix. Both map to ``130749``; other ids pass unchanged.

    Parameters
    ----------
    gene_id
        Any gene identifier.
    """
    gid = str(gene_id).strip()
    if gid.upper().startswith("ENSG"):
        gid = gid[4:].split(".", 1)[0]
        gid = gid.lstrip("0") or "0"
    return gid


@dataclass
class HistoneSignals:
    """Histone-mark signals around the TSS of a set of genes in one cell type.

    Attributes
    ----------
    signals
        Array [genes, marks, bins]. Read counts stay integer (uint16/int32); signals derived from
        coverage (bigWig means) are float32.
    labels
        Array [genes] of 0/1 (1 = expression above the cell's median), or ``None`` if unknown.
    gene_ids
        Array [genes] of gene identifiers (strings).
    marks
        Mark names, in the order of the ``marks`` axis.
    cell
        Cell-type name, e.g. ``E003``.
    split
        ``train``, ``valid``, ``test`` or another name (``all`` for unsplit data).
    expression
        Optional array [genes] of expression values (regression targets); NaN where unknown.
    bin_size
        Bin width in base pairs.
    window
        Half-width of the window around the TSS in base pairs (bins cover ``-window..+window``).
    """

    signals: np.ndarray
    labels: np.ndarray | None
    gene_ids: np.ndarray
    marks: tuple[str, ...] = DEEPCHROME_MARKS
    cell: str = ""
    split: str = "all"
    expression: np.ndarray | None = None
    bin_size: int = 100
    window: int = 5000
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.marks = tuple(self.marks)
        if self.signals.ndim != 3:
            raise ValueError(f"signals must be [genes, marks, bins], got shape {self.signals.shape}")
        n_genes, n_marks, _ = self.signals.shape
        if n_marks != len(self.marks):
            raise ValueError(f"signals have {n_marks} marks but {len(self.marks)} mark names")
        if len(self.gene_ids) != n_genes:
            raise ValueError(f"{len(self.gene_ids)} gene ids for {n_genes} genes")
        if self.labels is not None and len(self.labels) != n_genes:
            raise ValueError(f"{len(self.labels)} labels for {n_genes} genes")
        if self.expression is not None and len(self.expression) != n_genes:
            raise ValueError(f"{len(self.expression)} expression values for {n_genes} genes")

    @property
    def n_genes(self) -> int:
        """Number of genes."""
        return int(self.signals.shape[0])

    @property
    def n_marks(self) -> int:
        """Number of marks."""
        return int(self.signals.shape[1])

    @property
    def n_bins(self) -> int:
        """Number of bins per mark."""
        return int(self.signals.shape[2])

    def select_marks(self, marks: list[str] | tuple[str, ...]) -> HistoneSignals:
        """Return the signals restricted to (and ordered as) ``marks``.

        Raises
        ------
        DeepChromeError
            If a requested mark is not in the data; the message lists the available ones.
        """
        missing = [m for m in marks if m not in self.marks]
        if missing:
            raise DeepChromeError(
                f"mark(s) {', '.join(missing)} not in cell {self.cell or '?'} (available: {', '.join(self.marks)})"
            )
        if tuple(marks) == self.marks:
            return self
        order = [self.marks.index(m) for m in marks]
        return replace(self, signals=self.signals[:, order, :], marks=tuple(marks))

    def central_bins(self, n_bins: int) -> HistoneSignals:
        """Return the ``n_bins`` central bins, e.g. 100 bins of +/-5 kb from 200 bins of +/-10 kb.

        Raises
        ------
        DeepChromeError
            If the data has fewer bins than asked or the difference is odd (no exact centre).
        """
        if n_bins == self.n_bins:
            return self
        extra = self.n_bins - n_bins
        if extra < 0 or extra % 2:
            raise DeepChromeError(f"cannot take {n_bins} central bins from {self.n_bins} bins (cell {self.cell})")
        start = extra // 2
        return replace(
            self,
            signals=self.signals[:, :, start : start + n_bins],
            window=n_bins * self.bin_size // 2,
        )

    def subset(self, index: np.ndarray) -> HistoneSignals:
        """Return the genes at ``index`` (integer positions or a boolean mask)."""
        return replace(
            self,
            signals=self.signals[index],
            labels=None if self.labels is None else self.labels[index],
            gene_ids=self.gene_ids[index],
            expression=None if self.expression is None else self.expression[index],
        )
