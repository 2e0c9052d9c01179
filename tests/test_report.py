"""The report's claims from constructed numbers: linear-vs-CNN verdicts, cross-cell verdicts, the step cache."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from deepchrome.report import cache
from deepchrome.report.build import CNN, LINEAR, summarize_classifiers

# ---------------------------------------------------------------------------------------------- linear vs CNN


def _predictions(folder, cell, labels, probability):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"gene_id": [f"g{i}" for i in range(len(labels))], "cell": cell, "probability": probability,
                  "predicted_label": (np.asarray(probability) >= 0.5).astype(int), "label": labels}).to_csv(
        folder / "test_predictions.csv", index=False)  # fmt: skip
    return str(folder)


def _table(per_cell: dict[str, list[tuple[float, float]]], run_dirs: dict | None = None) -> pd.DataFrame:
    """Rows of classifier_table: per cell, a list over seeds of (linear AUROC, CNN AUROC)."""
    rows = []
    for cell, seeds in per_cell.items():
        for seed, (linear, cnn) in enumerate(seeds):
            for model, auroc, parameters in ((LINEAR, linear, 12), (CNN, cnn, 644_177)):
                rows.append({"model": model, "cell": cell, "seed": seed, "test_auroc": auroc,
                             "test_auroc_ci_low": auroc - 0.05, "test_auroc_ci_high": auroc + 0.04,
                             "test_auprc": auroc - 0.1, "test_auprc_ci_low": auroc - 0.2,
                             "test_auprc_ci_high": auroc - 0.05, "parameters": parameters, "seconds": 1.0,
                             "epochs": 3, "run_dir": (run_dirs or {}).get((model, cell, seed))})  # fmt: skip
    return pd.DataFrame(rows)


def test_per_cell_verdicts_are_paired_delong_of_seed_zero(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 100)
    noisy = np.clip(labels * 0.2 + rng.uniform(0, 0.8, 200), 0, 1)
    # C1: the linear model ranks every gene right, the CNN is noisy; C2: the two are identical
    perfect = np.where(labels == 1, 0.9, 0.1) + rng.uniform(-0.05, 0.05, 200)
    runs = {
        (LINEAR, "C1", 0): _predictions(tmp_path / "l1", "C1", labels, perfect),
        (CNN, "C1", 0): _predictions(tmp_path / "c1", "C1", labels, noisy),
        (LINEAR, "C2", 0): _predictions(tmp_path / "l2", "C2", labels, noisy),
        (CNN, "C2", 0): _predictions(tmp_path / "c2", "C2", labels, noisy),
    }
    from deepchrome.stats import compare

    expected = compare(labels, perfect, noisy)
    assert expected.ci_low > 0.01  # the constructed C1 difference clears the margin
    summary, sentence = summarize_classifiers(_table({"C1": [(0.99, 0.8)], "C2": [(0.8, 0.8)]}, runs))
    assert (f"C1 {expected.difference:+.3f} [{expected.ci_low:.3f}, {expected.ci_high:.3f}] over 200 genes, "
            "the linear model is better") in sentence  # fmt: skip
    # identical predictions: difference 0 with a zero-width interval, inside the margin
    assert "C2 +0.000 [0.000, 0.000] over 200 genes, matches" in sentence
    # two cells: the cross-cell verdict cannot be more than inconclusive
    assert "2 cell(s) as the unit" in sentence and "fewer than the 5 a cross-cell verdict needs" in sentence
    assert "inconclusive; only 2 cell(s)" in sentence
    assert "12-parameter linear model" in sentence and "644,177-parameter CNN" in sentence
    assert "equivalence margin +/-0.01" in sentence and "Wilcoxon" not in sentence
    # the table shows seed 0's intervals from metrics.json beside the means
    row = summary.set_index(["model", "cell"]).loc[(LINEAR, "C1")]
    assert row["AUROC 95% CI (seed 0)"] == "[0.940, 1.030]" and row["AUPRC 95% CI (seed 0)"] == "[0.790, 0.940]"


def test_cross_cell_verdict_averages_seeds_within_cells():
    # 6 cells x 3 seeds; the linear model trails by 0.002-0.004 per cell on average
    offsets = [-0.002, -0.003, -0.004, -0.002, -0.003, -0.004]
    seeds = [-0.02, 0.0, 0.02]  # seed noise, averaging to 0 within each cell
    per_cell = {f"C{i}": [(0.9 + off + s, 0.9 - s) for s in seeds] for i, off in enumerate(offsets)}
    _, sentence = summarize_classifiers(_table(per_cell))
    # seeds averaged within a cell (the pairs are not the unit): the cell means are the offsets exactly
    mean, sd = np.mean(offsets), np.std(offsets, ddof=1)
    half = sps.t.ppf(0.975, 5) * sd / math.sqrt(6)
    assert f"6 cell(s) as the unit, t-interval): {mean:+.3f} [{mean - half:.3f}, {mean + half:.3f}], matches." in (
        sentence
    )
    # over the 18 cell x seed pairs the seed noise would widen the interval past the margin
    pairs = np.array([off + 2 * s for off in offsets for s in seeds])
    assert sps.t.ppf(0.975, 17) * pairs.std(ddof=1) / math.sqrt(18) > 0.01
    # the same differences over 4 cells: inconclusive, saying why
    _, few = summarize_classifiers(_table(dict(list(per_cell.items())[:4])))
    assert "inconclusive; only 4 cell(s), fewer than the 5 a cross-cell verdict needs" in few
    # a CNN better by 0.03 in every cell: the CNN is better, not a match
    _, worse = summarize_classifiers(_table({f"C{i}": [(0.87 + i * 0.001, 0.9)] for i in range(6)}))
    assert "the CNN is better." in worse and "matches" not in worse.split("Best model")[0]


# ---------------------------------------------------------------------------------------------- the step cache


def test_a_step_is_reused_only_while_its_fingerprint_holds(tmp_path, monkeypatch):
    calls = []

    def compute(folder):
        calls.append(folder)
        (folder / "out.txt").write_text(str(len(calls)))
        return len(calls)

    def load(folder):
        return int((folder / "out.txt").read_text())

    step = tmp_path / "step"
    first = cache.cached_step("s", step, {"config": {"epochs": 2}, "data": "abc"}, compute, load)
    assert (first.value, first.reused, len(calls)) == (1, False, 1)
    record = json.loads((step / cache.STEP_FILE).read_text())
    assert record["key"] == first.key and record["seconds"] == first.seconds and record["run"] == cache.RUN_ID
    again = cache.cached_step("s", step, {"config": {"epochs": 2}, "data": "abc"}, compute, load)
    assert (again.value, again.reused, again.seconds, len(calls)) == (1, True, first.seconds, 1)
    # another config, other data, other code: computed again, in a folder emptied first
    (step / "left_over.txt").write_text("x")
    changed = cache.cached_step("s", step, {"config": {"epochs": 3}, "data": "abc"}, compute, load)
    assert (changed.value, changed.reused) == (2, False) and not (step / "left_over.txt").exists()
    assert cache.cached_step("s", step, {"config": {"epochs": 3}, "data": "abd"}, compute, load).value == 3
    monkeypatch.setattr(cache, "code_fingerprint", lambda: {"version": "9", "commit": None, "source": "other"})
    assert cache.cached_step("s", step, {"config": {"epochs": 3}, "data": "abd"}, compute, load).value == 4
    # an interrupted step (no step.json) is not trusted
    (step / cache.STEP_FILE).unlink()
    assert cache.cached_step("s", step, {"config": {"epochs": 3}, "data": "abd"}, compute, load).value == 5


def test_data_fingerprint_follows_contents_not_dates(tmp_path):
    import os

    for split in ("train", "valid", "test"):
        path = tmp_path / "X" / "classification" / f"{split}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{split}\n")
    before = cache.data_fingerprint(tmp_path, ["X"])
    test = tmp_path / "X" / "classification" / "test.csv"
    os.utime(test, ns=(1, 1))
    assert cache.data_fingerprint(tmp_path, ["X"]) == before
    test.write_text("changed\n")
    assert cache.data_fingerprint(tmp_path, ["X"]) != before
    extra = tmp_path / "expression.csv"
    with_extra = cache.data_fingerprint(tmp_path, ["X"], [extra])  # missing: enters as missing
    extra.write_text("1\n")
    assert cache.data_fingerprint(tmp_path, ["X"], [extra]) != with_extra


def test_code_fingerprint_names_version_commit_and_source():
    import deepchrome

    code = cache.code_fingerprint()
    assert code["version"] == deepchrome.__version__ and len(code["source"]) == 64
    assert code["commit"] is None or len(code["commit"]) == 40


def test_runtime_sentence_is_measured_by_the_runs_that_computed_the_steps():
    fresh = [cache.Step("a", None, 60.0, False), cache.Step("b", None, 120.0, False)]
    assert cache.runtime_sentence(fresh, 200.0) == (
        "this run computed every step from scratch in **3.3 minutes** of wall time"
    )
    mixed = [cache.Step("a", None, 600.0, True), cache.Step("b", None, 120.0, False)]
    text = cache.runtime_sentence(mixed, 150.0)
    assert "took **12.0 minutes**" in text and "computed 1 of 2 steps in 2.5 minutes and reused 1" in text


def test_gan_row_reads_null_metrics_as_nan(tmp_path):
    """metrics.json writes an undefined number as null; the report's GAN table shows it as NaN."""
    from deepchrome.files import write_json
    from deepchrome.report.build import _gan_row

    quality = {"two_sample_auroc": 0.6, "two_sample_auroc_real": 0.52, "profile_correlation_min": 0.9,
               "profile_correlation_real/H3K4me3": 0.95, "profile_correlation_corrected_min": 0.91,
               "profiles_measured": 5, "profile_correlation_gap_max": 0.02,
               "conditional_fidelity_auroc": float("nan"), "conditional_fidelity_gap": float("nan")}  # fmt: skip
    path = write_json(tmp_path / "metrics.json", {"epochs": 3, "test_quality": quality,
                                                  "targets_met_on_test": {"two_sample": True}})  # fmt: skip
    row = _gan_row("E003", json.loads(path.read_text()))
    assert math.isnan(row["fidelity AUROC"]) and math.isnan(row["fidelity gap"])
    assert row["two-sample AUROC"] == 0.6 and row["targets met"] == "1 of 1"
