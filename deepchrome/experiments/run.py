"""Running an experiment's jobs on a shared optuna storage (several workers, resumable)."""

from __future__ import annotations

import copy
import logging
import os
import time
from pathlib import Path

from deepchrome import files
from deepchrome.experiments.config import load_experiment_config
from deepchrome.experiments.plan import cell_correlations, plan_jobs
from deepchrome.experiments.summary import finished_jobs, write_results

log = logging.getLogger(__name__)


def run_job(job: dict, settings: dict, run_dir: Path) -> dict:
    """Train one job and test it on its test cells; return its metrics."""
    from deepchrome.runs import train

    config = copy.deepcopy(settings["models"][job["model"]])
    data = config.setdefault("data", {})
    data.update(train_cells=job["train_cells"], val_cells=job["val_cells"], test_cells=job["test_cells"],
                train_fraction=job["train_fraction"])  # fmt: skip
    start = time.perf_counter()
    config.setdefault("trainer", {}).update(enable_progress_bar=False, enable_model_summary=False)
    metrics = train(config, run_dir).metrics
    metrics["seconds"] = time.perf_counter() - start
    if len(job["test_cells"]) == 1:
        cell = job["test_cells"][0]
        metrics[f"test_{cell}_auroc"] = metrics["test_auroc"]
        metrics[f"test_{cell}_auprc"] = metrics["test_auprc"]
    return metrics


def run_experiment(
    config: str | os.PathLike | dict,
    out: str | os.PathLike | None = None,
    storage: str | None = None,
    n_jobs: int | None = None,
) -> dict:
    """Run (or join, or resume) an experiment and write its results, summary and figures.

    Returns
    -------
    dict
        Paths, job counts and the summary sentence.
    """
    import optuna

    from deepchrome.sweep import make_storage, retry_while_racing

    settings = load_experiment_config(config)
    out = Path(out or Path("runs") / "experiments" / settings["study_name"])
    out.mkdir(parents=True, exist_ok=True)
    correlation, source = cell_correlations(settings["root"], settings["cells"], settings["expression_dir"])
    with files.atomic_path(out / "cell_correlation.csv") as tmp:
        correlation.to_csv(tmp)
    jobs, rows, skipped = plan_jobs(settings, correlation)
    files.write_json(out / "jobs.json", {"jobs": jobs, "skipped": skipped}, indent=1)
    for item in skipped:
        log.warning("skipped %s for %s (%s): %s", item["family"], item["target"], item["model"], item["reason"])
    storage_url = storage or f"sqlite:///{(out / 'jobs.db').resolve()}"
    storage = make_storage(storage_url, heartbeat_interval=10)
    study = retry_while_racing(lambda: optuna.create_study(
        study_name=settings["study_name"], storage=storage,
        sampler=optuna.samplers.GridSampler({"job": list(range(len(jobs)))}, seed=settings["seed"]),
        direction="maximize", load_if_exists=True,
    ))  # fmt: skip
    done = finished_jobs(study)
    todo = [i for i in range(len(jobs)) if i not in done]
    print(f"{len(jobs)} jobs ({len(done)} finished before, {len(todo)} to run); correlations from {source}")
    if todo and n_jobs != 0:

        def objective(trial):
            job_id = trial.suggest_categorical("job", list(range(len(jobs))))
            finished = finished_jobs(study)
            if job_id in finished:  # another worker got there first
                trial.set_user_attr("duplicate_of", finished[job_id].number)
                return finished[job_id].value
            metrics = run_job(jobs[job_id], settings, out / "jobs" / f"{job_id:04d}-{trial.number}")
            trial.set_user_attr("metrics", {k: v for k, v in metrics.items() if isinstance(v, int | float)})
            return float(metrics["test_auroc"])

        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="jobs", unit="job")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study.optimize(objective, n_trials=n_jobs or len(todo), catch=(Exception,),
                       callbacks=[lambda s, t: bar.update(1)])  # fmt: skip
        bar.close()
    return write_results(study, jobs, rows, skipped, settings, correlation, source, out)
