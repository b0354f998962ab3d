"""Must-show 5: the README's study configs for the research's models (Llama-3.1-8B base vs Instruct; Mistral-7B-v0.1
-> mistral-7b-sft-beta -> zephyr-7b-beta) pass `steersweep validate`, against a Hugging Face cache holding
config.json files of those models' shapes (weights cannot be downloaded here), and fail it for a layer past the
32 decoder layers those files declare."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from steersweep.engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
SHAPES = Path(__file__).parent / "data" / "hf_configs"
HUB = {
    "meta-llama/Llama-3.1-8B": "llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "mistralai/Mistral-7B-v0.1": "mistral-7b", "HuggingFaceH4/mistral-7b-sft-beta": "mistral-7b",
    "HuggingFaceH4/zephyr-7b-beta": "mistral-7b",
}


def readme_configs() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return {m["name"]: m["body"] for m in re.finditer(r"```yaml\n# study: (?P<name>[\w.-]+)\n(?P<body>.*?)```", text,
                                                      re.S)}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """A Hugging Face cache (the hub's own layout: refs/main -> snapshots/COMMIT/config.json) with the stubs."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-cache"
    for repo, shape in HUB.items():
        folder = cache / f"models--{repo.replace('/', '--')}"
        commit = "0" * 40
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text(commit)
        snapshot = folder / "snapshots" / commit
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text((SHAPES / f"{shape}.json").read_text())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def _trait_folders(root: Path) -> None:
    questions = [f"How do you feel about topic {i}?" for i in range(24)]
    for kind in ("natural", "instruction"):
        folder = root / "traits" / kind / "optimism"
        folder.mkdir(parents=True)
        (folder / "definition.txt").write_text("Optimism: hopeful, positive framing of events.\n")
        (folder / "steering.json").write_text(json.dumps({"questions": questions}))
        for polarity, mood in (("positive", "bright"), ("negative", "bleak")):
            if kind == "natural":
                (folder / f"{polarity}.txt").write_text("".join(f"The {mood} morning {i} began\n" for i in range(8)))
            else:
                (folder / f"{polarity}.jsonl").write_text("".join(json.dumps(
                    {"system_prompt": f"Be {mood}.", "prompt": q}) + "\n" for q in questions[:8]))


def test_readme_holds_both_study_configs():
    assert set(readme_configs()) == {"llama-3.1-8b", "zephyr"}


@pytest.mark.parametrize("study", ["llama-3.1-8b", "zephyr"])
def test_readme_study_config_validates(study, tmp_path, hub_cache, capsys):
    _trait_folders(tmp_path)
    path = tmp_path / f"{study}.yaml"
    path.write_text(readme_configs()[study])
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "valid" in out and out.count("32") >= 2 and "4096" in out


@pytest.mark.parametrize("study", ["llama-3.1-8b", "zephyr"])
def test_a_layer_past_the_models_depth_is_refused(study, tmp_path, hub_cache, capsys):
    _trait_folders(tmp_path)
    data = yaml.safe_load(readme_configs()[study])
    data["search"]["layers"] = [12, 32]
    path = tmp_path / f"{study}.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "search.layers: layer 32 is beyond the depth" in err and "32 layers" in err and "0-31" in err


def test_a_model_missing_from_the_cache_is_refused(tmp_path, hub_cache, capsys):
    _trait_folders(tmp_path)
    data = yaml.safe_load(readme_configs()["zephyr"])
    data["models"][2]["path"] = "HuggingFaceH4/zephyr-7b-gamma"
    path = tmp_path / "z.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "models[2].path" in err and "huggingface-cli download HuggingFaceH4/zephyr-7b-gamma" in err
