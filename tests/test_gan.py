"""The histone-signal GAN: training through the CLI, metrics, sampling into the release layout,
visualizations that recover the simulator's planted pair, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepchrome.data import HistoneDataModule
from gan.models import Discriminator, Generator
from gan.training import generate, load_gan
from tests.cli import run_cli

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def test_shapes_and_seeded_generation():
    generator = Generator(n_marks=5, n_bins=100, latent_dim=16, width=16).eval()
    x, labels = generate(generator, 4, seed=3)
    assert x.shape == (8, 5, 100) and (x >= 0).all() and labels.tolist() == [0] * 4 + [1] * 4
    again, _ = generate(generator, 4, seed=3)
    assert torch.equal(x, again)
    assert Discriminator(5, 100, width=16)(x, torch.from_numpy(labels)).shape == (8,)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, simulated):
    """A CNN and a GAN trained on simulated S01 (planted pair H3K4me3 x H3K27me3)."""
    folder = tmp_path_factory.mktemp("gan")
    run_cli("fit", "--config", "configs/deepchrome_fast.yaml", "--data.root", str(simulated), "--data.train_cells",
            "[S01]", "--trainer.default_root_dir", str(folder / "cnn"), *QUIET)  # fmt: skip
    classifier = json.loads((folder / "cnn" / "metrics.json").read_text())["best_checkpoint"]
    result = run_cli("gan", "fit", "--config", "configs/gan.yaml", "--data.root", str(simulated),
                     "--data.train_cells", "[S01]", "--trainer.max_epochs", "40", "--model.classifier_checkpoint",
                     classifier, "--trainer.default_root_dir", str(folder / "gan"), *QUIET)  # fmt: skip
    return folder, classifier, result


def test_gan_fit_writes_metrics_and_checkpoints(trained):
    folder, _, result = trained
    assert "HistoneGAN best epoch" in result.stdout
    metrics = json.loads((folder / "gan" / "metrics.json").read_text())
    quality = metrics["quality"]
    for key in ("two_sample_auroc", "profile_correlation_min", "mark_correlation_distance",
                "conditional_fidelity_auroc", "profile_correlation/high/H3K4me3"):  # fmt: skip
        assert key in quality
    assert 0.5 <= quality["two_sample_auroc"] <= 1
    # even a short run learns the class-conditional promoter H3K4me3 peak, and its "high" and
    # "low" samples are told apart by a classifier trained on real data better than chance
    assert quality["profile_correlation/high/H3K4me3"] > 0.8
    assert quality["conditional_fidelity_auroc"] > 0.65
    generator, meta = load_gan(folder / "gan" / "checkpoints" / "last.ckpt")
    assert meta["marks"] == ["H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3"]


def test_sample_writes_a_release_every_model_reads(trained, tmp_path):
    folder, _, _ = trained
    result = run_cli("gan", "sample", "--checkpoint", str(folder / "gan" / "checkpoints" / "last.ckpt"), "--n", "30",
                     "--out", str(tmp_path), "--cell", "GAN1", "--seed", "1")  # fmt: skip
    assert "wrote 60 generated genes" in result.stdout
    dm = HistoneDataModule(root=str(tmp_path), train_cells=["GAN1"])
    dm.setup("fit")
    assert len(dm.data["train"]) == 20 and dm.data["train"].signals.dtype == np.uint16
    assert sorted(np.bincount(np.concatenate([dm.data["train"].labels, dm.data["val"].labels]))) == [20, 20]


def test_visualizations_recover_the_planted_pair(trained, simulated, tmp_path):
    folder, classifier, _ = trained
    run_cli("gan", "visualize", "--gan", str(folder / "gan" / "checkpoints" / "last.ckpt"), "--classifier", classifier,
            "--root", str(simulated), "--cells", "S01", "--out", str(tmp_path), "--samples", "64",
            "--bootstrap", "10")  # fmt: skip
    summary = json.loads((tmp_path / "visualize.json").read_text())
    top = summary["interactions"][0]
    assert {top["mark_a"], top["mark_b"]} == {"H3K4me3", "H3K27me3"}
    levels = summary["prototype_promoter_levels"]
    k4 = 3  # H3K4me3's index in the release mark order
    assert levels["GAN prior, high"][k4] > levels["GAN prior, low"][k4]
    for name in ("profiles", "prototypes", "combinatorial_map"):
        for suffix in (".png", ".pdf", ".csv"):
            assert (tmp_path / f"{name}{suffix}").is_file()


def test_wrong_checkpoints_are_one_line_errors(trained, tmp_path, simulated):
    folder, classifier, _ = trained
    gan = str(folder / "gan" / "checkpoints" / "last.ckpt")
    wrong_kind = run_cli("gan", "sample", "--checkpoint", classifier, "--out", str(tmp_path), check=False)
    assert wrong_kind.returncode == 2 and "is not a GAN checkpoint (kind: classifier)" in wrong_kind.stderr
    other = run_cli("fit", "--config", "configs/linear.yaml", "--data.root", str(simulated), "--data.train_cells",
                    "[S01]", "--data.marks", "[H3K4me3,H3K27me3]", "--trainer.max_epochs", "1",
                    "--trainer.default_root_dir", str(tmp_path / "two"), *QUIET)  # fmt: skip
    assert other.returncode == 0
    two_marks = json.loads((tmp_path / "two" / "metrics.json").read_text())["best_checkpoint"]
    mismatch = run_cli("gan", "visualize", "--gan", gan, "--classifier", two_marks, "--root", str(simulated),
                       "--cells", "S01", "--out", str(tmp_path / "v"), check=False)  # fmt: skip
    assert mismatch.returncode == 2 and "Traceback" not in mismatch.stderr
    assert "expects 2 marks x 100 bins (H3K4me3, H3K27me3), the GAN has 5 marks x 100 bins" in mismatch.stderr
