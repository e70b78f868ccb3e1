"""Shared fixtures for the end-to-end tests: real git repositories built in temp dirs, real CLI runs.

- ``git`` builds repositories with the real ``git`` command, with a fixed identity and a deterministic clock
  (every git call advances it by one minute), so commit ids are reproducible within a test.
- ``make_pair()`` makes a random, fake Twilio-shaped pair (random hex: never a real credential).
- ``run_scan(repo, out, *args)`` runs ``python -m auditor scan REPO --out OUT --no-progress --no-validate …`` in a
  subprocess and returns (returncode, stdout, stderr, findings, summary).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

EPOCH = 1_600_000_000  # 2020-09-13T12:26:40Z: the first commit of every test repository
AUTHOR_EMAIL = "author@example.com"

BASE_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}


def make_pair() -> tuple[str, str]:
    """("AC" + 32 random hex, 32 random hex): fake, random, and never a placeholder."""
    while True:
        sid, tok = secrets.token_hex(16), secrets.token_hex(16)
        if len(set(sid)) >= 8 and len(set(tok)) >= 8 and sid != tok:
            return "AC" + sid, tok


def snippet(pair: tuple[str, str], *, line: int = 1, comment: str = "") -> str:
    """A config-like text whose client_id sits on 1-based ``line`` and whose token follows on the next line."""
    filler = "".join(f"# filler line {i}\n" for i in range(1, line))
    return f'{filler}{comment}account_sid = "{pair[0]}"\n{comment}auth_token = "{pair[1]}"\n'


class GitRepo:
    """A work-tree repository driven by real ``git`` commands with a deterministic clock."""

    def __init__(self, path: Path, *, init: bool = True) -> None:
        self.path = path
        self.clock = EPOCH
        if init:
            path.mkdir(parents=True, exist_ok=True)
            self("init", "-q", "-b", "main")
            self("config", "commit.gpgsign", "false")
            self("config", "core.autocrlf", "false")
            self("config", "advice.detachedHead", "false")

    def env(self, **extra: str) -> dict[str, str]:
        # the committer date differs from the author date, so that mixing them up shows
        return {**os.environ, **BASE_ENV, "GIT_AUTHOR_DATE": f"@{self.clock} +0000",
                "GIT_COMMITTER_DATE": f"@{self.clock + 30} +0000", **extra}

    def __call__(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
        """Run ``git -C repo args…`` (advancing the clock by a minute) and return its stdout."""
        self.clock += 60
        proc = subprocess.run(["git", "-C", str(self.path), *args], capture_output=True, env=env or self.env(),
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout.decode(errors='replace')}\n{proc.stderr.decode(errors='replace')}")
        return proc.stdout.decode("utf-8", "replace")

    def write(self, path: str | bytes, content: str | bytes) -> None:
        full = os.path.join(os.fsencode(self.path), os.fsencode(path))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as fh:
            fh.write(content.encode("utf-8") if isinstance(content, str) else content)

    def remove(self, path: str) -> None:
        self("rm", "-q", "--", path)

    def commit(self, message: str, files: dict[str | bytes, str | bytes] | None = None, *, remove: tuple[str, ...] = (),
               author_email: str | None = None, allow_empty: bool = False) -> str:
        """Write ``files``, remove ``remove``, stage everything and commit; return the new commit id."""
        for path, content in (files or {}).items():
            self.write(path, content)
        for path in remove:
            self.remove(path)
        self("add", "-A")
        env = self.env(**({"GIT_AUTHOR_EMAIL": author_email} if author_email else {}))
        self("commit", "-q", "-m", message, *(["--allow-empty"] if allow_empty else []), env=env)
        return self.rev("HEAD")

    def rev(self, spec: str) -> str:
        return self("rev-parse", "--verify", "--quiet", spec).strip()

    def rev_list_all(self) -> list[str]:
        return self("rev-list", "--all").split()


@pytest.fixture
def git(tmp_path: Path):
    """Factory: ``git()`` → a new GitRepo at tmp_path/repo; ``git("name")`` → tmp_path/name."""
    def make(name: str = "repo") -> GitRepo:
        return GitRepo(tmp_path / name)
    return make


def load_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_scan(repo: str | os.PathLike | list, out: str | os.PathLike, *args: str, validate: bool = False,
             command: list[str] | None = None, progress: bool = False, timeout: float = 180,
             ) -> tuple[int, str, str, list[dict], dict | None]:
    """Run the CLI in a subprocess; (returncode, stdout, stderr, findings.jsonl rows, summary.json or None).

    ``repo`` may be a list of repositories (SPEC §6: REPO [REPO ...]).
    """
    repos = [str(r) for r in repo] if isinstance(repo, list) else [str(repo)]
    cmd = [*(command or [sys.executable, "-m", "auditor"]), "scan", *repos, "--out", str(out)]
    if not progress:
        cmd.append("--no-progress")
    if not validate:
        cmd.append("--no-validate")
    cmd.extend(args)
    env = {**os.environ, **BASE_ENV}
    env.pop("AUDITOR_TWILIO_API_URL", None)
    proc = subprocess.run(cmd, capture_output=True, env=env, timeout=timeout, check=False)
    stdout = proc.stdout.decode("utf-8", "replace")
    stderr = proc.stderr.decode("utf-8", "replace")
    out = Path(out)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else None
    findings = load_jsonl(out / "findings.jsonl") if out.is_dir() else []
    return proc.returncode, stdout, stderr, findings, summary


@pytest.fixture(name="make_pair")
def make_pair_fixture():
    return make_pair


@pytest.fixture(name="run_scan")
def run_scan_fixture():
    return run_scan
