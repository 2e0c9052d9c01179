"""The GAN on one real cell's training split (../shared/data/roadmap) for at most 5 minutes on 2 cores,
against the quality targets, judged on the held-out test split (the checkpoint is chosen on the
validation split): two-sample AUROC <= 0.75, real-vs-generated mean profile correlation >= 0.9 per
class x mark (and its noise-aware reading: within 0.1 of min(0.9, what two real gene sets reach)),
conditional fidelity AUROC >= 0.9 (a CNN trained on the same cell's real data).

Baselines measured in the same run: the same numbers for real training genes in place of generated
ones (what a perfect generator of this cell's genes would score).

Run: python bench/bench_gan.py [--cells E003 E123] [--minutes 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from deepchrome.cli import run
from gan.training import fit_gan

REPO = Path(__file__).resolve().parents[1]
ROADMAP = REPO.parent / "shared" / "data" / "roadmap"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def bench_cell(cell: str, minutes: int, tmp: str) -> dict:
    """Train the CNN and the GAN on ``cell``; returns the GAN's metrics.json."""
    run(["fit", "--config", str(REPO / "configs/deepchrome.yaml"), "--data.root", str(ROADMAP),
         "--data.train_cells", f"[{cell}]", "--trainer.default_root_dir", f"{tmp}/{cell}/cnn", *QUIET])  # fmt: skip
    classifier = json.loads(Path(f"{tmp}/{cell}/cnn/metrics.json").read_text())["best_checkpoint"]
    return fit_gan(ROADMAP, cell, f"{tmp}/{cell}/gan", classifier, minutes=minutes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
            ("two-sample AUROC (vs held-out real)", "two_sample_auroc", "two_sample_auroc_real"),
            ("min profile correlation (class x mark)", "profile_correlation_min", None),
            ("max shortfall below min(0.9, real-vs-real)", "profile_correlation_gap_max", None),
            ("conditional fidelity AUROC", "conditional_fidelity_auroc", "conditional_fidelity_auroc_real"),
            ("mark x mark correlation distance", "mark_correlation_distance", "mark_correlation_distance_real"),
        ]
        for name, key, real_key in rows:
            real = f"{q[real_key]:>8.3f}" if real_key else f"{'':>8}"
            target = metrics["targets"].get(key, "(lower is better)")
            verdict = {True: "PASS", False: "FAIL"}.get(met.get(key), "")
            print(f"{name:<44}{q[key]:>8.3f}{real}  {target:<18}{verdict}")
        floor = min(v for k, v in q.items() if k.startswith("profile_correlation_real/"))
        print(f"(two real gene sets of {cell}: lowest class x mark profile correlation {floor:.3f}; "
              f"{q['real_genes']} real test genes against {q['generated_genes']} generated ones)")  # fmt: skip


if __name__ == "__main__":
    main()
