"""The analysis stage: thin glue from the run directory's tables to ``data/analysis/<name>.parquet``.

- ``transfer``: per (target, trait, vector source) the best coherent trait score with its SE and n, the unsteered
  baseline and the gain (the transfer matrix of the report).
- ``similarity``: cosine between the vectors of every two sources of one trait, per layer.
- ``weight_diff``: per decoder layer, the relative Frobenius norm of the weight change between the members of one
  family (base -> sft -> dpo), read from the safetensors files (no model is built).

BAI and the validation table come from ``steersweep.analysis`` when it provides them; every table the analysis
package writes under ``data/analysis`` is shown by the report either way.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

_LAYER = re.compile(r"layers\.(\d+)\.")


def transfer(pipeline: Any) -> pa.Table | None:
    from .status import best_configs

    rows = []
    for best in best_configs(pipeline.run.root):
        if not best.get("found"):
            continue
        rows.append({
            "target_model": best["target_model"], "trait": best["trait"], "vector_source": best["vector_source"],
            "best_trait_score": best["trait_score"], "trait_score_se": best["trait_score_se"],
            "coherence": best["coherence"], "n": best["n"], "layer": best["layer"],
            "perturbation_ratio": best["perturbation_ratio"], "baseline_trait_score": best["baseline_trait_score"],
            "gain": best["trait_score"] - best["baseline_trait_score"],
        })
    return pa.Table.from_pylist(rows) if rows else None


def similarity(pipeline: Any) -> pa.Table | None:
    from steersweep.analysis import TraitVector

    config, vectors = pipeline.config, pipeline.config.vectors
    rows = []
    for trait in config.traits:
        sources = sorted({s for s, t, _ in config.extraction_units() if t == trait.name})
        loaded = {s: TraitVector.load(pipeline.run.vector_path(s, trait.name, vectors.method, vectors.component,
                                                               vectors.position)) for s in sources}
        for a, b in itertools.combinations(sources, 2):
            for layer, cosine in loaded[a].cosine(loaded[b]).items():
                rows.append({"trait": trait.name, "source_a": a, "source_b": b, "layer": int(layer),
                             "cosine": float(cosine), "method": vectors.method})
    return pa.Table.from_pylist(rows) if rows else None


def _layer_weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    weights: dict[str, np.ndarray] = {}
    for file in sorted(folder.glob("*.safetensors")):
        weights.update(load_file(str(file)))
    return weights


def weight_diff(pipeline: Any) -> pa.Table | None:
    rows = []
    for before, after in _family_pairs(pipeline):
        a = _layer_weights(Path(pipeline.model_path(before.name)))
        b = _layer_weights(Path(pipeline.model_path(after.name)))
        per_layer: dict[int, list[float]] = {}
        for key, value in a.items():
            match = _LAYER.search(key)
            if match is None or key not in b or b[key].shape != value.shape:
                continue
            sums = per_layer.setdefault(int(match.group(1)), [0.0, 0.0])
            sums[0] += float(np.sum((b[key].astype(np.float64) - value.astype(np.float64)) ** 2))
            sums[1] += float(np.sum(value.astype(np.float64) ** 2))
        for layer, (diff2, norm2) in sorted(per_layer.items()):
            rows.append({"family": before.family, "from_model": before.name, "to_model": after.name, "layer": layer,
                         "diff_norm": diff2 ** 0.5, "relative_diff": (diff2 / norm2) ** 0.5 if norm2 else None})
    return pa.Table.from_pylist(rows) if rows else None


def _analysis_tasks():
    """``steersweep.analysis.tasks`` (the analysis package's study-level tasks) when this install has it."""
    try:
        from steersweep.analysis import tasks
    except ImportError:
        return None
    return tasks


def analysis_tables(pipeline: Any) -> pa.Table | None:
    """The analysis package's own tables (transfer matrix by layer; per family pair the weight diff, logit lens and
    trait alignment) written by ``steersweep.analysis.tasks`` into ``data/analysis``; nothing when it is absent."""
    tasks = _analysis_tasks()
    if tasks is None:
        return None
    root = str(pipeline.run.root)
    written: dict[str, int] = {}
    if hasattr(tasks, "run_analyses"):
        for result in tasks.run_analyses(root, ["transfer"], use_ray=False,
                                         coherence_threshold=pipeline.config.search.coherence_threshold).values():
            written.update(result)
    if hasattr(tasks, "model_diff_task"):
        vectors = pipeline.config.vectors
        sources = {s: str(pipeline.run.vector_path(s, t, vectors.method, vectors.component, vectors.position))
                   for s, t, _ in pipeline.config.extraction_units()}
        for before, after in _family_pairs(pipeline):
            paths = pipeline.model_path(before.name), pipeline.model_path(after.name)
            written.update(tasks.model_diff_task(root, *paths, f"{before.name}-{after.name}", vectors=sources))
    return pa.Table.from_pylist([{"table": k, "rows": v} for k, v in sorted(written.items())]) if written else None


def _family_pairs(pipeline: Any) -> list[tuple[Any, Any]]:
    order = {"base": 0, "sft": 1, "dpo": 2}
    families: dict[str, list[Any]] = {}
    for model in pipeline.config.models:
        if model.family and model.variant in order:
            families.setdefault(model.family, []).append(model)
    pairs = []
    for members in families.values():
        members.sort(key=lambda m: order[m.variant])
        pairs.extend(itertools.pairwise(members))
    return pairs


ANALYSES: dict[str, Callable[[Any], pa.Table | None]] = {
    "transfer": transfer, "similarity": similarity, "weight_diff": weight_diff, "tables": analysis_tables,
}
"""``tables`` runs the analysis package's tasks (writing their own files) and records what they wrote."""
