"""The cross-cell engine at release scale: 56 simulated cells x 19,802 genes (6,601/6,601/6,600).

1. Simulates the release (written as binary caches with placeholder CSVs, the format every reader
   uses; expression tables for the correlations).
2. Runs one family (`single`, linear model, ``--epochs`` epochs) for all 56 targets with one
   worker: wall time, jobs per minute, and an extrapolation to the full grid of every family.
3. Runs a subset grid (``--subset`` targets) with one worker and with two workers sharing one
   SQLite study: two workers should finish first (each with deepchrome's default threads: the
   cores shared among the training processes, see README "CPU threads").
4. Plans (``deepchrome experiment --plan``, nothing run): the `single` run of step 2, whose
   estimate is printed beside the measured time, and the full grid of every family with the
   paper's CNN (configs/deepchrome.yaml: up to 100 epochs, early stopping with patience 15).
Peak resident memory per worker is reported for every run (target: 2 GB).

Run: python bench/bench_experiment_scale.py [--epochs 3] [--subset 8]
     python bench/bench_experiment_scale.py --plan-only   # step 4 alone (minutes): the full grid's plan
     for the paper's CNN and for the linear model (configs/linear.yaml), both with early stopping
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]


def build(root: Path, cache: Path, n_cells: int, n_genes: int) -> None:
    from deepchrome.data.cache import cache_folder, write_cache
    from deepchrome.data.simulate import simulate_cells

    split = np.random.default_rng(1).permutation(n_genes)
    bounds = np.linspace(0, n_genes, 4).round().astype(int)
    (root / "expression").mkdir(parents=True, exist_ok=True)
    for start in range(0, n_cells, 4):  # four cells at a time bounds the memory of the simulation
        cells, _ = simulate_cells(n_cells=min(4, n_cells - start), n_genes=n_genes, seed=start)
        for offset, signals in enumerate(cells.values()):
            name = f"C{start + offset + 1:03d}"
            for number, part_name in enumerate(("train", "valid", "test")):
                part = signals.subset(np.sort(split[bounds[number] : bounds[number + 1]]))
                part.cell, part.split = name, part_name
                source = root / name / "classification" / f"{part_name}.csv"
                source.parent.mkdir(parents=True, exist_ok=True)
                source.write_text("placeholder: the cache holds the data\n")
                write_cache(part, cache_folder(source, cache), source)
            values = np.exp(signals.expression)
            with open(root / "expression" / f"{name}.csv", "w") as handle:
                handle.write(
                    "gene_id,value\n" + "".join(f"{g},{v:.5g}\n" for g, v in zip(signals.gene_ids, values, strict=True))
                )


def simulated_release(tmp: Path, n_cells: int, n_genes: int) -> tuple[Path, list[str], dict, float]:
    """:func:`build` under ``tmp``: the release root, its cells, an environment naming its cache, seconds."""
    root, cache = tmp / "release", tmp / "cache"
    start = time.perf_counter()
    build(root, cache, n_cells, n_genes)
    cells = sorted(p.name for p in root.iterdir() if p.name.startswith("C"))
    return root, cells, {**os.environ, "DEEPCHROME_CACHE_DIR": str(cache)}, time.perf_counter() - start


def run(config: Path, out: Path, workers: int, env: dict) -> tuple[float, float]:
    """Wall seconds and the largest worker's peak RSS (MB) of `deepchrome experiment` with N workers."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "deepchrome.cli", "experiment", "--config", str(config), "--out", str(out)]
    log = open(out.with_suffix(".log"), "w")  # noqa: SIM115 - closed below, after the workers
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log) for _ in range(workers)]
    peaks = []
    for process in processes:
        _, status, usage = os.wait4(process.pid, 0)
        if status:
            log.close()
            tail = out.with_suffix(".log").read_text()[-1500:]
            raise SystemExit(f"a worker failed (status {status}):\n{tail}")
        peaks.append(usage.ru_maxrss / 1024)
    log.close()
    return time.perf_counter() - start, max(peaks)


def plan(config: Path, env: dict) -> str:
    """What ``deepchrome experiment --config CONFIG --plan`` prints."""
    command = [sys.executable, "-m", "deepchrome.cli", "-q", "experiment", "--config", str(config), "--plan"]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"--plan failed:\n{done.stderr[-1500:]}")
    return done.stdout.strip()


def config_file(path: Path, root: Path, targets: list[str], epochs: int) -> Path:
    path.write_text(yaml.safe_dump({
        "root": str(root), "models": {"linear": str(REPO / "configs" / "linear.yaml")},
        "overrides": {"trainer.max_epochs": epochs, "trainer.enable_progress_bar": False,
                      "trainer.enable_model_summary": False},
        "families": ["single"], "targets": targets, "study_name": path.stem,
    }))  # fmt: skip
    return path


def grid_plan_config(path: Path, root: Path, targets: list[str], model: str) -> Path:
    """An experiment config over every family for ``targets`` with one model's config as shipped."""
    path.write_text(yaml.safe_dump({
        "root": str(root), "models": {model: str(REPO / "configs" / f"{model}.yaml")},
        "overrides": {"trainer.enable_progress_bar": False, "trainer.enable_model_summary": False},
        "targets": targets, "study_name": path.stem,
    }))  # fmt: skip
    return path


def plan_only(args) -> None:
    """Print the plan of the full grid (every family, every target) for the paper's CNN and the linear model."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root, cells, env, simulate_seconds = simulated_release(tmp, args.cells, args.genes)
        print(f"{len(cells)} cells x {args.genes:,} genes (simulated + cached in {simulate_seconds:.0f} s), "
              f"{os.cpu_count()} cores; nothing trained, throughput measured by each plan")  # fmt: skip
        for model in ("deepchrome", "linear"):
            text = plan(grid_plan_config(tmp / f"grid_{model}.yaml", root, cells, model), env)
            print(f"\nplan of the full grid, every family, configs/{model}.yaml:\n{text}")


def main() -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--subset", type=int, default=8)
    parser.add_argument("--cells", type=int, default=56)
    parser.add_argument("--genes", type=int, default=19_802)
    parser.add_argument("--plan-only", action="store_true", help="only plan the full grid (CNN and linear)")
    args = parser.parse_args()
    if args.plan_only:
        plan_only(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root, cells, env, simulate_seconds = simulated_release(tmp, args.cells, args.genes)
        full_seconds, full_peak = run(
            config_file(tmp / "single.yaml", root, cells, args.epochs), tmp / "single", 1, env
        )
        subset = cells[: args.subset]
        one_seconds, one_peak = run(config_file(tmp / "one.yaml", root, subset, args.epochs), tmp / "one", 1, env)
        two_seconds, two_peak = run(config_file(tmp / "two.yaml", root, subset, args.epochs), tmp / "two", 2, env)
        single_plan = plan(config_file(tmp / "plan_single.yaml", root, cells, args.epochs), env)
        grid = yaml.safe_load((tmp / "plan_single.yaml").read_text())
        grid.update(models={"cnn": str(REPO / "configs" / "deepchrome.yaml")}, families=None, study_name="grid")
        grid["overrides"].pop("trainer.max_epochs")
        (tmp / "plan_grid.yaml").write_text(yaml.safe_dump(grid))
        grid_plan = plan(tmp / "plan_grid.yaml", env)
    per_job = full_seconds / len(cells)
    # every family for every target: single, test_on_rest (shared with single), 2 x (all, random, high,
    # somewhat) x 2 selections (strict inclusive_all is one job), size (4 fractions + 3 cell counts)
    grid_jobs = len(cells) * (1 + 4 * 2 * 2 + 6) - len(cells) + 1
    print(f"\n{len(cells)} cells x {args.genes:,} genes (simulated + cached in {simulate_seconds:.0f} s), "
          f"linear model, {args.epochs} epochs, {os.cpu_count()} cores")  # fmt: skip
    print(f"family `single`, {len(cells)} jobs, 1 worker: {full_seconds:.0f} s ({per_job:.1f} s per job), "
          f"peak RSS {full_peak:.0f} MB")  # fmt: skip
    print(f"full grid (~{grid_jobs} jobs, training sets up to 55 cells, so longer jobs): at least "
          f"{grid_jobs * per_job / 3600:.1f} h with one worker at this job length")  # fmt: skip
    print(f"{len(subset)} jobs, 1 worker: {one_seconds:.0f} s (peak {one_peak:.0f} MB); 2 workers: {two_seconds:.0f} s "
          f"(peak {two_peak:.0f} MB per worker): 2 workers {one_seconds / two_seconds:.2f}x faster")  # fmt: skip
    estimate = single_plan.splitlines()[-1]
    print(f"plan of the `single` run above: {estimate}\n  measured: {full_seconds:.0f} s (imports and worker start "
          "included)")  # fmt: skip
    print(f"plan of the full grid, every family, the paper's CNN (configs/deepchrome.yaml):\n{grid_plan}")


if __name__ == "__main__":
    main()
