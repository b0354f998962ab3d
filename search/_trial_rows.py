"""Rows of the responses and trials tables for finished trials (shared by the scheduler and resume)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._ratio import perturbation_coefficient

if TYPE_CHECKING:
    from ._scheduler import StudyRun
    from ._study import TrialPlan


def _mean_se(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))


def summarize(rows: Sequence[dict]) -> dict[str, Any]:
    """Mean and standard error (sd / sqrt(n)) of the trait score and coherence over judged responses; ``n`` counts
    responses with both scores."""
    judged = [r for r in rows if r.get("trait_score") is not None and r.get("coherence") is not None]
    trait, trait_se = _mean_se([float(r["trait_score"]) for r in judged])
    coherence, coherence_se = _mean_se([float(r["coherence"]) for r in judged])
    return {"trait_score": trait, "trait_score_se": trait_se, "coherence": coherence, "coherence_se": coherence_se,
            "n": len(judged)}


def _keys(judge: Any, items: list[tuple[str, str]], trait: Any) -> list[str | None]:
    make = getattr(judge, "make_prompts", None)
    if make is None:
        return [None] * len(items)
    from steersweep.actors.judges import METRIC_TRAIT

    return [row[0].key for row in make(items, trait, (METRIC_TRAIT,))]


def response_rows(run: StudyRun, judge: Any, parts: Sequence[tuple[int, slice]], reply: Any,
                  texts: Sequence[str]) -> list[list[dict]]:
    """Judge one study's share of a steer reply; one list of response rows per (trial number, row slice)."""
    items = []
    for _, rows in parts:
        items.extend(zip(run.questions, texts[rows], strict=True))
    judged = judge.judge(items, run.trait).judgments
    keys = _keys(judge, items, run.trait)
    out, k = [], 0
    for number, rows in parts:
        block = []
        for q, i in enumerate(range(rows.start, rows.stop)):
            judgment = judged[k]
            block.append({
                "study": run.name, "trial_number": number, "question_index": q, "question": run.questions[q],
                "response": texts[i], "response_clean": reply.texts[i],
                "response_tokens": int(reply.response_token_counts[i]), "stopped_at_eos": bool(reply.stopped_at_eos[i]),
                "trait_score": judgment.trait_score, "coherence": judgment.coherence, "judgment_key": keys[k],
            })
            k += 1
        out.append(block)
    return out


def trial_row(run: StudyRun, plan: TrialPlan, responses: Sequence[dict], seconds: float) -> dict[str, Any]:
    """The trials-table row of ``plan`` from its judged responses (state COMPLETE, or FAIL without scores)."""
    spec = plan.study.spec
    stats = summarize(responses)
    coefficients = [weight * plan.point.sign * perturbation_coefficient(plan.point.ratio, run.activation_norms[layer],
                                                                        run.vector_norms[layer])
                    for layer, weight in zip(plan.site.layers, plan.site.weights, strict=True)]
    first = plan.site.layer
    complete = stats["trait_score"] is not None
    baseline_trait, baseline_coherence = run.baseline if run.baseline is not None else (None, None)
    return {
        "study": run.name, "target_model": spec.target_model, "trait": spec.trait,
        "vector_source": spec.vector_source, "vector_method": spec.vector_method, "sampler": plan.study.sampler.name,
        "trial_number": plan.number, "state": "COMPLETE" if complete else "FAIL", "layers": list(plan.site.layers),
        "layer": first, "perturbation_ratio": plan.point.ratio, "coefficient": coefficients[0],
        "activation_norm": run.activation_norms[first], "vector_norm": run.vector_norms[first], **stats,
        "baseline_trait_score": baseline_trait, "baseline_coherence": baseline_coherence,
        "feasible": bool(complete and stats["coherence"] >= spec.coherence_threshold),
        "coherence_threshold": spec.coherence_threshold, "site": plan.site.label, "sign": plan.point.sign,
        "coefficients": coefficients, "source": plan.point.source, "retry_of": plan.retry_of, "seconds": seconds,
    }
