"""Must-shows 2 and 3: weight diff finds exactly the planted (layer, component); sharded == unsharded; the logit lens
of a planted diff that writes a token's unembedding direction puts that token first."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from tiny_models import build_tiny_model, build_tiny_tokenizer
from tiny_models import save as _save

from steersweep.analysis import (
    COMPONENTS,
    CheckpointError,
    CheckpointReader,
    logit_lens,
    trait_alignment,
    unembedding_row,
    weight_diff,
    weight_diff_ray,
)

PLANT_LAYER, PLANT_COMPONENT = 2, "o_proj"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Base tiny Llama, a copy with one planted o_proj change, and both again as several shards + index.json."""
    root = tmp_path_factory.mktemp("weight_diff")
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model("llama", len(tokenizer), seed=3)
    base = _save(model, tokenizer, root / "base")
    sharded_base = _save(model, tokenizer, root / "base_sharded", max_shard_size="20KB")
    rng = np.random.default_rng(0)
    planted = torch.from_numpy(rng.normal(scale=0.05, size=(32, 32)).astype(np.float32))
    with torch.no_grad():
        model.model.layers[PLANT_LAYER].self_attn.o_proj.weight += planted
    tuned = _save(model, tokenizer, root / "tuned")
    sharded_tuned = _save(model, tokenizer, root / "tuned_sharded", max_shard_size="20KB")
    return dict(base=base, tuned=tuned, sharded_base=sharded_base, sharded_tuned=sharded_tuned,
                planted_norm=float(planted.double().norm()), root=root, tokenizer=tokenizer, model=model)


def test_planted_change_is_reported_at_its_layer_and_component_only(checkpoints):
    diff = weight_diff(checkpoints["base"], checkpoints["tuned"])
    table = diff.table.to_pylist()
    assert len(table) == 4 * len(COMPONENTS)  # every layer x component is measured
    assert diff.changed() == [(PLANT_LAYER, PLANT_COMPONENT)]
    row = next(r for r in table if (r["layer"], r["component"]) == (PLANT_LAYER, PLANT_COMPONENT))
    assert row["diff_norm"] == pytest.approx(checkpoints["planted_norm"], rel=1e-5)
    assert row["relative"] == pytest.approx(row["diff_norm"] / row["base_norm"])
    assert all(r["diff_norm"] == 0.0 for r in table if not r["changed"])
    assert set(diff.residual_directions()) == {0, 1, 2, 3}
    assert np.count_nonzero([np.linalg.norm(v) for v in diff.residual_directions().values()]) == 1


def test_sharded_checkpoints_give_the_same_numbers_as_single_files(checkpoints):
    assert len(CheckpointReader(checkpoints["sharded_base"]).files) > 1
    assert (checkpoints["sharded_base"] / "model.safetensors.index.json").exists()
    single = weight_diff(checkpoints["base"], checkpoints["tuned"]).table.to_pylist()
    sharded = weight_diff(checkpoints["sharded_base"], checkpoints["sharded_tuned"], block_bytes=256).table.to_pylist()
    mixed = weight_diff(checkpoints["base"], checkpoints["sharded_tuned"]).table.to_pylist()
    for a, b, c in zip(single, sharded, mixed, strict=True):
        assert (a["layer"], a["component"]) == (b["layer"], b["component"]) == (c["layer"], c["component"])
        assert a["diff_norm"] == pytest.approx(b["diff_norm"], rel=1e-12) == pytest.approx(c["diff_norm"], rel=1e-12)
        assert a["base_norm"] == pytest.approx(b["base_norm"], rel=1e-12)


def test_row_blocks_reassemble_every_tensor_exactly(checkpoints):
    from safetensors.torch import load_file

    reference = load_file(str(checkpoints["base"] / "model.safetensors"))
    reader = CheckpointReader(checkpoints["sharded_base"])
    for name, tensor in reference.items():
        assert torch.equal(torch.cat(list(reader.row_blocks(name, block_bytes=100))), tensor), name


def test_mismatched_checkpoints_name_the_tensor(checkpoints, tmp_path):
    tokenizer = checkpoints["tokenizer"]
    wider = build_tiny_model("llama", len(tokenizer) + 3, seed=3)
    _save(wider, tokenizer, tmp_path / "wider")
    shape_error = r"tensor '(lm_head|model.embed_tokens).weight' has shape \[(\d+), 32\] in .*base and \[\d+, 32\]"
    with pytest.raises(CheckpointError, match=shape_error):
        weight_diff(checkpoints["base"], tmp_path / "wider")
    deeper = build_tiny_model("llama", len(tokenizer), seed=3, num_layers=5)
    _save(deeper, tokenizer, tmp_path / "deeper")
    with pytest.raises(CheckpointError, match=r"model.layers.4.* is in .*deeper but not in"):
        weight_diff(checkpoints["base"], tmp_path / "deeper")
    qwen = build_tiny_model("qwen2", len(tokenizer), seed=3)
    _save(qwen, tokenizer, tmp_path / "qwen")
    with pytest.raises(CheckpointError, match="architectures differ"):
        weight_diff(checkpoints["base"], tmp_path / "qwen")
    with pytest.raises(CheckpointError, match="not a folder"):
        weight_diff(checkpoints["base"], tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(checkpoints["sharded_base"], broken)
    index = json.loads((broken / "model.safetensors.index.json").read_text())
    missing = sorted(set(index["weight_map"].values()))[0]
    (broken / missing).unlink()
    with pytest.raises(CheckpointError, match=f"names shard {missing}, which is missing"):
        weight_diff(checkpoints["base"], broken)


def test_ray_tasks_give_the_same_rows(checkpoints, ray_local):
    local = weight_diff(checkpoints["base"], checkpoints["sharded_tuned"])
    remote = weight_diff_ray(checkpoints["base"], checkpoints["sharded_tuned"], n_tasks=3)
    assert local.table.to_pylist() == remote.table.to_pylist()
    assert remote.changed() == [(PLANT_LAYER, PLANT_COMPONENT)]


@pytest.mark.parametrize("token", ["happy", "river", "never"])
@pytest.mark.parametrize("sign,direction", [(1.0, "positive"), (-1.0, "negative")])
def test_logit_lens_of_a_planted_unembedding_direction_puts_that_token_first(checkpoints, tmp_path, token, sign,
                                                                             direction):
    tokenizer, model = checkpoints["tokenizer"], checkpoints["model"]
    token_id = tokenizer.convert_tokens_to_ids("Ġ" + token)
    u = unembedding_row(checkpoints["base"], token_id)
    planted = model.__class__(model.config)
    planted.load_state_dict(model.state_dict())
    with torch.no_grad():  # dW = sign * u 1^T: every column of the down_proj diff writes +-u into the residual
        weight = planted.model.layers[1].mlp.down_proj.weight
        weight += sign * 0.01 * torch.outer(torch.from_numpy(u).float(), torch.ones(weight.shape[1]))
    _save(planted, tokenizer, tmp_path / "planted")
    diff = weight_diff(checkpoints["tuned"], tmp_path / "planted")
    assert (1, "down_proj") in diff.changed()
    lens = logit_lens({1: diff.residual_directions()[1]}, checkpoints["tuned"], k=5).to_pylist()
    first = next(r for r in lens if r["direction"] == direction and r["rank"] == 0)
    assert (first["token_id"], first["token"].strip()) == (token_id, token)


def test_trait_alignment_is_the_cosine_per_layer():
    rng = np.random.default_rng(1)
    directions = {0: rng.normal(size=8), 1: rng.normal(size=8)}
    vectors = {"optimism": {0: directions[0] * 3, 1: -directions[1]}}
    rows = trait_alignment(directions, vectors).to_pylist()
    assert [(r["layer"], round(r["cosine"], 12)) for r in rows] == [(0, 1.0), (1, -1.0)]


def test_model_diff_task_writes_norms_lens_and_alignment(checkpoints, tmp_path):
    import pyarrow.parquet as pq

    from steersweep.analysis import TraitVector, model_diff_task

    rng = np.random.default_rng(2)
    vector_path = tmp_path / "v.safetensors"
    TraitVector(rng.normal(size=(4, 32)).astype(np.float32), (0, 1, 2, 3)).save(vector_path)
    written = model_diff_task(tmp_path, checkpoints["base"], checkpoints["tuned"], "base__tuned",
                              {"optimism": vector_path}, k=3)
    assert written == {"weight_diff_base__tuned": 28, "logit_lens_base__tuned": 4 * 2 * 3,
                       "trait_alignment_base__tuned": 4}
    table = pq.read_table(tmp_path / "data" / "analysis" / "weight_diff_base__tuned.parquet")
    assert table.num_rows == 28 and sum(table.column("changed").to_pylist()) == 1
