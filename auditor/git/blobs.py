"""Blob ids → blob bytes inside a detection worker: git's own object reader when git is installed, libgit2 else.

Why: libgit2 caches only small delta bases (objects up to 1 MiB, 16 MiB in all), so packs with long delta chains
of big files are rebuilt over and over; one long-lived ``git cat-file --batch`` keeps a 96 MiB delta-base cache
and reads such histories several times faster (numpy: 3.3× on the same blobs in the same order). Sizes come from
libgit2's header read, which needs no inflation, so blobs above --max-blob-bytes are never read at all.

Corrupt objects: git may stream fewer bytes than an object's header claims and then wait for more input, so
every answer is checked (its id, the newline after it) and read against a deadline; a bad object is reported,
git is restarted for the rest, and the object is never handed to libgit2 (which can spin on it forever).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import pygit2

from auditor.git.env import GIT_ENV

Read = tuple[bytes, bytes | None, str | None]  # (id, content, error)
T = TypeVar("T")


# git's delta-base cache (96 MiB by default) in each worker's reader: blobs come file by file (a delta chain's
# versions together), so a small cache serves them nearly as well, and the cache is the reader's whole heap
DELTA_CACHE_MIB = int(os.environ.get("AUDITOR_DELTA_CACHE_MIB", "32"))
DELTA_CACHE = ("-c", f"core.deltaBaseCacheLimit={DELTA_CACHE_MIB}m")


class _CatFile:
    """One ``git cat-file --batch`` process, read through its buffered pipe (``out``); a watchdog thread kills it
    when an answer overruns the ``deadline`` its reader sets, which turns a stall into an end of output that the
    reader sees at once (a short read)."""

    def __init__(self, git: str, git_dir: str) -> None:
        self.proc = subprocess.Popen([git, *DELTA_CACHE, "--git-dir", git_dir, "cat-file", "--batch"],
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=GIT_ENV)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        try:  # 1 MiB instead of 64 KiB: a sixteenth of the wake-ups between git and this worker
            fcntl.fcntl(self.proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        except (OSError, AttributeError):  # not Linux
            pass
        self.out = self.proc.stdout
        self.deadline = 0.0  # 0: not waiting for anything
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while self.proc.poll() is None:
            time.sleep(0.25)
            if self.deadline and time.monotonic() > self.deadline:
                self.proc.kill()

    def ask(self, raws: Sequence[bytes]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"".join(raw.hex().encode() + b"\n" for raw in raws))
        self.proc.stdin.flush()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):  # a scan may read blobs in its own process: no leak
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:  # unflushed ids to a git that is gone
                pass


class BlobReader:
    """Reads batches of blobs of one repository, in order; a failure is reported per blob, never raised."""

    CHUNK = 256  # ids written ahead of reading: 10 KiB, well inside a pipe's buffer, so neither side blocks
    PATIENCE = 5.0  # seconds without a byte from git, mid-answer, before the object counts as corrupt

    def __init__(self, repo: pygit2.Repository, *, use_git: bool = True) -> None:
        self.repo = repo
        self._git = shutil.which("git") if use_git else None
        self._cat: _CatFile | None = None
        self._git_works = False  # git has read at least one object of this repository

    def close(self) -> None:
        if self._cat is not None:
            self._cat.close()
            self._cat = None

    def sizes(self, raws: Sequence[bytes], limit: int = 0) -> list[tuple[bytes, int | None, str | None]]:
        """(id, size, error) from object headers.

        libgit2 also parses a loose object's bytes in a long-retired "pack-like" format, so a garbage loose object
        can pass for any type and size: a header that is not a blob's is an error, and a size over ``limit``
        (which would skip the blob unread) is confirmed by git, which knows no such format.
        """
        heads: list[tuple[bytes, int | None, str | None]] = []
        for raw, head, error in _each(raws, self.repo.odb.read_header):
            if head is not None and head[0] != pygit2.enums.ObjectType.BLOB:
                head, error = None, f"corrupt object: its header says {head[0].name.lower()}, not blob"
            heads.append((raw, head[1] if head else None, error))
        large = [raw for raw, size, _ in heads if limit and size is not None and size > limit]
        if not large or not self._git:
            return heads
        told = self._git_sizes(large)
        return [(raw, None, "corrupt object: git could not read it") if raw in told and told[raw] != size
                else (raw, size, error) for raw, size, error in heads]

    def _git_sizes(self, raws: Sequence[bytes]) -> dict[bytes, int | None]:
        """Sizes as git reads them (None: git cannot read it); empty when git cannot run here."""
        try:
            out = subprocess.run([self._git or "git", "--git-dir", self.repo.path, "cat-file", "--batch-check"],
                                 input=b"".join(raw.hex().encode() + b"\n" for raw in raws), env=GIT_ENV,
                                 capture_output=True, timeout=60 + len(raws)).stdout.split(b"\n")
        except (OSError, subprocess.TimeoutExpired):
            return {}
        told: dict[bytes, int | None] = {}
        for raw, line in zip(raws, out, strict=False):  # git that cannot run here answers nothing
            fields = line.split()
            told[raw] = int(fields[2]) if len(fields) == 3 and fields[1] == b"blob" else None
        return told

    def read(self, items: Sequence[tuple[bytes, int]]) -> Iterator[Read]:
        """(id, content, error) for each (id, size from ``sizes``), in order."""
        raws = [raw for raw, _ in items]
        for start in range(0, len(raws), self.CHUNK):
            chunk = raws[start:start + self.CHUNK]
            yield from (self._read_git(chunk) if self._git else self._read_libgit2(chunk))

    def _read_git(self, raws: Sequence[bytes]) -> Iterator[Read]:
        if not raws:
            return
        try:
            if self._cat is None:
                self._cat = _CatFile(self._git or "git", self.repo.path)
            self._cat.ask(raws)
        except OSError:
            self.close()
            yield from self._fall_back(raws)
            return
        cat = self._cat
        read, readline, clock, patience = cat.out.read, cat.out.readline, time.monotonic, self.PATIENCE
        for i, raw in enumerate(raws):  # once per blob: plain reads, no call or exception of ours
            want = raw.hex().encode()
            cat.deadline = clock() + patience * 4
            header = readline().split()
            if len(header) == 3 and header[0] == want and header[1] == b"blob":
                size = int(header[2])
                cat.deadline = clock() + patience + size / 2**25
                data = read(size)  # then its newline apart: no copy of the blob to drop it
                if len(data) == size and read(1) == b"\n":
                    cat.deadline = 0.0
                    self._git_works = True
                    yield raw, data, None
                    continue
            cat.deadline = 0.0
            if header == [want, b"missing"]:
                yield raw, None, "missing object"
                continue
            # Out of step, stalled or dead: this object is bad, or git cannot read this repository at all.
            self.close()
            if not self._git_works and not self._git_opens_repository():
                yield from self._fall_back(raws[i:])
                return
            yield raw, None, "corrupt object: git could not read it"
            yield from self._read_git(raws[i + 1:])
            return

    def _fall_back(self, raws: Sequence[bytes]) -> Iterator[Read]:
        self._git = None  # git cannot run or read this repository (format, ownership): libgit2 reads the rest
        yield from self._read_libgit2(raws)

    def _git_opens_repository(self) -> bool:
        """Tell "git cannot read this repository" from "this object is corrupt"."""
        try:
            ok = subprocess.run([self._git or "git", "--git-dir", self.repo.path, "count-objects"], env=GIT_ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        self._git_works = ok
        return ok

    def _read_libgit2(self, raws: Sequence[bytes]) -> Iterator[Read]:
        return _each(raws, lambda oid: self.repo.odb.read(oid)[1])


def _each(raws: Sequence[bytes], get: Callable[[pygit2.Oid], T]) -> Iterator[tuple[bytes, T | None, str | None]]:
    """(id, get(id), None) per id, or (id, None, error) where libgit2 fails on it."""
    for raw in raws:
        try:
            yield raw, get(pygit2.Oid(raw=raw)), None
        except (KeyError, pygit2.GitError, ValueError, OSError) as e:
            yield raw, None, f"{type(e).__name__}: {e}"
