"""Fake Twilio-shaped credential pairs: random hex from ``secrets``, never a real-looking constant that might be live,
never a placeholder the detector would drop (SPEC §3), and the text that plants one in a file."""

from __future__ import annotations

import hashlib
import secrets

Pair = tuple[str, str]


def _usable(digits: str) -> bool:
    """At least 8 distinct hex digits and no repeated unit: far from any placeholder rule (6 distinct, a unit)."""
    return len(set(digits)) >= 8 and not any(digits == digits[:k] * (32 // k) for k in (1, 2, 4, 8, 16))


def make_pair() -> Pair:
    """("AC" + 32 random hex, 32 random hex)."""
    while True:
        sid, tok = secrets.token_hex(16), secrets.token_hex(16)
        if _usable(sid) and _usable(tok) and sid != tok:
            return "AC" + sid, tok


def make_token() -> str:
    """32 random hex that could be a token (a decoy, or a second token for a SID)."""
    return make_pair()[1]


def snippet(pair: Pair, *, line: int = 1, comment: str = "") -> str:
    """A config-like text whose client_id sits on 1-based ``line`` and whose token follows on the next line."""
    filler = "".join(f"# filler line {i}\n" for i in range(1, line))
    return f'{filler}{comment}account_sid = "{pair[0]}"\n{comment}auth_token = "{pair[1]}"\n'


def sha(pair: Pair) -> str:
    """secret_sha256 as SPEC §4 defines it, computed here independently of the product."""
    return hashlib.sha256(f"{pair[0]}:{pair[1]}".encode()).hexdigest()


def redacted(token: str) -> str:
    """A token as the outputs show it without --show-secrets (SPEC §7: ``ce23…ef``)."""
    return f"{token[:4]}…{token[-2:]}"
