"""Training the GAN from Python: the same run path as ``deepchrome gan fit``."""

from __future__ import annotations

import os

from deepchrome.config import load_config
from deepchrome.messages import default_output
from deepchrome.runs import Run, train


@default_output
def fit(
    config: str | os.PathLike | dict = "gan",
    overrides: dict | None = None,
    run_dir: str | os.PathLike | None = None,
    ckpt_path: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Run:
    """Train the histone-signal GAN.

    Parameters
    ----------
    config
        Packaged config name (default ``gan``), YAML path or dict.
    overrides
        Dotted overrides, e.g. ``{"data.train_cells": ["E003"], "trainer.max_epochs": 50}``.
    run_dir
        Output folder (default: the config's ``trainer.default_root_dir``).
    overwrite
        Replace a finished run in ``run_dir`` (else that is an error).

    Returns
    -------
    deepchrome.runs.Run
        ``metrics`` holds the test-split quality and which targets were met.
    """
    return train(load_config(config, overrides), run_dir, ckpt_path=ckpt_path, gan=True, overwrite=overwrite)


@default_output
def fit_gan(
    root: str | os.PathLike,
    cell: str,
    run_dir: str | os.PathLike,
    classifier_checkpoint: str | None = None,
    minutes: int | None = None,
    max_epochs: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Train the packaged ``gan`` config on one cell; its metrics.json contents.

    ``minutes`` bounds the training time (epochs unbounded), else ``max_epochs`` (else the config's).
    """
    overrides = {
        "data.root": str(root),
        "data.train_cells": [cell],
        "trainer.enable_progress_bar": False,
        "trainer.enable_model_summary": False,
    }
    if classifier_checkpoint is not None:
        overrides["model.classifier_checkpoint"] = str(classifier_checkpoint)
    if minutes is not None:
        overrides.update({"trainer.max_epochs": 100_000, "trainer.max_time": f"00:00:{minutes:02d}:00"})
    elif max_epochs is not None:
        overrides["trainer.max_epochs"] = max_epochs
    return fit("gan", overrides, run_dir, overwrite=overwrite).metrics
