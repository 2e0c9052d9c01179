"""User-facing errors.

Anything the user can fix (a malformed file, an unknown cell, a bad option) raises
:class:`DeepChromeError`. The command line prints its message on one line and exits non-zero,
without a traceback; programming errors keep their tracebacks.
"""

from __future__ import annotations


class DeepChromeError(Exception):
    """An error caused by user input: its message names the file, line or field at fault."""


class DataFormatError(DeepChromeError):
    """A data file does not follow the expected format."""


class Interrupted(KeyboardInterrupt):
    """A command stopped by a signal: Ctrl-C (SIGINT) or SIGTERM (a ``KeyboardInterrupt``, so code that
    catches Ctrl-C also catches a SIGTERM).

    Attributes
    ----------
    signal
        The signal's number (the command line exits with 128 + it: 130, 143).
    note
        What the interruption left behind and how to go on, e.g. ``its checkpoints are kept in
        RUN/checkpoints: resume with --ckpt_path last``; empty if nothing needs saying.
    """

    def __init__(self, signal: int, note: str = "") -> None:
        super().__init__(signal, note)
        self.signal = signal
        self.note = note

    def __str__(self) -> str:
        import signal as signals

        name = signals.Signals(self.signal).name
        return f"interrupted ({name})" + (f"; {self.note}" if self.note else "")


class ArgumentTypeError(DeepChromeError, TypeError):
    """A Python API argument of the wrong type (a :class:`TypeError` too): its message names the
    parameter, what it expects and what it got."""


def check_argument(name: str, value, types: type | tuple[type, ...], expected: str, none: bool = False) -> None:
    """Raise :class:`ArgumentTypeError` unless ``value`` is an instance of ``types`` (or ``None``, if allowed).

    ``bool`` is not taken for a number. Example message: ``overrides: expected a dict of dotted keys
    to values, got list [1]``.
    """
    if value is None and none:
        return
    numbers = types if isinstance(types, tuple) else (types,)
    if isinstance(value, types) and not (isinstance(value, bool) and bool not in numbers and int in numbers):
        return
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    expected += " or None" if none else ""
    raise ArgumentTypeError(f"{name}: expected {expected}, got {type(value).__name__} {shown}")


def interruption_reason(exc: BaseException) -> str:
    """What stopped a trial or job, for its record: ``interrupted (SIGINT)`` / ``(SIGTERM)`` for an
    :class:`Interrupted`, else ``interrupted (<exception class>)``."""
    import signal as signals

    if isinstance(exc, Interrupted):
        return f"interrupted ({signals.Signals(exc.signal).name})"
    return f"interrupted ({exc.__class__.__name__})"
