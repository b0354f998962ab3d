"""Samplers on the toy family: trials to the first config that reaches a target trait with coherence, over seeds.

The sft vector (mean difference of llama-sft's residual over the first 5 response tokens, cheerful minus gloomy
contrast prompts) steers llama-sft and llama-dpo. Every sampler runs ``--trials`` trials per seed through the real
SearchStudy (Optuna in-memory storage), in lockstep: each round every (sampler, seed) study asks one trial, all new
configs are generated in one batched steer call (greedy, so a config's result is deterministic and memoised on its
exact (layers, ratio) floats) and judged by the toy family's rule judge.

Reported per target and sampler (25 seeds by default): trials to the first hit (trait >= 85 with coherence >= 80;
median, max, misses within the trial budget), hits and coherent trials per budget, best coherent trait after 12, 24
and 48 trials (median over seeds). Optuna's GP sampler costs seconds per ask on a CPU, so it runs in its own process
(``--workers``) and may be given fewer trials (``--gp-trials``).

    python benchmarks/bench_search.py --workers 2 --out benchmarks/results/search_toy.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

SAMPLER_NAMES = ("default", "adaptive", "tpe", "gp", "grid", "random")
TARGET_TRAIT, COHERENCE = 85.0, 80.0
POSITION = "response[:5]"


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def sft_vector(family) -> np.ndarray:
    """Cheerful minus gloomy mean residual of llama-sft over the first 5 generated tokens: [num_layers, hidden]."""
    from steersweep.actors import CaptureRequest, ModelSpec, ModelWorker
    from steersweep.actors.toy import contrast_prompts

    worker = ModelWorker(ModelSpec(str(family.path("llama-sft")), device="cpu"), max_batch_size=128)
    layers = tuple(range(worker.info().num_layers))
    means = []
    for side in ("positive", "negative"):
        reply = worker.capture(CaptureRequest(prompts=tuple(getattr(p, side) for p in contrast_prompts()),
                                              layers=layers, positions=(POSITION,), generate=True, max_new_tokens=16,
                                              batch_size=128))
        means.append(np.stack([np.nanmean(reply.get(layer, "residual", POSITION), axis=0) for layer in layers]))
    return means[0] - means[1]


class Evaluator:
    """Steers the target with (layers, weights, ratio, sign) configs in one batched call; memoised on exact floats."""

    def __init__(self, family, target: str, vector: np.ndarray, questions: list[str], max_new_tokens: int) -> None:
        from steersweep.actors import ModelSpec, ModelWorker

        self.worker = ModelWorker(ModelSpec(str(family.path(target)), device="cpu"), max_batch_size=512)
        self.worker.load_vectors({"sft": vector.astype(np.float32)})
        self.questions = questions
        self.max_new_tokens = max_new_tokens
        layers = list(range(vector.shape[0]))
        self.activation_norms = self.worker.activation_norms(layers, "residual", questions).norms
        self.vector_norms = {layer: float(np.linalg.norm(vector[layer])) for layer in layers}
        self.memo: dict[tuple, tuple[float, float]] = {}
        self.rows = 0
        self.seconds = 0.0
        self.lookups = 0

    def evaluate(self, configs: list[tuple]) -> list[tuple[float, float]]:
        from steersweep.actors import SteeringTerm, SteerRequest, SteerRow
        from steersweep.actors.toy import score_response
        from steersweep.search import perturbation_coefficient

        self.lookups += len(configs)
        new = list(dict.fromkeys(c for c in configs if c not in self.memo))
        if new:
            rows = []
            for layers, weights, ratio, sign in new:
                terms = tuple(SteeringTerm("sft", layer, weight * sign * perturbation_coefficient(
                    ratio, self.activation_norms[layer], self.vector_norms[layer]))
                    for layer, weight in zip(layers, weights, strict=True))
                rows.extend(SteerRow(q, terms) for q in self.questions)
            started = time.perf_counter()
            texts = self.worker.steer(SteerRequest(rows=tuple(rows), max_new_tokens=self.max_new_tokens)).texts
            self.seconds += time.perf_counter() - started
            self.rows += len(rows)
            n = len(self.questions)
            for i, config in enumerate(new):
                scores = [score_response(q, t) for q, t in zip(self.questions, texts[i * n:(i + 1) * n], strict=True)]
                self.memo[config] = (float(np.mean([s[0] for s in scores])), float(np.mean([s[1] for s in scores])))
        return [self.memo[c] for c in configs]


def run_group(home: str | None, target: str, samplers: list[str], seeds: int, trials: int, n_questions: int,
              max_new_tokens: int, threads: int) -> dict:
    """Every (sampler, seed) study on ``target`` in lockstep; returns the per-trial (trait, coherence) records."""
    import torch

    torch.set_num_threads(threads)
    logging.getLogger("steersweep").setLevel(logging.WARNING)
    from steersweep.actors.toy import TOY_VERSION, ensure_family, evaluation_questions
    from steersweep.search import SearchStudy, StudySpec

    family = ensure_family(home)
    vector = sft_vector(family)
    questions = evaluation_questions()[::2][:n_questions]
    evaluator = Evaluator(family, target, vector, questions, max_new_tokens)
    studies = {(name, seed): SearchStudy(StudySpec(target, "optimism", "llama-sft", sampler=name, n_trials=trials,
                                                   coherence_threshold=COHERENCE, seed=seed), "memory",
                                         vector.shape[0])
               for name in samplers for seed in range(seeds)}
    records: dict[tuple[str, int], list[dict]] = {key: [] for key in studies}
    started = time.perf_counter()
    ask_seconds = 0.0
    for round_index in range(trials):
        asked = time.perf_counter()
        plans = {}
        for key, study in studies.items():
            got = study.ask(1)
            if not got:
                raise RuntimeError(f"{key}: the sampler proposed nothing with no trial running")
            plans[key] = got[0]
        ask_seconds += time.perf_counter() - asked
        configs = {key: (plan.site.layers, plan.site.weights, plan.point.ratio, plan.point.sign)
                   for key, plan in plans.items()}
        results = dict(zip(configs, evaluator.evaluate(list(configs.values())), strict=True))
        for key, plan in plans.items():
            trait, coherence = results[key]
            studies[key].tell(plan, trait, coherence)
            records[key].append({"site": plan.site.label, "ratio": plan.point.ratio, "source": plan.point.source,
                                 "trait": trait, "coherence": coherence})
        _log(f"{target} {'+'.join(samplers)}: trial {round_index + 1}/{trials}, {len(evaluator.memo)} configs "
             f"generated ({evaluator.lookups - len(evaluator.memo)} memo hits), {evaluator.rows} rows in "
             f"{evaluator.seconds:.0f} s ({evaluator.rows / max(evaluator.seconds, 1e-9):.0f} rows/s), asks "
             f"{ask_seconds:.0f} s, {time.perf_counter() - started:.0f} s total")
    return {"target": target, "toy_version": TOY_VERSION, "questions": len(questions), "trials": trials,
            "records": {f"{name}/{seed}": rows for (name, seed), rows in records.items()},
            "configs_generated": len(evaluator.memo), "rows_generated": evaluator.rows,
            "generate_seconds": evaluator.seconds, "ask_seconds": ask_seconds,
            "seconds": time.perf_counter() - started}


def _hit(row: dict) -> bool:
    return row["trait"] >= TARGET_TRAIT and row["coherence"] >= COHERENCE


def summarize(group: dict, budgets: tuple[int, ...] = (12, 24, 48)) -> dict[str, dict]:
    by_sampler: dict[str, list[list[dict]]] = {}
    for key, rows in group["records"].items():
        by_sampler.setdefault(key.split("/")[0], []).append(rows)
    out = {}
    for name, runs in by_sampler.items():
        trials = len(runs[0])
        firsts = [next((i + 1 for i, r in enumerate(rows) if _hit(r)), None) for rows in runs]
        hit = [f for f in firsts if f is not None]
        best = {}
        for budget in budgets:
            if budget > trials:
                continue
            values = [max((r["trait"] for r in rows[:budget] if r["coherence"] >= COHERENCE), default=None)
                      for rows in runs]
            known = [v for v in values if v is not None]
            best[str(budget)] = {"median": statistics.median(known) if known else None, "n_seeds_with_feasible":
                                 len(known), "mean": statistics.fmean(known) if known else None}
        out[name] = {
            "seeds": len(runs), "trials": trials,
            "first_hit_median": statistics.median([f if f is not None else float("inf") for f in firsts]),
            "first_hit_max": max(hit) if len(hit) == len(firsts) else None,
            "first_hit_max_of_hits": max(hit) if hit else None,
            "misses": len(firsts) - len(hit), "within_20": sum(f <= 20 for f in hit),
            "hits_per_budget_mean": statistics.fmean(sum(_hit(r) for r in rows) for rows in runs),
            "coherent_per_budget_mean": statistics.fmean(sum(r["coherence"] >= COHERENCE for r in rows)
                                                         for rows in runs),
            "best_coherent_trait": best, "first_hits": firsts,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=["llama-dpo", "llama-sft"])
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLER_NAMES), choices=SAMPLER_NAMES)
    parser.add_argument("--seeds", type=int, default=25)
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--gp-trials", type=int, default=None, help="trials for the gp sampler (default --trials)")
    parser.add_argument("--questions", type=int, default=16, help="evaluation questions per trial (every other one)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="processes; the gp sampler gets its own group")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--home", default=None, help="toy family home (default: the toy cache)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/search_toy.json"))
    args = parser.parse_args()
    groups = []
    for target in args.targets:
        main_samplers = [s for s in args.samplers if s != "gp"]
        if main_samplers:
            groups.append((target, main_samplers, args.trials))
        if "gp" in args.samplers:
            groups.append((target, ["gp"], args.gp_trials or args.trials))
    groups.sort(key=lambda g: g[1] != ["gp"])  # the slow gp groups start first
    _log(f"{len(groups)} groups on {args.workers} process(es): {groups}")
    started = time.perf_counter()
    results = []
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_group, args.home, target, samplers, args.seeds, trials, args.questions,
                               args.max_new_tokens, args.threads) for target, samplers, trials in groups]
        for future in futures:
            group = future.result()
            group["summary"] = summarize(group)
            results.append(group)
            brief = {k: {m: v[m] for m in ("first_hit_median", "first_hit_max", "misses", "within_20")}
                     for k, v in group["summary"].items()}
            _log(f"{group['target']}: {json.dumps(brief)}")
    report = {"machine": f"{os.cpu_count()} CPU cores (shared, under load), torch threads {args.threads}",
              "python": sys.version.split()[0], "seeds": args.seeds, "target_trait": TARGET_TRAIT,
              "coherence_threshold": COHERENCE, "seconds": time.perf_counter() - started, "groups": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    for group in results:
        print(f"\n{group['target']} (toy v{group['toy_version']}, n={group['questions']} questions, "
              f"{group['trials']} trials, {args.seeds} seeds)")
        print(f"{'sampler':9} {'1st hit med':>11} {'max':>5} {'miss':>5} {'<=20':>5} {'hits/T':>7} {'coh/T':>6} "
              f"{'best@12':>8} {'best@24':>8} {'best@48':>8}")
        for name, s in group["summary"].items():
            best = [s["best_coherent_trait"].get(b, {}).get("median") for b in ("12", "24", "48")]
            print(f"{name:9} {s['first_hit_median']:>11} {s['first_hit_max'] or '-':>5} {s['misses']:>5} "
                  f"{s['within_20']:>5} {s['hits_per_budget_mean']:>7.1f} {s['coherent_per_budget_mean']:>6.1f} "
                  + " ".join(f"{'-' if b is None else f'{b:.1f}':>8}" for b in best))
    _log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
