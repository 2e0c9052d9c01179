"""The one run path: a training config (dict) -> trainer, model and data -> fit or evaluate -> run folder.

``deepchrome fit`` (and validate/test/predict), :func:`deepchrome.fit`, sweeps, experiments, the
report, the GAN helpers, ``scripts/`` and ``bench/`` all train through :func:`train`, so every run
folder looks the same::

    RUN/config.yaml          the full config that ran (inputs as absolute paths)
    RUN/metrics.csv          per-epoch metrics (Lightning's CSVLogger)
    RUN/checkpoints/         best-*.ckpt (by the config's ModelCheckpoint) and last.ckpt
    RUN/metrics.json         the summary (see ``evaluate_best`` / ``gan_summary``)
    RUN/test_predictions.csv classifiers: the best checkpoint's test-split probabilities

Classes are built from the config by LightningCLI's parser (``run=False``): the same parsing,
type checks and ``class_path`` handling as the command line. Checkpoints given to resume or
evaluate are checked by :mod:`deepchrome.checkpoints` and read with ``weights_only=True``.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from deepchrome import files
from deepchrome.checkpoints import check_ckpt_path
from deepchrome.config import resolve_input_paths
from deepchrome.errors import DeepChromeError

STAGES = ("validate", "test", "predict")
#: Keys of a parsed command-line config that are not part of the training config.
NOT_CONFIG = ("config", "ckpt_path", "subcommand", "weights_only", "verbose", "return_predictions")


@dataclass
class Run:
    """A finished training run.

    Attributes
    ----------
    dir
        The run folder.
    metrics
        The contents of ``metrics.json``.
    config
        The config that ran.
    """

    dir: Path
    metrics: dict
    config: dict = field(repr=False)

    @property
    def best_checkpoint(self) -> str | None:
        """Path of the best-by-validation checkpoint (``None`` if none was written)."""
        return self.metrics.get("best_checkpoint")

    @property
    def metrics_path(self) -> Path:
        """The run's ``metrics.json``."""
        return self.dir / "metrics.json"


def model_class(gan: bool):
    """The LightningModule a run trains: the GAN's or the classifier's (imported on demand)."""
    if gan:
        from gan.module import HistoneGAN

        return HistoneGAN
    from deepchrome.training import ExpressionClassifier

    return ExpressionClassifier


def instantiate(config: dict, gan: bool = False):
    """Trainer, model and data module from a training config dict (seeded by ``seed_everything``).

    Raises
    ------
    DeepChromeError
        For config errors (unknown keys, wrong types, unknown classes), on one line.
    """
    from jsonargparse import ArgumentError
    from lightning.pytorch.cli import LightningCLI

    from deepchrome.data import HistoneDataModule

    config = {k: v for k, v in config.items() if k not in NOT_CONFIG}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        try:
            cli = LightningCLI(
                model_class(gan), HistoneDataModule, run=False, seed_everything_default=0,
                auto_configure_optimizers=False, save_config_callback=None, args=config,
                parser_kwargs={"exit_on_error": False},
            )  # fmt: skip
        except ArgumentError as exc:
            raise DeepChromeError(f"config: {config_error(exc)}") from None
    return cli.trainer, cli.model, cli.datamodule


def config_error(exc: Exception) -> str:
    """The line of a jsonargparse error that says what is wrong."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Given value", "- ", "Problem with given class_path"))]
    return (useful or lines or [exc.__class__.__name__])[0][:300]


def prepare_config(config: dict, run_dir: str | os.PathLike | None, log: bool = True) -> tuple[dict, Path]:
    """A copy of ``config`` whose outputs go to ``run_dir`` (absolute; default: the config's
    ``trainer.default_root_dir``, else ``runs/default``), logged by a CSVLogger without version folders."""
    config = copy.deepcopy({k: v for k, v in config.items() if k not in NOT_CONFIG})
    resolve_input_paths(config, Path.cwd())  # what is still relative came from the command line
    trainer = config.setdefault("trainer", {}) or {}
    config["trainer"] = trainer
    run_dir = Path(run_dir or trainer.get("default_root_dir") or "runs/default").expanduser().resolve()
    trainer["default_root_dir"] = str(run_dir)
    if log:
        # No version subfolder: `--ckpt_path last` finds the run again; resume appends to metrics.csv.
        if trainer.get("logger") in (None, True):
            trainer["logger"] = {"class_path": "lightning.pytorch.loggers.CSVLogger",
                                 "init_args": {"save_dir": str(run_dir), "name": "", "version": ""}}  # fmt: skip
    else:
        trainer["logger"] = False
    return config, run_dir


def train(
    config: dict,
    run_dir: str | os.PathLike | None = None,
    ckpt_path: str | os.PathLike | None = None,
    callbacks: Sequence = (),
    gan: bool = False,
) -> Run:
    """Fit a training config, evaluate its best checkpoint and write the run folder.

    Parameters
    ----------
    config
        Training config (see :func:`deepchrome.config.load_config`).
    run_dir
        Output folder (default: the config's ``trainer.default_root_dir``).
    ckpt_path
        Resume from this checkpoint (``last``: the run folder's last one).
    callbacks
        Extra Lightning callbacks (e.g. optuna's pruning callback).
    gan
        Train the histone-signal GAN (``gan/``) instead of a classifier.

    Returns
    -------
    Run
        The run folder, its ``metrics.json`` and the config.
    """
    config, run_dir = prepare_config(config, run_dir)
    trainer, model, datamodule = instantiate(config, gan)
    if trainer.is_global_zero:
        files.write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    trainer.callbacks.extend(callbacks)
    ckpt_path = check_ckpt_path(ckpt_path, "gan" if gan else "classifier")
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    if gan:
        from gan.evaluation import gan_summary

        summary = gan_summary(trainer, model)
    else:
        from deepchrome.training import evaluate_best, write_test_predictions

        summary = evaluate_best(trainer, model, datamodule)
        if trainer.is_global_zero:
            path = write_test_predictions(model, datamodule, run_dir / "test_predictions.csv")
            summary.update(test_intervals(path))
    if trainer.is_global_zero:
        write_metrics(run_dir, summary)
    summary["metrics_path"] = str(run_dir / "metrics.json")
    return Run(run_dir, summary, config)


def evaluate(
    config: dict,
    stage: str,
    ckpt_path: str | os.PathLike | None,
    run_dir: str | os.PathLike | None = None,
    gan: bool = False,
) -> list[dict] | None:
    """Validate, test or predict with a checkpoint; nothing of the fit's run folder is overwritten.

    ``predict`` writes ``predictions.csv`` to ``run_dir``; ``validate``/``test`` return (and the
    command prints) the metrics without logging over the fit's ``metrics.csv``.
    """
    if stage not in STAGES:
        raise DeepChromeError(f"unknown stage {stage!r} (available: {', '.join(STAGES)})")
    config, run_dir = prepare_config(config, run_dir, log=False)
    trainer, model, datamodule = instantiate(config, gan)
    if stage == "predict":
        from deepchrome.training import PredictionTableWriter

        trainer.callbacks.append(PredictionTableWriter(str(run_dir / "predictions.csv")))
    ckpt_path = check_ckpt_path(ckpt_path, "gan" if gan else "classifier")
    method = getattr(trainer, stage)
    kwargs = {} if stage == "predict" else {"verbose": False}
    return method(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True, **kwargs)


def test_intervals(predictions: str | os.PathLike) -> dict:
    """95% intervals of the test AUROC (DeLong) and AUPRC (bootstrap over genes), pooled and per cell.

    Keys ``test_auroc_ci_low``/``_high``, ``test_auprc_ci_low``/``_high`` and, with several test
    cells, ``test_<cell>_auroc_ci_low``... (``interval_method`` says how). A cell whose test genes
    are all of one class gets none.
    """
    import pandas as pd

    from deepchrome.stats import auprc_ci, auroc_ci

    table = pd.read_csv(predictions, dtype={"gene_id": str, "cell": str})
    groups = [("test", table)]
    if table.cell.nunique() > 1:
        groups += [(f"test_{cell}", part) for cell, part in table.groupby("cell", sort=False)]
    out = {}
    for prefix, part in groups:
        if part.label.nunique() < 2:
            continue
        auroc = auroc_ci(part.label.to_numpy(), part.probability.to_numpy())
        auprc = auprc_ci(part.label.to_numpy(), part.probability.to_numpy())
        for metric, interval in (("auroc", auroc), ("auprc", auprc)):
            out[f"{prefix}_{metric}_ci_low"] = interval["ci_low"]
            out[f"{prefix}_{metric}_ci_high"] = interval["ci_high"]
    if out:
        out["interval_method"] = f"95%: AUROC {auroc['method']}; AUPRC {auprc['method']}"
    return out


def write_metrics(run_dir: str | os.PathLike, summary: dict) -> Path:
    """Write a run's ``metrics.json`` atomically (the one writer of that file)."""
    return files.write_json(Path(run_dir) / "metrics.json", {k: v for k, v in summary.items() if k != "metrics_path"})
