"""bigWig preparation: hand-computed bins, an independent reference on real K562 tracks, bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pyBigWig
import pytest

from deepchrome.data import HistoneDataModule, bigwig, read_release_csv
from deepchrome.data.annotation import read_tss
from deepchrome.data.bigwig import extract_matrices, prepare
from deepchrome.data.signals import HistoneSignals
from deepchrome.errors import DataFormatError, DeepChromeError
from tests.cli import run_cli

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
        ("window", "is not a multiple of the bin size"),
        ("duplicate_bed", "gene plus appears twice"),
        ("no_expression", "--expression is needed for labels"),
    ],
)
def test_bad_input(tiny, case, message):
    tracks = {"A": str(tiny / "a.bw")}
    annotation = tiny / "genes.bed"
    kwargs = {"expression": None, "labels": False}
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
    with pytest.raises((DeepChromeError, DataFormatError), match=message):
        prepare(tracks, annotation, tiny / "out", "C1", window=100, **{"bin_size": 20, **kwargs})
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
