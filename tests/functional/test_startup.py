"""A scan starts fast (SPEC §9, the one-commit size class) without changing a byte of what it writes.

- The CLI and a scan without validation import neither aiohttp nor matplotlib nor pandas (nor numpy, pyarrow);
  what the forkserver preloads into every detection worker stays light too.
- A repository with fewer blobs than one batch is scanned in the scan's own process: no forkserver, no worker;
  a larger one still gets the pool, and both ways find the same candidates.
- A first scan's ``git log`` starts before the command loads; its workers are forks of the command once loaded
  (no forkserver), and find what forkserver workers find.
- findings.jsonl, secrets.jsonl and summary.json, written in plain Python (``auditor.outputs``), are byte for
  byte what the reporter's pandas frames give (``tests/helpers/outputs.py``), on real scans with validation,
  removals, branches, tags, reruns, several repositories in one store, and perturbed copies of their findings.
- A Ctrl-C while the scan's modules load is an interruption (130), never a traceback.

Times are never asserted here: bench/startup.py measures them. Self-contained: its own tiny helpers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from auditor import outputs, pipeline
from auditor.models import ScanOptions, Validity
from auditor.outdir import OutDir
from auditor.testing import TwilioStandIn, serve_in_thread
from auditor.testing import history as synth
from tests.helpers import outputs as reference_outputs
from tests.helpers.git import GitRepo, run_git

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("aiohttp", "matplotlib", "pandas", "numpy", "pyarrow")
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")}, "PYTHONPATH": str(ROOT),
       "GIT_AUTHOR_DATE": "2024-01-02T03:04:05Z", "GIT_COMMITTER_DATE": "2024-01-02T03:04:05Z"}
SID, TOKEN = "AC" + "5a8f3c2d1e4b6a7f9c0d2e1b3a5f7c9d", "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"


def git(repo: Path, *args: str) -> None:
    run_git(repo, *args)


def one_commit(path: Path, files: dict[str, str]) -> Path:
    GitRepo(path).commit("one", files)
    return path


def python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=120)


# -- what is imported ---------------------------------------------------------------------------------------------

LOADED = "import sys; {run}; print(' '.join(sorted(m for m in sys.modules if '.' not in m)), file=sys.stderr)"


def loaded(stderr: str) -> set[str]:
    return set(stderr.strip().splitlines()[-1].split())


def test_importing_the_cli_loads_nothing_heavy():
    r = python(LOADED.format(run="import auditor.cli"))
    assert r.returncode == 0, r.stderr
    assert not loaded(r.stderr) & {*HEAVY, "yaml", "pygit2", "tqdm", "asyncio"}


@pytest.mark.parametrize(("files", "rc"), [({"app.py": "print('hello')\n"}, 0),
                                           ({"app.py": f'sid = "{SID}"\nauth_token = "{TOKEN}"\n'}, 1)],
                         ids=["clean", "one-finding"])
def test_a_scan_without_validation_loads_nothing_heavy(tmp_path, files, rc):
    repo = one_commit(tmp_path / "repo", files)
    run = ("from auditor.cli import main; import multiprocessing.forkserver as fs; "
           "code = main(sys.argv[1:]); print(code, fs._forkserver._forkserver_pid, file=sys.stderr)")
    r = python(LOADED.format(run=run), "scan", str(repo), "--out", str(tmp_path / "out"), "--no-validate",
               "--no-progress")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[-2] == f"{rc} None"  # exit code as ever; no forkserver: no worker either
    assert not loaded(r.stderr) & {*HEAVY, "tqdm", "asyncio"}
    assert len((tmp_path / "out" / "findings.jsonl").read_text().splitlines()) == rc


def test_what_the_forkserver_preloads_is_light():
    r = python(LOADED.format(run="import auditor.detection.pool"))
    assert r.returncode == 0, r.stderr
    assert not loaded(r.stderr) & {*HEAVY, "yaml", "tqdm", "asyncio"}


CTRL_C_WHILE_LOADING = """
import builtins, os, signal, sys

class LandsHere:  # where CPython 3.11 would turn a KeyboardInterrupt into a RuntimeError
    def __set_name__(self, owner, name):
        os.kill(os.getpid(), signal.SIGINT)

real = builtins.__import__
def loading(name, *args, **kwargs):
    if name == "auditor.pipeline" and "auditor.pipeline" not in sys.modules:
        type("Loading", (), {"field": LandsHere()})  # a Ctrl-C lands while the scan's modules load
    return real(name, *args, **kwargs)
builtins.__import__ = loading
from auditor.cli import entry
sys.argv = ["auditor", *sys.argv[1:]]
entry()
"""


def test_a_ctrl_c_while_the_scan_loads_is_an_interruption(tmp_path):
    repo = one_commit(tmp_path / "repo", {"app.py": "print('hello')\n"})
    r = python(CTRL_C_WHILE_LOADING, "scan", str(repo), "--out", str(tmp_path / "out"), "--no-validate")
    assert (r.returncode, r.stderr) == (130, "auditor: interrupted\n")


# -- a pool only when there is more than one batch ------------------------------------------------------------

def _pair(i: int) -> tuple[str, str]:
    return "AC" + hashlib.md5(f"sid{i}".encode()).hexdigest(), hashlib.md5(f"token{i}".encode()).hexdigest()


def test_one_batch_is_scanned_in_process_and_finds_what_the_pool_finds(tmp_path):
    from auditor.detection.pool import DetectionPool
    from auditor.detectors import load_detectors

    files = {f"f{i}.py": f"x = {i}\n" for i in range(40)}
    files |= {f"s{i}.env": "SID={}\nAUTH_TOKEN={}\n".format(*_pair(i)) for i in range(6)}
    repo = one_commit(tmp_path / "repo", files)
    listing = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    blobs = [bytes.fromhex(line.split()[2]) for line in listing]
    assert len(blobs) == 46

    def scan(batch_size: int) -> tuple[list, bool]:
        before = set(multiprocessing.active_children())
        pool = DetectionPool(str(repo / ".git"), load_detectors(), jobs=2)
        try:
            results = list(pool.scan(blobs, batch_size=batch_size))
            started = bool(set(multiprocessing.active_children()) - before)
        finally:
            pool.terminate()
        cands = sorted((c.blob, c.client_id, tuple(p.client_secret for p in c.pairs)) for r in results
                       for c in r.candidates)
        return [sum(r.blobs_scanned for r in results), sum(r.bytes_scanned for r in results), cands], started

    inline, started_inline = scan(256)
    pooled, started_pool = scan(8)
    assert (started_inline, started_pool) == (False, True)
    assert inline == pooled
    assert sorted(c[1:] for c in inline[2]) == sorted((sid, (token,)) for sid, token in map(_pair, range(6)))


def test_the_object_count_that_decides_whether_git_starts_early_and_workers_are_forked(tmp_path):
    from auditor.detection.boot import holds_objects

    repo = one_commit(tmp_path / "repo", {f"f{i}.txt": f"{i}\n" for i in range(20)})
    git_dir = str(repo / ".git")
    assert (holds_objects(git_dir, 22), holds_objects(git_dir, 23)) == (True, False)  # 20 blobs, a tree, a commit
    git(repo, "gc", "-q")  # now in a pack: its index says how many
    assert (holds_objects(git_dir, 22), holds_objects(git_dir, 23)) == (True, False)
    assert holds_objects(str(tmp_path / "nothing-here"), 1)  # cannot tell: as if it held many


EARLY = """
import os, sys
from auditor.detection import boot
from auditor.git import log_process
boot.early(sys.argv[2:], first_scan=sys.argv[1] == "first")
started = {os.path.basename(os.path.dirname(k.rstrip("/"))) if k.endswith(".git") and not k.endswith("big.git")
           else os.path.basename(k): log.proc.pid for k, log in log_process._early.items()}
print(sorted(started), sorted({"pygit2", "auditor.detectors", "auditor.detection.pool"} & set(sys.modules)))
print(" ".join(map(str, started.values())), file=sys.stderr)
"""


def test_the_command_starts_git_before_loading_only_for_a_first_scan_of_a_repository_that_needs_workers(tmp_path):
    """``boot.early`` (what ``auditor scan`` calls before loading anything heavy) starts git's changes of every ref
    of a work tree or a bare repository holding more objects than one batch has blobs — on a first scan only (a
    rerun asks git for new commits only); none for a small one, a URL or a non-repository — and loads nothing heavy
    itself. A log that no scan takes is stopped when the command exits."""
    from auditor.detection.boot import BATCH

    big = one_commit(tmp_path / "big", {f"f{i}.txt": f"{i}\n" for i in range(BATCH)})
    small = one_commit(tmp_path / "small", {"a.txt": "a\n"})
    bare = tmp_path / "big.git"
    run_git(tmp_path, "clone", "-q", "--bare", str(big), str(bare))
    partial = tmp_path / "partial.git"  # configured as a partial clone that would fetch: read by libgit2 alone
    run_git(tmp_path, "clone", "-q", "--bare", str(big), str(partial))
    run_git(partial, "config", "remote.origin.promisor", "true")
    run_git(partial, "config", "extensions.partialClone", "origin")
    said, pids = {}, []
    for name, args in {"work tree": ["first", str(big)], "bare": ["first", str(bare)],
                       "partial clone": ["first", str(partial)],
                       "small then big": ["first", str(small), str(big)], "small": ["first", str(small)],
                       "a rerun": ["rerun", str(big)], "url": ["first", "https://example.invalid/x.git"],
                       "nothing": ["first", str(tmp_path / "none")]}.items():
        r = python(EARLY, *args)
        assert r.returncode == 0, r.stderr
        said[name] = r.stdout.strip()
        pids += [int(p) for p in r.stderr.split()]
    assert said == {"work tree": "['big'] []", "bare": "['big.git'] []", "partial clone": "[] []",
                    "small then big": "['big'] []",
                    "small": "[] []", "a rerun": "[] []", "url": "[] []", "nothing": "[] []"}
    assert len(pids) == 3 and not [p for p in pids if Path(f"/proc/{p}").exists()]  # none outlived its command


def test_a_scan_reads_the_changes_git_started_early_and_only_a_first_scan_does(tmp_path):
    from auditor.git import log_process
    from auditor.git.changes import Changes
    from auditor.git.repository import open_repository

    repo = one_commit(tmp_path / "repo", {f"f{i}.txt": f"{i}\n" for i in range(20)})
    GitRepo(repo).commit("two", {"g.txt": "g\n"})
    log_process.start_early(str(repo / ".git"))
    early = log_process.take_early(str(repo))  # as pygit2 names it, or not: the same repository
    assert early is None  # a work tree is not its git directory
    log_process.start_early(str(repo / ".git"))
    opened = open_repository(str(repo))
    head = bytes.fromhex(run_git(repo, "rev-parse", "HEAD").strip())
    rerun = Changes(opened)
    rerun.start([head])  # a rerun's few commits: git started for them, not the early log
    first = Changes(opened)
    first.start()
    fresh = Changes(opened)
    fresh.start()
    assert rerun._log is not None and first._log is not None and rerun._log is not first._log
    assert log_process.take_early(opened.path) is None  # taken by the first scan

    def whole(changes: Changes) -> bytes:  # read to the end, which closes git's pipe
        return b"".join(b.raw for b in changes.batches(lambda: ((), {})))

    said = {name: whole(changes) for name, changes in (("rerun", rerun), ("first", first), ("fresh", fresh))}
    assert said["first"] == said["fresh"] and said["first"].count(b"\x01") == 2  # the same changes, both commits
    assert said["rerun"].count(b"\x01") == 1


FORKED = """
import sys, threading
import multiprocessing.forkserver as fs
from auditor.cli import main
from auditor.detection import pool
if sys.argv[1] == "thread":  # a caller that already runs a thread: the workers cannot be forked from it
    stop = threading.Event()
    threading.Thread(target=stop.wait, daemon=True).start()
code = main(sys.argv[2:])
print(code, fs._forkserver._forkserver_pid is not None, pool._forked is not None)
"""


def test_a_scan_forks_its_workers_from_itself_and_finds_what_forkserver_workers_find(tmp_path):
    """``auditor scan`` forks its detection workers once loaded (no forkserver, no second interpreter); a caller
    with a thread running gets forkserver workers instead; both find the same, byte for byte."""
    from tests.helpers.git import bulk_repo

    repo = tmp_path / "repo"
    bulk_repo(repo, commits=4, per_commit=100, pairs=3)
    said, found = {}, {}
    for how in ("forked", "thread"):
        out = tmp_path / how
        r = subprocess.run([sys.executable, "-c", FORKED, how, "scan", str(repo), "--out", str(out), "--no-validate",
                            "--no-progress", "--jobs", "2"], cwd=ROOT, env=ENV, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        said[how] = r.stdout.strip().splitlines()[-1]
        found[how] = (out / "findings.jsonl").read_text()
        summary = json.loads((out / "summary.json").read_text())
        assert summary["blobs_scanned"] >= 400 and summary["error_count"] == 0
    assert said == {"forked": "1 False True", "thread": "1 True False"}
    assert found["forked"] == found["thread"] and found["forked"].count("\n") == 3


# -- result files: plain Python == the reporter's frames, byte for byte ----------------------------------------

def _both_ways(tmp_path: Path, name: str, store: Path, args: tuple, kwargs: dict) -> None:
    written = {}
    for way, write in (("plain", outputs.write_results), ("frames", reference_outputs.write_results)):
        out = OutDir(tmp_path / f"{name}-{way}")
        out.root.mkdir()
        for path in (store, *OutDir(store.parent).store_sidecars):
            if path.exists():
                shutil.copy(path, out.root / path.name)
        summary = write(out, *args[1:], **kwargs)
        written[way] = ([p.read_bytes() for p in (out.findings, out.secrets, out.summary)], summary)
    (plain, plain_summary), (frames, frames_summary) = written["plain"], written["frames"]
    for got, want, file in zip(plain, frames, ("findings.jsonl", "secrets.jsonl", "summary.json"), strict=True):
        assert got == want, f"{name}: {file} differs"
    assert plain_summary == frames_summary


def _variants(args: tuple, kwargs: dict) -> dict[str, tuple[tuple, dict]]:
    """The recorded call, and copies of it that reach the corners of the rules."""
    findings, repos, tips, detectors = args[1:]
    out = {"as-run": (args, kwargs), "show-secrets": (args, kwargs | {"show_secrets": True}),
           "no-findings": ((args[0], [], repos, [], detectors), kwargs)}
    if findings:
        validities = [Validity.VALID, Validity.INVALID, Validity.FAILED_TO_CHECK, Validity.UNCHECKED]
        # by the secret (its rank among them), not by where its findings fall in the list: every finding of a
        # secret says the same, and the corners are reached whatever order detection met the blobs in
        rank = {h: k for k, h in enumerate(sorted({f.secret_sha256 for f in findings}))}
        mixed = [dataclasses.replace(f, validity=validities[i % 4], scope=("live", "test", None)[i % 3],
                                     account_status=(None, "active", "suspended")[i % 3],
                                     subaccount=(None, False, True)[i % 3], region=("us1", "ie1", None, "au1")[i % 4])
                 for f in findings for i in [rank[f.secret_sha256]]]
        out["mixed-validity"] = ((args[0], mixed, repos, tips, detectors), kwargs | {"validated": True})
        listed = {"twilio_master_credentials": ("us1", "ie1", "au1")}
        out["regions-listed"] = ((args[0], mixed, repos, tips, detectors), kwargs | {"validated": True,
                                                                                      "regions": listed})
        out["no-regions-known"] = ((args[0], mixed, repos, tips, detectors), kwargs | {"regions": {}})
        odd = [dataclasses.replace(f, author_time=("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
                                                   f.author_time)[i % 3]) for i, f in enumerate(findings)]
        odd[0] = dataclasses.replace(odd[0], commit="f" * 40)  # a commit the store does not have (interrupted)
        out["odd-times"] = ((args[0], odd, repos, tips, detectors), kwargs)
        gone = [dataclasses.replace(r, path=str(Path(r.path).parent / "moved-away")) for r in repos]
        out["repository-gone"] = ((args[0], findings, gone, tips, detectors), kwargs)
        out["no-tips"] = ((args[0], findings, repos, [], detectors), kwargs)
    return out


@pytest.fixture
def recorded(monkeypatch):
    calls: list[tuple[tuple, dict]] = []
    original = pipeline.write_results

    def record(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline, "write_results", record)
    return calls


def test_result_files_are_byte_identical_to_the_reporters(tmp_path, recorded):
    repo = tmp_path / "synth"
    manifest = synth.generate(repo, commits=400, files=60, pairs=8, seed=7, branches=3, tags=2)
    pairs = list(manifest.pairs)
    standin = TwilioStandIn(valid=set(pairs[:3]), test={pairs[3]}, suspended={pairs[4]})
    other = one_commit(tmp_path / "other", {"cfg.env": f"SID={SID}\nTOKEN={TOKEN}\n", "a.py": "pass\n"})
    out = tmp_path / "out"
    with serve_in_thread(standin) as base:
        opts = ScanOptions(out=out, validate=True, api_urls={"twilio": base}, progress=False, validate_rate=500.0,
                           validate_timeout=5.0, jobs=2)
        first = pipeline.scan([str(repo)], opts)
        git(repo, "checkout", "-q", "-f", "main")  # a rerun after a secret came and went on main
        (repo / "late.env").write_text("SID={}\nAUTH_TOKEN={}\n".format(*_pair(99)), encoding="utf-8")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "late")
        git(repo, "rm", "-q", "late.env")
        git(repo, "commit", "-q", "-m", "gone")
        pipeline.scan([str(repo)], opts)
        pipeline.scan([str(repo), str(other)], dataclasses.replace(opts, validate=False))
        pipeline.scan([str(other)], opts)  # the store also holds the synthetic history
    assert first.findings and any(f.validity is Validity.VALID for f in first.findings)
    assert len(recorded) == 4
    store = OutDir(out).store
    for i, (args, kwargs) in enumerate(recorded):
        for name, (a, k) in _variants(args, kwargs).items():
            _both_ways(tmp_path, f"call{i}-{name}", store, a, k)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["store_also_holds"] == [str(repo)]
    # the comparison reached the corners: secrets removed and still at tips, ended exposures, every validity
    rerun = [json.loads(line) for line in (tmp_path / "call1-as-run-plain" / "secrets.jsonl").read_text().splitlines()]
    assert any(s["still_at_tip"] for s in rerun) and any(s["removed_time"] for s in rerun)
    assert any(e["removed_commit"] for s in rerun for e in s["exposures"])
    assert {s["validity"] for s in rerun} == {"valid", "invalid"} and {s["scope"] for s in rerun} >= {"live", "test"}
    listed = json.loads((tmp_path / "call0-regions-listed-plain" / "summary.json").read_text())
    by_region = listed["detectors"]["twilio_master_credentials"]["unique_secrets_by_region"]
    assert set(by_region) == {"us1", "ie1"} and by_region["ie1"]  # au1 goes with unchecked ones: not asked
    mixed = [json.loads(line) for line in (tmp_path / "call0-mixed-validity-plain" / "secrets.jsonl").read_text()
             .splitlines()]
    assert {s["subaccount"] for s in mixed} == {None, False, True} and None in {s["region"] for s in mixed}
