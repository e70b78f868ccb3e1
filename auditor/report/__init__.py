"""The reporter: a scan's store → typed pandas frames → statistics, plots, report.md/report.html.

What notebooks call: ``load`` a scan directory, then ``rates``, ``per_repository``, ``by_year``, ``by_extension``,
``by_directory``, ``by_validity``, ``by_presence``, ``timeline``, ``top_paths``, ``lifecycle`` (``measures``);
``auditor.report.plots`` draws them; ``build`` (re)writes the report files (``render``, needs matplotlib).
Nothing here reads git: a report is a function of the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from auditor.models import redact
from auditor.report.frames import PRESENCE, ScanFrames, findings_frame, load
from auditor.report.measures import (LATER_REFERENCES, MEASURES, by_directory, by_extension, by_presence,
                                     by_validity, by_year, dated, headline, lifecycle, per_repository, rates,
                                     references, tables, timeline, timeline_freq, top_paths)
from auditor.report.stats import METHOD, per_million

if TYPE_CHECKING:
    from auditor.report.render import Report

__all__ = ["LATER_REFERENCES", "MEASURES", "METHOD", "PRESENCE", "ScanFrames", "build", "by_directory",
           "by_extension", "by_presence", "by_validity", "by_year", "dated", "findings_frame", "headline",
           "lifecycle", "load", "per_million", "per_repository", "rates", "redact", "references", "tables",
           "timeline", "timeline_freq", "top_paths"]


def build(path: str | Path, *, top: int = 20) -> Report:
    """(Re)build report.md, report.html, plots/ and frames/ of a scan directory from its store."""
    from auditor.report.render import build_report  # matplotlib: only the report files need it

    return build_report(Path(path), top=top)
