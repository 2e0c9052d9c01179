"""An experiment's job table, kept as enqueued trials in the experiment's optuna storage.

Every attempt at a job is one optuna trial with the fixed parameter ``job`` and the user attribute
``attempt`` (1, 2, ...), enqueued in state WAITING; no sampler chooses anything. A job is

- ``DONE`` once one of its attempts is COMPLETE with metrics (its result; never run again),
- ``RUNNING`` while an attempt runs (its worker sends heartbeats),
- ``PENDING`` while an attempt waits, or while it has failed fewer than ``max_attempts`` times
  (any worker then enqueues the next attempt),
- ``FAILED`` once ``max_attempts`` attempts failed; its last error is kept and reported. A failure
  that a retry would repeat (a :class:`~deepchrome.errors.DeepChromeError`: bad input such as a
  split of one label, or an undefined test AUROC) spends every attempt at once (user attribute
  ``spent``), so a rerun with a larger ``max_attempts`` still retries it.

An attempt fails when its training raises (the error is stored on the trial), when its worker is
interrupted, or when its worker stops sending heartbeats for the grace period (killed, machine
lost): the next worker that looks fails it (:func:`optuna.storages.fail_stale_trials`). Workers
race only through operations that storages make atomic: popping a WAITING trial (one worker wins)
and creating trials. Two workers may both enqueue attempt ``k`` of a job; only the lower-numbered
trial runs, the other is closed as PRUNED with ``closed`` saying why, so a job runs at most once
per attempt and never after it is done.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from deepchrome.errors import DeepChromeError, Interrupted, interruption_reason

log = logging.getLogger(__name__)

PENDING, RUNNING, DONE, FAILED = "PENDING", "RUNNING", "DONE", "FAILED"
STATES = (PENDING, RUNNING, DONE, FAILED)
#: Study user attribute: a fingerprint of the job plan the study's trials refer to.
PLAN_ATTR = "deepchrome_plan"
LOST = "worker stopped sending heartbeats (killed or lost) while running it"


@dataclass
class JobState:
    """One row of the job table.

    Attributes
    ----------
    job
        The job id (index into the plan).
    state
        ``PENDING``, ``RUNNING``, ``DONE`` or ``FAILED``.
    attempts
        Attempts started (running, done or failed).
    error
        The last failed attempt's error (``None`` if none failed).
    trial
        The trial holding the result (DONE) or the latest attempt.
    worker
        ``host:pid`` of the latest attempt's worker.
    """

    job: int
    state: str
    attempts: int
    error: str | None = None
    trial: int | None = None
    worker: str | None = None


def plan_fingerprint(jobs: list[dict]) -> str:
    """A short hash of the job plan (each job's cells, model and, where given, its training config):
    a study's job ids and results only mean something for the plan that made them."""
    return hashlib.sha256(json.dumps(jobs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _done(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.COMPLETE and "metrics" in trial.user_attrs


def _attempt(trial: FrozenTrial) -> int | None:
    value = trial.user_attrs.get("attempt")
    return int(value) if value is not None else None


def job_states(trials: list[FrozenTrial], n_jobs: int, max_attempts: int) -> list[JobState]:
    """The job table from a study's trials (see the module docstring for the states)."""
    by_job: dict[int, list[FrozenTrial]] = {job: [] for job in range(n_jobs)}
    for trial in sorted(trials, key=lambda t: t.number):
        job = trial.params.get("job")
        if job in by_job and trial.state != TrialState.PRUNED:  # PRUNED: closed duplicates
            by_job[job].append(trial)
    table = []
    for job, attempts in by_job.items():
        started = [t for t in attempts if t.state in (TrialState.RUNNING, TrialState.FAIL) or _done(t)]
        used = sum(int(t.user_attrs.get("spent", 1)) for t in started)  # a final failure spends all
        failed = [t for t in started if t.state == TrialState.FAIL]
        error = (failed[-1].user_attrs.get("error") or LOST) if failed else None
        latest = started[-1] if started else None
        done = [t for t in attempts if _done(t)]
        if done:
            state, latest = DONE, done[0]
        elif any(t.state == TrialState.RUNNING for t in attempts):
            state = RUNNING
        elif any(t.state == TrialState.WAITING for t in attempts) or used < max_attempts:
            state = PENDING
        else:
            state = FAILED
        table.append(JobState(job, state, len(started), error, latest.number if latest else None,
                              latest.user_attrs.get("worker") if latest else None))  # fmt: skip
    return table


def _test_auroc(metrics: dict) -> float:
    """A finished job's test AUROC, the trial's value.

    Raises
    ------
    DeepChromeError
        If it is undefined (every test gene of one label: the job's metrics say null).
    """
    value = metrics.get("test_auroc")
    value = float("nan") if value is None else float(value)
    if value != value:  # NaN
        raise DeepChromeError("test AUROC is undefined: the test genes hold one label (see the job's warning)")
    return value


class _Heartbeat:
    """Records a running trial's heartbeat now and every interval in a thread, until the block ends."""

    def __init__(self, storage, trial_id: int) -> None:
        self.storage = storage
        self.trial_id = trial_id
        interval = storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception as exc:  # a missed beat is retried; the database may be busy for a moment
                log.debug("heartbeat of trial %d failed: %s", self.trial_id, exc)

    def __enter__(self) -> _Heartbeat:
        if self.interval:
            self.storage.record_heartbeat(self.trial_id)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()


class JobTable:
    """The jobs of one experiment study: enqueue attempts, claim one, record its outcome.

    Parameters
    ----------
    study
        The experiment's optuna study (any storage; heartbeats need an RDB or
        :class:`deepchrome.sweep.HeartbeatJournalStorage`).
    jobs
        The plan's jobs (the trial parameter ``job`` indexes it).
    max_attempts
        Attempts per job before it is reported FAILED.
    adopt
        Record the plan's fingerprint on a study that has none (a new study); ``False`` only reads.
    fingerprint
        The plan's fingerprint (default: :func:`plan_fingerprint` of ``jobs``).
    order
        Job ids in the order their attempts are enqueued, so claimed (default: by id). The
        experiment puts jobs that can share a training next to each other, so a stacked worker
        claiming ``stack_size`` jobs at a time gets them together.
    """

    def __init__(self, study: optuna.Study, jobs: list[dict], max_attempts: int = 3, adopt: bool = True,
                 fingerprint: str | None = None, order: list[int] | None = None) -> None:  # fmt: skip
        self.study = study
        self.jobs = jobs
        self.order = list(range(len(jobs))) if order is None else list(order)
        if sorted(self.order) != list(range(len(jobs))):
            raise ValueError(f"order must list each of the {len(jobs)} job ids once")
        self.fingerprint = fingerprint or plan_fingerprint(jobs)
        self.max_attempts = max_attempts
        self.storage = study._storage  # popping a WAITING trial is a storage operation
        self.distribution = CategoricalDistribution(list(range(len(jobs))))
        self.check_plan(adopt)

    def check_plan(self, adopt: bool = True) -> None:
        """Record the plan's fingerprint on the study, or refuse a study made for another plan.

        Raises
        ------
        DeepChromeError
            If the study's jobs were planned from another config.
        """
        fingerprint = self.fingerprint
        have = self.study.user_attrs.get(PLAN_ATTR)
        if have is None and adopt:
            self.study.set_user_attr(PLAN_ATTR, fingerprint)
        elif have != fingerprint:
            raise DeepChromeError(
                f"study {self.study.study_name!r} holds the jobs of another plan (the config changed since it was "
                "made); use another --out, --storage or study_name"
            )

    def trials(self) -> list[FrozenTrial]:
        """The study's trials, read now."""
        return self.study.get_trials(deepcopy=False)

    def states(self) -> list[JobState]:
        """The job table as it is now."""
        return job_states(self.trials(), len(self.jobs), self.max_attempts)

    def sync(self) -> list[JobState]:
        """Fail attempts whose worker stopped sending heartbeats; enqueue the next attempt of every
        PENDING job that has none waiting. Returns the table."""
        if isinstance(self.storage, BaseHeartbeat) and self.storage.get_heartbeat_interval():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
        trials = self.trials()
        table = job_states(trials, len(self.jobs), self.max_attempts)
        waiting = {t.params.get("job") for t in trials if t.state == TrialState.WAITING}
        enqueued = False
        for row in (table[job] for job in self.order):
            if row.state == PENDING and row.job not in waiting:
                # Attempt numbers come from the table: a worker with an older view enqueues an attempt
                # that exists already, and that twin is closed when claimed.
                self.study.add_trial(optuna.trial.create_trial(
                    state=TrialState.WAITING, params={"job": row.job}, distributions={"job": self.distribution},
                    user_attrs={"attempt": row.attempts + 1},
                ))  # fmt: skip
                enqueued = True
        return self.states() if enqueued else table

    def _why_not(self, trial: FrozenTrial) -> str | None:
        """Why a claimed trial must not run (``None``: it is the job's current attempt)."""
        job, attempt = trial.params.get("job"), _attempt(trial)
        if job is None or attempt is None:
            return "not a job attempt"
        same_job = [t for t in self.trials() if t.params.get("job") == job and t.number != trial.number]
        done = [t for t in same_job if _done(t)]
        if done:
            return f"job {job} is done (trial {done[0].number})"
        twins = [t.number for t in same_job
                 if _attempt(t) == attempt and t.number < trial.number and t.state != TrialState.PRUNED]  # fmt: skip
        if twins:
            return f"duplicate of trial {twins[0]} (attempt {attempt} of job {job})"
        if attempt > self.max_attempts:
            return f"job {job} is out of attempts ({self.max_attempts})"
        return None

    def claim(self) -> FrozenTrial | None:
        """Take the next waiting attempt (RUNNING, heartbeat recorded); ``None`` if none is waiting."""
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        for trial in sorted(waiting, key=lambda t: t.number):
            try:
                if not self.storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                    continue  # another worker took it
            except UpdateFinishedTrialError:
                continue
            reason = self._why_not(trial)
            if reason is None:
                return self.storage.get_trial(trial._trial_id)
            try:
                self.storage.set_trial_user_attr(trial._trial_id, "closed", reason)
                self.storage.set_trial_state_values(trial._trial_id, state=TrialState.PRUNED)
            except UpdateFinishedTrialError:
                pass  # another worker finished it meanwhile (failed it as stale): nothing left to close
        return None

    def run(self, trial: FrozenTrial, work: Callable[[int, int], dict]) -> dict | None:
        """Run ``work(job, trial_number)`` for a claimed attempt with heartbeats; record its metrics
        (COMPLETE, valued by ``test_auroc``) or its error (FAIL). Returns the metrics, or ``None``.

        An interrupt (Ctrl-C, or Lightning's exit after one) fails the attempt, then propagates as
        :class:`KeyboardInterrupt`.
        """
        job = trial.params["job"]
        trial_id = trial._trial_id
        self.storage.set_trial_user_attr(trial_id, "worker", f"{os.uname().nodename}:{os.getpid()}")
        try:
            with _Heartbeat(self.storage, trial_id):
                metrics = work(job, trial.number)
            value = _test_auroc(metrics)
        except Exception as exc:
            self._fail_on(trial, exc)
            return None
        except (KeyboardInterrupt, SystemExit) as exc:
            self._fail(trial, interruption_reason(exc))
            raise _job_interrupted(exc) from exc
        return self._complete(trial, metrics, value)

    def _complete(self, trial: FrozenTrial, metrics: dict, value: float) -> dict | None:
        try:
            numbers = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
            self.storage.set_trial_user_attr(trial._trial_id, "metrics", numbers)
            self.storage.set_trial_state_values(trial._trial_id, state=TrialState.COMPLETE, values=[value])
        except UpdateFinishedTrialError:
            log.warning("job %d finished after another worker declared its worker lost; this result is dropped",
                        trial.params["job"])  # fmt: skip
            return None
        return metrics

    def run_many(
        self, trials: list[FrozenTrial], work: Callable[[list[int], list[int]], list[dict | Exception]]
    ) -> list[dict | None]:
        """Like :meth:`run` for several claimed attempts trained together:
        ``work(jobs, trial_numbers)`` returns each one's metrics or the exception that failed it;
        each is recorded on its own (an exception from ``work`` itself fails them all)."""
        import contextlib

        worker = f"{os.uname().nodename}:{os.getpid()}"
        for trial in trials:
            self.storage.set_trial_user_attr(trial._trial_id, "worker", worker)
        try:
            with contextlib.ExitStack() as beats:
                for trial in trials:
                    beats.enter_context(_Heartbeat(self.storage, trial._trial_id))
                outcomes = work([t.params["job"] for t in trials], [t.number for t in trials])
        except Exception as exc:
            for trial in trials:
                self._fail_on(trial, exc)
            return [None] * len(trials)
        except (KeyboardInterrupt, SystemExit) as exc:
            for trial in trials:
                self._fail(trial, interruption_reason(exc))
            raise _job_interrupted(exc) from exc
        results = []
        for trial, outcome in zip(trials, outcomes, strict=True):
            try:
                if isinstance(outcome, Exception):
                    raise outcome
                value = _test_auroc(outcome)
            except Exception as error:
                self._fail_on(trial, error)
                results.append(None)
            else:
                results.append(self._complete(trial, outcome, value))
        return results

    def _fail_on(self, trial: FrozenTrial, exc: Exception) -> None:
        """Record an attempt that raised ``exc``; bad input (a DeepChromeError) is not retried."""
        self._fail(trial, f"{exc.__class__.__name__}: {exc}"[:500], final=isinstance(exc, DeepChromeError))

    def _fail(self, trial: FrozenTrial, error: str, final: bool = False) -> None:
        """Record a failed attempt; a ``final`` one (a retry would repeat it) spends every attempt."""
        log.warning("job %d, attempt %s failed%s: %s", trial.params["job"], trial.user_attrs.get("attempt"),
                    " (not retried: a retry would fail the same way)" if final else "", error)  # fmt: skip
        try:
            self.storage.set_trial_user_attr(trial._trial_id, "error", error)
            if final:
                self.storage.set_trial_user_attr(trial._trial_id, "spent", self.max_attempts)
            self.storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            pass  # already failed as stale by another worker

    def work(
        self,
        run_job: Callable[[int, int], dict],
        max_jobs: int | None = None,
        poll: float | None = None,
        report: Callable[[int, dict | None], None] | None = None,
    ) -> int:
        """The worker loop: claim and run attempts until no job is pending or running.

        While other workers' jobs run and nothing waits, the worker polls every ``poll`` seconds
        (default: the heartbeat interval, else 5 s): if such a worker dies, its job is retried here.

        Parameters
        ----------
        run_job
            ``run_job(job, trial_number)`` trains the job and returns its metrics.
        max_jobs
            Attempts this worker runs at most (``None``: no limit).
        report
            Called with ``(job, metrics or None)`` after each attempt.

        Returns
        -------
        int
            Attempts this worker ran.
        """
        interval = self.storage.get_heartbeat_interval() if isinstance(self.storage, BaseHeartbeat) else None
        poll = poll or interval or 5
        ran = 0
        while max_jobs is None or ran < max_jobs:
            table = self.sync()
            trial = self.claim()
            if trial is None:
                if not any(row.state in (PENDING, RUNNING) for row in table):
                    break
                time.sleep(poll)
                continue
            metrics = self.run(trial, run_job)
            ran += 1
            if report is not None:
                report(trial.params["job"], metrics)
        return ran


def status_rows(table: list[JobState], jobs: list[dict]) -> list[dict]:
    """The job table with each job's model, cells and fraction, for printing or a DataFrame."""
    rows = []
    for row in table:
        job = jobs[row.job]
        rows.append({**asdict(row), "model": job["model"], "train_cells": "+".join(job["train_cells"]),
                     "val_cells": "+".join(job["val_cells"]), "test_cells": "+".join(job["test_cells"]),
                     "train_fraction": job["train_fraction"]})  # fmt: skip
    return rows


def _job_interrupted(exc: BaseException) -> Interrupted:
    """The interruption a worker re-raises: the signal that stopped the job (SIGINT for Lightning's
    ``sys.exit`` on Ctrl-C), with what the experiment kept."""
    number = exc.signal if isinstance(exc, Interrupted) else signal.SIGINT
    return Interrupted(number, "the running job is marked failed; the same command continues the experiment")
