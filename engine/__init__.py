"""Config, run directory and Arrow store, the sweep pipeline, CLI, report and demo."""

from __future__ import annotations

import importlib
from typing import Any

# Re-exports resolve lazily so that `import steersweep.engine` (e.g. by the CLI) does not load torch/transformers.
_EXPORTS = {
    "ConfigChangedError": "rundir",
    "RunDir": "rundir",
    "position_slug": "rundir",
    "ExtractionError": "extraction_plan",
    "ExtractionOutcome": "extraction_plan",
    "ExtractionPlan": "extraction_plan",
    "JudgeVetting": "extraction_plan",
    "RolloutJudge": "extraction_plan",
    "extract_trait_vectors": "extraction",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
