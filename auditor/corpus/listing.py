"""A corpus file → the repositories to audit: one local path or git URL per line.

Blank lines and ``#`` comments are ignored, surrounding whitespace is stripped, ``-`` reads standard input.
Relative paths are taken from the corpus file's directory (from the working directory for stdin and for REPO
arguments). A repository named twice (the same URL, the same directory, or a work tree and its ``.git``) is
scanned once. A line that is no path and no URL stops the run before any work, naming the line.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from auditor.errors import UsageError
from auditor.git import mirror

_URL = re.compile(r"^(?:https?|git|ssh|file)://\S+$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One repository of a corpus."""

    source: str  # an absolute local path, or a URL
    name: str  # as outputs name it: the line as written (a URL without its password)
    also_named: tuple[str, ...] = field(default=())  # other lines naming the same repository


def _identity(source: str) -> str:
    if mirror.is_remote(source):
        return source.rstrip("/").removesuffix(".git")
    real = os.path.realpath(source)
    if os.path.basename(real) == ".git" and os.path.isdir(real):
        real = os.path.dirname(real)  # a work tree and its .git are one repository
    return real


def parse(text: str, base: Path, origin: str) -> list[tuple[int, str]]:
    """(line number, repository) for every line that names one; a line that cannot name one is an error."""
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "://" in line and not _URL.match(line):
            raise UsageError(f"{origin}, line {number}: {mirror.display(line)!r} is not a URL auditor can fetch "
                             "(use https://, ssh://, git:// or file://) nor a path; fix or remove that line.")
        if not mirror.is_remote(line):
            if any(c.isspace() for c in line) or any(ord(c) < 32 for c in line):
                raise UsageError(f"{origin}, line {number}: {line!r} is neither a path nor a URL (one repository "
                                 "per line, # for comments); fix or remove that line.")
            line = str((base / line).absolute()) if not os.path.isabs(line) else line
        out.append((number, line))
    return out


def read(corpus: str | None, repos: list[str]) -> list[Entry]:
    """The corpus file's repositories (``-``: stdin), then the REPO arguments, each repository once."""
    listed: list[tuple[int, str]] = []
    if corpus is not None:
        if corpus == "-":
            listed = parse(sys.stdin.read(), Path.cwd(), "standard input")
        else:
            path = Path(corpus)
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise UsageError(f"{corpus}: no such corpus file; pass a text file with one repository path or URL "
                                 "per line (or - for standard input).") from None
            except (OSError, UnicodeDecodeError) as e:
                raise UsageError(f"{corpus}: cannot read the corpus file ({e}); it must be UTF-8 text, one "
                                 "repository per line.") from None
            listed = parse(text, path.parent, corpus)
    for arg in repos:
        listed.append((0, arg if mirror.is_remote(arg) else str(Path(arg).absolute())))
    if not listed:
        raise UsageError(f"{corpus}: the corpus names no repository (only blank lines or # comments); add one path "
                         "or URL per line.")
    entries: dict[str, Entry] = {}
    for _, source in listed:
        key = _identity(source)
        name = mirror.display(source)
        if key in entries:
            e = entries[key]
            entries[key] = Entry(source=e.source, name=e.name, also_named=(*e.also_named, name))
        else:
            entries[key] = Entry(source=source, name=name)
    return list(entries.values())
