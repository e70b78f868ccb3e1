"""Pure detection: a blob's bytes → ranked Candidates, and a path → whether a detector looks at it. No I/O."""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import ahocorasick_rs
import regex

from auditor.detectors import prefilter
from auditor.detectors.spec import Allowlist, Detector
from auditor.models import Candidate, Pair

try:  # the standard library's parser (as in prefilter): re._parser since 3.11
    from re import _constants as C  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python < 3.11 is not supported by the package anyway
    import sre_constants as C  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

_NEWLINE = regex.compile(rb"\n")
BINARY_PROBE = 8000  # git's rule: a NUL in the first 8000 bytes makes a blob binary
# Matches of one matcher kept per blob: a catalog rule matching every line of a big file must not stall a scan (its
# candidates, their lines and pairs grow with them). A blob that reaches it is named in ``detect(..., bounded=)``.
MAX_MATCHES = 4096


def is_binary(data: bytes) -> bool:
    return b"\0" in data[:BINARY_PROBE]


def extension(name: bytes) -> str:
    """Text after the last '.' of the basename, lower-cased ('' when there is none)."""
    base = name.rsplit(b"/", 1)[-1]
    dot = base.rfind(b".")
    return base[dot + 1:].decode("utf-8", "replace").lower() if dot >= 0 else ""


def entropy(value: bytes) -> float:
    """Shannon entropy in bits per character, as gitleaks computes it (``shannonEntropy``)."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


class _Allowed:
    """A matcher's allowlists, compiled: whether a found value is one they drop."""

    def __init__(self, allowlists: tuple[Allowlist, ...]) -> None:
        self._lists = [(a.target, [regex.compile(r.encode()) for r in a.regexes],
                        [w.lower().encode() for w in a.stopwords]) for a in allowlists]

    def drops(self, data: bytes, m: regex.Match[bytes], group: int) -> bool:
        secret = m.group(group)
        for target, patterns, stopwords in self._lists:
            if patterns:
                if target == "match":
                    text = m.group(0)
                elif target == "line":
                    text = data[data.rfind(b"\n", 0, m.start()) + 1:_line_end(data, m.end())]
                else:
                    text = secret
                if any(p.search(text) for p in patterns):
                    return True
            if stopwords:
                lowered = secret.lower()
                if any(w in lowered for w in stopwords):
                    return True
        return False


def _line_end(data: bytes, pos: int) -> int:
    end = data.find(b"\n", pos)
    return len(data) if end < 0 else end


def is_placeholder(body: bytes, min_distinct: int) -> bool:
    """Fewer than ``min_distinct`` distinct characters, or a repeated unit ('abcdabcd…')."""
    if len(set(body)) < min_distinct:
        return True
    n = len(body)
    return any(n % k == 0 and body == body[:k] * (n // k) for k in range(1, n // 2 + 1))


class CompiledDetector:
    """A Detector with its patterns compiled once per process."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.id = detector.id
        ban = detector.filename_banlist
        self._ban_ext = [regex.compile(p, regex.IGNORECASE) for p in (ban.banlist_extensions if ban else ())]
        self._ban_name = [regex.compile(p) for p in (ban.banlist_filenames if ban else ())]
        self._ban_path = [regex.compile(p) for p in (ban.banlist_paths if ban else ())]
        self._only_path = [regex.compile(p) for p in (ban.only_paths if ban else ())]
        self.check_binaries = bool(ban and ban.check_binaries)
        wl = detector.content_whitelist
        # Case-insensitive gate: a pattern without capitals runs case-sensitively on the lower-cased blob, which
        # is the same test (ASCII folding either way) and 1.5× faster than IGNORECASE on large histories.
        self._whitelist = [(regex.compile(p.encode()), True) if p == p.lower() else
                           (regex.compile(p.encode(), regex.IGNORECASE), False) for p in (wl.patterns if wl else ())]
        self._matchers = {m.name: regex.compile(m.pattern.encode()) for m in detector.matchers}
        self._groups = {m.name: m.secret_group for m in detector.matchers}
        self._min_entropy = {m.name: m.min_entropy for m in detector.matchers if m.min_entropy is not None}
        self._allowed = {m.name: _Allowed(m.allowlists) for m in detector.matchers if m.allowlists}
        # No candidate without a match of this one (the client_id of a pair, else the secret): searched first,
        # on the raw bytes, it turns most blobs away at ~2.8 GiB/s, before the gate lower-cases anything.
        self._anchor = self._matchers.get("client_id") or self._matchers.get("client_secret")
        # The bytes every anchor match starts with, case-sensitive (``\bAC…`` → ``AC``): one automaton pass for the
        # whole set's anchors, then a match tried only where they occur (``_AnchorGate``). None: no such literal.
        self.anchor_lead = _lead(self._anchor) if self._anchor is not None else None
        self._keywords = tuple(k.lower().encode() for k in detector.pairing.keywords)
        self._min_distinct = detector.pairing.min_distinct_chars
        self._ext_cache: dict[str, bool] = {}
        self.gates_lowered = any(on_lowered for _, on_lowered in self._whitelist)
        # What the prefilter looks for: literals one of which any candidate's blob holds (None: runs on every blob).
        anchor = next((m for m in detector.matchers if m.name == "client_id"), None) or next(
            (m for m in detector.matchers if m.name == "client_secret"), None)
        self.literals = prefilter.required([*(wl.patterns if wl else ()), *([anchor.pattern] if anchor else [])])
        # Matchers tried only where their leading literals occur (a generic `(?i)(?:key|token|…)…` rule)
        self._leading = {m.name: lead for m in detector.matchers if (lead := prefilter.leading(m.pattern))}

    def allows_filename(self, name: bytes) -> bool:
        """FilenameBanlist: False when the extension or the basename is banned."""
        ext = extension(name)
        allowed = self._ext_cache.get(ext)
        if allowed is None:
            allowed = self._ext_cache[ext] = not any(p.search(ext) for p in self._ban_ext)
        if allowed and self._ban_name:
            base = name.rsplit(b"/", 1)[-1].decode("utf-8", "replace")
            allowed = not any(p.search(base) for p in self._ban_name)
        if allowed and (self._ban_path or self._only_path):
            path = name.decode("utf-8", "replace")
            allowed = not any(p.search(path) for p in self._ban_path) and (
                not self._only_path or any(p.search(path) for p in self._only_path))
        return allowed

    def could_match(self, data: bytes, lowered: bytes | None = None) -> bool:
        """A necessary condition for any candidate: the anchor matcher finds something."""
        if self._anchor is None:
            return True
        name = "client_id" if "client_id" in self._matchers else "client_secret"
        return next(self._finditer(name, data, lowered), None) is not None

    def _finditer(self, name: str, data: bytes, lowered: bytes | None) -> Iterator[regex.Match[bytes]]:
        """``finditer`` of a matcher; with its leading literals and the lowered blob, tried only where they occur:
        the same matches (a match can start nowhere else; leftmost first, each after the previous one's end)."""
        pattern, lead = self._matchers[name], self._leading.get(name)
        if lead is None or lowered is None:
            yield from pattern.finditer(data)
            return
        end = 0
        for at in prefilter.starts(lowered, lead):
            if at >= end and (m := pattern.match(data, at)) is not None:
                yield m
                end = max(m.end(), at + 1)

    def wants(self, data: bytes, lowered: bytes | None = None) -> bool:
        """ContentWhitelist: a blob is matched only if every gate pattern finds something (case-insensitive)."""
        for pattern, on_lowered in self._whitelist:
            if on_lowered and lowered is None:
                lowered = data.lower()
            if not pattern.search(lowered if on_lowered else data):
                return False
        return True

    def _values(self, name: str, data: bytes, bounded: set[str] | None = None,
                lowered: bytes | None = None) -> dict[bytes, list[tuple[int, int]]]:
        """Distinct non-placeholder values of one matcher → their (start, end) spans, from its first MAX_MATCHES
        matches (this detector's id goes into ``bounded`` when there were more)."""
        out: dict[bytes, list[tuple[int, int]]] = {}
        pattern = self._matchers.get(name)
        if pattern is None:
            return out
        group = self._groups.get(name)
        floor, allowed = self._min_entropy.get(name), self._allowed.get(name)
        matches = self._finditer(name, data, lowered)
        for m in itertools.islice(matches, MAX_MATCHES):
            if group is not None:  # another tool's rule: the secret is a group (detectors.catalogs)
                g = group or next((i for i in range(1, pattern.groups + 1) if m.group(i)), 0)
                if not m.group(g):
                    continue
                if floor is not None and entropy(m.group(g)) <= floor:
                    continue
                if allowed is not None and allowed.drops(data, m, g):
                    continue
                out.setdefault(m.group(g), []).append(m.span(g))
                continue
            body = m.group(1) if pattern.groups else m.group(0)
            if self._min_distinct and is_placeholder(body, self._min_distinct):
                continue
            out.setdefault(m.group(0), []).append(m.span())
        if bounded is not None and next(matches, None) is not None:
            bounded.add(self.id)
        return out

    def _keyword_near(self, data: bytes, pos: int) -> bool:
        """A keyword on the value's own line or the line before it."""
        line_start = data.rfind(b"\n", 0, pos) + 1
        prev_start = data.rfind(b"\n", 0, max(line_start - 1, 0)) + 1 if line_start else 0
        line_end = data.find(b"\n", pos)
        window = data[prev_start:line_end if line_end >= 0 else len(data)].lower()
        return any(k in window for k in self._keywords)

    def candidates(self, data: bytes, blob: str, max_pairs: int, bounded: set[str] | None = None,
                   lowered: bytes | None = None) -> list[Candidate]:
        """Every client_id with its secrets ranked (keyword first, then nearest); at most ``max_pairs`` each."""
        secrets = self._values("client_secret", data, bounded, lowered)
        if not secrets:
            return []
        if "client_id" not in self._matchers:  # single-match detector: each secret stands alone
            at = _Lines(data)  # one newline index, not a count from the start per secret
            return [Candidate(detector=self.id, blob=blob, client_id="", pairs=(
                Pair(client_id="", client_secret=s.decode(), rank=0, line=at.of(p[0][0])),))
                for s, p in secrets.items()]
        ids = self._values("client_id", data, bounded, lowered)
        keyword = {s for s, spans in secrets.items() if any(self._keyword_near(data, p) for p, _ in spans)}
        # Occurrences sorted by position: each client_id looks only at the nearest few distinct secrets on each
        # side (plus every keyword secret), so a blob repeating values thousands of times stays linear.
        occurrences = sorted((start, end, sec) for sec, spans in secrets.items() for start, end in spans)
        starts = [o[0] for o in occurrences]
        need = max_pairs + 1  # one more: the client_id's own digits are never its secret
        lines = _Lines(data)
        out = []
        for cid, id_spans in ids.items():
            pairs_at = [(sec, ts, te, is_, ie) for is_, ie in id_spans[:256]
                        for ts, te, sec in _nearby(occurrences, starts, is_, need)]
            pairs_at += [(sec, ts, te, is_, ie) for sec in keyword
                         for ts, te in secrets[sec][:64] for is_, ie in id_spans[:64]]
            body = cid[-32:]
            best: dict[bytes, tuple[int, bool, int]] = {}  # secret → (gap in characters, before the id, id start)
            for sec, ts, te, is_, ie in pairs_at:
                # Characters between the two values (0 when adjacent); a secret after the id wins a tie.
                key = (max(ts - ie, is_ - te, 0), ts < is_, is_)
                if sec[-32:] != body and (sec not in best or key < best[sec]):
                    best[sec] = key
            ranked = sorted((sec not in keyword, *key, sec) for sec, key in best.items())[:max_pairs]
            line = lines.of(id_spans[0][0])  # where the client_id first appears
            pairs = tuple(Pair(client_id=cid.decode(), client_secret=sec.decode(), rank=r, line=line)
                          for r, (*_, sec) in enumerate(ranked))
            if pairs:
                out.append(Candidate(detector=self.id, blob=blob, client_id=cid.decode(), pairs=pairs))
        return out


def _lead(pattern: regex.Pattern[bytes]) -> bytes | None:
    """The literal (2 bytes or more, case-sensitive) every match of ``pattern`` starts with, zero-width assertions
    (``\b``, ``^``) before it aside; None when there is none or the pattern is not plainly read."""
    if pattern.flags & regex.IGNORECASE:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            parsed = sre_parse.parse(pattern.pattern)
    except (re.error, Warning, RecursionError, OverflowError, ValueError):
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    lead = bytearray()
    for op, av in parsed.data:
        if op is C.AT and not lead:
            continue
        if op is not C.LITERAL:
            break
        lead.append(av)
    return bytes(lead) if len(lead) >= 2 else None


class _AnchorGate:
    """Which detectors' anchors match a blob: one automaton pass over the raw bytes for their leading literals,
    then each anchor tried (``match``) only where its literal occurs. The same answer as searching each anchor
    (a match starts nowhere else), at ~5× their speed on git/git's blobs: each search alone runs at ~3 GB/s."""

    def __init__(self, detectors: Sequence[CompiledDetector]) -> None:
        words = sorted({d.anchor_lead for d in detectors if d.anchor_lead is not None})
        self._owners = [[(i, d._anchor) for i, d in enumerate(detectors) if d.anchor_lead == w] for w in words]
        self._automaton = ahocorasick_rs.BytesAhoCorasick(words)
        self._size = len(detectors)

    def matching(self, data: bytes) -> set[int]:
        """Indexes of the detectors whose anchor matches somewhere in ``data``."""
        found: set[int] = set()
        for w, start, _ in self._automaton.find_matches_as_indexes(data, overlapping=True):
            for i, anchor in self._owners[w]:
                if i not in found and anchor is not None and anchor.match(data, start) is not None:
                    found.add(i)
                    if len(found) == self._size:
                        return found
        return found


@functools.lru_cache(maxsize=4)
def _anchor_gate(detectors: tuple[CompiledDetector, ...]) -> _AnchorGate | None:
    """The gate of a detector set whose every detector has an anchor led by a literal (the built-in ones); None
    otherwise (each detector's own search then)."""
    if not detectors or any(d.anchor_lead is None for d in detectors):
        return None
    return _AnchorGate(detectors)


def _nearby(occurrences: list[tuple[int, int, bytes]], starts: list[int], pos: int,
            need: int) -> Iterator[tuple[int, int, bytes]]:
    """The occurrences nearest ``pos`` on each side until ``need`` distinct values (or 64 steps) are seen."""
    i = bisect.bisect_left(starts, pos)
    for step in (-1, 1):
        seen: set[bytes] = set()
        j = i - 1 if step < 0 else i
        for _ in range(64):
            if not 0 <= j < len(occurrences) or len(seen) >= need:
                break
            seen.add(occurrences[j][2])
            yield occurrences[j]
            j += step


class DetectorSet:
    """The run's detectors, compiled once: the one place that decides whether a path is scanned at all."""

    def __init__(self, detectors: Iterable[Detector]) -> None:
        self.compiled = {d.id: CompiledDetector(d) for d in detectors}
        self._any = functools.lru_cache(maxsize=1 << 16)(self._scans)

    def _scans(self, name: bytes) -> bool:
        return any(d.allows_filename(name) for d in self.compiled.values())

    def scans(self, name: bytes) -> bool:
        """Some detector looks at a file of this name (its FilenameBanlist lets it through)."""
        return self._any(name)

    def allows(self, detector: str, path: bytes) -> bool:
        """Detector ``detector`` looks at ``path``."""
        return self.compiled[detector].allows_filename(path)


class _Lines:
    """1-based line of an offset; the newline index is built once, on first use."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._newlines: list[int] | None = None

    def of(self, offset: int) -> int:
        if self._newlines is None:
            self._newlines = [m.start() for m in _NEWLINE.finditer(self.data)]
        return bisect.bisect_right(self._newlines, offset - 1) + 1


@functools.lru_cache(maxsize=4)  # a run (a worker) has one detector list; tests and `detectors check` a few more
def _prefilter(detectors: tuple[CompiledDetector, ...]) -> tuple[prefilter.Prefilter, bool]:
    """The set's prefilter, and whether every detector skips binary blobs (then a binary blob costs no pass)."""
    return prefilter.Prefilter([d.literals for d in detectors]), not any(d.check_binaries for d in detectors)


def detect(detectors: Iterable[CompiledDetector], data: bytes, blob: str, max_pairs: int,
           binary: bool | None = None, *, bounded: set[str] | None = None) -> list[Candidate]:
    """Run pre-validators then matchers of every detector on one blob's content (``binary``: if already known).

    With many detectors, one prefilter pass first keeps only those whose literals the blob holds (``prefilter``);
    the detector list is compiled into it once (cached by identity: pass the same list, or tuple, every time).
    ``bounded`` collects the ids of detectors that found more than MAX_MATCHES matches here (the rest were dropped).
    """
    chosen: Sequence[CompiledDetector] = detectors if isinstance(detectors, Sequence) else list(detectors)
    out: list[Candidate] = []
    lowered: bytes | None = None
    plan, skip_binary = _prefilter(tuple(chosen))
    if plan.active:
        if skip_binary and (binary if binary is not None else is_binary(data)):
            return out
        lowered = data.lower()
        chosen = [chosen[i] for i in plan.select(lowered)]
    gate = None if plan.active else _anchor_gate(tuple(chosen))
    alive: set[int] | None = None
    for i, d in enumerate(chosen):
        if not d.check_binaries:
            if binary is None:
                binary = is_binary(data)
            if binary:
                continue
        if gate is not None:
            if alive is None:
                alive = gate.matching(data)
            if i not in alive:
                continue
        elif not d.could_match(data, lowered):
            continue
        if lowered is None and d.gates_lowered:
            lowered = data.lower()
        if d.wants(data, lowered):
            out.extend(d.candidates(data, blob, max_pairs, bounded, lowered))
    return out
