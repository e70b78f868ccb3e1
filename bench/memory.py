#!/usr/bin/env python3
"""Where does a scan's memory go (issue 16)? Two views of one repository, rerunnable:

1. ``tree``: ``auditor scan`` measured as a whole process tree (``measure.run``): wall time and the peak of the
   summed anonymous PSS (``Pss_Anon`` of ``/proc/PID/smaps_rollup``: heaps; mapped pack files are left out, the
   kernel can drop them), with each role's share at that peak (main, worker, worker:git = a worker's
   ``cat-file``, git = ``git log --raw``, forkserver) and each role's own peak.
2. ``stages``: the same scan in this process, stage by stage: the main process's anonymous RSS after each stage
   and the deep size of what each stage hands the next (the commit listing, the changes kept for attribution,
   the store's commit rows, attribution's per-commit maps, the candidates).

    .venv/bin/python bench/memory.py tree REPO... [--runs 1] [--label L] [--root SRC] [--env K=V]
    .venv/bin/python bench/memory.py stages REPO

A repository is a path or ``synth:SIZE`` (bench/run.py's). Results: bench/work/memory/*.json.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure  # noqa: E402
from peers import ROOT, WORK  # noqa: E402
from run import PY, compiled, resolve  # noqa: E402

MiB = 2 ** 20
OUT = WORK / "memory"


def tree(repo: str, runs: int, label: str | None, root: Path = ROOT, env: dict[str, str] | None = None
         ) -> list[dict]:
    path, name, _ = resolve(repo)
    got = []
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="auditor-mem-") as tmp:
            cmd = [PY, "-m", "auditor", "scan", str(path), "--out", f"{tmp}/out", "--no-validate", "--no-progress"]
            m = measure.run(cmd, cwd=root, timeout=7200, env=os.environ | (env or {}))
            findings = digest = None
            if m.rc in (0, 1):  # 1: findings to alert on
                with open(f"{tmp}/out/findings.jsonl") as fh:
                    rows = sorted(f"{r['commit']} {r['path']} {r['secret_sha256']}" for r in map(json.loads, fh))
                findings = len(rows)
                digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()[:12]  # the same findings, before/after
        row = {"repo": name, "label": label, "run": i, "rc": m.rc, "wall": round(m.wall, 2), "cpu": round(m.cpu, 1),
               "peak_anon_mib": round(m.peak_anon / MiB, 1), "findings": findings, "digest": digest,
               "anon_at_peak_mib": {k: round(v / MiB, 1) for k, v in sorted(m.peak_anon_by_role.items())},
               "anon_role_max_mib": {k: round(v / MiB, 1) for k, v in sorted(m.max_anon_by_role.items())},
               "peak_rss_mib": round(m.peak_rss / MiB, 1), "other_cpu_pct": round(m.other_cpu_pct)}
        print(json.dumps(row), flush=True)
        got.append(row)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "tree.jsonl", "a") as fh:
        for row in got:
            fh.write(json.dumps(row | {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
    return got


def deep_size(obj: object, seen: set[int] | None = None) -> int:
    """Bytes held by ``obj`` and everything it reaches through containers (shared objects counted once)."""
    seen = set() if seen is None else seen
    total = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack.extend(o)
        elif isinstance(o, (bytes, bytearray, str, int, float, type)) or o is None:
            continue
        else:
            if hasattr(o, "__dict__"):
                stack.append(vars(o))
            for klass in type(o).__mro__:
                stack.extend(getattr(o, s) for s in getattr(klass, "__slots__", ()) if hasattr(o, s))
    return total


def anon_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def stages(repo: str) -> dict:
    """One in-process scan, its hand-overs weighed at the stage boundaries (``locate``'s inputs and maps)."""
    sys.path.insert(0, str(ROOT))  # this tree's auditor, not whichever the environment installed
    import auditor.attribution as attribution
    import auditor.repository_scan as rs
    from auditor.detectors import load_detectors

    path, name, _ = resolve(repo)
    report: dict[str, float] = {"main anon RSS at start (MiB)": anon_rss() / MiB}
    real_locate, real_locator = rs.locate, attribution.Locator
    seen_locators: list = []

    class Locator(real_locator):  # type: ignore[misc, valid-type]
        def __init__(self, *a, **k) -> None:
            super().__init__(*a, **k)
            seen_locators.append(self)

    def locate(repo_, commits, records, candidates, *rest):
        gc.collect()
        report["main anon RSS after detection (MiB)"] = anon_rss() / MiB
        report["commit listing: Commits (MiB)"] = deep_size(commits) / MiB
        report["changes kept for attribution (MiB)"] = deep_size(getattr(records, "_touched", records)) / MiB
        report["commits listed"] = len(commits)
        held = getattr(records, "_touched", records)  # Kept: only the records that say something are held
        report["commits with changes kept"] = len(held)
        report["changes kept"] = sum(len(r[1]) for r in held.values())
        report["candidates (MiB)"] = deep_size(dict(candidates)) / MiB
        t0 = time.perf_counter()
        out = real_locate(repo_, commits, records, candidates, *rest)
        report["locate seconds"] = time.perf_counter() - t0
        report["main anon RSS in attribution (MiB)"] = anon_rss() / MiB
        report["rest: detection's blob sets, allocator slack (MiB)"] = report[
            "main anon RSS after detection (MiB)"] - report["main anon RSS at start (MiB)"] - sum(
            report[k] for k in ("commit listing: Commits (MiB)", "changes kept for attribution (MiB)",
                                "candidates (MiB)"))
        if seen_locators:
            loc = seen_locators[-1]
            report["attribution per-commit maps (MiB)"] = deep_size(loc._maps) / MiB
            report["attribution maps: commits"] = len(loc._maps)
        report["provenance (MiB)"] = deep_size(out) / MiB
        return out

    rs.locate, attribution.Locator = locate, Locator
    try:
        t0 = time.perf_counter()
        scanned = rs.scan_repository(rs.RepoJob(source=str(path), name=name, detectors=tuple(load_detectors(None))))
        report["scan seconds"] = time.perf_counter() - t0
        report["store commit rows (MiB)"] = deep_size(scanned.commit_rows) / MiB
        report["reachable set (MiB)"] = deep_size(scanned.reachable) / MiB
        gc.collect()
        report["main anon RSS after scan (MiB)"] = anon_rss() / MiB
    finally:
        rs.locate, attribution.Locator = real_locate, real_locator
    report = {k: round(v, 1) if isinstance(v, float) else v for k, v in report.items()}
    print(json.dumps({"repo": name, **report}, indent=1), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "stages.jsonl", "a") as fh:
        fh.write(json.dumps({"repo": name, **report}) + "\n")
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tree")
    t.add_argument("repos", nargs="+")
    t.add_argument("--runs", type=int, default=1)
    t.add_argument("--label")
    t.add_argument("--env", action="append", default=[], metavar="K=V", help="in the scan's environment")
    t.add_argument("--root", type=Path, default=ROOT,
                   help="the source tree to run (e.g. `git archive` of another commit, for paired before/after runs)")
    s = sub.add_parser("stages")
    s.add_argument("repo")
    a = ap.parse_args()
    compiled(getattr(a, "root", ROOT))  # as installed: see run.compiled
    if a.cmd == "tree":
        for r in a.repos:
            tree(r, a.runs, a.label, a.root, dict(e.split("=", 1) for e in a.env))
    else:
        stages(a.repo)
    shutil.rmtree(Path(tempfile.gettempdir()) / "auditor-mem-none", ignore_errors=True)


if __name__ == "__main__":
    main()
