"""Where the decoder layers and their attention/MLP modules live, resolved once per architecture."""

from __future__ import annotations

import operator
from dataclasses import dataclass

from torch import nn

from .messages import COMPONENTS


@dataclass(frozen=True)
class LayerLayout:
    """Dotted module paths of one architecture's decoder stack.

    ``layers`` is relative to the model; the others are relative to one decoder layer.

    Example:
        >>> LayerLayout(layers="model.layers", attn="self_attn", mlp="mlp").component_path("v_proj")
        'self_attn.v_proj'
    """

    layers: str
    attn: str = "self_attn"
    mlp: str = "mlp"
    k_proj: str = "self_attn.k_proj"
    v_proj: str = "self_attn.v_proj"

    def component_path(self, component: str) -> str:
        """Path of the module whose output is ``component``, relative to a decoder layer ('' = the layer)."""
        paths = {"residual": "", "attn_out": self.attn, "mlp_out": self.mlp, "k_proj": self.k_proj,
                 "v_proj": self.v_proj}
        if component not in paths:
            raise ValueError(f"component: unknown component {component!r}; use one of {', '.join(COMPONENTS)}")
        return paths[component]


_LLAMA_LIKE = LayerLayout(layers="model.layers")

KNOWN_LAYOUTS: dict[str, LayerLayout] = {
    model_type: _LLAMA_LIKE
    for model_type in (
        "llama", "qwen2", "qwen3", "mistral", "mixtral", "gemma", "gemma2", "gemma3_text", "olmo", "olmo2",
        "olmoe", "phi3", "granite", "cohere", "starcoder2", "qwen2_moe", "smollm3", "ministral",
    )
}
"""Architectures (by ``config.model_type``) whose layers are ``model.layers[i]`` with ``self_attn`` and ``mlp``."""


class UnknownArchitectureError(ValueError):
    """The model's decoder layers cannot be found; the message names what to configure."""


class LayerOutOfRangeError(IndexError):
    """A requested layer index is not a layer of the model."""


def _get_submodule(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path) if path else root


def resolve_layout(model: nn.Module, override: LayerLayout | None = None) -> LayerLayout:
    """Return the layout of ``model``: the override, a known architecture's, or a clear error."""
    model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    layout = override or KNOWN_LAYOUTS.get(model_type)
    architecture = type(model).__name__
    if layout is None:
        raise UnknownArchitectureError(
            f"{architecture} (model_type {model_type!r}) has no known layer layout; pass "
            f"layer_layout=LayerLayout(layers='<path to the nn.ModuleList of decoder layers>', attn=..., mlp=...) "
            f"in the model spec (known model types: {', '.join(sorted(KNOWN_LAYOUTS))})"
        )
    try:
        layers = _get_submodule(model, layout.layers)
    except AttributeError as error:
        raise UnknownArchitectureError(
            f"{architecture}: layer path {layout.layers!r} does not exist ({error}); set layer_layout.layers"
        ) from error
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        raise UnknownArchitectureError(
            f"{architecture}: {layout.layers!r} is a {type(layers).__name__}, not a non-empty nn.ModuleList of "
            "decoder layers; set layer_layout.layers"
        )
    for component in COMPONENTS:
        path = layout.component_path(component)
        try:
            _get_submodule(layers[0], path)
        except AttributeError as error:
            raise UnknownArchitectureError(
                f"{architecture}: decoder layers have no module {path!r} for component {component!r}; set "
                f"layer_layout for this architecture"
            ) from error
    return layout


def num_layers(model: nn.Module, layout: LayerLayout) -> int:
    """Number of decoder layers."""
    return len(_get_submodule(model, layout.layers))


def check_layer(model: nn.Module, layout: LayerLayout, layer: int) -> int:
    """Return ``layer`` as an int if it is a valid 0-based index (numpy integers accepted), else raise.

    Negative indices are refused: every table and reply names layers 0-based, and ``-1`` there would not match.
    """
    count = num_layers(model, layout)
    if isinstance(layer, bool) or not hasattr(layer, "__index__"):
        raise LayerOutOfRangeError(f"layer: {layer!r} is not an integer layer index")
    layer = operator.index(layer)
    if not 0 <= layer < count:
        hint = "; negative indices are not accepted, write the 0-based index" if layer < 0 else ""
        raise LayerOutOfRangeError(
            f"layer: {layer} is out of range for {type(model).__name__} ({count} layers, valid 0..{count - 1}){hint}"
        )
    return layer


def component_module(model: nn.Module, layout: LayerLayout, layer: int, component: str) -> nn.Module:
    """The module whose output is ``component`` at decoder layer ``layer``."""
    layer = check_layer(model, layout, layer)
    decoder_layer = _get_submodule(model, layout.layers)[layer]
    return _get_submodule(decoder_layer, layout.component_path(component))
