"""report.measures.actions (the "What to do" frame) and the ref vocabulary it is written in (models.ref_kind,
presence, refs_by_kind, short_repo), on the golden history (A, B at main; C only at tag v1; D history only) with
validity set by hand so that every risk class is present."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from auditor import report
from auditor.models import PRESENCE, presence, ref_kind, refs_by_kind, short_repo
from tests.helpers.pairs import sha


@pytest.mark.parametrize(("ref", "kind"), [
    ("refs/heads/main", "branch"), ("HEAD", "branch"), ("refs/tags/v1", "tag"), ("refs/pull/620/head", "pull request"),
    ("refs/pull/620/merge", "pull request"), ("refs/merge-requests/7/head", "pull request"),
    ("refs/remotes/origin/main", "other"), ("refs/stash", "other"), ("refs/notes/commits", "other")])
def test_ref_kind(ref, kind):
    assert ref_kind(ref) == kind


def test_presence_tells_pull_requests_apart():
    assert presence(["refs/pull/1/head", "refs/tags/v1"]) == "tag tip"
    assert presence(["refs/pull/1/head", "refs/remotes/origin/x"]) == "pull-request tip"
    assert presence(["refs/stash"]) == "other ref tip" and presence([]) == "history only"
    assert PRESENCE.index("pull-request tip") < PRESENCE.index("other ref tip")


def test_refs_by_kind_and_short_repo():
    assert refs_by_kind(["refs/pull/823/head", "refs/pull/823/merge", "HEAD", "refs/heads/main", "refs/pull/620/head",
                         "refs/tags/v1", "refs/merge-requests/3/head", "refs/stash"]) == (
        "branch: main; tag: v1; pull request: !3, #620, #823; other: refs/stash")
    assert refs_by_kind(["HEAD"]) == "branch: HEAD" and refs_by_kind([]) == ""
    assert short_repo("https://github.com/twilio/twilio-python.git") == "twilio/twilio-python"
    assert short_repo("git@github.com:pallets/flask.git") == "pallets/flask"
    assert short_repo("/srv/mirrors/flask.git/") == "flask" and short_repo("/tmp/x/project") == "project"


def test_actions_sort_by_risk_and_say_what_to_do(golden):
    f = golden.frames
    validity = {sha(golden.pairs["A"]): "invalid", sha(golden.pairs["B"]): "unchecked",
                sha(golden.pairs["C"]): "valid", sha(golden.pairs["D"]): "valid"}
    found = f.findings.assign(validity=f.findings["secret_sha256"].map(validity).astype("string"))
    got = report.measures.actions(dataclasses.replace(f, findings=found, validated=True))
    order = [next(k for k, p in golden.pairs.items() if sha(p) == h) for h in got["secret_sha256"]]
    # C and D valid, neither at a branch: rank 2, older first (C's commit c6 before D's c8); B unchecked at main:
    # rank 3 but "rotate now"; A invalid: nothing to do
    assert order == ["C", "D", "B", "A"]
    assert got["risk"].tolist() == [2, 2, 3, 4]
    assert got["action"].tolist() == ["rotate — still in history", "rotate — still in history", "rotate now",
                                      "nothing to do"]
    assert got["refs"].tolist() == ["tag: v1", "none (history only)", "branch: main; tag: v1",
                                    "branch: main; tag: v1"]
    assert got["location"].tolist() == ["tools/run.sh:1", "README:1", "config/settings.yaml:3 (+1 more)",
                                        "app.py:1 (+1 more)"]
    assert got["commit"].tolist() == [golden.c[c][:10] for c in ("c6", "c8", "c1", "c1")]
    assert (got["repo"] == "repo").all() and got["checked_at"].isna().all()  # never checked: the scan did not ask
    assert str(got["introduced_time"].dtype) == "datetime64[s, UTC]"


def test_actions_of_a_valid_secret_at_a_branch_come_first(golden):
    f = golden.frames
    found = f.findings.assign(validity=pd.Series("valid", index=f.findings.index, dtype="string"))
    got = report.measures.actions(dataclasses.replace(f, findings=found, validated=True))
    assert got["risk"].tolist() == [1, 1, 2, 2] and got["action"].tolist()[:2] == ["rotate now"] * 2


def test_top_paths_name_the_refs_that_still_hold_a_secret_there(golden):
    top = report.top_paths(golden.frames).set_index("path")["at_tips"].to_dict()
    # A at app.py and B at deploy/b.env on main (and the tag v1, made after both); C only at the tag; D and B's
    # first path (config/settings.yaml) at no tip
    assert top == {"app.py": "branch: main; tag: v1", "deploy/b.env": "branch: main; tag: v1",
                   "tools/run.sh": "tag: v1", "README": "none", "config/settings.yaml": "none"}
