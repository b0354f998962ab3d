"""How big a model is before it is loaded: parameter count from config.json or the safetensors index, KV bytes/token.

Example:
    >>> shape = ModelShape.from_config({"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    ...     "vocab_size": 128256, "num_attention_heads": 32, "num_key_value_heads": 8})
    >>> round(shape.parameter_count / 1e9, 2), shape.kv_bytes_per_token("bfloat16")
    (8.03, 131072)
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DTYPE_BYTES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2, "float8": 1, "int8": 1}
_SAFETENSORS_DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "F64": 8,
                       "I64": 8, "I32": 4, "I16": 2, "BOOL": 1}


class ModelSizeError(ValueError):
    """config.json lacks what a size estimate needs; the message names the field."""


def dtype_bytes(dtype: str) -> int:
    if dtype not in DTYPE_BYTES:
        raise ModelSizeError(f"dtype: {dtype!r} has no known size; use one of {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[dtype]


@dataclass(frozen=True)
class ModelShape:
    """The sizes that decide memory: parameters (weights) and the KV cache per generated or prompt token."""

    parameter_count: int
    num_layers: int
    hidden_size: int
    kv_heads: int
    head_dim: int
    vocab_size: int

    def kv_bytes_per_token(self, dtype: str) -> int:
        """Keys + values of every layer for one token."""
        return 2 * self.num_layers * self.kv_heads * self.head_dim * dtype_bytes(dtype)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], parameter_count: int | None = None) -> ModelShape:
        """Count the parameters of a decoder-only transformer config (Llama/Qwen2/Mistral/Gemma layout).

        Embeddings + untied LM head + per layer (q, k, v, o projections; gated MLP of three matrices, times the
        number of experts for MoE; two norms) + the final norm. Biases are ignored (well under 0.1 %).
        """
        config = config.get("text_config", config) if "hidden_size" not in config else config
        hidden = _field(config, "hidden_size")
        layers = _field(config, "num_hidden_layers")
        vocab = _field(config, "vocab_size")
        heads = _field(config, "num_attention_heads")
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or hidden // heads)
        if parameter_count is None:
            intermediate = _field(config, "intermediate_size")
            experts = int(config.get("num_local_experts") or config.get("num_experts") or 1)
            attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
            mlp = 3 * hidden * intermediate * experts
            per_layer = attention + mlp + 2 * hidden
            tied = bool(config.get("tie_word_embeddings", False))
            parameter_count = vocab * hidden * (1 if tied else 2) + layers * per_layer + hidden
        return cls(parameter_count=int(parameter_count), num_layers=layers, hidden_size=hidden, kv_heads=kv_heads,
                   head_dim=head_dim, vocab_size=vocab)

    @classmethod
    def from_pretrained_dir(cls, path: str | Path) -> ModelShape:
        """Read a local model directory without loading it: config.json, and the exact parameter count from the
        safetensors index (``metadata.total_size``) or the single file's header when present."""
        folder = Path(path)
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise ModelSizeError(f"{folder}: no config.json; placement needs the model's config to size it "
                                 "(download the model first, or give parameter_bytes in the config)")
        config = json.loads(config_path.read_text())
        return cls.from_config(config, parameter_count=_safetensors_parameter_count(folder, config))


def _field(config: Mapping[str, Any], name: str) -> int:
    value = config.get(name)
    if value is None:
        raise ModelSizeError(f"config.json has no {name!r}; placement cannot size this model: give its "
                             "parameter_bytes explicitly")
    return int(value)


def _safetensors_parameter_count(folder: Path, config: Mapping[str, Any]) -> int | None:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        total = json.loads(index.read_text()).get("metadata", {}).get("total_size")
        stored = str(config.get("torch_dtype") or config.get("dtype") or "")
        if total and stored in DTYPE_BYTES:
            return int(total) // DTYPE_BYTES[stored]
        return None
    single = folder / "model.safetensors"
    if single.is_file():
        with single.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        count = 0
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            start, end = entry["data_offsets"]
            count += (end - start) // _SAFETENSORS_DTYPES.get(entry["dtype"], 1)
        return count
    return None
