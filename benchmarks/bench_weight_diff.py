"""Peak memory of the streamed weight diff vs loading both checkpoints, on an 8B-shaped (Llama-3-8B widths) pair.

    python benchmarks/bench_weight_diff.py --layers 1 --loaded      # 1-layer proxy, both ways
    python benchmarks/bench_weight_diff.py --layers 32              # the full 32-layer shape, streamed only

Writes a pair of sharded bf16 checkpoints (one shard per decoder layer, the embedding and the head in their own;
model.safetensors.index.json) with a planted change in layer 0's o_proj, then runs each method in a fresh process and
reports its peak resident memory (VmHWM) next to a process that only imports torch + steersweep. Shards of
layers that do not differ are hard links of the base's (saves disk and write time; the page cache then serves
the second read, so the wall time is a lower bound, the memory is not affected). Deletes the pair unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

SHAPES = dict(hidden=4096, intermediate=14336, kv=1024, vocab=128256)

MEASURE = r"""
import json, sys, time
import torch
from steersweep.analysis import weight_diff
mode, a, b = sys.argv[1:4]
started = time.perf_counter()
if mode == "streamed":
    diff = weight_diff(a, b)
    changed = diff.changed()
elif mode == "loaded":
    from pathlib import Path
    from safetensors.torch import load_file
    def load(folder):
        tensors = {}
        for shard in sorted(Path(folder).glob("*.safetensors")):
            tensors.update(load_file(str(shard)))
        return tensors
    first, second = load(a), load(b)
    changed = [name for name in first if float((second[name].float() - first[name].float()).norm()) > 0]
else:
    changed = []
# VmHWM (peak resident set of this process image); ru_maxrss would carry the parent's peak across fork + exec.
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps(dict(mode=mode, peak_rss_mib=peak_kib / 1024,
                      seconds=time.perf_counter() - started, changed=[str(c) for c in changed])))
"""


def _tensor(shape: tuple[int, ...], block: torch.Tensor) -> torch.Tensor:
    numel = 1
    for size in shape:
        numel *= size
    return block.repeat(numel // block.numel() + 1)[:numel].view(shape).clone()


def _copy_layer(source: Path, target: Path, old: str, new: str) -> int:
    """A safetensors file with ``source``'s data and its tensor names' ``old`` prefix replaced by ``new``."""
    with open(source, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
        renamed = json.dumps({k.replace(old, new): v for k, v in header.items()}).encode()
        renamed += b" " * (-len(renamed) % 8)
        with open(target, "wb") as out:
            out.write(struct.pack("<Q", len(renamed)) + renamed)
            shutil.copyfileobj(handle, out, 64 * 1024 * 1024)
    return source.stat().st_size - 8 - length


def write_pair(root: Path, layers: int, shrink: int = 1) -> tuple[Path, Path, int]:
    base, tuned = root / "base", root / "tuned"
    for folder in (base, tuned):
        folder.mkdir(parents=True, exist_ok=True)
    block = torch.randn(1 << 20, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16) * 0.02
    h, i, kv, v = (SHAPES[k] // shrink for k in ("hidden", "intermediate", "kv", "vocab"))
    weight_map: dict[str, str] = {}
    total = 0
    shards = [("embed", {"model.embed_tokens.weight": (v, h)}),
              ("head", {"lm_head.weight": (v, h), "model.norm.weight": (h,)})]
    for layer in range(layers):
        prefix = f"model.layers.{layer}."
        shards.append((f"layer{layer}", {
            prefix + "self_attn.q_proj.weight": (h, h), prefix + "self_attn.k_proj.weight": (kv, h),
            prefix + "self_attn.v_proj.weight": (kv, h), prefix + "self_attn.o_proj.weight": (h, h),
            prefix + "mlp.gate_proj.weight": (i, h), prefix + "mlp.up_proj.weight": (i, h),
            prefix + "mlp.down_proj.weight": (h, i), prefix + "input_layernorm.weight": (h,),
            prefix + "post_attention_layernorm.weight": (h,)}))
    for index, (label, shapes) in enumerate(shards):
        file = f"model-{index + 1:05d}-of-{len(shards):05d}.safetensors"
        weight_map.update(dict.fromkeys(shapes, file))
        if label.startswith("layer") and label not in ("layer0", "layer1"):
            # Same bytes as layer 1 under this layer's tensor names: copied at disk speed, not generated again.
            total += _copy_layer(base / weight_map["model.layers.1.input_layernorm.weight"], base / file,
                                 "model.layers.1.", f"model.layers.{label[5:]}.")
            os.link(base / file, tuned / file)
            print(f"copied shard {index + 1}/{len(shards)} ({label})", file=sys.stderr, flush=True)
            continue
        tensors = {name: _tensor(shape, block) for name, shape in shapes.items()}
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        save_file(tensors, str(base / file))
        if label == "layer0":
            tensors["model.layers.0.self_attn.o_proj.weight"] += 0.01
            save_file(tensors, str(tuned / file))
        else:
            os.link(base / file, tuned / file)
        del tensors
        print(f"wrote shard {index + 1}/{len(shards)} ({label})", file=sys.stderr, flush=True)
    config = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=h, intermediate_size=i,
                  num_hidden_layers=layers, vocab_size=v, rms_norm_eps=1e-5, tie_word_embeddings=False)
    for folder in (base, tuned):
        (folder / "config.json").write_text(json.dumps(config))
        (folder / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": total}, "weight_map": weight_map}))
    return base, tuned, total


def measure(mode: str, base: Path, tuned: Path) -> dict:
    output = subprocess.run([sys.executable, "-c", MEASURE, mode, str(base), str(tuned)], check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench_weight_diff"))
    parser.add_argument("--loaded", action="store_true", help="also measure loading both checkpoints whole")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="measure a pair --keep left in --dir")
    parser.add_argument("--shrink", type=int, default=1, help="divide every width by this (quick checks)")
    args = parser.parse_args()
    root = args.dir / f"layers{args.layers}"
    started = time.perf_counter()
    if args.reuse and (root / "tuned" / "model.safetensors.index.json").exists():
        base, tuned = root / "base", root / "tuned"
        size = json.loads((base / "model.safetensors.index.json").read_text())["metadata"]["total_size"]
    else:
        shutil.rmtree(root, ignore_errors=True)
        base, tuned, size = write_pair(root, args.layers, args.shrink)
    written = time.perf_counter() - started
    results = {"layers": args.layers, "shrink": args.shrink, "checkpoint_gib": size / 2**30, "write_seconds": written,
               "imports_only": measure("imports", base, tuned), "streamed": measure("streamed", base, tuned)}
    if args.loaded:
        results["loaded"] = measure("loaded", base, tuned)
    print(json.dumps(results, indent=2))
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
