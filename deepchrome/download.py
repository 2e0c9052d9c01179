"""``deepchrome download``: the public DeepChrome/AttentiveChrome release (Zenodo record 2652278).

The record's metadata gives each file's URL and checksum. Downloads go to
``OUT/.deepchrome-download/<file>.part`` and resume with an HTTP ``Range`` request after an
interruption; the finished file is verified against the checksum before anything is extracted.
Extraction accepts only regular files and folders whose paths stay inside the target (no absolute
paths, no ``..``, no links), keeps only ``<cell>/classification/<split>.csv`` members (of the chosen
cells), and moves each cell into place from a staging folder. Then the binary cache is built.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

from deepchrome.data.signals import SPLITS
from deepchrome.errors import DeepChromeError

ZENODO_RECORD_URL = "https://zenodo.org/api/records/2652278"
RELEASE_FILE = "data.tar.gz"
CHUNK = 1 << 20


def fetch_metadata(record_url: str, timeout: float = 60) -> list[dict]:
    """File entries of a Zenodo record: ``[{"key", "url", "checksum", "size"}]``.

    Accepts both the legacy (``files: [...]``) and the InvenioRDM (``files: {"entries": {...}}``)
    layouts of the record API.
    """
    try:
        with urllib.request.urlopen(record_url, timeout=timeout) as response:
            record = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DeepChromeError(f"cannot read record metadata from {record_url}: {exc}") from None
    files = record.get("files", [])
    if isinstance(files, dict):
        files = list(files.get("entries", {}).values())
    entries = []
    for item in files:
        links = item.get("links", {})
        url = links.get("self") or links.get("content") or links.get("download")
        entries.append({"key": item.get("key"), "url": url, "checksum": item.get("checksum"), "size": item.get("size")})
    if not entries:
        raise DeepChromeError(f"record {record_url} lists no files")
    return entries


def file_checksum(path: Path, algorithm: str) -> str:
    """Hex digest of ``path`` (``md5``, ``sha256``, ...)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, part: Path, size: int | None = None, progress: bool = True, timeout: float = 60) -> Path:
    """Download ``url`` into ``part``, resuming from what ``part`` already holds.

    Raises
    ------
    DeepChromeError
        If the transfer breaks off (the partial file is kept: rerun to resume) or the server
        refuses.
    """
    from tqdm.auto import tqdm

    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have == size:
        return part
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and size is not None and have >= size:
            return part
        raise DeepChromeError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DeepChromeError(f"cannot reach {url}: {exc}") from None
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored the Range request: start again
        total = size if size is not None else (have + int(response.headers.get("Content-Length", 0)) or None)
        with (
            open(part, "ab" if have else "wb") as handle,
            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.stem, disable=not progress) as bar,
        ):
            try:
                while chunk := response.read(CHUNK):
                    handle.write(chunk)
                    bar.update(len(chunk))
            except (OSError, ValueError, http.client.HTTPException) as exc:
                raise DeepChromeError(
                    f"download of {url} interrupted after {part.stat().st_size:,} bytes ({exc.__class__.__name__}); "
                    "run the same command again to resume"
                ) from None
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


def safe_extract(archive: Path, out: Path, cells: list[str] | None = None) -> list[str]:
    """Extract the release's split files from ``archive`` into ``out/<cell>/classification/``.

    Returns
    -------
    list of str
        The cells extracted.

    Raises
    ------
    DeepChromeError
        For a member with an absolute path, a ``..`` component, or a link or device, before
        anything is written; for requested cells absent from the archive.
    """
    try:
        tar = tarfile.open(archive)
    except (tarfile.TarError, OSError) as exc:
        raise DeepChromeError(f"{archive}: not a readable tar archive ({exc})") from None
    with tar:
        members = tar.getmembers()
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
        found = sorted({cell for _, cell, _ in chosen})
        staging = out / ".deepchrome-extracting"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            for member, cell, split in chosen:
                destination = staging / cell / "classification" / f"{split}.csv"
                destination.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink, CHUNK)
            for cell in found:
                target = out / cell
                if target.exists():
                    shutil.rmtree(target)
                os.replace(staging / cell, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return found


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
) -> dict:
    """Download, verify and extract the release (or ``cells`` of it) into ``out``, then cache it.

    Parameters
    ----------
    record_url
        Zenodo record API URL (metadata with file URLs and checksums).
    url, checksum
        A mirror: the archive's URL and ``"md5:<hex>"`` / ``"sha256:<hex>"``, bypassing the record.

    Returns
    -------
    dict
        ``{"cells": [...], "archive": path or None}``.
    """
    out = Path(out)
    created = not out.exists()
    if url is None:
        entries = {e["key"]: e for e in fetch_metadata(record_url)}
        if file_name not in entries:
            raise DeepChromeError(f"record {record_url} has no file {file_name} (files: {', '.join(entries)})")
        entry = entries[file_name]
        url, checksum, size = entry["url"], entry["checksum"], entry["size"]
    else:
        size = None
    if not checksum or ":" not in checksum:
        raise DeepChromeError(f"no checksum for {file_name}: pass --checksum md5:<hex> with --url")
    algorithm, expected = checksum.split(":", 1)
    workdir = out / ".deepchrome-download"
    part = workdir / f"{file_name}.part"
    download(url, part, size=size, progress=progress)
    actual = file_checksum(part, algorithm)
    if actual != expected:
        shutil.rmtree(workdir, ignore_errors=True)
        if created and out.exists() and not any(out.iterdir()):
            out.rmdir()
        raise DeepChromeError(
            f"checksum mismatch for {file_name}: expected {algorithm} {expected}, got {actual}; "
            "the download was deleted"
        )
    archive = workdir / file_name
    os.replace(part, archive)
    try:
        found = safe_extract(archive, out, cells)
    except DeepChromeError:
        shutil.rmtree(workdir, ignore_errors=True)
        if created and out.exists() and not any(out.iterdir()):
            out.rmdir()
        raise
    kept = None
    if keep_archive:
        kept = out / file_name
        os.replace(archive, kept)
    shutil.rmtree(workdir, ignore_errors=True)
    if build_cache:
        from deepchrome.data.cache import load_split

        for cell in found:
            for split in SPLITS:
                load_split(out, cell, split)
    return {"cells": found, "archive": str(kept) if kept else None}
