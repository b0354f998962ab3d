"""The 800-row sweep (5 layers x 8 ratios x 20 questions, 128 new tokens) on one 8B-shaped random Llama: through
the search Scheduler (grid sampler, one study, Optuna SQLite storage, rule judge, Parquet) versus one ``steer`` call
of the same rows. Wall time and rows/s to JSON under benchmarks/results/.

The model (Llama-3-8B shape, random bf16 weights) is built on the GPU in memory (nothing downloaded or written) and
handed to a ModelWorker; its tokenizer is a word-level one over the model's full vocabulary.

    python benchmarks/bench_scheduler_gpu.py --out benchmarks/results/scheduler_gpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from steer_throughput import build_random_model  # a sibling script: benchmarks/ is sys.path[0]

LLAMA3_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=8192)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=32, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=4096, rope_theta=10000.0, max_position_embeddings=512)
"""``--tiny``: the same script on a CPU-sized model (a smoke test of the script, not a measurement)."""
LAYERS = (8, 12, 16, 20, 24)


def random_llama(shape: dict, device: str = "cuda") -> torch.nn.Module:
    """LlamaForCausalLM with random bf16 weights on ``device``: steer_throughput's builder, so both benchmarks time
    the same model."""
    return build_random_model("llama", shape, device)


def word_tokenizer(vocab_size: int):
    """A word-level tokenizer over ``w3 .. w{vocab_size-1}`` plus pad/bos/eos (ids 0-2), no chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, vocab_size)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<pad>")


def make_worker(max_batch_size: int, shape: dict, device: str):
    """A ModelWorker around the in-memory model (its loader is pointed at it for this one construction)."""
    import steersweep.actors.model_worker as model_worker
    from steersweep.actors import ModelSpec

    model, tokenizer = random_llama(shape, device), word_tokenizer(shape["vocab_size"])
    original = model_worker.load_model
    model_worker.load_model = lambda spec: (model, tokenizer)
    try:
        return model_worker.ModelWorker(ModelSpec("in-memory-random-llama", device=device),
                                        max_batch_size=max_batch_size)
    finally:
        model_worker.load_model = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--max-batch-size", type=int, default=1024, help="the worker's own batch limit")
    parser.add_argument("--rows-per-call", type=int, default=None,
                        help="scheduler rows per call (default: the worker's row_capacity, else 820)")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke test with a tiny model")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scheduler_gpu.json"))
    args = parser.parse_args()

    from steersweep.actors import SteerRequest, SteerRow
    from steersweep.actors.judges import RuleJudge
    from steersweep.actors.paths import RunPaths
    from steersweep.search import GridSearch, SearchSpace, perturbation_coefficient, read_rows, search

    started = time.perf_counter()
    shape, device = (TINY, "cpu") if args.tiny else (LLAMA3_8B, "cuda")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    worker = make_worker(args.max_batch_size, shape, device)
    build_seconds = time.perf_counter() - started
    rng = np.random.default_rng(0)
    questions = [" ".join(f"w{i}" for i in rng.integers(3, 30000, size=12)) for _ in range(args.questions)]
    vector = rng.normal(size=(32, shape["hidden_size"])).astype(np.float32)
    has_capacity = hasattr(worker, "row_capacity")
    capacity = worker.row_capacity(16, args.new_tokens) if has_capacity else None
    rows_per_call = args.rows_per_call or (None if has_capacity else 820)
    # warm-up: CUDA kernels, allocator
    worker.steer(SteerRequest(rows=tuple(SteerRow(q) for q in questions[:4]), max_new_tokens=8))

    # 8 ratios from 0.1 to 2.0 (x1.534 apart) on 5 layers = 40 trials x 20 questions = 800 rows (+20 baseline)
    space = SearchSpace(layers=LAYERS, ratio=(0.1, 2.0))
    grid = GridSearch(factor=(2.0 / 0.1) ** (1 / 7) * (1 - 1e-9), shuffle=False)
    with tempfile.TemporaryDirectory() as run_dir:
        sync()
        t0 = time.perf_counter()
        result = search(worker, vector, questions, space, sampler=grid, judge=RuleJudge(), run_dir=run_dir,
                        n_trials=40, max_new_tokens=args.new_tokens, rows_per_call=rows_per_call, live=False)
        sync()
        scheduler_seconds = time.perf_counter() - t0
        trials = result.trials
        responses = read_rows(RunPaths(run_dir), "responses")
        scheduler_rows = responses.num_rows
        scheduler_tokens = int(np.sum(responses.column("response_tokens").to_numpy()))
        calls = result.progress.calls if result.progress else None
        norms = {int(r["layer"]): float(r["activation_norm"]) for r in trials.to_dict("records")}
        ratios = sorted(set(trials["perturbation_ratio"]))

    # the same rows in ONE steer call
    worker.load_vectors({"direct": vector})
    vector_norms = np.linalg.norm(vector, axis=1)
    from steersweep.actors import SteeringTerm

    rows = [SteerRow(q) for q in questions]
    rows += [SteerRow(q, (SteeringTerm("direct", layer, perturbation_coefficient(r, norms[layer],
                                                                                  float(vector_norms[layer]))),))
             for layer in LAYERS for r in ratios for q in questions]
    sync()
    t0 = time.perf_counter()
    reply = worker.steer(SteerRequest(rows=tuple(rows), max_new_tokens=args.new_tokens))
    sync()
    direct_seconds = time.perf_counter() - t0
    direct_tokens = int(sum(reply.response_token_counts))
    report = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke test)",
        "torch": torch.__version__, "python": platform.python_version(),
        "model": "LlamaForCausalLM, Llama-3-8B shape, random bf16 weights", "new_tokens": args.new_tokens,
        "layers": list(LAYERS), "ratios": ratios, "questions": len(questions), "trials": len(trials),
        "row_capacity": capacity, "rows_per_call": rows_per_call, "worker_max_batch_size": args.max_batch_size,
        "fast_path": getattr(worker, "fast_generator", None) is not None, "build_seconds": build_seconds,
        "scheduler": {"seconds": scheduler_seconds, "rows": scheduler_rows, "calls": calls,
                      "steer_seconds_on_the_actor": result.progress.generate_seconds if result.progress else None,
                      "rows_per_second": scheduler_rows / scheduler_seconds, "tokens": scheduler_tokens,
                      "tokens_per_second": scheduler_tokens / scheduler_seconds,
                      "note": "includes Optuna (SQLite) ask/tell, the rule judge, Parquet writes, activation norms"},
        "one_steer_call": {"seconds": direct_seconds, "rows": len(rows), "rows_per_second": len(rows) / direct_seconds,
                           "tokens": direct_tokens, "tokens_per_second": direct_tokens / direct_seconds},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
