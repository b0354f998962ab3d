"""Logit lens of a residual-stream direction: through the final norm and the unembedding, top-k tokens both ways.

Used on each layer's residual-facing weight diff (:meth:`WeightDiff.residual_directions`), as in the research's
``vector_to_vocab(model, delta, k=20, apply_norm=True)``. The unembedding is streamed row block by row block from
the checkpoint, so an 8B vocabulary never sits in memory as float32.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import numpy as np
import pyarrow as pa
import torch

from .checkpoint import CheckpointError, CheckpointReader

_UNEMBEDDING = ("lm_head.weight", "model.embed_tokens.weight", "embed_tokens.weight")
_FINAL_NORM = ("model.norm.weight", "norm.weight", "model.final_layernorm.weight")


def apply_final_norm(direction: np.ndarray, weight: np.ndarray | None, eps: float = 1e-5) -> np.ndarray:
    """RMSNorm as Llama / Qwen2 / Mistral apply it: ``d / sqrt(mean(d^2) + eps) * weight``."""
    d = np.asarray(direction, dtype=np.float64)
    normed = d / np.sqrt(np.mean(d * d, axis=-1, keepdims=True) + eps)
    return normed * np.asarray(weight, dtype=np.float64) if weight is not None else normed


def _names(reader: CheckpointReader) -> tuple[str, str | None]:
    tied = bool(reader.config.get("tie_word_embeddings", False))
    candidates = _UNEMBEDDING[1:] if tied else _UNEMBEDDING
    unembedding = next((n for n in candidates if n in reader.entries), None)
    if unembedding is None:
        raise CheckpointError(f"checkpoint {reader.folder} has none of {list(candidates)}; the logit lens needs the "
                              "unembedding matrix")
    return unembedding, next((n for n in _FINAL_NORM if n in reader.entries), None)


def lens_logits(
    directions: Mapping[int, np.ndarray], checkpoint: str | os.PathLike[str], apply_norm: bool = True,
) -> dict[int, np.ndarray]:
    """``{layer: logits [vocab]}`` = unembedding @ final_norm(direction), streamed over the unembedding rows."""
    reader = CheckpointReader(checkpoint)
    unembedding, norm_name = _names(reader)
    hidden = reader.entry(unembedding).shape[1]
    layers = sorted(directions)
    stacked = np.stack([np.asarray(directions[layer], dtype=np.float64) for layer in layers])
    if stacked.shape[1] != hidden:
        raise ValueError(f"directions have dim {stacked.shape[1]}, the unembedding of {checkpoint} has {hidden}")
    if apply_norm:
        weight = reader.load(norm_name).double().numpy() if norm_name else None
        stacked = apply_final_norm(stacked, weight, float(reader.config.get("rms_norm_eps", 1e-5)))
    matrix = torch.from_numpy(stacked.T.astype(np.float32))  # [hidden, n_layers]
    blocks = [block.to(torch.float32) @ matrix for block in reader.row_blocks(unembedding)]
    logits = torch.cat(blocks).numpy()  # [vocab, n_layers]
    return {layer: logits[:, i].astype(np.float64) for i, layer in enumerate(layers)}


def top_tokens(logits: np.ndarray, k: int, decode: Callable[[int], str] | None = None) -> list[dict]:
    """The k highest and k lowest logits as rows: direction ("positive"/"negative"), rank, token_id, token, logit."""
    logits = np.asarray(logits)
    k = min(k, logits.size)
    order = np.argsort(-logits, kind="stable")
    rows = []
    for direction, ids in (("positive", order[:k]), ("negative", order[::-1][:k])):
        for rank, token_id in enumerate(ids):
            rows.append(dict(direction=direction, rank=rank, token_id=int(token_id),
                             token=decode(int(token_id)) if decode else str(int(token_id)),
                             logit=float(logits[token_id])))
    return rows


def _decoder(checkpoint: str | os.PathLike[str]) -> Callable[[int], str] | None:
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    except (OSError, ValueError):
        return None
    return lambda token_id: tokenizer.decode([token_id])


def logit_lens(
    directions: Mapping[int, np.ndarray], checkpoint: str | os.PathLike[str], k: int = 20, apply_norm: bool = True,
    decode: Callable[[int], str] | None = None,
) -> pa.Table:
    """Top-k tokens in both directions per layer. Columns: layer, direction, rank, token_id, token, logit.

    ``decode`` defaults to the checkpoint's tokenizer when it has one (token ids as text otherwise).

    Example:
        >>> diff = weight_diff("/models/llama-base", "/models/llama-sft")  # doctest: +SKIP
        >>> logit_lens(diff.residual_directions(), "/models/llama-base", k=5)  # doctest: +SKIP
    """
    decode = decode or _decoder(checkpoint)
    rows = []
    for layer, logits in lens_logits(directions, checkpoint, apply_norm).items():
        rows.extend(dict(layer=layer, **row) for row in top_tokens(logits, k, decode))
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("layer", pa.int64()), ("direction", pa.string()), ("rank", pa.int64()), ("token_id", pa.int64()),
        ("token", pa.string()), ("logit", pa.float64())]))


def unembedding_row(checkpoint: str | os.PathLike[str], token_id: int) -> np.ndarray:
    """One token's unembedding direction (e.g. to plant a known diff in a test)."""
    reader = CheckpointReader(checkpoint)
    name, _ = _names(reader)
    return reader.load(name)[token_id].double().numpy()

