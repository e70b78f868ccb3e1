"""SPEC §4, all of it: matched blobs + each commit's first-parent changes → where they sit in every commit
(``locate``, reads git) → which commits introduce, still hold and remove which secret (``attribute``, pure).

The cut between the two is validation: which secret a blob holds is known only once its candidates are resolved
(the first valid pair in rank order), so ``locate`` runs beside the repository and returns plain values
(``Provenance``: introductions, tip placements, transitions away from matched blobs), and ``attribute`` turns
them into occurrences wherever the resolutions are (the client of a corpus, the end of a local run).

A commit's matched paths are its first parent's with its own changes applied, so they follow from the changes
without reading a tree; a commit that changes no matched path shares its parent's map (one dict for a whole run of
commits), and compares with it by identity. Commits without recorded changes (attributed by an earlier scan, on a
rerun) are listed from their trees instead, memoized per tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pygit2

from auditor.commit_rows import iso
from auditor.detectors.engine import DetectorSet
from auditor.git.changes import FILE, Change
from auditor.git.history import Commits
from auditor.git.objects import MODE_TREE, author, commit_tree, read_commit, tree_entries
from auditor.models import (
    Candidate,
    ExposureEnd,
    Finding,
    OccurrenceRow,
    RemovalRow,
    Resolved,
    SecretKey,
    TipRow,
    redact,
)

Paths = dict[bytes, bytes]  # path → matched blob
SECRET_IN_MESSAGE = "[secret]"  # what a commit message that quotes the finding's own token shows in its place


@dataclass(frozen=True, slots=True, kw_only=True)
class Introduction:
    """In ``commit``, ``blob`` sits at ``path`` while no parent has that very blob there.

    Which secrets it introduces is decided later, once the blob's secrets are resolved:
    secrets(blob) minus the secrets of every parent's blob at the same path.
    """

    commit: bytes
    path: bytes
    blob: bytes
    parent_blobs: tuple[bytes | None, ...]  # one per parent: its blob at path, if that blob matched


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    """In ``commit``, ``path`` no longer holds a parent's matched ``blob`` (it holds ``now``, or nothing matched)."""

    commit: bytes
    path: bytes
    blob: bytes
    now: bytes | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TipPlacement:
    """At the tip commit that ``refs`` name, ``blob`` (a matched one) sits at ``path``."""

    refs: tuple[str, ...]
    path: bytes
    blob: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    """Where one repository's matched blobs sit, as plain values: all ``attribute`` needs besides resolutions."""

    introductions: tuple[Introduction, ...] = ()
    authors: dict[bytes, tuple[str, str]] = field(default_factory=dict)  # introducing commit → (email, ISO time)
    # introducing commit → (author name, ISO committer time, first line of the message): what a finding shows
    about: dict[bytes, tuple[str, str | None, str]] = field(default_factory=dict)
    tips: tuple[TipPlacement, ...] = ()
    transitions: tuple[Transition, ...] = ()
    times: dict[bytes, str] = field(default_factory=dict)  # transition commit → ISO committer time
    # (transition commit, introducing commit) at one path where the first descends from the second: which
    # removals can end which exposures, decided here because only here is the commit graph at hand
    descends: frozenset[tuple[bytes, bytes]] = frozenset()
    errors: tuple[str, ...] = ()


class Locator:
    def __init__(self, repo: pygit2.Repository, commits: Commits,
                 records: Mapping[bytes, tuple[bytes | None, list[Change]]], matched: Iterable[bytes]) -> None:
        self.repo = repo
        self.commits = commits
        self.records = records
        self.matched = set(matched)
        self.errors: list[str] = []
        # the shortcuts of a scan's own records and listing (quiet commits, first parents), looked up once: ``paths``
        # runs once per commit
        self._quiet = getattr(records, "quiet", None)
        self._first = getattr(commits.parents, "first", None)
        self._maps: dict[bytes, Paths] = {}
        self._listed: dict[bytes, Paths] = {}
        self._around_of: tuple[tuple[bytes, ...] | None, list[tuple[bytes, Paths, list[Paths]]]] | None = None

    def paths(self, commit: bytes) -> Paths:
        """path → matched blob in ``commit`` (regular files only)."""
        maps, matched = self._maps, self.matched
        if not matched:
            return {}
        quiet, first = self._quiet, self._first
        waiting: dict[bytes, tuple[list[bytes], bytes]] = {}  # a run's first commit → (the run, where it ends)
        stack = [commit]
        while stack:
            c = stack[-1]
            if c in maps:
                stack.pop()
                continue
            if quiet is not None and first is not None and (c in waiting or quiet(c)):
                # a run of quiet commits (each its first parent's map) is followed down at once, and given the map
                # where it ends: one step a commit on the long first-parent chains, not a record made and read twice
                run, end = waiting.pop(c, None) or ([c], first(c))
                while end is not None and end not in maps and quiet(end):
                    run.append(end)
                    end = first(end)
                if end is not None and end not in maps:
                    waiting[c] = (run, end)  # a commit with changes of its own: made first, then this run
                    stack.append(end)
                    continue
                value = maps[end] if end is not None else {}
                for x in run:
                    maps[x] = value
                stack.pop()
                continue
            record = self.records.get(c)
            if record is None:
                maps[c] = self._list(self._tree_of(c))
                stack.pop()
                continue
            parent, changes = record
            if parent is not None and parent not in maps:
                stack.append(parent)  # first-parent chains run deep: an explicit stack, not recursion
                continue
            stack.pop()
            base = maps[parent] if parent is not None else {}
            touched = [ch for ch in changes if ch.old in matched or ch.new in matched]
            if not touched:
                maps[c] = base
                continue
            here = dict(base)
            for path, _, new_kind, _, new in touched:
                if new_kind == FILE and new in matched:
                    here[path] = new
                else:
                    here.pop(path, None)
            maps[c] = here
        return maps[commit]

    def _tree_of(self, commit: bytes) -> bytes | None:
        return self.commits.tree.get(commit) or commit_tree(self.repo, commit)

    def _list(self, tree: bytes | None) -> Paths:
        """Matched paths under ``tree``, read object by object (memoized per tree)."""
        if tree is None:
            return {}
        got = self._listed.get(tree)
        if got is None:
            got = {}
            for mode, name, oid in tree_entries(self.repo, tree, self.errors):
                if mode == MODE_TREE:
                    for sub, blob in self._list(oid).items():
                        got[name + b"/" + sub] = blob
                elif mode.startswith(b"100") and oid in self.matched:
                    got[name] = oid
            self._listed[tree] = got
        return got

    def _exists(self, commit: bytes, path: bytes) -> bool:
        """Whether ``path`` names any entry of the commit (a file may hold an unmatched blob now)."""
        tree = self._tree_of(commit)
        try:
            return tree is not None and path.decode("utf-8", "surrogateescape") in self.repo[pygit2.Oid(raw=tree)]
        except (KeyError, pygit2.GitError, ValueError, UnicodeError):
            return False

    def _arounds(self, only: Iterable[bytes] | None) -> list[tuple[bytes, Paths, list[Paths]]]:
        """(commit, its map, its parents' maps) of every commit (``only`` these) whose map is not just its one
        parent's: what introductions and transitions both read, found in one pass (memoized)."""
        key = None if only is None else tuple(only)
        if self._around_of is not None and self._around_of[0] == key:
            return self._around_of[1]
        out: list[tuple[bytes, Paths, list[Paths]]] = []
        if self.matched:
            parents, listed, paths = self.commits.parents, self.commits, self.paths
            # a commit whose record says nothing and that has one listed parent has that parent's map: skipped
            # without a map made (most commits; their maps are made only where a walk passes them)
            quiet = getattr(self.records, "quiet", None) or (lambda commit: False)
            sole = getattr(parents, "sole", None) or (lambda commit: None)
            for commit in self.commits.tree if key is None else key:
                if quiet(commit) and (p := sole(commit)) is not None and p in listed:
                    continue
                here = paths(commit)
                parent_maps = [paths(p) for p in parents.get(commit, ()) if p in listed]
                if len(parent_maps) != 1 or parent_maps[0] is not here:
                    out.append((commit, here, parent_maps))
        self._around_of = (key, out)
        return out

    def introductions(self, scanned: Callable[[bytes], bool], only: Iterable[bytes] | None = None
                      ) -> list[Introduction]:
        """Every (commit, path) whose matched blob no parent has at that path, pure renames excepted.

        ``scanned(path)`` says whether detectors look at a path at all (the filename banlist): a rename
        from or to a path no detector looks at is not a rename of a detected secret. ``only``: these commits.
        """
        out: list[Introduction] = []
        if not self.matched:  # most histories: nothing to locate
            return out
        for commit, here, parent_maps in self._arounds(only):
            if not here:
                continue
            new: dict[bytes, list[bytes]] = {}
            for path, blob in here.items():
                if scanned(path) and not any(m.get(path) == blob for m in parent_maps):
                    new.setdefault(blob, []).append(path)
            for blob, paths in new.items():
                # A scanned parent path that held this very blob and is gone from the commit is a rename
                # source: that many new paths are the file moved, not copied (a pure rename adds nothing).
                sources = sorted({p for m in parent_maps for p, b in m.items()
                                  if b == blob and p not in here and scanned(p) and not self._exists(commit, p)})
                for source in sources:
                    if not paths:
                        break
                    base = source.rsplit(b"/", 1)[-1]
                    same = [p for p in paths if p.rsplit(b"/", 1)[-1] == base]
                    paths.remove(same[0] if same else sorted(paths)[0])
                for path in sorted(paths):
                    before = tuple(m.get(path) for m in parent_maps)
                    out.append(Introduction(commit=commit, path=path, blob=blob, parent_blobs=before))
        return out

    def transitions(self, only: Iterable[bytes] | None = None) -> list[Transition]:
        """Every (commit, path) where a parent's matched blob is no longer the commit's blob there."""
        out: list[Transition] = []
        if not self.matched:
            return out
        for commit, here, parent_maps in self._arounds(only):
            if not any(parent_maps):
                continue
            for m in parent_maps:
                for path, blob in m.items():
                    now = here.get(path)
                    if now != blob:
                        out.append(Transition(commit=commit, path=path, blob=blob, now=now))
        return out


def introduced(intro: Introduction, secrets_of: Mapping[bytes, frozenset[SecretKey]]) -> frozenset[SecretKey]:
    """The secrets the commit introduces at the path: in its blob, in no parent's blob there."""
    mine = secrets_of.get(intro.blob, frozenset())
    for parent_blob in intro.parent_blobs:
        if parent_blob is not None and mine:
            mine = mine - secrets_of.get(parent_blob, frozenset())
    return mine


# -- the git side --------------------------------------------------------------------------------------------------
class _Ancestry:
    """Is one commit a descendant of another? Asked in a batch (``reaching``): one walk over the listing's parents
    from the descendants asked about, carrying per commit the set (an int's bits) of the ancestors asked about that
    it reaches, so the cost is one pass over their history whatever the number of questions (a question per pair of
    a removal and an introduction at one path: millions where a catalog matches many versions of a file). libgit2's
    merge-base walk (~10 ms a question) only for commits the listing did not load (a rerun's earlier ones)."""

    def __init__(self, repo: pygit2.Repository, commits: Commits) -> None:
        self.repo, self.commits, self.parents = repo, commits, commits.parents

    def reaching(self, pairs: Iterable[tuple[bytes, bytes]]) -> set[tuple[bytes, bytes]]:
        """The (descendant, ancestor) pairs of ``pairs`` where the first is the second or descends from it."""
        parents = self.parents
        loaded, out = set(), set()
        for pair in set(pairs):
            if pair[0] in parents and pair[1] in parents:
                loaded.add(pair)
            elif self._descends_outside(*pair):
                out.add(pair)
        if not loaded:
            return out
        bit = {a: 1 << i for i, a in enumerate(sorted({a for _, a in loaded}))}
        mask: dict[bytes, int] = {}
        listed: dict[bytes, tuple[bytes, ...]] = {}  # a commit's loaded parents, once read
        for start in {d for d, _ in loaded}:
            stack = [start]
            while stack:
                c = stack[-1]
                if c in mask:
                    stack.pop()
                    continue
                ps = listed.get(c)
                if ps is None:
                    ps = listed[c] = tuple(p for p in parents.get(c, ()) if p in parents)
                    todo = [p for p in ps if p not in mask]
                    if todo:
                        stack.extend(todo)
                        continue
                stack.pop()
                own = bit.get(c, 0)
                if len(ps) == 1 and not own:
                    mask[c] = mask[ps[0]]  # shared, not copied: most commits have one parent
                    continue
                for p in ps:
                    own |= mask[p]
                mask[c] = own
        out.update(pair for pair in loaded if mask[pair[0]] & bit[pair[1]])
        return out

    def descends(self, descendant: bytes, ancestor: bytes) -> bool:
        return (descendant, ancestor) in self.reaching(((descendant, ancestor),))

    def _descends_outside(self, descendant: bytes, ancestor: bytes) -> bool:
        try:
            return bool(self.repo.descendant_of(pygit2.Oid(raw=descendant), pygit2.Oid(raw=ancestor))) \
                or descendant == ancestor
        except (ValueError, KeyError, pygit2.GitError):  # unreadable: commit times, exact on a linear history
            return self.commits.time.get(descendant, 0) >= self.commits.time.get(ancestor, 0)


def locate(repo: pygit2.Repository, commits: Commits, records: Mapping[bytes, tuple[bytes | None, list[Change]]],
           candidates: Mapping[bytes, Sequence[Candidate]], detectors: DetectorSet, only: Sequence[bytes] | None,
           earlier: Iterable[tuple[bytes, bytes, bytes]] = ()) -> Provenance:
    """Where the matched blobs (the keys of ``candidates``) sit in every commit (``only`` these commits, on a
    rerun), read from git. ``earlier``: (commit, path, blob) of the occurrences an earlier scan attributed, which
    new removals may end."""
    locator = Locator(repo, commits, records, candidates)
    intros = locator.introductions(detectors.scans, only)
    authors: dict[bytes, tuple[str, str]] = {}
    about: dict[bytes, tuple[str, str | None, str]] = {}
    for intro in intros:
        if intro.commit not in authors:
            email, when = author(repo, intro.commit)
            authors[intro.commit] = (email, iso(when))
            about[intro.commit] = commit_facts(repo, commits, intro.commit)
    tips = tuple(TipPlacement(refs=tuple(refs), path=path, blob=blob)
                 for tip, refs in commits.tips.items() for path, blob in locator.paths(tip).items())
    transitions = locator.transitions(only)
    return Provenance(introductions=tuple(intros), authors=authors, about=about, tips=tips,
                      transitions=tuple(transitions),
                      times={t.commit: iso(commits.time[t.commit]) for t in transitions},
                      descends=_descents(repo, commits, candidates, intros, transitions, earlier),
                      errors=tuple(locator.errors))


def subject(message: str) -> str:
    """A commit message's first line (what ``git log --oneline`` shows), at most 200 characters."""
    line = message.lstrip("\r\n").split("\n", 1)[0].strip()
    return line if len(line) <= 200 else line[:199] + "…"


def _text(raw: bytes, decoded: Callable[[], str]) -> str:
    """Commit text as people read it: UTF-8 when the bytes are UTF-8 (what git writes, whatever an ``encoding``
    header claims), else as the header says (``decoded``), else UTF-8 with replacement characters."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return decoded()
    except (ValueError, LookupError):  # undecodable by its encoding header, or an unknown encoding
        return raw.decode("utf-8", "replace")


def commit_facts(repo: pygit2.Repository, commits: Commits, commit: bytes) -> tuple[str, str | None, str]:
    """(author name, committer time as ISO 8601 UTC, first line of the message) of a commit the locator already
    has at hand (``_text`` decodes them), read from the raw object where libgit2 rejects the commit (as
    ``git.objects.author``). Empty text (no time) where it cannot be read at all."""
    when = commits.time.get(commit)
    try:
        c = repo[pygit2.Oid(raw=commit)]
        a = c.author
        return (_text(a.raw_name, lambda: a.name), iso(c.commit_time if when is None else when),
                subject(_text(c.raw_message, lambda: c.message)))
    except (KeyError, pygit2.GitError, ValueError, AttributeError):
        pass
    try:
        _, data = repo.odb.read(pygit2.Oid(raw=commit))
        head = read_commit(repo, commit)
    except (KeyError, pygit2.GitError, ValueError):
        return "", None if when is None else iso(when), ""
    headers, _, message = data.partition(b"\n\n")
    line = next((h[7:] for h in headers.split(b"\n") if h.startswith(b"author ")), b"")
    name = line.split(b"<", 1)[0].strip().decode("utf-8", "replace")
    return name, iso(head.time if when is None else when), subject(message.decode("utf-8", "replace"))


def _descents(repo: pygit2.Repository, commits: Commits, candidates: Mapping[bytes, Sequence[Candidate]],
              intros: Sequence[Introduction], transitions: Sequence[Transition],
              earlier: Iterable[tuple[bytes, bytes, bytes]]) -> frozenset[tuple[bytes, bytes]]:
    """(transition, introduction) pairs at one path where the transition descends from the introduction and could
    remove what it introduced: the old blob's candidates differ from the new one's and share a client_id with the
    introduced blob's. Only those pairs are asked of the graph, all in one walk (``_Ancestry.reaching``)."""
    checks = {b: frozenset(c.checks_key for c in cands) for b, cands in candidates.items()}
    ids = {b: frozenset(c.client_id for c in cands) for b, cands in candidates.items()}
    introduced_at: dict[bytes, list[tuple[bytes, bytes]]] = {}
    for commit, path, blob in (*((i.commit, i.path, i.blob) for i in intros), *earlier):
        introduced_at.setdefault(path, []).append((commit, blob))
    asked = set()
    for t in transitions:
        if t.now is not None and checks.get(t.now) == checks[t.blob]:
            continue  # the same candidates before and after: nothing can be gone
        for commit, blob in introduced_at.get(t.path, ()):
            if commit != t.commit and ids.get(blob, frozenset()) & ids[t.blob]:
                asked.add((t.commit, commit))
    return frozenset(_Ancestry(repo, commits).reaching(asked))


# -- the pure side ---------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Attribution:
    """One repository's occurrences (SPEC §4) with provenance and validity, and what the store keeps of them."""

    findings: list[Finding] = field(default_factory=list)
    occurrences: list[OccurrenceRow] = field(default_factory=list)
    tips: list[TipRow] = field(default_factory=list)
    removals: list[RemovalRow] = field(default_factory=list)
    ends: list[ExposureEnd] = field(default_factory=list)  # where each occurrence's exposure ended, if it did
    errors: list[str] = field(default_factory=list)


def secrets_by_blob(by_blob: Mapping[bytes, Sequence[Candidate]], resolved: Mapping[tuple, Resolved]
                    ) -> tuple[dict[bytes, frozenset[SecretKey]], dict[tuple[bytes, SecretKey], int],
                               dict[SecretKey, Resolved]]:
    """Each matched blob's secrets once its candidates are resolved; the line of each; each secret's check."""
    secrets_of: dict[bytes, frozenset[SecretKey]] = {}
    line_of: dict[tuple[bytes, SecretKey], int] = {}
    check_of: dict[SecretKey, Resolved] = {}
    for blob, cands in by_blob.items():
        keys = set()
        for c in cands:
            r = resolved[c.checks_key]
            key = r.key
            keys.add(key)
            check_of[key] = r
            line = next(p.line for p in c.pairs if p.client_secret == r.client_secret)
            line_of[(blob, key)] = min(line, line_of.get((blob, key), line))
        secrets_of[blob] = frozenset(keys)
    return secrets_of, line_of, check_of


def attribute(repo: str, by_blob: Mapping[bytes, Sequence[Candidate]], resolved: Mapping[tuple, Resolved],
              provenance: Provenance, detectors: DetectorSet, *, reachable: Callable[[bytes], bool],
              stored: Sequence[OccurrenceRow] = (), stored_removals: Sequence[RemovalRow] = (),
              stored_ends: Sequence[ExposureEnd] = ()) -> Attribution:
    """Resolved candidates + provenance → occurrences, tip presence, removals and exposure ends of one repository.

    ``stored``: the occurrences an earlier scan attributed (a rerun attributes only new commits), with their
    removals and ends; those of commits no longer ``reachable`` are dropped.
    """
    secrets_of, line_of, check_of = secrets_by_blob(by_blob, resolved)
    out = Attribution()
    places: list[tuple[bytes, bytes, SecretKey]] = []  # each finding's (commit, raw path, secret)

    def add(commit: bytes, path: bytes, blob: bytes, key: SecretKey, line: int, email: str, when: str,
            about: tuple[str | None, str | None, str | None]) -> None:
        r = check_of[key]
        name, committed, message = about
        if message and key.client_secret:  # a message may quote the token: never kept, not even redacted (SARIF)
            message = message.replace(key.client_secret, SECRET_IN_MESSAGE)
        f = Finding(detector=key.detector, repo=repo, commit=commit.hex(), path=path.decode("utf-8", "replace"),
                    line=line, client_id=key.client_id, client_secret=key.client_secret, secret_sha256=r.secret_sha256,
                    validity=r.check.validity, scope=r.check.scope, account_status=r.check.account_status,
                    account_type=r.check.account_type, author_email=email, author_time=when, blob=blob.hex(),
                    subaccount=r.check.subaccount, region=r.check.region, author_name=name, commit_time=committed,
                    commit_message=message)
        out.findings.append(f)
        places.append((commit, path, key))
        out.occurrences.append(OccurrenceRow(f.detector, f.commit, f.path, f.line, f.blob, f.client_id,
                                             redact(f.client_secret), f.secret_sha256, f.author_email,
                                             f.author_time, f.author_name, f.commit_message, f.commit_time))

    for row in stored:
        commit, blob = bytes.fromhex(row.commit), bytes.fromhex(row.blob)
        if not reachable(commit):
            continue  # no longer reachable from any ref
        key = next((k for k in secrets_of.get(blob, ()) if k.sha256 == row.secret_sha256), None)
        if key is None:
            out.errors.append(f"blob {row.blob}: held a secret at {row.path} in {row.commit} but could not be read "
                              "again; that occurrence is left out (rescan into a new --out)")
            continue
        add(commit, row.path.encode("utf-8", "surrogateescape"), blob, key, row.line, row.author_email,
            row.author_time, (row.author_name, row.commit_time, row.commit_message))
    for intro in provenance.introductions:
        for key in introduced(intro, secrets_of):
            if detectors.allows(key.detector, intro.path):
                email, when = provenance.authors[intro.commit]
                add(intro.commit, intro.path, intro.blob, key, line_of[(intro.blob, key)], email, when,
                    provenance.about.get(intro.commit, (None, None, None)))
    for placed in provenance.tips:
        for key in secrets_of.get(placed.blob, ()):
            if detectors.allows(key.detector, placed.path):
                out.tips.extend(TipRow(key.sha256, ref, placed.path.decode("utf-8", "replace"))
                                for ref in placed.refs)
    out.removals = [r for r in stored_removals if reachable(bytes.fromhex(r.commit))]
    lost: dict[tuple[bytes, bytes, SecretKey], None] = {}
    for t in provenance.transitions:
        gone = secrets_of.get(t.blob, frozenset()) - (secrets_of.get(t.now, frozenset()) if t.now else frozenset())
        for key in gone:
            if detectors.allows(key.detector, t.path):
                lost[(t.commit, t.path, key)] = None
    out.removals += [RemovalRow(key.detector, commit.hex(), path.decode("utf-8", "replace"), key.sha256,
                                provenance.times[commit]) for commit, path, key in lost]
    # each occurrence ends at the earliest removal of its secret at its path that descends from it
    removed: dict[tuple[bytes, SecretKey], list[tuple[str, str, bytes]]] = {}
    for commit, path, key in lost:
        removed.setdefault((path, key), []).append((provenance.times[commit], commit.hex(), commit))
    before = {(e.commit, e.path, e.secret_sha256): e for e in stored_ends}
    for f, (intro, path, key) in zip(out.findings, places, strict=True):
        ends = [(when, hexid) for when, hexid, commit in removed.get((path, key), ())
                if (commit, intro) in provenance.descends]
        if (old := before.get((f.commit, f.path, f.secret_sha256))) is not None and reachable(
                bytes.fromhex(old.removed_commit)):
            ends.append((old.removed_time, old.removed_commit))
        if ends:
            when, hexid = min(ends)
            out.ends.append(ExposureEnd(f.commit, f.path, f.secret_sha256, hexid, when))
    return out
