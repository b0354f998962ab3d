"""Vector repair from the research notes: cosine filtering, PCA denoising, contrastive probing on judged responses.

- :func:`cosine_filter` drops samples that point away from their class (cosine to the class mean below a threshold,
  0.80 by default), the fix for a class whose prompts do not cluster (Mistral in the notes).
- :func:`pca_denoise` removes the top-k within-class principal components from every sample before the contrast,
  the fix for classes that vary a lot along directions unrelated to the trait (Qwen2 in the notes).
- :func:`contrastive_probe` trains a probe on the model's own responses binarised by judge score; it refuses
  with :class:`InsufficientClassError` when a class is too small, which the notes found for RLHF models.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .extraction import ExtractionResult, LayeredActivations, as_layers, probe

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CosineFilterResult:
    """Samples kept per layer after cosine filtering.

    Attributes:
        kept: one ``[n_kept_l, dim]`` array per layer.
        keep_mask: bool ``[n_layers, n_samples]``.
        cosines: float ``[n_layers, n_samples]``, each sample's cosine to its class mean (all samples).
        threshold: the cosine below which a sample was dropped.
    """

    kept: list[np.ndarray]
    keep_mask: np.ndarray
    cosines: np.ndarray
    threshold: float

    @property
    def n_dropped(self) -> list[int]:
        """Dropped samples per layer."""
        return [int(n) for n in (~self.keep_mask).sum(axis=1)]


def class_cosines(samples: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``samples`` (``[n, dim]``) to the mean of all rows (0 for a zero row)."""
    samples = np.asarray(samples, dtype=np.float64)
    centre = samples.mean(axis=0)
    denom = np.linalg.norm(samples, axis=1) * np.linalg.norm(centre)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosines = np.where(denom > 0, samples @ centre / np.where(denom > 0, denom, 1.0), 0.0)
    return cosines


def cosine_filter(samples: LayeredActivations, threshold: float = 0.80, *, min_keep: int = 2) -> CosineFilterResult:
    """Drop the samples of ONE class whose cosine to the class mean is below ``threshold``, per layer.

    Call it once per class. The class mean is computed over all samples of the class (as in the notes).

    Args:
        samples: one class's activations (any layout accepted by the extraction methods, same samples per layer).
        threshold: minimum cosine to the class mean to keep a sample.
        min_keep: refuse (ValueError) when fewer samples would remain at some layer.
    """
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: {threshold} is not a cosine; use a value in [-1, 1] (the notes use 0.80)")
    layers = as_layers(samples, "samples")
    if len({len(layer) for layer in layers}) > 1:
        raise ValueError("samples: cosine_filter needs the same samples at every layer (one [n, L, d] array)")
    cosines = np.stack([class_cosines(layer) for layer in layers])
    keep = cosines >= threshold
    for i, layer_keep in enumerate(keep):
        if layer_keep.sum() < min_keep:
            raise ValueError(
                f"cosine_filter: only {int(layer_keep.sum())} of {len(layer_keep)} samples reach cosine {threshold} "
                f"at layer index {i} (need {min_keep}); lower the threshold or add prompts"
            )
    result = CosineFilterResult([layer[k] for layer, k in zip(layers, keep, strict=True)], keep, cosines, threshold)
    logger.info("cosine_filter(threshold=%.2f): dropped %s of %d samples per layer", threshold, result.n_dropped,
                keep.shape[1])
    return result


@dataclass(frozen=True)
class PcaDenoiseResult:
    """Class activations with the top-k within-class principal components projected out, per layer."""

    positive: list[np.ndarray]
    negative: list[np.ndarray]
    components: list[np.ndarray]
    """One ``[k, dim]`` orthonormal array per layer: the removed directions."""
    explained_variance_ratio: list[float]
    """Share of the within-class variance that the removed components carried, per layer."""


def pca_denoise(positive: LayeredActivations, negative: LayeredActivations, k: int = 1) -> PcaDenoiseResult:
    """Remove the top-``k`` principal components of the within-class scatter from every sample.

    The within-class scatter pools both classes, each centred on its own mean, so the removed directions are the
    ones along which samples vary *inside* a class (syntax, length, magnitude), not the contrast itself. Caution:
    if the trait direction were itself a top within-class component it would be removed too; check
    ``explained_variance_ratio`` and the held-out accuracy.
    """
    if k < 0:
        raise ValueError(f"k: {k} must be >= 0 (number of within-class components to remove)")
    pos_layers = as_layers(positive, "positive")
    neg_layers = as_layers(negative, "negative")
    if len(pos_layers) != len(neg_layers):
        raise ValueError(f"positive has {len(pos_layers)} layers but negative has {len(neg_layers)}")
    out_pos, out_neg, components, explained = [], [], [], []
    for pos, neg in zip(pos_layers, neg_layers, strict=True):
        centred = np.concatenate([pos - pos.mean(axis=0), neg - neg.mean(axis=0)])
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        k_eff = min(k, vt.shape[0])
        basis = vt[:k_eff]
        total = float(np.sum(singular**2))
        explained.append(float(np.sum(singular[:k_eff] ** 2) / total) if total > 0 else 0.0)
        out_pos.append(pos - (pos @ basis.T) @ basis)
        out_neg.append(neg - (neg @ basis.T) @ basis)
        components.append(basis)
    return PcaDenoiseResult(out_pos, out_neg, components, explained)


class InsufficientClassError(ValueError):
    """Too few judged responses on one side of the contrast to train a contrastive probe."""


def binarize_scores(
    scores: Sequence[float | None], high_threshold: float, low_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Masks ``(high, low)``: score >= high_threshold, score <= low_threshold; None/NaN are in neither."""
    if low_threshold >= high_threshold:
        raise ValueError(
            f"low_threshold ({low_threshold}) must be below high_threshold ({high_threshold}) so that no response "
            "is in both classes"
        )
    values = np.array([np.nan if s is None else float(s) for s in scores], dtype=np.float64)
    finite = np.isfinite(values)
    high = finite & (values >= high_threshold)
    low = finite & (values <= low_threshold)
    return high, low


def contrastive_probe(
    activations: np.ndarray,
    scores: Sequence[float | None],
    *,
    high_threshold: float = 60.0,
    low_threshold: float = 40.0,
    min_per_class: int = 10,
    regularization: float = 1.0,
) -> ExtractionResult:
    """Probe trained on the model's own responses, labelled by their judge trait scores.

    Args:
        activations: ``[n_responses, n_layers, dim]`` (or ``[n, dim]``) activations of the judged responses.
        scores: judge trait score (0-100) per response; None or NaN for unscored ones.
        high_threshold: responses scoring at least this are the positive class.
        low_threshold: responses scoring at most this are the negative class.
        min_per_class: refuse below this many responses in either class.

    Raises:
        InsufficientClassError: a class has fewer than ``min_per_class`` responses; the message gives both counts
            and what to change.
    """
    layers = as_layers(activations, "activations")
    scores = list(scores)
    if len(scores) != len(layers[0]):
        raise ValueError(f"scores: {len(scores)} scores for {len(layers[0])} responses; give one per response")
    high, low = binarize_scores(scores, high_threshold, low_threshold)
    n_high, n_low = int(high.sum()), int(low.sum())
    if n_high < min_per_class or n_low < min_per_class:
        short = "high" if n_high < min_per_class else "low"
        raise InsufficientClassError(
            f"contrastive_probe: {n_high} responses scored >= {high_threshold} and {n_low} scored <= {low_threshold} "
            f"(of {len(scores)}); the {short} class needs at least {min_per_class}. The model rarely shows that pole "
            "of the trait (as RLHF models do for 'bad' traits): widen the thresholds, judge more responses, or use "
            "template contrast prompts instead"
        )
    result = probe([layer[high] for layer in layers], [layer[low] for layer in layers], regularization=regularization)
    details = dict(result.details)
    details.update({"n_high": n_high, "n_low": n_low, "high_threshold": high_threshold, "low_threshold": low_threshold})
    return ExtractionResult("contrastive_probe", result.vectors, result.polarity_flipped, result.n_positive,
                            result.n_negative, details)
