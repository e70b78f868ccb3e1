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


def findings(out: Path) -> set[tuple]:
    rows = [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]
    return {(r["repo"], r["commit"], r["path"], r["line"], r["secret_sha256"]) for r in rows}


def pooled(out: Path) -> str:
    s = json.loads((out / "summary.json").read_text())
    exact = s["confidence_intervals"]["occurrences_per_million_commits"]
    clustered = s["corpus"]["clustered_confidence_intervals"]["occurrences_per_million_commits"]
    return (f"pooled {s['occurrences_per_million_commits']:,.1f} per million commits, exact Poisson "
            f"{exact[0]:,.1f}–{exact[1]:,.1f}, repository bootstrap {clustered[0]:,.1f}–{clustered[1]:,.1f}")


def on_cluster(listing: Path, tmp: Path, kill: bool) -> tuple[float, bool, Path]:
    """The corpus on a real `dask scheduler` and two `dask worker` processes on 127.0.0.1; with ``kill``, SIGKILL
    the worker running the largest repository's task one second in. (wall seconds, killed, out)."""
    import os
    import signal

    from distributed import Client

    sched = tmp / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([PY, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(sched)], **quiet)]
    try:
        while not sched.exists():
            time.sleep(0.1)
        procs += [subprocess.Popen([PY, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(sched),
                                    "--nworkers", "1", "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
                                   **quiet) for _ in range(2)]
        with Client(scheduler_file=str(sched), timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            out = tmp / "out"
            t0 = time.perf_counter()
            scan = subprocess.Popen([PY, "-m", "auditor", "scan", "--corpus", str(listing), "--out", str(out),
                                     "--no-validate", "--no-progress", "--scheduler-file", str(sched)], **quiet)
            killed = False
            while kill and not killed and scan.poll() is None:
                if time.perf_counter() - t0 > 1.0:
                    for worker, keys in client.processing().items():
                        if keys:
                            pid = client.run(os.getpid, workers=[worker])[worker]
                            os.kill(pid, signal.SIGKILL)
                            killed = True
                            break
                time.sleep(0.01)
            scan.wait()
            return time.perf_counter() - t0, killed, out
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait()


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
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "local"
        timed([PY, "-m", "auditor", "scan", "--corpus", str(listing), "--out", str(local), "--no-validate",
               "--no-progress", "--jobs", "2"])
        wall, killed, out = on_cluster(listing, Path(tmp), kill=True)
        same = findings(out) == findings(local)
        table.append(("auditor scan --corpus on `dask scheduler` + 2 `dask worker` (one SIGKILLed 1 s in)", wall,
                      f"killed: {killed}; findings identical to the local run: {same}; {pooled(out)}"))
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
