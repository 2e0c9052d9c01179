"""Snapshots of folders, to assert that a failing command changed nothing."""

from __future__ import annotations

from pathlib import Path


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` (hidden ones included): file contents, ``None`` for folders and links."""
    if not folder.exists():
        return {}
    entries: dict[str, bytes | None] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        entries[name] = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    return entries


def hidden(folder: Path) -> list[str]:
    """Names of hidden entries anywhere under ``folder`` (left-over temporary files and folders)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*")) if folder.exists() else []
