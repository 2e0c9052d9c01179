"""Shared behaviour of every classifier network: lazy sizing from the data."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from deepchrome.errors import DeepChromeError


class SignalNet(nn.Module):
    """A network over signals [batch, marks, bins] returning logits [batch, 2].

    Subclasses implement :meth:`_build`. ``n_marks``/``n_bins`` may be left ``None`` and filled
    from the data by :meth:`build` (the training module calls it in ``setup``), so one YAML
    config serves any number of marks and bins.
    """

    def __init__(self, n_marks: int | None = None, n_bins: int | None = None) -> None:
        super().__init__()
        self.n_marks = n_marks
        self.n_bins = n_bins
        self.built = False
        self._check_sizes()
        if n_marks is not None and n_bins is not None:
            self.build(n_marks, n_bins)

    def build(self, n_marks: int, n_bins: int) -> SignalNet:
        """Create the layers for inputs [batch, n_marks, n_bins]; check the shape if built.

        Raises
        ------
        DeepChromeError
            If the network was built for another shape.
        """
        if self.built:
            if (self.n_marks, self.n_bins) != (n_marks, n_bins):
                raise DeepChromeError(
                    f"{type(self).__name__} expects {self.n_marks} marks x {self.n_bins} bins, "
                    f"the data has {n_marks} marks x {n_bins} bins"
                )
            return self
        self.n_marks, self.n_bins = n_marks, n_bins
        self._build(n_marks, n_bins)
        self.built = True
        return self

    def _build(self, n_marks: int, n_bins: int) -> None:
        raise NotImplementedError

    def _check_sizes(self) -> None:
        """Refuse sizes that torch would only reject mid-run (or never): a width, kernel or layer size
        that is not a whole number >= 1, a dropout outside [0, 1).

        Raises
        ------
        DeepChromeError
            ``model.net.init_args.channels 0: must be a whole number >= 1``.
        """
        for name in inspect.signature(type(self).__init__).parameters:
            value = getattr(self, name, None)
            where = f"model.net.init_args.{name} {list(value) if isinstance(value, tuple) else value!r}"
            if name == "dropout":
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
                    raise DeepChromeError(f"{where}: must be a number in [0, 1)")
            elif isinstance(value, int) and not isinstance(value, bool) and value < 1:
                raise DeepChromeError(f"{where}: must be a whole number >= 1")
            elif isinstance(value, tuple) and not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                                      for v in value):  # fmt: skip
                raise DeepChromeError(f"{where}: layer sizes must be whole numbers >= 1")

    def config(self) -> dict:
        """``{"class_path", "init_args"}`` that rebuilds this network (as in a YAML config)."""
        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        init_args = {}
        for name in names:
            value = getattr(self, name)
            init_args[name] = list(value) if isinstance(value, tuple) else value
        return {"class_path": f"{type(self).__module__}.{type(self).__qualname__}", "init_args": init_args}

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
