"""The CLI in a subprocess: ``run_scan`` (or ``start_scan`` + ``finish``, to act on the process meanwhile) runs
``python -m auditor scan REPO… --out OUT --no-progress --no-validate …`` in its own process group and returns a
``Result``: exit code, output, and the findings and summary it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.env import env as base_env
from tests.helpers.procs import kill_group

Repos = str | os.PathLike[str] | list[str | os.PathLike[str]]


@dataclass(frozen=True)
class Result:
    """One CLI run: its exit code and output, findings.jsonl's rows and summary.json (None if not written)."""

    returncode: int
    stdout: str
    stderr: str
    findings: list[dict[str, Any]]
    summary: dict[str, Any] | None
    out: Path

    def pairs(self) -> set[tuple[str, str]]:
        """(client_id, client_secret) of every finding."""
        return {(f["client_id"], f["client_secret"]) for f in self.findings}

    def alerts(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith("ALERT")]


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_results(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """findings.jsonl's rows and summary.json of an --out directory, as they are on disk."""
    out = Path(out)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else None
    return load_jsonl(out / "findings.jsonl"), summary


def scan_command(repo: Repos, out: str | os.PathLike[str], *args: str, validate: bool = False,
                 progress: bool = False, command: list[str] | None = None) -> list[str]:
    """``repo`` may be a list of repositories (SPEC §6: REPO [REPO ...])."""
    repos = [str(r) for r in repo] if isinstance(repo, list) else [str(repo)]
    return [*(command or [sys.executable, "-m", "auditor"]), "scan", *repos, "--out", str(out),
            *([] if progress else ["--no-progress"]), *([] if validate else ["--no-validate"]), *args]


def start_scan(repo: Repos, out: str | os.PathLike[str], *args: str, validate: bool = False, progress: bool = False,
               command: list[str] | None = None, env: dict[str, str] | None = None,
               **popen: Any) -> subprocess.Popen[bytes]:
    """Start the scan in a process group of its own (the scan, its forkserver, workers and git); stdout and stderr
    are pipes unless ``popen`` says otherwise."""
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    return subprocess.Popen(scan_command(repo, out, *args, validate=validate, progress=progress, command=command),
                            env=base_env(**(env or {})), start_new_session=True, **popen)


def finish(proc: subprocess.Popen[bytes], out: str | os.PathLike[str], timeout: float = 120) -> Result:
    """Wait for a started scan; on timeout its whole process group is killed and the test fails."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise AssertionError(f"the scan did not finish within {timeout} s (hung): {' '.join(proc.args)}") from None
    finally:
        if proc.poll() is None:
            kill_group(proc)
    findings, summary = read_results(Path(out))
    text = [(data or b"").decode("utf-8", "replace") for data in (stdout, stderr)]  # None: not a pipe
    return Result(proc.returncode, text[0], text[1], findings, summary, Path(out))


def run_scan(repo: Repos, out: str | os.PathLike[str], *args: str, validate: bool = False, progress: bool = False,
             command: list[str] | None = None, env: dict[str, str] | None = None, timeout: float = 180) -> Result:
    """Run a scan to its end. ``env``: variables added to the suite's environment (``helpers.env``)."""
    return finish(start_scan(repo, out, *args, validate=validate, progress=progress, command=command, env=env), out,
                  timeout)


def run_auditor(*argv: str, env: dict[str, str] | None = None, timeout: float = 180
                ) -> subprocess.CompletedProcess[str]:
    """``python -m auditor argv…`` (report, demo, usage errors), text output."""
    return subprocess.run([sys.executable, "-m", "auditor", *argv], capture_output=True, text=True,
                          env=base_env(**(env or {})), timeout=timeout, check=False)
