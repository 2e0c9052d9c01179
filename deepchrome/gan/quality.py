"""Measured quality of generated signals. Arrays are [genes, marks, bins] in model space."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc

#: Bins around the TSS (1-based 41..60 of 100: +/-1 kb) summarizing a mark's promoter level.
PROMOTER = slice(40, 60)

#: A held-out real class x mark mean profile counts as measured when at least this fraction of
#: its across-bin variance is signal rather than gene sampling noise (:func:`profile_reliability`).
#: On E003 and E123 (100 test genes per class), the corrected correlation between the training
#: and the test genes' profiles was 0.97-1.07 for every class x mark above 0.8 (as it should be:
#: the same cell), and 0.33-2.37 below it, where the correction divides by noise.
RELIABILITY_MIN = 0.8


def _features(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(1)
    return torch.cat([flat, x.mean(-1), x.std(-1), x.amax(-1), x[..., PROMOTER].mean(-1)], dim=1)


def two_sample_auroc(real: torch.Tensor, fake: torch.Tensor, seed: int = 0, steps: int = 300,
                     repeats: int = 3) -> float:  # fmt: skip
    """AUROC of a fresh classifier telling held-out real from generated signals (0.5 = indistinguishable).

    A logistic regression on the flattened signals plus per-mark mean, std, max and promoter level,
    trained on half of each set, scored on the other half; the mean over ``repeats`` random halvings
    (a single halving of a few hundred genes varies by +/- 0.04). When ``fake`` holds more genes than
    ``real``, each repeat draws a different random subset of ``len(real)`` of them.
    """
    return float(np.mean(two_sample_aurocs(real, fake, seed=seed, steps=steps, repeats=repeats)))


def two_sample_aurocs(real: torch.Tensor, fake: torch.Tensor, seed: int = 0, steps: int = 300,
                      repeats: int = 3) -> np.ndarray:  # fmt: skip
    """The ``repeats`` single two-sample AUROCs that :func:`two_sample_auroc` averages, [repeats].

    Their spread for two real gene sets (:func:`real_reference`) is the test's resolution: a generator
    whose AUROC lies inside it is indistinguishable at this sample size, which may mean the test has
    no power rather than that the generator is good.
    """
    return np.array([_two_sample_once(real, fake, seed + r, steps) for r in range(repeats)])


def _two_sample_once(real: torch.Tensor, fake: torch.Tensor, seed: int, steps: int) -> float:
    generator = torch.Generator().manual_seed(seed)
    n = min(len(real), len(fake))
    real = real[torch.randperm(len(real), generator=generator)[:n]]
    fake = fake[torch.randperm(len(fake), generator=generator)[:n]]
    x = _features(torch.cat([real, fake]).float())
    y = torch.cat([torch.ones(n), torch.zeros(n)])
    order = torch.randperm(2 * n, generator=generator)
    train, test = order[:n], order[n:]
    mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-6)
    # evaluation hooks run under inference mode; this small fit needs autograd on ordinary tensors
    with torch.inference_mode(False), torch.enable_grad():
        x, y = ((x - mean) / std).clone(), y.clone()
        weight = torch.zeros(x.shape[1], requires_grad=True)
        bias = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.Adam([weight, bias], lr=0.05)
        for _ in range(steps):
            optimizer.zero_grad()
            logits = x[train] @ weight + bias
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[train]) + 1e-3 * weight.square().sum()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            return float(binary_auroc(torch.sigmoid(x[test] @ weight + bias), y[test].long()))


def profile_correlations(real, real_labels, fake, fake_labels, marks) -> dict[str, float]:
    """Pearson correlation across bins of real vs generated mean profiles, per class and mark.

    Returns ``{"<class>/<mark>": r}`` with class ``high``/``low``.
    """
    result = {}
    for label, name in ((1, "high"), (0, "low")):
        r_mean = real[real_labels == label].float().mean(0)
        f_mean = fake[fake_labels == label].float().mean(0)
        for m, mark in enumerate(marks):
            a, b = r_mean[m] - r_mean[m].mean(), f_mean[m] - f_mean[m].mean()
            denominator = (a.norm() * b.norm()).item()
            result[f"{name}/{mark}"] = float((a * b).sum() / denominator) if denominator > 0 else float("nan")
    return result


def _row_correlations(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each row of ``a`` [rows, bins] with the same row of ``b`` (NaN if flat)."""
    a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    denominator = a.norm(dim=-1) * b.norm(dim=-1)
    return torch.where(denominator > 0, (a * b).sum(-1) / denominator.clamp_min(1e-12), float("nan"))


def profile_reliability(x: torch.Tensor, seed: int = 0, splits: int = 100) -> torch.Tensor:
    """Split-half reliability of the mean profile of ``x`` [genes, marks, bins], per mark [marks].

    The fraction of the mean profile's across-bin variance that is signal, not gene sampling noise:
    the mean correlation ``r`` between the mean profiles of two random halves of the genes (over
    ``splits`` halvings), stepped up to the whole set by Spearman-Brown, ``2r / (1 + r)``. Near 1
    for a peaked mark, near or below 0 for a flat one (whose profile is all noise).
    """
    generator = torch.Generator().manual_seed(seed)
    half = len(x) // 2
    x = x.float()
    r = torch.stack([
        _row_correlations(x[order[:half]].mean(0), x[order[half:2 * half]].mean(0))
        for order in (torch.randperm(len(x), generator=generator) for _ in range(splits))
    ]).nanmean(0).clamp_min(-0.99)  # fmt: skip
    return 2 * r / (1 + r)


def corrected_profile_correlations(real, real_labels, fake, fake_labels, marks, seed: int = 0) -> dict[str, float]:
    """Profile correlations corrected for the real genes' sampling noise (Spearman's attenuation correction).

    A mean profile from 100 real genes carries sampling noise that lowers its correlation with any
    other profile, a perfect generator's included: two real gene sets of a flat mark correlate near
    0. Dividing the observed correlation by ``sqrt(reliability_real * reliability_generated)``
    estimates the correlation with the real genes' population profile. Only class x marks whose
    real profile is measured (reliability >= :data:`RELIABILITY_MIN`) are corrected; the others
    are NaN (there is no profile to correlate with).

    Returns ``{"profile_reliability/<class>/<mark>": reliability of the real profile,
    "profile_correlation_corrected/<class>/<mark>": corrected r or NaN}``.
    """
    observed = profile_correlations(real, real_labels, fake, fake_labels, marks)
    result = {}
    for label, name in ((1, "high"), (0, "low")):
        # the generated profile's reliability is ~1 with thousands of genes; fewer halvings suffice
        real_reliability = profile_reliability(real[real_labels == label], seed=seed)
        fake_reliability = profile_reliability(fake[fake_labels == label], seed=seed, splits=20)
        for m, mark in enumerate(marks):
            key = f"{name}/{mark}"
            reliability, product = float(real_reliability[m]), float(real_reliability[m] * fake_reliability[m])
            measured = reliability >= RELIABILITY_MIN and product > 0
            result[f"profile_reliability/{key}"] = reliability
            result[f"profile_correlation_corrected/{key}"] = observed[key] / product**0.5 if measured else float("nan")
    return result


def profile_differences(real, real_labels, fake, fake_labels, marks) -> dict[str, float]:
    """Noise-corrected standardized difference of mean profiles, per class and mark.

    For each bin ``b``, the difference of the class's mean profiles is divided by the real genes'
    per-bin SD ``s_b``; its expected square under equal populations is the sampling noise
    ``n_b = var_real_b / n_real + var_fake_b / n_fake``, which is subtracted:
    ``D = sqrt(max(0, mean_b[((mean_fake_b - mean_real_b)^2 - n_b) / s_b^2]))``, the root mean
    square over bins of the population difference in real-SD units (Cohen's d per bin). Unlike a
    correlation of mean profiles it is not noise on a flat mark: a generator with the right flat
    level scores ~0 and a wrong level scores its offset, whatever the profile's shape, and it does
    not depend on how many genes either side has. Bins where the real genes have no spread are skipped.

    Parameters
    ----------
    real, fake
        [genes, marks, bins] signals in model space; ``real_labels``, ``fake_labels`` [genes] 0/1.

    Returns
    -------
    dict
        ``{"<class>/<mark>": D}`` with class ``high``/``low``; NaN when a class has fewer than 2
        genes on either side or no bin has spread.
    """
    result = {}
    for label, name in ((1, "high"), (0, "low")):
        a, b = real[real_labels == label].double(), fake[fake_labels == label].double()
        for m, mark in enumerate(marks):
            key = f"{name}/{mark}"
            if len(a) < 2 or len(b) < 2:
                result[key] = float("nan")
                continue
            var_a, var_b = a[:, m].var(0), b[:, m].var(0)
            spread = var_a > 1e-12
            if not spread.any():
                result[key] = float("nan")
                continue
            difference = (b[:, m].mean(0) - a[:, m].mean(0)) ** 2 - var_a / len(a) - var_b / len(b)
            squared = float((difference[spread] / var_a[spread]).mean())
            result[key] = max(0.0, squared) ** 0.5
    return result


def _worst(values: dict[str, float]) -> float:
    """The largest non-NaN value (NaN when there is none)."""
    finite = [v for v in values.values() if not np.isnan(v)]
    return float(max(finite)) if finite else float("nan")


def mark_correlation_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frobenius distance between real and generated mark x mark correlation matrices of promoter levels."""

    def corr(x):
        levels = x[..., PROMOTER].float().mean(-1).T  # [marks, genes]
        return torch.atleast_2d(torch.corrcoef(levels)).nan_to_num(0.0)  # one mark: a 1 x 1 matrix

    return float(torch.linalg.matrix_norm(corr(real) - corr(fake)))


def _probability_high(classifier: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(classifier(x.float()), dim=1)[:, 1]


def conditional_fidelity(classifier: torch.nn.Module, fake: torch.Tensor, fake_labels: torch.Tensor) -> float:
    """AUROC of a classifier trained on real data scoring generated high vs low signals."""
    return float(binary_auroc(_probability_high(classifier, fake), fake_labels.long()))


def fidelity_reference(classifier: torch.nn.Module, real: torch.Tensor, real_labels: torch.Tensor) -> dict:
    """The classifier's AUROC on real genes (what a generator as good as the data would score), with its
    95% DeLong interval over those genes (:func:`deepchrome.stats.auroc_ci`; NaN with fewer than 2 genes
    of a class).

    Returns ``conditional_fidelity_auroc_real`` and ``conditional_fidelity_auroc_real_ci_low`` / ``_high``.
    """
    from deepchrome.stats import auroc_ci

    probability = _probability_high(classifier, real)
    labels = real_labels.long()
    value = float(binary_auroc(probability, labels))
    low = high = float("nan")
    if min(int(labels.sum()), int((1 - labels).sum())) >= 2:
        interval = auroc_ci(labels.cpu().numpy(), probability.double().cpu().numpy())
        low, high = interval["ci_low"], interval["ci_high"]
    return {"conditional_fidelity_auroc_real": value, "conditional_fidelity_auroc_real_ci_low": low,
            "conditional_fidelity_auroc_real_ci_high": high}  # fmt: skip


def real_reference(real, real_labels, reference, reference_labels, marks, seed: int = 0, repeats: int = 3) -> dict:
    """What real data itself scores against ``real``: the floor and ceilings of the quality numbers.

    ``reference`` are other real genes [genes, marks, bins] (e.g. a training-split sample) with
    ``reference_labels``. Returns ``two_sample_auroc_real`` (what a perfect generator of this cell's
    genes would reach), ``mark_correlation_distance_real`` and ``profile_correlation_real/<class>/<mark>``
    (a flat, noisy mark's mean profile correlates poorly even between two real gene sets) and
    ``profile_correlation_corrected_real/<class>/<mark>`` (the same after :func:`corrected_profile_correlations`:
    close to 1 where measured, since both sets come from one cell), ``profile_difference_real/<class>/<mark>``
    and its maximum ``profile_difference_real_max`` (:func:`profile_differences` between the two real sets:
    what sampling alone gives), and the spread of single two-sample AUROCs over the ``repeats`` runs
    (``two_sample_auroc_real_sd``, 2.5% and 97.5% quantiles ``two_sample_auroc_real_q025``/``_q975``,
    ``two_sample_runs``).
    """
    ceiling = profile_correlations(real, real_labels, reference, reference_labels, marks)
    corrected = corrected_profile_correlations(real, real_labels, reference, reference_labels, marks, seed=seed)
    differences = profile_differences(real, real_labels, reference, reference_labels, marks)
    runs = two_sample_aurocs(real, reference, seed=seed, repeats=repeats)
    return {
        **{k.replace("corrected/", "corrected_real/"): v for k, v in corrected.items() if k.startswith("profile_corr")},
        "two_sample_auroc_real": float(runs.mean()),
        # the null distribution of single two-sample AUROCs: two real gene sets of this size
        "two_sample_auroc_real_sd": float(runs.std(ddof=1)) if len(runs) > 1 else float("nan"),
        "two_sample_auroc_real_q025": float(np.quantile(runs, 0.025)),
        "two_sample_auroc_real_q975": float(np.quantile(runs, 0.975)),
        "two_sample_runs": len(runs),
        "profile_difference_real_max": _worst(differences),
        **{f"profile_difference_real/{k}": v for k, v in differences.items()},
        "mark_correlation_distance_real": mark_correlation_distance(real, reference),
        **{f"profile_correlation_real/{k}": v for k, v in ceiling.items()},
    }


def quality_report(real, real_labels, fake, fake_labels, marks, classifier=None, seed: int = 0,
                   reference: dict | None = None, repeats: int = 3) -> dict:  # fmt: skip
    """All quality numbers in one dict (the keys logged per epoch and written to metrics.json).

    Every class x mark is judged by :func:`profile_differences` (``profile_difference/<class>/<mark>``,
    worst: ``profile_difference_max``), with ``reference`` also ``profile_difference_excess``: that worst
    value minus the worst one between two real gene sets. ``two_sample_auroc_sd`` is the spread of the
    single runs averaged into ``two_sample_auroc``; with ``reference``, ``two_sample_beyond_real`` says
    whether the mean lies above the 97.5% quantile of real-vs-real runs (``False``: not told apart from
    real at this sample size; read ``two_sample_auroc_real_q975`` to see how much the test could resolve).

    ``profile_correlation_corrected_min`` is the lowest noise-corrected profile correlation over the
    ``profiles_measured`` class x marks whose real profile is measured (NaN if none is). With ``reference``
    (from :func:`real_reference`), also ``profile_correlation_gap_max``: the largest shortfall of a
    generated profile correlation below min(0.9, the real-vs-real correlation). With ``classifier``,
    ``conditional_fidelity_auroc`` (on generated genes), the reference of :func:`fidelity_reference`
    (on the real genes, with its 95% interval) and ``conditional_fidelity_gap``, generated - real.
    """
    profiles = profile_correlations(real, real_labels, fake, fake_labels, marks)
    corrected = corrected_profile_correlations(real, real_labels, fake, fake_labels, marks, seed=seed)
    measured = [v for k, v in corrected.items() if k.startswith("profile_correlation_corrected/") and not np.isnan(v)]
    differences = profile_differences(real, real_labels, fake, fake_labels, marks)
    runs = two_sample_aurocs(real, fake, seed=seed, repeats=repeats)
    report = {
        "two_sample_auroc": float(runs.mean()),
        "two_sample_auroc_sd": float(runs.std(ddof=1)) if len(runs) > 1 else float("nan"),
        "profile_difference_max": _worst(differences),
        **{f"profile_difference/{k}": v for k, v in differences.items()},
        "profile_correlation_min": float(np.nanmin(list(profiles.values()))),
        "profile_correlation_mean": float(np.nanmean(list(profiles.values()))),
        "mark_correlation_distance": mark_correlation_distance(real, fake),
        "profile_correlation_corrected_min": float(min(measured)) if measured else float("nan"),
        "profiles_measured": len(measured),
        **{f"profile_correlation/{k}": v for k, v in profiles.items()},
        **corrected,
    }
    if reference is not None:
        ceilings = {k: reference[f"profile_correlation_real/{k}"] for k in profiles}
        gaps = [min(0.9, ceilings[k]) - r for k, r in profiles.items() if not np.isnan(ceilings[k] + r)]
        report["profile_correlation_gap_max"] = float(max(gaps)) if gaps else float("nan")
        report.update(reference)
        # the worst class x mark beyond what another real gene set's worst one differs by
        worst_real = reference["profile_difference_real_max"]
        report["profile_difference_excess"] = report["profile_difference_max"] - worst_real
        # generated genes told apart more often than 97.5% of real-vs-real runs: the test has the power to see them
        report["two_sample_beyond_real"] = bool(report["two_sample_auroc"] > reference["two_sample_auroc_real_q975"])
    if classifier is not None:
        report["conditional_fidelity_auroc"] = conditional_fidelity(classifier, fake, fake_labels)
        # the same classifier on the real genes: what a generator as good as the data would score;
        # the gap is judged in a band around 0 (too high: a caricature of the classes, too low: a failure)
        report.update(fidelity_reference(classifier, real, real_labels))
        report["conditional_fidelity_gap"] = (
            report["conditional_fidelity_auroc"] - report["conditional_fidelity_auroc_real"]
        )
    return report
