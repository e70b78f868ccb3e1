"""``auditor detectors check [DIR]``: does every detector file parse, compile and find what its examples say?

Pure: files in, a ``CheckReport`` out (the CLI prints it). Per detector file, in load order (the built-in ones, then
DIR's ``*.yaml``/``*.yml``; a Nosey Parker rules file there, or a catalog file given as DIR, gives one verdict per
rule):

- it parses (a problem names the file and the field: ``spec.DetectorFileError``);
- its id is unique. Two files of DIR with one id are an **error**: a scan would keep the later file's detector and
  silently drop the other. A file of DIR with the id of a built-in detector is a **warning**: a scan uses it
  *instead of* the built-in one, which is allowed (that is how a built-in detector is tuned) but never silent;
- its patterns compile as the engine compiles them (bytes, banlist case-insensitive), and all the detectors a scan
  would run compile together (``DetectorSet``);
- every ``examples`` entry yields exactly one candidate with the expected client_id whose best-ranked
  client_secret is the expected one, and no ``negative_examples`` entry yields any candidate — the rule a scan
  applies with validation off, on the example's text alone (the file-name banlist judges paths, not texts).

The test suite runs the built-in detectors' examples through ``run_example`` / ``run_negative_example``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex
import yaml

from auditor.detectors import catalogs
from auditor.detectors.engine import CompiledDetector, DetectorSet, detect
from auditor.detectors.prefilter import MIN_LITERAL
from auditor.detectors.spec import Detector, Example, detector_files, parse_detector
from auditor.errors import DetectorFileError


class Severity(enum.StrEnum):
    ERROR = "error"  # the check fails (exit 2)
    WARNING = "warning"  # said, but the check passes


@dataclass(frozen=True, slots=True)
class Problem:
    severity: Severity
    message: str  # names the field or the example at fault, e.g. "examples[2]: …"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileResult:
    """One detector file's verdict."""

    source: str  # the file as messages name it: builtin/NAME.yaml or the path given
    detector: str | None  # its id; None when the file does not parse
    examples: int = 0
    negative_examples: int = 0
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not any(p.severity is Severity.ERROR for p in self.problems)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.WARNING)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckReport:
    """Every detector file's verdict, plus problems of the set as a whole."""

    files: tuple[FileResult, ...]
    problems: tuple[Problem, ...] = ()  # not of one file: the set does not compile together, DIR holds no file

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files) and not any(p.severity is Severity.ERROR for p in self.problems)

    @property
    def failed(self) -> int:
        return sum(not f.ok for f in self.files)


def _expected(example: Example) -> str:
    return f"client_id {example.client_id or '(none)'}, client_secret {example.client_secret}"


def run_example(detector: CompiledDetector, example: Example, max_pairs: int = 8) -> str | None:
    """What is wrong with a positive example (None: it finds exactly the expected pair)."""
    if not example.client_secret:
        return "gives no client_secret to expect"
    candidates = detect([detector], example.text.encode("utf-8"), "example", max_pairs)
    mine = [c for c in candidates if c.client_id == (example.client_id or "")]
    if not mine:
        found = "; ".join(sorted({c.client_id or c.pairs[0].client_secret for c in candidates}))
        return f"does not match: expected {_expected(example)}, found " + (f"only {found}" if found else "nothing")
    if len(mine) > 1:
        return f"yields {len(mine)} candidates for client_id {example.client_id or '(none)'}, expected one"
    best = mine[0].pairs[0]
    if best.client_secret != example.client_secret:
        return (f"pairs client_id {example.client_id or '(none)'} with client_secret {best.client_secret} first, "
                f"expected {example.client_secret}")
    return None


def run_negative_example(detector: CompiledDetector, example: Example, max_pairs: int = 8) -> str | None:
    """What is wrong with a negative example (None: it yields no candidate)."""
    candidates = detect([detector], example.text.encode("utf-8"), "example", max_pairs)
    if not candidates:
        return None
    found = ", ".join(f"client_id {c.client_id or '(none)'} with client_secret {c.pairs[0].client_secret}"
                      for c in candidates)
    return f"matches, but must not: found {found}"


def check_detector(detector: Detector, max_pairs: int = 8) -> list[Problem]:
    """Compile one parsed detector as a scan does and run its examples and negative examples."""
    try:
        compiled = CompiledDetector(detector)
    except regex.error as e:  # parsed as text, but not as the engine compiles it (bytes, case-insensitive)
        return [Problem(Severity.ERROR, f"a pattern does not compile as the scan compiles it: {e}")]
    except (AttributeError, TypeError) as e:  # a field the parser does not type, e.g. pairing.keywords: [1]
        return [Problem(Severity.ERROR, f"a field holds a value of the wrong type ({e}); see the built-in detector "
                        "files for the expected shapes")]
    problems = []
    if compiled.literals is None:
        problems.append(Problem(Severity.WARNING, "runs on every blob: no keyword, and no literal of "
                                f"{MIN_LITERAL}+ bytes that every match of its pattern holds, for the prefilter to "
                                "look for (slower with many rules; add keywords, or a literal prefix)"))
    for key, examples, run in (("examples", detector.examples, run_example),
                               ("negative_examples", detector.negative_examples, run_negative_example)):
        for i, example in enumerate(examples):
            if (wrong := run(compiled, example, max_pairs)) is not None:
                problems.append(Problem(Severity.ERROR, f"{key}[{i}] {wrong}"))
    return problems


def _load(src: str | Path, file: Any) -> Any:
    """A file's YAML document, with a one-line message for a file that is not YAML (or not UTF-8 text)."""
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise DetectorFileError(src, "<file>", f"cannot be read as UTF-8 text: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise DetectorFileError(src, "<yaml>", f"is not valid YAML: {problem}{where}") from None
    return doc


def _rules(rules: Sequence[Detector], source: str, users: dict[str, str], max_pairs: int) -> list[FileResult]:
    """One verdict per rule of a catalog; a rule id another file of the set already gave is an error."""
    out = []
    for rule in rules:
        problems = check_detector(rule, max_pairs)
        if (earlier := users.setdefault(rule.id, source)) != source:
            problems.insert(0, Problem(Severity.ERROR, f"id {rule.id!r} is also the id of {earlier}: a scan would "
                                       "keep only one of them, silently; give each rule its own id"))
        out.append(FileResult(source=f"{source} rule {rule.id}", detector=rule.id, problems=tuple(problems)))
    return out


def check_detectors(extra_dir: Path | None = None, *, max_pairs: int = 8) -> CheckReport:
    """Check the built-in detector files and every ``*.yaml``/``*.yml`` of ``extra_dir`` (auditor detector files or
    Nosey Parker rules files), or a catalog file; never raises for a bad file (that is a result), only
    DetectorFileError when ``extra_dir`` is neither a directory nor a file."""
    catalog = extra_dir is not None and extra_dir.is_file()  # a gitleaks config or a Nosey Parker rules file
    files = detector_files(None if catalog else extra_dir)
    results: list[FileResult] = []
    overall: list[Problem] = []
    loaded: list[Detector] = []
    builtins: dict[str, str] = {}  # id → the built-in file that defines it
    users: dict[str, str] = {}  # id → the first file of extra_dir that defines it
    for src, file in files:
        source, builtin = str(src), not isinstance(src, Path)
        try:
            doc = _load(src, file)
            if not builtin and catalogs.is_rules_doc(doc):  # a Nosey Parker rules file in the directory
                rules, notes = catalogs.noseyparker(doc, source)
                overall += [Problem(Severity.WARNING, note) for note in notes]
                loaded += rules
                results += _rules(rules, source, users, max_pairs)
                continue
            detector = parse_detector(doc, src)
        except DetectorFileError as e:
            results.append(FileResult(source=source, detector=None,
                                      problems=(Problem(Severity.ERROR, str(e).removeprefix(f"{source}: ")),)))
            continue
        problems: list[Problem] = []
        same = builtins if builtin else users
        if (earlier := same.get(detector.id)) is not None:
            problems.append(Problem(Severity.ERROR, f"id {detector.id!r} is also the id of {earlier}: a scan would "
                                    "keep only one of them, silently; give each detector its own id"))
        elif not builtin and (replaced := builtins.get(detector.id)) is not None:
            problems.append(Problem(Severity.WARNING, f"id {detector.id!r} is the id of the built-in detector "
                                    f"{replaced}: a scan with --detectors uses this file instead of it"))
        same.setdefault(detector.id, source)
        problems += check_detector(detector, max_pairs)
        loaded.append(detector)
        results.append(FileResult(source=source, detector=detector.id, examples=len(detector.examples),
                                  negative_examples=len(detector.negative_examples), problems=tuple(problems)))
    if catalog:
        try:
            rules, notes = catalogs.load(extra_dir)
        except DetectorFileError as e:
            rules, notes = [], []
            results.append(FileResult(source=str(extra_dir), detector=None,
                                      problems=(Problem(Severity.ERROR, str(e)),)))
        overall += [Problem(Severity.WARNING, note) for note in notes]
        loaded += rules
        results += _rules(rules, str(extra_dir), users, max_pairs)
    elif extra_dir is not None and not any(isinstance(src, Path) for src, _ in files):
        overall.append(Problem(Severity.WARNING, f"{extra_dir} holds no *.yaml or *.yml file"))
    try:
        DetectorSet(_as_scanned(loaded))  # what a scan compiles: one detector per id, the last file's
    except regex.error as e:
        overall.append(Problem(Severity.ERROR, f"the detectors do not compile together: {e}"))
    return CheckReport(files=tuple(results), problems=tuple(overall))


def _as_scanned(detectors: Sequence[Detector]) -> tuple[Detector, ...]:
    return tuple({d.id: d for d in detectors}.values())
