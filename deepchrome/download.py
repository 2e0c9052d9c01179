"""``deepchrome download``: the public DeepChrome/AttentiveChrome release (Zenodo record 2652278).

The record's metadata gives each file's URL and checksum. Downloads go to
``OUT/.deepchrome-download/<file>.part`` and resume with an HTTP ``Range`` request after an
interruption; the finished file is verified against the checksum before anything is extracted.
Extraction accepts only regular files and folders whose paths stay inside the target (no absolute
paths, no ``..``, no links), keeps only ``<cell>/classification/<split>.csv`` members (of the chosen
cells), and moves each cell into place from a staging folder. Then the binary cache is built.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import string
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

from deepchrome.data.signals import SPLITS
from deepchrome.errors import DeepChromeError
from deepchrome.files import check_out_folder, staged_output
from deepchrome.names import check_name, is_plain_name

ZENODO_RECORD_URL = "https://zenodo.org/api/records/2652278"
RELEASE_FILE = "data.tar.gz"
CHUNK = 1 << 20
#: Hash types a checksum may name (fixed-length digests of :mod:`hashlib`).
ALGORITHMS = tuple(sorted(a for a in hashlib.algorithms_guaranteed if not a.startswith("shake")))
_ARCHIVE_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split()) or exc.__class__.__name__


def parse_checksum(checksum: str | None, source: str) -> tuple[str, str]:
    """Split ``"md5:<hex>"`` into the hash type and the lower-case hex digest, checking both.

    Parameters
    ----------
    checksum
        ``ALGORITHM:HEX``; the hex digits may be upper or lower case.
    source
        Where it came from, for messages (``--checksum`` or the record's file entry).

    Raises
    ------
    DeepChromeError
        For a missing separator, a hash type outside :data:`ALGORITHMS`, or a digest that is not
        the algorithm's number of hex digits.
    """
    if not isinstance(checksum, str) or ":" not in checksum:
        raise DeepChromeError(f"{source} {checksum!r}: expected ALGORITHM:HEX, e.g. md5:<32 hex digits>")
    algorithm, digest = (part.strip().lower() for part in checksum.split(":", 1))
    if algorithm not in ALGORITHMS:
        raise DeepChromeError(f"{source} {checksum!r}: unknown hash type {algorithm!r} (use {', '.join(ALGORITHMS)})")
    length = 2 * hashlib.new(algorithm).digest_size
    if len(digest) != length or not set(digest) <= set(string.hexdigits):
        raise DeepChromeError(
            f"{source} {checksum!r}: a {algorithm} checksum is {length} hexadecimal digits, got {digest!r}"
        )
    return algorithm, digest


def fetch_metadata(record_url: str, timeout: float = 60) -> list[dict]:
    """File entries of a Zenodo record: ``[{"key", "url", "checksum", "size"}]``.

    Accepts both the legacy (``files: [...]``) and the InvenioRDM (``files: {"entries": {...}}``)
    layouts of the record API. Only ``key`` is required here; the fields of the file that is
    downloaded are checked by :func:`download_release`.

    Raises
    ------
    DeepChromeError
        If the record cannot be read, is not JSON, or lacks ``files`` or a file's ``key`` (the
        message names the URL and the field).
    """
    try:
        with urllib.request.urlopen(record_url, timeout=timeout) as response:
            record = json.load(response)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise DeepChromeError(f"cannot read record metadata from {record_url}: {_reason(exc)}") from None
    if not isinstance(record, dict):
        raise DeepChromeError(f"record {record_url}: metadata is a JSON {type(record).__name__}, expected an object")
    files = record.get("files")
    if isinstance(files, dict):
        files = files.get("entries")
        files = list(files.values()) if isinstance(files, dict) else files
    if not isinstance(files, list):
        raise DeepChromeError(f"record {record_url}: missing field 'files' (a list, or 'files.entries')")
    entries = []
    for number, item in enumerate(files):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise DeepChromeError(f"record {record_url}: files[{number}] has no field 'key' (the file name)")
        links = item.get("links") if isinstance(item.get("links"), dict) else {}
        url = links.get("self") or links.get("content") or links.get("download")
        entries.append({"key": item["key"], "url": url, "checksum": item.get("checksum"), "size": item.get("size")})
    if not entries:
        raise DeepChromeError(f"record {record_url} lists no files")
    return entries


def _checked_entry(entry: dict, record_url: str) -> tuple[str, str, int | None]:
    """URL, checksum and size of a record's file entry, or an error naming the missing field."""
    where = f"record {record_url}: file {entry['key']}"
    if not isinstance(entry["url"], str) or not entry["url"]:
        raise DeepChromeError(f"{where} has no download link (field links.self, links.content or links.download)")
    if entry["checksum"] is None:
        raise DeepChromeError(f"{where} has no field 'checksum'; use --url with --checksum instead")
    size = entry["size"]
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise DeepChromeError(f"{where}: field 'size' is {size!r}, expected a number of bytes")
    return entry["url"], entry["checksum"], size


def file_checksum(path: Path, algorithm: str) -> str:
    """Hex digest of ``path`` (``md5``, ``sha256``, ...)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, part: Path, size: int | None = None, progress: bool = True, timeout: float = 60) -> Path:
    """Download ``url`` into ``part``, resuming from what ``part`` already holds.

    ``part``'s folder is created only once the server answers. A ``part`` larger than ``size``
    is discarded first. If the server answers a resume with HTTP 416 (nothing left to send:
    ``part`` is complete, or larger than the file), ``part`` is returned as it is: the caller's
    checksum decides (:func:`download_release` then starts again from zero once).

    Raises
    ------
    DeepChromeError
        If the transfer breaks off (the partial file is kept: rerun to resume), ``part`` cannot
        be written, or the server refuses.
    """
    from tqdm.auto import tqdm

    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    if size is not None and have == size:
        return part
    try:
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            return part
        raise DeepChromeError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise DeepChromeError(f"cannot reach {url}: {_reason(getattr(exc, 'reason', exc))}") from None
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored the Range request: start again
        total = size if size is not None else (have + int(response.headers.get("Content-Length", 0)) or None)
        try:
            part.parent.mkdir(parents=True, exist_ok=True)
            handle = open(part, "ab" if have else "wb")
        except OSError as exc:
            raise DeepChromeError(f"cannot write {part} ({_reason(exc)})") from None
        with (
            handle,
            tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=part.stem, disable=None if progress else True
            ) as bar,  # None: a bar on a terminal only
        ):
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, ValueError, http.client.HTTPException) as exc:
                    raise DeepChromeError(
                        f"download of {url} interrupted after {part.stat().st_size:,} bytes "
                        f"({exc.__class__.__name__}); run the same command again to resume"
                    ) from None
                if not chunk:
                    break
                try:
                    handle.write(chunk)
                except OSError as exc:
                    raise DeepChromeError(
                        f"cannot write {part} ({_reason(exc)}); make room and run the same command again to resume"
                    ) from None
                bar.update(len(chunk))
    got = part.stat().st_size
    if size is not None and got < size:
        raise DeepChromeError(
            f"download of {url} stopped after {got:,} of {size:,} bytes; run the same command again to resume"
        )
    return part


def _release_member_target(name: str) -> tuple[str, str] | None:
    """``(cell, split)`` for ``.../<cell>/classification/<split>.csv`` members, else ``None``."""
    parts = PurePosixPath(name).parts
    if len(parts) >= 3 and parts[-2] == "classification" and parts[-1] in {f"{s}.csv" for s in SPLITS}:
        return parts[-3], parts[-1][: -len(".csv")]
    return None


def safe_extract(archive: Path, out: Path, cells: list[str] | None = None, overwrite: bool = False) -> list[str]:
    """Extract the release's split files from ``archive`` into ``out/<cell>/classification/``.

    Files are extracted into a temporary folder inside ``out`` and moved into place with
    :func:`~deepchrome.files.staged_output`: a new cell folder is renamed in whole; in a
    cell folder that already exists only the extracted ``classification/<split>.csv`` files are
    replaced, and nothing else there is deleted. A split file already in ``out`` whose content
    differs from the archive's (edited by the user, or another release) is replaced only with
    ``overwrite``; identical files are left as they are.

    Returns
    -------
    list of str
        The cells extracted.

    Raises
    ------
    DeepChromeError
        For a member with an absolute path, a ``..`` component, a link or device, or a cell folder
        that is not a plain name, before anything is written; for requested cells absent from the
        archive; for a damaged archive or an unwritable ``out`` (nothing is left behind); for
        split files in ``out`` that differ from the archive's, without ``overwrite`` (nothing changes).
    """
    try:
        tar = tarfile.open(archive)
    except _ARCHIVE_ERRORS as exc:
        raise DeepChromeError(f"{archive}: not a readable tar archive ({_reason(exc)})") from None
    with tar:
        try:
            members = tar.getmembers()
        except _ARCHIVE_ERRORS as exc:
            raise DeepChromeError(f"{archive}: not a readable tar archive ({_reason(exc)})") from None
        for member in members:
            path = PurePosixPath(member.name)
            if path.is_absolute() or ".." in path.parts:
                raise DeepChromeError(f"{archive}: refusing member {member.name!r}: it would be written outside {out}")
            if not (member.isfile() or member.isdir()):
                raise DeepChromeError(f"{archive}: refusing member {member.name!r}: links and devices are not allowed")
        targets = [(m, _release_member_target(m.name)) for m in members if m.isfile()]
        available = sorted({t[0] for _, t in targets if t})
        missing = sorted(set(cells or []) - set(available))
        if missing:
            raise DeepChromeError(f"cell(s) {', '.join(missing)} not in {archive.name} ({len(available)} cells found)")
        chosen = [(m, *t) for m, t in targets if t and (cells is None or t[0] in cells)]
        if not chosen:
            raise DeepChromeError(
                f"{archive}: no <cell>/classification/<split>.csv member; is it the DeepChrome release?"
            )
        for member, cell, _ in chosen:
            if not is_plain_name(cell):
                raise DeepChromeError(
                    f"{archive}: refusing member {member.name!r}: cell folder {cell!r} is not a plain name "
                    "(letters, digits, '.', '_', '-')"
                )
        with staged_output(out) as staging:
            for member, cell, split in chosen:
                destination = staging / cell / "classification" / f"{split}.csv"
                destination.parent.mkdir(parents=True, exist_ok=True)
                _extract_member(tar, member, destination, archive)
            if not overwrite:
                _check_not_replacing(staging, out, [(cell, split) for _, cell, split in chosen])
    return sorted({cell for _, cell, _ in chosen})


def _check_not_replacing(staging: Path, out: Path, files: list[tuple[str, str]]) -> None:
    """Refuse to replace split files of ``out`` whose content differs from the extracted ones."""
    differ = []
    for cell, split in files:
        relative = Path(cell) / "classification" / f"{split}.csv"
        present = out / relative
        if (present.exists() or present.is_symlink()) and not _same_content(present, staging / relative):
            differ.append(present)
    if differ:
        raise DeepChromeError(
            f"{differ[0]} already exists and differs from the release ({len(differ)} file(s) would be replaced): "
            "pass --overwrite to replace them, or choose another --out"
        )


def _same_content(a: Path, b: Path) -> bool:
    import filecmp

    try:
        return a.is_file() and filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, destination: Path, archive: Path) -> None:
    """Copy one member; read errors name the archive, write errors stay ``OSError`` (the output's)."""
    with open(destination, "wb") as sink:
        try:
            source = tar.extractfile(member)
        except _ARCHIVE_ERRORS as exc:
            raise DeepChromeError(f"{archive}: cannot read member {member.name!r} ({_reason(exc)})") from None
        with source:
            while True:
                try:
                    chunk = source.read(CHUNK)
                except _ARCHIVE_ERRORS as exc:
                    raise DeepChromeError(
                        f"{archive}: cannot read member {member.name!r} ({_reason(exc)}); the archive is damaged"
                    ) from None
                if not chunk:
                    break
                sink.write(chunk)


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove each folder that exists and is empty, in order (deepest first)."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def download_release(
    out: str | os.PathLike,
    cells: list[str] | None = None,
    record_url: str = ZENODO_RECORD_URL,
    file_name: str = RELEASE_FILE,
    url: str | None = None,
    checksum: str | None = None,
    keep_archive: bool = False,
    progress: bool = True,
    build_cache: bool = True,
    overwrite: bool = False,
) -> dict:
    """Download, verify and extract the release (or ``cells`` of it) into ``out``, then cache it.

    Names, ``out`` and a ``--url`` checksum are checked before any network access. A download
    that resumed from an earlier ``.part`` and then fails its checksum is discarded and fetched
    once more from the start. On failure, nothing is left behind except a ``.part`` worth resuming
    (``out`` itself is removed if it was created here and is empty).

    Parameters
    ----------
    record_url
        Zenodo record API URL (metadata with file URLs and checksums).
    url, checksum
        A mirror: the archive's URL and ``"md5:<hex>"`` / ``"sha256:<hex>"`` (any case), bypassing
        the record.
    overwrite
        Replace split files in ``out`` that differ from the release's (edited ones); without it
        they are refused after the download, and ``out`` is left unchanged.

    Returns
    -------
    dict
        ``{"cells": [...], "archive": path or None}``.

    Raises
    ------
    DeepChromeError
        One line for every user-fixable failure: bad names or checksum, an ``out`` that is a
        file, unreachable or malformed metadata, a failed or interrupted transfer, a checksum
        mismatch, a refused or damaged archive.
    """
    out = check_out_folder(out)
    check_name(file_name, "--file", "file name")
    if cells is not None:
        if not cells:
            raise DeepChromeError("--cells given without cell names; leave --cells out to download every cell")
        for cell in cells:
            check_name(cell, "--cells", "cell name")
    if url is not None:
        if not checksum:
            raise DeepChromeError(f"no checksum for {file_name}: pass --checksum md5:<hex> with --url")
        algorithm, expected = parse_checksum(checksum, "--checksum")
        size = None
    else:
        entries = {e["key"]: e for e in fetch_metadata(record_url)}
        if file_name not in entries:
            raise DeepChromeError(f"record {record_url} has no file {file_name} (files: {', '.join(entries)})")
        url, checksum, size = _checked_entry(entries[file_name], record_url)
        algorithm, expected = parse_checksum(checksum, f"record {record_url}: file {file_name} has checksum")
    created = [p for p in (out, *out.parents) if not p.exists()]
    workdir = out / ".deepchrome-download"
    part = workdir / f"{file_name}.part"

    def clean_up(keep_part: bool) -> None:
        if not keep_part or (part.exists() and part.stat().st_size == 0):
            part.unlink(missing_ok=True)
        _remove_if_empty([workdir, *created])

    resumed = part.is_file() and part.stat().st_size > 0
    try:
        download(url, part, size=size, progress=progress)
        actual = file_checksum(part, algorithm)
        if actual != expected and resumed:
            part.unlink()  # an earlier .part that does not belong to this file: start again, once
            download(url, part, size=size, progress=progress)
            actual = file_checksum(part, algorithm)
    except DeepChromeError:
        clean_up(keep_part=True)
        raise
    if actual != expected:
        shutil.rmtree(workdir, ignore_errors=True)
        clean_up(keep_part=False)
        raise DeepChromeError(
            f"checksum mismatch for {file_name}: expected {algorithm} {expected}, got {actual}; "
            "the download was deleted"
        )
    archive = workdir / file_name
    kept = None
    try:
        os.replace(part, archive)
        found = safe_extract(archive, out, cells, overwrite=overwrite)
        if keep_archive:
            kept = out / file_name
            os.replace(archive, kept)
    except OSError as exc:
        raise DeepChromeError(f"--out {out}: cannot write there ({_reason(exc)})") from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        _remove_if_empty(created)
    if build_cache:
        from deepchrome.data.cache import load_split

        for cell in found:
            for split in SPLITS:
                load_split(out, cell, split)
    return {"cells": found, "archive": str(kept) if kept else None}
