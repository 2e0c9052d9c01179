"""Training throughput of the DeepChrome CNN on 2 cores, against two baselines in the same run.

(a) a bare PyTorch loop over in-memory tensors (the machine's practical ceiling);
(b) a per-sample ``Dataset`` + ``DataLoader`` with 2 loader workers, as research code ships it;
(c) deepchrome's full Lightning ``fit`` path (HistoneDataModule + ExpressionClassifier + Trainer).
Same network, batch size 32, SGD, on a simulated full-size cell (6,601 training genes).
Then: the time to train that cell with configs/deepchrome.yaml settings (early stopping), and
the peak resident memory of this process.

Run: python bench/bench_training.py [--epochs 3] [--skip-full]
Targets: (c) >= 80% of (a), (c) >= 5x (b).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from deepchrome.data import HistoneDataModule, read_release_csv
from deepchrome.data.simulate import simulate_release
from deepchrome.models import DeepChromeCNN
from deepchrome.training import ExpressionClassifier

BATCH = 32


def bare_loop(x: torch.Tensor, y: torch.Tensor, epochs: int) -> float:
    torch.manual_seed(0)
    net = DeepChromeCNN(n_marks=5, n_bins=100)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    seen, elapsed = 0, 0.0
    for epoch in range(epochs + 1):  # epoch 0 warms up
        start = time.perf_counter()
        order = torch.randperm(len(y))
        for i in range(0, len(y), BATCH):
            index = order[i : i + BATCH]
            optimizer.zero_grad()
            F.cross_entropy(net(x[index]), y[index]).backward()
            optimizer.step()
        if epoch:
            elapsed += time.perf_counter() - start
            seen += len(y)
    return seen / elapsed


class PerSampleDataset(Dataset):
    """One gene per ``__getitem__``: a Python call, a tensor conversion and a log1p per sample."""

    def __init__(self, signals: np.ndarray, labels: np.ndarray) -> None:
        self.signals, self.labels = signals, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return torch.log1p(torch.tensor(self.signals[i], dtype=torch.float32)), int(self.labels[i])


def per_sample_loader(signals: np.ndarray, labels: np.ndarray, epochs: int) -> float:
    torch.manual_seed(0)
    net = DeepChromeCNN(n_marks=5, n_bins=100)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    loader = DataLoader(
        PerSampleDataset(np.asarray(signals), np.asarray(labels)),
        batch_size=BATCH,
        shuffle=True,
        num_workers=2,
        persistent_workers=True,
    )
    seen, elapsed = 0, 0.0
    for epoch in range(epochs + 1):
        start = time.perf_counter()
        for xb, yb in loader:
            optimizer.zero_grad()
            F.cross_entropy(net(xb), yb).backward()
            optimizer.step()
        if epoch:
            elapsed += time.perf_counter() - start
            seen += len(labels)
    return seen / elapsed


class EpochTimer(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.times.append(time.perf_counter() - self.start)


def lightning_fit(root: Path, epochs: int, n_genes: int) -> float:
    pl.seed_everything(0, verbose=False)
    datamodule = HistoneDataModule(root=str(root), train_cells=["S01"], batch_size=BATCH)
    model = ExpressionClassifier(
        DeepChromeCNN(), optimizer=lambda params: torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    )
    timer = EpochTimer()
    trainer = pl.Trainer(
        max_epochs=epochs + 1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[timer],
    )
    trainer.fit(model, datamodule=datamodule)
    return n_genes * epochs / sum(timer.times[1:])


def full_cell_training(root: Path, run_dir: Path) -> dict:
    import deepchrome

    start = time.perf_counter()
    quiet = {"trainer.enable_progress_bar": False, "trainer.enable_model_summary": False}
    run = deepchrome.fit("deepchrome", {"data.root": str(root), "data.train_cells": ["S01"], **quiet}, run_dir=run_dir)
    return {"seconds": time.perf_counter() - start, **run.metrics}


def main() -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per method (after one warm-up)")
    parser.add_argument("--skip-full", action="store_true", help="skip the full-cell training run")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "release"
        os.environ["DEEPCHROME_CACHE_DIR"] = str(Path(tmp) / "cache")
        simulate_release(root, n_cells=1, n_genes=19_803, seed=0)
        train = read_release_csv(root / "S01/classification/train.csv")
        x = torch.log1p(torch.from_numpy(train.signals.astype(np.float32)))
        y = torch.from_numpy(train.labels)
        rates = {
            "(a) bare PyTorch loop, in-memory tensors": bare_loop(x, y, args.epochs),
            "(b) per-sample Dataset + DataLoader (2 workers)": per_sample_loader(
                train.signals, train.labels, args.epochs
            ),
            "(c) deepchrome Lightning fit": lightning_fit(root, args.epochs, train.n_genes),
        }
        full = None if args.skip_full else full_cell_training(root, Path(tmp) / "run")
    a, b, c = rates.values()
    print(f"\nDeepChromeCNN, batch {BATCH}, {train.n_genes} training genes, {torch.get_num_threads()} threads")
    print(f"{'method':<52}{'samples/s':>10}")
    for name, rate in rates.items():
        print(f"{name:<52}{rate:>10.0f}")
    print(f"(c) / (a) = {c / a:.2f}  (target >= 0.80): {'PASS' if c / a >= 0.8 else 'FAIL'}")
    print(f"(c) / (b) = {c / b:.1f}x (target >= 5x):   {'PASS' if c / b >= 5 else 'FAIL'}")
    if full:
        print(
            f"full-size cell, configs/deepchrome.yaml: {full['seconds']:.0f} s for {full['epochs']} epochs "
            f"(best epoch {full['best_epoch']}, test AUROC {full['test_auroc']:.3f})"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
