"""Binary cache: round trip, memory mapping, stale and truncated caches are rebuilt."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from deepchrome.data import load_split, read_release_csv
from deepchrome.data.cache import cache_folder
from deepchrome.errors import DataFormatError
from tests.conftest import EXAMPLE


@pytest.fixture()
def release(tmp_path):
    """One cell of the bundled example (release format), copied: the tests edit and delete its files."""
    root = tmp_path / "release"
    shutil.copytree(EXAMPLE / "S01", root / "S01")
    return root


def test_round_trip_is_memory_mapped_and_equal(release, isolated_cache):
    parsed = read_release_csv(release / "S01/classification/train.csv", "S01", "train")
    first = load_split(release, "S01", "train")
    assert cache_folder(release / "S01/classification/train.csv").is_dir()
    second = load_split(release, "S01", "train")
    assert isinstance(second.signals, np.memmap)
    assert second.signals.dtype == np.uint16
    for loaded in (first, second):
        assert np.array_equal(loaded.signals, parsed.signals)
        assert np.array_equal(loaded.labels, parsed.labels)
        assert loaded.gene_ids.tolist() == parsed.gene_ids.tolist()
        assert (loaded.cell, loaded.split, loaded.marks) == ("S01", "train", parsed.marks)


def test_changed_source_rebuilds_cache(release, caplog):
    load_split(release, "S01", "valid")
    source = release / "S01/classification/valid.csv"
    lines = source.read_text().splitlines()
    fields = lines[0].split(",")
    fields[2] = "999"
    source.write_text("\n".join([",".join(fields), *lines[1:]]) + "\n")
    with caplog.at_level("WARNING", logger="deepchrome"):
        reloaded = load_split(release, "S01", "valid")
    assert reloaded.signals[0, 0, 0] == 999
    assert "stale" in caplog.text


def test_truncated_cache_is_detected_and_rebuilt(release, caplog):
    # Copy: truncating a file that is still memory-mapped would fault on access.
    original = np.array(load_split(release, "S01", "test").signals)
    folder = cache_folder(release / "S01/classification/test.csv")
    data = (folder / "signals.npy").read_bytes()
    (folder / "signals.npy").write_bytes(data[: len(data) // 2])
    with caplog.at_level("WARNING", logger="deepchrome"):
        reloaded = load_split(release, "S01", "test")
    assert "checksum mismatch" in caplog.text
    assert np.array_equal(reloaded.signals, original)


def test_wrong_format_version_is_rebuilt(release, caplog):
    load_split(release, "S01", "test")
    meta_path = cache_folder(release / "S01/classification/test.csv") / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = -1
    meta_path.write_text(json.dumps(meta))
    with caplog.at_level("WARNING", logger="deepchrome"):
        load_split(release, "S01", "test")
    assert "format version" in caplog.text
    assert json.loads(meta_path.read_text())["format_version"] != -1


def test_unreadable_cache_without_source_is_an_error(release):
    load_split(release, "S01", "train")
    folder = cache_folder(release / "S01/classification/train.csv")
    (folder / "meta.json").write_text("{not json")
    os.remove(release / "S01/classification/train.csv")
    with pytest.raises(DataFormatError, match="unreadable .* and .*train.csv is missing"):
        load_split(release, "S01", "train")


def test_no_temporary_leftovers(release, isolated_cache):
    load_split(release, "S01", "train")
    leftovers = [p.name for p in isolated_cache.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def _load_in_rounds(root, cache_base, rounds, barrier, results) -> None:
    # A worker process: every round, all workers load the same split at once into a fresh cache
    # (or over a stale one), the situation of DDP ranks and sweep workers starting together.
    from deepchrome.data import load_split

    for number in range(rounds):
        barrier.wait()
        try:
            signals = load_split(root, "S01", "test", cache_dir=cache_base / str(number))
            results.put((number, int(np.asarray(signals.signals, dtype=np.int64).sum())))
        except Exception as exc:  # reported to the test, which fails with the message
            results.put((number, f"{exc.__class__.__name__}: {exc}"))


def test_processes_building_one_cache_at_once_all_succeed(tmp_path):
    import multiprocessing

    root = tmp_path / "release"
    shutil.copytree(EXAMPLE / "S01", root / "S01")
    expected = int(read_release_csv(root / "S01/classification/test.csv").signals.astype(np.int64).sum())
    rounds, workers = 12, 4
    source = root / "S01/classification/test.csv"
    for number in range(rounds):
        if number % 2:  # odd rounds start from a stale cache that every worker wants to replace
            folder = cache_folder(source, tmp_path / "caches" / str(number))
            folder.mkdir(parents=True)
            (folder / "meta.json").write_text(json.dumps({"format_version": -1}))
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()
    processes = [
        context.Process(target=_load_in_rounds, args=(root, tmp_path / "caches", rounds, barrier, results))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in range(rounds * workers)]
    for process in processes:
        process.join(timeout=60)
    failures = [outcome for outcome in outcomes if outcome[1] != expected]
    assert failures == []
    for number in range(rounds):
        leftovers = [p.name for p in (tmp_path / "caches" / str(number)).iterdir() if p.name.startswith(".")]
        assert leftovers == []


@pytest.mark.parametrize("meta", [[1, 2], {"format_version": 1}, {"format_version": 1, "checksums": 3}])
def test_meta_json_of_the_wrong_shape_is_rebuilt(tmp_path, meta, caplog):
    root = tmp_path / "release"
    shutil.copytree(EXAMPLE / "S01", root / "S01")
    original = np.array(load_split(root, "S01", "valid").signals)
    meta_path = cache_folder(root / "S01/classification/valid.csv") / "meta.json"
    meta_path.write_text(json.dumps(meta))
    with caplog.at_level("WARNING", logger="deepchrome"):
        reloaded = load_split(root, "S01", "valid")
    assert "stale" in caplog.text
    assert np.array_equal(reloaded.signals, original)
    assert json.loads(meta_path.read_text())["format_version"] == 1
