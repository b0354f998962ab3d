"""``search(...)``: the entry point a notebook user calls, and its SearchResult."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from steersweep.actors.handle import ModelHandle
from steersweep.actors.paths import RunPaths

from ._adaptive import Step, WalkRule, step_table
from ._live import LiveView
from ._prior import RatioPrior
from ._samplers import AdaptiveSearch, DefaultSearch, Sampler
from ._scheduler import Progress, Scheduler, StudyRun
from ._space import SearchSpace
from ._storage import resolve_storage
from ._study import ADOPT, SearchStudy, StudySpec
from ._tables import BASELINE_TRIAL, read_rows, rows_by_trial, trials_frame
from ._trial_rows import summarize
from ._validate import check_study_inputs, vector_layers

logger = logging.getLogger(__name__)


@dataclass
class SearchResult:
    """What a search found: per study the best feasible trial (highest mean trait with coherence >= threshold; ties
    go to the more coherent, then the smaller ratio), with its n and standard errors, and every trial."""

    best: dict[str, dict | None]
    trials: Any
    """pandas DataFrame of the trials table (every study of the run)."""
    run_dir: Path
    progress: Progress | None = None
    steps: dict[str, str] | None = None
    """Per study: the walk step tables in the research's format."""

    def describe(self) -> str:
        lines = []
        for study, row in self.best.items():
            if row is None:
                lines.append(f"{study}: no feasible trial")
                continue
            se = row["trait_score_se"]
            lines.append(f"{study}: best {row['site']} ratio {row['perturbation_ratio']:.3g} (coef "
                         f"{row['coefficient']:.3g}) -> trait {row['trait_score']:.1f}"
                         f"{'' if se is None else f' ± {se:.1f} (SE)'}, coherence {row['coherence']:.1f} "
                         f"(n={row['n']} questions; baseline trait {row['baseline_trait_score']:.1f})")
        return "\n".join(lines)


def best_trial(rows: Sequence[dict]) -> dict | None:
    feasible = [r for r in rows if r["state"] == "COMPLETE" and r["feasible"]]
    if not feasible:
        return None
    return max(feasible, key=lambda r: (r["trait_score"], r["coherence"], -r["perturbation_ratio"]))


def walk_tables(rows: Sequence[dict], sampler: Sampler, threshold: float) -> str:
    """The step table of every walk in a study's trials, in the research's format (3 significant digits)."""
    if isinstance(sampler, AdaptiveSearch):
        rule = WalkRule(threshold if sampler.threshold is None else sampler.threshold, sampler.up, sampler.down,
                        sampler.steps)
    elif isinstance(sampler, DefaultSearch):
        rule = WalkRule(threshold, sampler.up, 0.9, sampler.walk_steps)
    else:
        return ""
    blocks = []
    walks = sorted({(r["layer"], r["site"]) for r in rows if r["source"] == "walk" and r["state"] == "COMPLETE"})
    for _, site in walks:
        steps = [Step(r["perturbation_ratio"], r["trait_score"], r["coherence"], r["coefficient"])
                 for r in sorted(rows, key=lambda r: r["trial_number"])
                 if r["source"] == "walk" and r["site"] == site and r["state"] == "COMPLETE"]
        first = steps[0]
        blocks.append(f"**Layer {site}** (start ratio={first.value:.3g}, coef={first.coefficient:.3g}):\n"
                      f"{step_table(rule, steps)}")
    return "\n\n".join(blocks)


def _replicas(actors: Any, target_model: str | None) -> dict[str, list[ModelHandle]]:
    if isinstance(actors, Mapping):
        return {str(model): [ModelHandle.of(a) for a in (hs if isinstance(hs, list | tuple) else [hs])]
                for model, hs in actors.items()}
    handles = [ModelHandle.of(a) for a in (actors if isinstance(actors, list | tuple) else [actors])]
    if not handles:
        from ._space import SearchConfigError

        raise SearchConfigError("actors: no actor given; pass a ModelWorker, a ModelActor handle or a list of them")
    return {target_model or "target": handles}


def _trait(trait: Any, definition: str | None) -> Any:
    if hasattr(trait, "name") and hasattr(trait, "definition"):
        return trait
    from steersweep.actors.judges import TraitDefinition

    return TraitDefinition(str(trait), definition or str(trait))


def _resume(run: StudyRun, paths: RunPaths) -> None:
    """Reconcile a study with what Parquet holds: the baseline, interrupted trials (told, finished or re-enqueued)."""
    trials = rows_by_trial(read_rows(paths, "trials", run.name))
    responses = rows_by_trial(read_rows(paths, "responses", run.name))
    baseline = responses.get(BASELINE_TRIAL)
    if baseline and len(baseline) == len(run.questions):
        stats = summarize(baseline)
        run.baseline = (stats["trait_score"], stats["coherence"])

    def recorded(number: int, point: Any) -> object:
        if number in trials:
            row = trials[number][0]
            return row["trait_score"], row["coherence"]
        if len(responses.get(number, ())) == len(run.questions):
            return ADOPT
        return None

    _, adopted = run.study.reconcile(recorded)
    for plan in adopted:
        run.deferred.append((plan, sorted(responses[plan.number], key=lambda r: r["question_index"]), 0.0))


def search(
    actors: Any,
    vector: Any,
    questions: Sequence[str],
    space: SearchSpace | None = None,
    sampler: str | Sampler = "default",
    judge: Any = None,
    run_dir: str | Path = "runs/search",
    *,
    trait: Any = "optimism",
    trait_definition: str | None = None,
    target_model: str | None = None,
    vector_source: str = "vector",
    vector_method: str = "mean_diff",
    n_trials: int = 24,
    coherence_threshold: float = 80.0,
    max_new_tokens: int = 32,
    seed: int = 0,
    storage: Any = None,
    prior: RatioPrior | None = None,
    rows_per_call: int | None = None,
    live: bool | None = None,
    console: Any = None,
) -> SearchResult:
    """Search where (layer) and how hard (perturbation ratio) ``vector`` steers the model(s) behind ``actors``.

    One study per target model (``actors`` may map model names to replicas). Everything is checked before any
    generation; rerunning the same call on the same ``run_dir`` resumes. The judge defaults to the rule judge of the
    toy family, cached in the run directory.

    Example:
        >>> result = search(worker, vector, questions, sampler="default", run_dir="runs/s1")  # doctest: +SKIP
        >>> print(result.describe())                                                           # doctest: +SKIP
    """
    paths = RunPaths(run_dir)
    replicas = _replicas(actors, target_model)
    trait_def = _trait(trait, trait_definition)
    vectors = vector_layers(vector)
    space = space if space is not None else SearchSpace()
    specs = [StudySpec(model, trait_def.name, vector_source, vector_method, space, sampler, n_trials,
                       coherence_threshold, seed, prior or RatioPrior()) for model in replicas]
    infos = {model: handles[0].call("info") for model, handles in replicas.items()}
    for spec in specs:  # every check before anything is written or generated
        info = infos[spec.target_model]
        check_study_inputs(spec.target_model, info.num_layers, info.hidden_size, vectors, space, questions)
    resolved = resolve_storage(storage, paths)
    paths.create()
    if judge is None:
        from steersweep.actors.judges import JudgeCache, RuleJudge

        judge = RuleJudge(cache=JudgeCache.for_run_dir(paths.root))
    runs = []
    for spec in specs:
        study = SearchStudy(spec, resolved, infos[spec.target_model].num_layers)
        layers = sorted({layer for site in study.sites for layer in site.layers})
        vector_id = f"search:{spec.name}"
        for handle in replicas[spec.target_model]:
            handle.call("load_vectors", {vector_id: {layer: vectors[layer].astype(np.float32) for layer in layers}})
        norms = replicas[spec.target_model][0].call("activation_norms", layers, "residual", list(questions)).norms
        runs.append(StudyRun(study, vector_id, list(questions), trait_def, {int(k): float(v) for k, v in norms.items()},
                             {layer: float(np.linalg.norm(vectors[layer])) for layer in layers}))
        _resume(runs[-1], paths)
    view = LiveView({r.name: (r.study.spec.n_trials, r.study.spec.coherence_threshold) for r in runs}, console,
                    enabled=live if live is not None else _interactive())
    scheduler = Scheduler(runs, replicas, judge, paths, max_new_tokens=max_new_tokens, rows_per_call=rows_per_call,
                          on_trial=view.on_trial, on_call=view.on_call)
    scheduler.progress.done = sum(r.study.n_complete for r in runs)
    view.progress.update(view.task, completed=scheduler.progress.done)
    with view:
        for run in runs:
            scheduler.flush(run)
        progress = scheduler.run()
    return collect(paths, runs, progress)


def collect(paths: RunPaths, runs: Sequence[StudyRun], progress: Progress | None = None) -> SearchResult:
    frame = trials_frame(paths)
    best, steps = {}, {}
    for run in runs:
        rows = [r for r in frame.to_dict("records") if r["study"] == run.name] if len(frame) else []
        best[run.name] = best_trial(rows)
        steps[run.name] = walk_tables(rows, run.study.sampler, run.study.spec.coherence_threshold)
        if steps[run.name]:
            path = paths.trials_dir / run.name / "steps.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(steps[run.name] + "\n", encoding="utf-8")
    return SearchResult(best, frame, paths.root, progress, steps)


def _interactive() -> bool:
    import sys

    return sys.stderr.isatty()
