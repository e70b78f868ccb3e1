"""Helpers shared by the tests that drive the CLI in subprocesses (faults, resume, remote): a fixed git identity
and clock, repositories built with real git, scans run and read back."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

BASE_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Auditor Tester",
    "GIT_AUTHOR_EMAIL": "tester@example.com",
    "GIT_COMMITTER_NAME": "Auditor Tester",
    "GIT_COMMITTER_EMAIL": "tester@example.com",
    "GIT_AUTHOR_DATE": "1600000000 +0000",
    "GIT_COMMITTER_DATE": "1600000000 +0000",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **BASE_ENV, **extra}
    env.pop("AUDITOR_TWILIO_API_URL", None)
    return env


def _git(repo: Path | str, *args: str, input: bytes | None = None, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], input=input, capture_output=True, env=_env(),
                          check=False)
    if check and proc.returncode:
        raise AssertionError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode("utf-8", "replace")


def _pair() -> tuple[str, str]:
    while True:
        sid, tok = secrets.token_hex(16), secrets.token_hex(16)
        if len(set(sid)) >= 8 and len(set(tok)) >= 8:
            return "AC" + sid, tok


def _snippet(pair: tuple[str, str]) -> str:
    return f'account_sid = "{pair[0]}"\nauth_token = "{pair[1]}"\n'


def _init(path: Path, *, bare: bool = False) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main", *(["--bare"] if bare else []), str(path)], check=True,
                   env=_env(), capture_output=True)
    return path


def _commit(repo: Path, files: dict[str | bytes, str | bytes], message: str = "change", *,
            remove: tuple[str, ...] = ()) -> str:
    for name, content in files.items():
        full = os.path.join(os.fsencode(repo), os.fsencode(name))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as fh:
            fh.write(content.encode() if isinstance(content, str) else content)
    for name in remove:
        _git(repo, "rm", "-q", "--", name)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return _git(repo, "rev-parse", "HEAD").strip()


class Result(NamedTuple):
    rc: int
    stdout: str
    stderr: str
    findings: list[dict[str, Any]]
    summary: dict[str, Any] | None


def _read_results(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    fpath, spath = out / "findings.jsonl", out / "summary.json"
    findings = [json.loads(x) for x in fpath.read_text("utf-8").splitlines() if x.strip()] if fpath.is_file() else []
    summary = json.loads(spath.read_text("utf-8")) if spath.is_file() else None
    return findings, summary


def _cmd(repo: Path | str, out: Path, *args: str, validate: bool = False) -> list[str]:
    return [sys.executable, "-m", "auditor", "scan", str(repo), "--out", str(out), "--no-progress",
            *([] if validate else ["--no-validate"]), *args]


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group this test started (the scan, its forkserver and its workers)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


