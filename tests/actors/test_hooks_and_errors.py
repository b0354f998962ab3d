"""Hooks never outlive a request; bad models, layers and prompts give errors that name the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from steersweep.actors import (
    CaptureRequest,
    LayerLayout,
    LayerOutOfRangeError,
    ModelActor,
    ModelLoadError,
    ModelSpec,
    ModelWorker,
    PromptError,
    SteeringTerm,
    SteerRequest,
    SteerRow,
    UnknownArchitectureError,
    encode_prompt,
    resolve_layout,
)


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


class _Boom(RuntimeError):
    pass


def test_hooks_are_removed_after_an_exception_inside_a_request(workers):
    worker = workers["llama"]
    model = worker.model
    ids = torch.tensor([encode_prompt(worker.tokenizer, "the cat is happy")])
    with torch.no_grad():
        unsteered = model(ids).logits
    worker.load_vectors({"v": np.ones((worker.num_layers, worker.hidden_size), np.float32)})
    calls = {"n": 0}

    def explode_on_third_forward(_module, _inputs, _output):
        calls["n"] += 1
        if calls["n"] == 3:
            raise _Boom("injected failure in the middle of generation")

    baseline_hooks = _hook_count(model)
    failing = model.model.norm.register_forward_hook(explode_on_third_forward)
    try:
        rows = (SteerRow("the cat is happy", (SteeringTerm("v", 1, 9.0), SteeringTerm("v", 2, 9.0, "mlp_out"))),)
        with pytest.raises(_Boom):
            worker.steer(SteerRequest(rows=rows, max_new_tokens=8))
        calls["n"] = 0
        with pytest.raises(_Boom):
            worker.capture(CaptureRequest(prompts=("the cat",), layers=(0, 1, 2), components=("residual", "mlp_out"),
                                          generate=True, max_new_tokens=8))
    finally:
        failing.remove()
    assert _hook_count(model) == baseline_hooks
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, unsteered)


def test_bad_request_over_ray_leaves_the_actor_usable(ray_local, tiny_model_dirs):
    actor = ModelActor.remote(ModelSpec(str(tiny_model_dirs["llama"])))
    before = ray_local.get(actor.steer.remote(SteerRequest(rows=(SteerRow("the cat"),), max_new_tokens=5)))
    with pytest.raises(LayerOutOfRangeError, match=r"layer: 9 is out of range for LlamaForCausalLM \(4 layers"):
        ray_local.get(actor.capture.remote(CaptureRequest(prompts=("the cat",), layers=(9,))))
    after = ray_local.get(actor.steer.remote(SteerRequest(rows=(SteerRow("the cat"),), max_new_tokens=5)))
    assert after.token_ids == before.token_ids
    ray_local.kill(actor)


def test_out_of_range_steering_layer_names_the_layer_count(workers):
    worker = workers["qwen2"]
    worker.load_vectors({"v": np.ones((worker.num_layers, worker.hidden_size), np.float32)})
    with pytest.raises(LayerOutOfRangeError, match=r"Qwen2ForCausalLM \(4 layers, valid 0..3\)"):
        worker.steer(SteerRequest(rows=(SteerRow("the cat", (SteeringTerm("v", 40, 1.0),)),)))


def test_unknown_architecture_names_what_to_configure(workers):
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(2, 2)])

    with pytest.raises(UnknownArchitectureError, match="layer_layout=LayerLayout"):
        resolve_layout(Odd())
    with pytest.raises(UnknownArchitectureError, match=r"layer path 'transformer\.h' does not exist"):
        resolve_layout(workers["llama"].model, LayerLayout(layers="transformer.h"))
    assert resolve_layout(workers["llama"].model, LayerLayout(layers="model.layers")).layers == "model.layers"


def test_bad_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="neither a local directory nor a cached hub model"):
        ModelWorker(ModelSpec(str(tmp_path / "no-such-model")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        ModelWorker(ModelSpec(str(tmp_path / "empty")))


def test_chat_and_base_prompts(workers, tiny_base_model_dir):
    chat = workers["llama"].tokenizer
    rendered = chat.convert_ids_to_tokens(encode_prompt(chat, ({"role": "system", "content": "very happy"},
                                                               {"role": "user", "content": "the cat"})))
    assert rendered == ["<bos>", "<|system|>", "Ġvery", "Ġhappy", "<|end|>", "<|user|>", "Ġthe", "Ġcat", "<|end|>",
                        "<|assistant|>"]
    base = ModelWorker(ModelSpec(str(tiny_base_model_dir)))
    assert base.info().has_chat_template is False
    # Without a chat template the text is tokenized as it is, with whatever specials the tokenizer itself adds.
    plain = base.tokenizer("the cat")["input_ids"]
    assert encode_prompt(base.tokenizer, "the cat") == plain
    assert base.tokenizer.convert_ids_to_tokens(plain)[-2:] == ["Ġthe", "Ġcat"]
    with pytest.raises(PromptError, match="no chat template"):
        base.steer(SteerRequest(rows=(SteerRow(({"role": "user", "content": "hi"},)),)))


def test_info_describes_the_model(workers):
    info = workers["mistral"].info()
    assert (info.architecture, info.model_type, info.num_layers, info.hidden_size) == (
        "MistralForCausalLM", "mistral", 4, 32)
    assert info.kv_dim == 16 and info.dtype == "float32" and info.devices == ("cpu",)
    assert info.parameter_bytes == sum(p.numel() * 4 for p in workers["mistral"].model.parameters())
