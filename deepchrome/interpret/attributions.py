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


def summarize(
    values: np.ndarray, predicted_high: np.ndarray, marks: list[str] | tuple[str, ...]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Aggregate attributions for genes predicted high and low.

    Parameters
    ----------
    values
        [genes, marks, bins].
    predicted_high
        [genes] booleans.

    Returns
    -------
    marks_table
        One row per mark, ranked by overall mean |attribution| per gene: ``importance`` (mean over
        genes of the mark's summed |attribution|), ``importance_se`` (standard error over genes),
        ``mean_high``/``mean_low`` (signed, summed over bins, averaged over genes), ``rank``.
    bins_table
        Long table: group (high/low), mark, bin (1-based), mean attribution, mean |attribution|.
    """
    per_gene = np.abs(values).sum(axis=2)  # [genes, marks]
    signed = values.sum(axis=2)
    n = len(values)
    table = pd.DataFrame(
        {
            "mark": list(marks),
            "importance": per_gene.mean(axis=0),
            "importance_se": per_gene.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(len(marks)),
            "mean_high": signed[predicted_high].mean(axis=0) if predicted_high.any() else np.nan,
            "mean_low": signed[~predicted_high].mean(axis=0) if (~predicted_high).any() else np.nan,
        }
    ).sort_values("importance", ascending=False)
    table["rank"] = np.arange(1, len(table) + 1)
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
