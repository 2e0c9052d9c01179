"""The GAN on one real cell's training split (E003, ../shared/data/roadmap) for at most 5 minutes on
2 cores, against the quality targets: two-sample AUROC <= 0.75, every real-vs-generated mean
profile correlation >= 0.9, conditional fidelity AUROC >= 0.9 (a CNN trained on real E003).

Run: python bench/bench_gan.py [--minutes 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from deepchrome.cli import main as deepchrome

REPO = Path(__file__).resolve().parents[1]
ROADMAP = REPO.parent / "shared" / "data" / "roadmap"


def run(args: list[str]) -> None:
    try:
        deepchrome(args)
    except SystemExit as exit_:
        if exit_.code:
            raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=5)
    args = parser.parse_args()
    quiet = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    with tempfile.TemporaryDirectory() as tmp:
        run(["fit", "--config", str(REPO / "configs/deepchrome.yaml"), "--data.root", str(ROADMAP),
             "--data.train_cells", "[E003]", "--trainer.default_root_dir", f"{tmp}/cnn", *quiet])  # fmt: skip
        classifier = json.loads(Path(f"{tmp}/cnn/metrics.json").read_text())["best_checkpoint"]
        limit = f"00:00:{args.minutes:02d}:00"
        run([
            "gan", "fit", "--config", str(REPO / "configs/gan.yaml"), "--data.root", str(ROADMAP),
            "--data.train_cells", "[E003]", "--model.classifier_checkpoint", classifier,
            "--trainer.max_epochs", "100000", "--trainer.max_time", limit, "--trainer.default_root_dir", f"{tmp}/gan",
            *quiet,
        ])  # fmt: skip
        metrics = json.loads(Path(f"{tmp}/gan/metrics.json").read_text())
    quality = metrics["quality"]
    checks = [
        ("two-sample AUROC (real vs generated)", quality["two_sample_auroc"], "<= 0.75",
         quality["two_sample_auroc"] <= 0.75),
        ("min profile correlation (class x mark)", quality["profile_correlation_min"], ">= 0.9",
         quality["profile_correlation_min"] >= 0.9),
        ("conditional fidelity AUROC", quality["conditional_fidelity_auroc"], ">= 0.9",
         quality["conditional_fidelity_auroc"] >= 0.9),
        ("mark x mark correlation distance", quality["mark_correlation_distance"], "(lower is better)", True),
    ]  # fmt: skip
    epochs, best = metrics["epochs"], metrics["best_epoch"]
    print(f"\nGAN on E003 train (200 genes), {epochs} epochs in {args.minutes} min, best epoch {best}")
    for name, value, target, ok in checks:
        print(f"{name:<42}{value:>8.3f}  target {target:<18}{'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
