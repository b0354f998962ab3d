"""ExtractionPlan's bounds: every field it checks is refused with its name, and the edges it allows are allowed."""

from __future__ import annotations

import pytest

from steersweep.actors import PositionSyntaxError
from steersweep.engine import ExtractionError, ExtractionPlan


@pytest.mark.parametrize(("fields", "error", "message"), [
    ({"rollouts": 0}, ExtractionError, "rollouts: 0 must be >= 1"),
    ({"rollouts": -2, "do_sample": True}, ExtractionError, "rollouts: -2 must be >= 1"),
    ({"rollouts": 2}, ExtractionError, "rollouts: 2 greedy rollouts would be identical; set do_sample=True"),
    ({"activation_dtype": "bfloat16"}, ExtractionError, "activation_dtype: 'bfloat16'; use float32 or float16"),
    ({"pca_components": -1}, ExtractionError, "pca_components: -1 must be >= 0"),
    ({"components": ("residual", "attn")}, ExtractionError, "components: unknown 'attn'"),
    ({"positions": ("response[:5]", "reply[0]")}, PositionSyntaxError, r"position 'reply\[0\]' is not valid"),
    ({"methods": ("mean_diff", "lda")}, ValueError, "method: unknown extraction method 'lda'"),
    ({"model": ""}, ValueError, "model: '' cannot name a folder"),
])
def test_plan_fields_out_of_bounds_name_the_field(fields, error, message):
    with pytest.raises(error, match=message):
        ExtractionPlan(**{"model": "m", **fields})


def test_plan_edges_that_are_allowed():
    ExtractionPlan(model="m", rollouts=1, pca_components=0, activation_dtype="float16")
    ExtractionPlan(model="m", rollouts=3, do_sample=True, methods=("contrastive_probe", "gradient"))
    plan = ExtractionPlan(model="m", positions=("prompt[-1]",), generate=None)
    assert not plan.needs_responses
    assert ExtractionPlan(model="m", positions=("all[:]",)).needs_responses
