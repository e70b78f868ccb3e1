"""The report's tables (auditor.report) in; matplotlib Figures out, one question each, for report.html and notebooks.

Figures are made with ``matplotlib.figure.Figure`` (no pyplot, so no global backend state): saving one renders
it with Agg, and a notebook with ``%matplotlib inline`` shows it as the cell's value.
"""

from __future__ import annotations

import io
import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from auditor.models import short_repo
from auditor.report.stats import MILLION, poisson_limits

LABELS = {
    "occurrences": "occurrences",
    "valid_occurrences": "valid occurrences",
    "valid_live_occurrences": "valid, live",
    "valid_test_occurrences": "valid, test",
    "commits_with_occurrences": "commits with ≥1 occurrence",
    "unique_secrets": "unique secrets",
    "valid_unique_secrets": "valid unique secrets",
}
# One meaning per colour: blue counts everything, red is valid (live), orange still at a ref tip, grey is context
# (commits, small repositories, thin years), green the published reference, black what is pooled.
COLORS = {"all": "#4c72b0", "valid": "#c44e52", "tip": "#dd8452", "other": "#8c8c8c", "ref": "#55a868",
          "pooled": "#222222"}
DPI = 160  # sharp on HiDPI screens
SMALL_REPO = 1000  # commits: a repository under this is greyed (its interval spans decades)
THIN_YEAR = 500  # commits: a year under this is shaded


def _figure(width: float = 8.0, height: float = 4.0) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig, fig.add_subplot()


def _empty(ax: object, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=COLORS["other"])
    ax.set_xticks([])
    ax.set_yticks([])


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes (rendered by Agg)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _arrays(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(table[c].astype("float64").to_numpy(na_value=np.nan) for c in ("rate", "rate_low", "rate_high"))


def _log_limits(*values: np.ndarray | list[float]) -> tuple[float, float]:
    """Limits of a log axis holding every positive value, half a decade of room on each side."""
    got = np.concatenate([np.asarray(v, dtype="float64").ravel() for v in values])
    got = got[np.isfinite(got) & (got > 0)]
    if not got.size:
        return 0.1, 10.0
    return 10 ** (np.floor(np.log10(got.min()) - 0.3)), 10 ** (np.ceil(np.log10(got.max()) + 0.3))


def _dots(ax: object, y: np.ndarray, table: pd.DataFrame, colors: list[str], floor: float,
          markers: list[str] | None = None) -> None:
    """Rate as a dot with its 95% interval on a log x-axis; a zero count (no dot on a log axis) as its upper bound:
    a line from the axis' left edge ending in '<'."""
    rate, low, high = _arrays(table)
    for i, (r, lo, hi) in enumerate(zip(rate, low, high, strict=True)):
        if np.isnan(r):
            continue
        if r > 0:
            ax.plot([lo, hi], [y[i], y[i]], color=colors[i], lw=1.5)
            ax.plot([r], [y[i]], marker=(markers or ["o"] * len(y))[i], color=colors[i], ms=6)
        else:
            ax.plot([floor, hi], [y[i], y[i]], color=colors[i], lw=1.5, ls=":")
            ax.plot([hi], [y[i]], marker="<", color=colors[i], ms=6)
            ax.annotate(f"0 found (< {hi:,.0f})", (hi, y[i]), xytext=(6, 0), textcoords="offset points",
                        va="center", fontsize="small", color=colors[i])


def headline_rates(headline: pd.DataFrame, references: dict[str, float] | None = None, note: str | None = None
                   ) -> Figure:
    """Rates per million commits with their 95% intervals on a log axis (rates span decades); the published
    references, which count occurrences, drawn on the occurrences row only; ``note`` (the population they count)
    under their legend."""
    shown = headline[headline["rate"].notna()].reset_index(drop=True)
    fig, ax = _figure(8, 1.2 + 0.42 * max(len(shown), 1))
    if shown.empty:
        _empty(ax, "no rate: no commit scanned")
        return fig
    refs = references or {}
    rate, low, high = _arrays(shown)
    lo, hi = _log_limits(rate, low, high, list(refs.values()), high[rate == 0] * 100)  # room for "0 found (< …)"
    y = np.arange(len(shown))
    _dots(ax, y, shown, [COLORS["all"]] * len(shown), lo)
    occ = [i for i, m in enumerate(shown["measure"]) if m == "occurrences"]
    for i, (label, value) in enumerate(refs.items()):
        for row in occ:
            ax.plot([value, value], [row - 0.38, row + 0.38], color=COLORS["ref"], lw=2,
                    ls=("-", "--", ":")[i % 3], label=f"{label}: {value:g} occurrences")
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_yticks(y, [LABELS.get(m, m) for m in shown["measure"]])
    ax.set_ylim(len(shown) - 0.5, -0.5)
    ax.grid(axis="x", which="major", color="#e5e5e5")
    if refs and occ:
        legend = ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=1, fontsize="small",
                           frameon=False, title=None if note is None else textwrap.fill(note, 90),
                           title_fontsize="x-small")
        legend.get_title().set_color(COLORS["other"])
    ax.set_xlabel("per million commits, log scale (dot: rate; line: exact 95% Poisson interval)")
    ax.set_title("Rates per million commits")
    return fig


def timeline(table: pd.DataFrame, validated: bool = True) -> Figure:
    """Occurrences introduced per period (valid ones highlighted when validity was checked), with the commits made
    in each; counts from zero, in whole numbers."""
    fig, ax = _figure(9, 3.8)
    if table.empty:
        _empty(ax, "no commit")
        return fig
    x = list(pd.to_datetime(table["period"]).dt.to_pydatetime())
    step = (x[1] - x[0]).days if len(x) > 1 else 30
    unit = {1: "day", 7: "week"}.get(step, "month")
    width = step * 0.85
    ax.bar(x, table["occurrences"], width=width, color=COLORS["all"], label="occurrences introduced", align="edge")
    if validated:
        ax.bar(x, table["valid_occurrences"], width=width, color=COLORS["valid"], label="of them valid",
               align="edge")
    ax.set_ylabel("occurrences introduced")
    ax.set_ylim(0, max(1, int(table["occurrences"].max())) * 1.1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    other = ax.twinx()
    other.plot([d + pd.Timedelta(days=width / 2) for d in x], table["commits"], color=COLORS["other"], lw=1,
               marker=".", label="commits made")
    other.set_ylabel(f"commits per {unit}", color=COLORS["other"])
    other.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()[0] + other.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="best", fontsize="small", framealpha=0.9)
    ax.set_title(f"Introductions per {unit}")
    fig.autofmt_xdate()
    return fig


def exposure(secrets: pd.DataFrame) -> Figure:
    """How long each secret stayed in the history: removed ones, and ones still at a ref tip (until the scan)."""
    fig, ax = _figure(8, 3.6)
    days = secrets["exposure_days"].astype("float64")
    known = secrets[days.notna()]
    if known.empty:
        _empty(ax, "no secret")
        return fig
    values = known["exposure_days"].astype("float64").clip(lower=1 / 24)  # under an hour: shown at one hour
    bins = np.logspace(np.log10(values.min()) - 0.05, np.log10(values.max()) + 0.05, 16)
    ongoing = known["exposure_ongoing"].to_numpy(dtype=bool)
    ax.hist([values[~ongoing], values[ongoing]], bins=bins, stacked=True,
            color=[COLORS["all"], COLORS["tip"]],
            label=[f"gone from every tip, still in history ({(~ongoing).sum()})",
                   f"still at a ref tip, until the scan ({ongoing.sum()})"])
    ax.set_xscale("log")
    ax.set_xlabel("days at a ref tip, log scale: first introduction → last removal from a tip, or → scan")
    ax.set_ylabel("secrets")
    ax.legend(fontsize="small")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Time at a ref tip per secret (all remain in history)")
    return fig


def validity(table: pd.DataFrame) -> Figure:
    """Occurrences and unique secrets per validity (and scope)."""
    fig, ax = _figure(7, 3.2)
    if table.empty:
        _empty(ax, "no occurrence")
        return fig
    labels = [v if pd.isna(s) else f"{v} / {s}" for v, s in zip(table["validity"], table["scope"], strict=True)]
    y = np.arange(len(labels))
    ax.barh(y - 0.2, table["occurrences"], height=0.4, color=COLORS["all"], label="occurrences")
    ax.barh(y + 0.2, table["unique_secrets"], height=0.4, color=COLORS["other"], label="unique secrets")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small")
    ax.set_title("Validity")
    return fig


def top_paths(table: pd.DataFrame, several_repos: bool = False) -> Figure:
    """The paths with the most occurrences (still holding a secret at a tip: orange); labels cut in the middle, so
    the repository and the file name both show."""
    fig, ax = _figure(9, max(2.5, 0.3 * len(table) + 1))
    if table.empty:
        _empty(ax, "no occurrence")
        return fig
    labels = [f"{short_repo(str(r))}: {p}" if several_repos else str(p)
              for r, p in zip(table["repo"], table["path"], strict=True)]
    colors = [COLORS["tip"] if t else COLORS["all"] for t in table["still_at_tip"]]
    y = np.arange(len(labels))
    ax.barh(y, table["occurrences"], color=colors)
    ax.set_yticks(y, [middle(lb, 60) for lb in labels], fontsize="small")
    ax.invert_yaxis()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("occurrences (orange: a secret is still there at a ref tip)")
    ax.set_title("Top paths")
    return fig


def by_year(table: pd.DataFrame) -> Figure:
    """Occurrences per million commits of each year with 95% intervals, on a log axis (a year of 3 commits has an
    upper bound near a million); years under THIN_YEAR commits shaded and their points grey; a year with none found
    shows its upper bound only ('v')."""
    fig, ax = _figure(8, 3.4)
    if table.empty:
        _empty(ax, "no commit")
        return fig
    rate, low, high = _arrays(table)
    years = table["year"].to_numpy()
    thin = table["commits"].to_numpy() < THIN_YEAR
    lo, hi = _log_limits(rate, low, high)
    for year, r, lw, up, is_thin in zip(years, rate, low, high, thin, strict=True):
        color = COLORS["other"] if is_thin else COLORS["all"]
        if is_thin:
            ax.axvspan(year - 0.5, year + 0.5, color="#f0f0f0", zorder=0)
        if np.isnan(r):
            continue
        if r > 0:
            ax.plot([year, year], [lw, up], color=color, lw=1.5)
            ax.plot([year], [r], "o", color=color)
        else:
            ax.plot([year], [up], "v", color=color, ms=5)
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ax.set_xticks(years.tolist(), [str(y) for y in years], rotation=45 if len(years) > 12 else 0)
    ax.set_ylabel("occurrences per million commits (log)")
    ax.set_title(f"Rate by year of introduction (shaded: under {THIN_YEAR} commits; v: none found, upper bound)")
    return fig


def middle(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width`` characters (both ends are what tell names apart)."""
    if len(text) <= width:
        return text
    keep = width - 1
    return text[:keep // 2] + "…" + text[-(keep - keep // 2):]


def repositories(per_repository: pd.DataFrame, measure: str = "occurrences", reference: float | None = None,
                 pooled: pd.DataFrame | None = None) -> Figure:
    """One measure's rate per repository with 95% intervals on a log axis, repositories by commits (most first,
    short names; under SMALL_REPO commits greyed), the pooled rate last in black, the reference when it compares
    (occurrences)."""
    table = per_repository[(per_repository["measure"] == measure)
                           & (per_repository["repo"] != "(all repositories)")]
    table = table.sort_values(["commits", "repo"], ascending=[False, True], kind="stable").reset_index(drop=True)
    rows = [table]
    if pooled is not None and len(table) > 1:
        got = pooled[pooled["measure"] == measure][["count", "commits", "rate", "rate_low", "rate_high"]]
        rows.append(got.assign(repo=f"pooled ({len(table)} repositories)"))
    shown = pd.concat(rows, ignore_index=True) if len(rows) > 1 else table
    fig, ax = _figure(8, max(2.2, 0.38 * len(shown) + 1.4))
    if shown.empty or shown["rate"].isna().all():
        _empty(ax, "no rate: no commit scanned")
        return fig
    is_pooled = [i >= len(table) for i in range(len(shown))]
    colors = [COLORS["pooled"] if p else COLORS["other"] if int(n) < SMALL_REPO else COLORS["all"]
              for p, n in zip(is_pooled, shown["commits"], strict=True)]
    rate, low, high = _arrays(shown)
    lo, hi = _log_limits(rate, low, high, [reference] if reference else [], high[rate == 0] * 100)
    y = np.arange(len(shown))
    _dots(ax, y, shown, colors, lo, ["D" if p else "o" for p in is_pooled])
    if reference and measure == "occurrences":
        ax.axvline(reference, color=COLORS["ref"], lw=1.5, ls="--", label=f"reference: {reference:g}")
        ax.legend(loc="best", fontsize="small", framealpha=0.9)
    labels = [f"{middle(short_repo(str(r)), 32)} ({int(n):,})" if not p else str(r)
              for r, n, p in zip(shown["repo"], shown["commits"], is_pooled, strict=True)]
    ax.set_yticks(y, labels, fontsize="small")
    ax.set_ylim(len(shown) - 0.5, -0.5)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.grid(axis="x", which="major", color="#e5e5e5")
    ax.set_xlabel(f"{LABELS.get(measure, measure)} per million commits, log scale (95% interval); "
                  f"(commits); grey: under {SMALL_REPO:,} commits")
    ax.set_title("Per repository")
    return fig


def funnel(per_repository: pd.DataFrame, reference: float | None = None, label: str | None = None,
           measure: str = "occurrences") -> Figure:
    """A funnel plot: each repository's rate against its commits (log axes), the reference as a line and, around
    it, the 95% range of a Poisson count at the reference rate for that many commits (counts are whole: the limits
    step, and where even one occurrence lies above them the upper line is absent). A repository with none found sits
    on the floor ('v'); small repositories (under SMALL_REPO commits) are grey: their rates say little."""
    table = per_repository[(per_repository["measure"] == measure) & per_repository["rate"].notna()]
    fig, ax = _figure(8, 4.6)
    if table.empty:
        _empty(ax, "no rate: no commit scanned")
        return fig
    commits = table["commits"].astype("float64").to_numpy()
    rate = table["rate"].astype("float64").to_numpy()
    xs = np.logspace(np.log10(commits.min()) - 0.3, np.log10(commits.max()) + 0.3, 160)
    limits = np.array([poisson_limits(reference * x / MILLION) for x in xs]) if reference else np.empty((0, 2))
    low = limits[:, 0] / xs * MILLION if reference else np.array([])
    high = limits[:, 1] / xs * MILLION if reference else np.array([])
    positive = np.concatenate([rate[rate > 0], low[low > 0], high[high > 0], [reference] if reference else []])
    floor = positive.min() / 4 if positive.size else 0.1
    if reference:
        ax.axhline(reference, color=COLORS["ref"], lw=1.5, label=f"{label or 'reference'}: {reference:g}")
        # where the upper limit is 0, a single occurrence already lies above it: no line there
        ax.plot(xs, np.where(high > 0, high, np.nan), color=COLORS["ref"], ls="--", lw=1,
                label="95% range of a Poisson count at the reference rate")
        ax.plot(xs, np.where(low > 0, low, np.nan), color=COLORS["ref"], ls="--", lw=1)
    small = commits < SMALL_REPO
    colors = np.where(small, COLORS["other"], COLORS["all"])
    found = rate > 0
    ax.scatter(commits[found], rate[found], c=colors[found], s=28, zorder=3, label="repository (grey: small)")
    ax.scatter(commits[~found], np.full((~found).sum(), floor), c=colors[~found], marker="v", s=28, zorder=3,
               label="repository with none found")
    if len(table) <= 15:
        for x, y, name in zip(commits, np.where(found, rate, floor), table["repo"], strict=True):
            ax.annotate(middle(short_repo(str(name)), 24), (x, y), xytext=(4, 3), textcoords="offset points",
                        fontsize="x-small", color="#444444")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(floor / 2, max(positive.max() if positive.size else 1.0, floor) * 3)
    ax.set_xlabel("commits scanned in the repository (log)")
    ax.set_ylabel(f"{LABELS.get(measure, measure)} per million commits (log)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize="small", frameon=False)
    ax.grid(which="major", color="#eeeeee")
    ax.set_title("Funnel plot: rate against commits")
    return fig
