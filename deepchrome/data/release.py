"""Readers for the DeepChrome/AttentiveChrome release, wider-window matrices and expression tables.

Release layout: ``ROOT/<cell>/classification/{train,valid,test}.csv``, one row per gene and bin::

    gene_id,bin_id,H3K27me3,H3K36me3,H3K4me1,H3K4me3,H3K9me3,label

normally without a header. Every check below reports the file and the 1-based line at fault.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from deepchrome.data.csv_text import constant, general_float_slots, integer_slots, join_slots
from deepchrome.data.signals import DEEPCHROME_MARKS, SPLITS, HistoneSignals, normalize_gene_id
from deepchrome.errors import DataFormatError, DeepChromeError
from deepchrome.files import atomic_path
from deepchrome.names import check_name, is_plain_name

RELEASE_COLUMNS: tuple[str, ...] = ("gene_id", "bin_id", *DEEPCHROME_MARKS, "label")
#: The largest mark value a reader accepts: counts are stored as uint16/int32 (int32 beyond 65,535).
MAX_VALUE = int(np.iinfo(np.int32).max)


def split_path(root: str | os.PathLike, cell: str, split: str) -> Path:
    """Path of one split file in the release layout: ``root/cell/classification/split.csv``.

    Raises
    ------
    DeepChromeError
        If ``cell`` or ``split`` is not a plain name (see :mod:`deepchrome.names`): a name like
        ``../x`` would leave ``root``.
    """
    check_name(cell, "cell", "cell name")
    check_name(split, "split", "split name")
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
    return sorted(
        p.name for p in root.iterdir() if is_plain_name(p.name) and (p / "classification" / "train.csv").is_file()
    )


def not_utf8_error(path: Path) -> DataFormatError:
    """The error for a text file (``.gz`` compressed or not) that is not UTF-8, naming the first line that is not."""
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return DataFormatError(
                    f"{path}:{number}: not UTF-8 text (byte 0x{line[exc.start]:02x} at column {exc.start + 1}); "
                    "save the file as UTF-8"
                )
    return DataFormatError(f"{path}: not UTF-8 text; save the file as UTF-8")


def _first_line(path: Path) -> str:
    """The first line of a text file, without its line ending."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readline().rstrip("\r\n")
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None


def _read_table(path: Path, header_lines: int, sep: str = ",", **kwargs) -> pd.DataFrame:
    """``pandas.read_csv`` with its errors turned into one-line :class:`DataFormatError`."""
    try:
        return pd.read_csv(path, sep=sep, engine="c", **kwargs)
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: no data rows") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataFormatError(f"{path}:{_parser_message(exc, header_lines, sep)}") from None


def _check_names(path: Path, names: list[str]) -> None:
    """Refuse empty or repeated column names in a header line."""
    seen: set[str] = set()
    for name in names:
        if not name:
            raise DataFormatError(f"{path}:1: header has an empty column name ({','.join(names)})")
        if name in seen:
            raise DataFormatError(f"{path}:1: column {name} appears twice in the header; give every mark one column")
        seen.add(name)


def _numeric(
    path: Path, frame: pd.DataFrame, columns: list, names: list[str], line_of: Callable[[int], int]
) -> np.ndarray:
    """``frame[columns]`` (shown as ``names``) as one numeric array [rows, columns], or an error at the first text."""
    for column, name in zip(columns, names, strict=True):
        series = frame[column]
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            row = int(np.argmax(pd.to_numeric(series, errors="coerce").isna().to_numpy()))
            raise DataFormatError(f"{path}:{line_of(row)}: field {name} is {series.iloc[row]!r}, expected a number")
    return frame[columns].to_numpy()


def _check_mark_values(path: Path, values: np.ndarray, marks: tuple[str, ...], line_of: Callable[[int], int]) -> None:
    """Mark values [rows, marks] must be finite, >= 0 and at most :data:`MAX_VALUE` (the int32 storage)."""
    checks: list[tuple[np.ndarray, Callable[[str, str], str]]] = [
        (~np.isfinite(values), lambda value, mark: f"field {mark} is {value}, expected a finite number"),
        (values < 0, lambda value, mark: f"negative mark value {value} in field {mark}, expected counts >= 0"),
        (
            values > MAX_VALUE,
            lambda value, mark: f"field {mark} is {value}, above {MAX_VALUE:,}, the largest mark value stored",
        ),
    ]
    for bad, message in checks:
        if bad.any():
            row = int(np.argmax(bad.any(axis=1)))
            column = int(np.argmax(bad[row]))
            value = values[row, column].item()
            shown = str(value) if isinstance(value, int) else f"{value:g}"
            raise DataFormatError(f"{path}:{line_of(row)}: {message(shown, marks[column])}")


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
        names = [n.strip() for n in _first_line(path).split(",")]
        if len(names) < 4:
            raise DataFormatError(f"{path}:1: header has {len(names)} fields, expected at least 4")
        _check_names(path, names)
        marks = tuple(names[2:-1])
    n_fields = len(marks) + 3
    columns = ["gene_id", "bin_id", *marks, "label"]
    frame = _read_table(
        path,
        int(header),
        header=None,
        skiprows=int(header),
        names=list(range(n_fields)),
        dtype={0: str},
        skip_blank_lines=False,
    )
    if len(frame) == 0:
        raise DataFormatError(f"{path}: no data rows")

    def line_of(row: int) -> int:
        return row + 1 + int(header)

    missing = frame.isna().to_numpy()
    if missing.any():
        row = int(np.argmax(missing.any(axis=1)))
        raise DataFormatError(
            f"{path}:{line_of(row)}: expected {n_fields} comma-separated fields ({','.join(columns)}), "
            "found a missing value"
        )
    numeric = _numeric(path, frame, list(range(1, n_fields)), columns[1:], line_of)
    gene_col = frame[0].to_numpy()
    bins = numeric[:, 0]
    values = numeric[:, 1:-1]
    labels = numeric[:, -1]

    _check_mark_values(path, values, marks, line_of)
    bad_label = (labels != 0) & (labels != 1)
    if bad_label.any():
        row = int(np.argmax(bad_label))
        raise DataFormatError(f"{path}:{line_of(row)}: label is {labels[row].item()!r}, expected 0 or 1")

    # Genes are contiguous blocks of rows; a block starts where the gene id changes.
    starts = np.flatnonzero(np.r_[True, gene_col[1:] != gene_col[:-1]])
    sizes = np.diff(np.r_[starts, len(frame)])
    n_bins = int(sizes[0])
    position = np.arange(len(frame)) - np.repeat(starts, sizes)
    wrong_bin = bins != position + 1
    if wrong_bin.any():
        row = int(np.argmax(wrong_bin))
        raise DataFormatError(
            f"{path}:{line_of(row)}: gene {gene_col[row]} has bin_id {bins[row].item()}, "
            f"expected {position[row] + 1} (bins must run 1..N contiguously and in order)"
        )
    if (sizes != n_bins).any():
        block = int(np.argmax(sizes != n_bins))
        row = int(starts[block])
        raise DataFormatError(
            f"{path}:{line_of(row)}: gene {gene_col[row]} has {sizes[block]} bins, "
            f"expected {n_bins} like the first gene"
        )
    gene_ids = gene_col[starts]
    unique, first_index, counts = np.unique(gene_ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        gene = unique[np.argmax(counts > 1)]
        blocks = np.flatnonzero(gene_ids == gene)
        raise DataFormatError(
            f"{path}:{line_of(int(starts[blocks[1]]))}: gene {gene} appears again "
            f"(first at line {line_of(int(starts[blocks[0]]))}), expected unique genes"
        )
    per_gene_labels = labels.reshape(-1, n_bins)
    varying = (per_gene_labels != per_gene_labels[:, :1]).any(axis=1)
    if varying.any():
        block = int(np.argmax(varying))
        offset = int(np.argmax(per_gene_labels[block] != per_gene_labels[block, 0]))
        row = int(starts[block]) + offset
        raise DataFormatError(
            f"{path}:{line_of(row)}: label of gene {gene_ids[block]} changes within "
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


def _parser_message(exc: Exception, header_lines: int, sep: str = ",") -> str:
    """``LINE: what`` from a pandas parser error (pandas counts data lines from 1)."""
    import re

    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if not match:
        return " cannot parse: " + " ".join(str(exc).split())
    line = int(match.group(2)) + header_lines
    kind = "tab" if sep == "\t" else "comma"
    return f"{line}: expected {match.group(1)} {kind}-separated fields, found {match.group(3)}"


def _compact_dtype(values: np.ndarray) -> np.ndarray:
    """Integers stay integers (uint16, or int32 when larger); fractions become float32.

    Readers check values first (:func:`_check_mark_values`): finite, >= 0 and at most
    :data:`MAX_VALUE`, so every value fits the dtype chosen here.
    """
    if np.issubdtype(values.dtype, np.integer) or np.array_equal(values, np.floor(values)):
        top = values.max(initial=0)
        if top <= np.iinfo(np.uint16).max:
            return values.astype(np.uint16)
        if top <= MAX_VALUE:
            return values.astype(np.int32)
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
        Naming the file and line, if the file is missing, not UTF-8, has fewer than two columns,
        no data rows, a missing gene id, a value that is not a finite number, or a duplicated gene.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: expression table not found")
    sep = "\t" if path.suffix in {".tsv", ".tab", ".txt"} else ","
    first = _first_line(path).split(sep)
    if len(first) < 2:
        raise DataFormatError(f"{path}:1: expected 2 columns gene_id{sep}value")
    try:
        float(first[1])
        header = None
    except ValueError:
        header = 0
    skipped = int(header is not None)
    frame = _read_table(path, skipped, sep=sep, header=header, usecols=[0, 1], dtype={0: str})
    if len(frame) == 0:
        raise DataFormatError(f"{path}: no data rows")
    frame.columns = ["gene_id", "value"]
    no_id = frame["gene_id"].isna().to_numpy()
    if no_id.any():
        raise DataFormatError(f"{path}:{int(np.argmax(no_id)) + 1 + skipped}: missing gene id")
    values = pd.to_numeric(frame["value"], errors="coerce")
    if values.isna().any():
        row = int(np.argmax(values.isna().to_numpy()))
        raw = frame["value"].iloc[row]
        shown = "is missing" if pd.isna(raw) else f"{raw!r} is not a number"
        raise DataFormatError(f"{path}:{row + 1 + skipped}: value {shown}")
    infinite = ~np.isfinite(values.to_numpy(dtype=np.float64))
    if infinite.any():
        row = int(np.argmax(infinite))
        raise DataFormatError(f"{path}:{row + 1 + skipped}: value {values.iloc[row]:g} is not a finite number")
    ids = frame["gene_id"].map(normalize_gene_id)
    duplicated = ids.duplicated().to_numpy()
    if duplicated.any():
        row = int(np.argmax(duplicated))
        raise DataFormatError(f"{path}:{row + 1 + skipped}: gene {frame['gene_id'].iloc[row]} appears twice")
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
    names = [n.strip() for n in _first_line(path).split(",")]
    _check_names(path, names)
    missing = [m for m in marks if m not in names[1:]]
    if missing:
        raise DataFormatError(f"{path}:1: missing mark column(s) {', '.join(missing)} (header: {', '.join(names)})")
    frame = _read_table(
        path, 1, header=None, skiprows=1, names=list(range(len(names))), dtype={0: str}, skip_blank_lines=False
    )
    if len(frame) == 0:
        raise DataFormatError(f"{path}: no data rows")

    def line_of(row: int) -> int:
        return row + 2

    columns = [names.index(m) for m in marks]
    absent = frame[[0, *columns]].isna().to_numpy()
    if absent.any():
        row = int(np.argmax(absent.any(axis=1)))
        raise DataFormatError(
            f"{path}:{line_of(row)}: expected {len(names)} comma-separated fields, found a missing value"
        )
    values = _numeric(path, frame, columns, list(marks), line_of)
    _check_mark_values(path, values, marks, line_of)
    key = frame[0].str.rsplit("_", n=1, expand=True)
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
            f"{path}:{line_of(int(np.argmax(wrong)))}: bins must run 1..{width} contiguously and in order "
            "for every gene"
        )
    values = values.reshape(len(starts), width, len(marks))
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
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        if tuple(signals.marks) != DEEPCHROME_MARKS:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator=newline).writerow(["gene_id", "bin_id", *signals.marks, "label"])
            handle.write(buffer.getvalue().encode("utf-8"))
        for start in range(0, n_genes, genes_per_chunk):
            stop = min(start + genes_per_chunk, n_genes)
            genes = (gene_bytes[start:stop], gene_used[start:stop])
            handle.write(_release_rows(genes, bin_slots, values[start:stop], signals.labels[start:stop], newline))


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
    "not_utf8_error",
    "read_expression_table",
    "read_release_csv",
    "read_wide_matrix",
    "split_path",
    "write_release_csv",
]
