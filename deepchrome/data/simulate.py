"""A simulator of histone-mark signals with known ground truth, in the release layout.

Generative model (all bins 100 bp, TSS between bins 50 and 51, bins in transcript orientation):

1. Every gene has latent states shared by all cells: an active promoter ``P`` (Bernoulli 0.6),
   Polycomb repression ``K`` (Bernoulli 0.3), a gene-body transcription propensity ``S``
   (Uniform 0..1) and heterochromatin ``H`` (Bernoulli 0.15).
2. Cells fall into ``n_groups`` groups. For each group a fraction ``group_shift`` of genes has its
   states redrawn, then for each cell a further fraction ``cell_shift``: cells of one group are
   more alike than cells of different groups (the planted cell-correlation structure).
3. Log expression ``= 2.5 * P * (1 - K) + 1.5 * S - 2.0 * H + N(0, noise)``. The combinatorial
   rule is the ``P * (1 - K)`` term: promoter H3K4me3 raises expression only without H3K27me3.
   The label is 1 when expression is above the cell's median. With ``rule_shift`` > 0, cells of
   odd-numbered groups also depend on an enhancer state ``E`` (Bernoulli 0.4, marked by
   H3K4me1): ``+ 2.5 * rule_shift * E``, and less on H3K9me3 (``-2.0 * (1 - 0.5 * rule_shift)``):
   the histone-expression relationship then differs between groups (a planted cell-type effect,
   visible in the train x test matrix).
4. Mean counts per mark and bin are a background plus state-dependent shapes: H3K4me3 a peak at
   the TSS (bins 46-55 hold most of it), H3K27me3 a broad domain around the TSS, H3K36me3 a
   ramp over the gene body downstream of the TSS (bins 51-100), H3K9me3 flat, H3K4me1 two
   flanking peaks. Each cell scales each mark by a depth factor in [0.7, 1.3]. Counts are
   gamma-Poisson (negative binomial, dispersion 2): over-dispersed like real ChIP-seq.

``ground_truth.json`` records the rules, the planted pair, the planted bins and the cell groups.

Random rules (``rules="random"``, ``deepchrome simulate --rules random``): the seed draws the rule
from a family instead (:func:`draw_rules`), so a method cannot be tuned to one planted pattern.
Each mark has its own binary state per gene (Bernoulli 0.5) and its signal is a plateau of random
amplitude over a region drawn from :data:`REGIONS` (upstream bins 1-40, promoter 41-60, gene
body 61-100, whole window 1-100). The rule holds one or two pairs, each ``gated`` (``w * A * (1 - B)``:
A raises expression only where B is absent) or ``joint`` (``w * A * B``: both needed), plus with one
pair an ``additive`` mark (``+/- w * C``); the remaining marks carry no label information (their
states never enter the expression). Each term reads its marks over their own regions. The same
rule holds in every cell; cell groups and shifts work as above. ``ground_truth.json`` then names
the terms (kind, marks, regions as 1-based bin ranges, weight), ``planted_pairs`` and
``label_free_marks``. The noise is logistic of scale ``2 * noise`` (1 by default), so the terms
are exactly the log-odds of "high" (divided by the scale): additive terms are additive on the
log-odds, the pairs are the only interactions there.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from deepchrome.data.release import write_release_csv
from deepchrome.data.signals import DEEPCHROME_MARKS, SPLITS, HistoneSignals
from deepchrome.errors import DeepChromeError
from deepchrome.files import check_memory, check_not_replacing, check_out_folder, staged_output

N_BINS = 100
#: 1-based bins (inclusive) where each mark's planted signal lies.
PLANTED_BINS = {
    "H3K4me3": (46, 55),
    "H3K27me3": (31, 70),
    "H3K36me3": (51, 100),
    "H3K4me1": (36, 65),
    "H3K9me3": (1, 100),
}
PLANTED_PAIR = ("H3K4me3", "H3K27me3")
#: Regions the random rule family draws from: 1-based inclusive bin ranges.
REGIONS = {"upstream": (1, 40), "promoter": (41, 60), "gene body": (61, 100), "whole window": (1, 100)}
RULE_FAMILIES = ("fixed", "random")
EXPRESSION_WEIGHTS = {"promoter_active_and_not_polycomb": 2.5, "body": 1.5, "heterochromatin": -2.0}


def _profiles() -> dict[str, np.ndarray]:
    bins = np.arange(N_BINS) + 0.5  # bin centres; the TSS sits at 50
    gauss = lambda centre, width: np.exp(-0.5 * ((bins - centre) / width) ** 2)  # noqa: E731
    body = np.clip((bins - 50) / 15, 0, 1)
    return {
        "H3K4me3": gauss(50, 3),
        "H3K27me3": gauss(50, 12),
        "H3K36me3": body,
        "H3K4me1": gauss(40, 4) + gauss(60, 4),
        "H3K9me3": np.ones(N_BINS),
    }


def _gene_states(rng: np.random.Generator, n: int) -> np.ndarray:
    """States [n, 5]: promoter P, polycomb K, body S, heterochromatin H, enhancer E."""
    return np.stack(
        [
            rng.random(n) < 0.6,
            rng.random(n) < 0.3,
            rng.random(n),
            rng.random(n) < 0.15,
            rng.random(n) < 0.4,
        ],
        axis=1,
    ).astype(np.float64)


def _redraw(rng: np.random.Generator, states: np.ndarray, fraction: float) -> np.ndarray:
    states = states.copy()
    chosen = rng.random(len(states)) < fraction
    states[chosen] = _gene_states(rng, int(chosen.sum()))
    return states


def _check_arguments(
    n_cells: int,
    n_genes: int,
    seed: int,
    n_groups: int,
    group_shift: float,
    cell_shift: float,
    noise: float,
    rule_shift: float,
    rules: str = "fixed",
) -> None:
    """Refuse arguments the simulator cannot honour, naming the ``deepchrome simulate`` option."""
    minimum = {
        "--cells": (n_cells, 1),
        "--genes": (n_genes, len(SPLITS)),
        "--groups": (n_groups, 1),
        "--seed": (seed, 0),
    }
    for option, (value, least) in minimum.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise DeepChromeError(f"{option} {value!r}: expected a whole number")
        if value < least:
            why = f" (at least one gene per split: {', '.join(SPLITS)})" if option == "--genes" else ""
            raise DeepChromeError(f"{option} {value}: must be >= {least}{why}")
    for name, value, top in (
        ("group_shift", group_shift, 1.0),
        ("cell_shift", cell_shift, 1.0),
        ("noise", noise, math.inf),
        ("--rule-shift", rule_shift, math.inf),
    ):
        if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value) and 0 <= value <= top):
            bound = "between 0 and 1" if top == 1.0 else "a finite number >= 0"
            raise DeepChromeError(f"{name} {value!r}: must be {bound}")
    if rules not in RULE_FAMILIES:
        raise DeepChromeError(f"--rules {rules!r}: expected one of {', '.join(RULE_FAMILIES)}")
    if rules == "random" and rule_shift:
        raise DeepChromeError(f"--rule-shift {rule_shift}: applies to --rules fixed only")


def draw_rules(seed: int) -> dict:
    """Draw one rule of the random family (see the module docstring); the seed alone decides it.

    Returns
    -------
    dict
        ``terms``: list of ``{"kind": "gated" | "joint" | "additive", "marks": [...],
        "regions": {mark: [first, last]}, "region_names": {mark: name}, "weight": w}``;
        ``planted_pairs``: the pairs' marks; ``label_free_marks``; ``signal_regions``
        ``{mark: [first, last]}`` where each mark's signal lies (label-free marks too);
        ``amplitude`` and ``background`` per mark.
    """
    # a stream of its own: the rule does not shift when the data-drawing code changes
    rng = np.random.default_rng([seed, 19])
    marks = [str(m) for m in rng.permutation(DEEPCHROME_MARKS)]
    names = list(REGIONS)
    region_name = {mark: names[rng.integers(len(names))] for mark in marks}
    n_pairs = int(rng.integers(1, 3))
    terms = []
    for p in range(n_pairs):
        a, b = marks[2 * p], marks[2 * p + 1]
        terms.append({"kind": str(rng.choice(["gated", "joint"])), "marks": [a, b],
                      "weight": round(float(rng.uniform(3.0, 4.5)), 3)})  # fmt: skip
    if n_pairs == 1:
        sign = 1.0 if rng.random() < 0.5 else -1.0
        terms.append({"kind": "additive", "marks": [marks[2]], "weight": round(sign * float(rng.uniform(1.0, 2.0)), 3)})
    for term in terms:
        term["regions"] = {m: list(REGIONS[region_name[m]]) for m in term["marks"]}
        term["region_names"] = {m: region_name[m] for m in term["marks"]}
    used = {m for term in terms for m in term["marks"]}
    return {
        "terms": terms,
        "planted_pairs": [term["marks"] for term in terms if len(term["marks"]) == 2],
        "label_free_marks": [m for m in DEEPCHROME_MARKS if m not in used],
        "signal_regions": {m: list(REGIONS[region_name[m]]) for m in DEEPCHROME_MARKS},
        "amplitude": {m: round(float(rng.uniform(3.0, 8.0)), 3) for m in DEEPCHROME_MARKS},
        "background": {m: round(float(rng.uniform(0.5, 1.5)), 3) for m in DEEPCHROME_MARKS},
    }


def _describe(term: dict) -> str:
    where = {m: f"{term['region_names'][m]} {m} (bins {r[0]}-{r[1]})" for m, r in term["regions"].items()}
    first = where[term["marks"][0]]
    if term["kind"] == "gated":
        return f"{first} raises expression only without {where[term['marks'][1]]} (weight {term['weight']})"
    if term["kind"] == "joint":
        return f"{first} together with {where[term['marks'][1]]} raises expression (weight {term['weight']})"
    return f"{first} {'raises' if term['weight'] > 0 else 'lowers'} expression (additive, weight {term['weight']})"


def _plateau(first: int, last: int) -> np.ndarray:
    """[bins] a box over 1-based bins first..last with 3-bin soft edges (peaks are not sharp)."""
    bins = np.arange(1, N_BINS + 1)
    rise = 1 / (1 + np.exp(-(bins - first + 0.5) / 1.0))
    fall = 1 / (1 + np.exp((bins - last - 0.5) / 1.0))
    return rise * fall


def _simulate_random(n_cells, n_genes, seed, n_groups, group_shift, cell_shift, noise):
    """Cells and ground truth of the random rule family (see :func:`simulate_cells`)."""
    drawn = draw_rules(seed)
    rng = np.random.default_rng(seed)
    marks = list(DEEPCHROME_MARKS)

    def states(count):  # [count, marks] binary states, one per mark
        return (rng.random((count, len(marks))) < 0.5).astype(np.float64)

    def redraw(current, fraction):
        current = current.copy()
        chosen = rng.random(len(current)) < fraction
        current[chosen] = states(int(chosen.sum()))
        return current

    base = states(n_genes)
    group_states = [redraw(base, group_shift) for _ in range(n_groups)]
    shapes = {m: _plateau(*drawn["signal_regions"][m]) for m in marks}
    gene_ids = np.array([str(100001 + i) for i in range(n_genes)])
    cells, groups = {}, {}
    for c in range(n_cells):
        name = f"S{c + 1:02d}"
        groups[name] = c % n_groups
        state = redraw(group_states[c % n_groups], cell_shift)
        on = {m: state[:, i] for i, m in enumerate(marks)}
        # logistic noise: P(expression > median) = sigmoid((terms - median) / scale) exactly, so the
        # terms are the log-odds of high (over the scale): additive terms stay additive there and the
        # planted pairs are the only interactions (Gaussian noise and a median split would make
        # every pair of marks with effects interact on the log-odds scale)
        log_expression = rng.logistic(0, 2 * noise, n_genes)
        for term in drawn["terms"]:
            a = on[term["marks"][0]]
            if term["kind"] == "gated":
                log_expression += term["weight"] * a * (1 - on[term["marks"][1]])
            elif term["kind"] == "joint":
                log_expression += term["weight"] * a * on[term["marks"][1]]
            else:
                log_expression += term["weight"] * a
        depth = rng.uniform(0.7, 1.3, len(marks))
        # a weak signal in the "off" state (0.15) keeps marks from being all-or-nothing
        mean = np.stack([depth[i] * (drawn["background"][m] + drawn["amplitude"][m] * (0.15 + on[m])[:, None]
                                     * shapes[m]) for i, m in enumerate(marks)], axis=1)  # fmt: skip
        counts = rng.poisson(rng.gamma(2.0, mean / 2.0))
        cells[name] = HistoneSignals(signals=counts.astype(np.uint16),
                                     labels=(log_expression > np.median(log_expression)).astype(np.int64),
                                     gene_ids=gene_ids, marks=DEEPCHROME_MARKS, cell=name, split="all",
                                     expression=log_expression)  # fmt: skip
    truth = {
        "generator": "deepchrome.data.simulate",
        "rules_family": "random",
        "seed": seed,
        "marks": marks,
        "rules": [_describe(term) for term in drawn["terms"]],
        "terms": drawn["terms"],
        "planted_pair": drawn["planted_pairs"][0],
        "planted_pairs": drawn["planted_pairs"],
        "label_free_marks": drawn["label_free_marks"],
        "planted_bins": drawn["signal_regions"],
        "amplitude": drawn["amplitude"],
        "background": drawn["background"],
        "orientation": "transcript (bin 1 upstream)",
        "cell_groups": groups,
    }
    return cells, truth


def simulate_cells(
    n_cells: int = 4,
    n_genes: int = 600,
    seed: int = 0,
    n_groups: int = 2,
    group_shift: float = 0.35,
    cell_shift: float = 0.05,
    noise: float = 0.5,
    rule_shift: float = 0.0,
    rules: str = "fixed",
) -> tuple[dict[str, HistoneSignals], dict]:
    """Simulate ``n_cells`` cells of ``n_genes`` genes each (all genes, unsplit).

    ``rules="fixed"`` (default) plants the rule described in the module docstring;
    ``rules="random"`` lets the seed draw a rule from the random family (:func:`draw_rules`).

    Returns
    -------
    cells
        ``{cell: HistoneSignals}`` with ``signals`` [genes, 5, 100] uint16, ``labels`` [genes],
        ``expression`` [genes] (log scale).
    truth
        The ground truth: rules, planted pair and bins, cell groups.

    Raises
    ------
    DeepChromeError
        For fewer than 1 cell or group, fewer than 3 genes, a negative seed, shifts outside
        0..1, a negative or infinite noise or rule shift, an unknown rule family or a rule shift
        with random rules.
    """
    _check_arguments(n_cells, n_genes, seed, n_groups, group_shift, cell_shift, noise, rule_shift, rules)
    if rules == "random":
        return _simulate_random(n_cells, n_genes, seed, n_groups, group_shift, cell_shift, noise)
    rng = np.random.default_rng(seed)
    base = _gene_states(rng, n_genes)
    group_states = [_redraw(rng, base, group_shift) for _ in range(n_groups)]
    profiles = _profiles()
    amplitude = {"H3K4me3": 14.0, "H3K27me3": 6.0, "H3K36me3": 5.0, "H3K4me1": 3.0, "H3K9me3": 3.0}
    background = {"H3K4me3": 0.6, "H3K27me3": 1.0, "H3K36me3": 0.8, "H3K4me1": 1.0, "H3K9me3": 1.0}
    gene_ids = np.array([str(100001 + i) for i in range(n_genes)])
    cells: dict[str, HistoneSignals] = {}
    groups: dict[str, int] = {}
    for c in range(n_cells):
        name = f"S{c + 1:02d}"
        group = c % n_groups
        groups[name] = group
        states = _redraw(rng, group_states[group], cell_shift)
        promoter, polycomb, body, hetero, enhancer = states.T
        shifted = rule_shift * (group % 2)
        # A weak H3K4me1 at inactive promoters keeps the mark informative but not decisive.
        level = {
            "H3K4me3": promoter * (1 - 0.6 * polycomb) + 0.05,
            "H3K27me3": polycomb,
            "H3K36me3": body * (0.3 + 0.7 * promoter * (1 - polycomb)),
            "H3K4me1": 0.3 + 0.4 * promoter + 0.6 * enhancer,
            "H3K9me3": hetero,
        }
        log_expression = (
            EXPRESSION_WEIGHTS["promoter_active_and_not_polycomb"] * promoter * (1 - polycomb)
            + EXPRESSION_WEIGHTS["body"] * body
            + EXPRESSION_WEIGHTS["heterochromatin"] * (1 - 0.5 * shifted) * hetero
            + 2.5 * shifted * enhancer
            + rng.normal(0, noise, n_genes)
        )
        depth = rng.uniform(0.7, 1.3, len(DEEPCHROME_MARKS))
        mean = np.stack(
            [
                depth[m] * (background[mark] + amplitude[mark] * level[mark][:, None] * profiles[mark])
                for m, mark in enumerate(DEEPCHROME_MARKS)
            ],
            axis=1,
        )
        dispersion = 2.0
        counts = rng.poisson(rng.gamma(dispersion, mean / dispersion))
        cells[name] = HistoneSignals(
            signals=counts.astype(np.uint16),
            labels=(log_expression > np.median(log_expression)).astype(np.int64),
            gene_ids=gene_ids,
            marks=DEEPCHROME_MARKS,
            cell=name,
            split="all",
            expression=log_expression,
        )
    truth = {
        "generator": "deepchrome.data.simulate",
        "rules_family": "fixed",
        "seed": seed,
        "marks": list(DEEPCHROME_MARKS),
        "expression_weights": EXPRESSION_WEIGHTS,
        "rules": [
            "promoter H3K4me3 without H3K27me3 -> high",
            "gene-body H3K36me3 -> high",
            "H3K9me3 -> low",
        ],
        "planted_pair": list(PLANTED_PAIR),
        "planted_pairs": [list(PLANTED_PAIR)],
        "planted_bins": {k: list(v) for k, v in PLANTED_BINS.items()},
        "orientation": "transcript (bin 1 upstream)",
        "cell_groups": groups,
        "rule_shift": rule_shift,
        "group_rules": "odd groups: + 2.5 * rule_shift * enhancer (H3K4me1), H3K9me3 weight x (1 - 0.5 * rule_shift)",
    }
    return cells, truth


def simulate_release(
    out: str | os.PathLike,
    n_cells: int = 4,
    n_genes: int = 600,
    seed: int = 0,
    overwrite: bool = False,
    **kwargs,
) -> dict:
    """Simulate cells and write them in the release layout under ``out``.

    Writes ``out/<cell>/classification/{train,valid,test}.csv`` (genes split in thirds, the same
    split for every cell, as in the release), ``out/expression/<cell>.csv`` (``gene_id,value``,
    expression on a linear scale) and ``out/ground_truth.json``, through a temporary folder inside
    ``out`` that is moved in at the end (:func:`deepchrome.files.staged_output`): a failure
    leaves ``out`` as it was, and files of ``out`` that the simulator does not write stay.

    Returns
    -------
    dict
        The ground truth, including the split of gene ids.

    Raises
    ------
    DeepChromeError
        If ``out`` is a file, or for arguments :func:`simulate_cells` refuses; checked before
        anything is written.
    """
    out = check_out_folder(out)
    if isinstance(n_cells, int) and isinstance(n_genes, int):  # float64 signals, with the copies made on the way
        needed = 4 * 8 * n_cells * n_genes * len(DEEPCHROME_MARKS) * N_BINS
        check_memory(needed, f"--genes {n_genes} x --cells {n_cells}")
    cells, truth = simulate_cells(n_cells=n_cells, n_genes=n_genes, seed=seed, **kwargs)
    written = [out / "ground_truth.json", *(out / "expression" / f"{name}.csv" for name in cells)]
    written += [out / name / "classification" / f"{split}.csv" for name in cells for split in SPLITS]
    check_not_replacing(written, overwrite)
    order = np.random.default_rng(seed + 1).permutation(n_genes)
    bounds = np.linspace(0, n_genes, len(SPLITS) + 1).round().astype(int)
    parts = {split: np.sort(order[bounds[i] : bounds[i + 1]]) for i, split in enumerate(SPLITS)}
    truth["splits"] = {split: [str(g) for g in cells[next(iter(cells))].gene_ids[idx]] for split, idx in parts.items()}
    with staged_output(out) as stage:
        for name, cell in cells.items():
            for split, index in parts.items():
                part = cell.subset(index)
                part.split = split
                write_release_csv(part, stage / name / "classification" / f"{split}.csv")
            expression_path = stage / "expression" / f"{name}.csv"
            expression_path.parent.mkdir(parents=True, exist_ok=True)
            with open(expression_path, "w") as handle:
                handle.write("gene_id,value\n")
                for gene, value in zip(cell.gene_ids, np.exp(cell.expression), strict=True):
                    handle.write(f"{gene},{value:.6g}\n")
        (stage / "ground_truth.json").write_text(json.dumps(truth, indent=1))
    return truth
