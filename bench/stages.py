#!/usr/bin/env python3
"""Where each second of a scan goes, stage by stage, against a budget (issue 15).

    .venv/bin/python bench/stages.py REPO|synth:20k [--out FILE]

Two parts, one run:

1. **stages in isolation**, one after another in this process, each timed by wall clock and by CPU (this process
   and, through ``RUSAGE_CHILDREN``, the git processes it started): listing the commits with pygit2 (a scan does
   it in a thread beside git); the changes (``git log --raw``, and the blob feed parsing it);
   reading the blobs a scan reads (``git cat-file --batch``, the workers' delta-base cache) in the order the
   changes meet them, in pack order and grouped by path (what a scan does); detection over their bytes
   (``BatchScanner``: reading the pipe and matching); beside the pack-order floor;
2. **the whole scan** (``auditor scan --no-validate``) under ``measure.py``: wall, CPU per process role (main,
   git log, workers, the workers' cat-file) and the stage seconds of summary.json (attribution, store).

The budget: the target is 1.5× the pack-order floor's wall on 2 cores, so at most 3× its CPU (its wall on a quiet
machine) for the whole tree; each stage's budget is its share of that (table "budget"). Nothing is pass/fail.
REPO: a local repository (``MIRRORS/git+git``: ``git clone --mirror https://github.com/git/git MIRRORS/git+git``)
or ``synth:20k``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import measure  # noqa: E402
from peers import ROOT, WORK  # noqa: E402
from run import PY, compiled, resolve  # noqa: E402

from auditor.detection.batch import BatchScanner  # noqa: E402
from auditor.detectors import load_detectors  # noqa: E402
from auditor.detectors.engine import DetectorSet  # noqa: E402
from auditor.git.blobs import DELTA_CACHE  # noqa: E402
from auditor.git.changes import BlobFeed, Changes, Verdict  # noqa: E402
from auditor.git.env import GIT_ENV  # noqa: E402
from auditor.git.history import list_commits  # noqa: E402
from auditor.git.read_order import by_path  # noqa: E402
from auditor.git.repository import open_repository  # noqa: E402

# the share of the tree's CPU budget (3× the floor's wall: 1.5× on 2 cores) each stage may use
BUDGET = {"changes: git log --raw": 0.30, "changes: feed (parse, listing, verdicts)": 0.15,
          "reading blobs (cat-file)": 0.25, "detection (workers' Python)": 0.20, "attribution + store + start-up": 0.10}


def clock() -> tuple[float, float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    w0, s0, c0 = clock()
    value = fn()
    w1, s1, c1 = clock()
    return value, {"wall": w1 - w0, "self": s1 - s0, "children": c1 - c0}


def cat(git_dir: str, ids: list[bytes]) -> None:
    """Read ``ids`` as a scan's readers do (their delta-base cache), into nothing."""
    subprocess.run(["git", *DELTA_CACHE, "--git-dir", git_dir, "cat-file", "--batch"],
                   input=b"".join(i.hex().encode() + b"\n" for i in ids), stdout=subprocess.DEVNULL, check=True,
                   env=GIT_ENV)


def in_pack_order(git_dir: str, wanted: set[bytes]) -> list[bytes]:
    """``wanted`` in the order of ``--batch-all-objects --unordered`` (pack order), for comparison."""
    listed = subprocess.run(["git", "--git-dir", git_dir, "cat-file", "--batch-all-objects", "--unordered",
                             "--batch-check=%(objectname)"], capture_output=True, check=True, env=GIT_ENV).stdout
    return [raw for line in listed.split() if (raw := bytes.fromhex(line.decode())) in wanted]


def isolated(repo_path: str) -> dict[str, dict[str, float]]:
    repo = open_repository(repo_path)
    detectors = DetectorSet(load_detectors())
    out: dict[str, dict[str, float]] = {}
    _, out["floor: every object, pack order"] = timed(lambda: subprocess.run(
        ["git", "--git-dir", repo.path, "cat-file", "--batch-all-objects", "--unordered", "--batch"],
        stdout=subprocess.DEVNULL, check=True, env=GIT_ENV))
    listed, out["listing commits, pygit2 (in a thread beside git log)"] = timed(lambda: list_commits(repo))

    def changes() -> list[tuple[bytes, bytes]]:
        source = Changes(repo)
        source.start()
        try:
            feed = BlobFeed(lambda oid, name: Verdict.SCAN if detectors.scans(name) else Verdict.BANNED)
            return list(feed.named(source.batches(lambda: (listed.tree, listed.parents))))
        finally:
            source.close()
    named, both = timed(changes)
    met = [b for b, _ in named]
    out["changes: git log --raw"] = {"wall": both["wall"], "self": 0.0, "children": both["children"]}
    out["changes: feed (parse, listing, verdicts)"] = {"wall": both["wall"], "self": both["self"], "children": 0.0}
    _, out["reading blobs, order met"] = timed(lambda: cat(repo.path, met))
    _, out["reading blobs, pack order"] = timed(lambda: cat(repo.path, in_pack_order(repo.path, set(met))))
    ordered, out["grouping by path, in windows (read_order)"] = timed(lambda: [b for w in by_path(named) for b in w])
    _, out["reading blobs (cat-file)"] = timed(lambda: cat(repo.path, ordered))

    def detect() -> None:
        scanner = BatchScanner(repo.path, load_detectors(), max_bytes=64 << 20, max_pairs=8, use_git=True)
        try:
            for i in range(0, len(ordered), 256):
                scanner.scan(ordered[i:i + 256])
        finally:
            scanner.close()
    _, d = timed(detect)
    out["detection (workers' Python)"] = {"wall": d["wall"], "self": d["self"], "children": 0.0}
    out["detection: its cat-file"] = {"wall": d["wall"], "self": 0.0, "children": d["children"]}
    out["_counts"] = {"commits": len(list_commits(repo)), "blobs": len(met)}
    return out


def whole(repo: Path) -> dict[str, Any]:
    (WORK / "tmp").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK / "tmp") as td:
        m = measure.run([PY, "-m", "auditor", "scan", str(repo), "--out", f"{td}/out", "--no-validate",
                         "--no-progress"], cwd=ROOT)
        summary = json.loads(Path(td, "out", "summary.json").read_text())
    return {"wall": m.wall, "cpu": m.cpu, "roles": m.roles, "seconds": summary["seconds"],
            "others": m.other_cpu_pct}


def render(label: str, iso: dict[str, dict[str, float]], scan: dict[str, Any]) -> str:
    floor = iso["floor: every object, pack order"]["wall"]
    # on a quiet machine the floor's wall is its CPU (one process); its CPU is also what other load inflates least
    budget_cpu = 3 * iso["floor: every object, pack order"]["children"]
    counts = iso.pop("_counts")
    lines = [f"## {label}: {counts['commits']:,} commits, {counts['blobs']:,} blobs a scan reads", "",
             "### Stages in isolation (one after another, this process and its git children)", "",
             "| stage | wall s | CPU s (Python) | CPU s (git) | budget CPU s | within |",
             "|---|---:|---:|---:|---:|---|"]
    for name, t in iso.items():
        share = BUDGET.get(name)
        cpu = t["self"] + t["children"]
        b = f"{share * budget_cpu:.2f}" if share else ""
        ok = ("✓" if cpu <= share * budget_cpu else "✗") if share else ""
        lines.append(f"| {name} | {t['wall']:.2f} | {t['self']:.2f} | {t['children']:.2f} | {b} | {ok} |")
    rest = scan["wall"] - scan["seconds"].get("detection", 0.0)
    share = BUDGET["attribution + store + start-up"]
    lines.append(f"| attribution + store + start-up (the whole scan's wall outside detection) | {rest:.2f} "
                 f"| | | {share * budget_cpu:.2f} | {'✓' if rest <= share * budget_cpu else '✗'} |")
    lines += ["", f"Budget: the whole tree may use 3 × the floor's CPU = {budget_cpu:.2f} s of CPU (1.5× the floor's "
              "wall on 2 idle cores), shared as above.", "", "### The whole scan (`auditor scan --no-validate`)", "",
              f"wall {scan['wall']:.2f} s = {scan['wall'] / floor:.2f}× the floor; tree CPU {scan['cpu']:.2f} s "
              f"(budget {budget_cpu:.2f}); others on the machine {scan['others']:.0f} % of a core", "",
              "| process role | CPU s |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in sorted(scan["roles"].items(), key=lambda kv: -kv[1])]
    lines += ["", "stage seconds (summary.json; enumeration and detection overlap): "
              + ", ".join(f"{k} {v:.2f}" for k, v in scan["seconds"].items()), ""]
    costs = sorted(((k, v) for k, v in scan["roles"].items()), key=lambda kv: -kv[1])[:3]
    lines += ["top 3 costs (CPU by role): " + "; ".join(f"{k} {v:.2f} s" for k, v in costs), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repo")
    ap.add_argument("--out", help="also write the Markdown here (default bench/work/profiles/<label>-stages.md)")
    a = ap.parse_args(argv)
    compiled(ROOT)  # as installed: see run.compiled
    repo, label, _ = resolve(a.repo)
    subprocess.run(["git", "-C", str(repo), "cat-file", "--batch-all-objects", "--unordered", "--batch"],
                   stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    scan = whole(repo)
    iso = isolated(str(repo))
    text = render(label, iso, scan)
    out = Path(a.out) if a.out else WORK / "profiles" / f"{label}-stages.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
