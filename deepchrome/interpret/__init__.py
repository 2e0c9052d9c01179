"""Interpretation: captum attributions, their summaries and figures (``deepchrome explain``)."""

from deepchrome.interpret.attributions import (
    BASELINES,
    METHODS,
    Attributions,
    attribute,
    group_attributions,
    linear_weights,
    make_baseline,
    mean_interval,
    shuffled_mark_check,
    summarize,
)

__all__ = [
    "BASELINES",
    "METHODS",
    "Attributions",
    "attribute",
    "group_attributions",
    "linear_weights",
    "make_baseline",
    "mean_interval",
    "shuffled_mark_check",
    "summarize",
]
