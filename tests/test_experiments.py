"""Cross-cell experiments: planted cell groups recovered, the engine's results, reruns, bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps

from deepchrome.errors import DeepChromeError
from deepchrome.experiments import (
    cell_correlations,
    load_experiment_config,
    plan_jobs,
    run_experiment,
    summarize_results,
)
from tests.cli import run_cli
from tests.conftest import REPO


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    """4 cells in 2 groups whose histone-expression rules differ (rule_shift 2)."""
    from deepchrome.data.simulate import simulate_release

    out = tmp_path_factory.mktemp("grouped")
    simulate_release(out, n_cells=4, n_genes=600, seed=0, rule_shift=2.0)
    return out


def experiment_config(tmp_path, root, name="e", **extra):
    config = {
        "root": str(root),
        "models": {"linear": str(REPO / "configs" / "linear.yaml")},
        "overrides": {"trainer.max_epochs": 15},
        "families": ["single", "test_on_rest"],
        "selection": ["target_val", "strict"],
        "thresholds": {"high": 0.6, "somewhat": 0.1},
        "study_name": name,
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_correlations_recover_the_planted_groups(simulated):
    correlation, source = cell_correlations(simulated, ["S01", "S02", "S03", "S04"], simulated / "expression")
    assert source == "expression"
    assert correlation.loc["S01", "S03"] > 0.7 and correlation.loc["S02", "S04"] > 0.7
    assert correlation.loc["S01", "S02"] < 0.5
    by_labels, source = cell_correlations(simulated, ["S01", "S02", "S03"], None)
    assert source == "labels" and by_labels.loc["S01", "S03"] > by_labels.loc["S01", "S02"]


def test_partner_correlations_never_see_test_labels(simulated, tmp_path):
    """Scrambling every validation and test label and expression value changes no correlation."""
    import shutil

    from deepchrome.data import read_release_csv, write_release_csv

    cells = ["S01", "S02", "S03", "S04"]
    shutil.copytree(simulated, tmp_path / "data")
    root = tmp_path / "data"
    before = {source: cell_correlations(root, cells, root / "expression" if source else None)[0]
              for source in (True, False)}  # fmt: skip
    held_out = set()
    for cell in cells:
        for split in ("valid", "test"):
            part = read_release_csv(root / cell / "classification" / f"{split}.csv", cell, split)
            held_out |= set(part.gene_ids)
            part.labels = 1 - part.labels
            write_release_csv(part, root / cell / "classification" / f"{split}.csv")
        table = pd.read_csv(root / "expression" / f"{cell}.csv", dtype={"gene_id": str})
        table.loc[table.gene_id.isin(held_out), "value"] = table["value"].max() * 10
        table.to_csv(root / "expression" / f"{cell}.csv", index=False)
    for source, matrix in before.items():
        after, _ = cell_correlations(root, cells, root / "expression" if source else None)
        pd.testing.assert_frame_equal(after, matrix)
    # a training label does count
    part = read_release_csv(root / "S01" / "classification" / "train.csv", "S01", "train")
    part.labels[:20] = 1 - part.labels[:20]
    write_release_csv(part, root / "S01" / "classification" / "train.csv")
    assert cell_correlations(root, cells, None)[0].loc["S01", "S03"] != before[False].loc["S01", "S03"]


def test_correlation_selection_picks_the_planted_partners(simulated, tmp_path):
    config = experiment_config(tmp_path, simulated, families=["exclusive_high", "inclusive_somewhat", "exclusive_all"])
    settings = load_experiment_config(config)
    correlation, _ = cell_correlations(simulated, settings["cells"], simulated / "expression")
    jobs, rows, skipped = plan_jobs(settings, correlation)
    train = {(r["family"], r["target"], r["selection"]): jobs[r["job"]]["train_cells"] for r in rows}
    assert train["exclusive_high", "S01", "strict"] == ["S03"]
    assert train["exclusive_high", "S04", "target_val"] == ["S02"]
    assert train["inclusive_somewhat", "S01", "strict"] == ["S01", "S02", "S04"]
    assert train["exclusive_all", "S02", "strict"] == ["S01", "S03", "S04"]
    jobs_of = {(r["family"], r["target"], r["selection"]): jobs[r["job"]] for r in rows}
    assert jobs_of["exclusive_all", "S02", "target_val"]["val_cells"] == ["S02"]  # the paper's selection
    assert jobs_of["exclusive_all", "S02", "strict"]["val_cells"] == ["S01", "S03", "S04"]
    assert skipped == []


def test_engine_shows_the_planted_block_structure_and_resumes(grouped, tmp_path):
    config = experiment_config(tmp_path, grouped)
    summary = run_experiment(config, out=tmp_path / "out")
    assert summary["jobs"] == 4  # single and test_on_rest share one training per cell
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(results.family) == {"single", "test_on_rest"} and len(results) == 4 + 12
    rest = results[results.family == "test_on_rest"].set_index(["target", "test_cell"])["test_auroc"]
    # every test cell is predicted best by the model trained on its group partner
    partner = {"S01": "S03", "S03": "S01", "S02": "S04", "S04": "S02"}
    for test, same in partner.items():
        others = [c for c in partner if c not in (test, same)]
        assert rest[same, test] > max(rest[other, test] for other in others)
    for figure in ("test_on_rest_linear.png", "auroc_vs_correlation.png", "families.png", "summary.md"):
        assert (tmp_path / "out" / figure).is_file()
    again = run_cli("experiment", "--config", str(config), "--out", str(tmp_path / "out"))
    assert "4 jobs (4 finished before, 0 to run)" in again.stdout


def test_families_summary_and_empty_training_sets(simulated, tmp_path):
    config = experiment_config(tmp_path, simulated, name="f", families=["single", "exclusive_all", "exclusive_high"],
                               thresholds={"high": 0.99, "somewhat": 0.1}, targets=["S01", "S02"])  # fmt: skip
    result = run_cli("experiment", "--config", str(config), "--out", str(tmp_path / "out"))
    assert "combinations skipped" in result.stdout and "Cell-type independence" in result.stdout
    # two targets: no verdict, whatever the numbers
    assert "linear: inconclusive" in result.stdout and "over 2 target(s), fewer than the 5" in result.stdout
    paired = pd.read_csv(tmp_path / "out" / "paired_vs_single.csv")
    assert set(paired.family) == {"exclusive_all"} and set(paired.selection) == {"strict", "target_val"}
    assert set(paired.verdict) == {"inconclusive"} and (paired.ci_low < paired.mean_difference).all()
    assert "exclusive_high / S01 / linear: no high partner cells" in (tmp_path / "out" / "summary.md").read_text()


def _results(differences: dict[str, float], model: str = "cnn") -> pd.DataFrame:
    rows = []
    for target, difference in differences.items():
        for family, auroc in (("single", 0.85), ("exclusive_all", 0.85 + difference)):
            for selection in ("target_val", "strict") if family != "single" else ("target_val",):
                rows.append({"family": family, "model": model, "target": target, "selection": selection,
                             "train_fraction": 1.0, "n_train_cells": 1, "test_auroc": auroc})  # fmt: skip
    return pd.DataFrame(rows)


def test_experiment_verdicts_use_target_cells_and_a_stated_margin():
    differences = {"A": -0.004, "B": 0.002, "C": -0.001, "D": 0.003, "E": -0.002, "F": 0.0}
    _, paired, sentence = summarize_results(_results(differences))
    row = paired[(paired.family == "exclusive_all") & (paired.selection == "strict")].iloc[0]
    values = np.array(list(differences.values()))
    half = sps.t.ppf(0.975, 5) * values.std(ddof=1) / math.sqrt(6)
    assert row.targets == 6 and row.mean_difference == pytest.approx(values.mean(), abs=1e-12)
    assert row.ci_low == pytest.approx(values.mean() - half) and row.ci_high == pytest.approx(values.mean() + half)
    assert (row.wins, row.losses, row.verdict) == (2, 3, "equivalent")
    assert "cnn: supported (matches within +/-0.01)" in sentence and "strict selection" in sentence
    # a margin of 0.002 is narrower than the interval: no longer a match
    _, narrow, sentence = summarize_results(_results(differences), margin=0.002)
    assert set(narrow.verdict) == {"inconclusive"} and "cnn: inconclusive" in sentence
    # worse by 0.02-0.04 on every target: single better, not supported
    _, paired, sentence = summarize_results(_results({t: -0.02 - 0.004 * i for i, t in enumerate("ABCDEF")}))
    assert set(paired.verdict) == {"single better"} and "cnn: not supported (worse)" in sentence


def test_two_targets_are_inconclusive_whatever_the_p_value():
    _, paired, sentence = summarize_results(_results({"E003": -0.007, "E123": -0.006}))
    assert set(paired.verdict) == {"inconclusive"}
    assert "cnn: inconclusive" in sentence and "over 2 target(s), fewer than the 5 a verdict needs" in sentence
    assert "supports" not in sentence and "Wilcoxon" not in sentence
    _, _, one = summarize_results(_results({"E003": -0.007}))
    assert "no interval from a single target" in one


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"targets": ["S09"]}, "target cell(s) S09 not in"),
        ({"thresholds": {"high": 1.5}}, "thresholds.high = 1.5, expected a number in [-1, 1]"),
        ({"families": ["everything"]}, "unknown famil(ies) everything"),
        ({"margin": 0}, "margin = 0, expected a test-AUROC difference in (0, 1)"),
        ({"margin": "small"}, "margin = 'small', expected a test-AUROC difference in (0, 1)"),
    ],
)
def test_bad_input(simulated, tmp_path, extra, message):
    config = experiment_config(tmp_path, simulated, **extra)
    with pytest.raises(DeepChromeError) as error:
        load_experiment_config(config)
    assert message in str(error.value)
    result = run_cli("experiment", "--config", str(config), "--out", str(tmp_path / "o"), check=False)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def report_run(simulated, tmp_path_factory):
    """``deepchrome report --fast`` on two simulated cells: its command line and folder."""
    folder = tmp_path_factory.mktemp("report")
    args = ["report", "--out", str(folder / "report"), "--root", str(simulated), "--cells", "S01", "S02",
            "--seeds", "1", "--work", str(folder / "work"), "--fast", "--models", "linear (max)"]  # fmt: skip
    return args, folder, run_cli(*args)


def test_report_runs_end_to_end_on_a_tiny_simulated_set(report_run):
    _, tmp_path, result = report_run
    assert "report:" in result.stdout
    text = (tmp_path / "report" / "README.md").read_text()
    for heading in ("## Classifiers on real data", "## Cross-cell experiments", "## GAN", "## Attributions",
                    "## Published numbers"):  # fmt: skip
        assert heading in text
    # verdicts by the stated rule: two cells are too few for a cross-cell claim
    assert "The 12-parameter linear model (max) against the 644,177-parameter CNN" in text
    assert "equivalence margin +/-0.01" in text and "inconclusive; only 2 cell(s)" in text
    assert "Wilcoxon" not in text and "supports cell-type independence" not in text
    # the runtime is this run's, measured: every step computed now (10 cached steps + 2 figure steps)
    assert "Runtime: this run computed every step from scratch in **" in text
    steps = sorted((tmp_path / "work").rglob("step.json"))
    assert len(steps) == 10 and not (tmp_path / "work" / "timing.json").exists()
    assert (tmp_path / "report" / "gan" / "combinatorial_map.png").is_file()
    gan = pd.read_csv(tmp_path / "report" / "gan_quality.csv")  # one GAN per cell, judged on its test split
    assert list(gan.cell) == ["S01", "S02"] and gan["two-sample AUROC"].between(0.5, 1).all()
    assert (gan["(real)"] < gan["two-sample AUROC"]).all()
    gap = gan["fidelity AUROC"] - gan["(real)  "]
    assert ((gan["fidelity gap"] - gap).abs() <= 0.0016).all()  # three roundings to 3 decimals
    assert (tmp_path / "report" / "attributions" / "S01_marks.png").is_file()
    table = pd.read_csv(tmp_path / "report" / "classifiers_real.csv")
    assert set(table.model) == {"CNN, paper settings", "linear (max)"} and set(table.cell) == {"S01", "S02"}
    assert (table.test_auroc_ci_low < table.test_auroc).all() and (table.test_auroc < table.test_auroc_ci_high).all()


@pytest.mark.slow
def test_report_rerun_reuses_every_cached_step(report_run):
    """A second run, in a new process, finds every step's fingerprint unchanged (opt in: ``-m slow``)."""
    args, tmp_path, _ = report_run
    steps = sorted((tmp_path / "work").rglob("step.json"))
    before = [p.read_text() for p in steps]
    run_cli(*args, subprocess_=True)
    again = (tmp_path / "report" / "README.md").read_text()
    assert "this run computed 2 of 12 steps in" in again and "and reused 10, whose fingerprint" in again
    assert [p.read_text() for p in sorted((tmp_path / "work").rglob("step.json"))] == before
