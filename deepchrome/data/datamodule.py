"""The shared LightningDataModule: every model, the GAN and every experiment read data through it."""

from __future__ import annotations

import hashlib
import logging
import os

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from deepchrome.data.example import resolve_root
from deepchrome.data.inputs import StageData, check_cells, concatenate, load_cells
from deepchrome.data.release import list_cells
from deepchrome.data.signals import HistoneSignals
from deepchrome.data.transform import TRANSFORMS, SignalTransform
from deepchrome.errors import DeepChromeError

log = logging.getLogger(__name__)

__all__ = ["TRANSFORMS", "HistoneDataModule", "SignalDataset", "SignalTransform", "StageData"]


def _batched(batch):
    # The dataset already returns whole batches; nothing to collate.
    return batch


class SignalDataset(Dataset):
    """Indexes a :class:`StageData` by whole batches: one gather per batch, no per-sample Python.

    ``dataset[indices]`` (via ``__getitems__``) returns ``(x, y, index)``: x [batch, marks, bins]
    float32 transformed, y [batch] int64, index [batch] positions in the stage.
    """

    def __init__(self, data: StageData, transform: SignalTransform) -> None:
        self.data = data
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        x = torch.from_numpy(self.data.signals[index].astype(np.float32, copy=False))
        y = torch.from_numpy(self.data.labels[index])
        return self.transform(x), y, torch.from_numpy(index)

    def __getitem__(self, i: int):
        x, y, index = self.__getitems__([i])
        return x[0], y[0], index[0]


def _as_list(cells: str | list[str] | None) -> list[str] | None:
    if cells is None:
        return None
    return [cells] if isinstance(cells, str) else [str(c) for c in cells]


def check_two_classes(data: StageData, field: str, split: str) -> StageData:
    """Return ``data`` if its genes hold both labels (AUROC, and training, need both), else refuse.

    Parameters
    ----------
    data
        One split of some cells, pooled.
    field
        The setting that chose the cells, for the message (``data.val_cells``).
    split
        The split's file name (``train``, ``valid``).

    Raises
    ------
    DeepChromeError
        ``data.val_cells [S01]: the valid split has 1 gene(s), 1 with label 0 and 0 with label 1; ...``
    """
    counts = np.bincount(np.asarray(data.labels, dtype=np.int64), minlength=2)
    if (counts[:2] > 0).all():
        return data
    raise DeepChromeError(
        f"{field} [{', '.join(data.cells)}]: the {split} split has {len(data)} gene(s), {counts[0]} with label 0 "
        f"and {counts[1]} with label 1; AUROC is undefined unless both labels are present: use more genes or cells"
    )


class HistoneDataModule(pl.LightningDataModule):
    """Histone signals of chosen cells for training, validation and testing.

    Each stage uses its own cells' own split files: training reads the ``train`` split of
    ``train_cells``, validation the ``valid`` split of ``val_cells``, testing the ``test`` split
    of ``test_cells``. Cross-cell setups are therefore configuration, not code.

    Parameters
    ----------
    root
        Release root (``<cell>/classification/{train,valid,test}.csv``).
    train_cells
        Cells to train on; ``None`` = every cell under ``root``.
    val_cells, test_cells
        Cells to validate / test on; ``None`` = the training cells.
    marks
        Marks to use, in this order; ``None`` = all marks of the data.
    transform
        ``raw``, ``log1p``, ``standardize`` or ``log1p_standardize`` (statistics from the
        training split only).
    train_fraction, n_train_genes
        Seeded subsampling of each training cell's genes: a fraction, or a number per cell.
    batch_size
        Training batch size; evaluation uses ``eval_batch_size``.
    seed
        Seed of subsampling and shuffling.
    cache_dir
        Binary cache location (default ``$DEEPCHROME_CACHE_DIR`` or ``~/.cache/deepchrome``).
    predict_split
        Split of ``test_cells`` that ``predict`` scores: ``train``, ``valid``, ``test``.
    """

    def __init__(
        self,
        root: str = "data/example",
        train_cells: list[str] | None = None,
        val_cells: list[str] | None = None,
        test_cells: list[str] | None = None,
        marks: list[str] | None = None,
        transform: str = "log1p",
        train_fraction: float = 1.0,
        n_train_genes: int | None = None,
        batch_size: int = 32,
        eval_batch_size: int = 1024,
        seed: int = 0,
        cache_dir: str | None = None,
        num_workers: int = 0,
        predict_split: str = "test",
    ) -> None:
        super().__init__()
        self.root = resolve_root(os.path.expanduser(root))
        available = list_cells(self.root)
        if not available:
            raise DeepChromeError(f"data root {self.root} holds no <cell>/classification/train.csv")
        self.train_cells = _as_list(train_cells) or available
        self.val_cells = _as_list(val_cells) or list(self.train_cells)
        self.test_cells = _as_list(test_cells) or list(self.train_cells)
        for field, cells in (
            ("train_cells", self.train_cells),
            ("val_cells", self.val_cells),
            ("test_cells", self.test_cells),
        ):
            check_cells(self.root, cells, f"data.{field}")
        if not 0 < train_fraction <= 1:
            raise DeepChromeError(f"data.train_fraction must be in (0, 1], got {train_fraction}")
        if predict_split not in ("train", "valid", "test"):
            raise DeepChromeError(f"data.predict_split must be train, valid or test, got {predict_split!r}")
        self.transform = SignalTransform(transform)
        self.requested_marks = marks
        self.train_fraction = train_fraction
        self.n_train_genes = n_train_genes
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.cache_dir = cache_dir
        self.num_workers = num_workers
        self.predict_split = predict_split
        self.data: dict[str, StageData] = {}
        # Shapes come from the first training file so models can size themselves before setup.
        first = self._load(self.train_cells[0], "train")
        self.marks: tuple[str, ...] = first.marks
        self.n_bins: int = first.n_bins
        self.bin_size: int = first.bin_size

    @property
    def n_marks(self) -> int:
        """Number of marks per gene."""
        return len(self.marks)

    def _load(self, cell: str, split: str) -> HistoneSignals:
        marks = self.requested_marks if self.requested_marks is not None else getattr(self, "marks", None)
        return load_cells(self.root, [cell], split, marks, getattr(self, "n_bins", None), self.cache_dir)[0]

    def _subsample(self, signals: HistoneSignals, cell_number: int | None = None) -> HistoneSignals:
        """The training genes of one cell that ``train_fraction`` / ``n_train_genes`` keep.

        Each gene gets a key from a hash of (``seed``, cell name, gene id) and the genes with the
        smallest keys are kept. A gene's inclusion therefore depends only on those three, never on
        the cell's position in ``train_cells`` (``cell_number`` is not used), and smaller subsets
        are nested in larger ones: the 10% genes are among the 25% genes, which are among the 50%.
        """
        index = self.subsample_index(signals)
        return signals if index is None else signals.subset(index)

    def subsample_index(self, signals: HistoneSignals) -> np.ndarray | None:
        """Sorted positions [kept genes] of the training genes :meth:`_subsample` keeps (``None``: all)."""
        n = signals.n_genes
        keep = n
        if self.n_train_genes is not None:
            keep = min(n, int(self.n_train_genes))
        if self.train_fraction < 1:
            keep = min(keep, max(1, int(round(self.train_fraction * n))))
        if keep == n:
            return None
        prefix = f"{self.seed}\0{signals.cell}\0".encode()
        keys = [hashlib.blake2b(prefix + str(gene).encode(), digest_size=8).digest() for gene in signals.gene_ids]
        order = sorted(range(n), key=lambda i: (keys[i], str(signals.gene_ids[i])))
        return np.sort(np.asarray(order[:keep], dtype=np.int64))

    def stage_data(self, cells: list[str], split: str, subsample: bool = False) -> StageData:
        """Load and concatenate one split of several cells.

        Returns
        -------
        StageData
            ``signals`` [genes, marks, bins] over all cells, in cell order.
        """
        parts = load_cells(self.root, cells, split, self.marks, self.n_bins, self.cache_dir)
        if subsample:
            parts = [self._subsample(signals, number) for number, signals in enumerate(parts)]
        return concatenate(parts)

    def setup(self, stage: str | None = None) -> None:
        """Load what ``stage`` needs; fit the transform on the training split if it needs it."""
        wanted = {
            "fit": ["train", "val"],
            "validate": ["val"],
            "test": ["test"],
            "predict": ["predict"],
            None: ["train", "val", "test"],
        }[stage]
        if self.transform.needs_fit and self.transform.mean is None:
            wanted = ["train", *wanted]
        for name in wanted:
            if name in self.data:
                continue
            if name == "train":
                self.data[name] = check_two_classes(
                    self.stage_data(self.train_cells, "train", subsample=True), "data.train_cells", "train"
                )
            elif name == "val":
                self.data[name] = check_two_classes(self.stage_data(self.val_cells, "valid"), "data.val_cells", "valid")
            elif name == "test":
                self.data[name] = self.stage_data(self.test_cells, "test")
            else:
                self.data[name] = self.stage_data(self.test_cells, self.predict_split)
        if self.transform.needs_fit and self.transform.mean is None:
            self.transform.fit(self.data["train"].signals)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        if name not in self.data:
            self.setup({"train": "fit", "val": "fit", "test": "test", "predict": "predict"}[name])
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            SignalDataset(self.data[name], self.transform),
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=_batched,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches ``(x, y, index)``."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in file order."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches in file order."""
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Batches of ``predict_split`` of the test cells, in file order."""
        return self._loader("predict", shuffle=False)

    def state_dict(self) -> dict:
        """The fitted transform and the marks, stored in checkpoints."""
        return {"transform": self.transform.state_dict(), "marks": list(self.marks), "n_bins": self.n_bins}

    def load_state_dict(self, state: dict) -> None:
        """Restore the transform fitted when the checkpoint was trained."""
        if list(state.get("marks", self.marks)) != list(self.marks):
            raise DeepChromeError(
                f"checkpoint was trained on marks {', '.join(state['marks'])}, the data has {', '.join(self.marks)}"
            )
        self.transform.load_state_dict(state["transform"])
