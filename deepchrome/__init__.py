"""deepchrome: predict gene expression from histone-modification signals.

Python API (the command line runs the same functions)::

    import deepchrome
    run = deepchrome.fit("deepchrome", overrides={"data.root": "data/example", "trainer.max_epochs": 3})
    clf = deepchrome.load(run.best_checkpoint)
    p = clf.predict(deepchrome.data.load_split("data/example", "S01", "test"))

Also: :func:`run_sweep`, :func:`run_experiment`, :func:`explain`, :func:`run_report`,
:func:`compare` and ``deepchrome.gan.fit``.
"""

import importlib

__version__ = "0.1.0"

# name -> module that defines it; imported on first use, so `import deepchrome` stays fast
_LAZY = {
    "fit": "deepchrome.api",
    "load": "deepchrome.api",
    "Classifier": "deepchrome.api",
    "Run": "deepchrome.runs",
    "load_config": "deepchrome.config",
    "run_sweep": "deepchrome.sweep",
    "run_experiment": "deepchrome.experiments.run",
    "explain": "deepchrome.interpret.explain",
    "run_report": "deepchrome.report.build",
    "DeepChromeError": "deepchrome.errors",
    "compare": "deepchrome.stats",
    "compare_runs": "deepchrome.stats",
}
_SUBMODULES = ("data", "models", "interpret", "stats", "config", "runs")


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"deepchrome.{name}")
    raise AttributeError(f"module 'deepchrome' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, *_SUBMODULES])


__all__ = ["__version__", *_LAZY]
