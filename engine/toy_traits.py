"""The toy family's optimism trait as trait folders (``toy:natural`` and ``toy:instruction`` in a config)."""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFINITION = ("Optimism: the answer describes things with optimistic, cheerful adjectives (lovely, bright, hopeful) "
              "rather than pessimistic, gloomy ones (dull, broken, bleak).")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_toy_trait(root: Path, kind: str) -> Path:
    """``root/toy-natural`` (narrative prefixes, .txt) or ``root/toy-instruction`` (system prompts, .jsonl).

    Deterministic: the same corpus gives the same files, so rewriting on resume changes nothing.
    """
    from steersweep.actors.toy import contrast_prompts, evaluation_questions, natural_prefixes

    folder = root / f"toy-{kind}"
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "definition.txt", DEFINITION + "\n")
    _write(folder / "steering.json", json.dumps({"questions": evaluation_questions()}, indent=1))
    if kind == "natural":
        pairs = natural_prefixes()
        _write(folder / "positive.txt", "".join(f"{p.positive}\n" for p in pairs))
        _write(folder / "negative.txt", "".join(f"{p.negative}\n" for p in pairs))
        return folder
    for polarity in ("positive", "negative"):
        lines = []
        for pair in contrast_prompts():
            turns = getattr(pair, polarity)
            system = next(t["content"] for t in turns if t["role"] == "system")
            user = next(t["content"] for t in turns if t["role"] == "user")
            lines.append(json.dumps({"system_prompt": system, "prompt": user, "topic": pair.topic}))
        _write(folder / f"{polarity}.jsonl", "\n".join(lines) + "\n")
    return folder
