"""findings.sarif: the occurrences as SARIF 2.1.0 (SPEC §11), what GitHub code scanning and CI dashboards ingest.

One run, one rule per detector, one result per occurrence located at its path and line in the introducing commit
(the commit, the repository and where the secret still sits go in the result's properties), ``partialFingerprints``
from ``secret_sha256`` (stable across reruns and machines), the level by risk: ``error`` for a secret valid (or
unchecked) at a branch tip, ``warning`` for one valid or unchecked only elsewhere (history, tags, pull requests),
``note`` for an invalid one. No token is ever written: the file holds neither the client secret, redacted or not,
nor anything derived from it but its sha256. Plain Python (a scan imports no pandas); ``outputs`` writes it at the
end of a scan, ``report.render`` from the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from auditor import __version__
from auditor.models import presence, ref_kind, refs_by_kind, short_repo

SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


def level(validity: str, refs: Sequence[str]) -> str:
    """error: live (or not known dead) and at a branch tip; warning: live or unknown elsewhere; note: invalid."""
    if validity == "invalid":
        return "note"
    return "error" if any(ref_kind(r) == "branch" for r in refs) else "warning"


def _action(validity: str, refs: Sequence[str]) -> str:
    if validity == "invalid":
        return "nothing to do (the provider rejects it)"
    now = any(ref_kind(r) == "branch" for r in refs)
    return "rotate now" if now else "rotate — still in history"


def _text(value: Any) -> str | None:
    """A value as text; a time (or ISO 8601 text of one) in whole seconds, UTC, as ``...Z``; None for missing."""
    if value is None or value != value:  # None, NaN, NaT
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"
    return str(value)


def _rule(det: str, name: str) -> dict[str, Any]:
    return {"id": det, "name": "".join(w.capitalize() for w in det.split("_")),
            "shortDescription": {"text": f"Leaked credential: {name}"},
            "fullDescription": {"text": f"{name} found in the history of a git repository. A secret in any commit "
                                        "stays readable by anyone with a clone: a live one is rotated at the "
                                        "provider."},
            "help": {"text": "Rotate (revoke and replace) the credential at the provider, then remove it from the "
                             "code; rewriting history does not undo a leak."},
            "defaultConfiguration": {"level": "error"},
            "properties": {"tags": ["security", "secret"]}}


def document(findings: Iterable[Mapping[str, Any]], tip_refs: Mapping[str, Sequence[str]],
             detectors: Iterable[tuple[str, str]], checked_at: Mapping[str, str | None] | None = None
             ) -> dict[str, Any]:
    """The SARIF log of ``findings`` (rows with detector, repo, commit, path, line, client_id, secret_sha256,
    validity, author_email, author_time, and author_name, commit_time, commit_message when known; any secret in them
    is ignored), ``tip_refs`` (secret_sha256 → refs whose
    tips hold it), ``detectors`` ((id, name), one rule each) and ``checked_at`` (secret_sha256 → ISO time)."""
    checked_at = checked_at or {}
    rules: dict[str, dict[str, Any]] = {}
    for det, name in detectors:
        rules.setdefault(det, _rule(det, name))
    rows = sorted(findings, key=lambda r: (str(r["repo"]), str(r["path"]), int(r["line"]), str(r["commit"]),
                                           str(r["secret_sha256"])))
    results = []
    for r in rows:
        det, sha = str(r["detector"]), str(r["secret_sha256"])
        if det not in rules:  # found by a detector the run did not name: it still gets its rule
            rules[det] = _rule(det, det)
        refs = sorted(tip_refs.get(sha, ()))
        validity = str(r["validity"])
        where = refs_by_kind(refs) or "no ref tip (history only)"
        commit = str(r["commit"])
        who = r.get("author_name") or r.get("author_email")
        by = f" by {who}" if isinstance(who, str) and who else ""
        message = (f"{r['client_id'] or 'A secret'} ({det}) introduced in commit {commit[:10]}{by} of "
                   f"{short_repo(str(r['repo']))}; validity {validity}; still at {where}: "
                   f"{_action(validity, refs)}.")
        results.append({
            "ruleId": det,
            "ruleIndex": list(rules).index(det),
            "level": level(validity, refs),
            "message": {"text": message},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": quote(str(r["path"]), safe="/")},
                "region": {"startLine": int(r["line"])}}}],
            "partialFingerprints": {"secret_sha256/v1": sha},
            "properties": {"repository": str(r["repo"]), "commit": commit, "blob": _text(r.get("blob")),
                           "author_email": _text(r.get("author_email")), "author_name": _text(r.get("author_name")),
                           "author_time": _text(r.get("author_time")), "commit_time": _text(r.get("commit_time")),
                           "commit_message": None if r.get("commit_message") is None else str(r["commit_message"]),
                           "client_id": _text(r.get("client_id")), "validity": validity,
                           "checked_at": _text(checked_at.get(sha)), "presence": presence(refs),
                           "tip_refs": refs},
        })
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "auditor", "version": __version__, "semanticVersion": __version__,
                            "rules": list(rules.values())}},
        "columnKind": "unicodeCodePoints",
        "results": results,
    }]}


def dumps(log: Mapping[str, Any]) -> bytes:
    return (json.dumps(log, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
