"""The analysis stage: glue from the pipeline to ``steersweep.analysis`` (which owns every analysis concept).

Units, in order (each recorded in the manifest and skipped when done):

- ``analysis/drifts/MODEL/TRAIT`` (config ``analyses: drifts``): steered (``analysis.drift_ratios``) and unsteered
  rollouts of ``analysis.drift_scenarios`` questions through the model's actor, judged
  (:func:`steersweep.engine.drifts.drift_rollouts`) -> ``data/drift_rollouts/model=MODEL/trait=TRAIT.parquet``;
- ``analysis/transfer``: :func:`steersweep.analysis.transfer_task` -> ``transfer_by_layer``, ``transfer_matrix``;
- ``analysis/drifts``: :func:`steersweep.analysis.drift_task` -> ``drifts``, ``bai``, ``validation``,
  ``validation_counts``, ``activation_transfer``, ``predictors``;
- ``analysis/weight_diff``: :func:`steersweep.analysis.model_diff_task` per family pair (base -> sft -> dpo) ->
  ``weight_diff_A__B``, ``logit_lens_A__B``, ``trait_alignment_A__B``;
- ``analysis/similarity``: :func:`steersweep.analysis.vector_similarity` -> ``similarity``.

Tables land in ``data/analysis/<name>.parquet``. When Ray is up (a pipeline run) the table analyses run as Ray tasks
over the run directory's Parquet (only paths cross the wire), else in this process.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

from .config import SweepConfig

logger = logging.getLogger(__name__)

TABLE_ANALYSES = ("transfer", "drifts", "weight_diff", "similarity")


# ------------------------------------------------------------------------------------------------- the plan
def drift_units(config: SweepConfig) -> list[tuple[str, str, str]]:
    """``(model, trait, vector source)`` per drift rollout unit: every model with a vector of the trait, its own
    when it is an extraction source, else the first source that steers it in the transfer plan."""
    if not config.analysis.enabled or "drifts" not in config.analysis.analyses:
        return []
    extracted = {(s, t) for s, t, _ in config.extraction_units()}
    units = []
    for model in config.models:
        for trait in config.traits:
            if (model.name, trait.name) in extracted:
                units.append((model.name, trait.name, model.name))
                continue
            sources = [e.source for e in config.vectors.transfer if model.name in e.targets]
            if sources:
                units.append((model.name, trait.name, sources[0]))
    return units


def analysis_units(config: SweepConfig) -> list[str]:
    """Every unit id of the stage, in the order the pipeline runs them."""
    if not config.analysis.enabled:
        return []
    units = [f"analysis/drifts/{m}/{t}" for m, t, _ in drift_units(config)]
    return units + [f"analysis/{name}" for name in TABLE_ANALYSES if name in config.analysis.analyses]


def family_pairs(config: SweepConfig) -> list[tuple[Any, Any]]:
    """Consecutive members (base -> sft -> dpo) of each configured family."""
    order = {"base": 0, "sft": 1, "dpo": 2}
    families: dict[str, list[Any]] = {}
    for model in config.models:
        if model.family and model.variant in order:
            families.setdefault(model.family, []).append(model)
    pairs = []
    for members in families.values():
        members.sort(key=lambda m: order[m.variant])
        pairs.extend(itertools.pairwise(members))
    return pairs


# ------------------------------------------------------------------------------------------------- drift rollouts
def _drift_layer(pipeline: Any, model: str, trait: str, source: str, vector: Any) -> int:
    """The best coherent layer of the (model, trait, source) study when it has one, else the vector's middle layer."""
    from .status import best_configs

    for best in best_configs(pipeline.run.root):
        if (best.get("target_model"), best.get("trait"), best.get("vector_source")) == (model, trait, source) \
                and best.get("found"):
            return int(best["layer"])
    return int(vector.layers[len(vector.layers) // 2])


def run_drift_unit(pipeline: Any, model: str, trait_name: str, source: str) -> dict[str, Any]:
    """Generate, judge and write one drift rollout unit; returns the manifest's extra fields."""
    from steersweep.actors.judges import TraitDefinition
    from steersweep.analysis import TraitVector

    from .drifts import drift_rollouts
    from .pipeline import _load_vector

    config, vectors, analysis = pipeline.config, pipeline.config.vectors, pipeline.config.analysis
    path = pipeline.run.vector_path(source, trait_name, vectors.method, vectors.component, vectors.position)
    vector = _load_vector(TraitVector, path)
    elicitation = next(e for s, t, e in config.extraction_units() if s == source and t == trait_name)
    dataset = pipeline.dataset(trait_name, elicitation)
    layer = _drift_layer(pipeline, model, trait_name, source, vector)
    questions = list(dataset.questions[: analysis.drift_scenarios])
    pipeline.console.log(f"drift rollouts: {model} x {trait_name} (vector of {source}, layer {layer}, "
                         f"{len(questions)} scenarios x {len(analysis.drift_ratios)} ratios)")
    table = drift_rollouts(pipeline.actor(model), model, vector, layer, questions, pipeline.judge(),
                           TraitDefinition(trait_name, dataset.definition), ratios=analysis.drift_ratios,
                           max_new_tokens=analysis.drift_max_new_tokens, component=vectors.component,
                           vector_source=source, seed=config.seed)
    pipeline.judge().cache.flush()
    written = pipeline.run.write_table(table, pipeline.run.drift_rollouts_path(model, trait_name))
    return dict(outputs=[str(written.relative_to(pipeline.run.root))], rows=table.num_rows, layer=layer,
                vector_source=source)


# ------------------------------------------------------------------------------------------------- tables
def _call(use_ray: bool, function: Any, *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``, as a Ray task (one CPU) when ``use_ray``."""
    if not use_ray:
        return function(*args, **kwargs)
    import ray

    return ray.get(ray.remote(function).options(num_cpus=1).remote(*args, **kwargs))


def _similarity_task(run_dir: str, traits: list[str], paths: dict[str, dict[str, str]], method: str) -> dict[str, int]:
    """``similarity``: cosine between every two sources' vectors of each trait (read from their files)."""
    import pyarrow as pa

    from steersweep.analysis import TraitVector, vector_similarity

    from .rundir import RunDir

    tables = [vector_similarity({s: TraitVector.load(p) for s, p in paths[trait].items()}, trait, method)
              for trait in traits]
    table = pa.concat_tables(tables)
    run = RunDir(run_dir)
    run.write_table(table, run.analysis_dir / "similarity.parquet")
    return {"similarity": table.num_rows}


def run_table_analysis(pipeline: Any, name: str, use_ray: bool) -> dict[str, int]:
    """One table analysis (``transfer``, ``drifts``, ``weight_diff`` or ``similarity``); returns ``{table: rows}``
    of what it wrote (empty when its input does not exist, e.g. no drift rollouts)."""
    from steersweep.analysis import drift_task, model_diff_task, transfer_task

    config, root, vectors = pipeline.config, str(pipeline.run.root), pipeline.config.vectors
    if name == "transfer":
        if pipeline.run.read_table(pipeline.run.trials_dir) is None:
            return {}
        return _call(use_ray, transfer_task, root, config.search.coherence_threshold)
    if name == "drifts":
        if not any(pipeline.run.drift_rollouts_dir.rglob("*.parquet")):
            return {}
        return _call(use_ray, drift_task, root, quantile=config.analysis.quantile)
    sources: dict[str, dict[str, str]] = {}
    for source, trait, _ in config.extraction_units():
        path = pipeline.run.vector_path(source, trait, vectors.method, vectors.component, vectors.position)
        if path.exists():
            sources.setdefault(trait, {})[source] = str(path)
    if name == "similarity":
        traits = sorted(t for t, by_source in sources.items() if len(by_source) > 1)
        return _call(use_ray, _similarity_task, root, traits, sources, vectors.method) if traits else {}
    if name == "weight_diff":
        written: dict[str, int] = {}
        for before, after in family_pairs(config):
            members = {m.name for m in config.models if m.family == before.family}  # vectors of one width
            named = {f"{trait}/{source}": path for trait, by_source in sources.items()
                     for source, path in by_source.items() if source in members}
            paths = pipeline.model_path(before.name), pipeline.model_path(after.name)
            written.update(_call(use_ray, model_diff_task, root, *paths, f"{before.name}__{after.name}",
                                 vectors=named))
        return written
    raise ValueError(f"analysis {name!r} is unknown; use one of {', '.join(TABLE_ANALYSES)}")
