"""Capture replay for activation similarity: model A generates, A's exact response tokens run through model B.

Glue only (it needs live models); the math is :func:`steersweep.analysis.activation_similarity`. ``model_a`` and
``model_b`` are a :class:`~steersweep.actors.ModelWorker`, a Ray ``ModelActor`` handle, or a ``ModelHandle``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from steersweep.actors import CaptureReply, CaptureRequest, ModelHandle, PromptInput
from steersweep.analysis import SimilarityResult, activation_similarity

RESPONSE = "response[:]"


def call(model: Any, method: str, *args: Any) -> Any:
    """Call ``method`` on a ModelWorker, a ModelHandle or a Ray actor handle, blocking."""
    return ModelHandle.of(model).call(method, *args)


def per_token_stack(reply: CaptureReply, layers: Sequence[int], component: str = "residual") -> list[np.ndarray]:
    """``[n_tokens, n_layers, hidden]`` per prompt from a per-token capture of ``response[:]``."""
    per_layer = [reply.get(layer, component, RESPONSE) for layer in layers]
    return [np.stack([values[i] for values in per_layer], axis=1) for i in range(len(per_layer[0]))]


@dataclass(frozen=True)
class Replay:
    """A's generated responses and both models' per-token activations on them."""

    responses: tuple[str, ...]
    response_token_ids: tuple[tuple[int, ...], ...]
    model_a: list[np.ndarray]
    model_b: list[np.ndarray]
    layers: tuple[int, ...]

    def similarity(self, min_coverage: float = 0.8) -> SimilarityResult:
        return activation_similarity(self.model_a, self.model_b, self.layers, min_coverage)


def replay(
    model_a: Any, model_b: Any, prompts: Sequence[PromptInput], layers: Sequence[int], max_new_tokens: int = 32,
    component: str = "residual", same_tokenizer: bool = True, prompts_b: Sequence[PromptInput] | None = None,
    batch_size: int = 16,
) -> Replay:
    """Generate with A (greedy), then replay A's responses through B and capture both per token.

    ``same_tokenizer`` replays token ids (exact); otherwise the text (B re-tokenises; lengths may differ and the
    comparison keeps the common prefix). ``prompts_b`` lets B see another rendering of the prompt (e.g. raw text for
    a base model), as the research did.
    """
    layers = tuple(int(layer) for layer in layers)
    request_a = CaptureRequest(prompts=tuple(prompts), layers=layers, components=(component,), positions=(RESPONSE,),
                               generate=True, max_new_tokens=max_new_tokens, per_token=True, batch_size=batch_size)
    reply_a: CaptureReply = call(model_a, "capture", request_a)
    responses = reply_a.response_token_ids if same_tokenizer else reply_a.responses
    request_b = CaptureRequest(prompts=tuple(prompts_b or prompts), layers=layers, components=(component,),
                               positions=(RESPONSE,), responses=tuple(responses), per_token=True, batch_size=batch_size)
    reply_b: CaptureReply = call(model_b, "capture", request_b)
    return Replay(reply_a.responses, reply_a.response_token_ids, per_token_stack(reply_a, layers, component),
                  per_token_stack(reply_b, layers, component), layers)
