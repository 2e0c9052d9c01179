"""The DeepChrome convolutional network (Singh et al., 2016)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepchrome.models.base import SignalNet


class DeepChromeCNN(SignalNet):
    """Conv1d(marks->channels, kernel) -> ReLU -> pool -> Dropout -> MLP -> 2 logits.

    With the defaults and 5 marks x 100 bins: Conv1d(5->50, 10) -> ReLU -> MaxPool(5) ->
    Dropout(0.5) -> Linear(900->625) -> ReLU -> Linear(625->125) -> ReLU -> Linear(125->2),
    644,177 parameters. Input [batch, marks, bins] -> logits [batch, 2].

    Parameters
    ----------
    channels, kernel_size
        Convolution filters and width (bins).
    pool, pool_size, pool_stride
        ``max`` or ``avg`` pooling; stride defaults to the pool size.
    dropout
        Dropout after pooling.
    hidden
        Sizes of the hidden fully connected layers.
    """

    def __init__(
        self,
        channels: int = 50,
        kernel_size: int = 10,
        pool: Literal["max", "avg"] = "max",
        pool_size: int = 5,
        pool_stride: int | None = None,
        dropout: float = 0.5,
        hidden: tuple[int, ...] | list[int] = (625, 125),
        n_marks: int | None = None,
        n_bins: int | None = None,
    ) -> None:
        self.channels = channels
        self.kernel_size = kernel_size
        self.pool = pool
        self.pool_size = pool_size
        self.pool_stride = pool_stride or pool_size
        self.dropout = dropout
        self.hidden = tuple(hidden)
        super().__init__(n_marks, n_bins)

    def _build(self, n_marks: int, n_bins: int) -> None:
        conv_length = n_bins - self.kernel_size + 1
        pooled = (conv_length - self.pool_size) // self.pool_stride + 1
        if conv_length < 1 or pooled < 1:
            raise ValueError(f"{n_bins} bins are too few for kernel {self.kernel_size} and pool {self.pool_size}")
        pooling = nn.MaxPool1d if self.pool == "max" else nn.AvgPool1d
        self.features = nn.Sequential(
            nn.Conv1d(n_marks, self.channels, self.kernel_size),
            nn.ReLU(),
            pooling(self.pool_size, self.pool_stride),
            nn.Dropout(self.dropout),
            nn.Flatten(),
        )
        layers: list[nn.Module] = []
        width = self.channels * pooled
        for size in self.hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 2))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [batch, 2] from signals [batch, marks, bins].

        The same function as ``classifier(features(x))``, computed faster on CPU: the convolution as
        one matrix product over the sliding windows (``unfold``), which leaves its output
        channels-last in memory, where max pooling is also cheaper; dropout after flattening (it is
        elementwise), so it draws the same mask as on the unflattened tensor. The layers and their
        weights are ``features`` and ``classifier`` as before (checkpoints are unchanged).
        """
        conv, relu, pool, dropout, _ = self.features
        windows = x.unfold(2, self.kernel_size, 1)  # [batch, marks, positions, kernel]
        h = F.linear(windows.transpose(1, 2).flatten(2), conv.weight.flatten(1), conv.bias)  # [batch, positions, ch]
        h = pool(relu(h).transpose(1, 2))  # [batch, channels, pooled], channels-last in memory
        return self.classifier(dropout(h.flatten(1)))

    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``classifier(features(x))`` with the layers as declared (what :meth:`forward` computes)."""
        return self.classifier(self.features(x))
