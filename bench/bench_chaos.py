"""Chaos run of the experiment job table: several workers, one SIGKILLed mid-job, one job failing once.

1. A clean run: one ``deepchrome experiment`` worker on simulated cells.
2. The chaos run, per storage (SQLite, a journal file; PostgreSQL with ``--postgres URL`` or
   ``$DEEPCHROME_TEST_POSTGRES``): ``--workers`` ``deepchrome experiment`` processes share one
   study; the first job one of them starts is killed with SIGKILL, and a training of
   ``--fail-cell`` raises once (:class:`FailOnce`, a Lightning callback in the model config).
   The other workers fail the killed job once its heartbeats stop and retry both jobs.

Checks that the chaos run's results.csv has every job exactly once and equals the clean run's (same
seeds, same AUROCs), and prints the wall times and the duplicates (attempts closed as twins of
another attempt, and jobs with more than one result: must be 0).

Run: python bench/bench_chaos.py [--cells 6] [--genes 900] [--workers 3] [--postgres URL]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
#: results.csv columns that a rerun of the same job with the same seed reproduces exactly
SAME = ["family", "model", "target", "selection", "test_cell", "train_cells", "train_genes", "train_fraction",
        "curve", "x", "val_auroc", "test_auroc", "test_auprc", "epochs"]  # fmt: skip


class FailOnce(pl.Callback):
    """Raises at the start of the first training on exactly ``cells``; ``marker`` records that it did
    (shared by every worker), so the job's retry trains normally.

    Parameters
    ----------
    marker
        A file created (exclusively) by the one failing training.
    cells
        The training cells whose first job fails.
    """

    def __init__(self, marker: str, cells: list[str]) -> None:
        self.marker = marker
        self.cells = list(cells)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Raise once, for the first training on ``cells``."""
        if list(trainer.datamodule.train_cells) != self.cells:
            return
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        raise RuntimeError(f"injected failure (first training on {'+'.join(self.cells)})")


def experiment_config(folder: Path, root: Path, name: str, fail: tuple[Path, list[str]] | None = None,
                      epochs: int = 10, **extra) -> Path:  # fmt: skip
    """An experiment config (families single and size, linear model) in ``folder``; with ``fail``
    ``(marker, cells)`` the model config carries a :class:`FailOnce` callback."""
    from deepchrome.config import load_config

    model = load_config(REPO / "configs" / "linear.yaml")
    if fail is not None:
        model["trainer"]["callbacks"] = [*copy.deepcopy(model["trainer"]["callbacks"]), {
            "class_path": "bench.bench_chaos.FailOnce", "init_args": {"marker": str(fail[0]), "cells": fail[1]},
        }]  # fmt: skip
    model_path = folder / f"{name}-model.yaml"
    model_path.write_text(yaml.safe_dump(model, sort_keys=False))
    config = {
        "root": str(root), "models": {"linear": str(model_path)},
        "overrides": {"trainer.max_epochs": epochs, "trainer.enable_progress_bar": False,
                      "trainer.enable_model_summary": False},
        "families": ["single", "size"], "size": {"fractions": [0.5, 1.0], "n_cells": [1]},
        "study_name": name, "heartbeat_interval": 1, "grace_period": 3, **extra,
    }  # fmt: skip
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def worker_environment() -> dict:
    """Workers use this process's thread count, so their trainings reproduce its results exactly, and
    may import this bench's failure-injecting callback (configs import only trusted packages)."""
    import torch

    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "PYTHONPATH": str(REPO),
            "DEEPCHROME_TRUSTED_MODULES": "bench"}  # fmt: skip


def worker_command(config: Path, out: Path, storage: str) -> list[str]:
    """The ``deepchrome experiment`` command of one worker."""
    return [sys.executable, "-m", "deepchrome.cli", "experiment", "--config", str(config), "--out", str(out),
            "--storage", storage]  # fmt: skip


def clean_run(config: Path, out: Path, storage: str) -> float:
    """One worker, nothing killed; its wall seconds."""
    start = time.perf_counter()
    done = subprocess.run(worker_command(config, out, storage), cwd=REPO, env=worker_environment(),
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the clean run failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def chaos_run(config: Path, out: Path, storage: str, workers: int = 3, timeout: float = 600) -> dict:
    """``workers`` experiment workers on one storage; SIGKILL the worker of the first running job.

    Returns
    -------
    dict
        ``seconds`` (wall time), ``killed`` (the killed attempt's trial number), ``killed_job``,
        ``outputs`` (each surviving worker's stdout).
    """
    import optuna

    from deepchrome.sweep import make_storage

    command = worker_command(config, out, storage)
    start = time.perf_counter()
    processes = [subprocess.Popen(command, cwd=REPO, env=worker_environment(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(workers)]  # fmt: skip
    by_pid = {p.pid: p for p in processes}
    name = yaml.safe_load(config.read_text())["study_name"]
    reader = make_storage(storage, heartbeat_interval=None)
    victim, killed = None, None
    deadline = time.time() + timeout
    while victim is None and time.time() < deadline:
        time.sleep(0.1)
        try:
            trials = optuna.load_study(study_name=name, storage=reader).get_trials(deepcopy=False)
        except KeyError:
            continue
        for trial in trials:
            worker = trial.user_attrs.get("worker", "")
            pid = int(worker.rsplit(":", 1)[1]) if ":" in worker else None
            if trial.state == optuna.trial.TrialState.RUNNING and pid in by_pid:
                victim, killed = by_pid[pid], trial
                break
    if victim is None:
        for process in processes:
            process.kill()
        raise RuntimeError("no job started within the timeout")
    # Killed at once: a small job can finish within a fixed delay, and the kill would then land
    # between jobs. The attempt still RUNNING under the dead worker is the one interrupted.
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    left = [
        t
        for t in optuna.load_study(study_name=name, storage=reader).get_trials(deepcopy=False)
        if t.state == optuna.trial.TrialState.RUNNING and t.user_attrs.get("worker", "").endswith(f":{victim.pid}")
    ]
    killed = left[0] if left else killed
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=max(1.0, deadline - time.time()))
        if process is not victim:
            if process.returncode != 0:
                raise RuntimeError(f"a worker failed ({process.returncode}):\n{stderr[-3000:]}")
            outputs.append(stdout)
    return {"seconds": time.perf_counter() - start, "killed": killed.number, "killed_job": killed.params["job"],
            "outputs": outputs}  # fmt: skip


def duplicates(storage: str, name: str) -> dict:
    """``closed``: attempts closed as twins of another attempt; ``results``: jobs with more than one
    COMPLETE trial (a job run twice after it was done; must be 0)."""
    import optuna

    from deepchrome.sweep import make_storage

    trials = optuna.load_study(study_name=name, storage=make_storage(storage, heartbeat_interval=None)).trials
    closed = sum("duplicate of" in t.user_attrs.get("closed", "") for t in trials)
    complete = [t.params["job"] for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    return {"closed": closed, "results": len(complete) - len(set(complete))}


def same_results(a: Path, b: Path) -> tuple[bool, int]:
    """Whether two results.csv agree on every reproducible column, and the number of rows."""
    keys = ["family", "target", "selection", "test_cell", "curve", "x"]
    left = pd.read_csv(a)[SAME].sort_values(keys).reset_index(drop=True)
    right = pd.read_csv(b)[SAME].sort_values(keys).reset_index(drop=True)
    return left.equals(right), len(left)


def main() -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", type=int, default=6)
    parser.add_argument("--genes", type=int, default=900)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--fail-cell", default="S02")
    parser.add_argument("--postgres", default=os.environ.get("DEEPCHROME_TEST_POSTGRES"))
    args = parser.parse_args()
    load = os.getloadavg()[0]
    from deepchrome.data.simulate import simulate_release

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "release"
        simulate_release(root, n_cells=args.cells, n_genes=args.genes, seed=0)
        os.environ["DEEPCHROME_CACHE_DIR"] = str(tmp / "cache")
        clean_seconds = clean_run(experiment_config(tmp, root, "clean", epochs=args.epochs), tmp / "clean",
                                  f"sqlite:///{tmp / 'clean.db'}")  # fmt: skip
        jobs = len(json.loads((tmp / "clean" / "jobs.json").read_text())["jobs"])
        print(f"\n{args.cells} simulated cells x {args.genes} genes, {jobs} jobs (linear, {args.epochs} epochs), "
              f"{os.cpu_count()} cores, load average {load:.1f} before the runs")  # fmt: skip
        print(f"clean run, 1 worker (SQLite): {clean_seconds:.0f} s")
        storages = {"sqlite": f"sqlite:///{tmp / 'chaos.db'}", "journal": f"journal:///{tmp / 'chaos.log'}"}
        if args.postgres:
            storages["postgresql"] = args.postgres
        for kind, storage in storages.items():
            name = f"chaos-{kind}-{os.getpid()}"
            config = experiment_config(tmp, root, name, fail=(tmp / f"{name}.failed", [args.fail_cell]),
                                       epochs=args.epochs)  # fmt: skip
            run = chaos_run(config, tmp / name, storage, workers=args.workers)
            equal, rows = same_results(tmp / "clean" / "results.csv", tmp / name / "results.csv")
            found = duplicates(storage, name)
            print(f"{kind}: {args.workers} workers, job {run['killed_job']} killed mid-run, "
                  f"{'+'.join([args.fail_cell])} failed once: {run['seconds']:.0f} s; results.csv {rows} rows, "
                  f"{'equal to' if equal else 'DIFFERENT from'} the clean run; duplicates: {found['results']} "
                  f"results run twice, {found['closed']} twin attempts closed unrun")  # fmt: skip


if __name__ == "__main__":
    main()
