"""Frozen requests and replies that cross the ModelActor boundary (Ray pickles them; they carry no tensors)."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

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


def _integer(name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as a Python int (numpy integers too); bools, floats and strings are errors naming ``name``."""
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}: {value!r} is a bool; give an integer")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: {value!r} ({type(value).__name__}) is not an integer") from None
    if minimum is not None and number < minimum:
        if name.startswith("layer"):
            raise ValueError(f"{name}: {number} is negative; layers are 0-based indices (0 is the first decoder "
                             "layer, num_layers - 1 the last), negative indices are not accepted")
        raise ValueError(f"{name}: {number} must be >= {minimum}")
    return number


def _sequence(name: str, value: Any, item: type | tuple[type, ...] | None = None, example: str = "(x,)") -> tuple:
    """``value`` as a tuple: lists and other iterables are accepted; a bare string, or a single ``item`` where a
    sequence of them is expected, is an error that names ``name`` and shows how to wrap it."""
    if isinstance(value, str | bytes):
        raise TypeError(f"{name}: got the string {value!r} where a sequence is expected; wrap it: {name}=({value!r},)")
    if item is not None and isinstance(value, item):
        raise TypeError(f"{name}: got a single {type(value).__name__} where a sequence is expected; wrap it in a "
                        f"tuple: {name}={example}")
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise TypeError(f"{name}: expected a tuple or list, got {type(value).__name__}")
    return tuple(value)


def _prompt(name: str, value: Any) -> PromptInput:
    """A prompt is a string or a conversation; a list conversation becomes a tuple (messages are hashable)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        raise TypeError(f"{name}: got one message {dict(value)!r}; a conversation is a tuple of messages: "
                        f"{name}=({{'role': ..., 'content': ...}},)")
    if isinstance(value, Iterable):
        return tuple(value)
    raise TypeError(f"{name}: {value!r} is neither a string nor a conversation (a tuple of role/content messages)")


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalising a field of a frozen dataclass in __post_init__


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
        if not isinstance(self.vector_id, str):
            raise TypeError(f"vector_id: {self.vector_id!r} is not a string (the id given to load_vectors)")
        _set(self, "layer", _integer("layer", self.layer, minimum=0))
        try:
            _set(self, "coefficient", float(self.coefficient))
        except (TypeError, ValueError):
            raise TypeError(f"coefficient: {self.coefficient!r} is not a number") from None
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

    def __post_init__(self) -> None:
        _set(self, "prompt", _prompt("prompt", self.prompt))
        terms = _sequence("terms", self.terms, SteeringTerm, "(SteeringTerm(...),)")
        for i, term in enumerate(terms):
            if not isinstance(term, SteeringTerm):
                raise TypeError(f"terms[{i}]: {term!r} is not a SteeringTerm")
        _set(self, "terms", terms)
        if self.seed is not None:
            _set(self, "seed", _integer("seed", self.seed))


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
        rows = _sequence("rows", self.rows, SteerRow, "(SteerRow(...),)")
        for i, row in enumerate(rows):
            if not isinstance(row, SteerRow):
                raise TypeError(f"rows[{i}]: {row!r} is not a SteerRow; build rows as SteerRow(prompt, terms)")
        _set(self, "rows", rows)
        _set(self, "max_new_tokens", _integer("max_new_tokens", self.max_new_tokens))
        _set(self, "seed", _integer("seed", self.seed))
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
    raw_texts: tuple[str, ...] = ()
    """Responses decoded keeping special tokens (the final EOS of a row that stopped on it excluded); judges read
    these. Empty only in replies built by older code."""


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
        prompts = _sequence("prompts", self.prompts)
        _set(self, "prompts", tuple(_prompt(f"prompts[{i}]", p) for i, p in enumerate(prompts)))
        if self.layers is not None:
            layers = _sequence("layers", self.layers)
            _set(self, "layers", tuple(_integer(f"layers[{i}]", v, minimum=0) for i, v in enumerate(layers)))
        _set(self, "components", _sequence("components", self.components))
        _set(self, "positions", _sequence("positions", self.positions))
        if self.responses is not None:
            responses = _sequence("responses", self.responses)
            _set(self, "responses", tuple(
                r if isinstance(r, str) else tuple(_integer(f"responses[{i}] token", t) for t in r)
                for i, r in enumerate(responses)
            ))
        _set(self, "max_new_tokens", _integer("max_new_tokens", self.max_new_tokens))
        _set(self, "batch_size", _integer("batch_size", self.batch_size, minimum=1))
        _set(self, "seed", _integer("seed", self.seed))
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

    def __post_init__(self) -> None:
        if not isinstance(self.steer, SteerRequest):
            raise TypeError(f"steer: expected a SteerRequest, got {type(self.steer).__name__}")
        _set(self, "vector_ids", _sequence("vector_ids", self.vector_ids))
        layers = _sequence("layers", self.layers)
        _set(self, "layers", tuple(_integer(f"layers[{i}]", v, minimum=0) for i, v in enumerate(layers)))
        if not self.vector_ids or not self.layers:
            raise ValueError("vector_ids, layers: a ProjectRequest needs at least one vector id and one layer")


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
