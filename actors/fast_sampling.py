"""Token choice on the device with no host sync: greedy, or sampling whose draw depends on (row seed, step) only."""

from __future__ import annotations

import torch

_MASK31 = 0x7FFFFFFF


def row_uniform(seeds: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """One uniform in (0, 1) per row from its seed and step: a counter-based hash, so a row's draws do not depend on
    which other rows share the batch. Integer products stay below 2**62 (no overflow on any device).

    Example:
        >>> u = row_uniform(torch.tensor([1, 1, 2]), torch.tensor([0, 0, 0]))
        >>> bool(u[0] == u[1]) and bool(u[0] != u[2])
        True
    """
    x = seeds.long() & _MASK31
    x = (x * 1103515245 + 12345) & _MASK31
    x = x ^ ((steps.long() * 40503 + 2654435) & _MASK31)
    for _ in range(3):
        x = (x * 1103515245 + 12345) & _MASK31
        x = x ^ (x >> 15)
    return ((x >> 7).double() + 0.5) / float(1 << 24)


def choose_tokens(
    logits: torch.Tensor, do_sample: bool, temperature: torch.Tensor | float, top_p: float,
    seeds: torch.Tensor, steps: torch.Tensor,
) -> torch.Tensor:
    """Next token per row of ``logits [rows, vocab]``: argmax, or an inverse-CDF draw from the (top-p filtered)
    softmax at ``temperature`` using ``row_uniform(seeds, steps)``."""
    if not do_sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    order = None
    if top_p < 1.0:
        probs, order = probs.sort(dim=-1, descending=True)
        keep = probs.cumsum(-1) - probs < top_p
        probs = probs * keep
    cdf = probs.double().cumsum(-1)
    target = row_uniform(seeds, steps)[:, None] * cdf[:, -1:]
    index = torch.searchsorted(cdf, target).clamp_(max=probs.shape[-1] - 1)
    if order is not None:
        index = order.gather(-1, index)
    return index[:, 0]
