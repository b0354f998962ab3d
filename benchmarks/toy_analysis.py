"""Toy-family run directory -> the study-level analyses (must-show 5 of the analysis issue).

    python benchmarks/toy_analysis.py --run-dir /tmp/toy-analysis

1. the toy family (built on first use) and a mean-diff optimism vector per model (chat contrast for the chat models,
   narrative contrast for llama-base), saved under vectors/;
2. the search (steersweep.search.search, default sampler): one study per (target, vector source) with the
   vectors of llama-base / llama-sft / llama-dpo steering llama-sft and llama-dpo; rule judge; the search writes
   data/trials and data/responses (the run-directory contract);
3. drift rollouts per model with its own vector (32 scenarios x 4 steered ratios + unsteered) in data/drift_rollouts;
4. run_analyses as Ray tasks -> data/analysis/{transfer_*, drifts, bai, validation*, activation_transfer}.parquet,
   plus the weight diff base -> sft -> dpo (norms, logit lens, trait alignment) and the activation similarity of
   llama-sft's responses replayed through llama-base and llama-dpo;
5. prints the transfer matrix, BAI and validation tables.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from steersweep.actors import CaptureRequest, ModelSpec, ModelWorker
from steersweep.actors.arrow_io import write_parquet_atomic
from steersweep.actors.judges import JudgeCache, RuleJudge, TraitDefinition
from steersweep.analysis import (
    TraitVector,
    mean_diff,
    model_diff_task,
    run_analyses,
    similarity_transfer_correlation,
    transfer_curves,
)
from steersweep.engine.drifts import drift_rollouts
from steersweep.engine.replay import replay
from steersweep.engine.rundir import RunDir

logger = logging.getLogger("toy_analysis")
TRAIT = TraitDefinition("optimism", "The response describes things with optimistic, cheerful adjectives.")
POSITION = "response[:5]"
SOURCES = ("llama-base", "llama-sft", "llama-dpo")
TARGETS = ("llama-sft", "llama-dpo")
DRIFT_MODELS = ("llama-sft", "llama-dpo", "qwen2-sft", "mistral-sft")


def extract_vector(worker: ModelWorker, key: str, run: RunDir, n_contrast: int) -> TraitVector:
    from steersweep.actors.toy import contrast_prompts, natural_prefixes

    path = run.vector_path(key, TRAIT.name, "mean_diff", "residual", POSITION)
    if path.exists():
        return TraitVector.load(path)
    pairs = (natural_prefixes() if key == "llama-base" else contrast_prompts())[:n_contrast]
    request = dict(layers=None, components=("residual",), positions=(POSITION,), generate=True, max_new_tokens=8,
                   batch_size=32)
    replies = [worker.capture(CaptureRequest(prompts=tuple(getattr(p, side) for p in pairs), **request))
               for side in ("positive", "negative")]
    layers = range(worker.num_layers)
    stacks = [np.stack([reply.get(layer, "residual", POSITION) for layer in layers], axis=1) for reply in replies]
    vector = TraitVector(mean_diff(*stacks).vectors, tuple(layers), {
        "model": key, "trait": TRAIT.name, "method": "mean_diff", "component": "residual", "position": POSITION,
        "n_pairs": str(len(pairs))})
    vector.save(path)
    return vector


def search_transfer(workers: dict[str, ModelWorker], vectors: dict[str, TraitVector], questions: list[str],
                    run: RunDir, args: argparse.Namespace) -> None:
    """One search study per (target, vector source): the search writes data/trials and data/responses itself."""
    from steersweep.search import search

    for target in TARGETS:
        for source in SOURCES:
            result = search({target: workers[target]}, vectors[source], questions, sampler=args.sampler,
                            judge=None, run_dir=run.root, trait=TRAIT, target_model=target, vector_source=source,
                            n_trials=args.n_trials, coherence_threshold=args.coherence_threshold,
                            max_new_tokens=args.max_new_tokens, live=False)
            logger.info("search %s -> %s: %s", source, target, result.describe().splitlines()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/toy-analysis"))
    parser.add_argument("--questions", type=int, default=8, help="questions per search trial")
    parser.add_argument("--sampler", default="default", help="search sampler (default, adaptive, tpe, grid, ...)")
    parser.add_argument("--n-trials", type=int, default=16, help="trials per (target, vector source) study")
    parser.add_argument("--drift-layer", type=int, default=2)
    parser.add_argument("--coherence-threshold", type=float, default=80.0)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--n-contrast", type=int, default=48)
    parser.add_argument("--drift-questions", type=int, default=32, help="scenarios per model in the drift rollouts")
    parser.add_argument("--toy-scale", type=float, default=1.0, help="toy family corpus scale (tests use 0.05)")
    parser.add_argument("--toy-home", type=Path, default=None, help="toy family home (default: toy_home())")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from steersweep.actors.toy import ensure_family, evaluation_questions

    started = time.perf_counter()
    family = ensure_family(args.toy_home, scale=args.toy_scale, progress=lambda event: logger.info("%s", event))
    run = RunDir(args.run_dir).create()
    workers = {key: ModelWorker(ModelSpec(str(family.path(key)), name=key)) for key in (*SOURCES, *DRIFT_MODELS)}
    vectors = {key: extract_vector(workers[key], key, run, args.n_contrast) for key in workers}
    logger.info("vectors: %s", {k: [round(n, 2) for n in v.norms().values()] for k, v in vectors.items()})
    judge = RuleJudge(cache=JudgeCache.for_run_dir(run.root))
    questions = evaluation_questions()
    search_transfer(workers, vectors, questions[: args.questions], run, args)
    drift_dir = run.data_dir / "drift_rollouts"
    for key in DRIFT_MODELS:
        path = drift_dir / f"{key}.parquet"
        if not path.exists():
            table = drift_rollouts(workers[key], key, vectors[key], args.drift_layer,
                                   questions[: args.drift_questions], judge, TRAIT,
                                   max_new_tokens=args.max_new_tokens)
            write_parquet_atomic(table, path)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        written = run_analyses(run.root, use_ray=True, coherence_threshold=args.coherence_threshold)
    finally:
        ray.shutdown()
    logger.info("analyses: %s", written)
    _model_diff(run, family, vectors, workers, questions[: args.drift_questions])
    _print(run)
    logger.info("total %.1f s (2 shared CPU cores, under load)", time.perf_counter() - started)


def _model_diff(run: RunDir, family, vectors, workers, questions) -> None:
    """Weight diff base -> sft -> dpo with its logit lens and trait alignment; activation similarity sft -> base/dpo."""
    out = run.analysis_dir
    vector_files = {k: run.vector_path(k, TRAIT.name, "mean_diff", "residual", POSITION) for k in SOURCES}
    for a, b in (("llama-base", "llama-sft"), ("llama-sft", "llama-dpo")):
        model_diff_task(run.root, family.path(a), family.path(b), f"{a}__{b}", vector_files, k=10)
    by_layer = pq.read_table(out / "transfer_by_layer.parquet")
    rows = []
    for other in ("llama-base", "llama-dpo"):
        similarity = replay(workers["llama-sft"], workers[other], questions, layers=range(4), max_new_tokens=16,
                            prompts_b=questions).similarity()
        write_parquet_atomic(similarity.per_layer, out / f"similarity_llama-sft__{other}.parquet")
        write_parquet_atomic(similarity.per_position, out / f"similarity_positions_llama-sft__{other}.parquet")
        # base vs sft: how the base vector transfers to sft; sft vs dpo: how the sft vector transfers to dpo.
        source, target = ("llama-base", "llama-sft") if other == "llama-base" else ("llama-sft", "llama-dpo")
        correlation = similarity_transfer_correlation(similarity.layer_means(),
                                                      transfer_curves(by_layer, source, target))
        rows += [dict(r, model_a="llama-sft", model_b=other, vector_source=source, target_model=target)
                 for r in correlation.to_pylist()]
    write_parquet_atomic(pa.Table.from_pylist(rows), out / "similarity_transfer.parquet")


def _print(run: RunDir) -> None:
    out = run.analysis_dir
    for name, columns in (
        ("transfer_matrix", ["vector_source", "target_model", "best_delta", "best_layer", "best_ratio",
                             "best_coherence", "baseline_trait_score", "n_feasible", "n_trials"]),
        ("bai", ["model", "layer", "bai", "signed_difference", "label", "n"]),
        ("validation", ["model", "layer", "r", "ci_low", "ci_high", "p_value", "n", "validated"]),
        ("bai_steered", ["model", "layer", "bai", "signed_difference", "label", "n"]),
        ("validation_steered", ["model", "layer", "r", "ci_low", "ci_high", "p_value", "n", "validated"]),
        ("validation_counts", None), ("activation_transfer", None), ("similarity_transfer", None),
    ):
        table = pq.read_table(out / f"{name}.parquet")
        table = table.select(columns) if columns else table
        print(f"\n== {name} ==")
        print(table.to_pandas().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for name in ("weight_diff_llama-base__llama-sft", "weight_diff_llama-sft__llama-dpo"):
        frame = pq.read_table(out / f"{name}.parquet").to_pandas()
        print(f"\n== {name}: relative ||dW||/||W|| per layer x component ==")
        print(frame.pivot(index="layer", columns="component", values="relative").to_string(float_format="%.3f"))


if __name__ == "__main__":
    main()
