"""The report says what the scan did not read (SPEC §8, §11; issue 14): a shallow clone, a partial clone and its
unreadable objects, blobs skipped by reason — in a Coverage section of report.md and report.html — and says
"complete" only for a complete scan."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

from auditor.detectors.engine import MAX_MATCHES
from tests.helpers.env import env
from tests.helpers.git import GitRepo, run_git
from tests.helpers.pairs import make_pair, snippet
from tests.helpers.scan import run_auditor, run_scan


def _coverage(out: Path) -> str:
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.index("## Headline") < md.index("## Coverage") < md.index("## Per repository")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert '<h2 id="coverage">Coverage</h2>' in page and '<a href="#coverage">Coverage</a>' in page
    return md.split("## Coverage", 1)[1].split("\n## ", 1)[0]


def _origin(tmp_path: Path) -> GitRepo:
    origin = GitRepo(tmp_path / "origin")
    origin("config", "uploadpack.allowFilter", "true")
    origin.commit(files={"old.py": snippet(make_pair())})
    origin.commit(files={}, remove=("old.py",))
    for i in range(3):
        origin.commit(files={f"f{i}.txt": f"plain {i}\n", "logo.png": bytes([0x89, 0x50, 0, i]) * 64})
    return origin


def test_a_complete_scan_says_so(tmp_path):
    origin = _origin(tmp_path)
    r = run_scan(origin, tmp_path / "out")
    assert r.returncode == 1, r.stderr
    assert run_auditor("report", str(tmp_path / "out"), timeout=180).returncode == 0
    text = _coverage(tmp_path / "out")
    assert "Complete: every object reachable from every ref was read (5 commits" in text
    assert "Incomplete" not in text and "Partial clone" not in text and "Shallow clone" not in text
    skipped = r.summary["blobs_skipped"]
    assert skipped["binary"] == 3 and "Blobs skipped: 3 binary." in text  # the three logo.png versions


def test_a_shallow_clone_is_shown_incomplete(tmp_path):
    origin = _origin(tmp_path)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "2", f"file://{origin}", str(clone)], check=True, env=env(),
                   capture_output=True)
    r = run_scan(clone, tmp_path / "out")
    assert r.returncode == 0, r.stderr  # the secret sits before the boundary: not seen
    assert run_auditor("report", str(tmp_path / "out"), timeout=180).returncode == 0
    text = _coverage(tmp_path / "out")
    assert "Incomplete" in text and "Shallow clone (clone)" in text and "Complete:" not in text


def test_a_partial_clone_is_shown_incomplete_with_its_unreadable_objects(tmp_path):
    origin = _origin(tmp_path)
    clone = tmp_path / "partial.git"
    subprocess.run(["git", "clone", "-q", "--bare", "--filter=blob:none", f"file://{origin}", str(clone)],
                   check=True, env=env(), capture_output=True)
    missing = run_git(clone, "rev-list", "--all", "--objects", "--missing=print").split()
    missing = [m for m in missing if m.startswith("?")]
    assert missing  # the blobs were never fetched
    r = run_scan(clone, tmp_path / "out", env={"GIT_NO_LAZY_FETCH": "1"})
    assert r.summary is not None and r.summary["error_count"] >= 1, r.stderr
    assert run_auditor("report", str(tmp_path / "out"), timeout=180).returncode == 0
    text = _coverage(tmp_path / "out")
    assert "Incomplete" in text and "Partial clone (partial)" in text
    assert f"{r.summary['error_count']:,} object(s) could not be read" in text


def test_a_rule_that_matches_every_line_is_bounded_and_every_output_says_so(tmp_path):
    """issue 11 (bad input): a catalog rule that matches every line of a big file must not stall the scan; the
    matches kept per blob are bounded (engine.MAX_MATCHES), and summary.json, the CLI and the report say where."""
    catalog = tmp_path / "gitleaks.toml"
    catalog.write_text("[[rules]]\nid = 'every-line'\nregex = '''tok_([0-9a-f]{16})'''\nsecretGroup = 1\n"
                       "keywords = ['tok_']\n")
    repo = GitRepo(tmp_path / "repo")
    repo.commit(files={"big.txt": "".join(f"tok_{secrets.token_hex(8)}\n" for _ in range(2 * MAX_MATCHES))})
    repo.commit(files={"small.txt": f"tok_{secrets.token_hex(8)}\n"})
    r = run_scan(repo, tmp_path / "out", "--detectors", str(catalog))
    assert r.returncode == 1, r.stderr
    assert r.summary["matches_bounded"] == {"every-line": 1}  # big.txt only: small.txt is under the bound
    assert [x["matches_bounded"] for x in r.summary["repos"]] == [{"every-line": 1}]
    assert r.summary["occurrences"] == MAX_MATCHES + 1  # a lower bound, and said to be one
    assert "every-line matched more often than the bound kept per blob in 1 blob" in r.stderr
    assert run_auditor("report", str(tmp_path / "out"), timeout=180).returncode == 0
    text = _coverage(tmp_path / "out")
    assert "Incomplete" in text and "hit the bound" in text and "every-line in 1 blob(s)" in text
