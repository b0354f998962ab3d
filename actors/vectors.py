"""The steering-vector table of one loaded model: load, check, and turn a batch's terms into per-row deltas."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from .layers import LayerOutOfRangeError
from .messages import SteeringTerm, SteerRow


class VectorError(ValueError):
    """A steering vector that is missing, malformed or not finite."""


DeltaKey = tuple[int, str]
"""``(layer, component)`` where a delta is added."""


class VectorTable:
    """Steering vectors by id, each a ``[num_layers, hidden]`` float32 table on the model's device.

    ``check_layer`` turns a requested layer into a 0-based index or raises ``LayerOutOfRangeError``.

    Example:
        >>> table = VectorTable(num_layers=4, hidden_size=3, device=torch.device("cpu"), check_layer=lambda i: i)
        >>> table.load({"v": {1: np.ones(3, np.float32)}})
        ['v']
        >>> table.deltas([SteerRow("hi", (SteeringTerm("v", 1, 2.0),))])[(1, "residual")].tolist()
        [[2.0, 2.0, 2.0]]
    """

    def __init__(self, num_layers: int, hidden_size: int, device: torch.device, check_layer: Callable[[int], int]):
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.device = device
        self._check_layer = check_layer
        self._tables: dict[str, torch.Tensor] = {}
        self._layers: dict[str, frozenset[int]] = {}

    def __contains__(self, vector_id: object) -> bool:
        return vector_id in self._tables

    def ids(self) -> list[str]:
        return sorted(self._tables)

    def load(self, vectors: Mapping[str, np.ndarray | Mapping[int, np.ndarray]]) -> list[str]:
        """Keep vectors; a value is ``[num_layers, hidden]`` (every layer) or ``{layer: [hidden]}``. Reloading an id
        replaces it. Every vector is checked before any is stored, so a bad one leaves the table unchanged."""
        if not isinstance(vectors, Mapping):
            raise VectorError(f"vectors: expected a mapping {{vector_id: array}}, got {type(vectors).__name__}")
        staged: dict[str, tuple[torch.Tensor, frozenset[int]]] = {}
        for vector_id, value in vectors.items():
            if not isinstance(vector_id, str):
                raise VectorError(f"vectors: ids are strings, got {vector_id!r}")
            staged[vector_id] = self._table(vector_id, value)
        for vector_id, (table, layers) in staged.items():
            self._tables[vector_id] = table.to(self.device)
            self._layers[vector_id] = layers
        return sorted(vectors)

    def _table(self, vector_id: str, value: np.ndarray | Mapping[int, np.ndarray]) -> tuple[torch.Tensor, frozenset]:
        table = torch.zeros(self.num_layers, self.hidden_size, dtype=torch.float32)
        if isinstance(value, Mapping):
            layers = set()
            for layer, vector in value.items():
                try:
                    index = self._check_layer(layer)
                except LayerOutOfRangeError as error:
                    raise VectorError(f"vector {vector_id!r}: {error}") from error
                table[index] = self.as_vector(vector_id, index, vector)
                layers.add(index)
            return table, frozenset(layers)
        array = np.asarray(value)
        if array.shape != (self.num_layers, self.hidden_size):
            raise VectorError(
                f"vector {vector_id!r}: shape {array.shape} does not match this model's "
                f"[num_layers, hidden] = [{self.num_layers}, {self.hidden_size}]; pass one row per layer "
                "or a {layer: vector} mapping"
            )
        for layer in range(self.num_layers):
            table[layer] = self.as_vector(vector_id, layer, array[layer])
        return table, frozenset(range(self.num_layers))

    def as_vector(self, vector_id: str, layer: int, vector: np.ndarray) -> torch.Tensor:
        """One layer's vector as a float32 tensor, after checking its shape and that it is finite."""
        array = np.asarray(vector, dtype=np.float32)
        if array.shape != (self.hidden_size,):
            raise VectorError(
                f"vector {vector_id!r} layer {layer}: shape {array.shape}, expected ({self.hidden_size},) "
                f"(the model's hidden size)"
            )
        if not np.all(np.isfinite(array)):
            raise VectorError(
                f"vector {vector_id!r} layer {layer} holds NaN or inf values; re-extract it (e.g. a class with no "
                "samples gives NaN means) or drop that layer"
            )
        return torch.from_numpy(array if array.flags.writeable else array.copy())  # Arrow-backed arrays are read-only

    def term_layer(self, term: SteeringTerm) -> int:
        """The term's layer as a 0-based index, after checking its vector is loaded at that layer."""
        if term.vector_id not in self._tables:
            loaded = ", ".join(sorted(self._tables)) or "none"
            raise VectorError(
                f"steering term names vector {term.vector_id!r}, which is not loaded (loaded: {loaded}); "
                "call load_vectors first"
            )
        layer = self._check_layer(term.layer)
        if layer not in self._layers[term.vector_id]:
            raise VectorError(
                f"vector {term.vector_id!r} has no layer {layer} (it has "
                f"{sorted(self._layers[term.vector_id])}); load that layer or steer another"
            )
        return layer

    def check_rows(self, rows: Sequence[SteerRow]) -> None:
        """Fail on a bad term of any row before the first batch runs."""
        for row in rows:
            for term in row.terms:
                self.term_layer(term)

    def vector(self, vector_id: str, layer: int) -> torch.Tensor:
        return self._tables[vector_id][layer]

    def deltas(self, rows: Sequence[SteerRow]) -> dict[DeltaKey, torch.Tensor]:
        """``{(layer, component): [len(rows), hidden]}`` float32; terms of one row on one point add up."""
        deltas: dict[DeltaKey, torch.Tensor] = {}
        for row_index, row in enumerate(rows):
            for term in row.terms:
                layer = self.term_layer(term)
                key = (layer, term.component)
                if key not in deltas:
                    deltas[key] = torch.zeros(len(rows), self.hidden_size, device=self.device)
                deltas[key][row_index] += term.coefficient * self._tables[term.vector_id][layer]
        return deltas

    def units(self, vector_ids: Sequence[str], layers: Sequence[int]) -> torch.Tensor:
        """Unit vectors ``[len(vector_ids), len(layers), hidden]`` for projections."""
        if isinstance(vector_ids, str):
            raise VectorError(f"vector_ids: got the string {vector_ids!r}; pass a tuple of ids, e.g. ({vector_ids!r},)")
        units = []
        for vector_id in vector_ids:
            if vector_id not in self._tables:
                raise VectorError(f"vector {vector_id!r} is not loaded; call load_vectors first")
            table = self._tables[vector_id][list(layers)]
            units.append(table / table.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        return torch.stack(units)
