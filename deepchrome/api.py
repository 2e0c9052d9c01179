"""The Python API: train a config, load a checkpoint as a classifier, predict.

>>> import deepchrome
>>> run = deepchrome.fit("deepchrome", overrides={"data.root": "data/example", "trainer.max_epochs": 3})
>>> run.metrics["test_auroc"], run.best_checkpoint, run.dir        # same as metrics.json
>>> clf = deepchrome.load(run.best_checkpoint)                      # net + transform + marks + cells
>>> p = clf.predict(deepchrome.data.load_split("data/example", "S01", "test"))  # P(high) per gene

The command line runs the same functions (:mod:`deepchrome.runs`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from deepchrome.checkpoints import load_classifier
from deepchrome.config import load_config
from deepchrome.data.inputs import StageData, concatenate
from deepchrome.data.signals import HistoneSignals
from deepchrome.data.transform import SignalTransform
from deepchrome.errors import ArgumentTypeError, DeepChromeError, check_argument
from deepchrome.messages import API_WORDS, api_words, default_output  # noqa: F401 - api_words: re-exported
from deepchrome.models import SignalNet
from deepchrome.runs import Run, train


@default_output
def fit(
    config: str | os.PathLike | dict = "deepchrome",
    overrides: dict | None = None,
    run_dir: str | os.PathLike | None = None,
    ckpt_path: str | os.PathLike | None = None,
    callbacks: Sequence = (),
    overwrite: bool = False,
    threads: int | None = None,
) -> Run:
    """Train a classifier as ``deepchrome fit`` does, and test its best checkpoint.

    Parameters
    ----------
    config
        A packaged config name (``"deepchrome"``, ``"linear"``, ``"mlp"``, ``"attentivechrome"``,
        ``"deepchrome_fast"``), a YAML path, or a dict.
    overrides
        Dotted overrides, checked against the config: ``{"data.root": "data/example",
        "trainer.max_epochs": 3, "model.net.init_args.dropout": 0.3}``. Relative paths in them
        are taken from the working directory.
    run_dir
        Output folder (default: the config's ``trainer.default_root_dir``).
    ckpt_path
        Resume from a checkpoint (``"last"``: the run folder's last one).
    callbacks
        Extra Lightning callbacks.
    overwrite
        Replace a finished run in the output folder (its checkpoints, ``metrics.*``, ``config.yaml``
        and ``test_predictions.csv``); without it such a folder is refused.
    threads
        torch CPU threads; ``None``: the usable cores shared among the training processes
        running on this machine, unless ``OMP_NUM_THREADS`` is set (:mod:`deepchrome.threads`).

    Returns
    -------
    Run
        ``run.metrics`` (the contents of ``metrics.json``), ``run.best_checkpoint``, ``run.dir``.
    """
    check_argument("config", config, (str, os.PathLike, dict), "a packaged config name, a YAML path or a dict")
    check_argument("overrides", overrides, dict, "a dict of dotted keys to values", none=True)
    check_argument("run_dir", run_dir, (str, os.PathLike), "a folder path", none=True)
    check_argument("ckpt_path", ckpt_path, (str, os.PathLike), "a checkpoint path or 'last'", none=True)
    check_argument("callbacks", callbacks, (list, tuple), "a list of Lightning callbacks")
    check_argument("overwrite", overwrite, bool, "True or False")
    # a DeepChromeError's command-line wording becomes fit's arguments on the way out (default_output)
    return train(
        load_config(config, overrides),
        run_dir,
        ckpt_path=ckpt_path,
        callbacks=callbacks,
        overwrite=overwrite,
        threads=threads,
    )


class Classifier:
    """A trained classifier with everything needed to score new data correctly.

    The network comes with the marks (in input order), the number of bins and the input
    transform fitted on its training data; :meth:`predict` applies them, so raw release data goes
    in and probabilities come out.

    Attributes
    ----------
    net
        The network (eval mode).
    marks
        Marks in the order the network reads them.
    n_bins
        Bins per gene.
    transform
        The fitted input transform.
    train_cells
        Cells the model was trained on.
    """

    def __init__(
        self,
        net: SignalNet,
        marks: Sequence[str],
        n_bins: int,
        transform: SignalTransform,
        train_cells: Sequence[str] = (),
        source: str = "",
    ) -> None:
        self.net = net.eval()
        self.marks = tuple(marks)
        self.n_bins = int(n_bins)
        self.transform = transform
        self.train_cells = list(train_cells)
        self.source = source

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> Classifier:
        """Load a classifier checkpoint safely (allow-listed networks, ``weights_only=True``)."""
        check_argument("checkpoint", path, (str, os.PathLike), "a checkpoint file's path")
        net, meta = load_classifier(path)
        if not meta.get("transform"):
            raise DeepChromeError(f"{path}: checkpoint holds no input transform; it cannot score raw data")
        transform = SignalTransform()
        transform.load_state_dict(meta["transform"])
        return cls(net, meta["marks"], meta["n_bins"], transform, meta.get("train_cells") or [], str(path))

    def __repr__(self) -> str:
        return (
            f"Classifier({type(self.net).__name__}, marks={list(self.marks)}, n_bins={self.n_bins}, "
            f"transform={self.transform.kind!r}, train_cells={self.train_cells})"
        )

    def _raw(self, data: HistoneSignals | StageData | Sequence[HistoneSignals] | np.ndarray) -> np.ndarray:
        expected = "a HistoneSignals, a list of them, a StageData or an array [genes, marks, bins]"
        check_argument("data", data, (HistoneSignals, StageData, list, tuple, np.ndarray), expected)
        if isinstance(data, HistoneSignals):
            data = [data]
        if isinstance(data, list | tuple):
            if not data or not all(isinstance(part, HistoneSignals) for part in data):
                raise ArgumentTypeError(f"data: expected {expected}, got a list of {_kinds(data) or 'nothing'}")
            data = concatenate([self._checked(part) for part in data])
        if isinstance(data, StageData):
            if data.marks and tuple(data.marks) != self.marks:
                have, want = ", ".join(data.marks), ", ".join(self.marks)
                raise DeepChromeError(f"data has marks {have}; the model reads {want}")
            signals = data.signals
        else:
            signals = np.asarray(data)
        if signals.ndim != 3 or signals.shape[1:] != (len(self.marks), self.n_bins):
            raise DeepChromeError(
                f"data has shape {tuple(signals.shape)}; the model reads [genes, {len(self.marks)} marks "
                f"({', '.join(self.marks)}), {self.n_bins} bins]"
            )
        return signals

    def _checked(self, signals: HistoneSignals) -> HistoneSignals:
        if set(signals.marks) != set(self.marks):
            raise DeepChromeError(
                f"cell {signals.cell or '?'} has marks {', '.join(signals.marks)}; the model was trained on "
                f"{', '.join(self.marks)}"
            )
        if signals.n_bins != self.n_bins:
            raise DeepChromeError(
                f"cell {signals.cell or '?'} has {signals.n_bins} bins per gene; the model reads {self.n_bins}"
            )
        return signals.select_marks(self.marks)  # the model's mark order

    def predict(
        self, data: HistoneSignals | StageData | Sequence[HistoneSignals] | np.ndarray, batch_size: int = 4096
    ) -> np.ndarray:
        """P(high expression) per gene.

        Parameters
        ----------
        data
            Raw signals (read counts, as in the release): a :class:`HistoneSignals` (e.g. from
            :func:`deepchrome.data.load_split`), a list of them, or an array [genes, marks, bins]
            whose marks are in :attr:`marks` order. Marks are reordered by name; other marks or
            bins are refused.

        Returns
        -------
        numpy.ndarray
            [genes] probabilities in [0, 1].
        """
        from deepchrome.training import predict_probabilities

        check_argument("batch_size", batch_size, int, "a whole number >= 1")
        if batch_size < 1:
            raise DeepChromeError(f"batch_size: expected a whole number >= 1, got {batch_size}")
        signals = self._raw(data)
        self._check_counts(signals, data)
        return predict_probabilities(self.net, signals, self.transform, batch_size)

    def _check_counts(self, signals: np.ndarray, data) -> None:
        """Refuse signals that are not read counts (NaN, infinite, negative or above int32), naming the first."""
        if not np.issubdtype(signals.dtype, np.number) or np.issubdtype(signals.dtype, np.complexfloating):
            raise DeepChromeError(f"data: expected numbers (read counts), got an array of {signals.dtype}")
        # the release stores counts as int32 (its reader refuses more); beyond float32 they become inf
        bad = ~np.isfinite(signals) | (signals < 0) | (signals > np.iinfo(np.int32).max)
        if bad.any():
            gene, mark, position = (int(i) for i in np.argwhere(bad)[0])
            ids = getattr(data, "gene_ids", None)
            if ids is None and isinstance(data, list | tuple):
                ids = np.concatenate([part.gene_ids for part in data])
            name = f"gene {ids[gene]}" if ids is not None else f"gene (row) {gene}"
            raise DeepChromeError(
                f"data: {name}, mark {self.marks[mark]}, bin {position}: {signals[gene, mark, position]} is not a "
                f"read count (finite and >= 0); {int(bad.sum())} such value(s): fix or drop those genes"
            )

    def predict_table(self, data: HistoneSignals | Sequence[HistoneSignals], threshold: float = 0.5):
        """:meth:`predict` as a table: gene_id, cell, probability, predicted_label, label (as ``predictions.csv``)."""
        from deepchrome.training import prediction_table

        parts = [data] if isinstance(data, HistoneSignals) else list(data)
        stage = concatenate([self._checked(part) for part in parts])
        return prediction_table(stage, self.predict(stage), np.arange(len(stage)), threshold)


def _kinds(values) -> str:
    return ", ".join(dict.fromkeys(type(value).__name__ for value in values))


def load(checkpoint: str | os.PathLike) -> Classifier:
    """A classifier from a checkpoint of ``deepchrome fit`` (see :meth:`Classifier.from_checkpoint`)."""
    return Classifier.from_checkpoint(checkpoint)
