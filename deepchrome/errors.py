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
