"""Generator and discriminator of the conditional histone-signal GAN (plain ``nn.Module``s).

Design: 1-D convolutions along bins, because the signal's structure is local and
position-dependent (peaks at the TSS, domains over the gene body); a learned per-position input
lets the generator place marks relative to the TSS. The discriminator uses spectral normalization
and a projection head for the class (Miyato & Koyama 2018); trained with the hinge loss, this pair
is stable on small data without a gradient penalty's extra cost.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class Generator(nn.Module):
    """(z [batch, latent], class [batch], cell [batch]) -> signals [batch, marks, bins] (>= 0).

    Parameters
    ----------
    n_marks, n_bins
        Output shape; ``n_bins`` must be divisible by 4.
    latent_dim
        Size of z.
    n_classes, n_cells
        Conditioning vocabularies (``n_cells`` = 1: no cell conditioning).
    width
        Channels of the hidden convolutions.
    """

    def __init__(self, n_marks: int = 5, n_bins: int = 100, latent_dim: int = 64, n_classes: int = 2,
                 n_cells: int = 1, width: int = 64) -> None:  # fmt: skip
        super().__init__()
        if n_bins % 4:
            raise ValueError(f"n_bins must be divisible by 4, got {n_bins}")
        self.latent_dim, self.n_marks, self.n_bins = latent_dim, n_marks, n_bins
        self.class_embedding = nn.Embedding(n_classes, latent_dim)
        self.cell_embedding = nn.Embedding(n_cells, latent_dim)
        self.start = n_bins // 4
        self.project = nn.Linear(latent_dim, width * self.start)
        self.width = width

        def block(cin, cout):
            return nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv1d(cin, cout, 5, padding=2),
                                 nn.BatchNorm1d(cout), nn.LeakyReLU(0.2))  # fmt: skip

        self.body = nn.Sequential(nn.BatchNorm1d(width), nn.LeakyReLU(0.2), block(width, width), block(width, width))
        self.position = nn.Parameter(torch.zeros(1, 8, n_bins))
        # Per-bin noise channels let the generator produce bin-to-bin count noise, which real
        # read counts have and a smooth upsampling stack cannot make on its own.
        self.noise_channels = 8
        self.out = nn.Sequential(nn.Conv1d(width + 8 + self.noise_channels, width, 3, padding=1), nn.LeakyReLU(0.2),
                                 nn.Conv1d(width, n_marks, 1))  # fmt: skip

    def forward(self, z: torch.Tensor, label: torch.Tensor, cell: torch.Tensor | None = None) -> torch.Tensor:
        """Signals [batch, marks, bins] in the data module's transformed space (log1p: >= 0)."""
        h = z * (1 + self.class_embedding(label))
        if cell is not None:
            h = h + self.cell_embedding(cell)
        h = self.body(self.project(h).reshape(len(z), self.width, self.start))
        noise = torch.randn(len(z), self.noise_channels, self.n_bins, device=z.device, generator=None)
        h = torch.cat([h, self.position.expand(len(z), -1, -1), noise], dim=1)
        return nn.functional.softplus(self.out(h))


class Discriminator(nn.Module):
    """(signals [batch, marks, bins], class [batch]) -> realism score [batch] (projection head)."""

    def __init__(self, n_marks: int = 5, n_bins: int = 100, n_classes: int = 2, width: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            spectral_norm(nn.Conv1d(n_marks, width, 5, padding=2)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv1d(width, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv1d(width, 2 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            nn.Flatten(),
        )  # fmt: skip
        flat = 2 * width * (n_bins // 4)
        self.score = spectral_norm(nn.Linear(flat, 1))
        self.class_projection = spectral_norm(nn.Embedding(n_classes, flat))

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Score [batch]: higher = more realistic for that class."""
        h = self.features(x)
        return self.score(h).squeeze(-1) + (self.class_projection(label) * h).sum(-1)
