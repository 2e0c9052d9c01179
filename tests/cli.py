"""Run the ``deepchrome`` command in-process (Lightning's import cost is paid once per session)."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from dataclasses import dataclass

from tests.conftest import REPO


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, check: bool = True, subprocess_: bool = False) -> Result:
    """Run ``deepchrome ARGS`` from the repository root; ``check`` raises on a non-zero exit.

    ``subprocess_`` runs it in a fresh interpreter (needed for DDP, which relaunches the command).
    """
    if subprocess_:
        done = subprocess.run([sys.executable, "-m", "deepchrome.cli", *args], capture_output=True, text=True, cwd=REPO)
        result = Result(done.returncode, done.stdout, done.stderr)
    else:
        from deepchrome.cli import main

        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), contextlib.chdir(REPO):
            try:
                main(list(args))
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        result = Result(code, out.getvalue(), err.getvalue())
    if check and result.returncode != 0:
        raise AssertionError(f"deepchrome {' '.join(args)} exited {result.returncode}:\n{_failure_text(result.stderr)}")
    return result


def _failure_text(stderr: str, limit: int = 12000) -> str:
    """The part of stderr that explains a failure: every traceback (each DDP rank prints its own), else the end."""
    lines = stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.split("]: ")[-1].startswith("Traceback")]
    if not starts:
        return stderr[-3000:]
    # A rank's traceback ends at its exception line; keep each one's last 40 lines.
    blocks = []
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else len(lines)
        block = lines[start:end]
        blocks.append("\n".join(block[:3] + ["  ..."] + block[-40:] if len(block) > 45 else block))
    return "\n\n".join(blocks)[-limit:]
