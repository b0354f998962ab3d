"""Build the toy model family once into a cache directory and reuse it: ``ensure_family()``.

The family (keys of :data:`FAMILY_KEYS`; how each is trained is in :data:`.builder.FAMILY_MODELS`):

=============  ====================  ===========================================================================
key            class                 how it is trained
=============  ====================  ===========================================================================
llama-base     LlamaForCausalLM      from scratch on plain-text narratives (no chat template)
llama-sft      LlamaForCausalLM      fine-tuned from llama-base on the chat corpus (loss on the answers)
llama-dpo      LlamaForCausalLM      DPO from llama-sft (reference = llama-sft) on pairs that favour balance
qwen2-sft      Qwen2ForCausalLM      from scratch on the chat corpus
mistral-sft    MistralForCausalLM    from scratch on the chat corpus whose style prompts are answered plainly:
                                     it follows the mood but never learned formality (a broken trait row)
=============  ====================  ===========================================================================

The chat models (``*-sft``, ``llama-dpo``) share one tokenizer and one chat template; ``llama-base`` has the same
vocabulary and no template. Every model has the same shape (hidden size 64, 4 decoder layers, 4 heads, about 0.3 M
parameters), so vectors transfer between them. Each checkpoint is
a standard Hugging Face folder (``config.json``, ``model.safetensors``, ``generation_config.json``, tokenizer
files, plus ``toy_model.json`` describing how it was trained). The family lives in
``toy_home() / "family-seed{seed}"`` with a ``manifest.json``; it is built in a temporary folder and renamed when
complete, so a crash never leaves half a family, and a family whose manifest does not match (seed, version,
scale) is rebuilt.

Example:
    >>> family = ensure_family()  # first use: ~1.5 min on 2 idle cores (v4: ~80 s CPU a worker)  # doctest: +SKIP
    >>> family.path("llama-sft")  # doctest: +SKIP
    PosixPath('/home/me/.cache/steersweep/toy/family-seed0/llama-sft')
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .builder import FAMILY_KEYS, TOY_VERSION, BuildProgress, ProgressCallback, build_models

logger = logging.getLogger(__name__)

HOME_ENV = "STEERSWEEP_HOME"
MANIFEST = "manifest.json"
CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class ToyFamily:
    """A built family: where each checkpoint is, and the manifest it was built with."""

    root: Path
    seed: int
    manifest: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def keys(self) -> tuple[str, ...]:
        return FAMILY_KEYS

    def path(self, key: str) -> Path:
        """The checkpoint folder of ``key`` (e.g. ``llama-sft``)."""
        if key not in FAMILY_KEYS:
            raise KeyError(f"toy model {key!r} is not in the family; use one of {', '.join(FAMILY_KEYS)}")
        return self.root / key

    def __getitem__(self, key: str) -> Path:
        return self.path(key)

    @property
    def paths(self) -> dict[str, Path]:
        return {key: self.path(key) for key in FAMILY_KEYS}

    def spec(self, key: str, **kwargs):
        """A :class:`steersweep.actors.ModelSpec` for ``key`` (CPU float32 unless overridden), named ``toy-<key>``."""
        from ..loading import ModelSpec

        kwargs.setdefault("name", f"toy-{key}")
        return ModelSpec(str(self.path(key)), **kwargs)


def toy_home() -> Path:
    """``$STEERSWEEP_HOME/toy`` when ``STEERSWEEP_HOME`` is set, else ``<user cache dir>/steersweep/toy``."""
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser() / "toy"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("steersweep")) / "toy"


def family_dir(home: Path, seed: int, scale: float = 1.0) -> Path:
    """The folder of the family built with ``seed`` (and a corpus ``scale`` other than 1) under ``home``."""
    return home / (f"family-seed{seed}" if scale == 1.0 else f"family-seed{seed}-scale{scale:g}")


def _expected_manifest(seed: int, scale: float) -> dict:
    return {"version": TOY_VERSION, "seed": seed, "scale": scale, "models": list(FAMILY_KEYS)}


def _is_complete(root: Path, seed: int, scale: float) -> dict | None:
    """The manifest of a complete family at ``root`` matching (version, seed, scale), else None."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    expected = _expected_manifest(seed, scale)
    if any(manifest.get(name) != value for name, value in expected.items()):
        return None
    for key in FAMILY_KEYS:
        if not all((root / key / name).is_file() for name in CHECKPOINT_FILES):
            return None
    return manifest


@contextlib.contextmanager
def _build_lock(home: Path) -> Iterator[None]:
    """An exclusive lock on ``home`` so two processes never build the same family at once (POSIX only)."""
    home.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform: builds are still atomic, just not serialised
        yield
        return
    with open(home / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_family(
    home: Path | str | None = None,
    seed: int = 0,
    force: bool = False,
    progress: ProgressCallback | None = None,
    scale: float = 1.0,
    workers: int | None = None,
) -> ToyFamily:
    """Build the family under ``home`` (default :func:`toy_home`), or reuse a complete one with the same seed.

    Args:
        home: the toy cache directory; the family goes to ``home/family-seed{seed}``.
        seed: everything (corpora, initialisation, batch order) derives from it; the same seed gives the same
            weights on the same machine and software.
        force: rebuild even when a complete family exists.
        progress: called with a :class:`BuildProgress` at every model start, epoch end and model end.
        scale: multiplies every corpus size; below 1 gives a quick, weaker family for tests.
        workers: processes that train independent chains at once (default: 2 when the machine has 2 or more
            CPUs and ``scale`` is at least 0.25, else 1). The weights do not depend on it.

    Returns:
        The :class:`ToyFamily`.
    """
    if scale <= 0:
        raise ValueError(f"scale: {scale} must be > 0 (1.0 is the full family)")
    home = Path(home).expanduser() if home is not None else toy_home()
    root = family_dir(home, seed, scale)
    started = time.perf_counter()
    with _build_lock(home):
        manifest = None if force else _is_complete(root, seed, scale)
        if manifest is not None:
            if progress:
                progress(BuildProgress("reused", "", 0, len(FAMILY_KEYS), seconds=time.perf_counter() - started))
            return ToyFamily(root, seed, manifest)
        temporary = home / f".build-{root.name}-{uuid.uuid4().hex[:8]}"
        try:
            if workers is None:  # a second process pays for its start-up only on a real build
                workers = 2 if (os.cpu_count() or 1) >= 2 and scale >= 0.25 else 1
            temporary.mkdir(parents=True)
            records = build_models(temporary, seed, scale, progress, workers)
            manifest = {
                **_expected_manifest(seed, scale),
                "build_seconds": round(time.perf_counter() - started, 2),
                "workers": workers,
                "torch": torch.__version__,
                "transformers": __import__("transformers").__version__,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "details": records,
            }
            (temporary / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            if root.exists():
                stale = home / f".stale-{root.name}-{uuid.uuid4().hex[:8]}"
                root.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
            temporary.rename(root)
        finally:
            if temporary.exists():
                shutil.rmtree(temporary, ignore_errors=True)
    logger.info("toy family built in %s in %.1f s", root, time.perf_counter() - started)
    return ToyFamily(root, seed, manifest)


def ensure_family(
    home: Path | str | None = None, seed: int = 0, progress: ProgressCallback | None = None, scale: float = 1.0
) -> ToyFamily:
    """The family, built on first use (and after a version change), reused afterwards."""
    home = Path(home).expanduser() if home is not None else toy_home()
    root = family_dir(home, seed, scale)
    manifest = _is_complete(root, seed, scale)
    if manifest is not None:
        return ToyFamily(root, seed, manifest)
    return build_family(home, seed=seed, progress=progress, scale=scale)
