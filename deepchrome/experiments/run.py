"""Running an experiment's jobs from its job table on a shared optuna storage (several workers, resumable)."""

from __future__ import annotations

import copy
import logging
import os
import time
from pathlib import Path

import pandas as pd

from deepchrome import files
from deepchrome.errors import DeepChromeError
from deepchrome.experiments.config import check_engine, load_experiment_config
from deepchrome.experiments.jobs import DONE, FAILED, PENDING, RUNNING, STATES, JobTable, plan_fingerprint, status_rows
from deepchrome.experiments.plan import cell_correlations, claim_order, job_config, plan_jobs
from deepchrome.experiments.summary import write_results
from deepchrome.messages import default_output
from deepchrome.names import check_name

log = logging.getLogger(__name__)


def run_job(job: dict, settings: dict, run_dir: Path) -> dict:
    """Train one job (sequential engine) and test it on its test cells; return its metrics."""
    from deepchrome.experiments.stacked import add_cell_metrics
    from deepchrome.runs import train

    config = job_config(job, settings)
    start = time.perf_counter()
    metrics = train(config, run_dir, threads=settings.get("threads")).metrics
    metrics["seconds"] = time.perf_counter() - start
    metrics["engine"] = "sequential"
    return add_cell_metrics(metrics, job)


@default_output
def run_experiment(
    config: str | os.PathLike | dict,
    out: str | os.PathLike | None = None,
    storage: str | None = None,
    n_jobs: int | None = None,
    threads: int | None = None,
    engine: str | None = None,
) -> dict:
    """Run (or join, or resume) an experiment and write its results, summary and figures.

    The jobs are a job table in the storage (:mod:`deepchrome.experiments.jobs`): every worker
    started on the same storage takes waiting jobs; a job that raised, or whose worker was
    interrupted or stopped sending heartbeats, is retried up to ``max_attempts`` times, then
    reported (``summary.md``, :func:`experiment_status`); a done job is never run again.

    Parameters
    ----------
    config
        Experiment config: a YAML path, a packaged name or a dict.
    out
        Output folder (default ``runs/experiments/<study_name>``; the default storage is
        ``<out>/jobs.db``).
    storage
        optuna storage URL shared by the workers (``sqlite:///``, ``postgresql://``, ``journal:///``).
    n_jobs
        Attempts this worker runs at most (``None``: until no job is pending or running; 0: only
        write the results).
    threads
        torch CPU threads per job (overrides the config's ``threads``; default: the usable cores
        shared among the training processes on this machine, see :mod:`deepchrome.threads`).
    engine
        ``stacked`` or ``sequential``: overrides the config's ``engine`` (see
        :mod:`deepchrome.experiments.stacked`).

    Returns
    -------
    dict
        Paths, job counts (``finished``, ``failed``) and the summary sentence.
    """
    settings = load_experiment_config(config)
    if threads is not None:
        from deepchrome.threads import check_threads

        settings["threads"] = check_threads(threads, "--threads")
    if engine is not None:
        settings["engine"] = check_engine(engine, "--engine")
    check_models(settings)
    correlation, source = cell_correlations(settings["root"], settings["cells"], settings["expression_dir"])
    jobs, rows, skipped = plan_jobs(settings, correlation)
    if out is None:  # the study name becomes a folder name: it must not lead elsewhere
        check_name(str(settings["study_name"]), "study_name", "study name")
    out = Path(out or Path("runs") / "experiments" / settings["study_name"])
    if storage:  # reached before the output folder is made: an unreachable database leaves nothing behind
        table = open_job_table(settings, jobs, storage)
        out.mkdir(parents=True, exist_ok=True)
    else:
        out.mkdir(parents=True, exist_ok=True)
        table = open_job_table(settings, jobs, f"sqlite:///{(out / 'jobs.db').resolve()}")
    with files.atomic_path(out / "cell_correlation.csv") as tmp:
        correlation.to_csv(tmp)
    files.write_json(out / "jobs.json", {"jobs": jobs, "skipped": skipped}, indent=1)
    for item in skipped:
        log.warning("skipped %s for %s (%s): %s", item["family"], item["target"], item["model"], item["reason"])
    before = table.states()
    done = sum(row.state == DONE for row in before)
    todo = sum(row.state in (PENDING, RUNNING) for row in before)
    print(f"{len(jobs)} jobs ({done} finished before, {todo} to run); correlations from {source}")
    if n_jobs != 0 and jobs:

        def train_job(job_id: int, number: int) -> dict:
            return run_job(jobs[job_id], settings, out / "jobs" / f"{job_id:04d}-{number}")

        def report(job_id: int, metrics: dict | None) -> None:
            outcome = f"test AUROC {metrics['test_auroc']:.4f}" if metrics else "failed"
            print(f"job {job_id}: {outcome}", flush=True)

        if settings["engine"] == "stacked":
            from deepchrome.experiments.stacked import work_stacked

            work_stacked(table, jobs, settings, out, train_job, max_jobs=n_jobs, report=report)
        else:
            table.work(train_job, max_jobs=n_jobs, report=report)
    after = table.states()
    failed = [row for row in status_rows(after, jobs) if row["state"] == FAILED]
    summary = write_results(table.study, jobs, rows, skipped, settings, correlation, source, out, failed_jobs=failed)
    return {**summary, "failed": len(failed), "states": {s: sum(r.state == s for r in after) for s in STATES}}


def check_models(settings: dict) -> None:
    """Build every model's trainer, model and data module once, so a bad class path or argument
    fails before anything is written (instead of failing every job).

    Raises
    ------
    DeepChromeError
        Naming the model, on one line.
    """
    import tempfile

    from deepchrome.runs import instantiate, prepare_config
    from deepchrome.sweep import build_error

    with tempfile.TemporaryDirectory(prefix="deepchrome-check-") as scratch:
        for name, model in settings["models"].items():
            config, _ = prepare_config(copy.deepcopy(model), scratch, log=False)
            config["data"]["train_cells"] = [settings["targets"][0]]
            try:
                instantiate(config)
            except Exception as exc:  # jsonargparse and the classes raise many kinds
                raise DeepChromeError(f"model {name!r} cannot be built: {build_error(exc)}") from None


def open_job_table(settings: dict, jobs: list[dict], storage_url: str, create: bool = True) -> JobTable:
    """The experiment's job table in ``storage_url`` (the study is created unless ``create`` is false).

    Raises
    ------
    DeepChromeError
        If the storage cannot be reached, the study is missing (``create=False``) or was planned
        from another config.
    """
    import optuna

    from deepchrome.sweep import make_storage, retry_while_racing

    storage = make_storage(storage_url, heartbeat_interval=settings["heartbeat_interval"],
                           grace_period=settings["grace_period"], retry=False)  # fmt: skip
    name = settings["study_name"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created..." is not news
    if create:
        study = retry_while_racing(lambda: optuna.create_study(
            study_name=name, storage=storage, direction="maximize", load_if_exists=True,
            sampler=optuna.samplers.RandomSampler(seed=settings["seed"]),  # never asked: every trial is enqueued
        ))  # fmt: skip
    else:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            raise DeepChromeError(f"no experiment {name!r} in {storage_url} yet: run it first") from None
    # each job's whole training config is part of the plan: a changed override (max_epochs, lr) must not
    # reuse results trained under the old one
    fingerprint = plan_fingerprint([{**job, "config": job_config(job, settings)} for job in jobs])
    return JobTable(study, jobs, settings["max_attempts"], adopt=create, fingerprint=fingerprint,
                    order=claim_order(jobs))  # fmt: skip


def experiment_status(
    config: str | os.PathLike | dict,
    out: str | os.PathLike | None = None,
    storage: str | None = None,
) -> pd.DataFrame:
    """The job table of an experiment, read without running or writing anything.

    Returns
    -------
    pandas.DataFrame
        One row per job: ``job``, ``state`` (PENDING, RUNNING, DONE, FAILED), ``attempts``,
        ``error`` (the last failed attempt's), ``trial``, ``worker``, model, cells, fraction.

    Raises
    ------
    DeepChromeError
        If the experiment has not been started in that storage.
    """
    settings = load_experiment_config(config)
    correlation, _ = cell_correlations(settings["root"], settings["cells"], settings["expression_dir"])
    jobs, _, _ = plan_jobs(settings, correlation)
    if out is None:  # the study name becomes a folder name: it must not lead elsewhere
        check_name(str(settings["study_name"]), "study_name", "study name")
    out = Path(out or Path("runs") / "experiments" / settings["study_name"])
    if storage is None:
        database = out / "jobs.db"
        if not database.is_file():
            raise DeepChromeError(f"no experiment in {out} yet ({database} does not exist): run it first")
        storage = f"sqlite:///{database.resolve()}"
    table = open_job_table(settings, jobs, storage, create=False)
    return pd.DataFrame(status_rows(table.states(), jobs))
