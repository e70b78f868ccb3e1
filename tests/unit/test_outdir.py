"""outdir.OutDir: the one place that names the --out files; the directory is proven writable before any work, and
every file is created owner-only (also one that existed readable by all)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from auditor.errors import OutputError
from auditor.outdir import OutDir, private_file, write_private


def test_every_file_of_the_out_directory_is_named_here(tmp_path):
    out = OutDir(tmp_path)
    assert {name: getattr(out, name).relative_to(tmp_path).as_posix() for name in (
        "store", "findings", "secrets", "summary", "frames", "plots", "report_md", "report_html")} == {
        "store": "audit.sqlite", "findings": "findings.jsonl", "secrets": "secrets.jsonl", "summary": "summary.json",
        "frames": "frames", "plots": "plots", "report_md": "report.md", "report_html": "report.html"}
    assert [p.name for p in out.store_sidecars] == ["audit.sqlite-wal", "audit.sqlite-shm"]


def test_prepare_creates_the_directory_and_leaves_nothing_behind(tmp_path):
    out = OutDir(tmp_path / "a" / "b")
    out.prepare()
    assert out.root.is_dir() and list(out.root.iterdir()) == []
    out.prepare()  # an existing directory is fine


@pytest.mark.parametrize("kind", ["a_file", "under_a_file"])
def test_prepare_refuses_what_cannot_be_written(tmp_path, kind):
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file\n")
    root = blocker if kind == "a_file" else blocker / "out"
    with pytest.raises(OutputError) as info:
        OutDir(root).prepare()
    assert str(root) in str(info.value) and "--out" in str(info.value)
    assert blocker.read_text() == "a regular file\n"


def test_read_summary_is_empty_when_missing_unreadable_or_not_an_object(tmp_path):
    out = OutDir(tmp_path)
    assert out.read_summary() == {}
    out.summary.write_text("{not json")
    assert out.read_summary() == {}
    out.summary.write_text("[1, 2]")
    assert out.read_summary() == {}
    out.summary.write_text(json.dumps({"commits_scanned": 3}))
    assert out.read_summary() == {"commits_scanned": 3}


def test_private_file_creates_owner_only_and_tightens_an_existing_file(tmp_path):
    fresh = tmp_path / "fresh"
    private_file(fresh)
    assert fresh.read_bytes() == b"" and stat.S_IMODE(fresh.stat().st_mode) == 0o600
    loose = tmp_path / "loose"
    loose.write_text("kept\n")
    os.chmod(loose, 0o644)
    private_file(loose)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600 and loose.read_text() == "kept\n"


def test_write_private_replaces_the_contents(tmp_path):
    path = tmp_path / "f"
    path.write_text("a much longer old content\n")
    os.chmod(path, 0o666)
    write_private(path, b"new\n")
    assert path.read_bytes() == b"new\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
