"""The job grid: cell-to-cell correlations, the trainings each family needs (shared when identical),
and the plan: training samples and the estimated time, from a throughput measured on this machine."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from deepchrome.errors import DeepChromeError
from deepchrome.messages import default_output


def cell_correlations(root: Path, cells: list[str], expression_dir: Path | None = None) -> tuple[pd.DataFrame, str]:
    """Pearson correlation between cells over their training genes: of log1p expression, else of labels.

    Partner cells (the ``*_high`` and ``*_somewhat`` families) are chosen from this matrix, so it must
    not see any target's test (or validation) labels: only genes in the training split of **every**
    cell enter it. Expression tables are used where every cell has one
    (``<expression_dir>/<cell>.csv``), restricted to those training genes; otherwise the training
    labels (0/1) themselves are correlated.

    Parameters
    ----------
    root
        Release root holding ``<cell>/classification/train.csv``.
    cells
        The cells to correlate (at least one).
    expression_dir
        Folder of ``<cell>.csv`` expression tables, or ``None`` for labels.

    Returns
    -------
    matrix
        DataFrame [cells x cells].
    source
        ``expression`` or ``labels``.

    Raises
    ------
    DeepChromeError
        Fewer than 3 genes in the training split of every cell (or in every expression table too).
    """
    from deepchrome.data.cache import load_split
    from deepchrome.data.release import read_expression_table
    from deepchrome.data.signals import normalize_gene_id

    train = {cell: load_split(root, cell, "train") for cell in cells}
    # gene ids in the release's short form, as expression tables are indexed when read
    ids = {cell: [normalize_gene_id(g) for g in part.gene_ids] for cell, part in train.items()}
    common = sorted(set.intersection(*(set(i) for i in ids.values())))
    if expression_dir is not None and all((expression_dir / f"{c}.csv").is_file() for c in cells):
        tables = {c: read_expression_table(expression_dir / f"{c}.csv") for c in cells}
        common = [g for g in common if all(g in t.index for t in tables.values())]
        _check_enough(common, cells, "training genes with expression in every table")
        values = pd.DataFrame({c: np.log1p(tables[c].reindex(common).to_numpy()) for c in cells})
        return values.corr(), "expression"
    _check_enough(common, cells, "genes in the training split of every cell")
    labels = {}
    for cell, part in train.items():
        labels[cell] = pd.Series(np.asarray(part.labels, dtype=float), index=ids[cell]).reindex(common).to_numpy()
    return pd.DataFrame(labels).corr(), "labels"


def _check_enough(genes: list[str], cells: list[str], what: str) -> None:
    if len(genes) < 3:
        raise DeepChromeError(
            f"cell correlations: only {len(genes)} {what} ({', '.join(cells)}); correlations need at least 3"
        )


def plan_jobs(settings: dict, correlation: pd.DataFrame) -> tuple[list[dict], list[dict], list[dict]]:
    """Expand families x models x targets x selection into distinct trainings.

    Returns
    -------
    jobs
        Distinct trainings: model, train/val/test cells, train fraction.
    rows
        One per reported result: family, model, target, selection, job id, test cell.
    skipped
        ``{family, target, reason}`` for combinations with an empty training set.
    """
    cells, seed = settings["cells"], settings["seed"]
    high, somewhat = settings["thresholds"]["high"], settings["thresholds"]["somewhat"]
    jobs: list[dict] = []
    index: dict = {}
    rows: list[dict] = []
    skipped: list[dict] = []

    def add(family, model, target, train, val, tests, selection, fraction=1.0, extra=None):
        key = (model, tuple(train), tuple(val), round(fraction, 6))
        if key not in index:
            index[key] = len(jobs)
            jobs.append({"model": model, "train_cells": list(train), "val_cells": list(val), "test_cells": [],
                         "train_fraction": fraction})  # fmt: skip
        job = jobs[index[key]]
        for test in tests:
            if test not in job["test_cells"]:
                job["test_cells"].append(test)
            rows.append({"family": family, "model": model, "target": target, "selection": selection,
                         "job": index[key], "test_cell": test, **(extra or {})})  # fmt: skip

    for model in settings["models"]:
        for target in settings["targets"]:
            others = [c for c in cells if c != target]
            rng = np.random.default_rng([seed, cells.index(target)])
            random_pick = sorted(
                rng.choice(others, size=min(settings["k_random"], len(others)), replace=False).tolist()
            )
            r = correlation.loc[target, others]
            partners = {
                "high": [c for c in others if r[c] >= high],
                "somewhat": [c for c in others if somewhat <= r[c] < high],
            }
            for family in settings["families"]:
                if family == "single":
                    add(family, model, target, [target], [target], [target], "target_val")
                    continue
                if family == "test_on_rest":
                    # the row of the train x test matrix where `target` is the training cell
                    add(family, model, target, [target], [target], others, "target_val")
                    continue
                if family == "size":
                    for fraction in settings["size"]["fractions"]:
                        add(family, model, target, [target], [target], [target], "target_val", float(fraction),
                            {"curve": "genes", "x": float(fraction)})  # fmt: skip
                    for n in settings["size"]["n_cells"]:
                        if n > len(cells):
                            continue
                        extra_cells = sorted(rng.choice(others, size=n - 1, replace=False).tolist()) if n > 1 else []
                        add(family, model, target, [target, *extra_cells], [target], [target], "target_val", 1.0,
                            {"curve": "cells", "x": n})  # fmt: skip
                    continue
                mode, kind = family.split("_", 1)
                chosen = {"all": others, "random": random_pick, **partners}[kind]
                if not chosen:
                    threshold = high if kind == "high" else somewhat
                    reason = f"no {kind} partner cells (threshold {threshold})"
                    skipped.append({"family": family, "model": model, "target": target, "reason": reason})
                    continue
                train = sorted(chosen + ([target] if mode == "inclusive" else []))
                for selection in settings["selection"]:
                    val = [target] if selection == "target_val" else train
                    add(family, model, target, train, val, [target], selection)
    return jobs, rows, skipped


# -- the plan: jobs, training samples and the estimated time, before running -----------------------
#: Assumed best epoch of a run with early stopping, as a fraction of ``max_epochs``: the run is taken
#: to stop ``patience`` epochs later (never after ``max_epochs``). An assumption, stated in the plan.
ASSUMED_BEST_FRACTION = 0.5
#: Test-split passes per job: the test stage and the test predictions written beside it.
TEST_PASSES = 2


@dataclass
class Throughput:
    """Measured speed of one model config on this machine.

    Attributes
    ----------
    train
        Training samples per second (forward, backward, optimizer step, data, Lightning's loop).
    eval
        Evaluation samples per second (validation batches, no gradients).
    setup
        Seconds from building the trainer, model and data to the first training batch: a job's
        fixed cost (imports excluded).
    """

    train: float
    eval: float
    setup: float = 0.0


@dataclass
class ExperimentPlan:
    """What an experiment will run, and how long one worker on this machine should take.

    Attributes
    ----------
    jobs
        One row per distinct training: ``job``, ``model``, cells, ``train_fraction``,
        ``train_genes``, ``val_genes``, ``test_genes``, ``epochs`` (expected), ``train_samples``
        (training genes x epochs), ``seconds`` (estimated).
    families
        One row per family: ``results`` (rows of results.csv), ``jobs`` (distinct trainings it uses;
        a training shared with another family counts in both), ``train_genes``, ``epochs``,
        ``train_samples``, ``seconds``.
    throughput
        Model name -> :class:`Throughput` used for the estimate.
    epochs_rule
        Model name -> how its expected epochs were chosen (the stated assumption).
    skipped
        Combinations with an empty training set.
    stacked
        On the stacked engine (``None`` on the sequential one): one worker's ``trainings`` (jobs
        that differ only in their validation cells, claimed together, train once), their estimated
        ``seconds`` and the ``stack_size`` assumed. The plan's own :attr:`seconds` is the
        sequential engine's: every distinct job trained on its own.
    """

    jobs: pd.DataFrame
    families: pd.DataFrame
    throughput: dict
    epochs_rule: dict
    skipped: list = field(default_factory=list)
    stacked: dict | None = None

    @property
    def distinct_jobs(self) -> int:
        """Trainings that will run (identical jobs of several families run once)."""
        return len(self.jobs)

    @property
    def train_samples(self) -> int:
        """Training samples over every distinct job (genes x expected epochs)."""
        return int(self.jobs.train_samples.sum()) if len(self.jobs) else 0

    @property
    def seconds(self) -> float:
        """Estimated seconds for one worker to run every distinct job."""
        return float(self.jobs.seconds.sum()) if len(self.jobs) else 0.0

    def text(self) -> str:
        """The plan as printed by ``deepchrome experiment --plan``."""
        from deepchrome.experiments.summary import markdown_table

        shown = self.families.assign(seconds=self.families.seconds.map(_duration))
        lines = [markdown_table(shown), ""]
        for model, speed in self.throughput.items():
            lines.append(f"{model}: {speed.train:,.0f} training samples/s, {speed.eval:,.0f} evaluation samples/s, "
                         f"{speed.setup:.1f} s setup per job; epochs: {self.epochs_rule[model]}")  # fmt: skip
        lines.append(
            f"{self.distinct_jobs} distinct trainings ({len(self.skipped)} combinations skipped), "
            f"{self.train_samples:,} training samples: about {_duration(self.seconds)} for one worker on this "
            "machine (workers on other machines share the jobs; imports and start-up excluded)"
        )
        if self.stacked is not None:
            claimed = "all at once" if self.stacked["stack_size"] is None else f"{self.stacked['stack_size']} at a time"
            lines.append(
                f"on the stacked engine, one worker (jobs claimed {claimed}; those differing only in validation "
                f"cells train once): {self.stacked['trainings']} trainings, about {_duration(self.stacked['seconds'])}"
            )
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def expected_epochs(config: dict, epochs: int | None = None) -> tuple[int, str]:
    """The epochs a training config is expected to run, and the rule that gave them.

    ``max_epochs`` without early stopping; with an ``EarlyStopping`` callback of patience ``p``,
    ``min(max_epochs, round(ASSUMED_BEST_FRACTION * max_epochs) + p)``: the best epoch is assumed
    at half of ``max_epochs``. ``epochs`` replaces the rule.
    """
    trainer = config.get("trainer") or {}
    max_epochs = trainer.get("max_epochs")
    max_epochs = 1000 if max_epochs in (None, -1) else int(max_epochs)  # Lightning's default
    if epochs is not None:
        return int(epochs), f"{epochs} (given)"
    patience = None
    for callback in trainer.get("callbacks") or []:
        if isinstance(callback, dict) and str(callback.get("class_path", "")).endswith("EarlyStopping"):
            patience = int((callback.get("init_args") or {}).get("patience", 3))
    if patience is None:
        return max_epochs, f"{max_epochs} (max_epochs, no early stopping)"
    guess = min(max_epochs, round(ASSUMED_BEST_FRACTION * max_epochs) + patience)
    return guess, (
        f"{guess} of at most {max_epochs} (assumed: best epoch at {ASSUMED_BEST_FRACTION:.0%} of max_epochs, "
        f"then early stopping's patience {patience}; the upper bound is {max_epochs})"
    )


def _gene_count(counts: dict, root: Path, cell: str, split: str, cache_dir) -> int:
    """Genes in one cell's split (read once through the cache, remembered in ``counts``)."""
    from deepchrome.data.cache import load_split

    key = (cell, split, cache_dir)
    if key not in counts:
        counts[key] = len(load_split(root, cell, split, cache_dir).gene_ids)
    return counts[key]


def _kept(n: int, fraction: float, n_train_genes: int | None) -> int:
    """Genes of one training cell that :class:`~deepchrome.data.HistoneDataModule` keeps."""
    keep = n if n_train_genes is None else min(n, int(n_train_genes))
    if fraction < 1:
        keep = min(keep, max(1, int(round(fraction * n))))
    return keep


def measure_throughput(model_config: dict, train_cells: list[str], batches: int = 100, warmup: int = 5,
                       threads: int | None = None) -> Throughput:  # fmt: skip
    """Time a few training and validation batches of a training config on this machine.

    The config is built as a job builds it (its model, batch size, data and torch threads), trained
    for ``warmup + batches`` batches of one epoch and validated on a few batches; nothing is written.

    Returns
    -------
    Throughput
        Samples per second (training after the warm-up batches, and validation) and the set-up time.
    """
    import tempfile
    import time

    import lightning.pytorch as pl

    from deepchrome.runs import instantiate, prepare_config
    from deepchrome.threads import ThreadsCallback

    class Timer(pl.Callback):
        def __init__(self) -> None:
            self.train: list[tuple[float, int, int]] = []  # (end time, samples, batch index in its epoch)

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            self.train.append((time.perf_counter(), len(batch[1]), batch_idx))

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deepchrome-plan-") as scratch:
        config, _ = prepare_config(copy.deepcopy(model_config), scratch, log=False)
        config["data"].update(train_cells=list(train_cells), val_cells=list(train_cells), test_cells=list(train_cells))
        # small training sets take several epochs to reach the batches wanted; validation is timed below
        config["trainer"].update(max_epochs=-1, max_steps=warmup + batches, limit_val_batches=0,
                                 num_sanity_val_steps=0, callbacks=[], enable_checkpointing=False,
                                 enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
        trainer, model, datamodule = instantiate(config)
        timer = Timer()
        trainer.callbacks.extend([ThreadsCallback(threads), timer])
        trainer.fit(model, datamodule=datamodule)
        eval_rate = _evaluation_rate(model.net, datamodule)
    # a batch's time: from the previous batch's end in the same epoch (data, step and loop overhead)
    steps = [(end - timer.train[i - 1][0], n) for i, (end, n, index) in enumerate(timer.train)
             if i >= max(1, warmup) and index > 0]  # fmt: skip
    if not steps:
        raise DeepChromeError(f"throughput: too few training batches in {', '.join(train_cells)} to time")
    train_rate = sum(n for _, n in steps) / sum(t for t, _ in steps)
    setup = timer.train[0][0] - start - steps[0][0]
    return Throughput(train=train_rate, eval=eval_rate, setup=max(0.0, setup))


def _evaluation_rate(net, datamodule, batches: int = 2) -> float:
    """Genes per second that validation scores: ``batches`` evaluation batches of the validation
    split (after one not timed), forward only under inference mode, as the fit validates.

    Timed directly rather than through a validation epoch: with a large training cell, the few
    training batches the throughput takes end before the first epoch (and its validation) would.
    """
    import time

    from deepchrome.training import predict_probabilities

    signals = datamodule.data["val"].signals
    size = datamodule.eval_batch_size
    predict_probabilities(net, signals[:size], datamodule.transform, size)  # warm-up
    timed = signals[: batches * size]
    start = time.perf_counter()
    predict_probabilities(net, timed, datamodule.transform, size)
    return len(timed) / max(time.perf_counter() - start, 1e-9)


@default_output
def plan_experiment(
    config: str | os.PathLike | dict,
    throughput: dict | Throughput | None = None,
    epochs: int | None = None,
    threads: int | None = None,
) -> ExperimentPlan:
    """The jobs an experiment will run, their training samples and the estimated time, without running it.

    Parameters
    ----------
    config
        Experiment config (path, packaged name or dict).
    throughput
        :class:`Throughput` per model name (or one for all); default: measured here with
        :func:`measure_throughput` on each model's first job's training cells (a few seconds each).
    epochs
        Expected epochs of every job, replacing the rule of :func:`expected_epochs`.
    threads
        torch threads for the measurement (default: as a job would choose them).

    Returns
    -------
    ExperimentPlan
        Per job and per family: training genes, expected epochs, training samples, seconds.
    """
    from deepchrome.experiments.config import load_experiment_config

    settings = load_experiment_config(config)
    correlation, _ = cell_correlations(settings["root"], settings["cells"], settings["expression_dir"])
    jobs, rows, skipped = plan_jobs(settings, correlation)
    cache = {}
    for model, model_config in settings["models"].items():
        cache[model] = (model_config.get("data") or {}).get("cache_dir")
    speeds: dict[str, Throughput] = {}
    rules: dict[str, str] = {}
    records = []
    counts: dict[tuple, int] = {}
    for number, job in enumerate(jobs):
        model = job["model"]
        model_config = settings["models"][model]
        n_epochs, rules[model] = expected_epochs(model_config, epochs)
        if model not in speeds and throughput is None:
            chosen = threads if threads is not None else settings.get("threads")
            speeds[model] = measure_throughput(model_config, job["train_cells"], threads=chosen)
        elif model not in speeds:
            speeds[model] = throughput[model] if isinstance(throughput, dict) else throughput
        genes = {split: [_gene_count(counts, settings["root"], cell, split, cache[model]) for cell in cells]
                 for split, cells in (("train", job["train_cells"]), ("valid", job["val_cells"]),
                                      ("test", job["test_cells"]))}  # fmt: skip
        n_train_genes = (model_config.get("data") or {}).get("n_train_genes")
        train_genes = sum(_kept(n, job["train_fraction"], n_train_genes) for n in genes["train"])
        val_genes, test_genes = sum(genes["valid"]), sum(genes["test"])
        speed = speeds[model]
        seconds = (speed.setup + train_genes * n_epochs / speed.train
                   + (val_genes * n_epochs + test_genes * TEST_PASSES) / speed.eval)  # fmt: skip
        records.append({"job": number, "model": model, "train_cells": "+".join(job["train_cells"]),
                        "val_cells": "+".join(job["val_cells"]), "test_cells": "+".join(job["test_cells"]),
                        "train_fraction": job["train_fraction"], "train_genes": train_genes, "val_genes": val_genes,
                        "test_genes": test_genes, "epochs": n_epochs, "train_samples": train_genes * n_epochs,
                        "seconds": seconds})  # fmt: skip
    table = pd.DataFrame(records, columns=["job", "model", "train_cells", "val_cells", "test_cells", "train_fraction",
                                           "train_genes", "val_genes", "test_genes", "epochs", "train_samples",
                                           "seconds"])  # fmt: skip
    stacked = _stacked_estimate(table, jobs, settings, speeds)
    families = []
    for family in settings["families"]:
        mine = [row for row in rows if row["family"] == family]
        used = table[table.job.isin({row["job"] for row in mine})]
        families.append({"family": family, "results": len(mine), "jobs": len(used),
                         "train_genes": int(used.train_genes.sum()),
                         "epochs": int(used.epochs.max()) if len(used) else 0,
                         "train_samples": int(used.train_samples.sum()),
                         "seconds": float(used.seconds.sum())})  # fmt: skip
    return ExperimentPlan(table, pd.DataFrame(families), speeds, rules, skipped, stacked)


def _stacked_estimate(table: pd.DataFrame, jobs: list[dict], settings: dict, speeds: dict) -> dict | None:
    """Trainings and seconds of one worker on the stacked engine (``None`` on the sequential engine).

    The worker claims ``stack_size`` jobs at a time in the job table's order (:func:`claim_order`);
    within a claim, jobs of one :func:`training_key` are one training that validates every job's
    cells each epoch. A group cut by a claim's end trains once per claim it falls in; several
    workers cut groups further. Networks the engine does not stack, and ``ReduceLROnPlateau``
    schedules, share nothing.
    """
    if settings.get("engine") != "stacked" or not len(table):
        return None
    from deepchrome.experiments.stackable import model_stackable, plateau_schedule

    size = settings.get("stack_size")
    shares = {name: model_stackable(config) is None and not plateau_schedule(config)
              for name, config in settings["models"].items()}  # fmt: skip
    keys = [training_key(job) if shares[job["model"]] else (number,) for number, job in enumerate(jobs)]
    order = claim_order(jobs)
    claims = [order] if size is None else [order[i : i + size] for i in range(0, len(order), size)]
    trainings, seconds = 0, 0.0
    for claim in claims:
        groups: dict[tuple, list[int]] = {}
        for number in claim:
            groups.setdefault(keys[number], []).append(number)
        for members in groups.values():
            rows = table.iloc[members]
            first = rows.iloc[0]
            speed = speeds[first.model]
            trainings += 1
            seconds += speed.setup + first.train_genes * first.epochs / speed.train
            seconds += float((rows.val_genes * rows.epochs + rows.test_genes * TEST_PASSES).sum()) / speed.eval
    return {"trainings": trainings, "seconds": seconds, "stack_size": size}


def training_key(job: dict) -> tuple:
    """What decides a job's training: model, training cells and fraction. Jobs with the same key differ
    only in their validation (and test) cells: the stacked engine trains them once
    (:mod:`deepchrome.experiments.stacked`, shared trainings) when they are claimed together."""
    return job["model"], tuple(job["train_cells"]), round(float(job["train_fraction"]), 6)


def claim_order(jobs: list[dict]) -> list[int]:
    """Job ids with the jobs that share a :func:`training_key` next to each other (groups in the
    order of their first job), the order in which the job table offers them to workers."""
    groups: dict[tuple, list[int]] = {}
    for number, job in enumerate(jobs):
        groups.setdefault(training_key(job), []).append(number)
    return [number for group in groups.values() for number in group]


def job_config(job: dict, settings: dict) -> dict:
    """The training config of one job: its model's config with the job's cells and fraction."""
    config = copy.deepcopy(settings["models"][job["model"]])
    data = config.setdefault("data", {})
    data.update(train_cells=job["train_cells"], val_cells=job["val_cells"], test_cells=job["test_cells"],
                train_fraction=job["train_fraction"])  # fmt: skip
    config.setdefault("trainer", {}).update(enable_progress_bar=False, enable_model_summary=False)
    return config
