"""GAN-based visualizations: class-conditional profiles, class prototypes (GAN prior vs input
optimization, summarised per region) and the combinatorial map of mark pairs with a ranked
interaction table.

The map assumes no region: :func:`mark_regions` estimates where each mark acts from the
classifier's attributions, and :func:`combinatorial_map` varies each mark over its own regions, on
any genes (GAN samples in :func:`visualize`), reporting per pair the interaction on log-odds, a
bootstrap interval and a sign-flip permutation null.

Every figure is written as PNG and PDF with its numbers as CSV.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepchrome import files
from deepchrome.checkpoints import load_classifier
from deepchrome.config import check_whole_number
from deepchrome.data.inputs import concatenate, load_cells, model_input
from deepchrome.data.signals import HistoneSignals
from deepchrome.gan.checkpoint import check_compatible, condition_cell, gan_transform, load_gan
from deepchrome.gan.generation import generate
from deepchrome.gan.models import observe
from deepchrome.gan.quality import PROMOTER
from deepchrome.interpret.figures import plt, save_figure

#: The names (without suffix) of the files :func:`visualize` writes.
VISUALIZE_OUTPUTS = ("visualize", "interactions", "profiles", "prototypes", "combinatorial_map")

#: Largest seed: numpy's and torch's generators take 32-bit-safe seeds.
SEED_MAX = 2**32 - 1


def sample_release(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    cell: str,
    n_per_class: int,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write ``n_per_class`` generated genes per class as ``out/<cell>/classification/{train,valid,test}.csv``.

    Signals are mapped back to counts (inverse transform, rounded); genes are split in thirds per
    class so every split is balanced. Gene ids are ``gan000001``... The files are written into a
    temporary folder inside ``out`` and moved in at the end (:func:`deepchrome.files.staged_output`):
    a failure leaves ``out`` as it was, and other files of an existing cell folder stay.

    Raises
    ------
    DeepChromeError
        If ``cell`` is not a plain name (``--cell ../x`` would write outside ``out``),
        ``n_per_class`` < 1, ``seed`` < 0, ``out`` is a file, or the checkpoint is not a GAN's;
        all before anything is written.
    """
    from deepchrome.data.release import write_release_csv
    from deepchrome.data.signals import SPLITS
    from deepchrome.files import check_not_replacing, check_out_folder, staged_output
    from deepchrome.names import check_name

    check_name(cell, "--cell", "cell name")
    check_whole_number("--n", n_per_class, 1)
    check_whole_number("--seed", seed, 0, SEED_MAX)
    check_out_folder(out)
    check_not_replacing([Path(out) / cell / "classification" / f"{split}.csv" for split in SPLITS], overwrite)
    generator, meta = load_gan(checkpoint)
    files.check_memory(2 * n_per_class * meta["n_marks"] * meta["n_bins"] * 4 * 4, f"--n {n_per_class}")
    signals, labels = generate(generator, meta, n_per_class, seed=seed, cell=cell)
    counts = gan_transform(meta).inverse(signals).clamp_min(0).round().numpy().astype(np.int32)
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == label)) for label in (0, 1)]
    gene_ids = np.array([f"gan{i + 1:06d}" for i in range(len(labels))])
    with staged_output(out) as stage:
        for number, split in enumerate(("train", "valid", "test")):
            chosen = np.sort(np.concatenate([index[number::3] for index in per_class]))
            part = HistoneSignals(counts[chosen], labels[chosen], gene_ids[chosen], marks=tuple(meta["marks"]),
                                  cell=cell, split=split)  # fmt: skip
            write_release_csv(part, stage / cell / "classification" / f"{split}.csv")
    return Path(out) / cell


def plot_profiles(real, real_labels, fake, fake_labels, marks, path) -> list[Path]:
    """Per mark: mean +/- std across genes per bin, real vs generated, high vs low."""
    fig, axes = plt.subplots(1, len(marks), figsize=(3.2 * len(marks), 3), sharex=True)
    rows = []
    bins = np.arange(1, real.shape[-1] + 1)
    for m, (ax, mark) in enumerate(zip(np.atleast_1d(axes), marks, strict=True)):
        for source, x, y, style in (("real", real, real_labels, "-"), ("generated", fake, fake_labels, "--")):
            for label, name, color in ((1, "high", "tab:red"), (0, "low", "tab:blue")):
                chosen = x[y == label][:, m].numpy()
                mean, std = chosen.mean(0), chosen.std(0)
                ax.plot(bins, mean, style, color=color, label=f"{source} {name}")
                if source == "real":
                    ax.fill_between(bins, mean - std, mean + std, color=color, alpha=0.1)
                rows += [(mark, source, name, b, mu, sd) for b, mu, sd in zip(bins, mean, std, strict=True)]
        ax.axvline(len(bins) / 2 + 0.5, color="black", lw=0.6, ls=":")
        ax.set_title(mark)
        ax.set_xlabel("bin")
    np.atleast_1d(axes)[0].set_ylabel("log1p signal")
    np.atleast_1d(axes)[0].legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path, pd.DataFrame(rows, columns=["mark", "source", "class", "bin", "mean", "std"]))


def gan_prototypes(generator, transform, classifier, target: int, n: int = 16, steps: int = 100,
                   seed: int = 0, cell: int | None = None) -> torch.Tensor:  # fmt: skip
    """Optimize latent vectors so the classifier's P(target class) of G(z, target) is maximal.

    Returns prototypes [n, marks, bins] in model space: the generator's expected signals (no count
    draws), realistic because they stay on its output manifold; a small L2 term keeps z near the prior.
    ``cell``: a cell-conditioned generator's condition index (``None`` for an unconditioned one).
    """
    labels = torch.full((n,), target)
    cells = None if cell is None else torch.full((n,), cell)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # z and the generator's per-bin noise
        z = torch.randn(n, generator.latent_dim).requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=0.05)
        for _ in range(steps):
            optimizer.zero_grad()
            x = observe(generator(z, labels, cells), transform, "continuous")
            loss = -torch.log_softmax(classifier(x), dim=1)[:, target].mean() + 0.01 * z.square().sum(1).mean()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            return observe(generator(z, labels, cells), transform, "continuous")


def input_optimization(classifier, target: int, scale: torch.Tensor, n_bins: int, steps: int = 1000,
                       seed: int = 0) -> torch.Tensor:  # fmt: skip
    """The original DeepChrome visualization: optimize the input itself from a random start.

    RMSprop lr 0.1, ``steps`` steps, L2 penalty 0.009, the normalized input clamped to [0, 1]
    (model input = normalized x ``scale`` [marks], the training maximum per mark).
    Returns the optimized input [1, marks, bins] in model space.
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(1, len(scale), n_bins, generator=generator).requires_grad_(True)
    optimizer = torch.optim.RMSprop([x], lr=0.1)
    for _ in range(steps):
        optimizer.zero_grad()
        logits = classifier(x * scale[None, :, None])
        loss = -torch.softmax(logits, dim=1)[:, target].sum() + 0.009 * x.square().sum()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return (x * scale[None, :, None]).detach()


def plot_prototypes(prototypes: dict, marks, path, regions: list | None = None) -> list[Path]:
    """Heatmaps (marks x bins): GAN-prior prototypes (mean of the batch) beside input optimization,
    and below them, per region, each mark's high-minus-low difference for both methods.

    Dashed lines separate upstream / promoter / gene body; white bars under each mark's row show
    the regions where it acts (``regions``: per mark, 1-based ``(first, last)`` ranges), so values
    anywhere in the window, not only at the promoter, can be read against them. The CSV holds
    every bin and the per-region summaries (:func:`prototype_region_levels`).
    """
    fig = plt.figure(figsize=(11, 7.5))
    grid = fig.add_gridspec(3, len(SUMMARY_REGIONS) * 2, height_ratios=[1, 1, 0.9])
    heatmaps = [fig.add_subplot(grid[r, c * 3 : c * 3 + 3]) for r in range(2) for c in range(2)]
    limit = max(float(v.max()) for v in prototypes.values())
    rows = []
    for (name, values), ax in zip(prototypes.items(), heatmaps, strict=True):
        mean = values.mean(0).numpy()
        ax.imshow(mean, aspect="auto", cmap="viridis", vmin=0, vmax=limit, interpolation="nearest",
                  extent=(0.5, mean.shape[1] + 0.5, len(marks) - 0.5, -0.5))  # fmt: skip
        for first, _ in list(SUMMARY_REGIONS.values())[1:]:
            ax.axvline(first - 0.5, color="white", lw=0.8, ls="--")
        for m, mark_regions_ in enumerate(regions or []):
            for first, last in mark_regions_:
                ax.plot([first - 0.5, last + 0.5], [m + 0.42, m + 0.42], color="white", lw=2.5, solid_capstyle="butt")
        ax.set_title(name)
        ax.set_yticks(range(len(marks)), list(marks))
        rows += [(name, mark, str(b + 1), mean[m, b]) for m, mark in enumerate(marks) for b in range(mean.shape[1])]
    summary = prototype_region_levels(prototypes, marks, regions)
    for name, entry in summary.items():
        rows += [(name, mark, region, value) for region, values in entry.items() for mark, value in values.items()]
    width = 0.4
    for r, region in enumerate(SUMMARY_REGIONS):
        ax = fig.add_subplot(grid[2, r * 2 : r * 2 + 2])
        for offset, method in ((-width / 2, "GAN prior"), (width / 2, "input optimization")):
            high, low = summary[f"{method}, high"][region], summary[f"{method}, low"][region]
            ax.bar(np.arange(len(marks)) + offset, [high[m] - low[m] for m in marks], width, label=method)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(range(len(marks)), list(marks), rotation=45, fontsize=7)
        ax.set_title(f"{region} ({SUMMARY_REGIONS[region][0]}-{SUMMARY_REGIONS[region][1]}): high - low", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, pd.DataFrame(rows, columns=["prototype", "mark", "bin", "value"]))


#: Fixed summary regions of the prototypes: 1-based inclusive bins (TSS between bins 50 and 51).
SUMMARY_REGIONS = {"upstream": (1, 40), "promoter": (41, 60), "gene body": (61, 100)}


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """1-based inclusive (first, last) of every run of True in ``mask`` [bins]."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a) + 1, int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def format_regions(regions: list[tuple[int, int]]) -> str:
    """``[(41, 60), (70, 80)]`` -> ``"41-60;70-80"`` (1-based inclusive bins)."""
    return ";".join(f"{a}-{b}" for a, b in regions)


def mark_regions(classifier, samples: torch.Tensor, floor: torch.Tensor | None = None, n_steps: int = 16,
                 smooth: int = 5, threshold: float = 0.5, gap: int = 5) -> tuple[list, np.ndarray, np.ndarray]:  # fmt: skip  # noqa: E501
    """Where each mark acts, estimated from the classifier's attributions (no region assumed).

    IntegratedGradients of the log-odds of high (baseline: zero counts, ``floor``) over
    ``samples``; a mark's importance profile is the mean absolute attribution per bin, smoothed
    over ``smooth`` bins. Its regions are the bins whose profile reaches ``threshold`` x the
    profile's maximum, runs closer than ``gap`` bins merged (a peak with a dip is one region).

    Parameters
    ----------
    samples
        Genes [n, marks, bins] in model space.
    floor
        Model-space value of zero counts per mark [marks] (default 0).

    Returns
    -------
    regions
        Per mark, a list of 1-based inclusive ``(first, last)`` bin ranges.
    profile
        [marks, bins] importance profiles (mean |attribution|, smoothed).
    contribution
        [marks] mean over genes of |the mark's attribution summed over bins|: its net share of
        each gene's log-odds. Unlike summed |attribution|, bin-to-bin noise of opposite signs
        cancels, so a mark the classifier merely jitters on scores low.
    """
    from scipy.ndimage import binary_closing, uniform_filter1d

    from deepchrome.interpret.attributions import attribute

    n_marks, n_bins = samples.shape[1:]
    floor = torch.zeros(n_marks) if floor is None else floor
    baseline = floor.reshape(1, -1, 1).expand_as(samples).clone()
    values = attribute(classifier, samples, baseline=baseline, n_steps=n_steps, batch_size=2048).values
    profile = uniform_filter1d(np.abs(values).mean(0), size=smooth, axis=1, mode="nearest")
    contribution = np.abs(values.sum(-1)).mean(0)
    regions = []
    for m in range(n_marks):
        above = profile[m] >= threshold * profile[m].max()
        # closing fills gaps up to `gap` bins; the border value keeps edges from being eroded
        above = binary_closing(np.pad(above, gap, mode="edge"), structure=np.ones(gap + 1))[gap:-gap] | above
        regions.append(_runs(above))
    return regions, profile, contribution


def _region_mask(regions: list[tuple[int, int]], n_bins: int) -> torch.Tensor:
    mask = torch.zeros(n_bins, dtype=torch.bool)
    for first, last in regions:
        mask[first - 1 : last] = True
    return mask


def region_levels(samples: torch.Tensor, regions: list) -> torch.Tensor:
    """Each mark's mean over its own regions: [n, marks] from samples [n, marks, bins]."""
    masks = [_region_mask(r, samples.shape[-1]) for r in regions]
    return torch.stack([samples[:, m][:, mask].mean(-1) for m, mask in enumerate(masks)], dim=1)


def _double_centre(grid: np.ndarray) -> np.ndarray:
    """Departure of [..., k, k] grids from their best additive fit (row + column effects)."""
    return grid - grid.mean(-1, keepdims=True) - grid.mean(-2, keepdims=True) + grid.mean((-2, -1), keepdims=True)


def _rms(residual: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(residual**2, axis=(-2, -1)))


def combinatorial_map(classifier, samples: torch.Tensor, marks, regions: list | None = None,
                      levels: torch.Tensor | None = None, k: int = 5, bootstrap: int = 50, permutations: int = 200,
                      seed: int = 0, floor: torch.Tensor | None = None) -> tuple[dict, pd.DataFrame]:  # fmt: skip
    """Interaction of every mark pair on the classifier's log-odds, each mark varied over its own regions.

    For a pair (a, b) and a k x k grid of levels, every sample has mark a's bins in a's regions
    shifted so their mean equals a's level (then clipped at ``floor``, the model-space value of
    zero counts: raising a gene's zeros by rescaling would be impossible), likewise b; the other
    marks stay as they are. Per sample this gives a k x k grid of log-odds; its departure from the
    best additive fit (row + column effects) is the sample's interaction surface. The pair's
    ``interaction`` is the RMS of the mean surface (log-odds units): averaging log-odds, not
    probabilities, keeps two strong main effects that saturate P(high) from posing as one.

    Uncertainty and null reference:

    * ``ci_low``/``ci_high``: 2.5 / 97.5 percentiles over ``bootstrap`` resamples of the samples
      (``std``: their standard deviation).
    * ``null_mean``/``null_q95``: the statistic under ``permutations`` sign-flip permutations of the
      samples' interaction surfaces: what it gives when the samples' surfaces share no direction,
      i.e. for a pair with no interaction (it is never 0: the RMS of noise is positive).
      ``p_value`` = (1 + #null >= interaction) / (1 + permutations). ``margin`` = ``ci_low`` -
      ``null_q95``: positive when the interval clears the null.

    Parameters
    ----------
    samples
        Genes [n, marks, bins] in model space (GAN genes, real or simulated genes).
    marks
        Mark names [marks].
    regions
        Per mark, 1-based inclusive ``(first, last)`` bin ranges where it is varied; default
        :func:`mark_regions` on ``samples``.
    levels
        Region-mean levels per mark [marks, k]; default the 5-95 % quantiles of ``samples``' own
        region means.
    floor
        Lowest model-space value per mark [marks] (default 0).

    Returns
    -------
    grids
        ``{(a, b): {"log_odds": [k, k], "p_high": [k, k], "levels_a": [k], "levels_b": [k]}}``.
    table
        One row per pair ranked by ``interaction``: ``rank, mark_a, mark_b, interaction, ci_low,
        ci_high, std, null_mean, null_q95, p_value, margin, regions_a, regions_b, log_odds_range,
        p_high_range``.
    """

    def log_odds(x):
        with torch.no_grad():
            log_p = torch.log_softmax(classifier(x), dim=1)
            return (log_p[:, 1] - log_p[:, 0]).numpy()

    samples = samples.float()
    n, n_marks, n_bins = samples.shape
    floor = torch.zeros(n_marks) if floor is None else floor
    if regions is None:
        regions, _, _ = mark_regions(classifier, samples, floor)
    current = region_levels(samples, regions)  # [n, marks]
    if levels is None:
        levels = torch.quantile(current, torch.linspace(0.05, 0.95, k), dim=0).T  # [marks, k]
    k = levels.shape[1]
    masks = [_region_mask(r, n_bins) for r in regions]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, (bootstrap, n))
    flips = rng.choice([-1.0, 1.0], size=(permutations, n))
    grids, rows = {}, []
    for a, b in itertools.combinations(range(n_marks), 2):
        per_sample = np.zeros((n, k, k))
        for i in range(k):
            for j in range(k):
                x = samples.clone()
                for m, level in ((a, levels[a, i]), (b, levels[b, j])):
                    x[:, m, masks[m]] = (x[:, m, masks[m]] + (level - current[:, m])[:, None]).clamp_min(floor[m])
                per_sample[:, i, j] = log_odds(x)
        surfaces = _double_centre(per_sample)  # [n, k, k]
        statistic = float(_rms(surfaces.mean(0)))
        resampled = np.array([_rms(surfaces[draw].mean(0)) for draw in draws])
        null = _rms(np.einsum("pn,nij->pij", flips, surfaces) / n)
        mean_logit = per_sample.mean(0)
        p_high = (1 / (1 + np.exp(-per_sample))).mean(0)
        grids[marks[a], marks[b]] = {"log_odds": mean_logit, "p_high": p_high, "levels_a": levels[a].numpy(),
                                     "levels_b": levels[b].numpy()}  # fmt: skip
        ci_low, ci_high = np.percentile(resampled, [2.5, 97.5])
        null_q95 = float(np.quantile(null, 0.95))
        rows.append({"mark_a": marks[a], "mark_b": marks[b], "interaction": statistic, "ci_low": float(ci_low),
                     "ci_high": float(ci_high), "std": float(resampled.std()), "null_mean": float(null.mean()),
                     "null_q95": null_q95, "p_value": float((1 + np.sum(null >= statistic)) / (1 + permutations)),
                     "margin": float(ci_low) - null_q95, "regions_a": format_regions(regions[a]),
                     "regions_b": format_regions(regions[b]),
                     "log_odds_range": float(mean_logit.max() - mean_logit.min()),
                     "p_high_range": float(p_high.max() - p_high.min())})  # fmt: skip
    table = pd.DataFrame(rows).sort_values("interaction", ascending=False, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return grids, table


def plot_combinatorial(grids: dict, table: pd.DataFrame, path) -> list[Path]:
    """One heatmap of mean log-odds per mark pair, strongest interaction first.

    Each panel has its own colour scale centred on its own range (a shared 0-1 scale leaves weak
    but real interactions invisible); titles give the interaction, its interval and the null, axes
    the regions each mark was varied over.
    """
    columns = 5
    rows_n = int(np.ceil(len(table) / columns))
    fig, axes = plt.subplots(rows_n, columns, figsize=(3.4 * columns, 3.3 * rows_n), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    rows = []
    for ax, row in zip(axes.flat, table.itertuples(), strict=False):
        cell = grids[row.mark_a, row.mark_b]
        grid = cell["log_odds"]
        centre, half = (grid.max() + grid.min()) / 2, max((grid.max() - grid.min()) / 2, 1e-6)
        image = ax.imshow(grid, origin="lower", cmap="RdBu_r", vmin=centre - half, vmax=centre + half, aspect="auto")
        fig.colorbar(image, ax=ax, shrink=0.8, label="log-odds of high")
        ax.set_title(f"#{row.rank} interaction {row.interaction:.3f}\n[{row.ci_low:.3f}, {row.ci_high:.3f}], "
                     f"null q95 {row.null_q95:.3f}", fontsize=8)  # fmt: skip
        ax.set_ylabel(f"{row.mark_a}\nbins {row.regions_a}", fontsize=8)
        ax.set_xlabel(f"{row.mark_b}, bins {row.regions_b}", fontsize=8)
        ax.set_xticks([0, grid.shape[1] - 1], ["low", "high"])
        ax.set_yticks([0, grid.shape[0] - 1], ["low", "high"])
        residual = _double_centre(grid)
        rows += [(row.rank, row.mark_a, row.mark_b, i, j, cell["levels_a"][i], cell["levels_b"][j], grid[i, j],
                  cell["p_high"][i, j], residual[i, j])
                 for i in range(grid.shape[0]) for j in range(grid.shape[1])]  # fmt: skip
    for ax in list(axes.flat)[len(table) :]:
        ax.axis("off")
    columns_out = ["rank", "mark_a", "mark_b", "level_a", "level_b", "value_a", "value_b", "log_odds", "p_high",
                   "interaction_residual"]  # fmt: skip
    return save_figure(fig, path, pd.DataFrame(rows, columns=columns_out))


def prototype_region_levels(prototypes: dict, marks, regions: list | None = None) -> dict:
    """Mean prototype value per mark over every summary region and over each mark's own regions.

    Returns ``{prototype: {"upstream" | "promoter" | "gene body" | "own regions": {mark: value}}}``
    (model space; prototypes [n, marks, bins] averaged over n); ``own regions`` only when
    ``regions`` (per mark, 1-based ``(first, last)`` ranges) is given.
    """
    summary = {}
    for name, values in prototypes.items():
        mean = values.float().mean(0)  # [marks, bins]
        entry = {region: {mark: float(mean[m, a - 1 : b].mean()) for m, mark in enumerate(marks)}
                 for region, (a, b) in SUMMARY_REGIONS.items()}  # fmt: skip
        if regions is not None:
            entry["own regions"] = {mark: float(mean[m, _region_mask(regions[m], mean.shape[1])].mean())
                                    for m, mark in enumerate(marks)}  # fmt: skip
        summary[name] = entry
    return summary


def visualize(gan_checkpoint, classifier_checkpoint, root, cells: list[str], out, samples: int = 512,
              bootstrap: int = 50, seed: int = 0, levels: int = 5, permutations: int = 200,
              overwrite: bool = False) -> dict:  # fmt: skip
    """All GAN visualizations for one GAN + classifier pair; returns the ranked interactions.

    Written to a temporary folder inside ``out`` and moved in at the end: a failure leaves ``out``
    as it was.

    Raises
    ------
    DeepChromeError
        For ``samples`` or ``bootstrap`` < 1, ``levels`` < 2, a negative seed, an ``out`` that is a
        file, unreadable or incompatible checkpoints and unreadable data; all before writing.
    """
    from deepchrome.files import check_out_folder, staged_output

    for option, value, least, most in (("--samples", samples, 1, None), ("--bootstrap", bootstrap, 1, 100_000),
                                        ("levels", levels, 2, 100), ("--seed", seed, 0, SEED_MAX),
                                        ("--permutations", permutations, 1, 100_000)):  # fmt: skip
        check_whole_number(option, value, least, most)
    final = check_out_folder(out)
    # an earlier visualize's files (or the user's under the same names) are replaced only when asked
    files.check_not_replacing(sorted(p for p in final.glob("*") if p.stem in VISUALIZE_OUTPUTS), overwrite)
    generator, meta = load_gan(gan_checkpoint)
    files.check_memory(samples * meta["n_marks"] * meta["n_bins"] * 4 * 4 * levels, f"--samples {samples}")
    classifier, classifier_meta = load_classifier(classifier_checkpoint)
    check_compatible(
        classifier_meta, meta["marks"], meta["n_bins"], classifier_checkpoint, transform=gan_transform(meta)
    )
    marks = list(meta["marks"])
    transform = gan_transform(meta)
    test = concatenate(load_cells(root, cells, "test", marks, meta["n_bins"]))
    real = model_input(test.signals, transform)
    real_labels = torch.from_numpy(test.labels)
    train = concatenate(load_cells(root, cells, "train", marks, meta["n_bins"])).signals
    with staged_output(final) as stage:
        summary = _draw_all(generator, meta, classifier, transform, marks, real, real_labels, train, stage, samples,
                            bootstrap, seed, levels, permutations, cells)  # fmt: skip
    return summary


def _draw_all(generator, meta, classifier, transform, marks, real, real_labels, train, out: Path, samples: int,
              bootstrap: int, seed: int, levels: int, permutations: int, cells: list[str]) -> dict:  # fmt: skip
    """The figures, tables and ``visualize.json`` of :func:`visualize`, written into ``out``."""
    # a cell-conditioned GAN generates each cell's genes under that cell's condition (refusing a cell
    # it was not trained on); an unconditioned one generates once
    conditions = [condition_cell(meta, cell) for cell in cells] if meta.get("n_cells", 1) > 1 else [None]
    n_each = -(-max(samples, len(real) // 2) // len(conditions))
    parts = [generate(generator, meta, n_each, seed=seed + i, cell=c) for i, c in enumerate(conditions)]
    fake = torch.cat([signals for signals, _ in parts])
    fake_labels = torch.from_numpy(np.concatenate([labels for _, labels in parts]))
    plot_profiles(real, real_labels, fake, fake_labels, marks, out / "profiles")
    floor = transform(torch.zeros(1, len(marks), 1))[0, :, 0]
    # where each mark acts: attributions of the classifier on real genes (the data it was fit to)
    chosen = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))[:samples]
    regions, _, contribution = mark_regions(classifier, real[chosen], floor)
    scale = model_input(train, transform).amax(dim=(0, 2))
    prototypes = {
        "GAN prior, high": gan_prototypes(generator, transform, classifier, 1, seed=seed, cell=conditions[0]),
        "GAN prior, low": gan_prototypes(generator, transform, classifier, 0, seed=seed, cell=conditions[0]),
        "input optimization, high": input_optimization(classifier, 1, scale, meta["n_bins"], seed=seed),
        "input optimization, low": input_optimization(classifier, 0, scale, meta["n_bins"], seed=seed),
    }
    plot_prototypes(prototypes, marks, out / "prototypes", regions)
    quantiles = torch.quantile(region_levels(real, regions), torch.linspace(0.05, 0.95, levels), dim=0).T
    # backgrounds from both classes (generate() returns all "low" genes first)
    background = fake[torch.randperm(len(fake), generator=torch.Generator().manual_seed(seed))[:samples]]
    grids, table = combinatorial_map(classifier, background, marks, regions, quantiles, bootstrap=bootstrap,
                                     permutations=permutations, seed=seed, floor=floor)  # fmt: skip
    plot_combinatorial(grids, table, out / "combinatorial_map")
    with files.atomic_path(out / "interactions.csv") as tmp:
        table.to_csv(tmp, index=False)
    levels_of = {name: values[..., PROMOTER].mean(dim=(0, 2)).tolist() for name, values in prototypes.items()}
    summary = {
        "interactions": table.to_dict("records"),
        "regions": {mark: format_regions(r) for mark, r in zip(marks, regions, strict=True)},
        "mark_contributions": dict(zip(marks, contribution.tolist(), strict=True)),
        "prototype_region_levels": prototype_region_levels(prototypes, marks, regions),
        "prototype_promoter_levels": levels_of,
    }
    files.write_json(out / "visualize.json", summary, indent=1)
    return summary
