"""The stacked experiment engine: same results as the sequential one, shared trainings, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from deepchrome.errors import DeepChromeError
from deepchrome.experiments import load_experiment_config, run_experiment
from tests.cli import run_cli


@pytest.fixture(scope="module")
def three_cells(tmp_path_factory):
    """3 simulated cells x 300 genes."""
    from deepchrome.data.simulate import simulate_release

    out = tmp_path_factory.mktemp("three")
    simulate_release(out, n_cells=3, n_genes=300, seed=1, rule_shift=1.0)
    return out


def _config(tmp_path, root, name, model="deepchrome", **extra):
    from deepchrome.config import load_config

    network = load_config(model)
    network.pop("data", None)
    for callback in network["trainer"]["callbacks"]:
        if callback["class_path"].endswith("EarlyStopping"):
            callback["init_args"]["patience"] = 1  # jobs stop early, each at its own epoch
    if model == "deepchrome":
        network["model"]["optimizer"]["init_args"]["lr"] = 0.02
    config = {
        "root": str(root),
        "models": {"cnn": network},
        "overrides": {"trainer.max_epochs": 6},
        "families": ["single", "inclusive_all", "exclusive_all"],
        "selection": ["target_val", "strict"],
        "study_name": name,
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def both_engines(three_cells, tmp_path_factory):
    """The same small CNN experiment run on each engine (and the stacked one twice)."""
    folder = tmp_path_factory.mktemp("engines")
    out = {}
    for engine, run in (("sequential", "seq"), ("stacked", "stk"), ("stacked", "stk2")):
        config = _config(folder, three_cells, run)
        summary = run_experiment(config, out=folder / run, engine=engine)
        assert summary["failed"] == 0
        out[run] = folder / run
    return out


def test_stacked_matches_sequential_within_tolerance(both_engines):
    keys = ["family", "target", "selection", "test_cell"]
    seq = pd.read_csv(both_engines["seq"] / "results.csv").set_index(keys).sort_index()
    stk = pd.read_csv(both_engines["stk"] / "results.csv").set_index(keys).sort_index()
    assert len(seq) == len(stk) > 0
    assert list(seq.index) == list(stk.index)
    difference = (seq.test_auroc - stk.test_auroc).to_numpy()
    assert np.abs(difference).max() <= 0.01
    assert abs(difference.mean()) <= 0.003
    assert (seq.epochs == stk.epochs).all()
    assert (seq.epochs < 6).any() and (seq.epochs == 6).any()  # early stopping was exercised


def test_stacked_is_deterministic(both_engines):
    first = pd.read_csv(both_engines["stk"] / "results.csv")
    second = pd.read_csv(both_engines["stk2"] / "results.csv")
    pd.testing.assert_series_equal(first.test_auroc, second.test_auroc)
    pd.testing.assert_series_equal(first.val_auroc, second.val_auroc)


def test_stacked_job_folders_read_like_sequential_ones(both_engines):
    import deepchrome

    jobs = json.loads((both_engines["stk"] / "jobs.json").read_text())["jobs"]
    shared = []
    for folder in sorted((both_engines["stk"] / "jobs").iterdir()):
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["engine"] == "stacked"
        assert {"config.yaml", "metrics.csv", "test_predictions.csv"} <= {p.name for p in folder.iterdir()}
        predictions = pd.read_csv(folder / "test_predictions.csv")
        assert set(predictions.cell) == set(metrics["test_cells"])
        shared.append(metrics["shared_training"])
        model = deepchrome.load(metrics["best_checkpoint"])
        assert model is not None
    # inclusive_all: 3 target_val jobs and the strict one train on the same cells: one training
    n_inclusive_target = sum(1 for j in jobs if len(j["train_cells"]) == 3 and len(j["val_cells"]) == 1)
    assert n_inclusive_target == 3
    assert shared.count(4) == 4


def test_linear_model_is_equal_on_both_engines(three_cells, tmp_path):
    results = {}
    for engine in ("sequential", "stacked"):
        config = _config(tmp_path, three_cells, f"lin_{engine}", model="linear", families=["single"])
        run_experiment(config, out=tmp_path / engine, engine=engine)
        results[engine] = pd.read_csv(tmp_path / engine / "results.csv").sort_values("target")
    np.testing.assert_allclose(results["sequential"].test_auroc, results["stacked"].test_auroc, atol=1e-6)


def test_stack_size_bounds_the_jobs_one_worker_claims(three_cells, tmp_path, monkeypatch):
    """A bounded stack leaves waiting jobs to other workers; results do not depend on the bound."""
    from deepchrome.experiments import stacked

    sizes = []
    train_jobs = stacked.train_jobs

    def recording(configs, *args, **kwargs):
        sizes.append(len(configs))
        return train_jobs(configs, *args, **kwargs)

    monkeypatch.setattr(stacked, "train_jobs", recording)
    results = {}
    for bound in (2, None):
        config = _config(tmp_path, three_cells, f"lin_{bound}", model="linear", families=["single"], stack_size=bound)
        run_experiment(config, out=tmp_path / str(bound))
        results[bound] = pd.read_csv(tmp_path / str(bound) / "results.csv").sort_values("target")
    assert sizes == [2, 1, 3]  # 3 single jobs: claimed 2 + 1 with the bound, all 3 without
    np.testing.assert_allclose(results[2].test_auroc, results[None].test_auroc, atol=1e-6)
    for bad in (0, "4", True):
        with pytest.raises(DeepChromeError, match="stack_size"):
            run_experiment(_config(tmp_path, three_cells, "bad", stack_size=bad), out=tmp_path / "bad")


def test_unstackable_models_fall_back_to_sequential():
    from deepchrome.config import load_config
    from deepchrome.experiments.stackable import model_stackable, stackable

    config = load_config("deepchrome")
    assert stackable(config) is None
    config["trainer"]["accumulate_grad_batches"] = 2
    assert "accumulate_grad_batches" in stackable(config)
    del config["trainer"]["accumulate_grad_batches"]
    config["trainer"]["callbacks"] = [c for c in config["trainer"]["callbacks"] if "Checkpoint" not in c["class_path"]]
    assert "ModelCheckpoint" in stackable(config)
    assert "LSTM" in model_stackable(load_config("attentivechrome"))


@pytest.mark.parametrize("engine", ["fast", 1])
def test_bad_engine(three_cells, tmp_path, engine):
    config = _config(tmp_path, three_cells, "bad", engine=engine)
    with pytest.raises(DeepChromeError, match="engine"):
        load_experiment_config(config)
    result = run_cli("experiment", "--config", str(config), "--out", str(tmp_path / "o"), check=False)
    assert result.returncode == 2 and "engine" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(DeepChromeError, match="^engine 'fast'"):  # Python: the argument, not the option
        run_experiment(_config(tmp_path, three_cells, "ok"), out=tmp_path / "o", engine="fast")
    result = run_cli("experiment", "--config", str(tmp_path / "ok.yaml"), "--engine", "fast", check=False)
    assert result.returncode == 2 and "--engine" in result.stderr
    assert not (tmp_path / "o").exists()


def test_one_label_splits_on_the_stacked_engine(tmp_path):
    """As on the sequential path: a job whose validation genes hold one label fails with the data
    module's message (the other jobs of the stack train), and a one-label test cell scores null."""
    from deepchrome.config import load_config
    from deepchrome.experiments.stacked import train_jobs
    from tests.test_training import _one_gene_split

    root = _one_gene_split(tmp_path, "S02", "valid")
    (root / "S02" / "classification" / "test.csv").write_text(
        (root / "S02" / "classification" / "valid.csv").read_text()
    )  # S02's test split: one gene too
    configs = []
    for val in ("S01", "S02"):
        config = load_config("linear")
        config["trainer"].update(max_epochs=2, enable_progress_bar=False)
        config["data"].update(root=str(root), train_cells=["S01"], val_cells=[val], test_cells=["S01", "S02"])
        configs.append(config)
    good, bad = train_jobs(configs, [tmp_path / "good", tmp_path / "bad"])
    assert isinstance(bad, DeepChromeError)
    assert str(bad).startswith("job 1: data.val_cells [S02]: the valid split has 1 gene(s)"), str(bad)
    assert not (tmp_path / "bad").exists()
    metrics = json.loads((tmp_path / "good" / "metrics.json").read_text())
    assert metrics["test_S02_auroc"] is None and metrics["test_S02_auprc"] is None
    assert 0 < metrics["test_S01_auroc"] <= 1 and metrics["engine"] == "stacked"


@pytest.mark.parametrize("engine", ["sequential", "stacked"])
def test_a_job_that_a_retry_would_repeat_fails_once(tmp_path, engine):
    """A job whose test genes hold one label (AUROC undefined) or whose validation genes do (refused)
    fails at its first attempt, not max_attempts times; the other jobs finish."""
    from deepchrome.experiments.run import experiment_status
    from tests.test_training import _one_gene_split

    root = _one_gene_split(tmp_path, "S02", "test")
    config = {"root": str(root), "models": {"linear": "linear"}, "overrides": {"trainer.max_epochs": 1},
              "families": ["single"], "targets": ["S01", "S02"], "study_name": "once", "engine": engine,
              "expression_dir": None}  # fmt: skip
    path = tmp_path / "once.yaml"
    path.write_text(yaml.safe_dump(config))
    summary = run_experiment(path, out=tmp_path / "out")
    status = experiment_status(path, out=tmp_path / "out").set_index("job")
    assert summary["finished"] == 1 and summary["failed"] == 1
    failed = status[status.state == "FAILED"]
    assert len(failed) == 1 and failed.attempts.iloc[0] == 1, status
    assert "test AUROC is undefined" in failed.error.iloc[0]
