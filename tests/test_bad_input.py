"""Bad input to every command: exit 2 with one line ``deepchrome: error: ...``, no traceback, and
nothing written or changed (the working folder, the run folder read and the checkout's top level
are snapshotted); and the rules that keep run folders safe: a finished run is refused, --overwrite
replaces only a run's files, a resumed run appends to metrics.csv, checkpoints are written
atomically, a fit that fails before its first checkpoint leaves its folder as it was."""

from __future__ import annotations

import errno
import logging
import re
import shlex
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch

from deepchrome import cli
from deepchrome.cli import output_level, user_error_message
from deepchrome.errors import Interrupted
from tests.cli import run_cli
from tests.conftest import EXAMPLE, REPO
from tests.tree import hidden, snapshot

FAST = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
MARKS = ["H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3"]
NO_OUTPUT = "the command writes no files: there is no output folder to make unwritable"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """A finished 1-epoch linear run (metrics.json, checkpoints/)."""
    run = tmp_path_factory.mktemp("fitted") / "run"
    run_cli("fit", "--config", "linear", "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(run), *FAST)
    return run


@pytest.fixture(scope="module")
def gan_checkpoint(tmp_path_factory) -> Path:
    """A GAN checkpoint of an untrained small generator, in the layout ``deepchrome gan fit`` writes."""
    from deepchrome.gan.checkpoint import GAN_FORMAT
    from deepchrome.gan.models import Generator

    generator = Generator(n_marks=5, n_bins=100, latent_dim=8, n_cells=1, width=8)
    meta = {"kind": "gan", "format": GAN_FORMAT, "marks": MARKS, "n_marks": 5, "n_bins": 100, "latent_dim": 8,
            "width": 8, "n_cells": 1, "output": "counts", "bin_overlap": 0.0,
            "transform": {"kind": "log1p", "mean": None, "std": None}}  # fmt: skip
    state = {f"generator_ema.module.{k}": v for k, v in generator.state_dict().items()}
    path = tmp_path_factory.mktemp("gan") / "gan.ckpt"
    torch.save({"deepchrome": meta, "state_dict": state, "epoch": 0, "global_step": 0}, path)
    return path


@pytest.fixture()
def ws(tmp_path, fitted, gan_checkpoint) -> dict[str, str]:
    """A working folder: a file where folders are expected, binary and malformed inputs, an existing
    output folder with a file of the user's, a release with a malformed split file."""
    (tmp_path / "afile").write_text("a file, not a folder\n")
    (tmp_path / "binary.dat").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "bad.yaml").write_text("trainer:\n  max_epochs: [1\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("the user's\n")
    (tmp_path / "victim").mkdir()
    for split in ("train", "valid", "test"):
        path = tmp_path / "badrel" / "C1" / "classification" / f"{split}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("g1,1,0,0,0,0,0\n")
    (tmp_path / "ann.bed").write_text("chr1\t100\t200\tg1\t0\t+\n")
    (tmp_path / "sweep_list.yaml").write_text("base_config: linear\nsearch_space: [1, 2]\n")
    experiment = f"root: {EXAMPLE}\nmodels: {{linear: linear}}\n"
    (tmp_path / "exp_k.yaml").write_text(experiment + "families: [inclusive_random]\nk_random: -1\n")
    (tmp_path / "exp_models.yaml").write_text(f"root: {EXAMPLE}\nmodels: {{linear: 5}}\n")
    (tmp_path / "exp_families.yaml").write_text(experiment + "families: []\n")
    (tmp_path / "exp_empty.yaml").write_text("")
    return {
        "ws": str(tmp_path), "afile": str(tmp_path / "afile"), "binary": str(tmp_path / "binary.dat"),
        "bad_yaml": str(tmp_path / "bad.yaml"), "out": str(tmp_path / "out"), "missing": str(tmp_path / "missing"),
        "badrel": str(tmp_path / "badrel"), "ann": str(tmp_path / "ann.bed"), "run": str(fitted),
        "ckpt": str(fitted / "checkpoints" / "last.ckpt"), "gan": str(gan_checkpoint), "example": str(EXAMPLE),
    }  # fmt: skip


def _case(name: str, command: str, message: str, skip: str | None = None):
    marks = [pytest.mark.skip(reason=skip)] if skip else []
    return pytest.param(command, message, id=name, marks=marks)


GPU = "a GPU is present" if torch.cuda.is_available() else None
FIT = "fit --config linear --trainer.max_epochs 1"
EXPLAIN = "explain --root {example} --cells S01 --n-steps 2 --gene-figures 0"
VISUALIZE = "gan visualize --root {example} --cells S01 --samples 4 --bootstrap 1"
REPORT = "report --fast --seeds 1 --root {example} --cells S01"

CASES = [
    # fit: a path, the run folder, malformed input, numbers, the machine
    _case("fit-missing-data", FIT + " --data.root {missing} --trainer.default_root_dir {out}/run",
          "data root {missing} does not exist"),
    _case("fit-out-is-a-file", FIT + " --trainer.default_root_dir {afile}",
          "--trainer.default_root_dir {afile}: is a file, expected a folder"),
    _case("fit-out-under-a-file", FIT + " --trainer.default_root_dir {afile}/run", "{afile} is a file"),
    _case("fit-yaml-syntax", "fit --config {bad_yaml} --trainer.default_root_dir {out}/run",
          "{bad_yaml}:3: not valid YAML"),
    _case("fit-not-utf8-config", "fit --config {binary} --trainer.default_root_dir {out}/run",
          "{binary}: cannot read (UnicodeDecodeError"),
    _case("fit-config-is-a-device", "fit --config /dev/null --trainer.default_root_dir {out}/run",
          "config /dev/null: is not a regular file (a device or a pipe: no settings to read)"),
    _case("fit-config-is-a-folder", "fit --config {out} --trainer.default_root_dir {out}/run",
          "config {out}: is a folder; give a YAML file or a packaged config (attentivechrome,"),
    _case("fit-class-path-not-allowed", FIT + " --model.net.class_path os.system --trainer.default_root_dir {out}/run",
          "model.net: class_path 'os.system' is not allowed: give a subclass of SignalNet from the modules torch, "
          "lightning, torchmetrics, deepchrome (more with DEEPCHROME_TRUSTED_MODULES)"),
    _case("fit-class-path-wrong-class", FIT + " --model.net.class_path torch.nn.Linear --trainer.default_root_dir "
          "{out}/run", "model.net: class_path 'torch.nn.Linear' is not a subclass of SignalNet"),
    _case("fit-class-path-not-importable", FIT + " --model.net.class_path antigravity.X "
          "--trainer.default_root_dir {out}/run", "model.net: class_path 'antigravity.X': a config may name classes"),
    _case("fit-batch-size-0", FIT + " --data.batch_size 0 --trainer.default_root_dir {out}/run",
          "data.batch_size 0: must be a whole number >= 1"),
    _case("fit-max-epochs-0", FIT + " --trainer.max_epochs 0 --trainer.default_root_dir {out}/run",
          "trainer.max_epochs 0: must be >= 1 (or -1: no limit, with trainer.max_time)"),
    _case("fit-batch-size-huge", FIT + " --data.batch_size 99999999999999999999 --trainer.default_root_dir {out}/run",
          "data.batch_size 99999999999999999999: must be at most 2147483648"),
    _case("fit-negative-lr", FIT + " --model.optimizer.init_args.lr -1 --trainer.default_root_dir {out}/run",
          "model.optimizer: Invalid learning rate: -1.0 (fix --model.optimizer.init_args)"),
    _case("fit-zero-channels", "fit --config deepchrome --model.net.init_args.channels 0 "
          "--trainer.default_root_dir {out}/run", "model.net.init_args.channels 0: must be a whole number >= 1"),
    _case("fit-zero-layer-size", "fit --config mlp --model.net.init_args.hidden [64,0] "
          "--trainer.default_root_dir {out}/run",
          "model.net.init_args.hidden [64, 0]: layer sizes must be whole numbers >= 1"),
    _case("fit-not-a-number", "fit --config linear --trainer.max_epochs x --trainer.default_root_dir {out}/run",
          "trainer.max_epochs: expected int or null, got 'x'"),
    _case("fit-unknown-option", FIT + " --data.batchsize 3", "unrecognized arguments: --data.batchsize 3"),
    _case("fit-gpu-without-one", FIT + " --trainer.accelerator gpu --trainer.default_root_dir {out}/run",
          "trainer.accelerator gpu: no GPU found: use --trainer.accelerator cpu", skip=GPU),
    _case("fit-finished-run", FIT + " --trainer.default_root_dir {run}",
          "{run} already holds a finished run (metrics.json, checkpoints/); pass --overwrite to replace it, "
          "--ckpt_path last to resume it, or choose another --trainer.default_root_dir"),
    _case("fit-overwrite-resume", FIT + " --trainer.default_root_dir {run} --overwrite --ckpt_path last",
          "--overwrite with --ckpt_path last would delete the checkpoint to resume from"),
    _case("fit-best-alias", FIT + " --ckpt_path best --trainer.default_root_dir {out}/run",
          "--ckpt_path best: a fit resumes from last"),
    # validate / test / predict
    _case("validate-missing-checkpoint", "validate --config linear --ckpt_path {missing}.ckpt",
          "checkpoint {missing}.ckpt not found"),
    _case("validate-malformed-checkpoint", "validate --config linear --ckpt_path {binary}",
          "{binary}: not a readable checkpoint"),
    _case("validate-unwritable-out", "", "", skip=NO_OUTPUT),
    _case("test-missing-data", "test --config linear --ckpt_path {ckpt} --data.root {missing}",
          "data root {missing} does not exist"),
    _case("test-gan-checkpoint", "test --config linear --ckpt_path {gan}",
          "{gan} is not a deepchrome classifier checkpoint (kind: gan)"),
    _case("test-other-network", "test --config deepchrome --ckpt_path {ckpt}",
          "{ckpt}: checkpoint holds a LinearBaseline, the config builds a DeepChromeCNN"),
    _case("test-best-alias", "test --config linear --ckpt_path best --trainer.default_root_dir {run}",
          "--ckpt_path best: give the best checkpoint's file, e.g. --ckpt_path {run}/checkpoints/best-"),
    _case("test-last-without-a-run", "test --config linear --ckpt_path last --trainer.default_root_dir {out}",
          "--ckpt_path last: {out}/checkpoints/last.ckpt not found"),
    _case("test-unwritable-out", "", "", skip=NO_OUTPUT),
    _case("predict-out-is-a-file", "predict --config linear --ckpt_path {ckpt} --trainer.default_root_dir {afile}",
          "--trainer.default_root_dir {afile}: is a file, expected a folder"),
    _case("predict-malformed-checkpoint",
          "predict --config linear --ckpt_path {binary} --trainer.default_root_dir {out}/p",
          "{binary}: not a readable checkpoint"),
    _case("predict-missing-data",
          "predict --config linear --ckpt_path {ckpt} --data.root {missing} --trainer.default_root_dir {out}/p",
          "data root {missing} does not exist"),
    # simulate
    _case("simulate-out-is-a-file", "simulate --out {afile}", "--out {afile}: is a file, expected a folder"),
    _case("simulate-out-under-a-file", "simulate --out {afile}/sim", "{afile} is a file, expected a folder"),
    _case("simulate-zero-cells", "simulate --out {out}/sim --cells 0", "argument --cells: must be >= 1, got 0"),
    _case("simulate-out-of-memory", "simulate --out {out}/sim --genes 100000000000",
          "--genes 100000000000 x --cells 4 needs about 5.7 PB of memory, more than this machine's"),
    _case("simulate-not-a-number", "simulate --out {out}/sim --genes many",
          "argument --genes: expected a whole number, got 'many'"),
    # data check
    _case("data-check-missing", "data check {missing}", "data root {missing} does not exist"),
    _case("data-check-a-file", "data check {afile}", "data root {afile} does not exist or is not a folder"),
    _case("data-check-malformed", "data check {badrel}",
          "{badrel}/C1/classification/train.csv:1: expected 8 comma-separated fields"),
    _case("data-check-unwritable-out", "", "", skip=NO_OUTPUT),
    # prepare
    _case("prepare-missing-bigwig",
          "prepare --bigwig H3K4me3={missing}.bw --annotation {ann} --no-labels --cell C1 --out {out}",
          "{missing}.bw: bigWig file not found"),
    _case("prepare-malformed-bigwig",
          "prepare --bigwig H3K4me3={binary} --annotation {ann} --no-labels --cell C1 --out {out}",
          "{binary}: not a readable bigWig file"),
    _case("prepare-out-is-a-file",
          "prepare --bigwig H3K4me3={binary} --annotation {ann} --no-labels --cell C1 --out {afile}",
          "--out {afile}: is a file, expected a folder"),
    _case("prepare-cell-escapes",
          "prepare --bigwig H3K4me3={binary} --annotation {ann} --no-labels --cell ../victim --out {out}",
          "--cell '../victim': a cell name must be a plain name"),
    _case("prepare-seed-of-another-split",
          "prepare --bigwig H3K4me3={binary} --annotation {ann} --no-labels --cell C1 --out {out} --split chromosome "
          "--valid-chroms chr2 --test-chroms chr3 --seed 4",
          "--seed is for --split random; --split chromosome would ignore it: drop --seed or use --split random"),
    _case("prepare-chroms-of-another-split",
          "prepare --bigwig H3K4me3={binary} --annotation {ann} --no-labels --cell C1 --out {out} --test-chroms chr3",
          "--test-chroms is for --split chromosome; --split random would ignore it"),
    _case("prepare-lists-of-another-split",
          "prepare --bigwig H3K4me3={binary} --annotation {ann} --no-labels --cell C1 --out {out} "
          "--split-list test={ann}", "--split-list is for --split lists; --split random would ignore it"),
    # download
    _case("download-missing-url", "download --out {out}/dl --url file://{missing}.tar.gz --checksum md5:"
          + "0" * 32 + " --no-progress", "cannot reach file://{missing}.tar.gz"),
    _case("download-malformed-checksum", "download --out {out}/dl --url file://{binary} --checksum md5:xyz",
          "a md5 checksum is 32 hexadecimal digits"),
    _case("download-checksum-mismatch", "download --out {out}/dl --url file://{binary} --checksum md5:"
          + "0" * 32 + " --no-progress", "the download was deleted"),
    _case("download-out-is-a-file", "download --out {afile} --url file://{binary} --checksum md5:" + "0" * 32,
          "--out {afile}: is a file, expected a folder"),
    # explain
    _case("explain-missing-checkpoint", EXPLAIN + " --checkpoint {missing}.ckpt --out {out}/x",
          "checkpoint {missing}.ckpt not found"),
    _case("explain-malformed-checkpoint", EXPLAIN + " --checkpoint {binary} --out {out}/x",
          "{binary}: not a readable checkpoint"),
    _case("explain-gan-checkpoint", EXPLAIN + " --checkpoint {gan} --out {out}/x",
          "is not a deepchrome classifier checkpoint"),
    _case("explain-out-is-a-file", EXPLAIN + " --checkpoint {ckpt} --out {afile}",
          "--out {afile}: is a file, expected a folder"),
    _case("explain-zero-steps", "explain --root {example} --cells S01 --checkpoint {ckpt} --out {out} --n-steps 0",
          "argument --n-steps: must be >= 1, got 0 (see `deepchrome explain --help`)"),
    _case("explain-unknown-cell", "explain --root {example} --cells S99 --checkpoint {ckpt} --out {out}",
          "cells: cell(s) S99 not in"),
    # sweep
    _case("sweep-missing-config", "sweep --config {missing}.yaml", "config {missing}.yaml not found"),
    _case("sweep-yaml-syntax", "sweep --config {bad_yaml}", "{bad_yaml}:3: not valid YAML"),
    _case("sweep-dir-is-a-file", "sweep --config sweeps/linear --sweep-dir {afile}",
          "--sweep-dir {afile}: is a file, expected a folder"),
    _case("sweep-negative-trials", "sweep --config sweeps/linear --n-trials -1 --sweep-dir {out}/sw",
          "argument --n-trials: must be >= 0, got -1"),
    _case("sweep-space-not-a-mapping", "sweep --config {ws}/sweep_list.yaml --sweep-dir {out}/sw",
          "{ws}/sweep_list.yaml: search_space must be a mapping (key: value lines), got a list: [1, 2]"),
    # experiment
    _case("experiment-negative-k-random", "experiment --config {ws}/exp_k.yaml --out {out}/e",
          "{ws}/exp_k.yaml: k_random must be a whole number >= 1, got -1"),
    _case("experiment-model-not-a-config", "experiment --config {ws}/exp_models.yaml --out {out}/e",
          "{ws}/exp_models.yaml: models.linear must be a training config (a packaged name, a YAML path or a "
          "mapping), got 5"),
    _case("experiment-no-families", "experiment --config {ws}/exp_families.yaml --out {out}/e",
          "{ws}/exp_families.yaml: families is empty: list one or more of single, test_on_rest"),
    _case("experiment-empty-config", "experiment --config {ws}/exp_empty.yaml --out {out}/e",
          "{ws}/exp_empty.yaml: the experiment config is empty: give at least root, models and families"),
    _case("experiment-missing-config", "experiment --config {missing}.yaml", "config {missing}.yaml not found"),
    _case("experiment-not-utf8", "experiment --config {binary}", "{binary}: cannot read (UnicodeDecodeError"),
    _case("experiment-out-is-a-file", "experiment --config experiments/example --out {afile}",
          "--out {afile}: is a file, expected a folder"),
    _case("experiment-negative-jobs", "experiment --config experiments/example --out {out}/e --n-jobs -1",
          "argument --n-jobs: must be >= 0, got -1"),
    # gan fit / sample / visualize
    _case("gan-fit-out-is-a-file", "gan fit --config gan --trainer.default_root_dir {afile}",
          "--trainer.default_root_dir {afile}: is a file, expected a folder"),
    _case("gan-fit-yaml-syntax", "gan fit --config {bad_yaml}", "{bad_yaml}:3: not valid YAML"),
    _case("gan-fit-batch-size-0", "gan fit --config gan --data.batch_size 0 --trainer.default_root_dir {out}/g",
          "data.batch_size 0: must be a whole number >= 1"),
    _case("gan-fit-negative-lr", "gan fit --config gan --model.lr_generator -1 --trainer.default_root_dir {out}/g",
          "model.lr_generator -1.0: must be a finite number >= 0"),
    _case("gan-fit-zero-width", "gan fit --config gan --model.width 0 --trainer.default_root_dir {out}/g",
          "model.width 0: must be a whole number >= 1"),
    _case("gan-sample-missing-checkpoint", "gan sample --checkpoint {missing}.ckpt --out {out}",
          "checkpoint {missing}.ckpt not found"),
    _case("gan-sample-malformed-checkpoint", "gan sample --checkpoint {binary} --out {out}",
          "{binary}: not a readable checkpoint"),
    _case("gan-sample-classifier-checkpoint", "gan sample --checkpoint {ckpt} --out {out}",
          "is not a deepchrome gan checkpoint (kind: classifier)"),
    _case("gan-sample-out-is-a-file", "gan sample --checkpoint {gan} --out {afile}",
          "--out {afile}: is a file, expected a folder"),
    _case("gan-sample-zero-genes", "gan sample --checkpoint {gan} --out {out} --n 0",
          "argument --n: must be >= 1, got 0 (see `deepchrome gan sample --help`)"),
    _case("gan-sample-out-of-memory", "gan sample --checkpoint {gan} --out {out} --n 100000000000000",
          "--n 100000000000000 needs about"),
    _case("gan-visualize-out-of-memory", VISUALIZE + " --gan {gan} --classifier {ckpt} --out {out}/v "
          "--samples 100000000000000", "--samples 100000000000000 needs about"),
    _case("prepare-out-of-memory", "prepare --bigwig H3K4me3={binary} --annotation {ann} --no-labels --cell C1 "
          "--out {out} --window 100000000000", "--window 100000000000 needs about 745.1 TB of memory"),
    _case("gan-sample-cell-escapes", "gan sample --checkpoint {gan} --out {out} --n 3 --cell ../victim",
          "--cell '../victim': a cell name must be a plain name"),
    _case("gan-visualize-seed-huge", VISUALIZE + " --gan {gan} --classifier {ckpt} --out {out}/v "
          "--seed 99999999999999999999", "--seed 99999999999999999999: must be at most 4294967295"),
    _case("gan-visualize-bootstrap-huge", VISUALIZE + " --gan {gan} --classifier {ckpt} --out {out}/v "
          "--bootstrap 99999999999999999999", "--bootstrap 99999999999999999999: must be at most 100000"),
    _case("gan-sample-seed-huge", "gan sample --checkpoint {gan} --out {out} --n 3 --seed 99999999999999999999",
          "--seed 99999999999999999999: must be at most 4294967295"),
    _case("explain-steps-huge", "explain --root {example} --cells S01 --checkpoint {ckpt} --out {out} "
          "--n-steps 99999999999999999999", "--n-steps 99999999999999999999: must be at most 100000"),
    _case("fit-threads-huge", FIT + " --threads 99999999999999999999 --trainer.default_root_dir {out}/run",
          "99999999999999999999: must be at most 1024"),
    _case("gan-visualize-missing-gan", VISUALIZE + " --gan {missing}.ckpt --classifier {ckpt} --out {out}/v",
          "checkpoint {missing}.ckpt not found"),
    _case("gan-visualize-malformed-classifier", VISUALIZE + " --gan {gan} --classifier {binary} --out {out}/v",
          "{binary}: not a readable checkpoint"),
    _case("gan-visualize-out-is-a-file", VISUALIZE + " --gan {gan} --classifier {ckpt} --out {afile}",
          "--out {afile}: is a file, expected a folder"),
    _case("gan-visualize-zero-samples", VISUALIZE + " --gan {gan} --classifier {ckpt} --out {out} --samples 0",
          "argument --samples: must be >= 1, got 0"),
    # report
    _case("report-out-is-a-file", REPORT + " --out {afile} --work {out}/w", "--out {afile}: is a file"),
    _case("report-work-is-a-file", REPORT + " --out {out}/r --work {afile}", "--work {afile}: is a file"),
    _case("report-missing-data", "report --fast --root {missing} --cells S01 --out {out}/r --work {out}/w",
          "data root {missing} does not exist"),
    _case("report-zero-seeds", REPORT + " --out {out}/r --work {out}/w --seeds 0", "argument --seeds: must be >= 1"),
    # compare
    _case("compare-missing-run", "compare {missing} {run}", "{missing}: no such run folder or predictions file"),
    _case("compare-not-utf8", "compare {binary} {run}", "{binary}: not a readable CSV"),
    _case("compare-not-a-table", "compare {run} {bad_yaml}", "{bad_yaml}: missing column(s) gene_id"),
    _case("compare-bad-level", "compare {run} {run} --level 2", "level must be between 0 and 1"),
    _case("compare-unwritable-out", "", "", skip=NO_OUTPUT),
    # the command line itself
    _case("abbreviated-training-option", FIT + " --trainer.max_epoch 1 --trainer.default_root_dir {out}/run",
          "unrecognized arguments: --trainer.max_epoch 1"),
    _case("abbreviated-gan-option", "gan fit --config gan --trainer.max_epoch 1 --trainer.default_root_dir {out}/g",
          "unrecognized arguments: --trainer.max_epoch 1"),
    _case("misspelled-required-option", "simulate --ou {out}/sim",
          "unrecognized arguments: --ou (see `deepchrome simulate --help`)"),
    _case("abbreviated-option", "simulate --out {out}/sim --gen 3",
          "unrecognized arguments: --gen 3 (see `deepchrome simulate --help`)"),
    _case("abbreviated-subcommand-option", "data check {example} --no-c",
          "unrecognized arguments: --no-c (see `deepchrome data --help`)"),
    _case("unknown-command", "frobnicate", "unknown command 'frobnicate'; run `deepchrome --help`"),
    _case("quiet-and-verbose", "-q simulate --out {out}/sim -v", "--quiet and --verbose together: choose one"),
]  # fmt: skip


def assert_refused(result, message: str) -> str:
    """Exit 2, no traceback, stderr exactly one line ``deepchrome: error: ...`` holding ``message``."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deepchrome: error: "), lines
    assert message in lines[0], (message, lines[0])
    return lines[0]


@pytest.mark.parametrize(("command", "message"), CASES)
def test_bad_input_is_one_line_and_changes_nothing(ws, command, message):
    watched = [Path(ws["ws"]), Path(ws["run"])]
    before = [snapshot(folder) for folder in watched]
    top = sorted(p.name for p in REPO.iterdir()), sorted(p.name for p in (REPO / "runs").glob("*"))
    result = run_cli(*[arg.format(**ws) for arg in shlex.split(command)], check=False)
    assert_refused(result, message.format(**ws))
    assert [snapshot(folder) for folder in watched] == before  # the output folder and everything around it
    assert (sorted(p.name for p in REPO.iterdir()), sorted(p.name for p in (REPO / "runs").glob("*"))) == top
    assert hidden(Path(ws["ws"])) == []


def test_a_finished_run_is_refused_and_overwrite_replaces_only_its_files(fitted, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fitted, run)
    (run / "notes.txt").write_text("the user's\n")
    old_checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    common = ["fit", "--config", "linear", "--trainer.default_root_dir", str(run), *FAST]
    result = run_cli(*common, "--trainer.max_epochs", "2", "--overwrite")
    assert f"metrics: {run / 'metrics.json'}" in result.stdout
    assert (run / "notes.txt").read_text() == "the user's\n"
    assert pd.read_csv(run / "metrics.csv").dropna(subset=["train_loss"])["epoch"].tolist() == [0, 1]
    new_checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in new_checkpoints and new_checkpoints != old_checkpoints
    assert hidden(run) == []


def test_a_failing_overwrite_puts_the_old_run_back(fitted, tmp_path, monkeypatch):
    from deepchrome import training

    run = tmp_path / "run"
    shutil.copytree(fitted, run)
    before = snapshot(run)

    def disk_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(training.torch, "save", disk_full)
    result = run_cli("fit", "--config", "linear", "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(run),
                     "--overwrite", *FAST, check=False)  # fmt: skip
    line = assert_refused(result, "no space left on the device: free some space or choose another output folder")
    assert str(run / "checkpoints") in line  # the file being written
    assert snapshot(run) == before
    # a new folder that fails the same way is not left behind (nor are its parents)
    fresh = tmp_path / "new" / "run"
    failed = run_cli("fit", "--config", "linear", "--trainer.default_root_dir", str(fresh), *FAST, check=False)
    assert_refused(failed, "no space left on the device")
    assert not (tmp_path / "new").exists()


def test_an_interrupted_overwrite_puts_the_finished_run_back(fitted, tmp_path):
    import signal

    import lightning.pytorch as pl

    import deepchrome

    class Interrupt(pl.Callback):
        # Ctrl-C in the second epoch, after the new run wrote its first checkpoints
        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                raise KeyboardInterrupt

    run = tmp_path / "run"
    shutil.copytree(fitted, run)
    before = snapshot(run)
    handler = signal.getsignal(signal.SIGINT)  # Lightning ignores SIGINT after an interrupt
    quiet = {"trainer.enable_progress_bar": False, "trainer.enable_model_summary": False, "trainer.max_epochs": 5}
    try:
        with pytest.raises(Interrupted) as stopped:
            deepchrome.fit("linear", quiet, run_dir=run, overwrite=True, callbacks=[Interrupt()])
    finally:
        assert signal.getsignal(signal.SIGINT) is handler  # Lightning's SIG_IGN is undone
        signal.signal(signal.SIGINT, handler)
    assert str(stopped.value) == f"interrupted (SIGINT); {run} holds the run it was to replace, as before"
    assert snapshot(run) == before
    assert hidden(run) == []


@pytest.mark.parametrize(("signum", "status", "name"), [(15, 143, "SIGTERM"), (2, 130, "SIGINT")])
def test_a_fit_stopped_by_a_signal_exits_non_zero_and_says_how_to_resume(tmp_path, monkeypatch, signum, status, name):
    monkeypatch.setenv("DEEPCHROME_TRUSTED_MODULES", "tests")  # the config names tests.callbacks.SendSignal
    run = tmp_path / "run"
    common = ["fit", "--config", "linear", "--trainer.default_root_dir", str(run), *FAST]
    result = run_cli(*common, "--trainer.max_epochs", "4", "--trainer.callbacks+=tests.callbacks.SendSignal",
                     "--trainer.callbacks.signum", str(signum), check=False, subprocess_=True)  # fmt: skip
    assert result.returncode == status, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [
        f"deepchrome: interrupted ({name}); the checkpoints are kept in {run / 'checkpoints'}: "
        "resume with --ckpt_path last"
    ]
    assert not (run / "metrics.json").exists() and (run / "checkpoints" / "last.ckpt").is_file()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    assert hidden(run) == []
    resumed = run_cli(*common, "--trainer.max_epochs", "2", "--ckpt_path", "last")
    assert "metrics:" in resumed.stdout
    assert pd.read_csv(run / "metrics.csv").dropna(subset=["train_loss"])["epoch"].tolist() == [0, 1]


def test_evaluating_without_a_checkpoint_is_refused(tmp_path):
    for stage in ("predict", "test", "validate"):
        result = run_cli(stage, "--config", "linear", "--trainer.default_root_dir", str(tmp_path / stage), check=False)
        assert_refused(result, f"{stage} needs --ckpt_path: a checkpoint written by deepchrome fit")
        assert not (tmp_path / stage).exists()


def test_resume_appends_to_metrics_csv(tmp_path):
    run = tmp_path / "run"
    common = ["fit", "--config", "linear", "--trainer.default_root_dir", str(run), *FAST]
    run_cli(*common, "--trainer.max_epochs", "1")
    earlier = pd.read_csv(run / "metrics.csv")
    run_cli(*common, "--trainer.max_epochs", "3", "--ckpt_path", "last")
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics.dropna(subset=["train_loss"])["epoch"].astype(int).tolist() == [0, 1, 2]
    # the first run's rows are still there, first, with their values
    pd.testing.assert_frame_equal(metrics.iloc[: len(earlier)][earlier.columns], earlier, check_dtype=False)


def test_checkpoints_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    from deepchrome import training

    path = tmp_path / "checkpoints" / "last.ckpt"
    io = training.AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}

    def interrupted(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"trunc")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(training.torch, "save", interrupted)
    with pytest.raises(OSError) as caught:
        io.save_checkpoint({"epoch": 2}, path)
    assert caught.value.filename == str(path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}  # the previous checkpoint is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_outputs_go_through_staging_and_keep_the_users_files(ws, gan_checkpoint):
    out = Path(ws["out"])
    (out / "GAN").mkdir()
    (out / "GAN" / "notes.txt").write_text("the user's\n")
    result = run_cli("gan", "sample", "--checkpoint", str(gan_checkpoint), "--out", str(out), "--n", "3")
    assert "wrote 6 generated genes" in result.stdout
    assert sorted(p.name for p in (out / "GAN" / "classification").iterdir()) == ["test.csv", "train.csv", "valid.csv"]
    run_cli("explain", "--checkpoint", ws["ckpt"], "--root", ws["example"], "--cells", "S01", "--n-steps", "2",
            "--gene-figures", "1", "--out", str(out))  # fmt: skip
    assert (out / "explain.json").is_file() and (out / "S01_marks.png").is_file()
    assert (out / "keep.txt").read_text() == (out / "GAN" / "notes.txt").read_text() == "the user's\n"
    assert hidden(out) == []


def test_a_bug_prints_its_traceback_and_asks_for_a_report(monkeypatch):
    def broken(argv):
        raise RuntimeError("an internal inconsistency")

    monkeypatch.setattr(cli, "_compare", broken)
    result = run_cli("compare", "a", "b", check=False)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: an internal inconsistency" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("deepchrome: internal error: ")
    assert "please report it" in result.stderr


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "/data/out"), "/data/out: permission denied"),
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on the device: free some space"),
        (OSError(errno.EROFS, "Read-only file system", "/ro/x"), "/ro/x: read-only file system: choose another"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/d"), "/d: is a folder, expected a file"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/x"), "/f/x: part of this path is a file"),
        (ValueError("could not convert string to float: 'abc'"), "a value is not a number"),
        (MemoryError(), "out of memory: ask for less"),
        (
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried "
                "to allocate 400000000000 bytes."
            ),
            "out of memory: ask for less",
        ),
        (RuntimeError("wrapped"), None),  # a bug
        (OSError(errno.EBADF, "Bad file descriptor"), None),  # not the user's doing
    ],
)
def test_user_errors_are_told_from_bugs(error, message):
    found = user_error_message(error)
    assert found == message if message is None else message in found


def test_text_that_is_not_utf8_names_its_file(tmp_path):
    path = tmp_path / "table.csv"
    path.write_bytes(b"gene,value\n\xff\xfe,1\n")
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        message = user_error_message(error)
    assert message == f"{path}: not UTF-8 text (byte 0xff at offset 11): save the file as UTF-8"


def test_quiet_and_verbose_go_before_or_after_the_command(tmp_path):
    for flags in (["-q", "simulate"], ["simulate", "--quiet"], ["--verbose", "simulate"], ["simulate", "-v"]):
        out = tmp_path / "-".join(flags).strip("-")
        command = [*flags, "--out", str(out), "--cells", "1", "--genes", "3"]
        assert "wrote 1 cells x 3 genes" in run_cli(*command).stdout
    assert "-q, --quiet" in run_cli("--help").stdout


@pytest.mark.parametrize("verbosity", [-1, 0, 1])
def test_unactionable_messages_are_silenced_unless_verbose(verbosity):
    source = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    source.addHandler(handler)
    level, source.level = source.level, logging.INFO
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with output_level(verbosity):
                warnings.warn("Checkpoint directory /r/checkpoints exists and is not empty.", UserWarning, stacklevel=1)
                warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", DeprecationWarning, stacklevel=1)
                warnings.warn("something the user can act on", UserWarning, stacklevel=1)
                source.warning("a Lightning warning")
                source.info("💡 Tip: For seamless cloud logging, try installing litlogger")
                source.info("`Trainer.fit` stopped: `max_epochs=1` reached.")
    finally:
        source.removeHandler(handler)
        source.setLevel(level)
    shown = [str(w.message) for w in seen]
    logged = [r.getMessage() for r in records]
    if verbosity > 0:
        assert len(shown) == 3 and any("Tip" in m for m in logged) and len(logged) == 3
    elif verbosity == 0:
        assert shown == ["something the user can act on"]
        assert logged == ["a Lightning warning"]  # why a training stopped is in its metrics
    else:
        assert shown == [] and logged == ["a Lightning warning"]


def _readme_errors() -> list[tuple[str, str]]:
    """``$ deepchrome ...`` lines of the README followed by a ``deepchrome: error:`` line."""
    lines = (REPO / "README.md").read_text().splitlines()
    pairs = []
    for command, answer in zip(lines, lines[1:], strict=False):
        if command.startswith("$ deepchrome ") and answer.startswith("deepchrome: error: "):
            pairs.append((command.removeprefix("$ deepchrome ").split("  #")[0].strip(), answer))
    return pairs


def test_the_readme_error_examples_are_the_real_messages(fitted, gan_checkpoint, tmp_path):
    examples = _readme_errors()
    assert len(examples) >= 4
    root = tmp_path / "ROOT"
    shutil.copytree(EXAMPLE / "S01", root / "E003")
    valid = root / "E003" / "classification" / "valid.csv"
    rows = valid.read_text().splitlines(keepends=True)
    rows[1] = rows[1].rstrip("\n").rsplit(",", 1)[0] + "\n"  # line 2: 7 fields
    valid.write_text("".join(rows))
    names = {"ROOT": str(root), "RUN": str(fitted), "GAN.ckpt": str(gan_checkpoint), "OUT": str(tmp_path / "out")}
    for command, answer in examples:
        if "accelerator gpu" in command and torch.cuda.is_available():
            continue
        args = [names.get(arg, arg) for arg in shlex.split(command)]
        if args[0] == "fit" and "--trainer.default_root_dir" not in args:
            args += ["--trainer.default_root_dir", str(tmp_path / "run")]  # never the checkout's runs/
        expected = re.sub(r"\b(ROOT|RUN)\b", lambda m: names[m.group(1)], answer)
        assert assert_refused(run_cli(*args, check=False), "") == expected, command


@pytest.mark.parametrize(
    ("kind", "change", "message"),
    [
        ("gan", {"output": 3}, "output 3 is not one of counts, continuous"),
        ("gan", {"bin_overlap": "x"}, "bin_overlap 'x' is not a number in [0, 1]"),
        ("gan", {"bin_overlap": 5.0}, "bin_overlap 5.0 is not a number in [0, 1]"),
        ("gan", {"width": 0}, "width 0 is not a whole number >= 1"),
        ("gan", {"transform": {"kind": "weird", "mean": None, "std": None}},
         "transform kind 'weird' is not one of raw, log1p, standardize, log1p_standardize"),
        ("classifier", {"transform": {"kind": "weird", "mean": None, "std": None}},
         "transform kind 'weird' is not one of raw, log1p, standardize, log1p_standardize"),
        ("classifier", {"n_marks": 4}, "n_marks is 4 but marks lists 5 (H3K27me3,"),
        ("classifier", {"marks": MARKS[:3]}, "n_marks is 5 but marks lists 3 (H3K27me3, H3K36me3, H3K4me1)"),
        ("classifier", {"transform": {"kind": "standardize", "mean": [0.0] * 5, "std": None}},
         "transform standardize has no per-mark std"),
    ],
)  # fmt: skip
def test_crafted_checkpoint_metadata_is_refused(fitted, gan_checkpoint, tmp_path, kind, change, message):
    import deepchrome

    source = gan_checkpoint if kind == "gan" else fitted / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(source, weights_only=True)
    checkpoint["deepchrome"].update(change)
    path = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, path)
    expected = f"{path}: checkpoint metadata: {message}"
    if kind == "gan":
        command = ["gan", "sample", "--checkpoint", str(path), "--out", str(tmp_path / "out"), "--n", "2"]
    else:
        command = ["predict", "--config", "linear", "--ckpt_path", str(path), "--trainer.default_root_dir",
                   str(tmp_path / "out")]  # fmt: skip
        with pytest.raises(deepchrome.DeepChromeError, match=re.escape(expected)):
            deepchrome.load(path)
    line = assert_refused(run_cli(*command, check=False), expected)
    assert line.endswith("the file is damaged or was not written by deepchrome")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crafted.ckpt"]


@pytest.mark.parametrize(
    "error", ["PytorchStreamWriter failed writing file data/0: file write failed", "basic_ios::clear: iostream error"]
)
def test_torch_write_errors_are_a_full_disk(tmp_path, monkeypatch, error):
    from deepchrome import training

    def full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half")
        raise RuntimeError(error)

    monkeypatch.setattr(training.torch, "save", full)
    run = tmp_path / "run"
    result = run_cli(FIT.split()[0], *FIT.split()[1:], "--trainer.default_root_dir", str(run), *FAST, check=False)
    line = assert_refused(result, f"{run / 'checkpoints'}/")
    assert line.endswith("no space left on the device: free some space or choose another output folder")
    assert not run.exists()


def test_default_output_has_no_bars_off_a_terminal_nor_unactionable_lines(tmp_path):
    # stderr is not a terminal here (as in a log file or CI): no progress bars unless the config asks
    fit = run_cli("fit", "--config", "linear", "--trainer.max_epochs", "1", "--trainer.default_root_dir",
                  str(tmp_path / "run"))  # fmt: skip
    assert "Epoch 0" not in fit.stderr and "it/s" not in fit.stderr
    sweep = run_cli("sweep", "--config", "sweeps/linear", "--n-trials", "0", "--sweep-dir", str(tmp_path / "sweep"),
                    "--storage", f"sqlite:///{tmp_path / 'study.db'}")  # fmt: skip
    assert sweep.stderr == ""  # no optuna ExperimentalWarning nor "A new study created"
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    evaluated = run_cli("test", "--config", "linear", "--ckpt_path", str(last), "--trainer.default_root_dir",
                        str(tmp_path / "elsewhere"))  # fmt: skip
    assert evaluated.stderr == ""  # no "Restoring states from the checkpoint path", no "The dirpath has changed"


def test_predict_writes_beside_the_fit_of_its_checkpoint(fitted, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fitted, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    top = sorted(p.name for p in (REPO / "runs").glob("*"))
    run_cli("predict", "--config", "linear", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), *FAST)
    table = pd.read_csv(run / "predictions.csv")
    assert len(table) > 0 and {"gene_id", "probability"} <= set(table.columns)
    assert {name: (run / name).read_bytes() for name in before} == before  # the fit's own files untouched
    assert sorted(p.name for p in (REPO / "runs").glob("*")) == top  # not the config's runs/linear
    # a folder named on the command line wins
    run_cli("predict", "--config", "linear", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"),
            "--trainer.default_root_dir", str(tmp_path / "elsewhere"), *FAST)  # fmt: skip
    assert (tmp_path / "elsewhere" / "predictions.csv").is_file()
    # an existing predictions.csv is not replaced without --overwrite
    (run / "predictions.csv").write_text("the user's\n")
    predict = ["predict", "--config", "linear", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), *FAST]
    message = (f"{run / 'predictions.csv'} already exists (1 file(s) would be replaced): pass --overwrite to "
               "replace them, or choose another --trainer.default_root_dir")  # fmt: skip
    assert_refused(run_cli(*predict, check=False), message)
    assert (run / "predictions.csv").read_text() == "the user's\n"
    run_cli(*predict, "--overwrite")
    assert len(pd.read_csv(run / "predictions.csv")) == len(table)


def test_explain_into_an_earlier_explain_is_refused_and_overwrite_replaces_only_its_files(fitted, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's\n")
    common = ["explain", "--checkpoint", str(fitted / "checkpoints" / "last.ckpt"), "--root", str(EXAMPLE),
              "--n-steps", "2", "--out", str(out)]  # fmt: skip
    run_cli(*common, "--cells", "S01", "--gene-figures", "2")
    first = sorted(p.name for p in out.iterdir())
    assert "S01_marks.png" in first and sum(name.startswith("gene_") for name in first) == 6
    before = snapshot(out)
    refused = run_cli(*common, "--cells", "S02", "--gene-figures", "0", check=False)
    assert_refused(refused, f"{out} already holds the outputs of an earlier explain (S01_groups.csv, "
                   f"{len(first) - 1} file(s)); pass --overwrite to replace them, or choose another --out")  # fmt: skip
    assert snapshot(out) == before
    run_cli(*common, "--cells", "S02", "--gene-figures", "0", "--overwrite")
    second = sorted(p.name for p in out.iterdir())
    assert "notes.txt" in second and (out / "notes.txt").read_text() == "the user's\n"
    assert not any(name.startswith(("S01_", "gene_")) for name in second)  # nothing left of the first explain
    assert "S02_marks.png" in second and hidden(out) == []


@pytest.mark.parametrize(("signum", "status", "name"), [(15, 143, "SIGTERM"), (2, 130, "SIGINT")])
def test_an_interrupted_sweep_exits_with_the_signal_status(tmp_path, monkeypatch, signum, status, name):
    from deepchrome import runs

    def stopped(*args, **kwargs):
        raise Interrupted(signum, "the checkpoints are kept in X: resume with --ckpt_path last")

    monkeypatch.setattr(runs, "train", stopped)
    result = run_cli("sweep", "--config", "sweeps/linear", "--n-trials", "1", "--sweep-dir", str(tmp_path / "sw"),
                     check=False)  # fmt: skip
    assert result.returncode == status
    assert result.stderr.strip().splitlines() == [
        f"deepchrome: interrupted ({name}); the running trial is marked failed; the same command continues the sweep"
    ]


def test_resuming_past_max_epochs_is_one_line(tmp_path):
    run = tmp_path / "run"
    common = ["fit", "--config", "linear", "--trainer.default_root_dir", str(run), *FAST]
    run_cli(*common, "--trainer.max_epochs", "4")
    before = snapshot(run)
    for epochs in ("1", "4"):  # fewer epochs than trained, and exactly as many (nothing left to train)
        refused = run_cli(*common, "--trainer.max_epochs", epochs, "--ckpt_path", "last", check=False)
        assert_refused(refused, f"last: the checkpoint has trained 4 epoch(s), trainer.max_epochs is {epochs}: pass "
                       "a larger --trainer.max_epochs to train on")  # fmt: skip
        assert snapshot(run) == before
    run_cli(*common, "--trainer.max_epochs", "5", "--ckpt_path", "last")  # one more epoch: resumes


def test_gan_visualize_does_not_replace_files_without_overwrite(fitted, gan_checkpoint, tmp_path):
    out = tmp_path / "figs"
    out.mkdir()
    (out / "profiles.csv").write_text("the user's\n")
    (out / "notes.txt").write_text("also the user's\n")
    command = ["gan", "visualize", "--gan", str(gan_checkpoint), "--classifier", str(fitted / "checkpoints" /
               "last.ckpt"), "--root", str(EXAMPLE), "--cells", "S01", "--samples", "4", "--bootstrap", "2",
               "--permutations", "2", "--out", str(out)]  # fmt: skip
    before = snapshot(out)
    assert_refused(run_cli(*command, check=False), f"{out / 'profiles.csv'} already exists (1 file(s) would be "
                   "replaced): pass --overwrite to replace them, or choose another --out")  # fmt: skip
    assert snapshot(out) == before
    run_cli(*command, "--overwrite")
    assert (out / "profiles.csv").read_text() != "the user's\n" and (out / "visualize.json").is_file()
    assert (out / "notes.txt").read_text() == "also the user's\n"
    assert_refused(run_cli(*command, check=False), "already exists")  # an earlier visualize's files too
