"""The data commands as a user runs them: summaries, one-line errors, exit codes."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "deepchrome.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_data_check_summary(roadmap):
    result = run("data", "check", str(roadmap))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["cell", "train_genes", "train_positive"]
    assert lines[1].split()[:2] == ["E003", "200"]
    assert "0.61" in lines[1]  # E003 train: 122 of 200 genes are high
    assert "H3K27me3,H3K36me3,H3K4me1,H3K4me3,H3K9me3" in lines[1]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda text: text.replace("130749,2,0,1,5,1,0,1", "130749,2,0,1,5,1,0"), "valid.csv:2: expected 8"),
        (lambda text: text.replace("130749,2,0,1,5,1,0,1", "130749,3,0,1,5,1,0,1"), "has bin_id 3, expected 2"),
        (lambda text: "", "empty file"),
    ],
)
def test_data_check_malformed_one_line_no_traceback(tmp_path, roadmap, mutate, expected):
    root = tmp_path / "release"
    shutil.copytree(roadmap / "E003", root / "E003")
    path = root / "E003/classification/valid.csv"
    text = (roadmap / "E003/classification/train.csv").read_text()
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
