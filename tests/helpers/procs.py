"""Helpers shared by the tests that drive the CLI in subprocesses (faults, resume, remote): a fixed git identity
and clock, repositories built with real git, scans run and read back."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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


def _cmd(repo: Path | str | list[Path | str], out: Path, *args: str, validate: bool = False) -> list[str]:
    repos = [str(r) for r in repo] if isinstance(repo, list) else [str(repo)]
    return [sys.executable, "-m", "auditor", "scan", *repos, "--out", str(out), "--no-progress",
            *([] if validate else ["--no-validate"]), *args]


def _scan(repo: Path | str | list[Path | str], out: Path, *args: str, validate: bool = False, timeout: float = 120,
          **env: str) -> Result:
    """Run the CLI in its own process group; on timeout the whole group (workers included) is killed."""
    proc = subprocess.Popen(_cmd(repo, out, *args, validate=validate), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env(**env), start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise AssertionError(f"the scan did not finish within {timeout} s (hung): {' '.join(proc.args)}") from None
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    findings, summary = _read_results(out)
    return Result(proc.returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"),
                  findings, summary)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group this test started (the scan, its forkserver and its workers)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def _bulk_repo(path: Path, commits: int, per_commit: int, pairs: int) -> None:
    """``commits`` commits adding ``per_commit`` small distinct text files each, ``pairs`` of them with a secret."""
    _init(path)
    stride = commits * per_commit // pairs
    proc = subprocess.Popen(["git", "-C", str(path), "fast-import", "--quiet"], stdin=subprocess.PIPE, env=_env())
    assert proc.stdin is not None
    write = proc.stdin.write
    n = 0
    for c in range(commits):
        write(b"commit refs/heads/main\ncommitter T <t@example.com> %d +0000\ndata 7\ncommit\n" % (1600000000 + c))
        for f in range(per_commit):
            body = b"row %d of file %d in commit %d\n" % (n, f, c) * 4
            if n % stride == stride // 2:
                body += _snippet(_pair()).encode()
            write(b"M 100644 inline d%03d/f%03d.txt\ndata %d\n%s\n" % (c, f, len(body), body))
            n += 1
    proc.stdin.close()
    assert proc.wait() == 0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def _wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
