"""Placement: GPUs per actor from model size, multi-GPU placement groups, sharing, spreading and refusals."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from steersweep.cluster import (
    GIB,
    Inventory,
    ModelRequirement,
    ModelShape,
    ModelSizeError,
    Node,
    PlacementError,
    plan_placement,
    plan_text,
)

# Published configs (config.json fields) of the two model sizes a user asks about most.
LLAMA3_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "vocab_size": 128256,
             "num_attention_heads": 32, "num_key_value_heads": 8, "tie_word_embeddings": False}
LLAMA3_70B = {"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80, "vocab_size": 128256,
              "num_attention_heads": 64, "num_key_value_heads": 8, "tie_word_embeddings": False}
QWEN25_3B = {"hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36, "vocab_size": 151936,
             "num_attention_heads": 16, "num_key_value_heads": 2, "tie_word_embeddings": True}
H100_BYTES = 81559 * (1 << 20)  # what nvidia-smi reports for an "80 GB" H100
A10_BYTES = 24 * 10**9


def test_parameter_counts_match_the_published_sizes():
    assert ModelShape.from_config(LLAMA3_8B).parameter_count == pytest.approx(8.03e9, rel=0.002)
    assert ModelShape.from_config(LLAMA3_70B).parameter_count == pytest.approx(70.55e9, rel=0.002)
    assert ModelShape.from_config(QWEN25_3B).parameter_count == pytest.approx(3.09e9, rel=0.01)  # tied embeddings
    assert ModelShape.from_config(LLAMA3_8B).kv_bytes_per_token("bfloat16") == 2 * 32 * 8 * 128 * 2


def test_8b_bf16_on_80gb_gpus_takes_one_gpu():
    req = ModelRequirement("llama-8b", ModelShape.from_config(LLAMA3_8B), "bfloat16", batch_rows=64,
                           tokens_per_row=512)
    plan = plan_placement([req], Inventory.uniform(8, H100_BYTES))
    (actor,) = plan.actors
    assert (actor.num_gpus, actor.device_map, actor.placement_group, actor.device) == (1.0, None, False, "cuda")
    assert 16e9 < req.weight_bytes < 16.1e9 and req.kv_cache_bytes == 64 * 512 * 131072
    assert actor.actor_name == "steersweep/llama-8b/0"


def test_70b_bf16_on_80gb_gpus_takes_two_gpus_in_one_placement_group():
    req = ModelRequirement("llama-70b", ModelShape.from_config(LLAMA3_70B), "bfloat16", batch_rows=32,
                           tokens_per_row=512)
    plan = plan_placement([req], Inventory.uniform(4, H100_BYTES, nodes=2))
    (actor,) = plan.actors
    assert actor.num_gpus == 2.0 and len(actor.gpu_indices) == 2
    assert actor.placement_group and actor.device_map == "auto"
    assert "STRICT_PACK" in plan.text()


def test_kv_cache_headroom_of_a_bigger_batch_takes_a_third_gpu():
    shape = ModelShape.from_config(LLAMA3_70B)
    big = plan_placement([ModelRequirement("llama-70b", shape, batch_rows=128, tokens_per_row=1024)],
                         Inventory.uniform(8, H100_BYTES))
    assert big.actors[0].num_gpus == 3.0


def test_three_models_two_replicas_on_four_gpus_share_by_memory_and_spread_replicas():
    reqs = [ModelRequirement("llama-8b", ModelShape.from_config(LLAMA3_8B), replicas=2),
            ModelRequirement("mistral-7b", ModelShape.from_config({**LLAMA3_8B, "vocab_size": 32768}), replicas=2),
            ModelRequirement("qwen-3b", ModelShape.from_config(QWEN25_3B), replicas=2)]
    inventory = Inventory.uniform(4, H100_BYTES)
    plan = plan_placement(reqs, inventory)
    assert len(plan.actors) == 6
    fraction, used = defaultdict(float), defaultdict(int)
    for actor in plan.actors:
        assert 0 < actor.num_gpus < 1 and len(actor.gpu_indices) == 1 and not actor.placement_group
        fraction[actor.gpu_indices[0]] += actor.num_gpus
        used[actor.gpu_indices[0]] += actor.bytes_needed
        assert actor.num_gpus * (0.95 * H100_BYTES - GIB) >= actor.bytes_needed  # the Ray request covers its memory
    assert all(total <= 1.0 + 1e-9 for total in fraction.values())
    assert all(total <= 0.95 * H100_BYTES - GIB for total in used.values())
    for req in reqs:
        gpus = [a.gpu_indices[0] for a in plan.for_model(req.name)]
        assert len(set(gpus)) == 2, f"replicas of {req.name} share GPU {gpus}"
    assert len(fraction) == 4  # every GPU is used


def test_as_many_gpus_as_actors_gives_each_a_whole_gpu_spread_over_nodes():
    req = ModelRequirement("llama-8b", ModelShape.from_config(LLAMA3_8B), replicas=2)
    plan = plan_placement([req], Inventory.uniform(2, H100_BYTES, nodes=2))
    assert [a.num_gpus for a in plan.actors] == [1.0, 1.0]
    assert {a.node for a in plan.actors} == {"node0", "node1"}


def test_no_gpu_places_cpu_actors():
    req = ModelRequirement("toy", ModelShape(1_000_000, 4, 64, 2, 16, 500), replicas=2)
    plan = plan_placement([req], Inventory((Node("laptop", memory_bytes=8 * GIB),)))
    assert [(a.device, a.num_gpus, a.replica) for a in plan.actors] == [("cpu", 0.0, 0), ("cpu", 0.0, 1)]
    assert "CPU on laptop" in plan.text()


def test_70b_on_one_24gb_gpu_is_refused_naming_model_bytes_and_gpus():
    req = ModelRequirement("llama-70b", ModelShape.from_config(LLAMA3_70B))
    with pytest.raises(PlacementError) as error:
        plan_placement([req], Inventory.uniform(1, A10_BYTES))
    message = str(error.value)
    assert "'llama-70b'" in message and f"{req.bytes_needed} bytes" in message
    assert "GPUs seen: 1 GPU(s) (node0: 1 x 22 GiB)" in message and "largest node has 1" in message
    assert plan_text([req], Inventory.uniform(1, A10_BYTES)).startswith("placement refused: model 'llama-70b'")


def test_multi_gpu_model_is_refused_when_no_single_node_has_enough_gpus():
    req = ModelRequirement("llama-70b", ModelShape.from_config(LLAMA3_70B), batch_rows=8)
    with pytest.raises(PlacementError, match="needs 7 GPUs of one node and the largest node has 4"):
        plan_placement([req], Inventory.uniform(4, A10_BYTES, nodes=4))  # 16 GPUs, but 4 per node


def test_too_many_replicas_are_refused_when_shared_gpus_run_out():
    req = ModelRequirement("llama-8b", ModelShape.from_config(LLAMA3_8B), replicas=9)
    with pytest.raises(PlacementError, match=r"x 9 replica\(s\).*replica 6 needs 0\.27 of a GPU"):
        plan_placement([req], Inventory.uniform(2, H100_BYTES))
    second = ModelRequirement("llama-70b", ModelShape.from_config(LLAMA3_70B), batch_rows=8, replicas=2)
    with pytest.raises(PlacementError, match="replica 1 needs 2 free GPUs"):
        plan_placement([second], Inventory.uniform(3, H100_BYTES))


def test_cpu_refusal_names_host_memory():
    req = ModelRequirement("llama-8b", ModelShape.from_config(LLAMA3_8B))
    with pytest.raises(PlacementError, match=r"'llama-8b' needs 4\d\.\d GiB of host memory per replica on CPU"):
        plan_placement([req], Inventory((Node("laptop", memory_bytes=16 * GIB),)))


def test_shape_from_a_saved_model_directory_uses_the_safetensors_header(tiny_llama_dir):
    import torch
    from transformers import AutoModelForCausalLM

    folder = tiny_llama_dir
    model = AutoModelForCausalLM.from_pretrained(folder)
    stored = {id(p): p.numel() for p in model.parameters()}  # tied weights counted once
    shape = ModelShape.from_pretrained_dir(folder)
    assert shape.parameter_count == sum(stored.values())
    assert shape.num_layers == model.config.num_hidden_layers and torch.is_tensor(next(model.parameters()))


def test_shape_from_an_index_and_a_missing_field(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({**LLAMA3_8B, "torch_dtype": "bfloat16"}))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 16_060_522_496}}))
    assert ModelShape.from_pretrained_dir(tmp_path).parameter_count == 8_030_261_248
    with pytest.raises(ModelSizeError, match=r"config\.json has no 'vocab_size'"):
        ModelShape.from_config({k: v for k, v in LLAMA3_8B.items() if k != "vocab_size"})
    with pytest.raises(ModelSizeError, match=r"no config\.json"):
        ModelShape.from_pretrained_dir(tmp_path / "missing")


def test_plan_models_reads_the_saved_model_and_prints_the_cpu_plan(tiny_llama_dir):
    from steersweep.cluster import ModelNeed, plan_models, plan_models_text

    needs = [ModelNeed("tiny", str(tiny_llama_dir), replicas=2)]
    laptop = Inventory((Node("laptop", memory_bytes=8 * GIB),))
    plan = plan_models(needs, laptop, batch_rows=8, tokens_per_row=64)
    assert [a.actor_name for a in plan.actors] == ["steersweep/tiny/0", "steersweep/tiny/1"]
    assert plan.requirements[0].dtype == "float32"  # auto on CPU, as the loader resolves it
    gpu_text = plan_models_text(needs, Inventory.uniform(1, H100_BYTES))
    assert "steersweep/tiny/0: 0.01 GPU on node0 GPU 0" in gpu_text  # two replicas share the one GPU
    assert plan_models_text([ModelNeed("gone", "/nonexistent/model")], laptop).startswith(
        "placement refused: model path '/nonexistent/model': no config.json")
