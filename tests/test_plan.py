"""``deepchrome experiment --plan``: the jobs and training samples that running does, and a time that
follows the measured throughput."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from deepchrome.experiments import Throughput, plan_experiment, run_experiment
from deepchrome.experiments.plan import expected_epochs
from tests.cli import run_cli
from tests.conftest import REPO


def small_config(tmp_path, root, name="plan"):
    config = {
        "root": str(root),
        "models": {"linear": str(REPO / "configs" / "linear.yaml")},
        "overrides": {"trainer.max_epochs": 2},
        "families": ["single", "test_on_rest", "inclusive_all", "size"],
        "selection": ["target_val"],
        "targets": ["S01", "S02"],
        "size": {"fractions": [0.5, 1.0], "n_cells": [1, 2]},
        "study_name": name,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_plan_counts_what_running_does(simulated, tmp_path):
    config = small_config(tmp_path, simulated)
    plan = plan_experiment(config, throughput=Throughput(train=1000.0, eval=10_000.0))
    summary = run_experiment(config, out=tmp_path / "out")
    assert plan.distinct_jobs == summary["jobs"] == summary["finished"]
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    # per family: the result rows and the distinct trainings behind them
    for row in plan.families.itertuples():
        mine = results[results.family == row.family]
        assert row.results == len(mine)
        # a job: training cells, fraction and validation cells (the target's, with target_val selection)
        assert row.jobs == len(mine.drop_duplicates(["train_cells", "train_fraction", "target"]))
    # per job: training genes and epochs (max_epochs 2 < the early-stopping estimate) as the run had them
    ran = results.drop_duplicates(["train_cells", "train_fraction"]).set_index(["train_cells", "train_fraction"])
    for job in plan.jobs.itertuples():
        assert ran.loc[(job.train_cells, job.train_fraction), "train_genes"] == job.train_genes
        assert ran.loc[(job.train_cells, job.train_fraction), "epochs"] == job.epochs == 2
    assert plan.train_samples == sum(job.train_genes * job.epochs for job in plan.jobs.itertuples())


def test_estimate_follows_the_throughput(simulated, tmp_path):
    config = small_config(tmp_path, simulated)
    slow = plan_experiment(config, throughput=Throughput(train=1000.0, eval=1e12))
    fast = plan_experiment(config, throughput={"linear": Throughput(train=2000.0, eval=1e12)})
    assert slow.train_samples == fast.train_samples > 0
    assert slow.seconds == pytest.approx(slow.train_samples / 1000.0, rel=1e-6)
    assert fast.seconds == pytest.approx(slow.seconds / 2, rel=1e-6)
    with_setup = plan_experiment(config, throughput=Throughput(train=1000.0, eval=1e12, setup=3.0))
    assert with_setup.seconds == pytest.approx(slow.seconds + 3.0 * slow.distinct_jobs, rel=1e-6)
    longer = plan_experiment(config, throughput=Throughput(train=1000.0, eval=1e12), epochs=6)
    assert longer.train_samples == 3 * slow.train_samples
    assert "distinct trainings" in slow.text() and "| size |" in slow.text()


def test_expected_epochs_states_its_rule():
    stopping = {"class_path": "lightning.pytorch.callbacks.EarlyStopping", "init_args": {"patience": 15}}
    assert expected_epochs({"trainer": {"max_epochs": 100}})[0] == 100
    epochs, rule = expected_epochs({"trainer": {"max_epochs": 100, "callbacks": [stopping]}})
    assert epochs == 65 and "patience 15" in rule and "upper bound is 100" in rule
    assert expected_epochs({"trainer": {"max_epochs": 10, "callbacks": [stopping]}})[0] == 10
    assert expected_epochs({"trainer": {"max_epochs": 100}}, epochs=7)[0] == 7


def test_cli_plan_measures_and_prints(simulated, tmp_path):
    config = small_config(tmp_path, simulated)
    result = run_cli("experiment", "--config", str(config), "--plan", "--out", str(tmp_path / "out"))
    assert "training samples/s" in result.stdout and "distinct trainings" in result.stdout
    assert not (tmp_path / "out").exists()  # nothing run, nothing written


def test_throughput_times_validation_even_when_no_epoch_ends(simulated):
    """A training cell larger than the timed batches never reaches a validation epoch: evaluation
    is timed on its own (forward only, large batches), not copied from the training rate."""
    from deepchrome.config import load_config
    from deepchrome.experiments.plan import measure_throughput

    config = load_config("deepchrome")
    config["data"]["root"] = str(simulated)
    config["data"]["batch_size"] = 4  # 35 batches of 4 stay inside one epoch of the 200 training genes
    measured = measure_throughput(config, ["S01"], threads=1)
    assert measured.eval > 2 * measured.train  # forward only, batches of 1,024 vs a training step at 8


def test_stacked_plan_counts_the_trainings_running_shares(simulated, tmp_path, monkeypatch):
    """On the stacked engine, jobs that differ only in validation cells are offered to workers
    together (claim order), so `stack_size` at a time share trainings; the plan counts the same,
    also when a claim's end cuts a group."""
    from deepchrome.experiments import stacked

    built = []
    build = stacked.build_trainings

    def counting(*args, **kwargs):
        trainings, pool = build(*args, **kwargs)
        built.append(len(trainings))
        return trainings, pool

    monkeypatch.setattr(stacked, "build_trainings", counting)
    base = yaml.safe_load(small_config(tmp_path, simulated).read_text())
    # 4 targets: 4 single jobs + inclusive_all's 4 target_val jobs and 1 strict job, all on the 4 cells;
    # in claims of 2: [single, single] x 2, then the 5 shared jobs in 3 claims -> 7 trainings.
    # 3 targets: a claim's end cuts the shared group, which then trains once per claim -> 6.
    for targets, distinct, expected in ((["S01", "S02", "S03", "S04"], 9, 7), (["S01", "S02", "S03"], 7, 6)):
        built.clear()
        config = {**base, "families": ["single", "inclusive_all"], "selection": ["target_val", "strict"],
                  "engine": "stacked", "stack_size": 2, "targets": targets,
                  "study_name": f"t{len(targets)}"}  # fmt: skip
        path = tmp_path / f"stacked{len(targets)}.yaml"
        path.write_text(yaml.safe_dump(config))
        plan = plan_experiment(path, throughput=Throughput(train=1000.0, eval=1e12))
        assert plan.distinct_jobs == distinct and plan.stacked["trainings"] == expected, plan.stacked
        assert plan.stacked["seconds"] < plan.seconds and f"{expected} trainings" in plan.text()
        summary = run_experiment(path, out=tmp_path / f"out{len(targets)}")
        assert summary["finished"] == distinct and sum(built) == expected
    sequential = plan_experiment({**config, "engine": "sequential"}, throughput=Throughput(train=1000.0, eval=1e12))
    assert sequential.stacked is None and "stacked engine" not in sequential.text()
