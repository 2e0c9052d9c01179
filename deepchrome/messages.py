"""What users see of other libraries' messages: one choice for the command line and the Python API.

Lightning logs advertisements (``💡 Tip: ...litlogger``), hardware notes (``GPU available: False``)
and seed lines that users cannot act on; torch and Lightning warn about their own internals. The
command line's ``-q``/``-v`` choose a level (:func:`output_level`); the Python API's entry points
use the default level through :func:`default_output`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

from deepchrome.errors import DeepChromeError

P = ParamSpec("P")
R = TypeVar("R")

#: Whether an :func:`output_level` block is active in this context (an inner API call keeps it).
_active: contextvars.ContextVar[bool] = contextvars.ContextVar("deepchrome_output_level", default=False)

#: Messages from Lightning and torch that users cannot act on (shown with --verbose).
UNACTIONABLE_WARNINGS = (
    r".*LeafSpec.*is deprecated",  # Lightning's _pytree against torch >= 2.10
    r".*does not have many workers",  # the data are in memory: workers would only add copies
    r"Checkpoint directory .* exists and is not empty",  # resuming a run: its own checkpoints
    r"Experiment logs directory .* exists and is not empty",
    r"The number of training batches .* is smaller than the logging interval",
    r"LightningCLI's args parameter",
    r"The dirpath has changed from",  # evaluating a checkpoint of another run folder: nothing to reload
    r".* is experimental \(supported from v",  # optuna's ExperimentalWarning about the heartbeat features used
    r"Argument ``\w+`` is an experimental feature",
)
#: Lightning's advertisements (litlogger, litmodels) and hardware notes (the config chooses the accelerator).
UNACTIONABLE_MESSAGES = (
    "💡 Tip:", "Seed set to", "GPU available:", "TPU available:", "HPU available:",
    # the command's own line says it was interrupted, and what it left
    "\nDetected KeyboardInterrupt", "Received SIGTERM",
    # the steps of loading a checkpoint (and, before a refused one, a line ahead of the error)
    "Restoring states from the checkpoint path", "Restored all states from the checkpoint",
    "Loaded model weights from the checkpoint",
    # why a training ended: the run's metrics say it, and a report or experiment would print it per job
    "`Trainer.fit` stopped:",
)  # fmt: skip


class DropMessages(logging.Filter):
    """Drops Lightning's unactionable messages and, when quiet, everything below a warning."""

    def __init__(self, quiet: bool) -> None:
        super().__init__()
        self.quiet = quiet
        self.interrupted = False  # set once a Ctrl-C traceback went by: optuna's next line is dropped too

    def filter(self, record: logging.LogRecord) -> bool:
        if self.quiet and record.levelno < logging.WARNING:
            return False
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            self.interrupted = True
            return False  # optuna's "Trial N failed" traceback for a Ctrl-C: the command's own line says it
        if self.interrupted and str(record.msg).startswith("Trial ") and "failed with value" in str(record.msg):
            return False  # and the line optuna adds after it
        text = re.sub(r"^\[rank: \d+\] ", "", str(record.msg))
        return not text.startswith(UNACTIONABLE_MESSAGES)


@contextlib.contextmanager
def output_level(verbosity: int) -> Iterator[None]:
    """Warnings and log messages for one command: quiet (-1), default (0) or verbose (1); restored after.

    Lightning's user-facing messages come from its ``rank_zero`` and ``seed`` loggers; a filter on
    those (not a level, which importing Lightning resets) drops the unactionable ones by default
    and all but warnings when quiet.
    """
    emitters = ("pytorch.utilities.rank_zero", "fabric.utilities.rank_zero", "fabric.utilities.seed",
                "pytorch.trainer.connectors.signal_connector")  # fmt: skip
    sources = [logging.getLogger(f"lightning.{name}") for name in emitters]
    sources.append(logging.getLogger("optuna.study._optimize"))  # a trial's failure (its traceback) on Ctrl-C
    ours = logging.getLogger("deepchrome")
    level = ours.level
    drop = DropMessages(quiet=verbosity < 0)
    token = _active.set(True)
    with warnings.catch_warnings():
        if verbosity > 0:
            warnings.simplefilter("default")
            ours.setLevel(logging.DEBUG)
        else:
            for pattern in UNACTIONABLE_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            for source in sources:
                source.addFilter(drop)
        if verbosity < 0:
            warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for source in sources:
                source.removeFilter(drop)
            ours.setLevel(level)
            _active.reset(token)


def default_output(function: Callable[P, R]) -> Callable[P, R]:
    """Run a Python API entry point under :func:`output_level` ``(0)`` unless a caller already chose
    a level (the command line's ``-q``/``-v``): the API prints what the command prints by default,
    without Lightning's advertisements and hardware notes, and its errors name the API's arguments
    (:func:`api_words`) rather than the command line's options."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if _active.get():
            return function(*args, **kwargs)
        with output_level(0):
            try:
                return function(*args, **kwargs)
            except DeepChromeError as exc:
                exc.args = (api_words(str(exc)), *exc.args[1:])
                raise

    return wrapper


#: Command-line options in the library's shared messages, and how a Python caller is told the same
#: thing (first match first; a config key becomes its ``overrides`` key of ``deepchrome.fit``).
API_WORDS = (
    (re.compile(r"--overwrite\b"), "overwrite=True"),
    (re.compile(r"--ckpt_path (last|best)\b"), r"ckpt_path='\1'"),
    (re.compile(r"--ckpt_path\b"), "ckpt_path"),
    (re.compile(r"--trainer\.default_root_dir\b"), "run_dir"),
    (re.compile(r"--threads\b"), "threads"),
    (re.compile(r"--engine\b"), "engine"),
    (re.compile(r"--out\b"), "out"),
    (re.compile(r"--storage\b"), "storage"),
    (re.compile(r"--((?:trainer|model|data)\.[\w.]*\w|seed_everything)\b"), r'overrides["\1"]'),
)


def api_words(message: str) -> str:
    """``message`` with the command-line options it names replaced by the Python API's arguments.

    Parameters
    ----------
    message
        A one-line error written for the command line (``pass --overwrite to replace it``).

    Returns
    -------
    str
        The same message for a Python caller (``pass overwrite=True to replace it``); see
        :data:`API_WORDS`.
    """
    for pattern, words in API_WORDS:
        message = pattern.sub(words, message)
    return message
