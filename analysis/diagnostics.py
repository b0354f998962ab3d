"""Per-layer diagnostics of an extracted trait vector: held-out accuracy, polarity, effect size, class geometry.

Definitions (all per layer; "projection" is ``x . v``):

- ``heldout_accuracy``: share of held-out samples on the correct side of the threshold, the midpoint between the
  two training-class mean projections (positive above, negative below).
- ``polarity_correct``: the held-out positive class projects higher on average than the held-out negative class.
- ``effect_size``: Cohen's d of the held-out projections, ``(mean_pos - mean_neg) / pooled_sd`` with the pooled
  standard deviation of the two classes (ddof=1).
- ``separation``: ``|mean_pos - mean_neg|`` of the raw activations (train and held-out together).
- ``within_var_positive`` / ``within_var_negative``: mean per-dimension variance of a class,
  ``mean_i |x_i - mean|^2 / dim`` (ddof=0).
- ``cosine_positive`` / ``cosine_negative``: mean cosine of each sample to its class mean.
- ``snr``: ``separation / mean(within_var_positive, within_var_negative)`` (the research notes' SNR).
- ``vector_norm``, ``activation_norm`` (mean token norm of the component, measured on the model) and
  ``norm_ratio = vector_norm / activation_norm``.

When no held-out samples are given, the vector-dependent numbers are computed on the training samples and
``evaluated_on`` says ``train``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .extraction import ExtractionResult, LayeredActivations, as_layers


@dataclass(frozen=True)
class LayerDiagnostics:
    """Diagnostics of one vector at one layer (see the module docstring for each definition)."""

    layer: int
    heldout_accuracy: float
    polarity_correct: bool
    effect_size: float
    separation: float
    within_var_positive: float
    within_var_negative: float
    cosine_positive: float
    cosine_negative: float
    snr: float
    vector_norm: float
    activation_norm: float
    norm_ratio: float
    n_train: int
    n_heldout: int
    evaluated_on: str

    def as_row(self) -> dict[str, object]:
        return asdict(self)


def _mean_cosine_to_mean(samples: np.ndarray) -> float:
    centre = samples.mean(axis=0)
    centre_norm = np.linalg.norm(centre)
    norms = np.linalg.norm(samples, axis=1)
    valid = norms > 0
    if centre_norm == 0 or not valid.any():
        return float("nan")
    return float(np.mean(samples[valid] @ centre / (norms[valid] * centre_norm)))


def _within_variance(samples: np.ndarray) -> float:
    centred = samples - samples.mean(axis=0)
    return float(np.mean(np.sum(centred**2, axis=1)) / samples.shape[1])


def cohens_d(positive_projection: np.ndarray, negative_projection: np.ndarray) -> float:
    """Cohen's d with the pooled standard deviation (ddof=1); NaN when a class has fewer than two samples."""
    n_pos, n_neg = len(positive_projection), len(negative_projection)
    if n_pos < 2 or n_neg < 2:
        return float("nan")
    pooled = ((n_pos - 1) * np.var(positive_projection, ddof=1) + (n_neg - 1) * np.var(negative_projection, ddof=1)) / (
        n_pos + n_neg - 2
    )
    delta = float(np.mean(positive_projection) - np.mean(negative_projection))
    if pooled <= 0:
        return math.copysign(float("inf"), delta) if delta else float("nan")
    return delta / math.sqrt(pooled)


def diagnose_layer(
    vector: np.ndarray,
    train_positive: np.ndarray,
    train_negative: np.ndarray,
    heldout_positive: np.ndarray | None = None,
    heldout_negative: np.ndarray | None = None,
    *,
    layer: int = 0,
    activation_norm: float = float("nan"),
) -> LayerDiagnostics:
    """Diagnostics of ``vector`` (``[dim]``) on one layer's ``[n, dim]`` class activations."""
    vector = np.asarray(vector, dtype=np.float64)
    train_positive = np.asarray(train_positive, dtype=np.float64)
    train_negative = np.asarray(train_negative, dtype=np.float64)
    has_heldout = (
        heldout_positive is not None
        and heldout_negative is not None
        and len(heldout_positive) > 0
        and len(heldout_negative) > 0
    )
    if has_heldout:
        eval_pos = np.asarray(heldout_positive, dtype=np.float64)
        eval_neg = np.asarray(heldout_negative, dtype=np.float64)
    else:
        eval_pos, eval_neg = train_positive, train_negative

    threshold = 0.5 * (float(np.mean(train_positive @ vector)) + float(np.mean(train_negative @ vector)))
    pos_proj, neg_proj = eval_pos @ vector, eval_neg @ vector
    correct = int(np.sum(pos_proj > threshold)) + int(np.sum(neg_proj < threshold))
    accuracy = correct / (len(pos_proj) + len(neg_proj))

    all_pos = np.concatenate([train_positive, eval_pos]) if has_heldout else train_positive
    all_neg = np.concatenate([train_negative, eval_neg]) if has_heldout else train_negative
    separation = float(np.linalg.norm(all_pos.mean(axis=0) - all_neg.mean(axis=0)))
    var_pos, var_neg = _within_variance(all_pos), _within_variance(all_neg)
    mean_var = 0.5 * (var_pos + var_neg)
    vector_norm = float(np.linalg.norm(vector))
    return LayerDiagnostics(
        layer=int(layer),
        heldout_accuracy=float(accuracy),
        polarity_correct=bool(np.mean(pos_proj) > np.mean(neg_proj)),
        effect_size=cohens_d(pos_proj, neg_proj),
        separation=separation,
        within_var_positive=var_pos,
        within_var_negative=var_neg,
        cosine_positive=_mean_cosine_to_mean(all_pos),
        cosine_negative=_mean_cosine_to_mean(all_neg),
        snr=separation / mean_var if mean_var > 0 else float("inf"),
        vector_norm=vector_norm,
        activation_norm=float(activation_norm),
        norm_ratio=vector_norm / activation_norm if activation_norm and activation_norm > 0 else float("nan"),
        n_train=len(train_positive) + len(train_negative),
        n_heldout=(len(eval_pos) + len(eval_neg)) if has_heldout else 0,
        evaluated_on="heldout" if has_heldout else "train",
    )


def diagnose(
    result: ExtractionResult,
    train_positive: LayeredActivations,
    train_negative: LayeredActivations,
    heldout_positive: LayeredActivations | None = None,
    heldout_negative: LayeredActivations | None = None,
    *,
    layers: Sequence[int] | None = None,
    activation_norms: Sequence[float] | None = None,
) -> list[LayerDiagnostics]:
    """Diagnostics for every layer of an extraction result.

    Args:
        result: the vectors to diagnose (one per layer, in the same order as the activations).
        train_positive, train_negative: the samples the vectors were fitted on.
        heldout_positive, heldout_negative: held-out samples (optional).
        layers: model layer index of each row (default 0..n-1).
        activation_norms: mean activation norm per row, for ``norm_ratio``.
    """
    train_pos = as_layers(train_positive, "train_positive")
    train_neg = as_layers(train_negative, "train_negative")
    n_layers = result.num_layers
    held_pos = as_layers(heldout_positive, "heldout_positive") if heldout_positive is not None else None
    held_neg = as_layers(heldout_negative, "heldout_negative") if heldout_negative is not None else None
    for name, value in (("train_positive", train_pos), ("train_negative", train_neg), ("heldout_positive", held_pos),
                        ("heldout_negative", held_neg)):
        if value is not None and len(value) != n_layers:
            raise ValueError(f"{name}: {len(value)} layers but the result has {n_layers} vectors")
    layer_ids = list(layers) if layers is not None else list(range(n_layers))
    norms = list(activation_norms) if activation_norms is not None else [float("nan")] * n_layers
    if len(layer_ids) != n_layers or len(norms) != n_layers:
        raise ValueError(f"layers/activation_norms: need {n_layers} entries, got {len(layer_ids)} / {len(norms)}")
    return [
        diagnose_layer(
            result.vectors[i],
            train_pos[i],
            train_neg[i],
            held_pos[i] if held_pos is not None else None,
            held_neg[i] if held_neg is not None else None,
            layer=layer_ids[i],
            activation_norm=norms[i],
        )
        for i in range(n_layers)
    ]


@dataclass(frozen=True)
class LabelPolarity:
    """Whether a dataset's positive/negative labels agree with judge trait scores of its rollouts.

    ``agrees`` is None when both classes score the same on average (the judge cannot tell them apart).
    """

    agrees: bool | None
    mean_positive: float
    mean_negative: float
    n_positive: int
    n_negative: int

    def describe(self) -> str:
        verdict = {True: "agree with", False: "are the reverse of", None: "are not separated by"}[self.agrees]
        return (
            f"labels {verdict} the judge: mean trait score {self.mean_positive:.1f} for positive rollouts "
            f"(n={self.n_positive}) vs {self.mean_negative:.1f} for negative (n={self.n_negative}), 0-100 scale"
        )


def label_polarity(positive_scores: Sequence[float | None], negative_scores: Sequence[float | None]) -> LabelPolarity:
    """Compare judge trait scores of positive and negative rollouts (None/NaN scores are ignored).

    A swapped dataset (positive.jsonl holding the negative scenarios) gives ``agrees=False``.

    Raises:
        ValueError: when a class has no scored rollout.
    """
    pos = np.array([s for s in positive_scores if s is not None and np.isfinite(s)], dtype=np.float64)
    neg = np.array([s for s in negative_scores if s is not None and np.isfinite(s)], dtype=np.float64)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(
            f"label_polarity: {len(pos)} positive and {len(neg)} negative rollouts have a judge score; need at least "
            "one of each (check the judge)"
        )
    mean_pos, mean_neg = float(pos.mean()), float(neg.mean())
    agrees = None if mean_pos == mean_neg else mean_pos > mean_neg
    return LabelPolarity(agrees, mean_pos, mean_neg, len(pos), len(neg))
