"""An output directory in; a sample history with planted fake credentials, its scan and its report out.

Needs nothing from outside: auditor.testing.history builds the history (random hex, never real credentials), the bundled
Twilio stand-in (auditor.testing) answers the validity checks on 127.0.0.1 — some planted pairs live, one
test-scoped, one suspended, the rest invalid — and the report is written from the store like any scan's.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from auditor.errors import UsageError
from auditor.models import ScanOptions, Summary
from auditor.outdir import OutDir
from auditor.pipeline import scan
from auditor.report.render import Report, build_report
from auditor.testing import TwilioStandIn, serve_in_thread
from auditor.testing import history as synth

MARKER = ".auditor-demo"  # a directory holding it was made by the demo, so a rerun may replace its contents
PAIRS, LIVE = 12, 5  # planted pairs; the first LIVE are valid and live, then one test, one suspended, rest invalid


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoResult:
    directory: Path
    repo: Path
    manifest: synth.Manifest
    summary: Summary
    report: Report
    answers: dict[str, int]  # what the stand-in was told: live / test / suspended / invalid pairs
    found: int  # planted occurrences the scan reported
    unexpected: int  # reported occurrences that were not planted (should be 0)
    seconds: float


def _prepare(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise UsageError(f"{out} exists and was not made by `auditor demo`; pass --out a new or empty directory.")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `auditor demo`; a rerun replaces this directory's contents\n")
    shutil.rmtree(out / "repo", ignore_errors=True)
    layout = OutDir(out)
    for path in (layout.store, *layout.store_sidecars):
        path.unlink(missing_ok=True)  # a fresh store: the demo shows a first scan


def run(out: Path, *, commits: int = 2000, seed: int = 2024, progress: bool = False) -> DemoResult:
    """Generate, serve, scan, report; the caller prints."""
    started = time.perf_counter()
    _prepare(out)
    repo = out / "repo"
    try:
        manifest = synth.generate(repo, commits=commits, files=200, pairs=PAIRS, seed=seed, branches=3, tags=2)
    except ValueError as e:
        raise UsageError(f"{e}; pass a larger --commits") from None
    pairs = list(manifest.pairs)
    standin = TwilioStandIn(valid=set(pairs[:LIVE]), test={pairs[LIVE]}, suspended={pairs[LIVE + 1]})
    answers = {"live": LIVE, "test": 1, "suspended": 1, "invalid": len(pairs) - LIVE - 2}
    with serve_in_thread(standin) as base:
        outcome = scan([str(repo)], ScanOptions(out=out, validate=True, api_urls={"twilio": base}, progress=progress,
                                                validate_rate=200.0, validate_timeout=5.0))
    built = build_report(out)
    planted = manifest.occurrences()
    reported = {(f.commit, f.path, f.client_id, f.client_secret) for f in outcome.findings}
    return DemoResult(directory=out, repo=repo, manifest=manifest, summary=outcome.summary, report=built,
                      answers=answers, found=len(planted & reported), unexpected=len(reported - planted),
                      seconds=time.perf_counter() - started)
