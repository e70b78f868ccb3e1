"""`auditor demo`: a sample history, the Twilio stand-in, a scan and a report, with nothing from outside."""

from __future__ import annotations

from collections import Counter

import pytest

from auditor import demo
from tests.helpers.scan import run_auditor


@pytest.mark.slow
def test_demo_command_exits_0_with_a_report(tmp_path):
    out = tmp_path / "demo-out"
    for _ in range(2):  # a rerun replaces the demo's own directory
        proc = run_auditor("demo", "--out", str(out), "--commits", "600")
        assert proc.returncode == 0, proc.stderr
    assert "occurrences: " in proc.stdout and "per million commits (95% CI " in proc.stdout
    assert "7.37" in proc.stdout and "8.33" in proc.stdout and str(out / "report.html") in proc.stdout
    assert {"report.html", "report.md", "findings.jsonl", "secrets.jsonl", "summary.json"} <= {
        p.name for p in out.iterdir()}


def test_demo_refuses_a_directory_it_did_not_make(tmp_path):
    (tmp_path / "mine.txt").write_text("precious\n")
    proc = run_auditor("demo", "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 2 and "not made by `auditor demo`" in proc.stderr
    assert (tmp_path / "mine.txt").read_text() == "precious\n"


def test_demo_finds_what_it_planted_with_the_validity_it_was_given(tmp_path):
    result = demo.run(tmp_path / "d", commits=400, seed=7)
    m = result.manifest
    assert (result.found, result.unexpected) == (len(m.planted), 0)
    pairs = list(m.pairs)
    state = {p: "live" for p in pairs[:demo.LIVE]} | {pairs[demo.LIVE]: "test"}
    per_state = Counter(state.get((p.client_id, p.client_secret), "invalid") for p in m.planted)
    s = result.summary.as_json()
    assert (s["occurrences"], s["valid_live_occurrences"], s["valid_test_occurrences"]) == (
        len(m.planted), per_state["live"], per_state["test"])
    assert s["valid_unique_secrets"] == demo.LIVE + 1 and s["commits_scanned"] == 400
    lines = "\n".join(result.report.lines())
    assert f"valid, live: {per_state['live']} in 400 commits" in lines
