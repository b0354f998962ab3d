"""Forward hooks as context managers: per-row steering and activation capture. Every hook removes itself."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from .layers import LayerLayout, component_module


def _output_tensor(output: Any) -> torch.Tensor:
    """The hidden-state tensor of a module output (attention modules return a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def _replace_output(output: Any, tensor: torch.Tensor) -> Any:
    return (tensor, *output[1:]) if isinstance(output, tuple) else tensor


@contextlib.contextmanager
def hooks_removed_on_exit(handles: list[torch.utils.hooks.RemovableHandle]) -> Iterator[None]:
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        handles.clear()


class SteeringDeltas:
    """What to add at each (layer, component): a ``[batch, hidden]`` tensor, one row per batch row.

    ``active_from`` lets a caller switch steering off on prompt positions: positions ``< active_from[row]`` of the
    current forward pass are left alone. The generation loop advances ``offset`` as tokens are fed.
    """

    def __init__(self, deltas: dict[tuple[int, str], torch.Tensor], active_from: torch.Tensor | None = None):
        self.deltas = deltas
        self.active_from = active_from
        self.offset = 0
        """Absolute position (in the padded sequence) of the first token of the next forward pass."""

    def mask(self, seq_len: int, device: torch.device) -> torch.Tensor | None:
        if self.active_from is None:
            return None
        positions = torch.arange(self.offset, self.offset + seq_len, device=device)
        return (positions[None, :] >= self.active_from.to(device)[:, None]).unsqueeze(-1)


@contextlib.contextmanager
def steering(model: nn.Module, layout: LayerLayout, plan: SteeringDeltas) -> Iterator[SteeringDeltas]:
    """Add ``plan.deltas[(layer, component)][row]`` to that module's output for every token of every row.

    Example:
        >>> with steering(model, layout, SteeringDeltas({(4, "residual"): deltas})):  # doctest: +SKIP
        ...     logits = model(input_ids).logits
    """
    handles: list[torch.utils.hooks.RemovableHandle] = []

    def make_hook(delta: torch.Tensor) -> Callable[..., Any]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
            hidden = _output_tensor(output)
            add = delta.to(device=hidden.device, dtype=hidden.dtype)[:, None, :]
            mask = plan.mask(hidden.shape[1], hidden.device)
            if mask is not None:
                add = add * mask.to(hidden.dtype)
            return _replace_output(output, hidden + add)

        return hook

    with hooks_removed_on_exit(handles):
        for (layer, component), delta in plan.deltas.items():
            module = component_module(model, layout, layer, component)
            handles.append(module.register_forward_hook(make_hook(delta)))
        yield plan


@contextlib.contextmanager
def capturing(
    model: nn.Module, layout: LayerLayout, points: list[tuple[int, str]]
) -> Iterator[dict[tuple[int, str], list[torch.Tensor]]]:
    """Record the output of each (layer, component) on every forward pass, in call order (detached)."""
    records: dict[tuple[int, str], list[torch.Tensor]] = {point: [] for point in points}
    handles: list[torch.utils.hooks.RemovableHandle] = []

    def make_hook(point: tuple[int, str]) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            records[point].append(_output_tensor(output).detach())

        return hook

    with hooks_removed_on_exit(handles):
        for point in points:
            module = component_module(model, layout, point[0], point[1])
            handles.append(module.register_forward_hook(make_hook(point)))
        yield records
