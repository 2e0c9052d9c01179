"""The fully connected variant of DeepChrome 2.0."""

from __future__ import annotations

import torch
from torch import nn

from deepchrome.models.base import SignalNet


class DeepChromeMLP(SignalNet):
    """Flatten [marks x bins] -> (Linear -> ReLU -> Dropout) x len(hidden) -> Linear(2).

    Input [batch, marks, bins] -> logits [batch, 2].
    """

    def __init__(
        self,
        hidden: tuple[int, ...] | list[int] = (256, 64),
        dropout: float = 0.5,
        n_marks: int | None = None,
        n_bins: int | None = None,
    ) -> None:
        self.hidden = tuple(hidden)
        self.dropout = dropout
        super().__init__(n_marks, n_bins)

    def _build(self, n_marks: int, n_bins: int) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = n_marks * n_bins
        for size in self.hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(self.dropout)]
            width = size
        layers.append(nn.Linear(width, 2))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [batch, 2] from signals [batch, marks, bins]."""
        return self.layers(x)
