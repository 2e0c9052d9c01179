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

A run folder is never overwritten silently: :func:`train` refuses a folder that holds a finished
run unless told to resume it (``ckpt_path``) or replace it (``overwrite``); checkpoints are written
atomically (:class:`deepchrome.training.AtomicCheckpointIO`); and a fit that fails before it wrote
a checkpoint leaves the folder as it found it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from deepchrome import files
from deepchrome.checkpoints import LIGHTNING_CKPT_ALIASES, check_ckpt_path
from deepchrome.config import check_whole_number, resolve_input_paths
from deepchrome.errors import DeepChromeError, Interrupted
from deepchrome.files import check_out_folder

if TYPE_CHECKING:  # lightning is imported lazily: the CLI's --help must not pay for it
    import lightning.pytorch as pl

logger = logging.getLogger(__name__)

STAGES = ("validate", "test", "predict")
#: Keys of a parsed command-line config that are not part of the training config.
NOT_CONFIG = ("config", "ckpt_path", "subcommand", "weights_only", "verbose", "return_predictions", "overwrite",
              "threads")  # fmt: skip
#: What a fit writes into its run folder: ``overwrite`` replaces these and nothing else.
RUN_FILES = ("checkpoints", "metrics.csv", "metrics.json", "config.yaml", "test_predictions.csv", "hparams.yaml")
#: How the command line names the run folder, for messages.
RUN_DIR_OPTION = "--trainer.default_root_dir"


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
        from deepchrome.gan.module import HistoneGAN

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
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.cli import LightningCLI

    from deepchrome.config import restricted_imports
    from deepchrome.data import HistoneDataModule
    from deepchrome.training import AtomicCheckpointIO

    config = {k: v for k, v in config.items() if k not in NOT_CONFIG}
    check_accelerator(config)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        try:
            with restricted_imports():
                cli = LightningCLI(
                    model_class(gan), HistoneDataModule, run=False, seed_everything_default=0,
                    auto_configure_optimizers=False, save_config_callback=None, args=config,
                    parser_kwargs={"exit_on_error": False},
                )  # fmt: skip
        except ArgumentError as exc:
            raise DeepChromeError(f"config: {config_error(exc)}") from None
        except (MisconfigurationException, ValueError) as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, DeepChromeError):  # one of our classes refused its arguments (jsonargparse wraps it)
                raise cause from None
            # Trainer and callback arguments that Lightning or torch refuse (devices: 0, mode: 'x').
            raise DeepChromeError(f"config: {_first_line(exc)}") from None
    check_values(cli.model, cli.datamodule)
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    if type(cli.trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        cli.trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    return cli.trainer, cli.model, cli.datamodule


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else exc.__class__.__name__


def check_accelerator(config: dict) -> None:
    """Refuse ``trainer.accelerator gpu``/``cuda``/``mps`` on a machine without one, before building anything."""
    import torch

    accelerator = (config.get("trainer") or {}).get("accelerator")
    if not isinstance(accelerator, str):
        return
    name = accelerator.lower()
    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        raise DeepChromeError(
            f"trainer.accelerator {accelerator}: no GPU found: use --trainer.accelerator cpu "
            "(or install the CUDA build of torch; see the README)"
        )
    if name == "mps" and not torch.backends.mps.is_available():
        raise DeepChromeError(f"trainer.accelerator {accelerator}: no Apple GPU found: use --trainer.accelerator cpu")


def check_values(model, datamodule) -> None:
    """Refuse numbers that torch would only reject mid-run, naming the config field.

    Batch sizes must be whole numbers >= 1 and ``num_workers`` >= 0; the optimizer and scheduler
    factories are tried on a dummy parameter, the scheduler for one step (a negative learning
    rate, bad betas, a step size of 0); the GAN's learning rates must be finite and >= 0.

    Raises
    ------
    DeepChromeError
        ``data.batch_size 0: must be a whole number >= 1``, ``model.optimizer: Invalid learning
        rate: -1.0 (fix --model.optimizer.init_args)``...
    """
    import torch

    # upper bounds: beyond 2**31 a batch is no longer a batch (and Python's islice refuses > sys.maxsize)
    for name, least, most in (("batch_size", 1, 2**31), ("eval_batch_size", 1, 2**31), ("num_workers", 0, 1024)):
        value = getattr(datamodule, name, None)
        if value is not None:
            check_whole_number(f"data.{name}", value, least, most)
    optimizer_factory = getattr(model, "optimizer_factory", None)
    if callable(optimizer_factory):
        try:
            optimizer = optimizer_factory([torch.nn.Parameter(torch.zeros(1))])
        except (ValueError, TypeError) as exc:
            raise DeepChromeError(f"model.optimizer: {_first_line(exc)} (fix --model.optimizer.init_args)") from None
        scheduler_factory = getattr(model, "scheduler_factory", None)
        if callable(scheduler_factory):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    scheduler = scheduler_factory(optimizer)
                    optimizer.step()  # no gradients: changes nothing
                    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                        scheduler.step(0.0)
                    else:
                        scheduler.step()
            except (ValueError, TypeError, ZeroDivisionError) as exc:
                raise DeepChromeError(
                    f"model.lr_scheduler: {_first_line(exc)} (fix --model.lr_scheduler.init_args)"
                ) from None
    hparams = getattr(model, "hparams", {}) or {}
    for key in ("lr_generator", "lr_discriminator"):
        value = hparams.get(key)
        if value is not None and not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise DeepChromeError(f"model.{key} {value!r}: must be a finite number >= 0")


def config_error(exc: Exception) -> str:
    """One line saying which config field is wrong and why, from a jsonargparse error.

    jsonargparse reports ``Parser key "data.batch_size":`` then the reasons on the next lines;
    this joins the key (nested keys as ``model.optimizer.init_args.lr``), the expected types and
    the value given: ``data.batch_size: expected int, got 'abc'``.
    """
    import re

    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    keys = re.findall(r'Parser key "([^"]+)"', text)
    if not keys:
        useful = [line for line in lines if not line.startswith(("Given value", "- "))]
        return (useful or lines or [exc.__class__.__name__])[0][:300]
    key = keys[0] if len(keys) == 1 else f"{keys[0]}.init_args.{keys[-1]}"
    inner = text[list(re.finditer(r'Parser key "[^"]+"', text))[-1].end() :]  # the innermost key's reasons
    class_path = re.search(r"Problem with given class_path '([^']+)':\s*\n\s*(.+)", text)
    if class_path and len(keys) == 1:
        return f"{key}: class_path {class_path.group(1)!r}: {class_path.group(2).strip()}"[:300]
    # a union (``SignalNet | None``) lists each member's reason: say why the class_path failed, not "expected null"
    refused = re.search(r"^\s*- (class_path '[^']+': a config may name .*)$", inner, re.MULTILINE)
    if refused:
        return f"{key}: {refused.group(1).strip()}"[:300]
    other = re.search(r"Import path (\S+) does not correspond to a subclass of (\w+)", inner)
    if other:
        from deepchrome.config import trusted_packages

        path, base = other.group(1), other.group(2)
        if path.split(".")[0] in trusted_packages():  # importable, but the wrong kind of class
            return f"{key}: class_path {path!r} is not a subclass of {base}"[:300]
        return (
            f"{key}: class_path {path!r} is not allowed: give a subclass of {base} "
            f"from the modules {', '.join(trusted_packages())} (more with DEEPCHROME_TRUSTED_MODULES)"
        )[:300]
    expected = list(dict.fromkeys(re.findall(r"Expected a <class '(?:[\w.]+\.)?(\w+)'>", inner)))
    expected = [name if name != "NoneType" else "null" for name in expected if name != "Tensor"]
    given = re.search(r"(?:Given value|Got value): (.*?)(?:\. Got value: .*)?$", inner, re.MULTILINE)
    if expected:
        value = given.group(1).strip() if given else None
        got = f", got {value!r}" if value is not None else ""
        return f"{key}: expected {' or '.join(expected)}{got}"[:300]
    details = [line for line in lines if not line.startswith(("Parser key", "Given value", "Subtypes", "Errors"))]
    return f"{key}: {details[0] if details else 'invalid value'}"[:300]


def prepare_config(config: dict, run_dir: str | os.PathLike | None, log: bool = True) -> tuple[dict, Path]:
    """A copy of ``config`` whose outputs go to ``run_dir`` (absolute; default: the config's
    ``trainer.default_root_dir``, else ``runs/default``), logged by a :class:`~deepchrome.training.RunLogger`
    (Lightning's CSVLogger without version folders; a resumed run appends to ``metrics.csv``)."""
    config = copy.deepcopy({k: v for k, v in config.items() if k not in NOT_CONFIG})
    resolve_input_paths(config, Path.cwd())  # what is still relative came from the command line
    trainer = config.setdefault("trainer", {}) or {}
    config["trainer"] = trainer
    run_dir = Path(run_dir or trainer.get("default_root_dir") or "runs/default").expanduser().resolve()
    trainer["default_root_dir"] = str(run_dir)
    if log:
        # No version subfolder: `--ckpt_path last` finds the run again; resume appends to metrics.csv.
        if trainer.get("logger") in (None, True):
            trainer["logger"] = {"class_path": "deepchrome.training.RunLogger", "init_args": {"save_dir": str(run_dir)}}
    else:
        trainer["logger"] = False
    return config, run_dir


def train(
    config: dict,
    run_dir: str | os.PathLike | None = None,
    ckpt_path: str | os.PathLike | None = None,
    callbacks: Sequence = (),
    gan: bool = False,
    overwrite: bool = False,
    threads: int | None = None,
) -> Run:
    """Fit a training config, evaluate its best checkpoint and write the run folder.

    Parameters
    ----------
    config
        Training config (see :func:`deepchrome.config.load_config`).
    run_dir
        Output folder (default: the config's ``trainer.default_root_dir``).
    ckpt_path
        Resume from this checkpoint (``last``: the run folder's last one); ``metrics.csv`` keeps
        the earlier epochs' rows and gets the new ones appended.
    callbacks
        Extra Lightning callbacks (e.g. optuna's pruning callback).
    gan
        Train the histone-signal GAN (``gan/``) instead of a classifier.
    overwrite
        Replace a finished run in ``run_dir``: its :data:`RUN_FILES` are moved aside when the fit
        starts, deleted once it has written a checkpoint and put back if it fails before; other
        files stay. Without it such a folder is refused.
    threads
        torch CPU threads (``None``: one share of the usable cores per local training process,
        unless ``OMP_NUM_THREADS`` is set; see :mod:`deepchrome.threads`).

    Returns
    -------
    Run
        The run folder, its ``metrics.json`` and the config.

    Raises
    ------
    DeepChromeError
        If ``run_dir`` is a file or holds a finished run (``metrics.json`` or checkpoints) and
        neither ``ckpt_path`` nor ``overwrite`` is given, for config errors, and for bad input
        found while fitting. A fit that fails before writing a checkpoint leaves ``run_dir`` as
        it was (an overwritten run is put back); one that wrote checkpoints keeps them, to resume.
    """
    from deepchrome.threads import ThreadsCallback, check_threads, registered_worker

    threads = check_threads(threads)
    config, run_dir = prepare_config(config, run_dir)
    check_out_folder(run_dir, RUN_DIR_OPTION)
    rank_zero = _rank_zero()
    if ckpt_path is not None and os.fspath(ckpt_path) == "best":
        raise DeepChromeError(
            "--ckpt_path best: a fit resumes from last (the run folder's last checkpoint) or from a checkpoint file"
        )
    if rank_zero:
        check_run_folder(run_dir, ckpt_path, overwrite)
    ckpt_path = check_ckpt_path(ckpt_path, "gan" if gan else "classifier")
    trainer, model, datamodule = instantiate(config, gan)
    if trainer.max_epochs == 0:  # Lightning would train nothing and write a "finished" run scored on nothing
        raise DeepChromeError("trainer.max_epochs 0: must be >= 1 (or -1: no limit, with trainer.max_time)")
    if ckpt_path is not None and trainer.max_epochs not in (None, -1):
        _check_epochs_left(_run_checkpoint(ckpt_path, run_dir), ckpt_path, trainer.max_epochs)
    from deepchrome.training import RunLogger

    if ckpt_path is not None and isinstance(trainer.logger, RunLogger):
        trainer.logger.append = True
    with _guarded_run_folder(run_dir, overwrite=overwrite, enabled=rank_zero), stops_on_signals(), registered_worker():
        if trainer.is_global_zero:
            files.write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        trainer.callbacks.extend([ThreadsCallback(threads), *callbacks])
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        except MisconfigurationException as exc:
            if "You restored a checkpoint with current_epoch" not in str(exc):
                raise
            # resuming a run that already trained past the configured max_epochs: a user choice to fix
            epoch = re.search(r"current_epoch=(\d+)", str(exc))
            raise DeepChromeError(
                f"{ckpt_path}: the checkpoint is at epoch {epoch.group(1) if epoch else '?'}, beyond "
                f"trainer.max_epochs {trainer.max_epochs}: pass a larger --trainer.max_epochs to train on"
            ) from None
        if gan:
            from deepchrome.gan.evaluation import gan_summary

            summary = gan_summary(trainer, model)
        else:
            from deepchrome.training import evaluate_best, write_test_predictions

            summary = evaluate_best(trainer, model, datamodule)
            if trainer.is_global_zero:
                table = write_test_predictions(model, datamodule, run_dir / "test_predictions.csv")
                summary.update(test_intervals(table))
        summary["selected_on_validation"] = _selected_on_validation(trainer)
        if summary["selected_on_validation"] is False and trainer.is_global_zero:
            limit = (config.get("trainer") or {}).get("max_time")
            cause = f"trainer.max_time {limit} ended it" if limit else "it ended"
            logger.warning(
                "%s before its first validation (%d epochs done): the checkpoint tested was not selected on "
                "validation (metrics.json: selected_on_validation false); give it more time or validate more often "
                "(trainer.check_val_every_n_epoch)",
                cause,
                trainer.current_epoch,
            )
        if trainer.is_global_zero:
            write_metrics(run_dir, summary)
    summary["metrics_path"] = str(run_dir / "metrics.json")
    return Run(run_dir, summary, config)


def _selected_on_validation(trainer: pl.Trainer) -> bool | None:
    """Whether the fit's checkpoint was chosen on a validation score: its monitoring ``ModelCheckpoint``
    recorded one (a time-limited run can stop before its first validation, and then tests the weights
    it has). ``None`` when no checkpoint callback monitors a metric (the config selects nothing)."""
    monitoring = [c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)]
    if not monitoring:
        return None
    return monitoring[0].best_model_score is not None


def _rank_zero() -> bool:
    """Whether this process is rank 0 (DDP ranks > 0 are launched with RANK/LOCAL_RANK set)."""
    from lightning.fabric.utilities.rank_zero import _get_rank

    return (_get_rank() or 0) == 0


def finished_run(run_dir: str | os.PathLike) -> list[str]:
    """What marks ``run_dir`` as holding a run that a new fit would destroy: ``metrics.json``,
    ``checkpoints/`` with ``.ckpt`` files (empty list: none)."""
    run_dir = Path(run_dir)
    found = ["metrics.json"] if (run_dir / "metrics.json").is_file() else []
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and any(checkpoints.glob("*.ckpt")):
        found.append("checkpoints/")
    return found


def check_run_folder(run_dir: Path, ckpt_path: str | os.PathLike | None, overwrite: bool) -> None:
    """Refuse to start a new fit over a finished run, and contradictory resume/overwrite requests.

    Raises
    ------
    DeepChromeError
        ``RUN already holds a finished run (metrics.json, checkpoints/); pass --overwrite to replace
        it, --ckpt_path last to resume it, or choose another --trainer.default_root_dir``.
    """
    if overwrite and ckpt_path is not None:
        text = os.fspath(ckpt_path)
        inside = text in ("last", "best") or Path(text).resolve().is_relative_to(run_dir.resolve())
        if inside:
            raise DeepChromeError(
                f"--overwrite with --ckpt_path {text} would delete the checkpoint to resume from; "
                "drop --overwrite to resume the run, or --ckpt_path to start it again"
            )
    if overwrite or ckpt_path is not None:
        return
    found = finished_run(run_dir)
    if found:
        raise DeepChromeError(
            f"{run_dir} already holds a finished run ({', '.join(found)}); pass --overwrite to replace it, "
            f"--ckpt_path last to resume it, or choose another {RUN_DIR_OPTION}"
        )


def _checkpoint_state(run_dir: Path) -> dict[str, tuple[int, int]]:
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return {}
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()}


def _pruned(exc: BaseException) -> bool:
    """Whether ``exc`` is optuna's ``TrialPruned`` (a sweep stopping a trial early, not a failure)."""
    optuna = sys.modules.get("optuna")  # only a sweep, which has loaded optuna, prunes
    return optuna is not None and isinstance(exc, optuna.TrialPruned)


@contextlib.contextmanager
def _guarded_run_folder(run_dir: Path, overwrite: bool, enabled: bool = True):
    """Move an overwritten run's files aside, and put the folder back as it was if the block fails:
    always when it was to replace a finished run (``overwrite``), else if it wrote no checkpoint yet
    (a new fit that wrote some keeps them, to resume)."""
    if not enabled:
        yield
        return
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    run_dir.mkdir(parents=True, exist_ok=True)
    aside: Path | None = None
    if overwrite and any((run_dir / name).exists() or (run_dir / name).is_symlink() for name in RUN_FILES):
        aside = Path(tempfile.mkdtemp(prefix=".deepchrome-replaced-", dir=run_dir))
        for name in RUN_FILES:
            if (run_dir / name).exists() or (run_dir / name).is_symlink():
                os.replace(run_dir / name, aside / name)
    present = {name for name in RUN_FILES if (run_dir / name).exists() or (run_dir / name).is_symlink()}
    kept = {name: (run_dir / name).read_bytes() for name in ("config.yaml", "metrics.csv") if name in present}
    checkpoints = _checkpoint_state(run_dir)
    discard = False  # the replaced run, once the new one succeeded or wrote checkpoints
    try:
        yield
        discard = True
    except BaseException as exc:
        # an interruption says what it left in its own one line (the command's last); an error warns
        interrupted = isinstance(exc, Interrupted)
        if aside is not None:
            # --overwrite that did not finish (an error, Ctrl-C): the finished run it was to replace
            # is worth more than the new run's first checkpoints, so the folder goes back as it was
            with contextlib.suppress(OSError):
                _restore(run_dir, present, kept, aside)
            if interrupted:
                exc.note = f"{run_dir} holds the run it was to replace, as before"
            else:
                logger.warning("the fit did not finish: %s holds the run it was to replace, as before", run_dir)
        elif _checkpoint_state(run_dir) != checkpoints:
            discard = True
            if interrupted:
                exc.note = f"the checkpoints are kept in {run_dir / 'checkpoints'}: resume with --ckpt_path last"
            elif not _pruned(exc):  # a sweep's pruned trial ended as planned: nothing to resume
                logger.warning("the checkpoints written before the failure are kept in %s: resume with "
                               "--ckpt_path last", run_dir / "checkpoints")  # fmt: skip
        else:
            if interrupted:
                exc.note = f"no checkpoint was written; {run_dir} is as it was"
            with contextlib.suppress(OSError):
                _restore(run_dir, present, kept, aside)
                for folder in created:  # deepest first; only empty folders made here go
                    folder.rmdir()
        raise
    finally:
        if discard and aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def stops_on_signals():
    """Lightning's ways of stopping on a signal, raised as :class:`~deepchrome.errors.Interrupted`.

    Lightning turns Ctrl-C into ``sys.exit(1)`` (and leaves SIGINT ignored) and SIGTERM into
    ``SIGTERMException``, a ``SystemExit`` whose status is 0: a stopped fit would look like a failed
    or a finished one. Here both raise :class:`Interrupted` (the command line exits 130 or 143) and
    SIGINT's handler is put back.
    """
    import signal
    import threading

    from lightning.pytorch.utilities.exceptions import SIGTERMException

    main_thread = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main_thread else None
    try:
        yield
    except Interrupted:
        raise
    except SIGTERMException:
        raise Interrupted(signal.SIGTERM) from None
    except KeyboardInterrupt:
        raise Interrupted(signal.SIGINT) from None
    except SystemExit as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise Interrupted(signal.SIGINT) from None
        raise
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)


def _restore(run_dir: Path, present: set[str], kept: dict[str, bytes], aside: Path | None) -> None:
    for name in RUN_FILES:
        path = run_dir / name
        if name not in present and (path.exists() or path.is_symlink()):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        elif name in kept and (not path.is_file() or path.read_bytes() != kept[name]):
            with files.atomic_path(path) as tmp:
                tmp.write_bytes(kept[name])
    if aside is not None:
        for entry in aside.iterdir():
            os.replace(entry, run_dir / entry.name)
        aside.rmdir()


def evaluate(
    config: dict,
    stage: str,
    ckpt_path: str | os.PathLike | None,
    run_dir: str | os.PathLike | None = None,
    gan: bool = False,
    overwrite: bool = False,
) -> list[dict] | None:
    """Validate, test or predict with a checkpoint; nothing of the fit's run folder is overwritten.

    ``predict`` writes ``predictions.csv`` to ``run_dir`` and refuses to replace one that is there
    unless ``overwrite``; ``validate``/``test`` return (and the command prints) the metrics without
    logging over the fit's ``metrics.csv``.
    """
    if stage not in STAGES:
        raise DeepChromeError(f"unknown stage {stage!r} (available: {', '.join(STAGES)})")
    if ckpt_path is None:
        # Lightning would score the config's untrained network and report it as if it were a model
        raise DeepChromeError(f"{stage} needs --ckpt_path: a checkpoint written by deepchrome fit (or 'last')")
    config, run_dir = prepare_config(config, run_dir, log=False)
    check_out_folder(run_dir, RUN_DIR_OPTION)
    ckpt_path = check_ckpt_path(_run_checkpoint(ckpt_path, run_dir), "gan" if gan else "classifier")
    if stage == "predict":
        files.check_not_replacing([run_dir / "predictions.csv"], overwrite, RUN_DIR_OPTION)
    trainer, model, datamodule = instantiate(config, gan)
    if stage == "predict":
        from deepchrome.training import PredictionTableWriter

        trainer.callbacks.append(PredictionTableWriter(str(run_dir / "predictions.csv")))
    method = getattr(trainer, stage)
    kwargs = {} if stage == "predict" else {"verbose": False}
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    try:
        with stops_on_signals():
            return method(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True, **kwargs)
    except BaseException:
        with contextlib.suppress(OSError):
            for folder in created:  # predictions.csv is written whole or not at all; empty folders go
                folder.rmdir()
        raise


def checkpoint_run_dir(ckpt_path: str | os.PathLike | None) -> Path | None:
    """The run folder a checkpoint file belongs to (``RUN`` for ``RUN/checkpoints/X.ckpt`` when ``RUN``
    holds a fit's ``config.yaml`` or ``metrics.json``), else ``None``: ``predict`` writes beside it."""
    if ckpt_path is None or os.fspath(ckpt_path) in LIGHTNING_CKPT_ALIASES:
        return None
    path = Path(ckpt_path).expanduser().resolve()
    run = path.parent.parent
    if path.parent.name == "checkpoints" and any((run / name).is_file() for name in ("config.yaml", "metrics.json")):
        return run
    return None


def _check_epochs_left(path: str | os.PathLike, given, max_epochs: int) -> None:
    """Refuse to resume a checkpoint that has already trained ``max_epochs`` epochs: Lightning would
    train nothing (or fail) and the run folder's files would be rewritten as if it had."""
    from deepchrome.checkpoints import read_checkpoint

    epoch = read_checkpoint(path).get("epoch")
    if isinstance(epoch, int) and epoch + 1 >= max_epochs:
        raise DeepChromeError(
            f"{given}: the checkpoint has trained {epoch + 1} epoch(s), trainer.max_epochs is {max_epochs}: pass a "
            "larger --trainer.max_epochs to train on"
        )


def _run_checkpoint(ckpt_path: str | os.PathLike | None, run_dir: Path) -> str | os.PathLike | None:
    """``--ckpt_path last`` as the run folder's ``checkpoints/last.ckpt`` (Lightning would otherwise
    score an untrained model when there is none); ``best`` is refused (it names the best checkpoint
    of a fit in the same process)."""
    text = None if ckpt_path is None else os.fspath(ckpt_path)
    if text == "last":
        path = run_dir / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise DeepChromeError(
                f"--ckpt_path last: {path} not found; give a checkpoint file, or the fit's folder as {RUN_DIR_OPTION}"
            )
        return str(path)
    if text == "best":
        best = (_read_json(run_dir / "metrics.json") or {}).get("best_checkpoint")
        hint = f", e.g. --ckpt_path {best}" if best else " (metrics.json's best_checkpoint)"
        raise DeepChromeError(f"--ckpt_path best: give the best checkpoint's file{hint}")
    return ckpt_path


def _read_json(path: Path) -> dict | None:
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def test_intervals(predictions) -> dict:
    """95% intervals of the test AUROC (DeLong) and AUPRC (bootstrap over genes), pooled and per cell.

    ``predictions``: the :func:`deepchrome.training.prediction_table` of the test split, or its CSV.
    Keys ``test_auroc_ci_low``/``_high``, ``test_auprc_ci_low``/``_high`` and, with several test
    cells, ``test_<cell>_auroc_ci_low``... (``interval_method`` says how). A cell whose test genes
    are all of one class gets none.
    """
    import pandas as pd

    from deepchrome.stats import auprc_ci, auroc_ci

    if isinstance(predictions, pd.DataFrame):
        table = predictions
    else:  # a test_predictions.csv
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
