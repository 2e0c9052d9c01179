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
