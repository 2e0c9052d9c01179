"""The 12-parameter linear baseline of DeepChrome 2.0."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from deepchrome.errors import DeepChromeError
from deepchrome.models.base import SignalNet

AGGREGATES = ("max", "sum", "mean", "median", "min")


def aggregate_bins(x: torch.Tensor, how: str) -> torch.Tensor:
    """Aggregate signals [batch, marks, bins] over bins -> [batch, marks]."""
    if how == "max":
        return x.amax(dim=-1)
    if how == "min":
        return x.amin(dim=-1)
    if how == "sum":
        return x.sum(dim=-1)
    if how == "mean":
        return x.mean(dim=-1)
    if how == "median":
        return x.median(dim=-1).values
    raise DeepChromeError(f"unknown aggregate {how!r} (available: {', '.join(AGGREGATES)})")


class LinearBaseline(SignalNet):
    """Each mark aggregated over its bins, divided by a fixed scale, then Linear(marks, 2).

    With 5 marks: 5 x 2 weights + 2 biases = 12 parameters. The original scripts divided each
    batch by the batch's maximum, which makes a gene's score depend on its batch-mates; here
    the scale is the per-mark maximum of the aggregate over the *training* data, fitted once by
    :meth:`fit_scale` (a buffer, not a parameter). Input [batch, marks, bins] -> logits [batch, 2].

    Parameters
    ----------
    aggregate
        ``max``, ``sum``, ``mean``, ``median`` or ``min``.
    """

    def __init__(self, aggregate: str = "max", n_marks: int | None = None, n_bins: int | None = None) -> None:
        if aggregate not in AGGREGATES:
            raise DeepChromeError(
                f"unknown aggregate {aggregate!r} for LinearBaseline (available: {', '.join(AGGREGATES)})"
            )
        self.aggregate = aggregate
        super().__init__(n_marks, n_bins)

    def _build(self, n_marks: int, n_bins: int) -> None:
        self.linear = nn.Linear(n_marks, 2)
        self.register_buffer("scale", torch.ones(n_marks))
        self.register_buffer("scale_fitted", torch.tensor(False))

    @torch.no_grad()
    def fit_scale(self, batches: Iterable[torch.Tensor]) -> None:
        """Set the per-mark scale from training signals, given as batches [genes, marks, bins]."""
        top = torch.zeros_like(self.scale)
        for x in batches:
            top = torch.maximum(top, aggregate_bins(x, self.aggregate).abs().amax(dim=0))
        self.scale.copy_(torch.where(top > 0, top, torch.ones_like(top)))
        self.scale_fitted.fill_(True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled per-mark aggregates [batch, marks]."""
        return aggregate_bins(x, self.aggregate) / self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [batch, 2] from signals [batch, marks, bins]."""
        return self.linear(self.features(x))
