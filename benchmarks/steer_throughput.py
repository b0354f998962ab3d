"""Steered-generation throughput on one GPU: bandwidth floor, HF generate + hook, the reference path, the fast path.

Builds 7-8B-shaped models with random bf16 weights directly on the GPU (meta -> empty -> random init; nothing is
downloaded or written), gives every row its own steering config (a different vector and coefficient at one layer),
and measures at several batch sizes in one run. Writes JSON under benchmarks/results/.

    python benchmarks/steer_throughput.py --shapes llama3-8b qwen2-7b mistral-7b --batches 1 20 160 512
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import torch

from steersweep.actors.fast_generation import FastGenerator, batch_bucket
from steersweep.actors.fast_model import FastModel
from steersweep.actors.generation import SamplingConfig, steered_decode
from steersweep.actors.layers import resolve_layout

logger = logging.getLogger("steer_throughput")

MATMUL_FLOPS = 790e12
"""bf16 matmul rate taken as the compute ceiling (an 8192^3 product measured 769-798 TFLOP/s on these machines)."""

SHAPES = {
    "llama3-8b": ("llama", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                                rope_theta=500000.0, max_position_embeddings=8192)),
    "qwen2-7b": ("qwen2", dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                               num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
                               rope_theta=1000000.0, max_position_embeddings=32768, use_sliding_window=False)),
    "mistral-7b": ("mistral", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                   num_attention_heads=32, num_key_value_heads=8, vocab_size=32000,
                                   rope_theta=1000000.0, max_position_embeddings=32768, sliding_window=None)),
}


def build_random_model(kind: str, shape: dict, device: str = "cuda") -> torch.nn.Module:
    """A model of a real transformers class with random bf16 weights, allocated on ``device`` with no CPU copy."""
    import transformers

    config_class, model_class = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
        "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
    }[kind]
    config = config_class(**shape, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    with torch.device("meta"):
        model = model_class(config)
    model = model.to_empty(device=device).to(torch.bfloat16)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.fill_(1.0)
            else:
                parameter.normal_(0.0, 0.02, generator=generator)
        rotary_class = type(model.model.rotary_emb)
        with torch.device(device):  # its inv_freq buffer was left unset by meta -> empty
            model.model.rotary_emb = rotary_class(config=config)
    return model.eval().requires_grad_(False)


def copy_bandwidth(device: str = "cuda", gigabytes: float = 4.0) -> float:
    """Device-to-device copy rate in bytes/s, counting bytes read plus bytes written (median of 10)."""
    source = torch.empty(int(gigabytes * 2**30) // 2, dtype=torch.bfloat16, device=device).normal_()
    target = torch.empty_like(source)
    times = []
    for _ in range(12):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        target.copy_(source)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    del source, target
    return 2 * gigabytes * 2**30 / sorted(times[2:])[len(times[2:]) // 2]


def timed(fn) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def per_row_deltas(batch: int, hidden: int, layer: int, device: str) -> dict[tuple[int, str], torch.Tensor]:
    """A different vector and coefficient on every row (row 0 unsteered), float32 ``[batch, hidden]``."""
    generator = torch.Generator(device=device).manual_seed(batch)
    vectors = torch.randn(batch, hidden, device=device, generator=generator)
    vectors = vectors / vectors.norm(dim=-1, keepdim=True)
    coefficients = torch.linspace(0.0, 8.0, batch, device=device)[:, None]
    return {(layer, "residual"): vectors * coefficients}


def hf_generate_with_hook(model, input_ids, delta: torch.Tensor, layer: int, new_tokens: int) -> None:
    """HF ``generate`` (its default dynamic cache) with a forward hook adding each row's delta at ``layer``."""
    add = delta.to(torch.bfloat16)[:, None, :]

    def hook(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden + add
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = model.model.layers[layer].register_forward_hook(hook)
    try:
        model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=new_tokens,
                       min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    finally:
        handle.remove()


@torch.inference_mode()
def profile_decode(generator: FastGenerator, prompts, deltas, out_file: Path) -> list[dict]:
    """Top kernels of graph-free decode steps (a replayed graph hides its kernels), in ms per step."""
    from torch.profiler import ProfilerActivity, profile

    steps = 16
    config = SamplingConfig(max_new_tokens=8, stop_at_eos=False)
    generator.generate(prompts, deltas, config, list(range(len(prompts))), set(), max_slots=len(prompts))
    slots = generator._slots  # the buffers that call left: time bare decode steps on them, eagerly
    components = tuple(sorted({component for _, component in deltas}))
    n_keys = 128
    slots.cursor.zero_()
    generator._step(slots, n_keys, components, False, 1.0)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            slots.cursor.zero_()  # the history column to write; the real loop resets it at every sync
            generator._step(slots, n_keys, components, False, 1.0)
        torch.cuda.synchronize()
    rows = [{"kernel": event.key[:100], "calls_per_step": event.count / steps,
             "ms_per_step": event.self_device_time_total / 1e3 / steps}
            for event in prof.key_averages() if event.self_device_time_total > 0]
    rows.sort(key=lambda r: -r["ms_per_step"])
    rows.insert(0, {"kernel": "ALL KERNELS", "calls_per_step": sum(r["calls_per_step"] for r in rows),
                    "ms_per_step": sum(r["ms_per_step"] for r in rows)})
    out_file.write_text(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=50))
    return rows[:30]


def measure_batch(model, layout, generator: FastGenerator, shape: dict, batch: int, prompt_tokens: int,
                  new_tokens: int, floor_bw: float, parameter_bytes: int, hf_and_reference: bool) -> dict:
    """One batch size: fast (steered, unsteered), HF generate + hook, the reference path."""
    layer = shape["num_hidden_layers"] * 3 // 8
    config = SamplingConfig(max_new_tokens=new_tokens, stop_at_eos=False)
    kv_bytes_per_token = 2 * shape["num_hidden_layers"] * shape["num_key_value_heads"] * (
        shape["hidden_size"] // shape["num_attention_heads"]) * 2
    ids = torch.randint(3, shape["vocab_size"], (batch, prompt_tokens), device="cuda",
                        generator=torch.Generator(device="cuda").manual_seed(batch))
    prompts, seeds = ids.tolist(), list(range(batch))
    deltas = per_row_deltas(batch, shape["hidden_size"], layer, "cuda")
    floor = parameter_bytes / floor_bw
    mean_keys = prompt_tokens + new_tokens / 2
    row = {"batch": batch, "floor_ms_per_step": floor * 1e3,
           "floor_with_kv_ms_per_step": (floor + batch * mean_keys * kv_bytes_per_token / floor_bw) * 1e3,
           # at large batches the matmuls, not the weight reads, bound a step: 2 FLOP per parameter per row
           "flop_floor_ms_per_step": parameter_bytes * batch / MATMUL_FLOPS * 1e3}

    def record(label: str, seconds: float) -> None:
        step = seconds / new_tokens
        row[label] = {"seconds": seconds, "ms_per_step": step * 1e3, "tokens_per_s": batch * new_tokens / seconds,
                      "fraction_of_floor": floor / step}
        logger.info("batch %d %-18s %7.2f ms/step %9.0f tok/s %.2f of floor", batch, label, step * 1e3,
                    batch * new_tokens / seconds, floor / step)

    def fast(with_deltas: dict) -> None:
        generator.generate(prompts, with_deltas, config, seeds, set(), max_slots=batch_bucket(batch))

    fast(deltas)  # warm-up: captures this batch's graphs
    fast({})
    captures = generator.graph_captures
    record("fast", min(timed(lambda: fast(deltas)) for _ in range(2)))
    prefill_only = SamplingConfig(max_new_tokens=1, stop_at_eos=False)
    prefill = min(timed(lambda: generator.generate(prompts, deltas, prefill_only, seeds, set(),
                                                   max_slots=batch_bucket(batch)))
                  for _ in range(2))
    row["fast_prefill_seconds"] = prefill
    row["fast_decode_only_ms_per_step"] = (row["fast"]["seconds"] - prefill) / (new_tokens - 1) * 1e3
    row["fast_decode_only_fraction_of_floor"] = floor * 1e3 / row["fast_decode_only_ms_per_step"]
    logger.info("batch %d fast decode only       %7.2f ms/step (prefill %.3f s) %.2f of floor", batch,
                row["fast_decode_only_ms_per_step"], prefill, row["fast_decode_only_fraction_of_floor"])
    record("fast_unsteered", min(timed(lambda: fast({})) for _ in range(2)))
    row["graph_captures_total"] = generator.graph_captures
    row["graph_captures_during_timed_runs"] = generator.graph_captures - captures
    row["steering_cost"] = row["fast"]["seconds"] / row["fast_unsteered"]["seconds"] - 1
    if hf_and_reference:
        hf_generate_with_hook(model, ids, deltas[(layer, "residual")], layer, 4)  # warm-up
        record("hf_generate_hook", timed(
            lambda: hf_generate_with_hook(model, ids, deltas[(layer, "residual")], layer, new_tokens)))
        record("reference", timed(
            lambda: steered_decode(model, layout, ids, torch.ones_like(ids), config, set(), 0, deltas=deltas)))
        row["fast_over_hf"] = row["hf_generate_hook"]["seconds"] / row["fast"]["seconds"]
        row["fast_over_reference"] = row["reference"]["seconds"] / row["fast"]["seconds"]
    return row


def run_shape(name: str, batches: list[int], prompt_tokens: int, new_tokens: int, floor_bw: float,
              out: Path, profile_batch: int | None, skip_slow_above: int, continuous: bool = True) -> dict:
    kind, shape = SHAPES[name]
    started = time.perf_counter()
    model = build_random_model(kind, shape)
    parameter_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    logger.info("%s built in %.1f s (%.2f GB)", name, time.perf_counter() - started, parameter_bytes / 1e9)
    layout = resolve_layout(model)
    generator = FastGenerator(FastModel(model))
    layer = shape["num_hidden_layers"] * 3 // 8
    result = {"shape": name, "model_type": kind, "parameter_bytes": parameter_bytes, "steer_layer": layer,
              "prompt_tokens": prompt_tokens, "new_tokens": new_tokens, "rows": []}
    for batch in batches:
        logger.info("%s batch %d", name, batch)
        result["rows"].append(measure_batch(model, layout, generator, shape, batch, prompt_tokens, new_tokens,
                                            floor_bw, parameter_bytes, batch <= skip_slow_above))
        if profile_batch == batch:
            ids = torch.randint(3, shape["vocab_size"], (batch, prompt_tokens)).tolist()
            deltas = per_row_deltas(batch, shape["hidden_size"], layer, "cuda")
            result["profile_batch"] = batch
            result["profile_top_kernels"] = profile_decode(generator, ids, deltas, out / f"profile_{name}.txt")
        torch.cuda.empty_cache()
    if continuous:
        result["continuous_batching"] = continuous_batching(generator, shape, layer, prompt_tokens)
    return result


def continuous_batching(generator: FastGenerator, shape: dict, layer: int, prompt_tokens: int,
                        rows: int = 480, slots: int = 160) -> dict:
    """Rows/s for answers of very different lengths: slot refill vs static batches of ``slots`` rows."""
    generator_cpu = torch.Generator().manual_seed(1)
    # A sweep's answers: most stop early, a few run long (16..256 tokens, heavy tail).
    lengths = (16 + 240 * torch.rand(rows, generator=generator_cpu) ** 4).long().tolist()
    ids = torch.randint(3, shape["vocab_size"], (rows, prompt_tokens), generator=generator_cpu).tolist()
    deltas = per_row_deltas(rows, shape["hidden_size"], layer, "cuda")
    config = SamplingConfig(max_new_tokens=max(lengths), stop_at_eos=False)
    seeds = list(range(rows))

    def continuous() -> None:
        generator.generate(ids, deltas, config, seeds, set(), max_slots=slots, max_new_per_row=lengths)

    def static() -> None:
        for start in range(0, rows, slots):
            part = slice(start, start + slots)
            chunk = {key: value[part] for key, value in deltas.items()}
            generator.generate(ids[part], chunk, SamplingConfig(max_new_tokens=max(lengths[part]), stop_at_eos=False),
                               seeds[part], set(), max_slots=slots)

    continuous()
    static()
    t_continuous, t_static = timed(continuous), timed(static)
    logger.info("continuous batching: %.1f rows/s vs static %.1f rows/s (%.2fx)", rows / t_continuous,
                rows / t_static, t_static / t_continuous)
    return {"rows": rows, "slots": slots, "answer_tokens_min_mean_max": [min(lengths), sum(lengths) / rows,
                                                                           max(lengths)],
            "continuous_rows_per_s": rows / t_continuous, "static_rows_per_s": rows / t_static,
            "speedup": t_static / t_continuous}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["llama3-8b"], choices=sorted(SHAPES))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 20, 160, 512])
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--profile-batch", type=int, default=160)
    parser.add_argument("--skip-slow-above", type=int, default=512, help="largest batch for HF and reference runs")
    parser.add_argument("--no-continuous", action="store_true", help="skip the continuous-batching comparison")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    import transformers

    bandwidth = copy_bandwidth()
    logger.info("copy bandwidth %.2f TB/s (read + write)", bandwidth / 1e12)
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "transformers": transformers.__version__, "python": platform.python_version(),
              "copy_bandwidth_bytes_per_s": bandwidth, "n_runs": "fast: best of 2 timed runs after a warm-up; "
              "hf and reference: 1 timed run after a warm-up (hf) / none (reference)", "shapes": []}
    for name in args.shapes:
        report["shapes"].append(run_shape(name, args.batches, args.prompt_tokens, args.new_tokens, bandwidth,
                                          args.out, args.profile_batch, args.skip_slow_above,
                                          not args.no_continuous))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        (args.out / f"steer_throughput_{stamp}.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
