"""Experiment configs: families, selections, targets, models; validated before anything runs."""

from __future__ import annotations

import os
from pathlib import Path

from deepchrome.config import absolute_input, apply_overrides, check_setting_types, load_config, read_settings
from deepchrome.errors import DeepChromeError

FAMILIES = (
    "single", "test_on_rest", "inclusive_all", "exclusive_all", "inclusive_random", "exclusive_random",
    "inclusive_high", "exclusive_high", "inclusive_somewhat", "exclusive_somewhat", "size",
)  # fmt: skip
SELECTIONS = ("target_val", "strict")
#: How jobs are trained: many at once in one process (faster; :mod:`deepchrome.experiments.stacked`)
#: or one at a time through the one-model run path.
ENGINES = ("stacked", "sequential")


EXPERIMENT_KEYS = ("root", "models", "overrides", "families", "selection", "targets", "k_random", "thresholds",
                   "size", "seed", "expression_dir", "study_name", "max_attempts", "heartbeat_interval",
                   "grace_period", "margin", "threads", "engine", "stack_size")  # fmt: skip


def load_experiment_config(source: str | os.PathLike | dict) -> dict:
    """Read and validate an experiment config: a file (paths resolve relative to it), a packaged name
    (``experiments/example``) or a dict (paths relative to the working directory).

    Raises
    ------
    DeepChromeError
        For unknown families, selections or cells, thresholds outside [-1, 1], learning-curve
        fractions outside (0, 1], bad attempt or heartbeat settings, missing files.
    """
    from deepchrome.data.release import list_cells
    from deepchrome.sweep import check_storage_settings

    raw, path, folder = read_settings(source, EXPERIMENT_KEYS, "experiment config")
    check_experiment_settings(raw, path)
    root = Path(absolute_input(raw.get("root", "data/example"), folder))
    cells = list_cells(root)
    models = {}
    for name, model_source in (raw.get("models") or {"linear": "linear"}).items():
        if not isinstance(model_source, dict):
            candidate = folder / str(model_source)
            model_source = candidate if candidate.is_file() else model_source  # else a packaged name
        config = load_config(model_source)
        apply_overrides(config, raw.get("overrides"), f"{path}: overrides", folder)
        config.setdefault("data", {})["root"] = str(root)
        models[name] = config
    families = raw.get("families") or list(FAMILIES)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise DeepChromeError(f"{path}: unknown famil(ies) {', '.join(unknown)} (available: {', '.join(FAMILIES)})")
    selection = raw.get("selection") or list(SELECTIONS)
    bad = [s for s in selection if s not in SELECTIONS]
    if bad:
        raise DeepChromeError(f"{path}: unknown selection {', '.join(bad)} (available: {', '.join(SELECTIONS)})")
    targets = raw.get("targets") or cells
    missing = [t for t in targets if t not in cells]
    if missing:
        raise DeepChromeError(
            f"{path}: target cell(s) {', '.join(missing)} not in {root} (available: {', '.join(cells)})"
        )
    thresholds = {"high": 0.8, "somewhat": 0.5, **(raw.get("thresholds") or {})}
    for name, value in thresholds.items():
        if not isinstance(value, int | float) or not -1 <= value <= 1:
            raise DeepChromeError(f"{path}: thresholds.{name} = {value!r}, expected a number in [-1, 1]")
    if thresholds["somewhat"] > thresholds["high"]:
        raise DeepChromeError(f"{path}: thresholds.somewhat ({thresholds['somewhat']}) > thresholds.high")
    margin = raw.get("margin", 0.01)
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 < margin < 1:
        raise DeepChromeError(f"{path}: margin = {margin!r}, expected a test-AUROC difference in (0, 1), e.g. 0.01")
    engine = check_engine(raw.get("engine", default_engine()), f"{path}: engine")
    # jobs one stacked worker claims at once: a bound leaves waiting jobs to other workers
    stack_size = raw.get("stack_size", 16)
    if stack_size is not None and (isinstance(stack_size, bool) or not isinstance(stack_size, int) or stack_size < 1):
        raise DeepChromeError(f"{path}: stack_size = {stack_size!r}, expected a whole number >= 1 (or null: all)")
    size = {"fractions": [0.1, 0.25, 0.5, 1.0], "n_cells": [1, 2, 4], **(raw.get("size") or {})}
    check_size(size, path)
    workers = {"max_attempts": raw.get("max_attempts", 3), "heartbeat_interval": raw.get("heartbeat_interval", 10),
               "grace_period": raw.get("grace_period")}  # fmt: skip
    check_storage_settings(workers, path)
    expression_dir = raw.get("expression_dir")
    from deepchrome.threads import check_threads

    return {
        "threads": check_threads(raw.get("threads"), f"{path}: threads"),
        "root": root,
        "cells": cells,
        "models": models,
        "families": families,
        "selection": selection,
        "targets": targets,
        "k_random": int(raw.get("k_random", 2)),
        "thresholds": thresholds,
        "size": size,
        "seed": int(raw.get("seed", 0)),
        "margin": float(margin),
        "engine": engine,
        "stack_size": stack_size,
        "expression_dir": Path(absolute_input(expression_dir, folder)) if expression_dir else root / "expression",
        "study_name": raw.get("study_name", Path(str(source)).stem if not isinstance(source, dict) else "experiment"),
        **workers,
    }


#: The type of each experiment setting (see :func:`deepchrome.config.check_setting_types`).
EXPERIMENT_KINDS = {
    "root": "path", "models": "mapping", "overrides": "mapping", "families": "list", "selection": "list",
    "targets": "list", "k_random": "whole", "thresholds": "mapping", "size": "mapping", "seed": "whole",
    "expression_dir": "path", "study_name": "text",
}  # fmt: skip


def check_experiment_settings(raw: dict, where: str) -> None:
    """Refuse an empty config, settings of the wrong type and empty lists, before anything is read.

    Raises
    ------
    DeepChromeError
        ``CONFIG: k_random must be a whole number >= 1, got -1``, ``CONFIG: families is empty: list
        one or more of single, ...``, ``CONFIG: models.linear must be a training config...``.
    """
    if not raw:
        raise DeepChromeError(
            f"{where}: the experiment config is empty: give at least root, models and families "
            "(see configs/experiments/example.yaml)"
        )
    check_setting_types(raw, EXPERIMENT_KINDS, where)
    for key, available in (("models", None), ("families", FAMILIES), ("selection", SELECTIONS), ("targets", None)):
        if key in raw and not raw[key]:
            choices = f": list one or more of {', '.join(available)}" if available else ""
            raise DeepChromeError(f"{where}: {key} is empty{choices} (or leave {key} out for the default)")
    for name, model in (raw.get("models") or {}).items():
        if not isinstance(model, str | dict):
            raise DeepChromeError(
                f"{where}: models.{name} must be a training config (a packaged name, a YAML path or a mapping), "
                f"got {model!r}"
            )
    for key in ("families", "selection", "targets"):
        bad = [v for v in raw.get(key) or [] if not isinstance(v, str)]
        if bad:
            raise DeepChromeError(f"{where}: {key} must list names, got {bad[0]!r}")
    for key, least in (("k_random", 1), ("seed", 0)):
        if key in raw and raw[key] < least:
            raise DeepChromeError(f"{where}: {key} must be a whole number >= {least}, got {raw[key]}")


def check_size(size: dict, where: str) -> None:
    """Raise unless ``size`` has only ``fractions`` (each in (0, 1]) and ``n_cells`` (whole numbers >= 1)."""
    unknown = sorted(set(size) - {"fractions", "n_cells"})
    if unknown:
        raise DeepChromeError(f"{where}: size: unknown key(s) {', '.join(unknown)} (known: fractions, n_cells)")
    for key, good, expected in (
        ("fractions", lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 1, "in (0, 1]"),
        ("n_cells", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "whole numbers >= 1"),
    ):
        values = size[key]
        if not isinstance(values, list) or not values:
            raise DeepChromeError(f"{where}: size.{key} must be a non-empty list, got {values!r}")
        bad = [v for v in values if not good(v)]
        if bad:
            raise DeepChromeError(f"{where}: size.{key} has {bad[0]!r}; expected {expected}")


def default_engine() -> str:
    """The engine used when the config names none: ``stacked``.

    In ``bench/bench_grid.py`` on a shared 2-core machine it was faster in most runs (1.2-1.7x with
    one thread, 4.6x with two, and shared trainings cut a grid's work) but not in two quieter
    one-thread runs (0.79x, 0.98x): to be confirmed on a quiet machine. Not measured on a GPU.
    """
    return "stacked"


def check_engine(engine, where: str) -> str:
    """``engine`` if it is one of :data:`ENGINES`, else a one-line DeepChromeError naming ``where``."""
    if engine not in ENGINES:
        raise DeepChromeError(f"{where} {engine!r}: expected one of {', '.join(ENGINES)}")
    return engine
