"""report.stats: the exact Poisson (Garwood) interval and the rates built on it, against known values."""

from __future__ import annotations

import math

import pytest

from auditor.report.stats import gamma_cdf, gamma_quantile, per_million, poisson_interval, rate_interval


@pytest.mark.parametrize(("k", "low", "high"), [
    (0, 0.0, 3.688879), (1, 0.025318, 5.571643), (2, 0.242209, 7.224688), (5, 1.623486, 11.668332),
    (10, 4.795389, 18.390356), (100, 81.363991, 121.626794)])
def test_poisson_interval_known_values(k, low, high):
    got = poisson_interval(k)
    assert got[0] == pytest.approx(low, abs=1e-6) and got[1] == pytest.approx(high, abs=1e-6)


def test_gamma_functions_against_closed_forms():
    for x in (0.01, 0.5, 1.0, 3.0, 20.0):
        assert gamma_cdf(1.0, x) == pytest.approx(1 - math.exp(-x), rel=1e-12)  # exponential
        assert gamma_cdf(0.5, x) == pytest.approx(math.erf(math.sqrt(x)), rel=1e-10)  # χ² with 1 d.o.f.
        assert gamma_cdf(3.0, x) == pytest.approx(1 - math.exp(-x) * (1 + x + x * x / 2), rel=1e-10)
    for a in (0.5, 1.0, 7.0, 250.0, 1e5):
        for p in (1e-4, 0.025, 0.5, 0.975):
            assert gamma_cdf(a, gamma_quantile(p, a)) == pytest.approx(p, rel=1e-9)
    big = poisson_interval(10**6)  # normal approximation: ± 1.96 √k
    assert big[0] == pytest.approx(10**6 - 1960, abs=2) and big[1] == pytest.approx(10**6 + 1962, abs=2)


def test_rates_without_commits_are_null_never_inf():
    assert per_million(3, 0) is None and rate_interval(3, 0) == (None, None)
    assert per_million(0, 2000) == 0.0 and rate_interval(0, 2000) == (0.0, round(3.688879454 / 2000 * 1e6, 4))


def test_the_cluster_interval_allows_for_clustering_and_ignores_order():
    from auditor.report.stats import cluster_interval

    clustered = ([0] * 19 + [40], [1000] * 20)  # every occurrence in one repository
    spread = ([2] * 20, [1000] * 20)  # the same 40, two in each
    low, high = cluster_interval(*clustered)
    exact = rate_interval(40, 20000)
    assert low < exact[0] and high > exact[1]  # wider than Poisson when occurrences cluster
    s_low, s_high = cluster_interval(*spread)
    assert high - low > 3 * (s_high - s_low)
    assert cluster_interval(list(reversed(clustered[0])), clustered[1]) == (low, high)  # a set of repositories
    assert cluster_interval([0, 0], [10, 10]) == rate_interval(0, 20)  # nothing found: the exact interval
    assert cluster_interval([3], [10]) == (None, None)  # one repository: no spread to measure


@pytest.mark.parametrize(("mean", "limits"), [(0.001, (0, 0)), (0.5, (0, 2)), (3.0, (0, 7)), (10.0, (4, 17)),
                                              (100.0, (81, 120)), (400.0, (361, 440))])
def test_poisson_limits_are_the_central_95_percent_of_the_count(mean, limits):
    from auditor.report.stats import poisson_limits

    low, high = poisson_limits(mean)
    assert (low, high) == limits

    def cdf(k: int) -> float:
        return sum(math.exp(-mean + i * math.log(mean) - math.lgamma(i + 1)) for i in range(k + 1))

    assert cdf(high) >= 0.975 > (cdf(high - 1) if high else 0)  # the smallest such k
    assert cdf(low) >= 0.025 > (cdf(low - 1) if low else 0)
    big = poisson_limits(10_000.0)  # normal approximation beyond a mean of 500
    assert big == (10_000 - 196, 10_000 + 196)
