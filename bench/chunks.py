#!/usr/bin/env python3
"""Does a chunk of a big repository keep git's read speed? (The corpus splits big repositories into byte-balanced
chunks of blobs, ordered by first path, each read by its own ``git cat-file --batch`` on some Dask worker.)

    .venv/bin/python bench/chunks.py REPO [--parts 4] [--reps 3]

Reads the blobs a scan reads (``repository_scan.plan_chunks``) with ``git cat-file --batch`` into /dev/null:
all of them by one reader in plan order, in the order a whole-repository scan meets them (the changes stream),
and as PARTS chunks by PARTS readers one after another (what the chunk tasks cost in all); beside the floor,
every object once in pack order. Medians of REPS; nothing is pass/fail. REPO: a local clone, e.g. of git/git
(``git clone --mirror https://github.com/git/git``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from auditor.detectors import load_detectors
from auditor.git.changes import BlobFeed, Changes, Verdict
from auditor.git.env import GIT_ENV
from auditor.git.history import list_commits
from auditor.git.repository import open_repository
from auditor.repository_scan import RepoJob, plan_chunks


def read(git_dir: str, ids: list[bytes]) -> float:
    t0 = time.perf_counter()
    subprocess.run(["git", "--git-dir", git_dir, "cat-file", "--batch"], input=b"".join(i.hex().encode() + b"\n"
                   for i in ids), stdout=subprocess.DEVNULL, check=True, env=GIT_ENV)
    return time.perf_counter() - t0


def floor(git_dir: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["git", "--git-dir", git_dir, "cat-file", "--batch-all-objects", "--unordered", "--batch"],
                   stdout=subprocess.DEVNULL, check=True, env=GIT_ENV)
    return time.perf_counter() - t0


def feed_order(repo_path: str) -> list[bytes]:
    repo = open_repository(repo_path)
    commits = list_commits(repo)
    source = Changes(repo)
    source.start()
    try:
        return list(BlobFeed(lambda oid, name: Verdict.SCAN)(source.records(lambda: (list(commits.tree),
                                                                                    commits.parents))))
    finally:
        source.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo")
    ap.add_argument("--parts", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    repo = open_repository(args.repo)
    job = RepoJob(source=args.repo, name=args.repo, detectors=load_detectors())
    t0 = time.perf_counter()
    chunks = plan_chunks(job, args.parts)
    planning = time.perf_counter() - t0
    planned = [b for c in chunks for b in c]
    met = feed_order(args.repo)
    print(f"{args.repo}: {len(planned):,} blobs to read, planned into {len(chunks)} chunks of "
          f"{', '.join(f'{len(c):,}' for c in chunks)} blobs in {planning:.1f} s", file=sys.stderr)
    rows: dict[str, list[float]] = {"floor (every object, pack order)": [], "one reader, order met": [],
                                    "one reader, plan order": [], f"{len(chunks)} chunk readers in turn": []}
    per_chunk: list[list[float]] = [[] for _ in chunks]
    for rep in range(args.reps):
        rows["floor (every object, pack order)"].append(floor(repo.path))
        rows["one reader, order met"].append(read(repo.path, met))
        rows["one reader, plan order"].append(read(repo.path, planned))
        times = [read(repo.path, list(c)) for c in chunks]
        for i, t in enumerate(times):
            per_chunk[i].append(t)
        rows[f"{len(chunks)} chunk readers in turn"].append(sum(times))
        print(f"rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in rows.items()), file=sys.stderr)
    base = statistics.median(rows["one reader, plan order"])
    print("| read | median s | × one reader, plan order |\n|---|---:|---:|")
    for k, v in rows.items():
        print(f"| {k} | {statistics.median(v):.2f} | {statistics.median(v) / base:.2f} |")
    print("chunk medians: " + ", ".join(f"{statistics.median(t):.2f} s" for t in per_chunk))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
