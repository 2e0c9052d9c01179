"""Measured quality of generated signals. Arrays are [genes, marks, bins] in model space."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc

#: Bins around the TSS (1-based 41..60 of 100: +/-1 kb) summarizing a mark's promoter level.
PROMOTER = slice(40, 60)


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
    return float(np.mean([_two_sample_once(real, fake, seed + r, steps) for r in range(repeats)]))


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


def mark_correlation_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frobenius distance between real and generated mark x mark correlation matrices of promoter levels."""

    def corr(x):
        levels = x[..., PROMOTER].float().mean(-1).T  # [marks, genes]
        return torch.corrcoef(levels).nan_to_num(0.0)

    return float(torch.linalg.matrix_norm(corr(real) - corr(fake)))


def conditional_fidelity(classifier: torch.nn.Module, fake: torch.Tensor, fake_labels: torch.Tensor) -> float:
    """AUROC of a classifier trained on real data scoring generated high vs low signals."""
    with torch.no_grad():
        logits = classifier(fake.float())
        probability = torch.softmax(logits, dim=1)[:, 1]
    return float(binary_auroc(probability, fake_labels.long()))


def real_reference(real, real_labels, reference, reference_labels, marks, seed: int = 0, repeats: int = 3) -> dict:
    """What real data itself scores against ``real``: the floor and ceilings of the quality numbers.

    ``reference`` are other real genes [genes, marks, bins] (e.g. a training-split sample) with
    ``reference_labels``. Returns ``two_sample_auroc_real`` (what a perfect generator of this cell's
    genes would reach), ``mark_correlation_distance_real`` and ``profile_correlation_real/<class>/<mark>``
    (a flat, noisy mark's mean profile correlates poorly even between two real gene sets).
    """
    ceiling = profile_correlations(real, real_labels, reference, reference_labels, marks)
    return {
        "two_sample_auroc_real": two_sample_auroc(real, reference, seed=seed, repeats=repeats),
        "mark_correlation_distance_real": mark_correlation_distance(real, reference),
        **{f"profile_correlation_real/{k}": v for k, v in ceiling.items()},
    }


def quality_report(real, real_labels, fake, fake_labels, marks, classifier=None, seed: int = 0,
                   reference: dict | None = None, repeats: int = 3) -> dict:  # fmt: skip
    """All quality numbers in one dict (the keys logged per epoch and written to metrics.json).

    With ``reference`` (from :func:`real_reference`), also ``profile_correlation_gap_max``: the largest
    shortfall of a generated profile correlation below min(0.9, the real-vs-real correlation).
    """
    profiles = profile_correlations(real, real_labels, fake, fake_labels, marks)
    report = {
        "two_sample_auroc": two_sample_auroc(real, fake, seed=seed, repeats=repeats),
        "profile_correlation_min": float(np.nanmin(list(profiles.values()))),
        "profile_correlation_mean": float(np.nanmean(list(profiles.values()))),
        "mark_correlation_distance": mark_correlation_distance(real, fake),
        **{f"profile_correlation/{k}": v for k, v in profiles.items()},
    }
    if reference is not None:
        ceilings = {k: reference[f"profile_correlation_real/{k}"] for k in profiles}
        gaps = [min(0.9, ceilings[k]) - r for k, r in profiles.items() if not np.isnan(ceilings[k] + r)]
        report["profile_correlation_gap_max"] = float(max(gaps)) if gaps else float("nan")
        report.update(reference)
    if classifier is not None:
        report["conditional_fidelity_auroc"] = conditional_fidelity(classifier, fake, fake_labels)
        # the same classifier on the real genes: what a generator as good as the data would score
        report["conditional_fidelity_auroc_real"] = conditional_fidelity(classifier, real, real_labels)
    return report
