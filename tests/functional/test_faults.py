"""SPEC §8: every bad input gets a clear message and loses nothing.

Each test builds a real repository in a temp dir with the real ``git``, breaks it the way the world does (a missing
or corrupt loose object, a shallow clone, a gitlink, a symlink, undecodable bytes, a dead validation endpoint, a
killed detection worker…) and runs the real CLI in a subprocess: exit code, message on stderr, and what the summary
and findings say. Planted credentials are random hex, never real ones.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from auditor.testing import TwilioStandIn, serve_in_thread
from tests.helpers.detectors import BAD_REGEX, DELETE, builtin_doc, edited, write_detector
from tests.helpers.env import env
from tests.helpers.git import GitRepo, bulk_repo, run_git
from tests.helpers.pairs import make_pair, snippet
from tests.helpers.procs import alive, free_port, kill_group, wait_for, workers
from tests.helpers.scan import Result, finish, read_results, run_scan, start_scan


def _occ(findings: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {(f["commit"], f["path"], f["client_id"], f["secret_sha256"]) for f in findings}


def _no_traceback(r: Result) -> None:
    assert "Traceback" not in r.stderr, r.stderr


def _no_plaintext(r: Result, *tokens: str) -> None:
    for t in tokens:
        assert t not in r.stdout and t not in r.stderr


def _loose(repo: Path, oid: str) -> Path:
    gitdir = repo / ".git" if (repo / ".git").is_dir() else repo
    path = gitdir / "objects" / oid[:2] / oid[2:]
    assert path.is_file(), f"{oid} is not a loose object"
    return path


# -- not a repository, empty, shallow ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["plain_dir", "missing", "file"])
def test_not_a_repository_exits_2_with_a_message(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "target"
    if kind == "plain_dir":
        target.mkdir()
        (target / "README.txt").write_text("not a repository\n")
    elif kind == "file":
        target.write_text(snippet(make_pair()))
    r = run_scan(target, tmp_path / "out")
    assert r.returncode == 2, r
    _no_traceback(r)
    assert "not a git repository" in r.stderr.lower()
    assert str(target) in r.stderr or target.name in r.stderr
    assert "pass" in r.stderr.lower()  # says what to pass instead


@pytest.mark.parametrize("bare", [False, True])
def test_empty_repository_has_null_rates(tmp_path: Path, bare: bool) -> None:
    repo = GitRepo(tmp_path / "empty", bare=bare)
    r = run_scan(repo, tmp_path / "out")
    assert r.returncode == 0, r
    _no_traceback(r)
    s = r.summary
    assert s is not None and s["commits_scanned"] == 0 and s["occurrences"] == 0 and r.findings == []
    assert s["occurrences_per_million_commits"] is None
    assert s["commits_with_occurrences_per_million_commits"] is None
    for det in s["detectors"].values():
        assert det["occurrences_per_million_commits"] is None
    assert "inf" not in (tmp_path / "out" / "summary.json").read_text().lower()


def test_shallow_clone_is_scanned_and_flagged(tmp_path: Path) -> None:
    origin = GitRepo(tmp_path / "origin")
    old, new = make_pair(), make_pair()
    origin.commit(files={"old.py": snippet(old)})
    origin.commit(files={}, remove=("old.py",))  # gone before the shallow boundary: a shallow clone cannot see it
    for i in range(3):
        origin.commit(files={f"f{i}.txt": f"plain {i}\n"})
    last = origin.commit(files={"new.py": snippet(new)})
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "3", f"file://{origin}", str(clone)], check=True, env=env(),
                   capture_output=True)
    assert (clone / ".git" / "shallow").is_file()
    r = run_scan(clone, tmp_path / "out", "--show-secrets")
    assert r.returncode == 1, r
    s = r.summary
    assert s["shallow"] is True and s["repos"][0]["shallow"] is True
    assert s["commits_scanned"] == len(run_git(clone, "rev-list", "--all").split()) == 3
    assert {(f["commit"], f["path"], f["client_id"], f["client_secret"]) for f in r.findings} == {
        (last, "new.py", *new)}


def test_shallow_clone_is_announced(tmp_path: Path) -> None:
    """SPEC §8 lists a shallow clone among the inputs that get a clear message: history was cut off."""
    origin = GitRepo(tmp_path / "origin")
    for i in range(4):
        origin.commit(files={f"f{i}.txt": f"plain {i}\n"})
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "2", f"file://{origin}", str(clone)], check=True, env=env(),
                   capture_output=True)
    r = run_scan(clone, tmp_path / "out")
    assert r.returncode == 0, r
    said = (r.stdout + r.stderr).replace(str(tmp_path), "<tmp>")  # the temp dir's name holds the test's name
    assert "shallow" in said.lower(), f"a shallow clone is scanned without telling the user: {said!r}"


# -- missing and corrupt objects ---------------------------------------------------------------------------------

def _two_secret_repo(tmp_path: Path) -> tuple[Path, tuple[str, str], tuple[str, str], dict[str, str]]:
    repo = GitRepo(tmp_path / "repo")
    a, b = make_pair(), make_pair()
    repo.commit(files={"a.py": snippet(a), "plain1.txt": "just text\n", "sub/plain2.txt": "more text\n"})
    repo.commit(files={"b.py": "# config\n" + snippet(b), "plain3.txt": "third plain file\n"})
    blobs = {name: run_git(repo, "rev-parse", f"HEAD:{name}").strip()
             for name in ("a.py", "b.py", "plain1.txt", "sub/plain2.txt", "plain3.txt")}
    blobs["sub"] = run_git(repo, "rev-parse", "HEAD:sub").strip()
    return repo, a, b, blobs


# libgit2 still reads a retired "pack-like" loose format: these bytes parse, in it, as headers of another type or
# of a blob far over --max-blob-bytes (which would be skipped unread, silently); git reads neither.
_PACKLIKE = {"garbage_says_commit": bytes([0x9F, 0x01]) + bytes(62),
             "garbage_says_huge_blob": bytes([0xBF, 0xFF, 0xFF, 0xFF, 0x7F]) + bytes(59)}


@pytest.mark.parametrize("fault", ["missing_blob", "truncated_blob", "garbage_blob", "bad_zlib_blob",
                                   "missing_tree", *_PACKLIKE])
def test_missing_or_corrupt_object_is_counted_and_the_scan_goes_on(tmp_path: Path, fault: str) -> None:
    repo, a, b, blobs = _two_secret_repo(tmp_path)
    victim = blobs["sub" if fault == "missing_tree" else "plain1.txt"]
    path = _loose(repo, victim)
    os.chmod(path, 0o644)
    if fault in ("missing_blob", "missing_tree"):
        path.unlink()
    elif fault == "truncated_blob":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif fault == "garbage_blob":
        path.write_bytes(secrets.token_bytes(64))
    elif fault in _PACKLIKE:
        path.write_bytes(_PACKLIKE[fault])
    else:  # valid zlib, wrong object: the header claims more bytes than there are
        path.write_bytes(zlib.compress(b"blob 999\0short"))
    # a guard against a hang, not a measure: bad_zlib_blob alone waits out the reader's 5 s patience
    r = run_scan(repo, tmp_path / "out", "--show-secrets", timeout=60)
    _no_traceback(r)
    assert r.returncode == 1, r  # both secrets are elsewhere: still found, still alerts
    assert {(f["client_id"], f["client_secret"]) for f in r.findings} == {a, b}
    s = r.summary
    assert s["error_count"] >= 1
    assert any(victim in e for e in s["errors"]), s["errors"]
    assert "summary.json" in r.stdout or "could not be read" in (r.stdout + r.stderr)


def test_missing_blob_holding_a_secret_is_reported_not_silently_dropped(tmp_path: Path) -> None:
    repo, a, b, blobs = _two_secret_repo(tmp_path)
    _loose(repo, blobs["a.py"]).unlink()
    r = run_scan(repo, tmp_path / "out", "--show-secrets")
    assert r.returncode == 1, r
    assert {(f["client_id"], f["client_secret"]) for f in r.findings} == {b}
    assert r.summary["error_count"] == 1 and blobs["a.py"] in r.summary["errors"][0]
    # the unreadable blob is not recorded as scanned: once the object is back, a rerun finds its secret
    run_git(repo, "hash-object", "-w", "a.py")
    r2 = run_scan(repo, tmp_path / "out", "--show-secrets")
    assert {(f["client_id"], f["client_secret"]) for f in r2.findings} == {a, b}
    assert r2.summary["error_count"] == 0


# -- huge, binary, submodules, symlinks, undecodable bytes --------------------------------------------------------

def test_huge_blob_is_skipped_and_counted(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    big, small = make_pair(), make_pair()
    filler = ("x" * 99 + "\n") * 20_000  # 2 MB of text
    repo.commit(files={"big.txt": snippet(big) + filler, "small.py": snippet(small)})
    r = run_scan(repo, tmp_path / "out", "--max-blob-bytes", "1000000", "--show-secrets")
    assert r.returncode == 1, r
    assert r.summary["blobs_skipped"].get("too_large") == 1
    assert {(f["client_id"], f["client_secret"]) for f in r.findings} == {small}
    # the same blob under the default limit is scanned
    r2 = run_scan(repo, tmp_path / "out2", "--show-secrets")
    assert {(f["client_id"], f["client_secret"]) for f in r2.findings} == {small, big}
    assert not r2.summary["blobs_skipped"].get("too_large")


def test_binary_blobs_follow_gits_rule(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    early, late, text = make_pair(), make_pair(), make_pair()
    repo.commit(files={
        "early.bin": b"\x00\x01\x02" + snippet(early).encode(),  # NUL in the first 8000 bytes: binary, skipped
        "late.dat": snippet(late).encode() + b"." * 9000 + b"\x00",  # first NUL after 8000 bytes: text
        "text.py": snippet(text),
        "random.bin": secrets.token_bytes(4096) + b"\x00",
    })
    r = run_scan(repo, tmp_path / "out", "--show-secrets")
    assert r.returncode == 1, r
    assert {(f["client_id"], f["client_secret"]) for f in r.findings} == {late, text}
    assert r.summary["blobs_skipped"].get("binary", 0) >= 1
    assert r.summary["blobs_skipped"]["binary"] == 2  # early.bin and random.bin, each skipped
    assert r.summary["error_count"] == 0


def test_submodule_entry_is_no_crash(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    pair = make_pair()
    repo.commit(files={"app.py": snippet(pair)})
    gitlink = secrets.token_hex(20)  # a commit of another repository: not an object of this one
    run_git(repo, "update-index", "--add", "--cacheinfo", f"160000,{gitlink},vendor/sub")
    (repo / ".gitmodules").write_text('[submodule "sub"]\n\tpath = vendor/sub\n\turl = https://example.com/x.git\n')
    run_git(repo, "add", ".gitmodules")
    run_git(repo, "commit", "-q", "-m", "add a submodule")
    assert f"160000 commit {gitlink}" in run_git(repo, "ls-tree", "-r", "HEAD")
    r = run_scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.returncode == 1, r
    assert {(f["client_id"], f["client_secret"], f["path"]) for f in r.findings} == {(*pair, "app.py")}
    assert r.summary["error_count"] == 0, r.summary["errors"]  # a gitlink is not a missing object
    assert r.summary["blobs_skipped"].get("submodule") == 1


def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    inside, outside = make_pair(), make_pair()
    secret_outside = tmp_path / "outside.py"  # not in the repository: must never be read
    secret_outside.write_text(snippet(outside))
    (repo / "real.py").write_text(snippet(inside))
    os.symlink("real.py", repo / "link.py")
    os.symlink(str(secret_outside), repo / "escape.py")
    os.symlink("does/not/exist.py", repo / "dangling.py")
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "links")
    assert run_git(repo, "ls-tree", "HEAD", "link.py").startswith("120000")
    r = run_scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.returncode == 1, r
    assert {(f["client_id"], f["client_secret"], f["path"]) for f in r.findings} == {(*inside, "real.py")}
    assert r.summary["blobs_skipped"].get("symlink") == 3
    assert r.summary["error_count"] == 0


def test_non_utf8_path_and_latin1_contents(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    pair = make_pair()
    name = b"conf/caf\xe9-\xff.py"  # latin-1 é and a byte that is never UTF-8
    content = ("# Param\xe8tres de l'application \xe9t\xe9 \xa9\n" + snippet(pair)).encode("latin-1")
    repo.commit(files={name: content, "ok.txt": "plain\n"})
    assert b"caf\\351" in subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "HEAD"], capture_output=True,
                                         env=env(), check=True).stdout
    r = run_scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.returncode == 1, r
    [f] = r.findings
    assert (f["client_id"], f["client_secret"], f["line"]) == (*pair, 2)
    assert f["path"] == "conf/caf\ufffd-\ufffd.py"
    (tmp_path / "out" / "findings.jsonl").read_bytes().decode("utf-8")  # the output itself is valid UTF-8


# -- unwritable --out, malformed detector files ------------------------------------------------------------------

@pytest.mark.parametrize("option", [("--validate-rate", "nan"), ("--validate-rate", "1e-9"),
                                    ("--validate-timeout", "inf"), ("--validate-timeout", "nan"),
                                    ("--twilio-api-url", "notaurl"), ("--twilio-api-url", "ftp://127.0.0.1/"),
                                    ("--jobs", "0"), ("--max-blob-bytes", "-5")])
def test_option_values_no_run_could_use_exit_2_before_scanning(tmp_path: Path, option: tuple[str, str]) -> None:
    repo, _ = _one_secret_repo(tmp_path)
    r = run_scan(repo, tmp_path / "out", *option, validate=True)
    assert r.returncode == 2, r
    _no_traceback(r)
    assert option[0] in r.stderr and r.summary is None  # refused before anything ran


@pytest.mark.parametrize("kind", ["out_is_a_file", "parent_is_a_file", "store_is_a_directory",
                                  "findings_is_a_directory"])
def test_unwritable_out_exits_2_with_a_message(tmp_path: Path, kind: str) -> None:
    repo = GitRepo(tmp_path / "repo")
    pair = make_pair()
    repo.commit(files={"a.py": snippet(pair)})
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file\n")
    if kind == "out_is_a_file":
        out = blocker
    elif kind == "parent_is_a_file":
        out = blocker / "out"
    else:
        out = tmp_path / "out"
        (out / ("audit.sqlite" if kind == "store_is_a_directory" else "findings.jsonl")).mkdir(parents=True)
    r = run_scan(repo, out, "--show-secrets")
    _no_traceback(r)
    assert r.returncode == 2, r
    assert str(out) in r.stderr or out.name in r.stderr
    assert "--out" in r.stderr or "directory you can write" in r.stderr
    _no_plaintext(r, pair[1])


def _without_capabilities() -> None:
    """In the child, before exec: drop every capability from the bounding set, so that the program it runs has none
    even as root (no CAP_DAC_OVERRIDE: file permissions bind it like any user)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), f"cannot drop capability {cap}")


def test_a_read_only_out_exits_2_with_a_message(tmp_path: Path) -> None:
    """EACCES on --out (SPEC §8). Root writes into read-only directories, so as root (CI) the scan runs without
    any capability: the directory's permission bits then bind it as they bind every user."""
    repo = GitRepo(tmp_path / "repo")
    pair = make_pair()
    repo.commit(files={"a.py": snippet(pair)})
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)  # its owner may enter it, not create anything in it
    out = ro / "out"
    try:
        extra = {"preexec_fn": _without_capabilities} if os.geteuid() == 0 else {}
        r = finish(start_scan(repo, out, "--show-secrets", **extra), out)
    finally:
        ro.chmod(0o755)
    _no_traceback(r)
    assert r.returncode == 2, r
    assert str(out) in r.stderr
    assert "Permission denied" in r.stderr and "directory you can write" in r.stderr
    assert not out.exists()
    _no_plaintext(r, pair[1])


def _detector_doc() -> dict[str, Any]:
    return builtin_doc("custom_twilio_copy", name="Custom copy")


def test_a_valid_custom_detector_file_loads(tmp_path: Path) -> None:
    """The control for the malformed cases below: the unmodified copy is accepted."""
    repo = GitRepo(tmp_path / "repo")
    repo.commit(files={"a.py": snippet(make_pair())})
    dets = tmp_path / "detectors"
    write_detector(dets, "custom.yaml", _detector_doc())
    r = run_scan(repo, tmp_path / "out", "--detectors", str(dets))
    assert r.returncode == 1, r
    assert {f["detector"] for f in r.findings} >= {"custom_twilio_copy"}
    # a secret is (detector, client_id, client_secret) (SPEC §4): two detectors matching one pair make two
    assert len(r.findings) == 2 and r.summary["unique_secrets"] == 2
    assert len((tmp_path / "out" / "secrets.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(("change", "field"), [
    ("yaml", "yaml"),
    ("empty", "top level"),
    ("matchers", "matchers"),
    ("matchers.client_id.pattern", "matchers.client_id.pattern"),
    ("minimum_number_of_matches", "minimum_number_of_matches"),
    ("check.responses.0.validity", "check.responses[0].validity"),
    ("pre_validators.0.type", "pre_validators[0].type"),
])
def test_malformed_detector_file_names_the_file_and_the_field(tmp_path: Path, change: str, field: str) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.commit(files={"a.py": snippet(make_pair())})
    dets = tmp_path / "detectors"
    doc = _detector_doc()
    if change == "yaml":
        text = yaml.safe_dump(doc) + "matchers: [unclosed\n  - : :\n"
    elif change == "empty":
        text = ""
    else:
        value = {"matchers": DELETE, "matchers.client_id.pattern": BAD_REGEX,
                 "minimum_number_of_matches": "two", "check.responses.0.validity": "probably",
                 "pre_validators.0.type": "NoSuchPreValidator"}[change]
        text = yaml.safe_dump(edited(doc, change, value))
    write_detector(dets, "broken_twilio.yaml", text)
    r = run_scan(repo, tmp_path / "out", "--detectors", str(dets))
    _no_traceback(r)
    assert r.returncode == 2, r
    assert "broken_twilio.yaml" in r.stderr
    assert field in r.stderr, r.stderr


def test_cli_rejects_a_malformed_detector_file(git, tmp_path):
    repo = git()
    repo.commit("one", {"app.py": "print('hello')\n"})
    detectors = tmp_path / "detectors"
    write_detector(detectors, "mine.yaml", edited(builtin_doc(), "matchers.client_id.pattern", BAD_REGEX))
    r = run_scan(repo.path, tmp_path / "out", "--detectors", str(detectors))
    assert r.returncode == 2, r
    assert "mine.yaml" in r.stderr
    assert "matchers.client_id.pattern" in r.stderr
    assert "Traceback" not in r.stderr
    assert r.findings == []


def test_cli_rejects_a_detector_file_missing_a_field(git, tmp_path):
    repo = git()
    repo.commit("one", {"app.py": "print('hello')\n"})
    detectors = tmp_path / "detectors"
    write_detector(detectors, "nameless.yaml", builtin_doc(company=DELETE))
    r = run_scan(repo.path, tmp_path / "out", "--detectors", str(detectors))
    assert r.returncode == 2, r
    assert "nameless.yaml" in r.stderr
    assert "company" in r.stderr
    assert "Traceback" not in r.stderr


# -- the validation endpoint: down, slow, rate-limiting, garbage ---------------------------------------------------

def _one_secret_repo(tmp_path: Path) -> tuple[Path, tuple[str, str]]:
    repo = GitRepo(tmp_path / "repo")
    pair = make_pair()
    repo.commit(files={"settings.py": snippet(pair)})
    return repo, pair


def test_validation_endpoint_down(tmp_path: Path) -> None:
    repo, pair = _one_secret_repo(tmp_path)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    r = run_scan(repo, tmp_path / "out", "--twilio-api-url", url, validate=True)
    _no_traceback(r)
    assert r.returncode == 0, r  # failed_to_check is not an alert
    assert [f["validity"] for f in r.findings] == ["failed_to_check"]
    assert r.summary["validation_requests"] >= 3  # retried before giving up
    assert r.summary["secrets_failed_to_check"] == 1
    assert "1 of 1 secrets could not be checked" in r.stderr  # exit 0, but never silently
    _no_plaintext(r, pair[1])


def test_validation_endpoint_slow(tmp_path: Path) -> None:
    repo, pair = _one_secret_repo(tmp_path)
    standin = TwilioStandIn(valid={pair}, latency=1.5)  # every answer arrives after the client's timeout
    with serve_in_thread(standin) as url:
        r = run_scan(repo, tmp_path / "out", "--twilio-api-url", url, "--validate-timeout", "0.3", validate=True)
    _no_traceback(r)
    assert r.returncode == 0, r
    assert [f["validity"] for f in r.findings] == ["failed_to_check"]
    assert 3 <= len(standin.requests) <= 4


def test_validation_endpoint_rate_limiting_then_ok(tmp_path: Path) -> None:
    repo, pair = _one_secret_repo(tmp_path)
    standin = TwilioStandIn(valid={pair}, faults=["429", "429-date"], retry_after=1)
    with serve_in_thread(standin) as url:
        started = time.monotonic()
        r = run_scan(repo, tmp_path / "out", "--twilio-api-url", url, validate=True)
        elapsed = time.monotonic() - started
    _no_traceback(r)
    assert r.returncode == 1, r
    assert [(f["validity"], f["scope"]) for f in r.findings] == [("valid", "live")]
    assert len(standin.requests) == 3
    times = [t for t, _ in standin.requests]
    assert times[1] - times[0] >= 0.9  # Retry-After honoured
    assert elapsed >= 1.0
    _no_plaintext(r, pair[1])


@pytest.mark.parametrize("garbage", ["html200", "badjson", "wrongsid", "drop"])
def test_validation_endpoint_answering_garbage_is_never_valid_or_invalid(tmp_path: Path, garbage: str) -> None:
    repo, pair = _one_secret_repo(tmp_path)
    standin = TwilioStandIn(valid={pair}, faults=[garbage] * 10)
    with serve_in_thread(standin) as url:
        r = run_scan(repo, tmp_path / "out", "--twilio-api-url", url, validate=True)
    _no_traceback(r)
    assert r.returncode == 0, r
    assert [f["validity"] for f in r.findings] == ["failed_to_check"]
    assert 3 <= len(standin.requests) <= 4  # retried, then given up
    _no_plaintext(r, pair[1])


def test_validation_garbage_then_a_real_answer_is_valid(tmp_path: Path) -> None:
    repo, pair = _one_secret_repo(tmp_path)
    standin = TwilioStandIn(valid={pair}, faults=["html200", "503"])
    with serve_in_thread(standin) as url:
        r = run_scan(repo, tmp_path / "out", "--twilio-api-url", url, validate=True)
    assert r.returncode == 1, r
    assert [f["validity"] for f in r.findings] == ["valid"]
    assert len(standin.requests) == 3


# -- a detection worker that dies -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bulk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bulk") / "repo"
    bulk_repo(path, commits=200, per_commit=100, pairs=12)
    return path


def test_a_detection_worker_killed_mid_scan(tmp_path: Path, bulk: Path) -> None:
    ref = run_scan(bulk, tmp_path / "ref", "--jobs", "2")
    assert ref.returncode == 1 and len(ref.findings) == 12, ref
    out = tmp_path / "out"
    proc = start_scan(bulk, out, "--jobs", "2")
    stopped = False
    try:
        found = wait_for(lambda: workers(proc.pid), 60, "detection workers")
        # Freeze the scan's main process (the workers run on) so the kill lands while batches are still owed,
        # whatever the machine's speed; then kill one worker the way the OOM killer would.
        os.kill(proc.pid, signal.SIGSTOP)
        stopped = True
        victim = found[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not alive(victim), 10, "the killed worker to die")
        os.kill(proc.pid, signal.SIGCONT)
        stopped = False
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if stopped:
            os.kill(proc.pid, signal.SIGCONT)
        if proc.poll() is None:
            kill_group(proc)
    err = stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert proc.returncode == 1, err
    findings, summary = read_results(out)
    assert _occ(findings) == _occ(ref.findings)  # nothing lost
    assert summary["blobs_scanned"] == ref.summary["blobs_scanned"]  # every blob scanned, none twice
    assert summary["error_count"] >= 1
    assert any("worker" in e for e in summary["errors"]), summary["errors"]  # and the death is reported


def test_one_repository_named_twice_is_scanned_and_counted_once(tmp_path: Path) -> None:
    repo, pair = _one_secret_repo(tmp_path)
    once = run_scan(repo, tmp_path / "once")
    r = run_scan([repo, repo / ".git", f"{repo}/"], tmp_path / "twice")
    assert (once.returncode, r.returncode) == (1, 1), r
    _no_traceback(r)
    for key in ("commits_scanned", "blobs_scanned", "occurrences", "unique_secrets"):
        assert r.summary[key] == once.summary[key], key
    assert len(r.findings) == len(once.findings) == 1
    assert len(r.summary["repos"]) == 1 and len(r.summary["repos"][0]["also_named"]) == 2
    assert "scanned and counted once" in r.stderr


def test_an_out_reused_for_another_repository_says_what_it_holds(tmp_path: Path) -> None:
    first, _ = _one_secret_repo(tmp_path / "a")
    second, _ = _one_secret_repo(tmp_path / "b")
    out = tmp_path / "out"
    assert run_scan(first, out).summary["store_also_holds"] == []
    r = run_scan(second, out)
    assert r.returncode == 1, r
    assert r.summary["store_also_holds"] == [str(first)]
    assert "also holds 1 other repository" in r.stderr and "fresh --out" in r.stderr


def test_an_out_inside_the_work_tree_is_warned_about(tmp_path: Path) -> None:
    repo, _ = _one_secret_repo(tmp_path)
    inside = run_scan(repo, repo / "audit-out")
    outside = run_scan(repo, tmp_path / "out")
    assert (inside.returncode, outside.returncode) == (1, 1)
    assert inside.summary["repos"][0]["out_in_work_tree"] is True and ".gitignore" in inside.stderr
    assert outside.summary["repos"][0]["out_in_work_tree"] is False and ".gitignore" not in outside.stderr
