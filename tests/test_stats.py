"""deepchrome.stats: DeLong intervals and tests, AUPRC bootstrap, prediction tables, verdicts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from deepchrome import stats
from deepchrome.errors import DeepChromeError

# R pROC's aSAH data (Turck et al. 2010, Intensive Care Med 36:107; shipped with pROC as data(aSAH)),
# 113 patients in pROC's row order. Outcome: P = Poor (the positive class), G = Good; wfns grade
# 1-5; s100b and ndka as printed by R. The AUCs, variances and covariances checked below reproduce
# pROC's to 1e-12, which also checks this transcription.
ASAH_OUTCOME = (
    "GGGGPPGPGGPGPPGGPGPPPGPGGGGGGGGGPGGPPGPPGGGGGGGGGPPGGGPGGGPGPGGPPPGPPGPPPPGGGPPGPGGGGGGPGGGGGGGGGGGGPPPPPPGGGPGGG"
)
ASAH_WFNS = (
    "11113254125255125225211112121134214541425511241125521251222151125214524414121421232421451154221113125225552445111"
)
ASAH_S100B = """
0.13 0.14 0.1 0.04 0.13 0.1 0.47 0.16 0.18 0.1 0.12 0.1 0.44 0.71 0.04 0.08 0.49 0.04 0.07 0.33 0.09 0.09 0.07
0.11 0.07 0.17 0.07 0.11 0.13 0.19 0.05 0.16 0.41 0.14 0.34 0.35 0.48 0.09 0.96 0.25 0.5 0.46 0.16 0.07 0.43 0.45
0.11 0.08 0.09 0.86 0.52 0.08 0.06 0.13 2.07 0.1 0.14 0.15 0.07 0.06 0.77 0.05 0.09 0.3 0.03 0.09 0.04 0.23 0.7
0.09 0.27 0.71 0.08 0.26 0.08 0.16 0.09 0.13 0.1 0.08 0.11 0.33 0.11 0.28 0.07 0.1 0.32 0.22 0.07 0.05 0.24 0.38
0.1 0.15 0.08 0.14 0.1 0.07 0.04 0.19 0.56 0.14 0.58 0.32 0.82 0.74 0.15 0.47 0.17 0.44 0.15 0.5 0.48
"""
ASAH_NDKA = """
3.01 8.54 8.09 10.42 17.4 12.75 6.0 13.2 15.54 6.01 15.96 17.86 5.18 8.9 13.41 20.75 11.6 16.11 32.37 54.82 32.41
49.94 40.34 9.47 6.29 12.53 6.54 6.3 80.3 12.8 9.8 9.81 9.85 18.21 5.03 14.04 21.93 8.02 7.42 8.38 6.59 9.63 13.12
7.96 14.34 41.43 7.63 7.06 12.59 13.56 3.87 9.44 7.66 12.98 419.19 27.19 22.27 9.95 21.22 11.73 10.4 58.83 6.39
11.09 12.22 13.67 17.21 22.63 12.9 9.7 21.57 8.23 72.57 15.54 10.51 10.6 14.57 5.19 9.63 4.61 21.48 17.3 12.71 9.44
11.07 19.46 10.83 5.37 11.97 7.75 9.83 10.55 28.49 8.53 12.57 12.9 46.83 11.68 12.67 9.01 9.57 34.06 11.72 14.26
47.61 11.67 24.58 10.33 13.87 15.89 22.43 6.79 13.45
"""


@pytest.fixture(scope="module")
def asah() -> dict[str, np.ndarray]:
    data = {
        "outcome": np.array([c == "P" for c in ASAH_OUTCOME], dtype=int),
        "wfns": np.array([int(c) for c in ASAH_WFNS], dtype=float),
        "s100b": np.array(ASAH_S100B.split(), dtype=float),
        "ndka": np.array(ASAH_NDKA.split(), dtype=float),
    }
    assert {len(v) for v in data.values()} == {113}
    assert data["outcome"].sum() == 41  # 41 Poor, 72 Good, as pROC's summary of aSAH
    return data


# ------------------------------------------------------------------------------------------------ DeLong by hand
# Classifiers A and B on 6 genes, 3 positives (rows 0-2) and 3 negatives (rows 3-5), ties in both.
TINY_LABELS = np.array([1, 1, 1, 0, 0, 0])
TINY_A = np.array([0.9, 0.6, 0.4, 0.6, 0.3, 0.2])
TINY_B = np.array([0.8, 0.7, 0.1, 0.5, 0.4, 0.7])


def test_delong_tiny_case_by_hand():
    # psi(x, y) = 1 if x > y, 1/2 if x == y, 0 otherwise; V10 averages psi over the negatives for each
    # positive, V01 over the positives for each negative; S = sample (co)variance, denominator 2.
    # A: V10 = (1, 5/6, 2/3)  [0.6 ties 0.6: (1/2 + 1 + 1) / 3];  V01 = (1/2, 1, 1);  AUC = 5/6
    #    S10 = 1/36, S01 = 1/12 -> var = S10/3 + S01/3 = 1/108 + 1/36 = 1/27
    # B: V10 = (1, 5/6, 0)  [0.7 ties 0.7];  V01 = (2/3, 2/3, 1/2);  AUC = 11/18
    #    S10 = 31/108, S01 = 1/108 -> var = 32/324 = 8/81
    # cov: S10(A, B) = (3*7 + 0*4 + (-3)(-11)) / 18^2 / 2 = 1/12; S01(A, B) = (-6*1 + 3*1 + 3*(-2)) / 18^2 / 2
    #    = -1/72 -> cov = 1/36 - 1/216 = 5/216
    # difference 5/6 - 11/18 = 2/9; var(diff) = 1/27 + 8/81 - 10/216 = 29/324; z = (2/9) / sqrt(29/324) = 4/sqrt(29)
    auc, cov = stats.delong_covariance(TINY_LABELS, TINY_A, TINY_B)
    np.testing.assert_allclose(auc, [5 / 6, 11 / 18], rtol=0, atol=1e-15)
    np.testing.assert_allclose(cov, [[1 / 27, 5 / 216], [5 / 216, 8 / 81]], rtol=0, atol=1e-15)

    result = stats.compare(TINY_LABELS, TINY_A, TINY_B)
    assert result.difference == pytest.approx(2 / 9, abs=1e-15)
    assert result.z == pytest.approx(4 / math.sqrt(29), rel=1e-13)
    # two-sided normal p-value 2 (1 - Phi(z)) = erfc(z / sqrt 2)
    assert result.p_value == pytest.approx(math.erfc(4 / math.sqrt(58)), rel=1e-12)
    half = 1.959963984540054 * math.sqrt(29 / 324)
    assert (result.ci_low, result.ci_high) == pytest.approx((2 / 9 - half, 2 / 9 + half), rel=1e-12)
    assert result.n_genes == 6
    # The single-model interval uses the same variance: 5/6 +/- 1.96 sqrt(1/27), the upper end clipped to 1.
    single = stats.auroc_ci(TINY_LABELS, TINY_A)
    assert single["value"] == pytest.approx(5 / 6, abs=1e-15)
    assert single["ci_low"] == pytest.approx(5 / 6 - 1.959963984540054 * math.sqrt(1 / 27), rel=1e-12)
    assert single["ci_high"] == 1.0
    assert set(single) == {"value", "ci_low", "ci_high", "method"}


# ------------------------------------------------------------------------------------------------ against pROC
# Expected values from pROC's own test suite (github.com/xrobin/pROC, tests/testthat: test-auc.R / helper
# expectations, test-var.R, test-cov.R, test-ci.auc.R, test-roc.test.R), all with DeLong's method.
PROC_AUC = {"wfns": 0.823678861788618, "ndka": 0.611957994579946}
PROC_VAR = {"wfns": 0.00146991470882363, "ndka": 0.0031908105493913, "s100b": 0.00266868245717244}
PROC_COV = [("wfns", "ndka", -0.000532967856762438), ("ndka", "s100b", -0.000756164938056579),
            ("s100b", "wfns", 0.00119615567376754)]  # fmt: skip
# roc.test(roc1, roc2): Z, two-sided p, 95% CI of AUC1 - AUC2.
PROC_ROC_TEST = [
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882, 0.0104061769564846, 0.174214419249478),
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098, 0.0634011709339876, 0.3600405634833566),
    ("ndka", "s100b", -1.39077002573558, 0.164295175223054, -0.2876917446341914, 0.0488706064228094),
]


def test_auc_variance_covariance_match_proc(asah):
    auc, cov = stats.delong_covariance(asah["outcome"], asah["wfns"], asah["ndka"], asah["s100b"])
    names = ["wfns", "ndka", "s100b"]
    assert auc[0] == pytest.approx(PROC_AUC["wfns"], rel=1e-12)
    assert auc[1] == pytest.approx(PROC_AUC["ndka"], rel=1e-12)
    assert round(auc[2], 4) == 0.7314  # pROC prints "Area under the curve: 0.7314" for s100b
    for i, name in enumerate(names):
        assert cov[i, i] == pytest.approx(PROC_VAR[name], rel=1e-12)
    for first, second, expected in PROC_COV:
        assert cov[names.index(first), names.index(second)] == pytest.approx(expected, rel=1e-12)


def test_auroc_ci_matches_proc_ci_auc(asah):
    result = stats.auroc_ci(asah["outcome"], asah["ndka"])
    assert result["value"] == pytest.approx(0.611957994579946, rel=1e-12)
    assert result["ci_low"] == pytest.approx(0.501244999271703, rel=1e-12)
    assert result["ci_high"] == pytest.approx(0.722670989888189, rel=1e-12)


@pytest.mark.parametrize(("a", "b", "z", "p", "low", "high"), PROC_ROC_TEST)
def test_paired_test_matches_proc_roc_test(asah, a, b, z, p, low, high):
    result = stats.compare(asah["outcome"], asah[a], asah[b])
    assert result.z == pytest.approx(z, rel=1e-10)
    assert result.p_value == pytest.approx(p, rel=1e-10)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-10)
    swapped = stats.compare(asah["outcome"], asah[b], asah[a])
    assert swapped.z == pytest.approx(-z, rel=1e-10) and swapped.p_value == pytest.approx(p, rel=1e-10)


def test_identical_scores_give_z0_p1(asah):
    # pROC: roc.test(r.wfns, r.wfns) has Z = 0 and p = 1.
    result = stats.compare(asah["outcome"], asah["wfns"], asah["wfns"])
    assert (result.z, result.p_value, result.ci_low, result.ci_high) == (0.0, 1.0, 0.0, 0.0)


# ------------------------------------------------------------------------------------------------ against O(n^2)
def _slow_delong(labels, *scores):
    """DeLong by its definition: every positive against every negative."""
    pos, neg = labels == 1, labels == 0
    v10, v01 = [], []
    for s in scores:
        psi = (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])  # [m, n]
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    aucs = np.array([v.mean() for v in v10])
    return aucs, np.cov(np.array(v10)) / pos.sum() + np.cov(np.array(v01)) / neg.sum()


def test_fast_delong_matches_quadratic_definition_with_ties():
    rng = np.random.default_rng(11)
    for n_genes in (7, 60, 500):
        labels = (rng.random(n_genes) < 0.3).astype(int)
        labels[:2], labels[2:4] = 1, 0
        # Rounding to 1 decimal makes many ties within and across the classes.
        a = np.round(rng.normal(labels * 1.0, 1.0), 1)
        b = np.round(0.5 * a + rng.normal(labels * 0.5, 1.0), 1)
        c = rng.integers(0, 3, n_genes).astype(float)  # three levels only: heavy ties
        fast_auc, fast_cov = stats.delong_covariance(labels, a, b, c)
        slow_auc, slow_cov = _slow_delong(labels, a, b, c)
        np.testing.assert_allclose(fast_auc, slow_auc, rtol=0, atol=1e-10)
        np.testing.assert_allclose(fast_cov, slow_cov, rtol=0, atol=1e-10)


def test_inputs_are_refused_with_one_line_errors():
    with pytest.raises(DeepChromeError, match="single class"):
        stats.auroc_ci([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(DeepChromeError, match="scores has 2 values but labels has 3"):
        stats.auroc_ci([0, 1, 1], [0.1, 0.2])
    with pytest.raises(DeepChromeError, match="scores_b has 1 non-finite"):
        stats.compare([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], [0.1, np.nan, 0.3, 0.4])
    with pytest.raises(DeepChromeError, match="at least 2 genes of each class"):
        stats.auroc_ci([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(DeepChromeError, match="must be 0/1"):
        stats.auroc_ci([0, 2, 0, 1], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(DeepChromeError, match="level"):
        stats.auroc_ci([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], level=95)


# ------------------------------------------------------------------------------------------------ AUPRC
def _slow_average_precision(labels, scores):
    """sum over distinct thresholds t (high to low) of (recall(t) - recall(previous t)) * precision(t)."""
    total, previous_recall = 0.0, 0.0
    for t in np.unique(scores)[::-1]:
        chosen = scores >= t
        recall = labels[chosen].sum() / labels.sum()
        total += (recall - previous_recall) * labels[chosen].mean()
        previous_recall = recall
    return total


def test_average_precision_matches_threshold_definition_with_ties():
    rng = np.random.default_rng(5)
    for n_genes in (10, 200):
        labels = (rng.random(n_genes) < 0.4).astype(int)
        labels[:2], labels[2:4] = 1, 0
        scores = np.round(rng.normal(labels, 1.0), 1)
        assert stats.average_precision(labels, scores) == pytest.approx(
            _slow_average_precision(labels, scores), abs=1e-12
        )
    # By hand: a tie group enters as one threshold. Scores 0.5, 0.5, 0.5 (two positives, one negative)
    # then 0.1 (negative): one step to recall 1 at precision 2/3, AP = 2/3. Breaking the tie by rank
    # instead would give 1 (positives first) or 1/2 * 1/2 + 1/2 * 2/3 = 7/12 (negative first).
    assert stats.average_precision([1, 1, 0, 0], [0.5, 0.5, 0.5, 0.1]) == pytest.approx(2 / 3, abs=1e-15)
    # 0.9 (pos), then a tie at 0.8 (pos, neg), then 0.1 (neg): 1/2 * 1 + 1/2 * 2/3 = 5/6.
    assert stats.average_precision([1, 1, 0, 0], [0.9, 0.8, 0.8, 0.1]) == pytest.approx(5 / 6, abs=1e-15)


def test_auprc_bootstrap_width_matches_sampling_spread():
    # The bootstrap should reproduce the spread of AUPRC over fresh draws of genes from the same
    # population; resampling without replacement (zero width) or wrong quantiles would not.
    rng = np.random.default_rng(2)
    n_pos, n_neg = 120, 280
    labels = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]

    def draw():
        return np.r_[rng.normal(1.0, 1.0, n_pos), rng.normal(0.0, 1.0, n_neg)]

    fresh = [stats.average_precision(labels, draw()) for _ in range(300)]
    true_sd = np.std(fresh, ddof=1)
    result = stats.auprc_ci(labels, draw(), n_boot=1000, seed=0)
    boot_sd = (result["ci_high"] - result["ci_low"]) / (2 * 1.959963984540054)
    assert 0.75 < boot_sd / true_sd < 1.33
    assert result["ci_low"] < result["value"] < result["ci_high"]


def test_auprc_ci_is_seeded_and_stratified():
    rng = np.random.default_rng(4)
    labels = np.r_[np.ones(2, int), np.zeros(48, int)]
    scores = rng.normal(labels, 1.0)
    first = stats.auprc_ci(labels, scores, n_boot=200, seed=7)
    assert first == stats.auprc_ci(labels, scores, n_boot=200, seed=7)
    # Only 2 positives: an unstratified resample would often hold none (AUPRC undefined -> NaN bounds).
    assert np.isfinite([first["ci_low"], first["ci_high"]]).all()
    narrow = stats.auprc_ci(labels, scores, level=0.5, n_boot=200, seed=7)
    assert first["ci_low"] <= narrow["ci_low"] <= narrow["ci_high"] <= first["ci_high"]
    assert narrow["ci_high"] - narrow["ci_low"] < first["ci_high"] - first["ci_low"]
    with pytest.raises(DeepChromeError, match="n_boot"):
        stats.auprc_ci(labels, scores, n_boot=10)


def test_delong_interval_covers_at_its_level():
    # 400 fresh data sets from one population with known AUROC: 95% intervals should cover it ~95% of
    # the time. Binormal scores, unit variances, means 0 and 1: AUROC = Phi(1 / sqrt 2).
    rng = np.random.default_rng(8)
    truth = sps.norm.cdf(1 / math.sqrt(2))
    labels = np.r_[np.ones(60, int), np.zeros(140, int)]
    hits = 0
    for _ in range(400):
        result = stats.auroc_ci(labels, rng.normal(labels.astype(float), 1.0))
        hits += result["ci_low"] <= truth <= result["ci_high"]
    assert 0.92 <= hits / 400 <= 0.975


# ------------------------------------------------------------------------------------------------ tables and runs
def _table(genes, labels, probability, cell="E003"):
    probability = np.asarray(probability, dtype=float)
    return pd.DataFrame({"gene_id": genes, "cell": cell, "probability": probability,
                         "predicted_label": (probability >= 0.5).astype(int), "label": labels})  # fmt: skip


@pytest.fixture()
def two_tables(asah):
    genes = [f"ENSG{i:05d}" for i in range(113)]
    # Scores squashed into [0, 1] by rank: AUROC only depends on the order.
    prob_a = sps.rankdata(asah["wfns"]) / 114
    prob_b = sps.rankdata(asah["s100b"]) / 114
    return _table(genes, asah["outcome"], prob_a), _table(genes, asah["outcome"], prob_b)


def test_compare_tables_joins_on_gene_and_cell(two_tables):
    table_a, table_b = two_tables
    shuffled = table_b.sample(frac=1.0, random_state=3)  # row order must not matter
    result = stats.compare_tables(table_a, shuffled)
    assert result.z == pytest.approx(PROC_ROC_TEST[0][2], rel=1e-10)  # the wfns vs s100b case of pROC
    assert result.n_genes == 113
    assert result.to_dict()["p_value"] == pytest.approx(PROC_ROC_TEST[0][3], rel=1e-10)


def test_compare_tables_refuses_different_genes_and_labels(two_tables):
    table_a, table_b = two_tables
    fewer = table_b.iloc[3:]
    with pytest.raises(DeepChromeError, match=r"3 gene x cell row\(s\) only in run a, 0 only in run b"):
        stats.compare_tables(table_a, fewer, names=("run a", "run b"))
    other_cell = table_b.assign(cell="E123")
    with pytest.raises(DeepChromeError, match="113 gene x cell row"):
        stats.compare_tables(table_a, other_cell)
    relabelled = table_b.copy()
    relabelled.loc[[0, 5], "label"] = 1 - relabelled.loc[[0, 5], "label"]
    with pytest.raises(DeepChromeError, match="label 2 of 113 shared gene"):
        stats.compare_tables(table_a, relabelled)


HEADER = "gene_id,cell,probability,predicted_label,label\n"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("missing.csv", "gene_id,cell,probability,label\ng1,E003,0.9,1\n",
         r"missing\.csv: missing column\(s\) predicted_label"),
        ("text.csv", HEADER + "g1,E003,0.9,1,1\ng2,E003,high,0,0\n",
         r"text\.csv: line 3: probability 'high' is not a number"),
        ("range.csv", HEADER + "g1,E003,1.5,1,1\n",
         r"range\.csv: line 2: probability '1.5' is not a number in \[0, 1\]"),
        ("empty_prob.csv", HEADER + "g1,E003,,1,1\n", r"empty_prob\.csv: line 2: probability '' "),
        ("label.csv", HEADER + "g1,E003,0.9,1,2\n", r"label\.csv: line 2: label '2' is not 0 or 1"),
        ("repeat.csv", HEADER + "g1,E003,0.9,1,1\ng1,E003,0.8,1,1\n", r"repeat\.csv: line 3: gene g1 in cell E003"),
        ("no_gene.csv", HEADER + "g1,E003,0.9,1,1\n,E003,0.8,1,1\n", r"no_gene\.csv: line 3: empty gene_id"),
        ("header_only.csv", HEADER, r"header_only\.csv: no rows"),
        ("blank.csv", "", r"blank\.csv: not a readable CSV"),
    ],
)  # fmt: skip
def test_read_predictions_errors_name_the_file_and_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DeepChromeError, match=message):
        stats.read_predictions(path)


def test_read_predictions_reads_types(tmp_path):
    path = tmp_path / "good.csv"
    path.write_text(HEADER + "g1,E003,0.9,1,1\ng2,E003,0.2,0,0\n")
    table = stats.read_predictions(path)
    assert table["probability"].tolist() == [0.9, 0.2] and table["label"].tolist() == [1, 0]
    assert table["gene_id"].tolist() == ["g1", "g2"]
    with pytest.raises(DeepChromeError, match=r"nothere\.csv: no such file"):
        stats.read_predictions(tmp_path / "nothere.csv")
    # An in-memory table is reported by row position, not CSV line.
    bad = _table(["g1", "g2"], [1, 0], [0.9, 0.2]).assign(label=[1, 3])
    with pytest.raises(DeepChromeError, match=r"run b: row 1: label 3 is not 0 or 1"):
        stats.compare_tables(_table(["g1", "g2"], [1, 0], [0.9, 0.2]), bad, names=("run a", "run b"))


def test_compare_runs_takes_folders_or_files(tmp_path, two_tables):
    table_a, table_b = two_tables
    run_a = tmp_path / "run_a"
    run_a.mkdir()
    table_a.to_csv(run_a / "test_predictions.csv", index=False)
    file_b = tmp_path / "b.csv"
    table_b.to_csv(file_b, index=False)
    result = stats.compare_runs(run_a, file_b)
    assert result.z == pytest.approx(PROC_ROC_TEST[0][2], rel=1e-10)
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(DeepChromeError, match=r"empty_run: no test_predictions\.csv"):
        stats.compare_runs(empty, file_b)
    with pytest.raises(DeepChromeError, match=r"missing_run: no such run folder"):
        stats.compare_runs(tmp_path / "missing_run", file_b)


# ------------------------------------------------------------------------------------------------ across cells
def test_paired_over_units_t_interval():
    diffs = [0.01, 0.02, 0.03, 0.04, 0.05]
    result = stats.paired_over_units(diffs)
    # mean 0.03, sd 0.0158113883, t_{4, 0.975} = 2.7764451051977987 -> half width 0.0196324316
    half = 2.7764451051977987 * math.sqrt(0.00025) / math.sqrt(5)
    assert result["value"] == pytest.approx(0.03, abs=1e-15)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((0.03 - half, 0.03 + half), rel=1e-12)
    assert result["n_units"] == 5
    one = stats.paired_over_units([0.02])
    assert one["value"] == 0.02 and math.isnan(one["ci_low"]) and math.isnan(one["ci_high"])
    with pytest.raises(DeepChromeError, match="no units"):
        stats.paired_over_units([])


def test_average_seeds_counts_each_cell_once():
    frame = pd.DataFrame({"cell": ["E003"] * 3 + ["E123"] * 2, "seed": [0, 1, 2, 0, 1],
                          "diff": [0.01, 0.02, 0.06, -0.01, 0.03]})  # fmt: skip
    per_cell = stats.average_seeds(frame, "cell", "seed", "diff")
    assert per_cell["cell"].tolist() == ["E003", "E123"]
    np.testing.assert_allclose(per_cell["diff"], [0.03, 0.01], atol=1e-15)
    assert per_cell["n_seeds"].tolist() == [3, 2]
    with pytest.raises(DeepChromeError, match="E003 has seed 1 more than once"):
        stats.average_seeds(pd.concat([frame, frame.iloc[[1]]]), "cell", "seed", "diff")
    with pytest.raises(DeepChromeError, match="missing column"):
        stats.average_seeds(frame, "target", "seed", "diff")


@pytest.mark.parametrize(
    ("low", "high", "n", "label"),
    [
        (0.02, 0.06, 10, "a better"),  # clear win, clears the margin
        (0.004, 0.03, 10, "a better"),  # excludes 0 but reaches past the margin: superiority, not equivalence
        (-0.05, -0.02, 10, "b better"),
        (-0.004, 0.006, 10, "equivalent"),  # inside +/- 0.01
        (0.002, 0.008, 10, "equivalent"),  # excludes 0 but inside the margin: negligible difference
        (-0.03, 0.04, 10, "inconclusive"),  # wide interval
        (-0.004, 0.012, 10, "inconclusive"),  # covers 0, pokes out of the margin
        (0.02, 0.06, 4, "inconclusive"),  # too few units however clear
    ],
)
def test_verdict(low, high, n, label):
    result = stats.verdict(low, high, margin=0.01, n_units=n)
    assert result.label == label
    if n < 5:
        assert "only 4 unit(s)" in result.reason


def test_verdict_reason_and_refusals():
    assert "possibly by less than" in stats.verdict(0.004, 0.03, 0.01, 10).reason
    assert "by more than" in stats.verdict(0.02, 0.06, 0.01, 10).reason
    with pytest.raises(DeepChromeError, match="margin"):
        stats.verdict(0.0, 0.1, margin=0, n_units=10)
    with pytest.raises(DeepChromeError, match="ordered finite"):
        stats.verdict(0.1, 0.0, margin=0.01, n_units=10)


def test_public_names_exported():
    for name in stats.__all__:
        assert hasattr(stats, name), name
