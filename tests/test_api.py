"""The Python API as a notebook user drives it: fit, load, predict; configs by name, path or dict."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import deepchrome
from deepchrome.errors import DeepChromeError
from tests.conftest import EXAMPLE, REPO

QUIET = {"trainer.enable_progress_bar": False, "trainer.enable_model_summary": False}


def readme_python_blocks() -> list[str]:
    """The README's ```python blocks that use the package API (the ones marked to run)."""
    text = (REPO / "README.md").read_text()
    return re.findall(r"```python\n# (?:runs as a test)\n(.*?)```", text, flags=re.S)


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    cwd = os.getcwd()
    os.chdir(folder)  # the snippet's relative paths: outside the checkout, data/example is the bundled copy
    try:
        namespace: dict = {}
        blocks = readme_python_blocks()
        assert blocks, "README has no ```python block marked '# runs as a test'"
        exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 - our own README
    finally:
        os.chdir(cwd)
    return folder, namespace


def test_readme_snippet_runs_outside_the_checkout(api_run):
    folder, ns = api_run
    run, clf, p = ns["run"], ns["clf"], ns["p"]
    metrics = json.loads((run.dir / "metrics.json").read_text())
    assert run.metrics["test_auroc"] == metrics["test_auroc"]
    assert run.dir == folder / "runs" / "deepchrome"  # outputs relative to the working directory
    assert metrics["epochs"] == 3 and os.path.isfile(run.best_checkpoint)
    # the prediction equals the fit's own test predictions for those genes (transform applied by load)
    table = pd.read_csv(run.dir / "test_predictions.csv", dtype={"gene_id": str})
    s01 = table[table.cell == "S01"]
    assert p.shape == (len(s01),)
    np.testing.assert_allclose(p, s01.probability.to_numpy(), atol=2e-6)
    assert clf.marks == ("H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3")
    assert clf.train_cells == ["S01", "S02", "S03", "S04"]


def test_predict_applies_the_stored_transform_and_mark_order(api_run):
    _, ns = api_run
    clf = ns["clf"]
    signals = deepchrome.data.load_split(EXAMPLE, "S02", "test")
    p = clf.predict(signals)
    # forgetting the transform (log1p) gives other probabilities: the model must not be fed raw counts
    import torch

    with torch.inference_mode():
        raw = torch.softmax(clf.net(torch.from_numpy(signals.signals.astype(np.float32))), 1)[:, 1].numpy()
    assert np.abs(raw - p).max() > 0.01
    # marks in another order are put back in the model's order by name
    reordered = signals.select_marks(list(reversed(signals.marks)))
    np.testing.assert_allclose(clf.predict(reordered), p, atol=1e-6)
    table = clf.predict_table(signals)
    assert list(table.columns) == ["gene_id", "cell", "probability", "predicted_label", "label"]
    np.testing.assert_allclose(table.probability.to_numpy(), p)


def test_predict_refuses_other_marks_or_bins(api_run):
    _, ns = api_run
    clf = ns["clf"]
    signals = deepchrome.data.load_split(EXAMPLE, "S01", "test")
    with pytest.raises(DeepChromeError, match="has marks H3K27me3, H3K36me3, H3K4me1, H3K4me3; the model was trained"):
        clf.predict(signals.select_marks(["H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3"]))
    with pytest.raises(DeepChromeError, match="has 50 bins per gene; the model reads 100"):
        clf.predict(signals.central_bins(50))
    with pytest.raises(DeepChromeError, match=r"shape \(3, 5, 7\)"):
        clf.predict(np.zeros((3, 5, 7)))


def test_fit_takes_a_path_or_a_dict_and_checks_overrides(tmp_path):
    config = yaml.safe_load((REPO / "configs" / "linear.yaml").read_text())
    config["data"]["root"] = str(EXAMPLE)
    run = deepchrome.fit(config, {"trainer.max_epochs": 2, **QUIET}, run_dir=tmp_path / "dict")
    again = deepchrome.fit(REPO / "configs" / "linear.yaml", {"trainer.max_epochs": 2, **QUIET}, run_dir=tmp_path / "p")
    assert run.metrics["test_auroc"] == again.metrics["test_auroc"]  # same seed, same data, same result
    assert run.metrics["n_parameters"] == 12
    with pytest.raises(DeepChromeError, match="overrides: trainer.max_epoch is not a path in the config"):
        deepchrome.fit("linear", {"trainer.max_epoch": 2})
    with pytest.raises(DeepChromeError, match="config nonexistent not found: not a file, nor a packaged config"):
        deepchrome.fit("nonexistent")


def test_input_paths_in_a_config_file_resolve_relative_to_it(tmp_path):
    from deepchrome.config import load_config

    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "mine.yaml"
    path.write_text(yaml.safe_dump({"data": {"root": "../release"}, "trainer": {"default_root_dir": "runs/x"}}))
    config = load_config(path, {"data.cache_dir": "cache"})
    assert config["data"]["root"] == str(tmp_path / "release")  # relative to the file
    assert config["data"]["cache_dir"] == str(Path.cwd() / "cache")  # an override: the working directory
    assert config["trainer"]["default_root_dir"] == "runs/x"  # outputs: working directory, at run time
    packaged = load_config("deepchrome")
    assert packaged["data"]["root"] == str(EXAMPLE.resolve())  # the bundled example, wherever installed


def test_lightning_module_loads_from_a_checkpoint(api_run):
    from deepchrome.training import ExpressionClassifier

    _, ns = api_run
    module = ExpressionClassifier.load_from_checkpoint(ns["run"].best_checkpoint)
    assert type(module.net).__name__ == "DeepChromeCNN" and module.marks == list(ns["clf"].marks)
    for key, value in ns["clf"].net.state_dict().items():
        assert (module.net.state_dict()[key] == value).all()


def test_predict_refuses_values_that_are_not_read_counts(api_run):
    _, ns = api_run
    clf = ns["clf"]
    signals = deepchrome.data.load_split(EXAMPLE, "S01", "test")
    for value, shown in ((np.nan, "nan"), (np.inf, "inf"), (-2.0, "-2.0")):
        bad = signals.signals.astype(np.float32)
        bad[5, signals.marks.index("H3K4me1"), 7] = value
        crafted = deepchrome.data.HistoneSignals(bad, signals.labels, signals.gene_ids, marks=signals.marks, cell="S01")
        message = (f"data: gene {signals.gene_ids[5]}, mark H3K4me1, bin 7: {shown} is not a read count (finite and "
                   ">= 0); 1 such value(s): fix or drop those genes")  # fmt: skip
        with pytest.raises(DeepChromeError, match=re.escape(message)):
            clf.predict(crafted)
        array = crafted.select_marks(clf.marks).signals
        with pytest.raises(DeepChromeError, match=re.escape(f"data: gene (row) 5, mark H3K4me1, bin 7: {shown}")):
            clf.predict(array)
    # finite, but beyond what the release stores (int32) and float32 holds: it became inf, then nan
    with pytest.raises(DeepChromeError, match=r"bin 0: 1e\+308 is not a read count"):
        clf.predict(np.full((2, 5, 100), 1e308))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda clf: deepchrome.fit(5), "config: expected a packaged config name, a YAML path or a dict, got int 5"),
        (lambda clf: deepchrome.fit("linear", overrides=[1]),
         "overrides: expected a dict of dotted keys to values or None, got list [1]"),
        (lambda clf: deepchrome.fit("linear", run_dir=3), "run_dir: expected a folder path or None, got int 3"),
        (lambda clf: deepchrome.fit("linear", callbacks=5),
         "callbacks: expected a list of Lightning callbacks, got int 5"),
        (lambda clf: deepchrome.fit("linear", overwrite="yes"), "overwrite: expected True or False, got str 'yes'"),
        (lambda clf: deepchrome.load(None), "checkpoint: expected a checkpoint file's path, got NoneType None"),
        (lambda clf: clf.predict("abc"), "data: expected a HistoneSignals, a list of them, a StageData or an array "
                                         "[genes, marks, bins], got str 'abc'"),
        (lambda clf: clf.predict([1, 2]), "data: expected a HistoneSignals, a list of them, a StageData or an array "
                                          "[genes, marks, bins], got a list of int"),
        (lambda clf: clf.predict(np.zeros((1, 5, 100)), batch_size="x"),
         "batch_size: expected a whole number >= 1, got str 'x'"),
    ],
)  # fmt: skip
def test_arguments_of_the_wrong_type_are_one_clear_error(api_run, call, message):
    _, ns = api_run
    with pytest.raises(TypeError) as caught:
        call(ns["clf"])
    assert isinstance(caught.value, DeepChromeError) and str(caught.value) == message


def test_fit_errors_name_its_arguments_not_command_line_options(tmp_path):
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "metrics.json").write_text("{}\n")
    overrides = {"data.root": str(EXAMPLE), **QUIET}
    with pytest.raises(DeepChromeError) as refused:
        deepchrome.fit("linear", overrides, run_dir=finished)
    assert str(refused.value) == (
        f"{finished} already holds a finished run (metrics.json); pass overwrite=True to replace it, "
        "ckpt_path='last' to resume it, or choose another run_dir"
    )
    (tmp_path / "afile").write_text("a file\n")
    with pytest.raises(DeepChromeError, match=r"^run_dir .*afile: is a file, expected a folder$"):
        deepchrome.fit("linear", overrides, run_dir=tmp_path / "afile")
    with pytest.raises(DeepChromeError) as both:
        deepchrome.fit("linear", overrides, run_dir=finished, ckpt_path="last", overwrite=True)
    assert "--" not in str(both.value) and str(both.value).startswith("overwrite=True with ckpt_path='last' would")


def test_api_words_turns_config_options_into_override_keys():
    from deepchrome.api import api_words

    assert api_words("pass a larger --trainer.max_epochs to train on (fix --model.optimizer.init_args)") == (
        'pass a larger overrides["trainer.max_epochs"] to train on (fix overrides["model.optimizer.init_args"])'
    )
    assert api_words("--threads 2000: must be at most 1024") == "threads 2000: must be at most 1024"


def test_fit_in_python_prints_no_lightning_advertisements(tmp_path):
    """deepchrome.fit prints what `deepchrome fit` prints by default: no litlogger tip, no GPU/TPU
    availability lines, no seed line (a caller's own output level, e.g. the CLI's -v, is kept)."""
    import subprocess
    import sys

    overrides = {"data.root": str(EXAMPLE), "trainer.max_epochs": 1, "trainer.enable_progress_bar": False}
    code = f"import deepchrome; deepchrome.fit('linear', {overrides!r}, run_dir={str(tmp_path / 'run')!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    for line in ("Tip:", "GPU available:", "TPU available:", "Seed set to"):
        assert line not in output, output[-2000:]
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_every_api_entry_point_names_its_arguments_not_options(tmp_path):
    """run_experiment and run_sweep share messages with the command line; called from Python, their
    errors name the keyword arguments (threads, engine), as deepchrome.fit's do."""
    from deepchrome.experiments import run_experiment

    config = REPO / "configs" / "experiments" / "example.yaml"
    with pytest.raises(DeepChromeError, match=r"^threads 0: must be a whole number >= 1"):
        run_experiment(config, out=tmp_path / "out", threads=0)
    with pytest.raises(DeepChromeError, match=r"^engine 'gpu': expected one of"):
        run_experiment(config, out=tmp_path / "out", engine="gpu")
    with pytest.raises(DeepChromeError, match=r"^threads 0: must be"):
        deepchrome.run_sweep(REPO / "configs" / "sweeps" / "linear.yaml", threads=0)
    assert not (tmp_path / "out").exists()
