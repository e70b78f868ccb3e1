"""Other tools' rule catalogs as detectors (SPEC §3): a gitleaks TOML config (``[[rules]]``) or a Nosey Parker rules
YAML (``rules:``), alone or as files of a ``--detectors`` directory beside auditor's own detector files. Each rule
becomes a detector with one matcher whose secret is its capture group (gitleaks'
``secretGroup``, else the first non-empty group, else the whole match — as gitleaks and Nosey Parker read them).

What a rule says that auditor cannot honour is said, rule by rule, in the notes ``load`` returns — never dropped or
changed silently: a rule whose pattern the ``regex`` module cannot compile is not loaded (and said so); gitleaks'
``entropy`` drops a secret of at most that Shannon entropy, as in gitleaks; its allowlists apply as far as a blob
tells (``allowlists``: commits are not applied, and said); a rule's ``path`` limits it to the files it names, as in
gitleaks (what is not applied means more candidates than gitleaks reports, never fewer); gitleaks' ``keywords`` are
kept as the rule's content gate, exactly their meaning there (a blob holding *any* of them, any case, is matched).
Two rules with one id, or a catalog without any rule, are errors that name the file, the rule and the field: a scan
would silently keep one of them, or silently scan with nothing.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import regex

from auditor.detectors import allowlists
from auditor.detectors.spec import Allowlist, ContentWhitelist, Detector, FilenameBanlist, Matcher, Pairing, safe_yaml
from auditor.errors import DetectorFileError

SUPPORTED_GITLEAKS = {"id", "description", "regex", "secretGroup", "keywords", "tags", "entropy", "allowlists",
                      "allowlist", "path"}
# A leading lazy run of a class, `[\w.-]{0,50}?` (gitleaks' generic template: ~95 of its rules), optionally after
# global flags or inside the first `(?i:` group. It cannot change what a capture group finds: the lazy run takes the
# fewest characters that let the rest match, so the rest matches where it would alone, and every character it may
# skip is one the rest's own leftmost match would start after. It only widens the whole match — and costs a
# backtracking engine up to 50 steps per byte (a scan of flask took minutes with it, seconds without).
LAZY_LEAD = regex.compile(r"^((?:\(\?[a-zA-Z]+\))?(?:\(\?[a-zA-Z]*:)?)"  # flags, the first non-capturing group
                          r"(?:\[[^\]\[()]*\]|\\[wdsWDS]|\.)(?:\{0,\d+\}|\*)\?")  # a class, lazily 0 or more times


def without_lazy_lead(pattern: str) -> str:
    """``pattern`` without its leading lazy class runs (LAZY_LEAD), when the secret is a capture group after them."""
    while (m := LAZY_LEAD.match(pattern)) is not None:
        rest = m.group(1) + pattern[m.end():]
        try:
            if regex.compile(rest.encode()).groups == 0:
                break  # the whole match is the secret: its start matters
        except (regex.error, UnicodeEncodeError):
            break
        pattern = rest
    return pattern


def _lead_note(src: str, ids: list[str]) -> list[str]:
    if not ids:
        return []
    return [f"{src}: {len(ids)} rule(s) run without their leading lazy run like [\\w.-]{{0,50}}? (it can never change "
            f"the secret, only the whole match's start, and costs a backtracking engine ~50 steps a byte): "
            + ", ".join(ids)]


def _detector(rule_id: str, name: str, pattern: str, group: int, *, keywords: tuple[str, ...], source: str,
              category: str, min_entropy: float | None = None, allowed: tuple[Allowlist, ...] = (),
              banned_paths: tuple[str, ...] = (), only_paths: tuple[str, ...] = ()) -> Detector:
    # One pattern, not one per keyword: a gate's patterns must all match, gitleaks' keywords are alternatives.
    gate = (ContentWhitelist(patterns=("(?:" + "|".join(regex.escape(k.lower()) for k in keywords) + ")",))
            if keywords else None)
    return Detector(id=rule_id, name=name, category=category, company="", high_recall=False,
                    validity_check_available=False, only_valid_secrets_raise_alert=False,
                    minimum_number_of_matches=1, prefixed=False, content_whitelist=gate,
                    filename_banlist=FilenameBanlist(banlist_paths=banned_paths, only_paths=only_paths)
                    if banned_paths or only_paths else None,
                    matchers=(Matcher(name="client_secret", pattern=pattern, secret_group=group,
                                      min_entropy=min_entropy, allowlists=allowed),),
                    pairing=Pairing(), check=None, examples=(), negative_examples=(), source=source)


def _compiles(pattern: str) -> str | None:
    try:
        regex.compile(pattern.encode())
    except (regex.error, UnicodeEncodeError) as e:
        return str(e)
    return None


def _unique(rule_id: str, index: int, seen: dict[str, int], src: str, key: str) -> None:
    """A second rule with one id is an error naming both: a scan would keep one of them and drop the other."""
    if (first := seen.setdefault(rule_id, index)) != index:
        raise DetectorFileError(src, f"rules[{index}].{key}", f"rule {rule_id!r} has the id of rules[{first}]: give "
                                "each rule its own id")


def _not_empty(doc: Mapping[str, Any], src: str) -> None:
    if not doc.get("rules"):
        raise DetectorFileError(src, "rules", "holds no rule: a scan with it would look for nothing; check that this "
                                "is the catalog you meant")


def _gitleaks(doc: Mapping[str, Any], src: str) -> tuple[list[Detector], list[str]]:
    _not_empty(doc, src)
    detectors, lead = [], []
    seen: dict[str, int] = {}
    shared, shared_paths, notes = allowlists.read(allowlists.global_tables(doc), f"{src}: the global allowlist")
    for i, rule in enumerate(doc.get("rules") or ()):
        if not isinstance(rule, Mapping) or not isinstance(rule.get("id"), str):
            raise DetectorFileError(src, f"rules[{i}].id", "is required (a string)")
        rid = rule["id"]
        _unique(rid, i, seen, src, "id")
        pattern = rule.get("regex")
        if not isinstance(pattern, str):
            notes.append(f"{src}: rule {rid}: not loaded: it has no regex (a path-only rule); auditor matches "
                         "content")
            continue
        if (why := _compiles(pattern)) is not None:
            notes.append(f"{src}: rule {rid}: not loaded: its regex does not compile here ({why})")
            continue
        for key in sorted(set(rule) - SUPPORTED_GITLEAKS):
            notes.append(f"{src}: rule {rid}: '{key}' is not applied (auditor may report more than gitleaks)")
        group = rule.get("secretGroup", 0)
        if not isinstance(group, int) or group < 0 or group > regex.compile(pattern.encode()).groups:
            notes.append(f"{src}: rule {rid}: not loaded: secretGroup {group!r} names no group of its regex")
            continue
        keywords = tuple(k for k in rule.get("keywords") or () if isinstance(k, str))
        if (fast := without_lazy_lead(pattern)) != pattern:
            lead.append(rid)
        tables = [*(rule.get("allowlists") or ()), *([rule["allowlist"]] if "allowlist" in rule else [])]
        own, own_paths, said = allowlists.read(tables, f"{src}: rule {rid}")
        notes += said
        floor = rule.get("entropy")
        if floor is not None and not isinstance(floor, int | float):
            notes.append(f"{src}: rule {rid}: entropy {floor!r} is not a number: not applied")
            floor = None
        only = rule.get("path")
        if only is not None and (not isinstance(only, str) or _compiles(only) is not None):
            notes.append(f"{src}: rule {rid}: path {only!r} does not compile here: not applied")
            only = None
        detectors.append(_detector(rid, str(rule.get("description") or rid), fast, group, keywords=keywords,
                                   source=src, category="gitleaks rule", min_entropy=floor or None,
                                   allowed=shared + own, banned_paths=shared_paths + own_paths,
                                   only_paths=(only,) if only else ()))
    return detectors, notes + _lead_note(src, lead)


def is_rules_doc(doc: Any) -> bool:
    """A Nosey Parker rules document (``rules: [...]``), not one of auditor's own detector files."""
    return isinstance(doc, Mapping) and isinstance(doc.get("rules"), list) and "matchers" not in doc


def noseyparker(doc: Mapping[str, Any], src: str) -> tuple[list[Detector], list[str]]:
    """A parsed Nosey Parker rules document → its rules as detectors, and the notes on what is not honoured."""
    _not_empty(doc, src)
    detectors, notes, lead = [], [], []
    seen: dict[str, int] = {}
    for i, rule in enumerate(doc.get("rules") or ()):
        if not isinstance(rule, Mapping) or not isinstance(rule.get("pattern"), str):
            raise DetectorFileError(src, f"rules[{i}].pattern", "is required (a string)")
        rid = str(rule.get("id") or rule.get("name") or f"rule-{i}")
        _unique(rid, i, seen, src, "id" if rule.get("id") else "name")
        if (why := _compiles(rule["pattern"])) is not None:
            notes.append(f"{src}: rule {rid}: not loaded: its pattern does not compile here ({why})")
            continue
        if (fast := without_lazy_lead(rule["pattern"])) != rule["pattern"]:
            lead.append(rid)
        detectors.append(_detector(rid, str(rule.get("name") or rid), fast, 0, keywords=(), source=src,
                                   category="Nosey Parker rule"))
    return detectors, notes + _lead_note(src, lead)


def load(path: Path) -> tuple[list[Detector], list[str]]:
    """A catalog file → its rules as detectors, and a note for each thing a rule says that is not honoured."""
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DetectorFileError(src, "--detectors", f"cannot be read as UTF-8 text: {e}") from None
    if path.suffix == ".toml":
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise DetectorFileError(src, "<toml>", f"is not valid TOML: {e}") from None
        if not isinstance(doc.get("rules"), list):
            raise DetectorFileError(src, "rules", "is required: a gitleaks config holds [[rules]]")
        return _gitleaks(doc, src)
    import yaml

    try:
        doc = safe_yaml(text)
    except yaml.YAMLError as e:
        raise DetectorFileError(src, "<yaml>", f"is not valid YAML: {e}") from None
    if not is_rules_doc(doc):
        raise DetectorFileError(src, "rules", "is required: pass a gitleaks config (.toml), a Nosey Parker rules file "
                                "(rules: [...]) or a directory of Nosey Parker rules files or auditor detector files")
    return noseyparker(doc, src)
