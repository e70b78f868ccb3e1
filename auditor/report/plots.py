"""The report's tables (auditor.report) in; matplotlib Figures out, one question each, for report.html and notebooks.

Figures are made with ``matplotlib.figure.Figure`` (no pyplot, so no global backend state): saving one renders
it with Agg, and a notebook with ``%matplotlib inline`` shows it as the cell's value.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

LABELS = {
    "occurrences": "occurrences",
    "valid_occurrences": "valid occurrences",
    "valid_live_occurrences": "valid, live",
    "valid_test_occurrences": "valid, test",
    "commits_with_occurrences": "commits with ≥1 occurrence",
    "unique_secrets": "unique secrets",
    "valid_unique_secrets": "valid unique secrets",
}
COLORS = {"all": "#4c72b0", "valid": "#c44e52", "other": "#8c8c8c", "ref": "#55a868"}


def _figure(width: float = 8.0, height: float = 4.0) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
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


def _interval_bars(ax: object, labels: list[str], table: pd.DataFrame, color: str) -> None:
    y = np.arange(len(labels))
    rate = table["rate"].astype("float64").to_numpy(na_value=np.nan)
    low = table["rate_low"].astype("float64").to_numpy(na_value=np.nan)
    high = table["rate_high"].astype("float64").to_numpy(na_value=np.nan)
    ax.barh(y, np.nan_to_num(rate), color=color, alpha=0.75)
    ax.errorbar(np.nan_to_num(rate), y, xerr=[np.nan_to_num(rate - low), np.nan_to_num(high - rate)],
                fmt="none", ecolor="black", capsize=4, lw=1)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()


def headline_rates(headline: pd.DataFrame, references: dict[str, float] | None = None) -> Figure:
    """Rates per million commits with their 95% intervals; published references as vertical lines."""
    fig, ax = _figure(8, 3.6)
    shown = headline[headline["rate"].notna()]
    if shown.empty:
        _empty(ax, "no rate: no commit scanned")
        return fig
    _interval_bars(ax, [LABELS.get(m, m) for m in shown["measure"]], shown, COLORS["all"])
    for i, (label, value) in enumerate((references or {}).items()):
        ax.axvline(value, color=COLORS["ref"], ls=("--", ":", "-.")[i % 3], lw=1.5, label=f"{label}: {value:g}")
    if references:
        ax.legend(loc="lower right", fontsize="small")
    ax.set_xlabel("per million commits (bars: rate; whiskers: exact 95% Poisson interval)")
    ax.set_title("Rates per million commits")
    return fig


def timeline(table: pd.DataFrame) -> Figure:
    """Occurrences introduced per period (valid ones highlighted), with the commits made in each."""
    fig, ax = _figure(9, 3.8)
    if table.empty:
        _empty(ax, "no commit")
        return fig
    x = list(pd.to_datetime(table["period"]).dt.to_pydatetime())
    step = (x[1] - x[0]).days if len(x) > 1 else 30
    unit = {1: "day", 7: "week"}.get(step, "month")
    width = step * 0.85
    ax.bar(x, table["occurrences"], width=width, color=COLORS["all"], label="occurrences introduced", align="edge")
    ax.bar(x, table["valid_occurrences"], width=width, color=COLORS["valid"], label="of them valid", align="edge")
    ax.set_ylabel("occurrences introduced")
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
            color=[COLORS["all"], COLORS["valid"]],
            label=[f"removed ({(~ongoing).sum()})", f"still at a ref tip, until the scan ({ongoing.sum()})"])
    ax.set_xscale("log")
    ax.set_xlabel("exposure (days, log scale): first introduction → last removal, or → scan")
    ax.set_ylabel("secrets")
    ax.legend(fontsize="small")
    ax.set_title("Exposure time per secret")
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
    """The paths with the most occurrences (still holding a secret at a tip: red)."""
    fig, ax = _figure(9, max(2.5, 0.3 * len(table) + 1))
    if table.empty:
        _empty(ax, "no occurrence")
        return fig
    labels = [f"{r}: {p}" if several_repos else p for r, p in zip(table["repo"], table["path"], strict=True)]
    colors = [COLORS["valid"] if t else COLORS["all"] for t in table["still_at_tip"]]
    y = np.arange(len(labels))
    ax.barh(y, table["occurrences"], color=colors)
    ax.set_yticks(y, [lb if len(lb) <= 60 else "…" + lb[-59:] for lb in labels], fontsize="small")
    ax.invert_yaxis()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("occurrences (red: a secret is still there at a ref tip)")
    ax.set_title("Top paths")
    return fig


def by_year(table: pd.DataFrame) -> Figure:
    """Occurrences per million commits of each year, with 95% intervals."""
    fig, ax = _figure(8, 3.4)
    if table.empty:
        _empty(ax, "no commit")
        return fig
    rate = table["rate"].astype("float64").to_numpy(na_value=np.nan)
    low = table["rate_low"].astype("float64").to_numpy(na_value=np.nan)
    high = table["rate_high"].astype("float64").to_numpy(na_value=np.nan)
    ax.errorbar(table["year"], rate, yerr=[rate - low, high - rate], fmt="o-", color=COLORS["all"], capsize=4)
    ax.set_xticks(table["year"].tolist(), [str(y) for y in table["year"]])
    ax.set_ylabel("occurrences per million commits")
    ax.set_title("Rate by year of introduction")
    return fig


def repositories(per_repository: pd.DataFrame, measure: str = "occurrences") -> Figure:
    """One measure's rate per repository (and pooled), with 95% intervals."""
    table = per_repository[per_repository["measure"] == measure]
    fig, ax = _figure(8, max(2.2, 0.45 * len(table) + 1))
    if table.empty or table["rate"].isna().all():
        _empty(ax, "no rate: no commit scanned")
        return fig
    pooled = (table["repo"] == "(all repositories)").to_numpy()
    _interval_bars(ax, [str(r) for r in table["repo"]], table, COLORS["all"])
    for bar, is_pooled in zip(ax.patches, pooled, strict=True):
        bar.set_color(COLORS["valid"] if is_pooled else COLORS["all"])
    ax.set_xlabel(f"{LABELS.get(measure, measure)} per million commits (95% interval)")
    ax.set_title("Per repository")
    return fig

