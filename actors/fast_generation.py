"""The fast generation path: static slots, CUDA-graph decode steps per bucket, continuous batching.

Every row's steering lives in per-layer ``[slots, hidden]`` delta buffers that the step reads, so one captured
graph serves any mix of configs; a graph is keyed only by (slots, key-length bucket, steered components, sampling
mode), which bounds the number of captures by the number of buckets. Finished rows free their slot at the next
sync and a waiting row is prefilled into it (continuous batching). EOS is checked on the device; the host reads
tokens back once every ``sync_every`` steps.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .fast_model import COMPONENT_ORDER, FastModel
from .fast_sampling import choose_tokens
from .generation import GenerationOutput, SamplingConfig

logger = logging.getLogger(__name__)

BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512)
LENGTH_STEP = 64
PREFILL_TOKENS = 16384
"""Prompt tokens per prefill call: bounds the activation memory of a refill."""


def batch_bucket(rows: int) -> int:
    """Slots for ``rows`` rows: the smallest bucket that holds them (multiples of 128 past the table)."""
    for bucket in BATCH_BUCKETS:
        if rows <= bucket:
            return bucket
    return -(-rows // 128) * 128


def slot_count(rows: int, max_slots: int) -> int:
    """Slots for a call: the bucket of ``rows``, never more than ``max_slots`` (then the largest bucket that fits,
    so a memory cap that moves a little between calls does not create new graph keys)."""
    wanted = batch_bucket(max(1, min(rows, max_slots)))
    if wanted <= max_slots:
        return wanted
    return max([b for b in BATCH_BUCKETS if b <= max_slots] or [1])


def length_bucket(tokens: int) -> int:
    return -(-tokens // LENGTH_STEP) * LENGTH_STEP


@dataclass
class _Slots:
    """Static device buffers of one slot count; graphs capture their addresses."""

    cache: object
    tokens: torch.Tensor
    positions: torch.Tensor
    steps: torch.Tensor
    seeds: torch.Tensor
    active: torch.Tensor
    stopped: torch.Tensor
    history: torch.Tensor
    cursor: torch.Tensor
    eos: torch.Tensor
    max_new: torch.Tensor
    stop_at_eos: torch.Tensor
    temperature: torch.Tensor
    deltas: dict[str, torch.Tensor]


class FastGenerator:
    """Generates for many rows over ``FastModel``; graphs on CUDA, the same step code run eagerly on CPU.

    Example:
        >>> generator = FastGenerator(FastModel(hf_model))  # doctest: +SKIP
        >>> generator.generate(prompts, deltas, SamplingConfig(32), seeds, eos_ids, max_slots=160)  # doctest: +SKIP
    """

    def __init__(self, fast: FastModel, use_graphs: bool | None = None, sync_every: int | None = None):
        self.fast = fast
        self.use_graphs = fast.device.type == "cuda" if use_graphs is None else use_graphs
        # On a GPU a sync drains the launch queue, so sync rarely; on a CPU steps are synchronous anyway.
        self.sync_every = sync_every or (16 if self.use_graphs else 4)
        self.graph_captures = 0
        """CUDA graphs captured so far (each is one step variant)."""
        self.step_variants: set[tuple] = set()
        """Distinct step keys run so far (counted on CPU too): bounded by the buckets, not by the configs."""
        self._slots: _Slots | None = None
        self._graphs: dict[tuple, torch.cuda.CUDAGraph] = {}
        self._pool = None

    # -- static buffers ----------------------------------------------------------------------------------------

    def held_bytes(self) -> int:
        """Device bytes of the KV cache kept between calls (so graphs can be replayed); ``release`` frees them."""
        return 0 if self._slots is None else 2 * self._slots.cache.k.numel() * self._slots.cache.k.element_size()

    def release(self) -> None:
        """Free the KV cache, the slot buffers and the captured graphs (the next call builds them again)."""
        self._slots, self._graphs, self._pool = None, {}, None
        if self.fast.device.type == "cuda":
            torch.cuda.empty_cache()

    def _buffers(self, slots: int, max_len: int, eos_ids: set[int]) -> _Slots:
        current = self._slots
        fits = current is not None and current.tokens.shape[0] == slots and current.cache.max_len >= max_len
        if fits and set(current.eos.tolist()) == (eos_ids or {-1}):
            return current
        # Old graphs point at the old buffers; their memory pool goes with them (a new pool for new graphs).
        self._slots, self._graphs, self._pool = None, {}, None
        if current is not None and self.fast.device.type == "cuda":
            del current
            torch.cuda.empty_cache()
        cache_len = max(length_bucket(max_len), current.cache.max_len if fits else 0)
        self.fast.rope_tables(cache_len)
        device, layers, hidden = self.fast.device, self.fast.num_layers, self.fast.hidden

        def zeros(*shape: int, dtype: torch.dtype = torch.long) -> torch.Tensor:
            return torch.zeros(shape, dtype=dtype, device=device)

        self._slots = _Slots(
            cache=self.fast.new_cache(slots, cache_len), tokens=zeros(slots), positions=zeros(slots),
            steps=zeros(slots), seeds=zeros(slots), active=zeros(slots, dtype=torch.bool),
            stopped=zeros(slots, dtype=torch.bool), history=zeros(slots, self.sync_every), cursor=zeros(1),
            eos=torch.tensor(sorted(eos_ids) or [-1], device=device), max_new=zeros(slots),
            stop_at_eos=zeros(1, dtype=torch.bool), temperature=zeros(1, dtype=torch.float32),
            deltas={c: zeros(layers, slots, hidden, dtype=self.fast.dtype) for c in COMPONENT_ORDER},
        )
        return self._slots

    # -- one decode step ---------------------------------------------------------------------------------------

    def _step(self, s: _Slots, n_keys: int, components: tuple[str, ...], do_sample: bool, top_p: float) -> None:
        logits = self.fast.decode(s.tokens, s.positions, s.cache, {c: s.deltas[c] for c in components}, n_keys)
        chosen = choose_tokens(logits, do_sample, s.temperature, top_p, s.seeds, s.steps)
        was_active = s.active.clone()
        chosen = torch.where(was_active, chosen, s.tokens)
        s.tokens.copy_(chosen)
        s.positions.add_(was_active.long())
        s.steps.add_(was_active.long())
        hit_eos = was_active & s.stop_at_eos & (chosen[:, None] == s.eos[None, :]).any(-1)
        s.stopped.logical_or_(hit_eos)
        s.active.logical_and_(~(hit_eos | (s.steps >= s.max_new)))
        s.history.index_copy_(1, s.cursor, torch.where(was_active, chosen, -1)[:, None])
        s.cursor.add_(1)

    def _run_step(self, s: _Slots, n_keys: int, components: tuple[str, ...], config: SamplingConfig) -> None:
        top_p = config.top_p if config.do_sample else 1.0
        key = (s.tokens.shape[0], n_keys, components, config.do_sample, top_p < 1.0, top_p)
        self.step_variants.add(key)
        if not self.use_graphs:
            self._step(s, n_keys, components, config.do_sample, top_p)
            return
        graph = self._graphs.get(key)
        if graph is not None:
            graph.replay()
            return
        # First use of this key: run it eagerly (a real step, and the warm-up), then capture it for next time.
        self._step(s, n_keys, components, config.do_sample, top_p)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):  # records the step; nothing runs, the state is unchanged
            self._step(s, n_keys, components, config.do_sample, top_p)
        self._graphs[key] = graph
        self.graph_captures += 1

    # -- the generation loop -----------------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(
        self, prompts: Sequence[list[int]], deltas: dict[tuple[int, str], torch.Tensor], config: SamplingConfig,
        seeds: Sequence[int], eos_ids: set[int], steer_prompt: bool = True, max_slots: int = 64,
        max_new_per_row: Sequence[int] | None = None,
    ) -> GenerationOutput:
        """Generate for every prompt; ``deltas[(layer, component)]`` is ``[len(prompts), hidden]`` (VectorTable).

        ``max_new_per_row`` caps rows separately (default ``config.max_new_tokens`` for all); benchmarks use it to
        give a sweep's answers very different lengths without depending on when a random model says EOS.
        """
        n = len(prompts)
        limits = [config.max_new_tokens] * n if max_new_per_row is None else [int(m) for m in max_new_per_row]
        max_len = max(len(p) + m for p, m in zip(prompts, limits, strict=True))
        self.fast.check_length(max_len)
        s = self._buffers(slot_count(n, max_slots), max_len, eos_ids)
        slots = s.tokens.shape[0]
        components = tuple(c for c in COMPONENT_ORDER if any(key[1] == c for key in deltas))
        s.active.zero_()
        s.stopped.zero_()
        s.cursor.zero_()
        s.stop_at_eos.fill_(config.stop_at_eos)
        s.temperature.fill_(config.temperature)
        tokens: list[list[int]] = [[] for _ in range(n)]
        stopped = [False] * n
        slot_row = [-1] * slots
        positions = [0] * slots
        waiting = deque(range(n))
        run = _Run(prompts, deltas, config, seeds, steer_prompt, components, tokens, stopped, limits)
        self._refill(s, run, slot_row, positions, waiting)
        while any(row >= 0 for row in slot_row):
            bound = max(positions[i] for i, row in enumerate(slot_row) if row >= 0) + 1
            for step in range(self.sync_every):
                n_keys = min(length_bucket(bound + step), s.cache.max_len)
                self._run_step(s, n_keys, components, config)
            history, active = s.history.cpu().tolist(), s.active.cpu().tolist()
            hit, now = s.stopped.cpu().tolist(), s.positions.cpu().tolist()
            s.cursor.zero_()
            for slot, row in enumerate(slot_row):
                if row < 0:
                    continue
                tokens[row].extend(t for t in history[slot] if t >= 0)
                positions[slot] = now[slot]
                if not active[slot]:
                    stopped[row], slot_row[slot] = bool(hit[slot]), -1
            self._refill(s, run, slot_row, positions, waiting)
        return GenerationOutput(tokens=tokens, stopped_at_eos=stopped)

    def _refill(self, s: _Slots, run: _Run, slot_row: list[int], positions: list[int], waiting: deque) -> None:
        """Prefill waiting rows into free slots, in groups of at most PREFILL_TOKENS prompt tokens."""
        while waiting:
            free = [slot for slot, row in enumerate(slot_row) if row < 0]
            if not free:
                return
            group, width = [], 0
            while waiting and len(group) < len(free):
                width = max(width, len(run.prompts[waiting[0]]))
                if group and width * (len(group) + 1) > PREFILL_TOKENS:
                    break
                group.append(waiting.popleft())
            self._prefill(s, run, free[: len(group)], group, slot_row, positions)

    def _prefill(self, s: _Slots, run: _Run, slots: list[int], rows: list[int], slot_row: list[int],
                 positions: list[int]) -> None:
        device = self.fast.device
        slot_index = torch.tensor(slots, device=device)
        row_index = torch.tensor(rows, device=device)
        for component in run.components:
            s.deltas[component][:, slot_index] = 0
        for (layer, component), delta in run.deltas.items():
            s.deltas[component][layer, slot_index] = delta[row_index].to(s.deltas[component].dtype)
        prompt_deltas = {c: s.deltas[c][:, slot_index] for c in run.components} if run.steer_prompt else {}
        prompts = [run.prompts[r] for r in rows]
        logits = self.fast.prefill(prompts, slot_index, s.cache, prompt_deltas)
        seeds = torch.tensor([int(run.seeds[r]) for r in rows], device=device)
        first = choose_tokens(logits, run.config.do_sample, float(run.config.temperature),
                              run.config.top_p if run.config.do_sample else 1.0, seeds, torch.zeros_like(seeds))
        lengths = torch.tensor([len(p) for p in prompts], device=device)
        hit_eos = (first[:, None] == s.eos[None, :]).any(-1) & bool(run.config.stop_at_eos)
        limits = torch.tensor([run.limits[r] for r in rows], device=device)
        done = hit_eos | (limits <= 1)
        s.tokens[slot_index], s.positions[slot_index], s.seeds[slot_index] = first, lengths, seeds
        s.steps[slot_index], s.max_new[slot_index] = 1, limits
        s.active[slot_index], s.stopped[slot_index] = ~done, hit_eos
        for slot, row, token, finished, eos_hit, length in zip(
            slots, rows, first.tolist(), done.tolist(), hit_eos.tolist(), lengths.tolist(), strict=True
        ):
            run.tokens[row] = [token]
            if finished:
                run.stopped[row] = eos_hit
            else:
                slot_row[slot], positions[slot] = row, length


@dataclass
class _Run:
    """What one ``generate`` call refills slots from."""

    prompts: Sequence[list[int]]
    deltas: dict[tuple[int, str], torch.Tensor]
    config: SamplingConfig
    seeds: Sequence[int]
    steer_prompt: bool
    components: tuple[str, ...]
    tokens: list[list[int]]
    stopped: list[bool]
    limits: list[int]
