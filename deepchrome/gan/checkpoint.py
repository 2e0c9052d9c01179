"""GAN checkpoints: their metadata, safe loading of the generator, and compatibility checks."""

from __future__ import annotations

import os

import numpy as np

from deepchrome.checkpoints import read_checkpoint
from deepchrome.data.transform import SignalTransform
from deepchrome.errors import DeepChromeError
from deepchrome.gan.models import Generator

#: Version of the GAN checkpoint layout; 2: generators emit rates, EMA weights are stored;
#: 3: generators have a per-gene mark level (``Generator.level``).
GAN_FORMAT = 3


def gan_meta(checkpoint: dict, path) -> dict:
    meta = checkpoint.get("deepchrome") or {}
    if meta.get("kind") != "gan":
        raise DeepChromeError(
            f"{path} is not a GAN checkpoint (kind: {meta.get('kind')}); train one with deepchrome gan fit"
        )
    if meta.get("format") != GAN_FORMAT:
        raise DeepChromeError(
            f"{path} was written by an older deepchrome GAN (format {meta.get('format', 1)}, this version reads "
            f"{GAN_FORMAT}); retrain it with deepchrome gan fit"
        )
    return meta


def check_compatible(meta: dict, marks: list[str], n_bins: int, path, *, transform: SignalTransform | dict) -> None:
    """Refuse a classifier that would not read the GAN's signals as its own input.

    A classifier scores generated signals in the GAN's model space, so its marks (in order), bins
    and input transform must be the GAN's: a classifier trained on ``log1p`` input scoring
    standardized signals gives numbers, not a measurement.

    Parameters
    ----------
    meta
        The classifier checkpoint's metadata (:func:`deepchrome.checkpoints.load_classifier`):
        ``marks``, ``n_marks``, ``n_bins`` and ``transform`` (a :class:`SignalTransform` state).
    marks, n_bins
        The GAN's marks and bins.
    path
        The classifier checkpoint, for the message.
    transform
        The GAN's input transform (or its state dict).

    Raises
    ------
    DeepChromeError
        Naming both sides: other marks or bins; another transform kind or other fitted statistics
        (per-mark mean and sd, compared to 1e-5 relative); no transform stored in the classifier.
    """
    if list(meta["marks"]) != list(marks) or meta["n_bins"] != n_bins:
        raise DeepChromeError(
            f"classifier {path} expects {meta['n_marks']} marks x {meta['n_bins']} bins "
            f"({', '.join(meta['marks'])}), the GAN has {len(marks)} marks x {n_bins} bins ({', '.join(marks)})"
        )
    ours = transform.state_dict() if isinstance(transform, SignalTransform) else dict(transform)
    theirs = meta.get("transform")
    if not theirs:
        raise DeepChromeError(
            f"classifier {path} stores no input transform, so it cannot be checked against the GAN's "
            f"({ours['kind']}); use a checkpoint written by deepchrome fit"
        )
    if theirs["kind"] != ours["kind"]:
        raise DeepChromeError(
            f"classifier {path} reads {theirs['kind']} input, the GAN's signals are {ours['kind']}; train both "
            "with the same --data.transform"
        )
    for name in ("mean", "std"):
        a, b = theirs.get(name), ours.get(name)
        same = (a is None and b is None) or (
            a is not None and b is not None and len(a) == len(b) and np.allclose(a, b, rtol=1e-5, atol=1e-8)
        )
        if not same:
            raise DeepChromeError(
                f"classifier {path} was standardized with another per-mark {name} than the GAN's data "
                f"({_numbers(a)} vs {_numbers(b)}); train both on the same cells"
            )


def _numbers(values) -> str:
    return "none" if values is None else "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def load_gan(path: str | os.PathLike) -> tuple[Generator, dict]:
    """The EMA generator (eval mode) and metadata of a GAN checkpoint, read safely
    (:func:`deepchrome.checkpoints.read_checkpoint`: ``weights_only=True``, no URLs)."""
    checkpoint = read_checkpoint(path, "gan")
    meta = gan_meta(checkpoint, path)
    try:
        generator = Generator(
            meta["n_marks"], meta["n_bins"], meta["latent_dim"], n_cells=meta["n_cells"], width=meta["width"]
        )
        prefix = "generator_ema.module."
        state = {k.removeprefix(prefix): v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
        generator.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise DeepChromeError(f"{path}: GAN checkpoint is incomplete or damaged ({exc.__class__.__name__})") from None
    return generator.eval(), meta


def condition_cell(meta: dict, cell: str) -> int | None:
    """The generator's condition index for training cell ``cell`` (``None`` for a GAN not conditioned on cells,
    whose ``cell`` is only a name for its output).

    Raises
    ------
    DeepChromeError
        ``cell`` is not one of the cells a cell-conditioned GAN was trained on (its condition would be
        an embedding of another cell), or the checkpoint stores no cell names.
    """
    if meta.get("n_cells", 1) <= 1:
        return None
    names = list(meta.get("cells") or [])
    if not names:
        raise DeepChromeError(
            f"this GAN is conditioned on {meta['n_cells']} cells but its checkpoint stores no cell names; retrain it"
        )
    if cell not in names:
        raise DeepChromeError(
            f"cell {cell!r}: this GAN was trained on cells {', '.join(names)} and generates only those"
        )
    return names.index(cell)


def gan_transform(meta: dict) -> SignalTransform:
    """The data module's transform stored in a GAN checkpoint's metadata (``raw`` when absent)."""
    transform = SignalTransform("raw")
    if meta.get("transform"):
        transform.load_state_dict(meta["transform"])
    return transform
