"""GAN checkpoints: their metadata, safe loading of the generator, and compatibility checks."""

from __future__ import annotations

import os

from deepchrome.checkpoints import read_checkpoint
from deepchrome.data.transform import SignalTransform
from deepchrome.errors import DeepChromeError
from gan.models import Generator

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


def check_compatible(meta: dict, marks: list[str], n_bins: int, path) -> None:
    """Refuse a classifier whose marks/bins differ from the GAN's data, naming both shapes."""
    if list(meta["marks"]) != list(marks) or meta["n_bins"] != n_bins:
        raise DeepChromeError(
            f"classifier {path} expects {meta['n_marks']} marks x {meta['n_bins']} bins "
            f"({', '.join(meta['marks'])}), the GAN has {len(marks)} marks x {n_bins} bins ({', '.join(marks)})"
        )


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


def gan_transform(meta: dict) -> SignalTransform:
    """The data module's transform stored in a GAN checkpoint's metadata (``raw`` when absent)."""
    transform = SignalTransform("raw")
    if meta.get("transform"):
        transform.load_state_dict(meta["transform"])
    return transform
