"""Run the study-level analyses over a run directory's Parquet and write ``data/analysis/<name>.parquet``.

Each analysis is a pure function of the run directory's tables (never a live model), so it runs in a notebook
(``run_analyses(run_dir, use_ray=False)``) or as Ray tasks beside the sweep (``use_ray=True``: one task per
analysis; the tasks read and write the files themselves, so only paths cross the wire).

Inputs: ``data/trials/*.parquet`` (the search's trials) and ``data/drift_rollouts/*.parquet`` (``engine/drifts.py``).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .bai import bai_table
from .drifts import RESEARCH_UNIT, scenario_drifts
from .stats import predictor_correlations
from .transfer import activation_transfer_test, transfer_matrix
from .validation import DEFAULT_THRESHOLD, validation_counts, validation_table

logger = logging.getLogger(__name__)

DRIFT_ROLLOUTS = "drift_rollouts"


def _read_dir(folder: Path) -> pa.Table | None:
    files = sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith(".")) if folder.exists() else []
    if not files:
        return None
    return pa.concat_tables([pq.read_table(p) for p in files], promote_options="default")


def _write(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def _analysis_dir(run_dir: str | os.PathLike[str]) -> Path:
    return Path(run_dir) / "data" / "analysis"


def transfer_task(run_dir: str | os.PathLike[str], coherence_threshold: float | None = None) -> dict[str, int]:
    """``transfer_by_layer`` and ``transfer_matrix`` from ``data/trials``."""
    trials = _read_dir(Path(run_dir) / "data" / "trials")
    if trials is None:
        raise FileNotFoundError(f"{run_dir}/data/trials holds no Parquet file; run the sweep first")
    by_layer, overall = transfer_matrix(trials, coherence_threshold)
    out = _analysis_dir(run_dir)
    _write(by_layer, out / "transfer_by_layer.parquet")
    _write(overall, out / "transfer_matrix.parquet")
    return {"transfer_by_layer": by_layer.num_rows, "transfer_matrix": overall.num_rows}


def drift_task(
    run_dir: str | os.PathLike[str], quantile: float = 0.25, unit: float = RESEARCH_UNIT,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, int]:
    """``drifts``, ``bai``, ``validation``, ``validation_counts`` and ``activation_transfer`` (every ordered pair of
    models that share a trait) from ``data/drift_rollouts``; with an ``activation_steered`` column also
    ``validation_steered`` and ``bai_steered`` (drift measured during the steered generation)."""
    rollouts = _read_dir(Path(run_dir) / "data" / DRIFT_ROLLOUTS)
    if rollouts is None:
        raise FileNotFoundError(f"{run_dir}/data/{DRIFT_ROLLOUTS} holds no Parquet file; generate drift rollouts "
                                "first (steersweep.engine.drifts.drift_rollouts)")
    drifts = scenario_drifts(rollouts)
    validation = validation_table(drifts, threshold)
    tables = {"drifts": drifts, "bai": bai_table(drifts, quantile, unit), "validation": validation,
              "validation_counts": validation_counts(validation)}
    models = sorted(set(drifts.column("model").to_pylist()))
    transfer = [activation_transfer_test(drifts, a, b) for a, b in itertools.permutations(models, 2)]
    if transfer:
        tables["activation_transfer"] = pa.concat_tables(transfer, promote_options="default")
    tables["predictors"] = _predictors(validation, tables["bai"])
    if "activation_steered" in rollouts.column_names:  # the same, with the projection taken during steering
        steered = scenario_drifts(rollouts, "activation_steered")
        tables["validation_steered"] = validation_table(steered, threshold)
        tables["bai_steered"] = bai_table(steered, quantile, unit)
    out = _analysis_dir(run_dir)
    for name, table in tables.items():
        _write(table, out / f"{name}.parquet")
    return {name: table.num_rows for name, table in tables.items()}


def model_diff_task(
    run_dir: str | os.PathLike[str], base: str | os.PathLike[str], other: str | os.PathLike[str], name: str,
    vectors: Mapping[str, str | os.PathLike[str]] | None = None, k: int = 20, n_tasks: int = 1,
) -> dict[str, int]:
    """``weight_diff_<name>``, ``logit_lens_<name>`` and (with ``vectors``: name -> TraitVector file)
    ``trait_alignment_<name>`` for two checkpoints of one architecture. ``n_tasks`` > 1 spreads the diff over Ray
    tasks (call it inside a Ray session)."""
    from .logit_lens import logit_lens
    from .trait_vector import TraitVector
    from .weight_diff import trait_alignment, weight_diff, weight_diff_ray

    diff = weight_diff_ray(base, other, n_tasks=n_tasks) if n_tasks > 1 else weight_diff(base, other)
    directions = diff.residual_directions()
    tables = {f"weight_diff_{name}": diff.table, f"logit_lens_{name}": logit_lens(directions, other, k=k)}
    if vectors:
        loaded = {key: TraitVector.load(path) for key, path in vectors.items()}
        tables[f"trait_alignment_{name}"] = trait_alignment(directions, loaded)
    out = _analysis_dir(run_dir)
    for table_name, table in tables.items():
        _write(table, out / f"{table_name}.parquet")
    return {table_name: table.num_rows for table_name, table in tables.items()}


def _predictors(validation: pa.Table, bai: pa.Table) -> pa.Table:
    """The research's "which diagnostic predicts r" table over model x trait rows (here: BAI and its signed form)."""
    keys = ("model", "trait", "vector_source", "layer")
    by_key = {tuple(r[k] for k in keys): r for r in bai.to_pylist()}
    rows = [{**row, "bai": by_key[key]["bai"], "signed_difference": by_key[key]["signed_difference"]}
            for row in validation.to_pylist() if (key := tuple(row[k] for k in keys)) in by_key]
    return predictor_correlations(rows, "r", ["bai", "signed_difference"])


TASKS: dict[str, Callable[..., dict[str, int]]] = {"transfer": transfer_task, "drifts": drift_task}


def run_analyses(
    run_dir: str | os.PathLike[str], names: Sequence[str] | None = None, use_ray: bool = False,
    coherence_threshold: float | None = None, quantile: float = 0.25,
) -> dict[str, dict[str, int]]:
    """Run the named analyses (default: each whose input exists) and return ``{task: {table: rows}}``.

    Example:
        >>> run_analyses("runs/demo", use_ray=True)  # doctest: +SKIP
        {'transfer': {'transfer_by_layer': 24, 'transfer_matrix': 6}, 'drifts': {'drifts': 512, ...}}
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"run directory {root} does not exist")
    if names is None:
        names = [n for n, folder in (("transfer", "trials"), ("drifts", DRIFT_ROLLOUTS))
                 if _read_dir(root / "data" / folder) is not None]
    unknown = sorted(set(names) - set(TASKS))
    if unknown:
        raise ValueError(f"analyses {unknown} are unknown; use some of {sorted(TASKS)}")
    kwargs = {"transfer": dict(coherence_threshold=coherence_threshold), "drifts": dict(quantile=quantile)}
    if not use_ray:
        return {name: TASKS[name](str(root), **kwargs[name]) for name in names}
    import ray

    refs = {name: ray.remote(TASKS[name]).options(num_cpus=1).remote(str(root), **kwargs[name]) for name in names}
    results = dict(zip(refs, ray.get(list(refs.values())), strict=True))
    logger.info("analyses written to %s: %s", _analysis_dir(root), results)
    return results
