"""The search's Parquet tables in RUN_DIR/data: trials and responses (the schema other parts read; see COMMON.md).

One file per (study, steer call): ``data/trials/<study>/t<first>-<id>.parquet`` and the same under
``data/responses/``; written atomically, responses first, then trials, then Optuna's ``tell``, so Parquet is the
truth on resume.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from steersweep.actors.arrow_io import write_parquet_atomic
from steersweep.actors.paths import RunPaths

TRIALS_SCHEMA = pa.schema([
    ("study", pa.string()), ("target_model", pa.string()), ("trait", pa.string()), ("vector_source", pa.string()),
    ("vector_method", pa.string()), ("sampler", pa.string()), ("trial_number", pa.int64()), ("state", pa.string()),
    ("layers", pa.list_(pa.int64())), ("layer", pa.int64()), ("perturbation_ratio", pa.float64()),
    ("coefficient", pa.float64()), ("activation_norm", pa.float64()), ("vector_norm", pa.float64()),
    ("trait_score", pa.float64()), ("coherence", pa.float64()), ("trait_score_se", pa.float64()),
    ("coherence_se", pa.float64()), ("n", pa.int64()), ("baseline_trait_score", pa.float64()),
    ("baseline_coherence", pa.float64()), ("feasible", pa.bool_()), ("coherence_threshold", pa.float64()),
    # beyond the contract: the site label, sign, per-layer coefficients, where the point came from, retries
    ("site", pa.string()), ("sign", pa.int64()), ("coefficients", pa.list_(pa.float64())), ("source", pa.string()),
    ("retry_of", pa.int64()), ("seconds", pa.float64()),
])

RESPONSES_SCHEMA = pa.schema([
    ("study", pa.string()), ("trial_number", pa.int64()), ("question_index", pa.int64()), ("question", pa.string()),
    ("response", pa.string()), ("response_clean", pa.string()), ("response_tokens", pa.int64()),
    ("stopped_at_eos", pa.bool_()), ("trait_score", pa.float64()), ("coherence", pa.float64()),
    ("judgment_key", pa.string()),
])

BASELINE_TRIAL = -1
"""``trial_number`` of the unsteered baseline responses (measured once per study)."""


def _file(folder: Path, study: str, first: int) -> Path:
    tag = f"m{-first}" if first < 0 else f"{first:05d}"
    return folder / study / f"t{tag}-{uuid.uuid4().hex[:8]}.parquet"


def write_rows(run_paths: RunPaths, kind: str, study: str, rows: Sequence[dict]) -> Path | None:
    """Write ``rows`` of ``kind`` ("trials" or "responses") for ``study`` as one atomic Parquet file."""
    if not rows:
        return None
    schema = TRIALS_SCHEMA if kind == "trials" else RESPONSES_SCHEMA
    folder = run_paths.trials_dir if kind == "trials" else run_paths.responses_dir
    table = pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)
    return write_parquet_atomic(table, _file(folder, study, min(int(r["trial_number"]) for r in rows)))


def read_rows(run_paths: RunPaths, kind: str, study: str | None = None) -> pa.Table:
    """Every finished file of ``kind`` (for one study, or all), as one table with the contract's schema."""
    schema = TRIALS_SCHEMA if kind == "trials" else RESPONSES_SCHEMA
    folder = run_paths.trials_dir if kind == "trials" else run_paths.responses_dir
    folder = folder / study if study is not None else folder
    files = sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith(".")) if folder.exists() else []
    tables = [pq.read_table(p) for p in files]
    tables = [t for t in tables if set(schema.names) <= set(t.column_names)]  # other writers' files (the demo)
    if not tables:
        return schema.empty_table()
    return pa.concat_tables([t.select(schema.names).cast(schema) for t in tables])


def rows_by_trial(table: pa.Table) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for row in table.to_pylist():
        out.setdefault(int(row["trial_number"]), []).append(row)
    return out


def trials_frame(run_paths: RunPaths, study: str | None = None):
    """The trials table as a pandas DataFrame (COMPLETE and FAIL rows), sorted by study and trial number."""
    table = read_rows(run_paths, "trials", study)
    if table.num_rows:
        table = table.take(pc.sort_indices(table, [("study", "ascending"), ("trial_number", "ascending")]))
    return table.to_pandas()
