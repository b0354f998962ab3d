"""What one extraction call is asked to do and what it reports back: the plan, its outcome, the judge it needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from steersweep.actors.messages import COMPONENTS
from steersweep.actors.positions import parse_positions
from steersweep.analysis import LabelPolarity, get_method

from .rundir import check_name


class ExtractionError(ValueError):
    """The extraction cannot go on with this plan or data; the message says what to change."""


class _TooFewSamplesError(ExtractionError):
    """A class has too few training samples for one unit; that unit is refused, the others go on."""


class RolloutJudge(Protocol):
    """What the pipeline needs from a judge (``steersweep.actors.judges.Judge`` satisfies it).

    ``judge(items, trait, metrics)`` takes ``(question, response)`` pairs and returns an object whose
    ``trait_scores`` lists one score in [0, 100] (or None) per item, in order.
    """

    def judge(self, items: Sequence[tuple[str, str]], trait: Any, metrics: Sequence[str] = ...) -> Any: ...


@dataclass(frozen=True)
class JudgeVetting:
    """Keep positive rollouts scored >= ``positive_min`` and negative ones scored <= ``negative_max``."""

    positive_min: float = 50.0
    negative_max: float = 50.0

    @property
    def label(self) -> str:
        return f"vet{self.positive_min:g}-{self.negative_max:g}"


@dataclass(frozen=True)
class ExtractionPlan:
    """What to extract for one (model, trait).

    Args:
        model: the model's name in the run directory (``vectors/MODEL/...``).
        layers: decoder layers (0-based); None = every layer.
        components: module outputs to capture (``residual``, ``attn_out``, ``mlp_out``, ``k_proj``, ``v_proj``).
        positions: token positions, e.g. ``response[:5]``, ``response[:]``, ``prompt[-1]``.
        methods: ``mean_diff``, ``probe``, ``gradient``; ``contrastive_probe`` needs a judge.
        rollouts: responses generated per scenario (a scenario with a given ``response`` replays it once).
        generate: generate responses; None = when a position reads the response.
        cosine_filter: drop training samples whose cosine to their class mean is below this (None = off).
        pca_components: within-class principal components removed before fitting (0 = off).
        vetting: judge thresholds; rollouts outside them are left out of the vectors (None = keep all).
        contrastive_thresholds: (high, low) judge-score thresholds for ``contrastive_probe``.
    """

    model: str
    layers: tuple[int, ...] | None = None
    components: tuple[str, ...] = ("residual",)
    positions: tuple[str, ...] = ("response[:5]",)
    methods: tuple[str, ...] = ("mean_diff", "probe")
    rollouts: int = 1
    generate: bool | None = None
    max_new_tokens: int = 16
    do_sample: bool = False
    temperature: float = 1.0
    seed: int = 0
    test_fraction: float = 0.2
    activation_dtype: str = "float32"
    cosine_filter: float | None = None
    pca_components: int = 0
    vetting: JudgeVetting | None = None
    contrastive_thresholds: tuple[float, float] = (60.0, 40.0)
    min_per_class: int = 2
    batch_size: int = 16
    chunk_size: int = 128

    def __post_init__(self) -> None:
        check_name(self.model, "model")
        for component in self.components:
            if component not in COMPONENTS:
                raise ExtractionError(f"components: unknown {component!r}; use one of {', '.join(COMPONENTS)}")
        parse_positions(self.positions)
        for method in self.methods:
            if method != "contrastive_probe":
                get_method(method)
        if self.rollouts < 1:
            raise ExtractionError(f"rollouts: {self.rollouts} must be >= 1")
        if self.rollouts > 1 and not self.do_sample:
            raise ExtractionError(f"rollouts: {self.rollouts} greedy rollouts would be identical; set do_sample=True")
        if self.activation_dtype not in ("float32", "float16"):
            raise ExtractionError(f"activation_dtype: {self.activation_dtype!r}; use float32 or float16")
        if self.pca_components < 0:
            raise ExtractionError(f"pca_components: {self.pca_components} must be >= 0")

    @property
    def needs_responses(self) -> bool:
        if self.generate is not None:
            return self.generate
        return any(p.segment in ("response", "all") for p in parse_positions(self.positions)) or bool(self.vetting)

    def method_label(self, method: str) -> str:
        """The method's folder name, with the options that change the vector: ``probe+vet50-50+cos0.8+pca1``."""
        parts = [method]
        if self.vetting is not None and method != "contrastive_probe":
            parts.append(self.vetting.label)
        if self.cosine_filter is not None:
            parts.append(f"cos{self.cosine_filter:g}")
        if self.pca_components:
            parts.append(f"pca{self.pca_components}")
        return "+".join(parts)


@dataclass
class ExtractionOutcome:
    """What one call did; the counts prove what a rerun skipped."""

    model: str
    trait: str
    capture_calls: int = 0
    generated_rollouts: int = 0
    captured: list[tuple[str, str]] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    vetting_pass: dict[str, tuple[int, int]] | None = None
    """Per polarity, (rollouts kept, rollouts scored)."""
    label_polarity: LabelPolarity | None = None
    rows: list[dict[str, object]] = field(default_factory=list)
