"""SPEC §3–4, §7 on real histories: exactly which (commit, path, secret) occurrences a scan reports.

Each module fixture builds one repository with real git commands, scans it once through the CLI (a subprocess
with its own process pool), and several small tests assert on that one result.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers.git import GitRepo
from tests.helpers.pairs import make_pair, snippet
from tests.helpers.reference import brute_force_occurrences
from tests.helpers.scan import Result, load_jsonl, run_scan

Pair = tuple[str, str]


def key(f: dict) -> tuple[str, str, str, str]:
    return (f["commit"], f["path"], f["client_id"], f["client_secret"])


def parse_time(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    assert when.utcoffset() is not None and when.utcoffset().total_seconds() == 0, text
    return when


# =============================================================================================================
# One commit, many files: each file exercises one rule of SPEC §3
# =============================================================================================================

BANNED_PATHS = ["page.html", "page.cshtml", "page.xhtml", "page.phtml", "page.shtml", "page.rhtml", "page.html5",
                "page.html~", "style.css", "style.acss", "style.pcss", "style.scss", "style.cssc", "style.css~",
                "yarn.lock", "README.md", "NOTES.MD", "doc.mdx", "doc.md~", "Main.storyboard", "Main.storyboardc",
                "Main.storyboarder", "View.xib", "sub/dir/Gemfile.Lock"]
LOOKALIKE_PATHS = ["notes.markdown", "page.htm", "Makefile", ".env", "docs.md/settings.py", "style.sass",
                   "package-lock.json", "html", "page.xhtml2"]
FIVE_DISTINCT = "aabbccddeeabcdeabcdeabcdeabcdeed"


@dataclass
class RulesRepo:
    repo: GitRepo
    commit: str = ""
    expected: set[tuple[str, str, str, int]] = field(default_factory=set)  # (path, client_id, client_secret, line)
    never: list[Pair] = field(default_factory=list)  # pairs that must not be reported anywhere
    non_utf8_pair: Pair | None = None
    result: Result | None = None


def build_rules(root: Path) -> RulesRepo:
    r = RulesRepo(GitRepo(root))
    files: dict[str | bytes, str | bytes] = {}

    def found(path: str, content: str | bytes, pair: Pair, line: int) -> None:
        files[path] = content
        r.expected.add((path, pair[0], pair[1], line))

    def not_found(path: str | bytes, content: str | bytes, *pairs: Pair) -> None:
        files[path] = content
        r.never.extend(pairs)

    for path in BANNED_PATHS:
        p = make_pair()
        not_found(path, snippet(p), p)
    for path in LOOKALIKE_PATHS:
        p = make_pair()
        found(path, snippet(p, line=2), p, 2)

    # the same blob at a banned and at a scanned path, in both orders of enumeration: found at the scanned one only
    p = make_pair()
    files["dup.md"] = snippet(p)
    found("dup.txt", snippet(p), p, 1)
    p = make_pair()
    found("aaa.txt", snippet(p, line=3), p, 3)
    files["zzz.md"] = snippet(p, line=3)

    # binary: a NUL in the first 8000 bytes (git's rule) → skipped
    p = make_pair()
    not_found("blob.bin", b"\0" + snippet(p).encode(), p)
    p = make_pair()
    text = snippet(p).encode()
    not_found("nul_at_7999.dat", text + b"x" * (7999 - len(text)) + b"\0tail", p)
    p = make_pair()
    text = snippet(p).encode()
    found("nul_at_8000.dat", text + b"x" * (8000 - len(text)) + b"\0tail", p, 1)

    # a SID alone, a token alone
    p = make_pair()
    not_found("sid_only.py", f'account_sid = "{p[0]}"\n', p)
    p = make_pair()
    not_found("token_only.py", f'auth_token = "{p[1]}"\n', p)

    # placeholders and sequential fakes
    not_found("ph_template_x.py",
              'account_sid = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"\nauth_token = "your_auth_token"\n')
    p = make_pair()
    not_found("ph_jinja.py", f'account_sid = "{p[0]}"\nauth_token = "{{{{ auth_token }}}}"\n', p)
    not_found("ph_sequential.py", 'account_sid = "AC1234567890abcdef1234567890abcdef"\n'
                                  'auth_token = "1234567890abcdef1234567890abcdef"\n')
    p = make_pair()
    not_found("ph_sequential_token.py", f'account_sid = "{p[0]}"\nauth_token = "{"0123456789abcdef" * 2}"\n', p)
    p = make_pair()
    not_found("ph_own_digits.py", f'account_sid = "{p[0]}"\nauth_token = "{p[0][2:]}"\n', p)
    p = make_pair()
    not_found("ph_few_chars.py", f'account_sid = "{p[0]}"\nauth_token = "{FIVE_DISTINCT}"\n', p)
    # SID placeholders beside a real-looking token (checked by test_sid_placeholders_on_a_real_history)
    for i, digits in enumerate(("0123456789abcdef" * 2, FIVE_DISTINCT)):
        p = make_pair()
        not_found(f"ph_sid_{i}.py", f'account_sid = "AC{digits}"\nauth_token = "{p[1]}"\n', ("AC" + digits, p[1]))

    # pairing (high recall)
    p = make_pair()
    found("token_first.py", f'auth_token = "{p[1]}"\n\n\naccount_sid = "{p[0]}"\n', p, 4)
    p = make_pair()
    found("far_apart.py", f'account_sid = "{p[0]}"\n' + "".join(f"x{i} = {i}\n" for i in range(24)) +
          f'auth_token = "{p[1]}"\n', p, 1)
    p = make_pair()
    found("crlf.txt", f'# header\r\n\r\naccount_sid = "{p[0]}"\r\nauth_token = "{p[1]}"\r\n', p, 3)
    p = make_pair()
    found("latin1.txt", "# caf\xe9 cr\xe8me\n".encode("latin-1") + f'sid = "{p[0]}"\n'.encode() +
          "# \xa9\xe0\xff\n".encode("latin-1") + f'token = "{p[1]}"\n'.encode() + b"\xe9\n", p, 2)
    p = make_pair()
    filler = "function(a,b){return a+b};var x=[1,2,3];" * 130
    minified = f'!function(){{var s="{p[0]}";{filler}var t="{p[1]}";{filler}}}();'
    assert len(minified) > 10_000 and "\n" not in minified
    found("bundle.min.js", minified, p, 1)
    p = make_pair()
    found("url.sh", f"#!/bin/sh\ncurl -X POST https://{p[0]}:{p[1]}@api.twilio.com/2010-04-01/Accounts/{p[0]}"
                    "/Messages.json\n", p, 2)
    p = make_pair()
    found("Positional.java", f'class A {{\n  void f() {{\n    Init("{p[0]}", "{p[1]}");\n  }}\n}}\n', p, 3)
    p = make_pair()
    found("commented.py", f'import twilio\n# client = Client("{p[0]}", "{p[1]}")\n', p, 2)
    (s1, t1), (s2, t2) = make_pair(), make_pair()
    files["multi.py"] = (f'ONE_SID = "{s1}"\nONE_AUTH_TOKEN = "{t1}"\n' + "# --\n" * 20 +
                         f'TWO_SID = "{s2}"\nTWO_AUTH_TOKEN = "{t2}"\n')
    r.expected |= {("multi.py", s1, t1, 1), ("multi.py", s2, t2, 23)}
    p = make_pair()
    decoy_appid, decoy_md5 = make_pair()[1], make_pair()[1]
    found("decoy.py", f'account_sid = "{p[0]}"\nappid = "{decoy_appid}"\nmd5 = "{decoy_md5}"\n\n\n\n\n\n\n'
                      f'auth_token = "{p[1]}"\n', p, 1)
    r.never.extend([(p[0], decoy_appid), (p[0], decoy_md5)])

    # paths
    p = make_pair()
    found("dir with space/ünïcødé file.py", snippet(p), p, 1)
    p = make_pair()
    files[b"latin1_\xe9.py"] = snippet(p)
    r.non_utf8_pair = p

    for path, content in files.items():
        r.repo.write(path, content)
    # symlinks: a link to a file holding a pair is not a second copy; a link's target text is not content
    p = make_pair()
    found("linked_target.py", snippet(p), p, 1)
    r.repo.write("linked_target.py", snippet(p))
    os.symlink("linked_target.py", root / "link_to_target.py")
    p = make_pair()
    os.symlink(f"{p[0]} {p[1]}", root / "weird_link")
    r.never.append(p)
    r.commit = r.repo.commit("everything at once")
    assert r.repo("cat-file", "-p", f"{r.commit}:weird_link") == f"{p[0]} {p[1]}"
    assert "120000" in r.repo("ls-tree", r.commit, "link_to_target.py")
    return r


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> RulesRepo:
    base = tmp_path_factory.mktemp("rules")
    r = build_rules(base / "repo")
    r.result = run_scan(r.repo.path, base / "out", "--show-secrets")
    return r


def test_rules_exit_code_and_commit(rules):
    r = rules.result
    assert r.returncode == 1, r
    assert r.summary["commits_scanned"] == 1
    assert {f["commit"] for f in r.findings} == {rules.commit}


def test_rules_exact_findings(rules):
    # ph_sid_* files are left to test_sid_placeholders_on_a_real_history, so that this test shows other causes
    findings = [f for f in rules.result.findings if not f["path"].startswith("ph_sid_")]
    got = {(f["path"], f["client_id"], f["client_secret"], f["line"]) for f in findings
           if (f["client_id"], f["client_secret"]) != rules.non_utf8_pair}
    assert got == rules.expected
    assert len(findings) == len(rules.expected) + 1
    assert rules.result.summary["errors"] == []


def test_sid_placeholders_on_a_real_history(rules):
    # SPEC §3: a SID whose 32 hex digits use fewer than 6 distinct characters, or repeat a unit, is dropped
    assert [(f["path"], f["client_id"]) for f in rules.result.findings if f["path"].startswith("ph_sid_")] == []


@pytest.mark.parametrize("path", BANNED_PATHS)
def test_banned_extension_is_not_scanned(rules, path):
    assert [f for f in rules.result.findings if f["path"] == path] == []


@pytest.mark.parametrize("path", LOOKALIKE_PATHS)
def test_lookalike_extension_is_scanned(rules, path):
    assert len([f for f in rules.result.findings if f["path"] == path]) == 1


def test_same_blob_at_banned_and_scanned_paths(rules):
    paths = {f["path"] for f in rules.result.findings}
    assert {"dup.txt", "aaa.txt"} <= paths
    assert not {"dup.md", "zzz.md"} & paths


def test_nothing_reported_for_negative_cases(rules):
    reported = {(f["client_id"], f["client_secret"]) for f in rules.result.findings}
    reported -= {(f["client_id"], f["client_secret"]) for f in rules.result.findings if f["path"].startswith("ph_sid_")}
    assert not reported & set(rules.never)
    for path in ("sid_only.py", "token_only.py", "blob.bin", "nul_at_7999.dat", "weird_link", "link_to_target.py",
                 "ph_template_x.py", "ph_jinja.py", "ph_sequential.py", "ph_sequential_token.py",
                 "ph_own_digits.py", "ph_few_chars.py"):
        assert [f for f in rules.result.findings if f["path"] == path] == [], path


def test_binary_blobs_are_counted_as_skipped(rules):
    summary = rules.result.summary
    assert summary["blobs_skipped"]["binary"] == 2  # blob.bin, nul_at_7999.dat (not nul_at_8000.dat)


def test_several_sids_each_get_their_own_token(rules):
    got = {(f["path"], f["client_id"], f["client_secret"], f["line"]) for f in rules.result.findings
           if f["path"] == "multi.py"}
    assert got == {e for e in rules.expected if e[0] == "multi.py"}
    assert len(got) == 2


def test_decoy_nearer_than_the_token(rules):
    got = [(f["client_id"], f["client_secret"]) for f in rules.result.findings if f["path"] == "decoy.py"]
    expected = [(cid, tok) for (path, cid, tok, _) in rules.expected if path == "decoy.py"]
    assert got == expected


def test_path_with_spaces_and_unicode(rules):
    got = [f for f in rules.result.findings if f["path"] == "dir with space/ünïcødé file.py"]
    assert len(got) == 1
    assert got[0]["blob"] == rules.repo.rev(f"{rules.commit}:dir with space/ünïcødé file.py")


def test_non_utf8_path(rules):
    got = [f for f in rules.result.findings if (f["client_id"], f["client_secret"]) == rules.non_utf8_pair]
    assert len(got) == 1
    assert got[0]["path"].startswith("latin1_") and got[0]["path"].endswith(".py")
    assert got[0]["line"] == 1
    blob = subprocess.run(["git", "-C", str(rules.repo.path), "hash-object", "--", os.fsdecode(b"latin1_\xe9.py")],
                          capture_output=True, check=True).stdout.decode().strip()
    assert got[0]["blob"] == blob


def test_blob_ids_and_sha256_in_rules_repo(rules):
    for f in rules.result.findings:
        if (f["client_id"], f["client_secret"]) == rules.non_utf8_pair:
            continue
        assert f["blob"] == rules.repo.rev(f"{rules.commit}:{f['path']}"), f["path"]
        assert f["secret_sha256"] == hashlib.sha256(f"{f['client_id']}:{f['client_secret']}".encode()).hexdigest()


# =============================================================================================================
# A history with branches, merges, renames, copies, tags, stash, notes, detached HEAD
# =============================================================================================================

@dataclass
class History:
    repo: GitRepo
    c: dict[str, str] = field(default_factory=dict)  # label → commit id
    p: dict[str, Pair] = field(default_factory=dict)  # label → pair
    expected: dict[tuple[str, str, str, str], int] = field(default_factory=dict)  # (commit, path, id, tok) → line
    result: Result | None = None
    redacted: Result | None = None
    out: Path | None = None
    redacted_out: Path | None = None


def build_history(root: Path) -> History:
    h = History(GitRepo(root))
    r, c, p = h.repo, h.c, h.p
    for name in ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "P11", "P12"):
        p[name] = make_pair()
    p["P2b"] = (p["P2"][0], make_pair()[1])  # same SID, new token

    app = "import os\nimport twilio\n" + snippet(p["P1"])  # SID on line 3
    config = "DEBUG = True\n" + snippet(p["P2"])  # SID on line 2
    c["c1"] = r.commit("c1: app, config, shared", {"app.py": app, "config.py": config,
                                                  "shared.txt": "color = green\nsize = 1\n", "README.txt": "hi\n"},
                       author_email="alice@example.com")
    app += "print('edited elsewhere')\n"
    c["c2"] = r.commit("c2: edit another line of app.py", {"app.py": app})

    # side branch never merged
    r("checkout", "-q", "-b", "feature")
    c["f1"] = r.commit("f1: feature", {"feature.py": "# feature\n" * 4 + snippet(p["P3"])},
                       author_email="bob@example.com")
    r("checkout", "-q", "main")

    # pure rename
    (root / "src").mkdir()
    r("mv", "app.py", "src/app.py")
    c["c3"] = r.commit("c3: pure rename app.py -> src/app.py")

    # a branch merged later: content merged from it is counted once, on the branch commit
    r("checkout", "-q", "-b", "topic")
    c["t1"] = r.commit("t1: topic", {"topic.py": snippet(p["P4"])})
    c["t2"] = r.commit("t2: append to src/app.py", {"src/app.py": app + "# topic note\n"})
    r("checkout", "-q", "main")

    # commits reachable only from a lightweight tag, an annotated tag, a remote-tracking ref
    for label, path, pair, make_ref in (
            ("l1", "lw.py", "P6", lambda: r("tag", "lw")),
            ("a1", "ann.py", "P7", lambda: r("tag", "-a", "ann", "-m", "annotated tag")),
            ("r1", "remote.py", "P11", lambda: r("update-ref", "refs/remotes/origin/old", "HEAD"))):
        r("checkout", "-q", "-b", "tmp", c["c1"])
        c[label] = r.commit(f"{label}: {path}", {path: snippet(p[pair])})
        make_ref()
        r("checkout", "-q", "main")
        r("branch", "-q", "-D", "tmp")

    # copy to a new path, remove and re-add, empty commits
    c["c4"] = r.commit("c4: copy src/app.py to backup/app.py", {"backup/app.py": app})
    c["c5"] = r.commit("c5: remove config.py", remove=("config.py",))
    c["c6"] = r.commit("c6: re-add config.py", {"config.py": config})
    assert r.rev(f"{c['c6']}:config.py") == r.rev(f"{c['c1']}:config.py")
    c["c7"] = r.commit("c7: empty", allow_empty=True)
    c["c7b"] = r.commit("c7b: prepend to src/app.py", {"src/app.py": "# header\n" + app})
    r("merge", "-q", "--no-ff", "-m", "m1: merge topic", "topic")
    c["m1"] = r.rev("HEAD")
    merged_app = (root / "src/app.py").read_text()
    assert merged_app == "# header\n" + app + "# topic note\n"
    assert r.rev(f"{c['m1']}:src/app.py") not in (r.rev(f"{c['c7b']}:src/app.py"), r.rev(f"{c['t2']}:src/app.py"))
    c["c7c"] = r.commit("c7c: empty again", allow_empty=True)

    # a new token for the same SID
    c["c8"] = r.commit("c8: rotate the token", {"config.py": "DEBUG = True\n" + snippet(p["P2b"])})

    # a merge whose conflict resolution introduces a pair
    r("checkout", "-q", "-b", "conf")
    c["k1"] = r.commit("k1: blue", {"shared.txt": "color = blue\nsize = 1\n"})
    r("checkout", "-q", "main")
    c["c9"] = r.commit("c9: red", {"shared.txt": "color = red\nsize = 1\n"})
    r("merge", "-q", "-m", "m2: merge conf", "conf", check=False)
    assert "<<<<<<<" in (root / "shared.txt").read_text()
    shared = "color = purple\nsize = 1\n" + snippet(p["P5"])  # SID on line 3
    r.write("shared.txt", shared)
    r("add", "shared.txt")
    r("commit", "-q", "--no-edit")
    c["m2"] = r.rev("HEAD")
    assert len(r("rev-list", "--parents", "-n", "1", c["m2"]).split()) == 3

    # a secret removed from every tip
    c["c10"] = r.commit("c10: gone.py", {"gone.py": snippet(p["P10"])})
    c["c11"] = r.commit("c11: remove gone.py", remove=("gone.py",))

    # a note (refs/notes/commits) holding a pair
    r("notes", "add", "-m", "credentials used for the demo:\n" + snippet(p["P12"]), c["c1"])
    c["n1"] = r.rev("refs/notes/commits")
    assert r("ls-tree", "--name-only", c["n1"]).split() == [c["c1"]]

    # refs/stash
    r.write("shared.txt", shared + "\n" * 5 + "# work in progress\n" + snippet(p["P9"]))  # P9's SID: line 11
    r("stash", "push", "-q", "-m", "wip")
    c["W"] = r.rev("refs/stash")
    assert r("status", "--porcelain") == ""

    # a detached HEAD commit
    r("checkout", "-q", "--detach", "main")
    c["d1"] = r.commit("d1: detached", {"detached.py": snippet(p["P8"])})
    assert r("symbolic-ref", "-q", "HEAD", check=False) == ""

    h.expected = {
        (c["c1"], "app.py", *p["P1"]): 3,
        (c["c1"], "config.py", *p["P2"]): 2,
        (c["f1"], "feature.py", *p["P3"]): 5,
        (c["t1"], "topic.py", *p["P4"]): 1,
        (c["l1"], "lw.py", *p["P6"]): 1,
        (c["a1"], "ann.py", *p["P7"]): 1,
        (c["r1"], "remote.py", *p["P11"]): 1,
        (c["c4"], "backup/app.py", *p["P1"]): 3,
        (c["c6"], "config.py", *p["P2"]): 2,
        (c["c8"], "config.py", *p["P2b"]): 2,
        (c["m2"], "shared.txt", *p["P5"]): 3,
        (c["c10"], "gone.py", *p["P10"]): 1,
        (c["n1"], c["c1"], *p["P12"]): 2,
        (c["W"], "shared.txt", *p["P9"]): 11,
        (c["d1"], "detached.py", *p["P8"]): 1,
    }
    return h


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> History:
    base = tmp_path_factory.mktemp("history")
    h = build_history(base / "repo")
    h.out, h.redacted_out = base / "out", base / "out-redacted"
    h.result = run_scan(h.repo.path, h.out, "--show-secrets")
    h.redacted = run_scan(h.repo.path, h.redacted_out)
    return h


def found_at(history: History, label: str) -> set[tuple[str, str, str]]:
    """(path, client_id, client_secret) reported on the commit ``label``."""
    return {(f["path"], f["client_id"], f["client_secret"]) for f in history.result.findings
            if f["commit"] == history.c[label]}


def test_history_exact_occurrences(history):
    r = history.result
    assert r.returncode == 1, r
    keys = [key(f) for f in r.findings]
    assert len(keys) == len(set(keys)), "an occurrence is reported twice"
    assert set(keys) == set(history.expected)


def test_history_lines(history):
    got = {key(f): f["line"] for f in history.result.findings}
    assert got == history.expected


def test_edit_elsewhere_in_a_file_adds_nothing(history):
    assert found_at(history, "c2") == set()
    assert found_at(history, "c7b") == set()


def test_pure_rename_adds_nothing(history):
    assert found_at(history, "c3") == set()


def test_copy_to_a_new_path_adds_an_occurrence(history):
    assert found_at(history, "c4") == {("backup/app.py", *history.p["P1"])}


def test_remove_and_readd_counts_twice(history):
    got = sorted((f["commit"], f["path"]) for f in history.result.findings
                 if (f["client_id"], f["client_secret"]) == history.p["P2"])
    assert got == sorted([(history.c["c1"], "config.py"), (history.c["c6"], "config.py")])
    assert found_at(history, "c5") == set()


def test_new_token_for_the_same_sid_is_a_new_secret(history):
    assert found_at(history, "c8") == {("config.py", *history.p["P2b"])}


def test_side_branch_never_merged(history):
    assert found_at(history, "f1") == {("feature.py", *history.p["P3"])}


def test_merged_branch_counted_once_on_the_branch_commit(history):
    assert found_at(history, "t1") == {("topic.py", *history.p["P4"])}
    assert found_at(history, "m1") == set()  # neither the merged topic.py nor the auto-merged src/app.py
    assert found_at(history, "t2") == set()


def test_conflict_resolution_is_counted_on_the_merge(history):
    assert found_at(history, "m2") == {("shared.txt", *history.p["P5"])}
    assert found_at(history, "k1") == found_at(history, "c9") == set()


def test_tags_and_remote_tracking_refs(history):
    assert found_at(history, "l1") == {("lw.py", *history.p["P6"])}
    assert found_at(history, "a1") == {("ann.py", *history.p["P7"])}
    assert found_at(history, "r1") == {("remote.py", *history.p["P11"])}


def test_detached_head_stash_and_notes(history):
    assert found_at(history, "d1") == {("detached.py", *history.p["P8"])}
    assert found_at(history, "W") == {("shared.txt", *history.p["P9"])}
    assert found_at(history, "n1") == {(history.c["c1"], *history.p["P12"])}


def test_commits_scanned_equals_rev_list_all(history):
    all_commits = history.repo.rev_list_all()
    assert len(all_commits) == len(set(all_commits))
    assert {history.c[k] for k in ("c7", "c7c", "l1", "a1", "r1", "n1", "W", "d1", "f1")} <= set(all_commits)
    summary = history.result.summary
    assert summary["commits_scanned"] == len(all_commits)
    assert history.redacted.summary["commits_scanned"] == len(all_commits)


def test_history_summary_counts(history):
    summary = history.result.summary
    commits = len(history.repo.rev_list_all())
    assert summary["occurrences"] == 15
    assert summary["unique_secrets"] == 13
    assert summary["occurrences_per_million_commits"] == pytest.approx(15 / commits * 1e6, rel=1e-6)
    assert summary["valid_occurrences_per_million_commits"] is None
    assert summary["commits_with_occurrences"] == 14


def test_history_provenance(history):
    repo = history.repo
    for f in history.result.findings:
        email, epoch = repo("show", "-s", "--format=%ae%n%at", f["commit"]).split()
        assert f["author_email"] == email, f
        assert parse_time(f["author_time"]) == datetime.fromtimestamp(int(epoch), UTC), f
        assert f["blob"] == repo.rev(f"{f['commit']}:{f['path']}"), f
        assert f["secret_sha256"] == hashlib.sha256(f"{f['client_id']}:{f['client_secret']}".encode()
                                                    ).hexdigest()
        assert f["detector"] == "twilio_master_credentials"
        assert f["validity"] == "unchecked"
    emails = {f["path"]: f["author_email"] for f in history.result.findings}
    assert emails["app.py"] == "alice@example.com"
    assert emails["feature.py"] == "bob@example.com"


def test_secrets_jsonl(history):
    rows = load_jsonl(history.out / "secrets.jsonl")
    by_pair = {(s["client_id"], s["client_secret"]): s for s in rows}
    assert len(rows) == len(by_pair) == 13
    p, c = history.p, history.c
    expected_counts = {v: 1 for v in p.values()} | {p["P1"]: 2, p["P2"]: 2}
    assert {k: s["occurrences"] for k, s in by_pair.items()} == expected_counts
    assert {k: s["still_at_tip"] for k, s in by_pair.items()} == {v: v != p["P10"] for v in p.values()}
    assert by_pair[p["P1"]]["first_commit"] == c["c1"] and by_pair[p["P1"]]["last_commit"] == c["c4"]
    assert by_pair[p["P2"]]["first_commit"] == c["c1"] and by_pair[p["P2"]]["last_commit"] == c["c6"]
    for (cid, tok), s in by_pair.items():
        assert s["secret_sha256"] == hashlib.sha256(f"{cid}:{tok}".encode()).hexdigest()


def test_tokens_are_redacted_everywhere(history):
    r = history.redacted
    assert r.returncode == 1
    assert {(f["commit"], f["path"], f["client_id"], f["client_secret"]) for f in r.findings} == {
        (cm, path, cid, f"{tok[:4]}…{tok[-2:]}") for (cm, path, cid, tok) in history.expected}
    blobs = {"stdout": r.stdout.encode(), "stderr": r.stderr.encode()}
    for path in history.redacted_out.rglob("*"):
        if path.is_file():
            blobs[path.name] = path.read_bytes()
    assert {"findings.jsonl", "secrets.jsonl", "summary.json", "audit.sqlite"} <= set(blobs)
    for name, data in blobs.items():
        for _cid, tok in history.p.values():
            assert tok.encode() not in data, (name, tok)
            assert tok.encode("utf-16-le") not in data, (name, tok)
    secrets_rows = load_jsonl(history.redacted_out / "secrets.jsonl")
    assert {s["client_secret"] for s in secrets_rows} == {f"{t[:4]}…{t[-2:]}" for t in
                                                          {tok for _, tok in history.p.values()}}


def test_output_files_are_private(history):
    for out in (history.out, history.redacted_out):
        for name in ("findings.jsonl", "secrets.jsonl", "summary.json", "audit.sqlite"):
            mode = stat.S_IMODE((out / name).stat().st_mode)
            assert mode == 0o600, (out / name, oct(mode))


def test_scanner_agrees_with_brute_force_reference(history):
    """The reference oracle applies SPEC §4 literally with plain git; on this history both must agree exactly."""
    expected = brute_force_occurrences(history.repo.path, list(history.p.values()))
    assert expected == set(history.expected)  # the reference agrees with this file's own expectations
    assert {key(f) for f in history.result.findings} == expected


def test_two_repositories_in_one_run(git, tmp_path):
    one, two = git("one"), git("two")
    shared, only_two = make_pair(), make_pair()
    a1 = one.commit("a1", {"app.py": snippet(shared), "README.txt": "one\n"})
    one.commit("a2", {"more.txt": "more\n"})
    b1 = two.commit("b1", {"app.py": snippet(shared), "README.txt": "one\n"})  # the very same blobs
    b2 = two.commit("b2", {"svc.py": "\n\n" + snippet(only_two)})
    out = tmp_path / "out"
    r = run_scan([one.path, two.path], out, "--show-secrets")
    assert r.returncode == 1, r
    assert {(f["repo"], *key(f), f["line"]) for f in r.findings} == {
        (str(one.path), a1, "app.py", *shared, 1), (str(two.path), b1, "app.py", *shared, 1),
        (str(two.path), b2, "svc.py", *only_two, 3)}
    assert r.summary["commits_scanned"] == 4
    assert r.summary["occurrences"] == 3
    assert r.summary["unique_secrets"] == 2
    rows = load_jsonl(out / "secrets.jsonl")
    assert sorted((s["client_id"], s["occurrences"], s["repos"]) for s in rows) == sorted(
        [(shared[0], 2, 2), (only_two[0], 1, 1)])


# =============================================================================================================
# Renames and copies at the edges of "pure rename adds nothing, copying adds an occurrence" (SPEC §4)
# =============================================================================================================

@dataclass
class Moves:
    repo: GitRepo
    c: dict[str, str] = field(default_factory=dict)
    p: dict[str, Pair] = field(default_factory=dict)
    result: Result | None = None


@pytest.fixture(scope="module")
def moves(tmp_path_factory) -> Moves:
    base = tmp_path_factory.mktemp("moves")
    m = Moves(GitRepo(base / "repo"))
    r, c, p = m.repo, m.c, m.p
    for name in ("S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9"):
        p[name] = make_pair()
    settings = "import os\n" + snippet(p["S2"]) + "DEBUG = False\n"
    name_py = snippet(p["S3"]) + "x = 1\n"
    c["c1"] = r.commit("c1", {"plain.txt": snippet(p["S1"]), "keep/settings.py": settings,
                              "old/name.py": name_py, "orig1.py": snippet(p["S4"]),
                              "orig2.py": snippet(p["S5"]), "orig3.py": snippet(p["S6"]),
                              "twin_a.py": snippet(p["S7"]), "twin_b.py": snippet(p["S7"]),
                              "conf/keys.py": snippet(p["S9"]), "README.txt": "hi\n"})
    # a copy, while the original is edited elsewhere in the same commit: nothing was deleted, so no rename
    r.write("keep/settings.py.bak", settings)
    c["c2"] = r.commit("c2: back up settings, then edit them", {"keep/settings.py": settings + "DEBUG = True\n"})
    assert r.rev(f"{c['c2']}:keep/settings.py.bak") == r.rev(f"{c['c1']}:keep/settings.py")
    # a rename with an edit is not a pure rename
    (r.path / "new").mkdir()
    r("mv", "old/name.py", "new/name.py")
    c["c3"] = r.commit("c3: rename and edit", {"new/name.py": name_py + "y = 2\n"})
    # a pure rename plus a copy, in one commit: one new copy
    r("mv", "orig3.py", "b_moved.py")
    r.write("y_copy.py", snippet(p["S6"]))
    # the same move twice, mirrored: renamed to a banned path and copied to a scanned one in the same commit
    r("mv", "orig1.py", "a_docs.md")
    r.write("z_copy.py", snippet(p["S4"]))
    r("mv", "orig2.py", "z_docs.md")
    r.write("c_copy.py", snippet(p["S5"]))
    # a rename and a copy whose names sort the other way: the rename is the path with the same file name
    (r.path / "moved").mkdir()
    r("mv", "conf/keys.py", "moved/keys.py")
    r.write("a_copy.py", snippet(p["S9"]))
    c["c4"] = r.commit("c4: renames and copies")
    # moved from a scanned extension to a banned one: nothing new
    r("mv", "plain.txt", "plain.md")
    c["c5"] = r.commit("c5: plain.txt -> plain.md")
    # the pair appears when its second half is added, disappears with either half, and reappears
    sid_line, tok_line = f'account_sid = "{p["S8"][0]}"\n', f'auth_token = "{p["S8"][1]}"\n'
    c["c6"] = r.commit("c6: SID alone", {"split.py": "a = 1\n" + sid_line})
    c["c7"] = r.commit("c7: token added", {"split.py": "a = 1\n" + sid_line + tok_line})
    c["c8"] = r.commit("c8: SID removed", {"split.py": "a = 1\n" + tok_line})
    c["c9"] = r.commit("c9: SID back", {"split.py": "a = 1\n" + tok_line + "b = 2\n" + sid_line})
    # a directory rename moves every file purely
    r("mv", "keep", "kept")
    c["c10"] = r.commit("c10: keep/ -> kept/")
    m.result = run_scan(r.path, base / "out", "--show-secrets")
    return m


def moves_at(m: Moves, label: str) -> set[tuple[str, str, str]]:
    return {(f["path"], f["client_id"], f["client_secret"]) for f in m.result.findings if f["commit"] == m.c[label]}


def test_moves_root_commit(moves):
    assert moves.result.returncode == 1, moves.result.stderr
    p = moves.p
    assert moves_at(moves, "c1") == {("plain.txt", *p["S1"]), ("keep/settings.py", *p["S2"]),
                                     ("old/name.py", *p["S3"]), ("orig1.py", *p["S4"]), ("orig2.py", *p["S5"]),
                                     ("orig3.py", *p["S6"]), ("twin_a.py", *p["S7"]), ("twin_b.py", *p["S7"]),
                                     ("conf/keys.py", *p["S9"])}


def test_copy_while_editing_the_original_is_an_occurrence(moves):
    # keep/settings.py still exists (edited on another line): settings.py.bak is a copy, not a rename
    assert moves_at(moves, "c2") == {("keep/settings.py.bak", *moves.p["S2"])}


def test_rename_with_an_edit_is_not_a_pure_rename(moves):
    assert moves_at(moves, "c3") == {("new/name.py", *moves.p["S3"])}


def test_pure_rename_plus_copy_is_one_occurrence(moves):
    got = {f for f in moves_at(moves, "c4") if f[1:] == moves.p["S6"]}
    assert len(got) == 1 and got <= {("b_moved.py", *moves.p["S6"]), ("y_copy.py", *moves.p["S6"])}
    # README "Renames:": the source orig3.py pairs with a new path of the same file name, else the first by name
    assert got == {("y_copy.py", *moves.p["S6"])}


def test_a_rename_pairs_with_the_new_path_of_the_same_file_name(moves):
    # conf/keys.py -> moved/keys.py plus a copy a_copy.py: the same file name wins over the first by name
    assert {f for f in moves_at(moves, "c4") if f[1:] == moves.p["S9"]} == {("a_copy.py", *moves.p["S9"])}


def test_rename_to_banned_plus_copy_does_not_depend_on_file_names(moves):
    # orig1.py -> a_docs.md + z_copy.py and orig2.py -> z_docs.md + c_copy.py are the same event, mirrored:
    # whichever reading of "rename" applies, both must count the same
    s4 = {f for f in moves_at(moves, "c4") if f[1:] == moves.p["S4"]}
    s5 = {f for f in moves_at(moves, "c4") if f[1:] == moves.p["S5"]}
    assert s4 <= {("z_copy.py", *moves.p["S4"])} and s5 <= {("c_copy.py", *moves.p["S5"])}
    assert len(s4) == len(s5), (s4, s5)
    # the banned new path is not scanned, so the scanned one is the file moved: the secret was detected before
    assert s4 == s5 == set()


def test_rename_to_a_banned_extension_adds_nothing(moves):
    assert moves_at(moves, "c5") == set()


def test_a_pair_is_introduced_where_both_halves_first_meet(moves):
    s8 = ("split.py", *moves.p["S8"])
    assert [moves_at(moves, label) for label in ("c6", "c7", "c8", "c9")] == [set(), {s8}, set(), {s8}]
    lines = {f["commit"]: f["line"] for f in moves.result.findings if f["path"] == "split.py"}
    assert lines == {moves.c["c7"]: 2, moves.c["c9"]: 4}


def test_directory_rename_adds_nothing(moves):
    assert moves_at(moves, "c10") == set()


def test_moves_agree_with_the_reference(moves):
    """The rename and copy edges, exactly as the reference oracle reads SPEC §4 and the README's rename rule."""
    expected = brute_force_occurrences(moves.repo.path, list(moves.p.values()))
    assert {key(f) for f in moves.result.findings} == expected


def test_same_blob_at_two_new_paths_is_two_occurrences(moves):
    assert moves.result.summary["occurrences"] == len(moves.result.findings)
    assert moves_at(moves, "c1") >= {("twin_a.py", *moves.p["S7"]), ("twin_b.py", *moves.p["S7"])}
    assert {(f["commit"], f["path"]) for f in moves.result.findings if f["path"] in ("twin_a.py", "twin_b.py")} == {
        (moves.c["c1"], "twin_a.py"), (moves.c["c1"], "twin_b.py")}


# =============================================================================================================
# Sizes, empty repositories, incremental reruns
# =============================================================================================================

def test_two_mb_blob_found_by_default_skipped_over_max_blob_bytes(git, tmp_path):
    repo = git()
    big, small = make_pair(), make_pair()
    content = snippet(big) + "".join(f"row {i:08d} " + "z" * 50 + "\n" for i in range(2 * 2**20 // 64))
    assert len(content.encode()) > 2 * 2**20
    commit = repo.commit("big", {"big.txt": content, "small.txt": snippet(small)})
    r = run_scan(repo.path, tmp_path / "out1", "--show-secrets")
    assert r.returncode == 1, r.stderr
    assert {key(f) for f in r.findings} == {(commit, "big.txt", *big), (commit, "small.txt", *small)}
    assert r.summary["blobs_skipped"].get("too_large", 0) == 0
    r = run_scan(repo.path, tmp_path / "out2", "--show-secrets", "--max-blob-bytes", "1000000")
    assert r.returncode == 1, r.stderr
    assert {key(f) for f in r.findings} == {(commit, "small.txt", *small)}
    assert r.summary["blobs_skipped"]["too_large"] == 1


def test_empty_repository(git, tmp_path):
    repo = git()
    r = run_scan(repo.path, tmp_path / "out")
    assert r.returncode == 0, r
    assert r.findings == []
    assert r.summary["commits_scanned"] == 0
    assert r.summary["occurrences"] == 0
    assert r.summary["occurrences_per_million_commits"] is None
    assert r.summary["valid_occurrences_per_million_commits"] is None
    assert "inf" not in (tmp_path / "out" / "summary.json").read_text().lower()


def test_rerun_on_the_same_store_is_incremental(git, tmp_path):
    repo = git()
    old = make_pair()
    c1 = repo.commit("one", {"README.txt": "readme\n", "notes.txt": "nothing here\n", "lib/util.py": "x = 1\n",
                             "app.py": snippet(old)})
    out = tmp_path / "out"
    first = run_scan(repo.path, out, "--show-secrets")
    assert first.returncode == 1, first.stderr
    assert {key(f) for f in first.findings} == {(c1, "app.py", *old)}

    second = run_scan(repo.path, out, "--show-secrets")
    assert second.returncode == 1, second.stderr
    assert second.findings == first.findings
    # nothing new: no tree walked, no commit attributed, only the matched blob re-read (for its token)
    assert second.summary["repos"][0]["commits_new"] == second.summary["repos"][0]["changes_read"] == 0
    assert second.summary["blobs_scanned"] == 1 < first.summary["blobs_scanned"]
    assert second.summary["commits_scanned"] == 1

    new = make_pair()
    c2 = repo.commit("two", {"more.txt": "more\n", "svc/client.py": "import os\n" + snippet(new)})
    third = run_scan(repo.path, out, "--show-secrets")
    assert third.returncode == 1, third.stderr
    assert {key(f) for f in third.findings} == {(c1, "app.py", *old), (c2, "svc/client.py", *new)}
    assert {f["line"] for f in third.findings if f["commit"] == c2} == {2}
    assert third.summary["commits_scanned"] == 2
    assert third.summary["occurrences"] == 2
    assert third.summary["repos"][0]["commits_new"] == 1
    assert third.summary["blobs_scanned"] == 3  # more.txt, svc/client.py, and app.py re-read
    rows = load_jsonl(out / "secrets.jsonl")
    assert sorted((s["client_id"], s["client_secret"], s["occurrences"]) for s in rows) == sorted(
        [(*old, 1), (*new, 1)])


def test_scan_in_process_with_real_pool(git, tmp_path):
    """``auditor.pipeline.scan`` called directly returns the same findings the files hold."""
    from auditor.pipeline import ScanOptions, scan

    repo = git()
    pair = make_pair()
    c1 = repo.commit("one", {"a/b/c.py": "\n" + snippet(pair), "x.md": snippet(make_pair())})
    c2 = repo.commit("two", {"a/b/d.py": "\n" + snippet(pair)})  # the same blob, copied
    outcome = scan([str(repo.path)], ScanOptions(out=tmp_path / "out", validate=False, progress=False, jobs=2))
    got = {(f.commit, f.path, f.client_id, f.client_secret, f.line) for f in outcome.findings}
    assert got == {(c1, "a/b/c.py", *pair, 2), (c2, "a/b/d.py", *pair, 2)}
    assert outcome.summary.commits_scanned == 2
    rows = load_jsonl(tmp_path / "out" / "findings.jsonl")
    assert {(r["commit"], r["path"]) for r in rows} == {(c1, "a/b/c.py"), (c2, "a/b/d.py")}
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["occurrences"] == 2
