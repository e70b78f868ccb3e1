"""Blobs as a history's changes name them → the same blobs in windows, each grouped by the path the blob was first
chosen under (in the order met within a path): the order in which ``git cat-file --batch`` reads them fastest.

Why: git stores a file's versions as delta chains, and its reader rebuilds each object from its chain through a
delta-base cache (32 MiB per reader here). In the order the changes meet them (newest commit first, every file at
once) the chains of thousands of files evict each other's bases; in pack order too (packs are written by recency
as well). A file's versions together, newest first (a chain's base, then the deltas built on it), keep the chain
in the cache. git/git, the 261k blobs a scan reads, cat-file CPU with a 32 MiB cache (``bench/stages.py``):
12.2 s in the order met, 11.8 s in pack order, 4.9 s grouped by path over the whole history, 5.1 s grouped within
windows of 4k, 8k, … 64k blobs. Windows let reading start while git is still naming blobs, and bound what is held.
"""

from __future__ import annotations

import os
import zlib
from array import array
from collections.abc import Iterable, Iterator

# blobs in the first window, and at most in one: each window doubles the last. The last window is read after git
# has named every blob (the rest overlap with it): larger windows group better, smaller ones leave a shorter tail.
# AUDITOR_READ_WINDOWS=FIRST,MOST tunes them (bench/stages.py, bench/run.py measure the effect).
FIRST, MOST = (int(x) for x in os.environ.get("AUDITOR_READ_WINDOWS", "4096,65536").split(","))


def by_path(named: Iterable[tuple[bytes, bytes]], first: int = FIRST, most: int = MOST) -> Iterator[list[bytes]]:
    """Windows of the blobs of ``named`` ((blob, path), each blob once), each grouped by path: by a 32-bit hash of
    it (two paths that collide share a group, which only costs a little cache), in the order met within a group."""
    blobs: list[bytes] = []
    keys = array("Q")  # crc32(path) << 32 | the blob's rank in ``blobs``: 8 bytes a blob
    size = first
    for blob, path in named:
        keys.append(zlib.crc32(path) << 32 | len(blobs))
        blobs.append(blob)
        if len(blobs) >= size:
            yield [blobs[k & 0xFFFFFFFF] for k in sorted(keys)]
            blobs, keys, size = [], array("Q"), min(most, size * 2)
    if blobs:
        yield [blobs[k & 0xFFFFFFFF] for k in sorted(keys)]
