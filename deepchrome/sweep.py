"""``deepchrome sweep``: optuna hyperparameter sweeps on a persistent, shareable study.

A sweep config is the base training config (the YAML ``deepchrome fit`` takes) plus a search
space over dotted config paths::

    base_config: ../deepchrome_fast.yaml      # relative to this file
    overrides: {trainer.max_epochs: 20}       # fixed changes to the base config (optional)
    search_space:
      model.net.init_args.dropout: {float: [0.1, 0.7]}
      model.optimizer.init_args.lr: {float: [1.0e-4, 1.0e-1], log: true}
      model.net.init_args.channels: {int: [16, 64], step: 16}
      model.net.init_args.pool: {categorical: [max, avg]}
    objective: val_auroc                      # or test_auroc, val_auprc, ...
    direction: maximize
    sampler: {name: tpe, seed: 0}             # tpe | random | grid
    pruner: {name: median, n_warmup_steps: 3} # median | hyperband | none
    study_name: cnn-e003

Every worker started with the same study name and storage joins the study (SQLite file in the
sweep folder by default; ``--storage postgresql://...`` for several machines, or
``journal:///shared/path.log``). Workers never repeat each other's draws: a TPE or random sampler
is seeded per trial from (``seed``, trial number), and trial numbers are unique in a study. Every
storage records heartbeats (the journal file too, see :class:`HeartbeatJournalStorage`); a worker
that stops sending them (killed, machine lost) has its trial marked failed, and
:class:`optuna.storages.RetryHeartbeatStaleTrialCallback` queues it again for any worker.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import yaml
from optuna.storages import JournalStorage
from optuna.storages._heartbeat import BaseHeartbeat

from deepchrome import files
from deepchrome.config import apply_overrides, check_path, check_setting_types, load_config, read_settings, set_path
from deepchrome.errors import DeepChromeError, Interrupted, interruption_reason
from deepchrome.messages import default_output
from deepchrome.names import check_name

log = logging.getLogger(__name__)
DISTRIBUTIONS = ("float", "int", "categorical")
#: Validation metrics a trial can be scored by (its value at the best checkpoint's epoch).
OBJECTIVES = ("val_auroc", "val_auprc", "val_loss")
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")


# -- config handling ------------------------------------------------------------------------------
SWEEP_KEYS = ("base_config", "overrides", "search_space", "objective", "direction", "sampler", "pruner",
              "study_name", "heartbeat_interval", "grace_period", "max_retry", "threads")  # fmt: skip


def load_sweep_config(source: str | os.PathLike | dict) -> dict:
    """Read and validate a sweep config (a file, a packaged name such as ``sweeps/cnn``, or a dict);
    load its base config.

    Paths in a sweep file (``base_config``, input paths in ``overrides``) resolve relative to that
    file; in a dict, relative to the working directory.

    Returns
    -------
    dict
        The sweep settings with ``base`` (the base training config as a dict, overrides applied).

    Raises
    ------
    DeepChromeError
        For a missing file, an unknown key or config path, an invalid distribution, a test-split objective.
    """
    sweep, where, folder = read_settings(source, SWEEP_KEYS, "sweep config")
    check_setting_types(sweep, {"base_config": "path or mapping", "search_space": "mapping", "overrides": "mapping",
                                "objective": "text", "direction": "text", "sampler": "mapping", "pruner": "mapping",
                                "study_name": "text"}, where)  # fmt: skip
    if "base_config" not in sweep or "search_space" not in sweep:
        raise DeepChromeError(f"{where}: needs base_config and search_space")
    base_source = sweep["base_config"]
    if not isinstance(base_source, dict):
        candidate = folder / str(base_source)
        base_source = candidate if candidate.is_file() else base_source  # else a packaged name
    base = load_config(base_source)
    apply_overrides(base, sweep.get("overrides"), f"{where}: overrides", folder)
    space = sweep["search_space"] or {}
    if not space:
        raise DeepChromeError(f"{where}: search_space is empty")
    for dotted, spec in space.items():
        check_path(base, dotted, f"{where}: search_space")
        check_distribution(dotted, spec, f"{where}: search_space")
    direction = sweep.get("direction", "maximize")
    if direction not in ("maximize", "minimize"):
        raise DeepChromeError(f"{where}: direction must be maximize or minimize, got {direction!r}")
    objective = sweep.get("objective", "val_auroc")
    if not isinstance(objective, str) or objective.startswith("test"):
        raise DeepChromeError(
            f"{where}: objective {objective!r} is not allowed: choosing a model by test-split metrics leaks the test "
            f"labels into the selection; use a validation metric ({', '.join(OBJECTIVES)})"
        )
    if objective not in OBJECTIVES:
        raise DeepChromeError(f"{where}: unknown objective {objective!r} (available: {', '.join(OBJECTIVES)})")
    sampler = sweep.get("sampler") or {"name": "tpe", "seed": 0}
    pruner = sweep.get("pruner") or {"name": "median"}
    make_sampler(sampler, space, f"{where}: sampler")  # built once here to find bad names and options
    make_pruner(pruner, f"{where}: pruner")
    storage = {"heartbeat_interval": sweep.get("heartbeat_interval", 10), "grace_period": sweep.get("grace_period"),
               "max_retry": sweep.get("max_retry", 2)}  # fmt: skip
    check_storage_settings(storage, where)
    from deepchrome.threads import check_threads

    return {
        "threads": check_threads(sweep.get("threads"), f"{where}: threads"),
        "base": base,
        "base_path": str(base_source) if not isinstance(base_source, dict) else None,
        "search_space": space,
        "objective": objective,
        "direction": direction,
        "sampler": sampler,
        "pruner": pruner,
        "study_name": sweep.get("study_name", Path(str(source)).stem if not isinstance(source, dict) else "sweep"),
        **storage,
    }


def check_storage_settings(settings: dict, where: str) -> None:
    """Raise unless ``heartbeat_interval`` (s), ``grace_period`` (s, or null), ``max_retry`` and
    ``max_attempts``, where present, are whole numbers in range."""
    for key, smallest in (("heartbeat_interval", 1), ("grace_period", 1), ("max_retry", 0), ("max_attempts", 1)):
        value = settings.get(key)
        if key not in settings or (value is None and key == "grace_period"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
            raise DeepChromeError(f"{where}: {key} must be a whole number >= {smallest}, got {value!r}")


def check_trial_configs(settings: dict, where: str = "sweep config") -> None:
    """Build the base config's trainer, model and data module, and again with each categorical value
    and each end of every numeric range, so a bad class path or value fails before anything is written.

    Raises
    ------
    DeepChromeError
        Naming the search-space entry and value that cannot be built, on one line.
    """
    import tempfile

    from deepchrome.runs import instantiate, prepare_config

    candidates: list[tuple[str, object]] = [("", None)]
    for dotted, spec in settings["search_space"].items():
        if "categorical" in spec:
            candidates += [(dotted, value) for value in spec["categorical"]]
        else:
            kind = "int" if "int" in spec else "float"
            candidates += [(dotted, spec[kind][0]), (dotted, spec[kind][1])]
    with tempfile.TemporaryDirectory(prefix="deepchrome-check-") as scratch:
        for dotted, value in candidates:
            config = copy.deepcopy(settings["base"])
            if dotted:
                set_path(config, dotted, value)
            config, _ = prepare_config(config, scratch, log=False)
            try:
                instantiate(config)
            except Exception as exc:  # jsonargparse and the classes raise many kinds
                what = f"search_space: {dotted} = {value!r}" if dotted else "base config"
                raise DeepChromeError(f"{where}: {what} cannot be built: {build_error(exc)}") from None


def build_error(exc: BaseException) -> str:
    """The line of a config-building error that says what is wrong (jsonargparse nests the reason)."""
    text = str(exc).strip()
    if isinstance(exc, DeepChromeError):
        return text.removeprefix("config: ")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    key = lines[0] if lines and lines[0].startswith("Parser key") else ""
    for number, line in enumerate(lines):
        reason = line.removeprefix("- ")
        if line.startswith("- ") and "NoneType" not in reason and not reason.startswith("Expected a path"):
            if reason.endswith(":") and number + 1 < len(lines):
                reason = f"{reason} {lines[number + 1]}"
            return f"{key} {reason}".strip()[:300]
    return (lines[0] if lines else exc.__class__.__name__)[:300]


def check_distribution(dotted: str, spec, where: str) -> None:
    """Raise for anything but ``{float|int: [low, high], log?, step?}`` or ``{categorical: [...]}``."""
    if not isinstance(spec, dict):
        raise DeepChromeError(f"{where}: {dotted}: expected a mapping like {{float: [low, high]}}, got {spec!r}")
    kinds = [k for k in DISTRIBUTIONS if k in spec]
    if len(kinds) != 1:
        raise DeepChromeError(f"{where}: {dotted}: give exactly one of {', '.join(DISTRIBUTIONS)} (got {list(spec)})")
    kind = kinds[0]
    values = spec[kind]
    if kind == "categorical":
        if not isinstance(values, list) or not values:
            raise DeepChromeError(f"{where}: {dotted}: categorical needs a non-empty list")
        odd = [v for v in values if v is not None and not isinstance(v, str | int | float | bool)]
        if odd:
            raise DeepChromeError(
                f"{where}: {dotted}: categorical values must be strings, numbers, booleans or null (got {odd[0]!r})"
            )
        return
    if not isinstance(values, list) or len(values) != 2 or not all(isinstance(v, int | float) for v in values):
        raise DeepChromeError(f"{where}: {dotted}: {kind} needs [low, high], got {values!r}")
    low, high = values
    if low > high:
        raise DeepChromeError(f"{where}: {dotted}: low {low} > high {high}")
    if spec.get("log") and low <= 0:
        raise DeepChromeError(f"{where}: {dotted}: log scale needs low > 0, got {low}")


def suggest(trial, space: dict) -> dict:
    """Sample every dotted path of ``space`` with ``trial``."""
    params = {}
    for dotted, spec in space.items():
        if "categorical" in spec:
            params[dotted] = trial.suggest_categorical(dotted, spec["categorical"])
        elif "int" in spec:
            low, high = spec["int"]
            params[dotted] = trial.suggest_int(dotted, int(low), int(high), step=int(spec.get("step", 1)),
                                               log=bool(spec.get("log", False)))  # fmt: skip
        else:
            low, high = spec["float"]
            params[dotted] = trial.suggest_float(dotted, float(low), float(high), log=bool(spec.get("log", False)),
                                                 step=spec.get("step"))  # fmt: skip
    return params


# -- optuna objects -------------------------------------------------------------------------------
class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A sampler that draws each trial with a fresh inner sampler seeded from (``seed``, trial number).

    Trial numbers are unique within a study, so workers sharing a study never draw from the same
    random state (one ``TPESampler(seed=0)`` per worker drew identical parameters on every ask), and
    one worker's sweep is still reproducible. ``seed=None`` leaves every draw unseeded.

    Parameters
    ----------
    build
        ``build(seed)`` returns the inner sampler (e.g. ``lambda s: optuna.samplers.TPESampler(seed=s)``).
    seed
        The sweep's seed.
    """

    def __init__(self, build, seed: int | None) -> None:
        self._build = build
        self._seed = seed
        self._samplers: dict[int, optuna.samplers.BaseSampler] = {}

    def seed_of(self, number: int) -> int | None:
        """The inner sampler's seed for trial ``number``."""
        if self._seed is None:
            return None
        return int(np.random.SeedSequence([int(self._seed), number]).generate_state(1)[0])

    def _inner(self, trial) -> optuna.samplers.BaseSampler:
        sampler = self._samplers.get(trial._trial_id)
        if sampler is None:
            sampler = self._samplers[trial._trial_id] = self._build(self.seed_of(trial.number))
        return sampler

    def infer_relative_search_space(self, study, trial) -> dict:
        """The inner sampler's relative search space."""
        return self._inner(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space: dict) -> dict:
        """The inner sampler's relative sample."""
        return self._inner(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name: str, param_distribution):
        """The inner sampler's independent sample."""
        return self._inner(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        """Build the trial's inner sampler."""
        self._inner(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        """Let the inner sampler finish the trial, then drop it."""
        self._inner(trial).after_trial(study, trial, state, values)
        self._samplers.pop(trial._trial_id, None)

    def reseed_rng(self) -> None:
        """Unseed (optuna calls this for threads of one process, which share trial numbers' seeds)."""
        self._seed = None


def make_sampler(spec: dict, space: dict, where: str = "sampler"):
    """TPE (default) or random, seeded per trial (:class:`TrialSeededSampler`), or grid.

    The grid needs no per-trial seed: optuna's grid sampler gives trial ``n`` grid point ``n``, so
    workers repeat a point only once the grid is exhausted. Options other than ``name`` and ``seed``
    go to the optuna class (``n_startup_trials`` for TPE, ...).

    Raises
    ------
    DeepChromeError
        For an unknown sampler or option, or a grid over a non-categorical entry.
    """
    if not isinstance(spec, dict) or spec.get("name", "tpe") not in SAMPLERS:
        name = spec.get("name") if isinstance(spec, dict) else spec
        raise DeepChromeError(f"{where}: unknown sampler {name!r} (available: {', '.join(SAMPLERS)})")
    name = spec.get("name", "tpe")
    seed = spec.get("seed", 0)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise DeepChromeError(f"{where}: seed must be a whole number or null, got {seed!r}")
    options = {k: v for k, v in spec.items() if k not in ("name", "seed")}
    if name == "grid":
        grid = {}
        for dotted, distribution in space.items():
            if "categorical" not in distribution:
                raise DeepChromeError(f"{where}: the grid sampler needs categorical entries; {dotted} is not")
            grid[dotted] = distribution["categorical"]
        return _built(lambda: optuna.samplers.GridSampler(grid, seed=seed, **options), where)
    cls = optuna.samplers.TPESampler if name == "tpe" else optuna.samplers.RandomSampler
    _built(lambda: cls(seed=seed, **options), where)
    return TrialSeededSampler(lambda trial_seed: cls(seed=trial_seed, **options), seed)


def _built(build, where: str):
    try:
        return build()
    except (TypeError, ValueError) as exc:
        raise DeepChromeError(f"{where}: {exc}") from None


def make_pruner(spec: dict, where: str = "pruner"):
    """Median (default), Hyperband or no pruning; other keys are the optuna class's options.

    Raises
    ------
    DeepChromeError
        For an unknown pruner or option.
    """
    name = spec.get("name", "median") if isinstance(spec, dict) else spec
    if name not in PRUNERS:
        raise DeepChromeError(f"{where}: unknown pruner {name!r} (available: {', '.join(PRUNERS)})")
    options = {k: v for k, v in spec.items() if k != "name"}
    if name == "median":
        return _built(lambda: optuna.pruners.MedianPruner(**{"n_warmup_steps": 2, **options}), where)
    if name == "hyperband":
        return _built(lambda: optuna.pruners.HyperbandPruner(**options), where)
    return _built(lambda: optuna.pruners.NopPruner(**options), where)


#: Trial system attribute holding a journal worker's last heartbeat (seconds since the epoch).
HEARTBEAT_ATTR = "deepchrome_heartbeat"


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """optuna's journal storage with heartbeats, so killed workers' trials are found and retried.

    optuna's own journal storage has no heartbeat: a killed worker's trial stays RUNNING forever.
    Here a running trial's worker appends its heartbeat to the journal every ``heartbeat_interval``
    seconds; a RUNNING trial whose last heartbeat (or start) is more than ``grace_period`` seconds
    old is stale, and workers fail it and call ``stale_callback`` like :class:`optuna.storages.RDBStorage`.
    The ages compare the workers' clocks: keep machines that share a journal file in time (NTP).
    """

    def __init__(self, backend, heartbeat_interval: int, grace_period: int | None = None, stale_callback=None):
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.stale_callback = stale_callback

    def record_heartbeat(self, trial_id: int) -> None:
        """Append the time to the trial's heartbeat (nothing once the trial has finished)."""
        try:
            if self.get_trial(trial_id).state == optuna.trial.TrialState.RUNNING:
                self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
        except (KeyError, optuna.exceptions.UpdateFinishedTrialError):
            pass  # finished (or failed as stale) between the check and the write

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        grace = self.grace_period or 2 * self.heartbeat_interval
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            start = trial.datetime_start.timestamp() if trial.datetime_start else now
            if now - float(trial.system_attrs.get(HEARTBEAT_ATTR, start)) > grace:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        """Seconds between heartbeats."""
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self):
        """Called with each trial found stale (optuna's retry callback for sweeps)."""
        return self.stale_callback


def make_storage(
    url: str,
    heartbeat_interval: int | None = 10,
    grace_period: int | None = None,
    max_retry: int = 2,
    retry: bool = True,
):
    """An optuna storage with heartbeats and, with ``retry``, a retry of each killed worker's trial.

    ``sqlite:///...`` or ``postgresql://...`` (RDBStorage, heartbeats in the database) or
    ``journal:///path`` (a journal file for shared disks, :class:`HeartbeatJournalStorage`). A
    trial whose worker sent no heartbeat for ``grace_period`` seconds (default twice the interval)
    is marked failed; with ``retry`` optuna queues it again, up to ``max_retry`` times.

    Raises
    ------
    DeepChromeError
        If the storage cannot be reached.
    """
    retry_class, argument = _retry_callback()
    stale = retry_class(max_retry=max_retry) if retry and heartbeat_interval else None
    if url.startswith("journal://"):
        from optuna.storages.journal import JournalFileBackend

        target = url.removeprefix("journal://")
        try:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            backend = JournalFileBackend(target)
        except OSError as exc:
            raise DeepChromeError(f"cannot open storage {url}: {exc}") from None
        if not heartbeat_interval:
            return JournalStorage(backend)
        return HeartbeatJournalStorage(backend, heartbeat_interval, grace_period, stale)
    heartbeat = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period,
                 argument: stale} if heartbeat_interval else {}  # fmt: skip
    engine = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        engine["connect_args"] = {"timeout": 60}  # wait for other workers' writes instead of failing
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, **heartbeat, engine_kwargs=engine)
        except Exception as exc:  # SQLAlchemy's errors vary by driver
            text = str(exc)
            racing = ("already exists", "locked", "UNIQUE constraint", "duplicate key", "IntegrityError")
            if attempt < 4 and any(marker in text for marker in racing):
                time.sleep(0.5 + attempt)  # two workers created the schema at once: the other won
                continue
            reason = text.strip().splitlines()[0] if text.strip() else exc.__class__.__name__
            raise DeepChromeError(f"cannot open storage {_redact(url)}: {reason}") from None
    raise AssertionError("unreachable")


def _retry_callback():
    """optuna >= 4.9 renamed RetryFailedTrialCallback to RetryHeartbeatStaleTrialCallback."""
    storages = optuna.storages

    if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):
        return storages.RetryHeartbeatStaleTrialCallback, "heartbeat_stale_trial_callback"
    return storages.RetryFailedTrialCallback, "failed_trial_callback"


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def open_study(settings: dict, storage_url: str):
    """Create or join the study; refuse one of the same name with another direction."""
    storage = make_storage(storage_url, settings["heartbeat_interval"], settings["grace_period"], settings["max_retry"])
    return retry_while_racing(lambda: _create_or_join(settings, storage, storage_url))


def retry_while_racing(create, attempts: int = 6):
    """Call ``create`` until it succeeds: another worker may be creating the same study right now,
    with its rows half written. User errors are not retried."""
    for attempt in range(attempts):
        try:
            return create()
        except DeepChromeError:
            raise
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _create_or_join(settings: dict, storage, storage_url: str):
    try:
        existing = optuna.study.load_study(study_name=settings["study_name"], storage=storage)
    except KeyError:
        existing = None
    if existing is not None:
        have = existing.direction.name.lower()
        if have != settings["direction"]:
            raise DeepChromeError(
                f"study {settings['study_name']!r} exists in {_redact(storage_url)} with direction {have}, "
                f"the config says {settings['direction']}"
            )
    return optuna.create_study(
        study_name=settings["study_name"],
        storage=storage,
        direction=settings["direction"],
        sampler=make_sampler(settings["sampler"], settings["search_space"]),
        pruner=make_pruner(settings["pruner"]),
        load_if_exists=True,
    )


# -- trials ---------------------------------------------------------------------------------------
def make_objective(settings: dict, sweep_dir: Path):
    """The optuna objective: sample, train with pruning, record config and metrics on the trial."""
    from optuna_integration import PyTorchLightningPruningCallback

    from deepchrome.runs import train

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, settings["search_space"])
        config = copy.deepcopy(settings["base"])
        for dotted, value in params.items():
            set_path(config, dotted, value)
        frozen = trial.study._storage.get_trial(trial._trial_id)  # system attrs live on the frozen trial
        retried_from = _retry_callback()[0].retried_trial_number(frozen)
        trial.set_user_attr("config", yaml.safe_dump(config, sort_keys=False))
        trial.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}")
        if retried_from is not None:
            trial.set_user_attr("retry_of", retried_from)
        run_dir = sweep_dir / "trials" / f"{trial.number:04d}"
        # Exclusive create: a second evaluation of the same trial number would fail here.
        run_dir.mkdir(parents=True, exist_ok=False)
        pruning = PyTorchLightningPruningCallback(trial, monitor=settings["objective"])
        try:
            config.setdefault("trainer", {}).update(enable_progress_bar=False, enable_model_summary=False)
            metrics = train(config, run_dir, callbacks=[pruning], threads=settings.get("threads")).metrics
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("fail_reason", f"{exc.__class__.__name__}: {exc}"[:500])
            raise
        except (KeyboardInterrupt, SystemExit) as exc:
            # Lightning turns Ctrl-C into sys.exit(1), which optuna would not catch: the trial would stay
            # RUNNING. As a KeyboardInterrupt, optuna marks it failed and the worker stops.
            trial.set_user_attr("fail_reason", interruption_reason(exc))
            number = exc.signal if isinstance(exc, Interrupted) else signal.SIGINT  # SIGTERM: status 143
            note = "the running trial is marked failed; the same command continues the sweep"
            raise Interrupted(number, note) from exc
        trial.set_user_attr("metrics", {k: v for k, v in metrics.items() if isinstance(v, int | float)})
        trial.set_user_attr("run_dir", str(run_dir))
        value = objective_value(metrics, run_dir, settings["objective"])
        if value is None or math.isnan(value):
            raise DeepChromeError(f"objective {settings['objective']} not in the trial's metrics ({sorted(metrics)})")
        return value

    return objective


def objective_value(metrics: dict, run_dir: Path, name: str) -> float | None:
    """``name`` from a run's metrics, else from its ``metrics.csv`` at the best checkpoint's epoch
    (the last logged value when no checkpoint was kept)."""
    if metrics.get(name) is not None:
        return float(metrics[name])
    import pandas as pd

    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    if name not in table.columns:
        return None
    logged = table.dropna(subset=[name])
    if metrics.get("best_epoch") is not None and "epoch" in logged.columns:
        logged = logged[logged.epoch == metrics["best_epoch"]]
    return float(logged[name].iloc[-1]) if len(logged) else None


@dataclass
class SweepResult:
    """The outcome of :func:`run_sweep`: ``summary`` (also indexable as a dict) and its paths."""

    summary: dict

    def __getitem__(self, key: str):
        return self.summary[key]

    def __contains__(self, key: str) -> bool:
        return key in self.summary

    def get(self, key: str, default=None):
        """``summary.get(key, default)``: a SweepResult reads like the summary dict."""
        return self.summary.get(key, default)

    @property
    def dir(self) -> Path:
        """The sweep folder (``trials.csv``, ``best/``, figures)."""
        return Path(self.summary["sweep_dir"])

    @property
    def best_config(self) -> Path | None:
        """``best/config.yaml``: runs as is with ``deepchrome fit --config``."""
        return Path(self.summary["best_config"]) if "best_config" in self.summary else None

    @property
    def best_value(self) -> float | None:
        """The best trial's objective value."""
        return self.summary.get("best_value")


@default_output
def run_sweep(
    config: str | os.PathLike | dict,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    sweep_dir: str | os.PathLike | None = None,
    study_name: str | None = None,
    complete_trials: int | None = None,
    threads: int | None = None,
) -> dict:
    """Run (or join) a sweep, then write its outputs.

    Parameters
    ----------
    config
        Sweep config: a YAML path, a packaged name (``sweeps/cnn``) or a dict.
    n_trials
        Trials this worker runs (``None``: until ``timeout`` or ``complete_trials``).
    complete_trials
        Stop every worker once the study holds this many complete trials.
    threads
        torch CPU threads per trial (overrides the config's ``threads``; default: the usable cores
        shared among the training processes on this machine, see :mod:`deepchrome.threads`).

    Returns
    -------
    SweepResult
        The sweep summary (best value, params, paths).
    """

    settings = load_sweep_config(config)
    if threads is not None:
        from deepchrome.threads import check_threads

        settings["threads"] = check_threads(threads, "--threads")
    if study_name:
        settings["study_name"] = study_name
    if sweep_dir is None:  # the study name becomes a folder name: it must not lead elsewhere
        check_name(str(settings["study_name"]), "study_name", "study name")
    check_trial_configs(settings, str(config) if not isinstance(config, dict) else "sweep config")
    sweep_dir = Path(sweep_dir or Path("runs") / "sweeps" / settings["study_name"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created..." is not news
    if storage:  # reached before the sweep folder is made: an unreachable database leaves nothing behind
        study = open_study(settings, storage)
        sweep_dir.mkdir(parents=True, exist_ok=True)
    else:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        study = open_study(settings, f"sqlite:///{(sweep_dir / 'study.db').resolve()}")
    callbacks = []
    if complete_trials:
        callbacks.append(optuna.study.MaxTrialsCallback(complete_trials, states=(optuna.trial.TrialState.COMPLETE,)))
    if n_trials != 0:
        study.optimize(make_objective(settings, sweep_dir), n_trials=n_trials, timeout=timeout,
                       callbacks=callbacks, catch=(Exception,), show_progress_bar=False)  # fmt: skip
    return SweepResult(write_outputs(study, settings, sweep_dir))


def duplicate_trials(trials) -> list[tuple[int, int]]:
    """``(trial, earlier trial)`` pairs of evaluated trials with the same parameters.

    Retries of a killed worker's trial repeat its parameters on purpose and are not counted;
    waiting trials have not been evaluated.
    """
    seen: dict[str, int] = {}
    pairs = []
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.state == optuna.trial.TrialState.WAITING or not trial.params:
            continue
        if trial.system_attrs.get("failed_trial") is not None:  # RetryHeartbeatStaleTrialCallback's mark
            continue
        key = repr(sorted(trial.params.items()))
        if key in seen:
            pairs.append((trial.number, seen[key]))
        else:
            seen[key] = trial.number
    return pairs


def write_outputs(study, settings: dict, sweep_dir: Path) -> dict:
    """Trials table, best config YAML, best metrics.json and optuna's figures, in ``sweep_dir``.

    The summary counts trials by state, and ``duplicates``: evaluated trials whose parameters an
    earlier trial had (0 unless the sampler's space is small or a grid is exhausted).
    """
    states = {s.name: 0 for s in optuna.trial.TrialState}
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        states[trial.state.name] += 1
    table = study.trials_dataframe(attrs=("number", "value", "state", "params", "duration", "user_attrs"))
    table = table.drop(columns=[c for c in table.columns if c in ("user_attrs_config", "user_attrs_metrics")])
    with files.atomic_path(sweep_dir / "trials.csv") as tmp:
        table.to_csv(tmp, index=False)
    duplicates = duplicate_trials(trials)
    summary = {"study_name": study.study_name, "trials": states, "sweep_dir": str(sweep_dir),
               "duplicates": len(duplicates), "duplicate_pairs": duplicates}  # fmt: skip
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        best_dir = sweep_dir / "best"
        best_dir.mkdir(exist_ok=True)
        files.write_text(best_dir / "config.yaml", best.user_attrs["config"])
        metrics = best.user_attrs.get("metrics", {})
        files.write_json(best_dir / "metrics.json", {"trial": best.number, "params": best.params, **metrics})
        checkpoint = Path(best.user_attrs.get("run_dir", "")) / "metrics.json"
        if checkpoint.is_file():
            shutil.copy(checkpoint, best_dir / "trial_metrics.json")
        summary.update(best_trial=best.number, best_value=best.value, best_params=best.params,
                       best_config=str(best_dir / "config.yaml"), test_auroc=metrics.get("test_auroc"))  # fmt: skip
        _figures(study, sweep_dir)
    return summary


def _figures(study, sweep_dir: Path) -> None:
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    plots = {"optimization_history": ovm.plot_optimization_history,
             "intermediate_values": ovm.plot_intermediate_values,
             "param_importances": ovm.plot_param_importances}  # fmt: skip
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna marks its matplotlib backend experimental
                ax = plot(study)
            figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            figure.savefig(sweep_dir / f"{name}.png", dpi=120, bbox_inches="tight")
            plt.close(figure)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. importances need 2+ trials
            log.info("skipped %s figure: %s", name, exc)
