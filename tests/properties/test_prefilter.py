"""The prefilter never hides a match (hypothesis, bounded): every string a pattern matches holds one of the literals
derived from it, and detection through the prefilter finds exactly what each detector finds on its own."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.detectors.engine import detect
from auditor.detectors.prefilter import literals
from tests.unit.detectors.test_prefilter import catalog_detectors

PATTERNS = [
    r"\bAC([0-9a-f]{32})\b", r"(?:sk_live|sk_test)_[0-9a-z]{8}", r"(?i)twilio.{0,5}\b(sk[a-f0-9]{8})\b",
    r"(?:api|key|sk)", r"ghp_[0-9a-zA-Z]{6}", r"[Aa][Kk][Ii][Aa][0-9A-Z]{4}", r"(?:AKIA|ASIA|ABIA)[0-9A-Z]{4}",
    r"(?P<x>xoxb-)\d+(?:-[a-z]+)+", r"(?:(?:glpat|gldt)-)[0-9a-z]{4}", r"(ab|cd)+ef?", r"(?i)(?:pass(?:word)?)=\w+",
    r"-----BEGIN (?:RSA |EC )?PRIVATE KEY-----", r"x{2,}yz|wvu{3}", r"(?:messagebird|message-bird|message_bird)x",
    r"x(ab|cd)e",
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_match_holds_one_of_the_literals(data):
    for pattern in PATTERNS:
        found = literals(pattern)
        assert found is not None, pattern
        text = data.draw(st.from_regex(re.compile(pattern, re.ASCII), fullmatch=True))
        assert any(lit in text.encode().lower() for lit in found), (pattern, text, found)


_PIECES = st.one_of(
    st.sampled_from([b"svc0_", b"SVC1_", b"svc2_", b"token", b"Key", b"zz-", b"AC", b"SK", b"\n", b" = ", b'"',
                     b"pass", b"other", b"x=", b"\x00"]),
    st.text("0123456789abcdefABCDEFxyz", min_size=0, max_size=34).map(str.encode),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=60).map(b"".join))
def test_detection_through_the_prefilter_is_detection_without_it(blob):
    detectors = catalog_detectors()
    together = detect(detectors, blob, "b", 8)
    alone = [c for d in detectors for c in detect([d], blob, "b", 8)]
    assert sorted(map(repr, together)) == sorted(map(repr, alone))



WINDOWED = [r"(?i)(?:key|token|auth)[\w.-]{0,5}\s*[:=]\s*([0-9a-z]{4,8})", r"(?i)\b(?:tok|tkn)(?:en)?=(\w+)",
            r"(?:kind:|data:)\s+(\w{3})"]
_TEXT = st.lists(st.sampled_from(["KEY", "key", "Token", "tok", "token", "auth", "=", ":", " ", "_x", "ab12", "cd3",
                                  "\n", "kind:", "data:", "zz", "."]), max_size=50).map("".join)


@settings(max_examples=80, deadline=None)
@given(_TEXT)
def test_matching_only_where_the_leading_literals_occur_finds_what_finditer_finds(text):
    import regex

    from auditor.detectors.engine import CompiledDetector
    from auditor.detectors.prefilter import leading
    from auditor.detectors.spec import Detector, Matcher, Pairing

    data = text.encode()
    for pattern in WINDOWED:
        assert leading(pattern) is not None, pattern
        d = CompiledDetector(Detector(
            id="w", name="w", category="", company="", high_recall=False, validity_check_available=False,
            only_valid_secrets_raise_alert=False, minimum_number_of_matches=1, prefixed=False, filename_banlist=None,
            content_whitelist=None, matchers=(Matcher(name="client_secret", pattern=pattern, secret_group=0),),
            pairing=Pairing(), check=None, examples=(), negative_examples=()))
        windowed = [m.span() for m in d._finditer("client_secret", data, data.lower())]
        assert windowed == [m.span() for m in regex.finditer(pattern.encode(), data)], pattern
