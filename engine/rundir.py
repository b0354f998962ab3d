"""RunDir: the paths of one run directory (see DESIGN.md) and atomic Parquet reads and writes inside it.

The layout itself lives in :class:`steersweep.actors.RunPaths` (actors/paths.py), so search/ and the judge cache
share it without importing engine/.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from steersweep.actors.arrow_io import read_parquet_dir, write_parquet_atomic
from steersweep.actors.paths import RunPaths, check_name, position_slug

from .errors import ConfigChangedError

__all__ = ["ConfigChangedError", "RunDir", "check_name", "position_slug"]


class RunDir(RunPaths):
    """One run directory: the layout of :class:`~steersweep.actors.RunPaths` plus atomic table I/O and the config
    freeze. Creating the object touches nothing; :meth:`create` makes the folders.

    Example:
        >>> run = RunDir("/tmp/run1").create()                                         # doctest: +SKIP
        >>> run.vector_path("llama-sft", "optimism", "probe", "residual", "response[:5]")  # doctest: +SKIP
        PosixPath('/tmp/run1/vectors/llama-sft/optimism/probe/residual/response_0-5.safetensors')
    """

    # ------------------------------------------------------------------------------------------------ tables
    @staticmethod
    def write_table(table: pa.Table, path: str | os.PathLike[str]) -> Path:
        """Atomic write (temporary file + rename): a crash never leaves a half-written file."""
        return write_parquet_atomic(table, path)

    @staticmethod
    def read_table(path: str | os.PathLike[str]) -> pa.Table | None:
        """One Parquet file, or every finished file under a folder; None when there is none."""
        path = Path(path)
        if path.is_dir():
            return read_parquet_dir(path)
        return pq.read_table(path) if path.exists() else None

    def upsert_table(self, path: str | os.PathLike[str], rows: pa.Table, key_columns: Sequence[str]) -> pa.Table:
        """Replace the rows of ``path`` that share ``key_columns`` values with ``rows``, keep the others (atomic).

        Single writer: the driver process owns ``data/vectors.parquet``.
        """
        existing = self.read_table(path)
        if existing is not None and existing.num_rows:
            missing = [c for c in key_columns if c not in existing.column_names or c not in rows.column_names]
            if missing:
                raise ValueError(f"{path}: key columns {missing} are missing; cannot merge the new rows")
            keys = {tuple(row[c] for c in key_columns) for row in rows.select(list(key_columns)).to_pylist()}
            old_keys = existing.select(list(key_columns)).to_pylist()
            keep = pa.array([tuple(row[c] for c in key_columns) not in keys for row in old_keys], type=pa.bool_())
            merged = pa.concat_tables([pc.filter(existing, keep), rows], promote_options="default")
        else:
            merged = rows
        self.write_table(merged, path)
        return merged

    # ------------------------------------------------------------------------------------------------ config
    def freeze_config(self, text: str) -> Path:
        """Write ``sweep.yaml`` on first start; on resume it must be unchanged.

        Raises:
            ConfigChangedError: the run directory holds a different config; name a new run directory or restore it.
        """
        path = self.config_path
        if path.exists():
            if path.read_text(encoding="utf-8") != text:
                raise ConfigChangedError(
                    f"{path}: this run directory was started with a different config; resume it with the same config "
                    "or start a new run directory"
                )
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return path
