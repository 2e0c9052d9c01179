"""Readers for the DeepChrome/AttentiveChrome release, wider-window matrices and expression tables.

Release layout: ``ROOT/<cell>/classification/{train,valid,test}.csv``, one row per gene and bin::

    gene_id,bin_id,H3K27me3,H3K36me3,H3K4me1,H3K4me3,H3K9me3,label

normally without a header. Every check below reports the file and the 1-based line at fault.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from deepchrome.data.csv_text import constant, general_float_slots, integer_slots, join_slots
from deepchrome.data.signals import DEEPCHROME_MARKS, SPLITS, HistoneSignals, normalize_gene_id
from deepchrome.errors import DataFormatError, DeepChromeError

RELEASE_COLUMNS: tuple[str, ...] = ("gene_id", "bin_id", *DEEPCHROME_MARKS, "label")


def split_path(root: str | os.PathLike, cell: str, split: str) -> Path:
    """Path of one split file in the release layout: ``root/cell/classification/split.csv``."""
    return Path(root) / cell / "classification" / f"{split}.csv"


def list_cells(root: str | os.PathLike) -> list[str]:
    """Cells under a release root: folders holding ``classification/train.csv``, sorted.

    Raises
    ------
    DeepChromeError
        If ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DeepChromeError(f"data root {root} does not exist or is not a folder")
    return sorted(p.name for p in root.iterdir() if (p / "classification" / "train.csv").is_file())


def _has_header(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
    fields = first.strip().split(",")
    if len(fields) < 2:
        return False
    try:
        float(fields[1])
    except ValueError:
        return True
    return False


def _line_of(row: int, header: bool) -> int:
    return row + 1 + int(header)


def read_release_csv(path: str | os.PathLike, cell: str = "", split: str = "all") -> HistoneSignals:
    """Read and validate one release CSV.

    Parameters
    ----------
    path
        A ``gene_id,bin_id,<marks...>,label`` file, with or without a header line.
    cell, split
        Metadata stored in the result.

    Returns
    -------
    HistoneSignals
        ``signals`` [genes, marks, bins] as uint16 (int32 if counts exceed 65,535; float32 if
        values are fractional), ``labels`` [genes] int64.

    Raises
    ------
    DataFormatError
        Naming the file, the line and what was expected, for: an empty file, a wrong field
        count, a non-numeric or negative value, missing/duplicated/out-of-order bins, unequal bin
        counts, a label that is not 0/1 or varies within a gene, and a gene listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path}: empty file, expected rows of {','.join(RELEASE_COLUMNS)}")
    header = _has_header(path)
    marks = DEEPCHROME_MARKS
    if header:
        with open(path, encoding="utf-8") as handle:
            names = handle.readline().strip().split(",")
        if len(names) < 4:
            raise DataFormatError(f"{path}:1: header has {len(names)} fields, expected at least 4")
        marks = tuple(n.strip() for n in names[2:-1])
    n_fields = len(marks) + 3
    try:
        frame = pd.read_csv(
            path,
            header=None,
            skiprows=int(header),
            names=list(range(n_fields)),
            dtype={0: str},
            engine="c",
            skip_blank_lines=False,
        )
    except pd.errors.ParserError as exc:
        # pandas says "Expected 8 fields in line 5, saw 9" with 1-based data lines.
        raise DataFormatError(f"{path}:{_parser_message(exc, header, n_fields)}") from None
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: no data rows") from None
    if len(frame) == 0:
        raise DataFormatError(f"{path}: no data rows")

    missing = frame.isna().to_numpy()
    if missing.any():
        row = int(np.argmax(missing.any(axis=1)))
        raise DataFormatError(
            f"{path}:{_line_of(row, header)}: expected {n_fields} comma-separated fields "
            f"({','.join(('gene_id', 'bin_id', *marks, 'label'))}), found a missing value"
        )
    numeric = frame.iloc[:, 1:]
    for column in numeric.columns:
        if not pd.api.types.is_numeric_dtype(numeric[column]):
            values = pd.to_numeric(numeric[column], errors="coerce")
            row = int(np.argmax(values.isna().to_numpy()))
            name = ("bin_id", *marks, "label")[column - 1]
            raise DataFormatError(
                f"{path}:{_line_of(row, header)}: field {name} is {numeric[column].iloc[row]!r}, expected a number"
            )
    gene_col = frame[0].to_numpy()
    bins = frame[1].to_numpy()
    values = frame.iloc[:, 2 : 2 + len(marks)].to_numpy()
    labels = frame[n_fields - 1].to_numpy()

    negative = values < 0
    if negative.any():
        row = int(np.argmax(negative.any(axis=1)))
        raise DataFormatError(f"{path}:{_line_of(row, header)}: negative mark value, expected counts >= 0")
    bad_label = (labels != 0) & (labels != 1)
    if bad_label.any():
        row = int(np.argmax(bad_label))
        raise DataFormatError(f"{path}:{_line_of(row, header)}: label is {labels[row].item()!r}, expected 0 or 1")

    # Genes are contiguous blocks of rows; a block starts where the gene id changes.
    starts = np.flatnonzero(np.r_[True, gene_col[1:] != gene_col[:-1]])
    sizes = np.diff(np.r_[starts, len(frame)])
    n_bins = int(sizes[0])
    position = np.arange(len(frame)) - np.repeat(starts, sizes)
    wrong_bin = bins != position + 1
    if wrong_bin.any():
        row = int(np.argmax(wrong_bin))
        raise DataFormatError(
            f"{path}:{_line_of(row, header)}: gene {gene_col[row]} has bin_id {bins[row].item()}, "
            f"expected {position[row] + 1} (bins must run 1..N contiguously and in order)"
        )
    if (sizes != n_bins).any():
        block = int(np.argmax(sizes != n_bins))
        row = int(starts[block])
        raise DataFormatError(
            f"{path}:{_line_of(row, header)}: gene {gene_col[row]} has {sizes[block]} bins, "
            f"expected {n_bins} like the first gene"
        )
    gene_ids = gene_col[starts]
    unique, first_index, counts = np.unique(gene_ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        gene = unique[np.argmax(counts > 1)]
        blocks = np.flatnonzero(gene_ids == gene)
        raise DataFormatError(
            f"{path}:{_line_of(int(starts[blocks[1]]), header)}: gene {gene} appears again "
            f"(first at line {_line_of(int(starts[blocks[0]]), header)}), expected unique genes"
        )
    per_gene_labels = labels.reshape(-1, n_bins)
    varying = (per_gene_labels != per_gene_labels[:, :1]).any(axis=1)
    if varying.any():
        block = int(np.argmax(varying))
        offset = int(np.argmax(per_gene_labels[block] != per_gene_labels[block, 0]))
        row = int(starts[block]) + offset
        raise DataFormatError(
            f"{path}:{_line_of(row, header)}: label of gene {gene_ids[block]} changes within "
            "the gene, expected one label per gene"
        )

    signals = values.reshape(len(starts), n_bins, len(marks)).transpose(0, 2, 1)
    return HistoneSignals(
        signals=np.ascontiguousarray(_compact_dtype(signals)),
        labels=per_gene_labels[:, 0].astype(np.int64),
        gene_ids=gene_ids.astype(str),
        marks=marks,
        cell=cell,
        split=split,
        bin_size=100,
        window=n_bins * 100 // 2,
    )


def _parser_message(exc: Exception, header: bool, n_fields: int) -> str:
    import re

    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if not match:
        return f" cannot parse: {exc}"
    line = int(match.group(2)) + int(header)
    return f"{line}: expected {n_fields} comma-separated fields, found {match.group(3)}"


def _compact_dtype(values: np.ndarray) -> np.ndarray:
    """Integers stay integers (uint16, or int32 when larger); fractions become float32."""
    if np.issubdtype(values.dtype, np.integer) or np.array_equal(values, np.floor(values)):
        top = values.max(initial=0)
        return values.astype(np.uint16 if top <= np.iinfo(np.uint16).max else np.int32)
    return values.astype(np.float32)


def read_expression_table(path: str | os.PathLike) -> pd.Series:
    """Read a ``gene_id,value`` table (CSV or TSV, header optional).

    Returns
    -------
    pandas.Series
        Values indexed by normalized gene id (see :func:`normalize_gene_id`).

    Raises
    ------
    DataFormatError
        If the file is missing, has fewer than two columns, a non-numeric value or a
        duplicated gene.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: expression table not found")
    sep = "\t" if path.suffix in {".tsv", ".tab", ".txt"} else ","
    with open(path, encoding="utf-8") as handle:
        first = handle.readline().rstrip("\n").split(sep)
    if len(first) < 2:
        raise DataFormatError(f"{path}:1: expected 2 columns gene_id{sep}value")
    try:
        float(first[1])
        header = None
    except ValueError:
        header = 0
    frame = pd.read_csv(path, sep=sep, header=header, usecols=[0, 1], dtype={0: str}, engine="c")
    frame.columns = ["gene_id", "value"]
    values = pd.to_numeric(frame["value"], errors="coerce")
    if values.isna().any():
        row = int(np.argmax(values.isna().to_numpy()))
        raise DataFormatError(
            f"{path}:{row + 1 + (header is not None)}: value {frame['value'].iloc[row]!r} is not a number"
        )
    ids = frame["gene_id"].map(normalize_gene_id)
    duplicated = ids.duplicated().to_numpy()
    if duplicated.any():
        row = int(np.argmax(duplicated))
        raise DataFormatError(
            f"{path}:{row + 1 + (header is not None)}: gene {frame['gene_id'].iloc[row]} appears twice"
        )
    return pd.Series(values.to_numpy(dtype=np.float64), index=ids.to_numpy(), name=path.stem)


def attach_expression(
    signals: HistoneSignals, expression: pd.Series, relabel: bool = True
) -> tuple[HistoneSignals, dict[str, int]]:
    """Attach expression values to ``signals`` and optionally derive labels from them.

    Labels are 1 where the value is above the median of the *whole table* (the cell's median, as
    in the release), not of the genes present here.

    Returns
    -------
    signals
        A copy with ``expression`` [genes] set (NaN where the table lacks the gene); with
        ``relabel``, genes missing from the table are dropped and labels recomputed.
    counts
        ``missing_in_table`` (genes here, absent from the table) and ``missing_in_signals``
        (table genes absent here), for reporting.
    """
    ids = np.array([normalize_gene_id(g) for g in signals.gene_ids])
    values = expression.reindex(ids).to_numpy(dtype=np.float64)
    present = ~np.isnan(values)
    counts = {
        "missing_in_table": int((~present).sum()),
        "missing_in_signals": int(len(expression) - present.sum()),
    }
    result = HistoneSignals(**{**signals.__dict__, "expression": values})
    if relabel:
        result = result.subset(present)
        median = float(np.median(expression.to_numpy()))
        result.labels = (result.expression > median).astype(np.int64)
    return result, counts


def read_wide_matrix(
    path: str | os.PathLike,
    n_bins: int | None = 100,
    marks: tuple[str, ...] = DEEPCHROME_MARKS,
    cell: str = "",
    split: str = "all",
) -> HistoneSignals:
    """Read a wider-window matrix such as ``window20kb/E003.train.csv`` and keep its central bins.

    The file has a header ``geneID_name_bin,<marks...>`` and one row per gene and bin, the first
    field being ``ENSG..._NAME_<bin>``. Labels are unknown (``None``): attach an expression table
    with :func:`attach_expression` to set them.

    Parameters
    ----------
    n_bins
        Central bins to keep (100 = +/-5 kb from 200 bins of +/-10 kb); ``None`` keeps all.
    marks
        Output mark order; the file's columns are reordered to it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    frame = pd.read_csv(path, engine="c")
    missing = [m for m in marks if m not in frame.columns]
    if missing:
        raise DataFormatError(
            f"{path}:1: missing mark column(s) {', '.join(missing)} (header: {', '.join(map(str, frame.columns))})"
        )
    key = frame.iloc[:, 0].astype(str).str.rsplit("_", n=1, expand=True)
    if key.shape[1] != 2:
        raise DataFormatError(f"{path}:2: first field must be <gene>_<name>_<bin>")
    genes = key[0].str.split("_", n=1).str[0].to_numpy()
    bins = pd.to_numeric(key[1], errors="coerce").to_numpy()
    starts = np.flatnonzero(np.r_[True, genes[1:] != genes[:-1]])
    sizes = np.diff(np.r_[starts, len(frame)])
    width = int(sizes[0])
    position = np.arange(len(frame)) - np.repeat(starts, sizes)
    wrong = (bins != position + 1) | np.repeat(sizes != width, sizes)
    if wrong.any():
        raise DataFormatError(
            f"{path}:{int(np.argmax(wrong)) + 2}: bins must run 1..{width} contiguously and in order for every gene"
        )
    values = frame[list(marks)].to_numpy().reshape(len(starts), width, len(marks))
    result = HistoneSignals(
        signals=np.ascontiguousarray(_compact_dtype(values.transpose(0, 2, 1))),
        labels=None,
        gene_ids=np.array([normalize_gene_id(g) for g in genes[starts]]),
        marks=marks,
        cell=cell,
        split=split,
        bin_size=100,
        window=width * 50,
    )
    return result if n_bins is None else result.central_bins(n_bins)


#: Rows formatted at a time by :func:`write_release_csv` (about 10 MB of working memory per chunk).
WRITE_CHUNK_ROWS = 65_536


def write_release_csv(signals: HistoneSignals, path: str | os.PathLike) -> None:
    """Write ``signals`` as a release CSV (no header when the marks are the release's five).

    The text is the one pandas' ``to_csv`` writes for the same table (integers as ``str(v)``,
    floats as ``'%.6g' % v``, gene ids quoted by the :mod:`csv` rules, ``os.linesep`` line ends),
    formatted with numpy a chunk of rows at a time (:mod:`deepchrome.data.csv_text`).
    The file is written to a temporary name and renamed, so readers never see half a file.
    A header line is written when the marks differ from the release's, so the reader can name
    them.

    Parameters
    ----------
    signals
        Signals with labels; integer or finite floating-point values.
    path
        The CSV to write; missing folders are created.

    Raises
    ------
    DeepChromeError
        Without labels, for values that are neither integers nor floats, or for NaN/infinite
        values (the release format has no missing values).
    """
    if signals.labels is None:
        raise DeepChromeError(f"cell {signals.cell}: cannot write a release CSV without labels")
    values = signals.signals
    is_float = np.issubdtype(values.dtype, np.floating)
    if not (is_float or np.issubdtype(values.dtype, np.integer)):
        raise DeepChromeError(f"cell {signals.cell}: signals of dtype {values.dtype} cannot be written as numbers")
    if is_float and not np.isfinite(values).all():
        gene = signals.gene_ids[int(np.argmax(~np.isfinite(values).reshape(len(values), -1).all(axis=1)))]
        raise DeepChromeError(
            f"cell {signals.cell}: gene {gene} has NaN or infinite values; the release format has no missing values"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_genes, _, n_bins = values.shape
    newline = os.linesep
    gene_bytes, gene_used = _text_slot(_csv_fields(signals.gene_ids, newline))
    bin_slots = integer_slots(np.arange(1, n_bins + 1))
    genes_per_chunk = max(1, WRITE_CHUNK_ROWS // max(n_bins, 1))
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            if tuple(signals.marks) != DEEPCHROME_MARKS:
                buffer = io.StringIO()
                csv.writer(buffer, lineterminator=newline).writerow(["gene_id", "bin_id", *signals.marks, "label"])
                handle.write(buffer.getvalue().encode("utf-8"))
            for start in range(0, n_genes, genes_per_chunk):
                stop = min(start + genes_per_chunk, n_genes)
                genes = (gene_bytes[start:stop], gene_used[start:stop])
                handle.write(_release_rows(genes, bin_slots, values[start:stop], signals.labels[start:stop], newline))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _release_rows(
    genes: tuple[np.ndarray, np.ndarray],
    bin_slots: list[tuple[np.ndarray, np.ndarray]],
    values: np.ndarray,
    labels: np.ndarray,
    newline: str,
) -> bytes:
    """The CSV lines of some genes: ``gene,bin,<marks...>,label`` per gene and bin.

    Parameters
    ----------
    genes
        The genes' id slot (one row per gene).
    bin_slots
        The slots of ``1..n_bins`` (one row per bin).
    values
        Signals [genes, marks, bins].
    labels
        Labels [genes].
    newline
        Line end.
    """
    n_genes, _, n_bins = values.shape
    rows = n_genes * n_bins
    comma = constant(b",", rows)
    slots = [tuple(np.repeat(part, n_bins, axis=0) for part in genes), comma]
    slots += [tuple(np.tile(part, (n_genes, 1)) for part in slot) for slot in bin_slots]
    is_float = np.issubdtype(values.dtype, np.floating)
    for column in values.transpose(1, 0, 2).reshape(values.shape[1], rows):
        slots += [comma, *(general_float_slots(column) if is_float else integer_slots(column))]
    slots += [comma, *integer_slots(np.repeat(labels, n_bins)), constant(newline.encode(), rows)]
    return join_slots(slots)


def _csv_fields(texts: np.ndarray, newline: str) -> list[bytes]:
    """Each text as the :mod:`csv` module writes it as a field (quoted only where it must be), UTF-8."""
    texts = [str(text) for text in texts]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerows([text, ""] for text in texts)
    if buffer.getvalue() == "".join(f"{text},{newline}" for text in texts):
        return [text.encode("utf-8") for text in texts]  # nothing quoted: the common case
    fields = []
    for text in texts:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([text, ""])
        fields.append(buffer.getvalue()[: -len(newline) - 1].encode("utf-8"))
    return fields


def _text_slot(fields: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Byte strings as a left-aligned slot: uint8 [n, longest] and the mask of bytes in use."""
    lengths = np.array([len(field) for field in fields], dtype=np.int64)
    width = max(int(lengths.max(initial=0)), 1)
    chars = np.array(fields, dtype=f"S{width}").view(np.uint8).reshape(len(fields), width)
    return chars, np.arange(width) < lengths[:, None]


__all__ = [
    "RELEASE_COLUMNS",
    "SPLITS",
    "attach_expression",
    "list_cells",
    "read_expression_table",
    "read_release_csv",
    "read_wide_matrix",
    "split_path",
    "write_release_csv",
]
