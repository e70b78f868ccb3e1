"""Interrupted, killed, incremental and repeated scans on one store (SPEC §7–8, issue 6 point 1).

Ctrl-C (SIGINT) exits 130 and keeps what was scanned; SIGKILL never corrupts the store; in both cases the rerun's
results equal an uninterrupted scan's. A rerun scans only new blobs and asks the provider only about secrets it has
no fresh answer for. Every run is the real CLI in a subprocess, with real worker processes; the Twilio stand-in
serves over real HTTP on 127.0.0.1 and counts what reached it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from auditor.testing import TwilioStandIn, serve_in_thread
from tests.helpers.git import GitRepo, bulk_repo, run_git
from tests.helpers.pairs import make_pair, sha, snippet
from tests.helpers.procs import alive, descendants, free_port, kill_group, wait_for
from tests.helpers.scan import Result, finish, run_auditor, run_scan, start_scan


def _occ(findings: list[dict[str, Any]]) -> set[tuple[str, str, str, str, int]]:
    return {(f["commit"], f["path"], f["client_id"], f["secret_sha256"], f["line"]) for f in findings}


def _query(out: Path, sql: str) -> list[tuple]:
    """Read the store the way a second process would, while (or after) a scan writes it. Nothing is there yet
    (no file, no table) reads as no rows; any other error (a damaged store) fails the test with its own message."""
    db = out / "audit.sqlite"
    if not db.is_file():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e) or "unable to open" in str(e):
            return []  # not created yet
        raise


# blobs recorded as scanned, and those that matched (a row of the store holds a batch of 20-byte ids)
SCANNED = "SELECT coalesce(sum(length(oids)), 0) / 20 FROM scanned"
MATCHED = "SELECT coalesce(sum(length(matched)), 0) / 20 FROM scanned"


def _count(out: Path, sql: str) -> int:
    rows = _query(out, sql)
    return int(rows[0][0]) if rows else 0


def _integrity(out: Path) -> None:
    con = sqlite3.connect(out / "audit.sqlite")
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        con.close()


BULK_PAIRS = 12


@pytest.fixture(scope="module")
def bulk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """A 40,000-blob history and its uninterrupted scan (the reference every interrupted run must end up equal to)."""
    base = tmp_path_factory.mktemp("bulk")
    repo = base / "repo"
    bulk_repo(repo, commits=400, per_commit=100, pairs=BULK_PAIRS)
    ref = run_scan(repo, base / "ref", "--jobs", "2")
    assert ref.returncode == 1 and len(ref.findings) == BULK_PAIRS, ref
    return repo, ref


def _freeze_mid_detection(proc: subprocess.Popen, out: Path, ref: Result) -> None:
    """Let detection run until the store holds its first checkpoint (20,000 of the 40,000 blobs), then freeze the
    scan's main process (SIGSTOP), so that what follows (SIGINT, SIGKILL) lands mid-detection whatever the machine's
    speed: some blobs are kept, and the next checkpoint's worth is still owed."""
    wait_for(lambda: proc.poll() is not None or _count(out, SCANNED) > 0, 60, "the first checkpoint of detection")
    os.kill(proc.pid, signal.SIGSTOP)
    assert proc.poll() is None, "the scan ended before it could be interrupted"
    assert 0 < _count(out, SCANNED) < ref.summary["blobs_scanned"]


# -- Ctrl-C and SIGKILL mid-detection ----------------------------------------------------------------------------

def test_ctrl_c_mid_detection_exits_130_keeps_the_store_and_the_rerun_equals_a_full_scan(
        tmp_path: Path, bulk: tuple[Path, Result]) -> None:
    repo, ref = bulk
    out = tmp_path / "out"
    proc = start_scan(repo, out, "--jobs", "2")
    try:
        _freeze_mid_detection(proc, out, ref)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the scan
        os.kill(proc.pid, signal.SIGCONT)
        r = finish(proc, out, timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            kill_group(proc)
    assert r.returncode == 130, r
    assert "Traceback" not in r.stderr, r.stderr
    assert "rerun" in r.stderr.lower()  # says how to resume
    # SPEC §7-8: the interrupted run still writes its results, says it was interrupted, owner-only
    assert r.summary is not None and r.summary["interrupted"] is True
    for name in ("findings.jsonl", "secrets.jsonl", "summary.json", "audit.sqlite"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    kept = _count(out, SCANNED)
    assert kept > 0  # what was scanned is kept …
    assert kept < ref.summary["blobs_scanned"]  # … and it really was a partial scan
    _integrity(out)
    rep = run_auditor("report", str(out))
    assert rep.returncode == 0, rep.stderr
    assert "## Incomplete" in (out / "report.md").read_text()  # a report of a partial scan says so
    unmatched = _count(out, SCANNED) - _count(out, MATCHED)
    rerun = run_scan(repo, out, "--jobs", "2")
    assert rerun.returncode == 1, rerun
    assert _occ(rerun.findings) == _occ(ref.findings)
    assert rerun.summary["blobs_skipped"]["already_scanned"] == unmatched  # resumed, not restarted
    assert rerun.summary["blobs_scanned"] == ref.summary["blobs_scanned"] - unmatched
    assert rerun.summary["commits_scanned"] == ref.summary["commits_scanned"]
    assert rerun.summary["interrupted"] is False


@pytest.mark.slow
def test_ctrl_c_at_any_moment_is_130_or_a_finished_run_never_a_death_by_signal(tmp_path: Path) -> None:
    """Ctrl-C sends SIGINT to the whole process group (the scan, its workers, git) at whatever moment: starting up,
    scanning, writing, winding down. Each outcome is exit 130 with the resume message, or the run's own exit code
    if it had already answered; never a traceback, never a death by the signal."""
    repo = GitRepo(tmp_path / "repo")
    for i in range(30):
        repo.commit(files={f"f{i}.py": snippet(make_pair()) if i % 5 == 0 else f"plain {i}\n"})
    started = time.monotonic()
    whole = run_scan(repo, tmp_path / "whole")
    span = time.monotonic() - started
    assert whole.returncode == 1, whole
    # Before the interpreter has started and found the package (runpy imports it before any of its code runs), a
    # SIGINT is Python's own to answer, with its own traceback: no moment of the sweep falls inside that. The floor
    # is twice what the interpreter takes to start and import nothing of ours, measured here, on this machine now.
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    floor = 2 * (time.monotonic() - t0)
    outcomes = set()
    for i in range(1, 12):
        proc = start_scan(repo, tmp_path / f"out{i}",
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a shell does
        time.sleep(max(span * i / 10, floor))
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        r = finish(proc, tmp_path / f"out{i}", timeout=60)
        assert "Traceback" not in r.stderr, r.stderr
        assert r.returncode in (130, 1), r  # < 0: killed by the signal
        if r.returncode == 130:
            assert "interrupted" in r.stderr, r
        else:  # it had answered before the signal: a finished run, whose results are the whole scan's
            assert _occ(r.findings) == _occ(whole.findings), r
            assert r.summary["interrupted"] is False
        outcomes.add(r.returncode)
    assert 130 in outcomes, outcomes


def test_a_ctrl_c_landing_in_a_finalizer_is_raised_again_not_printed_and_lost() -> None:
    """CPython prints a KeyboardInterrupt raised in a ``__del__`` ("Exception ignored … Traceback") and drops it;
    the command hands it back to the main thread, where it is answered as any Ctrl-C (the sweep above met it once
    in a few runs, inside regex's compiler)."""
    code = ("import time\nfrom auditor.signals import keep_interrupts\nkeep_interrupts()\nkeep_interrupts()\n"
            "class Finalized:\n    def __del__(self):\n        raise KeyboardInterrupt\n"
            "try:\n    Finalized()\n    for _ in range(200):\n        time.sleep(0.01)\n    print('lost')\n"
            "except KeyboardInterrupt:\n    print('raised again')\n"
            "class Other:\n    def __del__(self):\n        raise ValueError('still reported')\nOther()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["raised", "again"]
    assert "KeyboardInterrupt" not in r.stderr and "still reported" in r.stderr  # other finalizer errors as before


@pytest.mark.parametrize("moment", ["detection", "late"])
def test_sigkill_of_the_scan_never_corrupts_the_store(tmp_path: Path, bulk: tuple[Path, Result],
                                                      moment: str) -> None:
    repo, ref = bulk
    out = tmp_path / "out"
    total = ref.summary["blobs_scanned"]
    proc = start_scan(repo, out, "--jobs", "2")
    try:
        if moment == "detection":
            _freeze_mid_detection(proc, out, ref)
        else:  # every blob is stored: attribution, saving results or writing files is under way (or done)
            wait_for(lambda: proc.poll() is not None or _count(out, SCANNED) >= total, 60,
                      "the end of detection")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        kill_group(proc)  # the orphaned forkserver and workers too
    _integrity(out)
    rerun = run_scan(repo, out, "--jobs", "2")
    assert rerun.returncode == 1, rerun
    assert _occ(rerun.findings) == _occ(ref.findings)
    assert rerun.summary["commits_scanned"] == ref.summary["commits_scanned"]
    _integrity(out)
    again = run_scan(repo, out, "--jobs", "2")  # and a third run on the same store agrees too
    assert _occ(again.findings) == _occ(ref.findings)


# -- incremental --------------------------------------------------------------------------------------------------

def _blob_ids(repo: Path) -> set[str]:
    listing = run_git(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)")
    return {line.split()[0] for line in listing.splitlines() if line.endswith(" blob")}


def test_a_rerun_after_new_commits_scans_only_the_new_blobs(tmp_path: Path) -> None:
    repo = bulk_repo(tmp_path / "repo", commits=40, per_commit=100, pairs=6)
    run_git(repo, "reset", "-q", "--hard")
    out = tmp_path / "out"
    first = run_scan(repo, out, "--jobs", "2", "--show-secrets")
    assert first.returncode == 1 and len(first.findings) == 6, first
    matched = _count(out, MATCHED)
    assert matched == 6
    before = _blob_ids(repo)

    new_pairs = [make_pair() for _ in range(3)]
    for i in range(10):
        files = {f"new/n{i}.txt": f"new plain file {i}\n"}
        if i < 3:
            files[f"new/s{i}.py"] = snippet(new_pairs[i])
        if i == 5:  # a copy of an old secret file: an occurrence, but not a new blob
            old = next(f for f in first.findings)
            files["new/copy.txt"] = run_git(repo, "show", f"{old['commit']}:{old['path']}")
        repo.commit(f"new commit {i}", files)
    new_blobs = _blob_ids(repo) - before
    assert 13 <= len(new_blobs) <= 14

    rerun = run_scan(repo, out, "--jobs", "2", "--show-secrets")
    assert rerun.returncode == 1, rerun
    s = rerun.summary
    assert s["commits_scanned"] == first.summary["commits_scanned"] + 10
    assert s["blobs_scanned"] <= len(new_blobs) + matched  # new blobs (+ the few that matched, re-read)
    # only what is new is read and attributed: 10 commits and their 14 file changes
    assert first.summary["repos"][0]["commits_new"] == 40
    assert first.summary["repos"][0]["changes_read"] >= 4000
    assert s["repos"][0]["commits_new"] == 10
    assert s["repos"][0]["changes_read"] == 10 + 3 + 1
    fresh = run_scan(repo, tmp_path / "fresh", "--jobs", "2", "--show-secrets")
    assert _occ(rerun.findings) == _occ(fresh.findings)
    found = {(f["client_id"], f["client_secret"]) for f in rerun.findings}
    assert set(new_pairs) <= found
    assert {(f["client_id"], f["client_secret"]) for f in first.findings} <= found
    assert len(rerun.findings) == 6 + 3 + 1

    unchanged = run_scan(repo, out, "--jobs", "2")
    assert unchanged.summary["blobs_scanned"] <= matched + 3 + 1
    assert unchanged.summary["repos"][0]["commits_new"] == unchanged.summary["repos"][0]["changes_read"] == 0
    assert _occ(unchanged.findings) == _occ(fresh.findings)


# -- validation results persist ----------------------------------------------------------------------------------

def _validation_repo(tmp_path: Path, n: int) -> tuple[Path, list[tuple[str, str]]]:
    repo = GitRepo(tmp_path / "repo")
    pairs = [make_pair() for _ in range(n)]
    repo.commit(files={f"cfg/app{i}.py": snippet(p) for i, p in enumerate(pairs)})
    return repo, pairs


def test_validation_results_persist_and_recheck_asks_again(tmp_path: Path) -> None:
    repo, pairs = _validation_repo(tmp_path, 3)
    standin = TwilioStandIn(valid={pairs[0]}, test={pairs[1]})  # pairs[2]: 401, invalid
    out = tmp_path / "out"
    with serve_in_thread(standin) as url:
        first = run_scan(repo, out, "--twilio-api-url", url, validate=True)
        asked_first = len(standin.requests)
        second = run_scan(repo, out, "--twilio-api-url", url, validate=True)
        asked_second = len(standin.requests) - asked_first
        third = run_scan(repo, out, "--twilio-api-url", url, "--recheck", validate=True)
        asked_third = len(standin.requests) - asked_first - asked_second
    expected = {pairs[0][0]: ("valid", "live"), pairs[1][0]: ("valid", "test"), pairs[2][0]: ("invalid", None)}
    for r in (first, second, third):
        assert r.returncode == 1, r
        assert {f["client_id"]: (f["validity"], f["scope"]) for f in r.findings} == expected
    assert asked_first == 3 and sorted(standin.sids()[:3]) == sorted(p[0] for p in pairs)
    assert asked_second == 0  # answers came from the store
    assert second.summary["validation_requests"] == 0
    assert asked_third == 3  # --recheck asks again
    stored = _query(out, "SELECT secret_sha256, validity FROM checks")
    assert dict(stored) == {sha(pairs[0]): "valid", sha(pairs[1]): "valid", sha(pairs[2]): "invalid"}
    for p in pairs:  # the store never holds a token
        assert p[1].encode() not in (out / "audit.sqlite").read_bytes()


def test_a_failed_check_is_asked_again_on_the_next_run(tmp_path: Path) -> None:
    repo, pairs = _validation_repo(tmp_path, 2)
    out = tmp_path / "out"
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    down = run_scan(repo, out, "--twilio-api-url", dead, validate=True)
    assert down.returncode == 0 and {f["validity"] for f in down.findings} == {"failed_to_check"}, down
    standin = TwilioStandIn(valid=set(pairs))
    with serve_in_thread(standin) as url:
        up = run_scan(repo, out, "--twilio-api-url", url, validate=True)
    assert up.returncode == 1, up
    assert {f["validity"] for f in up.findings} == {"valid"}
    assert sorted(standin.sids()) == sorted(p[0] for p in pairs)


def test_ctrl_c_during_validation_keeps_the_checked_results(tmp_path: Path) -> None:
    n = 8
    repo, pairs = _validation_repo(tmp_path, n)
    standin = TwilioStandIn(valid=set(pairs), latency=0.2)
    args = ("--validate-concurrency", "1")
    with serve_in_thread(standin) as url:
        ref = run_scan(repo, tmp_path / "ref", "--twilio-api-url", url, *args, validate=True)
        assert ref.returncode == 1 and len(ref.findings) == n, ref
        standin.requests.clear()
        out = tmp_path / "out"
        proc = start_scan(repo, out, "--twilio-api-url", url, *args, validate=True)
        try:
            wait_for(lambda: len(standin.requests) >= 4 or proc.poll() is not None, 60, "four checks")
            proc.send_signal(signal.SIGINT)
            r = finish(proc, out, timeout=60)
        finally:
            if proc.poll() is None:
                kill_group(proc)
        assert r.returncode == 130, r
        assert "Traceback" not in r.stderr, r.stderr
        asked = standin.sids()
        kept = {row[0] for row in _query(out, "SELECT client_id FROM checks WHERE validity = 'valid'")}
        assert 3 <= len(kept) < n
        assert kept <= set(asked)
        standin.requests.clear()
        rerun = run_scan(repo, out, "--twilio-api-url", url, *args, validate=True)
        again = standin.sids()
    assert rerun.returncode == 1, rerun
    assert sorted(again) == sorted({p[0] for p in pairs} - kept)  # only the unchecked ones, each once
    assert _occ(rerun.findings) == _occ(ref.findings)
    assert {f["validity"] for f in rerun.findings} == {"valid"}


def test_worker_processes_exit_when_the_scan_is_killed(tmp_path: Path, bulk: tuple[Path, Result]) -> None:
    """A SIGKILLed scan (OOM killer, CI timeout) must not leave its forkserver and workers running forever."""
    repo, ref = bulk
    out = tmp_path / "out"
    proc = start_scan(repo, out, "--jobs", "2")
    try:
        _freeze_mid_detection(proc, out, ref)
        helpers = descendants(proc.pid)
        assert len(helpers) >= 3  # forkserver + 2 workers (+ resource tracker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(p) for p in helpers):
            time.sleep(0.1)
        left = [p for p in helpers if alive(p)]
    finally:
        kill_group(proc)
    assert not left, f"{len(left)} helper processes outlived the killed scan by 5 s"
