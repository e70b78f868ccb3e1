"""Properties of detection (hypothesis, bounded): on arbitrary bytes the detector never crashes and whatever it
returns is well-formed; a planted pair in random surrounding noise is found, with the right token and line."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from auditor.detectors import CompiledDetector, load_detectors
from auditor.detectors.engine import detect

DETECTORS = [CompiledDetector(d) for d in load_detectors()]
BLOB = "0" * 40
SID_RE = re.compile(rb"^AC[0-9a-f]{32}$")
HEX32 = re.compile(rb"^[0-9a-f]{32}$")


def _placeholder(h: bytes) -> bool:
    """SPEC §3: fewer than 6 distinct hex digits, or a repeated unit."""
    return len(set(h)) < 6 or any(h == h[:k] * (len(h) // k) for k in (1, 2, 4, 8, 16))


def _word(value: bytes) -> re.Pattern[bytes]:
    return re.compile(rb"(?<![0-9A-Za-z_])" + re.escape(value) + rb"(?![0-9A-Za-z_])")


# -- arbitrary bytes -------------------------------------------------------------------------------------------

_HEXISH = st.text("0123456789abcdefABCDEF", min_size=0, max_size=40).map(str.encode)
_PIECES = st.one_of(
    st.sampled_from([b"AC", b"ac", b"token", b"Auth", b"secret", b"\n", b"\r\n", b" ", b"=", b'"', b":", b"@",
                     b"_", b"\x00", "é".encode(), b"\xe9", b"\xff"]),
    _HEXISH,
    st.binary(max_size=12),
)
_TWILIOISH = st.lists(_PIECES, max_size=80).map(b"".join)


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.binary(max_size=4000), _TWILIOISH))
def test_detect_never_crashes_and_returns_well_formed_candidates(data: bytes) -> None:
    found = detect(DETECTORS, data, BLOB, 8)
    if b"\0" in data[:8000] or not re.search(rb"(?i)ac[0-9a-f]{32}", data):
        assert found == []
    for c in found:
        cid = c.client_id.encode()
        assert SID_RE.match(cid) and _word(cid).search(data)
        assert 1 <= len(c.pairs) <= 8
        assert [p.rank for p in c.pairs] == list(range(len(c.pairs)))
        assert not _placeholder(cid[2:])
        for p in c.pairs:
            tok = p.client_secret.encode()
            assert p.client_id == c.client_id
            assert HEX32.match(tok) and _word(tok).search(data)
            assert tok != cid[2:] and not _placeholder(tok)
            assert 1 <= p.line <= data.count(b"\n") + 1


# -- a planted pair in noise -------------------------------------------------------------------------------------

_SEPARATORS = st.sampled_from([" ", "\n", "\r\n", "\t", " = ", '"', "'", ": ", ", ", "(", ")", "/", "@", ";\n", "\n\n"])
_NOISE_WORD = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=12),
    st.sampled_from(["token", "auth_token", "SECRET", "sid", "twilio", "appid", "x" * 10_000, "ACXXXXXXXX",
                     "{{ auth_token }}", "your_auth_token"]),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=st.lists(_NOISE_WORD, max_size=30), between=st.lists(_NOISE_WORD, max_size=60),
       after=st.lists(_NOISE_WORD, max_size=30), seps=st.lists(_SEPARATORS, min_size=130, max_size=130),
       token_first=st.booleans(), encoding=st.sampled_from(["utf-8", "latin-1"]), data=st.data())
def test_a_planted_pair_in_noise_is_found(before: list[str], between: list[str], after: list[str],
                                          seps: list[str], token_first: bool, encoding: str,
                                          data: st.DataObject) -> None:
    sid_body = data.draw(st.binary(min_size=16, max_size=16).map(bytes.hex), label="sid")
    tok = data.draw(st.binary(min_size=16, max_size=16).map(bytes.hex), label="token")
    assume(not _placeholder(sid_body.encode()) and not _placeholder(tok.encode()) and tok != sid_body)
    sid = "AC" + sid_body
    first, second = (tok, sid) if token_first else (sid, tok)
    words = [*before, first, *between, second, *after]
    if encoding == "latin-1":
        words = [w.encode("latin-1", "replace").decode("latin-1") for w in words]
    text = "".join(w + seps[i % len(seps)] for i, w in enumerate(words))
    blob = text.encode(encoding, "replace")
    assert b"\0" not in blob
    found = detect(DETECTORS, blob, BLOB, 8)
    assert [c.client_id for c in found] == [sid]
    [cand] = found
    assert cand.pairs[0].client_secret == tok
    assert len(cand.pairs) == 1  # noise words are at most 12 characters: never a 32-hex token
    sid_at = blob.index(sid.encode())
    assert cand.pairs[0].line == blob.count(b"\n", 0, sid_at) + 1


@settings(max_examples=80, deadline=None)
@given(st.one_of(_TWILIOISH, st.lists(st.sampled_from([b"AC", b"SK", b"ACSK", b"xAC", b"-SK", b"0123456789abcdef",
                                                       b"\n", b" "]), max_size=30).map(b"".join)))
def test_the_anchor_gate_is_each_anchor_searched(data: bytes) -> None:
    """One automaton pass for the anchors' leading literals, then a match tried where they occur, says of each
    detector exactly what searching its anchor says (issue 15, round 2: the workers' gate)."""
    from auditor.detectors.engine import _anchor_gate

    gate = _anchor_gate(tuple(DETECTORS))
    assert gate is not None
    assert gate.matching(data) == {i for i, d in enumerate(DETECTORS) if d.could_match(data)}
