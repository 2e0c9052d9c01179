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


def resolve_root(root: str | os.PathLike) -> Path:
    """A release root: ``root`` itself, or the bundled example for ``data/example`` outside a checkout.

    ``data/example`` is the example's folder in the source checkout; run from anywhere else (an
    installed package, a notebook elsewhere) the same name finds the copy installed with the
    package, so the README's snippets run anywhere.
    """
    path = Path(os.path.expanduser(os.fspath(root)))
    if path.exists():
        return path
    if path.as_posix().rstrip("/") in EXAMPLE_NAMES:
        log.debug("%s not found here: using the bundled example %s", path, EXAMPLE_ROOT)
        return EXAMPLE_ROOT
    return path
