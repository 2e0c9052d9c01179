"""Callbacks that tests pass to ``deepchrome fit`` by class path (``--trainer.callbacks+=...``)."""

from __future__ import annotations

import os

import lightning.pytorch as pl


class SendSignal(pl.Callback):
    """Send this process ``signum`` at the first training batch of ``epoch`` (after earlier epochs' checkpoints)."""

    def __init__(self, signum: int = 15, epoch: int = 1) -> None:
        self.signum, self.epoch = signum, epoch

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), self.signum)
