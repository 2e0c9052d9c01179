"""The one choice of torch CPU threads for fits, sweep and experiment workers."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from deepchrome import threads
from deepchrome.errors import DeepChromeError


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A process state as if deepchrome had never set the threads, a private worker registry, no env."""
    monkeypatch.setattr(threads, "_state", {"before": None, "set": None, "interop": None})
    monkeypatch.setenv("DEEPCHROME_WORKER_DIR", str(tmp_path / "workers"))
    for name in threads.THREAD_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    original = torch.get_num_threads()
    torch.set_num_threads(4)
    yield tmp_path / "workers"
    torch.set_num_threads(original)


def test_cores_are_shared_among_local_workers(fresh):
    assert threads.choose_threads(workers=1) == 4
    assert threads.choose_threads(workers=2) == 2
    assert threads.choose_threads(workers=3) == 1
    assert threads.choose_threads(workers=8) == 1  # never 0


def test_never_more_than_torch_had_before(fresh):
    torch.set_num_threads(2)  # e.g. torch's default of physical cores on a machine with hyperthreads
    assert threads.choose_threads(workers=1) == 2
    assert threads.apply_threads(workers=4) == 1
    # after deepchrome lowered it, the cap is still what torch had before (2), not 1
    assert threads.choose_threads(workers=1) == 2


def test_explicit_choices_win(fresh, monkeypatch):
    assert threads.choose_threads(3, workers=4) == 3
    assert threads.apply_threads(workers=4) == 1 == torch.get_num_threads()
    torch.set_num_threads(3)  # the user changed it after deepchrome did: left alone
    assert threads.choose_threads(workers=4) is None
    assert threads.apply_threads(workers=4) == 3
    monkeypatch.setattr(threads, "_state", {"before": None, "set": None, "interop": None})
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose_threads(workers=4) is None


def test_bad_thread_counts_are_refused(fresh):
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(DeepChromeError, match="must be a whole number >= 1"):
            threads.check_threads(bad, "threads")


def test_local_workers_counts_live_registered_processes(fresh):
    assert threads.local_workers() == 1
    with threads.registered_worker():
        assert (fresh / str(__import__("os").getpid())).is_file()
        assert threads.local_workers() == 1  # this process counts once
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            (fresh / str(other.pid)).touch()
            assert threads.local_workers() == 2
            assert threads.choose_threads() == 2
        finally:
            other.kill()
            other.wait()
        assert threads.local_workers() == 1  # the dead one's file is removed
        assert not (fresh / str(other.pid)).exists()
    assert not any(fresh.iterdir())


def test_cli_refuses_bad_threads(capsys):
    from deepchrome.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "--config", "experiments/example", "--threads", "0"])
    assert exit_info.value.code == 2
    assert "--threads" in capsys.readouterr().err
