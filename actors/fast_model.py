"""A Llama-family decoder over fused weights and a static KV cache: the math of the fast generation path.

The HF model stays the reference. ``FastModel`` reads its weights once, fuses q/k/v and gate/up into single
matrices (the HF modules are re-pointed at views of them, so no memory is duplicated) and computes prefill and
one-token decode steps over its own cache, with steering read from per-layer ``[slots, hidden]`` delta buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "mistral")
COMPONENT_ORDER = ("residual", "attn_out", "mlp_out")


class FastPathUnsupported(ValueError):
    """The model cannot run on the fast path (the reference path still can); the message says why."""


@dataclass
class _Layer:
    input_norm: torch.Tensor
    post_norm: torch.Tensor
    qkv: torch.Tensor
    qkv_bias: torch.Tensor | None
    o: torch.Tensor
    o_bias: torch.Tensor | None
    gate_up: torch.Tensor
    down: torch.Tensor


def _fused(modules: list[nn.Linear]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One weight (and bias) for several linears with one input; the modules then hold views of it."""
    weight = torch.cat([m.weight.detach() for m in modules], dim=0)
    biases = [m.bias for m in modules]
    bias = torch.cat([b.detach() for b in biases], dim=0) if all(b is not None for b in biases) else None
    if any(b is not None for b in biases) and bias is None:
        raise FastPathUnsupported("only some of the fused projections have a bias")
    start = 0
    for module in modules:
        rows = module.weight.shape[0]
        module.weight = nn.Parameter(weight[start:start + rows], requires_grad=False)
        if bias is not None:
            module.bias = nn.Parameter(bias[start:start + rows], requires_grad=False)
        start += rows
    return weight, bias


class KVCache:
    """Keys and values of every layer, ``[layers, slots, kv_heads, max_len, head_dim]``; a slot holds one row."""

    def __init__(self, layers: int, slots: int, kv_heads: int, max_len: int, head_dim: int, dtype: torch.dtype,
                 device: torch.device):
        shape = (layers, slots, kv_heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.slots, self.max_len = slots, max_len


class FastModel:
    """Prefill and decode for one loaded Llama, Qwen2 or Mistral model (eval, one device).

    Example:
        >>> fast = FastModel(hf_model)  # doctest: +SKIP
        >>> logits = fast.decode(tokens, positions, cache, deltas, n_keys=64)  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module):
        config = model.config
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise FastPathUnsupported(f"model_type {config.model_type!r} (fast path knows "
                                      f"{', '.join(SUPPORTED_MODEL_TYPES)})")
        if getattr(config, "hidden_act", "silu") != "silu" or getattr(config, "mlp_bias", False):
            raise FastPathUnsupported("only SiLU-gated MLPs without bias")
        if getattr(model, "hf_device_map", None) and len(set(model.hf_device_map.values())) > 1:
            raise FastPathUnsupported("the model is spread over several devices (device_map)")
        self.config = config
        self.hidden = int(config.hidden_size)
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(getattr(config, "num_key_value_heads", None) or self.heads)
        self.head_dim = int(getattr(config, "head_dim", None) or self.hidden // self.heads)
        self.eps = float(config.rms_norm_eps)
        self.scale = self.head_dim ** -0.5
        window = getattr(config, "sliding_window", None)
        self.sliding_window = window if window and getattr(config, "use_sliding_window", True) else None
        inner = model.model
        self.embed = inner.embed_tokens.weight
        self.dtype, self.device = self.embed.dtype, self.embed.device
        self.final_norm = inner.norm.weight
        self.lm_head = model.get_output_embeddings().weight
        self._rotary = inner.rotary_emb
        self.layers: list[_Layer] = []
        for layer in inner.layers:
            attn, mlp = layer.self_attn, layer.mlp
            qkv, qkv_bias = _fused([attn.q_proj, attn.k_proj, attn.v_proj])
            gate_up, _ = _fused([mlp.gate_proj, mlp.up_proj])
            self.layers.append(_Layer(
                layer.input_layernorm.weight, layer.post_attention_layernorm.weight, qkv, qkv_bias,
                attn.o_proj.weight, attn.o_proj.bias, gate_up, mlp.down_proj.weight,
            ))
        self._cos = self._sin = torch.empty(0)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def new_cache(self, slots: int, max_len: int) -> KVCache:
        return KVCache(self.num_layers, slots, self.kv_heads, max_len, self.head_dim, self.dtype, self.device)

    def check_length(self, max_len: int) -> None:
        if self.sliding_window is not None and max_len > self.sliding_window:
            raise FastPathUnsupported(f"sequences of {max_len} tokens exceed the sliding window "
                                      f"({self.sliding_window})")

    def rope_tables(self, max_len: int) -> None:
        """cos/sin ``[max_len, head_dim]`` from the model's own rotary module (its scaling rules included)."""
        if self._cos.shape[0] >= max_len:
            return
        positions = torch.arange(max_len, device=self.device)[None]
        probe = torch.zeros(1, dtype=self.dtype, device=self.device)
        cos, sin = self._rotary(probe, positions)
        half = self.head_dim // 2
        sin = sin[0].to(self.dtype)
        self._cos, self._sin = cos[0].to(self.dtype), torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # As HF's RMSNorm: normalise (the fused kernel accumulates in float32), round to the model dtype, then
        # scale; one kernel instead of HF's upcast copy, reduction and downcast copy.
        return weight * F.rms_norm(x, (x.shape[-1],), eps=self.eps)

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
        """``x * cos + rotate_half(x) * sin`` with ``rotate_half(x) * sin == swap_halves(x) * signed_sin``."""
        swapped = x.unflatten(-1, (2, x.shape[-1] // 2)).flip(-2).flatten(-2)
        return x * cos + swapped * signed_sin

    def _mlp(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        gate, up = F.linear(x, layer.gate_up).chunk(2, dim=-1)
        return F.linear(F.silu(gate) * up, layer.down)

    def _qkv(self, layer: _Layer, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """q ``[..., heads, d]``, k and v ``[..., kv_heads, d]`` with rotary applied to q and k in one pass."""
        qkv = F.linear(x, layer.qkv, layer.qkv_bias).unflatten(-1, (self.heads + 2 * self.kv_heads, self.head_dim))
        qk = self._rotate(qkv[..., : self.heads + self.kv_heads, :], cos, sin)
        return qk[..., : self.heads, :], qk[..., self.heads:, :], qkv[..., self.heads + self.kv_heads:, :]

    def decode(
        self, tokens: torch.Tensor, positions: torch.Tensor, cache: KVCache,
        deltas: dict[str, torch.Tensor], n_keys: int,
    ) -> torch.Tensor:
        """One token per slot: ``tokens``/``positions`` are ``[slots]``; returns logits ``[slots, vocab]``.

        ``deltas[component]`` is ``[layers, slots, hidden]``; ``n_keys`` (> every position) bounds the keys read.
        """
        slots = tokens.shape[0]
        rows = torch.arange(slots, device=tokens.device)
        cos, sin = self._cos[positions][:, None, :], self._sin[positions][:, None, :]
        key_mask = (torch.arange(n_keys, device=tokens.device)[None, :] <= positions[:, None])[:, None, None, :]
        group = self.heads // self.kv_heads
        h = F.embedding(tokens, self.embed)
        for index, layer in enumerate(self.layers):
            q, k, v = self._qkv(layer, self._norm(h, layer.input_norm), cos, sin)
            cache.k[index][rows, :, positions] = k
            cache.v[index][rows, :, positions] = v
            # Query heads of one KV head become that head's query rows: GQA with no repeated keys.
            attn = F.scaled_dot_product_attention(
                q.reshape(slots, self.kv_heads, group, self.head_dim), cache.k[index, :, :, :n_keys],
                cache.v[index, :, :, :n_keys], attn_mask=key_mask, scale=self.scale,
            )
            out = F.linear(attn.reshape(slots, self.heads * self.head_dim), layer.o, layer.o_bias)
            h = self._add_steps(h, out, deltas, "attn_out", index)
            h = self._add_steps(h, self._mlp(layer, self._norm(h, layer.post_norm)), deltas, "mlp_out", index)
            if "residual" in deltas:
                h = h + deltas["residual"][index]
        return F.linear(self._norm(h, self.final_norm), self.lm_head)

    @staticmethod
    def _add_steps(h: torch.Tensor, out: torch.Tensor, deltas: dict[str, torch.Tensor], component: str,
                   index: int) -> torch.Tensor:
        if component in deltas:
            out = out + deltas[component][index]
        return h + out

    def prefill(
        self, prompts: list[list[int]], slots: torch.Tensor, cache: KVCache, deltas: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """Run prompts (right-padded) into cache ``slots``; returns each prompt's last-position logits ``[n, vocab]``.

        ``deltas[component]`` is ``[layers, n, hidden]`` (already selected for these rows), added at every position.
        """
        n, width = len(prompts), max(len(p) for p in prompts)
        ids = torch.zeros(n, width, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, : len(prompt)] = torch.tensor(prompt, dtype=torch.long)
        ids = ids.to(self.device)
        lengths = torch.tensor([len(p) for p in prompts], device=self.device)
        positions = torch.arange(width, device=self.device)
        cos, sin = self._cos[:width][None, :, None, :], self._sin[:width][None, :, None, :]
        causal = positions[None, :] <= positions[:, None]
        mask = (causal[None] & (positions[None, None, :] < lengths[:, None, None]))[:, None]  # [n, 1, W, W]
        h = F.embedding(ids, self.embed)
        for index, layer in enumerate(self.layers):
            q, k, v = self._qkv(layer, self._norm(h, layer.input_norm), cos, sin)  # [n, W, heads, d]
            k, v = k.transpose(1, 2), v.transpose(1, 2)
            cache.k[index][slots, :, :width] = k
            cache.v[index][slots, :, :width] = v
            attn = F.scaled_dot_product_attention(q.transpose(1, 2), k, v, attn_mask=mask, scale=self.scale,
                                                  enable_gqa=True)
            out = F.linear(attn.transpose(1, 2).reshape(n, width, -1), layer.o, layer.o_bias)
            h = self._add_steps(h, out, _per_position(deltas), "attn_out", index)
            h = self._add_steps(h, self._mlp(layer, self._norm(h, layer.post_norm)), _per_position(deltas),
                                "mlp_out", index)
            if "residual" in deltas:
                h = h + deltas["residual"][index][:, None, :]
        last = h[torch.arange(n, device=self.device), lengths - 1]
        return F.linear(self._norm(last, self.final_norm), self.lm_head)


def _per_position(deltas: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``[layers, n, hidden]`` deltas as ``[layers, n, 1, hidden]`` so they broadcast over prompt positions."""
    return {component: delta[:, :, None, :] for component, delta in deltas.items()}
