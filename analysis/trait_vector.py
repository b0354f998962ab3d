"""TraitVector: one trait direction per layer, saved as safetensors with its provenance in the header."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT_VERSION = "1"
_RESERVED = ("layers", "format_version")


@dataclass(frozen=True, eq=False)
class TraitVector:
    """Vectors for several layers of one model, plus string metadata (model, trait, method, component, position).

    Example:
        >>> v = TraitVector(np.ones((2, 4), np.float32), layers=(3, 4), metadata={"trait": "optimism"})
        >>> (v.normalized() * 2.0).norms()
        {3: 2.0, 4: 2.0}
        >>> v.save("/tmp/optimism.safetensors"); TraitVector.load("/tmp/optimism.safetensors").layers   # doctest: +SKIP
        (3, 4)
    """

    vectors: np.ndarray
    layers: tuple[int, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        vectors = np.asarray(self.vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"vectors: expected [n_layers, dim], got shape {vectors.shape}")
        layers = tuple(int(layer) for layer in self.layers)
        if len(layers) != vectors.shape[0]:
            raise ValueError(f"layers: {len(layers)} layer ids for {vectors.shape[0]} vectors; give one per row")
        if len(set(layers)) != len(layers):
            raise ValueError(f"layers: {list(layers)} has duplicates")
        for key, value in self.metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"metadata: {key!r}: safetensors headers hold str -> str; convert {value!r} to str")
            if key in _RESERVED:
                raise ValueError(f"metadata: key {key!r} is reserved; rename it")
        vectors = vectors.copy()
        vectors.flags.writeable = False
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "metadata", dict(self.metadata))

    # ----------------------------------------------------------------- access
    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def at(self, layer: int) -> np.ndarray:
        """The vector at model layer ``layer``."""
        try:
            return self.vectors[self.layers.index(layer)]
        except ValueError:
            raise KeyError(f"layer {layer} is not in this vector (layers {list(self.layers)})") from None

    def norms(self) -> dict[int, float]:
        return {layer: float(np.linalg.norm(v)) for layer, v in zip(self.layers, self.vectors, strict=True)}

    def as_dict(self) -> dict[int, np.ndarray]:
        """``{layer: vector}``, the form ``ModelWorker.load_vectors`` accepts."""
        return {layer: np.array(v) for layer, v in zip(self.layers, self.vectors, strict=True)}

    def select(self, layers: Sequence[int]) -> TraitVector:
        return TraitVector(np.stack([self.at(layer) for layer in layers]), tuple(layers), self.metadata)

    # ------------------------------------------------------------- arithmetic
    def normalized(self) -> TraitVector:
        """Unit norm at every layer (a zero vector stays zero)."""
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        return TraitVector(self.vectors / np.where(norms > 0, norms, 1.0), self.layers,
                           {**self.metadata, "normalized": "true"})

    def scaled(self, factor: float) -> TraitVector:
        return TraitVector(self.vectors * np.float32(factor), self.layers, self.metadata)

    def __mul__(self, factor: float) -> TraitVector:
        return self.scaled(factor)

    __rmul__ = __mul__

    def __neg__(self) -> TraitVector:
        return self.scaled(-1.0)

    def __add__(self, other: TraitVector) -> TraitVector:
        """Layer-wise sum over the layers both vectors have (e.g. a natural + an instruction vector)."""
        if not isinstance(other, TraitVector):
            return NotImplemented
        if other.dim != self.dim:
            raise ValueError(f"cannot add vectors of dim {self.dim} and {other.dim} (different models?)")
        common = [layer for layer in self.layers if layer in other.layers]
        if not common:
            raise ValueError(f"no common layers: {list(self.layers)} vs {list(other.layers)}")
        summed = np.stack([self.at(layer) + other.at(layer) for layer in common])
        metadata = {key: value for key, value in self.metadata.items() if other.metadata.get(key) == value}
        metadata["sum_of"] = json.dumps([dict(self.metadata), dict(other.metadata)], sort_keys=True)
        return TraitVector(summed, tuple(common), metadata)

    def __sub__(self, other: TraitVector) -> TraitVector:
        return self + (-other)

    def cosine(self, other: TraitVector) -> dict[int, float]:
        """Cosine similarity per common layer."""
        out = {}
        for layer in self.layers:
            if layer in other.layers:
                a, b = self.at(layer).astype(np.float64), other.at(layer).astype(np.float64)
                denom = np.linalg.norm(a) * np.linalg.norm(b)
                out[layer] = float(a @ b / denom) if denom > 0 else float("nan")
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TraitVector):
            return NotImplemented
        return (self.layers == other.layers and dict(self.metadata) == dict(other.metadata)
                and np.array_equal(self.vectors, other.vectors))

    __hash__ = None  # type: ignore[assignment]

    # --------------------------------------------------------------------- io
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``vectors`` [n_layers, dim] float32 and ``layers`` int64 tensors, metadata in the header (atomic)."""
        from safetensors.numpy import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {**self.metadata, "layers": json.dumps(list(self.layers)), "format_version": FORMAT_VERSION}
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({"vectors": np.ascontiguousarray(self.vectors), "layers": np.array(self.layers, dtype=np.int64)},
                  str(tmp), metadata=header)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TraitVector:
        """Read a file written by :meth:`save` (no pickle involved)."""
        from safetensors import safe_open

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such trait vector file")
        with safe_open(str(path), framework="numpy") as handle:
            header = dict(handle.metadata() or {})
            keys = set(handle.keys())
            if "vectors" not in keys or "layers" not in keys:
                raise ValueError(f"{path}: not a steersweep trait vector (has {sorted(keys)}; needs vectors, layers)")
            vectors = handle.get_tensor("vectors")
            layers = tuple(int(x) for x in handle.get_tensor("layers"))
        for key in _RESERVED:
            header.pop(key, None)
        return cls(vectors, layers, header)
