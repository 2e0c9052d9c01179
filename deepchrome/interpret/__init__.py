"""Interpretation: captum attributions, their summaries and figures (``deepchrome explain``)."""

from deepchrome.interpret.attributions import (
    BASELINES,
    METHODS,
    Attributions,
    attribute,
    linear_weights,
    make_baseline,
    summarize,
)

__all__ = ["BASELINES", "METHODS", "Attributions", "attribute", "linear_weights", "make_baseline", "summarize"]
