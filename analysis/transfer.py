"""Cross-model transfer: the source vector -> target model matrix of best trait delta at coherence >= threshold, and
the cross-family activation transfer test (does A's projection predict B's behavior better than B's own?).

The matrix reads the trials table of the run directory contract (``data/trials/*.parquet``: target_model, trait,
vector_source, layer, perturbation_ratio, coefficient, trait_score, coherence, baseline_trait_score, state, ...).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyarrow as pa

from .stats import StatisticsError, pearson

TRIAL_COLUMNS = ("target_model", "trait", "vector_source", "layer", "perturbation_ratio", "coefficient",
                 "trait_score", "coherence", "baseline_trait_score", "state")


def _best(rows: list[dict]) -> dict | None:
    # Highest delta; among equals the more coherent, then the gentler (smaller |ratio|) intervention.
    return max(rows, key=lambda r: (r["delta"], r["coherence"], -abs(r["perturbation_ratio"])), default=None)


def _summary(rows: list[dict], feasible: list[dict]) -> dict:
    best = _best(feasible)
    empty = dict(best_delta=math.nan, best_ratio=math.nan, best_coefficient=math.nan, best_trait_score=math.nan,
                 best_coherence=math.nan, best_layer=-1, best_trial_number=-1)
    values = empty if best is None else dict(
        best_delta=best["delta"], best_ratio=best["perturbation_ratio"], best_coefficient=best["coefficient"],
        best_trait_score=best["trait_score"], best_coherence=best["coherence"], best_layer=int(best["layer"]),
        best_trial_number=int(best.get("trial_number", -1) if best.get("trial_number") is not None else -1))
    baseline = [r["baseline_trait_score"] for r in rows if r["baseline_trait_score"] is not None]
    return {**values, "baseline_trait_score": baseline[0] if baseline else math.nan, "n_trials": len(rows),
            "n_feasible": len(feasible)}


def transfer_matrix(trials: pa.Table, coherence_threshold: float | None = None) -> tuple[pa.Table, pa.Table]:
    """``(by_layer, overall)``: best delta = trait_score - baseline_trait_score over COMPLETE trials whose coherence
    is >= the threshold (``coherence_threshold``, else each trial's own ``coherence_threshold`` column).

    by_layer has one row per (trait, vector_source, target_model, layer); overall one per (trait, vector_source,
    target_model). A cell with no coherent trial has NaN and n_feasible 0. Multi-layer trials count at their first
    layer (``layer``).

    Example:
        >>> by_layer, overall = transfer_matrix(read_parquet_dir(run / "data/trials"), 70.0)  # doctest: +SKIP
    """
    missing = [c for c in TRIAL_COLUMNS if c not in trials.column_names]
    if missing:
        raise ValueError(f"transfer_matrix: trials lack columns {missing}; read data/trials/*.parquet of a run "
                         "directory (the search writes them)")
    if coherence_threshold is None and "coherence_threshold" not in trials.column_names:
        raise ValueError("transfer_matrix: no coherence_threshold column in the trials; pass coherence_threshold")
    rows = []
    for row in trials.to_pylist():
        if row["state"] != "COMPLETE" or row["trait_score"] is None or row["coherence"] is None:
            continue
        if row["baseline_trait_score"] is None:
            continue
        threshold = coherence_threshold if coherence_threshold is not None else row["coherence_threshold"]
        rows.append({**row, "delta": row["trait_score"] - row["baseline_trait_score"],
                     "coherent": row["coherence"] >= threshold, "threshold": threshold})
    if not rows:
        raise ValueError("transfer_matrix: no COMPLETE trial with a trait score, coherence and baseline")
    by_layer, overall = {}, {}
    for row in rows:
        cell = (row["trait"], row["vector_source"], row["target_model"])
        by_layer.setdefault((*cell, int(row["layer"])), []).append(row)
        overall.setdefault(cell, []).append(row)
    names = ("trait", "vector_source", "target_model")
    layer_rows = [{**dict(zip((*names, "layer"), key, strict=True)),
                   **_summary(group, [r for r in group if r["coherent"]]), "coherence_threshold": group[0]["threshold"]}
                  for key, group in sorted(by_layer.items())]
    overall_rows = [{**dict(zip(names, key, strict=True)), **_summary(group, [r for r in group if r["coherent"]]),
                     "coherence_threshold": group[0]["threshold"]} for key, group in sorted(overall.items())]
    return pa.Table.from_pylist(layer_rows), pa.Table.from_pylist(overall_rows)


def transfer_curves(by_layer: pa.Table, vector_source: str, target_model: str) -> dict[str, dict[int, float]]:
    """``{trait: {layer: best delta}}`` for one source -> target: the curve activation similarity is compared with."""
    curves: dict[str, dict[int, float]] = {}
    for row in by_layer.to_pylist():
        same_pair = row["vector_source"] == vector_source and row["target_model"] == target_model
        if same_pair and not math.isnan(row["best_delta"]):
            curves.setdefault(row["trait"], {})[row["layer"]] = row["best_delta"]
    return curves


def _r(x: list[float], y: list[float]) -> tuple[float, str]:
    try:
        return pearson(x, y).r, ""
    except StatisticsError as error:
        return math.nan, str(error)


def activation_transfer_test(
    drifts: pa.Table, model_a: str, model_b: str, keys: Sequence[str] = ("scenario", "perturbation_ratio"),
) -> pa.Table:
    """Per trait: r(B's activation drift, B's behavioral drift) vs r(A's activation drift, B's behavioral drift) on
    the scenarios both models ran (joined on ``keys``); ``a_beats_b`` when A's projection predicts B better.

    This is the research's "killer test" (L -> Q: Llama3's projections predict Qwen2's drift better than Qwen2's own).
    """
    for column in ("model", "trait", "activation_drift", "behavioral_drift", *keys):
        if column not in drifts.column_names:
            raise ValueError(f"activation_transfer_test: column {column!r} is missing; pass scenario_drifts output")
    by_model: dict[str, dict[tuple, dict]] = {model_a: {}, model_b: {}}
    for row in drifts.to_pylist():
        if row["model"] in by_model:
            by_model[row["model"]][(row["trait"], *(row[k] for k in keys))] = row
    for model, rows in by_model.items():
        if not rows:
            raise ValueError(f"activation_transfer_test: no drift rows for model {model!r}")
    out = []
    for trait in sorted({key[0] for key in by_model[model_b]}):
        common = sorted(k for k in by_model[model_b] if k[0] == trait and k in by_model[model_a])
        b_behavior = [by_model[model_b][k]["behavioral_drift"] for k in common]
        r_self, note_self = _r([by_model[model_b][k]["activation_drift"] for k in common], b_behavior)
        r_cross, note_cross = _r([by_model[model_a][k]["activation_drift"] for k in common], b_behavior)
        out.append(dict(trait=trait, model_a=model_a, model_b=model_b, r_self=r_self, r_cross=r_cross,
                        a_beats_b=bool(r_cross > r_self), n=len(common), note="; ".join(filter(None, (note_self,
                                                                                                   note_cross)))))
    return pa.Table.from_pylist(out)
