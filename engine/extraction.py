"""Extraction pipeline: rollouts on a model -> judge vetting -> activations (Parquet) -> vectors + diagnostics.

One call of :func:`extract_trait_vectors` handles one (model, trait): it generates ``rollouts`` responses per
scenario on a ``ModelWorker`` or ``ModelActor`` (or replays the scenario's given response), optionally has a judge
score them, captures the activations at every requested layer x component x position, writes them to
``data/activations/`` (one Parquet file per model x trait x component x position, with the activation norms),
fits one vector per layer for every method, and writes ``vectors/MODEL/TRAIT/METHOD/COMPONENT/POSITION.safetensors``
plus one diagnostics row per layer to ``data/vectors.parquet``.

Rerunning skips what exists: a vector whose file and rows exist is not refitted, an activation file that exists is
not recaptured, and saved rollouts are replayed (never regenerated) when a new position or component is asked for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from steersweep.actors.messages import COMPONENTS, CaptureRequest
from steersweep.actors.positions import parse_positions
from steersweep.analysis import (
    METHODS,
    ActivationSet,
    InsufficientClassError,
    LabelPolarity,
    TraitDataset,
    TraitVector,
    assign_splits,
    binarize_scores,
    contrastive_probe,
    cosine_filter,
    diagnose,
    get_method,
    label_polarity,
    pca_denoise,
)

from .rundir import RunDir, check_name

logger = logging.getLogger(__name__)

VECTOR_KEY = ("model", "trait", "method", "component", "position", "layer")
"""Key columns of ``data/vectors.parquet``."""


class ExtractionError(ValueError):
    """The extraction cannot go on with this plan or data; the message says what to change."""


class _TooFewSamplesError(ExtractionError):
    """A class has too few training samples for one unit; that unit is refused, the others go on."""


class RolloutJudge(Protocol):
    """What the pipeline needs from a judge (``steersweep.actors.judges.Judge`` satisfies it).

    ``judge(items, trait, metrics)`` takes ``(question, response)`` pairs and returns an object whose
    ``trait_scores`` lists one score in [0, 100] (or None) per item, in order.
    """

    def judge(self, items: Sequence[tuple[str, str]], trait: Any, metrics: Sequence[str] = ...) -> Any: ...


@dataclass(frozen=True)
class JudgeVetting:
    """Keep positive rollouts scored >= ``positive_min`` and negative ones scored <= ``negative_max``."""

    positive_min: float = 50.0
    negative_max: float = 50.0

    @property
    def label(self) -> str:
        return f"vet{self.positive_min:g}-{self.negative_max:g}"


@dataclass(frozen=True)
class ExtractionPlan:
    """What to extract for one (model, trait).

    Args:
        model: the model's name in the run directory (``vectors/MODEL/...``).
        layers: decoder layers (0-based); None = every layer.
        components: module outputs to capture (``residual``, ``attn_out``, ``mlp_out``, ``k_proj``, ``v_proj``).
        positions: token positions, e.g. ``response[:5]``, ``response[:]``, ``prompt[-1]``.
        methods: ``mean_diff``, ``probe``, ``gradient``; ``contrastive_probe`` needs a judge.
        rollouts: responses generated per scenario (a scenario with a given ``response`` replays it once).
        generate: generate responses; None = when a position reads the response.
        cosine_filter: drop training samples whose cosine to their class mean is below this (None = off).
        pca_components: within-class principal components removed before fitting (0 = off).
        vetting: judge thresholds; rollouts outside them are left out of the vectors (None = keep all).
        contrastive_thresholds: (high, low) judge-score thresholds for ``contrastive_probe``.
    """

    model: str
    layers: tuple[int, ...] | None = None
    components: tuple[str, ...] = ("residual",)
    positions: tuple[str, ...] = ("response[:5]",)
    methods: tuple[str, ...] = ("mean_diff", "probe")
    rollouts: int = 1
    generate: bool | None = None
    max_new_tokens: int = 16
    do_sample: bool = False
    temperature: float = 1.0
    seed: int = 0
    test_fraction: float = 0.2
    activation_dtype: str = "float32"
    cosine_filter: float | None = None
    pca_components: int = 0
    vetting: JudgeVetting | None = None
    contrastive_thresholds: tuple[float, float] = (60.0, 40.0)
    min_per_class: int = 2
    batch_size: int = 16
    chunk_size: int = 128

    def __post_init__(self) -> None:
        check_name(self.model, "model")
        for component in self.components:
            if component not in COMPONENTS:
                raise ExtractionError(f"components: unknown {component!r}; use one of {', '.join(COMPONENTS)}")
        parse_positions(self.positions)
        for method in self.methods:
            if method != "contrastive_probe":
                get_method(method)
        if self.rollouts < 1:
            raise ExtractionError(f"rollouts: {self.rollouts} must be >= 1")
        if self.rollouts > 1 and not self.do_sample:
            raise ExtractionError(f"rollouts: {self.rollouts} greedy rollouts would be identical; set do_sample=True")
        if self.activation_dtype not in ("float32", "float16"):
            raise ExtractionError(f"activation_dtype: {self.activation_dtype!r}; use float32 or float16")
        if self.pca_components < 0:
            raise ExtractionError(f"pca_components: {self.pca_components} must be >= 0")

    @property
    def needs_responses(self) -> bool:
        if self.generate is not None:
            return self.generate
        return any(p.segment in ("response", "all") for p in parse_positions(self.positions)) or bool(self.vetting)

    def method_label(self, method: str) -> str:
        """The method's folder name, with the options that change the vector: ``probe+vet50-50+cos0.8+pca1``."""
        parts = [method]
        if self.vetting is not None and method != "contrastive_probe":
            parts.append(self.vetting.label)
        if self.cosine_filter is not None:
            parts.append(f"cos{self.cosine_filter:g}")
        if self.pca_components:
            parts.append(f"pca{self.pca_components}")
        return "+".join(parts)


@dataclass
class ExtractionOutcome:
    """What one call did; the counts prove what a rerun skipped."""

    model: str
    trait: str
    capture_calls: int = 0
    generated_rollouts: int = 0
    captured: list[tuple[str, str]] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    vetting_pass: dict[str, tuple[int, int]] | None = None
    """Per polarity, (rollouts kept, rollouts scored)."""
    label_polarity: LabelPolarity | None = None
    rows: list[dict[str, object]] = field(default_factory=list)


class _Model:
    """Calls a ModelWorker directly or a ModelActor handle through Ray, and counts capture calls."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.is_actor = hasattr(getattr(target, "capture", None), "remote")

    def __call__(self, name: str, *args: Any) -> Any:
        method = getattr(self.target, name)
        if self.is_actor:
            import ray

            return ray.get(method.remote(*args))
        return method(*args)


# ------------------------------------------------------------------------------------------------------ rollouts
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


def _capture(model: _Model, outcome: ExtractionOutcome, plan: ExtractionPlan, layers: tuple[int, ...],
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
        reply = model("capture", request)
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


# ------------------------------------------------------------------------------------------------------- fitting
def _select(data: ActivationSet, mask: np.ndarray) -> np.ndarray:
    return data.activations[mask].astype(np.float64)


def _fit_unit(data: ActivationSet, method: str, plan: ExtractionPlan, scores: np.ndarray | None,
              keep: np.ndarray) -> tuple[Any, list[Any], dict[str, str]]:
    valid = data.finite & keep
    dropped_nan = int((~data.finite).sum())
    if dropped_nan:
        logger.info("%d samples select no token at %s and are left out", dropped_nan, data.metadata.get("position"))
    train, test = valid & (data.split == "train"), valid & (data.split == "test")
    if method == "contrastive_probe":
        if scores is None:
            raise ExtractionError("methods: contrastive_probe needs judge scores; pass a judge")
        high_t, low_t = plan.contrastive_thresholds
        result = contrastive_probe(_select(data, train), scores[train], high_threshold=high_t, low_threshold=low_t,
                                   min_per_class=max(plan.min_per_class, 2))
        high, low = binarize_scores(list(scores), high_t, low_t)
        pos_mask, neg_mask = high, low
    else:
        pos_mask, neg_mask = data.is_positive, ~data.is_positive
        for name, mask in (("positive", pos_mask), ("negative", neg_mask)):
            if (train & mask).sum() < plan.min_per_class:
                raise _TooFewSamplesError(
                    f"{int((train & mask).sum())} {name} training samples left (need {plan.min_per_class}) after "
                    "vetting and empty positions; loosen the vetting, add scenarios or rollouts, or lower test_fraction"
                )
        result = None
    train_pos = [_select(data, train & pos_mask)[:, i] for i in range(len(data.layers))]
    train_neg = [_select(data, train & neg_mask)[:, i] for i in range(len(data.layers))]
    extra: dict[str, str] = {}
    if result is None:
        if plan.cosine_filter is not None:
            kept_pos = cosine_filter(np.stack(train_pos, axis=1), plan.cosine_filter)
            kept_neg = cosine_filter(np.stack(train_neg, axis=1), plan.cosine_filter)
            train_pos, train_neg = kept_pos.kept, kept_neg.kept
            extra["cosine_dropped_positive"] = json.dumps(kept_pos.n_dropped)
            extra["cosine_dropped_negative"] = json.dumps(kept_neg.n_dropped)
        fit_pos, fit_neg = train_pos, train_neg
        if plan.pca_components:
            denoised = pca_denoise(train_pos, train_neg, plan.pca_components)
            fit_pos, fit_neg = denoised.positive, denoised.negative
        result = METHODS[method](fit_pos, fit_neg)
    held_pos = [_select(data, test & pos_mask)[:, i] for i in range(len(data.layers))]
    held_neg = [_select(data, test & neg_mask)[:, i] for i in range(len(data.layers))]
    has_held = len(held_pos[0]) > 0 and len(held_neg[0]) > 0
    diagnostics = diagnose(result, train_pos, train_neg, held_pos if has_held else None,
                           held_neg if has_held else None, layers=data.layers,
                           activation_norms=list(data.activation_norms))
    return result, diagnostics, extra


def _vetting_mask(rollouts: pa.Table, data: ActivationSet, vetting: JudgeVetting | None) -> np.ndarray:
    if vetting is None:
        return np.ones(len(data.sample_index), dtype=bool)
    scores = _scores_for(rollouts, data)
    if scores is None:
        raise ExtractionError("vetting: needs judge scores; pass a judge or set vetting=None")
    finite = np.isfinite(scores)
    positive = data.is_positive
    return finite & np.where(positive, scores >= vetting.positive_min, scores <= vetting.negative_max)


def _scores_for(rollouts: pa.Table | None, data: ActivationSet) -> np.ndarray | None:
    if rollouts is None or rollouts.column("judge_score").null_count == rollouts.num_rows:
        return None
    by_index = dict(zip(rollouts.column("sample_index").to_pylist(), rollouts.column("judge_score").to_pylist(),
                        strict=True))
    return np.array([np.nan if by_index.get(int(i)) is None else by_index[int(i)] for i in data.sample_index])


# ---------------------------------------------------------------------------------------------------------- main
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
        >>> extract_trait_vectors("runs/demo", worker, load_trait_dataset("traits/optimism"), plan).written
    """
    needs_judge = [m for m in plan.methods if m == "contrastive_probe"] + (["vetting"] if plan.vetting else [])
    if needs_judge and judge is None:
        raise ExtractionError(f"judge: {', '.join(needs_judge)} needs judge scores; pass a judge or drop them")
    run = (run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)).create()
    trait = check_name(dataset.name, "trait")
    outcome = ExtractionOutcome(model=plan.model, trait=trait)
    calls = _Model(model)
    info = calls("info")
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


def _agreement(polarity: LabelPolarity | None) -> str:
    return "unknown" if polarity is None or polarity.agrees is None else ("true" if polarity.agrees else "false")


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


def _capture_pairs(run: RunDir, calls: _Model, outcome: ExtractionOutcome, plan: ExtractionPlan,
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
    norms = {c: calls("activation_norms", list(layers), c, prompts) for c in sorted({c for c, _ in pairs})}
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


def _done_keys(run: RunDir) -> dict[tuple[str, ...], set[int]]:
    """``{(model, trait, method, component, position): layers with a diagnostics row}``."""
    table = run.read_table(run.vectors_table)
    done: dict[tuple[str, ...], set[int]] = {}
    if table is None:
        return done
    columns = ["model", "trait", "method", "component", "position"]
    for row in table.select([*columns, "layer"]).to_pylist():
        done.setdefault(tuple(row[c] for c in columns), set()).add(int(row["layer"]))
    return done


def _vector_schema() -> pa.Schema:
    return pa.schema([
        ("model", pa.string()), ("trait", pa.string()), ("method", pa.string()), ("base_method", pa.string()),
        ("component", pa.string()), ("position", pa.string()), ("layer", pa.int32()),
        ("heldout_accuracy", pa.float64()), ("polarity_correct", pa.bool_()), ("effect_size", pa.float64()),
        ("separation", pa.float64()), ("within_var_positive", pa.float64()), ("within_var_negative", pa.float64()),
        ("cosine_positive", pa.float64()), ("cosine_negative", pa.float64()), ("snr", pa.float64()),
        ("vector_norm", pa.float64()), ("activation_norm", pa.float64()), ("norm_ratio", pa.float64()),
        ("n_train", pa.int32()), ("n_heldout", pa.int32()), ("evaluated_on", pa.string()),
        ("polarity_flipped", pa.bool_()), ("labels_agree_with_judge", pa.bool_()),
        ("n_positive_fit", pa.int32()), ("n_negative_fit", pa.int32()), ("vector_path", pa.string()),
    ])
