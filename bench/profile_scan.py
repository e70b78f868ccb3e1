#!/usr/bin/env python3
"""Where does auditor's time go? One repository, two runs:

1. an unprofiled scan measured like bench/run.py does (whole process tree): stage seconds from summary.json and
   the CPU utilisation over time, per 1-second bucket, of the main process and of the detection workers;
2. the same scan under ``py-spy record --subprocesses --threads --nonblocking`` (sampling, all processes): seconds
   per process role and thread, and the functions with the most self and inclusive time in each.

    .venv/bin/python bench/profile_scan.py REPO|synth:20k [--rate 100] [--top 25] [--svg]

Writes bench/work/profiles/<label>.md (and the raw collapsed stacks <label>.txt, an SVG flame graph with --svg);
bench/profile.md is the curated reading of those files. py-spy: ``.venv/bin/pip install py-spy``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure  # noqa: E402
from peers import ROOT, WORK  # noqa: E402
from run import PY, compiled, resolve  # noqa: E402

PROC = re.compile(r'process (\d+):"(.*)"$', re.S)
THREAD = re.compile(r"thread \((\d+)\)(?:: (.*))?$")
LINE = re.compile(r":\d+\)$")


def pyspy() -> str:
    exe = Path(PY).parent / "py-spy"
    found = str(exe) if exe.exists() else shutil.which("py-spy")
    if not found:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def scan_cmd(repo: Path, out: Path) -> list[str]:
    return [PY, "-m", "auditor", "scan", str(repo), "--out", str(out), "--no-validate", "--no-progress"]


def timeline_table(m: measure.Measurement, bucket: float = 1.0) -> list[str]:
    rows = ["| t s | tree CPU % | main % | workers % | workers' git % | workers alive | tree RSS MiB |",
            "|---|---|---|---|---|---|---|"]
    tl = m.timeline
    if not tl:
        return rows
    edges, t = [], 0.0
    while t < tl[-1][0]:
        edges.append(t)
        t += bucket
    prev = tl[0]
    for start in edges:
        inside = [r for r in tl if start <= r[0] < start + bucket]
        if not inside:
            continue
        last = inside[-1]
        dt = last[0] - prev[0]
        if dt > 0:
            pct = [f"{100 * (last[k] - prev[k]) / dt:.0f}" for k in (1, 4, 5, 6)]
            rows.append(f"| {start:.0f} | {' | '.join(pct)} | {max(r[3] for r in inside)} "
                        f"| {max(r[2] for r in inside) / 2**20:.0f} |")
        prev = last
    return rows


def parse_raw(path: Path, rate: float) -> dict:
    """Collapsed stacks → seconds per (role, thread) and per function (self and inclusive) for each role."""
    per_thread: Counter[tuple[str, str]] = Counter()
    self_t: dict[str, Counter[str]] = defaultdict(Counter)
    incl_t: dict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        # leading 'process PID:"cmdline"' frames (a cmdline may hold ';': the forkserver's does)
        procs = []
        while stack.startswith("process "):
            end = stack.find('";', stack.find(':"'))
            if end < 0:
                procs.append(stack)
                stack = ""
                break
            procs.append(stack[:end + 1])
            stack = stack[end + 2:]
        depth = len(procs)
        role = {1: "main", 2: "forkserver", 3: "worker"}.get(depth, f"depth{depth}")
        if depth == 2 and "resource_tracker" in procs[1]:
            role = "resource_tracker"
        elif depth == 2 and "forkserver" not in procs[1]:
            role = "worker"  # a fork of the scan itself (``pool.prefork``)
        frames = procs + stack.split(";")
        rest = frames[depth:]
        thread = "?"
        if rest and (t := THREAD.match(rest[0])):
            thread = t.group(2) or f"tid {t.group(1)}"
            if t.group(1) in frames[depth - 1] and role == "main" and not t.group(2):
                thread = "MainThread"
            rest = rest[1:]
        funcs = [LINE.sub(")", f) for f in rest]
        totals[role] += count
        per_thread[(role, thread)] += count
        if funcs:
            self_t[role][funcs[-1]] += count
            for f in set(funcs):
                incl_t[role][f] += count
    sec = 1.0 / rate
    return {"totals": {k: v * sec for k, v in totals.items()},
            "threads": {f"{r} / {t}": v * sec for (r, t), v in per_thread.most_common()},
            "self": {r: [(f, v * sec) for f, v in c.most_common(60)] for r, c in self_t.items()},
            "inclusive": {r: [(f, v * sec) for f, v in c.most_common(60)] for r, c in incl_t.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repo")
    ap.add_argument("--rate", type=int, default=100, help="py-spy samples per second (default 100)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--svg", action="store_true", help="also record an SVG flame graph (a third run)")
    ap.add_argument("--skip-timeline", action="store_true", help="no unprofiled run")
    ap.add_argument("--from-raw", action="store_true", help="only re-read bench/work/profiles/<label>.txt")
    a = ap.parse_args(argv)
    compiled(ROOT)  # as installed: see run.compiled
    repo, label, _ = resolve(a.repo)
    outdir = WORK / "profiles"
    outdir.mkdir(parents=True, exist_ok=True)
    (WORK / "tmp").mkdir(parents=True, exist_ok=True)
    md = [f"# auditor profile: {label}", "", f"`{repo}`", ""]

    tl_file = outdir / f"{label}-timeline.json"
    if not a.skip_timeline and not a.from_raw:
        with tempfile.TemporaryDirectory(dir=WORK / "tmp") as td:
            m = measure.run(scan_cmd(repo, Path(td) / "out"), cwd=ROOT)
            summary = json.loads((Path(td) / "out" / "summary.json").read_text())
        tl_file.write_text(json.dumps({**m.to_dict(timeline=True), "summary": {
            k: summary[k] for k in ("seconds", "commits_scanned", "blobs_scanned", "bytes_scanned")}}))
    if tl_file.exists() and not a.skip_timeline and "summary" in (stored := json.loads(tl_file.read_text())):
        summary = stored.pop("summary")
        stored.pop("cpu_pct", None)
        m = measure.Measurement(**{k: v for k, v in stored.items() if k in measure.Measurement.__dataclass_fields__})
        det = m.detection or {}
        md += ["## Unprofiled run", "",
               f"wall {m.wall:.2f} s, tree CPU {m.cpu:.2f} s ({m.cpu_pct:.0f} %), peak tree RSS "
               f"{m.peak_rss / 2**20:.0f} MiB / PSS {m.peak_pss / 2**20:.0f} MiB; load {m.load_before:.2f}, other "
               f"processes {m.other_cpu_pct:.0f} % of a core; CPU by role: "
               + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(m.roles.items(), key=lambda kv: -kv[1])), "",
               "stages (summary.json): " + ", ".join(f"{k} {v:.2f} s" for k, v in summary["seconds"].items())
               + f"; {summary['commits_scanned']:,} commits, {summary['blobs_scanned']:,} blobs, "
                 f"{summary['bytes_scanned'] / 2**20:,.1f} MiB", ""]
        if det:
            md += [f"detection window (pool workers alive): from t={det['start']:.1f} s for {det['seconds']:.1f} s, "
                   f"tree {det['cpu_pct']:.0f} %, main {det['main_pct']:.0f} %, workers {det['workers_pct']:.0f} %, "
                   f"workers' child processes {det.get('worker_children_pct', 0):.0f} %; "
                   f"{det['after']:.1f} s after it", ""]
        md += ["CPU over time (1 s buckets):", "", *timeline_table(m), ""]

    raw = outdir / f"{label}.txt"
    meta = outdir / f"{label}-pyspy.json"
    if not a.from_raw:
        with tempfile.TemporaryDirectory(dir=WORK / "tmp") as td:
            cmd = [pyspy(), "record", "--subprocesses", "--threads", "--nonblocking", "-r", str(a.rate), "--format",
                   "raw", "-o", str(raw), "--", *scan_cmd(repo, Path(td) / "out")]
            m2 = measure.run(cmd, cwd=ROOT)
            seconds = json.loads((Path(td) / "out" / "summary.json").read_text())["seconds"]
        meta.write_text(json.dumps({"wall": m2.wall, "seconds": seconds}))
    prof = json.loads(meta.read_text())
    if a.svg and not a.from_raw:
        with tempfile.TemporaryDirectory(dir=WORK / "tmp") as td:
            subprocess.run([pyspy(), "record", "--subprocesses", "--nonblocking", "-r", str(a.rate), "-o",
                            str(outdir / f"{label}.svg"), "--", *scan_cmd(repo, Path(td) / "out")], cwd=ROOT,
                           capture_output=True)
    p = parse_raw(raw, a.rate)
    md += ["## py-spy (sampled CPU, idle threads excluded)", "",
           f"profiled run: wall {prof['wall']:.2f} s (py-spy included); stages "
           + ", ".join(f"{k} {v:.2f} s" for k, v in prof["seconds"].items()), "",
           "seconds on CPU by process role: " + ", ".join(f"{k} {v:.2f}" for k, v in p["totals"].items()), "",
           "by thread: " + ", ".join(f"{k} {v:.2f}" for k, v in p["threads"].items()), ""]
    for role in ("main", "worker", "forkserver"):
        if role not in p["self"]:
            continue
        md += [f"### {role}: self time (top {a.top})", "", "| s | function (file) |", "|---|---|"]
        md += [f"| {v:.2f} | `{f}` |" for f, v in p["self"][role][:a.top]]
        md += ["", f"### {role}: inclusive time (top {a.top})", "", "| s | function (file) |", "|---|---|"]
        md += [f"| {v:.2f} | `{f}` |" for f, v in p["inclusive"][role][:a.top]]
        md.append("")
    text = "\n".join(md)
    (outdir / f"{label}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
