"""Extraction vectors: fit one vector per layer from the captured activations, and the diagnostics table's layout."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pyarrow as pa

from steersweep.analysis import (
    METHODS,
    ActivationSet,
    LabelPolarity,
    binarize_scores,
    contrastive_probe,
    cosine_filter,
    diagnose,
    pca_denoise,
)

from .extraction_plan import ExtractionError, ExtractionPlan, JudgeVetting, _TooFewSamplesError
from .rundir import RunDir

logger = logging.getLogger(__name__)

VECTOR_KEY = ("model", "trait", "method", "component", "position", "layer")
"""Key columns of ``data/vectors.parquet``."""


def _select(data: ActivationSet, mask: np.ndarray) -> np.ndarray:
    return data.activations[mask].astype(np.float64)


def _fit_unit(data: ActivationSet, method: str, plan: ExtractionPlan, scores: np.ndarray | None,
              keep: np.ndarray) -> tuple[Any, list[Any], dict[str, str]]:
    valid = data.finite & keep
    dropped_nan = int((~data.finite).sum())
    if dropped_nan:
        logger.info("%d samples select no token at %s and are left out", dropped_nan, data.metadata.get("position"))
    train, test = valid & (data.split == "train"), valid & (data.split == "test")
    if method == "contrastive_probe":
        if scores is None:
            raise ExtractionError("methods: contrastive_probe needs judge scores; pass a judge")
        high_t, low_t = plan.contrastive_thresholds
        result = contrastive_probe(_select(data, train), scores[train], high_threshold=high_t, low_threshold=low_t,
                                   min_per_class=max(plan.min_per_class, 2))
        high, low = binarize_scores(list(scores), high_t, low_t)
        pos_mask, neg_mask = high, low
    else:
        pos_mask, neg_mask = data.is_positive, ~data.is_positive
        for name, mask in (("positive", pos_mask), ("negative", neg_mask)):
            if (train & mask).sum() < plan.min_per_class:
                raise _TooFewSamplesError(
                    f"{int((train & mask).sum())} {name} training samples left (need {plan.min_per_class}) after "
                    "vetting and empty positions; loosen the vetting, add scenarios or rollouts, or lower test_fraction"
                )
        result = None
    train_pos = [_select(data, train & pos_mask)[:, i] for i in range(len(data.layers))]
    train_neg = [_select(data, train & neg_mask)[:, i] for i in range(len(data.layers))]
    extra: dict[str, str] = {}
    if result is None:
        if plan.cosine_filter is not None:
            kept_pos = cosine_filter(np.stack(train_pos, axis=1), plan.cosine_filter)
            kept_neg = cosine_filter(np.stack(train_neg, axis=1), plan.cosine_filter)
            train_pos, train_neg = kept_pos.kept, kept_neg.kept
            extra["cosine_dropped_positive"] = json.dumps(kept_pos.n_dropped)
            extra["cosine_dropped_negative"] = json.dumps(kept_neg.n_dropped)
        fit_pos, fit_neg = train_pos, train_neg
        if plan.pca_components:
            denoised = pca_denoise(train_pos, train_neg, plan.pca_components)
            fit_pos, fit_neg = denoised.positive, denoised.negative
        result = METHODS[method](fit_pos, fit_neg)
    held_pos = [_select(data, test & pos_mask)[:, i] for i in range(len(data.layers))]
    held_neg = [_select(data, test & neg_mask)[:, i] for i in range(len(data.layers))]
    has_held = len(held_pos[0]) > 0 and len(held_neg[0]) > 0
    diagnostics = diagnose(result, train_pos, train_neg, held_pos if has_held else None,
                           held_neg if has_held else None, layers=data.layers,
                           activation_norms=list(data.activation_norms))
    return result, diagnostics, extra


def _vetting_mask(rollouts: pa.Table, data: ActivationSet, vetting: JudgeVetting | None) -> np.ndarray:
    if vetting is None:
        return np.ones(len(data.sample_index), dtype=bool)
    scores = _scores_for(rollouts, data)
    if scores is None:
        raise ExtractionError("vetting: needs judge scores; pass a judge or set vetting=None")
    finite = np.isfinite(scores)
    positive = data.is_positive
    return finite & np.where(positive, scores >= vetting.positive_min, scores <= vetting.negative_max)


def _scores_for(rollouts: pa.Table | None, data: ActivationSet) -> np.ndarray | None:
    if rollouts is None or rollouts.column("judge_score").null_count == rollouts.num_rows:
        return None
    by_index = dict(zip(rollouts.column("sample_index").to_pylist(), rollouts.column("judge_score").to_pylist(),
                        strict=True))
    return np.array([np.nan if by_index.get(int(i)) is None else by_index[int(i)] for i in data.sample_index])


def _agreement(polarity: LabelPolarity | None) -> str:
    return "unknown" if polarity is None or polarity.agrees is None else ("true" if polarity.agrees else "false")


def _done_keys(run: RunDir) -> dict[tuple[str, ...], set[int]]:
    """``{(model, trait, method, component, position): layers with a diagnostics row}``."""
    table = run.read_table(run.vectors_table)
    done: dict[tuple[str, ...], set[int]] = {}
    if table is None:
        return done
    columns = ["model", "trait", "method", "component", "position"]
    for row in table.select([*columns, "layer"]).to_pylist():
        done.setdefault(tuple(row[c] for c in columns), set()).add(int(row["layer"]))
    return done


def _vector_schema() -> pa.Schema:
    return pa.schema([
        ("model", pa.string()), ("trait", pa.string()), ("method", pa.string()), ("base_method", pa.string()),
        ("component", pa.string()), ("position", pa.string()), ("layer", pa.int32()),
        ("heldout_accuracy", pa.float64()), ("polarity_correct", pa.bool_()), ("effect_size", pa.float64()),
        ("separation", pa.float64()), ("within_var_positive", pa.float64()), ("within_var_negative", pa.float64()),
        ("cosine_positive", pa.float64()), ("cosine_negative", pa.float64()), ("snr", pa.float64()),
        ("vector_norm", pa.float64()), ("activation_norm", pa.float64()), ("norm_ratio", pa.float64()),
        ("n_train", pa.int32()), ("n_heldout", pa.int32()), ("evaluated_on", pa.string()),
        ("polarity_flipped", pa.bool_()), ("labels_agree_with_judge", pa.bool_()),
        ("n_positive_fit", pa.int32()), ("n_negative_fit", pa.int32()), ("vector_path", pa.string()),
    ])
