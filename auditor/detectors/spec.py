"""YAML detector files → frozen Detector values; every problem names the file and the field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import regex

from auditor.errors import DetectorFileError
from auditor.models import Validity

BUILTIN = "auditor.detectors.builtin"


@dataclass(frozen=True, slots=True, kw_only=True)
class FilenameBanlist:
    banlist_extensions: tuple[str, ...] = ()
    banlist_filenames: tuple[str, ...] = ()
    check_binaries: bool = False
    banlist_paths: tuple[str, ...] = ()  # searched in the whole path (a gitleaks allowlist's ``paths``)
    only_paths: tuple[str, ...] = ()  # when given, one must find something in the whole path (a gitleaks rule's path)


@dataclass(frozen=True, slots=True, kw_only=True)
class Allowlist:
    """A gitleaks allowlist as far as a blob tells (detectors.catalogs): a value is dropped when one of ``regexes``
    finds something in its ``target`` (``secret``, the whole ``match``, or its ``line``), or when it contains one of
    ``stopwords`` (any case)."""

    regexes: tuple[str, ...] = ()
    target: str = "secret"
    stopwords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentWhitelist:
    patterns: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Matcher:
    name: str
    pattern: str  # group 1, if any, is the body placeholders are judged on; the whole match is the value
    # Another tool's rule (detectors.catalogs): the value is this group instead (0: the first non-empty group, else
    # the whole match), as gitleaks' secretGroup and Nosey Parker's groups say.
    secret_group: int | None = None
    min_entropy: float | None = None  # gitleaks' entropy: a value whose Shannon entropy is at most this is dropped
    allowlists: tuple[Allowlist, ...] = ()  # gitleaks' allowlists (the rule's and the global ones)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pairing:
    keywords: tuple[str, ...] = ()
    min_distinct_chars: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Differs:
    """A kept flag: whether the JSON value at ``key`` differs from ``other`` ("{client_id}" is substituted); None when
    the key is absent or not a string (e.g. Twilio's ``owner_account_sid`` ≠ ``sid``: a subaccount)."""

    key: str
    other: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseRule:
    """One row of the validity check's decision table; the first rule that fits a response wins.

    ``validity: failed_to_check`` is a final answer that is no answer (the provider's own "not found": asking again
    gives the same), so it is not retried. ``ask_other_regions``: this answer is also what a credential of another
    region gets on this host; with regions listed, their hosts are asked next (``Check.regional_bases``).
    """

    status: int
    validity: Validity
    json: Mapping[str, Any] | None = None  # every key (dotted: nested, ``meta.key``) must equal ("{client_id}" is
    # substituted)
    scope: str | None = None
    keep: Mapping[str, str | Differs] = field(default_factory=dict)  # finding field → JSON key (or a Differs test)
    ask_other_regions: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    method: str
    url: str
    base: str
    base_env: str | None
    auth: str
    responses: tuple[ResponseRule, ...]
    base_region: str | None = None  # the provider's region ``base`` serves (Twilio: us1)
    regional_bases: Mapping[str, str] = field(default_factory=dict)  # region → its API base, asked only when listed
    throttle_per_client: Mapping[str, Any] | None = None  # a 429 whose JSON body has these keys limits one client_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Example:
    text: str
    client_id: str | None = None
    client_secret: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Detector:
    id: str
    name: str
    category: str
    company: str
    high_recall: bool
    validity_check_available: bool
    only_valid_secrets_raise_alert: bool
    minimum_number_of_matches: int
    prefixed: bool
    filename_banlist: FilenameBanlist | None
    content_whitelist: ContentWhitelist | None
    matchers: tuple[Matcher, ...]
    pairing: Pairing
    check: Check | None
    examples: tuple[Example, ...]
    negative_examples: tuple[Example, ...]
    reference_occurrences_per_million_commits: float | None = None
    source: str = ""


def _get(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], src: object, *, prefix: str = "",
         default: Any = ...) -> Any:
    if key not in doc:
        if default is ...:
            raise DetectorFileError(src, prefix + key, "is required")
        return default
    value = doc[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DetectorFileError(src, prefix + key, f"must be {names}, got {type(value).__name__}")
    return value


def _pattern(value: Any, src: object, where: str) -> str:
    if not isinstance(value, str):
        raise DetectorFileError(src, where, "must be a regular expression string")
    try:
        regex.compile(value)
    except regex.error as e:
        raise DetectorFileError(src, where, f"is not a valid regular expression: {e}") from None
    return value


def _patterns(values: Any, src: object, where: str) -> tuple[str, ...]:
    if not isinstance(values, list):
        raise DetectorFileError(src, where, "must be a list of regular expressions")
    return tuple(_pattern(v, src, f"{where}[{i}]") for i, v in enumerate(values))


RULE_VALIDITIES = (Validity.VALID, Validity.INVALID, Validity.FAILED_TO_CHECK)
REGION = regex.compile(r"[a-z]{2}[0-9]{1,2}")  # Twilio's region names: us1, ie1, au1, jp2…


def _keep(doc: Mapping[str, Any], src: object, where: str) -> dict[str, str | Differs]:
    out: dict[str, str | Differs] = {}
    for name, value in _get(doc, "keep", dict, src, prefix=where, default={}).items():
        if isinstance(value, str):
            out[name] = value
        elif isinstance(value, dict) and set(value) == {"key", "differs_from"} and all(
                isinstance(v, str) for v in value.values()):
            out[name] = Differs(key=value["key"], other=value["differs_from"])
        else:
            raise DetectorFileError(src, f"{where}keep.{name}", "must be a JSON key, or {key: KEY, differs_from: "
                                    "VALUE} (a flag: the value at KEY is not VALUE)")
    return out


def _regional_bases(doc: Mapping[str, Any], src: object, p: str) -> dict[str, str]:
    bases = _get(doc, "regional_bases", dict, src, prefix=p, default={})
    for region, url in bases.items():
        if not (isinstance(region, str) and REGION.fullmatch(region)):
            raise DetectorFileError(src, f"{p}regional_bases", f"{region!r} is not a region name (e.g. ie1)")
        if not (isinstance(url, str) and regex.match(r"https?://[^/\s]+", url)):
            raise DetectorFileError(src, f"{p}regional_bases.{region}", "must be an http(s) URL")
    return {region: url.rstrip("/") for region, url in bases.items()}


def _check(doc: Mapping[str, Any], src: object) -> Check:
    p = "check."
    rules = []
    for i, r in enumerate(_get(doc, "responses", list, src, prefix=p)):
        where = f"{p}responses[{i}]."
        if not isinstance(r, dict):
            raise DetectorFileError(src, where[:-1], "must be a mapping")
        raw = _get(r, "validity", str, src, prefix=where)
        if raw not in RULE_VALIDITIES:
            raise DetectorFileError(src, where + "validity", "must be valid, invalid or failed_to_check (a final "
                                    f"answer that is no answer: not retried), got {raw!r}")
        rules.append(ResponseRule(status=_get(r, "status", int, src, prefix=where), validity=Validity(raw),
                                  json=_get(r, "json", dict, src, prefix=where, default=None),
                                  scope=_get(r, "scope", str, src, prefix=where, default=None),
                                  keep=_keep(r, src, where),
                                  ask_other_regions=_get(r, "ask_other_regions", bool, src, prefix=where,
                                                         default=False)))
    auth = _get(doc, "auth", str, src, prefix=p, default="basic")
    if auth != "basic":
        raise DetectorFileError(src, p + "auth", f"only 'basic' is supported, got {auth!r}")
    base_region = _get(doc, "base_region", str, src, prefix=p, default=None)
    if base_region is not None and not REGION.fullmatch(base_region):
        raise DetectorFileError(src, p + "base_region", f"{base_region!r} is not a region name (e.g. us1)")
    return Check(method=_get(doc, "method", str, src, prefix=p, default="GET"),
                 url=_get(doc, "url", str, src, prefix=p), base=_get(doc, "base", str, src, prefix=p),
                 base_env=_get(doc, "base_env", str, src, prefix=p, default=None), auth=auth,
                 responses=tuple(rules), base_region=base_region, regional_bases=_regional_bases(doc, src, p),
                 throttle_per_client=_get(doc, "throttle_per_client", dict, src, prefix=p, default=None))


def _examples(doc: Mapping[str, Any], key: str, src: object) -> tuple[Example, ...]:
    out = []
    for i, e in enumerate(_get(doc, key, list, src, default=[])):
        where = f"{key}[{i}]."
        if not isinstance(e, dict):
            raise DetectorFileError(src, where[:-1], "must be a mapping with 'text'")
        out.append(Example(text=_get(e, "text", str, src, prefix=where),
                           client_id=_get(e, "client_id", str, src, prefix=where, default=None),
                           client_secret=_get(e, "client_secret", str, src, prefix=where, default=None)))
    return tuple(out)


def parse_detector(doc: Any, src: object) -> Detector:
    """One YAML document → Detector; raises DetectorFileError naming ``src`` and the field."""
    if not isinstance(doc, dict):
        raise DetectorFileError(src, "<top level>", "must be a mapping of detector fields")
    banlist = whitelist = None
    for i, pv in enumerate(_get(doc, "pre_validators", list, src, default=[])):
        where = f"pre_validators[{i}]."
        if not isinstance(pv, dict):
            raise DetectorFileError(src, where[:-1], "must be a mapping with 'type'")
        kind = _get(pv, "type", str, src, prefix=where)
        if kind == "FilenameBanlistPreValidator":
            banlist = FilenameBanlist(
                banlist_extensions=_patterns(pv.get("banlist_extensions", []), src, where + "banlist_extensions"),
                banlist_filenames=_patterns(pv.get("banlist_filenames", []), src, where + "banlist_filenames"),
                check_binaries=_get(pv, "check_binaries", bool, src, prefix=where, default=False))
        elif kind == "ContentWhitelistPreValidator":
            whitelist = ContentWhitelist(patterns=_patterns(_get(pv, "patterns", list, src, prefix=where), src,
                                                            where + "patterns"))
        else:
            raise DetectorFileError(src, where + "type", f"unknown pre-validator {kind!r}; expected "
                                    "FilenameBanlistPreValidator or ContentWhitelistPreValidator")
    matchers_doc = _get(doc, "matchers", dict, src)
    matchers = []
    for name, m in matchers_doc.items():
        if name not in ("client_id", "client_secret"):
            raise DetectorFileError(src, f"matchers.{name}", "matchers are named client_id and client_secret")
        if not isinstance(m, dict):
            raise DetectorFileError(src, f"matchers.{name}", "must be a mapping with 'pattern'")
        matchers.append(Matcher(name=name, pattern=_pattern(m.get("pattern"), src, f"matchers.{name}.pattern")))
    if "client_secret" not in matchers_doc:
        raise DetectorFileError(src, "matchers.client_secret", "is required")
    minimum = _get(doc, "minimum_number_of_matches", int, src)
    if minimum != len(matchers):
        raise DetectorFileError(src, "minimum_number_of_matches",
                                f"is {minimum} but {len(matchers)} matcher(s) are declared")
    pairing = _get(doc, "pairing", dict, src, default={})
    placeholders = _get(pairing, "placeholders", dict, src, prefix="pairing.", default={})
    check_doc = doc.get("check")
    validity_check = _get(doc, "validity_check_available", bool, src)
    if validity_check and not isinstance(check_doc, dict):
        raise DetectorFileError(src, "check", "is required (a mapping) when validity_check_available is true")
    detector = Detector(
        id=_get(doc, "id", str, src), name=_get(doc, "name", str, src), category=_get(doc, "category", str, src),
        company=_get(doc, "company", str, src), high_recall=_get(doc, "high_recall", bool, src),
        validity_check_available=validity_check,
        only_valid_secrets_raise_alert=_get(doc, "only_valid_secrets_raise_alert", bool, src),
        minimum_number_of_matches=minimum, prefixed=_get(doc, "prefixed", bool, src),
        filename_banlist=banlist, content_whitelist=whitelist, matchers=tuple(matchers),
        pairing=Pairing(keywords=tuple(_get(pairing, "keywords", list, src, prefix="pairing.", default=[])),
                        min_distinct_chars=_get(placeholders, "min_distinct_chars", int, src,
                                                prefix="pairing.placeholders.", default=0)),
        check=_check(check_doc, src) if validity_check else None,
        examples=_examples(doc, "examples", src), negative_examples=_examples(doc, "negative_examples", src),
        reference_occurrences_per_million_commits=_get(doc, "reference_occurrences_per_million_commits",
                                                       (int, float), src, default=None),
        source=str(src))
    if not detector.examples:
        raise DetectorFileError(src, "examples", "at least one example is required")
    return detector


def _load_doc(text: str, src: object) -> Any:
    import yaml  # here: detection workers get Detector values, never files, and need no YAML parser

    try:
        return safe_yaml(text)
    except yaml.YAMLError as e:
        raise DetectorFileError(src, "<yaml>", f"is not valid YAML: {e}") from None


def safe_yaml(text: str) -> Any:
    """``yaml.safe_load``, through libyaml where PyYAML was built with it (7x faster: every scan loads the built-in
    detectors before it starts)."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader


def detector_files(extra_dir: Path | None = None) -> list[tuple[str | Path, Any]]:
    """(name every message gives it, file) of each detector file in load order: the built-in ones, then every
    ``*.yaml``/``*.yml`` of ``extra_dir`` (auditor's own detector files or Nosey Parker rules files); a later file's
    detector replaces an earlier one of the same id."""
    files: list[tuple[str | Path, Any]] = [
        (f"builtin/{entry.name}", entry) for entry in sorted(resources.files(BUILTIN).iterdir(), key=lambda e: e.name)
        if entry.name.endswith((".yaml", ".yml"))]
    if extra_dir is not None:
        if not extra_dir.is_dir():
            raise DetectorFileError(extra_dir, "--detectors", "is neither a directory of detector YAML files nor a "
                                    "gitleaks config or Nosey Parker rules file")
        files += [(path, path) for path in sorted(extra_dir.iterdir()) if path.suffix in (".yaml", ".yml")]
    return files


def load_detectors(extra: Path | None = None) -> tuple[Detector, ...]:
    """The built-in detectors, plus every ``*.yaml``/``*.yml`` of the directory ``extra`` (a user's own detector files
    or Nosey Parker rules files) — or, when ``extra`` is a file, the rules of a gitleaks config or a Nosey Parker
    rules file (``load_with_notes`` also says what of them is not honoured)."""
    return load_with_notes(extra)[0]


def load_with_notes(extra: Path | None = None) -> tuple[tuple[Detector, ...], list[str]]:
    from auditor.detectors import catalogs

    found: dict[str, Detector] = {}
    notes: list[str] = []
    rule_source: dict[str, str] = {}  # a catalog rule's id → the file that gave it (two files, one id: an error)

    def add_rules(rules: list[Detector], said: list[str], src: str) -> None:
        notes.extend(said)
        for d in rules:
            if (earlier := rule_source.setdefault(d.id, src)) != src:
                raise DetectorFileError(src, "rules", f"rule {d.id!r} has the id of a rule of {earlier}: a scan "
                                        "would keep only one of them; give each rule its own id")
            if d.id in found:
                notes.append(f"{src}: rule {d.id}: replaces the detector of the same id")
            found[d.id] = d

    catalog = extra is not None and extra.is_file()
    for src, file in detector_files(None if catalog else extra):
        doc = _load_doc(file.read_text(encoding="utf-8"), src)
        if isinstance(src, Path) and catalogs.is_rules_doc(doc):  # a Nosey Parker rules file in the directory
            add_rules(*catalogs.noseyparker(doc, str(src)), str(src))
            continue
        d = parse_detector(doc, src)
        found[d.id] = d  # a user's detector may replace a built-in one of the same id (`auditor detectors check`)
    if catalog:
        assert extra is not None
        add_rules(*catalogs.load(extra), str(extra))
    return tuple(found.values()), notes
