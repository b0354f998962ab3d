"""The research's validation criterion: Pearson r(activation_drift, behavioral_drift) > 0.3 per model x trait.

Each row carries r with its Fisher-z interval and p-value, n, and whether it passes; :func:`validation_counts` gives
the per-model scorecard ("Llama3 8/8, Qwen2 3/8, Mistral 2/8"). A row on which r is undefined (constant drifts,
fewer than 3 scenarios) gets NaN, fails, and says why in ``note``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyarrow as pa

from .drifts import GROUP_COLUMNS
from .stats import StatisticsError, pearson

DEFAULT_THRESHOLD = 0.3


def validation_table(drifts: pa.Table, threshold: float = DEFAULT_THRESHOLD, by: Sequence[str] = GROUP_COLUMNS,
                     confidence: float = 0.95) -> pa.Table:
    """One row per group (default model, trait, vector_source, layer): r, p_value, ci_low, ci_high, n, validated.

    Example:
        >>> table = validation_table(drifts)  # doctest: +SKIP
        >>> table.select(["model", "trait", "r", "n", "validated"]).to_pylist()  # doctest: +SKIP
    """
    missing = [c for c in (*by, "activation_drift", "behavioral_drift") if c not in drifts.column_names]
    if missing:
        raise ValueError(f"validation_table: columns {missing} are missing; pass the table scenario_drifts returns")
    groups: dict[tuple, list[dict]] = {}
    for row in drifts.to_pylist():
        groups.setdefault(tuple(row[c] for c in by), []).append(row)
    out = []
    for key, rows in sorted(groups.items(), key=lambda item: tuple(str(v) for v in item[0])):
        values = dict(r=math.nan, p_value=math.nan, ci_low=math.nan, ci_high=math.nan, note="")
        try:
            c = pearson([r["activation_drift"] for r in rows], [r["behavioral_drift"] for r in rows], confidence)
            values.update(r=c.r, p_value=c.p_value, ci_low=c.ci_low, ci_high=c.ci_high)
        except StatisticsError as error:
            values["note"] = str(error)
        out.append({**dict(zip(by, key, strict=True)), **values, "n": len(rows), "threshold": threshold,
                    "validated": bool(values["r"] > threshold)})
    return pa.Table.from_pylist(out)


def validation_counts(table: pa.Table, by: str = "model") -> pa.Table:
    """Per model: traits validated, traits tested (the research's scorecard)."""
    counts: dict[str, list[int]] = {}
    for row in table.to_pylist():
        tally = counts.setdefault(row[by], [0, 0])
        tally[0] += int(row["validated"])
        tally[1] += 1
    return pa.Table.from_pylist([{by: key, "n_validated": v, "n_tested": n, "scorecard": f"{v}/{n}"}
                                 for key, (v, n) in sorted(counts.items())])
