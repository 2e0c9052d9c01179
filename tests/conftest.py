"""Shared fixtures: real data paths, an isolated cache, simulated data sets."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
ROADMAP = SHARED / "roadmap"
K562 = SHARED / "k562_chr9"
EXAMPLE = REPO / "data" / "example"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes caches to a private folder, never the user's ~/.cache."""
    folder = tmp_path_factory.getbasetemp() / "deepchrome-cache"
    monkeypatch.setenv("DEEPCHROME_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def roadmap() -> Path:
    """The real Roadmap subset beside the checkout (E003, E123)."""
    if not (ROADMAP / "E003" / "classification" / "train.csv").is_file():
        pytest.skip(f"real data not found at {ROADMAP} (see DEVELOPERS.md: ../shared/data)")
    return ROADMAP


@pytest.fixture(scope="session")
def k562() -> Path:
    """The real K562 bigWig subset."""
    if not (K562 / "genes.chr9_4-6Mb.gtf").is_file():
        pytest.skip(f"real bigWig data not found at {K562}")
    return K562


@pytest.fixture(scope="session")
def simulated(tmp_path_factory) -> Path:
    """A simulated release: 4 cells (2 groups) x 600 genes, seed 0."""
    from deepchrome.data.simulate import simulate_release

    out = tmp_path_factory.mktemp("simulated")
    simulate_release(out, n_cells=4, n_genes=600, seed=0)
    return out
