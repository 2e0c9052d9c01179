"""Untrusted checkpoints never choose what code runs: every command that takes one, and the API."""

from __future__ import annotations

import os
import pickle
import re

import pytest
import torch

import deepchrome
from deepchrome.errors import DeepChromeError
from tests.cli import run_cli
from tests.conftest import EXAMPLE

MARKS = ["H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3"]


class _Payload:
    """Unpickling this runs os.system (what a pickle-based checkpoint attack looks like)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture()
def crafted(tmp_path):
    """Checkpoints whose metadata name os.system with a command that would create ``marker``."""
    marker = tmp_path / "pwned"
    command = f"touch {marker}"
    meta = {
        "kind": "classifier", "net": {"class_path": "os.system", "init_args": {"command": command}},
        "n_marks": 5, "n_bins": 100, "marks": MARKS, "transform": {"kind": "log1p", "mean": None, "std": None},
        "train_cells": ["S01"],
    }  # fmt: skip
    classifier = tmp_path / "classifier.ckpt"
    lightning = {"epoch": 0, "global_step": 0, "pytorch-lightning_version": "2.6.0"}  # passes the first checks
    torch.save({"deepchrome": meta, "state_dict": {}, **lightning,
                "hyper_parameters": {"_class_path": "os.system", "command": command}}, classifier)  # fmt: skip
    gan = tmp_path / "gan.ckpt"
    hyper = {"_class_path": "os.system", "command": command}
    torch.save({"deepchrome": {"kind": "gan", "format": 3, "class_path": "os.system", "marks": MARKS},
                "state_dict": {}, "hyper_parameters": hyper}, gan)  # fmt: skip
    pickled = tmp_path / "pickled.ckpt"
    with open(pickled, "wb") as handle:
        pickle.dump({"deepchrome": _Payload(command), "state_dict": {}}, handle)
    return {"marker": marker, "classifier": str(classifier), "gan": str(gan), "pickled": str(pickled), "dir": tmp_path}


def _commands(c: dict) -> list[list[str]]:
    out = str(c["dir"] / "out")
    root = ["--root", str(EXAMPLE), "--cells", "S01"]
    commands = []
    for checkpoint in (c["classifier"], c["pickled"]):
        commands += [
            ["predict", "--config", "linear", "--ckpt_path", checkpoint, "--trainer.default_root_dir", out],
            ["test", "--config", "linear", "--ckpt_path", checkpoint, "--trainer.default_root_dir", out],
            ["validate", "--config", "linear", "--ckpt_path", checkpoint, "--trainer.default_root_dir", out],
            ["fit", "--config", "linear", "--ckpt_path", checkpoint, "--trainer.default_root_dir", out],
            ["explain", "--checkpoint", checkpoint, *root, "--out", out],
            ["explain", "--checkpoint", str(c["classifier"]), "--linear-checkpoint", checkpoint, *root, "--out", out],
            ["gan", "fit", "--config", "gan", "--model.classifier_checkpoint", checkpoint,
             "--trainer.default_root_dir", out],
        ]  # fmt: skip
    for gan in (c["gan"], c["pickled"]):
        commands += [
            ["gan", "sample", "--checkpoint", gan, "--out", out],
            ["gan", "visualize", "--gan", gan, "--classifier", c["classifier"], *root, "--out", out],
            ["gan", "fit", "--config", "gan", "--ckpt_path", gan, "--trainer.default_root_dir", out],
        ]
    return commands


def test_no_command_runs_code_named_by_a_checkpoint(crafted):
    for command in _commands(crafted):
        result = run_cli(*command, check=False)
        assert not crafted["marker"].exists(), f"deepchrome {' '.join(command)} ran the checkpoint's code"
        assert result.returncode == 2, (command, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, (command, result.stderr[-2000:])
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("deepchrome: error: "), (command, last)


def test_the_api_refuses_unregistered_networks_and_pickles(crafted):
    with pytest.raises(DeepChromeError, match="names network 'os.system', which is not an allowed network"):
        deepchrome.load(crafted["classifier"])
    with pytest.raises(DeepChromeError, match="not a readable checkpoint"):
        deepchrome.load(crafted["pickled"])
    with pytest.raises(DeepChromeError, match="URLs are refused"):
        deepchrome.load("http://127.0.0.1:9/model.ckpt")
    assert not crafted["marker"].exists()


def test_a_registered_network_of_ones_own_loads(tmp_path):
    from deepchrome.checkpoints import load_classifier
    from deepchrome.models import DeepChromeMLP, register_network, registered_networks

    class MyNet(DeepChromeMLP):
        pass

    net_config = {"class_path": f"{MyNet.__module__}.{MyNet.__qualname__}", "init_args": {"n_marks": 5, "n_bins": 100}}
    meta = {"kind": "classifier", "n_marks": 5, "n_bins": 100, "marks": MARKS, "net": net_config}
    path = tmp_path / "mine.ckpt"
    net = MyNet(n_marks=5, n_bins=100)
    torch.save({"deepchrome": meta, "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)
    with pytest.raises(DeepChromeError, match="not an allowed network"):
        load_classifier(path)
    register_network(MyNet)
    assert meta["net"]["class_path"] in registered_networks()
    loaded, _ = load_classifier(path)
    assert type(loaded) is MyNet


@pytest.mark.parametrize("where", ["file", "option", "api"])
def test_a_config_cannot_import_modules(tmp_path, where):
    """A class_path in a config (file, command line or Python overrides) is imported by jsonargparse before
    any type check: importing runs a module's code, so only deepchrome's, torch's and Lightning's (or
    modules already loaded) may be named. `this` prints the Zen of Python when imported."""
    message = "class_path 'this.Foo': a config may name classes of torch, lightning, torchmetrics, deepchrome"
    if where == "api":
        with pytest.raises(DeepChromeError, match=re.escape(message)):
            deepchrome.fit("linear", {"model.optimizer": {"class_path": "this.Foo"}}, run_dir=tmp_path / "run")
        return
    config = tmp_path / "evil.yaml"
    config.write_text("model:\n  optimizer:\n    class_path: this.Foo\n")
    extra = ["--config", str(config)] if where == "file" else ["--model.optimizer", "this.Foo"]
    result = run_cli("fit", "--config", "linear", *extra, "--trainer.default_root_dir", str(tmp_path / "run"),
                     check=False, subprocess_=True)  # fmt: skip
    assert (
        result.returncode == 2
        and result.stderr.strip()
        == f"deepchrome: error: {message} (or modules already loaded), not import other modules"
    )
    assert "Beautiful is better than ugly" not in result.stdout + result.stderr
    assert not (tmp_path / "run").exists()
