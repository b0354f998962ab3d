"""Requests accept numpy integers and lists, and a wrong shape of input is an error that names the field."""

from __future__ import annotations

import numpy as np
import pytest

from steersweep.actors import (
    CaptureRequest,
    LayerOutOfRangeError,
    ProjectRequest,
    SteeringTerm,
    SteerRequest,
    SteerRow,
)


def test_numpy_integers_and_lists_are_accepted_and_normalised():
    term = SteeringTerm("v", np.int64(2), np.float32(1.5))
    assert term.layer == 2 and type(term.layer) is int and type(term.coefficient) is float
    row = SteerRow("hi", [term], seed=np.int32(7))
    assert row.terms == (term,) and row.seed == 7 and type(row.seed) is int
    request = SteerRequest(rows=[row], max_new_tokens=np.int64(4))
    assert request.rows == (row,) and request.max_new_tokens == 4
    capture = CaptureRequest(prompts=["a", "b"], layers=[np.int64(0), 3], components=["residual"])
    assert capture.prompts == ("a", "b") and capture.layers == (0, 3) and capture.components == ("residual",)
    assert CaptureRequest(prompts=("a",), responses=[[np.int64(5), 6]]).responses == ((5, 6),)
    chat = SteerRow([{"role": "user", "content": "hi"}])
    assert isinstance(chat.prompt, tuple)


@pytest.mark.parametrize(("build", "field"), [
    (lambda: CaptureRequest(prompts="How are you"), "prompts"),
    (lambda: CaptureRequest(prompts=("a",), components="residual"), "components"),
    (lambda: CaptureRequest(prompts=("a",), positions="prompt[-1]"), "positions"),
    (lambda: CaptureRequest(prompts=("a",), responses="fine"), "responses"),
    (lambda: ProjectRequest(SteerRequest(rows=(SteerRow("a"),)), vector_ids="v", layers=(1,)), "vector_ids"),
])
def test_a_bare_string_where_a_sequence_is_expected_names_the_field(build, field):
    with pytest.raises(TypeError, match=rf"{field}: got the string .* where a sequence is expected; wrap it"):
        build()


def test_a_single_unwrapped_term_or_row_says_to_wrap_it():
    term = SteeringTerm("v", 1, 2.0)
    with pytest.raises(TypeError, match=r"terms: got a single SteeringTerm .* terms=\(SteeringTerm\(...\),\)"):
        SteerRow("hi", term)
    with pytest.raises(TypeError, match=r"rows: got a single SteerRow .* rows=\(SteerRow\(...\),\)"):
        SteerRequest(rows=SteerRow("hi"))
    with pytest.raises(TypeError, match=r"rows\[1\]: 'hi' is not a SteerRow"):
        SteerRequest(rows=(SteerRow("a"), "hi"))
    with pytest.raises(TypeError, match=r"terms\[0\]: .* is not a SteeringTerm"):
        SteerRow("hi", (("v", 1, 2.0),))


def test_bad_numbers_name_the_field():
    with pytest.raises(TypeError, match=r"layer: 2.0 \(float\) is not an integer"):
        SteeringTerm("v", 2.0, 1.0)
    with pytest.raises(TypeError, match="layer: True is a bool"):
        SteeringTerm("v", True, 1.0)
    with pytest.raises(TypeError, match="coefficient: 'big' is not a number"):
        SteeringTerm("v", 1, "big")
    with pytest.raises(TypeError, match="vector_id: 3 is not a string"):
        SteeringTerm(3, 1, 1.0)


def test_negative_layers_are_refused_with_the_0_based_rule(workers):
    with pytest.raises(ValueError, match="layer: -1 is negative; layers are 0-based"):
        SteeringTerm("v", -1, 1.0)
    with pytest.raises(ValueError, match=r"layers\[1\]: -2 is negative"):
        CaptureRequest(prompts=("a",), layers=(0, -2))
    worker = workers["llama"]
    with pytest.raises(LayerOutOfRangeError, match=r"\(4 layers, valid 0..3\); negative indices are not accepted"):
        worker.activation_norms([-1], "residual", ["the cat"])
    assert worker.activation_norms([np.int64(1)], "residual", ["the cat"]).norms.keys() == {1}
