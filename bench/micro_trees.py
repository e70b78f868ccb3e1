#!/usr/bin/env python3
"""Micro-benchmark of the tree walk (auditor's enumeration, the main-process bottleneck on synthetic histories):
ways to list every unique blob of every commit of ``rev-list --all`` once, with a name, timed in one process.

    .venv/bin/python bench/micro_trees.py REPO|synth:20k [--reps 3]

A  auditor.history.Trees.blobs as it is (pygit2 tree objects, one TreeEntry per entry)
B  the same walk over raw tree bytes: odb.read + one regex findall per tree (no TreeEntry objects)
C  B with a byte-level scan instead of the regex (bytes.find per entry)
D  ``git rev-list --all --objects`` in a subprocess, parsed (C speed; one name per blob, no tree edges)
Each variant keeps the edges (parent tree number, child id) that attribution needs, except D.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from array import array
from pathlib import Path

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import resolve  # noqa: E402

from auditor.history import Trees, list_commits, open_repository  # noqa: E402

ENTRY = re.compile(rb"(\d+) ([^\0]*)\0(.{20})", re.S)


def a_current(repo: pygit2.Repository, roots: list[bytes]) -> int:
    t = Trees(repo)
    return sum(1 for _ in t.blobs(iter(roots), lambda oid, name: "scan"))


def _walk_raw(repo: pygit2.Repository, roots: list[bytes], parse) -> int:
    read = repo.odb.read
    index: dict[bytes, int] = {}
    edge_parent = array("I")
    edge_ids = bytearray()
    decided: set[bytes] = set()
    n = 0
    for root in roots:
        if root in index:
            continue
        stack = [root]
        while stack:
            tid = stack.pop()
            if tid in index:
                continue
            index[tid] = number = len(index)
            entries = parse(read(pygit2.Oid(raw=tid))[1])
            edge_parent.extend([number] * len(entries))
            edge_ids += b"".join(e[2] for e in entries)
            for mode, _name, oid in entries:
                if oid in decided or oid in index:
                    continue
                if mode == b"40000":
                    stack.append(oid)
                elif mode in (b"160000", b"120000"):
                    decided.add(oid)
                else:
                    decided.add(oid)
                    n += 1
    return n


def b_raw_regex(repo: pygit2.Repository, roots: list[bytes]) -> int:
    return _walk_raw(repo, roots, ENTRY.findall)


def _parse_find(data: bytes) -> list[tuple[bytes, bytes, bytes]]:
    out, i, n = [], 0, len(data)
    find = data.find
    while i < n:
        sp = find(b" ", i)
        nul = find(b"\0", sp)
        out.append((data[i:sp], data[sp + 1:nul], data[nul + 1:nul + 21]))
        i = nul + 21
    return out


def c_raw_find(repo: pygit2.Repository, roots: list[bytes]) -> int:
    return _walk_raw(repo, roots, _parse_find)


def d_rev_list(repo: pygit2.Repository, roots: list[bytes]) -> int:
    out = subprocess.run(["git", "--git-dir", repo.path, "rev-list", "--all", "--objects", "--missing=allow-any",
                          "--no-object-names", "--filter=object:type=blob"], capture_output=True).stdout
    return out.count(b"\n")


VARIANTS = {"A current (pygit2 TreeEntry)": a_current, "B raw bytes + regex": b_raw_regex,
            "C raw bytes + find": c_raw_find, "D git rev-list --objects (blobs only)": d_rev_list}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repo")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    path, label, _ = resolve(a.repo)
    repo = open_repository(str(path))
    t0 = time.perf_counter()
    commits = list_commits(repo)
    print(f"{label}: list_commits {time.perf_counter() - t0:.2f} s, {len(commits):,} commits")
    roots = list(commits.tree.values())
    for name, fn in VARIANTS.items():
        times, n = [], 0
        for _ in range(a.reps):
            r = open_repository(str(path))  # cold libgit2 caches each time, like a scan
            t0 = time.perf_counter()
            n = fn(r, roots)
            times.append(time.perf_counter() - t0)
        print(f"{name:42s} {statistics.median(times):6.2f} s (min {min(times):.2f}) → {n:,} blobs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
