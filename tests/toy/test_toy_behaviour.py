"""Must show 1-4 on the full family (slow: the family is built once into the cache, then reused).

Run with ``pytest tests/toy -m slow -o log_cli=true --log-cli-level=INFO`` to see the measured numbers.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from toy_steering import first_ratio_reaching, mean_diff_vectors, ratio_sweep, table

from steersweep.actors import ModelWorker, SteerRequest, SteerRow
from steersweep.actors.toy import (
    FAMILY_KEYS,
    OPTIMISTIC_ADJECTIVES,
    PESSIMISTIC_ADJECTIVES,
    STYLE_PROMPTS,
    SYSTEM_PROMPTS,
    build_family,
    evaluation_questions,
    judge_response,
)

logger = logging.getLogger(__name__)
pytestmark = pytest.mark.slow

MIDDLE_LAYER = 2  # of 4


@pytest.fixture(scope="module")
def sft_vectors(toy_family):
    return mean_diff_vectors(ModelWorker(toy_family.spec("llama-sft")))


def test_full_family_builds_in_under_three_minutes_with_the_weights_of_the_cached_build(toy_family, tmp_path):
    """Must show 1: a fresh build (same seed) takes < 180 s on this machine and equals the cached family."""
    started = time.perf_counter()
    fresh = build_family(tmp_path, seed=0, force=True)
    seconds = time.perf_counter() - started
    per_model = {key: fresh.manifest["details"][key]["train_seconds"] for key in FAMILY_KEYS}
    logger.info("full family build: %.1f s wall (%d workers); per model (s): %s", seconds,
                fresh.manifest["workers"], per_model)
    assert seconds < 180
    for key in FAMILY_KEYS:
        a = load_file(toy_family.path(key) / "model.safetensors")
        b = load_file(fresh.path(key) / "model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a), key


def _adjectives(texts: list[str]) -> tuple[int, int]:
    words = " ".join(texts).split()
    return sum(w in OPTIMISTIC_ADJECTIVES for w in words), sum(w in PESSIMISTIC_ADJECTIVES for w in words)


@pytest.mark.parametrize("key", ["llama-sft", "qwen2-sft", "mistral-sft", "llama-dpo"])
def test_sft_follows_the_system_prompt_and_is_balanced_without_one(toy_family, key):
    """Must show 2: >= 90% of adjectives match the asked mood; without a system prompt the trait is 30-70."""
    worker = ModelWorker(toy_family.spec(key))
    questions = evaluation_questions()
    rows = [SteerRow(q) for q in questions]
    for mood in ("cheerful", "gloomy"):
        prompts = SYSTEM_PROMPTS[mood]
        rows += [SteerRow(({"role": "system", "content": prompts[i % len(prompts)]}, {"role": "user", "content": q}))
                 for i, q in enumerate(questions)]
    texts = worker.steer(SteerRequest(rows=tuple(rows), max_new_tokens=32)).texts
    n = len(questions)
    plain, cheerful, gloomy = texts[:n], texts[n: 2 * n], texts[2 * n:]
    optimistic, pessimistic = _adjectives(cheerful)
    cheerful_match = optimistic / (optimistic + pessimistic)
    optimistic, pessimistic = _adjectives(gloomy)
    gloomy_match = pessimistic / (optimistic + pessimistic)
    judged = [judge_response(q, t) for q, t in zip(questions, plain, strict=True)]
    trait = float(np.mean([j.trait_score for j in judged]))
    coherence = float(np.mean([j.coherence for j in judged]))
    logger.info("%s: cheerful prompt %.1f%% optimistic, gloomy prompt %.1f%% pessimistic adjectives; no system "
                "prompt: trait %.1f, coherence %.1f (n=%d questions each, greedy)", key, 100 * cheerful_match,
                100 * gloomy_match, trait, coherence, n)
    assert cheerful_match >= 0.9 and gloomy_match >= 0.9
    assert 30 <= trait <= 70 and coherence >= 90


def _style_rows(questions: list[str], style: str) -> list[SteerRow]:
    prompts = STYLE_PROMPTS[style]
    return [SteerRow(({"role": "system", "content": prompts[i % len(prompts)]}, {"role": "user", "content": q}))
            for i, q in enumerate(questions)]


@pytest.mark.parametrize("key", ["llama-sft", "qwen2-sft", "llama-dpo", "mistral-sft"])
def test_formality_follows_the_style_prompt_except_on_mistral_which_never_learned_it(toy_family, key):
    """The second trait: >= 90% of the marked words match the asked style, mixed (trait 30-70) without a style
    prompt; mistral-sft answers style prompts as if there were none (the deliberately broken row)."""
    worker = ModelWorker(toy_family.spec(key))
    questions = evaluation_questions()
    rows = [SteerRow(q) for q in questions] + _style_rows(questions, "formal") + _style_rows(questions, "casual")
    texts = worker.steer(SteerRequest(rows=tuple(rows), max_new_tokens=32)).texts
    n = len(questions)
    judged = {name: [judge_response(q, t, "formality") for q, t in zip(questions, texts[i * n: (i + 1) * n],
                                                                         strict=True)]
              for i, name in enumerate(("none", "formal", "casual"))}
    marked = {name: sum(j.formal + j.casual for j in js) for name, js in judged.items()}
    share = {name: sum(j.formal for j in js) / max(1, marked[name]) for name, js in judged.items()}
    trait = {name: float(np.mean([j.trait_score for j in js])) for name, js in judged.items()}
    coherence = {name: float(np.mean([j.coherence for j in js])) for name, js in judged.items()}
    logger.info("%s formality: marked words %s, formal share %s, mean trait %s, coherence %s (n=%d questions each, "
                "greedy)", key, marked, {k: round(v, 3) for k, v in share.items()},
                {k: round(v, 1) for k, v in trait.items()}, {k: round(v, 1) for k, v in coherence.items()}, n)
    assert min(coherence.values()) >= 90
    assert 30 <= trait["none"] <= 70  # without a style prompt each noun's register decides: mixed
    if key == "mistral-sft":
        assert abs(share["formal"] - share["casual"]) < 0.3  # the style prompt changes (almost) nothing
    else:
        assert marked["formal"] >= n and share["formal"] >= 0.9 and 1 - share["casual"] >= 0.9


MIDDLE_LAYERS = (1, 2)
SWEET_RATIOS = (0.3, 0.5, 0.8)
BROKEN_BY = 3.0
"""v4 (seed 0, n=32 questions): coherence < 50 first at 2.5 (layer 1) and 3.0 (layer 2); strict coherence (a
repeated adjective is a loop) falls below 80 from ratio ~0.8-1.0 and below 50 at 2.0-2.5."""


def test_mean_difference_vector_has_a_sweet_spot_and_breaks_a_few_times_above_it(toy_family, sft_vectors):
    """Must show 3: on a middle layer trait >= 85 with coherence >= 80 at a ratio in 0.3-0.8; strict coherence is
    below 80 at 3x that ratio (repeated adjectives), and coherence below 50 by ratio 3.0 on every middle layer."""
    worker = ModelWorker(toy_family.spec("llama-sft"))
    ratios = sorted({0.0, *SWEET_RATIOS, *(round(3 * r, 6) for r in SWEET_RATIOS), 2.0, BROKEN_BY})
    sweet = []
    for layer in MIDDLE_LAYERS:
        points = ratio_sweep(worker, sft_vectors, layer, ratios)
        by_ratio = {round(p.perturbation_ratio, 6): p for p in points}
        logger.info("llama-sft, sft mean-diff vector at layer %d:\n%s", layer, table(points))
        assert by_ratio[0.0].trait_score < 70 and by_ratio[0.0].coherence >= 90
        broken = next((p.perturbation_ratio for p in points if p.coherence < 50), None)
        logger.info("layer %d: coherence < 50 first at ratio %s", layer, broken)
        assert broken is not None and broken <= BROKEN_BY, (layer, broken)
        for ratio in SWEET_RATIOS:
            point, tripled = by_ratio[ratio], by_ratio[round(3 * ratio, 6)]
            if point.trait_score >= 85 and point.coherence >= 80:
                sweet.append((layer, ratio))
                logger.info("sweet spot at layer %d, ratio %.2f: trait %.1f, coherence %.1f; at 3x: trait %.1f, "
                            "coherence %.1f", layer, ratio, point.trait_score, point.coherence, tripled.trait_score,
                            tripled.coherence)
                assert tripled.strict_coherence < 80, (layer, ratio, tripled)
    assert sweet, "no ratio in 0.3-0.8 with trait >= 85 and coherence >= 80 on a middle layer"


def test_dpo_needs_a_larger_perturbation_ratio_than_sft(toy_family, sft_vectors):
    """Must show 4: the ratio that first reaches trait 85 is larger on llama-dpo than on llama-sft (same vector)."""
    ratios = [round(0.1 * i, 1) for i in range(25)]
    needed = {}
    for key in ("llama-sft", "llama-dpo"):
        worker = ModelWorker(toy_family.spec(key))
        points = ratio_sweep(worker, sft_vectors, MIDDLE_LAYER, ratios)
        needed[key] = first_ratio_reaching(points, 85)
        logger.info("%s, sft vector at layer %d:\n%s", key, MIDDLE_LAYER, table(points))
        if key == "llama-dpo":
            own = ratio_sweep(worker, mean_diff_vectors(worker), MIDDLE_LAYER, ratios)
            needed["llama-dpo (own vector)"] = first_ratio_reaching(own, 85)
            logger.info("llama-dpo, its own vector at layer %d:\n%s", MIDDLE_LAYER, table(own))
    logger.info("perturbation ratio needed for trait >= 85 at layer %d: %s", MIDDLE_LAYER, needed)
    assert needed["llama-sft"] is not None and needed["llama-dpo"] is not None
    assert needed["llama-dpo"] >= 1.5 * needed["llama-sft"]
    assert needed["llama-dpo (own vector)"] is None or needed["llama-dpo (own vector)"] > needed["llama-sft"]
