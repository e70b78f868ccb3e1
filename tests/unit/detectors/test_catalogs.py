"""Other tools' catalogs as detectors: a gitleaks config and a Nosey Parker rules file, read as those tools read them
(the secret is the secretGroup, else the first non-empty group, else the whole match); what is not honoured is said
rule by rule."""

from __future__ import annotations

import hashlib
import math
import secrets
from pathlib import Path

import pytest

from auditor.detectors import CompiledDetector
from auditor.detectors.catalogs import load
from auditor.detectors.engine import detect
from auditor.detectors.spec import load_with_notes
from auditor.errors import DetectorFileError
from auditor.models import resolve_unchecked

GITLEAKS = """
[allowlist]
paths = ['''vendor/''']

[[rules]]
id = "svc-key"
description = "a service key"
regex = '''(svc|api)_key\\s*=\\s*"([0-9a-f]{32})"'''
secretGroup = 2
keywords = ["_key"]

[[rules]]
id = "first-group"
regex = '''token:\\s*(?:"([0-9a-f]{24})"|'([0-9a-f]{24})')'''
entropy = 3.5
[rules.allowlist]
regexes = ['''0{24}''']

[[rules]]
id = "whole-match"
regex = '''zz-[0-9a-f]{20}'''

[[rules]]
id = "path-only"
path = '''\\.pem$'''

[[rules]]
id = "broken"
regex = '''(?P<unclosed'''

[[rules]]
id = "bad-group"
regex = '''k=([0-9a-f]{8})'''
secretGroup = 3
"""

NOSEYPARKER = """
rules:
- name: Example Key
  id: np.example.1
  pattern: |
    (?x)
    \\b example_key \\s* = \\s*   # the assignment
    ([A-Za-z0-9]{30})          # the key
  examples:
  - 'example_key = abc'
"""


def _hex(n: int) -> str:
    return secrets.token_hex(n // 2)


def _shannon(value: str) -> float:
    return -sum(value.count(c) / len(value) * math.log2(value.count(c) / len(value)) for c in set(value))


def _high_entropy_hex(n: int) -> str:
    while True:
        if _shannon(value := _hex(n)) > 3.6:
            return value


def _values(detector, text: str) -> set[str]:
    return {c.pairs[0].client_secret for c in detect([CompiledDetector(detector)], text.encode(), "blob", 8)}


def test_a_gitleaks_config_becomes_detectors_with_notes_for_what_is_not_applied(tmp_path: Path) -> None:
    path = tmp_path / "gitleaks.toml"
    path.write_text(GITLEAKS)
    detectors, notes = load(path)
    by_id = {d.id: d for d in detectors}
    assert set(by_id) == {"svc-key", "first-group", "whole-match"}
    said = "\n".join(notes)
    for fragment in ("rule path-only: not loaded", "rule broken: not loaded: its regex does not compile",
                     "rule bad-group: not loaded: secretGroup"):
        assert fragment in said, said
    assert "entropy" not in said and "allowlist" not in said  # both applied (below)
    key, tok, z = _hex(32), _high_entropy_hex(24), _hex(20)
    assert _values(by_id["svc-key"], f'api_key = "{key}"\n') == {key}  # secretGroup 2, not the whole match
    assert _values(by_id["svc-key"], f'API_KEY = "{key}"\n') == set()  # the regex is case-sensitive
    assert _values(by_id["svc-key"], f'x = "{key}"\n') == set()
    assert _values(by_id["first-group"], f"token: '{tok}'\n") == {tok}  # the first non-empty group
    assert _values(by_id["whole-match"], f"zz-{z}\n") == {f"zz-{z}"}
    assert by_id["svc-key"].content_whitelist is not None  # keywords: the rule's gate, as in gitleaks


def test_a_one_matcher_secret_is_keyed_by_the_secret_alone(tmp_path: Path) -> None:
    path = tmp_path / "gitleaks.toml"
    path.write_text(GITLEAKS)
    svc = next(d for d in load(path)[0] if d.id == "svc-key")
    key = _hex(32)
    [cand] = detect([CompiledDetector(svc)], f'svc_key = "{key}"\n'.encode(), "blob", 8)
    assert resolve_unchecked(cand).secret_sha256 == hashlib.sha256(key.encode()).hexdigest()


def test_a_noseyparker_rules_file_becomes_detectors(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(NOSEYPARKER)
    [rule], notes = load(path)
    assert (rule.id, rule.name, notes) == ("np.example.1", "Example Key", [])
    value = secrets.token_hex(15)
    assert _values(rule, f"example_key = {value}\n") == {value}  # verbose pattern, the capture group


def test_load_with_notes_keeps_the_builtins_beside_a_catalog(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(NOSEYPARKER)
    detectors, _ = load_with_notes(path)
    assert {"twilio_master_credentials", "np.example.1"} <= {d.id for d in detectors}


@pytest.mark.parametrize(("name", "text", "field"), [
    ("a.toml", "rules = 3\n", "rules"),
    ("a.toml", "[[rules]\n", "<toml>"),
    ("a.yml", "detectors: []\n", "rules"),
    ("a.yml", "rules:\n- name: x\n", "rules[0].pattern"),
    ("a.toml", '[[rules]]\nregex = "x"\n', "rules[0].id"),
])
def test_a_malformed_catalog_names_the_file_and_the_field(tmp_path: Path, name: str, text: str, field: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DetectorFileError) as e:
        load(path)
    assert e.value.field == field and str(path) in str(e.value)


NP_OTHER = """
rules:
- name: Other Key
  id: np.other.1
  pattern: 'other_key:\\s*([0-9a-f]{20})'
"""


def test_a_directory_holds_noseyparker_rules_files_beside_our_own_detector_files(tmp_path: Path) -> None:
    from tests.helpers.detectors import builtin_doc, write_detector

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "example.yml").write_text(NOSEYPARKER)
    (tmp_path / "d" / "other.yaml").write_text(NP_OTHER)
    write_detector(tmp_path / "d", "mine.yaml", builtin_doc("mine"))
    detectors, notes = load_with_notes(tmp_path / "d")
    by_id = {d.id: d for d in detectors}
    assert {"twilio_master_credentials", "np.example.1", "np.other.1", "mine"} <= set(by_id)
    assert notes == []
    value = _hex(20)
    assert _values(by_id["np.other.1"], f"other_key: {value}\n") == {value}


def test_two_rules_files_of_a_directory_with_one_rule_id_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.yml").write_text(NOSEYPARKER)
    (tmp_path / "d" / "b.yml").write_text(NOSEYPARKER.replace("Example Key", "Example Key again"))
    with pytest.raises(DetectorFileError) as e:
        load_with_notes(tmp_path / "d")
    said = str(e.value)
    assert str(tmp_path / "d" / "b.yml") in said and "np.example.1" in said and str(tmp_path / "d" / "a.yml") in said


@pytest.mark.parametrize(("name", "text", "field"), [
    ("a.toml", '[[rules]]\nid = "x"\nregex = "a"\n[[rules]]\nid = "x"\nregex = "b"\n', "rules[1].id"),
    ("a.yml", "rules:\n- {id: x, pattern: a}\n- {id: x, pattern: b}\n", "rules[1].id"),
    ("a.yml", "rules:\n- {name: x, pattern: a}\n- {name: x, pattern: b}\n", "rules[1].name"),
    ("a.toml", "rules = []\n", "rules"),
    ("a.yml", "rules: []\n", "rules"),
])
def test_two_rules_with_one_id_or_no_rule_at_all_name_the_file_the_rule_and_the_field(
        tmp_path: Path, name: str, text: str, field: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DetectorFileError) as e:
        load(path)
    assert e.value.field == field and str(path) in str(e.value)
    assert "'x'" in str(e.value) or field == "rules"


def test_gitleaks_keywords_are_alternatives_any_case(tmp_path: Path) -> None:
    path = tmp_path / "gitleaks.toml"
    path.write_text('[[rules]]\nid = "kw"\nregex = \'\'\'[0-9a-f]{16}\'\'\'\nkeywords = ["alpha", "beta"]\n')
    [rule], _ = load(path)
    value = _hex(16)
    assert _values(rule, f"BETA {value}\n") == {value}  # one keyword is enough, whatever its case
    assert _values(rule, f"gamma {value}\n") == set()


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"(?i)[\w.-]{0,50}?(?:adafruit)[\s'\"]{0,3}=\s*([a-z0-9]{8})", r"(?i)(?:adafruit)[\s'\"]{0,3}=\s*([a-z0-9]{8})"),
    (r"[\w.-]{0,50}?(?i:[\w.-]{0,50}?(?:okta))=([a-z0-9]{8})", r"(?i:(?:okta))=([a-z0-9]{8})"),
    (r"[\w.-]{0,50}?okta=[a-z0-9]{8}", None),  # no group: the whole match is the secret, its start matters
    (r"[\w.-]{0,50}okta=([a-z0-9]{8})", None),  # greedy: it could skip to a later match
])
def test_a_leading_lazy_run_is_not_run_when_it_cannot_change_the_secret(pattern, expected):
    from auditor.detectors.catalogs import without_lazy_lead

    assert without_lazy_lead(pattern) == (expected if expected is not None else pattern)


def test_without_the_leading_lazy_run_a_rule_finds_the_same_secrets(tmp_path: Path) -> None:
    import regex

    pattern = r"(?i)[\w.-]{0,50}?(?:okta|key)[\w.-]{0,5}\s*=\s*([0-9a-z]{8})"
    path = tmp_path / "gitleaks.toml"
    path.write_text(f"[[rules]]\nid = 'lazy'\nregex = '''{pattern}'''\n")
    [rule], notes = load(path)
    assert "1 rule(s) run without their leading lazy run" in "\n".join(notes)
    text = "".join(f"x.{'a' * (i % 60)}okta_{i % 3} = {_hex(8)} key={_hex(8)}\n" for i in range(200))
    original = {m.group(1) for m in regex.finditer(pattern.encode(), text.encode())}
    assert _values(rule, text) == {v.decode() for v in original} and len(original) == 400


ALLOWLISTED = """
[allowlist]
paths = ['''(^|/)vendor/''']
stopwords = ["example"]

[[rules]]
id = "tok"
regex = '''tok\\s*=\\s*"([0-9a-z]{24})"'''
entropy = 3.0
[[rules.allowlists]]
regexes = ['''^0+1''']
[[rules.allowlists]]
regexTarget = "line"
regexes = ['''# ?test''']
[[rules.allowlists]]
commits = ["0123456789abcdef0123456789abcdef01234567"]
"""


def test_gitleaks_entropy_and_allowlists_drop_what_gitleaks_drops(tmp_path: Path) -> None:
    from auditor.detectors.engine import DetectorSet

    path = tmp_path / "gitleaks.toml"
    path.write_text(ALLOWLISTED)
    [rule], notes = load(path)
    assert any("rule tok: allowlist commits are not applied" in n for n in notes), notes
    good = _high_entropy_hex(24)
    assert _values(rule, f'tok = "{good}"\n') == {good}
    assert _values(rule, 'tok = "abababababababababababab"\n') == set()  # entropy 1.0 <= 3.0, as gitleaks
    low = "0" * 10 + "1" + _hex(12) + "z"
    assert _values(rule, f'tok = "{low}"\n') == set()  # the rule's allowlist regex on the secret
    assert _values(rule, f'tok = "{good}"  # test\n') == set()  # regexTarget line
    assert _values(rule, f'tok = "{good[:10]}example{good[:7]}"\n') == set()  # a global stop word
    detectors = DetectorSet([rule])
    assert not detectors.allows("tok", b"lib/vendor/x.py") and detectors.allows("tok", b"lib/app.py")  # paths


def test_a_gitleaks_rules_path_limits_it_to_those_files(tmp_path: Path) -> None:
    from auditor.detectors.engine import DetectorSet

    path = tmp_path / "gitleaks.toml"
    path.write_text("[[rules]]\nid = 'tf'\nregex = '''password = \"(\\w+)\"'''\npath = '''(?i)\\.(?:tf|hcl)$'''\n")
    [rule], notes = load(path)
    assert notes == []
    detectors = DetectorSet([rule])
    assert detectors.allows("tf", b"infra/main.TF") and not detectors.allows("tf", b"src/config.py")
