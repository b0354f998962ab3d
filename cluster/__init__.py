"""Placement of model actors on GPUs, Ray start/connect and named actors, Ray metrics, fault tolerance."""

from .model_size import DTYPE_BYTES, ModelShape, ModelSizeError, dtype_bytes
from .placement import (
    GIB,
    ActorPlacement,
    Inventory,
    ModelRequirement,
    Node,
    PlacementError,
    Plan,
    plan_placement,
    plan_text,
)

__all__ = [
    "DTYPE_BYTES",
    "GIB",
    "ActorPlacement",
    "Inventory",
    "ModelRequirement",
    "ModelShape",
    "ModelSizeError",
    "Node",
    "PlacementError",
    "Plan",
    "dtype_bytes",
    "plan_placement",
    "plan_text",
]
