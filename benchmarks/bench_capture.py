"""Capture throughput on CPU: prompts/s for a tiny 32-layer Llama, 32 layers x 3 components per prompt.

Builds the model from a LlamaConfig (random weights, word-level tokenizer with a chat template), saves it to a
temporary folder, loads it in a ModelWorker and times ``capture`` in three modes:

- ``prompt``: prompt positions only (``prompt[-1]``, ``prompt[:]``), no response;
- ``replay``: a given 16-token response replayed after each prompt (``response[:5]``, ``response[:]``, ``prompt[-1]``);
- ``generate``: 16 new tokens generated greedily, then captured (``response[:5]``, ``response[:]``).

Usage: ``python benchmarks/bench_capture.py [--prompts 64] [--repeats 3] [--hidden 64] [--ray]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

WORDS = ("the a cat dog sun rain day night is was very quite happy sad bright dark warm cold good bad and but so "
         "then we you they it runs sleeps sings waits here there today tomorrow always never small big old new "
         "green blue red tree river city road home light song story").split()
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")
COMPONENTS = ("residual", "attn_out", "mlp_out")


def build_model(folder: Path, num_layers: int, hidden: int) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                        unk_token="<unk>", pad_token="<pad>")
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS[4:]})
    tokenizer.chat_template = TEMPLATE
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    LlamaForCausalLM(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_prompts(n: int) -> list[tuple[dict[str, str], ...]]:
    import random

    rng = random.Random(0)
    prompts = []
    for i in range(n):
        system = "you are happy and good" if i % 2 else "you are sad and bad"
        user = " ".join(rng.choice(WORDS) for _ in range(12))
        prompts.append(({"role": "system", "content": system}, {"role": "user", "content": user}))
    return prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--ray", action="store_true", help="also time the same capture through a ModelActor")
    args = parser.parse_args()

    import torch

    from steersweep.actors import CaptureRequest, ModelSpec, ModelWorker

    chat_prompts = make_prompts(args.prompts)
    response = " ".join(WORDS[i % len(WORDS)] for i in range(8, 24))  # 16 tokens
    layers = tuple(range(args.layers))
    modes = {
        "prompt": dict(positions=("prompt[-1]", "prompt[:]")),
        "replay": dict(positions=("response[:5]", "response[:]", "prompt[-1]"),
                       responses=tuple([response] * args.prompts)),
        "generate": dict(positions=("response[:5]", "response[:]"), generate=True, max_new_tokens=16),
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(Path(tmp) / "llama32", args.layers, args.hidden)
        worker = ModelWorker(ModelSpec(str(folder), device="cpu"))
        targets = {"ModelWorker": lambda request: worker.capture(request)}
        if args.ray:
            import ray

            from steersweep.actors import ModelActor

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            actor = ModelActor.remote(ModelSpec(str(folder), device="cpu"))
            targets["ModelActor (Ray)"] = lambda request: ray.get(actor.capture.remote(request))
        print(f"model: LlamaForCausalLM, {args.layers} layers, hidden {args.hidden}, "
              f"{sum(p.numel() for p in worker.model.parameters()) / 1e6:.2f} M parameters, float32, CPU, "
              f"torch threads {torch.get_num_threads()}")
        from steersweep.actors.prompts import encode_prompt

        prompt_tokens = statistics.mean(len(encode_prompt(worker.tokenizer, p)) for p in chat_prompts)
        print(f"capture: {args.layers} layers x {len(COMPONENTS)} components ({', '.join(COMPONENTS)}), "
              f"n = {args.prompts} prompts per call ({prompt_tokens:.1f} prompt tokens each on average), "
              f"batch size {args.batch_size}, median of {args.repeats} calls after 1 warm-up")
        for target_name, call in targets.items():
            for mode, options in modes.items():
                request = CaptureRequest(prompts=tuple(chat_prompts), layers=layers, components=COMPONENTS,
                                         batch_size=args.batch_size, **options)
                call(request)  # warm-up
                seconds = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    reply = call(request)
                    seconds.append(time.perf_counter() - started)
                assert len(reply.activations) == args.layers * len(COMPONENTS) * len(options["positions"])
                median = statistics.median(seconds)
                print(f"{target_name:17s} {mode:9s} positions={len(options['positions'])}: "
                      f"{args.prompts / median:8.1f} prompts/s  (median {median:.3f} s per call of "
                      f"{args.prompts} prompts; min {min(seconds):.3f} s, max {max(seconds):.3f} s; "
                      f"{len(reply.activations)} activation arrays per call)")
        if args.ray:
            ray.shutdown()


if __name__ == "__main__":
    main()
