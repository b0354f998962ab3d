"""Versioned judge prompt templates (trait, coherence, relevance): shipped v1 and v2 sets, replaceable from the config.

v2 (the default) judges coherence as fluency and sense only (truncated, off-topic or trait-saturated text is not
incoherent), moves relevance to its own optional metric, and lets the trait judge answer REFUSAL (no score).
v1 stays selectable; the template version is part of every cache key, so switching never reuses a judgment.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

METRIC_TRAIT = "trait"
METRIC_COHERENCE = "coherence"
METRIC_RELEVANCE = "relevance"
METRICS = (METRIC_TRAIT, METRIC_COHERENCE)
"""The metrics judged by default."""
ALL_METRICS = (METRIC_TRAIT, METRIC_COHERENCE, METRIC_RELEVANCE)

TEMPLATE_VERSIONS = ("v1", "v2")
DEFAULT_TEMPLATE_VERSION = "v2"

_TEMPLATE_FILES = {
    "v1": {METRIC_TRAIT: "trait_v1.txt", METRIC_COHERENCE: "coherence_v1.txt", METRIC_RELEVANCE: "relevance_v2.txt"},
    "v2": {METRIC_TRAIT: "trait_v2.txt", METRIC_COHERENCE: "coherence_v2.txt", METRIC_RELEVANCE: "relevance_v2.txt"},
}
DEFAULT_TEMPLATE_FILES = _TEMPLATE_FILES[DEFAULT_TEMPLATE_VERSION]

_REQUIRED_FIELDS = {
    METRIC_TRAIT: {"question", "response", "definition"},
    METRIC_COHERENCE: {"question", "response"},
    METRIC_RELEVANCE: {"question", "response"},
}
# {answer} is persona_vectors' name for the response
_ALLOWED_FIELDS = {"question", "response", "answer", "definition", "trait"}


class JudgeTemplateError(ValueError):
    """A judge prompt template is missing, unreadable or has the wrong placeholders; the message names the fix."""


@dataclass(frozen=True)
class JudgeTemplate:
    """One prompt template for one metric.

    ``version`` goes into every cache key: it is the template's name plus a hash of its text, so editing a
    template (even without renaming it) never reuses judgments made with the old wording.

    Example:
        >>> template = default_template("coherence")
        >>> template.version.startswith("coherence_v2-")
        True
        >>> "Why?" in template.render(question="Why?", response="Because.")
        True
    """

    metric: str
    name: str
    text: str

    @property
    def version(self) -> str:
        return f"{self.name}-{hashlib.sha256(self.text.encode()).hexdigest()[:12]}"

    def render(self, *, question: str, response: str, trait: str = "", definition: str = "") -> str:
        """Fill the placeholders; the values are inserted verbatim (braces in a response are safe)."""
        return self.text.format_map(
            {
                "question": question, "response": response, "answer": response, "trait": trait,
                "definition": definition.strip(),
            }
        )


def _fields(text: str, source: str) -> set[str]:
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as error:
        raise JudgeTemplateError(f"template {source}: {error}; write a literal brace as '{{{{' or '}}}}'") from error
    unknown = fields - _ALLOWED_FIELDS
    if unknown:
        raise JudgeTemplateError(
            f"template {source}: unknown placeholder(s) {sorted(unknown)}; allowed are "
            f"{sorted(_ALLOWED_FIELDS)} (write a literal brace as '{{{{' or '}}}}')"
        )
    return fields


def _check_fields(metric: str, text: str, source: str) -> None:
    fields = _fields(text, source)
    if "answer" in fields:
        fields = fields | {"response"}
    missing = _REQUIRED_FIELDS[metric] - fields
    if missing:
        raise JudgeTemplateError(
            f"template {source}: the {metric} template must contain the placeholder(s) "
            f"{', '.join('{' + name + '}' for name in sorted(missing))}"
        )


def check_eval_prompt(text: str, source: str) -> None:
    """A trait's own judge prompt needs ``{question}`` and ``{answer}`` (or ``{response}``); nothing else required."""
    fields = _fields(text, source)
    if "question" not in fields or not fields & {"answer", "response"}:
        raise JudgeTemplateError(
            f"{source}: a trait's judge prompt must contain the placeholders {{question}} and {{answer}} "
            "(or {response}); write a literal brace as '{{' or '}}'"
        )


def eval_prompt_template(text: str) -> JudgeTemplate:
    """The trait template made from a trait folder's ``eval_prompt`` (used as written)."""
    check_eval_prompt(text, "eval_prompt")
    return JudgeTemplate(metric=METRIC_TRAIT, name="eval_prompt", text=text)


def _check_metric(metric: str) -> None:
    if metric not in ALL_METRICS:
        raise JudgeTemplateError(f"metric: {metric!r} is not a judge metric; use one of {', '.join(ALL_METRICS)}")


def _check_version(version: str) -> None:
    if version not in TEMPLATE_VERSIONS:
        raise JudgeTemplateError(
            f"template version {version!r} is not shipped; use one of {', '.join(TEMPLATE_VERSIONS)}"
        )


def default_template(metric: str, version: str = DEFAULT_TEMPLATE_VERSION) -> JudgeTemplate:
    """The template shipped with steersweep for ``metric`` in the template set ``version`` (``v2`` by default)."""
    _check_metric(metric)
    _check_version(version)
    file_name = _TEMPLATE_FILES[version][metric]
    text = resources.files("steersweep.actors.judges").joinpath("templates", file_name).read_text(encoding="utf-8")
    _check_fields(metric, text, f"(shipped) {file_name}")
    return JudgeTemplate(metric=metric, name=Path(file_name).stem, text=text)


def load_template(metric: str, path: str | Path) -> JudgeTemplate:
    """A replacement template from a text file; its version is ``<file stem>-<hash of the text>``."""
    _check_metric(metric)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise JudgeTemplateError(
            f"judge template for {metric}: {path} cannot be read ({error.strerror}); fix the path in the config"
        ) from error
    _check_fields(metric, text, str(path))
    return JudgeTemplate(metric=metric, name=path.stem, text=text)


@dataclass(frozen=True)
class JudgeTemplates:
    """The templates a judge uses: ``trait`` (filled from the trait definition), ``coherence`` and ``relevance``."""

    trait: JudgeTemplate
    coherence: JudgeTemplate
    relevance: JudgeTemplate = None  # type: ignore[assignment]  # filled in __post_init__

    def __post_init__(self) -> None:
        if self.relevance is None:
            object.__setattr__(self, "relevance", default_template(METRIC_RELEVANCE))

    @classmethod
    def default(cls, version: str = DEFAULT_TEMPLATE_VERSION) -> JudgeTemplates:
        """The shipped set ``version``: ``v2`` (default) or ``v1`` (the first release's wording)."""
        return cls(
            trait=default_template(METRIC_TRAIT, version),
            coherence=default_template(METRIC_COHERENCE, version),
            relevance=default_template(METRIC_RELEVANCE, version),
        )

    @classmethod
    def from_paths(
        cls,
        trait: str | Path | None = None,
        coherence: str | Path | None = None,
        relevance: str | Path | None = None,
        *,
        version: str = DEFAULT_TEMPLATE_VERSION,
    ) -> JudgeTemplates:
        """The shipped set ``version``, each template replaced by the file given (None keeps the shipped one)."""
        given = {METRIC_TRAIT: trait, METRIC_COHERENCE: coherence, METRIC_RELEVANCE: relevance}
        chosen = {
            metric: load_template(metric, path) if path else default_template(metric, version)
            for metric, path in given.items()
        }
        return cls(**chosen)

    def for_metric(self, metric: str) -> JudgeTemplate:
        _check_metric(metric)
        return {METRIC_TRAIT: self.trait, METRIC_COHERENCE: self.coherence, METRIC_RELEVANCE: self.relevance}[metric]
