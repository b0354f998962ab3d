"""ActivationSet: the captured activations of one (model, trait, component, position) and their Arrow form.

On disk (``data/activations/model=M/trait=T/COMPONENT@POSITION.parquet``) a set is one row per sample x layer:

==================  ===========================================================
``sample_index``    int32, the rollout's index in ``data/rollouts`` (join key)
``scenario_id``     string
``polarity``        string, ``positive`` or ``negative``
``rollout``         int32, rollout number within the scenario
``split``           string, ``train`` or ``test``
``topic``           string or null (tag for generalization matrices)
``layer``           int32
``activation``      fixed_size_list<float32 or float16>[dim]
``activation_norm`` float64, the layer's mean token norm of the component (perturbation-ratio denominator)
==================  ===========================================================

The schema metadata holds ``model``, ``trait``, ``component``, ``position`` and anything else the writer adds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

_DTYPES = {"float32": (np.float32, pa.float32()), "float16": (np.float16, pa.float16())}


@dataclass(frozen=True, eq=False)
class ActivationSet:
    """Activations ``[n_samples, n_layers, dim]`` with one label per sample and one norm per layer."""

    activations: np.ndarray
    layers: tuple[int, ...]
    sample_index: np.ndarray
    scenario_id: np.ndarray
    polarity: np.ndarray
    rollout: np.ndarray
    split: np.ndarray
    topic: np.ndarray
    activation_norms: np.ndarray
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.activations.shape[0]
        if self.activations.ndim != 3 or self.activations.shape[1] != len(self.layers):
            raise ValueError(f"activations: expected [n, {len(self.layers)} layers, dim], got {self.activations.shape}")
        for name in ("sample_index", "scenario_id", "polarity", "rollout", "split", "topic"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: {len(getattr(self, name))} entries for {n} samples")
        if len(self.activation_norms) != len(self.layers):
            raise ValueError(f"activation_norms: {len(self.activation_norms)} entries for {len(self.layers)} layers")
        bad = sorted(set(self.polarity.tolist()) - {"positive", "negative"})
        if bad:
            raise ValueError(f"polarity: unknown values {bad}; use 'positive' or 'negative'")

    @property
    def is_positive(self) -> np.ndarray:
        return self.polarity == "positive"

    @property
    def finite(self) -> np.ndarray:
        """Samples whose activation is finite at every layer (a position that selected no token gives NaN)."""
        return np.isfinite(self.activations).all(axis=(1, 2))

    @property
    def dim(self) -> int:
        return int(self.activations.shape[2])

    def select(self, mask: np.ndarray) -> ActivationSet:
        return ActivationSet(
            self.activations[mask], self.layers, self.sample_index[mask], self.scenario_id[mask], self.polarity[mask],
            self.rollout[mask], self.split[mask], self.topic[mask], self.activation_norms, dict(self.metadata),
        )

    def select_layers(self, layers: Sequence[int]) -> ActivationSet:
        """The same samples at ``layers`` only (a KeyError names layers the set does not hold)."""
        missing = [layer for layer in layers if layer not in self.layers]
        if missing:
            raise KeyError(f"layers {missing} were not captured here (captured {list(self.layers)})")
        index = [self.layers.index(layer) for layer in layers]
        return ActivationSet(
            self.activations[:, index], tuple(layers), self.sample_index, self.scenario_id, self.polarity,
            self.rollout, self.split, self.topic, self.activation_norms[index], dict(self.metadata),
        )

    # ---------------------------------------------------------------------------------------------------- arrow
    def to_table(self, dtype: str = "float32") -> pa.Table:
        """Long form: one row per sample x layer, layer-major (see the module docstring)."""
        if dtype not in _DTYPES:
            raise ValueError(f"dtype: {dtype!r}; store activations as one of {', '.join(_DTYPES)}")
        np_dtype, pa_dtype = _DTYPES[dtype]
        n, n_layers, dim = self.activations.shape
        by_layer = np.ascontiguousarray(self.activations.transpose(1, 0, 2)).astype(np_dtype)  # [L, n, d]
        values = pa.array(by_layer.reshape(-1), type=pa_dtype)
        columns = {
            "sample_index": pa.array(np.tile(self.sample_index, n_layers), type=pa.int32()),
            "scenario_id": pa.array(np.tile(self.scenario_id, n_layers).tolist(), type=pa.string()),
            "polarity": pa.array(np.tile(self.polarity, n_layers).tolist(), type=pa.string()),
            "rollout": pa.array(np.tile(self.rollout, n_layers), type=pa.int32()),
            "split": pa.array(np.tile(self.split, n_layers).tolist(), type=pa.string()),
            "topic": pa.array(np.tile(self.topic, n_layers).tolist(), type=pa.string()),
            "layer": pa.array(np.repeat(np.array(self.layers, dtype=np.int32), n), type=pa.int32()),
            "activation": pa.FixedSizeListArray.from_arrays(values, dim),
            "activation_norm": pa.array(np.repeat(self.activation_norms.astype(np.float64), n), type=pa.float64()),
        }
        table = pa.table(columns)
        metadata = {k.encode(): str(v).encode() for k, v in {**self.metadata, "dtype": dtype}.items()}
        return table.replace_schema_metadata(metadata)

    @classmethod
    def from_table(cls, table: pa.Table, source: str = "table") -> ActivationSet:
        """Inverse of :meth:`to_table` (activations come back as float32)."""
        required = ("sample_index", "scenario_id", "polarity", "rollout", "split", "topic", "layer", "activation",
                    "activation_norm")
        missing = [c for c in required if c not in table.column_names]
        if missing:
            raise ValueError(f"{source}: not an activation table, columns {missing} are missing")
        layer_col = table.column("layer").to_numpy()
        layers = tuple(int(x) for x in sorted(set(layer_col.tolist())))
        column = table.column("activation").combine_chunks()
        dim = column.type.list_size
        flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dim)
        sample_col = table.column("sample_index").to_numpy()
        first = layer_col == layers[0]
        order = np.argsort(sample_col[first], kind="stable")
        samples = sample_col[first][order]
        stacked, norms = [], []
        for layer in layers:
            rows = np.flatnonzero(layer_col == layer)
            rows = rows[np.argsort(sample_col[rows], kind="stable")]
            if not np.array_equal(sample_col[rows], samples):
                raise ValueError(f"{source}: layer {layer} does not hold the same samples as layer {layers[0]}")
            stacked.append(flat[rows])
            norms.append(float(table.column("activation_norm").to_numpy()[rows[0]]) if len(rows) else float("nan"))
        base = np.flatnonzero(first)[order]

        def col(name: str) -> np.ndarray:
            values = table.column(name).to_pylist()
            return np.array([values[i] for i in base], dtype=object if name == "topic" else None)

        metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        return cls(
            activations=np.stack(stacked, axis=1) if stacked else np.zeros((0, 0, dim), np.float32),
            layers=layers, sample_index=samples.astype(np.int64), scenario_id=col("scenario_id").astype(str),
            polarity=col("polarity").astype(str), rollout=col("rollout").astype(np.int64),
            split=col("split").astype(str), topic=col("topic"), activation_norms=np.array(norms),
            metadata=metadata,
        )

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ActivationSet:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no activation file (run the extraction first)")
        return cls.from_table(pq.read_table(path), source=str(path))


def stack_layers(per_layer: Mapping[int, np.ndarray], layers: Sequence[int]) -> np.ndarray:
    """``{layer: [n, dim]}`` -> ``[n, n_layers, dim]`` in the order of ``layers``."""
    return np.stack([np.asarray(per_layer[layer]) for layer in layers], axis=1)
