"""models: no value that carries a secret shows its client_secret in ``repr()`` or ``str()`` (a traceback, a log
line, an assertion message, a debugger), however deep it sits."""

from __future__ import annotations

from collections import Counter

import pytest

from auditor.attribution import Attribution, Provenance
from auditor.models import (
    Candidate,
    CheckResult,
    Finding,
    Outcome,
    Pair,
    RepoStats,
    Resolved,
    SecretKey,
    Validity,
    resolve_unchecked,
    secret_sha256,
)
from auditor.repository_scan import RepoScan
from tests.helpers.pairs import make_pair, make_token, sha

D = "twilio_master_credentials"


def _values(sid: str, token: str, decoy: str) -> dict[str, object]:
    pairs = (Pair(client_id=sid, client_secret=token, rank=0, line=2),
             Pair(client_id=sid, client_secret=decoy, rank=1, line=2))
    cand = Candidate(detector=D, blob="b" * 40, client_id=sid, pairs=pairs)
    resolved = Resolved(detector=D, client_id=sid, client_secret=token,
                        check=CheckResult(validity=Validity.VALID, scope="live", account_status="active"))
    finding = Finding(detector=D, repo="/repos/one", commit="c" * 40, path="app.py", line=2, client_id=sid,
                      client_secret=token, secret_sha256=secret_sha256(sid, token), validity=Validity.VALID,
                      scope="live", account_status="active", account_type="Full", author_email="a@example.com",
                      author_time="2021-03-01T00:00:00Z", blob="b" * 40)
    scan = RepoScan(stats=RepoStats(repo="/repos/one", blobs_skipped=Counter({"binary": 1})),
                    candidates={bytes.fromhex("b" * 40): [cand]}, provenance=Provenance(),
                    commit_rows={"c" * 40: "2021-03-01T00:00:00Z"}, reachable=frozenset({b"c" * 20}))
    return {"Pair": pairs[0], "Candidate": cand, "Resolved": resolved, "resolve_unchecked": resolve_unchecked(cand),
            "Finding": finding, "SecretKey": resolved.key, "RepoScan": scan,
            "Attribution": Attribution(findings=[finding]), "Outcome": Outcome(findings=[finding], summary=None,
                                                                                alerts=[finding])}


@pytest.mark.parametrize("kind", ["Pair", "Candidate", "Resolved", "resolve_unchecked", "Finding", "SecretKey",
                                  "RepoScan", "Attribution", "Outcome"])
def test_no_secret_reaches_a_repr(kind: str) -> None:
    (sid, token), decoy = make_pair(), make_token()
    value = _values(sid, token, decoy)[kind]
    for text in (repr(value), str(value), f"{value}", f"{value!r}", repr([value]), repr({"v": value})):
        assert token not in text and decoy not in text, text
        assert token[:8] not in text and token[-8:] not in text, text  # nor a usable part of it


def test_a_secret_key_still_is_its_values() -> None:
    """repr hides the token; equality, hashing, unpacking and the sha256 still see it."""
    sid, token = make_pair()
    key = SecretKey(D, sid, token)
    assert tuple(key) == (D, sid, token) and key.client_secret == token
    assert key.sha256 == sha((sid, token)) and key == SecretKey(D, sid, token)
    assert len({key, SecretKey(D, sid, token)}) == 1
    assert "<redacted>" in repr(key) and sid in repr(key)
