"""On a CUDA machine: placement reads the real GPU through Ray, a placed actor lands on cuda, and a real CUDA
out-of-memory error halves the steer batch until it fits (texts equal to the run that had the memory)."""

from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu

WORDS = "the a cat dog sun rain day night is was happy sad bright dark warm cold good bad and but so".split()


def _wide_model(folder):
    """A randomly initialised Llama of 8 layers x 2048 hidden (~0.5 B parameters, float32): KV 128 KiB per token.
    A wide initialisation keeps greedy decoding far from ties, so batch shapes do not flip tokens."""
    from steersweep.actors.toy import ToyConfig, build_word_tokenizer, make_model

    tokenizer = build_word_tokenizer(WORDS, None)
    config = ToyConfig("llama", hidden_size=2048, num_layers=8, num_heads=16, num_kv_heads=16,
                       intermediate_size=8192, max_positions=512, initializer_range=0.1)
    model = make_model(config, len(tokenizer), 0, {"pad": 0, "bos": 1, "eos": 2})
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_placement_actor_on_cuda_and_real_oom_halving(tmp_path):
    import ray

    from steersweep.actors import ModelSpec, ModelWorker, SteerRequest, SteerRow
    from steersweep.cluster import (
        ModelNeed,
        ModelRequirement,
        ModelShape,
        PlacementError,
        RayOptions,
        ResilientModel,
        cluster_inventory,
        connect_ray,
        plan_models,
        plan_placement,
        start_actors,
        wait_loaded,
    )

    folder = _wide_model(tmp_path / "wide")
    connect_ray(RayOptions(dashboard=False, num_cpus=4))
    try:
        inventory = cluster_inventory()
        (node,) = inventory.nodes
        print(f"inventory: {inventory.describe()} ({node.gpu_memory_bytes} bytes per GPU)")
        assert node.gpus == torch.cuda.device_count() and node.gpu_memory_bytes > 20 * 2**30
        llama8b = ModelShape.from_config({"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                                          "vocab_size": 128256, "num_attention_heads": 32, "num_key_value_heads": 8})
        assert plan_placement([ModelRequirement("llama-8b", llama8b)], inventory).actors[0].num_gpus == 1.0
        with pytest.raises(PlacementError):
            plan_placement([ModelRequirement("llama-8b", llama8b, replicas=2 * node.gpus + 8)], inventory)
        plan = plan_models([ModelNeed("wide", str(folder), dtype="float32")], inventory, batch_rows=64,
                           tokens_per_row=64)
        print(plan.text())

        class Ballast(ModelWorker):
            def fill(self, leave_bytes: int) -> int:
                torch.cuda.empty_cache()  # what the allocator cached from the roomy run is free memory too
                free, _ = torch.cuda.mem_get_info()
                self.ballast = torch.empty(max(0, free - leave_bytes), dtype=torch.uint8, device="cuda")
                return torch.cuda.mem_get_info()[0]

            def release(self) -> None:
                self.ballast = None
                torch.cuda.empty_cache()

        handles = start_actors(plan, {"wide": ModelSpec(str(folder), dtype="float32")}, max_restarts=0,
                               actor_class=ray.remote(Ballast),
                               # the reference path: the fast path keeps its KV cache from the roomy run, so the
                               # ballast would not make it run out of memory
                               actor_kwargs={"max_batch_size": 1024, "fast": False})
        assert wait_loaded(handles, timeout_s=300) == {}
        actor = handles[("wide", 0)]
        info = ray.get(actor.info.remote())
        assert info.devices == ("cuda:0",) and info.dtype == "float32"
        model = ResilientModel(actor, "steersweep/wide/0", "wide")
        rows = tuple(SteerRow(f"the {w} is", tag=str(i)) for i, w in enumerate(WORDS * 40))[:768]
        request = SteerRequest(rows=rows, max_new_tokens=64, stop_at_eos=False)
        started = time.perf_counter()
        roomy = model.steer(request)
        roomy_s = time.perf_counter() - started
        free = ray.get(actor.fill.remote(1536 * 1024 * 1024))
        started = time.perf_counter()
        tight = model.steer(request)
        tight_s = time.perf_counter() - started
        ray.get(actor.release.remote())
        print(f"768 rows x 64 new tokens: {roomy_s:.2f} s with the GPU free; {tight_s:.2f} s with {free / 2**20:.0f} "
              f"MiB free, after {model.oom_splits} CUDA OOM split(s)")
        same = sum(a == b for a, b in zip(tight.texts, roomy.texts, strict=True)) / len(rows)
        print(f"identical texts, split vs one batch: {same:.3f} of {len(rows)} rows")
        assert model.oom_splits >= 1 and tight.tags == roomy.tags
        assert same >= 0.9
    finally:
        ray.shutdown()
