"""data/reference_rates.csv in; the published per-detector frequencies the report sets beside its own rates out.

This module is the file's one reader (the report, summary.json, ``compare``), in plain Python (a scan imports no
pandas). The file is data, not code: one row per published figure, with the population it counts, its address and
the date it was read, so that every reference in a report can be cited. The first row of a detector is its primary
figure (the current publication); the others are shown beside it.

Where the file is: a source checkout (or an editable install) reads ``data/reference_rates.csv`` at the top of the
checkout; an installed wheel carries the same file as data (pyproject ``data-files``: ``share/auditor/`` under the
installation's prefix). There is one copy in git.
"""

from __future__ import annotations

import csv
import sysconfig
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from auditor.errors import UsageError

NAME = "reference_rates.csv"
COLUMNS = ("detector", "figure", "unit", "population", "source", "address", "version", "date_read", "recorded_from")
UNIT = "occurrences per million commits"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """One published figure: what it counts, over which population, where it was read and when."""

    detector: str
    figure: float
    unit: str
    population: str
    source: str
    address: str
    version: str
    date_read: str  # ISO 8601 date
    recorded_from: str = ""

    @property
    def label(self) -> str:
        """Short, for a legend: 'GitGuardian, current page (read 2026-11-27)'."""
        who = self.source.split(",", 1)[0].strip()
        read = f" (read {self.date_read})" if self.date_read else ""
        return f"{who}, {self.version}{read}" if self.version else f"{who}{read}"

    @property
    def citation(self) -> str:
        """Whole, for the report's text: source, version, date read, address and population."""
        about = ", ".join(x for x in (self.version, f"read {self.date_read}" if self.date_read else "") if x)
        return (f"{self.source}{f' ({about})' if about else ''}{f', {self.address}' if self.address else ''}: "
                f"{self.figure:g} {self.unit} over {self.population}")


def locations() -> list[Path]:
    """Where the file may be, in order: the source checkout; the prefix this package is installed under
    (PREFIX/lib/pythonX.Y/site-packages/auditor/report/ → PREFIX/share/auditor/: also ``pip install --prefix``); the
    interpreter's and the user's data directories."""
    here = Path(__file__).resolve()
    out = [here.parents[2] / "data" / NAME]
    if len(here.parents) > 5:
        out.append(here.parents[5] / "share" / "auditor" / NAME)
    for scheme in dict.fromkeys([sysconfig.get_default_scheme(), f"{sysconfig.get_preferred_scheme('user')}"]):
        try:
            out.append(Path(sysconfig.get_path("data", scheme)) / "share" / "auditor" / NAME)
        except KeyError:
            continue
    return list(dict.fromkeys(out))


def find() -> Path | None:
    return next((p for p in locations() if p.is_file()), None)


def _key(detector: str) -> str:
    """Detector ids compared as people write them: case, '-' and '_' do not matter."""
    return detector.strip().lower().replace("-", "_")


@cache
def _read(path: Path) -> tuple[Reference, ...]:
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise UsageError(f"{path}: no column {', '.join(missing)}; the header must be {','.join(COLUMNS)}.")
            out = []
            for n, row in enumerate(reader, start=2):
                try:
                    figure = float(row["figure"])
                except (TypeError, ValueError):
                    raise UsageError(f"{path}, line {n}: figure {row['figure']!r} is not a number; write the "
                                     "published value, e.g. 7.37.") from None
                out.append(Reference(**{c: (row[c] or "").strip() for c in COLUMNS if c != "figure"}, figure=figure))
    except OSError as e:
        raise UsageError(f"{path}: cannot read the reference rates ({e.strerror or e}).") from None
    return tuple(out)


def load(path: Path | None = None) -> tuple[Reference, ...]:
    """Every published figure in the file (none when no file is found: the report then names no reference)."""
    path = path or find()
    return () if path is None else _read(path)


def of(detector: str, own: float | None = None, path: Path | None = None) -> list[Reference]:
    """The figures published for ``detector``, primary first; ``own``: the figure the detector's file gives, kept
    (as the detector file's) unless the table already has that value."""
    got = [r for r in load(path) if _key(r.detector) == _key(detector)]
    if own is not None and own == own and not any(r.figure == float(own) for r in got):
        got.append(Reference(detector=detector, figure=float(own), unit=UNIT, source="the detector file",
                             population="a population it does not name", address="", version="", date_read=""))
    return got


def primary(detector: str, own: float | None = None, path: Path | None = None) -> Reference | None:
    """The figure a rate is compared with: the first published one."""
    got = of(detector, own, path)
    return got[0] if got else None
