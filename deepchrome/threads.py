"""How many CPU threads torch uses: one choice for fits, GAN fits, sweep and experiment workers.

deepchrome's networks are small (the DeepChrome CNN has 644,177 parameters): a training step at
batch 32 is a few milliseconds of work, too little to spread over many threads. When several
training processes share a machine (sweep or experiment workers, or fits started side by side),
each one using every core oversubscribes the machine: on 2 shared cores a CNN step took ~1 s with
2 torch threads per process and ~0.12 s with 1. So every training process

- registers itself as a local worker while it trains (a file per process in
  :func:`registry_dir`; files of processes that died are ignored and removed), and
- at the start of the fit and of every training epoch sets torch's intra-op threads (and, once,
  its inter-op threads) to ``max(1, usable cores // local workers)``, never more than torch had
  before deepchrome first changed them.

Explicit choices win: a ``threads`` option (``--threads N`` on ``fit``, ``gan fit``, ``sweep`` and
``experiment``; ``threads:`` in sweep and experiment configs; ``threads=`` in the Python API) is
used as given, and with ``OMP_NUM_THREADS`` (or ``MKL_NUM_THREADS``) set, or torch's thread count
changed after deepchrome set it (``torch.set_num_threads``), deepchrome leaves the threads alone.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import lightning.pytorch as pl
import torch

from deepchrome.errors import DeepChromeError

#: Environment variables that, when set, mean the user chose the thread count.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

_state: dict[str, int | None] = {"before": None, "set": None, "interop": None}


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def registry_dir() -> Path:
    """The folder where training processes of this user register (``$DEEPCHROME_WORKER_DIR`` or under the temp dir)."""
    folder = os.environ.get("DEEPCHROME_WORKER_DIR")
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(folder) if folder else Path(tempfile.gettempdir()) / f"deepchrome-workers-{uid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def local_workers() -> int:
    """Training processes registered on this machine and still alive (at least 1: this one)."""
    folder = registry_dir()
    alive = {os.getpid()}
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if _alive(pid):
                alive.add(pid)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
    return len(alive)


@contextlib.contextmanager
def registered_worker():
    """Count this process as a local training worker for the duration of the block (re-entrant)."""
    folder = registry_dir()
    path = folder / str(os.getpid())
    created = False
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.touch()
            created = True
    try:
        yield
    finally:
        if created:
            with contextlib.suppress(OSError):
                path.unlink()


def check_threads(value, where: str = "threads") -> int | None:
    """``value`` as a thread count (``None`` stays ``None``: choose automatically).

    Raises
    ------
    DeepChromeError
        Unless a whole number >= 1 (or ``None``).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DeepChromeError(f"{where} {value!r}: must be a whole number >= 1 (or null: one per core per worker)")
    if value > 1024:  # torch takes a C int; more threads than that is no machine's core count
        raise DeepChromeError(f"{where} {value!r}: must be at most 1024")
    return value


def choose_threads(requested: int | None = None, workers: int | None = None) -> int | None:
    """The torch thread count a training process should use (``None``: leave torch's as it is).

    Parameters
    ----------
    requested
        An explicit count (option or config key): returned as given.
    workers
        Training processes sharing this machine (default: :func:`local_workers`).
    """
    if requested is not None:
        return check_threads(requested)
    if any(os.environ.get(name) for name in THREAD_ENV):
        return None
    current = torch.get_num_threads()
    if _state["set"] is not None and current != _state["set"]:
        return None  # changed by the user (torch.set_num_threads) after deepchrome set it
    before = _state["before"] if _state["before"] is not None else current
    share = max(1, usable_cores() // max(1, workers if workers is not None else local_workers()))
    return min(before, share)


def apply_threads(requested: int | None = None, workers: int | None = None) -> int:
    """Set torch's intra-op (and, the first time, inter-op) threads as :func:`choose_threads` says.

    Returns
    -------
    int
        torch's intra-op thread count afterwards.
    """
    threads = choose_threads(requested, workers)
    if threads is None:
        return torch.get_num_threads()
    if _state["before"] is None:
        _state["before"] = torch.get_num_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    _state["set"] = threads
    if _state["interop"] is None:
        # settable once per process, before any inter-op work; later calls keep the first choice
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(threads)
        _state["interop"] = torch.get_num_interop_threads()
    return threads


class ThreadsCallback(pl.Callback):
    """Applies :func:`apply_threads` when the fit starts and at every training epoch's start, so a
    worker that started alone gives up cores once others start beside it (and takes them back).

    Parameters
    ----------
    threads
        An explicit thread count, or ``None`` to choose from the cores and the local workers.
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = check_threads(threads)

    def on_fit_start(self, trainer, pl_module) -> None:
        apply_threads(self.threads)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        apply_threads(self.threads)
