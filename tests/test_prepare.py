"""bigWig preparation: hand-computed bins, an independent reference on real K562 tracks, bad input."""

from __future__ import annotations

import errno
import gzip
import json
import os
import struct
import warnings

import numpy as np
import pyBigWig
import pytest

from deepchrome.data import HistoneDataModule, bigwig, read_release_csv, write_release_csv
from deepchrome.data.annotation import read_tss
from deepchrome.data.bigwig import extract_matrices, prepare
from deepchrome.data.signals import HistoneSignals
from deepchrome.errors import DeepChromeError
from tests.cli import run_cli
from tests.tree import hidden, snapshot

CHROM_SIZE = 1000


def write_bigwig(path, values: np.ndarray, chrom="chr1"):
    """Per-base ``values`` (NaN = no data) for one chromosome, as runs of equal values."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([(chrom, len(values))])
    covered = np.flatnonzero(~np.isnan(values))
    bw.addEntries([chrom] * len(covered), covered.tolist(), ends=(covered + 1).tolist(),
                  values=values[covered].astype(float).tolist())  # fmt: skip
    bw.close()


@pytest.fixture()
def tiny(tmp_path):
    """chr1 of 1,000 bp: base i has value i // 10, except bases 300-339 which have no data."""
    values = (np.arange(CHROM_SIZE) // 10).astype(float)
    values[300:340] = np.nan
    write_bigwig(tmp_path / "a.bw", values)
    write_bigwig(tmp_path / "b.bw", np.ones(CHROM_SIZE))
    (tmp_path / "genes.bed").write_text(
        "chr1\t200\t260\tplus\t0\t+\n"  # reference 200: window [100, 300)
        "chr1\t250\t350\tminus\t0\t-\n"  # reference 350: window [250, 450), reversed
        "chr1\t600\t650\tmid\t0\t+\n"  # reference 600: window [500, 700)
        "chr1\t950\t990\tedge\t0\t+\n"  # window [850, 1050) runs off the end
        "chr2\t500\t600\tnochrom\t0\t+\n"  # chr2 is not in the bigWigs
    )
    return tmp_path


def test_bins_known_by_hand(tiny):
    tss = read_tss(tiny / "genes.bed")
    assert dict(zip(tss.gene_id, tss.reference, strict=True)) == {
        "plus": 200,
        "minus": 350,
        "mid": 600,
        "edge": 950,
        "nochrom": 500,
    }
    tracks = {"A": str(tiny / "a.bw"), "B": str(tiny / "b.bw")}
    signals, status = extract_matrices(tracks, tss, window=100, bin_size=20, stat="mean", workers=1)
    row = {g: i for i, g in enumerate(tss.gene_id)}
    # plus: bins [100,120), [120,140), ... each holding values i//10 for two tens -> means 10.5, 12.5, ...
    assert signals[row["plus"], 0].tolist() == [10.5, 12.5, 14.5, 16.5, 18.5, 20.5, 22.5, 24.5, 26.5, 28.5]
    # minus, genomic bins [250,270) ... [430,450); bases 300-339 uncovered: [290,310) averages its
    # covered half, [310,330) is NaN; reversed so that bin 1 is upstream
    genomic = [25.5, 27.5, 29.0, np.nan, 34.0, 35.5, 37.5, 39.5, 41.5, 43.5]
    assert np.allclose(signals[row["minus"], 0], genomic[::-1], equal_nan=True)
    assert np.all(signals[row["minus"], 1] == 1)
    assert status.loc[row["edge"]].tolist() == ["off_chromosome_end"] * 2
    assert status.loc[row["nochrom"]].tolist() == ["missing_chromosome"] * 2
    genomic_order, _ = extract_matrices(tracks, tss, window=100, bin_size=20, orientation="genomic", workers=1)
    assert np.allclose(genomic_order[row["minus"], 0], genomic, equal_nan=True)


def test_sum_and_max(tiny):
    tss = read_tss(tiny / "genes.bed")
    tracks = {"A": str(tiny / "a.bw")}
    total, _ = extract_matrices(tracks, tss, window=100, bin_size=20, stat="sum", orientation="genomic", workers=1)
    top, _ = extract_matrices(tracks, tss, window=100, bin_size=20, stat="max", orientation="genomic", workers=1)
    assert total[0, 0, 0] == 10 * 10 + 10 * 11
    assert top[0, 0, 0] == 11
    assert total[1, 0, 2] == 290 and top[1, 0, 2] == 29  # half-covered bin
    assert total[1, 0, 3] == 0 and np.isnan(top[1, 0, 3])  # uncovered bin


def test_prepare_reports_and_lists_dropped_genes(tiny):
    (tiny / "expr.csv").write_text("gene_id,value\nplus,5\nminus,1\nmid,4\nedge,3\nother,2\n")
    report = prepare({"A": str(tiny / "a.bw")}, tiny / "genes.bed", tiny / "out", "C1",
                     expression=tiny / "expr.csv", window=100, bin_size=20, split="lists",
                     split_lists={"train": _write(tiny / "t.txt", "plus"), "valid": _write(tiny / "v.txt", "mid"),
                                  "test": _write(tiny / "s.txt", "minus")})  # fmt: skip
    assert report["kept_genes"] == 3
    assert report["dropped_by_reason"] == {"off_chromosome_end": 1, "missing_chromosome": 1}
    dropped = (tiny / "out/C1/dropped_genes.tsv").read_text().splitlines()
    assert dropped[1:] == [
        "edge\tchr1\t950\t+\toff_chromosome_end (A)",
        "nochrom\tchr2\t500\t+\tmissing_chromosome (A)",
    ]
    train = read_release_csv(tiny / "out/C1/classification/train.csv")
    assert train.marks == ("A",) and train.gene_ids.tolist() == ["plus"]
    assert train.labels.tolist() == [1]  # 5 > median(5, 1, 4, 3, 2) = 3
    test = read_release_csv(tiny / "out/C1/classification/test.csv")
    assert test.gene_ids.tolist() == ["minus"] and test.labels.tolist() == [0]
    assert test.signals[0, 0, 6:].tolist() == [0, 29, 27.5, 25.5]  # transcript order; NaN bin written as 0
    assert report["uncovered_bins_set_to_0"] == 1
    assert not list((tiny / "out").glob(".*"))


def _write(path, text):
    path.write_text(text + "\n")
    return str(path)


def _reference_bins(path, chrom, reference, strand, window=5000, bin_size=100):
    """Independent per-base reference: build coverage from the bigWig's intervals, not values()."""
    bw = pyBigWig.open(str(path))
    start, end = reference - window, reference + window
    bases = np.full(end - start, np.nan)
    for s, e, v in bw.intervals(chrom, start, end) or []:
        bases[max(s, start) - start : min(e, end) - start] = v
    with np.errstate(all="ignore"):
        bins = np.array([np.nanmean(b) if (~np.isnan(b)).any() else np.nan for b in bases.reshape(-1, bin_size)])
    return bins[::-1] if strand == "-" else bins


def test_real_k562_matches_independent_reference(k562):
    tss = read_tss(k562 / "genes.chr9_4-6Mb.gtf")
    inside = (tss.reference > 4_005_000) & (tss.reference < 5_995_000)
    tracks = {m: str(k562 / f"K562_{m}.chr9_4-6Mb.bigwig") for m in ("H3K27me3", "H3K27ac")}
    signals, status = extract_matrices(tracks, tss, workers=2)
    assert (status.to_numpy() == "ok").all()
    checked = 0
    for i in np.flatnonzero(inside):
        for m, mark in enumerate(tracks):
            expected = _reference_bins(tracks[mark], "chr9", int(tss.reference[i]), tss.strand[i])
            np.testing.assert_allclose(signals[i, m], expected, rtol=1e-5, atol=1e-6, equal_nan=True)
            checked += 1
    assert checked >= 40 and set(tss.strand[inside]) == {"+", "-"}


@pytest.mark.parametrize("stat", ["mean", "sum", "max"])
def test_overlapping_windows_read_once_give_the_per_window_values(k562, monkeypatch, stat):
    # 400 TSSs within 60 kb: windows overlap, are read in runs (split at READ_SPAN) and must equal,
    # bit for bit, one values() call per window binned with numpy's nan-functions.
    monkeypatch.setattr(bigwig, "READ_SPAN", 23_456)
    path = str(k562 / "K562_H3K27ac.chr9_4-6Mb.bigwig")
    rng = np.random.default_rng(5)
    reference = rng.integers(4_900_000, 4_960_000, 400)
    chrom = np.array(["chr9"] * 398 + ["chr3", "chr9"])  # one absent chromosome
    reference[-1] = 141_213_431 - 100  # one off the chromosome end
    got, status = bigwig.extract_track(path, chrom, reference, 5000, 100, stat)
    assert status.tolist() == ["ok"] * 398 + ["missing_chromosome", "off_chromosome_end"]
    assert np.isnan(got[398:]).all()
    handle = pyBigWig.open(path)
    function = {"mean": np.nanmean, "sum": np.nansum, "max": np.nanmax}[stat]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.array(
            [
                function(
                    handle.values("chr9", int(r) - 5000, int(r) + 5000, numpy=True)
                    .astype(np.float64)
                    .reshape(100, 100),
                    axis=1,
                )
                for r in reference[:398]
            ]
        ).astype(np.float32)
    assert np.array_equal(got[:398], expected, equal_nan=True)
    assert (~np.isnan(expected)).sum() > 10_000
    if stat == "mean":  # and the independent per-interval reference
        np.testing.assert_allclose(got[7], _reference_bins(path, "chr9", int(reference[7]), "+"), rtol=1e-5, atol=1e-6)


def test_prepare_command_on_real_k562(k562, roadmap, tmp_path):
    result = run_cli(
        "prepare", "--bigwig", f"H3K27me3={k562}/K562_H3K27me3.chr9_4-6Mb.bigwig",
        "--bigwig", f"H3K27ac={k562}/K562_H3K27ac.chr9_4-6Mb.bigwig", "--annotation", f"{k562}/genes.chr9_4-6Mb.gtf",
        "--expression", f"{roadmap}/expression/E123.csv", "--cell", "K562", "--out", str(tmp_path),
    )  # fmt: skip
    assert "K562: 19 genes written" in result.stdout
    report = json.loads((tmp_path / "K562/prepare.json").read_text())
    assert report["dropped_by_reason"] == {"not in expression table": 36}
    dm = HistoneDataModule(root=str(tmp_path), train_cells=["K562"])
    dm.setup("fit")
    assert dm.marks == ("H3K27me3", "H3K27ac") and dm.n_bins == 100
    assert dm.data["train"].signals.dtype == np.float32
    assert run_cli("data", "check", str(tmp_path)).returncode == 0


def test_mixed_assemblies_are_refused(k562, roadmap, tmp_path):
    result = run_cli(
        "prepare", "--bigwig", f"H3K27me3={k562}/K562_H3K27me3.chr9_4-6Mb.bigwig",
        "--bigwig", f"H3K4me3={k562}/K562_H3K4me3.chr9_4-6Mb.bigwig", "--annotation", f"{k562}/genes.chr9_4-6Mb.gtf",
        "--expression", f"{roadmap}/expression/E123.csv", "--cell", "K562", "--out", str(tmp_path / "out"),
        check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "chr9 is 138,394,717 bp in" in result.stderr and "K562_H3K4me3" in result.stderr
    assert "141,213,431 bp in" in result.stderr and "K562_H3K27me3" in result.stderr
    assert not (tmp_path / "out").exists()


def test_chromosome_names_are_matched(tiny):
    (tiny / "genes.tsv").write_text("gene_id\tchrom\ttss\tstrand\nplus\t1\t200\t+\n")
    tss = read_tss(tiny / "genes.tsv")
    signals, status = extract_matrices({"A": str(tiny / "a.bw")}, tss, window=100, bin_size=20, workers=1)
    assert status["A"].tolist() == ["ok"] and signals[0, 0, 0] == 10.5


def test_split_by_chromosome(tiny):
    (tiny / "more.bed").write_text("chr1\t200\t260\ta\t0\t+\n1\t400\t460\tb\t0\t+\nchrX\t10\t20\tc\t0\t+\n")
    from deepchrome.data.bigwig import _split_genes

    split = _split_genes(read_tss(tiny / "more.bed"), "chromosome", 0, ["X"], ["chr1"], None)
    assert sorted(split.tolist()) == ["test", "test", "valid"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not_bigwig", "not a readable bigWig file"),
        ("short_gtf", "genes.gtf:2: 8 tab-separated fields, expected 9"),
        ("window", "--window 100 is not a multiple of --bin-size 30"),
        ("duplicate_bed", "gene plus appears twice"),
        ("no_expression", "--expression is needed for labels"),
        ("chrom_sizes_missing", "sizes.txt: chromosome sizes file not found"),
        ("split_list_missing", "nothere.txt: gene list not found"),
        ("annotation_not_utf8", "genes.bed:2: not UTF-8 text (byte 0xe9 at column 16)"),
        ("annotation_bad_gzip", "genes.gtf.gz: cannot read the annotation (Not a gzipped file"),
        ("tsv_bad_tss", "genes.tsv:2: tss 'abc', expected a whole number >= 0"),
        ("expression_not_utf8", "expr.csv:3: not UTF-8 text (byte 0xff at column 1)"),
        ("negative_seed", "--seed -1: must be >= 0"),
    ],
)
def test_bad_input(tiny, case, message):
    tracks = {"A": str(tiny / "a.bw")}
    annotation = tiny / "genes.bed"
    kwargs = {"expression": None, "labels": False, "workers": 1}
    if case == "not_bigwig":
        (tiny / "x.bw").write_text("not a bigwig")
        tracks = {"A": str(tiny / "x.bw")}
    elif case == "short_gtf":
        annotation = tiny / "genes.gtf"
        annotation.write_text('chr1\tx\tgene\t201\t260\t.\t+\t.\tgene_id "g1";\nchr1\tx\tgene\t201\t260\t.\t+\t.\n')
    elif case == "window":
        kwargs["bin_size"] = 30
    elif case == "duplicate_bed":
        annotation.write_text("chr1\t200\t260\tplus\t0\t+\nchr1\t300\t360\tplus\t0\t+\n")
    elif case == "no_expression":
        kwargs["labels"] = True
    elif case == "chrom_sizes_missing":
        kwargs["chrom_sizes"] = tiny / "sizes.txt"
    elif case == "split_list_missing":
        kwargs.update(split="lists", split_lists={"train": str(tiny / "nothere.txt")})
    elif case == "annotation_not_utf8":
        annotation.write_bytes(b"chr1\t200\t260\tplus\t0\t+\nchr1\t600\t650\tmi\xe9\t0\t+\n")
    elif case == "annotation_bad_gzip":
        annotation = tiny / "genes.gtf.gz"
        annotation.write_bytes(b"plain text, not gzip\n")
    elif case == "tsv_bad_tss":
        annotation = tiny / "genes.tsv"
        annotation.write_text("gene_id\tchrom\ttss\tstrand\nplus\tchr1\tabc\t+\n")
    elif case == "expression_not_utf8":
        (tiny / "expr.csv").write_bytes(b"gene_id,value\nplus,5\n\xff,1\n")
        kwargs.update(expression=tiny / "expr.csv", labels=True)
    elif case == "negative_seed":
        kwargs["seed"] = -1
    with pytest.raises(DeepChromeError) as error:  # DataFormatError is one
        prepare(tracks, annotation, tiny / "out", "C1", window=100, **{"bin_size": 20, **kwargs})
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tiny / "out").exists()


def _prepare_cli(tiny, *extra, out=None, cell="C1", tracks=("A=a.bw",), order=("plus", "mid", "minus")):
    """``deepchrome prepare`` on the tiny data set (--no-labels, one gene per split list in ``order``); not checked."""
    bigwigs = [arg for track in tracks for arg in ("--bigwig", track.replace("=", f"={tiny}/", 1))]
    lists = [("--split-list", f"{split}={_write(tiny / f'{split}.txt', gene)}") for split, gene in zip(
        ("train", "valid", "test"), order, strict=True)]  # fmt: skip
    return run_cli(
        "prepare", *bigwigs, "--annotation", str(tiny / "genes.bed"), "--no-labels", "--cell", cell,
        "--out", str(out or tiny / "out"), "--window", "100", "--bin-size", "20", "--workers", "1",
        "--split", "lists", *(arg for pair in lists for arg in pair), *extra, check=False,
    )  # fmt: skip


def _refused(result, message):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("../victim", "--cell '../victim': a cell name must be a plain name (letters, digits, '.', '_', '-')"),
        ("", "--cell '': a cell name must not be empty"),
        ("..", "--cell '..': a cell name must not start with '.'"),
        (".", "--cell '.': a cell name must not start with '.'"),
    ],
)
def test_cell_must_be_a_plain_name(tiny, cell, message):
    victim = tiny / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    _refused(_prepare_cli(tiny, cell=cell), message)
    assert snapshot(victim) == {"precious.txt": b"keep me"} and not (tiny / "out").exists()


def test_mark_names_must_be_plain(tiny):
    _refused(_prepare_cli(tiny, tracks=("A,B=a.bw",)), "--bigwig 'A,B': a mark name must be a plain name")
    assert not (tiny / "out").exists()


def test_existing_cell_folder_keeps_what_prepare_did_not_write(tiny):
    cell = tiny / "out" / "C1"
    (cell / "classification").mkdir(parents=True)
    (cell / "notes.txt").write_text("mine")
    (cell / "classification" / "extra.csv").write_text("mine too")
    (cell / "classification" / "train.csv").write_text("stale")
    untouched = snapshot(tiny / "out")
    refused = _prepare_cli(tiny)  # an existing split file is replaced only when asked
    _refused(refused, "train.csv already exists (1 file(s) would be replaced): pass --overwrite to replace them")
    assert snapshot(tiny / "out") == untouched
    assert _prepare_cli(tiny, "--overwrite").returncode == 0
    assert (cell / "notes.txt").read_text() == "mine"
    assert (cell / "classification" / "extra.csv").read_text() == "mine too"
    assert read_release_csv(cell / "classification" / "train.csv").marks == ("A",)
    assert sorted(p.name for p in cell.iterdir()) == [
        "classification",
        "dropped_genes.tsv",
        "notes.txt",
        "prepare.json",
    ]
    first = snapshot(tiny / "out")
    assert _prepare_cli(tiny, "--overwrite").returncode == 0  # again: own files replaced
    assert snapshot(tiny / "out").keys() == first.keys() and not hidden(tiny / "out")
    assert (cell / "notes.txt").read_text() == "mine"


def _damage_data_blocks(path):
    """Flip the bytes of a bigWig's compressed data section, keeping its header and index intact."""
    data = bytearray(path.read_bytes())
    _, _, _, _, data_offset, index_offset = struct.unpack("<IHHQQQ", bytes(data[:32]))
    for i in range(data_offset + 14, index_offset - 10):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncated", "data", "data-two-workers"])
def test_corrupted_bigwig_is_one_line_naming_the_file(tiny, damage):
    if damage == "truncated":
        (tiny / "a.bw").write_bytes((tiny / "a.bw").read_bytes()[:1000])
        message = f"{tiny}/a.bw: not a readable bigWig file"
    else:
        _damage_data_blocks(tiny / "a.bw")
        message = f"{tiny}/a.bw: cannot read values of chr1:"
    extra = ("--workers", "2") if damage == "data-two-workers" else ()
    result = _prepare_cli(tiny, *extra, tracks=("B=b.bw", "A=a.bw"))
    _refused(result, message)
    assert not (tiny / "out").exists()


def test_out_that_is_a_file(tiny):
    (tiny / "out").write_text("not a folder")
    _refused(_prepare_cli(tiny), f"--out {tiny}/out: is a file, expected a folder")
    assert (tiny / "out").read_text() == "not a folder"
    _refused(_prepare_cli(tiny, out=tiny / "out" / "sub"), f"--out {tiny}/out/sub: {tiny}/out is a file")


@pytest.mark.parametrize(
    ("window", "bin_size", "message"),
    [
        ("0", "20", "--window 0: must be a positive whole number of base pairs"),
        ("-100", "20", "--window -100: must be a positive whole number of base pairs"),
        ("100", "0", "--bin-size 0: must be a positive whole number of base pairs"),
        ("100", "-20", "--bin-size -20: must be a positive whole number of base pairs"),
        ("150", "100", "--window 150 is not a multiple of --bin-size 100: the TSS must fall on a bin boundary"),
    ],
)
def test_window_and_bin_size_nonsense(tiny, window, bin_size, message):
    result = run_cli(
        "prepare", "--bigwig", f"A={tiny}/a.bw", "--annotation", str(tiny / "genes.bed"), "--no-labels",
        "--cell", "C1", "--out", str(tiny / "out"), "--window", window, "--bin-size", bin_size, check=False,
    )  # fmt: skip
    _refused(result, message)
    assert not (tiny / "out").exists()


def test_gzipped_annotation_still_reads(tiny):
    with gzip.open(tiny / "genes.bed.gz", "wt") as handle:
        handle.write((tiny / "genes.bed").read_text())
    assert read_tss(tiny / "genes.bed.gz").gene_id.tolist() == read_tss(tiny / "genes.bed").gene_id.tolist()


def test_disk_full_while_writing_leaves_output_unchanged(tiny, monkeypatch):
    from deepchrome.data import bigwig

    (tiny / "out" / "C1").mkdir(parents=True)
    (tiny / "out" / "C1" / "notes.txt").write_text("mine")
    before = snapshot(tiny / "out")
    written = []

    def write_until_full(part, path):
        if written:
            path.write_text("7,1,half a li")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        written.append(path)
        write_release_csv(part, path)

    monkeypatch.setattr(bigwig, "write_release_csv", write_until_full)
    _refused(_prepare_cli(tiny), f"--out {tiny}/out: cannot write there (No space left on device)")
    assert len(written) == 1 and snapshot(tiny / "out") == before


def test_read_only_output_folder(tiny):
    out = tiny / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("chmod 0o555 does not stop this user (root) from writing")
        _refused(_prepare_cli(tiny), f"--out {out}: folder is not writable")
        _refused(_prepare_cli(tiny, out=out / "sub"), f"--out {out}/sub: folder ({out}) is not writable")
        assert not list(out.iterdir())
    finally:
        out.chmod(0o755)


def test_unwritable_output_found_at_write_time(tiny, monkeypatch):
    """A folder that os.access calls writable but is not (read-only mount, ACL): caught when writing."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    (tiny / "out").mkdir()
    _refused(_prepare_cli(tiny), f"--out {tiny}/out: cannot write there (Permission denied)")
    assert not list((tiny / "out").iterdir())


def test_track_values_the_release_cannot_hold_are_refused_before_writing(tiny):
    write_bigwig(tiny / "logratio.bw", np.linspace(-2, 2, CHROM_SIZE))
    result = _prepare_cli(tiny, tracks=("A=a.bw", "L=logratio.bw"))
    _refused(result, f"{tiny}/logratio.bw (L): bin value -1.")
    assert "near the TSS of gene plus; the release format holds coverage or counts from 0 to 2,147,483,647" in (
        result.stderr
    )
    assert not (tiny / "out").exists()
    _refused(_prepare_cli(tiny, tracks=("label=a.bw",)), "--bigwig label=...: 'label' is a column of the release")
    assert not (tiny / "out" / "C1").exists()


def test_prepared_csv_is_pandas_text_on_real_k562(k562, tmp_path):
    # 2,000 TSSs sampled like bench/bench_prepare.py; every split file prepare writes must be the
    # text the pandas writer gives for the same genes (float32 bigWig means, '%.6g').
    from tests.test_release import pandas_release_csv

    rng = np.random.default_rng(0)
    positions = rng.choice(np.arange(4_005_000, 5_995_000), size=2000, replace=False)
    strands = rng.choice(["+", "-"], size=2000)
    bed = tmp_path / "tss.bed"
    bed.write_text(
        "".join(
            f"chr9\t{p}\t{p + 1}\tg{i:04d}\t0\t{s}\n" for i, (p, s) in enumerate(zip(positions, strands, strict=True))
        )
    )
    tracks = {m: str(k562 / f"K562_{m}.chr9_4-6Mb.bigwig") for m in ("H3K27me3", "H3K27ac")}
    prepare(tracks, bed, out=tmp_path / "out", cell="K562", labels=False, workers=1)
    tss = read_tss(bed)
    signals, _ = extract_matrices(tracks, tss, workers=1)
    index = {g: i for i, g in enumerate(tss.gene_id)}
    fractional = 0
    for split in ("train", "valid", "test"):
        written = tmp_path / "out" / "K562" / "classification" / f"{split}.csv"
        genes = read_release_csv(written).gene_ids
        rows = [index[g] for g in genes]
        part = HistoneSignals(
            signals=np.nan_to_num(signals[rows], nan=0.0).astype(np.float32),
            labels=np.zeros(len(rows), dtype=np.int64),
            gene_ids=tss.gene_id[rows],
            marks=tuple(tracks),
        )
        pandas_release_csv(part, tmp_path / f"{split}.pandas.csv")
        assert written.read_bytes() == (tmp_path / f"{split}.pandas.csv").read_bytes(), split
        fractional += int((part.signals != np.floor(part.signals)).sum())
    assert fractional > 100_000  # the values exercise the float formatting, not only whole numbers
