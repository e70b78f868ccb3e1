"""The run's result files in ``--out`` (named by ``outdir.OutDir``): findings.jsonl, secrets.jsonl, summary.json.

Only this module writes them; the store writes audit.sqlite, ``report.render`` the report files.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from auditor.errors import OutputError
from auditor.models import Finding, RepoStats, Summary, redact
from auditor.outdir import OutDir, private_file, write_private


def _jsonable(value: Any) -> Any:
    import pandas as pd

    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "item"):
        return value.item()
    return value


def _write_jsonl(path: Path, frame: Any) -> None:
    private_file(path)
    with path.open("w", encoding="utf-8") as fh:
        for row in frame.to_dict("records"):
            fh.write(json.dumps({k: _jsonable(v) for k, v in row.items()}, ensure_ascii=False) + "\n")


# -- the run's result files -----------------------------------------------------------------------------------
def write_results(out: OutDir, findings: list[Finding], repos: Sequence[RepoStats], tips: Sequence[tuple],
                  detectors: Sequence[Any], *, show_secrets: bool, validated: bool, validation_requests: int,
                  validation_unique: int, wall_seconds: float, interrupted: bool) -> Summary:
    """Write findings.jsonl, secrets.jsonl (with lifecycles) and summary.json; return the summary."""
    from auditor.result_files import write_results as write  # plain Python: a scan does not import pandas

    try:
        return write(out, findings, repos, tips, detectors, show_secrets=show_secrets, validated=validated,
                     validation_requests=validation_requests, validation_unique=validation_unique,
                     wall_seconds=wall_seconds, interrupted=interrupted)
    except OSError as e:
        raise OutputError(f"{out.root}: cannot write the results ({e.strerror or e}: {e.filename}). Pass --out "
                          "a directory you can write to (the store keeps what was scanned: rerun).") from None


def _write_results(out: OutDir, findings: list[Finding], repos: Sequence[RepoStats], tips: Sequence[tuple],
                   detectors: Sequence[Any], *, show_secrets: bool, validated: bool, validation_requests: int,
                   validation_unique: int, wall_seconds: float, interrupted: bool) -> Summary:
    """The same files through the reporter's frames (pandas): the reference ``result_files`` is tested against
    byte for byte (tests/test_startup.py)."""
    from auditor.report import frames as fr  # pandas: loaded only once there are results to write
    from auditor.report.measures import summary_rates, unique_secrets
    from auditor.report.stats import METHOD

    frame = fr.findings_frame(findings)
    if not show_secrets:
        frame = frame.assign(client_secret=frame["client_secret"].map(redact, na_action="ignore"))
    frame = frame.sort_values(["repo", "author_time", "commit", "path", "line"], kind="stable")
    _write_jsonl(out.findings, frame[list(fr.FINDING_DTYPES)])
    names = [r.repo for r in repos]
    everything = fr.read_store(out.store) if out.store.is_file() else {}
    stored = fr.restrict(everything, names)
    earlier = sorted(set(everything["repos"]["repo"]) - set(names)) if everything else []
    scanned = stored.get("repos", fr.typed([], fr.REPO_DTYPES)).set_index("repo")["scanned_at"]
    repo_rows = fr.typed(((r.repo, r.path, r.commits_scanned, r.shallow, scanned.get(r.repo)) for r in repos),
                         fr.REPO_DTYPES)
    scan = fr.assemble(findings=frame, commits=stored.get("commits", fr.typed([], fr.COMMIT_DTYPES)),
                       repos=repo_rows, tips=fr.typed(tips, fr.TIP_DTYPES),
                       removals=stored.get("removals", fr.typed([], fr.REMOVAL_DTYPES)),
                       detectors=fr.detectors_frame(detectors), validated=validated)
    ends = fr.exposures(scan.findings)
    _write_jsonl(out.secrets, scan.secrets.assign(exposures=[ends.get(h, []) for h in scan.secrets["secret_sha256"]]))
    commits = sum(r.commits_scanned for r in repos)
    seconds: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for r in repos:
        seconds.update(r.seconds)
        skipped.update(r.blobs_skipped)
    summary = Summary(
        commits_scanned=commits,
        blobs_scanned=sum(r.blobs_scanned for r in repos),
        bytes_scanned=sum(r.bytes_scanned for r in repos),
        blobs_skipped=dict(sorted(skipped.items())),
        measures=summary_rates(frame, commits, validated=validated),
        confidence_interval_method=METHOD,
        validated=validated,
        validation_requests=validation_requests,
        validation_unique=validation_unique,
        detectors={d.id: {"name": d.name, **summary_rates(frame[frame["detector"] == d.id], commits,
                                                          validated=validated),
                          "reference_occurrences_per_million_commits": d.reference_occurrences_per_million_commits}
                   for d in detectors},
        repos=tuple(r.summary(summary_rates(frame[frame["repo"] == r.repo], r.commits_scanned, validated=validated))
                    for r in repos),
        seconds={k: round(v, 3) for k, v in seconds.items()} | {"total": round(wall_seconds, 3)},
        errors=tuple(e for r in repos for e in r.errors)[:1000],
        error_count=sum(len(r.errors) for r in repos),
        interrupted=interrupted,
        store_also_holds=tuple(earlier),
        secrets_failed_to_check=unique_secrets(frame[frame["validity"] == "failed_to_check"]),
    )
    write_private(out.summary, (json.dumps(summary.as_json(), indent=2) + "\n").encode("utf-8"))
    return summary
