"""``deepchrome experiment``: DeepChrome 2.0's cross-cell experiments as one engine.

An experiment config lists models (training configs), families and target cells::

    root: ../../data/example            # release root (relative to this file)
    models: {linear: ../linear.yaml, cnn: ../deepchrome_fast.yaml}
    overrides: {trainer.max_epochs: 30} # applied to every model's config
    families: [single, test_on_rest, exclusive_all, inclusive_all, exclusive_random,
               inclusive_random, exclusive_high, inclusive_high, exclusive_somewhat,
               inclusive_somewhat, size]
    targets: null                       # null = every cell
    selection: [target_val, strict]
    k_random: 2
    thresholds: {high: 0.8, somewhat: 0.5}
    size: {fractions: [0.1, 0.25, 0.5, 1.0], n_cells: [1, 2, 4]}
    seed: 0
    threads: null                       # torch CPU threads per job (null: cores shared among local workers)
    engine: stacked                     # or sequential (--engine on the command line)
    stack_size: 16                      # jobs a stacked worker claims at once (null: all waiting)

Families for a target cell T: ``single`` (train T), ``test_on_rest`` (train A, test every other
cell), ``inclusive_all``/``exclusive_all`` (all cells with/without T), ``*_random`` (T plus / only
``k_random`` seeded random other cells), ``*_high`` (cells with correlation to T >= ``high``) and
``*_somewhat`` (``somewhat`` <= r < ``high``), ``size`` (fractions of T's training genes, and T plus
random cells up to ``n_cells``). Every family is tested on T's test split.

Model selection: ``target_val`` (the paper's: validate on T's valid split, which leaks target labels
into exclusive runs) or ``strict`` (validate on the training cells' valid splits).

Cell-to-cell correlation: Pearson of log1p expression across common genes when tables exist
(``<root>/expression/<cell>.csv`` or ``expression_dir``), else of label vectors.

Jobs (distinct trainings; identical ones are shared between families) run on an optuna study with
a grid sampler over job ids, in the sweep engine's storage: several workers or machines share it,
a killed job is retried, a rerun skips finished jobs. :func:`plan_experiment` (``deepchrome experiment
--plan``) lists them before running: training genes x expected epochs per family and the time one
worker should take, from a throughput measured on this machine. The ``stacked`` engine (the default,
:mod:`deepchrome.experiments.stacked`) trains every waiting job of a model at once in one process,
jobs that differ only in their validation cells as one training; ``sequential`` trains one job at
a time through :func:`deepchrome.runs.train`. Both write the same per-job outputs.
"""

from deepchrome.experiments.config import ENGINES, FAMILIES, SELECTIONS, load_experiment_config
from deepchrome.experiments.plan import ExperimentPlan, Throughput, cell_correlations, plan_experiment, plan_jobs
from deepchrome.experiments.run import run_experiment, run_job
from deepchrome.experiments.summary import markdown_table, summarize_results, write_results

__all__ = [
    "ENGINES",
    "FAMILIES",
    "ExperimentPlan",
    "Throughput",
    "SELECTIONS",
    "cell_correlations",
    "load_experiment_config",
    "markdown_table",
    "plan_experiment",
    "plan_jobs",
    "run_experiment",
    "run_job",
    "summarize_results",
    "write_results",
]
