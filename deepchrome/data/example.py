"""The bundled example data set, installed with the package (4 simulated cells x 300 genes)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

#: The example release root inside the installed package.
EXAMPLE_ROOT = Path(__file__).resolve().parents[1] / "example"
#: Names that mean the bundled example when no such folder exists where they are looked for.
EXAMPLE_NAMES = ("data/example", "example")

log = logging.getLogger(__name__)


def resolve_root(root: str | os.PathLike, base: str | os.PathLike | None = None) -> Path:
    """A release root: ``root`` itself (relative to ``base``, default the working directory), or the
    bundled example for ``data/example`` when no such folder is there.

    ``data/example`` is the example's folder in the source checkout; run from anywhere else (an
    installed package, a notebook elsewhere) the same name finds the copy installed with the
    package, so the README's snippets run anywhere.
    """
    path = Path(os.path.expanduser(os.fspath(root)))
    target = path if base is None or path.is_absolute() else Path(base) / path
    if target.exists():
        return target
    if path.as_posix().rstrip("/") in EXAMPLE_NAMES:
        log.debug("%s not found: using the bundled example %s", target, EXAMPLE_ROOT)
        return EXAMPLE_ROOT
    return target
