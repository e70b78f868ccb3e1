"""detectors.engine (SPEC §3): every example of every detector, the Twilio rules at unit level."""

from __future__ import annotations

import pytest

from auditor.detectors import CompiledDetector, load_detectors
from auditor.detectors.engine import detect
from tests.helpers.pairs import make_pair

DETECTORS = load_detectors()
TWILIO = next(d for d in DETECTORS if d.id == "twilio_master_credentials")
SEED_ID = "AC598fdd1a56846658f660652ed4810395"
SEED_SECRET = "ce2337ad21d390367e018828cef2b0ef"


def run(text: str | bytes, max_pairs: int = 8, detector=TWILIO):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return detect([CompiledDetector(detector)], data, "blob", max_pairs)


def best(text: str | bytes, **kw) -> set[tuple[str, str]]:
    """{(client_id, best-ranked client_secret)} of every candidate."""
    return {(c.client_id, c.pairs[0].client_secret) for c in run(text, **kw)}


def ranking(text: str | bytes, sid: str, **kw) -> list[str]:
    """The ranked secrets of ``sid``'s candidate."""
    cands = [c for c in run(text, **kw) if c.client_id == sid]
    assert len(cands) == 1, cands
    assert [p.rank for p in cands[0].pairs] == list(range(len(cands[0].pairs)))
    return [p.client_secret for p in cands[0].pairs]


# -- every example of every detector ------------------------------------------------------------------------

POSITIVES = [pytest.param(d, e, id=f"{d.id}-example{i}") for d in DETECTORS for i, e in enumerate(d.examples)]
NEGATIVES = [pytest.param(d, e, id=f"{d.id}-negative{i}") for d in DETECTORS
             for i, e in enumerate(d.negative_examples)]


def test_every_detector_has_examples_and_negative_examples():
    assert DETECTORS
    for d in DETECTORS:
        assert d.examples, d.id
        assert d.negative_examples, d.id
        for e in d.examples:
            assert e.client_secret, (d.id, e.text)


@pytest.mark.parametrize(("detector", "example"), POSITIVES)
def test_positive_example(detector, example):
    cands = run(example.text, detector=detector)
    mine = [c for c in cands if c.client_id == (example.client_id or "")]
    assert len(mine) == 1, cands
    assert mine[0].pairs[0].client_id == (example.client_id or "")
    assert mine[0].pairs[0].client_secret == example.client_secret
    assert mine[0].detector == detector.id


@pytest.mark.parametrize(("detector", "example"), NEGATIVES)
def test_negative_example(detector, example):
    assert run(example.text, detector=detector) == []


def test_seed_example_is_a_twilio_example():
    seeds = [e for e in TWILIO.examples if e.client_id == SEED_ID and e.client_secret == SEED_SECRET
             and "from twilio.rest import Client" in e.text]
    assert seeds, "the seed page's example must be one of the detector's examples"
    assert best(seeds[0].text) == {(SEED_ID, SEED_SECRET)}


def test_twilio_detector_fields_match_the_seed():
    assert TWILIO.minimum_number_of_matches == 2
    assert TWILIO.high_recall is True
    assert TWILIO.validity_check_available is True
    assert TWILIO.only_valid_secrets_raise_alert is True
    assert TWILIO.prefixed is True
    assert TWILIO.filename_banlist is not None
    assert TWILIO.filename_banlist.banlist_extensions == (
        r"^(cs|x|p|s|r)?html5?~?$", r"^[aps]?cssc?~?$", r"^lock$", r"^mdx?~?$", r"^storyboard(c|er)?~?$", r"^xib$")
    assert TWILIO.filename_banlist.check_binaries is False
    assert TWILIO.content_whitelist is not None
    assert TWILIO.content_whitelist.patterns == ("ac[0-9a-f]{32}",)


# -- FilenameBanlist ------------------------------------------------------------------------------------------

BANNED = ["a.md", "b.html~", "yarn.lock", "c.scss", "d.MD", "x.xhtml", "y.storyboardc", "z.xib", "p.html",
          "q.cshtml", "r.phtml", "s.shtml", "t.rhtml", "u.html5", "v.css", "w.acss", "x.pcss", "y.cssc", "z.css~",
          "doc.mdx", "doc.md~", "Main.storyboard", "Main.storyboarder", "dir/sub/README.Md", "Pipfile.LOCK"]
SCANNED = ["d.markdown", "e.htm", "f.py", "Makefile", ".env", "html", "md", "docs.md/config.py", "lock.json",
           "package-lock.json", "g.xhtml2", "h.sass", "i.mdown", "j.storyboards", "k.xibx", "l.txt", "m.md.py",
           "noext."]


@pytest.mark.parametrize("name", BANNED)
def test_banned_extension(name):
    assert CompiledDetector(TWILIO).allows_filename(name.encode()) is False


@pytest.mark.parametrize("name", SCANNED)
def test_scanned_filename(name):
    assert CompiledDetector(TWILIO).allows_filename(name.encode()) is True


def test_non_utf8_filename_is_judged_by_its_extension():
    d = CompiledDetector(TWILIO)
    assert d.allows_filename(b"caf\xe9.py") is True
    assert d.allows_filename(b"caf\xe9.md") is False


# -- pairing, placeholders, ranking ----------------------------------------------------------------------------

FIVE_DISTINCT = "aabbccddeeabcdeabcdeabcdeabcdeed"  # 32 hex, 5 distinct characters, not periodic
SIX_DISTINCT = "aabbccddeeffabcdefabcdefabcdeffe"  # 32 hex, 6 distinct characters, not periodic


def test_token_placeholders_are_dropped():
    sid, _ = make_pair()
    assert len(FIVE_DISTINCT) == len(SIX_DISTINCT) == 32
    for fake in (FIVE_DISTINCT, "1234567890abcdef" * 2, "0123456789abcdef" * 2, "1a2b3c4d" * 4, "0" * 32,
                 "deadbeef" * 4, sid[2:]):  # the last: the SID's own digits
        assert best(f'sid = "{sid}"\nauth_token = "{fake}"\n') == set(), fake
    # template text never matches
    assert best('sid = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"\nauth_token = "your_auth_token"\n') == set()
    assert best(f'sid = "{sid}"\nauth_token = "{{{{ auth_token }}}}"\n') == set()


@pytest.mark.parametrize("digits", [FIVE_DISTINCT, "0123456789abcdef" * 2, "1234567890abcdef" * 2, "1a2b3c4d" * 4,
                                    "0" * 32])
def test_sid_placeholders_are_dropped(digits):
    # SPEC §3: a SID whose 32 hex digits use fewer than 6 distinct characters, or repeat a unit, is dropped
    _, tok = make_pair()
    assert best(f'sid = "AC{digits}"\nauth_token = "{tok}"\n') == set()


def test_six_distinct_characters_are_enough():
    sid, tok = make_pair()
    assert best(f'sid = "{sid}"\nauth_token = "{SIX_DISTINCT}"\n') == {(sid, SIX_DISTINCT)}
    assert best(f'sid = "AC{SIX_DISTINCT}"\nauth_token = "{tok}"\n') == {("AC" + SIX_DISTINCT, tok)}


def test_a_unit_that_does_not_divide_32_is_no_repetition():
    """SPEC §3: ``abcdef`` repeated (32 = 5 × 6 + 2) uses 6 distinct digits and repeats no unit evenly: kept."""
    six_periodic = ("abcdef" * 6)[:32]
    sid, tok = make_pair()
    assert best(f'sid = "{sid}"\nauth_token = "{six_periodic}"\n') == {(sid, six_periodic)}
    assert best(f'sid = "AC{six_periodic}"\nauth_token = "{tok}"\n') == {("AC" + six_periodic, tok)}
    # the same digits in a unit that divides 32 evenly are a placeholder
    assert best(f'sid = "{sid}"\nauth_token = "{"abcdef01" * 4}"\n') == set()


def test_placeholder_token_beside_a_real_one_is_ignored():
    sid, tok = make_pair()
    text = f'sid = "{sid}"\nauth_token = "{"1234567890abcdef" * 2}"\nreal = "{tok}"\n'
    assert ranking(text, sid) == [tok]


def test_sid_alone_and_token_alone_are_nothing():
    sid, tok = make_pair()
    assert run(f'account_sid = "{sid}"\n') == []
    assert run(f'auth_token = "{tok}"\n') == []
    assert run(f'auth_token = "{tok}"\nother_token = "{make_pair()[1]}"\n') == []


def test_keyword_on_the_token_line_ranks_first_despite_a_nearer_decoy():
    sid, tok = make_pair()
    decoy = make_pair()[1]
    text = f'sid = "{sid}"\nappid = "{decoy}"\n\n\n\n\nAUTH_TOKEN = "{tok}"\n'
    assert ranking(text, sid) == [tok, decoy]


@pytest.mark.parametrize("keyword", ["token", "auth", "secret", "Token", "AUTH", "SeCrEt"])
def test_keyword_on_the_line_before_the_token_ranks_first(keyword):
    sid, tok = make_pair()
    decoy = make_pair()[1]
    text = f'sid = "{sid}"\nmd5 = "{decoy}"\n\n\n# the {keyword} follows\nvalue = "{tok}"\n'
    assert ranking(text, sid) == [tok, decoy]


def test_keyword_two_lines_before_or_after_the_token_does_not_count():
    sid, tok = make_pair()
    decoy = make_pair()[1]
    two_before = f'sid = "{sid}"\nmd5 = "{decoy}"\n\n\n# auth token below\n\nvalue = "{tok}"\n'
    assert ranking(two_before, sid) == [decoy, tok]
    after = f'sid = "{sid}"\nmd5 = "{decoy}"\n\n\nvalue = "{tok}"\n# that was the auth token\n'
    assert ranking(after, sid) == [decoy, tok]


def test_without_keywords_nearest_first_in_characters():
    sid, tok = make_pair()
    near, far, farther = (make_pair()[1] for _ in range(3))
    text = f'x = "{far}"\n{"#" * 40}\ny = "{near}"\nsid = "{sid}"\n{"#" * 200}\nz = "{farther}"\n'
    assert ranking(text, sid) == [near, far, farther]
    # the same holds on one line
    line = f"{far} {'.' * 30} {sid} .. {near} {'.' * 60} {farther}"
    assert ranking(line, sid) == [near, far, farther]


def test_keyword_tokens_among_themselves_are_ranked_by_distance():
    sid, _ = make_pair()
    t_near, t_far, plain = (make_pair()[1] for _ in range(3))
    text = (f'auth_token_old = "{t_far}"\n' + "#\n" * 30 + f'sid = "{sid}"\nx = "{plain}"\n'
            f'auth_token = "{t_near}"\n')
    assert ranking(text, sid) == [t_near, t_far, plain]


def test_several_sids_each_get_their_own_token():
    (s1, t1), (s2, t2) = make_pair(), make_pair()
    text = (f'ONE_SID = "{s1}"\nONE_AUTH_TOKEN = "{t1}"\n' + "# --\n" * 20 +
            f'TWO_SID = "{s2}"\nTWO_AUTH_TOKEN = "{t2}"\n')
    assert best(text) == {(s1, t1), (s2, t2)}
    assert ranking(text, s1) == [t1, t2]
    assert ranking(text, s2) == [t2, t1]


def test_a_sid_repeated_yields_one_candidate():
    sid, tok = make_pair()
    text = f'a = "{sid}"\n' + "#\n" * 40 + f'b = "{sid}"\nauth_token = "{tok}"\n'
    cands = run(text)
    assert len(cands) == 1
    assert [p.client_secret for p in cands[0].pairs] == [tok]
    assert cands[0].pairs[0].line in (1, 42)  # a line of the client_id
    assert cands[0].pairs[0].line == 1  # the first one (models.Pair: where the client_id first appears)


def test_token_inside_a_longer_run_is_not_a_token():
    sid, tok = make_pair()
    for wrapped in (f"{tok}0", f"0{tok}", f"{tok}a", f"z{tok}", f"{tok}G", f"Q{tok}", f"{tok}{tok[:8]}",
                    tok + "1234567", "deadbeef" + tok + "deadbeefdeadbeefdeadbeefdeadbeef"):
        assert run(f'sid = "{sid}"\nauth_token = "{wrapped}"\n') == [], wrapped
    # uppercase hex is not a token either
    assert run(f'sid = "{sid}"\nauth_token = "{tok.upper()}"\n') == []
    # 31 hex is too short
    assert run(f'sid = "{sid}"\nauth_token = "{tok[:31]}"\n') == []
    # but punctuation ends a word
    for sep in ("-", ":", "/", " ", "'", "=", ",", "(", "\t"):
        assert best(f"sid={sid}\nauth_token{sep}{tok}{sep}\n") == {(sid, tok)}, repr(sep)


def test_sid_must_be_a_whole_word():
    sid, tok = make_pair()
    for wrapped in (f"X{sid}", f"{sid}0", f"{sid}f", f"9{sid}", f"{sid}Z", f"ac{sid[2:]}", f"AC{sid[2:].upper()}"):
        assert run(f'sid = "{wrapped}"\nauth_token = "{tok}"\n') == [], wrapped


def test_token_first():
    sid, tok = make_pair()
    assert best(f"auth_token: {tok}\n" + "\n" * 5 + f"sid: {sid}\n") == {(sid, tok)}


def test_sid_and_token_25_lines_apart():
    sid, tok = make_pair()
    text = f'account_sid = "{sid}"\n' + "".join(f"line {i}\n" for i in range(24)) + f'auth_token = "{tok}"\n'
    assert text.splitlines()[25] == f'auth_token = "{tok}"'
    assert best(text) == {(sid, tok)}


def test_crlf_content_and_line_number():
    sid, tok = make_pair()
    text = f'# header\r\n\r\naccount_sid = "{sid}"\r\nauth_token = "{tok}"\r\n'
    cands = run(text)
    assert [(c.client_id, c.pairs[0].client_secret, c.pairs[0].line) for c in cands] == [(sid, tok, 3)]


def test_latin1_content():
    sid, tok = make_pair()
    data = ("# caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1") + f'account_sid = "{sid}"\n'.encode() +
            "# \xa9 \xe0 \xff\n".encode("latin-1") + f'auth_token = "{tok}"\n'.encode() + b"\xe9\xe8\n")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    cands = run(data)
    assert [(c.client_id, c.pairs[0].client_secret, c.pairs[0].line) for c in cands] == [(sid, tok, 2)]


def test_minified_single_line_of_10_kb():
    sid, tok = make_pair()
    filler = "function(a,b){return a+b};var x=[1,2,3];" * 130
    line = f'!function(){{var s="{sid}";{filler}var authToken="{tok}";{filler}}}();'
    assert "\n" not in line and len(line) > 10_000
    cands = run(line)
    assert [(c.client_id, c.pairs[0].client_secret, c.pairs[0].line) for c in cands] == [(sid, tok, 1)]
    # the SID far from the token on the same line, no keyword at all
    plain = f'var s="{sid}";{filler}var t="{tok}";'
    assert best(plain) == {(sid, tok)}


def test_url_userinfo():
    sid, tok = make_pair()
    assert best(f"curl https://{sid}:{tok}@api.twilio.com/2010-04-01/Accounts/{sid}/Messages.json\n") == {(sid, tok)}


def test_positional_arguments():
    sid, tok = make_pair()
    assert best(f'client = Init("{sid}", "{tok}");\n') == {(sid, tok)}
    assert best(f"new TwilioRestClient('{sid}','{tok}')") == {(sid, tok)}


def test_commented_out_code():
    sid, tok = make_pair()
    assert best(f'# client = Client("{sid}", "{tok}")\n') == {(sid, tok)}
    assert best(f'/*\n * account_sid = "{sid}";\n * auth_token = "{tok}";\n */\n') == {(sid, tok)}
    assert best(f"<!-- {sid} {tok} -->") == {(sid, tok)}


def test_content_whitelist_is_case_insensitive_but_the_sid_is_not():
    sid, tok = make_pair()
    # 'ac' + lowercase hex passes the gate but is no SID
    assert run(f'sid = "ac{sid[2:]}"\nauth_token = "{tok}"\n') == []


def test_binary_content_is_skipped():
    sid, tok = make_pair()
    text = f'account_sid = "{sid}"\nauth_token = "{tok}"\n'.encode()
    assert run(b"\0" + text) == []
    assert run(text + b"x" * (7999 - len(text)) + b"\0") == []  # NUL at offset 7999: still in the first 8000
    late = text + b"x" * (8000 - len(text)) + b"\0"  # NUL at offset 8000: not in the first 8000 bytes
    assert late.index(b"\0") == 8000
    assert best(late) == {(sid, tok)}


@pytest.mark.parametrize("cap", [1, 3, 8])
def test_max_pairs_caps_the_ranked_secrets(cap):
    sid, _ = make_pair()
    tokens = [make_pair()[1] for _ in range(12)]
    keyworded = make_pair()[1]
    text = (f'sid = "{sid}"\n' + "".join(f'v{i} = "{t}"\n' for i, t in enumerate(tokens)) +
            "#\n" * 50 + f'auth_token = "{keyworded}"\n')
    got = ranking(text, sid, max_pairs=cap)
    assert got == ([keyworded] + tokens)[:cap]


def test_same_token_twice_is_one_pair():
    sid, tok = make_pair()
    text = f'auth_token = "{tok}"\nsid = "{sid}"\nagain_token = "{tok}"\n'
    assert ranking(text, sid) == [tok]


# -- a detector with one matcher (SPEC §3-4: the secret is the match) -------------------------------------------------

def _one_matcher():
    from auditor.detectors.spec import parse_detector
    from tests.helpers.detectors import builtin_doc

    doc = builtin_doc("one_matcher", minimum_number_of_matches=1, validity_check_available=False,
                      only_valid_secrets_raise_alert=False)
    del doc["matchers"]["client_id"], doc["check"]
    doc["pre_validators"] = doc["pre_validators"][:1]  # no content gate on a SID
    token = make_pair()[1]
    doc["examples"] = [{"text": f'key = "{token}"\n', "client_secret": token}]
    doc["negative_examples"] = [{"text": "nothing here\n"}]
    return parse_detector(doc, "one_matcher.yaml")


def test_a_one_matcher_detector_finds_the_match_alone():
    detector = _one_matcher()
    tok = make_pair()[1]
    [cand] = run(f'# config\nkey = "{tok}"\n', detector=detector)
    assert (cand.detector, cand.client_id) == ("one_matcher", "")
    assert [(p.client_secret, p.rank, p.line) for p in cand.pairs] == [(tok, 0, 2)]


def test_a_one_matcher_secret_sha256_is_the_sha256_of_the_match():
    import hashlib

    from auditor.models import resolve_unchecked

    tok = make_pair()[1]
    [cand] = run(f'key = "{tok}"\n', detector=_one_matcher())
    assert resolve_unchecked(cand).secret_sha256 == hashlib.sha256(tok.encode()).hexdigest()


@pytest.mark.parametrize(("pattern", "lead"), [
    (rb"\bAC([0-9a-f]{32})\b", b"AC"), (rb"^SK[0-9a-f]{32}", b"SK"), (rb"ghp_[0-9a-zA-Z]{36}", b"ghp_"),
    (rb"(?i)\bAC([0-9a-f]{32})\b", None), (rb"A[Cc]x", None), (rb"[A-Z]{2}x", None), (rb"(AC)x", None),
])
def test_the_leading_literal_of_an_anchor(pattern, lead):
    """What the anchor gate looks for: only a case-sensitive literal every match starts with."""
    import regex

    from auditor.detectors.engine import _lead

    assert _lead(regex.compile(pattern)) == lead


def test_a_set_with_an_anchor_not_led_by_a_literal_has_no_anchor_gate():
    from dataclasses import replace

    from auditor.detectors.engine import _anchor_gate

    built_in = load_detectors()
    assert _anchor_gate(tuple(CompiledDetector(d) for d in built_in)) is not None
    odd = replace(built_in[0], matchers=tuple(replace(m, pattern=r"\b[A-Z]{2}[0-9a-f]{32}\b")
                                              if m.name == "client_id" else m for m in built_in[0].matchers))
    assert _anchor_gate(tuple(CompiledDetector(d) for d in (odd, *built_in[1:]))) is None
