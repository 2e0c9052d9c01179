"""Regenerate every figure shown in the README from the shipped configs.

Trains what it needs (the DeepChrome CNN and the 12-parameter linear model on the real E003 and E123
data in ../shared/data/roadmap; runs are cached in runs/figures/ and reused), explains the CNN on
each cell's test split with IntegratedGradients, and writes the figures (PNG + PDF + CSV) to
docs/figures/.

Run: python scripts/make_figures.py [--root ../shared/data/roadmap] [--out docs/figures] [--force]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parents[1]


def train(config: str, root: Path, cell: str, run_dir: Path, force: bool) -> dict:
    import deepchrome

    metrics = run_dir / "metrics.json"
    if force or not metrics.is_file():
        quiet = {"trainer.enable_progress_bar": False, "trainer.enable_model_summary": False}
        deepchrome.fit(
            config, {"data.root": str(root), "data.train_cells": [cell], **quiet}, run_dir=run_dir, overwrite=force
        )
    return json.loads(metrics.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "roadmap")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "figures")
    parser.add_argument("--force", action="store_true", help="retrain even if cached runs exist")
    args = parser.parse_args()
    from deepchrome.interpret.explain import explain

    cells = ["E003", "E123"]
    steps = [(kind, cell) for cell in cells for kind in ("deepchrome", "linear", "explain")]
    runs: dict = {}
    for kind, cell in tqdm(steps, desc="figures"):
        if kind != "explain":
            runs[kind, cell] = train(kind, args.root, cell, args.runs / f"{kind}-{cell}", args.force)
            continue
        work = args.runs / f"explain-{cell}"
        summary = explain(runs["deepchrome", cell]["best_checkpoint"], args.root, [cell], work,
                          linear_checkpoint=runs["linear", cell]["best_checkpoint"], gene_figures=1)  # fmt: skip
        args.out.mkdir(parents=True, exist_ok=True)
        for path in work.iterdir():
            # groups.csv is the <cell>_groups figure's table under another name
            if (
                path.suffix in (".png", ".pdf", ".csv")
                and not path.name.endswith("mark_importance.csv")
                and path.name != "groups.csv"
            ):
                name = path.name if path.name.startswith(cell) else f"{cell}_{path.name}"
                shutil.copy(path, args.out / name)
        tqdm.write(f"{cell}: marks by importance {', '.join(summary['ranked_marks'])}; "
                   f"CNN test AUROC {runs['deepchrome', cell]['test_auroc']:.3f}, "
                   f"linear {runs['linear', cell]['test_auroc']:.3f}")  # fmt: skip
    print(f"figures in {args.out}")


if __name__ == "__main__":
    main()
