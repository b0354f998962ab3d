"""Must-show 1: every statistic equals an independent computation (scipy where it has one), edge cases included."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from steersweep.analysis import (
    StatisticsError,
    partial_correlation,
    pearson,
    predictor_correlations,
    spearman,
)


@pytest.mark.parametrize("n,seed", [(4, 0), (5, 1), (12, 2), (24, 3), (200, 4)])
def test_pearson_matches_scipy_r_p_and_fisher_interval(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 0.6 * x + rng.normal(size=n)
    ours = pearson(x, y, confidence=0.9)
    ref = sps.pearsonr(x, y)
    interval = ref.confidence_interval(confidence_level=0.9)
    assert ours.r == pytest.approx(ref.statistic, abs=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((interval.low, interval.high), abs=1e-12)
    assert ours.n == n


def test_pearson_interval_is_the_fisher_formula_by_hand():
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    y = [2.0, 1.0, 4.0, 3.0, 7.0, 5.0, 6.0]
    c = pearson(x, y)
    z, se = math.atanh(c.r), 1 / math.sqrt(7 - 3)
    assert c.ci_low == pytest.approx(math.tanh(z - 1.959963984540054 * se), abs=1e-12)
    assert c.ci_high == pytest.approx(math.tanh(z + 1.959963984540054 * se), abs=1e-12)


def test_pearson_n3_has_r_and_p_but_no_interval():
    c = pearson([1, 2, 3], [1, 3, 2])
    ref = sps.pearsonr([1, 2, 3], [1, 3, 2])
    assert c.r == pytest.approx(ref.statistic) and c.p_value == pytest.approx(ref.pvalue)
    assert math.isnan(c.ci_low) and math.isnan(c.ci_high)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_pearson_fewer_than_3_pairs_is_a_clear_error(n):
    with pytest.raises(StatisticsError, match="at least 3"):
        pearson(list(range(n)), list(range(n)))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_pearson_perfect_correlation_has_p_zero_and_a_point_interval(sign):
    x = np.arange(10.0)
    c = pearson(x, sign * 3 * x + 1)
    assert c.r == sign and c.p_value == 0.0
    assert (c.ci_low, c.ci_high) == (sign, sign)
    assert sps.pearsonr(x, sign * 3 * x + 1).pvalue == pytest.approx(0.0, abs=1e-12)


def test_constant_input_is_a_clear_error():
    with pytest.raises(StatisticsError, match="y is constant"):
        pearson([1, 2, 3, 4], [5, 5, 5, 5])
    with pytest.raises(StatisticsError, match="x is constant"):
        spearman([2, 2, 2, 2], [1, 2, 3, 4])


def test_mismatched_lengths_and_nan_are_clear_errors():
    with pytest.raises(StatisticsError, match="one y per x"):
        pearson([1, 2, 3], [1, 2])
    with pytest.raises(StatisticsError, match="NaN"):
        pearson([1, 2, 3, np.nan], [1, 2, 3, 4])
    with pytest.raises(StatisticsError, match="confidence"):
        pearson([1, 2, 3, 4], [1, 3, 2, 4], confidence=95)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spearman_matches_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, size=30).astype(float)  # many ties
    y = x + rng.integers(-2, 3, size=30)
    ours, ref = spearman(x, y), sps.spearmanr(x, y)
    assert ours.r == pytest.approx(ref.statistic, abs=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert ours.method == "spearman"


def _partial_by_precision(x, y, z):
    """Independent route: partial correlation = -P_xy / sqrt(P_xx P_yy) of the inverse correlation matrix."""
    data = np.column_stack([x, y, z])
    precision = np.linalg.inv(np.corrcoef(data, rowvar=False))
    return -precision[0, 1] / math.sqrt(precision[0, 0] * precision[1, 1])


@pytest.mark.parametrize("k", [1, 2])
def test_partial_correlation_matches_the_precision_matrix_and_t_test(k):
    rng = np.random.default_rng(10 + k)
    n = 24
    z = rng.normal(size=(n, k))
    x = z.sum(axis=1) + rng.normal(size=n)
    y = z.sum(axis=1) + 0.5 * x + rng.normal(size=n)
    ours = partial_correlation(x, y, z)
    expected = _partial_by_precision(x, y, z)
    dof = n - 2 - k
    t = expected * math.sqrt(dof / (1 - expected**2))
    assert ours.r == pytest.approx(expected, abs=1e-10)
    assert ours.p_value == pytest.approx(2 * sps.t.sf(abs(t), dof), rel=1e-8)
    half = sps.norm.ppf(0.975) / math.sqrt(n - 3 - k)
    assert ours.ci_low == pytest.approx(math.tanh(math.atanh(expected) - half), abs=1e-10)
    assert ours.n_covariates == k


def test_partial_correlation_edge_cases():
    x, y = np.arange(6.0), np.array([1.0, 3, 2, 5, 4, 6])
    with pytest.raises(StatisticsError, match="degrees of freedom"):
        partial_correlation(x[:3], y[:3], np.array([[1.0, 0], [0, 1], [1, 1]]))
    with pytest.raises(StatisticsError, match="collinear or constant"):
        partial_correlation(x, y, np.ones(6))
    with pytest.raises(StatisticsError, match="fully explained"):
        partial_correlation(x, y, x * 2 + 1)
    c = partial_correlation(x[:4], y[:4], [0.0, 1.0, 0.0, 1.0])  # n = 3 + k: r and p, no interval
    assert math.isfinite(c.r) and math.isnan(c.ci_low)


def test_predictor_table_reports_each_predictor_and_nan_with_a_reason():
    rng = np.random.default_rng(5)
    bai = rng.uniform(0, 2, size=24)
    rows = [dict(model=f"m{i % 3}", trait=f"t{i}", r=0.4 * b + rng.normal(scale=0.1), bai=b,
                 separation=rng.normal(), constant=1.0) for i, b in enumerate(bai)]
    table = predictor_correlations(rows, "r", ["bai", "separation", "constant"]).to_pylist()
    by_name = {row["predictor"]: row for row in table}
    ref = sps.pearsonr([r["bai"] for r in rows], [r["r"] for r in rows])
    assert by_name["bai"]["r"] == pytest.approx(ref.statistic) and by_name["bai"]["n"] == 24
    assert math.isnan(by_name["constant"]["r"]) and "constant" in by_name["constant"]["note"]
    with pytest.raises(StatisticsError, match="not in the rows"):
        predictor_correlations(rows, "r", ["missing"])
