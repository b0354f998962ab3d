"""Stream tensors out of a Hugging Face safetensors checkpoint (one file or shards + index.json), row block by block.

The reader parses each file's header once and then reads byte ranges with ordinary file reads (no memory map), so
the resident memory of a pass over a checkpoint is one row block, never a shard or a model.

Example:
    >>> reader = CheckpointReader("/models/llama-sft")  # doctest: +SKIP
    >>> for block in reader.row_blocks("model.layers.3.self_attn.o_proj.weight"): ...  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
DEFAULT_BLOCK_BYTES = 16 * 1024 * 1024

_DTYPES: dict[str, tuple[torch.dtype, int]] = {
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8), "I32": (torch.int32, 4), "I16": (torch.int16, 2), "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
}


class CheckpointError(ValueError):
    """A checkpoint folder that is missing, malformed, or does not match the checkpoint it is compared with."""


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives: file, dtype, shape and absolute byte range."""

    name: str
    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int
    stop: int

    @property
    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count


def _read_header(path: Path) -> dict[str, TensorEntry]:
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise CheckpointError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
        (length,) = struct.unpack("<Q", prefix)
        try:
            header = json.loads(handle.read(length))
        except ValueError as error:
            raise CheckpointError(f"{path}: unreadable safetensors header ({error})") from error
    base = 8 + length
    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} has dtype {info['dtype']}, which the reader does not know")
        start, stop = info["data_offsets"]
        entries[name] = TensorEntry(name, path, info["dtype"], tuple(int(s) for s in info["shape"]),
                                    base + int(start), base + int(stop))
    return entries


class CheckpointReader:
    """The tensors of one checkpoint folder (``model.safetensors`` or an index with shards), read on demand."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise CheckpointError(f"checkpoint {self.folder} is not a folder; pass a Hugging Face checkpoint folder")
        index = self.folder / INDEX_FILE
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
            files = sorted(set(weight_map.values()))
        elif (self.folder / SINGLE_FILE).exists():
            weight_map, files = None, [SINGLE_FILE]
        else:
            found = sorted(p.name for p in self.folder.glob("*.safetensors"))
            if not found:
                raise CheckpointError(f"checkpoint {self.folder} has no {SINGLE_FILE}, no {INDEX_FILE} and no "
                                      "*.safetensors files; save the model with save_pretrained(safe_serialization)")
            weight_map, files = None, found
        self.entries: dict[str, TensorEntry] = {}
        for file in files:
            path = self.folder / file
            if not path.exists():
                raise CheckpointError(f"{index}: names shard {file}, which is missing from {self.folder}")
            self.entries.update(_read_header(path))
        if weight_map is not None:
            missing = sorted(set(weight_map) - set(self.entries))
            if missing:
                raise CheckpointError(f"{index}: tensor {missing[0]!r} (and {len(missing) - 1} more) is in the index "
                                      "but in none of its shards")
        self.config: dict = {}
        if (self.folder / "config.json").exists():
            self.config = json.loads((self.folder / "config.json").read_text())

    @property
    def files(self) -> list[Path]:
        return sorted({entry.file for entry in self.entries.values()})

    def names(self) -> list[str]:
        return sorted(self.entries)

    def entry(self, name: str) -> TensorEntry:
        if name not in self.entries:
            raise CheckpointError(f"checkpoint {self.folder} has no tensor {name!r}")
        return self.entries[name]

    def row_blocks(self, name: str, block_bytes: int = DEFAULT_BLOCK_BYTES) -> Iterator[torch.Tensor]:
        """The tensor as consecutive blocks of whole rows (dim 0), each at most ``block_bytes`` on disk."""
        entry = self.entry(name)
        dtype, _ = _DTYPES[entry.dtype]
        rows = entry.shape[0] if entry.shape else 1
        row_shape = entry.shape[1:] if entry.shape else ()
        row_bytes = max(1, (entry.stop - entry.start) // max(rows, 1))
        per_block = max(1, block_bytes // row_bytes)
        with open(entry.file, "rb") as handle:
            handle.seek(entry.start)
            for first in range(0, rows, per_block):
                count = min(per_block, rows - first)
                buffer = bytearray(count * row_bytes)
                if handle.readinto(buffer) != len(buffer):
                    raise CheckpointError(f"{entry.file}: tensor {name!r} is truncated")
                block = torch.frombuffer(buffer, dtype=dtype) if buffer else torch.empty(0, dtype=dtype)
                yield block.reshape(count, *row_shape) if entry.shape else block.reshape(())

    def load(self, name: str) -> torch.Tensor:
        """The whole tensor (for small tensors: norms, or a model's unembedding in tests)."""
        blocks = list(self.row_blocks(name))
        entry = self.entry(name)
        return torch.cat(blocks) if entry.shape else blocks[0]
