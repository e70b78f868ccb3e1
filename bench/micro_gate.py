#!/usr/bin/env python3
"""Micro-benchmark of the per-blob work in a detection worker, on real blob bytes, one process:
the content gate (`ac` + 32 hex, any case) in several forms, and reading blobs through a pipe.

    .venv/bin/python bench/micro_gate.py REPO|synth:20k [--mib 400]

Blobs are those of ``git rev-list --all --objects`` (first --mib MiB of text blobs), read once into memory.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import regex

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import resolve  # noqa: E402


def load(repo: Path, limit: int) -> list[bytes]:
    ids = subprocess.run(["git", "-C", str(repo), "rev-list", "--all", "--objects", "--missing=allow-any",
                          "--filter=object:type=blob", "--no-object-names"], capture_output=True).stdout.split()
    proc = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    assert proc.stdin and proc.stdout
    out, total = [], 0
    for oid in ids:
        proc.stdin.write(oid + b"\n")
        proc.stdin.flush()
        header = proc.stdout.readline().split()
        if len(header) != 3:
            continue
        data = proc.stdout.read(int(header[2]))
        proc.stdout.read(1)
        if b"\0" in data[:8000]:
            continue
        out.append(data)
        total += len(data)
        if total >= limit:
            break
    proc.stdin.close()
    proc.wait()
    return out


def timeit(name: str, fn, blobs: list[bytes], mib: float) -> None:
    t0 = time.perf_counter()
    hits = sum(1 for b in blobs if fn(b))
    dt = time.perf_counter() - t0
    print(f"{name:58s} {dt:6.3f} s  {mib / dt:8.0f} MiB/s  {hits} blobs pass")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repo")
    ap.add_argument("--mib", type=float, default=400)
    a = ap.parse_args()
    path, label, _ = resolve(a.repo)
    t0 = time.perf_counter()
    blobs = load(path, int(a.mib * 2 ** 20))
    dt = time.perf_counter() - t0
    mib = sum(map(len, blobs)) / 2 ** 20
    print(f"{label}: {len(blobs):,} text blobs, {mib:.0f} MiB, read one by one through git cat-file --batch in "
          f"{dt:.2f} s ({mib / dt:.0f} MiB/s, git's inflation included)")
    gate_lower = regex.compile(rb"ac[0-9a-f]{32}")
    gate_icase = regex.compile(rb"ac[0-9a-f]{32}", regex.IGNORECASE)
    gate_re_class = re.compile(rb"[aA][cC][0-9a-fA-F]{32}")
    gate_re_icase = re.compile(rb"ac[0-9a-f]{32}", re.IGNORECASE)
    timeit("bytes.lower() only", lambda b: b.lower() is not None, blobs, mib)
    timeit("regex on bytes.lower() (auditor now)", lambda b: gate_lower.search(b.lower()), blobs, mib)
    timeit("regex IGNORECASE", lambda b: gate_icase.search(b), blobs, mib)
    timeit("re [aA][cC][0-9a-fA-F]{32}", lambda b: gate_re_class.search(b), blobs, mib)
    timeit("re IGNORECASE", lambda b: gate_re_icase.search(b), blobs, mib)
    sid = regex.compile(rb"\bAC([0-9a-f]{32})\b")
    sid_re = re.compile(rb"AC[0-9a-f]{32}")
    timeit("regex client_id matcher \\bAC([0-9a-f]{32})\\b on raw bytes", lambda b: sid.search(b), blobs, mib)
    timeit("re AC[0-9a-f]{32} on raw bytes", lambda b: sid_re.search(b), blobs, mib)
    timeit("client_id matcher first, then the gate (auditor since 7/2)",
           lambda b: sid.search(b) and gate_lower.search(b.lower()), blobs, mib)
    timeit("b'ac' in lower / b'AC' in b (prefilter only)", lambda b: b"AC" in b or b"ac" in b or b"Ac" in b
           or b"aC" in b, blobs, mib)
    t0 = time.perf_counter()
    total = sum(len(bytearray(b)) for b in blobs)
    dt = time.perf_counter() - t0
    print(f"{'one more copy of every blob (bytearray(b))':58s} {dt:6.3f} s  {total / 2**20 / dt:8.0f} MiB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
