"""How many generation rows of a given shape fit a model's device: the number the search's scheduler packs to."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PretrainedConfig

CPU_ROW_CAP = 256
"""Rows per call on a CPU: memory is rarely the limit there, time is."""

MEMORY_FRACTION = 0.85
"""Share of the free device memory a call may plan to use (the rest absorbs fragmentation and library workspaces)."""


@dataclass(frozen=True)
class RowCost:
    """Device bytes one generation row needs: its KV cache plus the activations of its prefill and decode steps."""

    kv_bytes_per_token: int
    activation_bytes_per_token: int
    logits_bytes: int

    def bytes(self, prompt_tokens: int, new_tokens: int) -> int:
        tokens = prompt_tokens + new_tokens
        # Prefill is the peak of activations: every prompt token at once through one layer's widest tensor.
        return tokens * self.kv_bytes_per_token + prompt_tokens * self.activation_bytes_per_token + self.logits_bytes


def row_cost(config: PretrainedConfig, dtype: torch.dtype) -> RowCost:
    """Per-row byte counts from a transformers config (Llama-like attention: K and V per layer per token)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(text.hidden_size)
    heads = int(text.num_attention_heads)
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or hidden // heads)
    layers = int(text.num_hidden_layers)
    intermediate = int(getattr(text, "intermediate_size", None) or 4 * hidden)
    vocab = int(text.vocab_size)
    element = torch.empty((), dtype=dtype).element_size()
    return RowCost(
        kv_bytes_per_token=2 * layers * kv_heads * head_dim * element,
        # residual + normed copy + q/k/v + gate/up/act of one layer, live together at the widest point
        activation_bytes_per_token=(4 * hidden + 3 * intermediate + 2 * kv_heads * head_dim) * element,
        # float32 logits of the last position, a softmax copy and the sampler's sort
        logits_bytes=3 * vocab * 4,
    )


def free_device_bytes(device: torch.device) -> int:
    """Free bytes on ``device``: the driver's free memory plus what PyTorch's allocator holds but does not use."""
    free, _total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + max(cached, 0))


def row_capacity(
    config: PretrainedConfig, dtype: torch.dtype, device: torch.device, prompt_tokens: int, new_tokens: int,
    cpu_cap: int = CPU_ROW_CAP, reusable_bytes: int = 0,
) -> int:
    """Rows of ``prompt_tokens + new_tokens`` that fit now (>= 0); on a CPU a fixed cap.

    ``reusable_bytes``: memory held now that a new call would give back first (the fast path's KV cache).

    Example:
        >>> from transformers import LlamaConfig
        >>> row_capacity(LlamaConfig(), torch.float32, torch.device("cpu"), 64, 128)
        256
    """
    if prompt_tokens < 1:
        raise ValueError(f"prompt_tokens: {prompt_tokens} must be >= 1")
    if new_tokens < 0:
        raise ValueError(f"new_tokens: {new_tokens} must be >= 0")
    if device.type != "cuda":
        return cpu_cap
    per_row = row_cost(config, dtype).bytes(prompt_tokens, new_tokens)
    return max(0, int((free_device_bytes(device) + reusable_bytes) * MEMORY_FRACTION) // per_row)
