"""Gene annotations -> one TSS per gene.

Formats (chosen by extension): GTF (``.gtf``), GFF3 (``.gff``, ``.gff3``), BED6 (``.bed``) and TSV
(``.tsv``/``.txt`` with a header naming ``chrom``, ``tss``, ``strand``, ``gene_id``). ``.gz`` works
for all of them.

TSS rule: the 5' end of the gene record (``gene`` feature in GTF/GFF3; the BED interval), i.e. its
start on the plus strand and its end on the minus strand. A gene without a ``gene`` record gets
the 5' end of its most upstream transcript (or exon). Positions follow deepTools'
``computeMatrix reference-point --referencePoint TSS``: the reference is the 0-based boundary just
before the TSS base in transcript direction (``start - 1`` for plus, ``end`` for minus in GTF's
1-based closed coordinates), so the first downstream bin starts at the TSS base.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepchrome.data.release import not_utf8_error
from deepchrome.errors import DataFormatError


@dataclass
class TSSTable:
    """One TSS per gene: arrays [genes] ``gene_id``, ``chrom``, ``reference`` (0-based boundary), ``strand``."""

    gene_id: np.ndarray
    chrom: np.ndarray
    reference: np.ndarray
    strand: np.ndarray

    def __len__(self) -> int:
        return len(self.gene_id)

    def frame(self) -> pd.DataFrame:
        """As a DataFrame with columns gene_id, chrom, reference, strand."""
        return pd.DataFrame(
            {"gene_id": self.gene_id, "chrom": self.chrom, "reference": self.reference, "strand": self.strand}
        )


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


_GTF_ID = re.compile(r'gene_id "([^"]+)"')
_GFF_ID = re.compile(r"(?:^|;)\s*(?:gene_id|ID)=(?:gene:)?([^;]+)")


def _read_gff_like(path: Path, gff3: bool) -> pd.DataFrame:
    rows = []
    pattern = _GFF_ID if gff3 else _GTF_ID
    with _open(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 9:
                raise DataFormatError(
                    f"{path}:{number}: {len(fields)} tab-separated fields, expected 9 "
                    "(seqname source feature start end score strand frame attributes)"
                )
            feature = fields[2]
            if feature not in ("gene", "transcript", "mRNA", "exon"):
                continue
            match = pattern.search(fields[8])
            if gff3 and feature != "gene" and match is None:
                parent = re.search(r"Parent=(?:transcript:|gene:)?([^;]+)", fields[8])
                match = parent
            if match is None:
                raise DataFormatError(f"{path}:{number}: no gene_id in the attributes field")
            try:
                start, end = int(fields[3]), int(fields[4])
            except ValueError:
                raise DataFormatError(
                    f"{path}:{number}: start/end {fields[3]!r}/{fields[4]!r} are not integers"
                ) from None
            if fields[6] not in "+-" or not fields[6]:
                raise DataFormatError(f"{path}:{number}: strand {fields[6]!r}, expected + or -")
            rows.append((match.group(1), fields[0], start, end, fields[6], feature))
    if not rows:
        raise DataFormatError(f"{path}: no gene, transcript or exon records")
    return pd.DataFrame(rows, columns=["gene_id", "chrom", "start", "end", "strand", "feature"])


def read_tss(path: str | os.PathLike) -> TSSTable:
    """Read an annotation and return one TSS per gene (see the module docstring for the rule).

    Raises
    ------
    DataFormatError
        For a missing file, one that is not UTF-8 or not valid gzip, lines with too few fields,
        bad coordinates or strands, a gene on two strands or chromosomes, or a TSV without the
        required columns.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: annotation not found")
    try:
        records = _read_records(path)
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None
    except (OSError, EOFError, zlib.error, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        raise DataFormatError(f"{path}: cannot read the annotation ({reason})") from None
    conflicting = records.groupby("gene_id")[["chrom", "strand"]].nunique().max(axis=1) > 1
    if conflicting.any():
        gene = conflicting.index[conflicting.to_numpy()][0]
        raise DataFormatError(f"{path}: gene {gene} lies on several chromosomes or strands")
    # Most upstream: smallest reference on plus, largest on minus.
    records = records.assign(key=np.where(records["strand"] == "+", records["reference"], -records["reference"]))
    first = records.sort_values(["gene_id", "key"], kind="stable").drop_duplicates("gene_id")
    first = first.sort_values(["chrom", "reference"], kind="stable")
    return TSSTable(
        gene_id=first["gene_id"].to_numpy(dtype=str),
        chrom=first["chrom"].to_numpy(dtype=str),
        reference=first["reference"].to_numpy(dtype=np.int64),
        strand=first["strand"].to_numpy(dtype=str),
    )


def _read_records(path: Path) -> pd.DataFrame:
    """Records with gene_id, chrom, reference, strand (several per gene possible), by format."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    kind = suffixes[-1] if suffixes else ""
    if kind in (".gtf", ".gff", ".gff3"):
        records = _read_gff_like(path, gff3=kind != ".gtf")
        genes = records[records["feature"] == "gene"]
        others = records[(records["feature"] != "gene") & ~records["gene_id"].isin(genes["gene_id"])]
        records = pd.concat([genes, others])
        # GTF is 1-based closed: plus-strand reference = start - 1, minus-strand = end.
        records["reference"] = np.where(records["strand"] == "+", records["start"] - 1, records["end"])
    elif kind == ".bed":
        records = _read_bed(path)
    elif kind in (".tsv", ".txt"):
        records = _read_tsv(path)
    else:
        raise DataFormatError(f"{path}: unknown annotation format {kind!r} (use .gtf, .gff3, .bed or .tsv)")
    return records


def _read_bed(path: Path) -> pd.DataFrame:
    rows = []
    with _open(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 6:
                raise DataFormatError(
                    f"{path}:{number}: {len(fields)} fields, expected BED6 (chrom start end name score strand)"
                )
            try:
                start, end = int(fields[1]), int(fields[2])
            except ValueError:
                raise DataFormatError(f"{path}:{number}: start/end are not integers") from None
            if fields[5] not in ("+", "-"):
                raise DataFormatError(f"{path}:{number}: strand {fields[5]!r}, expected + or -")
            # BED is 0-based half-open: plus reference = start, minus reference = end.
            rows.append((fields[3], fields[0], start if fields[5] == "+" else end, fields[5]))
    if not rows:
        raise DataFormatError(f"{path}: no BED records")
    frame = pd.DataFrame(rows, columns=["gene_id", "chrom", "reference", "strand"])
    duplicated = frame["gene_id"].duplicated()
    if duplicated.any():
        raise DataFormatError(f"{path}: gene {frame['gene_id'][duplicated].iloc[0]} appears twice")
    return frame


def _read_tsv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t", dtype={"gene_id": str, "chrom": str}, skip_blank_lines=False)
    missing = [c for c in ("chrom", "tss", "strand", "gene_id") if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{path}:1: missing column(s) {', '.join(missing)} (need chrom, tss, strand, gene_id)")
    if len(frame) == 0:
        raise DataFormatError(f"{path}: no data rows")
    absent = frame[["chrom", "tss", "strand", "gene_id"]].isna().to_numpy()
    if absent.any():
        raise DataFormatError(f"{path}:{int(np.argmax(absent.any(axis=1))) + 2}: missing value")
    tss = pd.to_numeric(frame["tss"], errors="coerce").to_numpy()
    bad = ~np.isfinite(tss) | (tss < 0) | (tss != np.floor(tss))
    if bad.any():
        row = int(np.argmax(bad))
        raise DataFormatError(f"{path}:{row + 2}: tss {frame['tss'].iloc[row]!r}, expected a whole number >= 0")
    bad = ~frame["strand"].isin(["+", "-"])
    if bad.any():
        raise DataFormatError(f"{path}:{int(np.argmax(bad.to_numpy())) + 2}: strand, expected + or -")
    # ``tss`` is the 0-based position of the TSS base: plus reference = tss, minus = tss + 1.
    tss = tss.astype(np.int64)
    reference = np.where(frame["strand"] == "+", tss, tss + 1)
    duplicated = frame["gene_id"].duplicated()
    if duplicated.any():
        raise DataFormatError(f"{path}: gene {frame['gene_id'][duplicated].iloc[0]} appears twice")
    return pd.DataFrame(
        {"gene_id": frame["gene_id"], "chrom": frame["chrom"], "reference": reference, "strand": frame["strand"]}
    )
