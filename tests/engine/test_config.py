"""Must-show 4: malformed configs give exit code 2 and one line naming the field and the fix, before any model loads;
a changed config on resume is refused with the diff. Also: the resolved config round-trips, and the hard-coded
lists of validation (toy keys, judge keys, components) match the packages they mirror."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from steersweep.engine.cli import main
from steersweep.engine.config import ConfigError, SweepConfig, load_config, parse_config


def _model_dir(root: Path, layers: int = 4, hidden: int = 32) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                                                  "num_hidden_layers": layers, "hidden_size": hidden}))
    return root


@pytest.fixture
def good(tmp_path, trait_dir) -> dict:
    trait = trait_dir
    return {
        "name": "t",
        "models": [{"name": "base", "path": str(_model_dir(tmp_path / "base")), "variant": "base",
                    "chat_template": False},
                   {"name": "chat", "path": str(_model_dir(tmp_path / "chat")), "variant": "sft"}],
        "traits": [{"name": "cheerful", "datasets": {"instruction": str(trait)}}],
        "vectors": {"transfer": [{"source": "chat", "targets": ["chat", "base"]}]},
        "search": {"layers": [1, 2], "trials": 4, "questions": 2},
        "judge": {"kind": "rule"},
    }


def _write(tmp_path: Path, data: dict, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_good_config_validates_and_round_trips(tmp_path, good, capsys):
    path = _write(tmp_path, good)
    assert main(["validate", str(path)]) == 0
    assert "valid" in capsys.readouterr().out
    config = load_config(path)
    again = parse_config(yaml.safe_load(config.to_yaml()))
    assert again == config
    assert config.search_units() == [("chat", "cheerful", "chat"), ("base", "cheerful", "chat")]


def _break(good: dict, tmp_path: Path, case: str) -> dict:
    bad = copy.deepcopy(good)
    if case == "missing field":
        del bad["vectors"]
    elif case == "wrong type":
        bad["search"]["trials"] = "many"
    elif case == "unknown key":
        bad["search"]["trails"] = 10
    elif case == "layer beyond depth":
        bad["search"]["layers"] = [1, 7]
    elif case == "model path missing":
        bad["models"][1]["path"] = str(tmp_path / "no-such-model")
    elif case == "trait without definition":
        (Path(bad["traits"][0]["datasets"]["instruction"]) / "definition.txt").unlink()
    elif case == "unknown transfer target":
        bad["vectors"]["transfer"][0]["targets"] = ["chat", "chatt"]
    elif case == "bad ratio range":
        bad["search"]["ratio_range"] = [1.0, float("nan")]
    elif case == "unknown judge key":
        bad["judge"]["modle"] = "x"
    elif case == "bad position":
        bad["traits"][0]["positions"] = ["respone[:5]"]
    elif case == "duplicate layer":
        bad["search"]["layers"] = [1, 1]
    return bad


CASES = {  # case -> (field named in the error, words of the fix)
    "missing field": ("vectors", "is required"),
    "wrong type": ("search.trials", "integer"),
    "unknown key": ("search.trails", "did you mean 'trials'"),
    "layer beyond depth": ("search.layers", "layers 0-3"),
    "model path missing": ("models[1].path", "fix the path"),
    "trait without definition": ("traits[0].datasets.instruction", "definition.txt"),
    "unknown transfer target": ("vectors.transfer[0].targets[1]", "did you mean 'chat'"),
    "bad ratio range": ("search.ratio_range", "finite"),
    "unknown judge key": ("judge.modle", "did you mean 'model'"),
    "bad position": ("traits[0].positions[0]", "response[:5]"),
    "duplicate layer": ("search.layers", "each layer once"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_config_is_exit_2_with_one_line_naming_field_and_fix(case, tmp_path, good, capsys, monkeypatch):
    import steersweep.engine.pipeline as pipeline

    def no_model(*args, **kwargs):
        raise AssertionError("a model was about to load")

    monkeypatch.setattr(pipeline.Pipeline, "actor", no_model)
    path = _write(tmp_path, _break(good, tmp_path, case))
    for argv in (["validate", str(path)], ["run", str(path), "--run-dir", str(tmp_path / "run")]):
        assert main(argv) == 2, (case, argv)
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        field, fix = CASES[case]
        assert len(lines) == 1, captured.err
        assert field in lines[0] and fix in lines[0], lines[0]
        assert "Traceback" not in captured.err and captured.out == ""
    assert not (tmp_path / "run").exists(), "nothing is written before the config is valid"


def test_installed_script_exits_2_on_a_bad_config_in_about_a_second(tmp_path, good):
    bad = _break(good, tmp_path, "unknown key")
    path = _write(tmp_path, bad)
    script = Path(sys.executable).parent / "steersweep"
    result = subprocess.run([str(script), "validate", str(path)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "search.trails" in result.stderr
    assert result.stdout == ""


def test_changed_config_on_resume_is_refused_with_the_diff(tmp_path, good, capsys):
    from steersweep.engine.manifest import freeze_config

    config = parse_config(good)
    freeze_config(tmp_path / "run", config.to_yaml())
    changed = copy.deepcopy(good)
    changed["search"]["trials"] = 9
    path = _write(tmp_path, changed)
    assert main(["run", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "search.trials: 4 -> 9" in err and "steersweep resume" in err


def test_bad_option_values_are_refused_before_anything_is_written(tmp_path, capsys):
    assert main(["demo", "--run-dir", str(tmp_path / "d"), "--ratio", "1"]) == 2  # no abbreviations
    assert "unrecognized arguments: --ratio" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_mirrored_lists_match_their_packages():
    from steersweep.actors.judges import JudgeConfig
    from steersweep.actors.messages import COMPONENTS, STEERABLE_COMPONENTS
    from steersweep.actors.toy import FAMILY_KEYS
    from steersweep.engine import validation

    assert validation.TOY_KEYS == FAMILY_KEYS
    assert tuple(JudgeConfig.model_fields) == validation.JUDGE_KEYS
    assert validation.COMPONENTS == COMPONENTS and validation.STEERABLE_COMPONENTS == STEERABLE_COMPONENTS


def test_config_error_carries_the_field():
    with pytest.raises(ConfigError) as info:
        parse_config({"models": [], "traits": [], "vectors": {"transfer": []}})
    assert info.value.field == "models"
    assert SweepConfig.model_fields["search"].default.sampler == "constrained_tpe"
