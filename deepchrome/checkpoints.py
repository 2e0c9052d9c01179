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
        check_meta(meta, path)
    return checkpoint


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_meta(meta: dict, path: str | os.PathLike) -> None:
    """Refuse deepchrome metadata of the wrong type or value, or inconsistent with itself, on one line.

    Checked: ``n_marks``, ``n_bins`` (and the GAN's ``latent_dim``, ``width``, ``n_cells``) whole
    numbers >= 1; ``marks`` a list of ``n_marks`` distinct names; the input transform (a known kind,
    per-mark statistics of ``n_marks`` finite numbers, sd > 0, present when the kind needs them);
    the GAN's ``output`` one of its outputs and ``bin_overlap`` a number in [0, 1]; the classifier
    network's own mark and bin counts equal to ``n_marks``/``n_bins``. Absent keys are left to the
    readers that need them.

    Raises
    ------
    DeepChromeError
        ``CKPT: checkpoint metadata: transform kind 'weird' is not one of raw, log1p, ...``.
    """
    import math

    from deepchrome.data.transform import TRANSFORMS

    def refuse(what: str):
        raise DeepChromeError(
            f"{path}: checkpoint metadata: {what}; the file is damaged or was not written by deepchrome"
        )

    sizes = ("n_marks", "n_bins", "latent_dim", "width", "n_cells")
    for key in sizes:
        if key in meta and not _whole(meta[key]):
            refuse(f"{key} {meta[key]!r} is not a whole number >= 1")
    marks, n_marks = meta.get("marks"), meta.get("n_marks")
    if marks is not None:
        if not isinstance(marks, list | tuple) or not all(isinstance(m, str) and m for m in marks):
            refuse(f"marks {marks!r} is not a list of mark names")
        if len(set(marks)) != len(marks):
            refuse(f"marks {list(marks)} names a mark twice")
        if n_marks is not None and len(marks) != n_marks:
            refuse(f"n_marks is {n_marks} but marks lists {len(marks)} ({', '.join(marks)})")
    transform = meta.get("transform")
    if transform is not None:
        if not isinstance(transform, dict) or transform.get("kind") not in TRANSFORMS:
            kind = transform.get("kind") if isinstance(transform, dict) else transform
            refuse(f"transform kind {kind!r} is not one of {', '.join(TRANSFORMS)}")
        for name in ("mean", "std"):
            values = transform.get(name)
            if values is None:
                if transform["kind"].endswith("standardize"):
                    refuse(f"transform {transform['kind']} has no per-mark {name}")
                continue
            if not isinstance(values, list | tuple) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
            ):
                refuse(f"transform {name} is not a list of finite numbers")
            if n_marks is not None and len(values) != n_marks:
                refuse(f"transform {name} has {len(values)} values for {n_marks} marks")
            if name == "std" and any(v <= 0 for v in values):
                refuse("transform std has a value <= 0")
    if meta.get("kind") == "gan":
        from deepchrome.gan.models import OUTPUTS

        output = meta.get("output", "counts")
        if not isinstance(output, str) or output not in OUTPUTS:
            refuse(f"output {output!r} is not one of {', '.join(OUTPUTS)}")
        overlap = meta.get("bin_overlap", 0.0)
        if isinstance(overlap, bool) or not isinstance(overlap, int | float) or not 0 <= overlap <= 1:
            refuse(f"bin_overlap {overlap!r} is not a number in [0, 1]")
    elif meta.get("kind") == "classifier":
        net = meta.get("net")
        if not isinstance(net, dict) or not isinstance(net.get("class_path"), str):
            refuse(f"net {net!r} is not a network config (class_path, init_args)")
        init_args = net.get("init_args") or {}
        if not isinstance(init_args, dict):
            refuse(f"net init_args {init_args!r} is not a mapping")
        for key in ("n_marks", "n_bins"):
            if init_args.get(key) is not None and key in meta and init_args[key] != meta[key]:
                refuse(f"{key} is {meta[key]} but the network reads {init_args[key]}")


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
        check_meta({"transform": meta["transform"], "n_marks": meta["n_marks"]}, path)
    return net.eval(), meta
