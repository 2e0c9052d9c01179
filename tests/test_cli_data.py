"""The data commands as a user runs them: summaries, one-line errors, exit codes."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLE


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "deepchrome.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_data_check_summary():
    result = run("data", "check", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["cell", "train_genes", "train_positive"]
    assert [line.split()[0] for line in lines[1:]] == ["S01", "S02", "S03", "S04"]
    # counted here from the CSVs (one label per gene, on every bin row)
    expected = ["S01"]
    for split in ("train", "valid", "test"):
        rows = [line.split(",") for line in (EXAMPLE / "S01/classification" / f"{split}.csv").read_text().splitlines()]
        labels = {row[0]: int(row[-1]) for row in rows}
        expected += [str(len(labels)), f"{sum(labels.values()) / len(labels):.2f}"]
    assert lines[1].split() == [*expected, "100", "H3K27me3,H3K36me3,H3K4me1,H3K4me3,H3K9me3"]
    assert expected[1:3] == ["100", "0.51"]  # S01 train: 51 of 100 genes are high


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda text: text.replace("100001,2,1,1,0,1,6,0", "100001,2,1,1,0,1,6"), "valid.csv:2: expected 8"),
        (lambda text: text.replace("100001,2,1,1,0,1,6,0", "100001,3,1,1,0,1,6,0"), "has bin_id 3, expected 2"),
        (lambda text: "", "empty file"),
    ],
)
def test_data_check_malformed_one_line_no_traceback(tmp_path, mutate, expected):
    root = tmp_path / "release"
    shutil.copytree(EXAMPLE / "S01", root / "S01")
    path = root / "S01/classification/valid.csv"
    text = (EXAMPLE / "S01/classification/train.csv").read_text()
    path.write_text(mutate(text))
    result = run("data", "check", str(root), "--no-cache")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("deepchrome: error: ") and expected in result.stderr


def test_simulate_command(tmp_path):
    result = run("simulate", "--out", str(tmp_path / "sim"), "--cells", "2", "--genes", "30", "--seed", "7")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "sim").iterdir()) == ["S01", "S02", "expression", "ground_truth.json"]
    check = run("data", "check", str(tmp_path / "sim"))
    assert check.returncode == 0 and "S02" in check.stdout


def test_unknown_command():
    result = run("frobnicate")
    assert result.returncode == 2 and "unknown command 'frobnicate'" in result.stderr
