"""StudySpec and SearchStudy: one Optuna study per (target model, trait, vector source), driven by ask/tell.

The objective is the mean trait score over the evaluation questions (maximised); coherence >= threshold is a
constraint (``trial.set_constraint("coherence", threshold - coherence)``, feasible when <= 0), not a penalty.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from ._prior import RatioPrior
from ._samplers import WAIT, Context, Observation, Point, Sampler, make_sampler
from ._space import SearchConfigError, SearchSpace, Site

logger = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
ADOPT = "adopt"
"""``reconcile``: the trial's responses are in Parquet; finish it from them."""


@dataclass(frozen=True)
class StudySpec:
    """What one study searches: a vector from ``vector_source`` steering ``target_model`` for ``trait``."""

    target_model: str
    trait: str
    vector_source: str
    vector_method: str = "mean_diff"
    space: SearchSpace = field(default_factory=SearchSpace)
    sampler: str | Sampler = "default"
    n_trials: int = 24
    coherence_threshold: float = 80.0
    seed: int = 0
    prior: RatioPrior = field(default_factory=RatioPrior)

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise SearchConfigError(f"n_trials: {self.n_trials}; a study needs at least 1 trial")
        if not 0.0 <= self.coherence_threshold <= 100.0:
            raise SearchConfigError(f"coherence_threshold: {self.coherence_threshold} is outside 0-100; the judge "
                                    "scores coherence 0-100 (the research gates at 70 or 80)")

    @property
    def name(self) -> str:
        """The Optuna study name, also a file-name-safe folder name: ``target.trait.source.method``."""
        parts = (self.target_model, self.trait, self.vector_source, self.vector_method)
        return ".".join(_UNSAFE.sub("_", p) for p in parts)

    @property
    def sampler_name(self) -> str:
        return self.sampler if isinstance(self.sampler, str) else self.sampler.name


@dataclass
class TrialPlan:
    """An asked trial: its Optuna trial, its point and site."""

    study: SearchStudy
    trial: optuna.trial.Trial
    point: Point
    site: Site
    retry_of: int | None = None

    @property
    def number(self) -> int:
        return self.trial.number


class SearchStudy:
    """An Optuna study (created or resumed) plus the sampler's proposals and the trials this process runs.

    Example:
        >>> study = SearchStudy(StudySpec("llama-dpo", "optimism", "llama-sft"), "memory", num_layers=4)
        >>> [plan.point.ratio for plan in study.ask(2)]
        [0.6, 0.6]
    """

    def __init__(self, spec: StudySpec, storage: object, num_layers: int) -> None:
        from ._storage import resolve_storage

        self.spec = spec
        self.num_layers = num_layers
        self.sampler = make_sampler(spec.sampler)
        self.sites = spec.space.sites(num_layers)
        self.study = optuna.create_study(
            storage=resolve_storage(storage, None), study_name=spec.name,
            direction="maximize", sampler=self.sampler.optuna_sampler(spec.seed), load_if_exists=True)
        self._check_settings()
        self.running: dict[int, TrialPlan] = {}

    # ------------------------------------------------------------------------------------------- settings
    def _settings(self) -> dict[str, object]:
        return {"space": self.spec.space.fingerprint(self.num_layers), "sampler": self.sampler.name,
                "seed": self.spec.seed, "coherence_threshold": self.spec.coherence_threshold}

    def _check_settings(self) -> None:
        stored = self.study.user_attrs.get("settings")
        settings = self._settings()
        if stored is None:
            self.study.set_user_attr("settings", settings)
            self.study.set_user_attr("sites", [s.label for s in self.sites])
            return
        changed = sorted(k for k in settings if stored.get(k) != settings[k])
        if changed:
            raise SearchConfigError(
                f"study {self.spec.name!r} was started with other settings ({', '.join(changed)}: "
                f"{ {k: stored.get(k) for k in changed} } -> { {k: settings[k] for k in changed} }); resume it with "
                "the same settings, or use a new run directory (or storage)")

    # ------------------------------------------------------------------------------------------- state
    @property
    def name(self) -> str:
        return self.spec.name

    def trials(self, *states: TrialState) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    @property
    def n_complete(self) -> int:
        return len(self.trials(TrialState.COMPLETE))

    @property
    def done(self) -> bool:
        return self.n_complete >= self.spec.n_trials

    def to_ask(self) -> int:
        """How many more trials this process may ask now (complete + running never exceeds ``n_trials``)."""
        return max(0, self.spec.n_trials - self.n_complete - len(self.running))

    def point_of(self, frozen: FrozenTrial) -> Point:
        sign = int(frozen.params.get("sign", self.spec.space.signs[0]))
        return Point(int(frozen.params["site"]), float(frozen.params["ratio"]), sign,
                     str(frozen.user_attrs.get("source", self.sampler.name)))

    def history(self) -> list[Observation]:
        return [Observation(t.number, self.point_of(t), t.user_attrs.get("trait"), t.user_attrs.get("coherence"))
                for t in self.trials(TrialState.COMPLETE)]

    def context(self) -> Context:
        return Context(self.sites, self.num_layers, self.spec.space, self.spec.prior, self.spec.coherence_threshold,
                       self.spec.seed, self.history(), [p.point for p in self.running.values()])

    # ------------------------------------------------------------------------------------------- ask / tell
    def _params(self, point: Point) -> dict[str, object]:
        params: dict[str, object] = {"site": point.site, "ratio": self.spec.space.clip_ratio(point.ratio)}
        if len(self.spec.space.signs) > 1:
            params["sign"] = point.sign
        return params

    def ask(self, max_trials: int) -> list[TrialPlan]:
        """Up to ``max_trials`` new trials (fewer when a walk waits for results, or the study is nearly done)."""
        plans: list[TrialPlan] = []
        while len(plans) < min(max_trials, self.to_ask()):
            if not self.trials(TrialState.WAITING):
                point = self.sampler.propose(self.context())
                if point is WAIT:
                    break
                if point is not None:
                    self.study.enqueue_trial(self._params(point), user_attrs={"source": point.source})
            trial = self.study.ask()
            lo, hi = self.spec.space.ratio
            site = trial.suggest_int("site", 0, len(self.sites) - 1)
            ratio = trial.suggest_float("ratio", float(lo), float(hi), log=self.spec.space.log_ratio)
            signs = self.spec.space.signs
            sign = int(trial.suggest_categorical("sign", list(signs))) if len(signs) > 1 else signs[0]
            source = str(trial.user_attrs.get("source", self.sampler.name))
            if "source" not in trial.user_attrs:
                trial.set_user_attr("source", source)
            retry_of = trial.user_attrs.get("retry_of")
            plan = TrialPlan(self, trial, Point(site, ratio, sign, source), self.sites[site], retry_of)
            self.running[trial.number] = plan
            plans.append(plan)
        return plans

    def tell(self, plan: TrialPlan, trait: float | None, coherence: float | None) -> TrialState:
        """Report a trial (after its rows are in Parquet); no trait or coherence makes it FAIL (it is re-asked)."""
        self.running.pop(plan.number, None)
        return self._tell(plan.trial, trait, coherence)

    def _tell(self, trial: optuna.trial.Trial, trait: float | None, coherence: float | None) -> TrialState:
        if trait is None or coherence is None:
            self.study.tell(trial, state=TrialState.FAIL)
            return TrialState.FAIL
        trial.set_user_attr("trait", float(trait))
        trial.set_user_attr("coherence", float(coherence))
        trial.set_constraint("coherence", self.spec.coherence_threshold - float(coherence))
        self.study.tell(trial, float(trait))
        return TrialState.COMPLETE

    # ------------------------------------------------------------------------------------------- resume
    def reconcile(self, recorded: Callable[[int, Point], object]) -> tuple[dict[str, int], list[TrialPlan]]:
        """Settle the trials a crash left RUNNING. ``recorded(number, point)`` answers from Parquet:
        a ``(trait, coherence)`` pair (the trials table has the row: told from it), ``ADOPT`` (its judged responses
        are all there but not its trial row: returned as a plan for the caller to finish), or None (failed here and
        re-enqueued with the same parameters). Returns counts and the adopted plans."""
        counts = {"told": 0, "adopted": 0, "requeued": 0}
        adopted: list[TrialPlan] = []
        for frozen in self.trials(TrialState.RUNNING):
            if frozen.number in self.running:
                continue
            point = self.point_of(frozen)
            result = recorded(frozen.number, point)
            trial = optuna.trial.Trial(self.study, frozen._trial_id)
            if result is ADOPT:
                plan = TrialPlan(self, trial, point, self.sites[point.site], frozen.user_attrs.get("retry_of"))
                self.running[frozen.number] = plan
                adopted.append(plan)
                counts["adopted"] += 1
            elif result is not None:
                self._tell(trial, *result)  # type: ignore[misc]
                counts["told"] += 1
            else:
                self.study.tell(trial, state=TrialState.FAIL)
                self.study.enqueue_trial(dict(frozen.params), user_attrs={"source": point.source,
                                                                          "retry_of": frozen.number})
                counts["requeued"] += 1
        if any(counts.values()):
            logger.info("%s: resumed; interrupted trials: %d told from the trials table, %d finished from their "
                        "responses, %d re-enqueued with the same parameters", self.name, counts["told"],
                        counts["adopted"], counts["requeued"])
        return counts, adopted
