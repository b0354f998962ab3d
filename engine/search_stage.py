"""The search stage: one Optuna study per (target model, trait, vector source) over layer x perturbation ratio.

Trials are asked in batches; every batch is ONE batched steer call on the target's actor (each row carries its own
layer and coefficient, ``coef = ratio * |h_L| / |v_L|``), judged, and told back. The objective is the trait score
under ``coherence >= coherence_threshold`` (constrained TPE reads the constraint from the trial). The unit writes
``data/trials/<study>.parquet`` and ``data/responses/<study>.parquet`` (the COMMON.md contract) when it finishes;
an interrupted unit is redone from its start, which the seeded sampler makes reproducible.

This is the engine's own ask/tell loop until ``steersweep.search`` (Scheduler, StudySpec) lands; the table layout
is the shared contract, so the report and analysis do not change when it is swapped.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from .config import SweepConfig, study_name

logger = logging.getLogger(__name__)

TRIAL_SCHEMA = pa.schema([
    ("study", pa.string()), ("target_model", pa.string()), ("trait", pa.string()), ("vector_source", pa.string()),
    ("vector_method", pa.string()), ("sampler", pa.string()), ("trial_number", pa.int64()), ("state", pa.string()),
    ("layers", pa.list_(pa.int64())), ("layer", pa.int64()), ("perturbation_ratio", pa.float64()),
    ("coefficient", pa.float64()), ("activation_norm", pa.float64()), ("vector_norm", pa.float64()),
    ("trait_score", pa.float64()), ("coherence", pa.float64()), ("trait_score_se", pa.float64()),
    ("coherence_se", pa.float64()), ("n", pa.int64()), ("baseline_trait_score", pa.float64()),
    ("baseline_coherence", pa.float64()), ("feasible", pa.bool_()), ("coherence_threshold", pa.float64()),
    ("step", pa.int64()), ("seconds", pa.float64()),
    # run metadata: what produced the row
    ("seed", pa.int64()), ("vector_path", pa.string()), ("judge", pa.string()), ("judge_template", pa.string()),
    ("max_new_tokens", pa.int64()),
])
RESPONSE_SCHEMA = pa.schema([
    ("study", pa.string()), ("trial_number", pa.int64()), ("question_index", pa.int64()), ("question", pa.string()),
    ("response", pa.string()), ("response_clean", pa.string()), ("response_tokens", pa.int64()),
    ("stopped_at_eos", pa.bool_()), ("trait_score", pa.float64()), ("coherence", pa.float64()),
    ("judgment_key", pa.string()),
])


@dataclass
class SearchInputs:
    """What one study needs, prepared by the pipeline (actor handle, vector, questions, judge)."""

    target: str
    trait: str
    source: str
    call: Callable[..., Any]
    """``call(method, *args)``: a blocking call on the target's actor."""
    vector: Any
    """The source's TraitVector."""
    questions: list[str]
    judge: Any
    trait_definition: Any
    vector_path: str = ""


def _mean_se(values: list[float | None]) -> tuple[float, float]:
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if finite.size == 0:
        return float("nan"), float("nan")
    se = float(finite.std(ddof=1) / math.sqrt(finite.size)) if finite.size > 1 else float("nan")
    return float(finite.mean()), se


def _sampler(config: SweepConfig, layers: tuple[int, ...]):
    import optuna

    search = config.search
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=search.seed)
    if search.sampler == "grid":
        steps = max(2, math.ceil(search.trials / len(layers)))
        ratios = [float(r) for r in np.linspace(*search.ratio_range, steps)]
        return optuna.samplers.GridSampler({"layer": list(layers), "ratio": ratios}, seed=search.seed)
    # constrained_tpe: the coherence constraint is set on each trial (Trial.set_constraint) before it is told
    return optuna.samplers.TPESampler(seed=search.seed, n_startup_trials=min(4, search.trials), multivariate=True)


def _storage(config: SweepConfig, root) -> str:
    return config.cluster.storage or f"sqlite:///{root / 'study.db'}"


def run_search(config: SweepConfig, run_root, inputs: SearchInputs,
               advance: Callable[[int], None] | None = None) -> tuple[pa.Table, pa.Table]:
    """Run one study to its trial budget; return (trials, responses) tables (not yet written)."""
    import optuna

    from steersweep.actors.messages import SteeringTerm, SteerRequest, SteerRow
    from steersweep.search import perturbation_coefficient

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = config.search
    name = study_name(inputs.target, inputs.trait, inputs.source)
    vector_id = f"{inputs.trait}@{inputs.source}"
    vector = inputs.vector
    inputs.call("load_vectors", {vector_id: vector.vectors})
    info = inputs.call("info")
    from .validation import search_layers

    vector_norms = vector.norms()
    layers = tuple(layer for layer in search_layers(config, info.num_layers)
                   if layer in vector.layers and math.isfinite(vector_norms[layer]) and vector_norms[layer] > 0)
    if not layers:
        raise ValueError(f"{name}: the vector of {inputs.source} is zero or missing at every searched layer "
                         f"({inputs.vector_path}); re-extract it or change search.layers")
    norms = inputs.call("activation_norms", list(layers), config.vectors.component, inputs.questions).norms
    storage = _storage(config, run_root)
    with contextlib.suppress(KeyError):  # an unfinished earlier attempt: start again from trial 0 (seeded)
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                sampler=_sampler(config, layers))
    study.set_user_attr("target_model", inputs.target)
    study.set_user_attr("vector_source", inputs.source)
    if search.sampler != "grid":
        study.enqueue_trial({"layer": layers[len(layers) // 2], "ratio": min(search.prior_ratio,
                                                                           search.ratio_range[1])})
    judge_trait = inputs.trait_definition
    judge_id = str(getattr(inputs.judge, "judge_id", type(inputs.judge).__name__))
    templates = getattr(inputs.judge, "templates", None)
    template = templates.for_metric("trait").version if templates is not None else ""
    responses: list[dict[str, Any]] = []

    def generate(rows: list[SteerRow]):
        reply = inputs.call("steer", SteerRequest(rows=tuple(rows), max_new_tokens=search.max_new_tokens,
                                                  seed=search.seed))
        items = [(row.prompt, text) for row, text in zip(rows, reply.texts, strict=True)]
        judged = inputs.judge.judge(items, judge_trait)
        keys = [p[0].key for p in inputs.judge.make_prompts(items, judge_trait, ("trait",))]
        return reply, judged.judgments, keys

    def record(trial_number: int, rows, reply, judgments, keys, offset: int) -> tuple[list, list]:
        traits, coherences = [], []
        for q, question in enumerate(inputs.questions):
            i = offset + q
            text = reply.texts[i]
            traits.append(judgments[i].trait_score)
            coherences.append(judgments[i].coherence)
            responses.append({
                "study": name, "trial_number": trial_number, "question_index": q, "question": question,
                "response": text, "response_clean": text.strip(), "response_tokens": reply.response_token_counts[i],
                "stopped_at_eos": reply.stopped_at_eos[i], "trait_score": judgments[i].trait_score,
                "coherence": judgments[i].coherence, "judgment_key": keys[i],
            })
        return traits, coherences

    started = time.perf_counter()
    base_rows = [SteerRow(q, (), tag=f"{name}/baseline/q{i}") for i, q in enumerate(inputs.questions)]
    reply, judgments, keys = generate(base_rows)
    base_trait, base_coh = (_mean_se(v)[0] for v in record(-1, base_rows, reply, judgments, keys, 0))
    trial_rows: list[dict[str, Any]] = []
    step = 0
    while len(trial_rows) < search.trials:
        batch = [study.ask() for _ in range(min(search.batch_trials, search.trials - len(trial_rows)))]
        rows, meta = [], []
        for trial in batch:
            layer = int(trial.suggest_categorical("layer", list(layers)))
            ratio = float(trial.suggest_float("ratio", *search.ratio_range))
            coefficient = perturbation_coefficient(ratio, norms[layer], vector_norms[layer])
            terms = (SteeringTerm(vector_id, layer, coefficient),) if coefficient else ()
            meta.append((trial, layer, ratio, coefficient))
            rows.extend(SteerRow(q, terms, tag=f"{name}/t{trial.number}/q{i}") for i, q in enumerate(inputs.questions))
        batch_started = time.perf_counter()
        reply, judgments, keys = generate(rows)
        seconds = time.perf_counter() - batch_started
        for k, (trial, layer, ratio, coefficient) in enumerate(meta):
            traits, coherences = record(trial.number, rows, reply, judgments, keys, k * len(inputs.questions))
            trait_mean, trait_se = _mean_se(traits)
            coh_mean, coh_se = _mean_se(coherences)
            feasible = bool(coh_mean >= search.coherence_threshold)
            if search.sampler == "constrained_tpe":  # feasible when <= 0
                trial.set_constraint("coherence", search.coherence_threshold - coh_mean
                                     if math.isfinite(coh_mean) else 100.0)
            trial.set_user_attr("coherence", coh_mean)
            state = "COMPLETE" if math.isfinite(trait_mean) else "FAIL"
            if state == "COMPLETE":
                study.tell(trial, trait_mean)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            trial_rows.append({
                "study": name, "target_model": inputs.target, "trait": inputs.trait, "vector_source": inputs.source,
                "vector_method": config.vectors.method, "sampler": search.sampler, "trial_number": trial.number,
                "state": state, "layers": [layer], "layer": layer, "perturbation_ratio": ratio,
                "coefficient": coefficient, "activation_norm": norms[layer], "vector_norm": vector_norms[layer],
                "trait_score": trait_mean, "coherence": coh_mean, "trait_score_se": trait_se, "coherence_se": coh_se,
                "n": len(inputs.questions), "baseline_trait_score": base_trait, "baseline_coherence": base_coh,
                "feasible": feasible, "coherence_threshold": search.coherence_threshold, "step": step,
                "seconds": seconds / len(meta), "seed": search.seed, "vector_path": inputs.vector_path,
                "judge": judge_id, "judge_template": template, "max_new_tokens": search.max_new_tokens,
            })
        step += 1
        if advance:
            advance(len(meta))
    logger.info("%s: %d trials in %d steps, %.1f s", name, len(trial_rows), step, time.perf_counter() - started)
    return (pa.Table.from_pylist(trial_rows, schema=TRIAL_SCHEMA),
            pa.Table.from_pylist(responses, schema=RESPONSE_SCHEMA))


def best_trials(trials) -> list[dict[str, Any]]:
    """Per study, the best feasible trial (highest trait score; ties: more coherent, then gentler ratio).

    ``trials`` is a pandas frame of ``data/trials``; studies without a feasible trial report none.
    """
    out = []
    if trials is None or len(trials) == 0:
        return out
    for study, group in trials.groupby("study", sort=False):
        ok = group[(group["state"] == "COMPLETE") & group["feasible"]]
        if ok.empty:
            out.append({"study": study, "found": False, "n_trials": len(group)})
            continue
        best = ok.sort_values(["trait_score", "coherence", "perturbation_ratio"],
                              ascending=[False, False, True]).iloc[0]
        out.append({"study": study, "found": True, "n_trials": len(group), **{
            k: (best[k].item() if hasattr(best[k], "item") else best[k]) for k in (
                "target_model", "trait", "vector_source", "layer", "perturbation_ratio", "coefficient",
                "trait_score", "trait_score_se", "coherence", "coherence_se", "n", "baseline_trait_score",
                "baseline_coherence", "trial_number")}})
    return out
