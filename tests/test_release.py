"""Release CSV reader: exact values from real data and one test per malformed-input case."""

from __future__ import annotations

import numpy as np
import pytest

from deepchrome.data import (
    DEEPCHROME_MARKS,
    attach_expression,
    read_expression_table,
    read_release_csv,
    read_wide_matrix,
    write_release_csv,
)
from deepchrome.data.release import list_cells
from deepchrome.errors import DataFormatError

GOOD = "7,1,1,0,4,4,1,1\n7,2,0,1,5,1,0,1\n9,1,3,3,3,3,3,0\n9,2,2,2,2,2,2,0\n"


def test_real_e003_train_exact_values(roadmap):
    signals = read_release_csv(roadmap / "E003/classification/train.csv", "E003", "train")
    assert signals.signals.shape == (200, 5, 100)
    assert signals.signals.dtype == np.uint16
    assert signals.marks == DEEPCHROME_MARKS
    assert signals.gene_ids[0] == "130749"
    # gene 130749, bin 1: H3K27me3=1, H3K36me3=0, H3K4me1=4, H3K4me3=4, H3K9me3=1, label 1
    assert signals.signals[0, :, 0].tolist() == [1, 0, 4, 4, 1]
    assert signals.signals[0, :, 1].tolist() == [0, 1, 5, 1, 0]
    assert signals.labels[0] == 1
    assert list_cells(roadmap) == ["E003", "E123"]


def test_header_is_accepted(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("gene_id,bin_id,H3K27me3,H3K36me3,H3K4me1,H3K4me3,H3K9me3,label\n" + GOOD)
    signals = read_release_csv(path)
    assert signals.gene_ids.tolist() == ["7", "9"]
    assert signals.signals[1, :, 1].tolist() == [2, 2, 2, 2, 2]
    assert signals.labels.tolist() == [1, 0]


def test_write_then_read_round_trip(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(GOOD)
    original = read_release_csv(path)
    write_release_csv(original, tmp_path / "b.csv")
    again = read_release_csv(tmp_path / "b.csv")
    assert np.array_equal(original.signals, again.signals)
    assert original.gene_ids.tolist() == again.gene_ids.tolist()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "empty file"),
        ("7,1,1,0,4,4,1,1\n7,2,0,1,5,1,0,1,9\n", ":2: expected 8 comma-separated fields, found 9"),
        ("7,1,1,0,4,4,1,1\n7,2,0,1,5,1,1\n", ":2: expected 8 comma-separated fields"),
        ("7,1,1,0,4,4,1,1\n7,2,0,x,5,1,0,1\n", ":2: field H3K36me3 is 'x', expected a number"),
        ("7,1,1,0,4,4,1,1\n7,2,0,-1,5,1,0,1\n", ":2: negative mark value"),
        ("7,1,1,0,4,4,1,1\n7,3,0,1,5,1,0,1\n", ":2: gene 7 has bin_id 3, expected 2"),
        ("7,2,1,0,4,4,1,1\n7,1,0,1,5,1,0,1\n", ":1: gene 7 has bin_id 2, expected 1"),
        ("7,1,1,0,4,4,1,1\n7,1,0,1,5,1,0,1\n", ":2: gene 7 has bin_id 1, expected 2"),
        ("7,1,1,0,4,4,1,1\n7,2,0,1,5,1,0,1\n9,1,3,3,3,3,3,0\n", ":3: gene 9 has 1 bins, expected 2"),
        ("7,1,1,0,4,4,1,2\n7,2,0,1,5,1,0,2\n", ":1: label is 2, expected 0 or 1"),
        ("7,1,1,0,4,4,1,1\n7,2,0,1,5,1,0,0\n", ":2: label of gene 7 changes within the gene"),
        (GOOD + "7,1,1,0,4,4,1,1\n7,2,0,1,5,1,0,1\n", ":5: gene 7 appears again (first at line 1)"),
    ],
    ids=[
        "empty",
        "extra-field",
        "missing-field",
        "non-numeric",
        "negative",
        "missing-bin",
        "out-of-order",
        "duplicated-bin",
        "unequal-bins",
        "bad-label",
        "varying-label",
        "duplicate-gene",
    ],
)
def test_malformed_files_name_file_line_and_expectation(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataFormatError) as error:
        read_release_csv(path)
    message = str(error.value)
    assert message.startswith(str(path))
    assert expected in message
    assert "\n" not in message


def test_wide_window_central_bins_equal_release(roadmap):
    release = read_release_csv(roadmap / "E003/classification/train.csv", "E003")
    wide = read_wide_matrix(roadmap / "window20kb/E003.train.csv", n_bins=100, cell="E003")
    assert wide.signals.shape == (200, 5, 100)
    assert wide.gene_ids.tolist() == release.gene_ids.tolist()
    assert np.array_equal(wide.signals, release.signals)
    full = read_wide_matrix(roadmap / "window20kb/E003.train.csv", n_bins=None)
    assert full.n_bins == 200 and full.window == 10000


def test_expression_labels_match_release(roadmap):
    release = read_release_csv(roadmap / "E123/classification/valid.csv", "E123")
    table = read_expression_table(roadmap / "expression/E123.csv")
    assert len(table) == 19795
    labelled, counts = attach_expression(release, table)
    assert counts == {"missing_in_table": 0, "missing_in_signals": 19795 - 200}
    # The release's labels are read counts above the cell's median over all genes.
    assert np.array_equal(labelled.labels, release.labels)
    assert np.all(labelled.expression >= 0)


def test_expression_table_errors(tmp_path):
    bad = tmp_path / "e.csv"
    bad.write_text("gene_id,value\nENSG1,3\nENSG2,abc\n")
    with pytest.raises(DataFormatError, match=r"e.csv:3: value 'abc' is not a number"):
        read_expression_table(bad)
    bad.write_text("gene_id,value\nENSG0001,3\nENSG1,4\n")
    with pytest.raises(DataFormatError, match="gene ENSG1 appears twice"):
        read_expression_table(bad)
