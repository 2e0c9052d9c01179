"""The run folder guard of :mod:`deepchrome.runs`: what a fit that ends early leaves and says."""

from __future__ import annotations

import logging

import optuna
import pytest

from deepchrome.runs import _guarded_run_folder


@pytest.mark.parametrize(("error", "warned"), [(RuntimeError("boom"), True), (optuna.TrialPruned(), False)])
def test_a_pruned_trial_is_not_reported_as_a_failure(tmp_path, caplog, error, warned):
    """A failed fit that wrote checkpoints keeps them and says how to resume; a sweep's pruned trial
    keeps them too, without a failure message (pruning is the sweep working as planned)."""
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING), pytest.raises(type(error)):
        with _guarded_run_folder(run, overwrite=False):
            (run / "checkpoints").mkdir(parents=True)
            (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
            raise error
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert ("the checkpoints written before the failure are kept" in caplog.text) == warned, caplog.text
