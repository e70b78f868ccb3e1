"""Values that cross pipeline stages: frozen, slotted, keyword-only dataclasses, named tuples and the Validity enum;
no I/O. A field that holds a secret is ``repr=False`` (or redacted in ``__repr__``): no token reaches a traceback
or a log line."""

from __future__ import annotations

import enum
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple


class Validity(enum.StrEnum):
    """Outcome of a validity check; only ``valid`` raises an alert when validation is on."""

    VALID = "valid"
    INVALID = "invalid"
    FAILED_TO_CHECK = "failed_to_check"
    UNCHECKED = "unchecked"


def secret_sha256(client_id: str, client_secret: str) -> str:
    """The stable, non-reversible key of a secret (SPEC §4): of ``client_id:client_secret``, or of the secret alone
    for a detector with one matcher (no client_id)."""
    return hashlib.sha256((f"{client_id}:{client_secret}" if client_id else client_secret).encode()).hexdigest()


class SecretKey(NamedTuple):
    """A secret (SPEC §4): two detectors matching one pair are two secrets."""

    detector: str
    client_id: str
    client_secret: str

    @property
    def sha256(self) -> str:
        return secret_sha256(self.client_id, self.client_secret)

    def __repr__(self) -> str:
        return f"SecretKey(detector={self.detector!r}, client_id={self.client_id!r}, client_secret=<redacted>)"


PRESENCE = ("branch tip", "tag tip", "pull-request tip", "other ref tip", "history only")  # best first: where a
# secret still sits. A pull-request ref (refs/pull/*, refs/merge-requests/*) holds a fork's contribution, not the
# project's code: it is told apart from a branch (SPEC §11).
REF_KINDS = ("branch", "tag", "pull request", "other")
# Commits by the kind of ref that reaches them (auditor.git.reach): the project's, a fork's contribution, neither.
REACH = ("branches and tags", "pull requests only", "other refs only")
_PULL_PREFIXES = ("refs/pull/", "refs/merge-requests/", "refs/remotes/origin/pr/")


def ref_kind(ref: str) -> str:
    """The kind of a ref (REF_KINDS): branch (refs/heads/, HEAD), tag (refs/tags/), pull request (refs/pull/*,
    refs/merge-requests/*), other (remote-tracking refs, notes, the stash…)."""
    if ref.startswith("refs/heads/") or ref == "HEAD":
        return REF_KINDS[0]
    if ref.startswith("refs/tags/"):
        return REF_KINDS[1]
    if ref.startswith(_PULL_PREFIXES):
        return REF_KINDS[2]
    return REF_KINDS[3]


def presence(refs: Sequence[str]) -> str:
    """Where a secret still sits, from the refs whose tips hold it (PRESENCE)."""
    kinds = {ref_kind(r) for r in refs}
    for kind, where in zip(REF_KINDS, PRESENCE, strict=False):
        if kind in kinds:
            return where
    return PRESENCE[-1]


def short_ref(ref: str) -> str:
    """refs/heads/main → main, refs/pull/620/head → #620, refs/merge-requests/7/head → !7, else the ref."""
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    parts = ref.split("/")
    if ref.startswith("refs/pull/") and len(parts) > 2:
        return f"#{parts[2]}"
    if ref.startswith("refs/merge-requests/") and len(parts) > 2:
        return f"!{parts[2]}"
    return ref


def refs_by_kind(refs: Sequence[str]) -> str:
    """'branch: main; pull request: #620, #823' — the refs whose tips hold a secret, by kind ('' for none)."""
    groups: dict[str, list[str]] = {}
    named = set(refs) - ({"HEAD"} if any(r.startswith("refs/heads/") for r in refs) else set())  # HEAD: a branch's
    for ref in sorted(named):
        groups.setdefault(ref_kind(ref), []).append(short_ref(ref))
    # refs/pull/N/head and refs/pull/N/merge are one pull request: named once
    return "; ".join(f"{kind}: {', '.join(dict.fromkeys(groups[kind]))}" for kind in REF_KINDS if kind in groups)


def short_repo(repo: str) -> str:
    """A repository as people name it: owner/name for a URL, the directory's name for a path (no .git)."""
    text = repo.rstrip("/")
    if text.endswith(".git"):
        text = text[:-4]
    parts = [p for p in text.replace(":", "/").split("/") if p]
    if "://" in repo or (repo.count(":") == 1 and "@" in repo.split(":")[0]):
        return "/".join(parts[-2:]) if len(parts) >= 2 else text
    return parts[-1] if parts else repo


def redact(value: str) -> str:
    """``ce2337ad…ef`` style: enough to recognise a token, not enough to use it."""
    if len(value) <= 8:
        return "…"
    return f"{value[:4]}…{value[-2:]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Pair:
    """One ranked (client_id, client_secret) combination found in a blob; rank 0 is the best."""

    client_id: str
    client_secret: str = field(repr=False)
    rank: int
    line: int  # 1-based line where the client_id first appears in the blob


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """Every ranked pair of one client_id in one blob, for one detector: the unit the validity stage resolves."""

    detector: str
    blob: str  # hex oid
    client_id: str
    pairs: tuple[Pair, ...]  # best first, at most --max-pairs-per-sid

    @property
    def checks_key(self) -> tuple[str, str, tuple[str, ...]]:
        """Candidates with the same checks_key resolve to the same secret, whatever blob they came from."""
        return (self.detector, self.client_id, tuple(p.client_secret for p in self.pairs))

    def ranked(self) -> list[Pair]:
        if not self.pairs:
            raise ValueError(f"candidate {self.client_id} of blob {self.blob} has no pairs")
        return sorted(self.pairs, key=lambda p: p.rank)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """What the provider said about one secret; never holds the response body."""

    validity: Validity
    scope: str | None = None  # "live" / "test"
    account_status: str | None = None
    account_type: str | None = None
    subaccount: bool | None = None  # the account has a parent account (None: not said)
    checked_at: str | None = None  # ISO 8601 UTC
    requests: int = 0  # HTTP requests this check cost, retries included
    base: str | None = None  # the API base asked first: a stored answer is reused only for the same base
    region: str | None = None  # the provider's region whose host gave this answer (us1, ie1, …)
    # None: the base's answer stood alone. Otherwise the base refused the pair as it refuses another region's
    # credential, and these regions were asked next ("ie1=URL au1=URL"; "" when none were listed)
    fallbacks: str | None = None

    @classmethod
    def unchecked(cls) -> CheckResult:
        return cls(validity=Validity.UNCHECKED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved:
    """The pair a Candidate resolves to (SPEC §3: first valid in rank order, else the best) and its check."""

    detector: str
    client_id: str
    client_secret: str = field(repr=False)
    check: CheckResult

    @property
    def secret_sha256(self) -> str:
        return secret_sha256(self.client_id, self.client_secret)

    @property
    def key(self) -> SecretKey:
        return SecretKey(self.detector, self.client_id, self.client_secret)


def resolve_unchecked(candidate: Candidate) -> Resolved:
    """--no-validate: the best-ranked pair, with no network at all."""
    best = candidate.ranked()[0]
    return Resolved(detector=candidate.detector, client_id=best.client_id, client_secret=best.client_secret,
                    check=CheckResult.unchecked())


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobScan:
    """What detection returns for one batch of blobs: counters, and candidates only for blobs that matched."""

    blobs_scanned: int = 0
    bytes_scanned: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason → blobs
    errors: tuple[str, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    scanned_oids: tuple[bytes, ...] = ()  # raw oids fully scanned (for the store's incremental state)
    # detector id → blobs of the batch where it found more than engine.MAX_MATCHES matches (the rest were dropped):
    # filled from ``detect(..., bounded=)``; summed into RepoStats.matches_bounded for the summary
    matches_bounded: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """An occurrence with its provenance and validity: one line of findings.jsonl."""

    detector: str
    repo: str
    commit: str
    path: str
    line: int
    client_id: str
    client_secret: str = field(repr=False)  # plaintext in memory; redacted at the output edge unless --show-secrets
    secret_sha256: str
    validity: Validity
    scope: str | None
    account_status: str | None
    account_type: str | None
    author_email: str
    author_time: str
    blob: str
    subaccount: bool | None = None  # the provider says the account has a parent account
    region: str | None = None  # the provider's region whose host answered the check (us1, ie1, …)
    author_name: str | None = None
    commit_time: str | None = None  # committer time, ISO 8601 UTC
    commit_message: str | None = None  # its first line, the finding's own secret replaced by [secret]


# -- rows the store keeps (their field order is the store's column order) --------------------------------------
class OccurrenceRow(NamedTuple):
    """An occurrence as the store keeps it: never a token in clear."""

    detector: str
    commit: str  # hex
    path: str
    line: int
    blob: str  # hex
    client_id: str
    secret_redacted: str
    secret_sha256: str
    author_email: str
    author_time: str  # ISO 8601 UTC
    author_name: str | None = None  # None: stored by a scan before schema 4
    commit_message: str | None = None  # first line, the secret replaced by [secret]
    commit_time: str | None = None  # committer time, ISO 8601 UTC


class TipRow(NamedTuple):
    """A secret still present at a ref's tip."""

    secret_sha256: str
    ref: str
    path: str


class RemovalRow(NamedTuple):
    """A commit after which a path no longer holds a secret a parent had there."""

    detector: str
    commit: str  # hex
    path: str
    secret_sha256: str
    commit_time: str  # ISO 8601 UTC


@dataclass(frozen=True, slots=True)
class RepoState:
    """What a complete scan of one repository leaves for the next: it walks and attributes only what is new."""

    path: str
    ruleset: str
    matched: frozenset[bytes]
    tips: frozenset[bytes]  # raw ids of the ref tips it saw
    commits: frozenset[bytes]  # raw ids of the commits attributed



class ExposureEnd(NamedTuple):
    """Where one occurrence's exposure ended: the earliest removal of its secret at its path that descends from its
    introducing commit."""

    commit: str  # hex: the occurrence's introducing commit
    path: str
    secret_sha256: str
    removed_commit: str  # hex
    removed_time: str  # ISO 8601 UTC


# -- run-level values --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class ScanOptions:
    """What a run was asked to do (the CLI's scan options)."""

    out: Path
    validate: bool = True
    api_urls: dict[str, str] = field(default_factory=dict)  # company (lower case) → API base its checks ask
    # company (lower case) → regions whose hosts are asked after the base refused a credential (--twilio-regions)
    regions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # company (lower case) → region → API base in place of the detector's (--twilio-region-url: a stand-in, a proxy)
    region_urls: dict[str, dict[str, str]] = field(default_factory=dict)
    jobs: int | None = None
    show_secrets: bool = False
    progress: bool = True
    detectors_dir: Path | None = None  # a directory of detector YAML, or a catalog file (detectors.catalogs)
    max_blob_bytes: int = 64 * 1024 * 1024
    recheck: bool = False
    recheck_after: float = 24 * 3600.0  # seconds
    max_pairs_per_sid: int = 8
    validate_concurrency: int = 8
    validate_rate: float = 10.0
    validate_timeout: float = 10.0


@dataclass(slots=True)
class RepoStats:
    """What one repository's scan measured, for summary.json."""

    repo: str
    path: str = ""
    commits_scanned: int = 0
    shallow: bool = False
    partial_clone: bool = False  # cloned with --filter: what was never fetched is not scanned (in errors)
    refs_outside_commits: dict[str, str] = field(default_factory=dict)  # ref → "tree" / "blob" it points at
    also_named: list[str] = field(default_factory=list)  # other REPO arguments naming the same repository
    out_in_work_tree: bool = False  # --out lies in this repository's work tree: its files could get committed
    blobs_scanned: int = 0
    bytes_scanned: int = 0
    blobs_skipped: Counter[str] = field(default_factory=Counter)
    # detector id → blobs where it hit the bound on matches kept per blob (detectors.engine.MAX_MATCHES): its counts
    # there are lower bounds, and the summary says so
    matches_bounded: Counter[str] = field(default_factory=Counter)
    commits_new: int = 0  # commits attributed by this run (all of them unless an earlier scan did the rest)
    changes_read: int = 0  # file changes (commit against first parent) read
    errors: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # why the repository could not be scanned at all (a corpus goes on without it)
    commits_by_reach: dict[str, int] = field(default_factory=dict)  # auditor.git.reach.REACH → commits (SPEC §11)

    def summary(self, rates: dict[str, Any]) -> RepoSummary:
        return RepoSummary(repo=self.repo, commits_scanned=self.commits_scanned, shallow=self.shallow,
                           partial_clone=self.partial_clone, refs_outside_commits=dict(self.refs_outside_commits),
                           also_named=tuple(self.also_named), out_in_work_tree=self.out_in_work_tree,
                           blobs_scanned=self.blobs_scanned, bytes_scanned=self.bytes_scanned,
                           commits_new=self.commits_new, changes_read=self.changes_read, measures=rates,
                           errors=len(self.errors), error=self.error, commits_by_reach=dict(self.commits_by_reach),
                           matches_bounded=dict(sorted(self.matches_bounded.items())))


@dataclass(frozen=True, slots=True, kw_only=True)
class RepoSummary:
    """One repository's row of summary.json's ``repos``."""

    repo: str
    commits_scanned: int
    shallow: bool
    partial_clone: bool
    refs_outside_commits: dict[str, str]
    also_named: tuple[str, ...]
    out_in_work_tree: bool
    blobs_scanned: int
    bytes_scanned: int
    commits_new: int
    changes_read: int
    measures: dict[str, Any]  # counts, rates per million commits and their intervals
    errors: int
    error: str | None = None  # could not be scanned at all (corpus audits)
    commits_by_reach: dict[str, int] = field(default_factory=dict)  # commits by the kind of ref that reaches them
    matches_bounded: dict[str, int] = field(default_factory=dict)  # detector → blobs where it hit MAX_MATCHES

    def as_json(self) -> dict[str, Any]:
        return {"repo": self.repo, "commits_scanned": self.commits_scanned, "shallow": self.shallow,
                "partial_clone": self.partial_clone, "refs_outside_commits": self.refs_outside_commits,
                "also_named": list(self.also_named), "out_in_work_tree": self.out_in_work_tree,
                "blobs_scanned": self.blobs_scanned, "bytes_scanned": self.bytes_scanned,
                "commits_new": self.commits_new, "changes_read": self.changes_read,
                "commits_by_ref_kind": self.commits_by_reach, "matches_bounded": self.matches_bounded,
                **self.measures,
                "errors": self.errors, **({"error": self.error} if self.error is not None else {})}


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """summary.json as a value: what the CLI prints from and what the file holds (``as_json``)."""

    commits_scanned: int
    blobs_scanned: int
    bytes_scanned: int
    blobs_skipped: dict[str, int]
    measures: dict[str, Any]  # counts, rates per million commits and their intervals, pooled
    confidence_interval_method: str
    validated: bool
    validation_requests: int
    validation_unique: int
    detectors: dict[str, dict[str, Any]]
    repos: tuple[RepoSummary, ...]
    seconds: dict[str, float]
    errors: tuple[str, ...]
    error_count: int
    interrupted: bool
    store_also_holds: tuple[str, ...]  # repositories an earlier scan into the same --out left in the store
    secrets_failed_to_check: int  # unique secrets the provider could not be asked about: neither valid nor invalid
    pooled: dict[str, Any] | None = None  # a corpus: intervals that allow for clustering, failed repositories
    by_ref_kind: dict[str, Any] = field(default_factory=dict)  # kind of ref → commits, occurrences, rate, interval
    # detector → blobs where it matched more than detectors.engine.MAX_MATCHES times: its counts there are lower bounds
    matches_bounded: dict[str, int] = field(default_factory=dict)

    @property
    def occurrences(self) -> int:
        return int(self.measures["occurrences"])

    @property
    def unique_secrets(self) -> int:
        return int(self.measures["unique_secrets"])

    @property
    def valid_unique_secrets(self) -> int | None:
        return self.measures["valid_unique_secrets"]

    @property
    def rate(self) -> float | None:
        """Occurrences per million commits (the vendors' figure); None when no commit was scanned."""
        return self.measures["occurrences_per_million_commits"]

    @property
    def shallow(self) -> bool:
        return any(r.shallow for r in self.repos)

    def as_json(self) -> dict[str, Any]:
        return {"commits_scanned": self.commits_scanned, "blobs_scanned": self.blobs_scanned,
                "bytes_scanned": self.bytes_scanned, "blobs_skipped": self.blobs_skipped,
                "matches_bounded": self.matches_bounded, **self.measures,
                "confidence_interval_method": self.confidence_interval_method, "validated": self.validated,
                "validation_requests": self.validation_requests, "validation_unique": self.validation_unique,
                "detectors": self.detectors, "repos": [r.as_json() for r in self.repos], "shallow": self.shallow,
                "seconds": self.seconds, "errors": list(self.errors), "error_count": self.error_count,
                "interrupted": self.interrupted, "store_also_holds": list(self.store_also_holds),
                "secrets_failed_to_check": self.secrets_failed_to_check, "by_ref_kind": self.by_ref_kind,
                **({"corpus": self.pooled} if self.pooled is not None else {})}


@dataclass(slots=True)
class Outcome:
    """What a run gives its caller: every finding, the summary, and the findings the exit code counts."""

    findings: list[Finding]
    summary: Summary
    alerts: list[Finding] = field(default_factory=list)  # what the exit code counts (SPEC §5)
    interrupted: bool = False
