"""The vector table: terms of one row add up, bad vectors leave the table unchanged, raw texts keep specials."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steersweep.actors import SteeringTerm, SteerRequest, SteerRow, VectorError, VectorTable, row_capacity


def _table() -> VectorTable:
    def check(layer: int) -> int:
        if not 0 <= layer < 3:
            from steersweep.actors import LayerOutOfRangeError
            raise LayerOutOfRangeError(f"layer: {layer} is out of range (3 layers, valid 0..2)")
        return int(layer)

    return VectorTable(num_layers=3, hidden_size=4, device=torch.device("cpu"), check_layer=check)


def test_two_terms_on_one_point_add_up_and_rows_stay_separate():
    table = _table()
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    table.load({"a": a, "b": b})
    rows = [
        SteerRow("x", (SteeringTerm("a", 1, 2.0), SteeringTerm("b", 1, -1.0), SteeringTerm("a", 1, 0.5))),
        SteerRow("y"),
        SteerRow("z", (SteeringTerm("b", 2, 3.0, "mlp_out"),)),
    ]
    deltas = table.deltas(rows)
    assert set(deltas) == {(1, "residual"), (2, "mlp_out")}
    np.testing.assert_allclose(deltas[(1, "residual")][0].numpy(), 2.5 * a[1] - b[1], rtol=1e-6)
    assert not deltas[(1, "residual")][1:].any()
    np.testing.assert_allclose(deltas[(2, "mlp_out")][2].numpy(), 3.0 * b[2], rtol=1e-6)
    assert not deltas[(2, "mlp_out")][:2].any()


def test_a_bad_vector_in_a_load_leaves_the_table_unchanged():
    table = _table()
    table.load({"a": np.ones((3, 4), np.float32)})
    bad = np.ones((3, 4), np.float32)
    bad[2, 0] = np.inf
    with pytest.raises(VectorError, match="layer 2 holds NaN or inf"):
        table.load({"a": np.zeros((3, 4), np.float32), "c": bad})
    assert table.ids() == ["a"] and float(table.vector("a", 0).sum()) == 4.0
    with pytest.raises(VectorError, match=r"vector 'd': layer: 7 is out of range"):
        table.load({"d": {7: np.ones(4, np.float32)}})
    table.load({"p": {np.int64(1): np.ones(4)}})
    with pytest.raises(VectorError, match="has no layer 0"):
        table.check_rows([SteerRow("x", (SteeringTerm("p", 0, 1.0),))])
    with pytest.raises(VectorError, match="not loaded"):
        table.check_rows([SteerRow("x", (SteeringTerm("q", 0, 1.0),))])


def test_raw_texts_keep_special_tokens_but_not_the_final_eos(workers):
    worker = workers["llama"]
    eos = worker.tokenizer.eos_token_id
    unembed = worker.model.get_output_embeddings().weight[eos].detach().numpy().astype(np.float32)
    worker.load_vectors({"eos": {worker.num_layers - 1: unembed}})
    reply = worker.steer(SteerRequest(
        rows=(SteerRow("the cat", (SteeringTerm("eos", worker.num_layers - 1, 50.0),)), SteerRow("the dog")),
        max_new_tokens=6,
    ))
    assert reply.token_ids[0] == (eos,) and reply.raw_texts[0] == "" and reply.texts[0] == ""
    expected = worker.tokenizer.decode(list(reply.token_ids[1]), skip_special_tokens=False)
    assert reply.raw_texts[1] == expected and len(reply.raw_texts) == 2


def test_row_capacity_is_a_cap_on_cpu_and_rejects_empty_prompts(workers):
    worker = workers["qwen2"]
    assert worker.row_capacity(64, 128) == 256
    with pytest.raises(ValueError, match="prompt_tokens: 0 must be >= 1"):
        worker.row_capacity(0, 8)
    assert row_capacity(worker.model.config, torch.float32, torch.device("cpu"), 10, 0, cpu_cap=5) == 5
