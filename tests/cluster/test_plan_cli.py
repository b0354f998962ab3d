"""`steersweep plan CONFIG`: the placement of the configured models printed without loading any, or the refusal."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from steersweep.engine.cli import main

DEMO = Path(__file__).resolve().parents[2] / "engine" / "demo.yaml"
LLAMA3_70B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8192,
              "intermediate_size": 28672, "num_hidden_layers": 80, "vocab_size": 128256, "num_attention_heads": 64,
              "num_key_value_heads": 8, "torch_dtype": "bfloat16"}


def _config(tmp_path: Path, models: list[dict]) -> Path:
    config = yaml.safe_load(DEMO.read_text())
    config["models"] = models
    config["vectors"]["transfer"] = [{"source": models[0]["name"], "targets": [m["name"] for m in models]}]
    config["traits"][0]["datasets"] = {"instruction": "toy:instruction"}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_plan_prints_the_placement_of_the_demo_without_loading(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("STEERSWEEP_HOME", str(tmp_path / "home"))  # the toy family is not built: sized from its shape
    assert main(["plan", str(DEMO)]) == 0
    out = capsys.readouterr().out
    for name in ("llama-base", "llama-sft", "llama-dpo"):
        assert f"steersweep/{name}/0:" in out
    assert not (tmp_path / "home").exists()  # nothing was built or loaded


def test_plan_refuses_a_model_that_cannot_fit(capsys, tmp_path):
    folder = tmp_path / "llama-70b"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA3_70B))
    path = _config(tmp_path, [{"name": "llama-70b", "path": str(folder), "dtype": "float32", "replicas": 2}])
    assert main(["plan", str(path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "placement refused: model 'llama-70b' needs" in out and "GPUs seen:" in out
