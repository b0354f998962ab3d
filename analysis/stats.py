"""Correlation statistics: Pearson with Fisher-z interval and p-value, Spearman, partial correlation, predictor table.

Edge cases, by design:

- fewer than 3 pairs (or fewer than ``3 + n_covariates`` for a partial correlation): :class:`StatisticsError`;
- a constant input: :class:`StatisticsError` (r is 0/0, undefined); tables built from many rows record NaN and the
  reason instead of failing (see :func:`predictor_correlations`);
- n = 3 (n = 3 + k for a partial correlation): r and p are defined, the Fisher-z interval needs n - 3 - k > 0 and is
  NaN;
- r = +-1: p = 0 and the interval collapses to (r, r).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
from scipy import special


class StatisticsError(ValueError):
    """An input on which a statistic is undefined (too few pairs, constant values, NaN, mismatched lengths)."""


@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient with its two-sided p-value and Fisher-z confidence interval."""

    r: float
    p_value: float
    ci_low: float
    ci_high: float
    n: int
    """Number of pairs."""
    method: str = "pearson"
    confidence: float = 0.95
    n_covariates: int = 0

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _vectors(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, what: str) -> tuple[np.ndarray, ...]:
    a, b = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise StatisticsError(f"{what}: x has {a.size} values and y has {b.size}; pass one y per x")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise StatisticsError(f"{what}: inputs hold NaN or inf; drop those pairs first")
    return a, b


def _check_not_constant(values: np.ndarray, name: str, what: str) -> None:
    if np.ptp(values) == 0:
        raise StatisticsError(f"{what}: {name} is constant ({values[0]:g} for all {values.size} pairs), so r is "
                              "undefined (0/0); a statistic over a constant needs variation in both inputs")


def _r(a: np.ndarray, b: np.ndarray) -> float:
    da, db = a - a.mean(), b - b.mean()
    r = float(np.dot(da, db) / math.sqrt(float(np.dot(da, da)) * float(np.dot(db, db))))
    return max(-1.0, min(1.0, r))


def _p_value(r: float, dof: int) -> float:
    """Two-sided p of t = r sqrt(dof / (1 - r^2)) under Student's t with ``dof`` degrees of freedom."""
    if abs(r) == 1.0:
        return 0.0
    t = r * math.sqrt(dof / (1.0 - r * r))
    return float(2.0 * special.stdtr(dof, -abs(t)))


def _fisher_interval(r: float, n_effective: int, confidence: float) -> tuple[float, float]:
    """tanh(atanh(r) +- z_{(1+c)/2} / sqrt(n_effective - 3)); NaN when n_effective <= 3."""
    if n_effective <= 3:
        return math.nan, math.nan
    if abs(r) == 1.0:
        return r, r
    z, half = math.atanh(r), float(special.ndtri((1.0 + confidence) / 2.0)) / math.sqrt(n_effective - 3)
    return math.tanh(z - half), math.tanh(z + half)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise StatisticsError(f"confidence: {confidence} must be in (0, 1), e.g. 0.95")


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Correlation:
    """Pearson r, two-sided p (t test, n - 2 dof) and Fisher-z confidence interval.

    Example:
        >>> c = pearson([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])
        >>> round(c.r, 3), round(c.p_value, 3), c.n
        (0.775, 0.124, 5)
    """
    _check_confidence(confidence)
    a, b = _vectors(x, y, "pearson")
    if a.size < 3:
        raise StatisticsError(f"pearson: {a.size} pairs; r and its p-value need at least 3 (an interval needs 4)")
    _check_not_constant(a, "x", "pearson")
    _check_not_constant(b, "y", "pearson")
    r = _r(a, b)
    low, high = _fisher_interval(r, a.size, confidence)
    return Correlation(r, _p_value(r, a.size - 2), low, high, int(a.size), "pearson", confidence)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of the ranks they span), 1-based."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < values.size:
        stop = start
        while stop + 1 < values.size and sorted_values[stop + 1] == sorted_values[start]:
            stop += 1
        ranks[order[start:stop + 1]] = (start + stop) / 2.0 + 1.0
        start = stop + 1
    return ranks


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Correlation:
    """Spearman rho: Pearson r of the average ranks; p from the same t approximation (as scipy does).

    The interval applies Fisher's z to rho with se 1/sqrt(n - 3) (an approximation for ranks).
    """
    a, b = _vectors(x, y, "spearman")
    if a.size < 3:
        raise StatisticsError(f"spearman: {a.size} pairs; rho and its p-value need at least 3")
    _check_not_constant(a, "x", "spearman")
    _check_not_constant(b, "y", "spearman")
    result = pearson(_ranks(a), _ranks(b), confidence)
    return Correlation(result.r, result.p_value, result.ci_low, result.ci_high, result.n, "spearman", confidence)


def _residuals(values: np.ndarray, design: np.ndarray) -> np.ndarray:
    coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
    return values - design @ coefficients


def partial_correlation(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
    covariates: np.ndarray | Sequence[Sequence[float]] | Mapping[str, Sequence[float]], confidence: float = 0.95,
) -> Correlation:
    """Correlation of x and y after regressing both on the covariates (with an intercept).

    ``covariates`` is ``[n]``, ``[n, k]`` or ``{name: [n]}``. p uses n - 2 - k dof; the interval se 1/sqrt(n - 3 - k).

    Example (the research's "r vs is_llama | beh_std"):
        >>> import numpy as np
        >>> rng = np.random.default_rng(0); z = rng.normal(size=50)
        >>> x, y = z + rng.normal(size=50), z + rng.normal(size=50)
        >>> abs(partial_correlation(x, y, z).r) < abs(pearson(x, y).r)
        True
    """
    _check_confidence(confidence)
    a, b = _vectors(x, y, "partial_correlation")
    if isinstance(covariates, Mapping):
        columns = [np.asarray(v, dtype=np.float64).ravel() for v in covariates.values()]
        controls = np.stack(columns, axis=1) if columns else np.zeros((a.size, 0))
    else:
        controls = np.asarray(covariates, dtype=np.float64)
        controls = controls.reshape(-1, 1) if controls.ndim == 1 else controls
    if controls.shape[0] != a.size:
        raise StatisticsError(f"partial_correlation: covariates have {controls.shape[0]} rows for {a.size} pairs")
    if not np.all(np.isfinite(controls)):
        raise StatisticsError("partial_correlation: covariates hold NaN or inf; drop those rows first")
    k = controls.shape[1]
    dof = a.size - 2 - k
    if dof < 1:
        raise StatisticsError(f"partial_correlation: {a.size} pairs with {k} covariates leave {dof} degrees of "
                              f"freedom; need at least {k + 3} pairs")
    design = np.column_stack([np.ones(a.size), controls])
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise StatisticsError("partial_correlation: the covariates (with the intercept) are collinear or constant; "
                              "drop the redundant covariate")
    ra, rb = _residuals(a, design), _residuals(b, design)
    scale = max(1.0, float(np.abs(a).max()), float(np.abs(b).max()))
    for name, residual in (("x", ra), ("y", rb)):
        if float(np.abs(residual).max()) <= 1e-12 * scale:
            raise StatisticsError(f"partial_correlation: {name} is fully explained by the covariates, so the partial "
                                  "correlation is undefined (0/0)")
    r = _r(ra, rb)
    low, high = _fisher_interval(r, a.size - k, confidence)
    return Correlation(r, _p_value(r, dof), low, high, int(a.size), "partial", confidence, k)


def predictor_correlations(
    rows: pa.Table | Sequence[Mapping[str, object]], target: str, predictors: Sequence[str],
    method: str = "pearson", confidence: float = 0.95,
) -> pa.Table:
    """The research's "which diagnostic predicts r" table: each predictor column correlated with ``target``.

    ``rows`` is one row per model x trait (e.g. separation, within-class variance, BAI, and the validation r).
    Rows where either value is missing or NaN are dropped per predictor; a predictor on which the statistic is
    undefined gets NaN and the reason in ``note`` instead of failing the table. Columns: predictor, target, method, r,
    p_value, ci_low, ci_high, n, note.
    """
    if method not in ("pearson", "spearman"):
        raise StatisticsError(f"method: {method!r} is not one of 'pearson', 'spearman'")
    records = rows.to_pylist() if isinstance(rows, pa.Table) else [dict(r) for r in rows]
    missing = [c for c in (target, *predictors) if records and c not in records[0]]
    if missing:
        raise StatisticsError(f"predictor_correlations: columns {missing} are not in the rows "
                              f"(have {sorted(records[0])})")
    compute = pearson if method == "pearson" else spearman
    out = []
    for predictor in predictors:
        pairs = [(r[predictor], r[target]) for r in records
                 if r[predictor] is not None and r[target] is not None
                 and math.isfinite(float(r[predictor])) and math.isfinite(float(r[target]))]
        x = [float(p[0]) for p in pairs]
        y = [float(p[1]) for p in pairs]
        try:
            c = compute(x, y, confidence)
            row = dict(r=c.r, p_value=c.p_value, ci_low=c.ci_low, ci_high=c.ci_high, note="")
        except StatisticsError as error:
            row = dict(r=math.nan, p_value=math.nan, ci_low=math.nan, ci_high=math.nan, note=str(error))
        out.append(dict(predictor=predictor, target=target, method=method, n=len(pairs), **row))
    return pa.Table.from_pylist(out)
