"""report.plots are honest on real shapes of data (issue 14): log axes where rates span decades, the reference only
on the row it compares with, repositories by short name and commits with the small ones greyed and the pooled rate
apart, thin years shaded, a zero count drawn as its upper bound — read back from the Figures' artists."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import to_hex

from auditor.report import plots
from auditor.report.stats import poisson_limits, with_rates


def _rates(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows).astype({"count": "Int64", "commits": "int64"})
    return with_rates(frame)


def test_headline_is_on_a_log_axis_and_the_reference_sits_on_the_occurrences_row_only():
    table = _rates([{"measure": m, "count": c, "commits": 12_114} for m, c in
                    (("occurrences", 14), ("commits_with_occurrences", 9), ("unique_secrets", 0))]).astype(
        {"measure": "string"})
    fig = plots.headline_rates(table, {"GitGuardian": 7.37})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lo, hi = ax.get_xlim()
    assert lo <= 7.37 and hi >= float(table["rate_high"].max())
    refs = [ln for ln in ax.get_lines() if to_hex(ln.get_color()) == plots.COLORS["ref"]]
    assert len(refs) == 1 and set(refs[0].get_xdata()) == {7.37}
    assert max(abs(y) for y in refs[0].get_ydata()) < 0.5  # row 0: occurrences, and no other row
    assert any("0 found" in t.get_text() for t in ax.texts)  # unique secrets: 0, shown as its upper bound
    assert plots.png(fig).startswith(b"\x89PNG")
    cited = plots.headline_rates(table, {"GitGuardian": 7.37}, note="references count occurrences over all public "
                                 "GitHub commits").axes[0].get_legend().get_title().get_text()
    assert cited.replace("\n", " ") == "references count occurrences over all public GitHub commits"


def test_repositories_by_commits_short_names_small_ones_grey_pooled_apart():
    per = _rates([{"repo": r, "measure": "occurrences", "count": c, "commits": n} for r, c, n in (
        ("/srv/mirrors/tiny.git", 1, 1), ("https://github.com/pallets/flask.git", 0, 12_114),
        ("/home/u/src/twilio-python", 2, 3_537), ("(all repositories)", 3, 15_652))]).astype({"repo": "string"})
    pooled = _rates([{"measure": "occurrences", "count": 3, "commits": 15_652}])
    ax = plots.repositories(per, reference=7.37, pooled=pooled).axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["pallets/flask (12,114)", "twilio-python (3,537)", "tiny (1)", "pooled (3 repositories)"]
    assert ax.get_xscale() == "log"
    dots = {round(float(ln.get_ydata()[0])): to_hex(ln.get_color()) for ln in ax.get_lines()
            if ln.get_marker() in ("o", "D", "<")}
    assert dots == {0: plots.COLORS["all"], 1: plots.COLORS["all"], 2: plots.COLORS["other"],
                    3: plots.COLORS["pooled"]}


def test_by_year_log_axis_thin_years_shaded():
    table = _rates([{"year": y, "count": c, "commits": n} for y, c, n in ((2009, 0, 3), (2022, 2, 282),
                                                                           (2024, 1, 2_600))])
    table = table.rename(columns={"count": "occurrences"})
    ax = plots.by_year(table).axes[0]
    assert ax.get_yscale() == "log"
    assert len(ax.patches) == 2  # 2009 and 2022 shaded (under 500 commits), 2024 not
    assert ax.get_ylim()[1] >= float(table["rate_high"].max())


def test_timeline_counts_from_zero_and_drops_valid_when_not_checked():
    table = pd.DataFrame({"period": pd.to_datetime(["2024-01-01", "2024-02-01"]), "commits": [5, 7],
                          "occurrences": [0, 0], "valid_occurrences": [0, 0]})
    ax = plots.timeline(table, validated=False).axes[0]
    assert ax.get_ylim()[0] == 0
    assert "of them valid" not in [t.get_text() for t in ax.get_legend().get_texts()]


def test_funnel_plots_rate_against_commits_with_the_references_poisson_limits():
    per = _rates([{"repo": r, "measure": "occurrences", "count": c, "commits": n} for r, c, n in (
        ("/srv/mirrors/tiny.git", 1, 3), ("https://github.com/pallets/flask.git", 0, 12_114),
        ("/home/u/src/big", 30, 2_000_000))]).astype({"repo": "string"})
    ax = plots.funnel(per, reference=8.33, label="GitGuardian").axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    ref = [ln for ln in ax.get_lines() if to_hex(ln.get_color()) == plots.COLORS["ref"]]
    assert len(ref) == 3  # the reference, and the funnel's upper and lower limits
    upper = ref[1]
    x = upper.get_xdata()
    i = int(abs(x - 2_000_000).argmin())  # the limits at that many commits: a Poisson count of mean 8.33 × x / 10⁶
    assert upper.get_ydata()[i] == poisson_limits(8.33 * x[i] / 1e6)[1] / x[i] * 1e6
    assert ref[2].get_ydata()[i] == poisson_limits(8.33 * x[i] / 1e6)[0] / x[i] * 1e6
    few = int(abs(x - 3).argmin())  # 3 commits: even one occurrence lies above the funnel, which is not drawn there
    assert poisson_limits(8.33 * x[few] / 1e6) == (0, 0) and np.isnan(upper.get_ydata()[few])
    points, zeros = ax.collections  # found (log y) and none found (on the floor, 'v')
    assert sorted(map(tuple, points.get_offsets().tolist())) == [(3.0, 1e6 / 3), (2_000_000.0, 15.0)]
    assert [to_hex(c) for c in points.get_facecolors()] == [plots.COLORS["other"], plots.COLORS["all"]]
    assert zeros.get_offsets()[0][0] == 12_114 and zeros.get_offsets()[0][1] < ax.get_ylim()[1]
    assert {t.get_text() for t in ax.texts} == {"tiny", "pallets/flask", "big"}
    assert plots.png(ax.figure).startswith(b"\x89PNG")
