"""Names given by users that become file or folder names (cells, marks, archive files).

A plain name is 1 to 100 ASCII letters, digits, ``.``, ``_`` and ``-``, not starting with ``.``:
it can never climb out of a folder (``..``, ``/``), hide itself (``.name``), be empty, or carry
a separator or a comma into a CSV header.
"""

from __future__ import annotations

import re

from deepchrome.errors import DeepChromeError

#: The longest plain name.
MAX_NAME_LENGTH = 100
_PLAIN = re.compile(r"[A-Za-z0-9._-]+")


def is_plain_name(value: object) -> bool:
    """Whether ``value`` is a plain name (see the module docstring)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_NAME_LENGTH
        and _PLAIN.fullmatch(value) is not None
        and not value.startswith(".")
    )


def check_name(value: str, what: str, kind: str | None = None) -> str:
    """Return ``value`` if it is a plain name, else raise naming the option and the rule.

    Parameters
    ----------
    value
        The name given by the user.
    what
        Where it came from, as the user wrote it: ``--cell``, ``--file``, ``archive member 'x/y'``.
    kind
        What it names, for the message (default: ``what`` without leading dashes + ``name``,
        e.g. ``cell name`` for ``--cell``).

    Returns
    -------
    str
        ``value``, unchanged.

    Raises
    ------
    DeepChromeError
        One line, e.g. ``--cell '../victim': a cell name must be a plain name (letters, digits,
        '.', '_', '-')``.
    """
    if is_plain_name(value):
        return value
    kind = kind or f"{what.lstrip('-')} name"
    if not isinstance(value, str):
        raise DeepChromeError(f"{what}: a {kind} must be text, got {type(value).__name__}")
    if not value:
        rule = "must not be empty"
    elif len(value) > MAX_NAME_LENGTH:
        rule = f"must be at most {MAX_NAME_LENGTH} characters (this one has {len(value)})"
    elif _PLAIN.fullmatch(value) is None:
        rule = "must be a plain name (letters, digits, '.', '_', '-')"
    else:
        rule = "must not start with '.'"
    shown = value if len(value) <= MAX_NAME_LENGTH else f"{value[:40]}..."
    raise DeepChromeError(f"{what} {shown!r}: a {kind} {rule}")


__all__ = ["MAX_NAME_LENGTH", "check_name", "is_plain_name"]
