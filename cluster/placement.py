"""Placement of model actors on GPUs: how many GPUs each (model, replica) needs and where, refused before any load.

An actor whose memory (weights + KV cache of its configured batch + workspace) fits one GPU gets one GPU; when
there are more actors than GPUs they share GPUs by fraction of memory (Ray fractional ``num_gpus``), replicas of
one model on different GPUs. A model that does not fit one GPU gets ``n`` GPUs of ONE node through a STRICT_PACK
placement group and loads with accelerate's ``device_map="auto"``. Without GPUs every actor runs on CPU.

Example:
    >>> shape = ModelShape.from_config({"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    ...     "vocab_size": 128256, "num_attention_heads": 32, "num_key_value_heads": 8})
    >>> plan = plan_placement([ModelRequirement("llama-8b", shape)], Inventory.uniform(1, 80 * GIB))
    >>> plan.actors[0].num_gpus, plan.actors[0].device_map
    (1.0, None)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .model_size import ModelShape, dtype_bytes

GIB = 1 << 30
CUDA_CONTEXT_BYTES = 1 * GIB
"""Per GPU: the CUDA context and allocator slack that no tensor can use."""


class PlacementError(ValueError):
    """The models do not fit the GPUs (or memory) seen; raised before any model is loaded."""


@dataclass(frozen=True)
class ModelRequirement:
    """What one model of a sweep needs: its shape, dtype, replicas and the batch the scheduler will send it.

    ``batch_rows`` x ``tokens_per_row`` (prompt + new tokens) sizes the KV cache headroom.
    """

    name: str
    shape: ModelShape
    dtype: str = "bfloat16"
    replicas: int = 1
    batch_rows: int = 64
    tokens_per_row: int = 512

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"replicas: {self.replicas} for {self.name!r} must be >= 1")
        dtype_bytes(self.dtype)

    @property
    def weight_bytes(self) -> int:
        return self.shape.parameter_count * dtype_bytes(self.dtype)

    @property
    def kv_cache_bytes(self) -> int:
        return self.batch_rows * self.tokens_per_row * self.shape.kv_bytes_per_token(self.dtype)

    @property
    def workspace_bytes(self) -> int:
        """Activations of one prefill step (a few hidden-sized buffers per token) + float32 last-token logits."""
        tokens = self.batch_rows * self.tokens_per_row
        activations = tokens * self.shape.hidden_size * dtype_bytes(self.dtype) * 4
        return activations + self.batch_rows * self.shape.vocab_size * 4

    @property
    def bytes_needed(self) -> int:
        return self.weight_bytes + self.kv_cache_bytes + self.workspace_bytes


@dataclass(frozen=True)
class Node:
    """One machine: its GPUs (count, memory of each) and its host memory."""

    name: str
    gpus: int = 0
    gpu_memory_bytes: int = 0
    memory_bytes: int = 0


@dataclass(frozen=True)
class Inventory:
    """The GPUs and memory a plan may use."""

    nodes: tuple[Node, ...]

    @classmethod
    def uniform(cls, gpus_per_node: int, gpu_memory_bytes: int, nodes: int = 1,
                memory_bytes: int = 512 * GIB) -> Inventory:
        return cls(tuple(Node(f"node{i}", gpus_per_node, gpu_memory_bytes, memory_bytes) for i in range(nodes)))

    @property
    def total_gpus(self) -> int:
        return sum(node.gpus for node in self.nodes)

    def describe(self) -> str:
        if not self.total_gpus:
            return f"no GPUs ({len(self.nodes)} node(s), CPU only)"
        parts = [f"{n.name}: {n.gpus} x {n.gpu_memory_bytes / GIB:.0f} GiB" for n in self.nodes if n.gpus]
        return f"{self.total_gpus} GPU(s) ({'; '.join(parts)})"


@dataclass(frozen=True)
class ActorPlacement:
    """Where one (model, replica) actor goes and what it asks Ray for."""

    model: str
    replica: int
    node: str
    gpu_indices: tuple[int, ...]
    num_gpus: float
    bytes_needed: int
    num_cpus: float = 1.0
    device_map: str | None = None
    placement_group: bool = False
    """True: a STRICT_PACK placement group of one bundle ``{"GPU": num_gpus, "CPU": num_cpus}`` holds the actor."""

    @property
    def actor_name(self) -> str:
        return f"steersweep/{self.model}/{self.replica}"

    @property
    def device(self) -> str:
        return "cuda" if self.num_gpus else "cpu"


@dataclass(frozen=True)
class Plan:
    """The placement of every actor of a sweep; ``text()`` is what ``steersweep plan`` prints."""

    actors: tuple[ActorPlacement, ...]
    inventory: Inventory
    requirements: tuple[ModelRequirement, ...] = field(default=())

    def for_model(self, model: str) -> tuple[ActorPlacement, ...]:
        return tuple(a for a in self.actors if a.model == model)

    def text(self) -> str:
        lines = [f"placement on {self.inventory.describe()}:"]
        by_name = {r.name: r for r in self.requirements}
        for actor in self.actors:
            req = by_name.get(actor.model)
            need = (f"{actor.bytes_needed / GIB:.1f} GiB (weights {req.weight_bytes / GIB:.1f} + KV "
                    f"{req.kv_cache_bytes / GIB:.1f} for {req.batch_rows} rows x {req.tokens_per_row} tokens + "
                    f"workspace {req.workspace_bytes / GIB:.1f})" if req else f"{actor.bytes_needed / GIB:.1f} GiB")
            if actor.num_gpus == 0:
                where = f"CPU on {actor.node}"
            else:
                gpus = ",".join(str(i) for i in actor.gpu_indices)
                where = f"{actor.num_gpus:g} GPU on {actor.node} GPU {gpus}"
                if actor.placement_group:
                    where += " (STRICT_PACK placement group, device_map=auto)"
            lines.append(f"  {actor.actor_name}: {where}; needs {need}")
        return "\n".join(lines)


def plan_text(requirements: Sequence[ModelRequirement], inventory: Inventory, memory_fraction: float = 0.95) -> str:
    """The placement as text, or the refusal's message (what ``steersweep plan CONFIG`` prints)."""
    try:
        return plan_placement(requirements, inventory, memory_fraction).text()
    except PlacementError as error:
        return f"placement refused: {error}"


@dataclass
class _Gpu:
    node: str
    index: int
    usable: int
    free_fraction: float = 1.0
    free_bytes: int = 0
    models: list[str] = field(default_factory=list)


def plan_placement(requirements: Sequence[ModelRequirement], inventory: Inventory,
                   memory_fraction: float = 0.95) -> Plan:
    """Place every replica of every model, or raise :class:`PlacementError` naming the model, bytes and GPUs.

    ``memory_fraction`` of each GPU (minus the CUDA context) is usable; the rest is left for fragmentation.
    """
    names = [r.name for r in requirements]
    if len(set(names)) != len(names):
        raise PlacementError(f"models: names must be unique, got {names}")
    if not inventory.total_gpus:
        return Plan(_place_on_cpu(requirements, inventory), inventory, tuple(requirements))
    gpus = [_Gpu(node.name, i, int(node.gpu_memory_bytes * memory_fraction) - CUDA_CONTEXT_BYTES)
            for node in inventory.nodes for i in range(node.gpus)]
    for gpu in gpus:
        gpu.free_bytes = gpu.usable
    placed: list[ActorPlacement] = []
    single, multi = [], []
    for req in requirements:
        per_gpu = max(g.usable for g in gpus)
        (single if req.bytes_needed <= per_gpu else multi).append(req)
    for req in sorted(multi, key=lambda r: -r.bytes_needed):
        placed.extend(_place_multi(req, gpus, inventory))
    single_actors = [(req, replica) for req in sorted(single, key=lambda r: -r.bytes_needed)
                     for replica in range(req.replicas)]
    whole = [g for g in gpus if g.free_fraction == 1.0]
    if len(single_actors) <= len(whole):
        placed.extend(_place_whole(single_actors, whole))
    else:
        placed.extend(_place_shared(single_actors, gpus, inventory))
    order = {name: i for i, name in enumerate(names)}
    placed.sort(key=lambda a: (order[a.model], a.replica))
    return Plan(tuple(placed), inventory, tuple(requirements))


def _refuse(req: ModelRequirement, inventory: Inventory, why: str) -> PlacementError:
    return PlacementError(
        f"model {req.name!r} needs {req.bytes_needed / GIB:.1f} GiB per replica ({req.bytes_needed} bytes: weights "
        f"{req.weight_bytes / GIB:.1f} GiB in {req.dtype} + KV cache {req.kv_cache_bytes / GIB:.1f} GiB for "
        f"{req.batch_rows} rows x {req.tokens_per_row} tokens + workspace {req.workspace_bytes / GIB:.1f} GiB) x "
        f"{req.replicas} replica(s); GPUs seen: {inventory.describe()}; {why}. Fix: more or larger GPUs, fewer "
        "replicas, a smaller batch_rows, or a smaller dtype"
    )


def _place_multi(req: ModelRequirement, gpus: list[_Gpu], inventory: Inventory) -> list[ActorPlacement]:
    """``n`` whole GPUs of one node per replica; replicas on the node with the most free GPUs (spread)."""
    usable = max(g.usable for g in gpus)
    # accelerate splits by whole layers, so one GPU may end up a layer short: leave one layer's worth of slack.
    per_layer = req.weight_bytes // max(req.shape.num_layers, 1)
    count = math.ceil((req.bytes_needed + per_layer) / usable)
    largest_node = max(n.gpus for n in inventory.nodes)
    if count > largest_node:
        raise _refuse(req, inventory, f"it needs {count} GPUs of one node and the largest node has {largest_node}")
    placed = []
    for replica in range(req.replicas):
        free_by_node: dict[str, list[_Gpu]] = {}
        for gpu in gpus:
            if gpu.free_fraction == 1.0:
                free_by_node.setdefault(gpu.node, []).append(gpu)
        candidates = [free for free in free_by_node.values() if len(free) >= count]
        if not candidates:
            raise _refuse(req, inventory, f"replica {replica} needs {count} free GPUs of one node and no node has "
                                          "them left")
        chosen = max(candidates, key=len)[:count]
        for gpu in chosen:
            gpu.free_fraction, gpu.free_bytes = 0.0, 0
            gpu.models.append(req.name)
        placed.append(ActorPlacement(req.name, replica, chosen[0].node, tuple(g.index for g in chosen), float(count),
                                     req.bytes_needed, device_map="auto", placement_group=True))
    return placed


def _place_whole(actors: list[tuple[ModelRequirement, int]], whole: list[_Gpu]) -> list[ActorPlacement]:
    """One whole GPU per actor, taken round-robin over nodes so replicas spread."""
    by_node: dict[str, list[_Gpu]] = {}
    for gpu in whole:
        by_node.setdefault(gpu.node, []).append(gpu)
    order: list[_Gpu] = []
    while any(by_node.values()):
        for free in by_node.values():
            if free:
                order.append(free.pop(0))
    placed = []
    for (req, replica), gpu in zip(actors, order, strict=False):
        gpu.free_fraction, gpu.free_bytes = 0.0, 0
        gpu.models.append(req.name)
        placed.append(ActorPlacement(req.name, replica, gpu.node, (gpu.index,), 1.0, req.bytes_needed))
    return placed


def _place_shared(actors: list[tuple[ModelRequirement, int]], gpus: list[_Gpu],
                  inventory: Inventory) -> list[ActorPlacement]:
    """More actors than GPUs: each asks for the fraction of a GPU its memory takes (so Ray never over-packs a GPU);
    an actor goes to the emptiest GPU not already holding its model (replicas spread)."""
    placed = []
    for req, replica in actors:
        fraction = math.ceil(req.bytes_needed / min(g.usable for g in gpus) * 100) / 100
        fits = [g for g in gpus if g.free_fraction + 1e-9 >= fraction and g.free_bytes >= req.bytes_needed]
        if not fits:
            raise _refuse(req, inventory, f"replica {replica} needs {fraction:g} of a GPU and no GPU has that left "
                                          "after the other actors")
        gpu = max(fits, key=lambda g: (req.name not in g.models, g.free_fraction, -g.index))
        gpu.free_fraction = round(gpu.free_fraction - fraction, 6)
        gpu.free_bytes -= req.bytes_needed
        gpu.models.append(req.name)
        placed.append(ActorPlacement(req.name, replica, gpu.node, (gpu.index,), fraction, req.bytes_needed))
    return placed


def _place_on_cpu(requirements: Sequence[ModelRequirement], inventory: Inventory) -> tuple[ActorPlacement, ...]:
    """No GPU: CPU actors (float32 weights), all replicas of all models must fit the host memory of a node."""
    placed = []
    memory = {node.name: node.memory_bytes for node in inventory.nodes}
    for req in requirements:
        need = req.shape.parameter_count * 4 + req.kv_cache_bytes * 2 + req.workspace_bytes * 2
        for replica in range(req.replicas):
            node = max(memory, key=memory.__getitem__) if memory else None
            if node is None or memory[node] < need:
                raise PlacementError(
                    f"model {req.name!r} needs {need / GIB:.1f} GiB of host memory per replica on CPU ({need} bytes: "
                    f"float32 weights + KV cache for {req.batch_rows} rows x {req.tokens_per_row} tokens) x "
                    f"{req.replicas} replica(s); GPUs seen: {inventory.describe()}; no node has that memory left. "
                    "Fix: run on GPUs, fewer replicas or a smaller model"
                )
            memory[node] -= need
            placed.append(ActorPlacement(req.name, replica, node, (), 0.0, need))
    return tuple(placed)
