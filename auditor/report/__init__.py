"""The reporter: a scan's store → typed pandas frames → statistics, plots, report.md/report.html.

What notebooks call: ``load`` a scan directory, then ``actions`` (what to rotate first), ``rates``,
``per_repository``, ``by_year``, ``by_extension``, ``by_directory``, ``by_validity``, ``by_presence``,
``by_ref_kind``, ``by_author`` (who introduced them), ``exposure_summary`` (how long they stayed),
``per_detector``, ``compare`` (which repositories differ from the reference), ``references``,
``timeline``, ``top_paths``, ``lifecycle`` (``measures``); ``pooled`` for rates over all repositories;
``auditor.report.plots`` draws them; ``build`` (re)writes the report files (``render``, needs matplotlib).
Nothing here reads git: a report is a function of the store.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.models import PRESENCE, redact

if TYPE_CHECKING:
    from auditor.report.frames import ScanFrames, findings_frame, load
    from auditor.report.measures import (
        MEASURES,
        actions,
        by_author,
        by_directory,
        by_extension,
        by_presence,
        by_ref_kind,
        by_validity,
        by_year,
        compare,
        dated,
        exposure_summary,
        headline,
        lifecycle,
        per_detector,
        per_repository,
        pooled,
        rates,
        references,
        tables,
        timeline,
        timeline_freq,
        top_paths,
    )
    from auditor.report.render import Report
    from auditor.report.stats import METHOD, per_million

# Loaded on first use (PEP 562): ``auditor.report.stats`` serves a scan's summary.json, which must not import pandas.
_FROM = {"ScanFrames": "frames", "findings_frame": "frames", "load": "frames",
         **dict.fromkeys(["MEASURES", "actions", "by_author", "compare", "exposure_summary", "per_detector",
                          "by_directory", "by_extension",
                          "by_presence", "by_ref_kind",
                          "by_validity", "by_year", "dated", "headline", "lifecycle", "per_repository", "pooled",
                          "rates", "references", "tables", "timeline", "timeline_freq", "top_paths"], "measures"),
         "METHOD": "stats", "per_million": "stats"}
_MODULES = {"frames", "measures", "stats", "plots", "render", "published"}


def __getattr__(name: str) -> Any:
    if name in _FROM:
        return getattr(importlib.import_module(f"auditor.report.{_FROM[name]}"), name)
    if name in _MODULES:
        return importlib.import_module(f"auditor.report.{name}")
    raise AttributeError(f"module 'auditor.report' has no attribute {name!r}")


__all__ = ["MEASURES", "METHOD", "PRESENCE", "ScanFrames", "actions", "build", "by_author", "by_directory", "compare",
           "exposure_summary", "per_detector",
           "by_ref_kind",
           "by_extension", "by_presence", "by_validity", "by_year", "dated", "findings_frame", "headline",
           "lifecycle", "load", "per_million", "per_repository", "pooled", "rates", "redact", "references", "tables",
           "timeline", "timeline_freq", "top_paths"]


def build(path: str | Path, *, top: int = 20) -> Report:
    """(Re)build report.md, report.html, plots/ and frames/ of a scan directory from its store."""
    from auditor.report.render import build_report  # matplotlib: only the report files need it

    return build_report(Path(path), top=top)
