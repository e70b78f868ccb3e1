"""Many rules at the cost of one pass: detectors → the literals any match of each needs → one Aho-Corasick automaton
that says, per blob, which detectors can match at all (the rest are not run).

A detector's literals come from what it already says, never from a guess: its content gate (a gitleaks rule's
``keywords`` are such a gate) and its anchor matcher (the client_id, else the secret), each pattern read by the
standard library's regular-expression parser. The literals of a pattern are a set of byte strings one of which every
match contains; they are lower-cased and looked for in the lower-cased blob (ASCII case folding on both sides, so a
case-insensitive pattern loses nothing). A pattern the parser reads differently from the ``regex`` module (any
warning, any error), or one with no literal of at least ``MIN_LITERAL`` bytes on every path, gives no literals: its
detector runs on every blob, and ``detectors check`` says so.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import ahocorasick_rs

try:  # the standard library's parser: re._parser since 3.11
    from re import _constants as C  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python < 3.11 is not supported by the package anyway
    import sre_constants as C  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

Literals = frozenset[bytes]

MIN_LITERAL = 2  # shorter literals are in nearly every blob: they would cost the pass and gate nothing
CLASS_MAX = 4  # a class of at most this many literal characters leads as that many alternatives (``leading``)
MAX_ALTERNATIVES = 64  # a longer list of alternatives (e.g. a keyword per country code) is not worth its automaton
# Below this many gated detectors one automaton pass over the lowered blob costs more than it saves: each detector's
# own anchor search (a literal-led regex, ~GB/s) is the cheaper gate (bench/catalog.py measures the pass).
PREFILTER_MIN = 4

_REPEATS = {C.MAX_REPEAT, C.MIN_REPEAT, *(getattr(C, "POSSESSIVE_REPEAT", None),)} - {None}
_GROUPS = {C.SUBPATTERN, *(getattr(C, "ATOMIC_GROUP", None),)} - {None}


def _score(lits: Literals | None) -> tuple[int, int]:
    """Higher is a better gate: the shortest literal's length, then fewer alternatives."""
    if not lits or len(lits) > MAX_ALTERNATIVES:
        return (0, 0)
    return (min(len(x) for x in lits), -len(lits))


def _better(a: Literals | None, b: Literals | None) -> Literals | None:
    return b if _score(b) > _score(a) else a


def _letter(items: Any) -> bytes | None:
    """``[Aa]``: one ASCII letter in both cases, a literal once lower-cased."""
    if len(items) != 2 or any(op is not C.LITERAL for op, _ in items):
        return None
    a, b = (chr(v) for _, v in items)
    return a.lower().encode() if a != b and a.isascii() and a.lower() == b.lower() else None


def _flat(items: Iterable[Any]) -> Iterable[Any]:
    """A group's items inline: a group matches its content contiguously, so literals run across its edges."""
    for op, av in items:
        if op in _GROUPS:
            yield from _flat(av[-1].data if op is C.SUBPATTERN else av.data)
        else:
            yield op, av


def _words(alternatives: Any) -> list[bytes] | None:
    """Each alternative of a branch as one literal, when every one of them is only literals."""
    words = []
    for a in alternatives:
        word = bytearray()
        for op, av in _flat(a.data):
            letter = _letter(av) if op is C.IN else None
            if op is not C.LITERAL and letter is None:
                return None
            word += letter if letter is not None else bytes([av]).lower()
        words.append(bytes(word))
    return words


def _sequence(items: Iterable[Any]) -> Literals | None:
    """Literals one of which every match of this sequence contains (None: none known)."""
    best: Literals | None = None
    run = bytearray()
    for op, av in _flat(items):
        letter = _letter(av) if op is C.IN else None
        if op is C.LITERAL or letter is not None:
            run += letter if letter is not None else bytes([av]).lower()
            continue
        if run and op is C.BRANCH and (words := _words(av[1])):
            # the parser factors a common prefix out of alternatives (messagebird|message_bird → message(bird|_bird)):
            # put it back, each alternative is the longer literal
            best, run = _better(best, frozenset(bytes(run) + w for w in words)), bytearray()
            continue
        if run:
            best, run = _better(best, frozenset({bytes(run)})), bytearray()
        if op in _REPEATS and av[0] >= 1:  # (min, max, item): at least once, so its literals are needed
            best = _better(best, _sequence(av[2].data))
        elif op is C.BRANCH:  # every alternative needs its own: together, one of them is needed
            alternatives = [_sequence(a.data) for a in av[1]]
            if all(alternatives):
                best = _better(best, frozenset().union(*alternatives))  # type: ignore[arg-type]
        # anything else (a class, any char, an anchor, a lookaround, a back-reference) ends the literal
    if run:
        best = _better(best, frozenset({bytes(run)}))
    return best


# A case-insensitive flag after the start: the ``regex`` module applies it from there on (gitleaks' authress rule,
# ``…_(?i)[a-z0-9]…``), the standard parser refuses it. Literals are lower-cased and looked for in the lowered blob
# whatever a pattern's case flags, so it is dropped for reading them (only that exact flag, not escaped).
_LATE_I = re.compile(r"(?<=[^\\])\(\?i\)")


def _parse(pattern: str) -> Any:
    """The standard parser's reading of ``pattern`` as bytes (as the engine compiles it: "\\xe9" is one byte), or
    None where it reads it differently from the ``regex`` module (any warning) or not at all."""
    for text in (pattern, _LATE_I.sub("", pattern) if _LATE_I.search(pattern) else None):
        if text is None:
            break
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # e.g. "possible nested set": regex reads [[:alpha:]] as a class
                return sre_parse.parse(text.encode())
        except (re.error, Warning, RecursionError, OverflowError, ValueError, UnicodeEncodeError):
            continue
    return None


def literals(pattern: str) -> Literals | None:
    """The lower-cased literals one of which every match of ``pattern`` contains; None when unknown (the pattern
    is read differently, or not at all, by the standard parser) or too weak to gate anything."""
    parsed = _parse(pattern)
    if parsed is None:
        return None
    found = _sequence(parsed.data)
    return found if _score(found)[0] >= MIN_LITERAL else None


def _chars(items: Any) -> list[bytes] | None:
    """A class of at most CLASS_MAX literal characters (``["']``, ``[Aa]``): its lower-cased bytes, else None."""
    if not items or any(op is not C.LITERAL for op, _ in items):
        return None
    chars = sorted({bytes([v]).lower() for _, v in items})
    return chars if len(chars) <= CLASS_MAX else None


def _leading(items: list[Any]) -> Literals | None:
    """Literals one of which every match *starts* with (zero-width anchors before it aside); None: unknown.
    A small class of literal characters is as many alternatives (``["']secret`` starts with ``"secret`` or
    ``'secret``)."""
    runs = [b""]
    for op, av in items:
        chars = [bytes([av]).lower()] if op is C.LITERAL else _chars(av) if op is C.IN else None
        if chars is not None and len(runs) * len(chars) <= MAX_ALTERNATIVES:
            runs = [r + c for r in runs for c in chars]
            continue
        if op is C.BRANCH and (words := _words(av[1])) and len(runs) * len(words) <= MAX_ALTERNATIVES:
            runs = [r + w for r in runs for w in words]  # alternatives of literals (a prefix the parser factored out
            continue  # of them is put back: messagebird|message_bird → message(bird|_bird))
        if runs != [b""]:
            break
        if op is C.AT:
            continue  # \b, ^: they consume nothing
        if op in _REPEATS and av[0] >= 1:
            return _leading(list(_flat(av[2].data)))
        if op is C.BRANCH:
            alternatives = [_leading(list(_flat(a.data))) for a in av[1]]
            return frozenset().union(*alternatives) if all(alternatives) else None  # type: ignore[arg-type]
        return None
    return frozenset(runs) if runs != [b""] else None


def leading(pattern: str) -> Literals | None:
    """Lower-cased literals one of which every match of ``pattern`` starts with, when the ``regex`` module cannot find
    them fast itself (several alternatives, or one under a global ``(?i)``: it tries every byte; one case-sensitive
    literal it finds faster than this, bench/catalog.py): then a match is tried only where one of them occurs in
    the lowered blob. None otherwise."""
    parsed = _parse(pattern)
    if parsed is None:
        return None
    found = _leading(list(_flat(parsed.data)))
    if _score(found)[0] < MIN_LITERAL:
        return None
    assert found is not None
    return found if len(found) > 1 or parsed.state.flags & re.IGNORECASE else None


# The last blob a prefilter looked at (the lowered bytes themselves, compared by identity), the automaton's matches
# in it and its words' indexes: the windowed matchers that run next on that blob look their starts up here.
_last: tuple[bytes, list[tuple[int, int, int]], dict[bytes, int]] | None = None


def starts(lowered: bytes, literals: Literals) -> list[int]:
    """Every offset of ``lowered`` where one of ``literals`` begins, in order: from the prefilter's own pass over
    this very blob when its automaton holds them all (a windowed rule's leading literals are mostly its gate's),
    else one automaton pass (in C; a ``bytes.find`` loop per literal cost more than the matches it saved where a
    keyword is frequent)."""
    seen = _last
    if seen is not None and seen[0] is lowered:
        index = seen[2]
        wanted = {index[w] for w in literals if w in index}
        if len(wanted) == len(literals):
            return sorted({start for w, start, _ in seen[1] if w in wanted})
    found = {start for _, start, _ in _automaton(literals).find_matches_as_indexes(lowered, overlapping=True)}
    return sorted(found)


@functools.lru_cache(maxsize=256)
def _automaton(literals: Literals) -> ahocorasick_rs.BytesAhoCorasick:
    return ahocorasick_rs.BytesAhoCorasick(sorted(literals), implementation=ahocorasick_rs.Implementation.DFA)


def required(patterns: Sequence[str]) -> Literals | None:
    """The best gate among patterns that must *all* match (a content gate's and the anchor's)."""
    best: Literals | None = None
    for p in patterns:
        best = _better(best, literals(p))
    return best


class Prefilter:
    """Which of a run's detectors can match a blob, from one automaton pass over its lower-cased bytes."""

    def __init__(self, gates: Sequence[Literals | None]) -> None:
        self.size = len(gates)
        self.always = [i for i, g in enumerate(gates) if g is None]
        self.active = sum(g is not None for g in gates) >= PREFILTER_MIN
        words = sorted({w for g in gates if g is not None for w in g})
        self._index = {w: i for i, w in enumerate(words)}
        self._owners: list[list[int]] = [[i for i, g in enumerate(gates) if g is not None and w in g] for w in words]
        # a DFA: twice the speed of the default (contiguous NFA) on source files, for a few hundred keywords' memory
        self._automaton = (ahocorasick_rs.BytesAhoCorasick(words, implementation=ahocorasick_rs.Implementation.DFA)
                           if self.active and words else None)

    def select(self, lowered: bytes) -> list[int]:
        """Indexes (in order) of the detectors to run on a blob whose lower-cased content is ``lowered``."""
        if self._automaton is None:
            return list(range(self.size))
        global _last
        matches = self._automaton.find_matches_as_indexes(lowered, overlapping=True)
        _last = (lowered, matches, self._index)  # where each word is: ``starts`` on this blob reads it from here
        hit = {w for w, _, _ in matches}
        chosen = set(self.always)
        for w in hit:
            chosen.update(self._owners[w])
        return sorted(chosen)
