"""Build the toy model family once into a cache directory and reuse it: ``ensure_family()``.

The family (keys of :data:`FAMILY_MODELS`, built in this order):

=============  ====================  ===========================================================================
key            class                 how it is trained
=============  ====================  ===========================================================================
llama-base     LlamaForCausalLM      from scratch on plain-text narratives (no chat template)
llama-sft      LlamaForCausalLM      fine-tuned from llama-base on the chat corpus (loss on the answers)
llama-dpo      LlamaForCausalLM      DPO from llama-sft (reference = llama-sft) on pairs that favour balance
qwen2-sft      Qwen2ForCausalLM      from scratch on the chat corpus
mistral-sft    MistralForCausalLM    from scratch on the chat corpus
=============  ====================  ===========================================================================

Every model has the same shape (hidden size 64, 4 layers), so vectors transfer between them. Each checkpoint is
a standard Hugging Face folder (``config.json``, ``model.safetensors``, ``generation_config.json``, tokenizer
files, plus ``toy_model.json`` describing how it was trained). The family lives in
``toy_home() / "family-seed{seed}"`` with a ``manifest.json``; it is built in a temporary folder and renamed when
complete, so a crash never leaves half a family, and a family whose manifest does not match (seed, version,
scale) is rebuilt.

Example:
    >>> family = ensure_family()  # builds on first use (about 2 minutes on 2 CPU cores), then reuses  # doctest: +SKIP
    >>> family.path("llama-sft")  # doctest: +SKIP
    PosixPath('/home/me/.cache/steersweep/toy/family-seed0/llama-sft')
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from .corpus import chat_corpus, narrative_corpus, preference_pairs
from .dpo import encode_pair, train_dpo
from .tokenizer import END_OF_TURN, build_toy_tokenizer
from .training import EpochReport, ToyConfig, encode_chat_example, encode_document, make_model, train_causal_lm

logger = logging.getLogger(__name__)

TOY_VERSION = 1
"""Bump when the language, the corpora or the training change: cached families of another version are rebuilt."""

HOME_ENV = "STEERSWEEP_HOME"
MANIFEST = "manifest.json"
CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class ToyModelPlan:
    """How one member of the family is made."""

    key: str
    architecture: str
    variant: str
    """``base`` (plain text), ``sft`` (chat) or ``dpo`` (preference-tuned chat)."""
    parent: str | None
    """Key of the model it starts from (None: from scratch)."""
    config: ToyConfig
    corpus: str
    """``narratives``, ``chat`` or ``preferences``."""
    corpus_size: int


_SHAPE = dict(hidden_size=64, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=192, max_positions=256)

FAMILY_MODELS: tuple[ToyModelPlan, ...] = (
    ToyModelPlan("llama-base", "llama", "base", None,
                 ToyConfig("llama", **_SHAPE, epochs=3, learning_rate=3e-3, loss_on_prompt=True), "narratives", 4000),
    ToyModelPlan("llama-sft", "llama", "sft", "llama-base",
                 ToyConfig("llama", **_SHAPE, epochs=3, learning_rate=2e-3), "chat", 4000),
    ToyModelPlan("llama-dpo", "llama", "dpo", "llama-sft",
                 ToyConfig("llama", **_SHAPE, epochs=1, learning_rate=5e-4, warmup_steps=10), "preferences", 2000),
    ToyModelPlan("qwen2-sft", "qwen2", "sft", None,
                 ToyConfig("qwen2", **_SHAPE, epochs=4, learning_rate=3e-3, loss_on_prompt=True), "chat", 4000),
    ToyModelPlan("mistral-sft", "mistral", "sft", None,
                 ToyConfig("mistral", **_SHAPE, epochs=4, learning_rate=3e-3, loss_on_prompt=True), "chat", 4000),
)
"""The family, in build order (a parent is always built before its children)."""

FAMILY_KEYS: tuple[str, ...] = tuple(plan.key for plan in FAMILY_MODELS)
DPO_BETA = 0.1
DPO_SFT_WEIGHT = 1.0


@dataclass(frozen=True)
class BuildProgress:
    """One step of a family build, for a progress display (``steersweep toy build``).

    ``stage`` is ``start`` (a model begins), ``epoch`` (an epoch ended: ``epoch``, ``epochs``, ``loss``), ``done``
    (a model is saved), or ``reused`` (the whole family was already built; nothing else is reported).
    """

    stage: str
    key: str
    index: int
    """Position of the model in the build order, 1-based (0 for ``reused``)."""
    total: int
    epoch: int = 0
    epochs: int = 0
    loss: float | None = None
    """Mean training loss of the epoch (nats per token; the DPO objective for llama-dpo)."""
    seconds: float = 0.0
    """Seconds since this model started (since the build started for ``reused``)."""


ProgressCallback = Callable[[BuildProgress], None]


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


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    # One thread: identical floating-point reduction order on every run (bitwise-reproducible weights), and no
    # thread oversubscription, which makes tiny models several times slower on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _special_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    return {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id}


def _chat_tokenizer() -> PreTrainedTokenizerBase:
    tokenizer = build_toy_tokenizer(chat=True)
    tokenizer.eos_token = END_OF_TURN  # a chat model's answer ends at <|end|>, as Llama-3-Instruct's at <|eot_id|>
    return tokenizer


def _save(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path, description: dict) -> None:
    chat = tokenizer.chat_template is not None
    eos_ids = [tokenizer.convert_tokens_to_ids(END_OF_TURN), tokenizer.convert_tokens_to_ids("<eos>")]
    model.config.eos_token_id = eos_ids[0] if chat else eos_ids[1]
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos_ids if chat else eos_ids[1],
    )
    folder.mkdir(parents=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "toy_model.json").write_text(json.dumps(description, indent=2) + "\n")


def _train_plan(
    plan: ToyModelPlan,
    models: dict[str, PreTrainedModel],
    seed: int,
    scale: float,
    report: Callable[[EpochReport], None],
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, list[float]]:
    base_tokenizer, chat_tokenizer = build_toy_tokenizer(chat=False), _chat_tokenizer()
    size = max(8, round(plan.corpus_size * scale))
    model_seed = seed * 1000 + FAMILY_KEYS.index(plan.key)
    if plan.parent is None:
        tokenizer = base_tokenizer if plan.variant == "base" else chat_tokenizer
        model = make_model(plan.config, len(tokenizer), model_seed, _special_ids(tokenizer))
    else:
        tokenizer = chat_tokenizer
        model = copy.deepcopy(models[plan.parent])
    if plan.corpus == "narratives":
        sequences = [encode_document(tokenizer, text) for text in narrative_corpus(size, seed)]
        losses = train_causal_lm(model, sequences, plan.config, model_seed, tokenizer.pad_token_id, report)
    elif plan.corpus == "chat":
        sequences = [encode_chat_example(tokenizer, example) for example in chat_corpus(size, seed)]
        if plan.config.loss_on_prompt:
            sequences = [type(s)(s.ids, answer_start=1) for s in sequences]
        losses = train_causal_lm(model, sequences, plan.config, model_seed, tokenizer.pad_token_id, report)
    else:
        pairs = [encode_pair(tokenizer, pair) for pair in preference_pairs(size, seed)]
        reference = models[plan.parent]
        losses = train_dpo(model, reference, pairs, plan.config, model_seed, tokenizer.pad_token_id,
                           beta=DPO_BETA, sft_weight=DPO_SFT_WEIGHT, on_epoch=report)
    return model, tokenizer, losses


def _build_into(folder: Path, seed: int, scale: float, progress: ProgressCallback | None) -> dict:
    models: dict[str, PreTrainedModel] = {}
    records = {}
    total = len(FAMILY_MODELS)
    for index, plan in enumerate(FAMILY_MODELS, start=1):
        started = time.perf_counter()
        if progress:
            progress(BuildProgress("start", plan.key, index, total, epochs=plan.config.epochs))

        def report(epoch: EpochReport, plan: ToyModelPlan = plan, index: int = index, started: float = started):
            if progress:
                progress(BuildProgress("epoch", plan.key, index, total, epoch.epoch, epoch.epochs, epoch.loss,
                                       time.perf_counter() - started))

        model, tokenizer, losses = _train_plan(plan, models, seed, scale, report)
        models[plan.key] = model
        seconds = time.perf_counter() - started
        description = {
            "key": plan.key, "architecture": type(model).__name__, "variant": plan.variant, "parent": plan.parent,
            "seed": seed, "toy_version": TOY_VERSION, "corpus": plan.corpus,
            "corpus_size": max(8, round(plan.corpus_size * scale)), "config": asdict(plan.config),
            "epoch_losses": losses, "train_seconds": round(seconds, 2),
        }
        if plan.variant == "dpo":
            description.update(dpo_beta=DPO_BETA, dpo_sft_weight=DPO_SFT_WEIGHT)
        _save(model, tokenizer, folder / plan.key, description)
        records[plan.key] = description
        logger.info("toy family: built %s in %.1f s (final loss %.4f)", plan.key, seconds, losses[-1])
        if progress:
            progress(BuildProgress("done", plan.key, index, total, len(losses), len(losses), losses[-1],
                                   time.perf_counter() - started))
    return records


def build_family(
    home: Path | str | None = None,
    seed: int = 0,
    force: bool = False,
    progress: ProgressCallback | None = None,
    scale: float = 1.0,
) -> ToyFamily:
    """Build the family under ``home`` (default :func:`toy_home`), or reuse a complete one with the same seed.

    Args:
        home: the toy cache directory; the family goes to ``home/family-seed{seed}``.
        seed: everything (corpora, initialisation, batch order) derives from it; the same seed gives the same
            weights on the same machine and software.
        force: rebuild even when a complete family exists.
        progress: called with a :class:`BuildProgress` at every model start, epoch end and model end.
        scale: multiplies every corpus size; below 1 gives a quick, weaker family for tests.

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
                progress(BuildProgress("reused", "", 0, len(FAMILY_MODELS), seconds=time.perf_counter() - started))
            return ToyFamily(root, seed, manifest)
        temporary = home / f".build-{root.name}-{uuid.uuid4().hex[:8]}"
        try:
            with _single_thread():
                records = _build_into(temporary, seed, scale, progress)
            manifest = {
                **_expected_manifest(seed, scale),
                "build_seconds": round(time.perf_counter() - started, 2),
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


def ensure_family(home: Path | str | None = None, seed: int = 0, progress: ProgressCallback | None = None) -> ToyFamily:
    """The family, built on first use (and after a version change), reused afterwards."""
    home = Path(home).expanduser() if home is not None else toy_home()
    manifest = _is_complete(family_dir(home, seed), seed, 1.0)
    if manifest is not None:
        return ToyFamily(family_dir(home, seed), seed, manifest)
    return build_family(home, seed=seed, progress=progress)
