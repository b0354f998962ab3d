"""Every validation the actor boundary promises, each with the field it names: requests, terms, vectors,
projections and norms. Removing any one check makes one of these fail."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from steersweep.actors import (
    CaptureRequest,
    ProjectRequest,
    SteeringTerm,
    SteerRequest,
    SteerRow,
    VectorError,
)

ROW = SteerRow("the cat")


@pytest.mark.parametrize("coefficient", [math.nan, math.inf, -math.inf])
def test_non_finite_coefficient_is_refused(coefficient):
    with pytest.raises(ValueError, match=f"coefficient: {coefficient} is not finite"):
        SteeringTerm("v", 1, coefficient)


@pytest.mark.parametrize("component", ["k_proj", "v_proj", "resid"])
def test_only_hidden_size_components_can_be_steered(component):
    with pytest.raises(ValueError, match=f"component: '{component}' cannot be steered"):
        SteeringTerm("v", 1, 1.0, component)


@pytest.mark.parametrize(("fields", "message"), [
    ({"rows": ()}, "rows: a SteerRequest needs at least one row"),
    ({"max_new_tokens": 0}, "max_new_tokens: 0 must be >= 1"),
    ({"do_sample": True, "temperature": 0.0}, "temperature: 0.0 must be > 0 when sampling"),
    ({"top_p": 0.0}, r"top_p: 0.0 must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"top_p: 1.5 must be in \(0, 1\]"),
])
def test_steer_request_validation(fields, message):
    with pytest.raises(ValueError, match=message):
        SteerRequest(**{"rows": (ROW,), **fields})


def test_steer_request_edges_that_are_allowed():
    SteerRequest(rows=(ROW,), max_new_tokens=1, top_p=1.0, temperature=0.0)  # greedy ignores the temperature
    SteerRequest(rows=(ROW,), do_sample=True, temperature=1e-3, top_p=1e-3)


@pytest.mark.parametrize(("fields", "message"), [
    ({"prompts": ()}, "prompts: a CaptureRequest needs at least one prompt"),
    ({"responses": ("one",)}, "responses: 1 responses for 2 prompts; give one per prompt"),
    ({"responses": ("a", "b", "c")}, "responses: 3 responses for 2 prompts"),
    ({"responses": ("a", "b"), "generate": True}, "generate: cannot both generate and replay responses"),
    ({"components": ("residual", "q_proj")}, "components: unknown component 'q_proj'"),
])
def test_capture_request_validation(fields, message):
    with pytest.raises(ValueError, match=message):
        CaptureRequest(**{"prompts": ("the cat", "a dog"), **fields})


def test_vector_mapping_with_a_wrong_shape_or_layer_is_refused_and_loads_nothing(workers):
    worker = workers["llama"]
    hidden = worker.hidden_size
    with pytest.raises(VectorError, match=rf"vector 'm' layer 2: shape \({hidden - 1},\), expected \({hidden},\)"):
        worker.load_vectors({"m": {1: np.ones(hidden, np.float32), 2: np.ones(hidden - 1, np.float32)}})
    with pytest.raises(VectorError, match=rf"vector 'm' layer 1: shape \(1, {hidden}\)"):
        worker.load_vectors({"m": {1: np.ones((1, hidden), np.float32)}})
    with pytest.raises(VectorError, match=r"vector 'm': layer: 7 is out of range for LlamaForCausalLM"):
        worker.load_vectors({"m": {7: np.ones(hidden, np.float32)}})
    assert "m" not in worker.vector_ids()
    with pytest.raises(VectorError, match="vector 'inf' layer 0 holds NaN or inf"):
        worker.load_vectors({"inf": {0: np.full(hidden, np.inf, np.float32)}})


def test_negative_layers_in_a_vector_mapping_are_refused(workers):
    worker = workers["llama"]
    with pytest.raises(VectorError, match=r"vector 'last': layer: -1 is out of range .* negative indices are not"):
        worker.load_vectors({"last": {-1: np.ones(worker.hidden_size, np.float32)}})
    assert "last" not in worker.vector_ids()


def test_a_bad_term_in_any_row_fails_before_anything_runs(workers):
    worker = workers["llama"]
    worker.load_vectors({"v": np.ones((worker.num_layers, worker.hidden_size), np.float32)})
    rows = (SteerRow("the cat", (SteeringTerm("v", 1, 1.0),)), SteerRow("a dog", (SteeringTerm("nope", 1, 1.0),)))
    with pytest.raises(VectorError, match="steering term names vector 'nope', which is not loaded"):
        worker.steer(SteerRequest(rows=rows, max_new_tokens=2))


def test_project_refuses_a_component_that_cannot_be_projected_and_an_unloaded_vector(workers):
    worker = workers["llama"]
    worker.load_vectors({"v": np.ones((worker.num_layers, worker.hidden_size), np.float32)})
    steer = SteerRequest(rows=(ROW,), max_new_tokens=2)
    with pytest.raises(ValueError, match="component: 'k_proj' cannot be projected"):
        worker.project(ProjectRequest(steer=steer, vector_ids=("v",), layers=(1,), component="k_proj"))
    with pytest.raises(VectorError, match="vector 'absent' is not loaded"):
        worker.project(ProjectRequest(steer=steer, vector_ids=("v", "absent"), layers=(1,)))


@pytest.mark.parametrize("position", ["response[:]", "prompt[0]", "prompt[40]"])
def test_activation_norms_that_select_no_token_are_an_error(workers, position):
    # prompt[0] is the BOS token, a special token that norms skip; prompts hold no response.
    with pytest.raises(ValueError, match=re.escape(f"position {position!r} selects no")):
        workers["llama"].activation_norms([1], "residual", ["the cat", "a dog"], position=position)
