"""Extraction on the toy family: natural elicitation on llama-base vs instruction elicitation on llama-sft.

Writes the two trait folders in the research layout (narrative prefixes for the base model, cheerful vs gloomy
system prompts for the chat model), runs the extraction pipeline on every layer with mean_diff, probe and
gradient, and prints the per-layer diagnostics table, the cosine between the natural and the instruction vector
per layer and method, polarity and held-out accuracy per method, and a cross-topic generalization matrix.

Usage: ``python benchmarks/toy_extraction.py [--run-dir DIR] [--position 'response[:5]'] [--max-new-tokens 8]``.
The toy family is built on first use (about 3 minutes on 2 CPU cores) and reused afterwards.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

METHODS = ("mean_diff", "probe", "gradient")


def write_trait_folders(root: Path) -> tuple[Path, Path]:
    """``root/toy-natural`` (txt prefixes) and ``root/toy-instruction`` (jsonl with system prompts): the engine's
    toy trait folders, the same files a ``toy:natural`` / ``toy:instruction`` config reads."""
    from steersweep.engine.toy_traits import write_toy_trait

    return write_toy_trait(root, "natural"), write_toy_trait(root, "instruction")


def run(run_dir: Path, position: str, max_new_tokens: int) -> dict:
    import numpy as np

    from steersweep.actors import ModelSpec, ModelWorker
    from steersweep.actors.judges import RuleJudge
    from steersweep.actors.toy import ensure_family, score_response
    from steersweep.analysis import ActivationSet, TraitVector, generalization_matrix, load_trait_dataset, probe
    from steersweep.engine import ExtractionPlan, RunDir, extract_trait_vectors

    family = ensure_family()
    natural_dir, instruction_dir = write_trait_folders(run_dir / "traits")
    run = RunDir(run_dir)
    judge = RuleJudge(score_response, name="toy-rule")
    sources = {"llama-base": load_trait_dataset(natural_dir, name="optimism"),
               "llama-sft": load_trait_dataset(instruction_dir, name="optimism")}
    outcomes = {}
    for model_key, dataset in sources.items():
        worker = ModelWorker(ModelSpec(str(family.path(model_key)), device="cpu"))
        plan = ExtractionPlan(model=model_key, positions=(position,), methods=METHODS, max_new_tokens=max_new_tokens,
                              test_fraction=0.25, seed=0)
        outcomes[model_key] = extract_trait_vectors(run, worker, dataset, plan, judge=judge)

    import pyarrow.parquet as pq

    rows = [r for r in pq.read_table(run.vectors_table).to_pylist() if r["position"] == position]
    print(f"\n== diagnostics per layer (position {position}, component residual; accuracy and Cohen's d on held-out "
          "scenarios; separation = |mean_pos - mean_neg|; var = mean per-dim within-class variance; cos = mean "
          "cosine to class mean; ratio = |v| / mean token norm) ==")
    header = (f"{'model':11s} {'method':9s} {'L':>2s} {'acc%':>6s} {'pol':>4s} {'d':>6s} {'sep':>6s} {'var+':>6s} "
              f"{'var-':>6s} {'cos+':>5s} {'cos-':>5s} {'snr':>7s} {'|v|':>8s} {'|h|':>6s} {'ratio':>7s} {'n_tr':>4s} "
              f"{'n_ho':>4s}")
    print(header)
    for r in sorted(rows, key=lambda r: (r["model"], r["method"], r["layer"])):
        print(f"{r['model']:11s} {r['method']:9s} {r['layer']:2d} {100 * r['heldout_accuracy']:6.1f} "
              f"{'yes' if r['polarity_correct'] else 'NO':>4s} {r['effect_size']:6.2f} {r['separation']:6.2f} "
              f"{r['within_var_positive']:6.3f} {r['within_var_negative']:6.3f} {r['cosine_positive']:5.3f} "
              f"{r['cosine_negative']:5.3f} {r['snr']:7.1f} {r['vector_norm']:8.3f} {r['activation_norm']:6.2f} "
              f"{r['norm_ratio']:7.4f} {r['n_train']:4d} {r['n_heldout']:4d}")

    print("\n== judge check of the labels (toy rule judge, trait score 0-100 per rollout) ==")
    for model_key, outcome in outcomes.items():
        verdict = outcome.label_polarity.describe() if outcome.label_polarity else "not judged (no responses)"
        print(f"{model_key:11s} {verdict}")

    print(f"\n== cosine(natural llama-base vector, instruction llama-sft vector) per layer, {position} ==")
    cosines = {}
    for method in METHODS:
        natural = TraitVector.load(run.vector_path("llama-base", "optimism", method, "residual", position))
        instruction = TraitVector.load(run.vector_path("llama-sft", "optimism", method, "residual", position))
        cosines[method] = natural.cosine(instruction)
        print(f"{method:9s} " + "  ".join(f"L{layer}: {c:+.3f}" for layer, c in cosines[method].items()))

    print("\n== polarity and held-out accuracy per method (over layers) ==")
    summary = {}
    for model_key in sources:
        for method in METHODS:
            sel = [r for r in rows if r["model"] == model_key and r["method"] == method]
            acc = [r["heldout_accuracy"] for r in sel]
            summary[(model_key, method)] = (sum(r["polarity_correct"] for r in sel), len(sel), float(np.mean(acc)),
                                            float(np.max(acc)), sum(r["polarity_flipped"] for r in sel))
            ok, n, mean_acc, best, flipped = summary[(model_key, method)]
            print(f"{model_key:11s} {method:9s} polarity correct {ok}/{n} layers, flipped at fit {flipped}/{n}; "
                  f"held-out accuracy mean {100 * mean_acc:.1f}%, best {100 * best:.1f}% "
                  f"(n_heldout = {sel[0]['n_heldout']} rollouts per layer)")

    data = ActivationSet.read(run.activation_path("llama-sft", "optimism", "residual", position))
    matrix = generalization_matrix(data.activations, data.is_positive, data.topic.astype(str), method=probe,
                                   layers=data.layers, unit_ids=data.scenario_id)
    best_layer = max(data.layers, key=matrix.diagonal_mean)
    print(f"\n== cross-topic generalization, llama-sft instruction vectors (probe), layer {best_layer}; "
          f"n_test per topic {matrix.n_test} ==")
    print(matrix.format(best_layer))
    print(f"diagonal mean {100 * matrix.diagonal_mean(best_layer):.1f}%, off-diagonal mean "
          f"{100 * matrix.off_diagonal_mean(best_layer):.1f}%")
    return {"cosines": cosines, "summary": summary, "outcomes": outcomes, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--position", default="response[:5]")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.run_dir is not None:
        run(args.run_dir, args.position, args.max_new_tokens)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp), args.position, args.max_new_tokens)


if __name__ == "__main__":
    main()
