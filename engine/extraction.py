"""Extraction pipeline: rollouts on a model -> judge vetting -> activations (Parquet) -> vectors + diagnostics.

One call of :func:`extract_trait_vectors` handles one (model, trait): it generates ``rollouts`` responses per
scenario on a ``ModelWorker`` or ``ModelActor`` (or replays the scenario's given response), optionally has a judge
score them, captures the activations at every requested layer x component x position, writes them to
``data/activations/`` (one Parquet file per model x trait x component x position, with the activation norms),
fits one vector per layer for every method, and writes ``vectors/MODEL/TRAIT/METHOD/COMPONENT/POSITION.safetensors``
plus one diagnostics row per layer to ``data/vectors.parquet``.

Rerunning skips what exists: a vector whose file and rows exist is not refitted, an activation file that exists is
not recaptured, and saved rollouts are replayed (never regenerated) when a new position or component is asked for.

The plan and outcome are defined in :mod:`.extraction_plan`, the rollout and capture steps in :mod:`.rollouts`, the
fitting and the diagnostics table's layout in :mod:`.vectors`; the public names are re-exported here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from steersweep.actors.handle import ModelHandle
from steersweep.analysis import ActivationSet, InsufficientClassError, TraitDataset, TraitVector

from .extraction_plan import (
    ExtractionError,
    ExtractionOutcome,
    ExtractionPlan,
    JudgeVetting,
    RolloutJudge,
    _TooFewSamplesError,
)
from .rollouts import _capture_pairs, _check_labels, _judge_rollouts, _rollout_plan
from .rundir import RunDir, check_name
from .vectors import VECTOR_KEY, _agreement, _done_keys, _fit_unit, _scores_for, _vector_schema, _vetting_mask

__all__ = [
    "VECTOR_KEY",
    "ExtractionError",
    "ExtractionOutcome",
    "ExtractionPlan",
    "JudgeVetting",
    "RolloutJudge",
    "extract_trait_vectors",
]

logger = logging.getLogger(__name__)


def extract_trait_vectors(
    run_dir: RunDir | str | Path,
    model: Any,
    dataset: TraitDataset,
    plan: ExtractionPlan,
    judge: RolloutJudge | None = None,
) -> ExtractionOutcome:
    """Extract (or complete) the vectors of ``plan`` for ``dataset`` on ``model``; see the module docstring.

    Args:
        run_dir: the run directory (created if needed).
        model: a ``ModelWorker`` or a ``ModelActor`` handle.
        dataset: the trait's scenarios (``load_trait_dataset``).
        plan: layers, components, positions, methods, rollouts, repair and vetting options.
        judge: scores the rollouts' trait (needed for ``vetting`` and ``contrastive_probe``); also checks that the
            dataset's labels agree with the judge (a swapped dataset is flagged).

    Example:
        >>> worker = ModelWorker(ModelSpec("toy/sft"))                                          # doctest: +SKIP
        >>> plan = ExtractionPlan(model="sft", positions=("response[:5]",), methods=("probe",))  # doctest: +SKIP
        >>> extract_trait_vectors(  # doctest: +SKIP
        ...     "runs/demo", worker, load_trait_dataset("traits/optimism"), plan).written
    """
    needs_judge = [m for m in plan.methods if m == "contrastive_probe"] + (["vetting"] if plan.vetting else [])
    if needs_judge and judge is None:
        raise ExtractionError(f"judge: {', '.join(needs_judge)} needs judge scores; pass a judge or drop them")
    run = (run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)).create()
    trait = check_name(dataset.name, "trait")
    outcome = ExtractionOutcome(model=plan.model, trait=trait)
    calls = ModelHandle.of(model)
    info = calls.call("info")
    layers = tuple(plan.layers) if plan.layers is not None else tuple(range(info.num_layers))
    for layer in layers:
        if not 0 <= layer < info.num_layers:
            raise ExtractionError(f"layers: {layer} is out of range for {info.architecture} ({info.num_layers} layers)")
    units = [(c, p, m) for c in plan.components for p in plan.positions for m in plan.methods]
    done = _done_keys(run)
    todo = []
    for component, position, method in units:
        label = plan.method_label(method)
        path = run.vector_path(plan.model, trait, label, component, position)
        if path.exists() and set(layers) <= done.get((plan.model, trait, label, component, position), set()):
            outcome.skipped.append(path)
        else:
            todo.append((component, position, method))
    if not todo:
        logger.info("%s/%s: all %d vectors exist; nothing to do", plan.model, trait, len(units))
        return outcome

    rollouts_path = run.rollouts_path(plan.model, trait)
    rollouts = run.read_table(rollouts_path)
    rows = _rollout_plan(dataset, plan)
    if rollouts is not None and rollouts.num_rows != len(rows):
        raise ExtractionError(
            f"{rollouts_path}: holds {rollouts.num_rows} rollouts but this plan and dataset give {len(rows)}; the "
            "dataset or rollouts changed since; use a new run directory or delete that file and its activations"
        )
    pairs = sorted({(c, p) for c, p, _ in todo if not run.activation_path(plan.model, trait, c, p).exists()})
    if pairs:
        captured = _capture_pairs(run, calls, outcome, plan, layers, pairs, rows, rollouts, rollouts_path, dataset)
        rollouts = captured
    unjudged = rollouts is not None and rollouts.column("judge_score").null_count == rollouts.num_rows
    if judge is not None and unjudged:
        if any(rollouts.column("response").to_pylist()):
            rollouts = _judge_rollouts(run, rollouts_path, rollouts, dataset, judge)
        else:
            logger.info("%s/%s: no rollout has a response (prompt positions only); nothing to judge", plan.model,
                        trait)
    _check_labels(outcome, rollouts)

    for component, position, method in todo:
        label = plan.method_label(method)
        activation_path = run.activation_path(plan.model, trait, component, position)
        try:
            data = ActivationSet.read(activation_path).select_layers(layers)
        except KeyError as error:
            raise ExtractionError(f"{activation_path}: {error.args[0]}; delete the file to recapture it") from None
        if method == "contrastive_probe":
            keep = np.ones(len(data.sample_index), dtype=bool)
        else:
            keep = _vetting_mask(rollouts, data, plan.vetting)
            if plan.vetting is not None:
                outcome.vetting_pass = {
                    name: (int((keep & (data.polarity == name)).sum()), int((data.polarity == name).sum()))
                    for name in ("positive", "negative")
                }
                logger.info("%s/%s vetting %s: kept %s (kept, total) rollouts per polarity", plan.model, trait,
                            plan.vetting.label, outcome.vetting_pass)
        try:
            result, diagnostics, extra = _fit_unit(data, method, plan, _scores_for(rollouts, data), keep)
        except (_TooFewSamplesError, InsufficientClassError) as error:
            logger.warning("%s/%s %s %s %s refused: %s", plan.model, trait, label, component, position, error)
            outcome.refused[f"{label}/{component}/{position}"] = str(error)
            continue
        path = run.vector_path(plan.model, trait, label, component, position)
        metadata = {
            "model": plan.model, "trait": trait, "method": label, "base_method": method, "component": component,
            "position": position, "elicitation": dataset.elicitation, "model_path": str(info.name_or_path),
            "polarity_flipped": json.dumps([bool(f) for f in result.polarity_flipped]),
            "n_positive": json.dumps(list(result.n_positive)), "n_negative": json.dumps(list(result.n_negative)),
            "labels_agree_with_judge": _agreement(outcome.label_polarity), **extra,
        }
        TraitVector(result.vectors, layers, metadata).save(path)
        table_rows = [
            {"model": plan.model, "trait": trait, "method": label, "base_method": method, "component": component,
             "position": position, **d.as_row(), "polarity_flipped": bool(result.polarity_flipped[i]),
             "labels_agree_with_judge": None if outcome.label_polarity is None else outcome.label_polarity.agrees,
             "n_positive_fit": int(result.n_positive[i]), "n_negative_fit": int(result.n_negative[i]),
             "vector_path": str(path.relative_to(run.root))}
            for i, d in enumerate(diagnostics)
        ]
        run.upsert_table(run.vectors_table, pa.Table.from_pylist(table_rows, schema=_vector_schema()), VECTOR_KEY)
        outcome.written.append(path)
        outcome.rows.extend(table_rows)
    return outcome
