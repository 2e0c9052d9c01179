"""Attributions: exact values on a hand-set linear network, planted ground truth, the command, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepchrome.data.simulate import PLANTED_BINS
from deepchrome.errors import DeepChromeError
from deepchrome.interpret import attribute, group_attributions, make_baseline, shuffled_mark_check, summarize
from deepchrome.models import LinearBaseline
from tests.cli import run_cli

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture()
def hand_set_linear():
    """log-odds = sum_m (w_high - w_low)_m * sum_b x_mb: attributions are exactly x * effect."""
    net = LinearBaseline(aggregate="sum", n_marks=3, n_bins=4)
    with torch.no_grad():
        net.linear.weight.copy_(torch.tensor([[0.0, 0.5, 0.0], [1.0, -1.0, 2.0]]))
        net.linear.bias.copy_(torch.tensor([0.3, -0.1]))
    net.fit_scale([torch.ones(1, 3, 4)])  # sum of ones over 4 bins -> scale 4 for every mark
    return net


@pytest.mark.parametrize("method", ["integrated_gradients", "input_x_gradient", "deeplift"])
def test_linear_network_attributions_equal_input_times_weight(hand_set_linear, method):
    x = torch.rand(6, 3, 4, generator=torch.Generator().manual_seed(0)) * 5
    result = attribute(hand_set_linear, x, method=method, n_steps=20)
    effect = torch.tensor([1.0, -1.5, 2.0]) / 4  # (w_high - w_low) / scale
    np.testing.assert_allclose(result.values, (x * effect[None, :, None]).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.log_odds, (x.sum(-1) * effect).sum(-1).numpy() - 0.4, atol=1e-5)
    if result.delta is not None:
        assert np.abs(result.delta).max() < 1e-4


def test_occlusion_and_baselines(hand_set_linear):
    x = torch.rand(2, 3, 4)
    occluded = attribute(hand_set_linear, x, method="occlusion", window=2)
    # occluding a 2-bin window with zeros removes that window's contribution; each of its bins gets it
    effect = torch.tensor([1.0, -1.5, 2.0]) / 4
    window_sum = x.reshape(2, 3, 2, 2).sum(-1) * effect[None, :, None]
    np.testing.assert_allclose(occluded.values, window_sum.repeat_interleave(2, dim=-1).numpy(), rtol=1e-4)
    blurred = make_baseline(x, "blur", sigma=1.0)
    assert blurred.shape == x.shape and torch.allclose(blurred.mean(), x.mean(), atol=0.2)
    mean = make_baseline(x, "mean", mark_mean=torch.tensor([1.0, 2.0, 3.0]))
    assert mean[1, 2].tolist() == [3.0] * 4
    with pytest.raises(DeepChromeError, match="unknown baseline 'median'"):
        make_baseline(x, "median")
    with pytest.raises(DeepChromeError, match="unknown attribution method 'gradcam'.*integrated_gradients"):
        attribute(hand_set_linear, x, method="gradcam")


def test_summary_ranks_marks():
    values = np.zeros((4, 2, 3))
    values[:, 1] = 2.0
    values[:, 0, 0] = -1.0
    table, bins = summarize(values, np.array([True, True, False, False]), ["A", "B"])
    assert table["mark"].tolist() == ["B", "A"] and table["importance"].tolist() == [6.0, 1.0]
    assert table["mean_low"].tolist() == [6.0, -1.0]
    assert len(bins) == 2 * 2 * 3
    # every gene has the same importances: zero-width intervals, and B is above A on every gene
    assert table["importance_ci_low"].tolist() == [6.0, 1.0] and table["importance_ci_high"].tolist() == [6.0, 1.0]
    assert table["distinct_from_next"].tolist()[0] is True and table["distinct_from_next"].isna().tolist()[1]


def test_rank_intervals_are_t_intervals_over_genes_and_paired():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 5, 40)  # a per-gene level both marks share: the paired difference removes it
    values = np.zeros((40, 2, 1))
    values[:, 0, 0] = 20 + shared + rng.normal(0, 0.1, 40)
    values[:, 1, 0] = 19.5 + shared + rng.normal(0, 0.1, 40)
    table, _ = summarize(values, np.arange(40) % 2 == 0, ["A", "B"])
    importance = np.abs(values[:, 0, 0])
    half = 2.0227 * importance.std(ddof=1) / np.sqrt(40)  # t(0.975, 39)
    np.testing.assert_allclose(table.loc[0, ["importance_ci_low", "importance_ci_high"]].to_numpy(dtype=float),
                               [importance.mean() - half, importance.mean() + half], rtol=1e-4)  # fmt: skip
    # the marginal intervals overlap widely, yet A exceeds B by 0.5 on every gene
    assert table.loc[0, "importance_ci_low"] < table.loc[1, "importance_ci_high"]
    assert bool(table.loc[0, "distinct_from_next"])
    values[:, 1, 0] = 20 + shared + rng.normal(0, 0.1, 40)  # now the same on average: not distinct
    table, _ = summarize(values, np.arange(40) % 2 == 0, ["A", "B"])
    assert not bool(table.loc[0, "distinct_from_next"])


def test_group_attributions_show_a_gate():
    """A's attribution is 2 where B is low and 0 where B is high; C's does not depend on B."""
    rng = np.random.default_rng(1)
    n = 300
    levels = rng.uniform(0, 1, (n, 3))
    values = np.zeros((n, 3, 2))
    values[:, 0, 0] = np.where(levels[:, 1] < 0.5, 2.0, 0.0) + rng.normal(0, 0.5, n)
    values[:, 2, 1] = 1.0 + rng.normal(0, 0.5, n)
    table = group_attributions(values, levels, ["A", "B", "C"]).set_index(["mark", "by_mark"])
    assert len(table) == 6
    gate = table.loc[("A", "B")]
    low, high = levels[:, 1] <= np.quantile(levels[:, 1], 1 / 3), levels[:, 1] >= np.quantile(levels[:, 1], 2 / 3)
    assert gate["n_low"] == low.sum() and gate["n_high"] == high.sum()
    assert gate["mean_low"] == pytest.approx(values[low, 0].sum(-1).mean())
    assert gate["difference"] == pytest.approx(-2.0, abs=0.15) and gate["difference_ci_high"] < -1.5
    assert bool(gate["differs"])
    assert gate["mean_low_ci_low"] < gate["mean_low"] < gate["mean_low_ci_high"]
    flat = table.loc[("C", "B")]
    assert flat["difference_ci_low"] < 0 < flat["difference_ci_high"] and not bool(flat["differs"])


def test_shuffled_mark_check_flags_a_mark_the_model_cannot_use():
    rng = np.random.default_rng(2)
    n = 200
    x = torch.from_numpy(rng.normal(0, 1, (n, 3, 4))).float()
    labels = (x[:, 0].sum(-1) + torch.from_numpy(rng.normal(0, 1, n)).float() > 0).long().numpy()
    net = LinearBaseline(aggregate="sum", n_marks=3, n_bins=4)
    with torch.no_grad():
        net.linear.weight.copy_(torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.3]]))  # mark 1 ignored, mark 2 noise
        net.linear.bias.zero_()
    net.fit_scale([torch.ones(1, 3, 4)])
    table = shuffled_mark_check(net, x, labels, ["A", "B", "C"], repeats=3).set_index("mark")
    assert table.loc["A", "auroc_drop_ci_low"] > 0.1 and not table.loc["A", "noise"]
    assert table.loc["B", "auroc_drop"] == 0 and table.loc["B", "noise"]  # ignored: the scores do not change
    assert table.loc["C", "noise"]  # used, but independent of the label
    assert table.loc["A", "auroc_shuffled"] < 0.65 < table.loc["A", "auroc"]
    assert shuffled_mark_check(net, x, np.ones(n, dtype=int), ["A", "B", "C"]) is None


@pytest.fixture(scope="module")
def simulated_cnn(tmp_path_factory, simulated):
    run_dir = tmp_path_factory.mktemp("cnn")
    run_cli(
        "fit", "--config", "configs/deepchrome_fast.yaml", "--data.root", str(simulated),
        "--data.train_cells", "[S01]", "--trainer.default_root_dir", str(run_dir), *QUIET,
    )  # fmt: skip
    return json.loads((run_dir / "metrics.json").read_text())


def test_planted_marks_and_bins_are_recovered(simulated_cnn, simulated, tmp_path):
    assert simulated_cnn["test_auroc"] > 0.85
    result = run_cli(
        "explain", "--checkpoint", simulated_cnn["best_checkpoint"], "--root", str(simulated), "--cells", "S01",
        "--split", "test", "--out", str(tmp_path), "--gene-figures", "1",
    )  # fmt: skip
    assert "200 genes explained" in result.stdout
    data = np.load(tmp_path / "attributions.npz")
    values, marks = data["values"], data["marks"].tolist()
    assert values.shape == (200, 5, 100) and len(data["delta"]) == 200
    ranked = json.loads((tmp_path / "explain.json").read_text())["ranked_marks"]
    # the four marks of the planted rules outrank H3K4me1, which no rule uses (rule_shift 0), and
    # the mark of the largest planted effect (promoter H3K4me3 without H3K27me3) comes first
    assert ranked[0] == "H3K4me3"
    assert ranked[-1] == "H3K4me1"
    mass = np.abs(values).mean(axis=0)  # [marks, bins]
    first, last = PLANTED_BINS["H3K4me3"]
    k4 = mass[marks.index("H3K4me3")]
    assert k4[first - 1 : last].sum() / k4.sum() > 0.3  # 10 of 100 bins: 0.1 if spread evenly
    k36 = mass[marks.index("H3K36me3")]
    assert k36[50:].sum() / k36.sum() > 0.6  # gene body, downstream of the TSS
    for name in ("S01_heatmap", "S01_marks"):
        for suffix in (".png", ".pdf", ".csv"):
            assert (tmp_path / f"{name}{suffix}").is_file()
    assert len(list(tmp_path.glob("gene_*.png"))) == 1


@pytest.fixture(scope="module")
def label_free_mark(tmp_path_factory, simulated):
    """Simulated S01 with H3K4me1 permuted across genes in every split (no link to labels or other
    marks), a CNN fitted on it, and its explain outputs on the test split."""
    from deepchrome.data import HistoneSignals, write_release_csv
    from deepchrome.data.inputs import load_cells

    root = tmp_path_factory.mktemp("label_free")
    rng = np.random.default_rng(1)
    for split in ("train", "valid", "test"):
        part = load_cells(simulated, ["S01"], split, None, 100, None)[0]
        signals, m = np.asarray(part.signals).copy(), list(part.marks).index("H3K4me1")
        signals[:, m] = signals[rng.permutation(len(signals)), m]
        shuffled = HistoneSignals(signals, np.asarray(part.labels), np.asarray(part.gene_ids), marks=part.marks,
                                  cell="S01", split=split)  # fmt: skip
        write_release_csv(shuffled, root / "S01/classification" / f"{split}.csv")
    run_dir, out = root / "run", root / "explain"
    run_cli("fit", "--config", "configs/deepchrome_fast.yaml", "--data.root", str(root), "--data.train_cells", "[S01]",
            "--trainer.default_root_dir", str(run_dir), *QUIET)  # fmt: skip
    checkpoint = json.loads((run_dir / "metrics.json").read_text())["best_checkpoint"]
    run_cli("explain", "--checkpoint", checkpoint, "--root", str(root), "--cells", "S01", "--out", str(out),
            "--gene-figures", "0")  # fmt: skip
    return out


def test_explain_shows_the_planted_gate_and_flags_the_label_free_mark(label_free_mark):
    import pandas as pd

    groups = pd.read_csv(label_free_mark / "groups.csv").set_index(["mark", "by_mark"])
    # simulate's rule: promoter H3K4me3 raises expression only without H3K27me3
    gate = groups.loc[("H3K4me3", "H3K27me3")]
    assert gate["mean_low"] > gate["mean_high"] and gate["difference_ci_high"] < 0 and gate["differs"]
    marks = pd.read_csv(label_free_mark / "S01_mark_importance.csv").set_index("mark")
    for column in ("importance_ci_low", "importance_ci_high", "distinct_from_next", "auroc_drop_ci_low", "noise"):
        assert column in marks.columns
    assert (marks["importance_ci_low"] < marks["importance"]).all()
    assert marks.loc["H3K4me1", "noise"] and abs(marks.loc["H3K4me1", "auroc_drop"]) < 0.02
    assert not marks.loc["H3K4me3", "noise"] and marks.loc["H3K4me3", "auroc_drop_ci_low"] > 0
    assert not marks.loc["H3K36me3", "noise"]
    summary = json.loads((label_free_mark / "explain.json").read_text())
    assert "H3K4me1" in summary["noise_marks"]["S01"] and "H3K4me3" not in summary["noise_marks"]["S01"]
    for suffix in (".png", ".pdf", ".csv"):
        assert (label_free_mark / f"S01_groups{suffix}").is_file()


def test_explain_errors_are_one_line(simulated_cnn, simulated, tmp_path):
    checkpoint = simulated_cnn["best_checkpoint"]
    common = ["explain", "--checkpoint", checkpoint, "--root", str(simulated), "--out", str(tmp_path)]
    cases = [
        (
            ["--cells", "S01", "--method", "gradcam"],
            "unknown attribution method 'gradcam' (available: integrated_gradients",
        ),
        (["--cells", "S01", "--genes", "nope"], "gene(s) nope not in S01 test (200 genes, e.g. "),
        (["--cells", "S09"], "cell(s) S09 not in"),
    ]
    for extra, message in cases:
        result = run_cli(*common, *extra, check=False)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_checkpoint_marks_must_match_the_data(simulated_cnn, tmp_path):
    from deepchrome.data import HistoneSignals, write_release_csv

    other = HistoneSignals(np.zeros((3, 2, 100), dtype=np.uint16), np.array([0, 1, 0]), np.array(["a", "b", "c"]),
                           marks=("H3K27ac", "H3K4me3"), cell="X")  # fmt: skip
    write_release_csv(other, tmp_path / "X/classification/test.csv")
    write_release_csv(other, tmp_path / "X/classification/train.csv")
    result = run_cli("explain", "--checkpoint", simulated_cnn["best_checkpoint"], "--root", str(tmp_path),
                     "--cells", "X", "--out", str(tmp_path / "out"), check=False)  # fmt: skip
    assert result.returncode == 2
    assert (
        "checkpoint was trained on marks H3K27me3, H3K36me3, H3K4me1, H3K4me3, H3K9me3; cell X has H3K27ac, H3K4me3"
        in result.stderr
    )
