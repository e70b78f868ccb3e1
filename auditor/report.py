"""Findings and per-repository stats → pandas frames → rates per million commits and the output files."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from auditor.detectors.spec import Detector
from auditor.models import Finding, Validity, redact
from auditor.store import private_file

if TYPE_CHECKING:
    from auditor.pipeline import RepoStats

FINDING_DTYPES = {
    "detector": "string", "repo": "string", "commit": "string", "path": "string", "line": "int64",
    "client_id": "string", "client_secret": "string", "secret_sha256": "string", "validity": "string",
    "scope": "string", "account_status": "string", "account_type": "string", "author_email": "string",
    "author_time": "string", "blob": "string",
}

__all__ = ["findings_frame", "per_million", "redact", "secrets_frame", "write_outputs"]


def per_million(count: float, commits: int) -> float | None:
    """count / commits × 10⁶; None (JSON null) when no commit was scanned, never inf."""
    return round(count / commits * 1e6, 4) if commits else None


def findings_frame(findings: Iterable[Finding]) -> pd.DataFrame:
    rows = [asdict(f) | {"validity": f.validity.value} for f in findings]
    frame = pd.DataFrame(rows, columns=list(FINDING_DTYPES)).astype(FINDING_DTYPES)
    return frame.assign(author_time=pd.to_datetime(frame["author_time"], utc=True, format="ISO8601"))


def secrets_frame(findings: pd.DataFrame, tips: Sequence[tuple[str, str, str, str]]) -> pd.DataFrame:
    """One row per unique secret: first/last introduction, counts, validity, still at a ref tip."""
    tip_refs: dict[str, set[str]] = {}
    for _repo, sha, ref, _path in tips:
        tip_refs.setdefault(sha, set()).add(ref)
    ordered = findings.sort_values(["author_time", "commit"])
    return (ordered.groupby("secret_sha256", sort=False)
            .agg(detector=("detector", "first"), client_id=("client_id", "first"),
                 client_secret=("client_secret", "first"), validity=("validity", "first"),
                 scope=("scope", "first"), account_status=("account_status", "first"),
                 account_type=("account_type", "first"),
                 first_commit=("commit", "first"), first_time=("author_time", "first"),
                 last_commit=("commit", "last"), last_time=("author_time", "last"),
                 occurrences=("commit", "size"), commits=("commit", "nunique"), repos=("repo", "nunique"),
                 paths=("path", "nunique"))
            .reset_index()
            .assign(still_at_tip=lambda s: s["secret_sha256"].isin(list(tip_refs)),
                    tip_refs=lambda s: pd.Series([sorted(tip_refs.get(h, ())) for h in s["secret_sha256"]],
                                                 index=s.index, dtype=object)))


def _jsonable(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "item"):
        return value.item()
    return value


def _write_jsonl(path: Path, frame: pd.DataFrame) -> None:
    private_file(path)
    with path.open("w", encoding="utf-8") as fh:
        for row in frame.to_dict("records"):
            fh.write(json.dumps({k: _jsonable(v) for k, v in row.items()}, ensure_ascii=False) + "\n")


def _rates(frame: pd.DataFrame, commits: int, *, validated: bool) -> dict[str, Any]:
    valid = frame[frame["validity"] == Validity.VALID.value]
    out = {
        "occurrences": len(frame),
        "valid_occurrences": len(valid) if validated else None,
        "unique_secrets": int(frame["secret_sha256"].nunique()),
        "valid_unique_secrets": int(valid["secret_sha256"].nunique()) if validated else None,
        "commits_with_occurrences": int(frame[["repo", "commit"]].drop_duplicates().shape[0]),
        # occurrences / commits_scanned × 10⁶: the figure vendors publish per detector
        "occurrences_per_million_commits": per_million(len(frame), commits),
        # the same, counting only occurrences of secrets the provider confirmed valid
        "valid_occurrences_per_million_commits": per_million(len(valid), commits) if validated else None,
        # commits that introduce at least one secret, per million commits
        "commits_with_occurrences_per_million_commits": per_million(
            frame[["repo", "commit"]].drop_duplicates().shape[0], commits),
    }
    return out


def write_outputs(out: Path, findings: list[Finding], repos: Sequence[RepoStats], tips: Sequence[tuple],
                  detectors: Sequence[Detector], *, show_secrets: bool, validated: bool, validation_requests: int,
                  validation_unique: int, wall_seconds: float, interrupted: bool) -> dict[str, Any]:
    """Write findings.jsonl, secrets.jsonl and summary.json (0600); return the summary."""
    frame = findings_frame(findings)
    if not show_secrets:
        frame = frame.assign(client_secret=frame["client_secret"].map(redact, na_action="ignore"))
    frame = frame.sort_values(["repo", "author_time", "commit", "path", "line"], kind="stable")
    _write_jsonl(out / "findings.jsonl", frame)
    _write_jsonl(out / "secrets.jsonl", secrets_frame(frame, tips))
    commits = sum(r.commits_scanned for r in repos)
    seconds: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for r in repos:
        seconds.update(r.seconds)
        skipped.update(r.blobs_skipped)
    summary: dict[str, Any] = {
        "commits_scanned": commits,
        "blobs_scanned": sum(r.blobs_scanned for r in repos),
        "bytes_scanned": sum(r.bytes_scanned for r in repos),
        "blobs_skipped": dict(sorted(skipped.items())),
        **_rates(frame, commits, validated=validated),
        "validated": validated,
        "validation_requests": validation_requests,
        "validation_unique": validation_unique,
        "detectors": {
            d.id: {"name": d.name, **_rates(frame[frame["detector"] == d.id], commits, validated=validated),
                   "reference_occurrences_per_million_commits": d.reference_occurrences_per_million_commits}
            for d in detectors},
        "repos": [{"repo": r.repo, "commits_scanned": r.commits_scanned, "shallow": r.shallow,
                   "blobs_scanned": r.blobs_scanned, "bytes_scanned": r.bytes_scanned,
                   **_rates(frame[frame["repo"] == r.repo], r.commits_scanned, validated=validated),
                   "errors": len(r.errors)} for r in repos],
        "shallow": any(r.shallow for r in repos),
        "seconds": {k: round(v, 3) for k, v in seconds.items()} | {"total": round(wall_seconds, 3)},
        "errors": [e for r in repos for e in r.errors][:1000],
        "error_count": sum(len(r.errors) for r in repos),
        "interrupted": interrupted,
    }
    private_file(out / "summary.json")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
