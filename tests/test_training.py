"""The main job through the command line, as a user runs it, on the bundled example data."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from scipy.stats import mannwhitneyu

from tests.cli import run_cli
from tests.conftest import EXAMPLE

FAST = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


deepchrome = run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-epoch CNN fit on the example data (shared by several tests)."""
    run_dir = tmp_path_factory.mktemp("fit")
    result = deepchrome(
        "fit", "--config", "configs/deepchrome.yaml", "--trainer.max_epochs", "3",
        "--trainer.default_root_dir", str(run_dir), *FAST,
    )  # fmt: skip
    return run_dir, result


def test_fit_writes_metrics_and_checkpoints_under_root_dir(trained):
    run_dir, result = trained
    assert f"metrics: {run_dir / 'metrics.json'}" in result.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("val_auroc", "test_auroc", "test_auprc", "best_epoch", "n_parameters", "model"):
        assert key in metrics
    assert metrics["n_parameters"] == 644_177 and metrics["model"] == "DeepChromeCNN"
    assert metrics["train_cells"] == ["S01", "S02", "S03", "S04"]
    assert metrics["test_auroc"] > 0.7 and metrics["best_epoch"] in (0, 1, 2) and metrics["epochs"] == 3
    # the best epoch is the one with the highest validation AUROC in the log
    log = pd.read_csv(run_dir / "metrics.csv").dropna(subset=["val_auroc"])
    assert int(log.loc[log.val_auroc.idxmax(), "epoch"]) == metrics["best_epoch"]
    assert metrics["val_auroc"] == pytest.approx(log.val_auroc.max(), abs=1e-6)
    assert "test_S03_auroc" in metrics  # several test cells: per-cell metrics
    assert (run_dir / "config.yaml").is_file() and (run_dir / "metrics.csv").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert metrics["selected_on_validation"] is True


def test_a_time_limit_that_ends_the_run_before_validation_is_reported(tmp_path, caplog):
    # caplog: the CLI's log handler keeps the stderr of the first in-process command
    deepchrome(
        "fit", "--config", "configs/deepchrome_fast.yaml", "--trainer.max_time", "00:00:00:00",
        "--trainer.default_root_dir", str(tmp_path), *FAST,
    )  # fmt: skip
    warning = [r.getMessage() for r in caplog.records if "before its first validation" in r.getMessage()]
    assert warning == [
        "trainer.max_time 00:00:00:00 ended it before its first validation (0 epochs done): the "
        "checkpoint tested was not selected on validation (metrics.json: selected_on_validation false); give it more "
        "time or validate more often (trainer.check_val_every_n_epoch)"
    ]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["selected_on_validation"] is False and metrics["best_checkpoint"] is None


def test_checkpoints_load_with_weights_only(trained):
    run_dir, _ = trained
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["deepchrome"]["net"]["class_path"] == "deepchrome.models.cnn.DeepChromeCNN"
    assert checkpoint["deepchrome"]["marks"] == ["H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3"]


def test_same_seed_same_metrics(tmp_path):
    runs = []
    for name in ("a", "b"):
        deepchrome(
            "fit", "--config", "configs/linear.yaml", "--trainer.max_epochs", "4",
            "--trainer.default_root_dir", str(tmp_path / name), *FAST,
        )  # fmt: skip
        runs.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    assert runs[0]["test_auroc"] == runs[1]["test_auroc"]
    assert runs[0]["val_auroc"] == runs[1]["val_auroc"]


def test_resume_from_last_checkpoint(tmp_path):
    common = ["--config", "configs/linear.yaml", "--trainer.default_root_dir", str(tmp_path), *FAST]
    deepchrome("fit", *common, "--trainer.max_epochs", "2")
    first = json.loads((tmp_path / "metrics.json").read_text())
    assert first["epochs"] == 2
    deepchrome("fit", *common, "--trainer.max_epochs", "5", "--ckpt_path", "last")
    resumed = json.loads((tmp_path / "metrics.json").read_text())
    assert resumed["epochs"] == 5
    # training continued at epoch 2 rather than starting again at 0
    trained_epochs = pd.read_csv(tmp_path / "metrics.csv").dropna(subset=["train_loss"])["epoch"]
    assert trained_epochs.astype(int).tolist() == [0, 1, 2, 3, 4]  # resume appends; earlier rows kept


def test_predict_writes_per_gene_table(trained, tmp_path):
    run_dir, _ = trained
    result = deepchrome(
        "predict", "--config", "configs/deepchrome.yaml", "--data.test_cells", "[S02]",
        "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"),
        "--trainer.default_root_dir", str(tmp_path), *FAST,
    )  # fmt: skip
    table = pd.read_csv(tmp_path / "predictions.csv", dtype={"gene_id": str})
    assert list(table.columns) == ["gene_id", "cell", "probability", "predicted_label", "label"]
    truth = pd.read_csv(EXAMPLE / "S02/classification/test.csv", header=None, dtype={0: str})
    assert table["gene_id"].tolist() == truth[0].unique().tolist()
    assert set(table["cell"]) == {"S02"}
    assert table["probability"].between(0, 1).all()
    assert ((table["probability"] >= 0.5).astype(int) == table["predicted_label"]).all()
    assert "predictions:" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "configs/linear.yaml", "--data.root", "/nonexistent"], "data root /nonexistent does not exist"),
        (
            ["--config", "configs/linear.yaml", "--data.train_cells", "[E999]"],
            "data.train_cells: cell(s) E999 not in",
        ),
        (["--config", "configs/linear.yaml", "--data.marks", "[H3K27ac]"], "mark(s) H3K27ac not in cell S01"),
        (
            ["--config", "configs/linear.yaml", "--model.net.init_args.aggregate", "mode"],
            "unknown aggregate 'mode' for LinearBaseline (available: max, sum, mean, median, min)",
        ),
    ],
)
def test_bad_config_is_one_line_error(args, message):
    result = deepchrome("fit", *args, "--trainer.max_epochs", "1", check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"deepchrome: error: {message}" in result.stderr.splitlines()[-1]


def test_checkpoint_of_another_model_or_shape_is_refused(trained, tmp_path):
    run_dir, _ = trained
    checkpoint = str(run_dir / "checkpoints" / "last.ckpt")
    out = ["--trainer.default_root_dir", str(tmp_path)]
    other_model = deepchrome("test", "--config", "configs/linear.yaml", "--ckpt_path", checkpoint, *out, check=False)
    assert other_model.returncode == 2 and "Traceback" not in other_model.stderr
    assert "checkpoint holds a DeepChromeCNN, the config builds a LinearBaseline" in other_model.stderr
    other_marks = deepchrome(
        "test", "--config", "configs/deepchrome.yaml", "--data.marks", "[H3K4me3,H3K27me3]",
        "--ckpt_path", checkpoint, *out, check=False,
    )  # fmt: skip
    assert other_marks.returncode == 2
    assert "checkpoint expects 5 marks x 100 bins, the data has 2 marks x 100 bins" in other_marks.stderr


def test_ddp_on_two_cpu_processes(tmp_path):
    deepchrome(
        "fit", "--config", "configs/linear.yaml", "--trainer.strategy", "ddp", "--trainer.devices", "2",
        "--trainer.accelerator", "cpu", "--trainer.max_epochs", "2",
        "--trainer.default_root_dir", str(tmp_path), *FAST, subprocess_=True,
    )  # fmt: skip
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    # the test AUROC is gathered from both processes: it is the AUROC of all 400 test genes, computed here
    # from the predictions table as the Mann-Whitney U statistic over (positive, negative) pairs
    table = pd.read_csv(tmp_path / "test_predictions.csv", dtype={"gene_id": str})
    assert len(table) == 400 and not table.duplicated(["gene_id", "cell"]).any()
    u = mannwhitneyu(table.probability[table.label == 1], table.probability[table.label == 0]).statistic
    assert metrics["test_auroc"] == pytest.approx(u / (table.label.sum() * (1 - table.label).sum()), abs=2e-4)


def test_print_config_shows_the_network():
    result = deepchrome("fit", "--config", "configs/deepchrome.yaml", "--print_config")
    assert "class_path: deepchrome.models.DeepChromeCNN" in result.stdout
    assert "lr: 0.001" in result.stdout


def test_fit_writes_test_predictions_and_intervals(trained, tmp_path):
    run_dir, _ = trained
    metrics = json.loads((run_dir / "metrics.json").read_text())
    table = pd.read_csv(run_dir / "test_predictions.csv", dtype={"gene_id": str})
    assert list(table.columns) == ["gene_id", "cell", "probability", "predicted_label", "label"]
    assert len(table) == 400 and sorted(table.cell.unique()) == ["S01", "S02", "S03", "S04"]
    from deepchrome.stats import auroc_ci

    # the table is the best checkpoint's test split: its AUROC is metrics.json's (torchmetrics, float32)
    pooled = auroc_ci(table.label.to_numpy(), table.probability.to_numpy())
    assert abs(pooled["value"] - metrics["test_auroc"]) < 1e-5
    assert metrics["test_auroc_ci_low"] == pytest.approx(pooled["ci_low"])
    assert metrics["test_auroc_ci_low"] < metrics["test_auroc"] < metrics["test_auroc_ci_high"]
    assert metrics["test_auprc_ci_low"] < metrics["test_auprc"] < metrics["test_auprc_ci_high"]
    s03 = table[table.cell == "S03"]
    assert metrics["test_S03_auroc_ci_low"] == pytest.approx(auroc_ci(s03.label, s03.probability)["ci_low"])
    # compare: a run against itself differs by exactly 0 on its 400 genes
    result = deepchrome("compare", str(run_dir), str(run_dir / "test_predictions.csv"), "--json")
    same = json.loads(result.stdout)
    assert same["difference"] == 0 and same["n_genes"] == 400 and same["auroc_a"] == pytest.approx(pooled["value"])
    shuffled = table.assign(probability=table.probability.sample(frac=1, random_state=0).to_numpy())
    shuffled.to_csv(tmp_path / "shuffled.csv", index=False)
    other = json.loads(deepchrome("compare", str(run_dir), str(tmp_path / "shuffled.csv"), "--json").stdout)
    assert other["difference"] > 0 and other["ci_low"] < other["difference"] < other["ci_high"]
    fewer = table.iloc[:-1]
    fewer.to_csv(tmp_path / "fewer.csv", index=False)
    refused = deepchrome("compare", str(run_dir), str(tmp_path / "fewer.csv"), check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr


def test_cnn_same_seed_same_metrics_and_as_the_declared_layers(tmp_path, monkeypatch):
    """The CNN's faster forward keeps same-seed determinism, and its fit scores as the plain layers' fit."""
    from deepchrome.models import DeepChromeCNN

    def fit(name):
        deepchrome(
            "fit", "--config", "configs/deepchrome.yaml", "--trainer.max_epochs", "2",
            "--trainer.default_root_dir", str(tmp_path / name), *FAST,
        )  # fmt: skip
        return json.loads((tmp_path / name / "metrics.json").read_text())

    first, second = fit("a"), fit("b")
    assert (first["test_auroc"], first["val_auroc"]) == (second["test_auroc"], second["val_auroc"])
    monkeypatch.setattr(DeepChromeCNN, "forward", DeepChromeCNN.reference_forward)
    declared = fit("declared")
    assert abs(declared["test_auroc"] - first["test_auroc"]) < 0.01
    assert abs(declared["val_auroc"] - first["val_auroc"]) < 0.01


def _one_gene_split(tmp_path, cell: str, split: str):
    """A simulated release of 2 cells x 30 genes whose ``cell``'s ``split`` file keeps its first gene only."""
    from deepchrome.data.simulate import simulate_release

    root = tmp_path / "release"
    simulate_release(root, n_cells=2, n_genes=30, seed=0)
    path = root / cell / "classification" / f"{split}.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line for line in lines if line.split(",")[0] == lines[0].split(",")[0]) + "\n")
    return root


@pytest.mark.parametrize(("split", "field"), [("train", "data.train_cells [S01]"), ("valid", "data.val_cells [S01]")])
def test_a_train_or_valid_split_of_one_gene_is_refused(tmp_path, split, field):
    root = _one_gene_split(tmp_path, "S01", split)
    run = tmp_path / "run"
    result = deepchrome("fit", "--config", "linear", "--data.root", str(root), "--data.train_cells", "[S01]", *FAST,
                        "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(run), check=False)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"deepchrome: error: {field}: the {split} split has 1 gene(s), " + lines[0].split(" gene(s), ")[-1]
    ], lines
    assert "AUROC is undefined unless both labels are present" in lines[0]
    assert not run.exists()


def test_a_test_split_of_one_label_scores_null_not_zero(tmp_path, caplog):
    root = _one_gene_split(tmp_path, "S02", "test")
    run = tmp_path / "run"
    deepchrome("fit", "--config", "linear", "--data.root", str(root), "--data.train_cells", "[S01]",
               "--data.test_cells", "[S01, S02]", "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(run),
               *FAST)  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_S02_auroc"] is None and metrics["test_S02_auprc"] is None
    assert 0 < metrics["test_S01_auroc"] <= 1 and 0 < metrics["test_auroc"] <= 1
    assert "test cell S02 has 1 gene(s)" in caplog.text and "undefined, reported as null" in caplog.text
    # the whole test split of one label
    alone = tmp_path / "alone"
    deepchrome("fit", "--config", "linear", "--data.root", str(root), "--data.train_cells", "[S01]",
               "--data.test_cells", "[S02]", "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(alone),
               *FAST)  # fmt: skip
    metrics = json.loads((alone / "metrics.json").read_text())
    assert metrics["test_auroc"] is None and metrics["test_auprc"] is None
