"""Versioned judge prompt templates (trait and coherence): shipped defaults, replaceable from the config."""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

METRIC_TRAIT = "trait"
METRIC_COHERENCE = "coherence"
METRICS = (METRIC_TRAIT, METRIC_COHERENCE)

DEFAULT_TEMPLATE_FILES = {METRIC_TRAIT: "trait_v1.txt", METRIC_COHERENCE: "coherence_v1.txt"}

_REQUIRED_FIELDS = {METRIC_TRAIT: {"question", "response", "definition"}, METRIC_COHERENCE: {"question", "response"}}
_ALLOWED_FIELDS = {"question", "response", "definition", "trait"}


class JudgeTemplateError(ValueError):
    """A judge prompt template is missing, unreadable or has the wrong placeholders; the message names the fix."""


@dataclass(frozen=True)
class JudgeTemplate:
    """One prompt template for one metric.

    ``version`` goes into every cache key: it is the template's name plus a hash of its text, so editing a
    template (even without renaming it) never reuses judgments made with the old wording.

    Example:
        >>> template = default_template("coherence")
        >>> template.version.startswith("coherence_v1-")
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
            {"question": question, "response": response, "trait": trait, "definition": definition.strip()}
        )


def _check_fields(metric: str, text: str, source: str) -> None:
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as error:
        raise JudgeTemplateError(
            f"template {source}: {error}; write a literal brace as '{{{{' or '}}}}'"
        ) from error
    unknown = fields - _ALLOWED_FIELDS
    if unknown:
        raise JudgeTemplateError(
            f"template {source}: unknown placeholder(s) {sorted(unknown)}; allowed are "
            f"{sorted(_ALLOWED_FIELDS)} (write a literal brace as '{{{{' or '}}}}')"
        )
    missing = _REQUIRED_FIELDS[metric] - fields
    if missing:
        raise JudgeTemplateError(
            f"template {source}: the {metric} template must contain the placeholder(s) "
            f"{', '.join('{' + name + '}' for name in sorted(missing))}"
        )


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise JudgeTemplateError(f"metric: {metric!r} is not a judge metric; use one of {', '.join(METRICS)}")


def default_template(metric: str) -> JudgeTemplate:
    """The template shipped with steersweep for ``metric`` (``trait`` or ``coherence``)."""
    _check_metric(metric)
    file_name = DEFAULT_TEMPLATE_FILES[metric]
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
    """The pair of templates a judge uses: ``trait`` (filled from the trait definition) and ``coherence``."""

    trait: JudgeTemplate
    coherence: JudgeTemplate

    @classmethod
    def default(cls) -> JudgeTemplates:
        return cls(trait=default_template(METRIC_TRAIT), coherence=default_template(METRIC_COHERENCE))

    @classmethod
    def from_paths(
        cls, trait: str | Path | None = None, coherence: str | Path | None = None
    ) -> JudgeTemplates:
        """Shipped templates, each replaced by the file given (None keeps the shipped one)."""
        return cls(
            trait=load_template(METRIC_TRAIT, trait) if trait else default_template(METRIC_TRAIT),
            coherence=load_template(METRIC_COHERENCE, coherence) if coherence else default_template(METRIC_COHERENCE),
        )

    def for_metric(self, metric: str) -> JudgeTemplate:
        _check_metric(metric)
        return self.trait if metric == METRIC_TRAIT else self.coherence
