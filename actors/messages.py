"""Frozen requests and replies that cross the ModelActor boundary (Ray pickles them; they carry no tensors)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

COMPONENTS: tuple[str, ...] = ("residual", "attn_out", "mlp_out", "k_proj", "v_proj")
"""Module outputs that can be captured. ``residual`` is the decoder layer's output."""

STEERABLE_COMPONENTS: tuple[str, ...] = ("residual", "attn_out", "mlp_out")
"""Module outputs a steering term may add to (each has the model's hidden size)."""

Message = Mapping[str, str]
"""One chat turn, ``{"role": "system" | "user" | "assistant", "content": "..."}``."""

PromptInput = str | tuple[Message, ...]
"""A plain prompt, or a chat conversation rendered through the tokenizer's chat template.

A plain string is sent as one user turn when the tokenizer has a chat template, and as raw text when it has none.
"""


@dataclass(frozen=True)
class SteeringTerm:
    """Add ``coefficient * vector[layer]`` to one component's output at one layer.

    Example:
        >>> SteeringTerm(vector_id="optimism", layer=4, coefficient=6.0)
        SteeringTerm(vector_id='optimism', layer=4, coefficient=6.0, component='residual')
    """

    vector_id: str
    layer: int
    coefficient: float
    component: str = "residual"

    def __post_init__(self) -> None:
        if self.component not in STEERABLE_COMPONENTS:
            raise ValueError(
                f"component: {self.component!r} cannot be steered; use one of {', '.join(STEERABLE_COMPONENTS)}"
            )
        if not np.isfinite(self.coefficient):
            raise ValueError(f"coefficient: {self.coefficient} is not finite; steering needs a real number")


@dataclass(frozen=True)
class SteerRow:
    """One row of a batched generation: a prompt and its own steering (no terms = unsteered baseline)."""

    prompt: PromptInput
    terms: tuple[SteeringTerm, ...] = ()
    seed: int | None = None
    """Sampling seed of this row; default ``request.seed + row index``. Ignored when greedy."""
    tag: str = ""
    """Caller's label for the row, returned unchanged in the reply."""


@dataclass(frozen=True)
class SteerRequest:
    """Batched generation in which every row carries its own steering configuration."""

    rows: tuple[SteerRow, ...]
    max_new_tokens: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    stop_at_eos: bool = True
    steer_prompt: bool = True
    """Add the steering at prompt positions too (the usual practice); False steers generated tokens only."""

    def __post_init__(self) -> None:
        if not self.rows:
            raise ValueError("rows: a SteerRequest needs at least one row")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: {self.max_new_tokens} must be >= 1")
        if self.do_sample and self.temperature <= 0:
            raise ValueError(f"temperature: {self.temperature} must be > 0 when sampling (or set do_sample=False)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p: {self.top_p} must be in (0, 1]")


@dataclass(frozen=True)
class SteerReply:
    """Generated responses, one per request row, in request order."""

    texts: tuple[str, ...]
    token_ids: tuple[tuple[int, ...], ...]
    """Response token ids (prompt excluded, EOS included when the row stopped on it)."""
    prompt_token_counts: tuple[int, ...]
    response_token_counts: tuple[int, ...]
    stopped_at_eos: tuple[bool, ...]
    tags: tuple[str, ...]
    seconds: float
    """Wall time of the call on the actor, in seconds."""


@dataclass(frozen=True)
class CaptureRequest:
    """Capture activations for prompts, optionally generating or replaying a response after each prompt.

    Positions use a small language over three segments: ``prompt``, ``response`` and ``all``, each indexed like a
    Python sequence: ``prompt[-1]``, ``prompt[:]``, ``response[:5]``, ``response[-3:]``, ``all[:]``.
    """

    prompts: tuple[PromptInput, ...]
    layers: tuple[int, ...] | None = None
    """Layers to capture (0-based decoder layer index); None captures every layer."""
    components: tuple[str, ...] = ("residual",)
    positions: tuple[str, ...] = ("prompt[-1]",)
    responses: tuple[str | tuple[int, ...], ...] | None = None
    """Responses to replay after each prompt, as text or as token ids (exact)."""
    generate: bool = False
    """Generate a response for each prompt first (then capture over prompt + response)."""
    max_new_tokens: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    seed: int = 0
    per_token: bool = False
    """Return every token's activation instead of the mean over the position's tokens."""
    batch_size: int = 16

    def __post_init__(self) -> None:
        if not self.prompts:
            raise ValueError("prompts: a CaptureRequest needs at least one prompt")
        if self.responses is not None and len(self.responses) != len(self.prompts):
            raise ValueError(
                f"responses: {len(self.responses)} responses for {len(self.prompts)} prompts; give one per prompt"
            )
        if self.responses is not None and self.generate:
            raise ValueError("generate: cannot both generate and replay responses; drop one of them")
        for component in self.components:
            if component not in COMPONENTS:
                raise ValueError(f"components: unknown component {component!r}; use one of {', '.join(COMPONENTS)}")


ActivationKey = tuple[int, str, str]
"""``(layer, component, position)``."""


@dataclass(frozen=True)
class CaptureReply:
    """Activations keyed by ``(layer, component, position)``.

    Without ``per_token`` each value is a float32 array ``[n_prompts, dim]`` (mean over the position's tokens; a
    row is NaN when the position selects no token, e.g. ``response[:5]`` of an empty response). With ``per_token``
    each value is a tuple of ``[n_tokens_i, dim]`` arrays, one per prompt.
    """

    activations: dict[ActivationKey, np.ndarray | tuple[np.ndarray, ...]]
    """Values as described above."""
    prompt_token_ids: tuple[tuple[int, ...], ...]
    response_token_ids: tuple[tuple[int, ...], ...]
    responses: tuple[str, ...]
    """Response texts (special tokens other than EOS kept, so that replaying a text gives the same tokens)."""
    seconds: float = 0.0

    def get(self, layer: int, component: str, position: str) -> np.ndarray | tuple[np.ndarray, ...]:
        """The activations at one (layer, component, position), with a clear error when it was not captured."""
        key = (layer, component, position)
        if key not in self.activations:
            captured = sorted({(k[1], k[2]) for k in self.activations})
            layers = sorted({k[0] for k in self.activations})
            raise KeyError(f"{key} was not captured; captured layers {layers} and (component, position) {captured}")
        return self.activations[key]


@dataclass(frozen=True)
class ActivationNorms:
    """Mean L2 norm of one component's output per layer: the denominator of the perturbation ratio."""

    component: str
    position: str
    norms: dict[int, float]
    n_tokens: int
    """Number of tokens averaged per layer (special tokens such as BOS are excluded)."""
    n_prompts: int


@dataclass(frozen=True)
class ProjectRequest:
    """Generate (optionally steered) and record, at every step, the hidden state's projection onto vectors."""

    steer: SteerRequest
    vector_ids: tuple[str, ...]
    layers: tuple[int, ...]
    component: str = "residual"


@dataclass(frozen=True)
class ProjectReply:
    """Per-token projections ``h . v / |v|`` recorded during generation.

    ``projections[row]`` has shape ``[n_response_tokens, n_vectors, n_layers]``; entry ``j`` is measured at the
    position whose forward pass produced response token ``j``.
    """

    generation: SteerReply
    projections: tuple[np.ndarray, ...]
    vector_ids: tuple[str, ...]
    layers: tuple[int, ...]


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is and where it lives."""

    name_or_path: str
    architecture: str
    model_type: str
    num_layers: int
    hidden_size: int
    kv_dim: int
    dtype: str
    devices: tuple[str, ...]
    parameter_bytes: int
    has_chat_template: bool
    vocab_size: int
    extra: dict[str, str] = field(default_factory=dict)
