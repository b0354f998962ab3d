"""Batched per-row steering vs one call per config: configs/s and generated tokens/s.

Builds a random Llama from a config (nothing is downloaded), loads a random vector, and evaluates K (layer,
coefficient) configs either in ONE steer call (every row its own steering) or in K calls of one row.

    python benchmarks/bench_steer.py                       # CPU default: small model
    python benchmarks/bench_steer.py --hidden 2048 --layers 16 --configs 256 --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from steersweep.actors import ModelSpec, ModelWorker, SteeringTerm, SteerRequest, SteerRow


def _build(folder: Path, hidden: int, layers: int, vocab: int) -> Path:
    words = [f"w{i}" for i in range(vocab - 4)]
    backend = Tokenizer(models.WordLevel(vocab={t: i for i, t in enumerate(["<pad>", "<bos>", "<eos>", "<unk>",
                                                                            *words])}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                        unk_token="<unk>", pad_token="<pad>")
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 4 // 1,
                         num_hidden_layers=layers, num_attention_heads=max(hidden // 64, 1),
                         num_key_value_heads=max(hidden // 256, 1), bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--configs", type=int, default=64, help="K (layer, coefficient) configs")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--max-batch", type=int, default=64)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = _build(Path(tmp) / "model", args.hidden, args.layers, args.vocab)
        worker = ModelWorker(ModelSpec(str(path), device=args.device, dtype=args.dtype), max_batch_size=args.max_batch)
    rng = np.random.default_rng(0)
    worker.load_vectors({"v": rng.normal(size=(args.layers, args.hidden)).astype(np.float32)})
    prompt = " ".join(f"w{i}" for i in range(12))
    rows = tuple(SteerRow(prompt, (SteeringTerm("v", k % args.layers, 0.5 * (k // args.layers)),))
                 for k in range(args.configs))
    # Rows never stop early: EOS is ignored so both modes generate exactly new_tokens per row.
    common = dict(max_new_tokens=args.new_tokens, stop_at_eos=False)
    worker.steer(SteerRequest(rows=rows[:2], **common))  # warm-up

    def timed(fn) -> float:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    batched = [timed(lambda: worker.steer(SteerRequest(rows=rows, **common))) for _ in range(args.repeats)]
    separate = [timed(lambda: [worker.steer(SteerRequest(rows=(row,), **common)) for row in rows])
                for _ in range(args.repeats)]
    tokens = args.configs * args.new_tokens
    b, s = statistics.median(batched), statistics.median(separate)
    print(f"model: Llama hidden={args.hidden} layers={args.layers} vocab={args.vocab} on {args.device} {args.dtype}; "
          f"torch threads={torch.get_num_threads()}")
    print(f"K={args.configs} configs x {args.new_tokens} new tokens, median of n={args.repeats} runs each")
    print(f"  batched (1 call):   {b:8.3f} s  {args.configs / b:9.1f} configs/s  {tokens / b:10.1f} tokens/s")
    label = f"separate ({args.configs} calls):"
    print(f"  {label} {s:8.3f} s  {args.configs / s:9.1f} configs/s  {tokens / s:10.1f} tokens/s")
    print(f"  speed-up: {s / b:.1f}x")


if __name__ == "__main__":
    main()
