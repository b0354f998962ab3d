"""Activation similarity of two models on the same response tokens (model-diff plan Phase 4).

Model A generates; its responses are replayed through model B (capture replay, ``engine/replay.py``); both give
per-token activations ``[n_tokens, n_layers, hidden]`` per prompt. From those:

- per-layer similarity: per prompt, cos(mean over tokens of A[:, L], mean over tokens of B[:, L]); mean over prompts;
- per-position similarity: per response position t, cos(A[t, L], B[t, L]) averaged over the prompts that reach t,
  kept only for positions covered by at least ``min_coverage`` (80%) of the prompts (the tail is noise);
- its Pearson r with a transfer curve (best trait delta per layer) per trait.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .stats import Correlation, StatisticsError, pearson


@dataclass(frozen=True)
class SimilarityResult:
    """Per-layer and per-position cosine tables, plus the per-prompt matrix ``[n_prompts, n_layers]``."""

    per_layer: pa.Table
    """layer, mean_cosine, std_cosine, n_prompts."""
    per_position: pa.Table
    """layer, position, mean_cosine, n_prompts (positions with coverage >= min_coverage only)."""
    per_prompt: np.ndarray
    layers: tuple[int, ...]

    def layer_means(self) -> dict[int, float]:
        return {r["layer"]: r["mean_cosine"] for r in self.per_layer.to_pylist()}


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine along the last axis; two zero vectors are identical (1.0), one zero vector gives 0.0."""
    dot = np.sum(a * b, axis=-1)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    both_zero = (np.linalg.norm(a, axis=-1) == 0) & (np.linalg.norm(b, axis=-1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), 0.0)
    return np.clip(np.where(both_zero, 1.0, cosine), -1.0, 1.0)


def activation_similarity(
    model_a: Sequence[np.ndarray], model_b: Sequence[np.ndarray], layers: Sequence[int] | None = None,
    min_coverage: float = 0.8,
) -> SimilarityResult:
    """Cosine similarity of A's and B's activations on the same responses.

    Args:
        model_a: per prompt, ``[n_tokens_i, n_layers, hidden]`` response-token activations of model A.
        model_b: the same responses replayed through model B, same shapes. When a replay re-tokenised the text and
            the counts differ, the common prefix is compared.
        layers: the layer ids of axis 1 (default 0..n_layers-1).
        min_coverage: keep positions reached by at least this fraction of the prompts.

    Example:
        >>> import numpy as np
        >>> a = [np.ones((3, 2, 4)), np.ones((2, 2, 4))]
        >>> activation_similarity(a, a).layer_means()
        {0: 1.0, 1: 1.0}
    """
    if len(model_a) != len(model_b):
        raise ValueError(f"model_a has {len(model_a)} prompts and model_b {len(model_b)}; replay the same prompts")
    if not model_a:
        raise ValueError("no prompts: activation similarity needs at least one replayed response")
    if not 0 < min_coverage <= 1:
        raise ValueError(f"min_coverage: {min_coverage} must be in (0, 1]")
    pairs = []
    for i, (a, b) in enumerate(zip(model_a, model_b, strict=True)):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:]:
            raise ValueError(f"prompt {i}: shapes {a.shape} and {b.shape}; expected [n_tokens, n_layers, hidden] with "
                             "the same layers and hidden size (compare models of one hidden size)")
        n = min(a.shape[0], b.shape[0])
        pairs.append((a[:n], b[:n]))
    n_layers = pairs[0][0].shape[1]
    if any(a.shape[1] != n_layers for a, _ in pairs):
        raise ValueError("prompts were captured at different numbers of layers; capture every prompt at one layer set")
    layer_ids = tuple(range(n_layers)) if layers is None else tuple(int(layer) for layer in layers)
    if len(layer_ids) != n_layers:
        raise ValueError(f"layers: {len(layer_ids)} ids for {n_layers} captured layers")
    kept = [(a, b) for a, b in pairs if a.shape[0] > 0]
    if not kept:
        raise ValueError("every response is empty; generate longer responses before comparing activations")
    per_prompt = np.stack([_cosine(a.mean(axis=0), b.mean(axis=0)) for a, b in kept])  # [n_prompts, n_layers]
    per_layer = pa.Table.from_pylist([
        dict(layer=layer, mean_cosine=float(per_prompt[:, j].mean()), std_cosine=float(per_prompt[:, j].std()),
             n_prompts=len(kept)) for j, layer in enumerate(layer_ids)])
    max_len = max(a.shape[0] for a, _ in kept)
    sums = np.zeros((max_len, n_layers))
    counts = np.zeros(max_len, dtype=np.int64)
    for a, b in kept:
        sums[: a.shape[0]] += _cosine(a, b)
        counts[: a.shape[0]] += 1
    needed = math.ceil(min_coverage * len(pairs) - 1e-9)
    rows = [dict(layer=layer, position=t, mean_cosine=float(sums[t, j] / counts[t]), n_prompts=int(counts[t]))
            for j, layer in enumerate(layer_ids) for t in range(max_len) if counts[t] >= needed]
    per_position = pa.Table.from_pylist(rows, schema=pa.schema([
        ("layer", pa.int64()), ("position", pa.int64()), ("mean_cosine", pa.float64()), ("n_prompts", pa.int64())]))
    return SimilarityResult(per_layer, per_position, per_prompt, layer_ids)


def similarity_transfer_correlation(
    similarity: Mapping[int, float], transfer_curves: Mapping[str, Mapping[int, float]],
) -> pa.Table:
    """Pearson r between per-layer similarity and each trait's transfer curve (best delta per layer).

    Exploratory, as in the research (one point per layer). Rows: trait, r, p_value, ci_low, ci_high, n, note; a
    curve too short or constant gets NaN and the reason.
    """
    rows = []
    for trait, curve in transfer_curves.items():
        layers = sorted(set(similarity) & set(curve))
        try:
            c: Correlation = pearson([similarity[layer] for layer in layers], [curve[layer] for layer in layers])
            rows.append(dict(trait=trait, r=c.r, p_value=c.p_value, ci_low=c.ci_low, ci_high=c.ci_high, n=c.n,
                             note=""))
        except StatisticsError as error:
            rows.append(dict(trait=trait, r=math.nan, p_value=math.nan, ci_low=math.nan, ci_high=math.nan,
                             n=len(layers), note=str(error)))
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("trait", pa.string()), ("r", pa.float64()), ("p_value", pa.float64()), ("ci_low", pa.float64()),
        ("ci_high", pa.float64()), ("n", pa.int64()), ("note", pa.string())]))
