"""The research's adaptive coefficient search, reproduced as a baseline, and its step table.

Per layer: start at a base value; after each step multiply by ``up`` (x1.3) when coherence >= threshold, else by
``down`` (x0.9); ``steps`` steps (4-8); the best step is the highest trait with coherence >= threshold.

The research started from a base *coefficient*, and a base of 0 never moves under multiplication (its layer-8
searches stayed at coef=0 for all four steps). Here a walk starts from the ratio prior (ratio ~0.6) instead, so it
always moves; coefficients are printed to 3 significant digits (the research rounded them to integers, which hid
their real values: 1, 1.3, 1.69 and 1.52 all printed as 1 or 2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class WalkRule:
    """The step rule: x``up`` when coherence >= ``threshold``, else x``down``; ``steps`` steps per layer."""

    threshold: float = 70.0
    up: float = 1.3
    down: float = 0.9
    steps: int = 4

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps: {self.steps}; a walk needs at least one step (the research used 4-8)")
        if not (self.up > 1.0 and 0.0 < self.down < 1.0):
            raise ValueError(f"up={self.up}, down={self.down}: use up > 1 and 0 < down < 1 (research: 1.3 and 0.9)")

    def action(self, coherence: float | None) -> str:
        return f"×{self.up:g}" if coherence is not None and coherence >= self.threshold else f"×{self.down:g}"

    def next_value(self, value: float, coherence: float | None) -> float:
        return value * (self.up if coherence is not None and coherence >= self.threshold else self.down)


@dataclass(frozen=True)
class Step:
    """One evaluated step of a walk."""

    value: float
    """What the walk multiplies (a ratio here; a coefficient in the research)."""
    trait: float | None
    coherence: float | None
    coefficient: float | None = None
    """The coefficient this step used, when the walk runs in ratio space (printed in the table)."""


def walk_values(rule: WalkRule, start: float, steps: Sequence[Step]) -> float | None:
    """The value the next step must try, or None when the walk is done (``rule.steps`` steps taken)."""
    if len(steps) >= rule.steps:
        return None
    if not steps:
        return start
    last = steps[-1]
    return rule.next_value(last.value, last.coherence)


def best_step(rule: WalkRule, steps: Sequence[Step]) -> int | None:
    """Index of the highest trait among steps with coherence >= threshold (the first one on ties); None if none."""
    best = None
    for i, step in enumerate(steps):
        if step.trait is None or step.coherence is None or step.coherence < rule.threshold:
            continue
        if best is None or step.trait > steps[best].trait:  # type: ignore[operator]
            best = i
    return best


def _fmt(value: float | None, width: int, digits: int = 1) -> str:
    return f"{'—':>{width}}" if value is None else f"{value:{width}.{digits}f}"


def _coef(value: float) -> str:
    text = f"{value:.3g}"
    if "e" in text:  # 3 significant digits without exponent notation for the common range
        text = f"{value:.3f}"
    return text


def step_table(rule: WalkRule, steps: Sequence[Step]) -> str:
    """The step table in the research's format (coefficients to 3 significant digits), with the recommendation.

    Example:
        >>> rule = WalkRule(threshold=70, steps=2)
        >>> print(step_table(rule, [Step(1.0, 84.3, 76.0), Step(1.3, 80.9, 73.6)]))  # doctest: +NORMALIZE_WHITESPACE
        Step |  coef | Trait | Coherence | Action
        -----|-------|-------|-----------|-------
          1  |     1 |  84.3 |      76.0 | ×1.3  ★
          2  |   1.3 |  80.9 |      73.6 | (done)
        → Recommended: coef=1 (trait=84.3, coherence=76.0)
    """
    best = best_step(rule, steps)
    lines = ["Step |  coef | Trait | Coherence | Action", "-----|-------|-------|-----------|-------"]
    for i, step in enumerate(steps):
        coef = step.coefficient if step.coefficient is not None else step.value
        action = "(done)" if i == len(steps) - 1 and len(steps) >= rule.steps else rule.action(step.coherence)
        star = "  ★" if i == best else ""
        lines.append(f"  {i + 1}  | {_coef(coef):>5} | {_fmt(step.trait, 5)} | {_fmt(step.coherence, 9)} | "
                     f"{action}{star}")
    lines.append(recommendation(rule, steps))
    return "\n".join(lines)


def recommendation(rule: WalkRule, steps: Sequence[Step]) -> str:
    best = best_step(rule, steps)
    if best is None:
        return f"→ No step reached coherence >= {rule.threshold:g}; no recommendation"
    step = steps[best]
    coef = step.coefficient if step.coefficient is not None else step.value
    return f"→ Recommended: coef={_coef(coef)} (trait={step.trait:.1f}, coherence={step.coherence:.1f})"


def run_walk(rule: WalkRule, start: float, evaluate: Callable[[float], tuple[float | None, float | None]],
             coefficient_of: Callable[[float], float] | None = None) -> list[Step]:
    """Drive one walk to the end with ``evaluate(value) -> (trait, coherence)`` (tests, notebooks)."""
    steps: list[Step] = []
    while (value := walk_values(rule, start, steps)) is not None:
        trait, coherence = evaluate(value)
        steps.append(Step(value, trait, coherence, coefficient_of(value) if coefficient_of else None))
    return steps
