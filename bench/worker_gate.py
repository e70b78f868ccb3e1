#!/usr/bin/env python3
"""What one detection worker costs per blob (issue 15, round 2): the first N blobs of a repository in pack order,
scanned by one ``BatchScanner`` (git's ``cat-file --batch`` and the detectors) in this process; prints the
Python CPU (this process) and git's (its children). Run it with ``PYTHONPATH`` set to another checkout to measure
that one's worker, alternating with this one's:

    for i in 1 2; do PYTHONPATH=/tmp/before .venv/bin/python bench/worker_gate.py MIRRORS/git+git before
                     PYTHONPATH=. .venv/bin/python bench/worker_gate.py MIRRORS/git+git after; done
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import time

from auditor.detection.batch import BatchScanner
from auditor.detectors import load_detectors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo")
    ap.add_argument("label", nargs="?", default="")
    ap.add_argument("--blobs", type=int, default=60000)
    args = ap.parse_args()
    listing = subprocess.run(["git", "--git-dir", args.repo, "cat-file", "--batch-all-objects", "--unordered",
                              "--batch-check=%(objecttype) %(objectname)"], capture_output=True, check=True).stdout
    blobs = [bytes.fromhex(line.split()[1].decode()) for line in listing.splitlines()
             if line.startswith(b"blob ")][:args.blobs]
    scanner = BatchScanner(args.repo, load_detectors(), max_bytes=0, max_pairs=8, use_git=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # the listing's git is not the worker's
    wall, cpu = time.perf_counter(), time.process_time()
    nbytes = found = 0
    for i in range(0, len(blobs), 256):
        result = scanner.scan(blobs[i:i + 256])
        nbytes += result.bytes_scanned
        found += len(result.candidates)
    scanner.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    git = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(f"{args.label} wall {time.perf_counter() - wall:.2f} s, Python CPU {time.process_time() - cpu:.2f} s, "
          f"git CPU {git:.2f} s; {len(blobs)} blobs, {nbytes / 1e6:.0f} MB, "
          f"{found} candidates")


if __name__ == "__main__":
    main()
