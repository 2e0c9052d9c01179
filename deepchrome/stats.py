"""Confidence intervals, paired tests and verdicts for the claims the report makes.

Two units of replication, two tools:

* **Genes within one test set** are the unit for a single comparison: two models scored on the same
  test genes of one cell (or one pooled test set). :func:`auroc_ci` and :func:`compare` use DeLong's
  variance of the AUROC (DeLong, DeLong & Clarke-Pearson 1988, Biometrics 44:837), computed with the
  midrank algorithm of Sun & Xu (2014, IEEE Signal Processing Letters 21:1389); :func:`auprc_ci` uses
  a bootstrap over genes. Such an interval says how much the result would move on another draw of
  genes from the same cell; it says nothing about other cells.
* **Cells (targets) are the unit** for a cross-cell claim ("model A beats model B", "training on other
  cells matches training on the target"). Seeds are not independent units: average them within a cell
  first (:func:`average_seeds`), then take a t-interval of the mean per-cell difference
  (:func:`paired_over_units`).

Either interval feeds :func:`verdict`, which turns it into "a better", "b better", "equivalent" or
"inconclusive" against a practical margin.

Predictions tables (``predictions.csv``, ``test_predictions.csv``) have the columns ``gene_id, cell,
probability, predicted_label, label``; :func:`read_predictions`, :func:`compare_tables` and
:func:`compare_runs` compare two of them gene by gene.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from deepchrome.errors import DeepChromeError

__all__ = [
    "PREDICTION_COLUMNS",
    "ComparisonResult",
    "Verdict",
    "auprc_ci",
    "auroc_ci",
    "average_precision",
    "average_seeds",
    "compare",
    "compare_runs",
    "compare_tables",
    "delong_covariance",
    "paired_over_units",
    "read_predictions",
    "verdict",
]

PREDICTION_COLUMNS = ("gene_id", "cell", "probability", "predicted_label", "label")
# The file a run folder holds its test-set predictions in (what compare_runs looks for).
TEST_PREDICTIONS = "test_predictions.csv"
# Genes resampled per block in the AUPRC bootstrap: bounds memory to ~block x genes x 8 bytes x a few arrays.
_BOOT_BLOCK = 64


# --------------------------------------------------------------------------------------------- input checks
def _check_level(level: float) -> float:
    if not (isinstance(level, numbers.Real) and 0.0 < float(level) < 1.0):
        raise DeepChromeError(f"level must be between 0 and 1 (exclusive), got {level!r}")
    return float(level)


def _as_labels(labels, name: str = "labels") -> np.ndarray:
    """0/1 labels as a boolean vector [genes]; refuses anything else."""
    array = np.asarray(labels)
    if array.ndim != 1:
        raise DeepChromeError(f"{name} must be one-dimensional [genes], got shape {array.shape}")
    if array.dtype == bool:
        return array
    if not np.issubdtype(array.dtype, np.number):
        raise DeepChromeError(f"{name} must be 0/1, got values of type {array.dtype}")
    bad = ~np.isin(array, (0, 1))
    if bad.any():
        raise DeepChromeError(f"{name} must be 0/1: {int(bad.sum())} value(s) are not, e.g. {array[bad][0]!r}")
    return array == 1


def _as_scores(scores, n: int, name: str) -> np.ndarray:
    array = np.asarray(scores)
    if array.ndim != 1:
        raise DeepChromeError(f"{name} must be one-dimensional [genes], got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DeepChromeError(f"{name} must be real numbers, got values of type {array.dtype}")
    if len(array) != n:
        raise DeepChromeError(f"{name} has {len(array)} values but labels has {n}")
    array = array.astype(float)
    bad = ~np.isfinite(array)
    if bad.any():
        raise DeepChromeError(f"{name} has {int(bad.sum())} non-finite value(s) (NaN or inf)")
    return array


def _checked(labels, scores: dict[str, object], min_per_class: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Labels [genes] (bool) and scores [k, genes] (float) after every check; ``scores`` maps name -> vector."""
    y = _as_labels(labels)
    # Shapes and values first: a length mismatch is the more basic error than a class count.
    matrix = np.stack([_as_scores(values, len(y), name) for name, values in scores.items()])
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise DeepChromeError(f"labels has a single class ({n_pos} positive, {n_neg} negative genes): AUROC undefined")
    if min(n_pos, n_neg) < min_per_class:
        # DeLong's variance divides by (count - 1) in each class.
        raise DeepChromeError(
            f"labels needs at least {min_per_class} genes of each class for an interval "
            f"({n_pos} positive, {n_neg} negative)"
        )
    return y, matrix


# --------------------------------------------------------------------------------------------- DeLong
def _delong(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fast DeLong on checked inputs: AUCs [k] and their covariance [k, k].

    Sun & Xu (2014): with midranks (ties share the mean rank) of each classifier's scores over all
    genes (``tz``), over the positives alone (``tx``) and over the negatives alone (``ty``), the
    placement value of positive i is V10_i = (tz_i - tx_i) / n (the share of negatives it beats, ties
    counting 1/2) and that of negative j is V01_j = 1 - (tz_j - ty_j) / m. AUC = mean V10, and
    cov = S10 / m + S01 / n with S the sample covariances (denominator count - 1) over genes.
    """
    positives, negatives = scores[:, y], scores[:, ~y]
    m, n = positives.shape[1], negatives.shape[1]
    tz = sps.rankdata(np.concatenate([positives, negatives], axis=1), axis=1)
    tx = sps.rankdata(positives, axis=1)
    ty = sps.rankdata(negatives, axis=1)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    auc = v10.mean(axis=1)
    # np.cov of a single row returns a 0-d array; atleast_2d keeps the [k, k] shape for k = 1.
    covariance = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return auc, covariance


def delong_covariance(labels, *scores) -> tuple[np.ndarray, np.ndarray]:
    """AUROC of each score vector and DeLong's covariance matrix of those AUROCs.

    Parameters
    ----------
    labels
        0/1 (or boolean) class of each gene, shape [genes]; 1 is the positive (highly expressed) class.
    *scores
        One or more score vectors, each shape [genes]; higher means more likely positive. Ties are
        allowed (they count 1/2, as in the Mann-Whitney statistic).

    Returns
    -------
    auc : numpy.ndarray
        Shape [k], the AUROC of each score vector.
    covariance : numpy.ndarray
        Shape [k, k], DeLong's estimate of the covariance of the AUROCs (diagonal: variances).

    Raises
    ------
    DeepChromeError
        Single-class labels, fewer than 2 genes in a class, lengths that differ, non-finite scores.
    """
    if not scores:
        raise DeepChromeError("delong_covariance needs at least one score vector")
    y, matrix = _checked(labels, {f"scores[{i}]": s for i, s in enumerate(scores)})
    return _delong(y, matrix)


def auroc_ci(labels, scores, level: float = 0.95) -> dict:
    """AUROC with a DeLong confidence interval over genes.

    The interval is the plain (untransformed) Wald interval AUC +/- z * sqrt(DeLong variance), as R's
    pROC ``ci.auc(method = "delong")`` computes it, clipped to [0, 1]. Near 1 (few errors) a plain
    interval is less accurate than a logit one; at the test-set sizes of this project (thousands of
    genes) the two differ in the fourth decimal.

    Parameters
    ----------
    labels
        0/1 class of each gene, shape [genes].
    scores
        Score of each gene (e.g. P(high)), shape [genes].
    level
        Confidence level of the two-sided interval.

    Returns
    -------
    dict
        ``value`` (the AUROC), ``ci_low``, ``ci_high``, ``method``.

    Raises
    ------
    DeepChromeError
        Single-class labels, fewer than 2 genes in a class, length mismatch, non-finite scores, bad level.
    """
    level = _check_level(level)
    y, matrix = _checked(labels, {"scores": scores})
    auc, covariance = _delong(y, matrix)
    half = float(sps.norm.ppf(0.5 + level / 2)) * math.sqrt(max(float(covariance[0, 0]), 0.0))
    value = float(auc[0])
    return {
        "value": value,
        "ci_low": max(0.0, value - half),
        "ci_high": min(1.0, value + half),
        "method": f"DeLong {level:.0%} (plain Wald, clipped to [0, 1])",
    }


# --------------------------------------------------------------------------------------------- AUPRC
def _average_precision_rows(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Average precision of each row: scores [b, genes], positive [b, genes] (bool) -> [b].

    AP = sum over thresholds of (recall step) x precision, one threshold per distinct score (the
    definition of torchmetrics' BinaryAveragePrecision, which the training logs as ``test_auprc``, and
    of scikit-learn's average_precision_score). Tied genes enter together: each positive gene
    contributes the precision at the end of its tie group, divided by the number of positives.
    """
    order = np.argsort(-scores, axis=1, kind="stable")
    s = np.take_along_axis(scores, order, axis=1)
    hit = np.take_along_axis(positive, order, axis=1)
    tp = np.cumsum(hit, axis=1)
    precision = tp / np.arange(1, scores.shape[1] + 1)
    # The last gene of each tie group (the next score is lower, or it is the last gene) is a threshold.
    is_end = np.ones_like(s, dtype=bool)
    is_end[:, :-1] = s[:, :-1] != s[:, 1:]
    index = np.where(is_end, np.arange(s.shape[1]), s.shape[1])
    group_end = np.minimum.accumulate(index[:, ::-1], axis=1)[:, ::-1]
    precision_at_end = np.take_along_axis(precision, group_end, axis=1)
    return (hit * precision_at_end).sum(axis=1) / hit.sum(axis=1)


def _average_precision_of_draws(scores: np.ndarray, positive: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Average precision of resamples given as gene indices: scores, positive [genes], draws [b, m] -> [b].

    The same values as :func:`_average_precision_rows` on ``scores[draws]``, without sorting each
    resample: the genes are sorted once, a resample is how many copies of each gene it drew, and
    its precision at the end of each tie group comes from cumulative counts in that order.
    """
    n = len(scores)
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    s = scores[order]
    is_end = np.ones(n, dtype=bool)
    is_end[:-1] = s[:-1] != s[1:]
    group_end = np.minimum.accumulate(np.where(is_end, np.arange(n), n)[::-1])[::-1]
    b = len(draws)
    counts = np.bincount((np.arange(b)[:, None] * n + rank[draws]).ravel(), minlength=b * n).reshape(b, n)
    hits = counts * positive[order]
    drawn = np.cumsum(counts, axis=1)[:, group_end]
    precision_at_end = np.cumsum(hits, axis=1)[:, group_end] / np.maximum(drawn, 1)
    return (hits * precision_at_end).sum(axis=1) / hits.sum(axis=1)


def average_precision(labels, scores) -> float:
    """Average precision (area under the precision-recall curve, step-wise), shape [genes] inputs.

    The same definition as the ``test_auprc`` the training logs (torchmetrics BinaryAveragePrecision);
    see :func:`auprc_ci` for an interval.
    """
    y, matrix = _checked(labels, {"scores": scores}, min_per_class=1)
    return float(_average_precision_rows(matrix, y[None, :])[0])


def auprc_ci(labels, scores, level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> dict:
    """AUPRC (average precision) with a percentile bootstrap interval over genes.

    Each resample draws the positive genes with replacement from the positives and the negatives from
    the negatives (stratified), so every resample keeps the class balance that AUPRC depends on. The
    interval is the (1 - level) / 2 and (1 + level) / 2 quantiles of the resampled AUPRCs.

    Parameters
    ----------
    labels
        0/1 class of each gene, shape [genes].
    scores
        Score of each gene, shape [genes].
    level
        Confidence level of the two-sided interval.
    n_boot
        Number of bootstrap resamples (at least 100).
    seed
        Seed of the resampling; the same seed gives the same interval.

    Returns
    -------
    dict
        ``value`` (AUPRC on all genes), ``ci_low``, ``ci_high``, ``method``.

    Raises
    ------
    DeepChromeError
        Single-class labels, fewer than 2 genes in a class, length mismatch, non-finite scores, bad
        level or n_boot.
    """
    level = _check_level(level)
    if not isinstance(n_boot, int | np.integer) or n_boot < 100:
        raise DeepChromeError(f"n_boot must be an integer of at least 100, got {n_boot!r}")
    y, matrix = _checked(labels, {"scores": scores})
    values = matrix[0]
    value = float(_average_precision_rows(values[None, :], y[None, :])[0])
    pos_idx, neg_idx = np.flatnonzero(y), np.flatnonzero(~y)
    rng = np.random.default_rng(seed)
    resampled = np.empty(n_boot)
    for start in range(0, n_boot, _BOOT_BLOCK):
        b = min(_BOOT_BLOCK, n_boot - start)
        idx = np.concatenate(
            [rng.choice(pos_idx, size=(b, len(pos_idx))), rng.choice(neg_idx, size=(b, len(neg_idx)))], axis=1
        )
        resampled[start : start + b] = _average_precision_of_draws(values, y, idx)
    low, high = np.quantile(resampled, [0.5 - level / 2, 0.5 + level / 2])
    return {
        "value": value,
        "ci_low": float(low),
        "ci_high": float(high),
        "method": f"stratified percentile bootstrap {level:.0%} over genes ({n_boot} resamples, seed {seed})",
    }


# --------------------------------------------------------------------------------------------- paired AUROC test
@dataclass(frozen=True)
class ComparisonResult:
    """Two models' AUROC on the same genes and DeLong's paired test of their difference.

    Attributes
    ----------
    auroc_a, auroc_b
        AUROC of each model.
    difference
        ``auroc_a - auroc_b``.
    ci_low, ci_high
        Two-sided confidence interval of the difference at ``level`` (plain Wald, DeLong variance).
    p_value
        Two-sided p-value of DeLong's test for two correlated ROC curves (H0: equal AUROC).
    n_genes
        Genes (rows) both models were scored on.
    z
        The test statistic, difference / standard error (0 when both models rank the genes identically).
    level
        Confidence level of the interval.
    """

    auroc_a: float
    auroc_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_genes: int
    z: float
    level: float

    def to_dict(self) -> dict:
        """The fields as a plain dict (JSON-ready)."""
        return asdict(self)


def compare(labels, scores_a, scores_b, level: float = 0.95) -> ComparisonResult:
    """DeLong's paired test of two models' AUROC on the same genes (DeLong et al. 1988).

    Parameters
    ----------
    labels
        0/1 class of each gene, shape [genes].
    scores_a, scores_b
        Each model's score of the same genes in the same order, shape [genes].
    level
        Confidence level of the interval of the difference.

    Returns
    -------
    ComparisonResult
        The two AUROCs, their difference (a - b) with its interval, and the two-sided p-value. Matches
        R pROC ``roc.test(..., method = "delong", paired = TRUE)``.

    Raises
    ------
    DeepChromeError
        Single-class labels, fewer than 2 genes in a class, length mismatch, non-finite scores, bad level.
    """
    level = _check_level(level)
    y, matrix = _checked(labels, {"scores_a": scores_a, "scores_b": scores_b})
    auc, cov = _delong(y, matrix)
    difference = float(auc[0] - auc[1])
    variance = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if variance > 0:
        se = math.sqrt(variance)
        z = difference / se
        p_value = float(2 * sps.norm.sf(abs(z)))
    else:
        # The placement values differ by a constant: identical rankings (difference 0, p = 1, as pROC
        # reports) or a difference without any sampling spread.
        se, z = 0.0, 0.0 if difference == 0 else math.copysign(math.inf, difference)
        p_value = 1.0 if difference == 0 else 0.0
    half = float(sps.norm.ppf(0.5 + level / 2)) * se
    return ComparisonResult(
        auroc_a=float(auc[0]),
        auroc_b=float(auc[1]),
        difference=difference,
        ci_low=difference - half,
        ci_high=difference + half,
        p_value=p_value,
        n_genes=len(y),
        z=float(z),
        level=level,
    )


# --------------------------------------------------------------------------------------------- prediction tables
def _validated_table(frame: pd.DataFrame, source: str, from_csv: bool = False) -> pd.DataFrame:
    """A predictions table with checked columns: numeric probability in [0, 1], 0/1 labels, unique keys.

    ``source`` names the table in errors (a file path or "table a"); a bad row is reported as its CSV
    line (header = line 1) when ``from_csv``, else as its position (row 0 = first).
    """

    def where(mask: pd.Series) -> str:
        first = int(np.flatnonzero(mask.to_numpy())[0])
        return f"line {first + 2}" if from_csv else f"row {first}"

    def shown(value) -> str:
        # Quote text as written ('high', ''); numbers plainly (3, not np.int64(3)).
        return repr(value) if isinstance(value, str) else str(value)

    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise DeepChromeError(
            f"{source}: missing column(s) {', '.join(missing)} (expected {', '.join(PREDICTION_COLUMNS)})"
        )
    if frame.empty:
        raise DeepChromeError(f"{source}: no rows")
    out = frame[list(PREDICTION_COLUMNS)].copy()
    for column in ("gene_id", "cell"):
        text = out[column].astype("string")
        empty = text.isna() | (text.str.strip() == "")
        if empty.any():
            raise DeepChromeError(f"{source}: {where(empty)}: empty {column}")
        out[column] = text.astype(str)
    probability = pd.to_numeric(out["probability"], errors="coerce")
    bad = probability.isna() | ~probability.between(0.0, 1.0)
    if bad.any():
        raise DeepChromeError(
            f"{source}: {where(bad)}: probability {shown(out['probability'][bad].iloc[0])} is not a number in [0, 1]"
        )
    out["probability"] = probability.astype(float)
    for column in ("label", "predicted_label"):
        numeric = pd.to_numeric(out[column], errors="coerce")
        bad = ~numeric.isin([0, 1])
        if bad.any():
            raise DeepChromeError(f"{source}: {where(bad)}: {column} {shown(out[column][bad].iloc[0])} is not 0 or 1")
        out[column] = numeric.astype(int)
    duplicated = out.duplicated(["gene_id", "cell"])
    if duplicated.any():
        row = out[duplicated].iloc[0]
        raise DeepChromeError(
            f"{source}: {where(duplicated)}: gene {row.gene_id} in cell {row.cell} appears more than once "
            f"({int(duplicated.sum())} repeated gene x cell row(s))"
        )
    return out.reset_index(drop=True)


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read a predictions CSV (gene_id, cell, probability, predicted_label, label) with checked values.

    Parameters
    ----------
    path
        The CSV file, as written by ``deepchrome predict`` or the test step of a run.

    Returns
    -------
    pandas.DataFrame
        One row per gene x cell: gene_id and cell as text, probability float in [0, 1],
        predicted_label and label int 0/1.

    Raises
    ------
    DeepChromeError
        Naming the file (and the line): missing file, unreadable CSV, missing columns, empty gene_id or
        cell, a probability that is not a number in [0, 1], a label that is not 0/1, a repeated gene x cell.
    """
    path = Path(path)
    if not path.is_file():
        raise DeepChromeError(f"{path}: no such file")
    try:
        # Everything as text first, so a bad value is reported as written rather than silently coerced.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DeepChromeError(f"{path}: not a readable CSV ({reason})") from None
    return _validated_table(frame, str(path), from_csv=True)


def compare_tables(
    table_a: pd.DataFrame,
    table_b: pd.DataFrame,
    level: float = 0.95,
    names: tuple[str, str] = ("table a", "table b"),
) -> ComparisonResult:
    """DeLong's paired test of two predictions tables on the same genes, joined on (gene_id, cell).

    Every gene x cell row is one unit; tables covering several cells are pooled (one AUROC over all
    rows), as the training's ``test_auroc`` is.

    Parameters
    ----------
    table_a, table_b
        Predictions tables with columns gene_id, cell, probability, predicted_label, label; the rows
        may come in any order.
    level
        Confidence level of the interval of the difference.
    names
        How errors call the two tables (e.g. their file paths).

    Returns
    -------
    ComparisonResult
        ``a`` is ``table_a``: difference = AUROC(a) - AUROC(b).

    Raises
    ------
    DeepChromeError
        Bad columns or values; gene sets that differ (saying how many genes each table lacks); a gene
        labelled differently in the two tables (saying how many).
    """
    a = _validated_table(table_a, names[0])
    b = _validated_table(table_b, names[1])
    merged = a.merge(b, on=["gene_id", "cell"], how="outer", suffixes=("_a", "_b"), indicator=True)
    only_a = int((merged["_merge"] == "left_only").sum())
    only_b = int((merged["_merge"] == "right_only").sum())
    if only_a or only_b:
        example = merged.loc[merged["_merge"] != "both"].iloc[0]
        raise DeepChromeError(
            f"{names[0]} and {names[1]} cover different genes: {only_a} gene x cell row(s) only in {names[0]}, "
            f"{only_b} only in {names[1]} (e.g. {example.gene_id} in {example.cell}); compare runs on the same test set"
        )
    disagree = merged["label_a"] != merged["label_b"]
    if disagree.any():
        example = merged[disagree].iloc[0]
        raise DeepChromeError(
            f"{names[0]} and {names[1]} label {int(disagree.sum())} of {len(merged)} shared gene(s) differently "
            f"(e.g. {example.gene_id} in {example.cell}); were they made from the same data?"
        )
    return compare(merged["label_a"].to_numpy(), merged["probability_a"].to_numpy(),
                   merged["probability_b"].to_numpy(), level=level)  # fmt: skip


def _predictions_file(run: str | Path) -> Path:
    """A run folder's test predictions, or the CSV itself."""
    path = Path(run)
    if path.is_dir():
        candidate = path / TEST_PREDICTIONS
        if not candidate.is_file():
            raise DeepChromeError(f"{path}: no {TEST_PREDICTIONS} in this run folder")
        return candidate
    if not path.exists():
        raise DeepChromeError(f"{path}: no such run folder or predictions file")
    return path


def compare_runs(a: str | Path, b: str | Path, level: float = 0.95) -> ComparisonResult:
    """DeLong's paired test of two runs' test predictions.

    Parameters
    ----------
    a, b
        Each a run folder holding ``test_predictions.csv`` or the path of a predictions CSV.
    level
        Confidence level of the interval of the difference.

    Returns
    -------
    ComparisonResult
        difference = AUROC(a) - AUROC(b) over the genes both were tested on (which must be the same).

    Raises
    ------
    DeepChromeError
        A missing folder or file, a bad table (naming the file), or tables that do not cover the same
        labelled genes.
    """
    file_a, file_b = _predictions_file(a), _predictions_file(b)
    return compare_tables(read_predictions(file_a), read_predictions(file_b), level=level,
                          names=(str(file_a), str(file_b)))  # fmt: skip


# --------------------------------------------------------------------------------------------- across units
def average_seeds(frame: pd.DataFrame, unit_col: str, seed_col: str, value_col: str) -> pd.DataFrame:
    """Mean of ``value_col`` over seeds within each unit (cell), so each unit counts once.

    Parameters
    ----------
    frame
        One row per unit x seed, e.g. per-cell, per-seed differences in test AUROC.
    unit_col, seed_col, value_col
        Column names of the unit (cell), the seed and the value.

    Returns
    -------
    pandas.DataFrame
        One row per unit, in order of first appearance: ``unit_col``, ``value_col`` (the mean over
        seeds) and ``n_seeds``.

    Raises
    ------
    DeepChromeError
        A missing column, a non-finite value, or a unit x seed pair present twice (counted twice it
        would weigh that seed double).
    """
    missing = [c for c in (unit_col, seed_col, value_col) if c not in frame.columns]
    if missing:
        raise DeepChromeError(f"average_seeds: missing column(s) {', '.join(missing)}")
    values = pd.to_numeric(frame[value_col], errors="coerce")
    if not np.isfinite(values.to_numpy(dtype=float)).all():
        raise DeepChromeError(f"average_seeds: column {value_col} has missing or non-finite values")
    repeated = frame.duplicated([unit_col, seed_col])
    if repeated.any():
        row = frame[repeated].iloc[0]
        raise DeepChromeError(f"average_seeds: {unit_col} {row[unit_col]} has seed {row[seed_col]} more than once")
    grouped = frame.assign(**{value_col: values}).groupby(unit_col, sort=False)[value_col]
    return pd.DataFrame({value_col: grouped.mean(), "n_seeds": grouped.size()}).reset_index()


def paired_over_units(diffs_per_unit, level: float = 0.95) -> dict:
    """Mean paired difference over units (cells) with a Student t-interval.

    Parameters
    ----------
    diffs_per_unit
        One difference per unit, shape [units], e.g. AUROC(a) - AUROC(b) per target cell with seeds
        already averaged within each cell (:func:`average_seeds`).
    level
        Confidence level of the two-sided interval.

    Returns
    -------
    dict
        ``value`` (mean difference), ``ci_low``, ``ci_high`` (mean +/- t_{n-1} x sd / sqrt(n); NaN with
        a single unit), ``n_units``, ``method``.

    Raises
    ------
    DeepChromeError
        No units, non-finite differences, bad level.
    """
    level = _check_level(level)
    diffs = np.asarray(diffs_per_unit, dtype=float).ravel()
    if diffs.size == 0:
        raise DeepChromeError("paired_over_units: no units")
    if not np.isfinite(diffs).all():
        raise DeepChromeError("paired_over_units: the differences must be finite numbers")
    n = diffs.size
    mean = float(diffs.mean())
    if n > 1:
        half = float(sps.t.ppf(0.5 + level / 2, n - 1) * diffs.std(ddof=1) / math.sqrt(n))
    else:
        half = math.nan
    return {
        "value": mean,
        "ci_low": mean - half,
        "ci_high": mean + half,
        "n_units": n,
        "method": f"t-interval {level:.0%} over {n} unit(s)",
    }


# --------------------------------------------------------------------------------------------- verdict
@dataclass(frozen=True)
class Verdict:
    """What an interval of a difference (a - b) supports.

    Attributes
    ----------
    label
        "a better", "b better", "equivalent" or "inconclusive".
    reason
        One sentence saying why.
    """

    label: str
    reason: str


def verdict(ci_low: float, ci_high: float, margin: float, n_units: int, min_units: int = 5) -> Verdict:
    """Turn an interval of the difference (a - b) into a claim.

    Rules, in order:

    1. fewer than ``min_units`` units -> "inconclusive" (too few to trust the interval's width);
    2. the whole interval inside (-margin, +margin) -> "equivalent": this is the two one-sided tests
       (TOST) procedure; a two-sided interval at level L is TOST at alpha = (1 - L) / 2 per side (pass a
       90 % interval for the usual alpha = 0.05). It wins over superiority: an interval that excludes 0
       but lies inside the margin means a real but practically negligible difference, reported as
       "equivalent";
    3. the interval entirely above 0 -> "a better", entirely below 0 -> "b better";
    4. otherwise (the interval covers 0 and reaches past the margin) -> "inconclusive".

    Parameters
    ----------
    ci_low, ci_high
        The interval of the difference a - b.
    margin
        The smallest difference that matters (> 0), in the units of the difference (e.g. 0.01 AUROC).
    n_units
        Units behind the interval: cells for a cross-cell claim, genes for a single comparison.
    min_units
        Below this many units the verdict is always "inconclusive".

    Returns
    -------
    Verdict
        The label and the reason.

    Raises
    ------
    DeepChromeError
        A margin that is not positive, or (with enough units) an interval that is not two ordered finite numbers.
    """
    if not (isinstance(margin, numbers.Real) and math.isfinite(margin) and margin > 0):
        raise DeepChromeError(f"margin must be a positive number, got {margin!r}")
    if n_units < min_units:
        return Verdict("inconclusive", f"only {n_units} unit(s), fewer than the {min_units} a verdict needs")
    if not (math.isfinite(ci_low) and math.isfinite(ci_high) and ci_low <= ci_high):
        raise DeepChromeError(f"the interval must be two ordered finite numbers, got [{ci_low}, {ci_high}]")
    interval = f"[{ci_low:+.4g}, {ci_high:+.4g}]"
    if -margin < ci_low and ci_high < margin:
        return Verdict("equivalent", f"the interval {interval} lies inside +/-{margin:g}")
    if ci_low > 0 or ci_high < 0:
        # "By at least the margin" only when the whole interval clears it; otherwise the difference is
        # real but may be smaller than the margin.
        size = "by more than" if min(abs(ci_low), abs(ci_high)) >= margin else "possibly by less than"
        return Verdict("a better" if ci_low > 0 else "b better",
                       f"the interval {interval} excludes 0 ({size} the margin {margin:g})")  # fmt: skip
    return Verdict("inconclusive", f"the interval {interval} covers 0 and reaches past the margin +/-{margin:g}")
