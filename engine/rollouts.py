"""Extraction rollouts: generate or replay responses, capture their activations to Parquet, have a judge score them."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from steersweep.actors.handle import ModelHandle
from steersweep.actors.messages import CaptureRequest
from steersweep.analysis import ActivationSet, TraitDataset, assign_splits, label_polarity

from .extraction_plan import ExtractionOutcome, ExtractionPlan, RolloutJudge
from .rundir import RunDir

logger = logging.getLogger(__name__)


def _rollout_plan(dataset: TraitDataset, plan: ExtractionPlan) -> list[dict[str, object]]:
    splits = assign_splits(dataset, plan.test_fraction, plan.seed)
    rows = []
    for scenario in dataset.scenarios:
        count = 1 if scenario.response is not None or not plan.needs_responses else plan.rollouts
        for rollout in range(count):
            rows.append({"sample_index": len(rows), "scenario_id": scenario.scenario_id,
                         "polarity": scenario.polarity, "rollout": rollout, "split": splits[scenario.scenario_id],
                         "topic": scenario.topic, "system_prompt": scenario.system_prompt, "prompt": scenario.prompt,
                         "given_response": scenario.response})
    return rows


def _prompt_input(row: dict[str, object]) -> Any:
    if row["system_prompt"] is None:
        return row["prompt"]
    return ({"role": "system", "content": row["system_prompt"]}, {"role": "user", "content": row["prompt"]})


def _capture(model: ModelHandle, outcome: ExtractionOutcome, plan: ExtractionPlan, layers: tuple[int, ...],
             pairs: list[tuple[str, str]], rows: list[dict[str, object]], *, generate: bool,
             responses: list[Any] | None) -> tuple[dict[tuple[str, str], np.ndarray], list[tuple[int, ...]], list[str]]:
    """Capture ``rows`` in chunks: ``{(component, position): [n, n_layers, dim]}``, response token ids and texts."""
    components = tuple(sorted({c for c, _ in pairs}))
    positions = tuple(sorted({p for _, p in pairs}))
    per_pair: dict[tuple[str, str], list[np.ndarray]] = {pair: [] for pair in pairs}
    token_ids: list[tuple[int, ...]] = []
    texts: list[str] = []
    for start in range(0, len(rows), plan.chunk_size):
        chunk = rows[start:start + plan.chunk_size]
        request = CaptureRequest(
            prompts=tuple(_prompt_input(r) for r in chunk), layers=layers, components=components,
            positions=positions, generate=generate,
            responses=tuple(responses[start:start + plan.chunk_size]) if responses is not None else None,
            max_new_tokens=plan.max_new_tokens, do_sample=plan.do_sample, temperature=plan.temperature,
            seed=plan.seed + start, batch_size=plan.batch_size,
        )
        reply = model.call("capture", request)
        outcome.capture_calls += 1
        token_ids.extend(reply.response_token_ids)
        texts.extend(reply.responses)
        for component, position in pairs:
            per_pair[(component, position)].append(
                np.stack([reply.get(layer, component, position) for layer in layers], axis=1))
    return {pair: np.concatenate(chunks) for pair, chunks in per_pair.items()}, token_ids, texts


def _rollouts_table(rows: list[dict[str, object]], token_ids: list[tuple[int, ...]], texts: list[str]) -> pa.Table:
    return pa.table({
        "sample_index": pa.array([r["sample_index"] for r in rows], pa.int32()),
        "scenario_id": [r["scenario_id"] for r in rows],
        "polarity": [r["polarity"] for r in rows],
        "rollout": pa.array([r["rollout"] for r in rows], pa.int32()),
        "split": [r["split"] for r in rows],
        "topic": pa.array([r["topic"] for r in rows], pa.string()),
        "system_prompt": pa.array([r["system_prompt"] for r in rows], pa.string()),
        "prompt": [r["prompt"] for r in rows],
        "response": texts,
        "response_token_ids": pa.array([list(t) for t in token_ids], pa.list_(pa.int32())),
        "source": ["given" if r["given_response"] is not None else "generated" for r in rows],
        "judge_score": pa.array([None] * len(rows), pa.float64()),
    })


def _judge_rollouts(
    run: RunDir, path: Path, rollouts: pa.Table, dataset: TraitDataset, judge: RolloutJudge
) -> pa.Table:
    from steersweep.actors.judges import METRIC_TRAIT, TraitDefinition

    items = list(zip(rollouts.column("prompt").to_pylist(), rollouts.column("response").to_pylist(), strict=True))
    result = judge.judge(items, TraitDefinition(dataset.name, dataset.definition), (METRIC_TRAIT,))
    scores = pa.array([None if s is None else float(s) for s in result.trait_scores], pa.float64())
    rollouts = rollouts.set_column(rollouts.column_names.index("judge_score"), "judge_score", scores)
    run.write_table(rollouts, path)
    return rollouts


def _check_labels(outcome: ExtractionOutcome, rollouts: pa.Table | None) -> None:
    if rollouts is None or rollouts.column("judge_score").null_count == rollouts.num_rows:
        return
    polarity = np.array(rollouts.column("polarity").to_pylist())
    scores = rollouts.column("judge_score").to_pylist()
    outcome.label_polarity = label_polarity([s for s, p in zip(scores, polarity, strict=True) if p == "positive"],
                                            [s for s, p in zip(scores, polarity, strict=True) if p == "negative"])
    if outcome.label_polarity.agrees is not True:
        logger.warning("%s/%s: dataset %s; are positive and negative swapped, or is the judge blind to this "
                       "trait? Vectors are kept as labelled and flagged labels_agree_with_judge", outcome.model,
                       outcome.trait,
                       outcome.label_polarity.describe())


def _capture_pairs(run: RunDir, calls: ModelHandle, outcome: ExtractionOutcome, plan: ExtractionPlan,
                   layers: tuple[int, ...], pairs: list[tuple[str, str]], rows: list[dict[str, object]],
                   rollouts: pa.Table | None, rollouts_path: Path, dataset: TraitDataset) -> pa.Table:
    """Capture the missing (component, position) pairs, generating the rollouts the first time, else replaying."""
    if rollouts is None:
        results: dict[tuple[str, str], np.ndarray] = {}
        token_ids: list[tuple[int, ...]] = [()] * len(rows)
        texts = [""] * len(rows)
        generated = [r for r in rows if r["given_response"] is None]
        given = [r for r in rows if r["given_response"] is not None]
        groups = []
        if generated:
            groups.append((generated, _capture(calls, outcome, plan, layers, pairs, generated,
                                               generate=plan.needs_responses, responses=None)))
            outcome.generated_rollouts += len(generated) if plan.needs_responses else 0
        if given:
            groups.append((given, _capture(calls, outcome, plan, layers, pairs, given, generate=False,
                                           responses=[r["given_response"] for r in given])))
        for group, (acts, ids, group_texts) in groups:
            index = [int(r["sample_index"]) for r in group]
            for pair, values in acts.items():
                results.setdefault(pair, np.zeros((len(rows), len(layers), values.shape[2]), np.float32))
                results[pair][index] = values
            for i, r, t, text in zip(index, group, ids, group_texts, strict=True):
                token_ids[i] = tuple(t)
                texts[i] = str(r["given_response"]) if r["given_response"] is not None else text
        rollouts = _rollouts_table(rows, token_ids, texts)
        run.write_table(rollouts, rollouts_path)
    else:
        replay = [tuple(t) for t in rollouts.column("response_token_ids").to_pylist()]
        results, _, _ = _capture(calls, outcome, plan, layers, pairs, rows, generate=False,
                                 responses=replay if any(replay) else None)
    prompts = list({json.dumps(_prompt_input(r), sort_keys=True): _prompt_input(r) for r in rows}.values())
    norms = {c: calls.call("activation_norms", list(layers), c, prompts) for c in sorted({c for c, _ in pairs})}
    for component, position in pairs:
        data = ActivationSet(
            activations=results[(component, position)], layers=layers,
            sample_index=np.arange(len(rows)), scenario_id=np.array([r["scenario_id"] for r in rows]),
            polarity=np.array([r["polarity"] for r in rows]), rollout=np.array([r["rollout"] for r in rows]),
            split=np.array([r["split"] for r in rows]), topic=np.array([r["topic"] for r in rows], dtype=object),
            activation_norms=np.array([norms[component].norms[layer] for layer in layers]),
            metadata={"model": plan.model, "trait": dataset.name, "component": component, "position": position,
                      "elicitation": dataset.elicitation, "activation_norm_position": norms[component].position},
        )
        run.write_table(data.to_table(plan.activation_dtype), run.activation_path(plan.model, dataset.name,
                                                                                   component, position))
        outcome.captured.append((component, position))
    return rollouts


