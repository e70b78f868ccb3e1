"""SPEC §6: the command line — exit codes, both entry points, the alert list, progress output, --jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BASE_ENV, make_pair, run_scan

AUDITOR_SCRIPT = Path(sys.executable).parent / "auditor"
BAR_CHARS = ("\r", "█", "▏", "▎", "▍", "▌", "▋", "▊", "▉", "it/s", "B/s", "\x1b[")


def pair_lines(pair: tuple[str, str]) -> str:
    return f'account_sid = "{pair[0]}"\nauth_token = "{pair[1]}"\n'


@pytest.fixture
def leaky(git):
    """A repository with two secrets (one of them at two paths) and one placeholder."""
    repo = git()
    a, b = make_pair(), make_pair()
    c1 = repo.commit("one", {"app.py": pair_lines(a), "README.txt": "hello\n",
                             "example.py": 'sid = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"\ntoken = "your_auth_token"\n'})
    c2 = repo.commit("two", {"copy/app.py": pair_lines(a), "svc/.env": f"TWILIO_SID={b[0]}\nTWILIO_TOKEN={b[1]}\n"})
    return repo, {(c1, "app.py", *a), (c2, "copy/app.py", *a), (c2, "svc/.env", *b)}, (a, b)


def findings_key(findings: list[dict]) -> set[tuple[str, str, str, str]]:
    return {(f["commit"], f["path"], f["client_id"], f["client_secret"]) for f in findings}


def test_exit_1_with_findings_and_a_redacted_alert_list(leaky, tmp_path):
    repo, expected, (a, b) = leaky
    rc, stdout, stderr, findings, summary = run_scan(repo.path, tmp_path / "out", "--show-secrets")
    assert rc == 1, (stdout, stderr)
    assert findings_key(findings) == expected
    assert summary["occurrences"] == 3 and summary["unique_secrets"] == 2

    rc, stdout, stderr, findings, _ = run_scan(repo.path, tmp_path / "out2")
    assert rc == 1, (stdout, stderr)
    alerts = [line for line in stdout.splitlines() if line.startswith("ALERT")]
    assert len(alerts) == 2  # one per unique secret
    for cid, tok in (a, b):
        assert tok not in stdout and tok not in stderr
        assert sum(cid in line and f"{tok[:4]}…{tok[-2:]}" in line for line in alerts) == 1
    assert {f["client_secret"] for f in findings} == {f"{a[1][:4]}…{a[1][-2:]}", f"{b[1][:4]}…{b[1][-2:]}"}


def test_exit_0_without_findings(git, tmp_path):
    repo = git()
    sid_only, tok_only = make_pair(), make_pair()
    repo.commit("one", {"a.py": f'sid = "{sid_only[0]}"\n', "b.py": f'auth_token = "{tok_only[1]}"\n',
                        "c.md": pair_lines(make_pair()), "d.py": 'sid = "AC1234567890abcdef1234567890abcdef"\n'
                                                                 'token = "1234567890abcdef1234567890abcdef"\n'})
    repo.commit("two", {"e.txt": "nothing\n"})
    rc, stdout, stderr, findings, summary = run_scan(repo.path, tmp_path / "out")
    assert rc == 0, (stdout, stderr)
    assert findings == []
    assert "ALERT" not in stdout
    assert summary["commits_scanned"] == 2
    assert summary["occurrences"] == 0
    assert summary["occurrences_per_million_commits"] == 0


def test_not_a_repository_exits_2(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "file.txt").write_text("hello\n")
    for target in (plain, tmp_path / "does-not-exist"):
        rc, stdout, stderr, findings, _ = run_scan(target, tmp_path / "out")
        assert rc == 2, (target, stdout, stderr)
        assert str(target) in stderr
        assert "repository" in stderr.lower()
        assert "Traceback" not in stderr
        assert findings == []
        assert "ALERT" not in stdout


def test_unwritable_out_exits_2(leaky, tmp_path):
    repo, _, _ = leaky
    regular = tmp_path / "a-file"
    regular.write_text("I am a file\n")
    for out in (regular / "out", regular):
        rc, stdout, stderr, _, _ = run_scan(repo.path, out)
        assert rc == 2, (out, stdout, stderr)
        assert str(out) in stderr
        assert "--out" in stderr
        assert "Traceback" not in stderr
        assert "ALERT" not in stdout
    assert regular.read_text() == "I am a file\n"


@pytest.mark.parametrize("args", [
    ["--jobs", "0"],
    ["--jobs", "many"],
    ["--max-blob-bytes", "-5"],
    ["--max-blob-bytes", "1MB"],
    ["--max-pairs-per-sid", "0"],
    ["--recheck-after", "soon"],
    ["--no-such-option"],
], ids=lambda a: " ".join(a))
def test_bad_option_value_exits_2(leaky, tmp_path, args):
    repo, _, _ = leaky
    rc, stdout, stderr, findings, summary = run_scan(repo.path, tmp_path / "out", *args)
    assert rc == 2, (stdout, stderr)
    assert args[0] in stderr or args[-1] in stderr
    assert "Traceback" not in stderr
    assert findings == [] and summary is None


def test_usage_errors_exit_2(tmp_path):
    env = {**os.environ, **BASE_ENV}
    for argv in ([], ["scan"], ["scan", str(tmp_path)], ["frobnicate"]):
        proc = subprocess.run([sys.executable, "-m", "auditor", *argv], capture_output=True, text=True, env=env,
                              timeout=60, check=False)
        assert proc.returncode == 2, (argv, proc.stdout, proc.stderr)
        assert "usage" in proc.stderr.lower()


def test_console_script_and_python_m_agree(leaky, tmp_path):
    repo, expected, _ = leaky
    assert AUDITOR_SCRIPT.is_file()
    rc1, out1, err1, f1, s1 = run_scan(repo.path, tmp_path / "out-m", "--show-secrets")
    rc2, out2, err2, f2, s2 = run_scan(repo.path, tmp_path / "out-script", "--show-secrets",
                                       command=[str(AUDITOR_SCRIPT)])
    assert rc1 == rc2 == 1, (err1, err2)
    assert findings_key(f1) == findings_key(f2) == expected, (err1, err2)
    assert s1["occurrences"] == s2["occurrences"] == 3
    assert [line for line in out1.splitlines() if line.startswith("ALERT")] == \
        [line for line in out2.splitlines() if line.startswith("ALERT")]
    help_ = subprocess.run([str(AUDITOR_SCRIPT), "scan", "--help"], capture_output=True, text=True, timeout=60,
                           check=False)
    assert help_.returncode == 0
    for option in ("--out", "--no-validate", "--twilio-api-url", "--jobs", "--show-secrets", "--no-progress",
                   "--detectors", "--max-blob-bytes", "--recheck"):
        assert option in help_.stdout


def test_no_progress_output_and_jobs_1(leaky, tmp_path):
    repo, expected, _ = leaky
    rc, stdout, stderr, findings, _ = run_scan(repo.path, tmp_path / "out", "--show-secrets", "--jobs", "1")
    assert rc == 1, (stdout, stderr)
    assert findings_key(findings) == expected
    for mark in BAR_CHARS:
        assert mark not in stderr, mark
        assert mark not in stdout, mark


def test_progress_when_stderr_is_not_a_tty(leaky, tmp_path):
    """Without --no-progress and without a terminal: no bars, only a final line per stage (SPEC §6)."""
    repo, expected, _ = leaky
    rc, stdout, stderr, findings, _ = run_scan(repo.path, tmp_path / "out", "--show-secrets", progress=True)
    assert rc == 1, (stdout, stderr)
    assert findings_key(findings) == expected
    for mark in BAR_CHARS:
        assert mark not in stderr, mark
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 4, stderr


def test_bare_repository(leaky, tmp_path):
    repo, expected, _ = leaky
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(bare)], check=True, capture_output=True,
                   env={**os.environ, **BASE_ENV})
    rc, stdout, stderr, findings, summary = run_scan(bare, tmp_path / "out", "--show-secrets")
    assert rc == 1, (stdout, stderr)
    assert findings_key(findings) == expected
    assert summary["commits_scanned"] == 2
