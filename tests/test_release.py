"""Release CSV reader: exact values from real data and one test per malformed-input case."""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepchrome.data import (
    DEEPCHROME_MARKS,
    attach_expression,
    read_expression_table,
    read_release_csv,
    read_wide_matrix,
    release,
    write_release_csv,
)
from deepchrome.data.csv_text import constant, general_float_slots, integer_slots, join_slots
from deepchrome.data.release import list_cells, split_path
from deepchrome.data.signals import HistoneSignals
from deepchrome.errors import DataFormatError, DeepChromeError
from deepchrome.files import check_out_folder, staged_output, write_json
from deepchrome.names import check_name
from tests.cli import run_cli
from tests.tree import snapshot

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


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("7,1,1,0,4,4,1,1\n7,2,0,inf,5,1,0,1\n", ":2: field H3K36me3 is inf, expected a finite number"),
        ("7,1,1,0,4,4,1,1\n7,2,0,-inf,5,1,0,1\n", ":2: field H3K36me3 is -inf, expected a finite number"),
        ("7,1,1,0,4,4,1,1\n7,2,0,1e10,5,1,0,1\n", ":2: field H3K36me3 is 1e+10, above 2,147,483,647"),
        ("7,1,1,0,4,4,1,1\n7,2,0,2147483648,5,1,0,1\n", ":2: field H3K36me3 is 2147483648, above 2,147,483,647"),
        ("7,1,1,0,4,4,1,1\n7,2,0,nan,5,1,0,1\n", ":2: expected 8 comma-separated fields"),
        ("gene_id,bin_id,A,B,A,label\n7,1,1,2,3,1\n", ":1: column A appears twice in the header"),
        ("gene_id,bin_id,A,,label\n7,1,1,2,1\n", ":1: header has an empty column name"),
    ],
    ids=["inf", "minus-inf", "1e10", "int32-overflow", "nan", "duplicate-mark", "empty-mark"],
)
def test_values_and_header_checked_at_read_time(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataFormatError) as error:
        read_release_csv(path)
    assert str(error.value).startswith(f"{path}:") and expected in str(error.value)
    assert "\n" not in str(error.value)


def test_largest_counts_are_stored_exactly(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("7,1,1,0,4,4,1,1\n7,2,0,2147483647,65536,1,0,1\n")
    signals = read_release_csv(path)
    assert signals.signals.dtype == np.int32
    assert signals.signals[0, :, 1].tolist() == [0, 2147483647, 65536, 1, 0]


@pytest.mark.parametrize("line", [1, 3])
def test_non_utf8_release_file_names_file_and_line(tmp_path, line):
    rows = [b"7,1,1,0,4,4,1,1", b"7,2,0,1,5,1,0,1", b"9,1,3,3,3,3,3,0", b"9,2,2,2,2,2,2,0"]
    rows[line - 1] = rows[line - 1].replace(b"7,", b"7\xff,", 1) if line == 1 else rows[line - 1] + b"\xe9"
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"\n".join(rows) + b"\n")
    with pytest.raises(DataFormatError, match=rf"latin1.csv:{line}: not UTF-8 text \(byte 0x(ff|e9)"):
        read_release_csv(path)


def test_data_check_refuses_overflowing_value_without_caching(tmp_path, isolated_cache):
    root = tmp_path / "release"
    (root / "C1" / "classification").mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (root / "C1" / "classification" / f"{split}.csv").write_text(GOOD.replace("7,2,0,1,", "7,2,0,1e10,"))
    before = snapshot(root)
    cached = snapshot(isolated_cache)
    result = run_cli("data", "check", str(root), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{root}/C1/classification/train.csv:2: field H3K36me3 is 1e+10, above 2,147,483,647" in result.stderr
    assert snapshot(root) == before and snapshot(isolated_cache) == cached


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"gene_id,value\nENSG1,3\nENSG2,-inf\n", ":3: value -inf is not a finite number"),
        (b"gene_id,value\nENSG1,3\nENSG2,\n", ":3: value is missing"),
        (b"gene_id,value\nENSG1,3\n,4\n", ":3: missing gene id"),
        (b"gene_id,value\n", ": no data rows"),
        (b"gene_id,value\nENSG1,3\nENSG\xe92,4\n", ":3: not UTF-8 text (byte 0xe9 at column 5)"),
    ],
    ids=["inf", "missing-value", "missing-id", "header-only", "not-utf8"],
)
def test_expression_table_checks(tmp_path, content, expected):
    path = tmp_path / "e.csv"
    path.write_bytes(content)
    with pytest.raises(DataFormatError) as error:
        read_expression_table(path)
    assert str(error.value).startswith(str(path)) and expected in str(error.value)


WIDE_HEADER = "gene,A,B\n"
WIDE = "ENSG1_X_1,1,2\nENSG1_X_2,3,4\nENSG2_Y_1,5,6\nENSG2_Y_2,7,8\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"gene,A,B,A\n" + WIDE.replace(",2\n", ",2,2\n").encode(), ":1: column A appears twice in the header"),
        ((WIDE_HEADER + WIDE.replace("3,4", "x,4")).encode(), ":3: field A is 'x', expected a number"),
        ((WIDE_HEADER + WIDE.replace("3,4", "3,inf")).encode(), ":3: field B is inf, expected a finite number"),
        ((WIDE_HEADER + WIDE.replace("3,4", "3,1e12")).encode(), ":3: field B is 1e+12, above 2,147,483,647"),
        ((WIDE_HEADER + WIDE.replace("3,4", "-3,4")).encode(), ":3: negative mark value -3 in field A"),
        ((WIDE_HEADER + WIDE.replace("3,4", "3,")).encode(), ":3: expected 3 comma-separated fields, found a missing"),
        ((WIDE_HEADER + WIDE).encode().replace(b"ENSG2_Y_1", b"ENSG2_\xff_1"), ":4: not UTF-8 text (byte 0xff"),
        (WIDE_HEADER.encode(), ": no data rows"),
    ],
    ids=["duplicate-mark", "text", "inf", "too-large", "negative", "missing", "not-utf8", "header-only"],
)
def test_wide_matrix_checks(tmp_path, content, expected):
    path = tmp_path / "wide.csv"
    path.write_bytes(content)
    with pytest.raises(DataFormatError) as error:
        read_wide_matrix(path, n_bins=None, marks=("A", "B"))
    assert str(error.value).startswith(str(path)) and expected in str(error.value)


def test_wide_matrix_good_file(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(WIDE_HEADER + WIDE)
    wide = read_wide_matrix(path, n_bins=None, marks=("B", "A"))
    assert wide.gene_ids.tolist() == ["1", "2"] and wide.signals[1].tolist() == [[6, 8], [5, 7]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("../victim", "--cell '../victim': a cell name must be a plain name (letters, digits, '.', '_', '-')"),
        ("a/b", "--cell 'a/b': a cell name must be a plain name"),
        ("", "--cell '': a cell name must not be empty"),
        ("..", "--cell '..': a cell name must not start with '.'"),
        (".hidden", "--cell '.hidden': a cell name must not start with '.'"),
        ("x" * 101, "a cell name must be at most 100 characters (this one has 101)"),
        ("E003\n", "a cell name must be a plain name"),
    ],
)
def test_check_name_refuses(value, expected):
    with pytest.raises(DeepChromeError) as error:
        check_name(value, "--cell")
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_check_name_accepts_plain_names():
    for name in ("E003", "K562_rep-2.v1", "x" * 100):
        assert check_name(name, "--cell") == name
    with pytest.raises(DeepChromeError, match="cell 'x/../..': a cell name must be a plain name"):
        split_path("root", "x/../..", "train")


def test_list_cells_skips_folders_with_unsafe_names(tmp_path):
    for cell in ("E003", ".hidden", "with space"):
        (tmp_path / cell / "classification").mkdir(parents=True)
        (tmp_path / cell / "classification" / "train.csv").write_text(GOOD)
    assert list_cells(tmp_path) == ["E003"]


def test_write_json_writes_non_finite_floats_as_null(tmp_path):
    def refuse(constant):  # a strict parser: NaN and Infinity are not JSON
        raise ValueError(f"not JSON: {constant}")

    torch = pytest.importorskip("torch")
    data = {
        "auroc": float("nan"),
        "loss": np.float32("nan"),
        "gap": -math.inf,
        "tensor": torch.tensor(float("inf")),
        "nested": {"values": [0.5, np.float64("nan"), (1, math.inf)]},
        "fine": np.float32(0.25),
        "none": None,
    }
    path = write_json(tmp_path / "metrics.json", data)
    read = json.loads(path.read_text(), parse_constant=refuse)
    assert read == {"auroc": None, "loss": None, "gap": None, "tensor": None,
                    "nested": {"values": [0.5, None, [1, None]]}, "fine": 0.25, "none": None}  # fmt: skip


def test_staged_output_failure_changes_nothing(tmp_path):
    out = tmp_path / "out"
    (out / "C1").mkdir(parents=True)
    (out / "C1" / "notes.txt").write_text("mine")
    before = snapshot(out)
    with pytest.raises(DeepChromeError, match=r"--out .*out: cannot write there \(No space left on device\)"):
        with staged_output(out) as staging:
            (staging / "C1").mkdir()
            (staging / "C1" / "train.csv").write_text("half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert snapshot(out) == before
    new = tmp_path / "new" / "deeper"
    with pytest.raises(RuntimeError), staged_output(new) as staging:
        (staging / "x.csv").write_text("half")
        raise RuntimeError("boom")
    assert not (tmp_path / "new").exists()


def test_staged_output_replaces_only_its_own_files(tmp_path):
    out = tmp_path / "out"
    (out / "C1" / "classification").mkdir(parents=True)
    (out / "C1" / "notes.txt").write_text("mine")
    (out / "C1" / "classification" / "train.csv").write_text("old")
    with staged_output(out) as staging:
        (staging / "C1" / "classification").mkdir(parents=True)
        (staging / "C1" / "classification" / "train.csv").write_text("new")
        (staging / "C2").mkdir()
        (staging / "C2" / "x").write_text("x")
    assert snapshot(out) == {
        "C1": None,
        "C1/classification": None,
        "C1/classification/train.csv": b"new",
        "C1/notes.txt": b"mine",
        "C2": None,
        "C2/x": b"x",
    }


@pytest.mark.parametrize("kind", ["file", "link"])
def test_staged_output_refuses_conflicts_before_moving_anything(tmp_path, kind):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    if kind == "file":
        (out / "C2").write_text("a file named like the cell")
    else:
        (out / "C2").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(out)
    with pytest.raises(DeepChromeError, match=f"out/C2 is a {kind} where a folder must be written; move it away"):
        with staged_output(out) as staging:
            for cell in ("C1", "C2"):
                (staging / cell).mkdir()
                (staging / cell / "train.csv").write_text("new")
    assert snapshot(out) == before and not list(elsewhere.iterdir())


def test_out_that_is_a_file_or_inside_one(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DeepChromeError, match="--out .*file: is a file, expected a folder"):
        check_out_folder(tmp_path / "file")
    with pytest.raises(DeepChromeError, match=r"--out .*file/sub: .*file is a file, expected a folder"):
        check_out_folder(tmp_path / "file" / "sub")
    assert (tmp_path / "file").read_text() == "x"


def pandas_release_csv(signals: HistoneSignals, path: Path) -> None:
    """The writer before the vectorised one (pandas ``to_csv``), kept as the reference text."""
    n_genes, n_marks, n_bins = signals.signals.shape
    frame = pd.DataFrame(
        signals.signals.transpose(0, 2, 1).reshape(n_genes * n_bins, n_marks), columns=list(signals.marks)
    )
    frame.insert(0, "bin_id", np.tile(np.arange(1, n_bins + 1), n_genes))
    frame.insert(0, "gene_id", np.repeat(signals.gene_ids, n_bins))
    frame["label"] = np.repeat(signals.labels, n_bins)
    header = tuple(signals.marks) != DEEPCHROME_MARKS
    float_format = "%.6g" if np.issubdtype(signals.signals.dtype, np.floating) else None
    frame.to_csv(path, index=False, header=header, float_format=float_format)


def assert_same_text(signals: HistoneSignals, tmp_path: Path) -> bytes:
    """Write ``signals`` with both writers and require identical bytes; return them."""
    write_release_csv(signals, tmp_path / "new.csv")
    pandas_release_csv(signals, tmp_path / "old.csv")
    new, old = (tmp_path / "new.csv").read_bytes(), (tmp_path / "old.csv").read_bytes()
    if new != old:
        lines = zip(new.splitlines(), old.splitlines(), strict=False)
        first = next(((i, a, b) for i, (a, b) in enumerate(lines) if a != b), None)
        pytest.fail(f"texts differ ({len(new)} vs {len(old)} bytes); first differing line: {first}")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "temporary file left behind"
    return new


AWKWARD = [0.0, 1e-7, 123456789.0, 0.1, 0.5, 1.0, 2.5, 1e-5, 1e-4, 9.99999e-5, 0.0001234565, 100000.5, 999999.5,
           1234565.0, 999999.0, 1e6, 99999.95, 3.4e38, 1.4e-45, 1e22, 1e23, 1e-300, 5e-324, 7 / 3]  # fmt: skip


def _lines(slots: list) -> list[str]:
    """The text of ``slots`` with one line per row."""
    return join_slots([*slots, constant(b"\n", len(slots[-1][0]))]).decode().splitlines()


def _signals(values: np.ndarray, marks: tuple[str, ...], gene_ids=None, seed: int = 0) -> HistoneSignals:
    rng = np.random.default_rng(seed)
    n_genes = values.shape[0]
    ids = np.array([f"{100000 + 7 * i}" for i in range(n_genes)]) if gene_ids is None else np.asarray(gene_ids)
    return HistoneSignals(signals=values, labels=rng.integers(0, 2, n_genes), gene_ids=ids, marks=marks)


@pytest.mark.parametrize("marks", [DEEPCHROME_MARKS, ("H3K27me3", "H3K27ac")], ids=["no-header", "header"])
@pytest.mark.parametrize("dtype", ["uint16", "int32", "int64", "float32", "float64"])
def test_writer_text_is_pandas_text(tmp_path, marks, dtype):
    rng = np.random.default_rng(1)
    shape = (137, len(marks), 100)
    if np.dtype(dtype).kind == "f":
        magnitude = 10.0 ** rng.integers(-9, 10, shape)
        values = (rng.random(shape) * magnitude).astype(dtype)
        values.flat[: len(AWKWARD)] = AWKWARD
        values.flat[len(AWKWARD) : 2 * len(AWKWARD)] = np.asarray(AWKWARD, dtype=dtype) * -1  # signs, -0
        values.flat[-1000:] = rng.integers(0, 50, 1000)  # whole numbers in a float column
        values.flat[-2000:-1000] = np.round(rng.random(1000) * 100, 1)  # one decimal, as counts per bp
    else:
        top = {"uint16": 65535, "int32": 2**31 - 1, "int64": 2**62}[dtype]
        values = rng.integers(0, top, shape, dtype=dtype, endpoint=True)
        values.flat[:3] = [0, 9, 10]
        if dtype != "uint16":
            values.flat[3:6] = [-1, -123, np.iinfo(dtype).min]
    text = assert_same_text(_signals(values, marks), tmp_path)
    assert text.startswith(b"gene_id,bin_id,H3K27me3,H3K27ac,label\n" if len(marks) == 2 else b"100000,1,")


def test_writer_chunks_and_odd_gene_ids(tmp_path, monkeypatch):
    # Several chunks with a short last one; ids the csv module quotes; an empty and a non-ASCII id.
    monkeypatch.setattr(release, "WRITE_CHUNK_ROWS", 7)
    values = np.random.default_rng(2).random((9, 2, 3)).astype(np.float32)
    ids = ["a,b", 'say "hi"', "", "plain", "g\u00e8ne", " lead", "line\nbreak", "cr\rx", "7"]
    text = assert_same_text(_signals(values, ("m1", "m2"), ids), tmp_path)
    assert b'"a,b",1,' in text and b'"say ""hi""",3,' in text and b"\n,1," in text
    empty = _signals(np.zeros((0, 5, 100), dtype=np.uint16), DEEPCHROME_MARKS)
    assert assert_same_text(empty, tmp_path) == b""


def test_writer_refuses_missing_values(tmp_path):
    values = np.ones((3, 2, 4), dtype=np.float32)
    values[1, 1, 2] = np.nan
    with pytest.raises(DeepChromeError, match="gene 100007 has NaN or infinite values"):
        write_release_csv(_signals(values, ("a", "b")), tmp_path / "x.csv")
    assert list(tmp_path.iterdir()) == []


def test_float_text_is_percent_6g_on_random_bit_patterns():
    # Every finite float32 and float64 bit pattern is equally likely: all exponents, ties, subnormals.
    rng = np.random.default_rng(3)
    for values in (
        rng.integers(0, 2**32, 300_000, dtype=np.uint32).view(np.float32),
        rng.integers(0, 2**64, 300_000, dtype=np.uint64).view(np.float64),
        np.arange(100_000, 1_000_000, 3) + 0.5,  # exact ties at the 7th digit: halves go to even
        np.nextafter(10.0 ** np.arange(-300, 300), 0),  # just below each power of ten
        10.0 ** np.arange(-300, 300),
    ):
        values = values[np.isfinite(values)]
        # pandas formats with the % operator, so the reference does too.
        assert _lines(general_float_slots(values)) == ["%.6g" % float(v) for v in values]  # noqa: UP031


def test_integer_text_is_str():
    values = np.array([0, 1, 9, 10, 99, 100, 2**32, 2**63 - 1, -(2**63), -5])
    assert _lines(integer_slots(values)) == [str(v) for v in values.tolist()]
    top = np.array([2**64 - 1, 10**19, 0], dtype=np.uint64)
    assert _lines(integer_slots(top)) == [str(v) for v in top.tolist()]


def test_writer_text_on_real_release(roadmap, tmp_path):
    signals = read_release_csv(roadmap / "E123/classification/train.csv", "E123", "train")
    text = assert_same_text(signals, tmp_path)
    assert text == (roadmap / "E123/classification/train.csv").read_bytes().replace(b"\n", os.linesep.encode())
