"""Weight-space diff of two checkpoints of one architecture: per layer x component ||dW||_F and ||dW||_F / ||W||_F.

Streamed tensor by tensor and row block by row block (:class:`CheckpointReader`), so two 8B checkpoints are compared
in a few hundred MiB; :func:`weight_diff_ray` spreads the tensors over Ray tasks. Besides the norms it keeps, for
the residual-facing components (``o_proj``, ``down_proj``), the mean column of dW: the direction that layer's change
writes into the residual stream (the research's Delta_residual, model-diff plan Phase 3), used by the logit lens and
:func:`trait_alignment`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch

from .checkpoint import DEFAULT_BLOCK_BYTES, CheckpointError, CheckpointReader

COMPONENTS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
RESIDUAL_COMPONENTS: tuple[str, ...] = ("o_proj", "down_proj")
_LAYER_TENSOR = re.compile(r"(?:^|\.)layers\.(\d+)\.(?:self_attn|mlp)\.(\w+_proj)\.weight$")


def parse_tensor_name(name: str) -> tuple[int, str] | None:
    """``model.layers.3.self_attn.o_proj.weight`` -> ``(3, "o_proj")``; None for any other tensor."""
    match = _LAYER_TENSOR.search(name)
    return (int(match.group(1)), match.group(2)) if match else None


@dataclass(frozen=True)
class WeightDiff:
    """Rows per (layer, component) and the residual-facing diff directions ``{(layer, component): [hidden]}``."""

    table: pa.Table
    directions: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)

    def changed(self) -> list[tuple[int, str]]:
        """The (layer, component) pairs whose weights differ at all."""
        return [(r["layer"], r["component"]) for r in self.table.to_pylist() if r["changed"]]

    def residual_directions(self, components: Sequence[str] = RESIDUAL_COMPONENTS) -> dict[int, np.ndarray]:
        """Per layer, the mean of the components' mean-column diffs (the research's Delta_residual[layer])."""
        layers = sorted({layer for layer, component in self.directions if component in components})
        return {layer: np.mean([self.directions[(layer, c)] for c in components if (layer, c) in self.directions],
                               axis=0) for layer in layers}


def _check_compatible(a: CheckpointReader, b: CheckpointReader) -> None:
    arch_a, arch_b = a.config.get("architectures"), b.config.get("architectures")
    if arch_a and arch_b and arch_a != arch_b:
        raise CheckpointError(f"architectures differ: {a.folder} is {arch_a}, {b.folder} is {arch_b}; a weight diff "
                              "compares two checkpoints of one architecture")
    only_a, only_b = sorted(set(a.entries) - set(b.entries)), sorted(set(b.entries) - set(a.entries))
    if only_a or only_b:
        name, here, there = (only_a[0], a.folder, b.folder) if only_a else (only_b[0], b.folder, a.folder)
        extra = len(only_a) + len(only_b) - 1
        raise CheckpointError(f"tensor {name!r} is in {here} but not in {there} ({extra} more differ); the "
                              "checkpoints do not share one architecture")
    for name in a.names():
        if a.entries[name].shape != b.entries[name].shape:
            raise CheckpointError(f"tensor {name!r} has shape {list(a.entries[name].shape)} in {a.folder} and "
                                  f"{list(b.entries[name].shape)} in {b.folder}; the checkpoints do not share one "
                                  "architecture (e.g. another hidden size or vocabulary)")


def select_tensors(reader: CheckpointReader, components: Sequence[str] = COMPONENTS,
                   layers: Sequence[int] | None = None) -> list[str]:
    """Names of the per-layer weight tensors of ``components`` (at ``layers``; all when None), in layer order."""
    unknown = sorted(set(components) - set(COMPONENTS))
    if unknown:
        raise ValueError(f"components: {unknown} unknown; use some of {', '.join(COMPONENTS)}")
    wanted = None if layers is None else {int(layer) for layer in layers}
    chosen = []
    for name in reader.names():
        parsed = parse_tensor_name(name)
        if parsed and parsed[1] in components and (wanted is None or parsed[0] in wanted):
            chosen.append((parsed, name))
    if not chosen:
        raise CheckpointError(f"checkpoint {reader.folder} has no per-layer tensors of {list(components)}"
                              + (f" at layers {sorted(wanted)}" if wanted else "")
                              + " (expected names like model.layers.0.self_attn.o_proj.weight)")
    return [name for _, name in sorted(chosen, key=lambda item: (item[0][0], COMPONENTS.index(item[0][1])))]


def _tensor_diff(a: CheckpointReader, b: CheckpointReader, name: str, block_bytes: int, keep_direction: bool):
    diff_sq = base_sq = 0.0
    max_abs = 0.0
    columns = []
    for block_a, block_b in zip(a.row_blocks(name, block_bytes), b.row_blocks(name, block_bytes), strict=True):
        base64 = block_a.to(torch.float64).reshape(-1)
        base_sq += float(torch.dot(base64, base64))
        delta = block_b.to(torch.float64).reshape(block_b.shape) - base64.reshape(block_a.shape)
        del base64
        flat = delta.reshape(-1)
        diff_sq += float(torch.dot(flat, flat))
        if flat.numel():
            max_abs = max(max_abs, float(flat.abs().max()))
        if keep_direction:
            columns.append(delta.reshape(delta.shape[0], -1).mean(dim=1))
        del delta, flat
    direction = torch.cat(columns).numpy() if keep_direction else None
    return math.sqrt(diff_sq), math.sqrt(base_sq), max_abs, direction


def diff_tensors(
    base: str | os.PathLike[str], other: str | os.PathLike[str], names: Sequence[str],
    block_bytes: int = DEFAULT_BLOCK_BYTES, check: bool = True,
) -> WeightDiff:
    """The diff rows of the named tensors only (the unit of work of one Ray task)."""
    a, b = CheckpointReader(base), CheckpointReader(other)
    if check:
        _check_compatible(a, b)
    rows, directions = [], {}
    for name in names:
        parsed = parse_tensor_name(name)
        layer, component = parsed if parsed else (-1, name)
        keep = component in RESIDUAL_COMPONENTS
        diff_norm, base_norm, max_abs, direction = _tensor_diff(a, b, name, block_bytes, keep)
        shape = a.entry(name).shape
        rows.append(dict(layer=layer, component=component, tensor=name, shape=list(shape), diff_norm=diff_norm,
                         base_norm=base_norm, relative=diff_norm / base_norm if base_norm else math.nan,
                         max_abs_diff=max_abs, changed=diff_norm > 0.0))
        if direction is not None:
            directions[(layer, component)] = direction
    return WeightDiff(_as_table(rows), directions)


_SCHEMA = pa.schema([("layer", pa.int64()), ("component", pa.string()), ("tensor", pa.string()),
                     ("shape", pa.list_(pa.int64())), ("diff_norm", pa.float64()), ("base_norm", pa.float64()),
                     ("relative", pa.float64()), ("max_abs_diff", pa.float64()), ("changed", pa.bool_())])


def _as_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=_SCHEMA)


def weight_diff(
    base: str | os.PathLike[str], other: str | os.PathLike[str], components: Sequence[str] = COMPONENTS,
    layers: Sequence[int] | None = None, block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> WeightDiff:
    """||other - base||_F and its ratio to ||base||_F per (layer, component), streamed from safetensors.

    Raises:
        CheckpointError: a missing folder, or architectures / tensor names / shapes that differ (names the tensor).

    Example:
        >>> diff = weight_diff("/models/llama-base", "/models/llama-sft")  # doctest: +SKIP
        >>> diff.table.column_names[:5]  # doctest: +SKIP
        ['layer', 'component', 'tensor', 'shape', 'diff_norm']
    """
    a, b = CheckpointReader(base), CheckpointReader(other)
    _check_compatible(a, b)
    return diff_tensors(base, other, select_tensors(a, components, layers), block_bytes, check=False)


def weight_diff_ray(
    base: str | os.PathLike[str], other: str | os.PathLike[str], components: Sequence[str] = COMPONENTS,
    layers: Sequence[int] | None = None, n_tasks: int = 4, block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> WeightDiff:
    """:func:`weight_diff` with the tensors split over ``n_tasks`` Ray tasks (each streams its own share)."""
    import ray

    a, b = CheckpointReader(base), CheckpointReader(other)
    _check_compatible(a, b)
    names = select_tensors(a, components, layers)
    groups = [names[i::n_tasks] for i in range(min(n_tasks, len(names)))]
    remote = ray.remote(diff_tensors)
    parts = ray.get([remote.remote(str(base), str(other), group, block_bytes, False) for group in groups])
    rows = sorted((row for part in parts for row in part.table.to_pylist()),
                  key=lambda r: (r["layer"], COMPONENTS.index(r["component"]) if r["component"] in COMPONENTS else 99))
    directions = {key: value for part in parts for key, value in part.directions.items()}
    return WeightDiff(_as_table(rows), directions)


def trait_alignment(directions: Mapping[int, np.ndarray], vectors: Mapping[str, object]) -> pa.Table:
    """Cosine of each layer's residual diff direction with each trait vector at that layer.

    ``vectors`` maps a name to a :class:`TraitVector` (or to ``{layer: [hidden]}``). Columns: vector, layer,
    cosine, diff_norm (of the direction). Layers a vector lacks are skipped.
    """
    rows = []
    for name, vector in vectors.items():
        per_layer = {layer: vector.at(layer) for layer in vector.layers} if hasattr(vector, "layers") else vector
        for layer, direction in sorted(directions.items()):
            if layer not in per_layer:
                continue
            v = np.asarray(per_layer[layer], dtype=np.float64)
            d = np.asarray(direction, dtype=np.float64)
            if v.shape != d.shape:
                raise ValueError(f"vector {name!r} layer {layer}: dim {v.shape[0]} but the diff direction has "
                                 f"{d.shape[0]}; use vectors extracted on this architecture")
            denominator = np.linalg.norm(v) * np.linalg.norm(d)
            rows.append(dict(vector=name, layer=int(layer), cosine=float(v @ d / denominator) if denominator
                             else math.nan, diff_norm=float(np.linalg.norm(d))))
    return pa.Table.from_pylist(rows, schema=pa.schema([("vector", pa.string()), ("layer", pa.int64()),
                                                        ("cosine", pa.float64()), ("diff_norm", pa.float64())]))
