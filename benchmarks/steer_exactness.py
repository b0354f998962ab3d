"""Fast path vs reference path in bf16 on a GPU: first-step logits and greedy-token agreement over 64 steps.

    python benchmarks/steer_exactness.py --toy-dir DIR_WITH_TOY_MODELS --random-shape llama3-8b
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from steersweep.actors import ModelSpec, ModelWorker, SteeringDeltas, SteeringTerm, SteerRequest, SteerRow, steering
from steersweep.actors.fast_generation import FastGenerator
from steersweep.actors.fast_model import FastModel
from steersweep.actors.generation import SamplingConfig, steered_decode
from steersweep.actors.layers import resolve_layout

logger = logging.getLogger("steer_exactness")
STEPS = 64


def token_agreement(a: list[list[int]], b: list[list[int]]) -> dict:
    """Share of positions (over the reference's tokens) where both paths chose the same token, and whole-row matches."""
    same = total = 0
    first_divergence = []
    for x, y in zip(a, b, strict=True):
        total += len(y)
        same += sum(1 for i, t in enumerate(y) if i < len(x) and x[i] == t)
        diverge = next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), min(len(x), len(y)))
        first_divergence.append(diverge)
    identical = sum(x == y for x, y in zip(a, b, strict=True))
    return {"token_match": same / total, "tokens": total, "rows_identical": identical / len(a), "rows": len(a),
            "mean_first_divergence_step": float(np.mean(first_divergence))}


def logits_error(model, fast: FastModel, prompts: list[list[int]], deltas: dict, layout) -> dict:
    """First-step logits (last prompt position) of both paths, same steering, equal-length prompts (no padding)."""
    ids = torch.tensor(prompts, device=fast.device)
    with torch.inference_mode():
        with steering(model, layout, SteeringDeltas(deltas)):
            reference = model(ids).logits[:, -1].float()
        fast.rope_tables(ids.shape[1] + 1)
        cache = fast.new_cache(len(prompts), ids.shape[1])
        by_component = {}
        for (layer, component), delta in deltas.items():
            by_component.setdefault(component, torch.zeros(fast.num_layers, len(prompts), fast.hidden,
                                                           dtype=fast.dtype, device=fast.device))[layer] = delta
        got = fast.prefill(prompts, torch.arange(len(prompts), device=fast.device), cache, by_component).float()
    relative = float((got - reference).norm() / reference.norm())
    return {"relative_l2": relative, "max_abs": float((got - reference).abs().max()),
            "reference_logit_std": float(reference.std()),
            "argmax_agree": float((got.argmax(-1) == reference.argmax(-1)).float().mean())}


def toy_model(path: Path) -> dict:
    """A trained toy model: real chat questions, mixed per-row configs, both paths through ModelWorker in bf16."""
    from steersweep.actors.toy import evaluation_questions

    spec = ModelSpec(str(path), dtype="bfloat16", device="cuda")
    reference, fast = ModelWorker(spec, fast=False), ModelWorker(spec, fast=True)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(reference.num_layers, reference.hidden_size)).astype(np.float32)
    vectors *= 2.0 / np.linalg.norm(vectors, axis=-1, keepdims=True)
    for worker in (reference, fast):
        worker.load_vectors({"v": vectors})
    questions = evaluation_questions()
    rows = tuple(SteerRow(q, (SteeringTerm("v", i % reference.num_layers, 0.3 * (i % 7)),) if i % 5 else ())
                 for i, q in enumerate(questions))
    request = SteerRequest(rows=rows, max_new_tokens=STEPS, stop_at_eos=False)
    a, b = fast.steer(request), reference.steer(request)
    result = token_agreement([list(t) for t in a.token_ids], [list(t) for t in b.token_ids])
    prompts = [list(reference.tokenizer(q)["input_ids"]) for q in questions]
    width = min(len(p) for p in prompts)
    deltas = fast.vectors.deltas(rows)
    result["first_step_logits"] = logits_error(reference.model, FastModel(reference.model),
                                               [p[:width] for p in prompts], deltas, reference.layout)
    return result


def random_model(shape: str, batch: int = 20, prompt_tokens: int = 32) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from steer_throughput import SHAPES, build_random_model, per_row_deltas

    kind, config = SHAPES[shape]
    model = build_random_model(kind, config)
    layout = resolve_layout(model)
    ids = torch.randint(3, config["vocab_size"], (batch, prompt_tokens), device="cuda",
                        generator=torch.Generator(device="cuda").manual_seed(0))
    layer = config["num_hidden_layers"] * 3 // 8
    deltas = per_row_deltas(batch, config["hidden_size"], layer, "cuda")
    sampling = SamplingConfig(max_new_tokens=STEPS, stop_at_eos=False)
    reference = steered_decode(model, layout, ids, torch.ones_like(ids), sampling, set(), 0, deltas=deltas).tokens
    fast = FastModel(model)
    got = FastGenerator(fast).generate(ids.tolist(), deltas, sampling, list(range(batch)), set(), max_slots=batch)
    result = token_agreement(got.tokens, reference)
    result["first_step_logits"] = logits_error(model, fast, ids.tolist(), deltas, layout)
    # Both bf16 paths against a float32 copy of the same weights: is the fast path as close to exact as the reference?
    exact = copy.deepcopy(model).float()
    with torch.inference_mode():
        with steering(exact, layout, SteeringDeltas(deltas)):
            truth = exact(ids).logits[:, -1].float()
        with steering(model, layout, SteeringDeltas(deltas)):
            reference_bf16 = model(ids).logits[:, -1].float()
        fast.rope_tables(ids.shape[1] + 1)
        deltas_bf16 = {"residual": torch.zeros(fast.num_layers, batch, fast.hidden, dtype=fast.dtype, device="cuda")}
        deltas_bf16["residual"][layer] = deltas[(layer, "residual")]
        fast_bf16 = fast.prefill(ids.tolist(), torch.arange(batch, device="cuda"), fast.new_cache(batch, prompt_tokens),
                                 deltas_bf16).float()
    result["first_step_logits_vs_float32"] = {
        "reference_bf16_relative_l2": float((reference_bf16 - truth).norm() / truth.norm()),
        "fast_bf16_relative_l2": float((fast_bf16 - truth).norm() / truth.norm()),
        "reference_bf16_argmax_agree": float((reference_bf16.argmax(-1) == truth.argmax(-1)).float().mean()),
        "fast_bf16_argmax_agree": float((fast_bf16.argmax(-1) == truth.argmax(-1)).float().mean()),
    }
    del model, fast, exact
    torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy-dir", type=Path, help="folder holding toy models (llama-sft, qwen2-sft, mistral-sft)")
    parser.add_argument("--random-shape", nargs="*", default=["llama3-8b"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/steer_exactness.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    report: dict = {"device": torch.cuda.get_device_name(), "dtype": "bfloat16", "steps": STEPS, "models": {}}
    if args.toy_dir:
        for key in ("llama-sft", "qwen2-sft", "mistral-sft"):
            report["models"][f"toy/{key}"] = toy_model(args.toy_dir / key)
            logger.info("toy/%s %s", key, report["models"][f"toy/{key}"])
    for shape in args.random_shape:
        report["models"][f"random/{shape}"] = random_model(shape)
        logger.info("random/%s %s", shape, report["models"][f"random/{shape}"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
