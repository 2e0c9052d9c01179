"""The GAN on one real cell's training split (../shared/data/roadmap) for at most 5 minutes on 2 cores,
against the quality targets, judged on the held-out test split (the checkpoint is chosen on the
validation split): two-sample AUROC <= 0.75, real-vs-generated mean profile correlation >= 0.9 per
class x mark whose real profile is measured, corrected for the real genes' sampling noise, and no
profile more than 0.1 below min(0.9, what two real gene sets reach); conditional fidelity AUROC
>= 0.9 (a CNN trained on the same cell's real data). The raw profile correlation is printed too.

Baselines measured in the same run: the same numbers for real training genes in place of generated
ones (what a perfect generator of this cell's genes would score).

Run: python bench/bench_gan.py [--cells E003 E123] [--minutes 5]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import deepchrome
from deepchrome.gan.fitting import fit_gan

REPO = Path(__file__).resolve().parents[1]
ROADMAP = REPO.parent / "shared" / "data" / "roadmap"
QUIET = {"trainer.enable_progress_bar": False, "trainer.enable_model_summary": False}


def bench_cell(cell: str, minutes: int, tmp: str) -> dict:
    """Train the CNN and the GAN on ``cell``; returns the GAN's metrics.json."""
    cnn = deepchrome.fit("deepchrome", {"data.root": str(ROADMAP), "data.train_cells": [cell], **QUIET},
                         run_dir=f"{tmp}/{cell}/cnn")  # fmt: skip
    classifier = cnn.best_checkpoint
    return fit_gan(ROADMAP, cell, f"{tmp}/{cell}/gan", classifier, minutes=minutes)


def lowest(quality: dict, prefix: str) -> float:
    """The lowest non-NaN value among ``quality``'s keys starting with ``prefix`` (NaN if none)."""
    values = [v for k, v in quality.items() if k.startswith(prefix) and not math.isnan(v)]
    return min(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", nargs="+", default=["E003", "E123"])
    parser.add_argument("--minutes", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {cell: bench_cell(cell, args.minutes, tmp) for cell in args.cells}
    for cell, metrics in results.items():
        q = metrics["test_quality"]
        met = metrics["targets_met_on_test"]
        print(f"\nGAN on {cell} train (200 genes), {metrics['epochs']} epochs in {args.minutes} min, "
              f"best epoch {metrics['best_epoch']} (validation); test split:")  # fmt: skip
        print(f"{'':<44}{'GAN':>8}{'real':>8}  target")
        rows = [
            ("two-sample AUROC (vs held-out real)", "two_sample_auroc", q["two_sample_auroc_real"]),
            ("min profile correlation, raw", "profile_correlation_min", lowest(q, "profile_correlation_real/")),
            (f"min corrected profile r ({q['profiles_measured']} measured)", "profile_correlation_corrected_min",
             lowest(q, "profile_correlation_corrected_real/")),
            ("max shortfall below min(0.9, real-vs-real)", "profile_correlation_gap_max", None),
            ("max standardized profile difference", "profile_difference_max", q["profile_difference_real_max"]),
            ("  its excess over real-vs-real", "profile_difference_excess", None),
            ("conditional fidelity AUROC", "conditional_fidelity_auroc", q["conditional_fidelity_auroc_real"]),
            ("mark x mark correlation distance", "mark_correlation_distance", q["mark_correlation_distance_real"]),
        ]  # fmt: skip
        for name, key, real_value in rows:
            real = f"{real_value:>8.3f}" if real_value is not None else f"{'':>8}"
            target = metrics["targets"].get(key, "(lower is better)" if "distance" in key else "")
            verdict = {True: "PASS", False: "FAIL"}.get(met.get(key), "")
            print(f"{name:<44}{q[key]:>8.3f}{real}  {target:<18}{verdict}")
        print(f"(two-sample AUROC of real vs real, {q['two_sample_runs']} runs: 2.5-97.5% "
              f"{q['two_sample_auroc_real_q025']:.3f}-{q['two_sample_auroc_real_q975']:.3f}; generated genes "
              f"beyond it: {q['two_sample_beyond_real']})")  # fmt: skip
        print(f"(real: a training-split sample in place of generated genes; {q['real_genes']} real test "
              f"genes against {q['generated_genes']} generated ones)")  # fmt: skip


if __name__ == "__main__":
    main()
