"""Trait datasets in the research layout: a definition, evaluation questions and positive/negative scenarios.

A trait folder holds:

- ``definition.txt``: what the judge reads.
- ``steering.json``: evaluation questions, ``{"questions": [...]}`` or a bare list of strings.
- instruction elicitation (chat models): ``positive.jsonl`` / ``negative.jsonl``, one scenario a line with
  ``prompt`` (required), ``system_prompt`` and ``response`` (optional), ``split``, ``topic``, ``language``,
  ``id`` (optional tags); or
- natural elicitation (base models): ``positive.txt`` / ``negative.txt``, one narrative prefix a line.

Example:
    >>> dataset = load_trait_dataset("datasets/traits/pv_instruction/sycophancy")    # doctest: +SKIP
    >>> dataset.elicitation, len(dataset.positive), dataset.positive[0].scenario_id  # doctest: +SKIP
    ('instruction', 100, 'positive-0000')
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

POLARITIES = ("positive", "negative")
_TAG_FIELDS = ("split", "topic", "language")
_KNOWN_FIELDS = {"prompt", "system_prompt", "response", "id", *_TAG_FIELDS}


class TraitDatasetError(ValueError):
    """A trait folder or one of its lines is malformed; the message names the file, the line and the field."""


@dataclass(frozen=True)
class Scenario:
    """One contrast scenario: a prompt (with a system prompt for instruction elicitation) of one polarity."""

    scenario_id: str
    polarity: str
    prompt: str
    system_prompt: str | None = None
    response: str | None = None
    split: str | None = None
    topic: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    """Other string fields of the line (e.g. ``language``), for generalization matrices."""
    source: str = ""
    """``file:line`` the scenario came from."""

    def prompt_input(self) -> str | tuple[dict[str, str], ...]:
        """What a ModelWorker takes: a chat (system + user turns) or the raw narrative text."""
        if self.system_prompt is None:
            return self.prompt
        return ({"role": "system", "content": self.system_prompt}, {"role": "user", "content": self.prompt})

    def tag(self, name: str) -> str | None:
        if name == "split":
            return self.split
        if name == "topic":
            return self.topic
        return self.tags.get(name)


@dataclass(frozen=True)
class TraitDataset:
    """A loaded trait folder. ``elicitation`` is ``instruction`` (jsonl, chat) or ``natural`` (txt, base model)."""

    name: str
    root: Path
    definition: str
    questions: tuple[str, ...]
    elicitation: str
    positive: tuple[Scenario, ...]
    negative: tuple[Scenario, ...]

    @property
    def scenarios(self) -> tuple[Scenario, ...]:
        return self.positive + self.negative

    def swapped(self) -> TraitDataset:
        """The same dataset with positive and negative exchanged (a polarity check: vectors come out negated)."""
        flip = {"positive": "negative", "negative": "positive"}
        return replace(
            self,
            positive=tuple(replace(s, polarity=flip[s.polarity]) for s in self.negative),
            negative=tuple(replace(s, polarity=flip[s.polarity]) for s in self.positive),
        )


def _error(path: Path, line: int | None, message: str) -> TraitDatasetError:
    where = f"{path}:{line}" if line is not None else str(path)
    return TraitDatasetError(f"{where}: {message}")


def _read_definition(root: Path) -> str:
    path = root / "definition.txt"
    if not path.exists():
        raise _error(path, None, "missing; write what the judge should score (the trait's definition) in it")
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise _error(path, None, "is empty; write the trait's definition in it")
    return text


def _read_questions(root: Path) -> tuple[str, ...]:
    path = root / "steering.json"
    if not path.exists():
        raise _error(path, None, 'missing; write {"questions": ["...", ...]} with the evaluation questions')
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise _error(path, exc.lineno, f"invalid JSON ({exc.msg})") from None
    questions = data.get("questions") if isinstance(data, dict) else data
    if not isinstance(questions, list) or not questions:
        raise _error(path, None, 'field "questions": expected a non-empty list of strings')
    for i, question in enumerate(questions):
        if not isinstance(question, str) or not question.strip():
            raise _error(path, None, f'field "questions"[{i}]: expected a non-empty string, got {question!r}')
    return tuple(questions)


def _read_jsonl(path: Path, polarity: str) -> tuple[Scenario, ...]:
    scenarios, seen_ids = [], set()
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _error(path, line_no, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(record, dict):
                raise _error(path, line_no, f"expected a JSON object, got {type(record).__name__}")
            prompt = record.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise _error(path, line_no, 'field "prompt": missing or empty; every scenario needs a prompt string')
            for name in ("system_prompt", "response", "id", *_TAG_FIELDS):
                value = record.get(name)
                if value is not None and not isinstance(value, str):
                    raise _error(path, line_no, f'field "{name}": expected a string or null, got {value!r}')
            # ids are prefixed with the polarity so that matched pairs may share an id across the two files
            scenario_id = f"{polarity}-{record['id']}" if record.get("id") else f"{polarity}-{len(scenarios):04d}"
            if scenario_id in seen_ids:
                raise _error(path, line_no, f'field "id": {record["id"]!r} is used twice in this file; make ids unique')
            seen_ids.add(scenario_id)
            tags = {k: v for k, v in record.items() if k not in _KNOWN_FIELDS and isinstance(v, str)}
            if record.get("language") is not None:
                tags["language"] = record["language"]
            scenarios.append(Scenario(
                scenario_id=scenario_id, polarity=polarity, prompt=prompt,
                system_prompt=record.get("system_prompt"), response=record.get("response"),
                split=record.get("split"), topic=record.get("topic"), tags=tags, source=f"{path.name}:{line_no}",
            ))
    if not scenarios:
        raise _error(path, None, "holds no scenario; write one JSON object a line")
    return tuple(scenarios)


def _read_txt(path: Path, polarity: str) -> tuple[Scenario, ...]:
    scenarios = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            text = line.rstrip("\n").rstrip("\r")
            if not text.strip():
                continue
            scenarios.append(Scenario(scenario_id=f"{polarity}-{len(scenarios):04d}", polarity=polarity,
                                      prompt=text, source=f"{path.name}:{line_no}"))
    if not scenarios:
        raise _error(path, None, "holds no narrative prefix; write one a line")
    return tuple(scenarios)


def load_trait_dataset(root: str | os.PathLike[str], name: str | None = None) -> TraitDataset:
    """Load a trait folder (see the module docstring for the layout).

    Raises:
        TraitDatasetError: naming the file, the line number and the field of the first problem found.
    """
    root = Path(root)
    if not root.is_dir():
        raise TraitDatasetError(f"{root}: not a directory; point to a trait folder with definition.txt")
    definition = _read_definition(root)
    questions = _read_questions(root)
    has_jsonl = [(root / f"{p}.jsonl").exists() for p in POLARITIES]
    has_txt = [(root / f"{p}.txt").exists() for p in POLARITIES]
    if any(has_jsonl) and any(has_txt):
        raise TraitDatasetError(
            f"{root}: has both .jsonl and .txt scenarios; keep positive/negative.jsonl (instruction elicitation) "
            "or positive/negative.txt (natural elicitation), not both"
        )
    if all(has_jsonl):
        elicitation, reader, suffix = "instruction", _read_jsonl, ".jsonl"
    elif all(has_txt):
        elicitation, reader, suffix = "natural", _read_txt, ".txt"
    else:
        present = [p.name for p in sorted(root.iterdir()) if p.suffix in (".jsonl", ".txt") and p.stem in POLARITIES]
        raise TraitDatasetError(
            f"{root}: needs positive.jsonl + negative.jsonl or positive.txt + negative.txt; found {present or 'none'}"
        )
    positive = reader(root / f"positive{suffix}", "positive")
    negative = reader(root / f"negative{suffix}", "negative")
    return TraitDataset(
        name=name or root.name, root=root, definition=definition, questions=questions, elicitation=elicitation,
        positive=positive, negative=negative,
    )


def assign_splits(dataset: TraitDataset, test_fraction: float = 0.2, seed: int = 0) -> dict[str, str]:
    """``{scenario_id: "train" | "test"}``: the scenario's own ``split`` tag when every scenario has one of
    ``train``/``test``/``val`` (``val`` counts as test), else a seeded random held-out share per polarity.

    Rollouts of one scenario always share its split, so held-out numbers never see a training prompt; a scenario
    keeps its split in :meth:`TraitDataset.swapped`.
    """
    tags = [s.split for s in dataset.scenarios]
    if all(tag in ("train", "test", "val") for tag in tags):
        return {s.scenario_id: "train" if s.split == "train" else "test" for s in dataset.scenarios}
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction: {test_fraction} must be in [0, 1)")
    out: dict[str, str] = {}
    for scenarios in (dataset.positive, dataset.negative):
        # seeded by the class's own scenario ids, so a scenario keeps its split when the classes are swapped
        ids_digest = zlib.crc32("\n".join(s.scenario_id for s in scenarios).encode("utf-8"))
        order = np.random.default_rng([seed, ids_digest]).permutation(len(scenarios))
        n_test = round(test_fraction * len(scenarios))
        if test_fraction > 0 and len(scenarios) >= 2:
            n_test = min(max(n_test, 1), len(scenarios) - 1)
        test = set(order[:n_test].tolist())
        for i, scenario in enumerate(scenarios):
            out[scenario.scenario_id] = "test" if i in test else "train"
    return out
