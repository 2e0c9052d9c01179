"""The report's step cache: each step is reused only while its fingerprint (code, config, data) is unchanged.

A step (one classifier fit, the simulated data, the cross-cell experiment, one GAN) lives in its own
folder under the report's work folder, with a ``step.json`` written when, and only when, it finished:

* ``key``: the SHA-256 of the step's fingerprint, a JSON object of

  - **code**: the package version, the git commit of the checkout when there is one, and the
    SHA-256 of every source and packaged config file of ``deepchrome`` and ``gan`` (so an
    uncommitted edit or an installed copy without git counts too);
  - **config**: what the step was asked to do (the full training config, the experiment config,
    the GAN's settings; input paths replaced by the data's fingerprint);
  - **data**: the SHA-256 of every data file the step reads (file contents, not dates);

* ``seconds``: how long computing the step took, measured by the run that computed it;
* ``run``: the id of that run, ``cpu_count`` and ``finished`` (UTC).

A folder whose ``step.json`` is missing (an interrupted step, a folder of an older version) or holds
another key is deleted and the step computed again; the report's runtime is the sum of the
``seconds`` of the steps behind its numbers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepchrome import files

#: The file a finished step's folder holds its key and measured time in.
STEP_FILE = "step.json"
#: The packages whose source files enter the code fingerprint.
PACKAGES = ("deepchrome",)
#: Identifies this process's report run in the ``run`` field of the steps it computes.
RUN_ID = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def digest(value) -> str:
    """SHA-256 (hex) of a JSON-able value in canonical form (sorted keys; paths and numbers as text)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _git_commit(folder: Path) -> str | None:
    """The commit checked out at ``folder``, or ``None`` outside a git checkout (or without git)."""
    try:
        done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


@functools.cache
def code_fingerprint() -> dict:
    """``version``, ``commit`` (``None`` without git) and ``source`` (SHA-256 of the packages' files).

    ``source`` hashes the relative path and bytes of every ``.py`` and ``.yaml`` file of the
    :data:`PACKAGES`, in sorted order; computed once per process.
    """
    import deepchrome

    top = Path(deepchrome.__file__).resolve().parents[1]
    hasher = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((top / package).rglob("*")):
            if path.suffix in (".py", ".yaml") and path.is_file() and "__pycache__" not in path.parts:
                hasher.update(str(path.relative_to(top)).encode() + b"\0" + path.read_bytes() + b"\0")
    return {"version": deepchrome.__version__, "commit": _git_commit(top), "source": hasher.hexdigest()}


@functools.lru_cache(maxsize=4096)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime only key this in-process memo (one hash per file per run); the digest is of the bytes
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def data_fingerprint(root: str | os.PathLike, cells: list[str], extra: list[str | os.PathLike] = ()) -> str:
    """SHA-256 of the release files of ``cells`` under ``root`` (train, valid, test) and of ``extra`` files.

    Each file enters with its path relative to ``root`` (or its name, for ``extra`` files elsewhere)
    and the SHA-256 of its contents; a missing file enters as missing.
    """
    root = Path(root)
    paths = [root / cell / "classification" / f"{split}.csv" for cell in cells for split in ("train", "valid", "test")]
    entries = []
    for path in [*paths, *map(Path, extra)]:
        name = str(path.relative_to(root)) if path.is_relative_to(root) else path.name
        if path.is_file():
            stat = path.stat()
            entries.append((name, _file_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)))
        else:
            entries.append((name, None))
    return digest(entries)


@dataclass(frozen=True)
class Step:
    """One step of the report: what it produced and how long computing it took.

    Attributes
    ----------
    name
        What the step is (e.g. ``fit linear (max) E003 seed 0``).
    value
        What ``compute`` (or ``load``, when reused) returned.
    seconds
        Time computing the step took, measured by the run that computed it.
    reused
        Whether this run took the step from the cache (computed by an earlier run).
    key
        The step's fingerprint digest (``None`` for a step that is never cached).
    """

    name: str
    value: Any
    seconds: float
    reused: bool
    key: str | None = None


def cached_step(name: str, folder: Path, fingerprint: dict, compute: Callable[[Path], Any],
                load: Callable[[Path], Any]) -> Step:  # fmt: skip
    """Reuse the step in ``folder`` when its key equals this fingerprint's, else compute it afresh.

    Parameters
    ----------
    name
        What the step is, for the report.
    folder
        The step's own folder; deleted and recreated when the step is (re)computed.
    fingerprint
        The step's config and data (JSON-able); :func:`code_fingerprint` is added here.
    compute
        ``compute(folder)`` runs the step, writing into ``folder``, and returns its value.
    load
        ``load(folder)`` returns the value of a finished step from its folder.

    Returns
    -------
    Step
        Its value, the seconds it took when computed, and whether it was reused.
    """
    folder = Path(folder)
    key = digest({"code": code_fingerprint(), **fingerprint})
    record_path = folder / STEP_FILE
    if record_path.is_file():
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            record = {}
        if record.get("key") == key and isinstance(record.get("seconds"), int | float):
            return Step(name, load(folder), float(record["seconds"]), True, key)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    value = compute(folder)
    seconds = time.perf_counter() - start
    files.write_json(record_path, {"key": key, "name": name, "seconds": seconds, "run": RUN_ID,
                                   "cpu_count": os.cpu_count(),
                                   "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})  # fmt: skip
    return Step(name, value, seconds, False, key)


def timed_step(name: str, compute: Callable[[], Any]) -> Step:
    """A step that is computed by every run (never cached): its value and measured seconds."""
    start = time.perf_counter()
    value = compute()
    return Step(name, value, time.perf_counter() - start, False)


def runtime_sentence(steps: list[Step], wall_seconds: float) -> str:
    """The report's runtime line, from the measured steps behind its numbers.

    When this run computed every step, the runtime is this run's wall time. Otherwise it is the sum
    of the steps' measured times (the reused ones as measured by the runs that computed them), with
    how many were reused and what this run took.
    """
    reused = [s for s in steps if s.reused]
    if not reused:
        return f"this run computed every step from scratch in **{wall_seconds / 60:.1f} minutes** of wall time"
    total = sum(s.seconds for s in steps)
    return (
        f"the steps behind the numbers on this page took **{total / 60:.1f} minutes** (the sum of each step's "
        f"time, measured by the run that computed it); this run computed {len(steps) - len(reused)} of "
        f"{len(steps)} steps in {wall_seconds / 60:.1f} minutes and reused {len(reused)}, whose fingerprint "
        "(code, config, data) was unchanged"
    )


def provenance_sentence() -> str:
    """Which code produced the report: version, commit and source digest."""
    code = code_fingerprint()
    commit = f"commit {code['commit'][:12]}" if code["commit"] else "no git commit (not a git checkout)"
    return (
        f"Code: deepchrome {code['version']}, {commit}, source SHA-256 {code['source'][:12]}. Each cached step "
        f"(`{STEP_FILE}` in its folder under the work folder) is reused only while the fingerprint of the code, "
        "its config and its data files is unchanged; otherwise it is computed again."
    )
