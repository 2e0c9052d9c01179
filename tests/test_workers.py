"""Workers sharing optuna storages: distinct sweep trials, the experiment job table (retries,
attempts, errors), killed workers on every storage, nested learning-curve subsets, and a short
chaos run (killed worker + failing job) whose results equal a clean run's."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import optuna
import pandas as pd
import pytest

from bench.bench_chaos import chaos_run, duplicates, experiment_config, same_results
from deepchrome.data.datamodule import HistoneDataModule
from deepchrome.errors import DeepChromeError
from deepchrome.experiments.run import experiment_status, run_experiment
from deepchrome.sweep import HEARTBEAT_ATTR, duplicate_trials, make_sampler, make_storage, run_sweep, suggest
from tests.cli import run_cli
from tests.conftest import REPO
from tests.test_sweep import POSTGRES, sweep_config

EPOCHS = 6


# -- learning-curve subsets ------------------------------------------------------------------------
def _train_genes(root, cells, **options) -> dict[str, set[str]]:
    module = HistoneDataModule(root=str(root), train_cells=cells, **options)
    module.setup("fit")
    data = module.data["train"]
    names = data.cell_of_gene
    return {cell: set(data.gene_ids[names == cell].tolist()) for cell in cells}


def test_subsets_are_nested_and_independent_of_the_cell_order(simulated):
    fractions = (0.1, 0.25, 0.5, 1.0)
    subsets = [_train_genes(simulated, ["S01", "S02"], train_fraction=f) for f in fractions]
    for cell in ("S01", "S02"):
        sizes = [len(s[cell]) for s in subsets]
        assert sizes[0] == round(0.1 * sizes[-1]) and sizes[1] == round(0.25 * sizes[-1])
        for small, large in zip(subsets, subsets[1:], strict=False):
            assert small[cell] < large[cell]  # strictly nested
    assert subsets[0]["S01"] != subsets[0]["S02"]  # each cell draws its own genes
    reordered = _train_genes(simulated, ["S02", "S01"], train_fraction=0.1)
    assert reordered == subsets[0]
    alone = _train_genes(simulated, ["S02"], train_fraction=0.1)
    assert alone["S02"] == subsets[0]["S02"]
    other_seed = _train_genes(simulated, ["S01"], train_fraction=0.1, seed=1)
    assert other_seed["S01"] != subsets[0]["S01"]
    counted = _train_genes(simulated, ["S01"], n_train_genes=20)["S01"]
    assert len(counted) == 20 and counted < subsets[1]["S01"]  # a gene count nests with the fractions too
    assert np.isclose(len(subsets[0]["S01"]) / len(subsets[-1]["S01"]), 0.1, atol=0.01)


# -- sweeps: distinct draws, bad input found first, interrupted and killed workers -----------------
SPACE = {"model.optimizer.init_args.lr": {"float": [1e-4, 1e-1], "log": True},
         "model.net.init_args.aggregate": {"categorical": ["max", "mean", "sum"]}}  # fmt: skip


def _two_workers_asking(samplers, rounds: int = 8) -> optuna.Study:
    """Workers (studies with their own samplers) sharing one storage, asking in lockstep."""
    storage = optuna.storages.InMemoryStorage()
    workers = [optuna.create_study(study_name="s", storage=storage, sampler=s, load_if_exists=True) for s in samplers]
    for _ in range(rounds):
        trials = [(w, w.ask()) for w in workers]
        for study, trial in trials:
            params = suggest(trial, SPACE)
            study.tell(trial, math.log10(params["model.optimizer.init_args.lr"]))
    return workers[0]


@pytest.mark.parametrize("name", ["tpe", "random"])
def test_workers_on_one_study_never_draw_the_same_parameters(name):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = {"name": name, "seed": 0, **({"n_startup_trials": 4} if name == "tpe" else {})}
    study = _two_workers_asking([make_sampler(spec, SPACE) for _ in range(2)])
    assert len(study.trials) == 16 and duplicate_trials(study.trials) == []
    # the old way (one identically seeded sampler per worker) repeats every draw: the check can fail
    cls = optuna.samplers.TPESampler if name == "tpe" else optuna.samplers.RandomSampler
    options = {"n_startup_trials": 4} if name == "tpe" else {}
    old = _two_workers_asking([cls(seed=0, **options) for _ in range(2)])
    assert len(duplicate_trials(old.trials)) >= 2
    # draws are a function of (seed, trial number): a one-worker rerun repeats the first draws
    again = _two_workers_asking([make_sampler(spec, SPACE)], rounds=3)
    assert [t.params for t in again.trials] == [t.params for t in study.trials[:3]]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"sampler": {"name": "tpee"}}, "sampler: unknown sampler 'tpee' (available: tpe, random, grid)"),
        ({"sampler": {"name": "tpe", "n_startup": 3}}, "unexpected keyword argument 'n_startup'"),
        ({"pruner": {"name": "median", "warmup": 1}}, "unexpected keyword argument 'warmup'"),
        ({"objective": "val_aucroc"}, "unknown objective 'val_aucroc' (available: val_auroc, val_auprc, val_loss)"),
        ({"heartbeat_interval": 0}, "heartbeat_interval must be a whole number >= 1, got 0"),
        ({"search_space": {"model.net.init_args.aggregate": {"categorical": ["max", "maxx"]}}},
         "model.net.init_args.aggregate = 'maxx' cannot be built: unknown aggregate 'maxx' for LinearBaseline"),
        ({"search_space": {"model.net.class_path": {"categorical": ["deepchrome.models.LinearBaseline",
                                                                     "deepchrome.models.Nope"]}}},
         "model.net.class_path = 'deepchrome.models.Nope' cannot be built"),
        ({"search_space": {"data.transform": {"categorical": ["log1p", "log2"]}}},
         "data.transform = 'log2' cannot be built: unknown transform 'log2'"),
    ],
)  # fmt: skip
def test_bad_sweep_input_is_found_before_anything_is_written(tmp_path, extra, message):
    config = sweep_config(tmp_path, **extra)
    result = run_cli("sweep", "--config", str(config), "--sweep-dir", str(tmp_path / "sweep"), check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "sweep").exists()


def _wait_for_running(name: str, storage, timeout: float = 120, stop=None) -> optuna.trial.FrozenTrial | None:
    """The first RUNNING trial whose objective has started (it has a ``config`` or ``started`` mark)."""
    deadline = time.time() + timeout
    while time.time() < deadline and not (stop is not None and stop.is_set()):
        time.sleep(0.2)
        try:
            running = optuna.load_study(study_name=name, storage=storage).get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
            )
        except Exception:  # not created yet, or the database is busy with the worker's writes
            continue
        started = [t for t in running if {"config", "started"} & set(t.user_attrs)]
        if started:
            return started[0]
    return None


def test_interrupted_sweep_worker_fails_its_trial(tmp_path):
    """Ctrl-C mid-trial (in this process: Lightning turns it into sys.exit): the trial is FAILED."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    done = threading.Event()

    def interrupt() -> None:
        if _wait_for_running("int", storage, stop=done) is not None and not done.is_set():
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGINT)

    handler = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    try:
        result = run_cli("sweep", "--config", str(sweep_config(tmp_path, name="int", epochs=400)), "--storage",
                         storage, "--n-trials", "1", "--sweep-dir", str(tmp_path / "sweep"), check=False)  # fmt: skip
    finally:
        done.set()
        signal.signal(signal.SIGINT, handler)  # Lightning ignores further Ctrl-C after the first
    thread.join()
    assert result.returncode == 130 and "interrupted" in result.stderr
    (trial,) = optuna.load_study(study_name="int", storage=storage).trials
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["fail_reason"] == "interrupted (SIGINT)"


VICTIM = """
import sys, time, optuna, yaml
from deepchrome.sweep import make_storage, suggest
config = yaml.safe_load(open(sys.argv[1]))
storage = make_storage(sys.argv[2], config["heartbeat_interval"], config["grace_period"], config.get("max_retry", 2))
study = optuna.create_study(study_name=config["study_name"], storage=storage, direction="maximize")
def objective(trial):
    suggest(trial, config["search_space"])
    trial.set_user_attr("started", True)
    time.sleep(600)
study.optimize(objective, n_trials=1)
"""


def test_journal_storage_recovers_a_killed_worker(tmp_path):
    """SIGKILL a worker mid-trial on a journal file (a bare optuna worker, quick to start): the next
    sweep worker fails its trial and runs the retry."""
    storage = f"journal:///{tmp_path / 'study.log'}"
    config = sweep_config(tmp_path, name="journal", epochs=2)
    victim = subprocess.Popen([sys.executable, "-c", VICTIM, str(config), storage], cwd=REPO)
    killed = _wait_for_running("journal", make_storage(storage, heartbeat_interval=None))
    assert killed is not None, "the victim never started its trial"
    time.sleep(1.5)  # heartbeats recorded (interval 1 s)
    beats = make_storage(storage, heartbeat_interval=None).get_trial(killed._trial_id).system_attrs
    assert HEARTBEAT_ATTR in beats
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    time.sleep(2.5)  # the config's grace period (2 s) without a heartbeat
    summary = run_sweep(config, n_trials=1, storage=storage, sweep_dir=tmp_path / "sweep")
    study = optuna.load_study(study_name="journal", storage=make_storage(storage, heartbeat_interval=None))
    assert study.trials[killed.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in study.trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == killed.params and summary.get("duplicates") == 0 and summary.get("x", 7) == 7


# -- experiments: the job table, a failed job, and the chaos run ------------------------------------
TARGETS = ["S01", "S02", "S03"]  # families single + size (0.5, 1.0): 6 jobs
KEYS = ["family", "target", "selection", "test_cell", "curve", "x"]


@pytest.fixture(scope="module")
def clean(simulated, tmp_path_factory):
    """The reference: one worker, no failures (results.csv's folder)."""
    out = tmp_path_factory.mktemp("clean")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEEPCHROME_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "deepchrome-cache"))
        summary = run_experiment(experiment_config(out, simulated, "clean", epochs=EPOCHS, targets=TARGETS), out=out)
    assert summary["finished"] == summary["jobs"] == 6 and summary["failed"] == 0
    return out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"size": {"fractions": [0.1, 1.5]}}, "size.fractions has 1.5; expected in (0, 1]"),
        ({"size": {"fractions": [0, 0.5]}}, "size.fractions has 0; expected in (0, 1]"),
        ({"size": {"n_cells": [0]}}, "size.n_cells has 0; expected whole numbers >= 1"),
        ({"max_attempts": 0}, "max_attempts must be a whole number >= 1, got 0"),
        ({"overrides": {"model.net.class_path": "deepchrome.models.Nope"}}, "model 'linear' cannot be built"),
    ],
)
def test_bad_experiment_input_is_found_before_anything_is_written(simulated, tmp_path, extra, message):
    config = experiment_config(tmp_path, simulated, "bad", **extra)
    result = run_cli("experiment", "--config", str(config), "--out", str(tmp_path / "out"), check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_failed_job_is_reported_then_completes_on_rerun(simulated, clean, tmp_path):
    marker, out = tmp_path / "failed", tmp_path / "out"

    def config(attempts: int):
        return experiment_config(tmp_path, simulated, "e", fail=(marker, ["S02"]), epochs=EPOCHS, targets=TARGETS,
                                 max_attempts=attempts)  # fmt: skip

    first = run_experiment(config(1), out=out)
    assert (first["finished"], first["failed"]) == (5, 1)
    summary = (out / "summary.md").read_text()
    assert "## Failed jobs" in summary and "1 attempts, last error: RuntimeError: injected failure" in summary
    status = run_cli("experiment", "--config", str(config(1)), "--out", str(out), "--status").stdout
    assert "6 jobs: 5 done, 0 running, 0 pending, 1 failed" in status and "| FAILED | 1 | linear | S02 |" in status
    second = run_experiment(config(2), out=out)  # a rerun allowing two attempts retries it
    assert (second["finished"], second["failed"]) == (6, 0)
    table = experiment_status(config(2), out=out)
    assert set(table.state) == {"DONE"} and sorted(table.attempts) == [1, 1, 1, 1, 1, 2]
    assert table.error.notna().sum() == 1  # the retried job keeps its first attempt's error
    assert same_results(clean / "results.csv", out / "results.csv") == (True, 12)  # 4 rows per target
    trials = len(optuna.load_study(study_name="e", storage=f"sqlite:///{out / 'jobs.db'}").trials)
    third = run_cli("experiment", "--config", str(config(2)), "--out", str(out))
    assert "6 jobs (6 finished before, 0 to run)" in third.stdout  # done jobs never run again
    assert len(optuna.load_study(study_name="e", storage=f"sqlite:///{out / 'jobs.db'}").trials) == trials
    other = experiment_config(tmp_path, simulated, "e", epochs=EPOCHS, targets=["S01"])  # job ids mean other jobs
    refused = run_cli("experiment", "--config", str(other), "--out", str(out), check=False)
    assert refused.returncode == 2 and "holds the jobs of another plan" in refused.stderr
    # the same jobs trained otherwise (another max_epochs) are another plan too: no stale results reused
    longer = experiment_config(tmp_path, simulated, "e", fail=(marker, ["S02"]), epochs=EPOCHS + 1, targets=TARGETS,
                               max_attempts=2)  # fmt: skip
    refused = run_cli("experiment", "--config", str(longer), "--out", str(out), check=False)
    assert refused.returncode == 2 and "holds the jobs of another plan" in refused.stderr


def chaos(storage: str, simulated, clean, tmp_path, name: str) -> None:
    """3 workers, one SIGKILLed mid-job, one job failing once: every job once, the clean run's AUROCs."""
    config = experiment_config(tmp_path, simulated, name, fail=(tmp_path / "failed", ["S02"]), epochs=EPOCHS,
                               targets=TARGETS)  # fmt: skip
    run = chaos_run(config, tmp_path / "out", storage, workers=3, timeout=300)
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(results) == 12 and not results.duplicated(KEYS).any()
    assert same_results(clean / "results.csv", tmp_path / "out" / "results.csv") == (True, 12)
    table = experiment_status(config, out=tmp_path / "out", storage=storage).set_index("job")
    assert set(table.state) == {"DONE"} and table.loc[run["killed_job"], "attempts"] >= 2
    study = optuna.load_study(study_name=name, storage=make_storage(storage, heartbeat_interval=None))
    killed = study.trials[run["killed"]]
    assert killed.state == optuna.trial.TrialState.FAIL and "error" not in killed.user_attrs  # lost, not raised
    errors = [t.user_attrs.get("error", "") for t in study.trials]
    assert sum(e.startswith("RuntimeError: injected failure") for e in errors) == 1
    assert duplicates(storage, name)["results"] == 0


def test_chaos_sqlite(simulated, clean, tmp_path):
    chaos(f"sqlite:///{tmp_path / 'jobs.db'}", simulated, clean, tmp_path, "chaos")


@pytest.mark.skipif(not POSTGRES, reason="no PostgreSQL server: .ci/run starts one and sets DEEPCHROME_TEST_POSTGRES")
def test_chaos_postgres(simulated, clean, tmp_path):
    chaos(POSTGRES, simulated, clean, tmp_path, f"chaos-{os.getpid()}-{time.time_ns()}")


def test_validation_objectives_are_read_at_the_best_epoch(tmp_path):
    """val_loss is not in a run's metrics.json: the sweep reads it from metrics.csv at the best epoch."""
    config = sweep_config(tmp_path, name="loss", epochs=3, objective="val_loss", direction="minimize",
                          space={"model.net.init_args.aggregate": {"categorical": ["max"]}},
                          sampler={"name": "grid", "seed": 0})  # fmt: skip
    summary = run_sweep(config, sweep_dir=tmp_path / "sweep")
    best = pd.read_json(tmp_path / "sweep" / "best" / "trial_metrics.json", typ="series")
    logged = pd.read_csv(tmp_path / "sweep" / "trials" / "0000" / "metrics.csv").dropna(subset=["val_loss"])
    assert summary.best_value == logged.loc[logged.epoch == best["best_epoch"], "val_loss"].iloc[-1]
    assert summary.best_value != best["val_auroc"]  # a loss, not the checkpoint's AUROC


@pytest.mark.parametrize("name", ["../../escape", "/tmp/elsewhere", ""])
def test_a_study_name_that_leads_elsewhere_is_refused(tmp_path, monkeypatch, name):
    from deepchrome.experiments import run_experiment
    from deepchrome.sweep import run_sweep

    monkeypatch.chdir(tmp_path)
    sweep = {"base_config": "linear", "search_space": {"data.transform": {"categorical": ["log1p"]}},
             "sampler": {"name": "grid"}, "pruner": {"name": "none"}, "study_name": name}  # fmt: skip
    with pytest.raises(DeepChromeError, match="a study name must be a plain name|must not be empty"):
        run_sweep(sweep, n_trials=0)
    with pytest.raises(DeepChromeError, match="a study name must be a plain name|must not be empty"):
        run_experiment({"families": ["single"], "study_name": name}, n_jobs=0)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_job_is_failed_with_its_signal_and_reraised_as_it():
    """SIGTERM during a job (runs.train raises Interrupted) fails its attempt as 'interrupted (SIGTERM)'
    and reaches the command line as SIGTERM (exit 143), not as a Ctrl-C."""
    from deepchrome.errors import Interrupted
    from deepchrome.experiments.jobs import JobTable

    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    table = JobTable(study, [{"model": "m", "id": 0}], max_attempts=2)
    table.sync()
    trial = table.claim()

    def work(job, number):
        raise Interrupted(signal.SIGTERM, "the checkpoints are kept in RUN")

    with pytest.raises(Interrupted) as stopped:
        table.run(trial, work)
    assert stopped.value.signal == signal.SIGTERM
    assert str(stopped.value).startswith("interrupted (SIGTERM); the running job is marked failed")
    (record,) = study.get_trials()
    assert record.state == optuna.trial.TrialState.FAIL
    assert record.user_attrs["error"] == "interrupted (SIGTERM)"


def test_claim_passes_over_an_attempt_another_worker_finished(monkeypatch):
    """A claimed attempt that must not run (a duplicate) but that another worker finished meanwhile
    (failed it as stale) is passed over, not a crash of this worker."""
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError

    from deepchrome.experiments.jobs import JobTable

    table = JobTable(optuna.create_study(), [{"model": "m"}], max_attempts=1)
    table.sync()  # enqueues attempt 1 of job 0
    monkeypatch.setattr(table, "_why_not", lambda trial: "duplicate of another attempt")

    def finished(*args, **kwargs):
        raise UpdateFinishedTrialError("Trial#0 has already finished and can not be updated.")

    monkeypatch.setattr(table.storage, "set_trial_user_attr", finished)
    assert table.claim() is None
