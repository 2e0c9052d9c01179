"""Workers sharing optuna storages: distinct sweep trials, the experiment job table (retries,
attempts, errors), killed workers on every storage, nested learning-curve subsets, and a short
chaos run (killed worker + failing job) whose results equal a clean run's."""

from __future__ import annotations

import math
import os
import signal
import time

import numpy as np
import optuna
import pytest

from deepchrome.data.datamodule import HistoneDataModule
from deepchrome.sweep import duplicate_trials, make_sampler, make_storage, run_sweep, suggest
from tests.cli import run_cli
from tests.test_sweep import sweep_config, worker


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


def _wait_for_running(name: str, storage: str, timeout: float = 120) -> optuna.trial.FrozenTrial:
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.3)
        try:
            running = optuna.load_study(study_name=name, storage=storage).get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
            )
        except KeyError:
            continue
        if running:
            return running[0]
    raise AssertionError("no trial started")


def test_interrupted_sweep_worker_fails_its_trial(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    process = worker(sweep_config(tmp_path, name="int", epochs=400), storage, "--n-trials", "1")
    running = _wait_for_running("int", storage)
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted" in err
    trial = optuna.load_study(study_name="int", storage=storage).trials[running.number]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["fail_reason"].startswith("interrupted")


def test_journal_storage_recovers_a_killed_worker(tmp_path):
    """SIGKILL a sweep worker on a journal file: the next worker fails its trial and runs the retry."""
    storage = f"journal:///{tmp_path / 'study.log'}"
    victim = worker(sweep_config(tmp_path, name="journal", epochs=400), storage, "--n-trials", "1",
                    "--sweep-dir", str(tmp_path / "a"))  # fmt: skip
    killed = _wait_for_running("journal", make_storage(storage, heartbeat_interval=None))
    time.sleep(1.5)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    time.sleep(2.5)  # the config's grace period (2 s) without a heartbeat
    summary = run_sweep(sweep_config(tmp_path, name="journal", epochs=2), n_trials=1, storage=storage,
                        sweep_dir=tmp_path / "b")  # fmt: skip
    study = optuna.load_study(study_name="journal", storage=make_storage(storage, heartbeat_interval=None))
    assert study.trials[killed.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in study.trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == killed.params and summary["duplicates"] == 0
