"""Atomic output: every file and folder the package writes appears whole or not at all.

Writers write to a temporary name in the target's folder and rename it into place (a rename
within one file system is atomic), so an interrupted or failing command never leaves a
half-written file, and readers never see one: :func:`atomic_path` for one file (``write_text``,
``write_json`` on top of it), :func:`staged_output` for a command's whole output folder.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from deepchrome.errors import DeepChromeError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on error removed.

    The temporary name keeps the suffix (``.x.csv.tmp123.csv``) for writers that choose the format
    from it (matplotlib, numpy).

    Examples
    --------
    >>> with atomic_path("out/table.csv") as tmp:  # doctest: +SKIP
    ...     frame.to_csv(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    # mkstemp makes the file private (0600); give it the permissions any new file would get here
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(handle, 0o666 & ~umask)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, data, indent: int = 2) -> Path:
    """Write ``data`` as strict JSON atomically; returns the path.

    Numpy scalars and tensors of one element are written as plain numbers, paths as strings, and
    non-finite floats (NaN, infinity: an undefined metric) as ``null``, since strict JSON parsers
    reject ``NaN``; readers must accept ``null`` wherever a number may be undefined.
    """
    text = json.dumps(_finite(data), indent=indent, default=_plain, allow_nan=False)
    return write_text(path, text + "\n")


def _finite(value):
    """``value`` with every non-finite float in it (in dicts, lists, tuples) replaced by ``None``.

    Parameters
    ----------
    value
        What :func:`write_json` is given.

    Returns
    -------
    object
        The same structure (tuples become lists), with NaN and infinities as ``None``.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _plain(value):
    # numpy scalars, tensors of one element, paths: what metrics dictionaries typically hold
    if hasattr(value, "item"):
        return _finite(value.item())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _os_reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


def check_out_folder(out: str | os.PathLike, what: str = "--out") -> Path:
    """Return ``out`` as a Path after checking it can become the output folder (before long work).

    ``out`` must be a folder or not exist yet; the nearest folder that exists (``out`` or a
    parent) must be writable.

    Raises
    ------
    DeepChromeError
        ``--out X: is a file, expected a folder``, ``... Y is a file`` for a parent, or ``... is
        not writable``.
    """
    out = Path(out)
    existing = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        where = "is a file" if existing == out else f"{existing} is a file"
        raise DeepChromeError(f"{what} {out}: {where}, expected a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == out else f" ({existing})"
        raise DeepChromeError(f"{what} {out}: folder{where} is not writable; choose another {what}")
    return out


@contextlib.contextmanager
def staged_output(out: str | os.PathLike, what: str = "--out") -> Iterator[Path]:
    """Write into a private temporary folder inside ``out``, then move the result into ``out``.

    The block writes files at the paths they should have relative to ``out`` (``staging/E003/
    classification/train.csv`` becomes ``out/E003/classification/train.csv``). When it succeeds,
    each top-level entry absent from ``out`` is moved in whole with one rename; into a folder that
    already exists, each file replaces its namesake with one rename (``os.replace``), and nothing
    else in that folder is touched. Before anything moves, every destination is checked: a file
    where a folder must go, a folder where a file must go, or a link to a folder is refused.

    If the block or the checks fail, nothing under ``out`` changes, the temporary folder is removed,
    and so is ``out`` (with any parents) when it was created here and is empty.

    Parameters
    ----------
    out
        The output folder (created if missing).
    what
        How the user named it, for messages (``--out``).

    Raises
    ------
    DeepChromeError
        If ``out`` is a file, or cannot be created or written (permission, disk full: the
        message gives the system's reason), or a destination conflicts as above.
    """
    out = check_out_folder(out, what)
    created = [p for p in (out, *out.parents) if not p.exists()]
    staging: Path | None = None
    done = False
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".deepchrome-", dir=out))
        yield staging
        _check_destinations(staging, out)
        _move_into(staging, out)
        done = True
    except OSError as exc:
        raise DeepChromeError(f"{what} {out}: cannot write there ({_os_reason(exc)})") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for folder in [] if done else created:  # deepest first; only empty folders made here go
            with contextlib.suppress(OSError):
                folder.rmdir()


def _check_destinations(source: Path, target: Path) -> None:
    for entry in sorted(source.iterdir()):
        destination = target / entry.name
        if not (destination.exists() or destination.is_symlink()):
            continue
        if entry.is_dir():
            if destination.is_symlink() or not destination.is_dir():
                kind = "a link" if destination.is_symlink() else "a file"
                raise DeepChromeError(
                    f"{destination} is {kind} where a folder must be written; move it away or choose another name"
                )
            _check_destinations(entry, destination)
        elif destination.is_dir() and not destination.is_symlink():
            raise DeepChromeError(
                f"{destination} is a folder where a file must be written; move it away or choose another name"
            )


def _move_into(source: Path, target: Path) -> None:
    for entry in sorted(source.iterdir()):
        destination = target / entry.name
        if entry.is_dir() and destination.is_dir():
            _move_into(entry, destination)
        else:
            os.replace(entry, destination)


def check_not_replacing(paths: list[Path], overwrite: bool, what: str = "--out") -> None:
    """Refuse to replace data files a user may care about (a cell's split CSVs, a data set's
    ground truth) unless ``overwrite``; checked before any work starts.

    Raises
    ------
    DeepChromeError
        ``PATH already exists (N files would be replaced): pass --overwrite to replace them, or choose
        another --out``.
    """
    if overwrite:
        return
    found = [path for path in paths if path.exists() or path.is_symlink()]
    if found:
        raise DeepChromeError(
            f"{found[0]} already exists ({len(found)} file(s) would be replaced): pass --overwrite to replace "
            f"them, or choose another {what}"
        )


def memory_limit() -> int | None:
    """Bytes this process may use at most: the machine's memory, or a lower address-space limit."""
    import resource

    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    limits = [value for value in (total, soft) if value is not None and value > 0 and value != resource.RLIM_INFINITY]
    return min(limits) if limits else None


def _size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n_bytes < 1024 or unit == "PB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return ""


def check_memory(n_bytes: float, what: str) -> None:
    """Refuse a request whose arrays would not fit in this machine's memory, before allocating them.

    ``n_bytes``: an estimate of the peak memory the request needs; ``what``: the options that
    ask for it, for the message (``--genes 10000000000 x --cells 4``).

    Raises
    ------
    DeepChromeError
        ``--n 1000000000000 needs about 7.3 TB of memory, more than this machine's 125.5 GB: ask for less``.
    """
    limit = memory_limit()
    if limit is not None and n_bytes > limit:
        raise DeepChromeError(
            f"{what} needs about {_size(n_bytes)} of memory, more than this machine's {_size(limit)}: ask for less"
        )
