"""Values that cross pipeline stages: frozen, slotted, keyword-only dataclasses and the Validity enum; no I/O."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field


class Validity(enum.StrEnum):
    """Outcome of a validity check; only ``valid`` raises an alert when validation is on."""

    VALID = "valid"
    INVALID = "invalid"
    FAILED_TO_CHECK = "failed_to_check"
    UNCHECKED = "unchecked"


def secret_sha256(client_id: str, client_secret: str) -> str:
    """The stable, non-reversible key of a secret (SPEC §4)."""
    return hashlib.sha256(f"{client_id}:{client_secret}".encode()).hexdigest()


def redact(value: str) -> str:
    """``ce2337ad…ef`` style: enough to recognise a token, not enough to use it."""
    if len(value) <= 8:
        return "…"
    return f"{value[:4]}…{value[-2:]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Pair:
    """One ranked (client_id, client_secret) combination found in a blob; rank 0 is the best."""

    client_id: str
    client_secret: str
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
    def key(self) -> tuple[str, str, tuple[str, ...]]:
        """Candidates with the same key resolve to the same secret, whatever blob they came from."""
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
    checked_at: str | None = None  # ISO 8601 UTC
    requests: int = 0  # HTTP requests this check cost, retries included

    @classmethod
    def unchecked(cls) -> CheckResult:
        return cls(validity=Validity.UNCHECKED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved:
    """The pair a Candidate resolves to (SPEC §3: first valid in rank order, else the best) and its check."""

    detector: str
    client_id: str
    client_secret: str
    check: CheckResult

    @property
    def secret_sha256(self) -> str:
        return secret_sha256(self.client_id, self.client_secret)


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """An occurrence with its provenance and validity: one line of findings.jsonl."""

    detector: str
    repo: str
    commit: str
    path: str
    line: int
    client_id: str
    client_secret: str  # plaintext in memory; redacted at the output edge unless --show-secrets
    secret_sha256: str
    validity: Validity
    scope: str | None
    account_status: str | None
    account_type: str | None
    author_email: str
    author_time: str
    blob: str
