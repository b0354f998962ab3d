"""The judges' vocabulary: items, trait definitions, judgments, counters, results and errors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ._templates import METRIC_TRAIT


class JudgeError(RuntimeError):
    """Base class of the judges' errors."""


class JudgeConfigError(JudgeError, ValueError):
    """The judge is configured in a way that cannot work (missing key, bad value); the message names the fix."""


class JudgeLogprobsUnavailableError(JudgeError):
    """The judge model answers but returns no logprobs, so no logprob score can be computed (found at start-up)."""


class JudgeInterruptedError(JudgeError):
    """The judging was stopped on request (``Judge.request_stop``, Ctrl-C in the blocking API) before it finished.

    Every judgment that came back before the stop is already flushed to the judge cache.
    """


class JudgeUnavailableError(JudgeError):
    """The judge endpoint failed too often in a row; the sweep pauses this judge instead of writing failed scores.

    Everything judged before the error is already flushed to the judge cache, so a resumed run asks only for
    the judgments that are still missing.
    """

    def __init__(
        self, message: str, *, endpoint: str, last_error: str, judged: int, reason: str = "", check: str = ""
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.last_error = last_error
        self.judged = judged
        self.reason = reason
        self.check = check


@dataclass(frozen=True)
class JudgeItem:
    """One (question, response) pair to judge."""

    question: str
    response: str


def judge_items(questions: Sequence[str], reply: Any) -> list[JudgeItem]:
    """The items to judge for a ``SteerReply``: each question with the response as the model wrote it.

    The judge reads ``reply.raw_texts`` (decoded with the special tokens other than the final EOS kept), so role
    tokens an over-steered model emits mid-answer (``<|system|>``) count against coherence instead of being
    deleted before judging; ``reply.texts`` where a reply has no raw form.

    Example:
        >>> judge.judge(judge_items(questions, worker.steer(request)), trait)  # doctest: +SKIP
    """
    texts = getattr(reply, "raw_texts", None) or reply.texts
    if len(texts) != len(questions):
        raise ValueError(f"judge_items: {len(questions)} questions for {len(texts)} responses; give one per row")
    return [JudgeItem(question=question, response=text) for question, text in zip(questions, texts, strict=True)]


@dataclass(frozen=True)
class TraitDefinition:
    """The trait the ``trait`` metric measures: its name, the definition that fills the template, and optionally
    the trait's own judge prompt (``eval_prompt``), which then replaces the trait template as written.

    ``eval_prompt`` is a format string with ``{question}`` and ``{answer}`` (or ``{response}``), as in the
    research's trait folders (``steering.json``); ``{trait}`` and ``{definition}`` may appear too.

    Example:
        >>> TraitDefinition("optimism", "Expecting good outcomes and focusing on positives.").name
        'optimism'
    """

    name: str
    definition: str
    eval_prompt: str | None = None

    def __post_init__(self) -> None:
        if self.eval_prompt is not None:
            from ._templates import check_eval_prompt

            check_eval_prompt(self.eval_prompt, f"trait {self.name!r}: eval_prompt")

    @classmethod
    def from_folder(cls, folder: str | Path, name: str | None = None) -> TraitDefinition:
        """A trait folder in the research layout: ``definition.txt`` and, if ``steering.json`` has one, its
        ``eval_prompt`` (used as the trait's judge prompt, as written)."""
        folder = Path(folder)
        name = name or folder.name
        trait = cls.from_file(name, folder / "definition.txt")
        steering = folder / "steering.json"
        if not steering.exists():
            return trait
        try:
            data = json.loads(steering.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise JudgeConfigError(
                f"trait {name!r}: {steering} cannot be read as JSON ({error}); fix the file"
            ) from error
        eval_prompt = data.get("eval_prompt") if isinstance(data, dict) else None
        if eval_prompt is None:
            return trait
        if not isinstance(eval_prompt, str) or not eval_prompt.strip():
            raise JudgeConfigError(
                f'trait {name!r}: {steering} field "eval_prompt" must be a non-empty string with {{question}} and '
                "{answer} placeholders"
            )
        return cls(name=name, definition=trait.definition, eval_prompt=eval_prompt)

    @classmethod
    def from_file(cls, name: str, path: str | Path) -> TraitDefinition:
        """Read the definition from a trait's ``definition.txt``."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise JudgeConfigError(
                f"trait {name!r}: definition file {path} cannot be read ({error.strerror}); fix the path"
            ) from error
        if not text.strip():
            raise JudgeConfigError(f"trait {name!r}: definition file {path} is empty; write what the trait means")
        return cls(name=name, definition=text.strip())

    @property
    def metric_id(self) -> str:
        """The cache's metric field for this trait: name plus a hash of the definition (editing it re-judges)."""
        digest = hashlib.sha256(self.definition.strip().encode("utf-8")).hexdigest()[:12]
        return f"{METRIC_TRAIT}:{self.name}:{digest}"


@dataclass(frozen=True)
class Judgment:
    """The judge's verdict on one item: scores in [0, 100], None where the judge gave no number (or not asked).

    ``trait_mass`` / ``coherence_mass`` are the probability the judge put on integer tokens (logprob judges).
    ``relevance`` is only asked for when the ``relevance`` metric is requested.
    """

    trait_score: float | None
    coherence: float | None
    trait_mass: float | None = None
    coherence_mass: float | None = None
    relevance: float | None = None
    #: (metric, reason) for every metric the endpoint rejected for this item (its score is None)
    rejected: tuple[tuple[str, str], ...] = ()


@dataclass
class JudgeCounters:
    """Work done by a judge: HTTP/model requests, retries, cache hits, None scores and token usage.

    ``rejected``: judgments the endpoint refused for that item alone (HTTP 400/413/422), stored as None scores.
    """

    requests: int = 0
    retries: int = 0
    failures: int = 0
    rejected: int = 0
    cache_hits: int = 0
    judgments: int = 0
    none_scores: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def copy(self) -> JudgeCounters:
        return JudgeCounters(**self.as_dict())

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __sub__(self, other: JudgeCounters) -> JudgeCounters:
        return JudgeCounters(**{name: value - getattr(other, name) for name, value in self.as_dict().items()})


@dataclass(frozen=True)
class JudgeResult:
    """The judgments of one call, in the order of the items, and the counters of that call alone."""

    judgments: tuple[Judgment, ...]
    counters: JudgeCounters

    @property
    def trait_scores(self) -> list[float | None]:
        return [judgment.trait_score for judgment in self.judgments]

    @property
    def coherence_scores(self) -> list[float | None]:
        return [judgment.coherence for judgment in self.judgments]

    @property
    def relevance_scores(self) -> list[float | None]:
        return [judgment.relevance for judgment in self.judgments]

    @property
    def rejected(self) -> list[tuple[int, str, str]]:
        """(item index, metric, reason) of every judgment the endpoint rejected (cached ones included)."""
        return [(i, metric, reason) for i, j in enumerate(self.judgments) for metric, reason in j.rejected]


@dataclass(frozen=True)
class JudgePrompt:
    """One unit of judge work (one item x one metric) handed to a judge implementation."""

    key: str
    metric: str
    metric_id: str
    template_version: str
    question: str
    response: str
    messages: tuple[dict[str, str], ...]
    endpoint: str = ""
