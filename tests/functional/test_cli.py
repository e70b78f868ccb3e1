"""SPEC §6: the command line — exit codes, both entry points, the alert list, progress output, --jobs."""

from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.helpers.env import env
from tests.helpers.pairs import make_pair, redacted, snippet
from tests.helpers.scan import finish, run_auditor, run_scan, start_scan

AUDITOR_SCRIPT = Path(sys.executable).parent / "auditor"
BAR_CHARS = ("\r", "█", "▏", "▎", "▍", "▌", "▋", "▊", "▉", "it/s", "B/s", "\x1b[")


@pytest.fixture
def leaky(git):
    """A repository with two secrets (one of them at two paths) and one placeholder."""
    repo = git()
    a, b = make_pair(), make_pair()
    c1 = repo.commit("one", {"app.py": snippet(a), "README.txt": "hello\n",
                             "example.py": 'sid = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"\ntoken = "your_auth_token"\n'})
    c2 = repo.commit("two", {"copy/app.py": snippet(a), "svc/.env": f"TWILIO_SID={b[0]}\nTWILIO_TOKEN={b[1]}\n"})
    return repo, {(c1, "app.py", *a), (c2, "copy/app.py", *a), (c2, "svc/.env", *b)}, (a, b)


def findings_key(findings: list[dict]) -> set[tuple[str, str, str, str]]:
    return {(f["commit"], f["path"], f["client_id"], f["client_secret"]) for f in findings}


def test_exit_1_with_findings_and_a_redacted_alert_list(leaky, tmp_path):
    repo, expected, (a, b) = leaky
    r = run_scan(repo.path, tmp_path / "out", "--show-secrets")
    assert r.returncode == 1, r
    assert findings_key(r.findings) == expected
    assert r.summary["occurrences"] == 3 and r.summary["unique_secrets"] == 2

    r = run_scan(repo.path, tmp_path / "out2")
    assert r.returncode == 1, r
    alerts = r.alerts()
    assert len(alerts) == 2  # one per unique secret
    for cid, tok in (a, b):
        assert tok not in r.stdout and tok not in r.stderr
        assert sum(cid in line and redacted(tok) in line for line in alerts) == 1
    assert {f["client_secret"] for f in r.findings} == {redacted(a[1]), redacted(b[1])}


def test_exit_0_without_findings(git, tmp_path):
    repo = git()
    sid_only, tok_only = make_pair(), make_pair()
    repo.commit("one", {"a.py": f'sid = "{sid_only[0]}"\n', "b.py": f'auth_token = "{tok_only[1]}"\n',
                        "c.md": snippet(make_pair()), "d.py": 'sid = "AC1234567890abcdef1234567890abcdef"\n'
                                                                 'token = "1234567890abcdef1234567890abcdef"\n'})
    repo.commit("two", {"e.txt": "nothing\n"})
    r = run_scan(repo.path, tmp_path / "out")
    assert r.returncode == 0, r
    assert r.findings == []
    assert "ALERT" not in r.stdout
    assert r.summary["commits_scanned"] == 2
    assert r.summary["occurrences"] == 0
    assert r.summary["occurrences_per_million_commits"] == 0


def test_not_a_repository_exits_2(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "file.txt").write_text("hello\n")
    for target in (plain, tmp_path / "does-not-exist"):
        r = run_scan(target, tmp_path / "out")
        assert r.returncode == 2, (target, r)
        assert str(target) in r.stderr
        assert "repository" in r.stderr.lower()
        assert "Traceback" not in r.stderr
        assert r.findings == []
        assert "ALERT" not in r.stdout


def test_unwritable_out_exits_2(leaky, tmp_path):
    repo, _, _ = leaky
    regular = tmp_path / "a-file"
    regular.write_text("I am a file\n")
    for out in (regular / "out", regular):
        r = run_scan(repo.path, out)
        assert r.returncode == 2, (out, r)
        assert str(out) in r.stderr
        assert "--out" in r.stderr
        assert "Traceback" not in r.stderr
        assert "ALERT" not in r.stdout
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
    r = run_scan(repo.path, tmp_path / "out", *args)
    assert r.returncode == 2, r
    assert args[0] in r.stderr or args[-1] in r.stderr
    assert "Traceback" not in r.stderr
    assert r.findings == [] and r.summary is None


def test_usage_errors_exit_2(tmp_path):
    for argv in ([], ["scan"], ["scan", str(tmp_path)], ["frobnicate"]):
        proc = run_auditor(*argv, timeout=60)
        assert proc.returncode == 2, (argv, proc.stdout, proc.stderr)
        assert "usage" in proc.stderr.lower()


def test_console_script_and_python_m_agree(leaky, tmp_path):
    repo, expected, _ = leaky
    assert AUDITOR_SCRIPT.is_file()
    by_module = run_scan(repo.path, tmp_path / "out-m", "--show-secrets")
    by_script = run_scan(repo.path, tmp_path / "out-script", "--show-secrets", command=[str(AUDITOR_SCRIPT)])
    assert by_module.returncode == by_script.returncode == 1, (by_module.stderr, by_script.stderr)
    assert findings_key(by_module.findings) == findings_key(by_script.findings) == expected
    assert by_module.summary["occurrences"] == by_script.summary["occurrences"] == 3
    assert by_module.alerts() == by_script.alerts()
    help_ = subprocess.run([str(AUDITOR_SCRIPT), "scan", "--help"], capture_output=True, text=True, timeout=60,
                           env=env(), check=False)
    assert help_.returncode == 0
    for option in ("--out", "--no-validate", "--twilio-api-url", "--jobs", "--show-secrets", "--no-progress",
                   "--detectors", "--max-blob-bytes", "--recheck"):
        assert option in help_.stdout


def test_no_progress_output_and_jobs_1(leaky, tmp_path):
    repo, expected, _ = leaky
    r = run_scan(repo.path, tmp_path / "out", "--show-secrets", "--jobs", "1")
    assert r.returncode == 1, r
    assert findings_key(r.findings) == expected
    for mark in BAR_CHARS:
        assert mark not in r.stderr, mark
        assert mark not in r.stdout, mark


def test_progress_when_stderr_is_not_a_tty(leaky, tmp_path):
    """Without --no-progress and without a terminal: no bars, only a final line per stage (SPEC §6)."""
    repo, expected, _ = leaky
    r = run_scan(repo.path, tmp_path / "out", "--show-secrets", progress=True)
    assert r.returncode == 1, r
    assert findings_key(r.findings) == expected
    for mark in BAR_CHARS:
        assert mark not in r.stderr, mark
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 4, r.stderr
    # a final line per stage (SPEC §6); without validation, detection is the only stage with a bar
    assert [line.split(":")[1].strip() for line in lines] == ["detection"], r.stderr
    assert re.fullmatch(r"auditor: detection: 4 blobs, [0-9.]+ MiB, 2 with candidates in [0-9.]+ s", lines[0]), lines


def test_progress_bars_on_a_terminal(leaky, tmp_path):
    """With stderr a terminal, tqdm draws the detection bar (and no closing line); stdout is untouched."""
    repo, expected, _ = leaky
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal 120 columns wide
    try:
        proc = start_scan(repo.path, tmp_path / "out", "--show-secrets", progress=True, stderr=follower)
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not chunk:
                break
            drawn += chunk
        r = finish(proc, tmp_path / "out")
    finally:
        os.close(leader)
    assert r.returncode == 1, r
    assert findings_key(r.findings) == expected
    text = drawn.decode("utf-8", "replace")
    assert "detection" in text and "\r" in text, text  # a bar redrawn in place
    assert "auditor: detection:" not in text  # the closing line is for logs, not terminals
    for mark in BAR_CHARS:
        assert mark not in r.stdout, mark


def test_bare_repository(leaky, tmp_path):
    repo, expected, _ = leaky
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(bare)], check=True, capture_output=True,
                   env=env())
    r = run_scan(bare, tmp_path / "out", "--show-secrets")
    assert r.returncode == 1, r
    assert findings_key(r.findings) == expected
    assert r.summary["commits_scanned"] == 2


# -- SPEC §3 and §5 options not implemented yet: each fails today, and will say so when it is -----------------------

def test_the_summary_says_which_twilio_regions_were_asked(leaky, tmp_path):
    repo, _, _ = leaky
    r = run_scan(repo.path, tmp_path / "out", "--twilio-regions", "us1,ie1")
    assert r.returncode == 1, r
    assert "ie1" in str(r.summary)
    about = r.summary["detectors"]["twilio_master_credentials"]
    assert about["regions"] == ["us1", "ie1"]  # US1 first (the base), then those listed
    assert (about["regions_note"], about["unique_secrets_by_region"]) == (None, None)  # nothing was asked
    assert "only us1 was asked" not in r.stderr


@pytest.mark.parametrize(("args", "said"), [
    (("--twilio-regions", "ie1,xx9"), "knows no API host for region 'xx9'"),
    (("--twilio-regions", "ie1", "--twilio-region-url", "au1=http://127.0.0.1:9"), "add au1 to --twilio-regions"),
    (("--twilio-regions", "us1", "--twilio-region-url", "us1=http://127.0.0.1:9"), "--twilio-api-url"),
    (("--twilio-regions", "ie1;au1"), "not a list of Twilio regions"),
    (("--twilio-regions", "ie1", "--twilio-region-url", "ie1"), "not REGION=URL"),
])
def test_regions_nobody_can_ask_are_a_usage_error(leaky, tmp_path, args, said):
    repo, _, _ = leaky
    r = run_scan(repo.path, tmp_path / "out", *args)
    assert r.returncode == 2 and said in r.stderr, r
    assert r.summary is None  # refused before anything was scanned


def test_a_directory_of_noseyparker_rules_files_is_a_catalog_of_detectors(git, tmp_path):
    repo = git()
    token = make_pair()[1]
    repo.commit("one", {"svc.cfg": f'service_key = "{token}"\n'})
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "service.yml").write_text("rules:\n- name: Service Key\n  id: np.service.1\n"
                                       "  pattern: 'service_key\\s*=\\s*\"([0-9a-f]{32})\"'\n")
    r = run_scan(repo.path, tmp_path / "out", "--detectors", str(rules), "--show-secrets")
    assert r.returncode == 1, r
    assert [(f["detector"], f["client_secret"]) for f in r.findings] == [("np.service.1", token)]
    assert r.findings[0]["secret_sha256"] == hashlib.sha256(token.encode()).hexdigest()


def test_a_gitleaks_config_is_a_catalog_of_detectors(git, tmp_path):
    repo = git()
    token = make_pair()[1]
    repo.commit("one", {"svc.cfg": f'service_token = "{token}"\n'})
    config = tmp_path / "gitleaks.toml"
    config.write_text('[[rules]]\nid = "service-token"\ndescription = "a service token"\n'
                      "regex = '''service_token = \"([0-9a-f]{32})\"'''\nentropy = 3.0\n")
    r = run_scan(repo.path, tmp_path / "out", "--detectors", str(config), "--show-secrets")
    assert r.returncode == 1, r
    assert [(f["detector"], f["client_secret"]) for f in r.findings] == [("service-token", token)]
    assert "entropy" not in r.stderr  # applied (a random 32-hex token is far above 3.0 bits a character)
    assert r.findings[0]["secret_sha256"] == hashlib.sha256(token.encode()).hexdigest()  # SPEC §4: the match alone
    check = subprocess.run([sys.executable, "-m", "auditor", "detectors", "check", str(config)], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0 and "service-token" in check.stdout
