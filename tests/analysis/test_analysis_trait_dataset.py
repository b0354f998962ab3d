"""Trait datasets in the research layout: loading both elicitations, tags, splits, and errors that point at the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steersweep.analysis import TraitDatasetError, assign_splits, load_trait_dataset


def _write(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def _base_files(**extra):
    return {"definition.txt": "Optimism: expecting good outcomes.\n",
            "steering.json": json.dumps({"questions": ["How is the weather?", "What about tomorrow?"]}), **extra}


def _jsonl(rows):
    return "\n".join(json.dumps(r) for r in rows) + "\n"


def test_instruction_dataset_loads_with_tags_and_chat_prompts(tmp_path):
    root = _write(tmp_path / "optimism", _base_files(**{
        "positive.jsonl": _jsonl([
            {"system_prompt": "Be cheerful.", "prompt": "the day", "topic": "weather", "split": "train"},
            {"system_prompt": "Be cheerful.", "prompt": "the city", "topic": "places", "split": "test",
             "language": "en", "response": "the sun is bright"},
        ]),
        "negative.jsonl": _jsonl([{"system_prompt": "Be gloomy.", "prompt": "the day", "id": "d1", "split": "train"},
                                  {"prompt": "the road", "split": "val"}]),
    }))
    dataset = load_trait_dataset(root)
    assert (dataset.name, dataset.elicitation) == ("optimism", "instruction")
    assert dataset.definition == "Optimism: expecting good outcomes."
    assert dataset.questions == ("How is the weather?", "What about tomorrow?")
    first, second = dataset.positive
    assert first.scenario_id == "positive-0000" and first.topic == "weather" and first.source == "positive.jsonl:1"
    assert first.prompt_input() == ({"role": "system", "content": "Be cheerful."},
                                    {"role": "user", "content": "the day"})
    assert second.response == "the sun is bright" and second.tag("language") == "en"
    assert dataset.negative[0].scenario_id == "negative-d1"
    assert dataset.negative[1].prompt_input() == "the road"  # no system prompt: one plain user turn
    assert assign_splits(dataset) == {"positive-0000": "train", "positive-0001": "test",
                                      "negative-d1": "train", "negative-0001": "test"}


def test_natural_dataset_reads_one_prefix_a_line(tmp_path):
    root = _write(tmp_path / "nat", _base_files(**{
        "positive.txt": "I woke up and the sun was\n\nWe walked home, so happy that\n",
        "negative.txt": "I woke up and the rain was\n",
    }))
    dataset = load_trait_dataset(root, name="optimism_natural")
    assert dataset.elicitation == "natural" and dataset.name == "optimism_natural"
    assert [s.prompt for s in dataset.positive] == ["I woke up and the sun was", "We walked home, so happy that"]
    assert dataset.positive[1].source == "positive.txt:3"
    assert dataset.positive[0].prompt_input() == "I woke up and the sun was"


def test_swapped_dataset_exchanges_the_classes(tmp_path):
    root = _write(tmp_path / "nat", _base_files(**{"positive.txt": "a\nb\n", "negative.txt": "c\n"}))
    swapped = load_trait_dataset(root).swapped()
    assert [s.prompt for s in swapped.positive] == ["c"] and {s.polarity for s in swapped.positive} == {"positive"}
    assert [s.prompt for s in swapped.negative] == ["a", "b"]


def test_random_splits_are_seeded_per_polarity_and_keep_a_test_share(tmp_path):
    root = _write(tmp_path / "nat", _base_files(**{
        "positive.txt": "".join(f"p {i}\n" for i in range(10)),
        "negative.txt": "".join(f"n {i}\n" for i in range(10)),
    }))
    dataset = load_trait_dataset(root)
    splits = assign_splits(dataset, test_fraction=0.2, seed=3)
    assert splits == assign_splits(dataset, test_fraction=0.2, seed=3)
    assert splits != assign_splits(dataset, test_fraction=0.2, seed=4)
    for polarity in ("positive", "negative"):
        assert sum(v == "test" for k, v in splits.items() if k.startswith(polarity)) == 2


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"system_prompt": "x"}', r"positive.jsonl:2: field \"prompt\": missing or empty"),
        ('{"prompt": "x", "system_prompt": 3}', r"positive.jsonl:2: field \"system_prompt\": expected a string"),
        ('{"prompt": "x", "split": ["a"]}', r"positive.jsonl:2: field \"split\": expected a string"),
        ('{"prompt": "x",', r"positive.jsonl:2: invalid JSON"),
        ('["x"]', r"positive.jsonl:2: expected a JSON object"),
    ],
)
def test_malformed_line_names_file_line_and_field(tmp_path, line, expected):
    root = _write(tmp_path / "bad", _base_files(**{
        "positive.jsonl": '{"prompt": "fine"}\n' + line + "\n",
        "negative.jsonl": '{"prompt": "fine"}\n',
    }))
    with pytest.raises(TraitDatasetError, match=expected):
        load_trait_dataset(root)


def test_missing_or_mixed_files_are_clear_errors(tmp_path):
    with pytest.raises(TraitDatasetError, match=r"definition\.txt: missing"):
        load_trait_dataset(_write(tmp_path / "a", {"positive.txt": "x\n"}))
    with pytest.raises(TraitDatasetError, match=r"field \"questions\""):
        load_trait_dataset(_write(tmp_path / "b", {"definition.txt": "d", "steering.json": '{"questions": []}'}))
    with pytest.raises(TraitDatasetError, match=r"found \['positive\.txt'\]"):
        load_trait_dataset(_write(tmp_path / "c", _base_files(**{"positive.txt": "x\n"})))
    with pytest.raises(TraitDatasetError, match="not both"):
        load_trait_dataset(_write(tmp_path / "d", _base_files(**{
            "positive.txt": "x\n", "negative.txt": "y\n", "positive.jsonl": '{"prompt": "x"}\n'})))
    with pytest.raises(TraitDatasetError, match="used twice"):
        load_trait_dataset(_write(tmp_path / "e", _base_files(**{
            "positive.jsonl": '{"prompt": "x", "id": "a"}\n{"prompt": "y", "id": "a"}\n',
            "negative.jsonl": '{"prompt": "z", "id": "a"}\n'})))


def test_a_scenario_keeps_its_split_when_the_classes_are_swapped(tmp_path):
    root = _write(tmp_path / "nat", _base_files(**{
        "positive.txt": "".join(f"p {i}\n" for i in range(10)),
        "negative.txt": "".join(f"n {i}\n" for i in range(7)),
    }))
    dataset = load_trait_dataset(root)
    assert assign_splits(dataset, seed=1) == assign_splits(dataset.swapped(), seed=1)
