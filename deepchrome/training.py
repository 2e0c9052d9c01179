"""The LightningModule that trains any classifier network, and the run's ``metrics.json``."""

from __future__ import annotations

import csv
import errno
import logging
import os
import re
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAUROC, BinaryAveragePrecision

from deepchrome import files
from deepchrome.data.inputs import StageData
from deepchrome.errors import DeepChromeError
from deepchrome.models import DeepChromeCNN, SignalNet, count_parameters

log = logging.getLogger(__name__)


def _stage_metrics(prefix: str) -> MetricCollection:
    return MetricCollection({"auroc": BinaryAUROC(), "auprc": BinaryAveragePrecision()}, prefix=prefix)


def _compute_if_defined(metrics: MetricCollection, labels: np.ndarray, what: str, device) -> dict[str, torch.Tensor]:
    """``metrics`` computed, or every one NaN (with a warning) when ``labels`` hold fewer than two classes.

    AUROC and AUPRC are undefined on genes of one label (torchmetrics would return 0.0); NaN is
    written to ``metrics.json`` as ``null``.

    Parameters
    ----------
    metrics
        The updated metrics of one split (or one cell of it).
    labels
        The labels [genes] the metrics were updated with.
    what
        The genes, for the warning (``the test split``, ``test cell E003``).
    device
        Where the NaN values are placed (the module's device, for synchronised logging).

    Returns
    -------
    dict
        Metric name (with its prefix) to value.
    """
    if scores_defined(labels, what):
        return metrics.compute()
    return {key: torch.tensor(float("nan"), device=device) for key in metrics.keys(keep_base=False)}


def scores_defined(labels, what: str) -> bool:
    """Whether AUROC and AUPRC are defined on genes with these labels [genes] (both labels present);
    if not, warn, naming the genes (``what``: ``the test split``, ``test cell E003``), that they are
    reported as null (torchmetrics would return 0.0)."""
    present = np.unique(np.asarray(labels))
    if present.size >= 2:
        return True
    kinds = ", ".join(f"label {label}" for label in present) or "no genes"
    log.warning("%s has %d gene(s) (%s): its AUROC and AUPRC are undefined, reported as null", what, len(labels), kinds)
    return False


class ExpressionClassifier(pl.LightningModule):
    """Trains a network that maps signals [batch, marks, bins] to 2 logits (low, high).

    The network is injected (``class_path`` in YAML swaps it). The loss is cross-entropy; AUROC
    and average precision are computed from P(high) = softmax(logits)[:, 1], one metric object
    per stage. The test stage also reports per-cell metrics (``test_auroc_<cell>``).

    Parameters
    ----------
    net
        Any :class:`~deepchrome.models.SignalNet` (default: :class:`DeepChromeCNN`).
    optimizer
        Optimizer factory (default Adam, lr 1e-3).
    lr_scheduler
        Optional scheduler factory, stepped per epoch.
    """

    def __init__(
        self,
        net: SignalNet | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        self.net = net if net is not None else DeepChromeCNN()
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.val_metrics = _stage_metrics("val_")
        self.test_metrics = _stage_metrics("test_")
        self.test_cell_metrics: dict[str, MetricCollection] = {}
        self.marks: list[str] | None = None

    # -- shapes and checkpoints -------------------------------------------------------------
    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, **kwargs) -> ExpressionClassifier:
        """The trained module of a classifier checkpoint, its network built from the checkpoint itself.

        Read safely (:func:`deepchrome.checkpoints.load_classifier`: ``weights_only=True``, registered
        networks only). To score raw data with the stored transform and mark order, use
        :func:`deepchrome.load` instead.
        """
        from deepchrome.checkpoints import load_classifier

        net, meta = load_classifier(checkpoint_path)
        module = cls(net=net, **kwargs)
        module.marks = list(meta["marks"])
        return module.eval()

    def setup(self, stage: str) -> None:
        """Size the network from the data module's marks and bins."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "n_marks"):
            self.net.build(datamodule.n_marks, datamodule.n_bins)
            self.marks = list(datamodule.marks)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the network's config and input shape so a checkpoint explains itself."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        transform = getattr(datamodule, "transform", None)
        checkpoint["deepchrome"] = {
            "kind": "classifier",
            "net": self.net.config(),
            "n_marks": self.net.n_marks,
            "n_bins": self.net.n_bins,
            "marks": self.marks,
            "transform": transform.state_dict() if transform is not None else None,
            "train_cells": list(getattr(datamodule, "train_cells", []) or []),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse checkpoints of another network or input shape with a one-line error."""
        path = getattr(self._trainer, "ckpt_path", None) if self._trainer is not None else None
        checkpoint_ = f"{path}: checkpoint" if path else "checkpoint"  # the file, when Lightning read one
        meta = checkpoint.get("deepchrome")
        if not meta or meta.get("kind") != "classifier":
            raise DeepChromeError(f"{checkpoint_} is not a deepchrome classifier checkpoint")
        ours = self.net.config()["class_path"]
        if meta["net"]["class_path"] != ours:
            raise DeepChromeError(
                f"{checkpoint_} holds a {meta['net']['class_path'].rsplit('.', 1)[-1]}, "
                f"the config builds a {ours.rsplit('.', 1)[-1]}"
            )
        if (meta["n_marks"], meta["n_bins"]) != (self.net.n_marks, self.net.n_bins):
            raise DeepChromeError(
                f"{checkpoint_} expects {meta['n_marks']} marks x {meta['n_bins']} bins, "
                f"the data has {self.net.n_marks} marks x {self.net.n_bins} bins"
            )
        try:
            expected = {k: v.shape for k, v in self.net.state_dict().items()}
            stored = {
                k.removeprefix("net."): v.shape for k, v in checkpoint["state_dict"].items() if k.startswith("net.")
            }
        except KeyError:
            raise DeepChromeError(f"{checkpoint_} has no model weights") from None
        if expected != stored:
            differ = sorted(k for k in expected.keys() | stored.keys() if expected.get(k) != stored.get(k))
            raise DeepChromeError(
                f"{checkpoint_}'s {ours.rsplit('.', 1)[-1]} has other layer shapes ({differ[0]}: "
                f"{tuple(stored.get(differ[0], ()))} vs config {tuple(expected.get(differ[0], ()))})"
            )

    # -- training -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [batch, 2]."""
        return self.net(x)

    def on_fit_start(self) -> None:
        """Fit data-derived constants of the network (the linear model's scale) on training data."""
        fit_scale = getattr(self.net, "fit_scale", None)
        if fit_scale is not None and not bool(self.net.scale_fitted):
            datamodule = self.trainer.datamodule
            loader = torch.utils.data.DataLoader(
                datamodule.train_dataloader().dataset,
                batch_size=4096,
                collate_fn=lambda batch: batch,
            )
            fit_scale(x.to(self.device) for x, _, _ in loader)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {self.global_step}")
        # Accumulated here and logged once per epoch: self.log on every step costs ~2 ms,
        # a quarter of a CNN step on 2 CPU cores.
        self._train_loss_sum = self._train_loss_sum + loss.detach() * len(y)
        self._train_count += len(y)
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_loss_sum = torch.zeros((), device=self.device)
        self._train_count = 0

    def on_train_epoch_end(self) -> None:
        if self._train_count:
            self.log("train_loss", self._train_loss_sum / self._train_count, prog_bar=True, sync_dist=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, _ = batch
        logits = self.net(x)
        self.log("val_loss", F.cross_entropy(logits, y), batch_size=len(y), sync_dist=True)
        self.val_metrics.update(torch.softmax(logits, dim=1)[:, 1], y)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=True, sync_dist=True)
        self.val_metrics.reset()

    def on_test_epoch_start(self) -> None:
        cells = self.trainer.datamodule.data["test"].cells
        self.test_cell_metrics = {cell: _stage_metrics(f"test_{cell}_").to(self.device) for cell in cells}

    def test_step(self, batch, batch_idx: int) -> None:
        x, y, index = batch
        probability = torch.softmax(self.net(x), dim=1)[:, 1]
        self.test_metrics.update(probability, y)
        if len(self.test_cell_metrics) > 1:
            cell_index = torch.as_tensor(self.trainer.datamodule.data["test"].cell_index, device=index.device)[index]
            for number, metrics in enumerate(self.test_cell_metrics.values()):
                chosen = cell_index == number
                if chosen.any():
                    metrics.update(probability[chosen], y[chosen])

    def on_test_epoch_end(self) -> None:
        data = self.trainer.datamodule.data["test"]
        self.log_dict(
            _compute_if_defined(self.test_metrics, data.labels, "the test split", self.device), sync_dist=True
        )
        self.test_metrics.reset()
        if len(self.test_cell_metrics) > 1:
            for number, (cell, metrics) in enumerate(self.test_cell_metrics.items()):
                labels = data.labels[data.cell_index == number]
                self.log_dict(_compute_if_defined(metrics, labels, f"test cell {cell}", self.device), sync_dist=True)

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        x, y, index = batch
        return {"probability": torch.softmax(self.net(x), dim=1)[:, 1], "label": y, "index": index}

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "monitor": "val_auroc"},
        }


class PredictionTableWriter(BasePredictionWriter):
    """Writes ``predictions.csv`` (gene_id, cell, probability, predicted_label, label) to the run folder.

    Parameters
    ----------
    output
        File to write; default ``<run folder>/predictions.csv``.
    threshold
        P(high) at or above which the predicted label is 1.
    """

    def __init__(self, output: str | None = None, threshold: float = 0.5) -> None:
        super().__init__(write_interval="epoch")
        self.output = output
        self.threshold = threshold

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        probability = torch.cat([p["probability"] for p in predictions]).cpu().numpy()
        index = torch.cat([p["index"] for p in predictions]).cpu().numpy()
        table = prediction_table(trainer.datamodule.data["predict"], probability, index, self.threshold)
        path = Path(self.output or Path(trainer.log_dir or trainer.default_root_dir) / "predictions.csv")
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        with files.atomic_path(path) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6f")
        print(f"predictions: {path}")


def prediction_table(data: StageData, probability: np.ndarray, index: np.ndarray, threshold: float = 0.5):
    """The per-gene prediction table: gene_id, cell, probability, predicted_label, label.

    ``probability`` [n] P(high) of the genes at positions ``index`` [n] of ``data``.
    """
    import pandas as pd

    return pd.DataFrame(
        {
            "gene_id": data.gene_ids[index],
            "cell": np.asarray(data.cells)[data.cell_index[index]],
            "probability": probability,
            "predicted_label": (probability >= threshold).astype(int),
            "label": data.labels[index],
        }
    )


def predict_probabilities(net, signals: np.ndarray, transform, batch_size: int = 4096) -> np.ndarray:
    """P(high) [genes] of ``net`` on raw signals [genes, marks, bins], transformed in batches, no gradients."""
    from deepchrome.data.inputs import model_input

    net = net.eval()
    device = next(net.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(signals), batch_size):
            x = model_input(signals[start : start + batch_size], transform).to(device)
            out.append(torch.softmax(net(x), dim=1)[:, 1].float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


def write_test_predictions(model: ExpressionClassifier, datamodule, path: str | os.PathLike):
    """Score the test split with ``model``'s current weights (the best checkpoint after
    :func:`evaluate_best`), write the :func:`prediction_table` as CSV and return it."""
    data = datamodule.data["test"]
    probability = predict_probabilities(model.net, data.signals, datamodule.transform)
    table = prediction_table(data, probability, np.arange(len(data)))
    with files.atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    return table


def _checkpoint_callback(trainer: pl.Trainer) -> ModelCheckpoint | None:
    callbacks = [c for c in trainer.checkpoint_callbacks if c.monitor]
    return callbacks[0] if callbacks else trainer.checkpoint_callback


def evaluate_best(trainer: pl.Trainer, model: ExpressionClassifier, datamodule) -> dict:
    """Test the best-by-validation checkpoint (its weights stay loaded in ``model``); the run's summary.

    Returns
    -------
    dict
        ``val_auroc``, ``test_auroc``, ``test_auprc`` (and per-cell ``test_auroc_<cell>`` when
        several test cells), ``best_epoch``, ``epochs``, ``n_parameters``, ``model``, the cells,
        ``best_checkpoint`` (:func:`deepchrome.runs.write_metrics` writes it as ``metrics.json``).
    """
    callback = _checkpoint_callback(trainer)
    best = callback.best_model_path if callback is not None else ""
    results = trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    metrics = {k: float(v) for k, v in results[0].items()}
    best_epoch = None
    if best:
        best_epoch = int(torch.load(best, map_location="cpu", weights_only=True)["epoch"])
    score = callback.best_model_score if callback is not None else None
    val_auroc = float(score) if score is not None else float(trainer.callback_metrics.get("val_auroc", float("nan")))
    summary = {
        "model": type(model.net).__name__,
        "n_parameters": count_parameters(model.net),
        "val_auroc": val_auroc,
        **metrics,
        "best_epoch": best_epoch,
        "epochs": trainer.current_epoch,
        "train_genes": len(datamodule.data["train"]) if "train" in getattr(datamodule, "data", {}) else None,
        "train_cells": list(datamodule.train_cells),
        "val_cells": list(datamodule.val_cells),
        "test_cells": list(datamodule.test_cells),
        "marks": list(datamodule.marks),
        "best_checkpoint": best or None,
    }
    return summary


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic: each checkpoint is saved under a temporary name
    beside its target and renamed into place, so an interrupted save (disk full, killed process)
    never leaves a truncated ``.ckpt`` and never destroys the previous ``last.ckpt``.

    :func:`deepchrome.runs.instantiate` installs it as the trainer strategy's ``checkpoint_io``.
    Remote paths (``s3://...``) keep Lightning's own writer.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        """Write ``checkpoint`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
        if "://" in os.fspath(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            torch.save(checkpoint, tmp)
            os.replace(tmp, path)
        except OSError as exc:
            if exc.filename is None:  # torch.save's own write errors name no file
                exc.filename = str(path)
            raise
        except RuntimeError as exc:
            # torch's C++ writer reports a full disk as "basic_ios::clear" or "PytorchStreamWriter failed"
            if re.search(r"basic_ios::clear|PytorchStreamWriter failed|unexpected pos", str(exc)):
                raise OSError(errno.ENOSPC, f"cannot write the checkpoint ({str(exc).splitlines()[0][:100]})",
                              str(path)) from exc  # fmt: skip
            raise
        finally:
            if tmp.exists():
                tmp.unlink()


class _RunMetricsWriter(ExperimentWriter):
    """Lightning's ``metrics.csv`` writer that keeps an earlier run's rows when ``append`` is set
    (Lightning's deletes the file when its folder is not empty)."""

    def __init__(self, log_dir: str, append: bool = False) -> None:
        self.append = append
        super().__init__(log_dir)
        if append and os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as handle:
                header = next(csv.reader(handle), [])
            # Rows added later are written under the union of the old and new columns.
            self.metrics_keys = [key for key in header if key]

    def _check_log_dir_exists(self) -> None:
        if not self.append and os.path.isfile(self.metrics_file_path):
            os.remove(self.metrics_file_path)  # a new run starts a new table


class RunLogger(CSVLogger):
    """The CSV logger of a run folder: ``metrics.csv`` directly in ``save_dir`` (no version folders).

    A resumed run (``append=True``; :func:`deepchrome.runs.train` sets it for ``--ckpt_path``)
    appends its epochs to the earlier rows instead of deleting them; a new run starts a new table.

    Parameters
    ----------
    save_dir
        The run folder.
    append
        Keep the rows of an existing ``metrics.csv`` and add to them.
    """

    def __init__(
        self,
        save_dir: str,
        name: str = "",
        version: str = "",
        prefix: str = "",
        flush_logs_every_n_steps: int = 100,
        append: bool = False,
    ) -> None:
        super().__init__(save_dir, name=name, version=version, prefix=prefix,
                         flush_logs_every_n_steps=flush_logs_every_n_steps)  # fmt: skip
        self.append = append

    @property
    @rank_zero_experiment
    def experiment(self) -> _RunMetricsWriter:
        """The ``metrics.csv`` writer (created on first use)."""
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _RunMetricsWriter(self.log_dir, append=self.append)
        return self._experiment
