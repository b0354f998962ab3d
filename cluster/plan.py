"""``steersweep plan CONFIG``: size each configured model from its files and place it, without loading anything.

The engine turns its config into a list of :class:`ModelNeed` and calls :func:`plan_models` (or
:func:`plan_models_text` to print). GPUs come from Ray when it is connected, else from this machine (torch).

Example:
    >>> print(plan_models_text([ModelNeed("llama-sft", "/models/llama-sft", replicas=2)]))  # doctest: +SKIP
    placement on 2 GPU(s) (local: 2 x 80 GiB):
      steersweep/llama-sft/0: 1 GPU on local GPU 0; needs 20.0 GiB (weights 15.0 + KV 4.0 ...)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .model_size import ModelShape, ModelSizeError
from .placement import Inventory, ModelRequirement, PlacementError, Plan, plan_placement


@dataclass(frozen=True)
class ModelNeed:
    """One configured model as placement needs it: a name, a local folder or cached hub id, dtype and replicas."""

    name: str
    path: str
    dtype: str = "auto"
    replicas: int = 1
    shape: ModelShape | None = None
    """The size when the files do not exist yet (e.g. the toy family before its build); else read from ``path``."""


def _config_folder(path: str) -> Path:
    folder = Path(path).expanduser()
    if (folder / "config.json").is_file():
        return folder
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(path, "config.json")
    except Exception:  # not a hub id either
        cached = None
    if isinstance(cached, str):
        return Path(cached).parent
    raise ModelSizeError(f"model path {path!r}: no config.json there or in the Hugging Face cache; download the "
                         "model first (placement reads its size before anything loads)")


def requirements(models: Sequence[ModelNeed], gpus: bool, batch_rows: int = 64,
                 tokens_per_row: int = 512) -> list[ModelRequirement]:
    """Each model's requirement; dtype ``auto`` is bfloat16 on GPUs and float32 on CPU (as the loader does)."""
    reqs = []
    for model in models:
        dtype = model.dtype if model.dtype != "auto" else ("bfloat16" if gpus else "float32")
        shape = model.shape or ModelShape.from_pretrained_dir(_config_folder(model.path))
        reqs.append(ModelRequirement(model.name, shape, dtype, model.replicas, batch_rows, tokens_per_row))
    return reqs


def current_inventory() -> Inventory:
    """The connected Ray cluster's nodes, or this machine when Ray is not running in this process."""
    import ray

    from .runtime import cluster_inventory, local_inventory

    return cluster_inventory() if ray.is_initialized() else local_inventory()


def plan_models(models: Sequence[ModelNeed], inventory: Inventory | None = None, batch_rows: int = 64,
                tokens_per_row: int = 512) -> Plan:
    """Place every replica of every model; raises PlacementError (or ModelSizeError) before anything loads."""
    inventory = inventory if inventory is not None else current_inventory()
    return plan_placement(requirements(models, inventory.total_gpus > 0, batch_rows, tokens_per_row), inventory)


def plan_models_text(models: Sequence[ModelNeed], inventory: Inventory | None = None, batch_rows: int = 64,
                     tokens_per_row: int = 512) -> str:
    """What ``steersweep plan`` prints: the placement, or why it is refused."""
    try:
        return plan_models(models, inventory, batch_rows, tokens_per_row).text()
    except (PlacementError, ModelSizeError) as error:
        return f"placement refused: {error}"
