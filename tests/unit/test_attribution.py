"""attribution (SPEC §4): ``locate`` reads where matched blobs sit in a small real repository (introductions, tips,
transitions); ``attribute`` turns hand-made provenance, candidates and resolutions into occurrences, tip rows and
removals, and carries over what an earlier scan stored."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pygit2
import pytest

from auditor.attribution import (
    Introduction,
    Locator,
    Provenance,
    TipPlacement,
    Transition,
    attribute,
    introduced,
    locate,
)
from auditor.detectors import DetectorSet, load_detectors
from auditor.detectors.engine import detect
from auditor.detectors.spec import parse_detector
from auditor.git import changes as git_changes
from auditor.git.history import list_commits
from auditor.models import (
    Candidate,
    CheckResult,
    OccurrenceRow,
    Pair,
    RemovalRow,
    Resolved,
    SecretKey,
    TipRow,
    Validity,
    redact,
)
from tests.helpers.detectors import builtin_doc
from tests.helpers.git import AUTHOR_EMAIL, GitRepo
from tests.helpers.pairs import make_pair, make_token, sha, snippet

D = "twilio_master_credentials"
DETECTORS = DetectorSet(load_detectors())


# =====================================================================================================================
# locate: a real repository
# =====================================================================================================================

class Built:
    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        self.c: dict[str, str] = {}
        self.blob: dict[str, str] = {}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """main: c1 adds a.py (X) and notes.md (X, a banned path); c2 edits a.py (X2); c3 renames a.py → src/a.py;
    c4 copies it to backup/a.py; c5 removes the copy; c6 renames src/a.py → src/b.py and copies it to z.py in one
    commit; c7 renames z.py → moved/z.py and copies it to a_copy.py. side (from c1) adds s.py (X), merged by m1;
    tag v1 on c4. q1 (after c2), q2 (side's tip) and q3 (after m1) touch only unmatched files: quiet commits,
    whose matched paths are their first parent's; so does m2 (main's tip), which merges other (o1 adds other.txt on
    c1) and is quiet against its first parent but not against o1, which still has c1's a.py."""
    b = Built(GitRepo(tmp_path_factory.mktemp("attribution") / "repo"))
    r, c = b.repo, b.c
    p = make_pair()
    x, x2 = snippet(p), snippet(p) + "DEBUG = True\n"
    b.blob = {"X": r.blob(x), "X2": r.blob(x2), "plain": r.blob("plain\n")}
    c["c1"] = r.commit("c1", {"a.py": x, "notes.md": x, "keep.txt": "plain\n"})
    c["c2"] = r.commit("c2", {"a.py": x2})
    c["q1"] = r.commit("q1", {"keep.txt": "plainer\n"})
    (r.path / "src").mkdir()
    r("mv", "a.py", "src/a.py")
    c["c3"] = r.commit("c3")
    c["c4"] = r.commit("c4", {"backup/a.py": x2})
    r("tag", "v1")
    c["c5"] = r.commit("c5", remove=("backup/a.py",))
    r("mv", "src/a.py", "src/b.py")
    r.write("z.py", x2)
    c["c6"] = r.commit("c6")
    (r.path / "moved").mkdir()
    r("mv", "z.py", "moved/z.py")
    r.write("a_copy.py", x2)
    c["c7"] = r.commit("c7")
    r("checkout", "-q", "-b", "side", c["c1"])
    c["s1"] = r.commit("s1", {"s.py": x})
    c["q2"] = r.commit("q2", {"side.txt": "on the side\n"})
    r("checkout", "-q", "main")
    r("merge", "-q", "--no-ff", "-m", "m1", "side")
    c["m1"] = r.rev("HEAD")
    c["q3"] = r.commit("q3", {"keep.txt": "merged\n"})
    r("checkout", "-q", "-b", "other", c["c1"])
    c["o1"] = r.commit("o1", {"other.txt": "other\n"})
    r("checkout", "-q", "main")
    r("merge", "-q", "--no-ff", "-m", "m2", "other")
    c["m2"] = r.rev("HEAD")
    return b


def _located(b: Built, *, records: str = "kept", only: list[bytes] | None = None) -> Provenance:
    """``records``: "kept" — what a scan hands attribution (the change log read back for the matched blobs;
    "exact": as a scan does when git gave the listing itself);
    "all" — every commit's whole record, as a plain mapping; "none" — no record: every map is read from trees."""
    repo = pygit2.Repository(str(b.repo.path))
    commits = list_commits(repo)
    matched = (bytes.fromhex(b.blob["X"]), bytes.fromhex(b.blob["X2"]))
    got: Mapping = {}
    if records != "none":
        changes = git_changes.Changes(repo)
        log = git_changes.ChangeLog()
        try:
            listed = list(changes.batches(lambda: (list(commits.tree), commits.parents)))
            for batch in listed:
                log.add(batch)
            got = log.kept(matched, commits.tree, commits.parents, exact=records == "exact") \
                if records in ("kept", "exact") else {c: (p, ch) for c, p, ch in git_changes.records(listed)}
        finally:
            changes.close()
            log.close()
    candidates = {raw: detect(list(DETECTORS.compiled.values()), repo[pygit2.Oid(raw=raw)].data, raw.hex(), 8)
                  for raw in matched}
    assert all(candidates.values())
    return locate(repo, commits, got, candidates, DETECTORS, only)


def _intros(prov: Provenance) -> set[tuple[str, str, str, tuple[str | None, ...]]]:
    return {(i.commit.hex(), i.path.decode(), i.blob.hex(), tuple(p.hex() if p else None for p in i.parent_blobs))
            for i in prov.introductions}


def test_introductions_follow_spec_4_and_the_rename_rule(built: Built) -> None:
    c, X, X2 = built.c, built.blob["X"], built.blob["X2"]
    assert _intros(_located(built)) == {
        (c["c1"], "a.py", X, ()),  # a root commit: no parent blob (notes.md: a banned path, not scanned)
        (c["c2"], "a.py", X2, (X,)),  # a new blob at the path: which secrets are new is attribute's call
        (c["c4"], "backup/a.py", X2, (None,)),  # a copy
        (c["c6"], "z.py", X2, (None,)),  # rename + copy: src/b.py is first by name, so it is the rename
        (c["c7"], "a_copy.py", X2, (None,)),  # rename + copy: moved/z.py has the source's file name
        (c["s1"], "s.py", X, (None,)),  # a side branch; its merge m1 introduces nothing
    }  # c3 (a pure rename) and c5 (a removal) introduce nothing


def test_transitions_are_where_a_matched_blob_leaves_a_path(built: Built) -> None:
    c, X, X2 = built.c, built.blob["X"], built.blob["X2"]
    got = {(t.commit.hex(), t.path.decode(), t.blob.hex(), t.now.hex() if t.now else None)
           for t in _located(built).transitions}
    assert got == {(c["c2"], "a.py", X, X2), (c["c3"], "a.py", X2, None), (c["c5"], "backup/a.py", X2, None),
                   (c["c6"], "src/a.py", X2, None), (c["c7"], "z.py", X2, None),
                   (c["m1"], "a.py", X, None),  # side still had c1's a.py: against that parent, m1 removes it
                   (c["m2"], "a.py", X, None)}  # quiet against its first parent, not against o1


def test_tips_and_authors(built: Built) -> None:
    X, X2 = built.blob["X"], built.blob["X2"]
    prov = _located(built)
    got = {(frozenset(t.refs), t.path.decode(), t.blob.hex()) for t in prov.tips}
    main, side = frozenset({"HEAD", "refs/heads/main"}), frozenset({"refs/heads/side"})
    other = frozenset({"refs/heads/other"})
    tag = frozenset({"refs/tags/v1"})
    assert got == {(main, "notes.md", X), (main, "src/b.py", X2), (main, "moved/z.py", X2), (main, "a_copy.py", X2),
                   (main, "s.py", X),
                   (side, "a.py", X), (side, "notes.md", X), (side, "s.py", X),
                   (other, "a.py", X), (other, "notes.md", X),
                   (tag, "notes.md", X), (tag, "src/a.py", X2), (tag, "backup/a.py", X2)}
    for commit, (email, when) in prov.authors.items():
        epoch = int(built.repo("show", "-s", "--format=%at", commit.hex()).strip())
        assert (email, when) == (AUTHOR_EMAIL, datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert set(prov.authors) == set(prov.about) == {i.commit for i in prov.introductions}
    for commit, (name, committed, message) in prov.about.items():  # what git log says
        show = built.repo("show", "-s", "--format=%an%n%cI%n%s", commit.hex()).strip().split("\n")
        assert [name, committed, message] == [show[0], show[1].replace("+00:00", "Z"), show[2]]
    assert set(prov.times) == {t.commit for t in prov.transitions}
    assert prov.errors == ()


def test_without_recorded_changes_the_trees_say_the_same(built: Built) -> None:
    """A rerun attributes commits an earlier scan listed: no changes are recorded, trees are read instead."""
    from_changes, from_trees = _located(built), _located(built, records="none")
    assert _intros(from_trees) == _intros(from_changes)
    assert set(from_trees.transitions) == set(from_changes.transitions)
    assert set(from_trees.tips) == set(from_changes.tips)


@pytest.mark.parametrize("records", ["kept", "exact"])
def test_whole_records_say_what_the_kept_ones_say(built: Built, records: str) -> None:
    """What a scan keeps of the change log (the changes near a matched blob; quiet commits answered from the
    listing; "exact": only the batches a matched id is in read at all) locates exactly what every whole record
    does."""
    kept, whole = _located(built, records=records), _located(built, records="all")
    assert _intros(kept) == _intros(whole) and kept.introductions
    assert set(kept.transitions) == set(whole.transitions) and kept.transitions
    assert set(kept.tips) == set(whole.tips)


def test_only_the_commits_asked_for(built: Built) -> None:
    c = built.c
    only = [bytes.fromhex(c["c4"]), bytes.fromhex(c["c5"])]
    prov = _located(built, only=only)
    assert {i.commit.hex() for i in prov.introductions} == {c["c4"]}
    assert {t.commit.hex() for t in prov.transitions} == {c["c5"]}


def test_paths_of_a_commit(built: Built) -> None:
    repo = pygit2.Repository(str(built.repo.path))
    commits = list_commits(repo)
    X, X2 = bytes.fromhex(built.blob["X"]), bytes.fromhex(built.blob["X2"])
    locator = Locator(repo, commits, {}, {X, X2})
    assert locator.paths(bytes.fromhex(built.c["c3"])) == {b"src/a.py": X2, b"notes.md": X}
    assert Locator(repo, commits, {}, set()).paths(bytes.fromhex(built.c["c3"])) == {}  # nothing matched


# =====================================================================================================================
# attribute: hand-made values, no git
# =====================================================================================================================

def oid(n: int) -> bytes:
    return bytes([n]) * 20


C1, C2, C3, C4, C5, M1, OLD, KEPT = (oid(n) for n in range(1, 9))
X, X2, Z, Q = oid(0x11), oid(0x12), oid(0x13), oid(0x14)  # blobs
WHEN = {c: f"2021-03-0{i}T00:00:00Z" for i, c in enumerate((C1, C2, C3, C4, C5, M1), 1)}


def candidate(detector: str, blob: bytes, pair: tuple[str, str], *decoys: str, line: int = 3) -> Candidate:
    secrets = (pair[1], *decoys)
    return Candidate(detector=detector, blob=blob.hex(), client_id=pair[0], pairs=tuple(
        Pair(client_id=pair[0], client_secret=s, rank=i, line=line) for i, s in enumerate(secrets)))


def resolution(c: Candidate, secret: str, validity: Validity = Validity.VALID, scope: str | None = "live"
               ) -> tuple[tuple, Resolved]:
    return c.checks_key, Resolved(detector=c.detector, client_id=c.client_id, client_secret=secret,
                                  check=CheckResult(validity=validity, scope=scope))


class Case:
    """P is in X and X2 (X2: X edited elsewhere); Z holds P's SID with a new token (P2); Q holds R."""

    def __init__(self) -> None:
        self.p, self.r = make_pair(), make_pair()
        self.p2 = (self.p[0], make_token())
        decoy = make_token()
        self.cands = {X: [candidate(D, X, self.p, decoy)], X2: [candidate(D, X2, self.p, decoy)],
                      Z: [candidate(D, Z, self.p2, line=1)], Q: [candidate(D, Q, self.r, line=7)]}
        # X and X2 resolve to P although the decoy ranks second; Z's and Q's secrets are invalid
        self.resolved = dict([resolution(self.cands[X][0], self.p[1]), resolution(self.cands[Z][0], self.p2[1],
                                                                                  Validity.INVALID, None),
                              resolution(self.cands[Q][0], self.r[1], Validity.INVALID, None)])


def intro(commit: bytes, path: bytes, blob: bytes, *parents: bytes | None) -> Introduction:
    return Introduction(commit=commit, path=path, blob=blob, parent_blobs=tuple(parents))


def run(case: Case, provenance: Provenance, *, detectors: DetectorSet = DETECTORS, reachable=lambda c: True,
        stored=(), stored_removals=()):
    return attribute("/repos/one", case.cands, case.resolved, provenance, detectors, reachable=reachable,
                     stored=stored, stored_removals=stored_removals)


def authors(*commits: bytes) -> dict[bytes, tuple[str, str]]:
    return {c: ("a@example.com", WHEN[c]) for c in commits}


def found(attribution) -> set[tuple[str, str, str, str, int]]:
    return {(f.commit, f.path, f.client_id, f.client_secret, f.line) for f in attribution.findings}


def test_introductions_copies_edits_and_merges() -> None:
    case = Case()
    prov = Provenance(introductions=(
        intro(C1, b"a.py", X),  # introduced in a root commit
        intro(C2, b"a.py", X2, X),  # an edit elsewhere in the file: the parent's blob holds P already
        intro(C4, b"backup/a.py", X2, None),  # a copy: an occurrence
        intro(C4, b"docs/a.md", X2, None),  # a banned path: the detector does not look there
        intro(C5, b"a.py", Z, X2),  # a new token for the same SID: a new secret (P's is gone)
        intro(M1, b"s.py", X, None, X),  # content merged from a branch: the second parent had it
        intro(M1, b"q.py", Q, None, None),  # a conflict resolution no parent had
    ), authors=authors(C1, C2, C4, C5, M1))
    got = run(case, prov)
    p, p2, r = case.p, case.p2, case.r
    assert found(got) == {(C1.hex(), "a.py", *p, 3), (C4.hex(), "backup/a.py", *p, 3),
                          (C5.hex(), "a.py", *p2, 1), (M1.hex(), "q.py", *r, 7)}
    by_path = {(f.commit, f.path): f for f in got.findings}
    f = by_path[(C1.hex(), "a.py")]
    assert (f.detector, f.repo, f.blob, f.secret_sha256, f.validity, f.scope, f.author_email, f.author_time) == (
        D, "/repos/one", X.hex(), sha(p), Validity.VALID, "live", "a@example.com", WHEN[C1])
    assert by_path[(C5.hex(), "a.py")].validity is Validity.INVALID
    # the store's rows: the same occurrences, the token redacted
    assert sorted(got.occurrences) == sorted(
        OccurrenceRow(f.detector, f.commit, f.path, f.line, f.blob, f.client_id, redact(f.client_secret),
                      f.secret_sha256, f.author_email, f.author_time) for f in got.findings)
    assert all(p[1] not in repr(o) and p2[1] not in repr(o) for o in got.occurrences)
    assert got.errors == [] and got.tips == [] and got.removals == []


def test_a_pure_rename_is_a_removal_at_the_old_path_and_a_tip_at_the_new_one() -> None:
    """What ``locate`` gives for a commit that only renames a.py to src/a.py: no introduction at all."""
    case = Case()
    prov = Provenance(transitions=(Transition(commit=C3, path=b"a.py", blob=X2, now=None),),
                      times={C3: WHEN[C3]},
                      tips=(TipPlacement(refs=("HEAD", "refs/heads/main"), path=b"src/a.py", blob=X2),))
    got = run(case, prov)
    assert got.findings == [] and got.occurrences == []
    assert got.removals == [RemovalRow(D, C3.hex(), "a.py", sha(case.p), WHEN[C3])]
    assert got.tips == [TipRow(sha(case.p), "HEAD", "src/a.py"), TipRow(sha(case.p), "refs/heads/main", "src/a.py")]


def test_removals_only_where_a_secret_really_leaves_the_path() -> None:
    case = Case()
    prov = Provenance(transitions=(
        Transition(commit=C2, path=b"a.py", blob=X, now=X2),  # edited elsewhere: P stays
        Transition(commit=C5, path=b"a.py", blob=X2, now=Z),  # P's token replaced: P leaves, the SID stays
        Transition(commit=C5, path=b"notes.md", blob=X2, now=None),  # a banned path never held a detected secret
        Transition(commit=M1, path=b"q.py", blob=Q, now=None),  # deleted
    ), times={C2: WHEN[C2], C5: WHEN[C5], M1: WHEN[M1]})
    got = run(case, prov)
    assert sorted(got.removals) == sorted([RemovalRow(D, C5.hex(), "a.py", sha(case.p), WHEN[C5]),
                                           RemovalRow(D, M1.hex(), "q.py", sha(case.r), WHEN[M1])])


def test_tips_are_per_ref_and_only_at_scanned_paths() -> None:
    case = Case()
    prov = Provenance(tips=(TipPlacement(refs=("refs/heads/side",), path=b"s.py", blob=X),
                            TipPlacement(refs=("refs/tags/v1",), path=b"notes.md", blob=X),
                            TipPlacement(refs=("refs/tags/v1", "refs/heads/old"), path=b"q.py", blob=Q)))
    got = run(case, prov)
    assert sorted(got.tips) == sorted([TipRow(sha(case.p), "refs/heads/side", "s.py"),
                                       TipRow(sha(case.r), "refs/tags/v1", "q.py"),
                                       TipRow(sha(case.r), "refs/heads/old", "q.py")])


def test_stored_occurrences_are_carried_over_while_their_commit_is_reachable() -> None:
    """A rerun attributes only new commits; what an earlier scan stored stays, unless its commit is gone."""
    case = Case()
    kept = OccurrenceRow(D, KEPT.hex(), "old/a.py", 9, X.hex(), case.p[0], redact(case.p[1]), sha(case.p),
                         "b@example.com", "2019-01-01T00:00:00Z")
    gone = kept._replace(commit=OLD.hex(), path="gone.py")  # only a deleted branch reached it
    unreadable = kept._replace(commit=KEPT.hex(), path="lost.py", blob=Q.hex())  # Q no longer holds that secret
    removal_kept = RemovalRow(D, KEPT.hex(), "old/a.py", sha(case.p), "2019-02-01T00:00:00Z")
    removal_gone = removal_kept._replace(commit=OLD.hex())
    got = run(case, Provenance(), reachable=lambda c: c != OLD, stored=[kept, gone, unreadable],
              stored_removals=[removal_kept, removal_gone])
    assert found(got) == {(KEPT.hex(), "old/a.py", *case.p, 9)}
    [f] = got.findings
    assert (f.author_email, f.author_time, f.validity) == ("b@example.com", "2019-01-01T00:00:00Z", Validity.VALID)
    assert got.occurrences == [kept]
    assert got.removals == [removal_kept]
    assert len(got.errors) == 1 and Q.hex() in got.errors[0] and "lost.py" in got.errors[0]


def test_two_detectors_matching_one_pair_are_two_secrets() -> None:
    """SPEC §4: a secret is (detector, client_id, client_secret)."""
    other = parse_detector(builtin_doc("twilio_copy"), "test")
    detectors = DetectorSet([*load_detectors(), other])
    case = Case()
    mine = candidate("twilio_copy", X, case.p)
    case.cands[X] = [*case.cands[X], mine]
    case.resolved.update([resolution(mine, case.p[1])])
    got = run(case, Provenance(introductions=(intro(C1, b"a.py", X),), authors=authors(C1)), detectors=detectors)
    assert sorted((f.detector, f.path, f.secret_sha256) for f in got.findings) == [
        ("twilio_copy", "a.py", sha(case.p)), (D, "a.py", sha(case.p))]


def test_introduced_subtracts_every_parents_secrets() -> None:
    p, r = SecretKey(D, *make_pair()), SecretKey(D, *make_pair())
    secrets_of = {X: frozenset({p}), Q: frozenset({p, r})}
    assert introduced(intro(C1, b"f", Q), secrets_of) == {p, r}
    assert introduced(intro(C2, b"f", Q, X), secrets_of) == {r}
    assert introduced(intro(M1, b"f", Q, None, Q), secrets_of) == frozenset()
    assert introduced(intro(C2, b"f", X, Q), secrets_of) == frozenset()
