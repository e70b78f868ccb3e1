"""Repositories built with the real ``git`` command: one identity, one deterministic clock.

Every git call of a ``GitRepo`` advances its clock by a minute, and the committer date is the author date plus 30 s
(so that mixing the two up shows), so commit ids are reproducible within a test. A test that needs a given date sets
``repo.clock`` (Unix seconds) before the commit. ``run_git(path, ...)`` runs one command on any repository (a clone, a
worktree, a bare mirror) with the same identity and a fresh clock.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers.env import env as base_env

EPOCH = 1_600_000_000  # 2020-09-13T12:26:40Z: the clock of every repository before its first call
AUTHOR_NAME, AUTHOR_EMAIL = "Test Author", "author@example.com"
COMMITTER_NAME, COMMITTER_EMAIL = "Test Committer", "committer@example.com"


class GitRepo:
    """A repository at ``path`` (a work tree unless ``bare``), driven by ``git -C path``; it is also the path (``os``
    functions, ``str()``, ``repo / "file"``)."""

    def __init__(self, path: str | os.PathLike[str], *, init: bool = True, bare: bool = False) -> None:
        self.path = Path(path)
        self.clock = EPOCH
        if init:
            self.path.mkdir(parents=True, exist_ok=True)
            self("init", "-q", "-b", "main", *(["--bare"] if bare else []))
            for key, value in (("commit.gpgsign", "false"), ("core.autocrlf", "false"),
                               ("advice.detachedHead", "false")):
                self("config", key, value)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"GitRepo({str(self.path)!r})"

    def __truediv__(self, other: str | os.PathLike[str]) -> Path:
        return self.path / other

    def env(self, **extra: str) -> dict[str, str]:
        """The identity, and dates from the clock (``extra`` overrides either)."""
        return base_env(**{"GIT_AUTHOR_NAME": AUTHOR_NAME, "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
                           "GIT_COMMITTER_NAME": COMMITTER_NAME, "GIT_COMMITTER_EMAIL": COMMITTER_EMAIL,
                           "GIT_AUTHOR_DATE": f"@{self.clock} +0000", "GIT_COMMITTER_DATE": f"@{self.clock + 30} +0000",
                           **extra})

    def raw(self, *args: str, input: bytes | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> bytes:
        """Run ``git -C repo args…`` (advancing the clock by a minute) and return its stdout as bytes."""
        self.clock += 60
        proc = subprocess.run(["git", "-C", str(self.path), *args], input=input, capture_output=True,
                              env=env or self.env(), check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout.decode(errors='replace')}\n{proc.stderr.decode(errors='replace')}")
        return proc.stdout

    def __call__(self, *args: str, input: bytes | None = None, check: bool = True,
                 env: dict[str, str] | None = None) -> str:
        """``raw``, decoded as UTF-8."""
        return self.raw(*args, input=input, check=check, env=env).decode("utf-8", "replace")

    def write(self, path: str | bytes, content: str | bytes) -> None:
        full = os.path.join(os.fsencode(self.path), os.fsencode(path))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as fh:
            fh.write(content.encode("utf-8") if isinstance(content, str) else content)

    def remove(self, path: str) -> None:
        self("rm", "-q", "--", path)

    def commit(self, message: str = "change", files: dict[str | bytes, str | bytes] | None = None, *,
               remove: tuple[str, ...] = (), author_email: str | None = None, allow_empty: bool = False) -> str:
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

    def blob(self, content: str | bytes) -> str:
        """Write ``content`` as a blob object; its id."""
        data = content.encode() if isinstance(content, str) else content
        return self("hash-object", "-w", "--stdin", input=data).strip()


def run_git(path: str | os.PathLike[str], *args: str, input: bytes | None = None, check: bool = True) -> str:
    """One git command on the repository at ``path`` (which ``GitRepo`` did not necessarily make)."""
    return GitRepo(path, init=False)(*args, input=input, check=check)


def bulk_repo(path: Path, commits: int, per_commit: int, pairs: int) -> GitRepo:
    """``commits`` commits adding ``per_commit`` small distinct text files each, ``pairs`` of them holding a random
    fake pair; written by ``git fast-import`` in one process (seconds for 40,000 blobs)."""
    from tests.helpers.pairs import make_pair, snippet

    repo = GitRepo(path)
    stride = commits * per_commit // pairs
    proc = subprocess.Popen(["git", "-C", str(path), "fast-import", "--quiet"], stdin=subprocess.PIPE,
                            env=repo.env())
    assert proc.stdin is not None
    write = proc.stdin.write
    n = 0
    for c in range(commits):
        write(b"commit refs/heads/main\ncommitter %s <%s> %d +0000\ndata 7\ncommit\n"
              % (COMMITTER_NAME.encode(), COMMITTER_EMAIL.encode(), EPOCH + c))
        for f in range(per_commit):
            body = b"row %d of file %d in commit %d\n" % (n, f, c) * 4
            if n % stride == stride // 2:
                body += snippet(make_pair()).encode()
            write(b"M 100644 inline d%03d/f%03d.txt\ndata %d\n%s\n" % (c, f, len(body), body))
            n += 1
    proc.stdin.close()
    assert proc.wait() == 0
    return repo
