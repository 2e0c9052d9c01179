"""bigWig tracks -> TSS-centred matrices -> the release layout (``deepchrome prepare``).

Each gene's window is ``[reference - window, reference + window)`` around its TSS reference (see
:mod:`deepchrome.data.annotation`), cut from one ``values(..., numpy=True)`` call per run of
overlapping windows (dense TSS sets decode each base once) and reshaped into bins. Bin statistics:
``mean`` of covered bases (bases without data are ignored, like deepTools' ``--averageTypeBins
mean``; NaN when no base is covered), ``sum`` and ``max``. Orientation ``transcript`` reverses
minus-strand windows so bin 1 is always upstream (deepTools); ``genomic`` keeps genomic order
(what the public DeepChrome release does).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pandas as pd

from deepchrome.data.annotation import TSSTable, read_tss
from deepchrome.data.release import (
    MAX_VALUE,
    attach_expression,
    not_utf8_error,
    read_expression_table,
    write_release_csv,
)
from deepchrome.data.signals import SPLITS, HistoneSignals
from deepchrome.errors import DataFormatError, DeepChromeError
from deepchrome.files import check_memory, check_not_replacing, check_out_folder, staged_output
from deepchrome.names import check_name

log = logging.getLogger(__name__)
STATS = ("mean", "sum", "max")
ORIENTATIONS = ("transcript", "genomic")
SPLIT_METHODS = ("random", "chromosome", "lists")


def _canonical(chrom: str) -> str:
    name = chrom[3:] if chrom.lower().startswith("chr") else chrom
    return "MT" if name.upper() in ("M", "MT") else name


def resolve_chrom(chrom: str, available: dict[str, int]) -> str | None:
    """The name ``chrom`` has in a bigWig (``chr9`` vs ``9``, ``chrM`` vs ``MT``), or ``None``."""
    if chrom in available:
        return chrom
    wanted = _canonical(chrom)
    for name in available:
        if _canonical(name) == wanted:
            return name
    return None


@contextlib.contextmanager
def _quiet_c_stderr() -> Iterator[None]:
    """Silence what C code writes to file descriptor 2 (libBigWig prints its own lines on bad files)."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr descriptor to silence
        yield
        return
    sys.stderr.flush()
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _open_bigwig(path: str | os.PathLike):
    import pyBigWig

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: bigWig file not found")
    try:
        with _quiet_c_stderr():
            handle = pyBigWig.open(str(path))
    except RuntimeError:
        handle = None
    if handle is None or not handle.isBigWig():
        raise DataFormatError(f"{path}: not a readable bigWig file (corrupted, truncated or another format)")
    return handle


def read_chrom_sizes(path: str | os.PathLike) -> dict[str, int]:
    """Read a ``chrom<TAB>size`` file (UCSC ``chrom.sizes``).

    Raises
    ------
    DataFormatError
        Naming the file (and line) if it is missing, not UTF-8 or a line is not ``chrom size``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: chromosome sizes file not found")
    sizes = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) < 2 or not fields[1].isdigit():
                    raise DataFormatError(f"{path}:{number}: expected 'chrom size'")
                sizes[fields[0]] = int(fields[1])
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None
    if not sizes:
        raise DataFormatError(f"{path}: no 'chrom size' lines")
    return sizes


def check_binning(window: int, bin_size: int) -> int:
    """Check ``--window`` and ``--bin-size`` and return the number of bins, ``2 * window / bin_size``.

    Raises
    ------
    DeepChromeError
        Unless both are positive integers and the window is a multiple of the bin size (so the
        TSS falls on a bin boundary).
    """
    for name, value in (("--window", window), ("--bin-size", bin_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise DeepChromeError(f"{name} {value}: must be a positive whole number of base pairs")
    check_memory(256 * 2 * window * 4 * 4, f"--window {window}")  # a chunk of 256 genes' bases, float32, per worker
    if window % bin_size:
        raise DeepChromeError(
            f"--window {window} is not a multiple of --bin-size {bin_size}: the TSS must fall on a bin "
            f"boundary (e.g. --window {max(1, round(window / bin_size)) * bin_size})"
        )
    return 2 * window // bin_size


def check_assemblies(tracks: dict[str, str], chrom_sizes: dict[str, int] | None = None) -> dict[str, int]:
    """Refuse bigWigs whose chromosome sizes disagree with each other or with ``chrom_sizes``.

    Returns
    -------
    dict
        Chromosome sizes of the first track.

    Raises
    ------
    DeepChromeError
        Naming both files (or the sizes file), the chromosome and both sizes.
    """
    reference_name, reference = ("--chrom-sizes", chrom_sizes) if chrom_sizes else (None, None)
    first_sizes = None
    for mark, path in tracks.items():
        handle = _open_bigwig(path)
        sizes = dict(handle.chroms())
        handle.close()
        first_sizes = first_sizes or sizes
        if reference is None:
            reference_name, reference = f"{path} ({mark})", sizes
            continue
        for chrom, size in sizes.items():
            other = resolve_chrom(chrom, reference)
            if other is not None and reference[other] != size:
                raise DeepChromeError(
                    f"bigWigs disagree on chromosome sizes (different assemblies?): {chrom} is {size:,} bp in "
                    f"{path} ({mark}) but {reference[other]:,} bp in {reference_name}"
                )
    return first_sizes or {}


def _bin_statistic(values: np.ndarray, stat: str) -> np.ndarray:
    """Bin statistic over the last axis, ignoring NaN (uncovered bases); NaN where a bin has none.

    ``mean`` and ``sum`` give exactly ``np.nanmean``/``np.nansum`` of the values in double precision
    (the same sum over the same zero-filled array), without their extra copies.
    """
    if stat == "max":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins are expected: NaN is the answer
            return np.nanmax(values.astype(np.float64), axis=-1)
    missing = np.isnan(values)
    total = np.where(missing, np.float64(0), values).sum(axis=-1)  # accumulate in double precision, like deepTools
    if stat == "sum":
        return total
    count = values.shape[-1] - np.count_nonzero(missing, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


#: Most bases read with one ``values`` call: overlapping windows are read together up to this span.
READ_SPAN = 1 << 22


def _overlapping_runs(
    windows: list[tuple[str, int, int]], width: int
) -> list[tuple[str, int, int, list[tuple[int, int]]]]:
    """Group sorted windows into runs of overlapping ones, each read from the bigWig once.

    Parameters
    ----------
    windows
        ``(chromosome, start, gene index)`` sorted by chromosome and start.
    width
        Window width in bases.

    Returns
    -------
    list
        ``(chromosome, run start, run end, [(window start, gene index), ...])``; a run spans at most
        ``max(READ_SPAN, width)`` bases, so dense TSS sets read each base once instead of once per
        window and sparse ones read exactly their windows.
    """
    runs: list[tuple[str, int, int, list[tuple[int, int]]]] = []
    for name, start, index in windows:
        if runs and runs[-1][0] == name and start < runs[-1][2] and start + width - runs[-1][1] <= READ_SPAN:
            last = runs[-1]
            runs[-1] = (name, last[1], start + width, last[3])
        else:
            runs.append((name, start, start + width, []))
        runs[-1][3].append((start, index))
    return runs


def extract_track(
    path: str, chrom: np.ndarray, reference: np.ndarray, window: int, bin_size: int, stat: str
) -> tuple[np.ndarray, np.ndarray]:
    """Bin one bigWig around every TSS, in genomic order.

    Parameters
    ----------
    chrom, reference
        Arrays [genes]: chromosome names (as in the annotation) and 0-based TSS references.

    Returns
    -------
    matrix
        float32 [genes, 2 * window / bin_size]; NaN for bins without covered bases (``mean``,
        ``max``) and for genes that were not read.
    status
        [genes] of ``ok``, ``missing_chromosome`` or ``off_chromosome_end``.
    """
    handle = _open_bigwig(path)
    sizes = handle.chroms()
    n_bins = 2 * window // bin_size
    matrix = np.full((len(chrom), n_bins), np.nan, dtype=np.float32)
    status = np.full(len(chrom), "ok", dtype=object)
    names = {c: resolve_chrom(c, sizes) for c in np.unique(chrom)}
    chunk = np.empty((256, 2 * window), dtype=np.float32)
    pending: list[int] = []

    def flush() -> None:
        if pending:
            values = chunk[: len(pending)].reshape(len(pending), n_bins, bin_size)
            matrix[pending] = _bin_statistic(values, stat)
            pending.clear()

    windows = []
    for i, (name, ref) in enumerate(zip(chrom, reference, strict=True)):
        actual = names[name]
        start, end = int(ref) - window, int(ref) + window
        if actual is None:
            status[i] = "missing_chromosome"
        elif start < 0 or end > sizes[actual]:
            status[i] = "off_chromosome_end"
        else:
            windows.append((actual, start, i))
    for actual, run_start, run_end, members in _overlapping_runs(sorted(windows), 2 * window):
        try:
            run = handle.values(actual, run_start, run_end, numpy=True)
        except RuntimeError:
            handle.close()
            raise DataFormatError(
                f"{path}: cannot read values of {actual}:{run_start:,}-{run_end:,} (corrupted or truncated bigWig)"
            ) from None
        for start, i in members:
            chunk[len(pending)] = run[start - run_start : start - run_start + 2 * window]
            pending.append(i)
            if len(pending) == len(chunk):
                flush()
    flush()
    handle.close()
    return matrix, status


def extract_matrices(
    tracks: dict[str, str],
    tss: TSSTable,
    window: int = 5000,
    bin_size: int = 100,
    stat: str = "mean",
    orientation: str = "transcript",
    workers: int | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Bin every track around every TSS, in parallel across tracks.

    Returns
    -------
    signals
        float32 [genes, marks, bins] (marks in ``tracks`` order), NaN where nothing was covered.
    status
        DataFrame [genes x marks] of per-track statuses (``ok``, ``missing_chromosome``,
        ``off_chromosome_end``).
    """
    if stat not in STATS:
        raise DeepChromeError(f"unknown bin statistic {stat!r} (available: {', '.join(STATS)})")
    if orientation not in ORIENTATIONS:
        raise DeepChromeError(f"unknown orientation {orientation!r} (available: {', '.join(ORIENTATIONS)})")
    check_binning(window, bin_size)
    args = [(str(p), tss.chrom, tss.reference, window, bin_size, stat) for p in tracks.values()]
    workers = min(len(args), workers or os.cpu_count() or 1)
    if workers > 1:
        try:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(extract_track, *zip(*args, strict=True)))
        except BrokenProcessPool:
            raise DeepChromeError(
                f"a process reading the bigWigs died ({', '.join(map(str, tracks.values()))}): a corrupted file "
                "or too little memory; rerun with --workers 1 to see which"
            ) from None
    else:
        results = [extract_track(*a) for a in args]
    signals = np.stack([m for m, _ in results], axis=1)
    if orientation == "transcript":
        minus = tss.strand == "-"
        signals[minus] = signals[minus][:, :, ::-1]
    status = pd.DataFrame({mark: s for mark, (_, s) in zip(tracks, results, strict=True)})
    return signals, status


def _read_gene_list(path: Path) -> set[str]:
    """Gene ids of a ``--split-list`` file, one a line."""
    if not path.is_file():
        raise DataFormatError(f"{path}: gene list not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None
    return {line.strip() for line in text.splitlines() if line.strip()}


def _split_genes(
    tss: TSSTable,
    method: str,
    seed: int,
    valid_chroms: list[str],
    test_chroms: list[str],
    split_lists: dict[str, str] | None,
) -> np.ndarray:
    """Split name per gene (``train``/``valid``/``test``, or ``''`` for genes in no list)."""
    n = len(tss)
    if method == "random":
        order = np.random.default_rng(seed).permutation(n)
        bounds = np.linspace(0, n, 4).round().astype(int)
        split = np.empty(n, dtype=object)
        for i, name in enumerate(SPLITS):
            split[order[bounds[i] : bounds[i + 1]]] = name
        return split
    if method == "chromosome":
        if not test_chroms:
            raise DeepChromeError("--split chromosome needs --test-chroms (and optionally --valid-chroms)")
        canonical = np.array([_canonical(c) for c in tss.chrom])
        split = np.full(n, "train", dtype=object)
        split[np.isin(canonical, [_canonical(c) for c in valid_chroms])] = "valid"
        split[np.isin(canonical, [_canonical(c) for c in test_chroms])] = "test"
        return split
    if method == "lists":
        if not split_lists:
            raise DeepChromeError("--split lists needs --split-list train=FILE --split-list valid=FILE ...")
        split = np.full(n, "", dtype=object)
        for name, path in split_lists.items():
            if name not in SPLITS:
                raise DeepChromeError(f"--split-list {name}=...: split must be one of {', '.join(SPLITS)}")
            split[np.isin(tss.gene_id, list(_read_gene_list(Path(path))))] = name
        return split
    raise DeepChromeError(f"unknown split method {method!r} (available: {', '.join(SPLIT_METHODS)})")


def _check_track_values(signals: np.ndarray, gene_ids: np.ndarray, tracks: dict[str, str]) -> None:
    """Refuse bin values the release format cannot hold (what its reader would reject), before writing.

    Raises
    ------
    DeepChromeError
        Naming the bigWig, its mark, the first gene and the value: negative (a log-ratio track?),
        infinite or above :data:`~deepchrome.data.release.MAX_VALUE`.
    """
    with np.errstate(invalid="ignore"):
        bad = np.isinf(signals) | (signals < 0) | (signals > MAX_VALUE)  # NaN (no coverage) becomes 0 later
    for m, (mark, path) in enumerate(tracks.items()):
        if bad[:, m].any():
            gene = int(np.argmax(bad[:, m].any(axis=1)))
            value = float(signals[gene, m][bad[gene, m]][0])
            raise DeepChromeError(
                f"{path} ({mark}): bin value {value:g} near the TSS of gene {gene_ids[gene]}; the release format "
                f"holds coverage or counts from 0 to {MAX_VALUE:,} (is this a log-ratio track?)"
            )


def prepare(
    tracks: dict[str, str],
    annotation: str | os.PathLike,
    out: str | os.PathLike,
    cell: str,
    expression: str | os.PathLike | None = None,
    window: int = 5000,
    bin_size: int = 100,
    stat: str = "mean",
    orientation: str = "transcript",
    split: str = "random",
    seed: int = 0,
    valid_chroms: list[str] | None = None,
    test_chroms: list[str] | None = None,
    split_lists: dict[str, str] | None = None,
    chrom_sizes: str | os.PathLike | None = None,
    labels: bool = True,
    workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> dict:
    """bigWigs + annotation (+ expression) -> ``out/<cell>/classification/{train,valid,test}.csv`` and cache.

    Genes whose window runs off a chromosome end, that lie on a chromosome absent from a bigWig,
    or that are missing from the expression table are dropped, counted in the report and listed
    in ``out/<cell>/dropped_genes.tsv``. Bins without covered bases are written as 0 and counted.

    Everything is written to a temporary folder inside ``out`` first (:func:`deepchrome.files.staged_output`); a
    failure leaves ``out`` as it was. A new ``out/<cell>`` is then renamed into place whole. If
    ``out/<cell>`` already exists (an earlier run), only prepare's own files are replaced, each
    with one rename: ``classification/{train,valid,test}.csv``, ``dropped_genes.tsv`` and
    ``prepare.json`` (last); anything else in that folder is left alone, never deleted.

    Returns
    -------
    dict
        The report, also written to ``out/<cell>/prepare.json``.

    Raises
    ------
    DeepChromeError
        For a cell or mark that is not a plain name (see :mod:`deepchrome.names`), a nonsensical
        window, bin size, seed, statistic, orientation or split, an ``out`` that is a file or
        cannot be written, and (as :class:`DataFormatError`) any malformed input file. All of
        these are checked before anything is written.
    """
    check_name(cell, "--cell", "cell name")
    if not tracks:
        raise DeepChromeError("no --bigwig MARK=FILE given")
    for mark in tracks:
        check_name(mark, "--bigwig", "mark name")
        if mark in ("gene_id", "bin_id", "label"):
            raise DeepChromeError(
                f"--bigwig {mark}=...: {mark!r} is a column of the release format; name the mark otherwise"
            )
    check_binning(window, bin_size)
    if stat not in STATS:
        raise DeepChromeError(f"unknown bin statistic {stat!r} (available: {', '.join(STATS)})")
    if orientation not in ORIENTATIONS:
        raise DeepChromeError(f"unknown orientation {orientation!r} (available: {', '.join(ORIENTATIONS)})")
    if split not in SPLIT_METHODS:
        raise DeepChromeError(f"unknown split method {split!r} (available: {', '.join(SPLIT_METHODS)})")
    if seed < 0:
        raise DeepChromeError(f"--seed {seed}: must be >= 0")
    check_out_folder(out)
    check_name(cell, "--cell", "cell name")
    check_not_replacing([Path(out) / cell / "classification" / f"{name}.csv" for name in SPLITS], overwrite)
    if expression is None and labels:
        raise DeepChromeError("--expression is needed for labels (or pass --no-labels to write label 0)")
    # Every input is read and checked before the long part (reading the bigWigs).
    tss = read_tss(annotation)
    split_names = _split_genes(tss, split, seed, valid_chroms or [], test_chroms or [], split_lists)
    table = None if expression is None else read_expression_table(expression)
    sizes = read_chrom_sizes(chrom_sizes) if chrom_sizes else None
    check_assemblies(tracks, sizes)
    signals, status = extract_matrices(tracks, tss, window, bin_size, stat, orientation, workers)

    reasons = np.full(len(tss), "", dtype=object)
    for mark in status.columns:
        bad = (status[mark] != "ok").to_numpy() & (reasons == "")
        reasons[bad] = status[mark].to_numpy()[bad] + f" ({mark})"
    data = HistoneSignals(
        signals=signals,
        labels=np.zeros(len(tss), dtype=np.int64),
        gene_ids=tss.gene_id,
        marks=tuple(tracks),
        cell=cell,
        bin_size=bin_size,
        window=window,
    )
    report: dict = {"cell": cell, "annotation_genes": len(tss)}
    if table is not None:
        labelled, counts = attach_expression(data, table, relabel=False)
        missing = np.isnan(labelled.expression)
        reasons[missing & (reasons == "")] = "not in expression table"
        median = float(np.median(table.to_numpy()))
        data = HistoneSignals(
            **{
                **labelled.__dict__,
                "labels": (np.nan_to_num(labelled.expression, nan=-np.inf) > median).astype(np.int64),
            }
        )
        report["expression_missing_genes"] = int(missing.sum())
    keep = reasons == ""
    no_split = keep & (split_names == "")
    reasons[no_split] = "in no split list"
    keep &= ~no_split
    uncovered = np.isnan(data.signals[keep])
    report.update(
        {
            "kept_genes": int(keep.sum()),
            "dropped_genes": int((~keep).sum()),
            "dropped_by_reason": pd.Series(reasons[~keep])
            .str.replace(r" \(.*\)$", "", regex=True)
            .value_counts()
            .to_dict(),
            "uncovered_bins_set_to_0": int(uncovered.sum()),
            "marks": list(tracks),
            "tracks": {m: str(p) for m, p in tracks.items()},
            "window": window,
            "bin_size": bin_size,
            "stat": stat,
            "orientation": orientation,
            "split": split,
        }
    )
    if not keep.any():
        raise DeepChromeError(f"no gene left to write ({report['dropped_by_reason']})")
    empty = [name for name in SPLITS if not (keep & (split_names == name)).any()]
    if empty:
        raise DeepChromeError(
            f"split(s) {', '.join(empty)} would be empty with --split {split} "
            f"({int(keep.sum())} genes kept); choose other chromosomes, lists or a random split"
        )
    _check_track_values(data.signals[keep], tss.gene_id[keep], tracks)
    data.signals = np.nan_to_num(data.signals, nan=0.0).astype(np.float32)

    with staged_output(out) as staging:
        folder = staging / cell
        for name in SPLITS:
            chosen = keep & (split_names == name)
            part = data.subset(chosen)
            part.split = name
            report[f"{name}_genes"] = part.n_genes
            write_release_csv(part, folder / "classification" / f"{name}.csv")
        dropped = tss.frame()[~keep].assign(reason=reasons[~keep])
        dropped.to_csv(folder / "dropped_genes.tsv", sep="\t", index=False)
        (folder / "prepare.json").write_text(json.dumps(report, indent=1))
    from deepchrome.data.cache import load_split

    for name in SPLITS:
        load_split(out, cell, name, cache_dir=cache_dir)
    return report
