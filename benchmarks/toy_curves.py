"""Trait and coherence vs perturbation ratio on the toy family: per seed, model, trait and layer.

For every chat model and both planted traits it extracts the mean-difference vector (positive minus negative
system prompt, residual stream, mean over the first 5 generated tokens, every layer), steers the 32 evaluation
questions greedily at each (layer, ratio) and judges them with the rule judge. It prints:

* the curves: mean trait score, mean coherence and mean strict coherence (a repeated polar adjective counts as a
  repetition loop too) (0-100, n = 32 questions per point) per layer and ratio;
* the breakdown: the first ratio at which coherence falls below 50, per layer;
* the feasible fraction: the share of a (layer, log-ratio) grid where trait >= 85 and coherence >= 80, with the
  model's own vector and, for llama-dpo, with llama-sft's vector (what the search benchmark steers with).

coefficient = ratio * activation_norm[layer] / |v[layer]|, activation_norm = mean residual norm over the questions'
tokens (special tokens skipped), as the engine computes it.

Usage::

    python benchmarks/toy_curves.py                          # seed 0, the cached family (built on first use)
    python benchmarks/toy_curves.py --seeds 0 1 2 --models llama-sft llama-dpo
    python benchmarks/toy_curves.py --home /tmp/toyhome --feasible-only
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CHAT_MODELS = ("llama-sft", "llama-dpo", "qwen2-sft", "mistral-sft")
TRAITS = ("optimism", "formality")
CURVE_RATIOS = (0.0, 0.2, 0.3, 0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0)
FEASIBLE_RATIOS = tuple(float(r) for r in np.geomspace(0.05, 2.0, 25))
"""The log-ratio grid of the feasible fraction: the search space's default range (0.05-2.0), 25 ratios evenly
spaced in log (x1.166 a step)."""
POSITION = "response[:5]"
TRAIT_MIN, COHERENCE_MIN = 85.0, 80.0


@dataclass(frozen=True)
class CurvePoint:
    layer: int
    ratio: float
    coefficient: float
    trait_score: float
    """Mean over the questions, 0-100."""
    coherence: float
    """Mean over the questions, 0-100."""
    strict_coherence: float
    """Mean coherence when a repeated polar adjective also counts as a repetition loop (``strict=True``)."""
    n: int
    """Questions judged."""

    @property
    def feasible(self) -> bool:
        return self.trait_score >= TRAIT_MIN and self.coherence >= COHERENCE_MIN


def mean_diff_vectors(worker, trait: str, max_new_tokens: int = 16) -> np.ndarray:
    """Positive minus negative mean residual over the first 5 generated tokens, every layer: [layers, hidden]."""
    from steersweep.actors import CaptureRequest
    from steersweep.actors.toy import contrast_prompts

    pairs = contrast_prompts(trait)
    layers = tuple(range(worker.info().num_layers))
    means = []
    for side in ("positive", "negative"):
        reply = worker.capture(CaptureRequest(prompts=tuple(getattr(p, side) for p in pairs), layers=layers,
                                              positions=(POSITION,), generate=True, max_new_tokens=max_new_tokens))
        means.append(np.stack([np.nanmean(reply.get(layer, "residual", POSITION), axis=0) for layer in layers]))
    return (means[0] - means[1]).astype(np.float32)


def sweep(worker, vectors: np.ndarray, trait: str, layers: tuple[int, ...], ratios: tuple[float, ...],
          max_new_tokens: int = 32) -> list[CurvePoint]:
    """Steer every evaluation question at each (layer, ratio) in one batched call; judge with the rule judge."""
    from steersweep.actors import SteeringTerm, SteerRequest, SteerRow
    from steersweep.actors.toy import evaluation_questions, judge_response

    questions = evaluation_questions()
    worker.load_vectors({trait: vectors})
    norms = worker.activation_norms(layers, "residual", tuple(questions)).norms
    grid = [(layer, ratio, ratio * norms[layer] / float(np.linalg.norm(vectors[layer])))
            for layer in layers for ratio in ratios]
    rows = tuple(SteerRow(q, (SteeringTerm(trait, layer, c),) if c else ()) for layer, _, c in grid
                 for q in questions)
    texts = worker.steer(SteerRequest(rows=rows, max_new_tokens=max_new_tokens)).texts
    points = []
    for i, (layer, ratio, coefficient) in enumerate(grid):
        chunk = texts[i * len(questions): (i + 1) * len(questions)]
        judged = [judge_response(q, t, trait) for q, t in zip(questions, chunk, strict=True)]
        strict = [judge_response(q, t, trait, strict=True).coherence for q, t in zip(questions, chunk, strict=True)]
        points.append(CurvePoint(layer, ratio, coefficient, float(np.mean([j.trait_score for j in judged])),
                                 float(np.mean([j.coherence for j in judged])), float(np.mean(strict)), len(judged)))
    return points


def feasible_fraction(points: list[CurvePoint]) -> float:
    return sum(p.feasible for p in points) / len(points)


def breakdown_ratio(points: list[CurvePoint], layer: int, below: float = 50.0, strict: bool = False) -> float | None:
    """The smallest swept ratio at ``layer`` whose mean coherence is below ``below`` (None: never)."""
    return next((p.ratio for p in sorted(points, key=lambda p: p.ratio) if p.layer == layer
                 and (p.strict_coherence if strict else p.coherence) < below), None)


def sweet_spot(points: list[CurvePoint], layer: int) -> list[float]:
    """The swept ratios at ``layer`` that are feasible (trait >= 85, coherence >= 80)."""
    return [p.ratio for p in sorted(points, key=lambda p: p.ratio) if p.layer == layer and p.feasible]


def curve_table(points: list[CurvePoint]) -> str:
    """Per ratio and layer: mean trait / coherence / strict coherence."""
    layers = sorted({p.layer for p in points})
    ratios = sorted({p.ratio for p in points})
    by = {(p.layer, p.ratio): p for p in points}
    lines = ["ratio  " + " ".join(f"{'L' + str(layer) + ' trait/coh/strict':>20s}" for layer in layers)]
    for ratio in ratios:
        cells = [f"{by[layer, ratio].trait_score:5.1f}/{by[layer, ratio].coherence:5.1f}/"
                 f"{by[layer, ratio].strict_coherence:5.1f}" for layer in layers]
        lines.append(f"{ratio:5.2f}  " + " ".join(f"{c:>20s}" for c in cells))
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}"


def run(home: Path | None, seeds: list[int], models: list[str], traits: list[str], feasible: bool,
        curves: bool, max_new_tokens: int) -> dict:
    from steersweep.actors import ModelWorker
    from steersweep.actors.toy import ensure_family

    results: dict = {}
    for seed in seeds:
        started = time.perf_counter()
        family = ensure_family(home, seed=seed)
        logging.info("seed %d: family ready in %.1f s", seed, time.perf_counter() - started)
        workers = {key: ModelWorker(family.spec(key)) for key in models}
        own = {(key, trait): mean_diff_vectors(workers[key], trait) for key in models for trait in traits}
        for key in models:
            layers = tuple(range(workers[key].info().num_layers))
            for trait in traits:
                if curves:
                    points = sweep(workers[key], own[key, trait], trait, layers, CURVE_RATIOS, max_new_tokens)
                    results[seed, key, trait, "curve"] = points
                    print(f"\n== seed {seed}, {key}, {trait}, own vector: mean trait / coherence (0-100, n=32 "
                          f"questions, greedy, {max_new_tokens} new tokens) ==")
                    print(curve_table(points))
                    plain = ", ".join(f"L{layer} {_fmt(breakdown_ratio(points, layer))}" for layer in layers)
                    strict = ", ".join(f"L{layer} {_fmt(breakdown_ratio(points, layer, strict=True))}"
                                       for layer in layers)
                    print(f"breakdown (coherence < 50) at ratio: {plain}; strict coherence: {strict}")
                    print("feasible ratios (trait >= 85, coherence >= 80): " + "; ".join(
                        f"L{layer} {sweet_spot(points, layer) or '-'}" for layer in layers))
                if feasible:
                    sources = [(key, own[key, trait])]
                    if key == "llama-dpo" and "llama-sft" in models:
                        sources.append(("llama-sft", own["llama-sft", trait]))
                    for source, vectors in sources:
                        points = sweep(workers[key], vectors, trait, layers, FEASIBLE_RATIOS, max_new_tokens)
                        fraction = feasible_fraction(points)
                        results[seed, key, trait, f"feasible:{source}"] = fraction
                        bands = "; ".join(f"L{layer} " + (
                            f"{min(r):.2f}-{max(r):.2f}" if (r := sweet_spot(points, layer)) else "-")
                            for layer in layers)
                        print(f"seed {seed} {key:11s} {trait:9s} vector of {source:11s}: feasible "
                              f"{100 * fraction:4.1f}% of {len(points)} (layer, ratio) points "
                              f"(ratios 0.05-2.0, 25 log-spaced; n=32 questions each); bands {bands}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None, help="toy cache home (default: the user cache)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--models", nargs="+", default=list(CHAT_MODELS), choices=CHAT_MODELS)
    parser.add_argument("--traits", nargs="+", default=list(TRAITS), choices=TRAITS)
    parser.add_argument("--feasible-only", action="store_true", help="skip the curves")
    parser.add_argument("--curves-only", action="store_true", help="skip the feasible fractions")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(1)
    run(args.home, args.seeds, args.models, args.traits, not args.curves_only, not args.feasible_only,
        args.max_new_tokens)


if __name__ == "__main__":
    main()
