"""RunDir: the paths of one run directory (see DESIGN.md) and atomic Parquet reads and writes inside it.

Layout::

    RUN_DIR/
      sweep.yaml              the resolved config, frozen at first start
      study.db                Optuna storage
      vectors/                MODEL/TRAIT/METHOD/COMPONENT/POSITION.safetensors  (all layers in one file)
      data/activations/       model=MODEL/trait=TRAIT/COMPONENT@POSITION.parquet
      data/rollouts/          model=MODEL/trait=TRAIT.parquet  (extraction rollouts, replayed for new positions)
      data/vectors.parquet    one row per (model, trait, method, component, position, layer)
      data/trials/  data/responses/  data/judgments/  data/analysis/
      report.html

Positions become file names through :func:`position_slug` (``response[:5]`` -> ``response_0-5``,
``prompt[-1]`` -> ``prompt_m1``); the exact position text is kept inside the files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class ConfigChangedError(RuntimeError):
    """The run directory was started with a different config; resuming it with this one would mix results."""


def check_name(value: str, field: str) -> str:
    """A model, trait, method or component name must be usable as one folder name."""
    if not isinstance(value, str) or not _SEGMENT.match(value) or value in (".", ".."):
        raise ValueError(
            f"{field}: {value!r} cannot name a folder in the run directory; use letters, digits, '.', '_', '+' or "
            "'-' (and start with a letter or digit)"
        )
    return value


def position_slug(position: str) -> str:
    """A file-name form of a position: ``response[:5]`` -> ``response_0-5``, ``response[-3:]`` -> ``response_m3-end``,
    ``prompt[-1]`` -> ``prompt_m1``, ``all[:]`` -> ``all_0-end``.

    Example:
        >>> position_slug("response[:10]")
        'response_0-10'
    """
    from steersweep.actors.positions import Position  # lazy: the actors package imports torch

    parsed = Position.parse(position)

    def number(value: int | None, default: str) -> str:
        if value is None:
            return default
        return f"m{-value}" if value < 0 else str(value)

    if parsed.is_slice:
        return f"{parsed.segment}_{number(parsed.start, '0')}-{number(parsed.stop, 'end')}"
    return f"{parsed.segment}_{number(parsed.start, '0')}"


@dataclass(frozen=True)
class RunDir:
    """One run directory. Creating the object touches nothing; :meth:`create` makes the folders.

    Example:
        >>> run = RunDir("/tmp/run1").create()                                         # doctest: +SKIP
        >>> run.vector_path("llama-sft", "optimism", "probe", "residual", "response[:5]")  # doctest: +SKIP
        PosixPath('/tmp/run1/vectors/llama-sft/optimism/probe/residual/response_0-5.safetensors')
    """

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    def create(self) -> RunDir:
        for folder in (self.vectors_dir, self.activations_dir, self.rollouts_dir, self.trials_dir,
                       self.responses_dir, self.judgments_dir, self.analysis_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    # -------------------------------------------------------------------------------------------- fixed paths
    @property
    def config_path(self) -> Path:
        return self.root / "sweep.yaml"

    @property
    def study_db(self) -> Path:
        return self.root / "study.db"

    @property
    def vectors_dir(self) -> Path:
        return self.root / "vectors"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def activations_dir(self) -> Path:
        return self.data_dir / "activations"

    @property
    def rollouts_dir(self) -> Path:
        return self.data_dir / "rollouts"

    @property
    def vectors_table(self) -> Path:
        return self.data_dir / "vectors.parquet"

    @property
    def trials_dir(self) -> Path:
        return self.data_dir / "trials"

    @property
    def responses_dir(self) -> Path:
        return self.data_dir / "responses"

    @property
    def judgments_dir(self) -> Path:
        return self.data_dir / "judgments"

    @property
    def analysis_dir(self) -> Path:
        return self.data_dir / "analysis"

    @property
    def report_path(self) -> Path:
        return self.root / "report.html"

    # -------------------------------------------------------------------------------------- per-unit paths
    def vector_path(self, model: str, trait: str, method: str, component: str, position: str) -> Path:
        """``vectors/MODEL/TRAIT/METHOD/COMPONENT/POSITION.safetensors``."""
        return (self.vectors_dir / check_name(model, "model") / check_name(trait, "trait")
                / check_name(method, "method") / check_name(component, "component")
                / f"{position_slug(position)}.safetensors")

    def activation_path(self, model: str, trait: str, component: str, position: str) -> Path:
        """``data/activations/model=MODEL/trait=TRAIT/COMPONENT@POSITION.parquet``."""
        return (self.activations_dir / f"model={check_name(model, 'model')}" / f"trait={check_name(trait, 'trait')}"
                / f"{check_name(component, 'component')}@{position_slug(position)}.parquet")

    def rollouts_path(self, model: str, trait: str) -> Path:
        """``data/rollouts/model=MODEL/trait=TRAIT.parquet``."""
        return self.rollouts_dir / f"model={check_name(model, 'model')}" / f"trait={check_name(trait, 'trait')}.parquet"

    # ------------------------------------------------------------------------------------------------ tables
    @staticmethod
    def write_table(table: pa.Table, path: str | os.PathLike[str]) -> Path:
        """Atomic write (temporary file + rename): a crash never leaves a half-written file."""
        from steersweep.actors.arrow_io import write_parquet_atomic

        return write_parquet_atomic(table, path)

    @staticmethod
    def read_table(path: str | os.PathLike[str]) -> pa.Table | None:
        """One Parquet file, or every finished file under a folder; None when there is none."""
        from steersweep.actors.arrow_io import read_parquet_dir

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
