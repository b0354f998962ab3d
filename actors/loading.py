"""Load one causal LM and its tokenizer from a hub id or a local path (the only place that calls from_pretrained)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .layers import LayerLayout

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class ModelLoadError(RuntimeError):
    """The model or tokenizer could not be loaded; the message says what to check."""


@dataclass(frozen=True)
class ModelSpec:
    """How to load one model.

    Example:
        >>> ModelSpec("meta-llama/Meta-Llama-3-8B-Instruct", dtype="bfloat16", device="cuda").dtype
        'bfloat16'

    Args:
        path: hub id or local directory with config.json, weights and tokenizer files.
        dtype: ``auto`` (float32 on CPU, bfloat16 on GPU), ``float32``, ``float16`` or ``bfloat16``.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``; ignored when ``device_map`` is set.
        device_map: passed to from_pretrained (accelerate), e.g. ``auto`` to spread a model over several GPUs.
        layer_layout: module paths for an architecture steersweep does not know.
        local_files_only: never reach the network (the default: sweeps run on machines without internet).
    """

    path: str
    dtype: str = "auto"
    device: str = "auto"
    device_map: str | None = None
    layer_layout: LayerLayout | None = None
    trust_remote_code: bool = False
    local_files_only: bool = True
    name: str | None = None

    @property
    def display_name(self) -> str:
        return self.name or Path(self.path).name or self.path


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device: {device!r} asked for but CUDA is not available here; use device: cpu or auto")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ModelLoadError(f"dtype: {dtype!r} is not supported; use one of auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def load_model(spec: ModelSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``spec`` in eval mode with gradients off; the tokenizer gets a pad token and left padding."""
    device = resolve_device(spec.device if spec.device_map is None else "cpu")
    dtype = resolve_dtype(spec.dtype, torch.device("cuda") if spec.device_map else device)
    kwargs: dict[str, Any] = {"local_files_only": spec.local_files_only, "trust_remote_code": spec.trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            spec.path, dtype=dtype, device_map=spec.device_map, **kwargs
        )
    except (OSError, ValueError) as error:
        hint = (
            "check that the directory holds config.json, the weights and the tokenizer files"
            if Path(spec.path).exists()
            else "it is neither a local directory nor a cached hub model; download it first "
            "(huggingface-cli download) or fix the path"
        )
        raise ModelLoadError(f"model path {spec.path!r} could not be loaded: {hint} ({error})") from error
    if spec.device_map is None:
        model.to(device)
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise ModelLoadError(f"tokenizer of {spec.path!r} has neither a pad nor an EOS token; add a pad token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    logger.info("loaded %s (%s, %s) on %s", spec.path, type(model).__name__, dtype, device)
    return model, tokenizer
