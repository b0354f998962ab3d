"""Start or connect Ray (dashboard on, token auth), see the cluster's GPUs, and start the named model actors of a plan.

Example:
    >>> conn = connect_ray(RayOptions(num_cpus=2))                       # doctest: +SKIP
    >>> conn.dashboard_url                                                # doctest: +SKIP
    'http://127.0.0.1:8265'
    >>> actors = start_actors(plan, {"llama-sft": ModelSpec("/models/llama-sft")})  # doctest: +SKIP
    >>> ray.get_actor("steersweep/llama-sft/0", namespace="steersweep")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .placement import GIB, ActorPlacement, Inventory, Node, Plan

logger = logging.getLogger(__name__)

NAMESPACE = "steersweep"
DEFAULT_MAX_RESTARTS = 3
DEFAULT_TOKEN_PATH = Path.home() / ".ray" / "auth_token"
_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception): ")


@dataclass(frozen=True)
class RayOptions:
    """How a sweep reaches Ray.

    Args:
        address: None starts a local Ray; ``auto`` joins the cluster this machine is part of (``ray start``);
            ``ray://host:10001`` uses Ray Client; ``host:6379`` the GCS of a cluster directly.
        dashboard: start the dashboard with a local Ray (its URL is logged and returned).
        auth_token_path: file holding the cluster's auth token (Ray 2.59+ token authentication); the token may
            also come from ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``.
        namespace: Ray namespace of the named actors ``steersweep/<model>/<replica>``.
    """

    address: str | None = None
    dashboard: bool = True
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    namespace: str = NAMESPACE
    auth_token_path: str | None = None
    log_to_driver: bool = False


@dataclass(frozen=True)
class RayConnection:
    """What :func:`connect_ray` reached: the GCS address, the dashboard URL (None when off) and whether auth is on."""

    address: str
    dashboard_url: str | None
    namespace: str
    started_here: bool
    token_auth: bool


def _configure_token_auth(options: RayOptions) -> bool:
    """Make this process present the cluster's token.

    Ray 2.59+ starts local clusters with token auth on (``~/.ray/auth_token``, generated when missing) and turns
    it on for ``address=auto`` when a token file exists, but a client given an explicit address only sends a token
    when ``RAY_AUTH_MODE=token``: so when a token is at hand (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``,
    ``auth_token_path`` or ``~/.ray/auth_token``) and the mode is unset, set it; ``RAY_AUTH_MODE=disabled`` opts out.
    """
    if options.auth_token_path:
        path = Path(options.auth_token_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"auth_token_path: {path} does not exist; copy the cluster's token there "
                                    "(`ray get-auth-token` on the head node) or set RAY_AUTH_TOKEN")
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)
    has_token = bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                     or DEFAULT_TOKEN_PATH.is_file())
    if has_token and "RAY_AUTH_MODE" not in os.environ:
        os.environ["RAY_AUTH_MODE"] = "token"
        from ray._raylet import Config

        Config.initialize("")  # Ray caches its config at import; re-read the mode (as ray.init does for local)
    return os.environ.get("RAY_AUTH_MODE", "token" if options.address in (None, "auto") else "").lower() == "token"


def connect_ray(options: RayOptions | None = None) -> RayConnection:
    """Start a local Ray (dashboard on) or connect to ``options.address``; reuse Ray when this process has it."""
    import ray

    options = options or RayOptions()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started_here, url = False, None
    if not ray.is_initialized():
        token_auth = _configure_token_auth(options)
        kwargs: dict[str, Any] = {"namespace": options.namespace, "log_to_driver": options.log_to_driver,
                                  "configure_logging": False}
        address = options.address or os.environ.get("RAY_ADDRESS")
        if address:
            url = ray.init(address=address, **kwargs).dashboard_url
        else:
            context = ray.init(num_cpus=options.num_cpus, num_gpus=options.num_gpus,
                               include_dashboard=options.dashboard, dashboard_host=options.dashboard_host,
                               dashboard_port=options.dashboard_port, **kwargs)
            url = context.dashboard_url
            started_here = True
    else:
        token_auth = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
    context = ray.get_runtime_context()
    url = url or _dashboard_url_from_gcs()
    dashboard_url = f"http://{url}" if url and not url.startswith("http") else url
    gcs = context.gcs_address
    if dashboard_url:
        logger.info("Ray at %s, dashboard %s (namespace %s)", gcs, dashboard_url, context.namespace)
    return RayConnection(gcs, dashboard_url or None, context.namespace, started_here, token_auth)


def _dashboard_url_from_gcs() -> str | None:
    try:
        from ray._private.worker import get_dashboard_url

        return get_dashboard_url() or None
    except Exception:  # an old or minimal Ray without it: the dashboard URL is a nicety
        return None


def local_inventory() -> Inventory:
    """This machine's GPUs (through torch) and memory, for ``steersweep plan`` without Ray."""
    import torch

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if not torch.cuda.is_available():
        return Inventory((Node("local", 0, 0, memory),))
    sizes = [torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())]
    return Inventory((Node("local", len(sizes), min(sizes), memory),))


def _gpu_memory_on_node() -> int:
    import torch

    return int(torch.cuda.get_device_properties(0).total_memory)


def cluster_inventory(timeout_s: float = 120.0) -> Inventory:
    """Every alive Ray node with its GPU count, GPU memory (asked of one GPU on the node) and host memory."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    probe = ray.remote(num_gpus=0.01, num_cpus=0)(_gpu_memory_on_node)
    pending = {n["NodeID"]: probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
               .remote() for n in nodes if n["Resources"].get("GPU", 0) >= 1}
    sizes = dict(zip(pending, ray.get(list(pending.values()), timeout=timeout_s), strict=True))
    return Inventory(tuple(
        Node(_node_label(n), int(n["Resources"].get("GPU", 0)), sizes.get(n["NodeID"], 0),
             int(n["Resources"].get("memory", 0)))
        for n in sorted(nodes, key=lambda n: n["NodeID"])
    ))


def _node_label(node: Mapping[str, Any]) -> str:
    return f"{node.get('NodeManagerAddress', '?')}/{node['NodeID'][:8]}"


def actor_options(placement: ActorPlacement, max_restarts: int = DEFAULT_MAX_RESTARTS,
                  namespace: str = NAMESPACE) -> dict[str, Any]:
    """The ``.options(...)`` of one placed actor (creates its STRICT_PACK placement group when it needs one)."""
    options: dict[str, Any] = {
        "name": placement.actor_name, "namespace": namespace, "max_restarts": max_restarts,
        "max_task_retries": 0,  # a call on a dead actor fails; the caller re-queues it (no silent duplicate)
        "num_cpus": placement.num_cpus, "num_gpus": placement.num_gpus,
    }
    if placement.placement_group:
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        group = placement_group([{"GPU": placement.num_gpus, "CPU": placement.num_cpus}], strategy="STRICT_PACK",
                                name=f"{placement.actor_name}/pg")
        ray.get(group.ready(), timeout=600)
        options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0)
    else:
        options["scheduling_strategy"] = "SPREAD"
    return options


def spec_for(spec: Any, placement: ActorPlacement) -> Any:
    """The model's ``ModelSpec`` with the device the placement chose (``device_map=auto`` across several GPUs)."""
    if placement.device_map:
        return replace(spec, device_map=placement.device_map)
    return replace(spec, device=placement.device, device_map=None)


def start_actors(plan: Plan, specs: Mapping[str, Any], max_restarts: int = DEFAULT_MAX_RESTARTS,
                 namespace: str = NAMESPACE, actor_class: Any = None,
                 actor_kwargs: Mapping[str, Any] | None = None) -> dict[tuple[str, int], Any]:
    """Start one named actor per placed (model, replica); returns ``{(model, replica): handle}``.

    Nothing is loaded before the whole plan placed (a refusal raised by ``plan_placement`` comes first). Loading
    happens in each actor's constructor; :func:`wait_loaded` tells which models failed to load and why.
    """
    if actor_class is None:
        from steersweep.actors import ModelActor as actor_class
    missing = sorted({a.model for a in plan.actors} - set(specs))
    if missing:
        raise KeyError(f"no ModelSpec for model(s) {missing}; the plan places them")
    handles = {}
    for placement in plan.actors:
        options = actor_options(placement, max_restarts, namespace)
        handles[(placement.model, placement.replica)] = actor_class.options(**options).remote(
            spec_for(specs[placement.model], placement), **(actor_kwargs or {})
        )
    return handles


def wait_loaded(handles: Mapping[tuple[str, int], Any], timeout_s: float | None = None) -> dict[str, str]:
    """Wait until every actor answers ``ping``; returns ``{model: loader's message}`` for models that failed to load.

    The actors of a failed model are killed (a restart would fail the same way); the others keep running.
    """
    import ray

    failed: dict[str, str] = {}
    refs = {key: handle.ping.remote() for key, handle in handles.items()}
    for (model, _replica), ref in refs.items():
        try:
            ray.get(ref, timeout=timeout_s)
        except ray.exceptions.RayActorError as error:
            failed.setdefault(model, _load_message(error))
    for (model, _replica), handle in handles.items():
        if model in failed:
            ray.kill(handle, no_restart=True)
    return failed


def _load_message(error: Exception) -> str:
    """The loader's own message out of a RayActorError whose ``__init__`` raised: the ModelLoadError line of the
    traceback Ray carries, else its last exception line."""
    text = str(error)
    lines = [line.strip() for line in text.splitlines() if _EXCEPTION_LINE.match(line.strip())]
    chosen = next((line for line in lines if "ModelLoadError" in line), lines[-1] if lines else text.strip())
    return chosen.split("ModelLoadError: ", 1)[-1]


def memory_gib(value: int) -> str:
    return f"{value / GIB:.1f} GiB"


@dataclass(frozen=True)
class ActorStatus:
    """One steersweep actor as the GCS sees it (what ``steersweep status`` shows per actor)."""

    name: str
    state: str
    restarts: int
    node_id: str
    pid: int


def actor_status(prefix: str = "steersweep/") -> list[ActorStatus]:
    """Every actor whose name starts with ``prefix``, newest incarnation, with its restart count (GCS table)."""
    from ray._private import state

    rows = [ActorStatus(a["Name"], a["State"], int(a["NumRestarts"]), a["Address"]["NodeID"], int(a["Pid"]))
            for a in state.actors().values() if a.get("Name", "").startswith(prefix)]
    return sorted(rows, key=lambda row: row.name)


def status_text(rows: list[ActorStatus] | None = None) -> str:
    """Actors as lines ``name  STATE  restarts=N  node=...`` (restarts show an actor Ray brought back)."""
    rows = actor_status() if rows is None else rows
    return "\n".join(f"{r.name}  {r.state}  restarts={r.restarts}  node={r.node_id[:8]}  pid={r.pid}" for r in rows)
