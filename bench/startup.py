#!/usr/bin/env python3
"""Fixed cost of a scan (SPEC §9, the one-commit size class): wall time of `auditor scan` on a one-commit
repository, and the import time of the scan path. A benchmark: it prints numbers, it never passes or fails on them.

    .venv/bin/python bench/startup.py [--reps 5] [--tree DIR ...]

Per repetition, for each source tree (default: this one; ``--tree DIR`` adds another checkout, e.g. a
``git archive`` of an older commit, run with the same interpreter through PYTHONPATH), interleaved so that a change
of load on the machine hits every tree alike:

- ``wall clean``: `python -m auditor scan REPO --out FRESH --no-validate --no-progress` on a one-commit repository
  with two small files and no credential (exit 0);
- ``wall finding``: the same on a one-commit repository holding one fake Twilio pair (exit 1: one alert);
- ``imports``: the same clean scan under `-X importtime`: the sum of the top-level imports' cumulative times of the
  main process (the forkserver and its workers import on their own, in parallel);
- ``pool imports``: `python -X importtime -c 'import auditor.detection.pool'`, what the forkserver preloads.

Medians of ``--reps`` (5) are printed, with the spread (min–max) and the heaviest top-level imports of the scan.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SID, TOKEN = "AC" + "5a8f3c2d1e4b6a7f9c0d2e1b3a5f7c9d", "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_DATE": "2024-01-02T03:04:05Z",
                        "GIT_COMMITTER_DATE": "2024-01-02T03:04:05Z"})


def one_commit(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "bench@example.org")
    git(path, "config", "user.name", "Bench")
    for name, text in files.items():
        (path / name).write_text(text, encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "one")
    return path


def scan(tree: Path, repo: Path, out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, *flags, "-m", "auditor", "scan", str(repo), "--out", str(out),
                           "--no-validate", "--no-progress"], cwd=tree, env=env, capture_output=True, text=True)


def timed(tree: Path, repo: Path, out: Path, expect: int) -> float:
    t0 = time.perf_counter()
    r = scan(tree, repo, out)
    wall = time.perf_counter() - t0
    if r.returncode != expect:
        raise SystemExit(f"{tree}: scan of {repo} exited {r.returncode}, expected {expect}:\n{r.stderr}")
    return wall


_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def top_level(stderr: str) -> dict[str, float]:
    """-X importtime's top-level imports → their cumulative seconds."""
    out: dict[str, float] = {}
    for m in _LINE.finditer(stderr):
        if len(m.group(3)) == 1:  # one space before the name: a top-level import
            out[m.group(4)] = out.get(m.group(4), 0.0) + int(m.group(2)) / 1e6
    return out


def imports(tree: Path, repo: Path, out: Path) -> dict[str, float]:
    r = scan(tree, repo, out, "-X", "importtime")
    return top_level(r.stderr)


def pool_imports(tree: Path) -> float:
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", "import auditor.detection.pool"], cwd=tree,
                       env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True, check=True)
    return sum(top_level(r.stderr).values())


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="repetitions (default 5); medians are printed")
    ap.add_argument("--tree", type=Path, action="append", default=[],
                    help="another source tree to measure beside this one (repeatable)")
    args = ap.parse_args(argv)
    trees = [ROOT, *(t.resolve() for t in args.tree)]
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as td:
        tmp = Path(td)
        clean = one_commit(tmp / "clean", {"app.py": "print('hello')\n", "README.txt": "a one-commit repository\n"})
        found = one_commit(tmp / "found", {"app.py": f'account_sid = "{SID}"\nauth_token = "{TOKEN}"\n'})
        runs: dict[Path, dict[str, list[float]]] = {t: {"clean": [], "finding": [], "imports": [], "pool": []}
                                                    for t in trees}
        heavy: dict[Path, dict[str, list[float]]] = {t: {} for t in trees}
        for t in trees:  # warm-up: byte-compiled modules, page cache
            timed(t, clean, tmp / "warm", 0)
        n = 0
        for _ in range(args.reps):
            for t in trees:
                n += 1
                runs[t]["clean"].append(timed(t, clean, tmp / f"o{n}c", 0))
                runs[t]["finding"].append(timed(t, found, tmp / f"o{n}f", 1))
                top = imports(t, clean, tmp / f"o{n}i")
                runs[t]["imports"].append(sum(top.values()))
                for name, s in top.items():
                    heavy[t].setdefault(name, []).append(s)
                runs[t]["pool"].append(pool_imports(t))
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    print(f"bench startup: {args.reps} repetitions, {os.cpu_count()} CPUs, load {load}; medians (min, max)")
    for t in trees:
        r = runs[t]
        label = "this tree" if t == ROOT else str(t)
        print(f"  {label}:")
        print(f"    wall, one commit, clean:      {spread(r['clean'])}")
        print(f"    wall, one commit, 1 finding:  {spread(r['finding'])}")
        print(f"    imports of the scan (main):   {spread(r['imports'])}")
        print(f"    imports of auditor.detection.pool (forkserver preload): {spread(r['pool'])}")
        top = sorted(((statistics.median(v), k) for k, v in heavy[t].items()), reverse=True)[:6]
        print("    heaviest top-level imports:  " + ", ".join(f"{k} {s * 1000:.0f} ms" for s, k in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
