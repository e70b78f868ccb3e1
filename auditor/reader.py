"""Blob ids → blob bytes inside a detection worker: git's own object reader when git is installed, libgit2 else.

Why: libgit2 caches only small delta bases (objects up to 1 MiB, 16 MiB in all), so packs with long delta chains
of big files are rebuilt over and over; ``git cat-file --batch`` keeps a 96 MiB delta-base cache and reads such
histories several times faster (numpy: 3.3× on the same blobs in the same order). Sizes still come from libgit2's
header read, which needs no inflation, so blobs above --max-blob-bytes are never read at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence

import pygit2

# The repository is named explicitly; inherited GIT_* variables must not point git elsewhere.
_GIT_ENV = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | {"GIT_CONFIG_NOSYSTEM": "1"}


class BlobReader:
    """Reads batches of blobs of one repository, in order; a failure is reported per blob, never raised."""

    def __init__(self, repo: pygit2.Repository, *, use_git: bool = True) -> None:
        self.repo = repo
        self._git = shutil.which("git") if use_git else None
        self._proc: subprocess.Popen[bytes] | None = None

    def _cat_file(self) -> subprocess.Popen[bytes] | None:
        if self._proc is None and self._git:
            try:
                self._proc = subprocess.Popen([self._git, "--git-dir", self.repo.path, "cat-file", "--batch"],
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL, env=_GIT_ENV, bufsize=1 << 20)
            except OSError:
                self._git = None
        return self._proc

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def sizes(self, raws: Sequence[bytes]) -> Iterator[tuple[bytes, int | None, str | None]]:
        """(id, size, error) from object headers."""
        odb = self.repo.odb
        for raw in raws:
            try:
                yield raw, odb.read_header(pygit2.Oid(raw=raw))[1], None
            except (KeyError, pygit2.GitError, ValueError, OSError) as e:
                yield raw, None, f"{type(e).__name__}: {e}"

    CHUNK = 256  # ids written ahead of reading: 10 KiB, well inside a pipe's buffer, so neither side blocks

    def read(self, raws: Sequence[bytes]) -> Iterator[tuple[bytes, bytes | None, str | None]]:
        """(id, content, error) for each id, in order."""
        for start in range(0, len(raws), self.CHUNK):
            yield from self._read_chunk(raws[start:start + self.CHUNK])

    def _read_chunk(self, raws: Sequence[bytes]) -> Iterator[tuple[bytes, bytes | None, str | None]]:
        proc = self._cat_file()
        if proc is None:
            yield from self._read_libgit2(raws)
            return
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(b"".join(raw.hex().encode() + b"\n" for raw in raws))
            proc.stdin.flush()
        except OSError:
            self.close()
            self._git = None  # git cannot read this repository: libgit2 reads the rest
            yield from self._read_libgit2(raws)
            return
        for i, raw in enumerate(raws):
            header = proc.stdout.readline().split()
            if len(header) == 3 and header[1] == b"blob":
                size = int(header[2])
                data = proc.stdout.read(size)
                proc.stdout.read(1)  # the newline after the content
                if len(data) == size:
                    yield raw, data, None
                    continue
            if len(header) == 2 and header[1] == b"missing":
                yield raw, None, "missing object"
                continue
            # git died on a corrupt object or spoke out of turn: libgit2 answers for this one and the rest.
            self.close()
            self._git = None
            yield from self._read_libgit2(raws[i:])
            return

    def _read_libgit2(self, raws: Sequence[bytes]) -> Iterator[tuple[bytes, bytes | None, str | None]]:
        odb = self.repo.odb
        for raw in raws:
            try:
                yield raw, odb.read(pygit2.Oid(raw=raw))[1], None
            except (KeyError, pygit2.GitError, ValueError, OSError) as e:
                yield raw, None, f"{type(e).__name__}: {e}"
