"""Helpers of the slow toy-family tests: mean-difference vectors, perturbation-ratio sweeps, judged means."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from steersweep.actors import CaptureRequest, ModelWorker, SteeringTerm, SteerRequest, SteerRow
from steersweep.actors.toy import contrast_prompts, evaluation_questions, judge_response

POSITION = "response[:5]"


def mean_diff_vectors(worker: ModelWorker, trait: str = "optimism") -> np.ndarray:
    """Positive minus negative (cheerful minus gloomy, formal minus casual) mean residual over the first 5
    generated tokens, every layer: [num_layers, hidden]."""
    pairs = contrast_prompts(trait)
    layers = tuple(range(worker.info().num_layers))
    means = []
    for side in ("positive", "negative"):
        reply = worker.capture(CaptureRequest(prompts=tuple(getattr(p, side) for p in pairs), layers=layers,
                                              positions=(POSITION,), generate=True, max_new_tokens=16))
        means.append(np.stack([np.nanmean(reply.get(layer, "residual", POSITION), axis=0) for layer in layers]))
    return means[0] - means[1]


@dataclass(frozen=True)
class SweepPoint:
    perturbation_ratio: float
    coefficient: float
    trait_score: float
    """Mean over the evaluation questions, 0-100."""
    coherence: float
    """Mean over the evaluation questions, 0-100."""
    strict_coherence: float
    """Mean coherence when a repeated polar adjective counts as a repetition loop too."""
    n: int


def ratio_sweep(worker: ModelWorker, vectors: np.ndarray, layer: int, ratios: list[float],
                max_new_tokens: int = 32, trait: str = "optimism") -> list[SweepPoint]:
    """Steer every evaluation question at ``layer`` for each perturbation ratio, in one batched call.

    coefficient = ratio * activation_norm[layer] / |v[layer]|, activation_norm over the questions' tokens.
    """
    questions = evaluation_questions()
    worker.load_vectors({trait: vectors.astype(np.float32)})
    activation_norm = worker.activation_norms((layer,), "residual", tuple(questions)).norms[layer]
    vector_norm = float(np.linalg.norm(vectors[layer]))
    coefficients = [ratio * activation_norm / vector_norm for ratio in ratios]
    rows = tuple(SteerRow(q, (SteeringTerm(trait, layer, c),) if c else ())
                 for c in coefficients for q in questions)
    texts = worker.steer(SteerRequest(rows=rows, max_new_tokens=max_new_tokens)).texts
    points = []
    for i, (ratio, coefficient) in enumerate(zip(ratios, coefficients, strict=True)):
        pairs = list(zip(questions, texts[i * len(questions):], strict=False))
        judged = [judge_response(q, t, trait) for q, t in pairs]
        strict = [judge_response(q, t, trait, strict=True).coherence for q, t in pairs]
        points.append(SweepPoint(ratio, coefficient, float(np.mean([j.trait_score for j in judged])),
                                 float(np.mean([j.coherence for j in judged])), float(np.mean(strict)), len(judged)))
    return points


def first_ratio_reaching(points: list[SweepPoint], trait: float) -> float | None:
    """The smallest swept ratio whose mean trait score is at least ``trait`` (None if none is)."""
    return next((p.perturbation_ratio for p in points if p.trait_score >= trait), None)


def table(points: list[SweepPoint]) -> str:
    return "\n".join(f"  ratio {p.perturbation_ratio:4.2f}  coef {p.coefficient:6.2f}  trait {p.trait_score:5.1f}  "
                     f"coherence {p.coherence:5.1f}  strict {p.strict_coherence:5.1f}  (n={p.n})" for p in points)
