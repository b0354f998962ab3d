"""Fused GPU kernels of the fast path (Triton), each with the plain-torch computation it replaces.

``rope_and_cache_write``: rotary embedding of q and k plus the K/V cache writes of one decode step, one kernel
instead of ~8 small ones per layer. It rounds like HF's bf16 code (``q*cos`` and ``rotate_half(q)*sin`` each rounded to
the model dtype, then their sum), so the fused and unfused paths give the same bits.
"""

from __future__ import annotations

import torch

try:  # Triton ships with CUDA builds of torch; the CPU path never needs it
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None


def fused_rope_available(device: torch.device, head_dim: int) -> bool:
    return triton is not None and device.type == "cuda" and head_dim >= 16 and head_dim & (head_dim - 1) == 0


if triton is not None:

    @triton.jit
    def _rope_write_kernel(qkv_ptr, cos_ptr, sin_ptr, q_ptr, k_ptr, v_ptr, pos_ptr, stride_row,
                           stride_slot, stride_head, stride_pos,
                           HEADS: tl.constexpr, KV_HEADS: tl.constexpr, D: tl.constexpr):
        row = tl.program_id(0)
        head = tl.program_id(1)
        d = tl.arange(0, D)
        base = qkv_ptr + row * stride_row + head * D
        x = tl.load(base + d)
        position = tl.load(pos_ptr + row)
        if head < HEADS + KV_HEADS:
            swapped = tl.load(base + (d + D // 2) % D)
            cos = tl.load(cos_ptr + row * D + d).to(tl.float32)
            sin = tl.load(sin_ptr + row * D + d).to(tl.float32)
            first = (x.to(tl.float32) * cos).to(x.dtype)
            second = (swapped.to(tl.float32) * sin).to(x.dtype)
            rotated = (first.to(tl.float32) + second.to(tl.float32)).to(x.dtype)
            if head < HEADS:
                tl.store(q_ptr + (row * HEADS + head) * D + d, rotated)
            else:
                offset = row * stride_slot + (head - HEADS) * stride_head + position * stride_pos
                tl.store(k_ptr + offset + d, rotated)
        else:
            offset = row * stride_slot + (head - HEADS - KV_HEADS) * stride_head + position * stride_pos
            tl.store(v_ptr + offset + d, x)


def rope_and_cache_write(
    qkv: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
    positions: torch.Tensor, heads: int, kv_heads: int,
) -> torch.Tensor:
    """q with rotary applied ``[rows, heads, d]``; k (rotated) and v are written to ``cache[row, :, positions[row]]``.

    ``qkv`` is ``[rows, (heads + 2 kv_heads) * d]`` (contiguous), ``cos``/``signed_sin`` ``[rows, d]``, the caches
    ``[slots, kv_heads, max_len, d]`` with rows mapped to slots 0..rows-1.
    """
    rows, head_dim = qkv.shape[0], cos.shape[-1]
    q = torch.empty(rows, heads, head_dim, dtype=qkv.dtype, device=qkv.device)
    _rope_write_kernel[(rows, heads + 2 * kv_heads)](
        qkv, cos.contiguous(), signed_sin.contiguous(), q, k_cache, v_cache, positions, qkv.stride(0),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), HEADS=heads, KV_HEADS=kv_heads, D=head_dim,
    )
    return q
