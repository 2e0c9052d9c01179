"""Reading checkpoints safely: tensors and plain data only, networks from an allow-list.

Every command and function that takes a checkpoint reads it here. A checkpoint is untrusted
input: it is loaded with ``torch.load(weights_only=True)`` (no pickled code), URLs are refused
(download the file first), and the network it names is built only if it is registered
(:mod:`deepchrome.models.registry`). Every problem is a one-line :class:`DeepChromeError`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from deepchrome.errors import DeepChromeError
from deepchrome.models import SignalNet
from deepchrome.models.registry import build_network

#: ``--ckpt_path`` values that Lightning resolves to files of the run folder itself.
LIGHTNING_CKPT_ALIASES = ("last", "best", "hpc", "registry")


def checkpoint_file(path: str | os.PathLike) -> Path:
    """``path`` as a local checkpoint file; URLs, folders and missing files are refused."""
    text = os.fspath(path)
    if "://" in text:
        raise DeepChromeError(
            f"checkpoint {text}: URLs are refused (a checkpoint is code-free data only when read from a local "
            "file with weights_only=True); download it and pass the file's path"
        )
    path = Path(text)
    if not path.exists():
        raise DeepChromeError(f"checkpoint {path} not found")
    if not path.is_file():
        raise DeepChromeError(f"checkpoint {path} is not a file")
    return path


def read_checkpoint(path: str | os.PathLike, kind: str | None = None) -> dict:
    """A checkpoint's contents, loaded with ``weights_only=True``.

    Parameters
    ----------
    kind
        ``"classifier"`` or ``"gan"``: also require deepchrome's metadata of that kind.

    Raises
    ------
    DeepChromeError
        For URLs, missing or unreadable files, and checkpoints of another kind.
    """
    path = checkpoint_file(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; none is the user's bug report
        text = " ".join(str(exc).split())
        # torch's weights-only refusals are paragraphs; their first sentence says what was refused
        reason = text.split(". ")[0][:200] if text else exc.__class__.__name__
        raise DeepChromeError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict):
        raise DeepChromeError(f"{path}: not a checkpoint (a {type(checkpoint).__name__}, not a mapping)")
    if kind is not None:
        meta = checkpoint.get("deepchrome")
        found = meta.get("kind") if isinstance(meta, dict) else None
        if found != kind:
            hint = {"classifier": "deepchrome fit", "gan": "deepchrome gan fit"}.get(kind, "deepchrome")
            raise DeepChromeError(
                f"{path} is not a deepchrome {kind} checkpoint (kind: {found}); train one with {hint}"
            )
        if not isinstance(checkpoint.get("state_dict"), dict):
            raise DeepChromeError(f"{path}: checkpoint has no model weights")
    return checkpoint


def check_ckpt_path(ckpt_path: str | os.PathLike | None, kind: str) -> str | None:
    """Validate a ``--ckpt_path`` before Lightning reads it (Lightning's aliases such as ``last`` pass)."""
    if ckpt_path is None or os.fspath(ckpt_path) in LIGHTNING_CKPT_ALIASES:
        return None if ckpt_path is None else os.fspath(ckpt_path)
    checkpoint = read_checkpoint(ckpt_path, kind)
    missing = [key for key in ("pytorch-lightning_version", "epoch", "global_step") if key not in checkpoint]
    if missing:
        raise DeepChromeError(f"{ckpt_path}: not a training checkpoint of deepchrome (no {', '.join(missing)})")
    return os.fspath(ckpt_path)


def load_classifier(path: str | os.PathLike) -> tuple[SignalNet, dict]:
    """Load a classifier checkpoint's network (eval mode) and its metadata.

    Returns
    -------
    net
        The network, built for the checkpoint's marks and bins (a registered class only).
    meta
        ``net`` (config), ``marks``, ``n_marks``, ``n_bins``, ``transform`` (state), ``train_cells``.

    Raises
    ------
    DeepChromeError
        If the file is missing, unreadable, not a classifier checkpoint, or names a network that is
        not registered.
    """
    checkpoint = read_checkpoint(path, "classifier")
    meta = dict(checkpoint["deepchrome"])
    for key in ("net", "marks", "n_marks", "n_bins"):
        if key not in meta:
            raise DeepChromeError(f"{path}: classifier checkpoint lacks {key!r} in its metadata")
    net = build_network(meta["net"], str(path))
    state = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise DeepChromeError(f"{path}: weights do not fit its {type(net).__name__} ({first})") from None
    if not meta.get("transform"):
        # Lightning also stores the data module's state (the fitted transform) under its class name.
        meta["transform"] = (checkpoint.get("HistoneDataModule") or {}).get("transform")
    return net.eval(), meta
