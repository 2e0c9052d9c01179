"""`deepchrome fit` (whole process) against the DeepChrome 2.0 training loop as shipped, same data and epochs.

Both run as fresh processes on the same simulated full-size cell (6,601 training / 6,601 validation
/ 6,600 test genes) with the paper's settings: the DeepChrome CNN, batch 32, SGD (lr 1e-3,
momentum 0.9), validation AUROC every epoch, the best epoch's model tested.

(a) baseline, reproducing the DeepChrome 2.0 loop: a per-sample ``Dataset`` of float tensors, a
    ``DataLoader(batch_size=32, shuffle=True, num_workers=5)`` whose workers start anew every epoch,
    SGD, and a full validation pass per epoch (the same loader settings), then the test split;
(b) ``deepchrome fit --config deepchrome`` with ``--trainer.max_epochs`` set to the same epochs
    (early stopping may end it sooner: the baseline then runs as many epochs as the fit did);
(c) the floor: a bare in-memory loop with the same network (``DeepChromeCNN``, deepchrome's
    forward), batch 32, SGD, shuffled index batches of one float tensor, validation in batches of
    1024 under ``inference_mode`` each epoch, the best epoch tested. Only ``torch`` (and
    torchmetrics' AUROC) are imported: no Lightning, no outputs. A loop with this per-step compute
    takes about this long, so (a) / (c) is about the most (a) / (b) can reach on this machine,
    and (b) / (c) is what deepchrome adds over the floor.

Each time is the whole process, from interpreter start to exit (imports, data, training, test,
outputs). The data is parsed into the deepchrome cache before either runs, and the baseline reads
the same arrays from .npy files, so neither pays for CSV parsing.

Run: python bench/bench_fit.py [--epochs 20] [--threads N]
Target: (a) / (b) >= 3x (reachable only where (a) / (c) is above 3x); test AUROC of the two within
0.01 (same data; different seeds of initialisation and shuffling, so not equal).
``--threads N`` sets OMP_NUM_THREADS=N for both processes (default: unset, each chooses; deepchrome
then uses the usable cores shared among its training processes, see README "CPU threads").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The DeepChrome 2.0 loop, run as its own script so its process start counts as the fit's does.
BASELINE = r"""
import copy, sys, time
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchmetrics.functional.classification import binary_auroc  # sklearn's roc_auc_score in the original

folder, epochs = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)


class HistoneData(Dataset):
    def __init__(self, split):
        signals = np.load(f"{folder}/{split}_x.npy")
        labels = np.load(f"{folder}/{split}_y.npy")
        self.x = [torch.tensor(np.log1p(s), dtype=torch.float32) for s in signals]
        self.y = [torch.tensor(int(v)) for v in labels]

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class DeepChrome(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(5, 50, 10), nn.ReLU(), nn.MaxPool1d(5), nn.Dropout(0.5))
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(900, 625), nn.ReLU(), nn.Linear(625, 125), nn.ReLU(),
                                nn.Linear(125, 2))

    def forward(self, x):
        return self.fc(self.conv(x))


def scores(model, loader):
    model.eval()
    probabilities, labels = [], []
    with torch.no_grad():
        for x, y in loader:
            probabilities.append(torch.softmax(model(x), 1)[:, 1])
            labels.append(y)
    model.train()
    return float(binary_auroc(torch.cat(probabilities), torch.cat(labels)))


train, valid, test = HistoneData("train"), HistoneData("valid"), HistoneData("test")
train_loader = DataLoader(train, batch_size=32, shuffle=True, num_workers=5)
valid_loader = DataLoader(valid, batch_size=32, shuffle=False, num_workers=5)
test_loader = DataLoader(test, batch_size=32, shuffle=False, num_workers=5)
model = DeepChrome()
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
best, best_state = -1.0, None
for epoch in range(epochs):
    for x, y in train_loader:
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    auroc = scores(model, valid_loader)
    if auroc > best:
        best, best_state = auroc, copy.deepcopy(model.state_dict())
model.load_state_dict(best_state)
print(f"RESULT {scores(model, test_loader):.6f}")
"""


# The floor: the same network and batches with nothing around them (run as its own script too).
BARE = r"""
import copy, sys
import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import binary_auroc

from deepchrome.models import DeepChromeCNN

folder, epochs = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
x = {s: torch.from_numpy(np.log1p(np.load(f"{folder}/{s}_x.npy"))) for s in ("train", "valid", "test")}
y = {s: torch.from_numpy(np.load(f"{folder}/{s}_y.npy")).long() for s in ("train", "valid", "test")}
model = DeepChromeCNN(n_marks=x["train"].shape[1], n_bins=x["train"].shape[2])
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)


def score(split):
    model.eval()
    with torch.inference_mode():  # batches of 1024, as deepchrome's data module evaluates
        logits = torch.cat([model(chunk) for chunk in x[split].split(1024)])
        auroc = float(binary_auroc(torch.softmax(logits, 1)[:, 1], y[split]))
    model.train()
    return auroc


best, best_state = -1.0, None
for epoch in range(epochs):
    for batch in torch.randperm(len(y["train"])).split(32):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x["train"][batch]), y["train"][batch]).backward()
        optimizer.step()
    auroc = score("valid")
    if auroc > best:
        best, best_state = auroc, copy.deepcopy(model.state_dict())
model.load_state_dict(best_state)
print(f"RESULT {score('test'):.6f}")
"""


def timed(command: list[str], env: dict, cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:4])} ... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20, help="epochs of each (default 20)")
    parser.add_argument("--genes", type=int, default=19_803, help="genes of the simulated cell, split in thirds")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for both processes (default: unset)")
    args = parser.parse_args()

    import numpy as np

    from deepchrome.data.cache import load_split
    from deepchrome.data.simulate import simulate_release

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root, arrays = tmp / "release", tmp / "arrays"
        env = {**os.environ, "DEEPCHROME_CACHE_DIR": str(tmp / "cache"), "PYTHONPATH": str(REPO)}
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        os.environ["DEEPCHROME_CACHE_DIR"] = env["DEEPCHROME_CACHE_DIR"]
        simulate_release(root, n_cells=1, n_genes=args.genes, seed=0)
        arrays.mkdir()
        for split in ("train", "valid", "test"):
            part = load_split(root, "S01", split)  # parses the CSV once and fills the cache
            np.save(arrays / f"{split}_x.npy", np.asarray(part.signals, dtype=np.float32))
            np.save(arrays / f"{split}_y.npy", np.asarray(part.labels))
        n_train = len(part.labels)
        run_dir = tmp / "run"
        fit_command = [sys.executable, "-m", "deepchrome.cli", "-q", "fit", "--config", "deepchrome",
                       "--data.root", str(root), "--data.train_cells", "[S01]",
                       "--trainer.max_epochs", str(args.epochs),
                       "--trainer.default_root_dir", str(run_dir)]  # fmt: skip
        fit_seconds, _ = timed(fit_command, env, tmp)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        epochs = int(metrics["epochs"])
        script = tmp / "deepchrome2_loop.py"
        script.write_text(BASELINE)
        base_seconds, out = timed([sys.executable, str(script), str(arrays), str(epochs)], env, tmp)
        base_auroc = float(out.split("RESULT")[-1])
        script = tmp / "bare_loop.py"
        script.write_text(BARE)
        bare_seconds, out = timed([sys.executable, str(script), str(arrays), str(epochs)], env, tmp)
        bare_auroc = float(out.split("RESULT")[-1])
    ratio = base_seconds / fit_seconds
    threads = args.threads or "unset (each process chooses)"
    print(f"\nDeepChromeCNN, paper settings, batch 32, {n_train:,} training genes, {epochs} epochs, "
          f"{os.cpu_count()} cores, OMP_NUM_THREADS {threads}; whole processes")  # fmt: skip
    print(f"{'method':<62}{'seconds':>9}{'test AUROC':>12}")
    print(f"{'(a) DeepChrome 2.0 loop (per-sample Dataset, 5 loader workers)':<62}{base_seconds:>9.1f}"
          f"{base_auroc:>12.4f}")  # fmt: skip
    print(f"{'(b) deepchrome fit --config deepchrome':<62}{fit_seconds:>9.1f}{metrics['test_auroc']:>12.4f}")
    print(f"{'(c) floor: bare in-memory loop, same network':<62}{bare_seconds:>9.1f}{bare_auroc:>12.4f}")
    print(f"(a) / (b) = {ratio:.2f}x (target >= 3x): {'PASS' if ratio >= 3 else 'FAIL'}")
    print(
        f"(a) / (c) = {base_seconds / bare_seconds:.2f}x: about the most any loop with this step compute reaches here; "
        f"(b) / (c) = {fit_seconds / bare_seconds:.2f}: deepchrome fit's cost over the floor"
    )
    difference = abs(base_auroc - metrics["test_auroc"])
    print(f"test AUROC difference {difference:.4f} (target <= 0.01): {'PASS' if difference <= 0.01 else 'FAIL'}")


if __name__ == "__main__":
    main()
