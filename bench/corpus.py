#!/usr/bin/env python3
"""Corpus audits against their floor (SPEC §10, issue 13), in one run:

    .venv/bin/python bench/corpus.py [--repos 120] [--commits 115000] [--workers 1,2] [--tiny 2000] [--reps 1]

Builds (once, into bench/work/corpus/) REPOS synthetic repositories whose sizes are spread log-uniformly from 20 to
20,000 commits and add up to about COMMITS, each with planted fake credentials (``auditor.testing.history``), then
measures, one after another:
  * the floor: ``git cat-file --batch-all-objects --unordered --batch`` of every repository, one after another;
  * ``auditor scan --corpus`` on a local Dask cluster of each WORKERS count (validation off);
  * ``auditor scan R1 … RN`` (one process, the multiprocessing pool per repository), the way before corpora;
and, for TINY repositories of a few commits, the corpus run's wall time and the client process's peak RSS
(VmHWM), which must not grow with per-commit rows. Nothing is pass/fail; the planted occurrences are checked.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work" / "corpus"
PY = sys.executable


def log(msg: str) -> None:
    print(f"[corpus {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sizes(n: int, total: int, seed: int = 5) -> list[int]:
    """``n`` commit counts, log-uniform in 20…20,000, scaled to add up to about ``total``."""
    rng = random.Random(seed)
    raw = [math.exp(rng.uniform(math.log(20), math.log(20000))) for _ in range(n)]
    scale = total / sum(raw)
    return [max(20, min(20000, int(r * scale))) for r in raw]


def build(where: Path, counts: list[int], *, files: int = 200, pairs: int = 3) -> list[Path]:
    """The repositories (generated once; a directory per repository, a manifest beside it)."""
    from auditor.testing.history import generate

    repos = []
    for i, commits in enumerate(counts):
        path = where / f"r{i:04d}-{commits}"
        manifest = path.with_suffix(".manifest.json")
        if not manifest.exists():
            shutil.rmtree(path, ignore_errors=True)
            m = generate(path, commits=commits, files=min(files, max(3, commits // 4)),
                         pairs=min(pairs, max(0, (commits - 1) // 8)), seed=i, branches=0 if commits < 60 else 2,
                         tags=0 if commits < 60 else 1)
            manifest.write_text(json.dumps({"occurrences": len(m.occurrences())}))
        repos.append(path)
    return repos


def planted(repos: list[Path]) -> int:
    return sum(json.loads(p.with_suffix(".manifest.json").read_text())["occurrences"] for p in repos)


def timed(cmd: list[str], *, watch_rss: bool = False) -> tuple[float, int, int]:
    """(wall seconds, exit code, peak RSS of this process in KiB when ``watch_rss``)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        if watch_rss:
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
        time.sleep(0.02)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd[:6])}… failed ({proc.returncode}):\n{err}")
    return time.perf_counter() - t0, proc.returncode, peak


def floor(repos: list[Path]) -> float:
    t0 = time.perf_counter()
    for r in repos:
        subprocess.run(["git", "-C", str(r), "cat-file", "--batch-all-objects", "--unordered", "--batch"],
                       stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def corpus_file(repos: list[Path], where: Path) -> Path:
    f = where / "corpus.txt"
    f.write_text("".join(f"{r}\n" for r in repos))
    return f


def found(out: Path) -> tuple[int, int]:
    s = json.loads((out / "summary.json").read_text())
    return s["occurrences"], s["commits_scanned"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repos", type=int, default=120)
    ap.add_argument("--commits", type=int, default=115000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--tiny", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--no-sequential", action="store_true", help="skip the one-process `scan R1 … RN` run")
    args = ap.parse_args()
    where = WORK / f"c{args.repos}-{args.commits}"
    where.mkdir(parents=True, exist_ok=True)
    log(f"building {args.repos} repositories (once) in {where}")
    repos = build(where, sizes(args.repos, args.commits))
    expected = planted(repos)
    table: list[tuple[str, float, str]] = []
    fl = statistics.median(floor(repos) for _ in range(args.reps))
    table.append(("floor: cat-file --batch-all-objects, one repository after another", fl, ""))
    listing = corpus_file(repos, where)
    for n in [int(x) for x in args.workers.split(",")]:
        walls = []
        for _ in range(args.reps):
            with tempfile.TemporaryDirectory() as tmp:
                wall, _, peak = timed([PY, "-m", "auditor", "scan", "--corpus", str(listing), "--out", tmp,
                                       "--no-validate", "--no-progress", "--jobs", str(n)], watch_rss=True)
                occ, commits = found(Path(tmp))
            walls.append(wall)
        note = f"{occ}/{expected} planted occurrences, {commits:,} commits, client peak RSS {peak / 1024:.0f} MiB"
        table.append((f"auditor scan --corpus, local cluster of {n} worker(s)", statistics.median(walls), note))
    if not args.no_sequential:
        with tempfile.TemporaryDirectory() as tmp:
            wall, _, peak = timed([PY, "-m", "auditor", "scan", *map(str, repos), "--out", tmp, "--no-validate",
                                   "--no-progress"], watch_rss=True)
            occ, commits = found(Path(tmp))
        table.append(("auditor scan R1 … RN (one process, a pool per repository)", wall,
                      f"{occ}/{expected} planted occurrences"))
    if args.tiny:
        tiny_where = WORK / f"tiny{args.tiny}"
        tiny_where.mkdir(parents=True, exist_ok=True)
        log(f"building {args.tiny} tiny repositories (once)")
        tiny = build(tiny_where, [12] * args.tiny, files=3, pairs=1)
        with tempfile.TemporaryDirectory() as tmp:
            wall, _, peak = timed([PY, "-m", "auditor", "scan", "--corpus", str(corpus_file(tiny, tiny_where)),
                                   "--out", tmp, "--no-validate", "--no-progress"], watch_rss=True)
            occ, commits = found(Path(tmp))
        table.append((f"auditor scan --corpus of {args.tiny:,} tiny repositories (local cluster)", wall,
                      f"{occ}/{planted(tiny)} planted, {commits:,} commits, client peak RSS {peak / 1024:.0f} MiB"))
    commits_total = sum(int(p.name.rsplit("-", 1)[1]) for p in repos)
    print(f"\n{len(repos)} repositories, {commits_total:,} commits (generated), floor {fl:.2f} s\n")
    print("| run | wall s | × floor | notes |\n|---|---:|---:|---|")
    for name, wall, note in table:
        print(f"| {name} | {wall:.2f} | {wall / fl:.2f} | {note} |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
