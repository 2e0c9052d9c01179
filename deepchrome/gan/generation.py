"""Generating genes from a trained generator, in chunks, seeded."""

from __future__ import annotations

import logging

import numpy as np
import torch

from deepchrome.gan.checkpoint import condition_cell, gan_transform
from deepchrome.gan.models import Generator, observe

log = logging.getLogger(__name__)

#: Genes per generator pass when many are generated: its activations for 20,000 genes at once
#: peaked at 2.3 GB, in passes of 2,000 at 0.83 GB.
GENERATION_CHUNK = 2000


def generate(generator: Generator, meta: dict, n_per_class: int, seed: int = 0, cell: int | str | None = None,
             output: str | None = None, chunk: int = GENERATION_CHUNK) -> tuple[torch.Tensor, np.ndarray]:  # fmt: skip
    """``n_per_class`` generated genes of each class: signals [2n, marks, bins] (model space), labels [2n].

    ``meta`` is the checkpoint metadata from :func:`load_gan` (transform, output); ``output``
    overrides it (``continuous``: expected signals, no count draws). Genes go through the generator
    ``chunk`` at a time (:data:`GENERATION_CHUNK`). ``cell``: a cell-conditioned GAN's condition, a
    training cell's name (:func:`~deepchrome.gan.checkpoint.condition_cell` refuses others) or index;
    without it such a GAN generates from no cell condition, which its training never used (a warning).
    """
    if isinstance(cell, str):
        cell = condition_cell(meta, cell)
    elif cell is None and meta.get("n_cells", 1) > 1:
        log.warning("this GAN is conditioned on cells (%s); generating without a cell condition, which its "
                    "training never used: pass one of them", ", ".join(meta.get("cells") or []))  # fmt: skip
    labels = torch.arange(2).repeat_interleave(n_per_class)
    cells = None if cell is None else torch.full((len(labels),), cell)
    output = output or meta.get("output", "counts")
    transform = gan_transform(meta)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # per-bin noise and count draws use the global generator
        z = torch.randn(len(labels), generator.latent_dim)
        signals = []
        for start in range(0, len(labels), chunk):
            part = slice(start, start + chunk)
            rate = generator(z[part], labels[part], None if cells is None else cells[part])
            signals.append(observe(rate, transform, output, meta.get("bin_overlap", 0.0)))
        return torch.cat(signals), labels.numpy()
