"""captum attributions for any classifier: which marks, where, drive predicted expression.

Attributions explain the log-odds of "high", ``logit_high - logit_low``, in the model's input space
(after the data module's transform). Arrays are [genes, marks, bins].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from deepchrome.errors import DeepChromeError

log = logging.getLogger(__name__)

METHODS = ("integrated_gradients", "deeplift", "saliency", "input_x_gradient", "occlusion")
BASELINES = ("zeros", "mean", "blur")


class LogOdds(nn.Module):
    """Wraps a network [batch, marks, bins] -> logits [batch, 2] as -> log-odds of high [batch]."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        return logits[:, 1] - logits[:, 0]


@dataclass
class Attributions:
    """Result of :func:`attribute`.

    Attributes
    ----------
    values
        [genes, marks, bins] attributions to the log-odds of high.
    delta
        [genes] IntegratedGradients / DeepLift convergence delta (completeness error), else ``None``.
    log_odds
        [genes] model log-odds of high for the inputs.
    """

    values: np.ndarray
    delta: np.ndarray | None
    log_odds: np.ndarray
    method: str
    baseline: str


def make_baseline(
    x: torch.Tensor,
    kind: str,
    zero_input: torch.Tensor | None = None,
    mark_mean: torch.Tensor | None = None,
    sigma: float = 5.0,
) -> torch.Tensor:
    """Baselines [genes, marks, bins] in model-input space.

    Parameters
    ----------
    x
        Inputs [genes, marks, bins].
    kind
        ``zeros``: zero counts (``zero_input``, the transform of zero counts, [marks] or
        broadcastable; plain zeros if ``None``); ``mean``: the per-mark training mean ``mark_mean``
        [marks] broadcast over bins; ``blur``: the input smoothed along bins by a Gaussian of
        ``sigma`` bins.
    """
    if kind == "zeros":
        return torch.zeros_like(x) if zero_input is None else zero_input.reshape(1, -1, 1).expand_as(x).clone()
    if kind == "mean":
        if mark_mean is None:
            raise DeepChromeError("the 'mean' baseline needs the training data's per-mark mean")
        return mark_mean.reshape(1, -1, 1).expand_as(x).clone()
    if kind == "blur":
        radius = int(3 * sigma)
        offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
        kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
        kernel = (kernel / kernel.sum()).reshape(1, 1, -1)
        flat = x.reshape(-1, 1, x.shape[-1])
        padded = torch.nn.functional.pad(flat, (radius, radius), mode="replicate")
        return torch.nn.functional.conv1d(padded, kernel).reshape_as(x)
    raise DeepChromeError(f"unknown baseline {kind!r} (available: {', '.join(BASELINES)})")


def attribute(
    net: nn.Module,
    x: torch.Tensor,
    method: str = "integrated_gradients",
    baseline: torch.Tensor | None = None,
    n_steps: int = 50,
    noise_tunnel: bool = False,
    nt_samples: int = 10,
    nt_stdev: float = 0.1,
    window: int = 10,
    batch_size: int = 4096,
) -> Attributions:
    """Attribute the log-odds of high to every mark and bin.

    Parameters
    ----------
    net
        Any classifier network; put in eval mode here.
    x
        Inputs [genes, marks, bins] in model space (transformed).
    method
        ``integrated_gradients``, ``deeplift``, ``saliency``, ``input_x_gradient`` or
        ``occlusion`` (windows of ``window`` bins per mark, replaced by the baseline).
    baseline
        [genes, marks, bins] reference input (see :func:`make_baseline`); zeros if ``None``.
    n_steps
        IntegratedGradients steps; all genes x steps are evaluated in batches of ``batch_size``.
    noise_tunnel
        Wrap the method in captum's NoiseTunnel (SmoothGrad, ``nt_samples`` noisy copies).

    Returns
    -------
    Attributions
        ``values`` [genes, marks, bins], ``delta`` [genes] for IntegratedGradients and DeepLift.
    """
    import captum.attr as ca

    if method not in METHODS:
        raise DeepChromeError(f"unknown attribution method {method!r} (available: {', '.join(METHODS)})")
    model = LogOdds(net).eval()
    x = x.detach().float()
    baseline = torch.zeros_like(x) if baseline is None else baseline.detach().float()
    explainer = {
        "integrated_gradients": lambda: ca.IntegratedGradients(model),
        "deeplift": lambda: ca.DeepLift(model),
        "saliency": lambda: ca.Saliency(model),
        "input_x_gradient": lambda: ca.InputXGradient(model),
        "occlusion": lambda: ca.Occlusion(model),
    }[method]()
    kwargs: dict = {}
    if method in ("integrated_gradients", "deeplift", "occlusion"):
        kwargs["baselines"] = baseline
    if method == "integrated_gradients":
        kwargs.update(n_steps=n_steps, internal_batch_size=batch_size)
    if method == "occlusion":
        kwargs.update(sliding_window_shapes=(1, window), strides=(1, window), perturbations_per_eval=64)
    if method == "saliency":
        kwargs["abs"] = False
    with_delta = method in ("integrated_gradients", "deeplift") and not noise_tunnel
    if noise_tunnel:
        explainer = ca.NoiseTunnel(explainer)
        kwargs.update(nt_type="smoothgrad", nt_samples=nt_samples, stdevs=nt_stdev, nt_samples_batch_size=nt_samples)
    if with_delta:
        values, delta = explainer.attribute(x, return_convergence_delta=True, **kwargs)
        delta = delta.detach().cpu().numpy()
    else:
        values, delta = explainer.attribute(x, **kwargs), None
    with torch.no_grad():
        log_odds = model(x).cpu().numpy()
        reference = model(baseline).cpu().numpy()
    if delta is not None:
        scale = np.abs(log_odds - reference)
        relative = np.abs(delta) / np.maximum(scale, 1e-6)
        if np.median(relative) > 0.05:
            log.warning(
                "%s completeness error is large (median |delta| = %.1f%% of |f(x) - f(baseline)|); increase --n-steps",
                method,
                100 * float(np.median(relative)),
            )
    return Attributions(values.detach().cpu().numpy(), delta, log_odds, method, "custom")


def mean_interval(values: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over genes with a Student-t interval over genes, per column.

    Parameters
    ----------
    values
        [genes, k]; genes are the unit of replication.

    Returns
    -------
    mean, low, high
        [k] each (low = high = mean with one gene: no interval).
    """
    values = np.asarray(values, dtype=np.float64)
    mean = values.mean(axis=0)
    n = len(values)
    if n < 2:
        return mean, mean.copy(), mean.copy()
    half = stats.t.ppf(0.5 + level / 2, n - 1) * values.std(axis=0, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def summarize(
    values: np.ndarray, predicted_high: np.ndarray, marks: list[str] | tuple[str, ...], level: float = 0.95
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Aggregate attributions for genes predicted high and low.

    Parameters
    ----------
    values
        [genes, marks, bins].
    predicted_high
        [genes] booleans.
    level
        Confidence level of the intervals over genes.

    Returns
    -------
    marks_table
        One row per mark, ranked by overall mean |attribution| per gene: ``importance`` (mean over
        genes of the mark's summed |attribution|), ``importance_se`` (standard error over genes),
        ``importance_ci_low``/``importance_ci_high`` (t interval over genes), ``mean_high``/``mean_low``
        (signed, summed over bins, averaged over genes), ``rank``, and ``distinct_from_next``: whether
        the paired t interval over genes of (this mark's - the next-ranked mark's per-gene importance)
        excludes 0 (``False``: the two ranks could be swapped by another sample of genes; empty for the
        last rank).
    bins_table
        Long table: group (high/low), mark, bin (1-based), mean attribution, mean |attribution|.
    """
    per_gene = np.abs(values).sum(axis=2)  # [genes, marks]
    signed = values.sum(axis=2)
    n = len(values)
    mean, low, high = mean_interval(per_gene, level)
    table = pd.DataFrame(
        {
            "mark": list(marks),
            "importance": mean,
            "importance_se": per_gene.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(len(marks)),
            "importance_ci_low": low,
            "importance_ci_high": high,
            "mean_high": signed[predicted_high].mean(axis=0) if predicted_high.any() else np.nan,
            "mean_low": signed[~predicted_high].mean(axis=0) if (~predicted_high).any() else np.nan,
        }
    ).sort_values("importance", ascending=False, kind="stable")
    table["rank"] = np.arange(1, len(table) + 1)
    # paired over genes: both ranks are measured on the same genes, so their difference per gene is
    # what varies between gene samples (two marginal intervals overlapping would be too conservative)
    order = table.index.to_numpy()
    distinct: list[object] = []
    for this, following in zip(order[:-1], order[1:], strict=True):
        _, gap_low, _ = mean_interval(per_gene[:, [this]] - per_gene[:, [following]], level)
        distinct.append(bool(gap_low[0] > 0) if n > 1 else None)
    table["distinct_from_next"] = pd.array([*distinct, None], dtype="boolean")
    rows = []
    for group, chosen in (("high", predicted_high), ("low", ~predicted_high)):
        if not chosen.any():
            continue
        mean = values[chosen].mean(axis=0)
        mean_abs = np.abs(values[chosen]).mean(axis=0)
        for m, mark in enumerate(marks):
            for b in range(values.shape[2]):
                rows.append((group, mark, b + 1, mean[m, b], mean_abs[m, b]))
    bins = pd.DataFrame(rows, columns=["group", "mark", "bin", "mean_attribution", "mean_abs_attribution"])
    return table.reset_index(drop=True), bins


def group_attributions(
    values: np.ndarray, levels: np.ndarray, marks: list[str] | tuple[str, ...], level: float = 0.95
) -> pd.DataFrame:
    """Mean signed attribution of each mark among genes where another mark is low vs high.

    A gating rule ("A raises expression only without B") shows as A's attribution differing between
    B-low and B-high genes; an average over all genes hides it.

    Parameters
    ----------
    values
        [genes, marks, bins] attributions; each gene's attribution to a mark is summed over bins.
    levels
        [genes, marks] each gene's level of each mark (e.g. its mean model-input signal over bins).
    level
        Confidence level of the intervals over genes.

    Returns
    -------
    pandas.DataFrame
        One row per (``mark``, ``by_mark``) pair of different marks: ``n_low``/``n_high`` (genes in the
        lower / upper tercile of ``by_mark``'s level; ties at a cut go to that tercile, so a mark that is
        zero in most genes can make them unequal), ``mean_low``/``mean_high`` with t intervals over genes
        (``*_ci_low``/``*_ci_high``), ``difference`` (high - low) with its Welch interval
        (``difference_ci_low``/``difference_ci_high``) and ``differs`` (the interval excludes 0). Rows
        where ``by_mark`` has no spread (equal tercile cuts) or a tercile has fewer than 2 genes are NaN.
    """
    signed = values.sum(axis=2)  # [genes, marks]
    rows = []
    for b, by_mark in enumerate(marks):
        first, second = np.quantile(levels[:, b], [1 / 3, 2 / 3])
        low, high = levels[:, b] <= first, levels[:, b] >= second
        usable = first < second and low.sum() >= 2 and high.sum() >= 2
        for a, mark in enumerate(marks):
            if a == b:
                continue
            row = {"mark": mark, "by_mark": by_mark, "n_low": int(low.sum()), "n_high": int(high.sum())}
            if usable:
                for name, chosen in (("low", low), ("high", high)):
                    mean, ci_low, ci_high = mean_interval(signed[chosen, a : a + 1], level)
                    row.update({f"mean_{name}": mean[0], f"mean_{name}_ci_low": ci_low[0],
                                f"mean_{name}_ci_high": ci_high[0]})  # fmt: skip
                test = stats.ttest_ind(signed[high, a], signed[low, a], equal_var=False)
                interval = test.confidence_interval(level)
                row.update({"difference": row["mean_high"] - row["mean_low"], "difference_ci_low": interval.low,
                            "difference_ci_high": interval.high,
                            "differs": bool(interval.low > 0 or interval.high < 0)})  # fmt: skip
            rows.append(row)
    columns = ["mark", "by_mark", "n_low", "n_high", "mean_low", "mean_low_ci_low", "mean_low_ci_high", "mean_high",
               "mean_high_ci_low", "mean_high_ci_high", "difference", "difference_ci_low", "difference_ci_high",
               "differs"]  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=columns)


def shuffled_mark_check(
    net: nn.Module,
    x: torch.Tensor,
    labels: np.ndarray,
    marks: list[str] | tuple[str, ...],
    repeats: int = 5,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame | None:
    """Whether the model's use of each mark beats a shuffled-mark null (permutation importance).

    The mark's signal is permuted across genes (each gene gets another gene's profile of that mark,
    the other marks stay), breaking its link to the gene's label and other marks while keeping its
    distribution; the model's log-odds are averaged over ``repeats`` permutations. A mark whose
    attributions carry information lowers the model's AUROC when shuffled; for a mark the model
    uses only as noise the AUROC does not drop. Attribution magnitude cannot tell these apart: a
    CNN fitted on a few hundred genes gives a label-free mark attributions as large as a planted
    one's, and even their sign tracks the label, through the other marks' gating of the gradient.

    Parameters
    ----------
    net
        The classifier network.
    x
        [genes, marks, bins] model inputs (transformed).
    labels
        [genes] true 0/1 labels.
    repeats, seed
        Permutations per mark and the seed of the first (same seed: same table).
    level
        Confidence level of DeLong's paired interval over genes (:func:`deepchrome.stats.compare`).

    Returns
    -------
    pandas.DataFrame
        One row per mark: ``auroc`` (the model's on these genes), ``auroc_shuffled``,
        ``auroc_drop`` (``auroc - auroc_shuffled``) with ``auroc_drop_ci_low``/``_high``, and ``noise``:
        the drop's interval does not lie above 0 (the model ranks genes no worse without the mark's
        gene-specific signal: its attributions are indistinguishable from noise).
        Caveat: shuffling a mark that correlates with others creates combinations real genes lack.
        ``None`` when the genes hold a single class (no AUROC).
    """
    from deepchrome.stats import compare

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2 or min(int(labels.sum()), int((1 - labels).sum())) < 2:
        return None
    model = LogOdds(net).eval()
    x = x.detach().float()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        original = model(x).double().numpy()
        rows = []
        for m, mark in enumerate(marks):
            shuffled = np.zeros(len(x))
            for _ in range(repeats):
                permuted = x.clone()
                permuted[:, m] = x[torch.randperm(len(x), generator=generator), m]
                shuffled += model(permuted).double().numpy() / repeats
            result = compare(labels, original, shuffled, level=level)
            rows.append({"mark": mark, "auroc": result.auroc_a, "auroc_shuffled": result.auroc_b,
                         "auroc_drop": result.difference, "auroc_drop_ci_low": result.ci_low,
                         "auroc_drop_ci_high": result.ci_high, "noise": bool(result.ci_low <= 0)})  # fmt: skip
    return pd.DataFrame(rows)


def linear_weights(net: nn.Module, marks: list[str] | tuple[str, ...]) -> pd.DataFrame | None:
    """Per-mark effect of a :class:`~deepchrome.models.LinearBaseline` on the log-odds of high.

    Returns ``weight_high - weight_low`` divided by the mark's training scale (the effect of one
    unit of the aggregated, transformed signal), or ``None`` for other networks.
    """
    from deepchrome.models import LinearBaseline

    if not isinstance(net, LinearBaseline):
        return None
    weight = net.linear.weight.detach()
    effect = ((weight[1] - weight[0]) / net.scale).numpy()
    return pd.DataFrame({"mark": list(marks), "linear_effect": effect, "aggregate": net.aggregate})
