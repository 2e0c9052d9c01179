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
``journal:///shared/path.log``). Heartbeats mark trials of killed workers as failed, and
:class:`optuna.storages.RetryFailedTrialCallback` (``RetryHeartbeatStaleTrialCallback`` since
optuna 4.9) queues them again for any worker.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from deepchrome import files
from deepchrome.config import apply_overrides, check_path, config_path, load_config, read_yaml, set_path
from deepchrome.errors import DeepChromeError

log = logging.getLogger(__name__)
DISTRIBUTIONS = ("float", "int", "categorical")


# -- config handling ------------------------------------------------------------------------------
SWEEP_KEYS = ("base_config", "overrides", "search_space", "objective", "direction", "sampler", "pruner",
              "study_name", "heartbeat_interval", "grace_period", "max_retry")  # fmt: skip


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
    if isinstance(source, dict):
        sweep, where, folder = copy.deepcopy(source), "sweep config", Path.cwd()
    else:
        path = config_path(source)
        sweep, where, folder = read_yaml(path), str(source), path.parent
    unknown = sorted(set(sweep) - set(SWEEP_KEYS))
    if unknown:
        raise DeepChromeError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(SWEEP_KEYS)})")
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
            "labels into the selection; use a validation metric (val_auroc, val_auprc, val_loss)"
        )
    return {
        "base": base,
        "base_path": str(base_source) if not isinstance(base_source, dict) else None,
        "search_space": space,
        "objective": objective,
        "direction": direction,
        "sampler": sweep.get("sampler") or {"name": "tpe", "seed": 0},
        "pruner": sweep.get("pruner") or {"name": "median"},
        "study_name": sweep.get("study_name", Path(str(source)).stem if not isinstance(source, dict) else "sweep"),
        "heartbeat_interval": sweep.get("heartbeat_interval", 10),
        "grace_period": sweep.get("grace_period"),
        "max_retry": sweep.get("max_retry", 2),
    }


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
def make_sampler(spec: dict, space: dict):
    """TPE (default), random or grid sampler, seeded."""
    import optuna

    name = spec.get("name", "tpe")
    seed = spec.get("seed", 0)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        grid = {}
        for dotted, distribution in space.items():
            if "categorical" not in distribution:
                raise DeepChromeError(f"grid sampler: {dotted} must be categorical (a list of values)")
            grid[dotted] = distribution["categorical"]
        return optuna.samplers.GridSampler(grid, seed=seed)
    raise DeepChromeError(f"unknown sampler {name!r} (available: tpe, random, grid)")


def make_pruner(spec: dict):
    """Median (default), Hyperband or no pruning."""
    import optuna

    name = spec.get("name", "median")
    options = {k: v for k, v in spec.items() if k != "name"}
    if name == "median":
        return optuna.pruners.MedianPruner(**{"n_warmup_steps": 2, **options})
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(**options)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise DeepChromeError(f"unknown pruner {name!r} (available: median, hyperband, none)")


def make_storage(url: str, heartbeat_interval: int | None = 10, grace_period: int | None = None, max_retry: int = 2):
    """An optuna storage with heartbeats and retries of failed trials.

    ``sqlite:///...`` or ``postgresql://...`` (RDBStorage) or ``journal:///path`` (a journal file,
    for shared disks).

    Raises
    ------
    DeepChromeError
        If the storage cannot be reached.
    """
    import optuna

    retry, argument = _retry_callback()
    heartbeat = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period,
                 argument: retry(max_retry=max_retry)} if heartbeat_interval else {}  # fmt: skip
    if url.startswith("journal://"):
        from optuna.storages.journal import JournalFileBackend

        target = url.removeprefix("journal://")
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(target))
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
    import optuna.storages as storages

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
    import optuna

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
    import optuna
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
            metrics = train(config, run_dir, callbacks=[pruning]).metrics
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("fail_reason", f"{exc.__class__.__name__}: {exc}"[:500])
            raise
        trial.set_user_attr("metrics", {k: v for k, v in metrics.items() if isinstance(v, int | float)})
        trial.set_user_attr("run_dir", str(run_dir))
        value = metrics.get(settings["objective"])
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise DeepChromeError(f"objective {settings['objective']} not in the trial's metrics ({sorted(metrics)})")
        return float(value)

    return objective


@dataclass
class SweepResult:
    """The outcome of :func:`run_sweep`: ``summary`` (also indexable as a dict) and its paths."""

    summary: dict

    def __getitem__(self, key: str):
        return self.summary[key]

    def __contains__(self, key: str) -> bool:
        return key in self.summary

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


def run_sweep(
    config: str | os.PathLike | dict,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    sweep_dir: str | os.PathLike | None = None,
    study_name: str | None = None,
    complete_trials: int | None = None,
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

    Returns
    -------
    SweepResult
        The sweep summary (best value, params, paths).
    """
    import optuna

    settings = load_sweep_config(config)
    if study_name:
        settings["study_name"] = study_name
    sweep_dir = Path(sweep_dir or Path("runs") / "sweeps" / settings["study_name"])
    sweep_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(sweep_dir / 'study.db').resolve()}"
    study = open_study(settings, storage)
    callbacks = []
    if complete_trials:
        callbacks.append(optuna.study.MaxTrialsCallback(complete_trials, states=(optuna.trial.TrialState.COMPLETE,)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if n_trials != 0:
        study.optimize(make_objective(settings, sweep_dir), n_trials=n_trials, timeout=timeout,
                       callbacks=callbacks, catch=(Exception,), show_progress_bar=False)  # fmt: skip
    return SweepResult(write_outputs(study, settings, sweep_dir))


def write_outputs(study, settings: dict, sweep_dir: Path) -> dict:
    """Trials table, best config YAML, best metrics.json and optuna's figures, in ``sweep_dir``."""
    import optuna

    states = {s.name: 0 for s in optuna.trial.TrialState}
    for trial in study.trials:
        states[trial.state.name] += 1
    table = study.trials_dataframe(attrs=("number", "value", "state", "params", "duration", "user_attrs"))
    table = table.drop(columns=[c for c in table.columns if c in ("user_attrs_config", "user_attrs_metrics")])
    with files.atomic_path(sweep_dir / "trials.csv") as tmp:
        table.to_csv(tmp, index=False)
    summary = {"study_name": study.study_name, "trials": states, "sweep_dir": str(sweep_dir)}
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
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
