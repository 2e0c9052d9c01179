"""Simulator: deterministic, release layout, and its planted rules hold in what it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepchrome.data import read_release_csv
from deepchrome.data.simulate import PLANTED_BINS, simulate_cells, simulate_release
from deepchrome.errors import DeepChromeError
from tests.cli import run_cli


def test_same_seed_same_data_other_seed_other_data():
    a, _ = simulate_cells(n_cells=2, n_genes=50, seed=3)
    b, _ = simulate_cells(n_cells=2, n_genes=50, seed=3)
    c, _ = simulate_cells(n_cells=2, n_genes=50, seed=4)
    assert np.array_equal(a["S01"].signals, b["S01"].signals)
    assert not np.array_equal(a["S01"].signals, c["S01"].signals)


def test_release_layout_and_ground_truth(simulated):
    truth = json.loads((simulated / "ground_truth.json").read_text())
    assert truth["planted_pair"] == ["H3K4me3", "H3K27me3"]
    assert truth["cell_groups"] == {"S01": 0, "S02": 1, "S03": 0, "S04": 1}
    train = read_release_csv(simulated / "S01/classification/train.csv", "S01", "train")
    assert train.signals.shape == (200, 5, 100)
    assert train.gene_ids.tolist() == truth["splits"]["train"]
    assert abs(train.labels.mean() - 0.5) < 0.1
    assert (simulated / "expression/S01.csv").is_file()


def _mark(signals, name, bins):
    first, last = bins
    return signals.signals[:, signals.marks.index(name), first - 1 : last].mean(axis=1)


def test_planted_rules_hold_in_written_data(simulated):
    cell = read_release_csv(simulated / "S02/classification/train.csv")
    k4me3 = _mark(cell, "H3K4me3", PLANTED_BINS["H3K4me3"])
    k27me3 = _mark(cell, "H3K27me3", PLANTED_BINS["H3K27me3"])
    k36me3 = _mark(cell, "H3K36me3", PLANTED_BINS["H3K36me3"])
    k9me3 = _mark(cell, "H3K9me3", PLANTED_BINS["H3K9me3"])
    high = cell.labels == 1
    active = (k4me3 > np.median(k4me3)) & (k27me3 < np.median(k27me3))
    # promoter H3K4me3 without H3K27me3 -> mostly high; the reverse -> mostly low
    assert high[active].mean() > 0.75
    assert high[~active].mean() < 0.4
    # gene-body H3K36me3 -> high; H3K9me3 -> low
    assert np.corrcoef(k36me3, high)[0, 1] > 0.3
    assert np.corrcoef(k9me3, high)[0, 1] < -0.1
    # H3K4me3 sits at the TSS: its planted bins hold far more signal than the flanks
    profile = cell.signals[:, cell.marks.index("H3K4me3")].mean(axis=0)
    assert profile[45:55].mean() > 3 * profile[:30].mean()


def test_cells_of_one_group_are_more_alike(simulated):
    labels = {c: read_release_csv(simulated / c / "classification/train.csv").labels for c in ("S01", "S02", "S03")}
    same_group = np.mean(labels["S01"] == labels["S03"])
    other_group = np.mean(labels["S01"] == labels["S02"])
    assert same_group > other_group + 0.05


def test_same_seed_same_release_other_seed_other_release(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        simulate_release(tmp_path / name, n_cells=1, n_genes=30, seed=seed)

    def text(name, path="S01/classification/test.csv"):
        return (tmp_path / name / path).read_text()

    assert text("a") == text("b") and text("a", "expression/S01.csv") == text("b", "expression/S01.csv")
    assert text("a") != text("c") and text("a", "expression/S01.csv") != text("c", "expression/S01.csv")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_groups": 0}, "--groups 0: must be >= 1"),
        ({"n_cells": 0}, "--cells 0: must be >= 1"),
        ({"n_genes": 2}, "--genes 2: must be >= 3 (at least one gene per split: train, valid, test)"),
        ({"seed": -1}, "--seed -1: must be >= 0"),
        ({"rule_shift": float("inf")}, "--rule-shift inf: must be a finite number >= 0"),
        ({"noise": -0.5}, "noise -0.5: must be a finite number >= 0"),
        ({"group_shift": 1.5}, "group_shift 1.5: must be between 0 and 1"),
        ({"rules": "learned"}, "--rules 'learned': expected one of fixed, random"),
        ({"rules": "random", "rule_shift": 0.5}, "--rule-shift 0.5: applies to --rules fixed only"),
    ],
)
def test_nonsense_arguments_are_refused_before_writing(tmp_path, kwargs, message):
    with pytest.raises(DeepChromeError) as error:
        simulate_release(tmp_path / "out", **{"n_cells": 1, "n_genes": 30, **kwargs})
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [("--groups", "0"), ("--cells", "0"), ("--genes", "2"), ("--rules", "learned")])
def test_cli_refuses_nonsense_in_one_line(tmp_path, args):
    result = run_cli("simulate", "--out", str(tmp_path / "out"), *args, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{args[0]}" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file(tmp_path):
    (tmp_path / "out").write_text("x")
    result = run_cli("simulate", "--out", str(tmp_path / "out"), "--genes", "30", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"--out {tmp_path}/out: is a file, expected a folder" in result.stderr
    assert (tmp_path / "out").read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_simulate_refuses_to_replace_a_data_set_unless_told(tmp_path):
    from tests.cli import run_cli
    from tests.tree import snapshot

    out = tmp_path / "sim"
    first = run_cli("simulate", "--out", str(out), "--cells", "1", "--genes", "30", "--seed", "1")
    assert first.returncode == 0
    before = snapshot(out)
    again = run_cli("simulate", "--out", str(out), "--cells", "1", "--genes", "30", "--seed", "2", check=False)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "ground_truth.json already exists (5 file(s) would be replaced): pass --overwrite" in again.stderr
    assert snapshot(out) == before
    run_cli("simulate", "--out", str(out), "--cells", "1", "--genes", "30", "--seed", "2", "--overwrite")
    assert snapshot(out) != before  # seed 2's data replaced seed 1's


def test_random_rules_are_drawn_by_the_seed_and_described_in_ground_truth(tmp_path):
    from deepchrome.data.simulate import REGIONS, draw_rules

    drawn = [draw_rules(seed) for seed in range(20)]
    assert draw_rules(3) == drawn[3]
    # the family is actually explored: pair counts, kinds, regions and marks all vary over seeds
    assert {len(d["planted_pairs"]) for d in drawn} == {1, 2}
    assert {t["kind"] for d in drawn for t in d["terms"]} == {"gated", "joint", "additive"}
    assert {name for d in drawn for t in d["terms"] for name in t["region_names"].values()} == set(REGIONS)
    assert len({tuple(d["planted_pairs"][0]) for d in drawn}) >= 8
    for d in drawn:
        used = {m for t in d["terms"] for m in t["marks"]}
        assert used.isdisjoint(d["label_free_marks"]) and len(used) + len(d["label_free_marks"]) == 5
    truth = simulate_release(tmp_path, n_cells=1, n_genes=30, seed=5, rules="random")
    written = json.loads((tmp_path / "ground_truth.json").read_text())
    assert written["rules_family"] == "random" and written["planted_pairs"] == drawn[5]["planted_pairs"]
    assert written["planted_pair"] == written["planted_pairs"][0] and truth["terms"] == written["terms"]
    for term in written["terms"]:
        assert term["kind"] in ("gated", "joint", "additive") and set(term["regions"]) == set(term["marks"])
        assert all(tuple(r) in REGIONS.values() for r in term["regions"].values())
    fixed, _ = simulate_cells(n_cells=1, n_genes=50, seed=5)
    random_rule, _ = simulate_cells(n_cells=1, n_genes=50, seed=5, rules="random")
    assert not np.array_equal(fixed["S01"].signals, random_rule["S01"].signals)


@pytest.mark.parametrize("seed", range(6))
def test_random_rule_holds_in_the_data_and_label_free_marks_carry_none(seed):
    """Each term's marks, read over their planted regions, move expression as the rule says;
    label-free marks do not (on 3000 genes, where chance correlations stay under 0.06)."""
    cells, truth = simulate_cells(n_cells=1, n_genes=3000, seed=seed, rules="random")
    cell = cells["S01"]
    level = {m: cell.signals[:, cell.marks.index(m), r[0] - 1 : r[1]].mean(1) for m, r in truth["planted_bins"].items()}
    on = {m: v > np.median(v) for m, v in level.items()}
    high = cell.labels == 1
    for term in truth["terms"]:
        a = on[term["marks"][0]]
        if term["kind"] == "additive":
            assert np.sign(high[a].mean() - high[~a].mean()) == np.sign(term["weight"])
            continue
        b = on[term["marks"][1]]
        # the second mark's effect differs by A's state: the interaction, not two main effects
        effect_b = [high[a & b].mean() - high[a & ~b].mean(), high[~a & b].mean() - high[~a & ~b].mean()]
        if term["kind"] == "gated":  # B only matters where A is on, and lowers expression there
            assert effect_b[0] < -0.25 and effect_b[0] < effect_b[1] - 0.15
        else:  # joint: B raises expression where A is on, far more than where A is off
            assert effect_b[0] > 0.25 and effect_b[0] > effect_b[1] + 0.15
    for mark in truth["label_free_marks"]:
        assert abs(np.corrcoef(level[mark], cell.expression)[0, 1]) < 0.06
