"""A small batched decoding loop with a KV cache: greedy or seeded sampling, per-row EOS, left padding."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .hooks import SteeringDeltas, capturing, steering
from .layers import LayerLayout
from .prompts import position_ids_from_mask


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    stop_at_eos: bool = True


@dataclass
class GenerationOutput:
    tokens: list[list[int]]
    """Generated ids per row (EOS included when the row stopped on it)."""
    stopped_at_eos: list[bool]
    activations: list[torch.Tensor | None] | None = None
    """When asked for: per row ``[n_tokens, n_points, hidden]`` float32, the activation at each point on the
    position whose forward pass produced each token."""


def _top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    if top_p >= 1.0:
        return probs
    sorted_probs, order = probs.sort(descending=True)
    keep = sorted_probs.cumsum(-1) - sorted_probs < top_p
    sorted_probs = sorted_probs * keep
    filtered = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return filtered / filtered.sum(-1, keepdim=True)


def _choose(logits: torch.Tensor, config: SamplingConfig, generators: Sequence[torch.Generator] | None) -> torch.Tensor:
    if not config.do_sample:
        return logits.argmax(-1)
    probs = _top_p_filter(torch.softmax(logits.float() / config.temperature, dim=-1), config.top_p).cpu()
    assert generators is not None
    # One generator per row: a row's sample depends on its own seed only, not on the batch it was packed into.
    return torch.stack(
        [torch.multinomial(probs[row], 1, generator=generators[row])[0] for row in range(probs.shape[0])]
    ).to(logits.device)


def decode(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    config: SamplingConfig,
    eos_ids: set[int],
    pad_id: int,
    seeds: Sequence[int] | None = None,
    before_forward: Callable[[int], None] | None = None,
) -> GenerationOutput:
    """Generate up to ``config.max_new_tokens`` tokens for each left-padded row.

    ``before_forward(offset)`` is called before every forward pass with the absolute (padded) position of its first
    token, so hooks can tell prompt positions from generated ones.
    """
    device = input_ids.device
    batch = input_ids.shape[0]
    generators = None
    if config.do_sample:
        seeds = list(seeds) if seeds is not None else list(range(batch))
        generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    tokens: list[list[int]] = [[] for _ in range(batch)]
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    stopped = [False] * batch
    eos = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device) if eos_ids else None

    position_ids = position_ids_from_mask(attention_mask)
    step_ids, offset, past = input_ids, 0, None
    for _ in range(config.max_new_tokens):
        if before_forward is not None:
            before_forward(offset)
        output = model(
            input_ids=step_ids, attention_mask=attention_mask, position_ids=position_ids,
            past_key_values=past, use_cache=True,
        )
        past = output.past_key_values
        next_ids = _choose(output.logits[:, -1, :], config, generators)
        next_ids = torch.where(finished, torch.full_like(next_ids, pad_id), next_ids)
        for row in torch.nonzero(~finished).flatten().tolist():
            tokens[row].append(int(next_ids[row]))
        if config.stop_at_eos and eos is not None:
            hit_eos = torch.isin(next_ids, eos) & ~finished
            for row in torch.nonzero(hit_eos).flatten().tolist():
                stopped[row] = True
            finished |= hit_eos
            if bool(finished.all()):
                break
        offset += step_ids.shape[1]
        step_ids = next_ids[:, None]
        attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=1)
        position_ids = position_ids[:, -1:] + 1
    return GenerationOutput(tokens=tokens, stopped_at_eos=stopped)


def steered_decode(
    model: nn.Module,
    layout: LayerLayout,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    config: SamplingConfig,
    eos_ids: set[int],
    pad_id: int,
    deltas: dict[tuple[int, str], torch.Tensor],
    seeds: Sequence[int] | None = None,
    steer_prompt: bool = True,
    points: list[tuple[int, str]] | None = None,
) -> GenerationOutput:
    """The reference path: ``decode`` with per-row steering hooks (``deltas[(layer, component)]`` is
    ``[batch, hidden]``) and, for ``points``, every step's activation at the last position."""
    width = input_ids.shape[1]
    active_from = None if steer_prompt else torch.full((input_ids.shape[0],), width, dtype=torch.long)
    plan = SteeringDeltas(deltas, active_from=active_from)

    def advance(offset: int) -> None:
        plan.offset = offset

    points = points or []
    with steering(model, layout, plan), capturing(model, layout, points) as records:
        output = decode(model, input_ids, attention_mask, config, eos_ids, pad_id, seeds=seeds,
                        before_forward=advance)
    if points:
        # records[point][step] is [batch, tokens_in_pass, hidden]; the last position produced the next token.
        per_step = torch.stack(
            [torch.stack([records[p][s][:, -1, :].float() for p in points], dim=1)
             for s in range(len(records[points[0]]))], dim=1,
        )  # [batch, steps, n_points, hidden]
        output.activations = [per_step[row, : len(output.tokens[row])] for row in range(per_step.shape[0])]
    return output
