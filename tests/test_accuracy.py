"""Accuracy on real data (../shared/data/roadmap) with the shipped configs, and the simulator's rule.

Reference on these exact splits (DeepChrome 2.0 code, scored correctly, mean of 3 seeds): CNN
0.868 (E003) / 0.941 (E123); its linear model 0.859-0.888 / 0.932-0.946. Seed fixed at 0; the
bars leave a margin below what this package reaches (see the README).
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.cli import run_cli

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
BARS = {"E003": 0.86, "E123": 0.93}


@pytest.fixture(scope="module")
def real_runs(roadmap, tmp_path_factory):
    results = {}
    for config in ("deepchrome", "linear"):
        for cell in BARS:
            run_dir = tmp_path_factory.mktemp(f"{config}-{cell}")
            run_cli(
                "fit", "--config", f"configs/{config}.yaml", "--data.root", str(roadmap),
                "--data.train_cells", f"[{cell}]", "--trainer.default_root_dir", str(run_dir), *QUIET,
            )  # fmt: skip
            results[config, cell] = json.loads((run_dir / "metrics.json").read_text())
    return results


@pytest.mark.parametrize("cell", sorted(BARS))
def test_cnn_paper_settings_reach_the_bar(real_runs, cell):
    metrics = real_runs["deepchrome", cell]
    assert metrics["n_parameters"] == 644_177
    assert metrics["test_cells"] == [cell]
    assert metrics["test_auroc"] >= BARS[cell]


@pytest.mark.parametrize("cell", sorted(BARS))
def test_twelve_parameter_linear_within_003_of_cnn(real_runs, cell):
    linear = real_runs["linear", cell]
    assert linear["n_parameters"] == 12
    assert linear["test_auroc"] >= real_runs["deepchrome", cell]["test_auroc"] - 0.03


def test_linear_model_recovers_the_simulated_rules(tmp_path):
    """On the example data (simulated), the 12 weights learn the planted rules and AUROC >= 0.8."""
    run_cli(
        "fit", "--config", "configs/linear.yaml", "--data.train_cells", "[S01]",
        "--trainer.default_root_dir", str(tmp_path), *QUIET,
    )  # fmt: skip
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_auroc"] >= 0.8
    state = torch.load(metrics["best_checkpoint"], weights_only=True)["state_dict"]
    weight = state["net.linear.weight"]
    effect = dict(zip(metrics["marks"], (weight[1] - weight[0]).tolist(), strict=True))  # push towards "high"
    assert effect["H3K4me3"] > 0 and effect["H3K36me3"] > 0
    assert effect["H3K9me3"] < 0 and effect["H3K27me3"] < 0
