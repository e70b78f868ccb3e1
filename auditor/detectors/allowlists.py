"""gitleaks allowlists (a rule's ``allowlists``/``allowlist``, the config's ``[allowlist]``/``[[allowlists]]``) →
what a scan applies of them, and a note for the rest — never dropped silently.

Applied, as gitleaks applies them: ``regexes`` on a found value's ``regexTarget`` (the secret, the whole match or its
line) and ``stopwords`` in the secret (any case) drop that value; ``paths`` drop the file for the rule (a path
banlist). Not applied: ``commits`` (detection reads blobs, not commits), and a ``condition = "AND"`` allowlist that
needs a path or a commit besides a value test (the value alone cannot tell). Not applying one reports more than
gitleaks, never less.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import regex

from auditor.detectors.spec import Allowlist

TARGETS = ("secret", "match", "line")


def _compiling(patterns: Iterable[Any], about: str, notes: list[str]) -> tuple[str, ...]:
    kept = []
    for p in patterns:
        try:
            regex.compile(str(p).encode())
        except (regex.error, UnicodeEncodeError) as e:
            notes.append(f"{about}: allowlist regex {p!r} does not compile here ({e}): not applied")
            continue
        kept.append(str(p))
    return tuple(kept)


def read(tables: Iterable[Any], about: str) -> tuple[tuple[Allowlist, ...], tuple[str, ...], list[str]]:
    """(value allowlists, path regexes to ban, notes) of gitleaks allowlist tables; ``about`` names them in notes."""
    values: list[Allowlist] = []
    paths: list[str] = []
    notes: list[str] = []
    for table in tables:
        if not isinstance(table, Mapping):
            notes.append(f"{about}: an allowlist that is not a table: not applied")
            continue
        if table.get("commits"):
            notes.append(f"{about}: allowlist commits are not applied (detection reads blobs, not commits)")
        condition = str(table.get("condition", "OR")).upper()
        target = str(table.get("regexTarget", "secret"))
        regexes = _compiling(table.get("regexes") or (), about, notes)
        stopwords = tuple(str(w) for w in table.get("stopwords") or ())
        table_paths = _compiling(table.get("paths") or (), about, notes)
        if target not in TARGETS:
            notes.append(f"{about}: allowlist regexTarget {target!r} is not one of {', '.join(TARGETS)}: its regexes "
                         "are not applied")
            regexes = ()
        if condition == "AND" and (table_paths or table.get("commits")) and (regexes or stopwords):
            notes.append(f"{about}: an allowlist with condition AND on a path or commit and a value is not applied "
                         "(the value alone cannot tell)")
            continue
        if condition == "AND" and table_paths and table.get("commits"):
            continue  # said above: the commit half cannot be judged
        if regexes or stopwords:
            values.append(Allowlist(regexes=regexes, target=target, stopwords=stopwords))
        paths += table_paths
    return tuple(values), tuple(paths), notes


def global_tables(doc: Mapping[str, Any]) -> list[Any]:
    """The config-wide allowlist tables, old (``[allowlist]``) and new (``[[allowlists]]``) style."""
    tables = [doc["allowlist"]] if isinstance(doc.get("allowlist"), Mapping) else []
    return tables + [t for t in doc.get("allowlists") or () if isinstance(doc.get("allowlists"), list)]
