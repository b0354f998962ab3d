"""`steersweep demo`: the main job end to end on the embedded toy family.

toy family (built on first use) -> Ray actors for the SFT and DPO models -> contrast captures on SFT -> mean-diff
vector per layer -> activation norms -> ONE batched steer call per model over every (layer, perturbation ratio,
question) -> rule judge through the judge cache -> trials and responses as Parquet -> a table of where and how hard
the vector steers each model.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from steersweep.actors import CaptureRequest, ModelActor, ModelSpec, SteeringTerm, SteerRequest, SteerRow
from steersweep.actors.arrow_io import read_parquet_dir, write_parquet_atomic
from steersweep.actors.judges import JudgeCache, RuleJudge, TraitDefinition
from steersweep.analysis import TraitVector, mean_diff
from steersweep.search import perturbation_coefficient

from .rundir import RunDir

logger = logging.getLogger(__name__)

TRAIT = TraitDefinition(
    "optimism", "The response describes things with optimistic, cheerful adjectives rather than gloomy ones."
)
VECTOR_POSITION = "response[:5]"


@dataclass(frozen=True)
class DemoOptions:
    """What the demo sweeps. The defaults are the embedded default job."""

    run_dir: Path = Path("runs/demo")
    home: Path | None = None
    seed: int = 0
    source_model: str = "llama-sft"
    target_models: tuple[str, ...] = ("llama-sft", "llama-dpo")
    ratios: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.8)
    n_contrast: int = 48
    n_questions: int = 8
    max_new_tokens: int = 32
    coherence_threshold: float = 80.0
    toy_scale: float = 1.0
    """Corpus scale of the toy family (1.0 = the embedded default; tests use a small scale)."""

    def frozen(self) -> dict[str, object]:
        values = asdict(self)
        values.pop("run_dir")
        values["home"] = str(self.home) if self.home else None
        return values


class RunDirMismatchError(ValueError):
    """The run directory was started with other options."""


def _freeze_options(options: DemoOptions) -> None:
    path = options.run_dir / "demo.json"
    frozen = json.loads(json.dumps(options.frozen()))
    if path.exists():
        before = json.loads(path.read_text())
        if before != frozen:
            changed = sorted(k for k in set(before) | set(frozen) if before.get(k) != frozen.get(k))
            raise RunDirMismatchError(
                f"run directory {options.run_dir} was started with other options ({', '.join(changed)} differ); "
                "resume with the same options or pass another --run-dir"
            )
        return
    options.run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(frozen, indent=2))


def _ray():
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    return ray


def _extract_vector(ray, actor, options: DemoOptions, console: Console) -> TraitVector:
    from steersweep.actors.toy import contrast_prompts

    path = RunDir(options.run_dir).vector_path(options.source_model, TRAIT.name, "mean_diff", "residual",
                                               VECTOR_POSITION)
    if path.exists():
        console.log(f"vector: reusing {path}")
        return TraitVector.load(path)
    pairs = contrast_prompts()[: options.n_contrast]
    request = dict(layers=None, components=("residual",), positions=(VECTOR_POSITION,), generate=True,
                   max_new_tokens=8, batch_size=32)
    started = time.perf_counter()
    positive, negative = ray.get([
        actor.capture.remote(CaptureRequest(prompts=tuple(p.positive for p in pairs), **request)),
        actor.capture.remote(CaptureRequest(prompts=tuple(p.negative for p in pairs), **request)),
    ])
    num_layers = len({key[0] for key in positive.activations})
    stack = [np.stack([reply.get(layer, "residual", VECTOR_POSITION) for layer in range(num_layers)], axis=1)
             for reply in (positive, negative)]
    result = mean_diff(*stack)
    vector = TraitVector(vectors=result.vectors, layers=tuple(range(num_layers)), metadata={
        "model": options.source_model, "trait": TRAIT.name, "method": "mean_diff", "component": "residual",
        "position": VECTOR_POSITION, "n_positive": str(len(pairs)), "n_negative": str(len(pairs)),
    })
    vector.save(path)
    console.log(f"vector: mean_diff over {len(pairs)} contrast pairs x {num_layers} layers "
                f"in {time.perf_counter() - started:.1f} s -> {path}")
    return vector


def _sweep_model(ray, actor, model: str, vector: TraitVector, options: DemoOptions, questions: list[str]):
    """Every (layer, ratio, question) as one row of ONE batched steer call; returns the rows and the reply."""
    norms = ray.get(actor.activation_norms.remote(None, "residual", questions)).norms
    vector_norms = vector.norms()
    ray.get(actor.load_vectors.remote({TRAIT.name: vector.vectors}))
    configs, rows = [], []
    for layer in vector.layers:
        for ratio in options.ratios:
            coefficient = perturbation_coefficient(ratio, norms[layer], vector_norms[layer])
            terms = (SteeringTerm(TRAIT.name, layer, coefficient),) if ratio else ()
            for q, question in enumerate(questions):
                configs.append({"model": model, "layer": layer, "perturbation_ratio": ratio,
                                "coefficient": coefficient, "activation_norm": norms[layer],
                                "vector_norm": vector_norms[layer], "question_index": q, "question": question})
                rows.append(SteerRow(question, terms, tag=f"{model}/L{layer}/r{ratio}/q{q}"))
    reply = ray.get(actor.steer.remote(SteerRequest(rows=tuple(rows), max_new_tokens=options.max_new_tokens,
                                                    seed=options.seed)))
    return configs, reply


def _trials(responses: pa.Table) -> list[dict[str, object]]:
    frame = responses.to_pandas()
    grouped = frame.groupby(["model", "layer", "perturbation_ratio"], sort=True)
    table = grouped.agg(
        coefficient=("coefficient", "first"), trait_score=("trait_score", "mean"),
        trait_score_sd=("trait_score", "std"), coherence=("coherence", "mean"), n=("trait_score", "size"),
    ).reset_index()
    return table.to_dict("records")


def run_demo(options: DemoOptions, console: Console | None = None) -> pa.Table:
    """Run the demo into ``options.run_dir`` (resumable: finished models are read back) and return the trials."""
    from steersweep.actors.toy import ensure_family, evaluation_questions

    console = console or Console()
    _freeze_options(options)
    family = ensure_family(home=options.home, seed=options.seed, scale=options.toy_scale,
                           progress=lambda event: console.log(str(event)))
    questions = evaluation_questions()[: options.n_questions]
    ray = _ray()
    run = RunDir(options.run_dir)
    responses_dir = run.responses_dir
    done = {path.stem for path in responses_dir.glob("*.parquet")} if responses_dir.exists() else set()
    actors = {model: ModelActor.remote(ModelSpec(str(family.paths[model]), name=model))
              for model in {options.source_model, *options.target_models}}
    vector = _extract_vector(ray, actors[options.source_model], options, console)
    judge = RuleJudge(cache=JudgeCache.for_run_dir(options.run_dir))
    for model in options.target_models:
        if model in done:
            console.log(f"{model}: responses already in {responses_dir}, skipped (resume)")
            continue
        started = time.perf_counter()
        configs, reply = _sweep_model(ray, actors[model], model, vector, options, questions)
        judged = judge.judge(list(zip((c["question"] for c in configs), reply.texts, strict=True)), TRAIT)
        for config, text, judgment, count in zip(configs, reply.texts, judged.judgments,
                                                 reply.response_token_counts, strict=True):
            config.update(response=text, response_tokens=count, trait_score=judgment.trait_score,
                          coherence=judgment.coherence)
        write_parquet_atomic(pa.Table.from_pylist(configs), responses_dir / f"{model}.parquet")
        console.log(f"{model}: {len(configs)} rows ({len(vector.layers)} layers x {len(options.ratios)} ratios x "
                    f"{len(questions)} questions) in one steer call, {reply.seconds:.1f} s on the actor, "
                    f"{time.perf_counter() - started:.1f} s total")
    for actor in actors.values():
        ray.kill(actor)
    responses = read_parquet_dir(responses_dir)
    assert responses is not None
    trials = pa.Table.from_pylist(_trials(responses))
    write_parquet_atomic(trials, run.trials_dir / "demo.parquet")
    _print_summary(trials, options, console)
    return trials


def _print_summary(trials: pa.Table, options: DemoOptions, console: Console) -> None:
    rows = {(r["model"], r["layer"], r["perturbation_ratio"]): r for r in trials.to_pylist()}
    for model in options.target_models:
        table = Table(title=f"{model}: mean over n={options.n_questions} questions (0-100); red: coherence < "
                            f"{options.coherence_threshold:g}")
        table.add_column("layer", justify="right")
        table.add_column("score")
        for ratio in options.ratios:
            table.add_column(f"r={ratio:g}", justify="right")
        for layer in sorted({layer for (m, layer, _) in rows if m == model}):
            cells = {"trait": [], "coherence": []}
            for ratio in options.ratios:
                row = rows[(model, layer, ratio)]
                style = "green" if row["coherence"] >= options.coherence_threshold else "red"
                cells["trait"].append(f"[{style}]{row['trait_score']:.0f}[/]")
                cells["coherence"].append(f"[{style}]{row['coherence']:.0f}[/]")
            table.add_row(str(layer), "trait", *cells["trait"])
            table.add_row("", "coh.", *cells["coherence"], end_section=True)
        console.print(table)
        coherent = [r for (m, _, _), r in rows.items()
                    if m == model and r["coherence"] >= options.coherence_threshold]
        if coherent:
            # Highest trait score; among equals the more coherent, then the gentler (smaller ratio) intervention.
            best = max(coherent, key=lambda r: (r["trait_score"], r["coherence"], -r["perturbation_ratio"]))
            console.print(
                f"[bold]{model}[/]: best with coherence >= {options.coherence_threshold:g}: layer {best['layer']}, "
                f"ratio {best['perturbation_ratio']:g} (coef {best['coefficient']:.2f}) -> trait "
                f"{best['trait_score']:.1f}, coherence {best['coherence']:.1f} (n={best['n']})"
            )
    console.print(f"run directory: {options.run_dir} (data/responses, data/trials, data/judgments, vectors)")
