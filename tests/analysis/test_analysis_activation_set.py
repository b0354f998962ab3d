"""ActivationSet: the long Arrow form round-trips, float16 storage, and bad tables are named."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from steersweep.analysis import ActivationSet


def _set(n=5, layers=(2, 4, 6), dim=3):
    rng = np.random.default_rng(0)
    activations = rng.normal(size=(n, len(layers), dim)).astype(np.float32)
    activations[1] = np.nan  # a position that selected no token
    return ActivationSet(
        activations=activations, layers=layers, sample_index=np.arange(n), scenario_id=np.array([f"s{i}" for i in
        range(n)]), polarity=np.array(["positive", "negative"] * 2 + ["positive"]), rollout=np.zeros(n, int),
        split=np.array(["train"] * 4 + ["test"]), topic=np.array(["a", None, "b", "a", None], dtype=object),
        activation_norms=np.array([1.5, 2.5, 3.5]), metadata={"component": "residual", "position": "prompt[-1]"},
    )


def test_round_trip_through_parquet_is_exact(tmp_path):
    original = _set()
    pq.write_table(original.to_table(), tmp_path / "a.parquet")
    loaded = ActivationSet.read(tmp_path / "a.parquet")
    np.testing.assert_array_equal(loaded.activations, original.activations)
    assert loaded.layers == (2, 4, 6)
    assert loaded.topic.tolist() == ["a", None, "b", "a", None]
    assert loaded.polarity.tolist() == original.polarity.tolist() and loaded.split.tolist() == original.split.tolist()
    np.testing.assert_array_equal(loaded.activation_norms, original.activation_norms)
    assert loaded.metadata["position"] == "prompt[-1]" and loaded.metadata["dtype"] == "float32"
    assert loaded.finite.tolist() == [True, False, True, True, True]


def test_float16_storage_is_half_precision(tmp_path):
    original = _set()
    table = original.to_table("float16")
    assert str(table.schema.field("activation").type.value_type) == "halffloat"
    loaded = ActivationSet.from_table(table)
    finite = original.finite
    np.testing.assert_allclose(loaded.activations[finite], original.activations[finite], rtol=1e-3, atol=1e-3)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="polarity: unknown values"):
        s = _set()
        ActivationSet(s.activations, s.layers, s.sample_index, s.scenario_id, np.array(["up"] * 5), s.rollout,
                      s.split, s.topic, s.activation_norms)
    with pytest.raises(ValueError, match="not an activation table"):
        import pyarrow as pa

        ActivationSet.from_table(pa.table({"x": [1]}), source="x.parquet")
