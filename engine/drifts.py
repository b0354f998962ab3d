"""Drift rollouts: per scenario, generate steered (a few ratios) and unsteered responses, judge them, and measure each
response's projection on the trait vector by replaying it through the unsteered model.

Writes the rollouts table that :func:`steersweep.analysis.scenario_drifts` turns into activation / behavioral drifts
(definitions there). Glue only: it needs a live model (a ModelWorker, ModelActor handle or ModelHandle) and a judge.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from steersweep.actors import CaptureRequest, ProjectRequest, SteeringTerm, SteerRequest, SteerRow
from steersweep.analysis import TraitVector
from steersweep.search import perturbation_coefficient

from .replay import call

logger = logging.getLogger(__name__)

DEFAULT_RATIOS = (0.0, -0.4, -0.2, 0.2, 0.4)
RESPONSE = "response[:]"


def _response_tokens(token_ids: Sequence[int], stopped: bool) -> tuple[int, ...]:
    """The response without the EOS that ended it (replaying the text would not contain it)."""
    return tuple(token_ids[:-1] if stopped and token_ids else token_ids)


def drift_rollouts(
    model: Any, model_name: str, vector: TraitVector, layer: int, questions: Sequence[str], judge: Any, trait: Any,
    ratios: Sequence[float] = DEFAULT_RATIOS, max_new_tokens: int = 32, component: str = "residual",
    vector_source: str | None = None, seed: int = 0, do_sample: bool = False, batch_size: int = 32,
) -> pa.Table:
    """One row per (scenario = question, ratio): response, judged trait score and coherence, and ``activation``.

    ``activation`` = mean over the response tokens of h_layer . v / ||v|| with h from the unsteered model replaying the
    response (None for an empty response); ``activation_steered`` = the same projection recorded during the steered
    generation itself (it includes the added ratio * ||h||; ``scenario_drifts(..., activation_column=...)`` picks
    which one the drift uses). The coefficient of ratio r is r * mean ||h_layer|| / ||v_layer||, with the
    norm measured on the questions (the perturbation-ratio convention). Ratio 0 is the unsteered reference and must
    be among ``ratios``.
    """
    if 0.0 not in [float(r) for r in ratios]:
        raise ValueError(f"ratios: {list(ratios)} lacks 0.0; the unsteered response is every scenario's reference")
    if not questions:
        raise ValueError("questions: drift rollouts need at least one scenario")
    started = time.perf_counter()
    direction = vector.at(layer).astype(np.float64)
    vector_norm = float(np.linalg.norm(direction))
    if vector_norm == 0.0:
        raise ValueError(f"vector {vector.metadata.get('trait', '?')!r} is zero at layer {layer}; pick another layer")
    unit = direction / vector_norm
    norm = call(model, "activation_norms", [layer], component, list(questions)).norms[layer]
    vector_id = f"drift-{trait.name}"
    call(model, "load_vectors", {vector_id: {layer: vector.at(layer)}})
    rows, meta = [], []
    for index, question in enumerate(questions):
        for ratio in ratios:
            coefficient = perturbation_coefficient(float(ratio), norm, vector_norm)
            terms = (SteeringTerm(vector_id, layer, coefficient, component),) if ratio else ()
            rows.append(SteerRow(question, terms, tag=f"{model_name}/q{index}/r{ratio:g}"))
            meta.append(dict(scenario=index, question=question, perturbation_ratio=float(ratio),
                             coefficient=coefficient))
    # project = steer + the per-step projection of the (steered) hidden state: same generation, one call.
    projected = call(model, "project", ProjectRequest(
        SteerRequest(rows=tuple(rows), max_new_tokens=max_new_tokens, seed=seed, do_sample=do_sample),
        vector_ids=(vector_id,), layers=(layer,), component=component))
    reply = projected.generation
    steered = [float(np.mean(p[:, 0, 0])) if len(p) else None for p in projected.projections]
    judged = judge.judge([(m["question"], text) for m, text in zip(meta, reply.texts, strict=True)], trait)
    responses = [_response_tokens(ids, stopped)
                 for ids, stopped in zip(reply.token_ids, reply.stopped_at_eos, strict=True)]
    capture = call(model, "capture", CaptureRequest(
        prompts=tuple(m["question"] for m in meta), layers=(layer,), components=(component,), positions=(RESPONSE,),
        responses=tuple(responses), batch_size=batch_size))
    means = np.asarray(capture.get(layer, component, RESPONSE), dtype=np.float64)  # NaN rows for empty responses
    projections = means @ unit
    out = []
    for m, text, judgment, projection, tokens, during in zip(meta, reply.texts, judged.judgments, projections,
                                                             responses, steered, strict=True):
        out.append(dict(model=model_name, trait=trait.name, vector_source=vector_source or model_name, layer=layer,
                        component=component, **m, response=text, response_tokens=len(tokens),
                        response_token_ids=list(tokens),
                        trait_score=judgment.trait_score, coherence=judgment.coherence,
                        activation=None if math.isnan(projection) else float(projection),
                        activation_steered=during, activation_norm=norm,
                        vector_norm=vector_norm))
    logger.info("%s: %d drift rollouts (%d scenarios x %d ratios) in %.1f s", model_name, len(out), len(questions),
                len(ratios), time.perf_counter() - started)
    return pa.Table.from_pylist(out)
