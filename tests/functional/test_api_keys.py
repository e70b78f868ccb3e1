"""Two detectors in one history (issue 11): Twilio master credentials and Twilio API keys planted side by side are
counted (SPEC §4), checked against the stand-in, stored and reported per detector, each exactly as the other."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import string
from pathlib import Path

from auditor.testing import TwilioStandIn, serve_in_thread
from tests.helpers.git import GitRepo
from tests.helpers.pairs import make_pair, sha, snippet
from tests.helpers.scan import load_jsonl, run_auditor, run_scan

ALNUM = string.ascii_letters + string.digits
KEYS, MASTER = "twilio_api_keys", "twilio_master_credentials"


def make_key() -> tuple[str, str]:
    """("SK" + 32 random hex, 32 random alphanumerics with both cases): made up, never a live credential."""
    while True:
        secret = "".join(secrets.choice(ALNUM) for _ in range(32))
        if any(c.isupper() for c in secret) and any(c.islower() for c in secret) and len(set(secret)) >= 8:
            return "SK" + secrets.token_hex(16), secret


def env_file(key: tuple[str, str], extra: str = "") -> str:
    return f"TWILIO_API_KEY={key[0]}\n{extra}TWILIO_API_SECRET={key[1]}\n"


def test_a_history_with_both_kinds_reports_both_detectors(tmp_path: Path) -> None:
    pair, live, dead = make_pair(), make_key(), make_key()
    repo = GitRepo(tmp_path / "repo")
    repo.commit("one", {"app.py": snippet(pair), ".env": env_file(live)})
    repo.commit("two", {"deploy/.env": env_file(live), ".env": env_file(live, "# edited\n")})  # a copy: +1
    repo.commit("three", {"old.env": env_file(dead)})
    standin = TwilioStandIn(valid={pair}, api_keys={live})
    with serve_in_thread(standin) as url:
        r = run_scan(repo, tmp_path / "out", "--twilio-api-url", url, "--show-secrets", validate=True)
    assert r.returncode == 1, r
    got = sorted((f["detector"], f["client_id"], f["client_secret"], f["path"], f["validity"]) for f in r.findings)
    assert got == sorted([(KEYS, live[0], live[1], ".env", "valid"), (KEYS, live[0], live[1], "deploy/.env", "valid"),
                          (KEYS, dead[0], dead[1], "old.env", "invalid"),
                          (MASTER, pair[0], pair[1], "app.py", "valid")])
    assert {f["secret_sha256"] for f in r.findings if f["detector"] == KEYS} == {sha(live), sha(dead)}
    assert sorted(standin.sids()) == sorted([pair[0], live[0], dead[0]])  # each secret asked once
    assert ("GET", "/v2/Services?PageSize=1", live[0]) in standin.asked

    by = r.summary["detectors"]
    assert (by[KEYS]["occurrences"], by[KEYS]["valid_occurrences"], by[KEYS]["unique_secrets"]) == (3, 2, 2)
    assert (by[MASTER]["occurrences"], by[MASTER]["valid_occurrences"], by[MASTER]["unique_secrets"]) == (1, 1, 1)
    assert by[KEYS]["occurrences_per_million_commits"] == 3 / 3 * 1e6
    assert by[KEYS]["reference_occurrences_per_million_commits"] == 0.37
    assert r.summary["occurrences"] == 4

    rows = {(row["detector"], row["secret_sha256"]): row for row in load_jsonl(tmp_path / "out" / "secrets.jsonl")}
    assert set(rows) == {(KEYS, sha(live)), (KEYS, sha(dead)), (MASTER, sha(pair))}
    with sqlite3.connect(tmp_path / "out" / "audit.sqlite") as db:
        stored = dict(db.execute("SELECT secret_sha256, validity FROM checks").fetchall())
    assert (stored[sha(live)], stored[sha(dead)], stored[sha(pair)]) == ("valid", "invalid", "valid")
    sarif = json.loads((tmp_path / "out" / "findings.sarif").read_text())
    run = sarif["runs"][0]
    assert {rule["id"] for rule in run["tool"]["driver"]["rules"]} >= {KEYS, MASTER}
    assert sorted(res["ruleId"] for res in run["results"]).count(KEYS) >= 1
    assert live[1] not in json.dumps(sarif)  # SARIF never carries a secret in clear

    report = run_auditor("report", str(tmp_path / "out"))
    assert report.returncode == 0, report
    text = (tmp_path / "out" / "report.md").read_text()
    assert "twilio_api_keys" in text or "Twilio API Keys" in text


def test_a_single_api_key_secret_hashes_as_id_colon_secret(tmp_path: Path) -> None:
    key = make_key()
    repo = GitRepo(tmp_path / "repo")
    repo.commit("one", {"settings.py": f'api_key = "{key[0]}"\napi_secret = "{key[1]}"\n'})
    r = run_scan(repo, tmp_path / "out")
    [f] = r.findings
    assert (f["detector"], f["client_id"], f["validity"]) == (KEYS, key[0], "unchecked")
    assert f["secret_sha256"] == hashlib.sha256(f"{key[0]}:{key[1]}".encode()).hexdigest()
