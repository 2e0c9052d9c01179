"""The stacked engine: many jobs' networks trained at once in one process, over shared signals.

The sequential engine trains one job at a time through :func:`deepchrome.runs.train` (Lightning).
This engine trains every claimed job of a model together, reproducing that path's protocol:

- **Same data.** Each (cell, split) is read once into a shared tensor (transformed once per
  distinct transform); a job's training set is an index set into it (the cells of
  ``train_cells`` in order, subsampled by the data module's own rule), so 56 jobs that train on
  overlapping cells hold the signals once.
- **Same start.** Each job's network is built by :func:`deepchrome.runs.instantiate` right after
  its ``seed_everything``, as the sequential fit builds it, so its epoch-0 weights are identical.
- **Same batches.** Each job shuffles with its own generator seeded by ``data.seed``, drawing from
  it each epoch as the sequential DataLoader does (:func:`epoch_order`), and takes consecutive
  batches of ``data.batch_size`` (the last one smaller): the same genes in the same batches.
- **Own optimizer.** Each job keeps its parameters, its optimizer and scheduler (built by the
  module's ``configure_optimizers``, so weight decay and momentum are the config's) and its
  gradient clipping. The jobs' parameters live in stacked tensors (:class:`Stack`, the
  :func:`torch.func.stack_module_state` layout; each network's parameters are views of its row), and
  one step runs ``vmap(functional_call)`` over per-job batches (CNN convolutions become grouped
  convolutions, linear layers batched matmuls) and backpropagates the sum of the jobs' mean losses,
  which gives each job exactly its own gradient. Jobs with fewer batches in an epoch sit out the
  remaining steps (their padded rows have zero weight; they take no optimizer step).
- **Own selection.** After each epoch every job's validation AUROC (its ``val_cells``' ``valid``
  split) decides its best state (strictly better, as ``ModelCheckpoint``) and its early stopping
  (``EarlyStopping``'s patience and ``min_delta``); a job that stops leaves the stack.
- **Shared trainings** (issue #21, item 2). Jobs with the same model, training cells and fraction
  train the same network on the same batches from the same start; their only difference is the
  validation set that picks the best epoch. They are one training here, with one *selection* per
  job: ``inclusive_all`` under ``target_val`` is one training that tracks all targets' validation
  AUROC each epoch and keeps a best state per target, training until every target's early
  stopping has fired. Not with ``ReduceLROnPlateau`` (its schedule follows the validation score).

- **Same dropout.** Each job draws its dropout masks from its own generator, started in the state
  the global generator has right after its network was built (where the sequential fit's dropout
  draws start), in forward order, as ``F.dropout`` on CPU draws them, plus the one draw the
  sequential fit's validation DataLoader takes each epoch; the masks enter the stacked forward as
  buffers (:func:`stack_base`).

So on CPU a job's batches, masks and start are the sequential fit's; what differs is float
rounding (vmap's grouped convolutions and batched matmuls sum in another order, ~1e-8 per epoch),
which long trainings can amplify: results are held to a tolerance (tests: per-job test AUROC
within 0.01, the mean within 0.003; on small runs they are equal), and the same jobs with the
same seeds give identical results. (On a GPU the
sequential fit's dropout uses another kernel and generator: there the masks differ.) Each job
writes the run-folder files the summary and ``deepchrome.load`` read: ``config.yaml``,
``metrics.csv`` (per epoch), ``metrics.json`` (with ``engine: stacked``), ``test_predictions.csv``
and ``checkpoints/best-epoch=NNN-val_auroc=X.ckpt`` (no ``last.ckpt``: a stacked job is not
resumed; a failed one is rerun).

Networks built only of convolutions, linear layers, pooling, dropout and activations are stacked
(the paper's CNN, the linear model, the MLP); other networks (AttentiveChrome's LSTMs) and trainer
options the engine does not reproduce go through the sequential path (:func:`stackable` says why).
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.func import functional_call, vmap

from deepchrome import files
from deepchrome.errors import DeepChromeError
from deepchrome.experiments.stackable import (
    callback_args,
    model_stackable,
    network_stackable,
    plateau_schedule,
    stackable,
)
from deepchrome.threads import apply_threads, registered_worker

log = logging.getLogger(__name__)


# -- the shared signals ----------------------------------------------------------------------------
class SignalPool:
    """Every (cell, split) the stacked jobs read, loaded once.

    ``raw[(cell, split)]`` is the :class:`~deepchrome.data.HistoneSignals` of that split;
    ``train_x(key)`` the transformed training signals of all cells read, float32
    [genes, marks, bins] on ``device`` (one tensor per distinct transform state ``key``), and
    ``offset[cell]`` the first row of a cell in it.
    """

    def __init__(self, root, marks, n_bins: int, cache_dir, device: torch.device) -> None:
        self.root, self.marks, self.n_bins, self.cache_dir, self.device = root, marks, n_bins, cache_dir, device
        self.raw: dict = {}
        self.train_cells: list[str] = []
        self.offset: dict[str, int] = {}
        self._x: dict[str, torch.Tensor] = {}

    def get(self, cell: str, split: str):
        """One cell's split (read on first use)."""
        from deepchrome.data.inputs import load_cells

        if (cell, split) not in self.raw:
            self.raw[(cell, split)] = load_cells(self.root, [cell], split, self.marks, self.n_bins, self.cache_dir)[0]
        return self.raw[(cell, split)]

    def add_train(self, cells: list[str]) -> None:
        """Make these cells' training splits part of the shared training tensor."""
        for cell in cells:
            if cell not in self.offset:
                self.offset[cell] = sum(self.get(c, "train").n_genes for c in self.train_cells)
                self.train_cells.append(cell)
                self._x.clear()

    def train_x(self, transform) -> torch.Tensor:
        """The transformed training signals of every added cell [genes, marks, bins] (float32)."""
        from deepchrome.data.inputs import model_input

        key = json.dumps(transform.state_dict(), sort_keys=True, default=str)
        if key not in self._x:
            signals = np.concatenate([self.get(c, "train").signals for c in self.train_cells])
            self._x[key] = model_input(signals, transform).to(self.device)
        return self._x[key]

    def train_y(self) -> torch.Tensor:
        """Labels [genes] of the shared training tensor."""
        labels = [np.asarray(self.get(c, "train").labels, dtype=np.int64) for c in self.train_cells]
        return torch.from_numpy(np.concatenate(labels)).to(self.device)

    def stage(self, cells: list[str], split: str):
        """A :class:`~deepchrome.data.inputs.StageData` of cells' split, as the data module builds it."""
        from deepchrome.data.inputs import concatenate

        return concatenate([self.get(c, split) for c in cells])


# -- jobs, trainings and selections ------------------------------------------------------------------
@dataclass
class Selection:
    """One job: a validation set that picks its own best epoch and its own early stop."""

    job: int
    run_dir: Path
    config: dict
    val_cells: list[str]
    test_cells: list[str]
    patience: int | None
    min_delta: float
    check_finite: bool
    best_score: float = -math.inf
    stop_score: float = -math.inf
    best_epoch: int | None = None
    best_state: dict | None = None
    wait: int = 0
    epochs: int = 0
    stopped: bool = False
    history: list[dict] = field(default_factory=list)
    error: str | None = None


@dataclass
class Training:
    """One network trained on one training set, with one or more selections."""

    key: tuple
    module: object  # the ExpressionClassifier (its net holds this training's parameters)
    datamodule: object
    optimizer: torch.optim.Optimizer | None  # built by Stack, over the network's parameters
    scheduler: object | None
    clip: float | None
    max_epochs: int
    train_index: torch.Tensor  # [genes] rows of the shared training tensor
    generator: torch.Generator
    rng: torch.Generator  # dropout masks: the global generator's state right after the network was built
    batch_size: int
    selections: list[Selection]
    order: torch.Tensor | None = None
    loss_sum: float = 0.0
    count: int = 0
    epoch: int = 0
    done: bool = False

    @property
    def net(self) -> nn.Module:
        return self.module.net


#: Data settings that differ between an experiment's jobs (the rest of a job's config is its model's).
JOB_DATA_KEYS = ("train_cells", "val_cells", "test_cells", "train_fraction")


def _instantiate(config: dict, templates: dict[str, tuple]):
    """Trainer, module (network not built yet) and data module of a job config, as
    :func:`deepchrome.runs.instantiate` makes them, seeded as it seeds them.

    Parsing a config takes about a second; jobs whose configs differ only in their cells and fraction
    (:data:`JOB_DATA_KEYS`) reuse the first one's parsed objects (copies of the unbuilt module and of
    the data module, which has loaded nothing yet) after the same ``seed_everything`` call.
    """
    from lightning.fabric.utilities.seed import seed_everything

    from deepchrome.runs import instantiate

    seed = config.get("seed_everything", 0)
    data = config["data"]
    rest = {k: v for k, v in config.items() if k not in ("data", "trainer")}
    trainer_rest = {k: v for k, v in config["trainer"].items() if k != "default_root_dir"}
    data_rest = {k: v for k, v in data.items() if k not in JOB_DATA_KEYS}
    key = json.dumps([rest, trainer_rest, data_rest], sort_keys=True, default=str)
    if isinstance(seed, bool) or key not in templates:  # seed True: a random seed each time
        trainer, module, datamodule = instantiate(config)
        templates[key] = (trainer, copy.deepcopy(module), copy.deepcopy(datamodule))
        return trainer, module, datamodule
    trainer, module, datamodule = templates[key]
    seed_everything(int(seed), workers=True)
    module, datamodule = copy.deepcopy(module), copy.deepcopy(datamodule)
    datamodule.train_cells = list(data["train_cells"])
    datamodule.val_cells = list(data.get("val_cells") or data["train_cells"])
    datamodule.test_cells = list(data.get("test_cells") or data["train_cells"])
    datamodule.train_fraction = float(data.get("train_fraction", 1.0))
    return trainer, module, datamodule


@dataclass
class _Labels:
    """Labels [genes] of some cells: what ``check_two_classes`` reads of a split."""

    labels: np.ndarray
    cells: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def drop_one_label_jobs(trainings: list[Training], pool: SignalPool) -> dict[int, DeepChromeError]:
    """Take out the jobs whose training or validation genes hold one label; their errors by job.

    The sequential path's data module refuses such a split (AUROC is undefined); here the other
    jobs of the stack still train. A training set of one label fails every job sharing it.
    """
    from deepchrome.data.datamodule import check_two_classes

    labels = pool.train_y().cpu().numpy()
    failed: dict[int, DeepChromeError] = {}
    for t in list(trainings):
        try:
            check_two_classes(_Labels(labels[t.train_index.cpu().numpy()], list(t.datamodule.train_cells)),
                              "data.train_cells", "train")  # fmt: skip
        except DeepChromeError as error:
            failed.update({s.job: DeepChromeError(f"job {s.job}: {error}") for s in t.selections})
            trainings.remove(t)
            continue
        for s in list(t.selections):
            try:
                check_two_classes(pool.stage(s.val_cells, "valid"), "data.val_cells", "valid")
            except DeepChromeError as error:
                failed[s.job] = DeepChromeError(f"job {s.job}: {error}")
                t.selections.remove(s)
        if not t.selections:
            trainings.remove(t)
    return failed


def build_trainings(configs: list[dict], run_dirs: list[Path], jobs: list[int], share: bool = True):
    """Trainings (with their selections) and the shared pool for prepared job configs.

    Jobs with the same network config, training cells, fraction, data settings and optimizer are one
    training when ``share`` (and no ``ReduceLROnPlateau``). Each network is built right after its
    job's ``seed_everything`` (:func:`_instantiate`), as the sequential fit builds it.
    """
    trainings: dict[tuple, Training] = {}
    templates: dict[str, tuple] = {}
    pool = None
    for job, config, run_dir in zip(jobs, configs, run_dirs, strict=True):
        data = config["data"]
        stopping = callback_args(config, "EarlyStopping")
        selection = Selection(
            job=job, run_dir=run_dir, config=config, val_cells=list(data["val_cells"]),
            test_cells=list(data["test_cells"]),
            patience=int(stopping.get("patience", 3)) if stopping is not None else None,
            min_delta=abs(float(stopping.get("min_delta", 0.0))) if stopping is not None else 0.0,
            check_finite=bool(stopping.get("check_finite", True)) if stopping is not None else False,
        )  # fmt: skip
        plateau = plateau_schedule(config)
        rest = {k: v for k, v in config.items() if k not in ("data", "trainer")}
        trainer_rest = {k: v for k, v in config["trainer"].items() if k not in ("default_root_dir", "logger")}
        data_rest = {k: v for k, v in data.items() if k not in ("val_cells", "test_cells")}
        key = json.dumps([rest, trainer_rest, data_rest], sort_keys=True, default=str)
        if share and not plateau and key in trainings:
            trainings[key].selections.append(selection)
            continue
        if key in trainings:
            key = f"{key}#{job}"
        trainer, module, datamodule = _instantiate(config, templates)
        module.net.build(datamodule.n_marks, datamodule.n_bins)  # the weights the sequential fit starts from
        reason = network_stackable(module.net)
        if reason:
            raise DeepChromeError(f"job {job}: the stacked engine does not stack a {reason}; use engine: sequential")
        rng = torch.Generator()
        rng.set_state(torch.get_rng_state())  # where the sequential fit's dropout draws start
        device = trainer.strategy.root_device
        if pool is None:
            pool = SignalPool(datamodule.root, list(datamodule.marks), datamodule.n_bins, datamodule.cache_dir, device)
        pool.add_train(datamodule.train_cells)
        index = []
        for cell in datamodule.train_cells:
            keep = datamodule.subsample_index(pool.get(cell, "train"))
            rows = np.arange(pool.get(cell, "train").n_genes) if keep is None else keep
            index.append(pool.offset[cell] + rows)
        train_index = torch.from_numpy(np.concatenate(index)).to(device)
        module.marks = list(datamodule.marks)
        clip = config["trainer"].get("gradient_clip_val")
        trainings[key] = Training(
            key=key, module=module.to(device), datamodule=datamodule, optimizer=None, scheduler=None,
            clip=float(clip) if clip else None, max_epochs=int(trainer.max_epochs if trainer.max_epochs is not None
                                                                else 1000),
            train_index=train_index, generator=torch.Generator().manual_seed(datamodule.seed), rng=rng,
            batch_size=datamodule.batch_size, selections=[selection],
        )  # fmt: skip
    trainings = list(trainings.values())
    for training in trainings:  # transforms fitted on each training set, the linear model's scale too
        dm = training.datamodule
        if dm.transform.needs_fit and dm.transform.mean is None:
            rows = training.train_index.cpu().numpy()
            raw = np.concatenate([pool.get(c, "train").signals for c in pool.train_cells])[rows]
            dm.transform.fit(raw)
        fit_scale = getattr(training.net, "fit_scale", None)
        if fit_scale is not None and not bool(training.net.scale_fitted):
            x = pool.train_x(dm.transform)
            rows = training.train_index
            fit_scale(x[rows[i : i + 4096]] for i in range(0, len(rows), 4096))
    return trainings, pool


# -- dropout masks drawn as the sequential fit draws them -------------------------------------------
class _MaskDropout(nn.Module):
    """Dropout whose scaled mask [batch, ...] comes in as the buffer ``mask`` (per job under vmap)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mask", torch.ones(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


def stack_base(net: nn.Module) -> tuple[nn.Module, list[tuple[str, float, tuple[int, ...]]]]:
    """A copy of ``net`` for ``functional_call`` whose dropouts take their masks as buffers, and the
    dropouts in forward order: ``(buffer name, p, per-sample input shape)``."""
    order: list[tuple[str, float, tuple[int, ...]]] = []
    handles = []
    for name, module in net.named_modules():
        if isinstance(module, nn.Dropout):

            def hook(module, inputs, name=name):
                order.append((f"{name}.mask", float(module.p), tuple(inputs[0].shape[1:])))

            handles.append(module.register_forward_pre_hook(hook))
    was_training = net.training
    with torch.no_grad():
        net.eval()(torch.zeros(1, net.n_marks, net.n_bins, device=next(net.parameters()).device))
    net.train(was_training)
    for handle in handles:
        handle.remove()
    base = copy.deepcopy(net)
    for name, module in list(base.named_modules()):
        if isinstance(module, nn.Dropout):
            parent, _, child = name.rpartition(".")
            setattr(base.get_submodule(parent) if parent else base, child, _MaskDropout())
    return base, order


def dropout_masks(rng: torch.Generator, dropouts, batch: int, width: int, device) -> list[torch.Tensor]:
    """One step's scaled dropout masks [width, ...] (rows past ``batch`` zero), drawn from ``rng``
    in forward order exactly as ``F.dropout`` on CPU draws them (``bernoulli_(1 - p)``, divided by ``1 - p``)."""
    masks = []
    for _, p, shape in dropouts:
        mask = torch.zeros(width, *shape)
        if p == 0:
            mask[:batch] = 1.0
        elif p < 1:
            noise = torch.empty(batch, *shape).bernoulli_(1 - p, generator=rng)
            mask[:batch] = noise.div_(1 - p)
        masks.append(mask.to(device))
    return masks


# -- one stack of trainings --------------------------------------------------------------------------
class Stack:
    """Trainings of one architecture (and transform) whose parameters live in stacked tensors.

    ``params[name]`` [jobs, ...] are leaves holding every training's parameter ``name``; each
    training's network parameter is a view of its row (an ``nn.Parameter`` sharing the storage),
    so its own optimizer (``configure_optimizers``: the config's optimizer and scheduler, as in the
    sequential fit) updates the stack in place, and a step needs no copy of the parameters when every
    member is live. ``base`` is the network copy that ``functional_call`` runs (:func:`stack_base`).
    """

    def __init__(self, members: list[Training]) -> None:
        self.members = members
        self.position = {id(t): i for i, t in enumerate(members)}
        self.base, self.dropouts = stack_base(members[0].net)
        names = [name for name, _ in members[0].net.named_parameters()]
        self.params = {}
        for name in names:
            self.params[name] = torch.stack([t.net.get_parameter(name).detach() for t in members]).requires_grad_()
        for i, t in enumerate(members):
            for name in names:
                owner, _, leaf = name.rpartition(".")
                module = t.net.get_submodule(owner) if owner else t.net
                setattr(module, leaf, nn.Parameter(self.params[name].detach()[i]))
            optimizers = t.module.configure_optimizers()
            t.optimizer = optimizers["optimizer"] if isinstance(optimizers, dict) else optimizers
            t.scheduler = optimizers["lr_scheduler"]["scheduler"] if isinstance(optimizers, dict) else None
        self.buffers = {name: torch.stack([t.net.get_buffer(name) for t in members])
                        for name, _ in members[0].net.named_buffers()}  # fmt: skip

    def step(self, step: int, x: torch.Tensor, y: torch.Tensor) -> list[Training]:
        """One optimizer step of every member that still has a batch this epoch; returns those that failed."""
        live = [t for t in self.members if not t.done and step * t.batch_size < len(t.order)]
        if not live:
            return []
        width = max(t.batch_size for t in live)
        rows = torch.zeros(len(live), width, dtype=torch.long, device=x.device)
        weight = torch.zeros(len(live), width, device=x.device)
        masks = []
        for i, t in enumerate(live):
            batch = t.order[step * t.batch_size : (step + 1) * t.batch_size]
            rows[i, : len(batch)] = batch
            weight[i, : len(batch)] = 1.0
            masks.append(dropout_masks(t.rng, self.dropouts, len(batch), width, x.device))
        if len(live) == len(self.members):
            params, buffers = dict(self.params), dict(self.buffers)
        else:  # a gather: the gradient lands in the live rows only
            index = torch.tensor([self.position[id(t)] for t in live], device=x.device)
            params = {name: value[index] for name, value in self.params.items()}
            buffers = {name: value[index] for name, value in self.buffers.items()}
        for k, (name, _, _) in enumerate(self.dropouts):
            buffers[name] = torch.stack([m[k] for m in masks])
        base = self.base

        def forward(p, b, inputs):
            return functional_call(base, (p, b), (inputs,))

        base.train()
        logits = vmap(forward, randomness="error")(params, buffers, x[rows])  # [jobs, batch, 2]
        losses = F.cross_entropy(logits.flatten(0, 1), y[rows].flatten(), reduction="none").view(len(live), width)
        count = weight.sum(1)
        per_job = (losses * weight).sum(1) / count  # each job's mean loss over its own batch
        per_job.sum().backward()
        values = per_job.detach().cpu().tolist()
        failed = []
        for t, value, n in zip(live, values, count.cpu().tolist(), strict=True):
            if not math.isfinite(value):
                for s in t.selections:
                    s.error = f"FloatingPointError: training loss is {value} at epoch {t.epoch}"
                failed.append(t)
                continue
            row = self.position[id(t)]
            for name, parameter in t.net.named_parameters():
                parameter.grad = self.params[name].grad[row]  # a view: its own gradient, no copy
            if t.clip:
                torch.nn.utils.clip_grad_norm_(t.net.parameters(), t.clip)
            t.optimizer.step()
            t.optimizer.zero_grad(set_to_none=True)
            t.loss_sum += value * n
            t.count += int(n)
        for value in self.params.values():
            value.grad = None
        return failed


def _validate(training: Training, pool: SignalPool) -> None:
    """Score every selection's validation cells; update its best state and early stopping."""
    from torchmetrics.functional.classification import binary_auroc, binary_average_precision

    from deepchrome.training import predict_probabilities

    dm = training.datamodule
    cells = {c for s in training.selections if not s.stopped for c in s.val_cells}
    scored = {c: torch.from_numpy(predict_probabilities(training.net, pool.get(c, "valid").signals, dm.transform,
                                                        dm.eval_batch_size)) for c in sorted(cells)}  # fmt: skip
    state = None
    for s in training.selections:
        if s.stopped:
            continue
        p = torch.cat([scored[c] for c in s.val_cells])
        y = torch.from_numpy(np.concatenate([np.asarray(pool.get(c, "valid").labels, dtype=np.int64)
                                             for c in s.val_cells]))  # fmt: skip
        auroc = float(binary_auroc(p, y))
        auprc = float(binary_average_precision(p, y))
        q = p.clamp(1e-7, 1 - 1e-7)
        val_loss = float(-(y * q.log() + (1 - y) * (1 - q).log()).mean())
        train_loss = training.loss_sum / training.count if training.count else float("nan")
        s.history.append({"epoch": training.epoch, "train_loss": train_loss, "val_auroc": auroc,
                          "val_auprc": auprc, "val_loss": val_loss})  # fmt: skip
        s.epochs = training.epoch + 1
        if auroc > s.best_score:  # ModelCheckpoint: strictly better
            if state is None:
                state = {k: v.detach().to("cpu", copy=True) for k, v in training.net.state_dict().items()}
            s.best_score, s.best_epoch, s.best_state = auroc, training.epoch, state
        if s.patience is None:
            continue
        if s.check_finite and not math.isfinite(auroc):
            s.stopped = True
        elif auroc - s.min_delta > s.stop_score:  # EarlyStopping (mode max)
            s.stop_score, s.wait = auroc, 0
        else:
            s.wait += 1
            s.stopped = s.wait >= s.patience


def epoch_order(n: int, generator: torch.Generator) -> torch.Tensor:
    """One epoch's shuffled positions [n], drawn as the sequential path's DataLoader draws them.

    Each epoch a single-process DataLoader iterator takes a base seed from its generator, then the
    RandomSampler yields ``randperm(n)`` and (once exhausted) draws an empty tail ``randperm(n)[:0]``;
    the same three draws here keep every epoch's order equal to the sequential fit's.
    """
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    order = torch.randperm(n, generator=generator)
    torch.randperm(n, generator=generator)
    return order


def train_stack(trainings: list[Training], pool: SignalPool) -> None:
    """Train the trainings together until every selection stopped or reached its training's max_epochs."""
    device = pool.device
    groups: dict[str, list[Training]] = {}
    for t in trainings:  # one stack per transform and architecture
        key = json.dumps([t.datamodule.transform.state_dict(), t.net.config()], default=str)
        groups.setdefault(key, []).append(t)
    stacks = [Stack(group) for group in groups.values()]
    y = pool.train_y()
    epoch = 0
    while True:
        running = [t for t in trainings if not t.done and epoch < t.max_epochs]
        if not running:
            break
        for t in running:
            t.epoch, t.loss_sum, t.count = epoch, 0.0, 0
            t.order = t.train_index[epoch_order(len(t.train_index), t.generator).to(device)]
        for stack in stacks:
            members = [t for t in stack.members if t in running]
            if not members:
                continue
            x = pool.train_x(members[0].datamodule.transform)
            steps = max(math.ceil(len(t.order) / t.batch_size) for t in members)
            for step in range(steps):
                for t in stack.step(step, x, y):
                    t.done = True
        for t in running:
            if t.done:
                continue
            _validate(t, pool)
            # the sequential fit's validation DataLoader (no generator of its own) takes its base seed
            # from the global generator: the next epoch's dropout masks start one draw later
            torch.empty((), dtype=torch.int64).random_(generator=t.rng)
            if t.scheduler is not None:
                if isinstance(t.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    t.scheduler.step(t.selections[0].history[-1]["val_auroc"])
                else:
                    t.scheduler.step()
            t.done = all(s.stopped for s in t.selections) or epoch + 1 >= t.max_epochs
        epoch += 1


# -- outputs -----------------------------------------------------------------------------------------
def finish_selection(training: Training, s: Selection, pool: SignalPool) -> dict:
    """Test a selection's best state and write its run folder; its summary (as ``metrics.json``)."""
    from torchmetrics.functional.classification import binary_auroc, binary_average_precision

    from deepchrome.models import count_parameters
    from deepchrome.runs import test_intervals, write_metrics
    from deepchrome.training import predict_probabilities, prediction_table, scores_defined

    net, dm = training.net, training.datamodule
    if s.best_state is not None:
        net.load_state_dict(s.best_state)
    test = pool.stage(s.test_cells, "test")
    probability = predict_probabilities(net, test.signals, dm.transform, dm.eval_batch_size)
    table = prediction_table(test, probability, np.arange(len(test)))
    s.run_dir.mkdir(parents=True, exist_ok=True)
    files.write_text(s.run_dir / "config.yaml", yaml.safe_dump(s.config, sort_keys=False))
    with files.atomic_path(s.run_dir / "test_predictions.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    metrics = {}
    groups = [("test", table)] + ([(f"test_{c}", part) for c, part in table.groupby("cell", sort=False)]
                                  if len(s.test_cells) > 1 else [])  # fmt: skip
    for prefix, part in groups:
        p = torch.tensor(part.probability.to_numpy(dtype=np.float32))  # a copy: a group's column may be read-only
        y = torch.tensor(part.label.to_numpy(dtype=np.int64))
        what = "the test split" if prefix == "test" else f"test cell {prefix[5:]}"
        if not scores_defined(part.label.to_numpy(), f"job {s.job}: {what}"):  # null, as on the sequential path
            metrics[f"{prefix}_auroc"] = metrics[f"{prefix}_auprc"] = float("nan")
            continue
        metrics[f"{prefix}_auroc"] = float(binary_auroc(p, y))
        metrics[f"{prefix}_auprc"] = float(binary_average_precision(p, y))
    best = None
    if s.best_state is not None:
        best = s.run_dir / "checkpoints" / f"best-epoch={s.best_epoch:03d}-val_auroc={s.best_score:.4f}.ckpt"
        _write_checkpoint(best, training, s)
    _write_history(s.run_dir / "metrics.csv", s.history)
    summary = {
        "model": type(net).__name__,
        "n_parameters": count_parameters(net),
        "val_auroc": s.best_score if s.best_state is not None else float("nan"),
        **metrics,
        "best_epoch": s.best_epoch,
        "epochs": s.epochs,
        "train_genes": len(training.train_index),
        "train_cells": list(dm.train_cells),
        "val_cells": list(s.val_cells),
        "test_cells": list(s.test_cells),
        "marks": list(dm.marks),
        "best_checkpoint": str(best) if best else None,
        "engine": "stacked",
        "shared_training": len(training.selections),
        **test_intervals(table),
    }
    write_metrics(s.run_dir, summary)
    summary["metrics_path"] = str(s.run_dir / "metrics.json")
    return summary


def _write_checkpoint(path: Path, training: Training, s: Selection) -> None:
    """A classifier checkpoint that :func:`deepchrome.load` and ``deepchrome predict`` read."""
    import lightning

    net, dm = training.net, training.datamodule
    checkpoint = {
        "epoch": s.best_epoch,
        "global_step": 0,
        "pytorch-lightning_version": lightning.__version__,
        "state_dict": {f"net.{k}": v for k, v in s.best_state.items()},
        "HistoneDataModule": dm.state_dict(),
        "deepchrome": {"kind": "classifier", "net": net.config(), "n_marks": net.n_marks, "n_bins": net.n_bins,
                       "marks": list(dm.marks), "transform": dm.transform.state_dict(),
                       "train_cells": list(dm.train_cells), "engine": "stacked"},
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def _write_history(path: Path, history: list[dict]) -> None:
    columns = ["epoch", "step", "train_loss", "val_auroc", "val_auprc", "val_loss"]
    with files.atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in history:
            writer.writerow({"step": "", **row})


# -- entry points ------------------------------------------------------------------------------------
def train_jobs(
    configs: list[dict],
    run_dirs: list[Path],
    jobs: list[int] | None = None,
    share: bool = True,
    threads: int | None = None,
) -> list[dict | Exception]:
    """Train training configs together on the stacked engine and write each one's run folder.

    Parameters
    ----------
    configs
        Training configs (as :func:`deepchrome.runs.train` takes), all for the same data root,
        marks and bins; each must pass :func:`stackable`.
    run_dirs
        One output folder per config.
    jobs
        Ids to name the jobs in messages (default 0, 1, ...).
    share
        Train jobs that differ only in their validation (and test) cells as one training.
    threads
        torch CPU threads (``None``: the usable cores shared among the training processes on this
        machine, :mod:`deepchrome.threads`).

    Returns
    -------
    list
        Per config, its summary (the ``metrics.json`` contents, plus ``seconds``: the stack's wall
        time shared equally) or the exception that failed it.
    """
    from deepchrome.runs import prepare_config

    start = time.perf_counter()
    jobs = list(range(len(configs))) if jobs is None else list(jobs)
    for job, config in zip(jobs, configs, strict=True):
        reason = stackable(config)
        if reason:
            raise DeepChromeError(f"job {job}: the stacked engine does not reproduce {reason}; use engine: sequential")
    prepared, dirs = [], []
    for config, run_dir in zip(configs, run_dirs, strict=True):
        config, run_dir = prepare_config(copy.deepcopy(config), run_dir, log=False)
        prepared.append(config)
        dirs.append(run_dir)
    trainings, pool = build_trainings(prepared, dirs, jobs, share)
    outcomes: dict[int, dict | Exception] = dict(drop_one_label_jobs(trainings, pool))
    with registered_worker():
        apply_threads(threads)
        train_stack(trainings, pool)
    for t in trainings:
        for s in t.selections:
            if s.error:
                outcomes[s.job] = FloatingPointError(s.error)
                continue
            try:
                outcomes[s.job] = finish_selection(t, s, pool)
            except Exception as exc:  # one job's outputs failing does not fail the others
                outcomes[s.job] = exc
    seconds = (time.perf_counter() - start) / max(len(configs), 1)
    for outcome in outcomes.values():
        if isinstance(outcome, dict):
            outcome["seconds"] = seconds
    return [outcomes[j] for j in jobs]


def work_stacked(
    table,
    jobs: list[dict],
    settings: dict,
    out: Path,
    run_one: Callable[[int, int], dict],
    max_jobs: int | None = None,
    report: Callable[[int, dict | None], None] | None = None,
) -> int:
    """The stacked engine's worker loop: claim every waiting job, train each model's stackable jobs
    together (:func:`train_jobs`), the others one by one with ``run_one``; record each outcome.

    Returns
    -------
    int
        Attempts this worker ran.
    """
    from optuna.storages._heartbeat import BaseHeartbeat

    from deepchrome.experiments.jobs import PENDING, RUNNING

    interval = table.storage.get_heartbeat_interval() if isinstance(table.storage, BaseHeartbeat) else None
    poll = interval or 5
    ran = 0
    reasons = {name: model_stackable(config) for name, config in settings["models"].items()}
    for name, reason in reasons.items():
        if reason:
            log.warning("model %s runs on the sequential engine: the stacked engine does not reproduce %s", name,
                        reason)  # fmt: skip
    if all(reasons.values()):  # nothing to stack: the sequential worker loop, one claim at a time
        return table.work(run_one, max_jobs=max_jobs, report=report)
    while max_jobs is None or ran < max_jobs:
        state = table.sync()
        claimed = []
        limit = settings.get("stack_size")
        while (max_jobs is None or ran + len(claimed) < max_jobs) and (limit is None or len(claimed) < limit):
            trial = table.claim()
            if trial is None:
                break
            claimed.append(trial)
        if not claimed:
            if not any(row.state in (PENDING, RUNNING) for row in state):
                break
            time.sleep(poll)
            continue
        by_model: dict[str, list] = {}
        for trial in claimed:
            by_model.setdefault(jobs[trial.params["job"]]["model"], []).append(trial)
        for model, trials in by_model.items():
            if reasons[model]:
                for trial in trials:
                    metrics = table.run(trial, run_one)
                    if report is not None:
                        report(trial.params["job"], metrics)
                continue

            def work(job_ids: list[int], numbers: list[int], model=model) -> list[dict | Exception]:
                from deepchrome.experiments.plan import job_config

                configs = [job_config(jobs[j], settings) for j in job_ids]
                dirs = [out / "jobs" / f"{j:04d}-{n}" for j, n in zip(job_ids, numbers, strict=True)]
                results = train_jobs(configs, dirs, job_ids, threads=settings.get("threads"))
                for job, result in zip(job_ids, results, strict=True):
                    if isinstance(result, dict):
                        add_cell_metrics(result, jobs[job])
                return results

            for trial, metrics in zip(trials, table.run_many(trials, work), strict=True):
                if report is not None:
                    report(trial.params["job"], metrics)
        ran += len(claimed)
    return ran


def add_cell_metrics(metrics: dict, job: dict) -> dict:
    """``test_<cell>_auroc``/``_auprc`` for a job with one test cell (the summary reads those keys)."""
    if len(job["test_cells"]) == 1:
        cell = job["test_cells"][0]
        metrics[f"test_{cell}_auroc"] = metrics["test_auroc"]
        metrics[f"test_{cell}_auprc"] = metrics["test_auprc"]
    return metrics
