"""The judge config: endpoint and key from config or environment, replaceable templates, the judge factory."""

from __future__ import annotations

import pydantic
import pytest
from judge_helpers import items

from steersweep.actors.judges import JUDGMENTS_SUBDIR, JudgeConfig, LocalJudge, OpenAIJudge, build_judge


def test_endpoint_and_key_come_from_the_environment(judge_server, trait, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_BASE_URL", judge_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "key-from-env")
    judge = build_judge({"model": "judge-model", "backoff_initial_s": 0.01}, run_dir=tmp_path)
    assert isinstance(judge, OpenAIJudge) and judge.endpoint == judge_server.base_url
    assert judge.cache.folder == tmp_path / JUDGMENTS_SUBDIR
    result = judge.judge(items(3), trait)
    judge.close()
    assert all(j.trait_score is not None for j in result.judgments)
    assert len(list((tmp_path / JUDGMENTS_SUBDIR).glob("*.parquet"))) == 1


def test_config_values_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("MY_JUDGE_KEY", "secret-from-my-env")
    config = JudgeConfig(model="m", base_url="http://127.0.0.1:2/v1", api_key_env="MY_JUDGE_KEY", max_in_flight=64)
    judge = build_judge(config)
    assert judge.endpoint == "http://127.0.0.1:2/v1" and judge._api_key == "secret-from-my-env"
    assert judge.max_in_flight == 64
    assert "secret" not in repr(JudgeConfig(api_key="secret-in-config"))  # never printed in logs


def test_replaced_template_is_sent_and_keys_the_cache_apart(judge_server, trait, tmp_path):
    template = tmp_path / "terse_coherence.txt"
    template.write_text("COHERENCE? Q={question} A={response} -> 0-100")
    options = {"model": "judge-model", "base_url": judge_server.base_url, "api_key": "k"}
    shipped = build_judge(options, run_dir=tmp_path / "run")
    shipped.judge(items(2), metrics=("coherence",))
    shipped.close()
    replaced = build_judge({**options, "coherence_template": "terse_coherence.txt"}, run_dir=tmp_path / "run",
                           config_dir=tmp_path)
    result = replaced.judge(items(2), metrics=("coherence",))
    replaced.close()
    assert result.counters.cache_hits == 0 and result.counters.judgments == 2  # another template, another key
    assert judge_server.served[-1].startswith("COHERENCE? Q=")
    assert replaced.templates.coherence.version.startswith("terse_coherence-")


def test_bad_config_names_the_field():
    with pytest.raises(pydantic.ValidationError, match="max_in_flite"):
        JudgeConfig.model_validate({"max_in_flite": 4})
    with pytest.raises(pydantic.ValidationError, match="min_mass"):
        JudgeConfig(min_mass=2.0)
    with pytest.raises(pydantic.ValidationError, match="top_logprobs"):
        JudgeConfig(top_logprobs=50)


def test_local_kind_builds_a_local_judge(number_model_dir, trait):
    judge = build_judge({"kind": "local", "model": str(number_model_dir), "use_ray": False, "device": "cpu"})
    assert isinstance(judge, LocalJudge) and judge.judge_id == f"local:{number_model_dir}"
    result = judge.judge(items(2), trait)
    judge.close()
    assert all(j.trait_score is not None and 0 <= j.trait_score <= 100 for j in result.judgments)
