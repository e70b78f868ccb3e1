"""A scan directory in; report.md, a self-contained report.html (plots as base64 PNG), plots/ and frames/ out.

Both documents are rendered from one list of sections, so they always say the same thing. Everything shown comes
from the store, where secrets are redacted; every cell is HTML-escaped (paths are data, not markup).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from auditor import sarif
from auditor.models import REACH, short_repo
from auditor.outdir import OutDir, private_file, write_private
from auditor.report import frames, measures, plots
from auditor.report.frames import ScanFrames
from auditor.report.stats import CLUSTER_METHOD, METHOD

PLOTS = ("rates", "repositories", "funnel", "timeline", "exposure", "validity", "by_year", "top_paths")
NA = "n/a"
_UNITS = {"M": "month", "W": "week", "D": "day"}


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    text: tuple[str, ...] = ()
    table: pd.DataFrame | None = None
    plot: str | None = None
    level: int = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """What ``build_report`` wrote, and the headline it printed."""

    directory: Path
    markdown: Path
    html: Path
    plots: dict[str, Path]
    frames: list[Path]
    headline: pd.DataFrame
    per_detector: pd.DataFrame | None = None  # measures.per_detector: what each reference is compared with
    references: list[tuple[str, str, float]] = field(default_factory=list)  # (detector, source, value)
    commits: int = 0

    def lines(self) -> list[str]:
        """The headline as text lines, for the terminal."""
        out = [f"{label}: {line}" for label, line in _headline_lines(self.headline)]
        out += _reference_lines(self.per_detector if self.per_detector is not None else self.headline,
                                self.references)
        return out


def _num(value: object, digits: int = 2) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return NA
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and digits == 0):
        return f"{int(value):,}"
    return f"{float(value):,.{digits}f}"


def _rate_text(row: pd.Series) -> str:
    if pd.isna(row["rate"]):
        return NA
    return f"{_num(row['rate'])} [{_num(row['rate_low'])}–{_num(row['rate_high'])}]"


def _headline_lines(headline: pd.DataFrame) -> list[tuple[str, str]]:
    out = []
    for _, row in headline.iterrows():
        label = plots.LABELS.get(row["measure"], row["measure"])
        commits = int(row["commits"])
        if pd.isna(row["count"]):
            text = "n/a: validity not checked (the scan ran with --no-validate)"
        elif not commits:
            text = f"{int(row['count']):,} in 0 commits → n/a (no commit scanned)"
        else:
            text = (f"{int(row['count']):,} in {commits:,} commits → {_num(row['rate'])} per million commits "
                    f"(95% CI {_num(row['rate_low'])}–{_num(row['rate_high'])})")
        out.append((label, text))
    return out


def _reference_lines(rates: pd.DataFrame, references: list[tuple[str, str, float]]) -> list[str]:
    """Each reference against its own detector's rate (``rates``: measures.per_detector; a headline frame of one
    detector stands for it)."""
    if "detector" in rates:
        by = rates.set_index("detector")
    else:
        by = None
        occ = rates[rates["measure"] == "occurrences"].iloc[0]
    out = []
    for det, source, value in references:
        row = occ if by is None else (by.loc[det] if det in by.index else None)
        if row is None or pd.isna(row["rate"]):
            where = "no rate to compare: no commit scanned"
        else:
            side = ("inside" if row["rate_low"] <= value <= row["rate_high"]
                    else "below" if value < row["rate_low"] else "above")
            count = int(row["occurrences"] if "occurrences" in row.index else row["count"])
            where = (f"{side} our 95% interval for {det} ({count:,} occurrences → {_num(row['rate'])} "
                     f"[{_num(row['rate_low'])}–{_num(row['rate_high'])}])")
        out.append(f"published reference for {det} ({source}): {value:g} occurrences per million commits — {where}")
    return out


def _pooled_lines(pooled: pd.DataFrame) -> list[str]:
    """Occurrences pooled over several repositories, with both intervals (SPEC §10)."""
    occ = pooled[pooled["measure"] == "occurrences"]
    if occ.empty or int(occ.iloc[0]["repositories"]) < 2 or pd.isna(occ.iloc[0]["rate"]):
        return []
    r = occ.iloc[0]
    return [f"Pooled over {int(r['repositories']):,} repositories ({int(r['repos_with']):,} with at least one "
            f"occurrence): {_num(r['rate'])} occurrences per million commits; exact Poisson interval "
            f"{_num(r['rate_low'])}–{_num(r['rate_high'])}, which assumes independent occurrences; allowing for "
            f"occurrences clustering in a few repositories {_num(r['clustered_low'])}–{_num(r['clustered_high'])} "
            f"({CLUSTER_METHOD})."]


def _references(f: ScanFrames) -> list[tuple[str, str, float]]:
    """(detector, short label, figure) of every published reference, primary first."""
    refs = measures.references(f)
    return [(str(d), str(src), float(v)) for d, src, v in refs[["detector", "source", "value"]].itertuples(index=False)]


def _population(f: ScanFrames) -> str | None:
    """Under a plot's references: what they count (one line), and that a scan is not a sample of it."""
    refs = measures.references(f)
    if refs.empty:
        return None
    return (f"references count occurrences over {refs['population'].iloc[0]}; these repositories are not a sample "
            "of them")


def _citations(f: ScanFrames) -> list[str]:
    """Every reference in full (source, version, date read, address, population), and what it can be compared with."""
    refs = measures.references(f)
    if refs.empty:
        return []
    return [f"{d}: {c}." for d, c in zip(refs["detector"], refs["citation"], strict=True)] + [
        "A published figure counts occurrences over its own population (all public GitHub commits for GitGuardian); "
        "the repositories scanned here are a chosen set, not a sample of it: a difference describes them, not the "
        "population. data/reference_rates.csv holds these figures with their sources."]


# -- display tables -------------------------------------------------------------------------------------------
PLAIN = frozenset({"year", "line"})  # numbers shown without thousands separators


def _cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Every value as display text: NA → n/a, floats with 2 decimals, times to the minute, lists joined."""
    def one(v: object, plain: bool) -> str:
        if isinstance(v, list):
            return ", ".join(map(str, v))
        if isinstance(v, pd.Timestamp):
            return NA if pd.isna(v) else v.strftime("%Y-%m-%d %H:%M")
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, int) and plain:
            return str(v)
        if isinstance(v, float | int):
            return _num(v, 0 if isinstance(v, int) else 2)
        return NA if v is None or v is pd.NA or v is pd.NaT else str(v)
    return pd.DataFrame({c: [one(v, c in PLAIN) for v in frame[c].astype(object)] for c in frame.columns},
                        index=frame.index)


def _rates_wide(long: pd.DataFrame, key: str) -> pd.DataFrame:
    """measure-per-row rates → one row per ``key``: counts and 'rate [low–high]' per measure."""
    rows = []
    for name, part in long.groupby(key, sort=False):
        row: dict[str, object] = {key: name, "commits": int(part["commits"].iloc[0])}
        for _, r in part.iterrows():
            row[r["measure"]] = r["count"]
            row[f"{r['measure']} per million [95% CI]"] = _rate_text(r)
        rows.append(row)
    wanted = [key, "commits", "occurrences", "occurrences per million [95% CI]", "valid_occurrences",
              "valid_occurrences per million [95% CI]", "commits_with_occurrences per million [95% CI]",
              "unique_secrets", "unique_secrets per million [95% CI]"]
    return pd.DataFrame(rows, columns=wanted)


def _with_pooled(per_repository: pd.DataFrame, pooled: pd.DataFrame) -> pd.DataFrame:
    """The per-repository rates with the pooled ones as a last ``(all repositories)`` row, for display only."""
    cols = ["measure", "count", "commits", "rate", "rate_low", "rate_high"]
    return pd.concat([per_repository, pooled[cols].assign(repo="(all repositories)")], ignore_index=True)


def _compare_lines(compared: pd.DataFrame) -> list[str]:
    """Per detector with a reference, which repositories' intervals exclude it (``measures.compare``)."""
    out = []
    several = compared["detector"].nunique() > 1
    for det, rows in compared.groupby("detector", sort=False):
        if rows["reference"].isna().all():
            continue
        ref = float(rows["reference"].iloc[0])
        of = f"{det}: " if several else ""
        apart = rows[rows["excludes_reference"]]
        if apart.empty:
            out.append(f"{of}no repository's 95% interval excludes the reference ({ref:g}): none differs from it more "
                       "than chance explains.")
            continue
        names = ", ".join(f"{n} ({'higher' if w == 'below' else 'lower'})"
                          for n, w in zip(apart["name"], apart["reference_is"], strict=True))
        out.append(f"{of}{len(apart):,} of {len(rows):,} repositories have a 95% interval that excludes the "
                   f"reference ({ref:g}): {names}.")
    return out


def _short_names(frame: pd.DataFrame) -> pd.DataFrame:
    """The repo column as people name repositories (owner/name, a directory's name); the pooled row as it is."""
    return frame.assign(repo=[r if r == "(all repositories)" else short_repo(str(r)) for r in frame["repo"]])


def _with_ci(frame: pd.DataFrame, *, commits: bool = False) -> pd.DataFrame:
    """Rate columns → one 'rate [low–high]' text column; the denominator kept only when it varies by row."""
    shown = frame.assign(**{"per million commits [95% CI]": [_rate_text(r) for _, r in frame.iterrows()]})
    return shown.drop(columns=["rate", "rate_low", "rate_high", *([] if commits else ["commits"])])


# -- sections ---------------------------------------------------------------------------------------------------
def _regions(f: ScanFrames, summary: dict) -> tuple[str, ...]:
    """Which provider regions answered (from the store), and what the last scan says it did not ask."""
    answered = f.findings[f.findings["region"].notna()]
    per = answered.groupby("region")["secret_sha256"].nunique()
    lines = [f"Answered by the API host of region: {', '.join(f'{r} ({n:,} secrets)' for r, n in per.items())}."
             ] if len(per) else []
    for detector, about in (summary.get("detectors") or {}).items():
        if isinstance(about, dict) and about.get("regions_note"):
            lines.append(f"{detector}: {about['regions_note']}.")
    return tuple(lines)


def sections(f: ScanFrames, t: dict[str, pd.DataFrame], summary: dict | None = None) -> list[Section]:
    """The report, in order; each section may have a table and a plot (a name of PLOTS). ``summary``: the last
    summary.json, for what the store does not say (which regions the last scan asked)."""
    repos = len(f.repos)
    secrets = f.secrets
    removed = secrets[~secrets["exposure_ongoing"] & secrets["exposure_days"].notna()]
    gone_days = _num(removed["exposure_days"].astype("float64").median()) if len(removed) else NA
    headline = t["headline"].assign(**{"per million commits [95% CI]": [_rate_text(r) for _, r in
                                                                       t["headline"].iterrows()]})
    headline = headline.assign(measure=headline["measure"].map(lambda m: plots.LABELS.get(m, m)))[
        ["measure", "count", "commits", "per million commits [95% CI]"]]
    refs = _reference_lines(t["per_detector"], _references(f))
    shown_secrets = (secrets.sort_values(["occurrences", "introduced_time"], ascending=[False, True])
                     [["client_id", "client_secret", "validity", "scope", "occurrences", "paths", "introduced_time",
                       "removed_time", "exposure_days", "presence"]].head(50))
    per_detector = _with_ci(t["per_detector"])
    return [
        _what_to_do(f, t["actions"]),
        Section("Headline", (
            *([zero_sentence(f, t["headline"], _references(f))] if f.findings.empty else []),
            f"{repos} repositor{'y' if repos == 1 else 'ies'}, {f.commits_scanned:,} commits scanned, "
            f"{len(f.findings):,} occurrences of {len(secrets):,} unique secrets"
            f"{'' if f.validated else ' (validity not checked: valid rates are n/a)'}.",
            "An occurrence is a (commit, path, secret) where the commit introduces the secret at that path; each rate "
            "is a count divided by the commits scanned, × 10⁶.",
            f"Intervals: {METHOD}.",
        ), headline, "rates"),
        Section("Per detector", (
            "Occurrences and unique secrets of each detector, its rate per million commits with the exact 95% "
            "interval, and the published reference where one is known ('reference_is': where it lies against our "
            "interval).", *refs, *(() if refs else ("No published reference for these detectors.",)),
            *_citations(f)), per_detector, None),
        _coverage(f, t),
        Section("Per repository", ("Each repository's rates use its own commits; the last row pools them.",
                                   *_pooled_lines(t["pooled"]), *_compare_lines(t["compare"])),
                _short_names(_rates_wide(_with_pooled(t["per_repository"], t["pooled"]), "repo")), "repositories"),
        *([Section("Funnel plot", (
            "Each repository's rate against its commits (log axes), with the primary published reference and the "
            "range a Poisson count at that rate would fall in 95% of the time for that many commits: a repository "
            "outside the funnel differs from the reference more than chance explains; a small one cannot tell.",),
            None, "funnel", 3)] if len(f.repos) > 1 else []),
        Section("Timeline of introductions", (
            f"Occurrences introduced per {_UNITS[measures.timeline_freq(f)]} (committer time), and commits made.",
            *([f"{undated:,} commit(s) dated before 1970 or after the scan are left out of it (they count in "
               "every rate)."] if (undated := int((~measures.dated(f)[0]).sum())) else [])),
                None, "timeline"),
        Section("Exposure time", (
            "From a secret's first introducing commit to the last commit that removed it from a ref tip (the first "
            "descendant whose blob at that path no longer holds it), or to the scan for secrets still at a ref tip. "
            "Gone from the tips is not gone: every secret here is still in the history anyone with a clone can read.",
            *([] if removed.empty else [
                f"{len(removed):,} secret(s) gone from every ref tip, after a median {gone_days} days — still in "
                "history: rotate the live ones."]),
            *([] if secrets.empty else [f"{int(secrets['still_at_tip'].sum()):,} still at a ref tip."]),
        ), None if secrets.empty else t["exposure"], None if secrets.empty else "exposure"),
        *([Section("Who introduced them", (
            "Per author as the introducing commits name them (the 20 with most occurrences; all in "
            "frames/by_author).",), t["by_author"].head(20), None)] if len(f.findings) else []),
        Section("Validity", _regions(f, summary or {}), _with_ci(t["by_validity"]),
                None if f.findings.empty else "validity"),
        Section("Still present, or only in history", (
            "Where each secret still is: at a branch tip, only at a tag tip, only at a pull-request ref's tip (a "
            "fork's contribution: refs/pull/*, refs/merge-requests/*), only at another ref's tip (e.g. a "
            "remote-tracking ref or the stash), or only in history.",), _with_ci(t["by_presence"]), None),
        Section("By year of introduction", (
            "Occurrences introduced in a year per million commits made that year. A year of few commits has a wide "
            f"interval (shaded in the plot under {plots.THIN_YEAR} commits); the table lists the years with "
            "occurrences (every year is in frames/by_year).",),
                _with_ci(t["by_year"][t["by_year"]["occurrences"] > 0], commits=True), "by_year"),
        Section("By file extension", (), _with_ci(t["by_extension"]), None),
        Section("By top-level directory", (), _with_ci(t["by_directory"]), None),
        Section("Top paths", (), _short_names(t["top_paths"]) if repos > 1 else t["top_paths"].drop(columns="repo"),
                None if f.findings.empty else "top_paths"),
        Section("Secrets (redacted; the 50 with most occurrences)", (), shown_secrets, None),
        Section("Files", ("Every frame is in `frames/` as CSV and Parquet; plots in `plots/`; "
                          "`auditor report DIR` rebuilds all of it from `audit.sqlite`.",), None, None),
    ]


ACTION_SHOWN = ["risk", "action", "repo", "location", "commit", "author", "refs", "validity", "checked_at",
                "client_id", "client_secret"]  # the author's name and the commit's message are in frames/actions


def _what_to_do(f: ScanFrames, actions: pd.DataFrame) -> Section:
    """The first section: one row per secret, highest risk first, with the action."""
    if actions.empty:
        n = f.commits_scanned
        return Section("What to do", (f"Nothing: no secret found in {n:,} commit{'' if n == 1 else 's'}.",), None,
                       None)
    n = actions["action"].value_counts()
    count = ", ".join(f"{int(n[a]):,} {a}" for a in (measures.ROTATE_NOW, measures.ROTATE_HISTORY, measures.NOTHING)
                      if a in n)
    text = [f"{len(actions):,} secret(s): {count}. Risk: " + "; ".join(
        f"{i} {r}" for i, r in enumerate(measures.RISKS, 1)) + ". Removing a secret from the tips does not end "
        "it: it stays in every clone's history, so a live one is rotated (revoked at the provider) either way.",
        "Refs are those whose tips still hold the secret: a pull-request ref (GitHub refs/pull/N, GitLab "
        "refs/merge-requests/N) is a contribution from a fork, still served by the host."]
    if not f.validated:
        text.append("Validity was not checked (--no-validate): every secret is treated as live.")
    shown = actions[ACTION_SHOWN].head(200)
    if len(actions) > len(shown):
        text.append(f"The {len(shown)} highest risks shown; all {len(actions):,} are in frames/actions.csv.")
    return Section("What to do", tuple(text), shown, None)


def _coverage(f: ScanFrames, t: dict[str, pd.DataFrame]) -> Section:
    """What was and was not read: shallow or partial clones, unreadable objects, blobs skipped by reason."""
    summary = OutDir(f.source).read_summary() if f.source is not None else {}
    repos = {r.get("repo"): r for r in summary.get("repos", []) if isinstance(r, dict)}
    text = []
    shallow = [str(r) for r in f.repos.loc[f.repos["shallow"], "repo"]]
    partial = [name for name, r in repos.items() if r.get("partial_clone")]
    errors = int(summary.get("error_count", len(summary.get("errors", []))) or 0)
    skipped = {k: int(v) for k, v in (summary.get("blobs_skipped") or {}).items() if v}
    if shallow:
        text.append(f"Shallow clone ({', '.join(map(short_repo, shallow))}): history before its boundary "
                    "was not seen; the audit is incomplete.")
    if partial:
        text.append(f"Partial clone ({', '.join(map(short_repo, partial))}): objects never fetched were not "
                    "scanned; clone without --filter for a full audit.")
    if errors:
        text.append(f"{errors:,} object(s) could not be read and were not scanned (summary.json → errors).")
    if skipped:
        text.append("Blobs skipped: " + ", ".join(f"{v:,} {k}" for k, v in sorted(skipped.items())) + ".")
    bounded = {k: int(v) for k, v in (summary.get("matches_bounded") or {}).items() if v}
    if bounded:
        text.append("Matches kept per blob are bounded, and these detectors hit the bound (their counts there are "
                    "lower bounds): " + ", ".join(f"{k} in {v:,} blob(s)" for k, v in sorted(bounded.items())) + ".")
    kinds = t["by_ref_kind"]
    pulls = int(kinds.loc[kinds["reach"] == REACH[1], "commits"].sum())
    others = int(kinds.loc[kinds["reach"] == REACH[2], "commits"].sum())
    if f.commits_scanned:
        text.append(f"Commits by the kind of ref that reaches them: {f.commits_scanned - pulls - others:,} from "
                    f"branches and tags, {pulls:,} only from pull-request refs (a fork's contributions, which the "
                    f"host serves), {others:,} only from other refs. Each kind is its own denominator below; the "
                    "rates above count them all.")
    if not (shallow or partial or errors or bounded):
        blobs = f", {int(summary['blobs_scanned']):,} blobs" if "blobs_scanned" in summary else ""
        text.insert(0, f"Complete: every object reachable from every ref was read ({f.commits_scanned:,} commits"
                       f"{blobs}).")
    else:
        text.insert(0, "Incomplete: what follows was not read, so the counts above are lower bounds.")
    shown = kinds.drop(columns=["share_of_commits"]) if f.commits_scanned else None
    return Section("Coverage", tuple(text), None if shown is None else _with_ci(shown, commits=True), None)


EMPTY_WHEN_CLEAN = ("exposure", "validity", "top_paths")  # plots of findings: a clean scan says so in words


def _figures(f: ScanFrames, t: dict[str, pd.DataFrame]) -> dict[str, object]:
    refs = _references(f) if len(f.detectors) == 1 else []
    primary = refs[0][2] if refs else None
    figures = {
        "rates": plots.headline_rates(t["headline"], {src: v for _, src, v in refs}, note=_population(f)),
        "repositories": plots.repositories(t["per_repository"], reference=primary, pooled=t["pooled"]),
        **({"funnel": plots.funnel(t["per_repository"], reference=primary,
                                   label=refs[0][1] if refs else None)} if len(f.repos) > 1 else {}),
        "timeline": plots.timeline(t["timeline"], validated=f.validated),
        "exposure": plots.exposure(f.secrets),
        "validity": plots.validity(t["by_validity"]),
        "by_year": plots.by_year(t["by_year"]),
        "top_paths": plots.top_paths(t["top_paths"], several_repos=len(f.repos) > 1),
    }
    if f.findings.empty:
        figures = {k: v for k, v in figures.items() if k not in EMPTY_WHEN_CLEAN}
    return figures


def zero_sentence(f: ScanFrames, headline: pd.DataFrame, references: list[tuple[str, str, float]]) -> str:
    """A scan with no finding, in one sentence: how many commits, the 95% upper bound, and how many commits a
    clean history needs before its upper bound falls below the (lowest) reference."""
    occ = headline[headline["measure"] == "occurrences"].iloc[0]
    n = f.commits_scanned
    if not n:
        return "Nothing was found, and no commit was scanned: no rate can be given."
    text = (f"No occurrences in {n:,} commits; the 95% upper bound is {_num(occ['rate_high'])} per million "
            "commits")
    primary: dict[str, float] = {}
    for det, _, value in references:  # primary (the current publication) first
        primary.setdefault(det, value)
    if primary:
        # a zero count's upper bound is poisson_interval(0)[1] / n × 10⁶: below a reference once n exceeds this
        needs = [(occ["rate_high"] * n / v, det, v) for det, v in sorted(primary.items(), key=lambda kv: kv[1])]
        text += "; to show a rate below the published one, a clean history needs about " + ", ".join(
            f"{need:,.0f} commits for {det} ({v:g}: {'more than this scan has' if n < need else 'this scan has them'})"
            for need, det, v in needs)
    return text + "."


def _md_escape(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(frame: pd.DataFrame) -> str:
    cells = _cells(frame)
    esc = _md_escape
    lines = ["| " + " | ".join(esc(c) for c in cells.columns) + " |", "|" + "---|" * len(cells.columns)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines)


def _html_table(frame: pd.DataFrame) -> str:
    """A table in a box that scrolls sideways when wider than the page (the page itself never does)."""
    return f'<div class="wide">{_cells(frame).to_html(index=False, escape=True, border=0, classes="t")}</div>'


def _markdown(secs: list[Section], title: str) -> str:
    out = [f"# {title}", ""]
    for s in secs:
        out += [f"{'#' * s.level} {s.title}", ""]
        out += [f"{p}\n" for p in s.text if p]
        if s.plot:
            out += [f"![{s.title}](plots/{s.plot}.png)", ""]
        if s.table is not None:
            out += [_md_table(s.table) if len(s.table) else "_(none)_", ""]
    return "\n".join(out)


_CSS = """body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table.t{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}table.t td,table.t th{padding:3px 8px;
border-bottom:1px solid #ddd;text-align:left}table.t th{background:#f3f3f3}img{max-width:100%}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}code{background:#f3f3f3;padding:0 3px}
div.wide{overflow-x:auto;max-width:100%}ul.toc{columns:3;font-size:14px;padding-left:1.2em}"""


def _code(text: str) -> str:
    """Markdown's `code` spans as <code> (the text is already escaped)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _html(secs: list[Section], title: str, images: dict[str, bytes]) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
           f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    anchors = {s.title: re.sub(r"[^a-z0-9]+", "-", s.title.lower()).strip("-") for s in secs}
    out.append('<nav><ul class="toc">' + "".join(f'<li><a href="#{anchors[s.title]}">{html.escape(s.title)}</a></li>'
                                                for s in secs if s.level == 2) + "</ul></nav>")
    for s in secs:
        out.append(f'<h{s.level} id="{anchors[s.title]}">{html.escape(s.title)}</h{s.level}>')
        out += [f"<p>{_code(html.escape(p))}</p>" for p in s.text if p]
        if s.plot:
            data = base64.b64encode(images[s.plot]).decode("ascii")
            out.append(f'<img alt="{html.escape(s.title)}" data-plot="{s.plot}" src="data:image/png;base64,{data}">')
        if s.table is not None:
            out.append(_html_table(s.table) if len(s.table) else "<p><em>(none)</em></p>")
    out.append("</body></html>")
    return "\n".join(out)


def export(named: dict[str, pd.DataFrame], directory: Path) -> list[Path]:
    """Each frame as ``NAME.csv`` and ``NAME.parquet`` in ``directory`` (0600, like every output).

    Parquet keeps the declared dtypes (lists stay lists); CSV joins list cells with ``;``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in named.items():
        flat = frame.assign(**{c: frame[c].map(lambda v: ";".join(v) if isinstance(v, list) else v)
                               for c in frame.columns if frame[c].dtype == object})
        csv, parquet = directory / f"{name}.csv", directory / f"{name}.parquet"
        for path in (csv, parquet):
            private_file(path)
        flat.to_csv(csv, index=False)
        frame.to_parquet(parquet, index=False)
        written += [csv, parquet]
    return written



def write_sarif(f: ScanFrames, path: Path) -> None:
    """findings.sarif from the store's findings (auditor.sarif; the scan writes the same from its results)."""
    rows = f.findings.astype(object).where(f.findings.notna(), None).to_dict("records")
    tip_refs = f.tips.groupby("secret_sha256")["ref"].agg(list).to_dict() if len(f.tips) else {}
    checked = dict(zip(f.findings["secret_sha256"], f.findings["checked_at"].astype(object), strict=True))
    detectors = list(zip(f.detectors["detector"].astype(str), f.detectors["name"].fillna(f.detectors["detector"])
                         .astype(str), strict=True))
    write_private(path, sarif.dumps(sarif.document(rows, tip_refs, detectors, checked)))


def build_report(directory: Path, *, top: int = 20) -> Report:
    """Load ``directory``'s store, write frames/, plots/, report.md and report.html; return what was written."""
    out = OutDir(directory)
    f = frames.load(directory)
    t = measures.tables(f, top=top)
    exported = export(t, out.frames)
    write_sarif(f, out.sarif)
    figures = _figures(f, t)
    images = {name: plots.png(fig) for name, fig in figures.items()}
    out.plots.mkdir(exist_ok=True)
    for name in set(PLOTS) - set(images):  # a plot an earlier report drew and this one does not
        (out.plots / f"{name}.png").unlink(missing_ok=True)
    plot_paths = {}
    for name, data in images.items():
        plot_paths[name] = out.plots / f"{name}.png"
        write_private(plot_paths[name], data)
    summary = out.read_summary()
    secs = sections(f, t, summary)
    if summary.get("interrupted"):
        secs.insert(0, Section("Incomplete", (
            "The last scan into this directory was interrupted (summary.json says so): what follows is partial. "
            "Rerun the same `auditor scan` command to complete it (it resumes), then `auditor report` again.",),
            None, None))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    names = [short_repo(str(r)) for r in f.repos["repo"]]
    title = ("auditor report — " + (", ".join(names) if 0 < len(names) <= 3 else
                                    f"{len(names)} repositories" if names else "no repository"))
    intro = Section("About this report", (f"Built {stamp} from {out.store}.",), None, None, 3)
    md, page = out.report_md, out.report_html
    write_private(md, _markdown([*secs, intro], title).encode("utf-8"))
    write_private(page, _html([*secs, intro], title, images).encode("utf-8"))
    return Report(directory=directory, markdown=md, html=page, plots=plot_paths, frames=exported,
                  headline=t["headline"], per_detector=t["per_detector"], references=_references(f),
                  commits=f.commits_scanned)
