"""TraitVector: safetensors round trip with metadata in the header, normalise, add, scale."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open

from steersweep.analysis import TraitVector


def _vector(seed=0, layers=(2, 3, 5), dim=6, **metadata):
    rng = np.random.default_rng(seed)
    return TraitVector(rng.normal(size=(len(layers), dim)).astype(np.float32), layers,
                       {"model": "tiny", "trait": "optimism", "method": "probe", **metadata})


def test_save_and_load_give_identical_tensors_and_metadata(tmp_path):
    vector = _vector(polarity_flipped=json.dumps([False, True, False]))
    path = vector.save(tmp_path / "vectors" / "probe.safetensors")
    loaded = TraitVector.load(path)
    assert loaded == vector
    assert loaded.vectors.dtype == np.float32 and np.array_equal(loaded.vectors, vector.vectors)
    with safe_open(str(path), framework="numpy") as handle:  # plain safetensors: any reader sees the header
        header = handle.metadata()
        assert header["trait"] == "optimism" and json.loads(header["layers"]) == [2, 3, 5]
        assert sorted(handle.keys()) == ["layers", "vectors"]
    assert not list(tmp_path.rglob(".*.tmp"))


def test_normalise_scale_negate_and_add():
    a, b = _vector(0), _vector(1)
    unit = a.normalized()
    assert all(n == pytest.approx(1.0, abs=1e-6) for n in unit.norms().values())
    assert unit.metadata["normalized"] == "true"
    np.testing.assert_allclose((a * 3.0).vectors, a.vectors * 3.0)
    np.testing.assert_allclose((2.0 * a).vectors, a.vectors * 2.0)
    np.testing.assert_allclose((-a).vectors, -a.vectors)
    total = a + b
    np.testing.assert_allclose(total.at(3), a.at(3) + b.at(3))
    assert total.metadata["trait"] == "optimism" and "sum_of" in total.metadata
    np.testing.assert_allclose((a - a).vectors, 0.0)
    assert a.cosine(-a) == pytest.approx({2: -1.0, 3: -1.0, 5: -1.0})


def test_add_uses_common_layers_and_rejects_other_models():
    a = _vector(0, layers=(2, 3, 5))
    b = _vector(1, layers=(3, 5, 7))
    assert (a + b).layers == (3, 5)
    with pytest.raises(ValueError, match="different models"):
        a + _vector(2, dim=8)


def test_as_dict_select_and_clear_errors(tmp_path):
    a = _vector()
    assert sorted(a.as_dict()) == [2, 3, 5]
    assert a.select([5, 2]).layers == (5, 2)
    with pytest.raises(KeyError, match="layer 4 is not in this vector"):
        a.at(4)
    with pytest.raises(ValueError, match="one per row"):
        TraitVector(np.zeros((2, 3)), (1,))
    with pytest.raises(TypeError, match="str -> str"):
        TraitVector(np.zeros((1, 3)), (1,), {"n": 3})
    with pytest.raises(ValueError, match="reserved"):
        TraitVector(np.zeros((1, 3)), (1,), {"layers": "x"})
    with pytest.raises(FileNotFoundError):
        TraitVector.load(tmp_path / "missing.safetensors")
    assert not a.vectors.flags.writeable
