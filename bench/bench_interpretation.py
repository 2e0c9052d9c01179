"""Interpretation on the random-rule simulator family: does the map find rules it was not tuned to?

For each seed: ``simulate --rules random`` draws a rule (one or two gated/joint pairs over
upstream, promoter, gene-body or whole-window regions, an additive mark, label-free marks), a
classifier is trained on one simulated cell (``deepchrome.fit``), and on its test genes:

* the combinatorial map (:func:`deepchrome.gan.visualize.combinatorial_map`, regions estimated by
  :func:`~deepchrome.gan.visualize.mark_regions`) must rank a planted pair first with its
  interval above the null (``margin`` = ``ci_low`` - ``null_q95`` > 0);
* attributions: every mark of a rule term must carry more attribution than every label-free
  mark, and each term mark's attribution mass must lie mostly in its planted region; the table
  also gives the smallest overlap (IoU, bins in both / in either) of a rule mark's estimated
  regions with its planted region;
* prototypes (input optimization, high minus low, averaged over the mark's planted region) must
  move each pair mark in the direction of its rule (gated: A up, B down; joint: both up).

Prints one row per seed and the pass counts (the issue's target: 9 of 10 seeds for the map).

``--gan``: the issue's acceptance check, the map on GAN-generated genes. Per seed, after the
classifier, the packaged ``gan`` config is trained on the same simulated cell with the classifier
attached (``model.classifier_checkpoint``) for ``--gan-minutes`` (``trainer.max_time``), and
:func:`deepchrome.gan.visualize.visualize` (what ``deepchrome gan visualize`` runs) draws the map
with ``--samples`` generated genes as its background; the table then gives the planted pair's rank,
interaction, interval, null q95 and margin on GAN samples beside those on real test genes, and the
GAN's test two-sample AUROC (0.5 = generated genes indistinguishable from real ones).

Run: python bench/bench_interpretation.py [--seeds 10] [--genes 3000] [--epochs 30]
     [--samples 300] [--config deepchrome_fast] [--gan [--gan-minutes 1.5]]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

#: sign of each mark's effect on expression, per term kind (first mark, second mark)
EFFECT_SIGNS = {"gated": (1, -1), "joint": (1, 1)}


def check_seed(seed: int, workdir: str | Path, genes: int = 3000, epochs: int = 30, samples: int = 300,
               config: str = "deepchrome_fast", bootstrap: int = 50, permutations: int = 200,
               prototypes: bool = True, gan_minutes: float | None = None,
               threads: int | None = None) -> dict:  # fmt: skip
    """Simulate one random rule, train a classifier, and score the map, attributions and prototypes.

    Returns
    -------
    dict
        ``truth`` (ground_truth.json), ``table`` (the map's ranked pairs, with a ``planted``
        column), ``regions`` (estimated, per mark), ``rank``/``margin``/``interaction``/
        ``ci_low``/``ci_high``/``null_q95`` of the best-ranked planted pair, ``map_pass``,
        ``importance`` {mark: mean |attribution summed over bins|}, ``marks_pass``,
        ``in_region`` {mark: fraction of its attribution mass in its planted region},
        ``share`` {mark: that region's fraction of the bins}, ``regions_pass``, ``region_iou``
        {mark: overlap of the estimated regions with the planted one, bins in both / in either},
        ``prototype_shift`` {mark: high - low prototype over its planted region} and
        ``prototypes_pass`` (``None`` when ``prototypes`` is false).
        With ``gan_minutes``: ``gan`` (:func:`check_gan`'s dict: the same map on GAN samples).
    """
    from deepchrome.api import fit
    from deepchrome.checkpoints import load_classifier
    from deepchrome.data.inputs import concatenate, load_cells, model_input
    from deepchrome.data.simulate import simulate_release
    from deepchrome.gan.checkpoint import gan_transform
    from deepchrome.gan.visualize import combinatorial_map, input_optimization, mark_regions

    workdir = Path(workdir)
    truth = simulate_release(workdir / "data", n_cells=1, n_genes=genes, seed=seed, rules="random", overwrite=True)
    run = fit(config, {"data.root": str(workdir / "data"), "data.train_cells": ["S01"], "trainer.max_epochs": epochs,
                       "trainer.enable_progress_bar": False, "trainer.enable_model_summary": False},
              run_dir=workdir / "cnn", overwrite=True, threads=threads)  # fmt: skip
    net, meta = load_classifier(run.best_checkpoint)
    net.eval()
    marks, transform = list(meta["marks"]), gan_transform(meta)
    x = model_input(concatenate(load_cells(workdir / "data", ["S01"], "test", marks, 100)).signals, transform)[:samples]
    floor = transform(torch.zeros(1, len(marks), 1))[0, :, 0]
    regions, profile, contribution = mark_regions(net, x, floor)
    _, table = combinatorial_map(net, x, marks, regions, bootstrap=bootstrap, permutations=permutations, seed=seed,
                                 floor=floor)  # fmt: skip
    planted = [set(pair) for pair in truth["planted_pairs"]]
    table["planted"] = [{a, b} in planted for a, b in zip(table.mark_a, table.mark_b, strict=True)]
    best = table[table.planted].iloc[0]
    result = {"truth": truth, "table": table, "regions": dict(zip(marks, regions, strict=True)),
              "test_auroc": run.metrics["test_auroc"], **{key: best[key] for key in
              ("rank", "interaction", "ci_low", "ci_high", "null_q95", "margin")}}  # fmt: skip
    result["map_pass"] = bool(best["rank"] == 1 and best["margin"] > 0)
    importance = dict(zip(marks, contribution.tolist(), strict=True))
    term_marks = sorted({m for term in truth["terms"] for m in term["marks"]})
    free = truth["label_free_marks"]
    result["importance"] = importance
    result["marks_pass"] = bool(min(importance[m] for m in term_marks) > max(importance[m] for m in free))
    planted_bins = {m: r for term in truth["terms"] for m, r in term["regions"].items()}
    result["in_region"] = {m: float(profile[marks.index(m), r[0] - 1 : r[1]].sum() / profile[marks.index(m)].sum())
                           for m, r in planted_bins.items()}  # fmt: skip
    result["share"] = {m: (r[1] - r[0] + 1) / profile.shape[1] for m, r in planted_bins.items()}
    # the regions the map used against the planted ones: bins in both / bins in either
    result["region_iou"] = {}
    for m, (first, last) in planted_bins.items():
        found = {b for a, z in regions[marks.index(m)] for b in range(a, z + 1)}
        planted_set = set(range(first, last + 1))
        result["region_iou"][m] = len(found & planted_set) / len(found | planted_set)
    # mostly inside (>= 60 %) and at least 1.5x what a flat profile would put there (whole window: 100 %)
    result["regions_pass"] = all(result["in_region"][m] >= min(0.6, 1.5 * result["share"][m]) for m in planted_bins)
    result["prototype_shift"], result["prototypes_pass"] = {}, None
    if prototypes:
        scale = x.amax(dim=(0, 2))
        high = input_optimization(net, 1, scale, x.shape[-1], seed=seed)[0]
        low = input_optimization(net, 0, scale, x.shape[-1], seed=seed)[0]
        signs = {}
        for term in truth["terms"]:
            kinds = EFFECT_SIGNS.get(term["kind"], (np.sign(term["weight"]),))
            signs.update(zip(term["marks"], kinds, strict=True))
        for m, (first, last) in planted_bins.items():
            i = marks.index(m)
            result["prototype_shift"][m] = float((high[i, first - 1 : last] - low[i, first - 1 : last]).mean())
        result["prototypes_pass"] = all(np.sign(result["prototype_shift"][m]) == signs[m] for m in signs)
    if gan_minutes is not None:
        result["gan"] = check_gan(workdir, run.best_checkpoint, planted, gan_minutes, samples, bootstrap,
                                  permutations, seed, threads)  # fmt: skip
    return result


def check_gan(workdir: Path, classifier_checkpoint: str, planted: list[set], minutes: float, samples: int,
              bootstrap: int, permutations: int, seed: int, threads: int | None = None) -> dict:  # fmt: skip
    """Train the packaged GAN on ``workdir/data`` cell S01 with the classifier attached for ``minutes``,
    run :func:`deepchrome.gan.visualize.visualize` (``samples`` generated genes as the map's
    background) and score its ``interactions.csv`` like the real-sample map.

    Returns
    -------
    dict
        ``rank``/``interaction``/``ci_low``/``ci_high``/``null_q95``/``margin`` of the best-ranked
        planted pair, ``map_pass``, ``top`` (the first-ranked pair, "A x B"), ``epochs`` trained,
        ``two_sample_auroc`` (the GAN's test quality), ``selected_on_validation`` and ``table``.
    """
    import pandas as pd

    from deepchrome.config import load_config
    from deepchrome.gan.visualize import visualize
    from deepchrome.runs import train

    seconds = round(minutes * 60)
    overrides = {"data.root": str(workdir / "data"), "data.train_cells": ["S01"],
                 "model.classifier_checkpoint": str(classifier_checkpoint), "trainer.max_epochs": 100_000,
                 "trainer.max_time": f"00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}",
                 "trainer.enable_progress_bar": False, "trainer.enable_model_summary": False}  # fmt: skip
    gan = train(load_config("gan", overrides), workdir / "gan", gan=True, overwrite=True, threads=threads)
    # a run stopped before its first validation has no best checkpoint: its last weights, as the report does
    checkpoint = gan.best_checkpoint or str(workdir / "gan" / "checkpoints" / "last.ckpt")
    visualize(checkpoint, classifier_checkpoint, workdir / "data", ["S01"], workdir / "gan_visualize",
              samples=samples, bootstrap=bootstrap, seed=seed, permutations=permutations, overwrite=True)  # fmt: skip
    table = pd.read_csv(workdir / "gan_visualize" / "interactions.csv")
    table["planted"] = [{a, b} in planted for a, b in zip(table.mark_a, table.mark_b, strict=True)]
    best = table[table.planted].iloc[0]
    top = table.sort_values("rank").iloc[0]
    quality = gan.metrics.get("test_quality") or {}
    result = {key: best[key] for key in ("rank", "interaction", "ci_low", "ci_high", "null_q95", "margin")}
    result.update(map_pass=bool(best["rank"] == 1 and best["margin"] > 0), top=f"{top.mark_a} x {top.mark_b}",
                  two_sample_auroc=quality.get("two_sample_auroc", float("nan")), epochs=gan.metrics.get("epochs"),
                  selected_on_validation=gan.metrics.get("selected_on_validation"), table=table)  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--genes", type=int, default=3000, help="simulated genes, split in thirds (default 3000)")
    parser.add_argument("--epochs", type=int, default=30, help="classifier epochs at most (default 30)")
    parser.add_argument("--samples", type=int, default=300, help="test genes the map and attributions use")
    parser.add_argument("--config", default="deepchrome_fast", help="classifier config (default deepchrome_fast)")
    parser.add_argument(
        "--gan",
        action="store_true",
        help="also train a GAN per seed and draw the map on its samples (deepchrome gan visualize)",
    )
    parser.add_argument("--gan-minutes", type=float, default=1.5, help="GAN training time per seed (default 1.5)")
    args = parser.parse_args()
    if args.gan_minutes <= 0:
        parser.error(f"--gan-minutes {args.gan_minutes}: must be > 0")
    torch.set_num_threads(1)
    gan_minutes, threads = (args.gan_minutes, 1) if args.gan else (None, None)
    print(f"random-rule family: seeds 0-{args.seeds - 1}, {args.genes} genes, {args.epochs} epochs, "
          f"{args.samples} test genes, {args.config}"
          + (f"; GAN: packaged gan config, {args.gan_minutes:g} min per seed, {args.samples} generated genes"
             if args.gan else ""))  # fmt: skip
    header = (f"{'seed':>4} {'AUROC':>6} {'rank':>4} {'interaction':>11} {'95% CI':>15} {'null q95':>8} {'margin':>7} "
              f"{'marks':>5} {'regions':>7} {'IoU':>4} {'protos':>6}  rule")  # fmt: skip
    if args.gan:
        header = (f"{'seed':>4} {'AUROC':>6} {'rank':>4} {'interaction':>11} {'95% CI':>15} {'null q95':>8} "
                  f"{'margin':>7} | {'GAN 2sAUROC':>11} {'epochs':>6} {'rank':>4} {'interaction':>11} "
                  f"{'95% CI':>15} {'null q95':>8} {'margin':>7}  GAN map's first pair; rule")  # fmt: skip
    print(header)
    passes = {"map": 0, "marks": 0, "regions": 0, "prototypes": 0}
    gan_passes = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            r = check_seed(seed, Path(tmp) / str(seed), args.genes, args.epochs, args.samples, args.config,
                           gan_minutes=gan_minutes, threads=threads)  # fmt: skip
            for key in passes:
                passes[key] += bool(r[f"{key}_pass"])
            yes = {True: "ok", False: "FAIL", None: "-"}
            interval = f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            if args.gan:
                g = r["gan"]
                gan_passes += g["map_pass"]
                gan_interval = f"[{g['ci_low']:.3f}, {g['ci_high']:.3f}]"
                print(f"{seed:>4} {r['test_auroc']:>6.3f} {int(r['rank']):>4} {r['interaction']:>11.3f} "
                      f"{interval:>15} {r['null_q95']:>8.3f} {r['margin']:>7.3f} | {g['two_sample_auroc']:>11.3f} "
                      f"{g['epochs']!s:>6} {int(g['rank']):>4} {g['interaction']:>11.3f} {gan_interval:>15} "
                      f"{g['null_q95']:>8.3f} {g['margin']:>7.3f}  {g['top']}; "
                      f"{' + '.join(r['truth']['rules'])}", flush=True)  # fmt: skip
                continue
            print(f"{seed:>4} {r['test_auroc']:>6.3f} {int(r['rank']):>4} {r['interaction']:>11.3f} "
                  f"{interval:>15} {r['null_q95']:>8.3f} {r['margin']:>7.3f} "
                  f"{yes[r['marks_pass']]:>5} {yes[r['regions_pass']]:>7} {min(r['region_iou'].values()):>4.2f} "
                  f"{yes[r['prototypes_pass']]:>6}  "
                  f"{' + '.join(r['truth']['rules'])}", flush=True)  # fmt: skip
    n = args.seeds
    print(f"planted pair first with margin > 0: {passes['map']}/{n} (target 9/{n}); term marks above label-free: "
          f"{passes['marks']}/{n}; attribution mass in planted regions: {passes['regions']}/{n}; prototypes move "
          f"pair marks the rule's way: {passes['prototypes']}/{n}")  # fmt: skip
    if args.gan:
        print(f"GAN samples (deepchrome gan visualize): planted pair first with margin > 0: {gan_passes}/{n} "
              f"(target 9/{n})")  # fmt: skip


if __name__ == "__main__":
    main()
