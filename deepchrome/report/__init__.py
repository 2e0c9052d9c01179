"""``deepchrome report``: the reproduction report. :mod:`~deepchrome.report.build` runs the steps
(cached) and computes every number; :mod:`~deepchrome.report.prose` writes the README from them."""

from deepchrome.report.build import MODELS, run_report

__all__ = ["MODELS", "run_report"]
