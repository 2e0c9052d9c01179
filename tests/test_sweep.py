"""optuna sweeps: config validation, SQLite and PostgreSQL studies shared by worker processes,
a killed worker's trial retried, failing trials recorded, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml

from deepchrome.errors import DeepChromeError
from deepchrome.sweep import check_distribution, duplicate_trials, load_sweep_config, set_path
from tests.cli import run_cli
from tests.conftest import REPO

POSTGRES = os.environ.get("DEEPCHROME_TEST_POSTGRES")


def sweep_config(tmp_path, name="s", epochs=2, space=None, **extra):
    config = {
        "base_config": str(REPO / "configs" / "linear.yaml"),
        # min_epochs: early stopping must not end the long trials of the kill test early
        "overrides": {"trainer.max_epochs": epochs, "trainer.min_epochs": epochs,
                      "data.root": str(REPO / "data" / "example"), "data.train_cells": ["S01"]},
        "search_space": space or {"model.optimizer.init_args.lr": {"float": [1e-3, 1e-1], "log": True}},
        "study_name": name,
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "heartbeat_interval": 1,
        "grace_period": 2,
        **extra,
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def worker(config, storage, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "deepchrome.cli", "sweep", "--config", str(config), "--storage", storage, *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_paths_and_distributions_are_validated(tmp_path):
    settings = load_sweep_config(sweep_config(tmp_path))
    assert settings["base"]["trainer"]["max_epochs"] == 2
    bad_path = sweep_config(tmp_path, "bad", space={"model.net.init_args.dropuot": {"float": [0, 1]}})
    with pytest.raises(DeepChromeError, match="model.net.init_args.dropuot is not a path in the config"):
        load_sweep_config(bad_path)
    for spec, message in [
        ({"float": [1, 0]}, "low 1 > high 0"),
        ({"float": [0, 1], "log": True}, "log scale needs low > 0"),
        ({"uniform": [0, 1]}, "give exactly one of float, int, categorical"),
        ({"categorical": []}, "categorical needs a non-empty list"),
    ]:
        with pytest.raises(DeepChromeError, match=message):
            check_distribution("x", spec, "here")
    # an init argument the base config does not set, but the class accepts, is a valid path
    load_sweep_config(sweep_config(tmp_path, "ok", space={"model.net.init_args.n_bins": {"categorical": [100]}}))


def test_new_class_path_drops_other_class_arguments():
    config = {"model": {"net": {"class_path": "A", "init_args": {"dropout": 0.5}}}}
    set_path(config, "model.net.class_path", "B")
    assert config["model"]["net"] == {"class_path": "B", "init_args": {}}


def test_sqlite_sweep_outputs_and_best_config_runs(tmp_path):
    config = sweep_config(tmp_path, space={"model.net.init_args.aggregate": {"categorical": ["max", "mean"]}},
                          sampler={"name": "grid", "seed": 0})  # fmt: skip
    result = run_cli("sweep", "--config", str(config), "--sweep-dir", str(tmp_path / "sweep"))
    assert "study s: 2 complete" in result.stdout
    sweep = tmp_path / "sweep"
    assert (sweep / "study.db").is_file() and (sweep / "trials.csv").is_file()
    for figure in ("optimization_history", "intermediate_values", "param_importances"):
        assert (sweep / f"{figure}.png").is_file()
    best = yaml.safe_load((sweep / "best" / "config.yaml").read_text())
    assert best["model"]["net"]["init_args"]["aggregate"] in ("max", "mean")
    fit = run_cli("fit", "--config", str(sweep / "best" / "config.yaml"), "--trainer.default_root_dir",
                  str(tmp_path / "refit"), "--trainer.enable_progress_bar", "false")  # fmt: skip
    assert "LinearBaseline (12 parameters)" in fit.stdout
    # a finished study can be extended: one more trial joins the two
    again = run_cli("sweep", "--config", str(config), "--sweep-dir", str(sweep), "--n-trials", "1")
    assert "study s: 3 complete" in again.stdout


def test_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    config = sweep_config(tmp_path, space={"model.optimizer.init_args.lr": {"categorical": [1.0e38, 0.01]}},
                          sampler={"name": "grid", "seed": 0})  # fmt: skip
    run_cli("sweep", "--config", str(config), "--sweep-dir", str(tmp_path / "sweep"))
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'sweep' / 'study.db'}")
    states = {t.params["model.optimizer.init_args.lr"]: t for t in study.trials}
    assert states[1.0e38].state == optuna.trial.TrialState.FAIL
    # the optimizer overflows float32: the reason is kept on the trial
    assert states[1.0e38].user_attrs["fail_reason"].startswith("RuntimeError: value cannot be converted")
    assert states[0.01].state == optuna.trial.TrialState.COMPLETE


def shared_study(storage, tmp_path, name):
    """Two workers share one study until it holds 4 complete trials; nothing runs twice."""
    config = sweep_config(tmp_path, name=name)
    workers = [worker(config, storage, "--complete-trials", "4", "--sweep-dir", str(tmp_path / "sweep"))
               for _ in range(2)]  # fmt: skip
    for process in workers:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name=name, storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 4
    assert len({t.number for t in study.trials}) == len(study.trials)
    assert all(t.state != optuna.trial.TrialState.FAIL for t in study.trials)  # a second run of a trial would fail
    assert len({t.user_attrs["worker"] for t in complete}) == 2
    # each worker seeds its draws per trial: the two never evaluate the same parameters
    assert len({t.params["model.optimizer.init_args.lr"] for t in study.trials}) == len(study.trials)
    assert duplicate_trials(study.trials) == []


def killed_worker_is_retried(storage, tmp_path, name):
    """SIGKILL a worker mid-trial: another worker marks the trial failed and completes its retry."""
    config = sweep_config(tmp_path, name=name, epochs=400)
    victim = worker(config, storage, "--n-trials", "1", "--sweep-dir", str(tmp_path / "a"))
    deadline = time.time() + 120
    running = []
    while time.time() < deadline and not running:
        time.sleep(0.5)
        try:
            study = optuna.load_study(study_name=name, storage=storage)
            running = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
        except KeyError:
            continue
    assert running, "the first worker never started a trial"
    time.sleep(2)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    rescuer = worker(sweep_config(tmp_path, name=name, epochs=3), storage, "--n-trials", "1",
                     "--sweep-dir", str(tmp_path / "b"))  # fmt: skip
    _, err = rescuer.communicate(timeout=300)
    assert rescuer.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name=name, storage=storage)
    killed = study.trials[running[0].number]
    assert killed.state == optuna.trial.TrialState.FAIL
    retries = [t for t in study.trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == killed.params


def test_sqlite_two_workers(tmp_path):
    shared_study(f"sqlite:///{tmp_path / 'study.db'}", tmp_path, "two-workers")


def test_sqlite_killed_worker(tmp_path):
    killed_worker_is_retried(f"sqlite:///{tmp_path / 'study.db'}", tmp_path, "killed")


@pytest.mark.skipif(not POSTGRES, reason="no PostgreSQL server: .ci/run starts one and sets DEEPCHROME_TEST_POSTGRES")
def test_postgres_two_workers(tmp_path):
    shared_study(POSTGRES, tmp_path, f"two-workers-{os.getpid()}-{time.time_ns()}")


@pytest.mark.skipif(not POSTGRES, reason="no PostgreSQL server: .ci/run starts one and sets DEEPCHROME_TEST_POSTGRES")
def test_postgres_killed_worker(tmp_path):
    killed_worker_is_retried(POSTGRES, tmp_path, f"killed-{os.getpid()}-{time.time_ns()}")


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    bad = sweep_config(tmp_path, "bad", space={"model.net.init_args.dropuot": {"float": [0, 1]}})
    result = run_cli("sweep", "--config", str(bad), "--sweep-dir", str(tmp_path / "sweep"), check=False)
    assert result.returncode == 2 and "dropuot is not a path" in result.stderr
    assert not (tmp_path / "sweep").exists()
    unreachable = run_cli("sweep", "--config", str(sweep_config(tmp_path)), "--storage",
                          "postgresql://user:secret@127.0.0.1:1/none", "--sweep-dir", str(tmp_path / "x"),
                          check=False)  # fmt: skip
    assert unreachable.returncode == 2 and "cannot open storage postgresql://***@127.0.0.1:1/none" in unreachable.stderr
    assert "secret" not in unreachable.stderr and "Traceback" not in unreachable.stderr
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s", storage=storage, direction="minimize")
    clash = run_cli("sweep", "--config", str(sweep_config(tmp_path)), "--storage", storage,
                    "--sweep-dir", str(tmp_path / "y"), check=False)  # fmt: skip
    assert clash.returncode == 2
    assert (
        "study 's' exists in sqlite:///" in clash.stderr
        and "with direction minimize, the config says maximize" in clash.stderr
    )
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 0


def test_best_of_k_restarts_of_the_linear_model(tmp_path):
    """The paper's protocol for the linear model: k seeds, the best by validation AUROC."""
    config = sweep_config(tmp_path, name="restarts", space={"seed_everything": {"categorical": [0, 1, 2]}},
                          sampler={"name": "grid", "seed": 0})  # fmt: skip
    run_cli("sweep", "--config", str(config), "--sweep-dir", str(tmp_path / "sweep"))
    study = optuna.load_study(study_name="restarts", storage=f"sqlite:///{tmp_path / 'sweep' / 'study.db'}")
    values = {t.params["seed_everything"]: t.value for t in study.trials}
    assert sorted(values) == [0, 1, 2] and len(set(values.values())) > 1  # the seeds give different models
    best = yaml.safe_load((tmp_path / "sweep" / "best" / "config.yaml").read_text())
    assert values[best["seed_everything"]] == max(values.values())
