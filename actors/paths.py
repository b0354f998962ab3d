"""RunPaths: where everything lives in a run directory (see DESIGN.md). Paths only: no engine import, no I/O.

Layout::

    RUN_DIR/
      sweep.yaml              the resolved config, frozen at first start
      study.db                Optuna storage
      vectors/                MODEL/TRAIT/METHOD/COMPONENT/POSITION.safetensors  (all layers in one file)
      data/activations/       model=MODEL/trait=TRAIT/COMPONENT@POSITION.parquet
      data/rollouts/          model=MODEL/trait=TRAIT.parquet  (extraction rollouts, replayed for new positions)
      data/vectors.parquet    one row per (model, trait, method, component, position, layer)
      data/drift_rollouts/    model=MODEL/trait=TRAIT.parquet  (steered + unsteered rollouts for BAI / validation)
      data/trials/  data/responses/  data/judgments/  data/analysis/
      report.html

The engine's ``RunDir`` adds table reads/writes and the config freeze; search/, the judge cache and analysis take
their folders from here, so the layout is spelled once.

Positions become file names through :func:`position_slug` (``response[:5]`` -> ``response_0-5``,
``prompt[-1]`` -> ``prompt_m1``); the exact position text is kept inside the files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from .positions import Position

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")

DATA = "data"
JUDGMENTS = Path(DATA) / "judgments"
"""The judge cache's folder, relative to the run directory."""


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
    parsed = Position.parse(position)

    def number(value: int | None, default: str) -> str:
        if value is None:
            return default
        return f"m{-value}" if value < 0 else str(value)

    if parsed.is_slice:
        return f"{parsed.segment}_{number(parsed.start, '0')}-{number(parsed.stop, 'end')}"
    return f"{parsed.segment}_{number(parsed.start, '0')}"


@dataclass(frozen=True)
class RunPaths:
    """The paths of one run directory. Creating the object touches nothing; :meth:`create` makes the folders.

    Example:
        >>> paths = RunPaths("/tmp/run1")
        >>> str(paths.trials_dir)
        '/tmp/run1/data/trials'
        >>> str(paths.vector_path("llama-sft", "optimism", "probe", "residual", "response[:5]"))
        '/tmp/run1/vectors/llama-sft/optimism/probe/residual/response_0-5.safetensors'
    """

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    def create(self) -> Self:
        for folder in (self.vectors_dir, self.activations_dir, self.rollouts_dir, self.drift_rollouts_dir,
                       self.trials_dir, self.responses_dir, self.judgments_dir, self.analysis_dir):
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
    def study_journal(self) -> Path:
        """Optuna journal-file storage (the alternative to ``study.db`` on shared file systems)."""
        return self.root / "study.journal"

    @property
    def vectors_dir(self) -> Path:
        return self.root / "vectors"

    @property
    def data_dir(self) -> Path:
        return self.root / DATA

    @property
    def activations_dir(self) -> Path:
        return self.data_dir / "activations"

    @property
    def rollouts_dir(self) -> Path:
        return self.data_dir / "rollouts"

    @property
    def drift_rollouts_dir(self) -> Path:
        return self.data_dir / "drift_rollouts"

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
        return self.root / JUDGMENTS

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

    def drift_rollouts_path(self, model: str, trait: str) -> Path:
        """``data/drift_rollouts/model=MODEL/trait=TRAIT.parquet``."""
        return (self.drift_rollouts_dir / f"model={check_name(model, 'model')}"
                / f"trait={check_name(trait, 'trait')}.parquet")
