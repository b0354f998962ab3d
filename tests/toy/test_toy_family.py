"""Building, caching and loading the family: standard HF checkpoints, reproducible weights, atomic builds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from steersweep.actors import ModelSpec, load_model
from steersweep.actors.toy import (
    FAMILY_KEYS,
    TOY_VERSION,
    build_family,
    ensure_family,
    family_dir,
    toy_home,
)

CLASSES = {"llama-base": "LlamaForCausalLM", "llama-sft": "LlamaForCausalLM", "llama-dpo": "LlamaForCausalLM",
           "qwen2-sft": "Qwen2ForCausalLM", "mistral-sft": "MistralForCausalLM"}
TINY = 0.005  # 20 narratives / chat examples per model: a family in a few seconds, for cache mechanics


def _weights(root: Path, key: str) -> dict[str, torch.Tensor]:
    return load_file(root / key / "model.safetensors")


def _same_weights(first: Path, second: Path) -> bool:
    for key in FAMILY_KEYS:
        a, b = _weights(first, key), _weights(second, key)
        if a.keys() != b.keys() or not all(torch.equal(a[name], b[name]) for name in a):
            return False
    return True


def test_every_member_is_a_standard_checkpoint_loadable_by_from_pretrained_and_load_model(small_family):
    family, _ = small_family
    assert family.keys == FAMILY_KEYS == tuple(CLASSES)
    for key, class_name in CLASSES.items():
        path = family.path(key)
        for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                     "tokenizer_config.json", "toy_model.json"):
            assert (path / name).is_file(), f"{key}/{name}"
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        assert type(model).__name__ == class_name
        assert (tokenizer.chat_template is None) == (key == "llama-base")
        end = tokenizer.convert_tokens_to_ids("<|end|>")
        assert tokenizer.eos_token_id == (tokenizer.convert_tokens_to_ids("<eos>") if key == "llama-base" else end)
        loaded, loaded_tokenizer = load_model(family.spec(key))
        assert type(loaded).__name__ == class_name and loaded_tokenizer.padding_side == "left"
        described = json.loads((path / "toy_model.json").read_text())
        assert described["key"] == key and described["architecture"] == class_name and described["seed"] == 0
    assert family.spec("llama-dpo") == ModelSpec(str(family.path("llama-dpo")), name="toy-llama-dpo")
    with pytest.raises(KeyError, match="'gpt2-sft' is not in the family; use one of llama-base"):
        family.path("gpt2-sft")


def test_manifest_and_progress_describe_the_build(small_family):
    family, events = small_family
    manifest = json.loads((family.root / "manifest.json").read_text())
    assert manifest["version"] == TOY_VERSION and manifest["seed"] == 0 and manifest["workers"] == 2
    assert manifest["models"] == list(FAMILY_KEYS) and set(manifest["details"]) == set(FAMILY_KEYS)
    assert family.root == family_dir(family.root.parent, 0, 0.05)
    for key in FAMILY_KEYS:
        stages = [e.stage for e in events if e.key == key]
        epochs = manifest["details"][key]["config"]["epochs"]
        assert stages == ["start"] + ["epoch"] * epochs + ["done"], key
    parents = {"llama-sft": "llama-base", "llama-dpo": "llama-sft"}
    done_order = [e.key for e in events if e.stage == "done"]
    for child, parent in parents.items():
        assert done_order.index(parent) < done_order.index(child)
    assert str(next(e for e in events if e.stage == "epoch" and e.key == "llama-sft")).startswith(
        "llama-sft (2/5): epoch 1/3, loss ")


def test_same_seed_gives_identical_weights_whatever_the_number_of_workers(small_family, tmp_path):
    """Must show 1 (fast form): a second build with the same seed, sequential this time, equals the first."""
    family, _ = small_family
    again = build_family(tmp_path, seed=0, scale=0.05, workers=1)
    assert _same_weights(family.root, again.root)
    other = build_family(tmp_path, seed=1, scale=TINY, workers=1)
    first = build_family(tmp_path, seed=0, scale=TINY, workers=1)
    assert not torch.equal(_weights(other.root, "llama-sft")["lm_head.weight"],
                           _weights(first.root, "llama-sft")["lm_head.weight"])


def test_a_complete_family_is_reused_and_force_rebuilds_it(tmp_path):
    built = build_family(tmp_path, seed=0, scale=TINY, workers=1)
    stamp = (built.root / "manifest.json").stat().st_mtime_ns
    events = []
    assert build_family(tmp_path, seed=0, scale=TINY, progress=events.append).root == built.root
    assert [e.stage for e in events] == ["reused"]
    assert ensure_family(tmp_path, seed=0, scale=TINY).manifest["built_at"] == built.manifest["built_at"]
    assert (built.root / "manifest.json").stat().st_mtime_ns == stamp
    events.clear()
    build_family(tmp_path, seed=0, scale=TINY, force=True, workers=1, progress=events.append)
    assert events[0].stage == "start" and (built.root / "manifest.json").stat().st_mtime_ns != stamp


def test_a_stale_or_broken_family_is_rebuilt(tmp_path):
    built = build_family(tmp_path, seed=0, scale=TINY, workers=1)
    manifest = json.loads((built.root / "manifest.json").read_text())
    (built.root / "manifest.json").write_text(json.dumps({**manifest, "version": TOY_VERSION - 1}))
    events = []
    ensure_family(tmp_path, seed=0, scale=TINY, progress=events.append)
    assert events and events[0].stage == "start"
    os.remove(built.root / "qwen2-sft" / "model.safetensors")
    events.clear()
    rebuilt = ensure_family(tmp_path, seed=0, scale=TINY, progress=events.append)
    assert events[0].stage == "start" and (rebuilt.root / "qwen2-sft" / "model.safetensors").is_file()


class _Crash(RuntimeError):
    pass


def test_a_crash_leaves_no_half_family_and_keeps_the_previous_one(tmp_path):
    def crash_at_the_third_model(event):
        if event.stage == "start" and event.key == "llama-dpo":
            raise _Crash("killed")

    with pytest.raises(_Crash):
        build_family(tmp_path, seed=0, scale=TINY, workers=1, progress=crash_at_the_third_model)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]  # no family, no temporary folder
    good = build_family(tmp_path, seed=0, scale=TINY, workers=1)
    with pytest.raises(_Crash):
        build_family(tmp_path, seed=0, scale=TINY, workers=2, force=True, progress=crash_at_the_third_model)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", good.root.name]
    assert ensure_family(tmp_path, seed=0, scale=TINY).manifest["built_at"] == good.manifest["built_at"]


def test_toy_home_follows_steersweep_home(monkeypatch, tmp_path):
    monkeypatch.setenv("STEERSWEEP_HOME", str(tmp_path))
    assert toy_home() == tmp_path / "toy"
    monkeypatch.delenv("STEERSWEEP_HOME")
    assert toy_home().parts[-2:] == ("steersweep", "toy")


def test_bad_scale_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="scale: 0 must be > 0"):
        build_family(tmp_path, scale=0)
