#!/usr/bin/env python3
"""Benchmark harness (SPEC §9, issue 5): auditor beside the floor, the diff baseline and the peers, in one run.

    .venv/bin/python bench/run.py REPO [REPO ...] [--reps 3] [--peers] [--out bench/RESULTS.md]
    .venv/bin/python bench/run.py synth:20k synth:100k MIRRORS/numpy+numpy --peers   # MIRRORS: git clone --mirror
    .venv/bin/python bench/run.py --quick              # CI: small synthetic history, ratio to the floor
    .venv/bin/python bench/run.py --render s20k numpy+numpy --out bench/RESULTS.md   # from stored results

REPO is a local repository (bare or not; never written to) or ``synth:20k`` / ``synth:100k`` (generated once
into bench/work/repos/ by ``python -m auditor.testing.history`` with --files 3000 --pairs 20 --seed 1). Per repository,
each repetition runs floor, diff baseline and auditor back to back (interleaved, after one untimed warm-up read),
then the peers. Raw results (every repetition, CPU timelines of auditor) go to bench/work/results/<label>.json;
the Markdown table to --out. See bench/README.md for the method.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure  # noqa: E402
import peers  # noqa: E402
from peers import BENCH, ROOT, WORK  # noqa: E402

PY = sys.executable
SYNTH = {"20k": {"commits": 20000, "files": 3000, "pairs": 20, "seed": 1},
         "100k": {"commits": 100000, "files": 3000, "pairs": 20, "seed": 1}}
QUICK = {"commits": 3000, "files": 600, "pairs": 10, "seed": 1}
CORE = ("floor", "pack floor", "diff baseline", "auditor")  # plus "auditor before" with --before
PEERS = ("gitleaks", "git-secrets", "truffleHog")
MiB = 2 ** 20


def compiled(checkout: Path) -> None:
    """The checkout's modules compiled to bytecode, as an installed auditor has them (pip compiles at install; an
    editable install run with PYTHONDONTWRITEBYTECODE=1 would compile ~50 modules at every start, in the main
    process and again in the workers' server: ~5 % of a flask scan that no user pays)."""
    compileall.compile_dir(checkout / "auditor", quiet=1)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------- repositories
def synth(path: Path, params: dict, quiet: bool = False) -> Path:
    """Generate a synthetic history (once); returns the manifest path."""
    manifest = path.parent / f"{path.name}.manifest.json"
    if not (path.exists() and manifest.exists()):
        if path.exists():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        log(f"generating {path} {params}")
        subprocess.run([PY, "-m", "auditor.testing.history", str(path), *[x for k, v in params.items()
                                                                  for x in (f"--{k}", str(v))],
                        "--manifest", str(manifest)], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL if quiet else None)
    return manifest


def resolve(arg: str) -> tuple[Path, str, Path | None]:
    """(repository path, label, manifest or None)."""
    if arg.startswith("synth:"):
        size = arg.split(":", 1)[1]
        if size not in SYNTH:
            raise SystemExit(f"unknown synthetic size {size!r}: one of {', '.join(SYNTH)}")
        path = WORK / "repos" / f"s{size}"
        return path, f"s{size}", synth(path, SYNTH[size])
    path = Path(arg).resolve()
    if not path.exists():
        raise SystemExit(f"{arg}: no such repository")
    label = path.parent.name if path.name in ("repo", ".git") else path.name.removesuffix(".git")
    manifest = path.parent / f"{path.name}.manifest.json"
    return path, label, manifest if manifest.exists() else None


def object_bytes(repo: Path, missing: bool) -> dict[str, int]:
    """Count and bytes of every reachable object by type: what the floor reads."""
    rl = subprocess.Popen(["git", "-C", str(repo), "rev-list", "--all", "--objects",
                           *(["--missing=allow-any"] if missing else [])], stdout=subprocess.PIPE)
    cut = subprocess.Popen(["cut", "-d", " ", "-f1"], stdin=rl.stdout, stdout=subprocess.PIPE)
    rl.stdout.close()
    out = subprocess.run(["git", "-C", str(repo), "cat-file", "--batch-check=%(objecttype) %(objectsize)"],
                         stdin=cut.stdout, capture_output=True, text=True).stdout
    cut.wait()
    rl.wait()
    tot: dict[str, int] = {}
    for ln in out.splitlines():
        kind, _, size = ln.partition(" ")
        if size.isdigit():
            tot[kind + "_bytes"] = tot.get(kind + "_bytes", 0) + int(size)
            tot[kind + "s"] = tot.get(kind + "s", 0) + 1
    return tot


# ---------------------------------------------------------------------------------------------------- the tools
class Target:
    """One repository and everything the tools need prepared for it (views, configs); nothing here is timed."""

    def __init__(self, arg: str, args: argparse.Namespace) -> None:
        self.path, self.label, self.manifest_path = resolve(arg)
        self.args = args
        self.dir = WORK / "views" / self.label
        self.dir.mkdir(parents=True, exist_ok=True)
        self.missing = peers.missing_objects(self.path, self.dir / "missing.txt")
        self.manifest = None
        if self.manifest_path:
            from auditor.testing.history import Manifest
            self.manifest = Manifest.from_json(self.manifest_path.read_text())
        self.git_path = str(self.path)
        # the diff-based tools need every blob of the history: a view with stubs when some are missing
        self.complete = str(peers.make_view(self.path, self.dir / "complete.git", self.missing)) if self.missing \
            else self.git_path
        self.unshare: list[str] = []
        wanted = PEERS if args.peers == "all" else tuple(x.strip() for x in (args.peers or "").split(",") if x.strip())
        unknown = set(wanted) - set(PEERS)
        if unknown:
            raise SystemExit(f"unknown peers {sorted(unknown)}: choose among {', '.join(PEERS)}")
        self.core = [t for t in CORE if t not in (args.skip or ())] + (["auditor before"] if args.before else [])
        self.tools = self.core + [p for p in PEERS if p in wanted and self._peer_ready(p)]

    def _peer_ready(self, name: str) -> bool:
        self.unshare = peers.unshare_prefix()
        if name == "git-secrets":
            if not peers.have_git_secrets():
                log("git-secrets not installed (apt-get update && apt-get install -y git-secrets): skipped")
                return False
            view = peers.make_view(self.path, self.dir / "git-secrets.git", self.missing)
            peers.git("--git-dir", str(view), "secrets", "--add", peers.SID)
            self.gs_view = view
            return True
        peers.ensure_peer_venv()
        if name == "gitleaks":
            self.gitleaks = peers.gitleaks_binary()
            (self.dir / "gitleaks.toml").write_text(peers.GITLEAKS_TOML)
            return self.gitleaks is not None
        if name == "truffleHog":
            # refs too: GitPython resolves HEAD (for .gitmodules) on every diff; truffleHog scans origin/* only
            view = peers.make_view(self.path, self.dir / "trufflehog.git", self.missing)
            peers.git("-C", str(view), "remote", "add", "origin", self.git_path)
            peers.git("-C", str(view), "fetch", "-q", "origin")  # the fetch truffleHog makes is then a no-op
            self.th_view = view
            (self.dir / "trufflehog-rules.json").write_text(json.dumps(peers.TRUFFLEHOG_RULES))
            return True
        return False

    def command(self, tool: str, rep: Path) -> tuple[list[str] | str, dict]:
        """(command, keyword arguments for measure.run) of one repetition writing its outputs under ``rep``."""
        q = self.git_path
        if tool == "floor":
            miss = " --missing=allow-any" if self.missing else ""
            return (f"git -C '{q}' rev-list --all --objects{miss} | cut -d' ' -f1 | "
                    f"git -C '{q}' cat-file --batch >/dev/null"), {"shell": True}
        if tool == "pack floor":  # every object once, in pack order (issue 15)
            return f"git -C '{q}' cat-file --batch-all-objects --unordered --batch >/dev/null", {"shell": True}
        if tool == "diff baseline":
            return (f"git -C '{self.complete}' log -p --all --no-color | "
                    f"{{ grep -E '{peers.SID}' > '{rep}/diff.txt'; [ $? -le 1 ]; }}"), {"shell": True}
        if tool == "auditor":
            cmd = [PY, "-m", "auditor", "scan", q, "--out", str(rep / "out"), "--no-validate", "--no-progress"]
            if self.manifest is not None:
                cmd.append("--show-secrets")  # fake planted pairs: the manifest check needs them whole
            return cmd, {"cwd": ROOT}
        if tool == "auditor before":  # the same command on another checkout (--before), for before/after in one run
            cmd = [PY, "-m", "auditor", "scan", q, "--out", str(rep / "out"), "--no-validate", "--no-progress"]
            if self.manifest is not None:
                cmd.append("--show-secrets")
            return cmd, {"cwd": self.args.before, "env": dict(os.environ, PYTHONPATH=str(self.args.before))}
        if tool == "gitleaks":
            return [*self.unshare, str(self.gitleaks), "git", self.complete, "-c", str(self.dir / "gitleaks.toml"),
                    "--log-opts=--full-history --all", "-f", "json", "-r", str(rep / "gitleaks.json"),
                    "--exit-code", "0", "--no-banner", "-l", "error"], {}
        if tool == "truffleHog":
            return [*self.unshare, str(peers.PEER_VENV / "bin" / "python"), str(peers.PEER_VENV / "bin" / "trufflehog"),
                    "--regex", "--rules", str(self.dir / "trufflehog-rules.json"), "--entropy", "False", "--json",
                    "--repo_path", str(self.th_view), f"file://{self.git_path}"], \
                {"stdout": rep / "trufflehog.jsonl", "stderr": rep / "stderr.txt",
                 "env": dict(os.environ, TMPDIR=str(rep))}  # it leaves a file per finding in a mkdtemp()
        if tool == "git-secrets":
            env = dict(os.environ, GIT_DIR=str(self.gs_view))
            return [*self.unshare, "git", "secrets", "--scan-history"], {"stderr": rep / "git-secrets.err",
                                                                         "env": env, "cwd": self.dir}
        raise ValueError(tool)

    OK_RC = {"floor": {0}, "pack floor": {0}, "diff baseline": {0}, "auditor": {0, 1}, "auditor before": {0, 1},
             "gitleaks": {0}, "truffleHog": {0, 1}, "git-secrets": {0, 1}}

    def count(self, tool: str, rep: Path) -> dict:
        if tool in ("floor", "pack floor"):
            return {}
        if tool in ("auditor", "auditor before"):
            return self._auditor_outputs(rep / "out")
        c = {"diff baseline": lambda: peers.count_diff_baseline(rep / "diff.txt"),
             "gitleaks": lambda: peers.count_gitleaks(rep / "gitleaks.json"),
             "truffleHog": lambda: peers.count_trufflehog(rep / "trufflehog.jsonl"),
             "git-secrets": lambda: peers.count_git_secrets(rep / "git-secrets.err")}[tool]()
        return {"findings": c.findings, "sids": len(c.sids), **self._planted(c.sids)}

    def _planted(self, sids: set[bytes]) -> dict:
        if self.manifest is None:
            return {}
        want = {p[0].encode() for p in self.manifest.pairs}
        return {"planted_sids_found": len(want & sids), "planted_sids": len(want)}

    def _auditor_outputs(self, out: Path) -> dict:
        if not (out / "summary.json").exists():
            return {"error": "no summary.json"}
        s = json.loads((out / "summary.json").read_text())
        rows = [json.loads(ln) for ln in (out / "findings.jsonl").read_text().splitlines() if ln.strip()]
        sids = {r["client_id"].encode() for r in rows}
        d = {"findings": s["occurrences"], "sids": len(sids), "unique_secrets": s["unique_secrets"],
             "commits": s["commits_scanned"], "blobs_scanned": s["blobs_scanned"],
             "bytes_scanned": s["bytes_scanned"], "blobs_skipped": s["blobs_skipped"], "seconds": s["seconds"],
             "errors": s.get("error_count", len(s.get("errors", []))), **self._planted(sids)}
        if self.manifest is not None:
            got = {(r["commit"], r["path"], r["client_id"], r["client_secret"]) for r in rows}
            want = self.manifest.occurrences()
            d["manifest"] = {"expected": len(want), "found": len(want & got), "missed": len(want - got),
                             "extra": len(got - want),
                             "missed_examples": sorted(map(list, want - got))[:5],
                             "extra_examples": sorted(map(list, got - want))[:5]}
        return d


def one(target: Target, tool: str, rep: int, timeout: float | None) -> dict:
    rep_dir = Path(tempfile.mkdtemp(prefix=f"{target.label}-{tool.replace(' ', '_')}-{rep}-", dir=WORK / "tmp"))
    try:
        cmd, kw = target.command(tool, rep_dir)
        files = []
        for k in ("stdout", "stderr"):
            if isinstance(kw.get(k), Path):
                files.append(open(kw[k], "wb"))  # noqa: SIM115 - closed below
                kw[k] = files[-1]
        if "stderr" not in kw:
            files.append(open(rep_dir / "stderr.txt", "wb"))  # noqa: SIM115
            kw["stderr"] = files[-1]
        try:
            m = measure.run(cmd, timeout=timeout, **kw)
        finally:
            for f in files:
                f.close()
        d = m.to_dict(timeline=tool.startswith("auditor"))
        if tool == "auditor":
            d["auditor_state"] = auditor_state()  # the lead may change auditor/ between repetitions
        d["ok"] = m.rc in Target.OK_RC[tool] and not m.timed_out
        err = rep_dir / "stderr.txt"
        if d["ok"] and tool == "truffleHog" and err.exists() and b"Traceback" in err.read_bytes():
            d["ok"] = False  # it exits 1 both for "found something" and for a crash
        try:
            d.update(target.count(tool, rep_dir))
        except Exception as e:  # noqa: BLE001 - a broken output is a result to report, not a crash
            d["count_error"] = f"{type(e).__name__}: {e}"
        if not d["ok"]:
            for name in ("stderr.txt", "git-secrets.err"):
                if (rep_dir / name).exists():
                    d["stderr_tail"] = (rep_dir / name).read_bytes()[-4000:].decode("utf-8", "replace")
                    log(f"  stderr: {d['stderr_tail'][-400:]}")
        return d
    finally:
        if not target.args.keep:
            shutil.rmtree(rep_dir, ignore_errors=True)


def measure_tool(target: Target, tool: str, rep: int) -> dict:
    """One repetition; core tools are measured again (up to --retries) when other processes took a lot of CPU."""
    a = target.args
    peer = tool in PEERS
    attempts = []
    tries = 1 + (0 if peer else a.retries)
    for i in range(tries):
        d = one(target, tool, rep, a.peer_timeout if peer else None)
        attempts.append(d)
        status = "ok" if d["ok"] else f"FAILED rc={d['rc']}{' (timeout)' if d.get('timed_out') else ''}"
        log(f"{target.label} {tool} #{rep}: {d['wall']:.2f}s cpu {d['cpu_pct']:.0f}% other {d['other_cpu_pct']:.0f}%"
            f" load {d['load_before']:.2f} {status}")
        if d["other_cpu_pct"] <= a.max_other or not d["ok"] or i == tries - 1:
            break
        log(f"  others used {d['other_cpu_pct']:.0f}% of a core: measuring again")
    best = min(attempts, key=lambda x: x["other_cpu_pct"])
    best["attempts"] = len(attempts)
    return best


def summarize(reps: list[dict]) -> dict:
    ok = [r for r in reps if r["ok"]]
    use = ok or reps
    walls = [r["wall"] for r in use]
    s = {"n": len(use), "ok": bool(ok), "wall": statistics.median(walls), "wall_min": min(walls),
         "wall_max": max(walls), "cpu_pct": statistics.median(r["cpu_pct"] for r in use),
         "peak_rss": max(r["peak_rss"] for r in use), "peak_pss": max(r["peak_pss"] for r in use),
         "peak_pss_anon": max(r.get("peak_pss_anon", 0) for r in use),
         "peak_rss_by_role": max(use, key=lambda r: r["peak_rss"]).get("peak_rss_by_role", {}),
         "max_proc_rss": max(r.get("max_proc_rss", 0) for r in use),
         "other_cpu_pct": statistics.median(r["other_cpu_pct"] for r in use),
         "load": statistics.median(r["load_before"] for r in use),
         "timed_out": any(r.get("timed_out") for r in reps)}
    for k in ("findings", "sids", "planted_sids_found", "planted_sids", "unique_secrets", "bytes_scanned",
              "blobs_scanned", "commits", "errors"):
        vals = [r[k] for r in use if k in r]
        if vals:
            s[k] = vals[-1]
            if len(set(vals)) > 1:
                s[k + "_varies"] = sorted(set(vals))
    dets = [r["detection"] for r in use if r.get("detection")]
    if dets:
        s["detection"] = {k: statistics.median(d[k] for d in dets) for k in dets[0]}
    secs = [r["seconds"] for r in use if r.get("seconds")]
    if secs:
        s["seconds"] = {k: statistics.median(x.get(k, 0.0) for x in secs) for k in secs[0]}
    states = sorted({r["auditor_state"] for r in use if r.get("auditor_state")})
    if len(states) > 1:
        s["auditor_states"] = states
    mans = [r["manifest"] for r in use if r.get("manifest")]
    if mans:
        s["manifest"] = mans[-1]
        s["manifest_ok_all_reps"] = all(m["missed"] == 0 and m["extra"] == 0 for m in mans)
    return s


def shown(cmd: list[str] | str, kw: dict) -> str:
    """A command as it can be typed again: the environment it gets beyond ours, and its redirections."""
    text = cmd if isinstance(cmd, str) else " ".join(cmd)
    env = kw.get("env") or {}
    extra = " ".join(f"{k}={v}" for k, v in env.items() if os.environ.get(k) != v)
    for name, sign in (("stdout", ">"), ("stderr", "2>")):
        if isinstance(kw.get(name), Path):
            text += f" {sign} {kw[name]}"
    return f"{extra} {text}" if extra else text


def bench_repo(arg: str, args: argparse.Namespace) -> dict:
    t = Target(arg, args)
    log(f"{t.label}: {t.path} ({len(t.missing)} missing objects); tools: {', '.join(t.tools)}")
    info = {"label": t.label, "path": str(t.path), "missing_objects": len(t.missing),
            "complete_view": t.complete if t.missing else None, "objects": object_bytes(t.path, bool(t.missing)),
            "unshare": " ".join(t.unshare) or None, "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "auditor_state": auditor_state()}
    log(f"{t.label}: warm-up read (floor, untimed)")
    measure.run(t.command("floor", WORK)[0], shell=True)
    reps: dict[str, list[dict]] = {k: [] for k in t.tools}
    for rep in range(args.reps):
        for tool in t.core:
            reps[tool].append(measure_tool(t, tool, rep))
    for tool in t.tools:
        if tool not in PEERS:
            continue
        for rep in range(args.reps):
            d = measure_tool(t, tool, rep)
            reps[tool].append(d)
            if d["wall"] > args.peer_rep_budget or not d["ok"]:
                break  # a slow peer is measured once (noted as n=1)
    res = {**info, "reps": reps, "summary": {k: summarize(v) for k, v in reps.items()},
           "commands": {k: shown(*t.command(k, Path("$REP"))) for k in t.tools}, "load_after": measure.loadavg()}
    (WORK / "results").mkdir(parents=True, exist_ok=True)
    stored = WORK / "results" / f"{t.label}.json"
    if args.merge and stored.exists():  # keep the peers not measured now from the earlier run
        old = json.loads(stored.read_text())
        for k in old["reps"]:
            if k not in res["reps"]:
                res["reps"][k], res["summary"][k] = old["reps"][k], old["summary"][k]
                res["commands"][k] = old["commands"][k]
                res.setdefault("merged", {})[k] = old.get("merged", {}).get(k, old["started"])
    stored.write_text(json.dumps(res, indent=1, default=str))
    return res


# ---------------------------------------------------------------------------------------------------- report
def sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def auditor_state() -> str:
    """HEAD plus a fingerprint of uncommitted changes to auditor/ (the lead edits it while we measure)."""
    import hashlib
    head = sh(f"git -C '{ROOT}' rev-parse --short HEAD")
    diff = subprocess.run(["git", "-C", str(ROOT), "diff", "HEAD", "--", "auditor"], capture_output=True).stdout
    untracked = sh(f"git -C '{ROOT}' ls-files --others --exclude-standard -- auditor").split()
    h = hashlib.sha256(diff)
    for f in sorted(untracked):
        h.update(f.encode() + b"\0" + (ROOT / f).read_bytes())
    return head if not diff and not untracked else f"{head}+dirty:{h.hexdigest()[:10]}"


def machine() -> dict:
    import pygit2
    cpu = sh("lscpu | sed -n 's/^Model name: *//p'") or platform.processor()
    return {"nproc": sh("nproc"), "cpu": cpu, "free": sh("free -h"), "git": sh("git --version"),
            "python": platform.python_version(), "pygit2": f"{pygit2.__version__} (libgit2 {pygit2.LIBGIT2_VERSION})",
            "kernel": platform.release(), "uptime": sh("uptime"),
            "auditor_commit": sh(f"git -C '{ROOT}' rev-parse --short HEAD") + (
                " + uncommitted changes" if sh(f"git -C '{ROOT}' status --porcelain -- auditor") else ""),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def fmt_s(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def summary_table(results: list[dict]) -> list[str]:
    """auditor against the issue's targets, one row per repository."""
    L = ["## auditor against the targets", "",
         "Targets (issue 5): ≤ 1.5× the floor; faster than the diff baseline; peak memory ≤ 1 GiB on the "
         "100k-commit history; ≥ 170 % CPU while detection workers run; every planted pair found with its "
         "introducing commit. For each ✗: where the time goes and what would close it is in `bench/profile.md`.",
         "",
         "| repository | commits | floor s | pack floor s | diff s | auditor before s | auditor s | × floor | "
         "× pack floor | × diff | peak PSS / RSS MiB | CPU % in detection | manifest | others % |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = r["summary"]
        a, f, d = s.get("auditor"), s.get("floor"), s.get("diff baseline")
        pf, b = s.get("pack floor"), s.get("auditor before")
        if not (a and f):
            continue
        xf = a["wall"] / f["wall"]
        det = a.get("detection", {}).get("cpu_pct")
        m = a.get("manifest")
        man = "–" if not m else (f"{m['found']}/{m['expected']} ✓" if a.get("manifest_ok_all_reps")
                                 else f"{m['found']}/{m['expected']}, {m['extra']} extra ✗")
        ok = lambda c: "✓" if c else "✗"  # noqa: E731
        xp = f"{a['wall'] / pf['wall']:.2f} {ok(a['wall'] / pf['wall'] <= 1.5)}" if pf else "–"
        xd = f"{a['wall'] / d['wall']:.2f} {ok(a['wall'] < d['wall'])}" if d else "–"
        L.append(f"| {r['label']} | {a.get('commits', 0):,} | {fmt_s(f['wall'])} | "
                 f"{fmt_s(pf['wall']) if pf else '–'} | {fmt_s(d['wall']) if d else '–'} | "
                 f"{fmt_s(b['wall']) if b else '–'} | {fmt_s(a['wall'])} | {xf:.2f} {ok(xf <= 1.5)} | {xp} | {xd} | "
                 f"{a['peak_pss'] / MiB:,.0f} / {a['peak_rss'] / MiB:,.0f} | "
                 + (f"{det:.0f} {ok(det >= 170)}" if det is not None else "–")
                 + f" | {man} | {a['other_cpu_pct']:.0f} |")
    return L + [""]


def render(results: list[dict], mach: dict) -> str:
    L = ["# Benchmark results", "",
         "Generated by `bench/run.py` (method: `bench/README.md`). Times are medians of the repetitions (n); "
         "× floor and × diff are ratios of medians measured back to back in the same run. CPU % is the whole "
         "process tree's user+system time over wall time (200 % = both cores). Peak memory: the sum over the "
         "process tree, RSS / PSS, sampled every 50 ms. MiB/s: auditor's unique blob bytes scanned "
         "(summary.json `bytes_scanned`) over each tool's wall time. *others*: CPU that other processes on the "
         "machine used meanwhile (% of one core), the noise indicator.", "",
         "## Machine", "",
         f"- {mach['nproc']} cores, {mach['cpu']}; kernel {mach['kernel']}",
         f"- {mach['git']}; Python {mach['python']}; pygit2 {mach['pygit2']}",
         f"- auditor at {mach['auditor_commit']}; rendered {mach['date']}",
         "- memory (`free -h` at render time):", "", "```", mach["free"], "```", ""]
    L += summary_table(results)
    for r in results:
        s = r["summary"]
        base = s.get("floor") or s.get("pack floor") or {}  # --skip may leave out the floor
        floor = base.get("wall")
        diff = s.get("diff baseline", {}).get("wall")
        a = s.get("auditor", {})
        nbytes = a.get("bytes_scanned") or 0
        ob = r.get("objects", {})
        L += [f"## {r['label']}", "",
              f"`{r['path']}` — {a.get('commits', '?'):,} commits; reachable objects: "
              f"{ob.get('blobs', 0):,} blobs ({ob.get('blob_bytes', 0) / MiB:,.0f} MiB), "
              f"{ob.get('trees', 0):,} trees ({ob.get('tree_bytes', 0) / MiB:,.0f} MiB); "
              f"auditor scanned {a.get('blobs_scanned', 0):,} blobs, {nbytes / MiB:,.1f} MiB"
              + (f"; {r['missing_objects']} objects missing from the repository (diff-based tools read a view "
                 "with empty stand-ins, see README)" if r.get("missing_objects") else "")
              + f". auditor `{r.get('auditor_state', '?')}`. Measured {r['started']}, load average "
                f"{base.get('load', 0):.2f} at the start, {r.get('load_after', 0):.2f} at the end.", ""]
        L += ["| tool | wall s (n) | min–max | × floor | × diff | CPU % | peak RSS / PSS MiB | MiB/s | findings "
              "| distinct SIDs | planted SIDs | others % |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for tool, x in s.items():
            w = x["wall"]
            flag = "" if x["ok"] else (" **timed out**" if x.get("timed_out") else " **failed**")
            wall = (f"> {fmt_s(w)}" if x.get("timed_out") else fmt_s(w)) + f" ({x['n']}){flag}"
            planted = f"{x['planted_sids_found']}/{x['planted_sids']}" if "planted_sids" in x else ""
            vs_diff = f"{w / diff:.2f}" if diff else "–"
            vs_floor = f"{w / floor:.2f}" if floor else "–"
            rate = f"{'< ' if x.get('timed_out') else ''}{nbytes / MiB / w:,.1f}"
            L.append(f"| {tool} | {wall} | {fmt_s(x['wall_min'])}–{fmt_s(x['wall_max'])} | {vs_floor} | "
                     f"{vs_diff} | {x['cpu_pct']:.0f} | {x['peak_rss'] / MiB:,.0f} / {x['peak_pss'] / MiB:,.0f} | "
                     f"{rate} | {x.get('findings', '')} | {x.get('sids', '')} | {planted} | "
                     f"{x['other_cpu_pct']:.0f} |")
        if a:
            sec = a.get("seconds", {})
            det = a.get("detection")
            L += ["", "auditor: stages (summary.json, median s): " + ", ".join(
                f"{k} {v:.2f}" for k, v in sec.items()) + "."]
            if det:
                kids = det.get("worker_children_pct", 0)
                L.append(f"While detection workers were alive ({det['seconds']:.1f} s): tree CPU "
                         f"{det['cpu_pct']:.0f} %, of which main process {det['main_pct']:.0f} %, workers "
                         f"{det['workers_pct']:.0f} %" + (f", workers' child processes (git) {kids:.0f} %"
                                                          if kids >= 0.5 else "") + ".")
            if a.get("peak_rss_by_role"):
                L.append("Memory at the peak: RSS by process role " + ", ".join(
                    f"{k} {v / MiB:,.0f} MiB" for k, v in sorted(a["peak_rss_by_role"].items(), key=lambda kv: -kv[1]))
                    + (f"; of the peak PSS, {a['peak_pss_anon'] / MiB:,.0f} MiB anonymous (heap), the rest mapped "
                       "files (pack mmaps)" if a.get("peak_pss_anon") else "") + ".")
            if "manifest" in a:
                m = a["manifest"]
                L.append(f"Manifest check (commit, path, client_id, client_secret): {m['found']}/{m['expected']} "
                         f"found, {m['missed']} missed, {m['extra']} extra"
                         + ("" if a.get("manifest_ok_all_reps") else " — **mismatch**") + ".")
            if a.get("auditor_states"):
                L.append("**auditor/ changed between repetitions**: " + ", ".join(f"`{x}`" for x in a["auditor_states"])
                         + ".")
            if a.get("errors"):
                L.append(f"auditor reported {a['errors']} errors (unreadable objects).")
        if r.get("merged"):
            L.append("Measured in an earlier run of the same day and kept (`--merge`): " + ", ".join(
                f"{k} ({v})" for k, v in r["merged"].items()) + ".")
        L.append("")
        L += ["<details><summary>commands</summary>", "", "```"]
        L += [f"{k}: {v}" for k, v in r["commands"].items()]
        L += ["```", "</details>", ""]
    L += ["Units of *findings*: " + "; ".join(f"{k}: {v}" for k, v in peers.UNITS.items()) + ". "
          "*distinct SIDs*: whole-word `AC` + 32 hex in what the tool reported (auditor reports a SID only with a "
          "token paired to it). *planted SIDs*: synthetic histories only, SIDs of the manifest's pairs that the "
          "tool reported.", "",
          "Why peers miss planted pairs: gitleaks reads `git log -p`, which shows no diff for merge commits, so a "
          "pair written in a merge resolution (the synthetic `merge_resolution` scenario, 2 pairs) is never seen; "
          "truffleHog walks `origin/*` branches only (no tags: `tag_only` pairs) and diffs consecutive commits of "
          "each branch's log rather than commits against their parents. git-secrets greps whole trees of the "
          "commits `git log -G` selects, so it finds every SID but reports each line of every such tree.", ""]
    return "\n".join(L)


# ---------------------------------------------------------------------------------------------------- quick
def quick(args: argparse.Namespace) -> int:
    """CI regression guard: not pass/fail on time; fails only if the scan fails or findings miss the manifest."""
    (WORK / "tmp").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-quick-", dir=WORK / "tmp") as td:
        repo = Path(td) / "q3k"
        synth(repo, QUICK, quiet=True)
        args.peers, args.reps = None, 1
        t = Target(str(repo), args)
        measure.run(t.command("floor", Path(td))[0], shell=True)  # warm-up
        fl = one(t, "floor", 0, None)
        au = one(t, "auditor", 0, None)
    m = au.get("manifest", {})
    ratio = au["wall"] / fl["wall"]
    det = au.get("detection") or {}
    print(f"bench quick: {QUICK['commits']:,} commits, {au.get('bytes_scanned', 0) / MiB:.1f} MiB scanned; "
          f"floor {fl['wall']:.2f}s, auditor {au['wall']:.2f}s = {ratio:.2f}x the floor "
          f"({au.get('seconds', {}).get('total', 0) / fl['wall']:.2f}x without interpreter start-up); auditor CPU "
          f"{au['cpu_pct']:.0f}% (detection window {det.get('cpu_pct', 0):.0f}%), peak PSS "
          f"{au['peak_pss'] / MiB:.0f} MiB; stages " + ", ".join(f"{k} {v:.2f}s" for k, v in
                                                                  au.get("seconds", {}).items())
          + f"; manifest {m.get('found')}/{m.get('expected')} found, {m.get('extra')} extra; load "
            f"{au['load_before']:.2f}, others {au['other_cpu_pct']:.0f}%", flush=True)
    if not au["ok"]:
        print(f"bench quick: the scan failed (exit code {au['rc']})", file=sys.stderr)
        return 1
    if not m or m["missed"] or m["extra"]:
        print(f"bench quick: findings do not match the manifest: {m}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repos", nargs="*", help="repository paths, or synth:20k / synth:100k")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each tool (default 3)")
    ap.add_argument("--out", type=Path, help="Markdown output (default bench/RESULTS.md; none with --quick)")
    ap.add_argument("--quick", action="store_true", help="CI mode: 3,000-commit synthetic history, floor + auditor")
    ap.add_argument("--peers", nargs="?", const="all", metavar="LIST",
                    help="also the peers: all (no value) or a comma list of gitleaks,git-secrets,truffleHog "
                         "(installed on demand)")
    ap.add_argument("--peer-timeout", type=float, default=1800, help="seconds before a peer is stopped (default 1800)")
    ap.add_argument("--peer-rep-budget", type=float, default=120,
                    help="a peer repetition slower than this is not repeated (default 120 s)")
    ap.add_argument("--max-other", type=float, default=60,
                    help="remeasure a core tool when other processes used more than this %% of a core (default 60)")
    ap.add_argument("--retries", type=int, default=1, help="remeasurements allowed per repetition (default 2)")
    ap.add_argument("--merge", action="store_true",
                    help="keep tools measured earlier (bench/work/results/<label>.json) that this run does not measure")
    ap.add_argument("--before", type=Path, metavar="CHECKOUT",
                    help="also measure the auditor of another checkout (e.g. `git worktree add /tmp/before main`), "
                         "interleaved with this one: 'auditor before'")
    ap.add_argument("--skip", type=lambda v: tuple(x.strip() for x in v.split(",")), metavar="TOOLS",
                    help="core tools not to measure, e.g. --skip 'diff baseline' (minutes on git/git)")
    ap.add_argument("--keep", action="store_true", help="keep each repetition's outputs under bench/work/tmp/")
    ap.add_argument("--render", nargs="+", metavar="LABEL", help="only render stored results (bench/work/results/)")
    args = ap.parse_args(argv)
    (WORK / "tmp").mkdir(parents=True, exist_ok=True)
    for checkout in (ROOT, *([args.before] if args.before else [])):
        compiled(checkout)
    if args.quick:
        return quick(args)
    if args.render:
        results = [json.loads((WORK / "results" / f"{lab}.json").read_text()) for lab in args.render]
    else:
        if not args.repos:
            ap.error("give at least one repository (or --quick, or --render)")
        results = [bench_repo(r, args) for r in args.repos]
    out = args.out or BENCH / "RESULTS.md"
    out.write_text(render(results, machine()))
    log(f"wrote {out}")
    bad = [r["label"] for r in results if not r["summary"].get("auditor", {}).get("ok", True)
           or r["summary"].get("auditor", {}).get("manifest_ok_all_reps") is False]
    if bad:
        log(f"auditor failed or missed the manifest on: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
