"""The GAN as a LightningModule: manual optimization with two optimizers, hinge loss, quality
measured on the validation split every epoch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from deepchrome.errors import DeepChromeError
from gan.models import Discriminator, Generator
from gan.quality import quality_report


class HistoneGAN(pl.LightningModule):
    """Conditional GAN over signals [batch, marks, bins], trained on ``HistoneDataModule`` batches.

    Parameters
    ----------
    latent_dim, width
        Generator latent size and hidden channels (discriminator uses ``width`` too).
    lr_generator, lr_discriminator
        Adam learning rates (betas 0.0, 0.9, as usual for hinge-loss GANs).
    condition_on_cell
        Also condition the generator on the training cell (an embedding per training cell).
    classifier_checkpoint
        Optional DeepChrome classifier checkpoint trained on real data: its AUROC on generated
        high vs low signals (conditional fidelity) is logged too.
    quality_samples
        Generated genes per validation epoch for the quality numbers (default: as many as real).
    """

    def __init__(
        self,
        latent_dim: int = 64,
        width: int = 64,
        lr_generator: float = 2e-4,
        lr_discriminator: float = 2e-4,
        condition_on_cell: bool = False,
        classifier_checkpoint: str | None = None,
        quality_samples: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator: Generator | None = None
        self.discriminator: Discriminator | None = None
        self.classifier = None
        self.marks: list[str] = []
        self.n_cells = 1
        self._real: list = []
        self.quality_history: dict[int, dict] = {}

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule
        self.marks = list(datamodule.marks)
        self.n_cells = len(datamodule.train_cells) if self.hparams.condition_on_cell else 1
        if self.generator is None:
            self.generator = Generator(datamodule.n_marks, datamodule.n_bins, self.hparams.latent_dim,
                                       n_cells=self.n_cells, width=self.hparams.width)  # fmt: skip
            self.discriminator = Discriminator(datamodule.n_marks, datamodule.n_bins, width=self.hparams.width)
        if self.hparams.classifier_checkpoint and self.classifier is None:
            from deepchrome.training import load_classifier

            net, meta = load_classifier(self.hparams.classifier_checkpoint)
            check_compatible(meta, self.marks, datamodule.n_bins, self.hparams.classifier_checkpoint)
            self.classifier = [net]  # a list: not a submodule, not trained, not in the state dict

    def sample(self, labels: torch.Tensor, cells: torch.Tensor | None = None, generator=None) -> torch.Tensor:
        """Generated signals [len(labels), marks, bins] in model space."""
        z = torch.randn(len(labels), self.hparams.latent_dim, generator=generator).to(self.device)
        return self.generator(z, labels.to(self.device), None if cells is None else cells.to(self.device))

    def training_step(self, batch, batch_idx: int) -> None:
        x, y, index = batch
        cells = self._cells(index)
        opt_g, opt_d = self.optimizers()
        fake = self.sample(y, cells)
        d_loss = (torch.relu(1 - self.discriminator(x, y)).mean()
                  + torch.relu(1 + self.discriminator(fake.detach(), y)).mean())  # fmt: skip
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        g_loss = -self.discriminator(self.sample(y, cells), y).mean()
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.log_dict({"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}, on_step=False, on_epoch=True,
                      prog_bar=True, batch_size=len(y))  # fmt: skip

    def _cells(self, index: torch.Tensor) -> torch.Tensor | None:
        if self.n_cells == 1:
            return None
        return torch.as_tensor(self.trainer.datamodule.data["train"].cell_index, device=index.device)[index]

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, _ = batch
        self._real.append((x.detach().cpu(), y.detach().cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._real:
            return
        real = torch.cat([x for x, _ in self._real])
        labels = torch.cat([y for _, y in self._real])
        self._real = []
        n = self.hparams.quality_samples or len(real)
        fake_labels = labels[torch.arange(n) % len(labels)]
        with torch.no_grad():
            self.generator.eval()
            fake = self.sample(fake_labels, generator=torch.Generator().manual_seed(self.current_epoch)).cpu()
            self.generator.train()
        classifier = self.classifier[0] if self.classifier else None
        report = quality_report(real, labels, fake, fake_labels, self.marks, classifier)
        shown = {f"gan_{k}": v for k, v in report.items() if "/" not in k}
        self.log_dict(shown, prog_bar=False)
        if not self.trainer.sanity_checking:
            self.quality_history[self.current_epoch] = report

    def configure_optimizers(self):
        betas = (0.0, 0.9)
        return [
            torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr_generator, betas=betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr_discriminator, betas=betas),
        ]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        checkpoint["deepchrome"] = {
            "kind": "gan",
            "marks": self.marks,
            "n_marks": len(self.marks),
            "n_bins": self.generator.n_bins,
            "latent_dim": self.hparams.latent_dim,
            "width": self.hparams.width,
            "n_cells": self.n_cells,
            "transform": datamodule.transform.state_dict() if datamodule is not None else None,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        meta = checkpoint.get("deepchrome") or {}
        if meta.get("kind") != "gan":
            raise DeepChromeError(f"checkpoint is not a GAN checkpoint (kind: {meta.get('kind')})")
        if self.generator is None:
            self.generator = Generator(meta["n_marks"], meta["n_bins"], meta["latent_dim"], n_cells=meta["n_cells"],
                                       width=meta["width"])  # fmt: skip
            self.discriminator = Discriminator(meta["n_marks"], meta["n_bins"], width=meta["width"])


def check_compatible(meta: dict, marks: list[str], n_bins: int, path) -> None:
    """Refuse a classifier whose marks/bins differ from the GAN's data, naming both shapes."""
    if list(meta["marks"]) != list(marks) or meta["n_bins"] != n_bins:
        raise DeepChromeError(
            f"classifier {path} expects {meta['n_marks']} marks x {meta['n_bins']} bins "
            f"({', '.join(meta['marks'])}), the GAN has {len(marks)} marks x {n_bins} bins ({', '.join(marks)})"
        )


def load_gan(path: str | os.PathLike) -> tuple[Generator, dict]:
    """The generator (eval mode) and metadata of a GAN checkpoint, loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise DeepChromeError(f"checkpoint {path} not found")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    meta = checkpoint.get("deepchrome") or {}
    if meta.get("kind") != "gan":
        raise DeepChromeError(
            f"{path} is not a GAN checkpoint (kind: {meta.get('kind')}); train one with deepchrome gan fit"
        )
    generator = Generator(
        meta["n_marks"], meta["n_bins"], meta["latent_dim"], n_cells=meta["n_cells"], width=meta["width"]
    )
    state = {k.removeprefix("generator."): v for k, v in checkpoint["state_dict"].items() if k.startswith("generator.")}
    generator.load_state_dict(state)
    return generator.eval(), meta


def write_gan_metrics(trainer: pl.Trainer, model: HistoneGAN, run_dir: Path) -> dict:
    """metrics.json of a GAN run: the best checkpoint's quality (by two-sample AUROC) and targets."""
    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_path", "") or ""
    history = getattr(model, "quality_history", {})
    best_epoch = min(history, key=lambda e: history[e]["two_sample_auroc"]) if history else None
    summary = {
        "model": "HistoneGAN",
        "marks": model.marks,
        "epochs": trainer.current_epoch,
        "best_checkpoint": best or None,
        "best_two_sample_auroc": float(callback.best_model_score)
        if best and callback.best_model_score is not None
        else None,
        "best_epoch": best_epoch,
        "quality": history.get(best_epoch, {}),
        "targets": {
            "two_sample_auroc": "<= 0.75",
            "profile_correlation_min": ">= 0.9",
            "conditional_fidelity_auroc": ">= 0.9",
        },
    }
    path = run_dir / "metrics.json"
    path.write_text(json.dumps(summary, indent=2, default=float))
    summary["metrics_path"] = str(path)
    return summary


def generate(
    generator: Generator, n_per_class: int, seed: int = 0, cell: int | None = None
) -> tuple[torch.Tensor, np.ndarray]:
    """``n_per_class`` generated genes of each class: signals [2n, marks, bins] (model space), labels [2n]."""
    labels = torch.arange(2).repeat_interleave(n_per_class)
    cells = None if cell is None else torch.full((len(labels),), cell)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)  # the generator's per-bin noise draws from the global generator
        z = torch.randn(len(labels), generator.latent_dim)
        return generator(z, labels, cells), labels.numpy()
