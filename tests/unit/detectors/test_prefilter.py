"""The prefilter: which literals a pattern needs, and that a blob is matched only against the rules whose keywords
(or literals) it holds; a rule matching every line of a big file is bounded, and the bound is said."""

from __future__ import annotations

import secrets
from functools import cache
from pathlib import Path

import pytest

from auditor.detectors import CompiledDetector, load_detectors
from auditor.detectors.catalogs import load
from auditor.detectors.check import check_detector
from auditor.detectors.engine import MAX_MATCHES, detect
from auditor.detectors.prefilter import PREFILTER_MIN, Prefilter, leading, literals

CATALOG = """
[[rules]]
id = "svc0"
regex = '''svc0_([0-9a-f]{8})'''
keywords = ["svc0_"]

[[rules]]
id = "svc1"
regex = '''(?i)svc1_([0-9a-f]{8})'''
keywords = ["svc1_"]

[[rules]]
id = "svc2"
regex = '''(?:x|y)=([0-9a-f]{8})'''
keywords = ["svc2_", "other"]

[[rules]]
id = "token"
regex = '''(?i)token\\s*=\\s*"?([0-9a-z]{10,})'''

[[rules]]
id = "zz"
regex = '''zz-[0-9a-f]{6}'''

[[rules]]
id = "everything"
regex = '''[0-9a-f]{12}'''
"""


@cache
def _catalog_file() -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="prefilter-")) / "gitleaks.toml"
    path.write_text(CATALOG)
    return path


def catalog_detectors() -> list[CompiledDetector]:
    """The catalog's rules and the built-in detectors, compiled once (one list: the prefilter is built once)."""
    return _compiled()


@cache
def _compiled() -> list[CompiledDetector]:
    rules, _ = load(_catalog_file())
    return [CompiledDetector(d) for d in (*load_detectors(), *rules)]


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"ghp_[0-9a-zA-Z]{36}", {b"ghp_"}),
    (r"(?i)twilio.{0,20}\b(sk[a-f0-9]{32})\b", {b"twilio"}),
    (r"(?:api|KEY|sk)", {b"api", b"key", b"sk"}),  # a gitleaks rule's keywords, lower-cased
    (r"[Aa][Kk][Ii][Aa][0-9A-Z]{16}", {b"akia"}),
    (r"(?x) \b example_key \s* = ([A-Za-z0-9]{30})", {b"example_key"}),
    (r"caf\xe9", {b"caf\xe9"}),  # one byte, as the engine compiles the pattern (bytes)
    (r"[0-9a-f]{32}", None),  # no literal: runs on every blob
    (r"(ghp_)?\w+", None),  # optional: not needed
    (r"(?:ab|c)\d", None),  # an alternative of one byte gates nothing
    (r"x(ab|c)", {b"xab", b"xc"}),  # a prefix the parser factored out is put back
    (r"(?:messagebird|message-bird)", {b"messagebird", b"message-bird"}),
    (r"[[:alpha:]]+token", None),  # the standard parser reads this differently from regex: not trusted
    (r"\p{L}+token", None),  # regex-only syntax
    (r"\b(?:sc|ext)_(?i)[a-z0-9]{5}\.(?-i:acc)", {b".acc"}),  # a late (?i): regex applies it from there on
    (r"a\\(?i)bc", None),  # after an escaped backslash it is still refused
])
def test_the_literals_a_pattern_needs(pattern, expected):
    assert literals(pattern) == (frozenset(expected) if expected is not None else None)


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"(?i)(?:key|token)\s*=", {b"key", b"token"}),
    (r"(?i)[\"']secret_key[\"']\s*=>", {b"'secret_key'", b"'secret_key\"", b"\"secret_key'", b'"secret_key"'}),
    (r"\b((?:sc|ext|authress)_(?i)[a-z0-9]{5})", {b"sc_", b"ext_", b"authress_"}),  # the words, then the literal
    (r"\b((?:hvs\.[\w-]{90}|s\.(?i:[a-z0-9]{24})))", {b"hvs.", b"s."}),
    (r"token=\w+", None),  # one case-sensitive literal: the regex module finds it faster itself
    (r"(?i)lob[ \t\w.-]{0,20}=", {b"lob"}),  # one case-insensitive literal: it tries every byte
    (r"[a-f]x\w", None),  # a class of more than CLASS_MAX characters leads nothing
    (r"(?:a|b)\w", None),  # one byte each: gates nothing
])
def test_the_literals_every_match_starts_with(pattern, expected):
    assert leading(pattern) == (frozenset(expected) if expected is not None else None)


def test_a_blob_is_matched_only_against_the_rules_whose_keywords_it_holds():
    detectors = catalog_detectors()
    ids = [d.id for d in detectors]
    plan = Prefilter([d.literals for d in detectors])
    assert plan.active and sum(d.literals is not None for d in detectors) >= PREFILTER_MIN

    def run(text: str) -> set[str]:
        return {ids[i] for i in plan.select(text.lower().encode())}

    always = {"everything"}  # no keyword, no literal
    assert run("nothing here") == always
    assert run("SVC1_deadbeef") == always | {"svc1"}  # a keyword in another case still selects its rule
    assert run("other things") == always | {"svc2"}  # any one of a rule's keywords
    assert run("Svc0_ svc2_") == always | {"svc0", "svc2"}
    assert run('token = "abc"') == always | {"token"}  # no keywords: literals from its pattern
    assert run("ac sk zz-") == always | {"twilio_master_credentials", "twilio_api_keys", "zz"}


def test_few_gated_detectors_skip_the_pass():
    assert not Prefilter([frozenset({b"ac"}), frozenset({b"sk"}), None]).active


def test_a_rule_that_matches_every_line_of_a_big_file_is_bounded_and_said(tmp_path):
    path = tmp_path / "gitleaks.toml"
    path.write_text("[[rules]]\nid = 'hex'\nregex = '''[0-9a-f]{16}'''\n")
    [rule], _ = load(path)
    blob = "".join(f"{secrets.token_hex(8)}\n" for _ in range(3 * MAX_MATCHES)).encode()
    bounded: set[str] = set()
    found = detect([CompiledDetector(rule)], blob, "b", 8, bounded=bounded)
    assert len(found) == MAX_MATCHES and bounded == {"hex"}
    assert found[-1].pairs[0].line == MAX_MATCHES  # lines still right, counted once
    bounded.clear()
    detect([CompiledDetector(rule)], blob[:17 * 10], "b", 8, bounded=bounded)
    assert bounded == set()


def test_detectors_check_says_which_rules_run_on_every_blob():
    by_id = {d.id: d for d in catalog_detectors()}
    said = [p.message for p in check_detector(by_id["everything"].detector)]
    assert any("runs on every blob" in m for m in said), said
    assert not any("runs on every blob" in p.message for p in check_detector(by_id["svc0"].detector))
