"""HistoneDataModule on the bundled example (release format): per-stage cells and splits, subsampling,
transform fitted on train only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepchrome.data import HistoneDataModule, SignalTransform, read_release_csv
from deepchrome.errors import DeepChromeError
from tests.conftest import EXAMPLE


def test_cells_and_splits_per_stage():
    dm = HistoneDataModule(root=str(EXAMPLE), train_cells=["S01", "S02"], test_cells=["S02"])
    dm.setup("fit")
    dm.setup("test")
    assert (dm.n_marks, dm.n_bins) == (5, 100)
    assert len(dm.data["train"]) == 200  # 100 training genes per cell
    assert dm.data["train"].cells == ["S01", "S02"]
    assert dm.data["val"].cells == ["S01", "S02"]
    assert dm.data["test"].cells == ["S02"]
    valid = read_release_csv(EXAMPLE / "S02/classification/test.csv")
    assert np.array_equal(dm.data["test"].signals, valid.signals)
    assert dm.data["test"].gene_ids.tolist() == valid.gene_ids.tolist()


def test_batches_are_transformed_tensors():
    dm = HistoneDataModule(root=str(EXAMPLE), train_cells=["S01"], batch_size=32)
    dm.setup("fit")
    x, y, index = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 5, 100) and x.dtype == torch.float32
    assert y.shape == (32,) and y.dtype == torch.int64
    raw = dm.data["train"].signals[index.numpy()]
    assert torch.allclose(x, torch.log1p(torch.from_numpy(raw.astype(np.float32))))
    assert torch.equal(y, torch.from_numpy(dm.data["train"].labels[index.numpy()]))
    sizes = [len(b[1]) for b in dm.train_dataloader()]
    assert sum(sizes) == 100 and max(sizes) == 32


def test_shuffling_is_seeded():
    def epochs(seed, n=2):
        dm = HistoneDataModule(root=str(EXAMPLE), train_cells=["S01"], seed=seed, batch_size=32)
        dm.setup("fit")
        loader = dm.train_dataloader()
        return [torch.cat([index for _, _, index in loader]) for _ in range(n)]

    first, second = epochs(5)
    assert sorted(first.tolist()) == list(range(100))  # each epoch visits every training gene once
    assert not torch.equal(first, torch.arange(100))  # in a shuffled order
    assert not torch.equal(first, second)  # a new order every epoch
    again = epochs(5)
    assert torch.equal(first, again[0]) and torch.equal(second, again[1])  # the same seed, the same orders
    assert not torch.equal(first, epochs(6, n=1)[0])  # another seed, another order


def test_subsampling_is_seeded_and_per_cell():
    def genes(seed, **kwargs):
        dm = HistoneDataModule(root=str(EXAMPLE), train_cells=["S01", "S02"], seed=seed, **kwargs)
        dm.setup("fit")
        return dm.data["train"]

    half = genes(1, train_fraction=0.5)
    assert len(half) == 100
    assert np.bincount(half.cell_index).tolist() == [50, 50]
    assert half.gene_ids.tolist() == genes(1, train_fraction=0.5).gene_ids.tolist()
    assert half.gene_ids.tolist() != genes(2, train_fraction=0.5).gene_ids.tolist()
    assert len(genes(1, n_train_genes=30)) == 60
    # validation is never subsampled
    dm = HistoneDataModule(root=str(EXAMPLE), train_cells=["S01"], train_fraction=0.1)
    dm.setup("fit")
    assert len(dm.data["val"]) == 100


def test_standardization_uses_training_split_only():
    dm = HistoneDataModule(root=str(EXAMPLE), train_cells=["S01"], test_cells=["S02"], transform="standardize")
    dm.setup("test")  # fitting needs the training split even when only testing
    train = dm.data["train"].signals.astype(np.float64)
    assert np.allclose(dm.transform.mean.numpy(), train.mean(axis=(0, 2)), rtol=1e-5)
    assert np.allclose(dm.transform.std.numpy(), train.std(axis=(0, 2)), rtol=1e-4)
    x, _, _ = next(iter(dm.test_dataloader()))
    test = torch.from_numpy(dm.data["test"].signals[: len(x)].astype(np.float32))
    expected = (test - dm.transform.mean[:, None]) / dm.transform.std[:, None]
    assert torch.allclose(x, expected, atol=1e-5)


def test_transform_inverse_and_state():
    transform = SignalTransform("log1p_standardize").fit(np.arange(60, dtype=np.uint16).reshape(3, 2, 10))
    x = torch.rand(4, 2, 10) * 50
    assert torch.allclose(transform.inverse(transform(x)), x, atol=1e-3)
    other = SignalTransform("raw")
    other.load_state_dict(transform.state_dict())
    assert torch.allclose(other(x), transform(x))


def test_marks_subset_and_order():
    dm = HistoneDataModule(root=str(EXAMPLE), train_cells=["S01"], marks=["H3K4me3", "H3K27me3"])
    dm.setup("fit")
    full = read_release_csv(EXAMPLE / "S01/classification/train.csv")
    assert dm.n_marks == 2
    assert np.array_equal(dm.data["train"].signals[:, 0], full.signals[:, 3])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train_cells": ["S99"]}, "data.train_cells: cell\\(s\\) S99 not in .* \\(available: S01, S02, S03, S04\\)"),
        ({"test_cells": ["X"]}, "data.test_cells: cell\\(s\\) X not in"),
        ({"marks": ["H3K27ac"]}, "mark\\(s\\) H3K27ac not in cell S01 \\(available: H3K27me3"),
        ({"transform": "sqrt"}, "unknown transform 'sqrt'"),
        ({"train_fraction": 0}, "train_fraction must be in"),
    ],
)
def test_bad_configuration_errors(kwargs, message):
    with pytest.raises(DeepChromeError, match=message):
        HistoneDataModule(root=str(EXAMPLE), **{"train_cells": ["S01"], **kwargs})


def test_missing_root(tmp_path):
    with pytest.raises(DeepChromeError, match="does not exist"):
        HistoneDataModule(root=str(tmp_path / "nowhere"))
