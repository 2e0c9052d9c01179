"""Workers sharing optuna storages: distinct sweep trials, the experiment job table (retries,
attempts, errors), killed workers on every storage, nested learning-curve subsets, and a short
chaos run (killed worker + failing job) whose results equal a clean run's."""

from __future__ import annotations

import numpy as np

from deepchrome.data.datamodule import HistoneDataModule


# -- learning-curve subsets ------------------------------------------------------------------------
def _train_genes(root, cells, **options) -> dict[str, set[str]]:
    module = HistoneDataModule(root=str(root), train_cells=cells, **options)
    module.setup("fit")
    data = module.data["train"]
    names = data.cell_of_gene
    return {cell: set(data.gene_ids[names == cell].tolist()) for cell in cells}


def test_subsets_are_nested_and_independent_of_the_cell_order(simulated):
    fractions = (0.1, 0.25, 0.5, 1.0)
    subsets = [_train_genes(simulated, ["S01", "S02"], train_fraction=f) for f in fractions]
    for cell in ("S01", "S02"):
        sizes = [len(s[cell]) for s in subsets]
        assert sizes[0] == round(0.1 * sizes[-1]) and sizes[1] == round(0.25 * sizes[-1])
        for small, large in zip(subsets, subsets[1:], strict=False):
            assert small[cell] < large[cell]  # strictly nested
    assert subsets[0]["S01"] != subsets[0]["S02"]  # each cell draws its own genes
    reordered = _train_genes(simulated, ["S02", "S01"], train_fraction=0.1)
    assert reordered == subsets[0]
    alone = _train_genes(simulated, ["S02"], train_fraction=0.1)
    assert alone["S02"] == subsets[0]["S02"]
    other_seed = _train_genes(simulated, ["S01"], train_fraction=0.1, seed=1)
    assert other_seed["S01"] != subsets[0]["S01"]
    counted = _train_genes(simulated, ["S01"], n_train_genes=20)["S01"]
    assert len(counted) == 20 and counted < subsets[1]["S01"]  # a gene count nests with the fractions too
    assert np.isclose(len(subsets[0]["S01"]) / len(subsets[-1]["S01"]), 0.1, atol=0.01)
