"""Histories whose answers are known by construction, shared by the reporter's and the outputs' tests, and the
in-process scan they are read through."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from auditor import report
from auditor.models import Outcome, ScanOptions
from auditor.pipeline import scan
from auditor.report import ScanFrames
from tests.helpers.git import GitRepo
from tests.helpers.pairs import Pair, make_pair, snippet


def ts(text: str) -> int:
    """An ISO date (UTC) as Unix seconds: what ``GitRepo.clock`` takes."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def scan_in_process(repos: list[GitRepo], out: Path, **options: Any) -> Outcome:
    """``auditor.pipeline.scan`` called directly (a real pool, one worker), no validation unless asked."""
    return scan([str(r.path) for r in repos],
                ScanOptions(out=out, progress=False, jobs=1, **{"validate": False, **options}))


def commit_times(repo: GitRepo) -> dict[str, pd.Timestamp]:
    """Every commit's committer time, as git says it."""
    lines = repo("log", "--all", "--format=%H %ct").split("\n")
    return {c: pd.Timestamp(int(t), unit="s", tz="UTC") for c, t in (ln.split() for ln in lines if ln)}


@dataclass
class Golden:
    """A: removed then re-added (still at main); B: moved by copy + delete (still at main); C: only at tag v1;
    D: removed (history only). Three commits in 2020, six in 2021; scanned once into ``out``."""

    repo: GitRepo
    out: Path
    c: dict[str, str]  # label → commit id
    t: dict[str, pd.Timestamp]  # commit id → committer time
    pairs: dict[str, Pair]
    frames: ScanFrames  # report.load(out), right after the scan


def golden_history(base: Path) -> Golden:
    repo = GitRepo(base / "repo")
    A, B, C, D = (make_pair() for _ in range(4))
    repo.clock = ts("2020-06-01T00:00:00")
    c = {"c1": repo.commit("c1", {"app.py": snippet(A), "config/settings.yaml": snippet(B, line=3)})}
    c["c2"] = repo.commit("c2", {"app.py": "# header\n" + snippet(A)})  # an edit elsewhere: nothing new
    c["c3"] = repo.commit("c3", {"app.py": "print('no secret here')\n"})  # A leaves app.py
    repo.clock = ts("2021-03-01T00:00:00")
    c["c4"] = repo.commit("c4", {"app.py": snippet(A)})  # A comes back: a second occurrence
    c["c5"] = repo.commit("c5", {"deploy/b.env": snippet(B)}, remove=("config/settings.yaml",))
    c["c6"] = repo.commit("c6", {"tools/run.sh": snippet(C)})
    repo("tag", "v1")
    c["c7"] = repo.commit("c7", remove=("tools/run.sh",))
    c["c8"] = repo.commit("c8", {"README": snippet(D)})
    c["c9"] = repo.commit("c9", remove=("README",))
    out = base / "out"
    scan_in_process([repo], out)
    return Golden(repo=repo, out=out, c=c, t=commit_times(repo), pairs={"A": A, "B": B, "C": C, "D": D},
                  frames=report.load(out))
