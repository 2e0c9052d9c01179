"""The GAN as a LightningModule: manual optimization with two optimizers, hinge loss, an EMA
generator, quality measured on the validation split (checkpoint selection) and the test split."""

from __future__ import annotations

import copy

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from deepchrome.checkpoints import load_classifier
from deepchrome.data.transform import SignalTransform
from deepchrome.errors import DeepChromeError
from deepchrome.gan.checkpoint import GAN_FORMAT, check_compatible, gan_meta
from deepchrome.gan.generation import GENERATION_CHUNK
from deepchrome.gan.models import OUTPUTS, Discriminator, Generator, observe
from deepchrome.gan.quality import profile_differences, quality_report, real_reference, two_sample_auroc


def ema_with_warmup(decay: float):
    """``AveragedModel`` averaging: EMA whose decay grows as (1 + n) / (10 + n) up to ``decay``.

    A fixed decay of 0.999 would keep most of the random initial weights for the first thousand
    steps; the warm-up lets short runs average over their recent past only.
    """

    def average(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        n = float(n_averaged)
        weight = 1 - min(decay, (1 + n) / (10 + n))
        for a, c in zip(averaged, current, strict=True):
            a.lerp_(c, weight)

    return average


#: Fresh two-sample classifiers averaged per evaluation. One fixed generator's two-sample AUROC
#: on E123's 200 test genes varied with sd 0.024 between evaluations of 3; checkpoint selection on
#: the validation split can afford no more every 10 epochs, the one final test evaluation can.
VALIDATION_REPEATS, TEST_REPEATS = 3, 30


class HistoneGAN(pl.LightningModule):
    """Conditional GAN over signals [batch, marks, bins], trained on ``HistoneDataModule`` batches.

    Parameters
    ----------
    latent_dim, width
        Generator latent size and hidden channels (discriminator uses ``width`` too).
    lr_generator, lr_discriminator
        Adam learning rates (betas 0.0, 0.9, as usual for hinge-loss GANs).
    output
        ``counts``: generated rates are drawn as Poisson read counts before the data module's
        transform (the release data are read counts); ``continuous`` for signals that are not counts.
    ema_decay
        Decay of the exponential moving average of the generator's weights; the average (not the
        raw, oscillating generator) is evaluated, checkpointed for sampling and visualized.
    class_loss_weight
        Weight of the auxiliary class loss (AC-GAN): the discriminator learns to classify real genes
        high vs low, the generator to make its genes classified as their condition (0: off).
    condition_on_cell
        Also condition the generator on the training cell (an embedding per training cell).
    classifier_checkpoint
        Optional DeepChrome classifier checkpoint trained on real data: its AUROC on generated
        high vs low signals (conditional fidelity) is logged too.
    quality_samples
        Generated genes per validation evaluation (default: as many as real genes).
    test_samples
        Generated genes for the final quality on the test split (at least ``quality_samples``). A
        generator's mean profile is a property of the generator: estimated from as few genes as the
        real split has, its own sampling noise lowered the profile correlations by up to 0.2 on
        flat marks (E003: worst class x mark 0.27 below min(0.9, real-vs-real) with 200 generated
        genes, 0.10 with 10,000). The final two-sample AUROC averages :data:`TEST_REPEATS` fresh
        classifiers, each on another random subset of these genes.
    bin_overlap
        With ``output="counts"``: the fraction of a bin's reads that also count in a neighbouring
        bin (:func:`.models.draw_counts`; measure it with :func:`.models.estimate_bin_overlap`).
    """

    def __init__(
        self,
        latent_dim: int = 64,
        width: int = 64,
        lr_generator: float = 2e-4,
        lr_discriminator: float = 2e-4,
        output: str = "counts",
        ema_decay: float = 0.999,
        class_loss_weight: float = 1.0,
        condition_on_cell: bool = False,
        classifier_checkpoint: str | None = None,
        quality_samples: int | None = None,
        bin_overlap: float = 0.0,
        test_samples: int = 10_000,
    ) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise DeepChromeError(f"model.output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if not 0 <= bin_overlap <= 1:
            raise DeepChromeError(f"model.bin_overlap must be in [0, 1], got {bin_overlap}")
        if not 0 <= ema_decay < 1:
            raise DeepChromeError(f"model.ema_decay must be in [0, 1), got {ema_decay}")
        sizes = {"latent_dim": latent_dim, "width": width, "quality_samples": quality_samples,
                 "test_samples": test_samples}  # fmt: skip
        for name, value in sizes.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise DeepChromeError(f"model.{name} {value!r}: must be a whole number >= 1")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator: Generator | None = None
        self.discriminator: Discriminator | None = None
        self.generator_ema: AveragedModel | None = None
        self.transform: SignalTransform | None = None
        self.classifier = None
        self.marks: list[str] = []
        self.n_cells = 1
        self.cell_names: list[str] = []
        self._real: list = []
        self._reference: dict[str, dict] = {}
        self.quality_history: dict[int, dict] = {}
        self.test_quality: dict = {}

    def _build(self, n_marks: int, n_bins: int, n_cells: int) -> None:
        self.generator = Generator(n_marks, n_bins, self.hparams.latent_dim, n_cells=n_cells, width=self.hparams.width)
        self.discriminator = Discriminator(n_marks, n_bins, width=self.hparams.width)
        # batch-norm statistics are copied from the live generator (use_buffers=False)
        self.generator_ema = AveragedModel(self.generator, multi_avg_fn=ema_with_warmup(self.hparams.ema_decay))

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule
        self.marks = list(datamodule.marks)
        self.n_cells = len(datamodule.train_cells) if self.hparams.condition_on_cell else 1
        # the condition index of a cell is its position among the training cells (the data module's cell_index)
        self.cell_names = list(datamodule.train_cells) if self.n_cells > 1 else []
        if self.cell_names:
            untrained = [c for c in (*datamodule.val_cells, *datamodule.test_cells) if c not in self.cell_names]
            if untrained:
                raise DeepChromeError(
                    f"model.condition_on_cell: the GAN is judged on each cell with that cell's condition, and "
                    f"{', '.join(dict.fromkeys(untrained))} is not a training cell ({', '.join(self.cell_names)}); "
                    "validate and test on training cells"
                )
        # a copy: moving it to the GPU must not move the data loaders' transform
        self.transform = copy.deepcopy(datamodule.transform)
        if self.hparams.output == "counts" and stage == "fit":
            _check_counts(datamodule)
        if self.generator is None:
            self._build(datamodule.n_marks, datamodule.n_bins, self.n_cells)
        if self.hparams.classifier_checkpoint and self.classifier is None:
            net, meta = load_classifier(self.hparams.classifier_checkpoint)
            check_compatible(
                meta, self.marks, datamodule.n_bins, self.hparams.classifier_checkpoint, transform=self.transform
            )
            self.classifier = [net]  # a list: not a submodule, not trained, not in the state dict

    def sample(self, labels: torch.Tensor, cells: torch.Tensor | None = None, generator=None,
               average: bool = False) -> torch.Tensor:  # fmt: skip
        """Generated signals [len(labels), marks, bins] in model space (``average``: the EMA generator)."""
        net = self.generator_ema.module if average else self.generator
        z = torch.randn(len(labels), self.hparams.latent_dim, generator=generator).to(self.device)
        rate = net(z, labels.to(self.device), None if cells is None else cells.to(self.device))
        return observe(rate, self.transform.to(self.device), self.hparams.output, self.hparams.bin_overlap)

    def training_step(self, batch, batch_idx: int) -> None:
        x, y, index = batch
        cells = self._cells(index)
        opt_g, opt_d = self.optimizers()
        weight = self.hparams.class_loss_weight
        fake = self.sample(y, cells)
        real_score, real_logits = self.discriminator(x, y, with_class_logits=True)
        d_loss = torch.relu(1 - real_score).mean() + torch.relu(1 + self.discriminator(fake.detach(), y)).mean()
        if weight:
            d_loss = d_loss + weight * nn.functional.cross_entropy(real_logits, y)
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        # the same fake genes, scored by the updated discriminator (as in the DCGAN recipe): one
        # generator pass per step instead of two, 15% more steps in the same time
        fake_score, fake_logits = self.discriminator(fake, y, with_class_logits=True)
        g_loss = -fake_score.mean()
        if weight:
            g_loss = g_loss + weight * nn.functional.cross_entropy(fake_logits, y)
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.generator_ema.update_parameters(self.generator)
        self.log_dict({"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}, on_step=False, on_epoch=True,
                      prog_bar=True, batch_size=len(y))  # fmt: skip

    def _cells(self, index: torch.Tensor) -> torch.Tensor | None:
        if self.n_cells == 1:
            return None
        # index the numpy array: converting the whole stage's cell_index every step is wasted work
        cell_index = self.trainer.datamodule.data["train"].cell_index
        return torch.as_tensor(cell_index[index.cpu().numpy()], device=index.device)

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, index = batch
        self._real.append((x.detach().cpu(), y.detach().cpu(), self._conditions(index)))

    def _conditions(self, index: torch.Tensor) -> torch.Tensor | None:
        """The training-cell condition [batch] of evaluated real genes (``None`` without cell conditioning)."""
        if not self.cell_names:
            return None
        stage = self.trainer.datamodule.data["test" if self.trainer.testing else "val"]
        names = np.asarray(stage.cells)[stage.cell_index[index.cpu().numpy()]]
        return torch.tensor([self.cell_names.index(name) for name in names])

    test_step = validation_step

    def _quality(self, stage: str) -> dict | None:
        """Quality of the EMA generator against the real genes collected in this evaluation."""
        if not self._real:
            return None
        real = torch.cat([x for x, _, _ in self._real])
        labels = torch.cat([y for _, y, _ in self._real])
        cells = None if self._real[0][2] is None else torch.cat([c for _, _, c in self._real])
        self._real = []
        repeats = TEST_REPEATS if stage == "test" else VALIDATION_REPEATS
        if stage not in self._reference:
            reference, reference_labels = self._training_sample(len(real))
            self._reference[stage] = real_reference(real, labels, reference, reference_labels, self.marks,
                                                    repeats=repeats)  # fmt: skip
        n = self.hparams.quality_samples or len(real)
        if stage == "test":
            n = max(n, self.hparams.test_samples)
        # generated classes (and cells) in the real genes' proportions: each generated gene mirrors a real one
        mirrored = torch.arange(n) % len(labels)
        fake_labels = labels[mirrored]
        fake_cells = None if cells is None else cells[mirrored]
        # a fixed seed per epoch, forked: evaluation must not shift the training's random stream
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.current_epoch)
            label_chunks = fake_labels.split(GENERATION_CHUNK)
            cell_chunks = [None] * len(label_chunks) if fake_cells is None else fake_cells.split(GENERATION_CHUNK)
            chunks = zip(label_chunks, cell_chunks, strict=True)
            fake = torch.cat([self.sample(chunk, condition, average=True).cpu() for chunk, condition in chunks])
        classifier = self.classifier[0] if self.classifier else None
        report = quality_report(real, labels, fake, fake_labels, self.marks, classifier,
                                reference=self._reference[stage], repeats=repeats)  # fmt: skip
        if cells is not None:
            # each cell's generated genes (its condition) against that cell's real genes
            for number, name in enumerate(self.cell_names):
                here, there = cells == number, fake_cells == number
                if here.sum() < 4:
                    continue
                report[f"cell/{name}/two_sample_auroc"] = two_sample_auroc(real[here], fake[there], repeats=repeats)
                differences = profile_differences(real[here], labels[here], fake[there], fake_labels[there], self.marks)
                finite = [v for v in differences.values() if not np.isnan(v)]
                report[f"cell/{name}/profile_difference_max"] = max(finite, default=float("nan"))
                report[f"cell/{name}/real_genes"] = int(here.sum())
        return {**report, "generated_genes": n, "real_genes": len(real)}

    def _training_sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        train = self.trainer.datamodule.data["train"]
        chosen = np.sort(np.random.default_rng(0).permutation(len(train))[:n])
        x = torch.from_numpy(np.asarray(train.signals[chosen], dtype=np.float32))
        return self.trainer.datamodule.transform(x), torch.from_numpy(np.asarray(train.labels[chosen]))

    def on_validation_epoch_end(self) -> None:
        report = self._quality("val")
        if report is None:
            return
        counts = ("generated_genes", "real_genes", "two_sample_runs")
        self.log_dict({f"gan_{k}": float(v) for k, v in report.items() if "/" not in k and k not in counts},
                      prog_bar=False)  # fmt: skip
        if not self.trainer.sanity_checking:
            self.quality_history[self.current_epoch] = report

    def on_test_epoch_end(self) -> None:
        self.test_quality = self._quality("test") or {}

    def configure_optimizers(self):
        betas = (0.0, 0.9)
        return [
            torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr_generator, betas=betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr_discriminator, betas=betas),
        ]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["deepchrome"] = {
            "kind": "gan",
            "format": GAN_FORMAT,
            "marks": self.marks,
            "n_marks": len(self.marks),
            "n_bins": self.generator.n_bins,
            "latent_dim": self.hparams.latent_dim,
            "width": self.hparams.width,
            "n_cells": self.n_cells,
            "cells": self.cell_names,  # condition index -> training cell (empty: not conditioned on cells)
            "output": self.hparams.output,
            "bin_overlap": self.hparams.bin_overlap,
            "transform": self.transform.state_dict() if self.transform is not None else None,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        meta = gan_meta(checkpoint, "checkpoint")
        if self.generator is None:
            self._build(meta["n_marks"], meta["n_bins"], meta["n_cells"])


def _check_counts(datamodule) -> None:
    """Refuse non-integer training signals for ``output="counts"`` (checks the first 2,000 genes)."""
    signals = datamodule.data["train"].signals
    if np.issubdtype(signals.dtype, np.integer):
        return
    head = np.asarray(signals[:2000])
    if not np.array_equal(head, np.round(head)):
        cells = ", ".join(datamodule.train_cells)
        example = float(head[head != np.round(head)][0])
        raise DeepChromeError(
            f"training signals of {cells} are not read counts (non-integer values, e.g. {example:g}); "
            "train the GAN with --model.output continuous"
        )
