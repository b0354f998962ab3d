"""Samplers: what a study tries next. Each proposes a point itself (walks, grids, the prior) or lets Optuna's own
sampler choose; every proposal becomes an Optuna trial, so storage, resume and optuna-dashboard work the same way.

Proposals are a pure function of the study's history (finished trials) and what is still running, so a resumed
study continues exactly where it stopped.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import optuna

from ._adaptive import Step, WalkRule, walk_values
from ._prior import RatioPrior
from ._space import SearchSpace, Site


@dataclass(frozen=True)
class Point:
    """One trial's parameters: a site (index into the study's sites), a perturbation ratio and a sign."""

    site: int
    ratio: float
    sign: int = 1
    source: str = ""

    @property
    def key(self) -> tuple[int, float, int]:
        return self.site, self.ratio, self.sign


@dataclass(frozen=True)
class Observation:
    """A finished trial as the samplers see it."""

    number: int
    point: Point
    trait: float | None
    coherence: float | None


class _Wait:
    def __repr__(self) -> str:
        return "WAIT"


WAIT = _Wait()
"""A proposal meaning "nothing to try until a running trial reports" (a walk waiting for its last step)."""


@dataclass
class Context:
    """What a sampler may look at when it proposes."""

    sites: Sequence[Site]
    num_layers: int
    space: SearchSpace
    prior: RatioPrior
    threshold: float
    seed: int
    history: list[Observation] = field(default_factory=list)
    pending: list[Point] = field(default_factory=list)

    def tried(self) -> set[tuple[int, float, int]]:
        return {o.point.key for o in self.history} | {p.key for p in self.pending}


class Sampler:
    """Base: no proposals of its own, Optuna's RandomSampler underneath."""

    name = "random"

    def optuna_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=seed)

    def propose(self, context: Context) -> Point | _Wait | None:
        """A point to enqueue, None to let the Optuna sampler choose, or WAIT."""
        return None


class RandomSearch(Sampler):
    """Uniform in site and log-ratio (Optuna's RandomSampler)."""

    name = "random"


def _prior_points(context: Context) -> list[Point]:
    sign = context.space.signs[0]
    ratio = context.space.clip_ratio(context.prior.start_ratio)
    return [Point(i, ratio, sign, "prior") for i in context.prior.start_sites(context.sites, context.num_layers)]


class TPESearch(Sampler):
    """The prior's points first, then Optuna's TPE with the coherence constraint (``trial.set_constraint``)."""

    name = "tpe"

    def __init__(self, n_startup_trials: int = 10, use_prior: bool = True) -> None:
        self.n_startup_trials = n_startup_trials
        self.use_prior = use_prior

    def optuna_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials, multivariate=True,
                                          constant_liar=True)

    def propose(self, context: Context) -> Point | _Wait | None:
        if self.use_prior:
            tried = context.tried()
            for point in _prior_points(context):
                if point.key not in tried:
                    return point
        return None


class GPSearch(TPESearch):
    """The prior's points first, then Optuna's Gaussian-process sampler with the coherence constraint."""

    name = "gp"

    def optuna_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        import warnings

        with warnings.catch_warnings():  # deterministic_objective is "experimental" in Optuna 5; greedy decoding is
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # deterministic, so we use it
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=self.n_startup_trials,
                                             deterministic_objective=True)


def grid_ratios(space: SearchSpace, factor: float = 1.45) -> list[float]:
    """Geometric ratio grid from the low end of the range, ``factor`` apart (x1.45: 10 points over 0.05-2.0)."""
    lo, hi = (float(v) for v in space.ratio)
    count = math.floor(math.log(hi / lo) / math.log(factor) + 1e-9) + 1
    return [lo * factor**k for k in range(count)]


class GridSearch(Sampler):
    """A fixed site x ratio grid in a seeded shuffled order, each point once (repeats are skipped here, since
    Optuna's GridSampler may hand the same point out twice across resumes); random search once it is exhausted."""

    name = "grid"

    def __init__(self, factor: float = 1.45, shuffle: bool = True) -> None:
        self.factor = factor
        self.shuffle = shuffle

    def points(self, context: Context) -> list[Point]:
        points = [Point(i, r, s, "grid") for i in range(len(context.sites)) for r in grid_ratios(context.space,
                                                                                                 self.factor)
                  for s in context.space.signs]
        if self.shuffle:
            random.Random(context.seed).shuffle(points)
        return points

    def propose(self, context: Context) -> Point | _Wait | None:
        tried = context.tried()
        return next((p for p in self.points(context) if p.key not in tried), None)


def _walk_steps(context: Context, site: int, source: str) -> tuple[list[Step], bool]:
    """The finished steps of the walk on ``site`` and whether one of its steps is still running."""
    steps = [Step(o.point.ratio, o.trait, o.coherence) for o in context.history
             if o.point.source == source and o.point.site == site]
    running = any(p.source == source and p.site == site for p in context.pending)
    return steps, running


class AdaptiveSearch(Sampler):
    """The research's procedure: on every single layer, walk the ratio from the prior (x1.3 when coherent, else
    x0.9) for ``steps`` steps, layer after layer (layers run side by side when a batch has room); random search
    afterwards. Starts from the prior ratio, not from a base coefficient (a base of 0 never moves)."""

    name = "adaptive"

    def __init__(self, steps: int = 4, up: float = 1.3, down: float = 0.9, threshold: float | None = None) -> None:
        self.steps, self.up, self.down, self.threshold = steps, up, down, threshold

    def rule(self, context: Context) -> WalkRule:
        threshold = context.threshold if self.threshold is None else self.threshold
        return WalkRule(threshold=threshold, up=self.up, down=self.down, steps=self.steps)

    def propose(self, context: Context) -> Point | _Wait | None:
        rule = self.rule(context)
        waiting = False
        sign = context.space.signs[0]
        for site, info in enumerate(context.sites):
            if not info.is_single:
                continue
            steps, running = _walk_steps(context, site, "walk")
            value = walk_values(rule, context.prior.start_ratio, steps)
            if value is None:
                continue
            if running:
                waiting = True
                continue
            return Point(site, context.space.clip_ratio(value), sign, "walk")
        return WAIT if waiting else None


class DefaultSearch(Sampler):
    """What a user gets without choosing: the prior's start (ratio ~0.6 on the middle layers), then the ratio walked
    up by the research's x1.3 rule on each of those layers, side by side, while coherence holds (a walk stops at its
    first incoherent step, at ``walk_steps`` steps, or at the top of the range); then, on each layer whose walk broke,
    up to ``bisect_steps`` geometric bisections between its highest coherent and lowest incoherent ratio (the trait
    grows with the ratio, so the best coherent config sits just below the breakdown, often in a band narrower than
    one x1.3 step); then constrained TPE, seeded with every trial so far, refines."""

    name = "default"

    def __init__(self, walk_steps: int = 6, up: float = 1.3, bisect_steps: int = 3, resolution: float = 1.03) -> None:
        self.walk_steps, self.up = walk_steps, up
        self.bisect_steps, self.resolution = bisect_steps, resolution

    def _bisection(self, context: Context, site: int) -> float | None:
        """The next ratio between the highest coherent and the lowest incoherent ratio tried on ``site``."""
        seen = [o for o in context.history if o.point.site == site and o.point.source in ("walk", "bisect")]
        if sum(o.point.source == "bisect" for o in seen) >= self.bisect_steps:
            return None
        coherent = [o.point.ratio for o in seen if o.coherence is not None and o.coherence >= context.threshold]
        broken = [o.point.ratio for o in seen if o.coherence is None or o.coherence < context.threshold]
        if not coherent or not broken:
            return None
        lo = max(coherent)
        above = [r for r in broken if r > lo]
        if not above:
            return None
        hi = min(above)
        if hi / lo <= self.resolution:
            return None
        return context.space.clip_ratio(float((lo * hi) ** 0.5))

    def optuna_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=0, multivariate=True, constant_liar=True)

    def propose(self, context: Context) -> Point | _Wait | None:
        sign = context.space.signs[0]
        hi = float(context.space.ratio[1])
        candidates = []
        waiting = False
        for site in context.prior.start_sites(context.sites, context.num_layers):
            steps, running = _walk_steps(context, site, "walk")
            bisected, bisecting = _walk_steps(context, site, "bisect")
            if running or bisecting:
                waiting = True
                continue
            tried = len(steps) + len(bisected)
            if steps:
                last = steps[-1]
                coherent = last.coherence is not None and last.coherence >= context.threshold
                if not coherent or len(steps) >= self.walk_steps or last.value >= hi:
                    value = self._bisection(context, site)
                    if value is not None:
                        candidates.append((tried, site, value, "bisect"))
                    continue
                value = context.space.clip_ratio(last.value * self.up)
            else:
                value = context.space.clip_ratio(context.prior.start_ratio)
            candidates.append((tried, site, value, "walk"))
        if candidates:
            _, site, value, source = min(candidates)
            return Point(site, value, sign, source)
        return WAIT if waiting else None


SAMPLERS: dict[str, type[Sampler]] = {cls.name: cls for cls in (DefaultSearch, AdaptiveSearch, TPESearch, GPSearch,
                                                                 GridSearch, RandomSearch)}


def make_sampler(sampler: str | Sampler) -> Sampler:
    """A sampler by name (``default``, ``adaptive``, ``tpe``, ``gp``, ``grid``, ``random``) or the object itself."""
    if isinstance(sampler, Sampler):
        return sampler
    try:
        return SAMPLERS[sampler]()
    except KeyError:
        from ._space import SearchConfigError

        raise SearchConfigError(f"sampler: {sampler!r} is not a sampler; use one of {', '.join(SAMPLERS)}") from None
