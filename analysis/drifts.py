"""Scenario drifts: how far a steered response moves along the trait vector, and how far its judged behavior moves.

Definitions (the research's phase 2, ``raw_scenario_data_{model}.json``, adapted from multi-turn drift t1 -> tN to
steering: the unsteered response of the same scenario plays the role of turn 1):

- a scenario is one question; a condition is one perturbation ratio; ratio 0 is the unsteered reference;
- ``activation`` of a response = mean over its response tokens of h_L . v_L / ||v_L||, where h_L is the layer-L
  residual of the response replayed through the *unsteered* target model (so the steering itself is not measured)
  and v_L the trait vector at that layer;
- ``activation_drift`` (scenario, ratio) = activation(steered response) - activation(unsteered response);
- ``behavioral_drift`` (scenario, ratio) = judge trait score(steered) - judge trait score(unsteered), in judge points
  (0-100 here; the research used a 1-7 scale, see :data:`RESEARCH_UNIT`).

The input is a rollouts table (``engine/drifts.py`` writes it): model, trait, vector_source, layer, scenario,
perturbation_ratio, trait_score, activation (plus anything else, carried through).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyarrow as pa

RESEARCH_UNIT = 100.0 / 6.0
"""Judge points (0-100) per point of the research's 1-7 scale: BAI thresholds 0.3 / 0.7 apply after dividing by it."""

ROLLOUT_COLUMNS = ("model", "trait", "vector_source", "layer", "scenario", "perturbation_ratio", "trait_score",
                   "activation")
GROUP_COLUMNS = ("model", "trait", "vector_source", "layer")


class DriftError(ValueError):
    """A rollouts table that cannot give drifts (a missing column, a scenario without its unsteered reference)."""


def _check_columns(table: pa.Table, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DriftError(f"{what}: columns {missing} are missing (have {table.column_names})")


def scenario_drifts(rollouts: pa.Table, activation_column: str = "activation") -> pa.Table:
    """One row per (model, trait, vector_source, layer, scenario, ratio != 0) with both drifts.

    ``activation_column`` names the projection the activation drift is taken from: ``activation`` (the response
    replayed through the unsteered model, the default: what a monitor reading natural activations sees) or
    ``activation_steered`` (recorded during the steered generation, so it includes the injected push).

    Rows with a missing trait score or activation (e.g. an empty response) are dropped, and so is a scenario whose
    unsteered reference is missing; ``n_dropped`` in the table metadata says how many.

    Example:
        >>> import pyarrow as pa
        >>> rows = [dict(model="m", trait="t", vector_source="m", layer=2, scenario=0, perturbation_ratio=r,
        ...              trait_score=s, activation=a) for r, s, a in [(0.0, 50, 1.0), (0.4, 80, 3.0)]]
        >>> scenario_drifts(pa.Table.from_pylist(rows)).select(["activation_drift", "behavioral_drift"]).to_pylist()
        [{'activation_drift': 2.0, 'behavioral_drift': 30.0}]
    """
    columns = [c if c != "activation" else activation_column for c in ROLLOUT_COLUMNS]
    _check_columns(rollouts, columns, "scenario_drifts")
    rows = [{**r, "activation": r[activation_column]} for r in rollouts.to_pylist()]
    usable = [r for r in rows if r["trait_score"] is not None and r["activation"] is not None
              and math.isfinite(float(r["trait_score"])) and math.isfinite(float(r["activation"]))]
    reference = {}
    for row in usable:
        if float(row["perturbation_ratio"]) == 0.0:
            key = (*(row[c] for c in GROUP_COLUMNS), row["scenario"])
            if key in reference:
                where = dict(zip((*GROUP_COLUMNS, "scenario"), key, strict=True))
                raise DriftError(f"scenario_drifts: two unsteered rows for {where}; keep one unsteered response per "
                                 "scenario")
            reference[key] = row
    out = []
    for row in usable:
        if float(row["perturbation_ratio"]) == 0.0:
            continue
        base = reference.get((*(row[c] for c in GROUP_COLUMNS), row["scenario"]))
        if base is None:
            continue
        out.append({**row, "activation_source": activation_column, "reference_trait_score": float(base["trait_score"]),
                    "reference_activation": float(base["activation"]),
                    "activation_drift": float(row["activation"]) - float(base["activation"]),
                    "behavioral_drift": float(row["trait_score"]) - float(base["trait_score"])})
    if not out:
        raise DriftError("scenario_drifts: no steered row has an unsteered reference (perturbation_ratio 0) for its "
                         "scenario; generate the unsteered rollouts too")
    table = pa.Table.from_pylist(out)
    return table.replace_schema_metadata({"n_dropped": str(len(rows) - len(reference) - len(out))})
