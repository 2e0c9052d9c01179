"""What the stacked engine can train: the rules both the engine and the plan read.

A training config runs on the stacked engine when its network is built only of
:data:`STACKABLE_LAYERS` and its trainer uses only options the engine reproduces (:func:`stackable`,
:func:`model_stackable`). Jobs of such a model that differ only in their validation cells share one
training, unless the schedule follows the validation score (:func:`plateau_schedule`).
"""

from __future__ import annotations

import copy
import json

from torch import nn

#: Layers the engine stacks with vmap (any network built only of these and SignalNet containers).
STACKABLE_LAYERS = (nn.Conv1d, nn.Linear, nn.ReLU, nn.MaxPool1d, nn.AvgPool1d, nn.Dropout, nn.Flatten,
                    nn.Sequential, nn.Identity)  # fmt: skip
#: Trainer options the engine reproduces (others, e.g. accumulate_grad_batches, go sequential).
TRAINER_KEYS = {"default_root_dir", "max_epochs", "accelerator", "deterministic", "log_every_n_steps", "callbacks",
                "logger", "enable_progress_bar", "enable_model_summary", "gradient_clip_val", "devices",
                "gradient_clip_algorithm", "num_sanity_val_steps", "precision"}  # fmt: skip
CHECKPOINT_KEYS = {"monitor", "mode", "save_last", "filename", "dirpath", "save_top_k", "verbose"}
STOPPING_KEYS = {"monitor", "mode", "patience", "min_delta", "verbose", "strict", "check_finite"}


def stackable(config: dict) -> str | None:
    """Why a training config cannot run on the stacked engine (``None``: it can).

    The network class must be made of :data:`STACKABLE_LAYERS`; the trainer may only use
    :data:`TRAINER_KEYS`, a ``ModelCheckpoint`` and an ``EarlyStopping`` on ``val_auroc`` (mode max),
    norm clipping, 32-bit precision and one device.
    """
    trainer = config.get("trainer") or {}
    extra = sorted(set(trainer) - TRAINER_KEYS)
    if extra:
        return f"trainer option(s) {', '.join(extra)}"
    if str(trainer.get("precision", "32")).split("-")[0] not in ("32",):
        return f"trainer.precision {trainer['precision']}"
    if trainer.get("devices") not in (None, 1, "1", "auto"):
        return f"trainer.devices {trainer['devices']}"
    if trainer.get("gradient_clip_algorithm", "norm") != "norm":
        return "gradient_clip_algorithm value"
    for callback in trainer.get("callbacks") or []:
        path = callback.get("class_path", "") if isinstance(callback, dict) else ""
        args = callback.get("init_args", {}) if isinstance(callback, dict) else {}
        name = path.rsplit(".", 1)[-1]
        allowed = {"ModelCheckpoint": CHECKPOINT_KEYS, "EarlyStopping": STOPPING_KEYS}.get(name)
        if allowed is None:
            return f"callback {path or callback!r}"
        if set(args) - allowed or args.get("monitor") != "val_auroc" or args.get("mode", "min") != "max":
            return f"{name} settings other than monitor val_auroc, mode max"
    if callback_args(config, "ModelCheckpoint") is None:
        return "a fit without a ModelCheckpoint on val_auroc (it would test the last epoch)"
    return None


def model_stackable(config: dict) -> str | None:
    """Why a model's training config cannot run on the stacked engine: :func:`stackable`, then its
    network built for the data (:func:`network_stackable`); ``None``: it can."""
    import tempfile

    from deepchrome.runs import instantiate, prepare_config

    reason = stackable(config)
    if reason:
        return reason
    with tempfile.TemporaryDirectory(prefix="deepchrome-stack-") as scratch:
        config, _ = prepare_config(copy.deepcopy(config), scratch, log=False)
        _, module, datamodule = instantiate(config)
    return network_stackable(module.net.build(datamodule.n_marks, datamodule.n_bins))


def network_stackable(net: nn.Module) -> str | None:
    """Why a built network cannot be stacked (a layer type vmap is not used with here), or ``None``."""
    from deepchrome.models.base import SignalNet

    for module in net.modules():
        if (
            not isinstance(module, STACKABLE_LAYERS)
            and type(module) is not type(net)
            and not (isinstance(module, SignalNet) and module is net)
        ):
            return f"layer {type(module).__name__}"
    return None


def callback_args(config: dict, name: str) -> dict | None:
    """The ``init_args`` of a training config's callback of class ``name`` (``None``: no such callback)."""
    for callback in (config.get("trainer") or {}).get("callbacks") or []:
        if isinstance(callback, dict) and callback.get("class_path", "").rsplit(".", 1)[-1] == name:
            return dict(callback.get("init_args") or {})
    return None


def plateau_schedule(config: dict) -> bool:
    """Whether a training config's learning-rate schedule is ``ReduceLROnPlateau``: it follows the
    validation score, so jobs with other validation cells cannot share its training."""
    return "ReduceLROnPlateau" in json.dumps((config.get("model") or {}).get("lr_scheduler"), default=str)
