"""GAN-based visualizations: class-conditional profiles, class prototypes (GAN prior vs input
optimization) and the combinatorial map of mark pairs with a ranked interaction table.

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
from deepchrome.data.inputs import concatenate, load_cells, model_input
from deepchrome.data.signals import HistoneSignals
from deepchrome.errors import DeepChromeError
from deepchrome.gan.checkpoint import check_compatible, gan_transform, load_gan
from deepchrome.gan.generation import generate
from deepchrome.gan.models import observe
from deepchrome.gan.quality import PROMOTER
from deepchrome.interpret.figures import plt, save_figure


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
    for option, value, least in (("--n", n_per_class, 1), ("--seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
            raise DeepChromeError(f"{option} {value!r}: must be a whole number >= {least}")
    check_out_folder(out)
    check_not_replacing([Path(out) / cell / "classification" / f"{split}.csv" for split in SPLITS], overwrite)
    generator, meta = load_gan(checkpoint)
    files.check_memory(2 * n_per_class * meta["n_marks"] * meta["n_bins"] * 4 * 4, f"--n {n_per_class}")
    signals, labels = generate(generator, meta, n_per_class, seed=seed)
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
                   seed: int = 0) -> torch.Tensor:  # fmt: skip
    """Optimize latent vectors so the classifier's P(target class) of G(z, target) is maximal.

    Returns prototypes [n, marks, bins] in model space: the generator's expected signals (no count
    draws), realistic because they stay on its output manifold; a small L2 term keeps z near the prior.
    """
    labels = torch.full((n,), target)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # z and the generator's per-bin noise
        z = torch.randn(n, generator.latent_dim).requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=0.05)
        for _ in range(steps):
            optimizer.zero_grad()
            x = observe(generator(z, labels), transform, "continuous")
            loss = -torch.log_softmax(classifier(x), dim=1)[:, target].mean() + 0.01 * z.square().sum(1).mean()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            return observe(generator(z, labels), transform, "continuous")


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


def plot_prototypes(prototypes: dict, marks, path) -> list[Path]:
    """Heatmaps (marks x bins): GAN-prior prototypes (mean of the batch) beside input optimization."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 5), sharex=True, sharey=True)
    limit = max(float(v.max()) for v in prototypes.values())
    rows = []
    for (name, values), ax in zip(prototypes.items(), axes.flat, strict=True):
        mean = values.mean(0).numpy()
        ax.imshow(mean, aspect="auto", cmap="viridis", vmin=0, vmax=limit, interpolation="nearest",
                  extent=(0.5, mean.shape[1] + 0.5, len(marks) - 0.5, -0.5))  # fmt: skip
        ax.axvline(mean.shape[1] / 2 + 0.5, color="white", lw=0.8, ls="--")
        ax.set_title(name)
        ax.set_yticks(range(len(marks)), list(marks))
        rows += [(name, mark, b + 1, mean[m, b]) for m, mark in enumerate(marks) for b in range(mean.shape[1])]
    fig.tight_layout()
    return save_figure(fig, path, pd.DataFrame(rows, columns=["prototype", "mark", "bin", "value"]))


def combinatorial_map(classifier, samples: torch.Tensor, levels: torch.Tensor, marks, bootstrap: int = 50,
                      seed: int = 0, floor: torch.Tensor | None = None) -> tuple[dict, pd.DataFrame]:  # fmt: skip
    """P(high) as two marks' promoter levels vary, the other marks from realistic GAN genes.

    For each pair (a, b) and each level pair, marks a and b of every sample have their promoter bins
    (41-60) shifted so the promoter mean equals the level (then clipped at ``floor``, the model-space
    value of zero reads: generated genes have exact zeros, which rescaling could never raise);
    P(high) is averaged over samples for the heatmap.
    Interaction strength = RMS departure of the classifier's log-odds (averaged over samples) from
    the best additive fit (row + column effects): averaging log-odds, not probabilities, keeps two
    strong main effects that saturate P(high) from posing as an interaction. Its standard deviation
    comes from resampling the GAN genes.

    Parameters
    ----------
    samples
        GAN genes [n, marks, bins] (model space).
    levels
        Promoter levels per mark [marks, k] (e.g. quantiles of real promoter levels).
    floor
        Lowest model-space value per mark [marks] (default 0).

    Returns
    -------
    grids
        ``{(a, b): array [k, k]}`` of mean P(high).
    table
        Pairs ranked by interaction strength, with its standard deviation.
    """

    def log_odds(x):
        with torch.no_grad():
            log_p = torch.log_softmax(classifier(x), dim=1)
            return (log_p[:, 1] - log_p[:, 0]).numpy()

    def interaction(logit):
        additive = logit.mean(1, keepdims=True) + logit.mean(0, keepdims=True) - logit.mean()
        return float(np.sqrt(np.mean((logit - additive) ** 2)))

    k = levels.shape[1]
    current = samples[..., PROMOTER].mean(-1)  # [n, marks]
    floor = torch.zeros(len(marks)) if floor is None else floor
    rng = np.random.default_rng(seed)
    grids, rows = {}, []
    for a, b in itertools.combinations(range(len(marks)), 2):
        per_sample = np.zeros((len(samples), k, k))
        for i in range(k):
            for j in range(k):
                x = samples.clone()
                x[:, a, PROMOTER] += (levels[a, i] - current[:, a])[:, None]
                x[:, b, PROMOTER] += (levels[b, j] - current[:, b])[:, None]
                x[:, a, PROMOTER] = x[:, a, PROMOTER].clamp_min(floor[a])
                x[:, b, PROMOTER] = x[:, b, PROMOTER].clamp_min(floor[b])
                per_sample[:, i, j] = log_odds(x)
        grid = (1 / (1 + np.exp(-per_sample))).mean(0)  # mean P(high)
        grids[marks[a], marks[b]] = grid
        resampled = [
            interaction(per_sample[rng.integers(0, len(samples), len(samples))].mean(0)) for _ in range(bootstrap)
        ]
        rows.append({"mark_a": marks[a], "mark_b": marks[b], "interaction": interaction(per_sample.mean(0)),
                     "std": float(np.std(resampled)), "p_high_range": float(grid.max() - grid.min())})  # fmt: skip
    table = pd.DataFrame(rows).sort_values("interaction", ascending=False).reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return grids, table


def plot_combinatorial(grids: dict, levels: torch.Tensor, marks, path) -> list[Path]:
    """One heatmap of P(high) per mark pair."""
    pairs = list(grids)
    columns = 5
    rows_n = int(np.ceil(len(pairs) / columns))
    fig, axes = plt.subplots(rows_n, columns, figsize=(3.2 * columns, 3 * rows_n), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    table = []
    for ax, (a, b) in zip(axes.flat, pairs, strict=False):
        grid = grids[a, b]
        image = ax.imshow(grid, origin="lower", cmap="RdBu_r", vmin=0, vmax=1, aspect="auto")
        ax.set_title(f"y: {a}\nx: {b}", fontsize=9)
        ax.set_xticks([0, grid.shape[1] - 1], ["low", "high"])
        ax.set_yticks([0, grid.shape[0] - 1], ["low", "high"])
        table += [(a, b, i, j, grid[i, j]) for i in range(grid.shape[0]) for j in range(grid.shape[1])]
    for ax in list(axes.flat)[len(pairs) :]:
        ax.axis("off")
    fig.colorbar(image, ax=axes.ravel().tolist(), label="P(high)")
    return save_figure(fig, path, pd.DataFrame(table, columns=["mark_a", "mark_b", "level_a", "level_b", "p_high"]))


def visualize(gan_checkpoint, classifier_checkpoint, root, cells: list[str], out, samples: int = 512,
              bootstrap: int = 50, seed: int = 0, levels: int = 5) -> dict:  # fmt: skip
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

    for option, value, least in (("--samples", samples, 1), ("--bootstrap", bootstrap, 1), ("levels", levels, 2),
                                  ("--seed", seed, 0)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
            raise DeepChromeError(f"{option} {value!r}: must be a whole number >= {least}")
    final = check_out_folder(out)
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
                            bootstrap, seed, levels)  # fmt: skip
    return summary


def _draw_all(generator, meta, classifier, transform, marks, real, real_labels, train, out: Path, samples: int,
              bootstrap: int, seed: int, levels: int) -> dict:  # fmt: skip
    """The figures, tables and ``visualize.json`` of :func:`visualize`, written into ``out``."""
    fake, fake_labels = generate(generator, meta, max(samples, len(real) // 2), seed=seed)
    fake_labels = torch.from_numpy(fake_labels)
    plot_profiles(real, real_labels, fake, fake_labels, marks, out / "profiles")
    scale = model_input(train, transform).amax(dim=(0, 2))
    prototypes = {
        "GAN prior, high": gan_prototypes(generator, transform, classifier, 1, seed=seed),
        "GAN prior, low": gan_prototypes(generator, transform, classifier, 0, seed=seed),
        "input optimization, high": input_optimization(classifier, 1, scale, meta["n_bins"], seed=seed),
        "input optimization, low": input_optimization(classifier, 0, scale, meta["n_bins"], seed=seed),
    }
    plot_prototypes(prototypes, marks, out / "prototypes")
    promoter = real[..., PROMOTER].mean(-1)  # [genes, marks]
    quantiles = torch.quantile(promoter, torch.linspace(0.05, 0.95, levels), dim=0).T  # [marks, levels]
    floor = transform(torch.zeros(1, len(marks), 1))[0, :, 0]
    # backgrounds from both classes (generate() returns all "low" genes first)
    background = fake[torch.randperm(len(fake), generator=torch.Generator().manual_seed(seed))[:samples]]
    grids, table = combinatorial_map(classifier, background, quantiles, marks, bootstrap, seed, floor)
    plot_combinatorial(grids, quantiles, marks, out / "combinatorial_map")
    with files.atomic_path(out / "interactions.csv") as tmp:
        table.to_csv(tmp, index=False)
    levels_of = {name: values[..., PROMOTER].mean(dim=(0, 2)).tolist() for name, values in prototypes.items()}
    summary = {"interactions": table.to_dict("records"), "prototype_promoter_levels": levels_of}
    files.write_json(out / "visualize.json", summary, indent=1)
    return summary
