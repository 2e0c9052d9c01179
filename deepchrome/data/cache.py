"""Binary, memory-mappable cache of parsed release CSVs.

Each parsed split file gets one folder ``<cache_dir>/<key>/`` holding ``signals.npy``,
``labels.npy``, ``gene_ids.npy`` (and ``expression.npy`` when known) and ``meta.json``. The
meta records the format version, the source file's size and modification time (staleness) and a
CRC-32 of every array file (truncation, corruption). A cache that fails any check is rebuilt from
its source, never used. Folders are written under a temporary name and renamed into place.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import mmap
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np

from deepchrome.data.example import resolve_root
from deepchrome.data.release import read_release_csv, split_path
from deepchrome.data.signals import HistoneSignals
from deepchrome.errors import DataFormatError

FORMAT_VERSION = 1
log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$DEEPCHROME_CACHE_DIR`` if set, else ``~/.cache/deepchrome``."""
    env = os.environ.get("DEEPCHROME_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "deepchrome"


def cache_folder(source: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder of one source file (keyed by its absolute path)."""
    source = Path(source).resolve()
    key = hashlib.sha1(str(source).encode()).hexdigest()[:16]
    return Path(cache_dir or default_cache_dir()) / f"{source.parent.parent.name}-{source.stem}-{key}"


def _fingerprint(source: Path) -> dict:
    stat = source.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _crc(path: Path) -> int:
    # Checksum the mapped file in place: no copy into Python bytes.
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return 0
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return zlib.crc32(mapped)


def write_cache(signals: HistoneSignals, folder: Path, source: Path | None = None) -> None:
    """Write ``signals`` as a cache folder atomically (temporary folder, then rename)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        arrays = {"signals": signals.signals, "labels": signals.labels, "gene_ids": signals.gene_ids}
        if signals.expression is not None:
            arrays["expression"] = signals.expression
        checksums = {}
        for name, array in arrays.items():
            if array is None:
                continue
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
            checksums[name] = _crc(tmp / f"{name}.npy")
        meta = {
            "format_version": FORMAT_VERSION,
            "source": str(source) if source else None,
            "fingerprint": _fingerprint(source) if source else None,
            "checksums": checksums,
            "marks": list(signals.marks),
            "cell": signals.cell,
            "split": signals.split,
            "bin_size": signals.bin_size,
            "window": signals.window,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        _install(tmp, folder, source)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _install(tmp: Path, folder: Path, source: Path | None) -> None:
    """Rename a finished cache folder into place, safely when other processes do the same.

    Several processes (DDP ranks, sweep workers) may build the same cache at once. A folder that
    another process has just installed and that checks out is kept (ours is discarded), so a
    process reading it is never pulled out from under; only a stale folder is moved aside. A
    directory rename fails when the target exists, so of two writers racing here, one wins.
    """
    if folder.exists():
        try:
            read_cache(folder, source, mmap=False)
            return
        except StaleCache:
            trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
            try:
                os.rename(folder, trash / "stale")
            except FileNotFoundError:
                pass  # another process moved it first
            shutil.rmtree(trash, ignore_errors=True)
    try:
        os.rename(tmp, folder)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        # Another process installed its copy between our check and our rename: keep theirs.


class StaleCache(Exception):
    """A cache folder that must not be used; the message says why."""


def read_cache(folder: Path, source: Path | None = None, mmap: bool = True) -> HistoneSignals:
    """Load a cache folder, checking version, source fingerprint and checksums.

    Raises
    ------
    StaleCache
        If anything does not match (the caller rebuilds).
    """
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise StaleCache(f"unreadable meta.json ({exc.__class__.__name__})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise StaleCache(f"format version {version} != {FORMAT_VERSION}")
    if source is not None and source.exists() and meta.get("fingerprint") != _fingerprint(source):
        raise StaleCache(f"source {source} changed since the cache was written")
    try:
        return _signals_from(folder, meta, mmap)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        # Valid JSON of the wrong shape (hand-edited, another tool): rebuild rather than fail forever.
        raise StaleCache(f"meta.json has the wrong shape ({exc.__class__.__name__}: {exc})") from None


def _signals_from(folder: Path, meta: dict, mmap: bool) -> HistoneSignals:
    arrays = {}
    for name, crc in meta["checksums"].items():
        path = folder / f"{name}.npy"
        try:
            if _crc(path) != crc:
                raise StaleCache(f"{path.name} checksum mismatch (truncated or modified)")
            arrays[name] = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise StaleCache(f"{path.name} unreadable ({exc})") from None
    return HistoneSignals(
        signals=arrays["signals"],
        labels=arrays.get("labels"),
        gene_ids=np.asarray(arrays["gene_ids"]),
        marks=tuple(meta["marks"]),
        cell=meta["cell"],
        split=meta["split"],
        expression=arrays.get("expression"),
        bin_size=meta["bin_size"],
        window=meta["window"],
    )


def load_split(
    root: str | os.PathLike,
    cell: str,
    split: str,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> HistoneSignals:
    """Load one cell's split through the cache, parsing (and caching) the CSV when needed.

    Parameters
    ----------
    root
        Release root holding ``<cell>/classification/<split>.csv``.
    cache_dir
        Where caches live (default :func:`default_cache_dir`). An unwritable cache folder only
        costs speed: the parsed data is returned and a warning logged.
    use_cache
        ``False`` always parses the CSV.

    Returns
    -------
    HistoneSignals
        Arrays memory-mapped from the cache (read-only) or freshly parsed.

    Raises
    ------
    DataFormatError
        If the CSV is malformed, or it is missing and its cache is unreadable.
    """
    source = split_path(resolve_root(root), cell, split)
    if not use_cache:
        return read_release_csv(source, cell=cell, split=split)
    folder = cache_folder(source, cache_dir)
    if folder.exists():
        try:
            return read_cache(folder, source)
        except StaleCache as reason:
            if not source.exists():
                raise DataFormatError(f"cache {folder} is unreadable ({reason}) and {source} is missing") from None
            log.warning("cache %s is stale (%s); rebuilding from %s", folder, reason, source)
    signals = read_release_csv(source, cell=cell, split=split)
    try:
        write_cache(signals, folder, source)
    except OSError as exc:
        log.warning("could not write cache %s (%s); using parsed data", folder, exc)
        return signals
    try:
        return read_cache(folder, source)
    except StaleCache:
        # Another process replaced the folder while we read it: the parsed arrays are as good.
        return signals
