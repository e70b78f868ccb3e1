"""The report says what the scan did not read (SPEC §8, §11; issue 14): a shallow clone, a partial clone and its
unreadable objects, blobs skipped by reason — in a Coverage section of report.md and report.html — and says
"complete" only for a complete scan."""

from __future__ import annotations

import subprocess
from pathlib import Path

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
