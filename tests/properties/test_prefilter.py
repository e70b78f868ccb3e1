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
    r"-----BEGIN (?:RSA |EC )?PRIVATE KEY-----", r"x{2,}yz|wvu{3}",
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

