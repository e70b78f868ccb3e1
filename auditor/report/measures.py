"""ScanFrames in; rates per million commits with exact 95% Poisson intervals and breakdowns out: the statistics
that notebooks, the report and summary.json share.

Every rate is a count divided by the commits scanned (of the scope at hand) × 10⁶, with its exact Poisson interval
(auditor.report.stats.METHOD); no commit scanned → NA (null in JSON), never inf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from auditor.models import PRESENCE, REACH, Validity, ref_kind, refs_by_kind, short_repo
from auditor.report import published
from auditor.report.frames import DURATION, ScanFrames, typed
from auditor.report.frames import TIME as TIME_DTYPE
from auditor.report.stats import cluster_interval, with_rates

VALID = Validity.VALID.value


def _valid(f: pd.DataFrame) -> pd.Series:
    return (f["validity"] == VALID).fillna(False)


def _with_secret(f: pd.DataFrame) -> pd.DataFrame:
    """``f`` with a ``secret`` column, one value per unique secret — (detector, client_id, client_secret), SPEC §4:
    two detectors matching one pair are two — for counting them, also by group."""
    return f.assign(secret=f["detector"].astype("string") + ":" + f["secret_sha256"].astype("string"))


def unique_secrets(f: pd.DataFrame) -> int:
    return int(_with_secret(f)["secret"].nunique())


# measure → (counts it from a findings frame, needs validation). Say which rate is which (SPEC §4).
MEASURES: dict[str, tuple[Callable[[pd.DataFrame], int], bool]] = {
    "occurrences": (len, False),
    "valid_occurrences": (lambda f: int(_valid(f).sum()), True),
    "valid_live_occurrences": (lambda f: int((_valid(f) & (f["scope"] == "live").fillna(False)).sum()), True),
    "valid_test_occurrences": (lambda f: int((_valid(f) & (f["scope"] == "test").fillna(False)).sum()), True),
    "commits_with_occurrences": (lambda f: len(f[["repo", "commit"]].drop_duplicates()), False),
    "unique_secrets": (unique_secrets, False),
    "valid_unique_secrets": (lambda f: unique_secrets(f[_valid(f)]), True),
}
RATE_COLUMNS = {"count": "Int64", "commits": "int64"}


def counts(findings: pd.DataFrame, validated: bool) -> dict[str, int | None]:
    return {m: (count(findings) if validated or not needs else None) for m, (count, needs) in MEASURES.items()}


def _measure_rows(findings: pd.DataFrame, commits: int, validated: bool, **labels: Any) -> list[dict[str, Any]]:
    return [{**labels, "measure": m, "count": c, "commits": commits}
            for m, c in counts(findings, validated).items()]


def _rate_frame(rows: list[dict[str, Any]], labels: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[*labels, "measure", "count", "commits"])
    return with_rates(frame.astype({**labels, "measure": "string", **RATE_COLUMNS}))


# -- the statistics ---------------------------------------------------------------------------------------------
def rates(f: ScanFrames) -> pd.DataFrame:
    """Per detector, pooled over repositories: every measure's count, rate per million commits and 95% interval."""
    rows = []
    for det in f.detectors["detector"]:
        rows += _measure_rows(f.findings[f.findings["detector"] == det], f.commits_scanned, f.validated, detector=det)
    frame = _rate_frame(rows, {"detector": "string"})
    refs = {str(d): (None if r is None else r.figure) for d, r in _primaries(f).items()}
    reference = frame["detector"].map(refs).where(frame["measure"] == "occurrences")
    return frame.assign(reference=reference.astype("Float64"))


def _own(f: ScanFrames) -> dict[str, float | None]:
    """The figure each detector's own file gives (a user's catalog may bring one), by detector."""
    values = f.detectors["reference_occurrences_per_million_commits"]
    return {str(d): (None if pd.isna(v) else float(v)) for d, v in zip(f.detectors["detector"], values, strict=True)}


def _primaries(f: ScanFrames) -> dict[str, published.Reference | None]:
    return {d: published.primary(d, own) for d, own in _own(f).items()}


REFERENCE_COLUMNS = {"detector": "string", "source": "string", "value": "Float64", "unit": "string",
                     "population": "string", "address": "string", "version": "string", "date_read": "string",
                     "primary": "bool", "citation": "string"}


def references(f: ScanFrames) -> pd.DataFrame:
    """Published occurrences per million commits to compare with, per detector, primary (the current publication)
    first: data/reference_rates.csv (``published``), and a figure a detector's own file gives that the table lacks.
    ``source`` is a short label; ``citation`` says source, version, date read, address and population."""
    rows = []
    for det, own in _own(f).items():
        for i, r in enumerate(published.of(det, own)):
            rows.append((det, r.label, r.figure, r.unit, r.population, r.address, r.version, r.date_read, i == 0,
                         r.citation))
    return typed(rows, REFERENCE_COLUMNS)


def per_detector(f: ScanFrames) -> pd.DataFrame:
    """One row per detector (any id: built-in or a user's catalog): occurrences, unique secrets, the rate per million
    commits with its 95% interval, the primary published reference where one is known, and where it falls."""
    prim = _primaries(f)
    rows = []
    for det, name in zip(f.detectors["detector"], f.detectors["name"], strict=True):
        found = f.findings[(f.findings["detector"] == det).fillna(False)]
        ref = prim.get(str(det))
        rows.append({"detector": str(det), "name": None if pd.isna(name) else str(name), "commits": f.commits_scanned,
                     "occurrences": len(found), "unique_secrets": unique_secrets(found),
                     "reference": None if ref is None else ref.figure,
                     "reference_source": None if ref is None else ref.label})
    frame = pd.DataFrame(rows, columns=["detector", "name", "commits", "occurrences", "unique_secrets", "reference",
                                        "reference_source"]).astype(
        {"detector": "string", "name": "string", "commits": "int64", "occurrences": "int64",
         "unique_secrets": "int64", "reference": "Float64", "reference_source": "string"})
    frame = with_rates(frame, count="occurrences")
    return frame.assign(reference_is=_where(frame))


def _where(frame: pd.DataFrame) -> pd.Series:
    """'below' / 'inside' / 'above' our 95% interval, for each row's reference (NA without a reference or a rate)."""
    ref, low, high = frame["reference"], frame["rate_low"], frame["rate_high"]
    known = ref.notna() & low.notna() & high.notna()
    text = [("below" if r < lo else "above" if r > hi else "inside") if k else None
            for r, lo, hi, k in zip(ref.fillna(0), low.fillna(0), high.fillna(0), known, strict=True)]
    return pd.Series(text, index=frame.index, dtype="string")


def compare(f: ScanFrames, reference: float | None = None, detector: str | None = None) -> pd.DataFrame:
    """Which repositories differ from the reference: per detector (``detector``: that one only) and repository, the
    occurrences per million commits (the repository's own commits as the denominator) with the exact 95% interval,
    the reference (``reference``, else the detector's primary published figure), and whether the interval excludes
    it (``excludes_reference``; ``reference_is`` says where the reference lies: 'below' the interval — the
    repository's rate is higher —, 'inside' or 'above'). Rows whose interval excludes it come first, then by detector
    and commits. A chosen set of repositories is not a sample of the reference's population: a difference describes
    these repositories, and says nothing of the population."""
    prims = _primaries(f)
    detectors = [str(d) for d in f.detectors["detector"]] if detector is None else [detector]
    rows = []
    for det in detectors:
        found = _of(f.findings, det)
        ref = reference if reference is not None else (None if prims.get(det) is None else prims[det].figure)
        rows += [{"detector": det, "repo": str(repo), "name": short_repo(str(repo)), "commits": int(n),
                  "occurrences": int((found["repo"] == repo).fillna(False).sum()), "reference": ref}
                 for repo, n in zip(f.repos["repo"], f.repos["commits_scanned"], strict=True)]
    frame = pd.DataFrame(rows, columns=["detector", "repo", "name", "commits", "occurrences", "reference"]).astype(
        {"detector": "string", "repo": "string", "name": "string", "commits": "int64", "occurrences": "int64",
         "reference": "Float64"})
    frame = with_rates(frame, count="occurrences")
    frame = frame[[c for c in frame.columns if c != "reference"] + ["reference"]]
    where = _where(frame)
    order = {d: i for i, d in enumerate(detectors)}
    return (frame.assign(reference_is=where, excludes_reference=where.isin(["below", "above"]).astype("bool"))
            .sort_values(["excludes_reference", "detector", "commits"], ascending=[False, True, False],
                         key=lambda s: s.map(order) if s.name == "detector" else s, kind="stable")
            .reset_index(drop=True))


def headline(f: ScanFrames) -> pd.DataFrame:
    """Every measure pooled over detectors and repositories: the report's first table."""
    return _rate_frame(_measure_rows(f.findings, f.commits_scanned, f.validated), {})


def per_repository(f: ScanFrames) -> pd.DataFrame:
    """Every measure per repository, its own commits as the denominator; one row per (repository, measure) and
    nothing else (the pooled rates are ``pooled``)."""
    rows = []
    for repo, commits in zip(f.repos["repo"], f.repos["commits_scanned"], strict=True):
        rows += _measure_rows(f.findings[f.findings["repo"] == repo], int(commits), f.validated, repo=repo)
    return _rate_frame(rows, {"repo": "string"})


def pooled(f: ScanFrames) -> pd.DataFrame:
    """Every measure pooled over the repositories, with the exact Poisson interval and beside it one that allows for
    occurrences clustering in a few repositories (stats.CLUSTER_METHOD); ``repos_with`` holds at least one."""
    each = per_repository(f)
    rows = []
    for measure, group in each.groupby("measure", sort=False):
        counts_ = group["count"]
        low, high = (None, None) if counts_.isna().any() else cluster_interval(
            [int(c) for c in counts_], [int(n) for n in group["commits"]])
        rows.append({"measure": measure, "count": None if counts_.isna().any() else int(counts_.sum()),
                     "commits": int(group["commits"].sum()), "repositories": len(group),
                     "repos_with": int((counts_.fillna(0) > 0).sum()), "clustered_low": low, "clustered_high": high})
    frame = pd.DataFrame(rows, columns=["measure", "count", "commits", "repositories", "repos_with", "clustered_low",
                                        "clustered_high"])
    return with_rates(frame.astype({"measure": "string", "count": "Int64", "commits": "int64",
                                    "repositories": "int64", "repos_with": "int64", "clustered_low": "Float64",
                                    "clustered_high": "Float64"}))


def _of(found: pd.DataFrame, detector: str | None) -> pd.DataFrame:
    return found if detector is None else found[found["detector"] == detector]


def _count_by(f: ScanFrames, found: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Occurrences, valid ones and unique secrets by ``keys``; rate of occurrences per million commits scanned."""
    grouped = (_with_secret(found).assign(valid=_valid(found))
               .groupby(keys, dropna=False, sort=False)
               .agg(occurrences=("commit", "size"), valid_occurrences=("valid", "sum"),
                    unique_secrets=("secret", "nunique"))
               .reset_index()
               .astype({"occurrences": "int64", "valid_occurrences": "Int64", "unique_secrets": "int64"}))
    if not f.validated:
        grouped = grouped.assign(valid_occurrences=pd.NA).astype({"valid_occurrences": "Int64"})
    grouped = grouped.assign(commits=f.commits_scanned).astype({"commits": "int64"})
    return (with_rates(grouped, count="occurrences")
            .sort_values(["occurrences", *keys], ascending=[False, *[True] * len(keys)], kind="stable")
            .reset_index(drop=True))


def by_extension(f: ScanFrames, detector: str | None = None) -> pd.DataFrame:
    """By file extension (text after the basename's last '.', lower case; ``(none)``)."""
    return _count_by(f, _of(f.findings, detector), ["extension"])


def by_directory(f: ScanFrames, detector: str | None = None) -> pd.DataFrame:
    """By top-level directory of the path (``(root)`` for files at the top)."""
    return _count_by(f, _of(f.findings, detector), ["top_directory"])


def by_validity(f: ScanFrames, detector: str | None = None) -> pd.DataFrame:
    """By validity and scope (live / test for valid secrets)."""
    return _count_by(f, _of(f.findings, detector), ["validity", "scope"])


def by_presence(f: ScanFrames, detector: str | None = None) -> pd.DataFrame:
    """By where each secret still is: at a branch tip, only at a tag tip, at another ref's tip, or only in history."""
    order = {p: i for i, p in enumerate(PRESENCE)}
    return (_count_by(f, _of(f.findings, detector), ["presence"])
            .sort_values("presence", key=lambda s: s.astype(str).map(order), kind="stable").reset_index(drop=True))


def by_author(f: ScanFrames, detector: str | None = None) -> pd.DataFrame:
    """Who introduced the secrets: per author (name and e-mail as the commits say them), occurrences, unique secrets,
    valid ones (NA when not checked), commits, repositories, and the first and last introduction; most first."""
    found = _with_secret(_of(f.findings, detector)).assign(valid=lambda x: _valid(x))
    found = found.assign(author_name=found["author_name"].fillna(""))  # a store before schema 4: no name
    grouped = (found.groupby(["author_name", "author_email"], sort=False)
               .agg(occurrences=("commit", "size"), unique_secrets=("secret", "nunique"),
                    valid_unique_secrets=("secret", lambda s: int(s[found.loc[s.index, "valid"]].nunique())),
                    commits=("commit", "nunique"), repos=("repo", "nunique"),
                    first_introduced=("commit_time", "min"), last_introduced=("commit_time", "max"))
               .reset_index())
    grouped = grouped.astype({"author_name": "string", "author_email": "string", "occurrences": "int64",
                              "unique_secrets": "int64", "valid_unique_secrets": "Int64", "commits": "int64",
                              "repos": "int64", "first_introduced": TIME_DTYPE, "last_introduced": TIME_DTYPE})
    if not f.validated:
        grouped = grouped.assign(valid_unique_secrets=pd.NA).astype({"valid_unique_secrets": "Int64"})
    return (grouped.sort_values(["occurrences", "author_email"], ascending=[False, True], kind="stable")
            .reset_index(drop=True))


def exposure_summary(f: ScanFrames) -> pd.DataFrame:
    """How long secrets stayed at a ref tip, the ones still there counted too: per group (gone from every tip /
    still at a tip, until the scan) the number of secrets and the median, shortest and longest ``exposure`` as
    Timedeltas. A median of the removed ones alone would leave out the longest-lived (censoring); both are here."""
    s = f.secrets
    groups = {"gone from every tip (still in history)": s[~s["exposure_ongoing"]],
              "still at a ref tip (until the scan)": s[s["exposure_ongoing"]], "all secrets": s}
    def spans(how: str) -> pd.Series:
        values = [getattr(g["exposure"], how)() if len(g) else None for g in groups.values()]
        return pd.Series(pd.to_timedelta(values), dtype=DURATION)

    return pd.DataFrame({"secrets": pd.Series(list(groups), dtype="string"),
                         "count": pd.Series([len(g) for g in groups.values()], dtype="int64"),
                         "median": spans("median"), "shortest": spans("min"), "longest": spans("max")})


def by_year(f: ScanFrames, detector: str | None = None) -> pd.DataFrame:
    """Per year of the introducing commit (committer time): occurrences per million commits *of that year*."""
    found = _with_secret(_of(f.findings, detector))
    commits = f.commits.groupby(f.commits["commit_time"].dt.year.rename("year")).size().rename("commits")
    occ = found.groupby(found["commit_time"].dt.year.rename("year")).agg(
        occurrences=("commit", "size"), valid_occurrences=("validity", lambda v: int((v == VALID).sum())),
        unique_secrets=("secret", "nunique"))
    occ = occ.astype("int64")  # none found: the empty aggregates are of the text columns' dtype, not counts
    frame = (pd.concat([commits, occ], axis=1).fillna(0).reset_index()
             .astype({"year": "int64", "commits": "int64", "occurrences": "int64", "valid_occurrences": "Int64",
                      "unique_secrets": "int64"}))
    if not f.validated:
        frame = frame.assign(valid_occurrences=pd.NA).astype({"valid_occurrences": "Int64"})
    return with_rates(frame.sort_values("year").reset_index(drop=True), count="occurrences")


def dated(f: ScanFrames) -> tuple[pd.Series, pd.Series]:
    """Which commits and findings a timeline places: committer times from 1970 to a day after the scan. A commit
    object may claim any time (skewed clocks, broken or hostile tools: years 1 and 9999 happen); the rest count
    in every rate, but a time axis stretched over millennia would show nothing."""
    end = f.repos["scanned_at"].max() if len(f.repos) else pd.NaT
    end = (pd.Timestamp.now(tz="UTC") if pd.isna(end) else end) + pd.Timedelta(days=1)
    start = pd.Timestamp("1970-01-01", tz="UTC")
    return (f.commits["commit_time"].between(start, end).fillna(False),
            f.findings["commit_time"].between(start, end).fillna(False))


def timeline(f: ScanFrames, freq: str = "M") -> pd.DataFrame:
    """Per calendar period (``M`` month, ``W`` week, ``D`` day) from the first to the last commit: commits made,
    occurrences (and valid ones) introduced, by committer time. ``period`` is the period's first day (UTC).
    Commits and findings ``dated`` outside 1970 … the scan are left out."""
    cols = {"period": "datetime64[s]", "commits": "int64", "occurrences": "int64", "valid_occurrences": "int64"}
    in_commits, in_findings = dated(f)
    commits_f, findings_f = f.commits[in_commits], f.findings[in_findings]
    times = pd.concat([commits_f["commit_time"], findings_f["commit_time"]]).dropna()
    if times.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in cols.items()})

    def start(s: pd.Series) -> pd.Series:
        return s.dt.tz_localize(None).dt.to_period(freq).dt.start_time.astype("datetime64[s]")

    span = pd.period_range(times.min().tz_localize(None), times.max().tz_localize(None), freq=freq)
    index = pd.Index(span.start_time.astype("datetime64[s]"), name="period")
    commits = commits_f.groupby(start(commits_f["commit_time"])).size()
    found = findings_f.assign(valid=_valid(findings_f))
    occ = found.groupby(start(found["commit_time"])).agg(occurrences=("commit", "size"),
                                                          valid_occurrences=("valid", "sum"))
    return (pd.DataFrame({"commits": commits.reindex(index, fill_value=0),
                          "occurrences": occ["occurrences"].reindex(index, fill_value=0),
                          "valid_occurrences": occ["valid_occurrences"].reindex(index, fill_value=0)})
            .reset_index().astype(cols))


def top_paths(f: ScanFrames, n: int = 20) -> pd.DataFrame:
    """The ``n`` (repository, path) pairs with the most occurrences; whether a secret still sits there at a tip, and
    at which refs' tips by kind (``at_tips``: a pull-request ref is not the project's code)."""
    at_tip = set(zip(f.tips["repo"], f.tips["path"], strict=True))
    refs = f.tips.groupby(["repo", "path"])["ref"].agg(list).to_dict() if len(f.tips) else {}
    grouped = (_with_secret(f.findings).groupby(["repo", "path"])
               .agg(occurrences=("commit", "size"), unique_secrets=("secret", "nunique"),
                    first_introduced=("commit_time", "min"), last_introduced=("commit_time", "max"))
               .reset_index())
    still = [(r, p) in at_tip for r, p in zip(grouped["repo"], grouped["path"], strict=True)]
    where = [refs_by_kind(refs.get((r, p), [])) or "none" for r, p in zip(grouped["repo"], grouped["path"],
                                                                            strict=True)]
    return (grouped.assign(still_at_tip=pd.Series(still, index=grouped.index, dtype="bool"),
                           at_tips=pd.Series(where, index=grouped.index, dtype="string"))
            .astype({"occurrences": "int64", "unique_secrets": "int64"})
            .sort_values(["occurrences", "repo", "path"], ascending=[False, True, True], kind="stable")
            .head(n).reset_index(drop=True))


def lifecycle(f: ScanFrames, secret: str) -> pd.DataFrame:
    """One secret (its secret_sha256, a prefix of it, or its client_id): where each occurrence began and ended.

    ``exposure`` (a Timedelta) runs to the removal, or for an occurrence nothing removed (``exposure_ongoing``) to
    its repository's scan — as ``secrets`` counts it; ``exposure_days`` is the same in days."""
    match = (f.findings["secret_sha256"].str.startswith(secret) | (f.findings["client_id"] == secret)).fillna(False)
    cols = ["secret_sha256", "client_id", "client_secret", "validity", "scope", "repo", "path", "commit",
            "author_name", "author_email", "commit_message", "commit_time", "removed_commit", "removed_time",
            "presence", "at_tip"]
    rows = f.findings.loc[match, cols].sort_values(["commit_time", "commit", "path"]).reset_index(drop=True)
    scanned = rows["repo"].map(f.repos.set_index("repo")["scanned_at"]).astype(TIME_DTYPE)
    ongoing = rows["removed_time"].isna()
    span = rows["removed_time"].where(~ongoing, scanned) - rows["commit_time"]
    return rows.assign(exposure_ongoing=ongoing.astype("bool"), exposure=span.astype(DURATION),
                       exposure_days=(span.dt.total_seconds() / 86400).astype("Float64"))


def by_ref_kind(f: ScanFrames) -> pd.DataFrame:
    """Commits by the kind of ref that reaches them (``models.REACH``: branches and tags / pull requests only /
    other refs only) and the occurrences their commits introduce, each kind its own denominator: leave the
    pull-request row out to count the project's history alone."""
    commits = f.commits["reach"].fillna(REACH[0]).value_counts()
    found = _with_secret(f.findings)
    rows = [{"reach": kind, "commits": int(commits.get(kind, 0)),
             "occurrences": int((found["reach"] == kind).fillna(False).sum()),
             "unique_secrets": int(found.loc[(found["reach"] == kind).fillna(False), "secret"].nunique())}
            for kind in REACH]
    frame = pd.DataFrame(rows, columns=["reach", "commits", "occurrences", "unique_secrets"]).astype(
        {"reach": "string", "commits": "int64", "occurrences": "int64", "unique_secrets": "int64"})
    total = max(int(frame["commits"].sum()), 1)
    return with_rates(frame.assign(share_of_commits=(frame["commits"] / total).astype("Float64")),
                      count="occurrences")


# -- what to do ------------------------------------------------------------------------------------------------
RISKS = ("valid, at a branch tip", "valid, only in history", "unchecked", "invalid")  # highest first
ROTATE_NOW, ROTATE_HISTORY, NOTHING = "rotate now", "rotate — still in history", "nothing to do"
ACTION_COLUMNS = {"risk": "int64", "action": "string", "repo": "string", "location": "string", "commit": "string",
                  "author": "string", "author_name": "string", "commit_message": "string",
                  "introduced_time": TIME_DTYPE, "refs": "string", "validity": "string",
                  "checked_at": TIME_DTYPE, "client_id": "string", "client_secret": "string",
                  "occurrences": "int64", "secret_sha256": "string", "detector": "string"}


def _risk(validity: str, at_branch: bool) -> tuple[int, str]:
    """(rank in RISKS, action). A secret out of every tip is still in the history anyone can clone: a live one is
    rotated all the same; only an invalid one needs nothing. Unchecked (or failed to check) is treated as live."""
    if validity == VALID:
        return (0, ROTATE_NOW) if at_branch else (1, ROTATE_HISTORY)
    if validity == Validity.INVALID.value:
        return 3, NOTHING
    return 2, ROTATE_NOW if at_branch else ROTATE_HISTORY


def actions(f: ScanFrames) -> pd.DataFrame:
    """What to do, one row per secret, highest risk first (RISKS; then earliest introduced): the repository (short
    name), where it was first introduced (path:line, commit, author's e-mail and name, the commit's message), the
    refs whose tips still hold it by kind
    (branch / tag / pull request / other), its validity and when that was checked, and the action."""
    found = f.findings.sort_values(["commit_time", "author_time", "commit", "path", "line"], kind="stable")
    tips = f.tips.groupby(["secret_sha256"])["ref"].agg(lambda r: sorted(set(r)))
    rows = []
    for (sha, detector), group in found.groupby(["secret_sha256", "detector"], sort=False):
        first = group.iloc[0]
        refs = list(tips.get(sha, []))
        at_branch = any(ref_kind(r) == "branch" for r in refs)
        validity = str(first["validity"])
        rank, action = _risk(validity, at_branch)
        repos = sorted({short_repo(str(r)) for r in group["repo"]})
        more = len(group) - 1
        rows.append({
            "risk": rank + 1, "action": action, "repo": ", ".join(repos),
            "location": f"{first['path']}:{int(first['line'])}" + (f" (+{more} more)" if more else ""),
            "commit": str(first["commit"])[:10], "author": first["author_email"],
            "author_name": None if pd.isna(first["author_name"]) else first["author_name"],
            "commit_message": None if pd.isna(first["commit_message"]) else first["commit_message"],
            "introduced_time": first["commit_time"], "refs": refs_by_kind(refs) or "none (history only)",
            "validity": validity, "checked_at": first["checked_at"], "client_id": first["client_id"],
            "client_secret": first["client_secret"], "occurrences": len(group), "secret_sha256": sha,
            "detector": detector})
    frame = pd.DataFrame(rows, columns=list(ACTION_COLUMNS))
    frame = frame.astype({c: t for c, t in ACTION_COLUMNS.items() if t != TIME_DTYPE})
    frame = frame.assign(**{c: pd.to_datetime(frame[c], utc=True).astype(TIME_DTYPE)
                            for c, t in ACTION_COLUMNS.items() if t == TIME_DTYPE})
    return frame.sort_values(["risk", "introduced_time", "repo", "location"], kind="stable").reset_index(drop=True)


def tables(f: ScanFrames, *, top: int = 20) -> dict[str, pd.DataFrame]:
    """Every frame the report shows or exports, by name (secrets redacted: they come from the store)."""
    return {"actions": actions(f),
            "findings": f.findings, "secrets": f.secrets, "commits": f.commits, "repos": f.repos, "tips": f.tips,
            "removals": f.removals, "detectors": f.detectors, "headline": headline(f), "rates": rates(f),
            "per_repository": per_repository(f), "pooled": pooled(f), "per_detector": per_detector(f),
            "compare": compare(f), "references": references(f), "by_author": by_author(f),
            "exposure": exposure_summary(f), "by_year": by_year(f),
            "by_extension": by_extension(f), "by_directory": by_directory(f), "by_validity": by_validity(f),
            "by_presence": by_presence(f),
            "by_ref_kind": by_ref_kind(f), "timeline": timeline(f, timeline_freq(f)), "top_paths": top_paths(f, top)}


def timeline_freq(f: ScanFrames) -> str:
    """Months, unless the history spans under about four of them: then weeks (or days under three weeks)."""
    times = f.commits["commit_time"][dated(f)[0]].dropna()
    days = (times.max() - times.min()).days if len(times) else 0
    return "M" if days >= 120 else "W" if days >= 21 else "D"
