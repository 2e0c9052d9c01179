"""What real data scores against itself on the GAN's quality statistics (README's GAN section).

For E003 and E123 (../shared/data/roadmap): the noise-corrected standardized profile difference
(deepchrome.gan.quality.profile_differences) between each pair of the 200-gene splits, worst class x
mark; and the single two-sample AUROCs (30 runs) of the training split vs the test split.

Run: ``OMP_NUM_THREADS=1 python scripts/gan_real_reference.py [ROOT]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from deepchrome.data.inputs import load_cells
from deepchrome.gan.quality import profile_differences, two_sample_aurocs


def main(root: Path) -> None:
    torch.set_num_threads(1)
    for cell in ("E003", "E123"):
        parts = {split: load_cells(root, [cell], split, None, 100, None)[0] for split in ("train", "valid", "test")}
        x = {s: torch.log1p(torch.tensor(np.asarray(p.signals), dtype=torch.float32)) for s, p in parts.items()}
        y = {s: torch.tensor(np.asarray(p.labels)) for s, p in parts.items()}
        marks = list(parts["test"].marks)
        for a, b in (("train", "test"), ("valid", "test"), ("train", "valid")):
            differences = profile_differences(x[b], y[b], x[a], y[a], marks)
            worst = max(differences, key=differences.get)
            print(f"{cell} {a} vs {b}: worst profile difference {differences[worst]:.3f} ({worst})")
        runs = two_sample_aurocs(x["test"], x["train"], repeats=30)
        print(f"{cell} two-sample AUROC train vs test, 30 runs: mean {runs.mean():.3f}, sd {runs.std(ddof=1):.3f}, "
              f"2.5-97.5% {np.quantile(runs, 0.025):.3f}-{np.quantile(runs, 0.975):.3f}")  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1].parent / "shared/data/roadmap")
