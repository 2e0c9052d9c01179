"""The ``deepchrome`` command.

A thin layer over the library: each command parses its arguments and calls one function. The
training subcommands (``fit``, ``validate``, ``test``, ``predict``) use LightningCLI's parser (all
``--trainer.*``/``--model.*``/``--data.*`` options, ``--print_config``) and run through
:mod:`deepchrome.runs`, like :func:`deepchrome.fit`.

:func:`main` is the one error boundary of every command: user errors (:class:`DeepChromeError`,
bad arguments, unreadable or unwritable paths, a full disk, text that is not UTF-8) print one
line, ``deepchrome: error: ...``, and exit with status 2; anything else is a bug and prints its
traceback, then asks for a report (status 1). ``-q/--quiet`` and ``-v/--verbose`` go before or
after the command.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import sys
import traceback
from pathlib import Path

from deepchrome.errors import DeepChromeError, Interrupted
from deepchrome.messages import output_level

TRAINING_COMMANDS = ("fit", "validate", "test", "predict")
USAGE = """usage: deepchrome [-q | -v] <command> [options]

  -q, --quiet    only results and errors (no progress bars, no Lightning messages or warnings)
  -v, --verbose  everything, including library warnings and deepchrome's debug messages

training (LightningCLI; see `deepchrome fit --help`):
  fit        train a classifier:  deepchrome fit --config configs/deepchrome.yaml
             (a folder holding a finished run is refused: --overwrite, or --ckpt_path last to resume;
             --threads N: torch CPU threads, default the cores shared among local training processes)
  validate   score a checkpoint on the validation split
  test       score a checkpoint on the test split
  predict    write per-gene probabilities (predictions.csv)

  sweep      optuna hyperparameter sweep (SQLite, PostgreSQL or journal storage; many workers)

  experiment cross-cell experiments (train on some cells, test on others), resumable;
             --plan prints the jobs, training samples and estimated time without running

  gan        the histone-signal GAN: gan fit | gan sample | gan visualize

  report     the reproduction report: every table and figure from one command

interpretation:
  explain    captum attributions of a checkpoint, with tables and figures
  compare    paired AUROC difference of two runs on the same genes (DeLong test, interval)

data:
  simulate   write a simulated data set in the release layout
  data check validate a release folder and summarize it
  prepare    bigWig tracks + annotation (+ expression) -> release layout
  download   the public DeepChrome release (Zenodo), verified, extracted and cached
"""


#: Help of ``--threads`` (fit, gan fit, sweep, experiment).
THREADS_HELP = (
    "torch CPU threads of each training (default: the usable cores shared among the training processes "
    "on this machine, one each when there are as many as cores; OMP_NUM_THREADS, if set, is left alone)"
)
#: Flags every command takes, before or after its name.
QUIET_FLAGS = ("-q", "--quiet")
VERBOSE_FLAGS = ("-v", "--verbose")
REPORT = (
    "deepchrome: internal error: the traceback above is a bug in deepchrome, not a problem with your input; "
    "please report it with the command you ran and this output"
)


class _ArgumentParser(argparse.ArgumentParser):
    """argparse with deepchrome's one-line errors (no usage block): ``argument --n: must be >= 1, got 0``,
    and no prefix matching (``--gen`` is not taken for ``--genes``), also in its subcommands' parsers."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._given: list[str] = []

    def parse_known_args(self, args=None, namespace=None):
        self._given = list(sys.argv[1:] if args is None else args)  # for error(): argparse does not pass them
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        if message.startswith("the following arguments are required"):
            # argparse checks required options before unknown ones: a typo (--ou) would read as --out missing
            unknown = self.unknown_options(self._given)
            if unknown:
                message = f"unrecognized arguments: {' '.join(unknown)}"
        raise DeepChromeError(f"{message} (see `{self.prog} --help`)")

    def unknown_options(self, args: list[str]) -> list[str]:
        """The options in ``args`` (``--ou``, ``--ou=x``) that this parser does not define.

        Parameters
        ----------
        args
            The command line this parser was given.

        Returns
        -------
        list of str
            The unknown option words as given, in order; ``[]`` for a parser with subcommands
            (their options are not this parser's to judge).
        """
        if any(isinstance(action, argparse._SubParsersAction) for action in self._actions):
            return []
        return [
            arg
            for arg in args
            if arg.startswith("-")
            and arg not in ("-", "--")
            and not self._negative_number_matcher.match(arg)
            and arg.split("=", 1)[0] not in self._option_string_actions
        ]


def _whole(least: int):
    """An argparse type: a whole number >= ``least``."""

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be >= {least}, got {value}")
        return value

    whole.__name__ = f"whole number >= {least}"
    return whole


def _positive(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _check_out(path: str | os.PathLike | None, option: str = "--out") -> None:
    """Refuse an output folder that is a file (or under one) before any work."""
    if path is not None:
        from deepchrome.files import check_out_folder

        check_out_folder(path, option)


def _expand_configs(argv: list[str]) -> list[str]:
    """Replace each ``--config NAME|FILE`` by the loaded config (packaged names found, the file's input
    paths made absolute relative to it), passed to the parser as YAML text."""
    import yaml

    from deepchrome.config import load_config

    expanded, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config" and i + 1 < len(argv):
            expanded += ["--config", yaml.safe_dump(load_config(argv[i + 1]), sort_keys=False)]
            i += 2
            continue
        if arg.startswith("--config="):
            arg = "--config=" + yaml.safe_dump(load_config(arg.split("=", 1)[1]), sort_keys=False)
        expanded.append(arg)
        i += 1
    return expanded


def _parse_training_command(argv: list[str], gan: bool) -> tuple[str, dict, str | None, dict]:
    """Parse ``fit|validate|test|predict [options]`` with LightningCLI's parser, instantiating nothing.

    Returns the subcommand, the training config (dict), ``--ckpt_path`` and the command's own
    options (``overwrite``).
    """
    from jsonargparse import ArgumentError
    from lightning.pytorch.cli import LightningCLI

    from deepchrome import runs
    from deepchrome.data import HistoneDataModule
    from deepchrome.runs import config_error, model_class

    class ConfigParser(LightningCLI):
        # LightningCLI as a parser only: the run itself goes through deepchrome.runs.
        def init_parser(self, **kwargs):
            # no prefix matching: --trainer.max_epoch is a typo, not --trainer.max_epochs
            return super().init_parser(**{**kwargs, "allow_abbrev": False})

        def _parse_ckpt_path(self) -> None:
            pass  # a checkpoint's contents never edit the config (it is untrusted input)

        def _set_seed(self) -> None:
            pass  # seeded when the run instantiates its classes

        def instantiate_classes(self) -> None:
            pass

        def _run_subcommand(self, subcommand: str) -> None:
            pass

        def _prepare_subcommand_parser(self, klass, subcommand: str, **kwargs):
            parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
            if subcommand == "fit":
                parser.add_argument(
                    "--overwrite", action="store_true",
                    help="replace the finished run in --trainer.default_root_dir (its checkpoints, metrics, "
                    "config.yaml and test_predictions.csv); without it such a folder is refused",
                )  # fmt: skip
                parser.add_argument("--threads", type=int | None, default=None, help=THREADS_HELP)
            if subcommand == "predict":
                parser.add_argument("--overwrite", action="store_true",
                                    help="replace an existing predictions.csv (else refused)")  # fmt: skip
            return parser

    from deepchrome.config import restricted_imports

    try:
        with restricted_imports():
            parsed = ConfigParser(
                model_class(gan), HistoneDataModule, seed_everything_default=0, auto_configure_optimizers=False,
                save_config_callback=None, args=_expand_configs(argv),
                parser_kwargs={"prog": "deepchrome gan" if gan else "deepchrome", "exit_on_error": False},
            )  # fmt: skip
    except ArgumentError as exc:
        raise DeepChromeError(config_error(exc)) from None
    subcommand = parsed.subcommand
    config = parsed.config[subcommand].as_dict()
    ckpt_path = config.pop("ckpt_path", None)
    options = {"overwrite": bool(config.get("overwrite")), "threads": config.get("threads")}
    for key in runs.NOT_CONFIG:  # the subcommand's own options (weights_only is always True)
        config.pop(key, None)
    return subcommand, config, ckpt_path, options


def _run_training_command(argv: list[str], gan: bool = False, verbosity: int = 0) -> None:
    from deepchrome import runs

    subcommand, config, ckpt_path, options = _parse_training_command(argv, gan)
    trainer = config.setdefault("trainer", {}) or {}
    config["trainer"] = trainer
    if verbosity < 0:
        trainer.update(enable_progress_bar=False, enable_model_summary=False)
    elif trainer.get("enable_progress_bar") is None and not sys.stderr.isatty():
        trainer["enable_progress_bar"] = False  # bars redrawn into a log file are noise; a config may still ask
    if verbosity == 0 and not any(arg.split("=")[0] == "--trainer.enable_model_summary" for arg in argv):
        # the 15-line layer table is for -v (or asked for by name); the run's own line gives the parameters
        trainer["enable_model_summary"] = False
    if subcommand != "fit":
        # a checkpoint of a run folder: predictions.csv goes beside that run, unless the command names a folder
        named = any(arg.split("=")[0] == "--trainer.default_root_dir" for arg in argv)
        run_dir = None if named else runs.checkpoint_run_dir(ckpt_path)
        results = runs.evaluate(config, subcommand, ckpt_path, run_dir=run_dir, gan=gan, overwrite=options["overwrite"])
        if subcommand != "predict" and results:
            shown = {k: round(float(v), 4) for k, v in results[0].items()}
            print(f"{subcommand} ({ckpt_path}): {shown}")
        return
    run = runs.train(config, ckpt_path=ckpt_path, gan=gan, overwrite=options["overwrite"], threads=options["threads"])
    summary = run.metrics
    if gan:
        quality = {k: round(v, 3) for k, v in summary["test_quality"].items() if "/" not in k}
        print(f"HistoneGAN best epoch {summary['best_epoch']}, test split: {quality}")
        print(f"targets met: {summary['targets_met_on_test']}")
    else:
        shown = {k: summary[k] for k in ("val_auroc", "test_auroc", "test_auprc", "best_epoch")}
        print(f"{summary['model']} ({summary['n_parameters']:,} parameters): {shown}")
    print(f"metrics: {summary['metrics_path']}")


def _simulate(argv: list[str]) -> None:
    from deepchrome.data.simulate import simulate_release

    parser = _ArgumentParser(prog="deepchrome simulate", description="Write a simulated data set.")
    parser.add_argument("--out", required=True, help="output folder (release layout)")
    parser.add_argument("--cells", type=_whole(1), default=4, help="number of cells (default 4)")
    parser.add_argument("--genes", type=_whole(3), default=600, help="genes per cell, split in thirds (default 600)")
    parser.add_argument("--seed", type=_whole(0), default=0)
    parser.add_argument("--groups", type=_whole(1), default=2, help="groups of correlated cells (default 2)")
    parser.add_argument(
        "--rule-shift",
        type=float,
        default=0.0,
        help="how much odd groups' histone-expression rules differ (0 = same rules)",
    )
    parser.add_argument(
        "--rules",
        choices=("fixed", "random"),
        default="fixed",
        help="fixed: the documented rule (default); random: the seed draws a rule from a family (see README)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing data files of the same cells (else refused)"
    )
    args = parser.parse_args(argv)
    truth = simulate_release(
        args.out,
        n_cells=args.cells,
        n_genes=args.genes,
        seed=args.seed,
        n_groups=args.groups,
        rule_shift=args.rule_shift,
        rules=args.rules,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {args.cells} cells x {args.genes} genes to {args.out} "
        f"(ground truth: {Path(args.out) / 'ground_truth.json'})"
    )
    print("planted rules: " + "; ".join(truth["rules"]))


def _data(argv: list[str]) -> None:
    from deepchrome.data.check import check_release

    parser = _ArgumentParser(prog="deepchrome data", description="Data utilities.")
    sub = parser.add_subparsers(dest="action", required=True)
    check = sub.add_parser("check", help="validate a release folder and print a per-cell summary")
    check.add_argument("root", help="release root: <cell>/classification/{train,valid,test}.csv")
    check.add_argument("--cells", nargs="*", help="only these cells")
    check.add_argument("--no-cache", action="store_true", help="parse the CSVs, ignoring caches")
    args = parser.parse_args(argv)
    table = check_release(args.root, cells=args.cells, use_cache=not args.no_cache)
    print(table.to_string(index=False))


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _prepare(argv: list[str]) -> None:
    from deepchrome.data.bigwig import ORIENTATIONS, STATS, prepare

    parser = _ArgumentParser(
        prog="deepchrome prepare",
        description="bigWig tracks + gene annotation (+ expression) -> release layout and cache.",
    )
    parser.add_argument(
        "--bigwig",
        action="append",
        type=_key_value,
        required=True,
        metavar="MARK=FILE",
        help="one per mark, e.g. --bigwig H3K4me3=k4me3.bw (order = mark order)",
    )
    parser.add_argument("--annotation", required=True, help="GTF, GFF3, BED6 or TSV (chrom, tss, strand, gene_id)")
    parser.add_argument("--expression", help="gene_id,value table: labels = above the table's median")
    parser.add_argument("--no-labels", action="store_true", help="write label 0 for every gene (no expression)")
    parser.add_argument("--cell", required=True, help="cell name, the output folder under --out")
    parser.add_argument("--out", required=True, help="release root to write into")
    parser.add_argument("--window", type=int, default=5000, help="bp on each side of the TSS (default 5000)")
    parser.add_argument("--bin-size", type=int, default=100, help="bp per bin (default 100)")
    parser.add_argument("--stat", choices=STATS, default="mean", help="bin statistic (default: mean of covered bases)")
    parser.add_argument(
        "--orientation",
        choices=ORIENTATIONS,
        default="transcript",
        help="transcript: minus-strand windows reversed (default); genomic: as the public release",
    )
    parser.add_argument("--split", choices=("random", "chromosome", "lists"), default="random")
    parser.add_argument("--seed", type=int, help="seed of the random split (default 0), with --split random")
    parser.add_argument("--valid-chroms", help="comma list, with --split chromosome")
    parser.add_argument("--test-chroms", help="comma list, with --split chromosome")
    parser.add_argument(
        "--split-list",
        action="append",
        type=_key_value,
        metavar="SPLIT=FILE",
        help="gene ids per split, with --split lists",
    )
    parser.add_argument("--chrom-sizes", help="chrom.sizes of the expected assembly (checked against the bigWigs)")
    parser.add_argument("--workers", type=int, help="parallel processes (default: one per mark, up to the cores)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing data files of the same cells (else refused)"
    )
    args = parser.parse_args(argv)
    for option, value, mode in (("--seed", args.seed, "random"), ("--valid-chroms", args.valid_chroms, "chromosome"),
                                ("--test-chroms", args.test_chroms, "chromosome"),
                                ("--split-list", args.split_list, "lists")):  # fmt: skip
        if value is not None and args.split != mode:
            raise DeepChromeError(
                f"{option} is for --split {mode}; --split {args.split} would ignore it: drop {option} or use "
                f"--split {mode}"
            )
    tracks = dict(args.bigwig)
    if len(tracks) != len(args.bigwig):
        raise DeepChromeError("a mark is given twice in --bigwig")
    report = prepare(
        tracks, args.annotation, args.out, args.cell,
        expression=args.expression, window=args.window, bin_size=args.bin_size, stat=args.stat,
        orientation=args.orientation, split=args.split, seed=args.seed or 0,
        valid_chroms=[c for c in (args.valid_chroms or "").split(",") if c],
        test_chroms=[c for c in (args.test_chroms or "").split(",") if c],
        split_lists=dict(args.split_list or []), chrom_sizes=args.chrom_sizes,
        labels=not args.no_labels, workers=args.workers, overwrite=args.overwrite,
    )  # fmt: skip
    print(
        f"{args.cell}: {report['kept_genes']} genes written to {Path(args.out) / args.cell} "
        f"(train/valid/test {report['train_genes']}/{report['valid_genes']}/{report['test_genes']}); "
        f"{report['dropped_genes']} dropped {report['dropped_by_reason'] or ''} "
        f"(listed in dropped_genes.tsv); {report['uncovered_bins_set_to_0']} uncovered bins set to 0"
    )


def _download(argv: list[str], verbosity: int = 0) -> None:
    from deepchrome.download import RELEASE_FILE, ZENODO_RECORD_URL, download_release

    parser = _ArgumentParser(
        prog="deepchrome download",
        description="Download the DeepChrome/AttentiveChrome release (Zenodo 2652278), verify, extract, cache.",
    )
    parser.add_argument("--out", required=True, help="release root to create (cells go to OUT/<cell>/)")
    parser.add_argument("--cells", nargs="*", help="only these cells (default: all 56)")
    parser.add_argument("--record-url", default=ZENODO_RECORD_URL, help="record metadata URL (a mirror of it)")
    parser.add_argument("--file", default=RELEASE_FILE, help="file of the record to fetch")
    parser.add_argument("--url", help="direct archive URL (offline mirror); needs --checksum")
    parser.add_argument("--checksum", help="md5:<hex> or sha256:<hex>, with --url")
    parser.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive in OUT")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace split files in OUT that differ from the release (else refused)",
    )
    args = parser.parse_args(argv)
    result = download_release(
        args.out, cells=args.cells, record_url=args.record_url, file_name=args.file, url=args.url,
        checksum=args.checksum, keep_archive=args.keep_archive, progress=not args.no_progress and verbosity >= 0,
        overwrite=args.overwrite,
    )  # fmt: skip
    print(f"{len(result['cells'])} cells in {args.out}: {', '.join(result['cells'])}")


def _explain(argv: list[str]) -> None:
    from deepchrome.interpret.attributions import BASELINES, METHODS

    parser = _ArgumentParser(
        prog="deepchrome explain", description="captum attributions of a trained classifier, with figures."
    )
    parser.add_argument("--checkpoint", required=True, help="a classifier checkpoint (deepchrome fit)")
    parser.add_argument("--root", required=True, help="release root of the data to explain")
    parser.add_argument("--cells", nargs="+", required=True)
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--method", default="integrated_gradients", help=f"one of {', '.join(METHODS)}")
    parser.add_argument("--baseline", default="zeros", help=f"one of {', '.join(BASELINES)}")
    parser.add_argument("--n-steps", type=_whole(1), default=50, help="IntegratedGradients steps (default 50)")
    parser.add_argument("--noise-tunnel", action="store_true", help="wrap the method in NoiseTunnel (SmoothGrad)")
    parser.add_argument("--genes", nargs="*", help="only these gene ids (each also gets a figure)")
    parser.add_argument("--linear-checkpoint", help="a LinearBaseline checkpoint whose weights go beside the bars")
    parser.add_argument(
        "--gene-figures", type=_whole(0), default=3, help="per-gene figures of the most confident genes"
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier explain's outputs in --out (else refused); other files stay",
    )
    args = parser.parse_args(argv)
    _check_out(args.out)
    from deepchrome.interpret.explain import explain

    summary = explain(
        args.checkpoint, args.root, args.cells, args.out, split=args.split, method=args.method,
        baseline=args.baseline, n_steps=args.n_steps, noise_tunnel=args.noise_tunnel, genes=args.genes,
        linear_checkpoint=args.linear_checkpoint, gene_figures=args.gene_figures, overwrite=args.overwrite,
    )  # fmt: skip
    print(
        f"{summary['genes']} genes explained ({args.method}); marks by importance: {', '.join(summary['ranked_marks'])}"
    )
    print(f"outputs: {args.out}")


STORAGE_HELP = (
    "optuna storage URL shared by the workers. sqlite:///FILE: workers on one machine (or a local disk); "
    "postgresql://user:pass@host/db: workers on many machines; journal:///FILE: a log file on a shared disk, "
    "for file systems with working file locks. All three record heartbeats: a worker that stops sending them "
    "(killed, machine lost) has its trial failed after the grace period and retried by another worker "
    "(journal heartbeats compare the machines' clocks: keep them in time)"
)


def _sweep(argv: list[str]) -> None:
    parser = _ArgumentParser(
        prog="deepchrome sweep", description="optuna sweep over a training config, on a shareable study."
    )
    parser.add_argument("--config", required=True, help="sweep config (configs/sweeps/*.yaml)")
    parser.add_argument("--n-trials", type=_whole(0), help="trials for this worker (0: only write the outputs)")
    parser.add_argument("--timeout", type=_positive, help="stop starting trials after this many seconds")
    parser.add_argument(
        "--complete-trials", type=_whole(1), help="all workers stop once the study has N complete trials"
    )
    parser.add_argument("--storage", help=f"{STORAGE_HELP} (default: SQLite in the sweep folder)")
    parser.add_argument("--study-name", help="override the config's study_name")
    parser.add_argument("--sweep-dir", help="output folder (default runs/sweeps/<study_name>)")
    parser.add_argument("--threads", type=_whole(1), help=THREADS_HELP)
    args = parser.parse_args(argv)
    _check_out(args.sweep_dir, "--sweep-dir")
    from deepchrome.sweep import run_sweep

    summary = run_sweep(args.config, n_trials=args.n_trials, timeout=args.timeout, storage=args.storage,
                        sweep_dir=args.sweep_dir, study_name=args.study_name,
                        complete_trials=args.complete_trials, threads=args.threads)  # fmt: skip
    states = ", ".join(f"{v} {k.lower()}" for k, v in summary["trials"].items() if v)
    print(f"study {summary['study_name']}: {states or 'no trials'}; {summary['duplicates']} duplicate parameter sets")
    if "best_value" in summary:
        print(f"best trial {summary['best_trial']}: {summary['best_value']:.4f} {summary['best_params']}")
        print(f"best config: {summary['best_config']} (deepchrome fit --config {summary['best_config']})")


def _experiment(argv: list[str]) -> None:
    parser = _ArgumentParser(prog="deepchrome experiment", description="Cross-cell experiments.")
    parser.add_argument("--config", required=True, help="experiment config (configs/experiments/*.yaml)")
    parser.add_argument("--out", help="output folder (default runs/experiments/<study_name>)")
    parser.add_argument("--storage", help=f"{STORAGE_HELP} (default: SQLite in --out)")
    parser.add_argument("--n-jobs", type=_whole(0), help="jobs for this worker (0: only write results)")
    parser.add_argument("--status", action="store_true",
                        help="print the job table (state, attempts, last error per job) and exit")  # fmt: skip
    parser.add_argument("--threads", type=_whole(1), help=THREADS_HELP)
    parser.add_argument("--plan", action="store_true",
                        help="print the jobs, training genes x expected epochs per family and the estimated time "
                        "(from a few training steps timed here), then exit")  # fmt: skip
    parser.add_argument("--plan-epochs", type=_whole(1),
                        help="with --plan: expected epochs of every job (default: max_epochs, or an early-stopping "
                        "estimate that the plan states)")  # fmt: skip
    parser.add_argument("--engine", choices=("stacked", "sequential"),
                        help="stacked: many jobs at once; sequential: one by one (default: the config's)")  # fmt: skip
    args = parser.parse_args(argv)
    _check_out(args.out)
    from deepchrome.experiments.run import experiment_status, run_experiment

    if args.plan:
        from deepchrome.experiments.plan import plan_experiment

        print(plan_experiment(args.config, epochs=args.plan_epochs, threads=args.threads).text())
        return

    if args.status:
        from deepchrome.experiments.summary import markdown_table

        table = experiment_status(args.config, out=args.out, storage=args.storage)
        shown = table[["job", "state", "attempts", "model", "train_cells", "train_fraction", "test_cells", "error"]]
        print(markdown_table(shown.assign(error=shown.error.fillna("").str.slice(0, 100))))
        counts = table.state.value_counts()
        print(f"{len(table)} jobs: " + ", ".join(f"{counts.get(s, 0)} {s.lower()}" for s in
                                                 ("DONE", "RUNNING", "PENDING", "FAILED")))  # fmt: skip
        return
    summary = run_experiment(args.config, out=args.out, storage=args.storage, n_jobs=args.n_jobs,
                             threads=args.threads, engine=args.engine)  # fmt: skip
    print(f"{summary['finished']}/{summary['jobs']} jobs finished, {summary['skipped']} combinations skipped")
    if summary["failed"]:
        print(f"{summary['failed']} jobs failed on every attempt: see {summary['out']}/summary.md or --status")
    print(summary["sentence"])
    print(f"results: {summary['out']}/results.csv, summary: {summary['out']}/summary.md")


def _gan(argv: list[str], verbosity: int = 0) -> None:
    if argv and argv[0] in ("fit", "validate"):
        _run_training_command(argv, gan=True, verbosity=verbosity)
        return
    parser = _ArgumentParser(prog="deepchrome gan", description="The histone-signal GAN.")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("fit", help="train: deepchrome gan fit --config configs/gan.yaml (LightningCLI)")
    sample = sub.add_parser("sample", help="write generated genes in the release layout")
    sample.add_argument("--checkpoint", required=True)
    sample.add_argument("--n", type=_whole(1), default=300, help="genes per class (default 300)")
    sample.add_argument("--out", required=True, help="release root to write into")
    sample.add_argument("--cell", default="GAN", help="cell name of the generated data (default GAN)")
    sample.add_argument("--seed", type=_whole(0), default=0)
    sample.add_argument(
        "--overwrite", action="store_true", help="replace existing data files of the same cells (else refused)"
    )
    visualize = sub.add_parser("visualize", help="profiles, prototypes and the combinatorial map")
    visualize.add_argument("--gan", required=True, help="GAN checkpoint")
    visualize.add_argument("--classifier", required=True, help="classifier checkpoint (deepchrome fit)")
    visualize.add_argument("--root", required=True, help="real data (release root) for the real profiles")
    visualize.add_argument("--cells", nargs="+", required=True)
    visualize.add_argument("--out", required=True)
    visualize.add_argument("--samples", type=_whole(1), default=512, help="GAN genes per grid cell (default 512)")
    visualize.add_argument("--bootstrap", type=_whole(1), default=50, help="resamples for the interaction uncertainty")
    visualize.add_argument("--permutations", type=_whole(1), default=200,
                           help="sign-flip permutations for the interactions' null (default 200)")  # fmt: skip
    visualize.add_argument("--seed", type=_whole(0), default=0)
    visualize.add_argument("--overwrite", action="store_true", help="replace an earlier visualize's files in --out")
    args = parser.parse_args(argv)
    if args.action == "sample":
        from deepchrome.gan.visualize import sample_release

        path = sample_release(args.checkpoint, args.out, args.cell, args.n, args.seed, overwrite=args.overwrite)
        print(f"wrote {2 * args.n} generated genes ({args.n} per class) to {path}")
    elif args.action == "visualize":
        from deepchrome.gan.visualize import visualize

        summary = visualize(args.gan, args.classifier, args.root, args.cells, args.out, samples=args.samples,
                            bootstrap=args.bootstrap, seed=args.seed, permutations=args.permutations,
                            overwrite=args.overwrite)  # fmt: skip
        top = summary["interactions"][0]
        print(f"strongest interaction: {top['mark_a']} x {top['mark_b']} {top['interaction']:.3f} log-odds "
              f"(95% CI {top['ci_low']:.3f}-{top['ci_high']:.3f}; null q95 {top['null_q95']:.3f})")  # fmt: skip
        print(f"figures: {args.out}")


def _compare(argv: list[str]) -> None:
    import json

    parser = _ArgumentParser(
        prog="deepchrome compare",
        description="Paired AUROC difference of two runs scored on the same test genes (DeLong).",
    )
    parser.add_argument("run_a", help="run folder (holding test_predictions.csv) or a predictions CSV")
    parser.add_argument("run_b", help="run folder or predictions CSV, scored on the same genes")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    from deepchrome.stats import compare_runs

    result = compare_runs(args.run_a, args.run_b, level=args.level)
    if args.json:
        print(json.dumps(result.to_dict()))
        return
    print(
        f"AUROC a {result.auroc_a:.4f}, b {result.auroc_b:.4f}; difference a - b {result.difference:+.4f} "
        f"({args.level:.0%} CI {result.ci_low:+.4f} to {result.ci_high:+.4f}), DeLong p = {result.p_value:.3g}, "
        f"{result.n_genes} shared genes"
    )


def _report(argv: list[str]) -> None:
    from deepchrome.report import MODELS

    parser = _ArgumentParser(prog="deepchrome report", description="The reproduction report (cached steps).")
    parser.add_argument("--out", default="docs/report", help="report folder (README.md + figures)")
    parser.add_argument("--root", help="real data (default ../shared/data/roadmap)")
    parser.add_argument("--cells", nargs="*", help="real cells (default E003 E123)")
    parser.add_argument("--seeds", type=_whole(1), default=5)
    parser.add_argument("--work", default="runs/report", help="cache of trained runs")
    parser.add_argument("--models", nargs="*", help=f"subset of: {'; '.join(MODELS)}")
    parser.add_argument("--gan-minutes", type=_whole(1), default=4, help="training time of each cell's GAN (default 4)")
    parser.add_argument("--fast", action="store_true", help="tiny settings, for testing the pipeline")
    args = parser.parse_args(argv)
    _check_out(args.out)
    _check_out(args.work, "--work")
    if args.root is not None:
        from deepchrome.data.release import list_cells

        list_cells(args.root)  # a missing root, before the report's progress bar starts
    from deepchrome.report import run_report

    path = run_report(args.out, root=args.root, cells=args.cells, seeds=args.seeds, work=args.work, fast=args.fast,
                      models=args.models, gan_minutes=args.gan_minutes)  # fmt: skip
    print(f"report: {path}")


def _user_error_in_chain(error: BaseException) -> DeepChromeError | None:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, DeepChromeError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


#: What to do about an OSError on a path the user chose, by errno.
_OS_ADVICE = {
    errno.EACCES: "permission denied: check its permissions or choose another path",
    errno.EPERM: "operation not permitted: check its permissions or choose another path",
    errno.ENOSPC: "no space left on the device: free some space or choose another output folder",
    errno.EDQUOT: "disk quota exceeded: free some space or choose another output folder",
    errno.EROFS: "read-only file system: choose another output folder",
    errno.EISDIR: "is a folder, expected a file: give a file's path",
    errno.ENOTDIR: "part of this path is a file, not a folder: choose another path",
    errno.ENOENT: "no such file or folder: check the path",
    errno.EEXIST: "already exists and is not a folder: move it away or choose another path",
    errno.ENAMETOOLONG: "file name too long: choose a shorter path",
    errno.ELOOP: "too many levels of symbolic links: check the path",
}
_NUMBER_ERRORS = re.compile(r"could not convert string to (float|int)|invalid literal for int\(\)")
#: How numpy and torch report an allocation that does not fit in memory.
_MEMORY_ERRORS = re.compile(r"not enough memory|DefaultCPUAllocator: can't allocate memory|Unable to allocate|"
                            r"CUDA out of memory|out of memory", re.IGNORECASE)  # fmt: skip


def user_error_message(error: BaseException) -> str | None:
    """The one-line message for an error caused by the user's input or environment, else ``None`` (a bug).

    User errors: :class:`DeepChromeError` anywhere in the exception chain; an ``OSError`` of
    permissions, a full disk, a read-only file system, a folder where a file belongs (and the
    reverse) or a missing path, naming the path; text that is not UTF-8; a number that does not parse.
    """
    found = _user_error_in_chain(error)
    if found is not None:
        return str(found)
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _OS_ADVICE:
            where = f"{error.filename}: " if error.filename is not None else ""
            return f"{where}{_OS_ADVICE[error.errno]}"
        if isinstance(error, UnicodeDecodeError):
            where = _file_in_traceback(error)
            return (
                f"{where + ': ' if where else ''}not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
                f"{error.start}): save the file as UTF-8"
            )
        if isinstance(error, ValueError) and _NUMBER_ERRORS.search(str(error)):
            return f"a value is not a number ({str(error).splitlines()[0][:200]}): check the input"
        if isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and _MEMORY_ERRORS.search(str(error))):
            asked = re.search(r"(\d+(?:\.\d+)?\s*[KMGTP]i?B)", str(error))
            size = f" ({asked.group(1)} asked)" if asked else ""
            return (
                f"out of memory{size}: ask for less (fewer --genes, --n or --samples, a smaller --window or "
                "batch size) or use a machine with more memory"
            )
        error = error.__cause__ or error.__context__
    return None


def _file_in_traceback(error: BaseException) -> str | None:
    """The file a decoding error was reading, from the locals of the frames that raised it (innermost first)."""
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for name in ("path", "filename", "file", "filepath_or_buffer", "source"):
            value = frame.f_locals.get(name)
            if isinstance(value, str | os.PathLike) and os.path.isfile(value):
                return os.fspath(value)
    return None


def _exit_with(message: str) -> None:
    print(f"deepchrome: error: {message}", file=sys.stderr)
    sys.exit(2)


def split_global_flags(argv: list[str]) -> tuple[list[str], int]:
    """Remove ``-q/--quiet`` and ``-v/--verbose`` wherever they are; the verbosity: -1, 0 or 1.

    Raises
    ------
    DeepChromeError
        If both are given.
    """
    quiet = any(arg in QUIET_FLAGS for arg in argv)
    verbose = any(arg in VERBOSE_FLAGS for arg in argv)
    if quiet and verbose:
        raise DeepChromeError("--quiet and --verbose together: choose one")
    rest = [arg for arg in argv if arg not in QUIET_FLAGS + VERBOSE_FLAGS]
    return rest, (-1 if quiet else 1 if verbose else 0)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``deepchrome`` console script: runs one command inside the error boundary.

    Exit status: 0 on success, 2 for a user error (one line ``deepchrome: error: ...``), 1 for a bug
    (its traceback, then a line asking to report it), 130 when interrupted by Ctrl-C (SIGINT), 143
    by SIGTERM (one line saying what the run left and how to resume it).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    logger = logging.getLogger("deepchrome")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("deepchrome: %(message)s"))
        logger.addHandler(handler)
    commands = {
        "simulate": _simulate,
        "data": _data,
        "prepare": _prepare,
        "explain": _explain,
        "sweep": _sweep,
        "experiment": _experiment,
        "report": _report,
        "compare": _compare,
    }
    try:
        argv, verbosity = split_global_flags(argv)
        if not argv or argv[0] in ("-h", "--help"):
            print(USAGE)
            return
        with output_level(verbosity):
            if argv[0] in TRAINING_COMMANDS:
                _run_training_command(argv, verbosity=verbosity)
            elif argv[0] == "gan":
                _gan(argv[1:], verbosity)
            elif argv[0] == "download":
                _download(argv[1:], verbosity)
            elif argv[0] in commands:
                commands[argv[0]](argv[1:])
            else:
                raise DeepChromeError(f"unknown command {argv[0]!r}; run `deepchrome --help`")
    except Interrupted as stop:  # a run stopped by Ctrl-C or SIGTERM, saying what it left
        print(f"deepchrome: {stop}", file=sys.stderr)
        sys.exit(128 + stop.signal)
    except KeyboardInterrupt:
        print("deepchrome: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:
        message = user_error_message(error)
        if message is None:
            traceback.print_exc()
            print(REPORT, file=sys.stderr)
            sys.exit(1)
        _exit_with(message)


if __name__ == "__main__":
    main()
