"""How a trained GAN is judged: the quality targets and the run's summary on the test split."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np

#: The issue's quality targets. The profile target (mean profiles correlate >= 0.9) is judged on
#: the noise-corrected correlation of every class x mark whose real profile is measured
#: (``profile_correlation_corrected_min``), and no profile may fall more than 0.1 below what
#: another real gene set reaches (``profile_correlation_gap_max``). The raw ``profile_correlation_min``
#: is still reported, but it is no target: real gene sets of a flat mark (100 genes per class)
#: correlate near 0 with each other, so no generator could reach 0.9 on it.
TARGETS = {
    "two_sample_auroc": ("<=", 0.75),
    "profile_correlation_corrected_min": (">=", 0.9),
    "profile_correlation_gap_max": ("<=", 0.1),
    "conditional_fidelity_auroc": (">=", 0.9),
}


def targets_met(quality: dict) -> dict[str, bool]:
    """Each target in :data:`TARGETS` that ``quality`` reports: met or not."""
    result = {}
    for key, (sign, bound) in TARGETS.items():
        if key in quality and not np.isnan(quality[key]):
            result[key] = bool(quality[key] <= bound if sign == "<=" else quality[key] >= bound)
    return result


def gan_summary(trainer: pl.Trainer, model) -> dict:
    """The summary of a GAN run (its ``metrics.json``): the best checkpoint (by validation two-sample
    AUROC), its quality on the validation split (where it was selected) and on the held-out test split
    (where targets are judged)."""
    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_path", "") or ""
    history = getattr(model, "quality_history", {})
    best_epoch = min(history, key=lambda e: history[e]["two_sample_auroc"]) if history else None
    trainer.test(model, datamodule=trainer.datamodule, ckpt_path=best or None, verbose=False)
    test_quality = model.test_quality
    summary = {
        "model": "HistoneGAN",
        "marks": model.marks,
        "epochs": trainer.current_epoch,
        "best_checkpoint": best or None,
        "best_two_sample_auroc": float(callback.best_model_score)
        if best and callback.best_model_score is not None
        else None,
        "best_epoch": best_epoch,
        "quality": history.get(best_epoch, {}),
        "test_quality": test_quality,
        "targets": {key: f"{sign} {bound}" for key, (sign, bound) in TARGETS.items()},
        "targets_met_on_test": targets_met(test_quality),
    }
    return summary
