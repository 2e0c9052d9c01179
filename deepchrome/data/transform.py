"""The input transform of every model: raw counts -> model input, fitted on training data only."""

from __future__ import annotations

import numpy as np
import torch

from deepchrome.errors import DeepChromeError

TRANSFORMS = ("raw", "log1p", "standardize", "log1p_standardize")


class SignalTransform:
    """Maps raw signals to model input; per-mark statistics are fitted on training data only.

    Kinds: ``raw`` (counts as float), ``log1p``, ``standardize`` (per-mark z-score of counts),
    ``log1p_standardize`` (per-mark z-score of log1p counts).
    """

    def __init__(self, kind: str = "log1p") -> None:
        if kind not in TRANSFORMS:
            raise DeepChromeError(f"unknown transform {kind!r} (available: {', '.join(TRANSFORMS)})")
        self.kind = kind
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    @property
    def needs_fit(self) -> bool:
        """Whether this kind uses per-mark statistics."""
        return self.kind.endswith("standardize")

    def _pre(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log1p(x) if self.kind.startswith("log1p") else x

    def fit(self, signals: np.ndarray, chunk: int = 4096) -> SignalTransform:
        """Fit per-mark mean and standard deviation on ``signals`` [genes, marks, bins]."""
        total = torch.zeros(signals.shape[1], dtype=torch.float64)
        square = torch.zeros_like(total)
        for start in range(0, len(signals), chunk):
            x = self._pre(torch.from_numpy(np.asarray(signals[start : start + chunk], dtype=np.float32)))
            total += x.double().sum(dim=(0, 2))
            square += (x.double() ** 2).sum(dim=(0, 2))
        n = signals.shape[0] * signals.shape[2]
        mean = total / n
        self.mean = mean.float()
        self.std = (square / n - mean**2).clamp_min(1e-12).sqrt().float()
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Transform float signals [batch, marks, bins]."""
        x = self._pre(x)
        if self.needs_fit:
            if self.mean is None:
                raise RuntimeError("transform used before fit")
            x = (x - self.mean[:, None]) / self.std[:, None]
        return x

    def to(self, device: torch.device | str) -> SignalTransform:
        """Move the fitted statistics to ``device`` (in place); returns self."""
        if self.mean is not None:
            self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Map model-space signals [batch, marks, bins] back to counts."""
        if self.needs_fit:
            x = x * self.std[:, None] + self.mean[:, None]
        return torch.expm1(x) if self.kind.startswith("log1p") else x

    def state_dict(self) -> dict:
        """Plain-type state (safe under ``torch.load(weights_only=True)``)."""
        return {
            "kind": self.kind,
            "mean": None if self.mean is None else self.mean.tolist(),
            "std": None if self.std is None else self.std.tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.kind = state["kind"]
        self.mean = None if state["mean"] is None else torch.tensor(state["mean"])
        self.std = None if state["std"] is None else torch.tensor(state["std"])
