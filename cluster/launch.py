"""One call from configured models to running replicas: connect Ray, place (refusing before any load), start the
named actors, wait for them to load, and hand back scheduler-ready :class:`ResilientModel` replicas.

Example:
    >>> launched = launch([ModelNeed("llama-sft", "/models/llama-sft", replicas=2)],
    ...                   {"llama-sft": ModelSpec("/models/llama-sft")}, RayOptions(address="auto"))  # doctest: +SKIP
    >>> search(launched.replicas, vector, questions, run_dir="runs/s1")                            # doctest: +SKIP
    >>> launched.failed   # {model: the loader's message} for models whose studies must fail      # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .metrics import SweepMetrics
from .placement import Plan
from .plan import ModelNeed, plan_models
from .resilience import ResilientModel
from .runtime import (
    DEFAULT_MAX_RESTARTS,
    RayConnection,
    RayOptions,
    cluster_inventory,
    connect_ray,
    start_actors,
    wait_loaded,
)

logger = logging.getLogger(__name__)


@dataclass
class Launched:
    """The running models: ``replicas`` (model -> its ResilientModels, loaded models only) and ``failed``
    (model -> the loader's message); the plan and the Ray connection they came from."""

    connection: RayConnection
    plan: Plan
    replicas: dict[str, list[ResilientModel]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    handles: dict[tuple[str, int], Any] = field(default_factory=dict)

    def shutdown(self) -> None:
        """Kill the actors (their placement groups go with the job)."""
        import ray

        for models in self.replicas.values():
            for model in models:
                model.close()
        for handle in self.handles.values():
            ray.kill(handle, no_restart=True)


def launch(models: Sequence[ModelNeed], specs: Mapping[str, Any], options: RayOptions | None = None, *,
           max_restarts: int = DEFAULT_MAX_RESTARTS, batch_rows: int = 64, tokens_per_row: int = 512,
           load_timeout_s: float | None = None, actor_class: Any = None,
           actor_kwargs: Mapping[str, Any] | None = None) -> Launched:
    """Connect, place, start and wait; raises PlacementError before anything loads when the plan cannot fit."""
    connection = connect_ray(options)
    plan = plan_models(models, cluster_inventory(), batch_rows, tokens_per_row)
    logger.info("%s", plan.text())
    handles = start_actors(plan, specs, max_restarts, connection.namespace, actor_class, actor_kwargs)
    failed = wait_loaded(handles, timeout_s=load_timeout_s)
    for model, message in failed.items():
        logger.error("model %s failed to load; its studies fail: %s", model, message)
    metrics = SweepMetrics.get()
    replicas: dict[str, list[ResilientModel]] = {}
    for placement in plan.actors:
        if placement.model in failed:
            continue
        handle = handles[(placement.model, placement.replica)]
        replicas.setdefault(placement.model, []).append(
            ResilientModel(handle, placement.actor_name, placement.model, metrics=metrics))
    return Launched(connection, plan, replicas, failed, handles)
