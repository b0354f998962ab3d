"""The members of the toy family and how they are trained and saved, optionally two chains at a time.

A *chain* is a model and the models fine-tuned from it (llama-base -> llama-sft -> llama-dpo); chains are
independent, so with ``workers=2`` one runs in this process and the others in a child interpreter
(``python -m steersweep.actors.toy.builder``), which halves the build time on two idle cores. Every model trains
on one thread from its own seed, so the weights are the same whichever process trains it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from .corpus import chat_corpus, narrative_corpus, preference_pairs
from .dpo import encode_pair, train_dpo
from .tokenizer import END_OF_TURN, EOS, build_toy_tokenizer
from .training import (
    EpochReport,
    ToyConfig,
    TrainSequence,
    encode_chat_example,
    encode_document,
    make_model,
    single_thread,
    train_causal_lm,
)

logger = logging.getLogger(__name__)

TOY_VERSION = 4
"""Bump when the language, the corpora or the training change: cached families of another version are rebuilt."""


@dataclass(frozen=True)
class ToyModelPlan:
    """How one member of the family is made."""

    key: str
    variant: str
    """``base`` (plain text), ``sft`` (chat) or ``dpo`` (preference-tuned chat)."""
    parent: str | None
    """Key of the model it starts from (None: from scratch)."""
    config: ToyConfig
    corpus: str
    """``narratives``, ``chat`` or ``preferences``."""
    corpus_size: int
    follow_style: bool = True
    """False: the chat corpus answers style prompts plainly, so the model never learns formality (a broken row)."""

    @property
    def architecture(self) -> str:
        return self.config.architecture

    def size(self, scale: float) -> int:
        return max(8, round(self.corpus_size * scale))


_SHAPE = dict(hidden_size=64, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=192, max_positions=256)

FAMILY_MODELS: tuple[ToyModelPlan, ...] = (
    ToyModelPlan("llama-base", "base", None,
                 ToyConfig("llama", **_SHAPE, epochs=3, learning_rate=3e-3, loss_on_prompt=True), "narratives", 4000),
    ToyModelPlan("llama-sft", "sft", "llama-base",
                 ToyConfig("llama", **_SHAPE, epochs=3, learning_rate=2e-3), "chat", 4000),
    ToyModelPlan("llama-dpo", "dpo", "llama-sft",
                 ToyConfig("llama", **_SHAPE, epochs=1, learning_rate=9e-4, warmup_steps=10), "preferences", 2000),
    ToyModelPlan("qwen2-sft", "sft", None,
                 ToyConfig("qwen2", **_SHAPE, epochs=3, learning_rate=3e-3, loss_on_prompt=True), "chat", 4000),
    ToyModelPlan("mistral-sft", "sft", None,
                 ToyConfig("mistral", **_SHAPE, epochs=3, learning_rate=3e-3, loss_on_prompt=True), "chat", 4000,
                 follow_style=False),
)
"""The family, in build order (a parent is always listed before its children).

llama-dpo's learning rate sets how narrow its feasible band is (trait >= 85 with coherence >= 80 over layers 0-3 x
25 log-spaced ratios in 0.05-2.0, llama-sft's optimism vector, v4 seed 0): 9% at 5e-4, 5% at 8e-4, 4% at 9e-4,
2% at 1e-3 (seeds 1 / 2 at 1e-3: 5% / 1%)."""

FAMILY_KEYS: tuple[str, ...] = tuple(plan.key for plan in FAMILY_MODELS)
DPO_BETA = 0.1
DPO_SFT_WEIGHT = 1.0


@dataclass(frozen=True)
class BuildProgress:
    """One step of a family build, for a progress display (``steersweep toy build``).

    ``stage`` is ``start`` (a model begins), ``epoch`` (an epoch ended: ``epoch``, ``epochs``, ``loss``), ``done``
    (a model is saved), or ``reused`` (the whole family was already built; nothing else is reported). With two
    workers the events of two models interleave.
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

    def __str__(self) -> str:
        """One readable line, e.g. ``llama-sft (2/5): epoch 2/3, loss 1.1158, 14.2 s``."""
        if self.stage == "reused":
            return f"toy family: already built, reused ({self.seconds:.1f} s)"
        where = f"{self.key} ({self.index}/{self.total})"
        if self.stage == "start":
            return f"{where}: training, {self.epochs} epochs"
        loss = f", loss {self.loss:.4f}" if self.loss is not None else ""
        if self.stage == "epoch":
            return f"{where}: epoch {self.epoch}/{self.epochs}{loss}, {self.seconds:.1f} s"
        return f"{where}: done{loss}, {self.seconds:.1f} s"


ProgressCallback = Callable[[BuildProgress], None]


def _tokenizer(variant: str) -> PreTrainedTokenizerBase:
    if variant == "base":
        return build_toy_tokenizer(chat=False)
    tokenizer = build_toy_tokenizer(chat=True)
    tokenizer.eos_token = END_OF_TURN  # a chat answer ends at <|end|>, as Llama-3-Instruct's ends at <|eot_id|>
    return tokenizer


def _save(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path, description: dict) -> None:
    chat = tokenizer.chat_template is not None
    end_ids = [tokenizer.convert_tokens_to_ids(END_OF_TURN), tokenizer.convert_tokens_to_ids(EOS)]
    model.config.eos_token_id = tokenizer.eos_token_id
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=end_ids if chat else tokenizer.eos_token_id,
    )
    folder.mkdir(parents=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "toy_model.json").write_text(json.dumps(description, indent=2) + "\n")


def train_member(
    plan: ToyModelPlan, parents: dict[str, PreTrainedModel], seed: int, scale: float,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, list[float]]:
    """Train one member (its parent, if any, must be in ``parents``); returns the model, tokenizer and losses."""
    tokenizer = _tokenizer(plan.variant)
    size = plan.size(scale)
    model_seed = seed * 1000 + FAMILY_KEYS.index(plan.key)
    if plan.parent is None:
        special_ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id}
        model = make_model(plan.config, len(tokenizer), model_seed, special_ids)
    else:
        model = copy.deepcopy(parents[plan.parent])
    pad_id = tokenizer.pad_token_id
    if plan.corpus == "narratives":
        sequences = [encode_document(tokenizer, text) for text in narrative_corpus(size, seed)]
        losses = train_causal_lm(model, sequences, plan.config, model_seed, pad_id, on_epoch)
    elif plan.corpus == "chat":
        sequences = [encode_chat_example(tokenizer, example)
                     for example in chat_corpus(size, seed, follow_style=plan.follow_style)]
        if plan.config.loss_on_prompt:
            sequences = [TrainSequence(sequence.ids, answer_start=1) for sequence in sequences]
        losses = train_causal_lm(model, sequences, plan.config, model_seed, pad_id, on_epoch)
    elif plan.corpus == "preferences":
        pairs = [encode_pair(tokenizer, pair) for pair in preference_pairs(size, seed)]
        losses = train_dpo(model, parents[plan.parent], pairs, plan.config, model_seed, pad_id,
                           beta=DPO_BETA, sft_weight=DPO_SFT_WEIGHT, on_epoch=on_epoch)
    else:
        raise ValueError(f"corpus: unknown corpus {plan.corpus!r} for {plan.key}")
    return model, tokenizer, losses


def build_chain(keys: Sequence[str], folder: Path, seed: int, scale: float,
                emit: Callable[[BuildProgress], None]) -> dict[str, dict]:
    """Train and save the members ``keys`` (parents first) into ``folder``; returns their descriptions."""
    plans = {plan.key: plan for plan in FAMILY_MODELS}
    models: dict[str, PreTrainedModel] = {}
    records = {}
    total = len(FAMILY_MODELS)
    for key in keys:
        plan, index = plans[key], FAMILY_KEYS.index(key) + 1
        started = time.perf_counter()
        emit(BuildProgress("start", key, index, total, epochs=plan.config.epochs))

        def on_epoch(report: EpochReport, key: str = key, index: int = index, started: float = started) -> None:
            emit(BuildProgress("epoch", key, index, total, report.epoch, report.epochs, report.loss,
                               time.perf_counter() - started))

        model, tokenizer, losses = train_member(plan, models, seed, scale, on_epoch)
        models[key] = model
        description = {
            "key": key, "architecture": type(model).__name__, "variant": plan.variant, "parent": plan.parent,
            "seed": seed, "toy_version": TOY_VERSION, "corpus": plan.corpus, "corpus_size": plan.size(scale),
            "follow_style": plan.follow_style,
            "config": asdict(plan.config), "epoch_losses": losses,
            "train_seconds": round(time.perf_counter() - started, 2),
        }
        if plan.variant == "dpo":
            description.update(dpo_beta=DPO_BETA, dpo_sft_weight=DPO_SFT_WEIGHT)
        _save(model, tokenizer, folder / key, description)
        records[key] = description
        logger.info("toy family: built %s in %.1f s (final loss %.4f)", key, description["train_seconds"],
                    losses[-1])
        emit(BuildProgress("done", key, index, total, len(losses), len(losses), losses[-1],
                           time.perf_counter() - started))
    return records


def chains() -> list[list[str]]:
    """The family split into independent chains (each a root model and its descendants, in build order)."""
    root_of: dict[str, str] = {}
    for plan in FAMILY_MODELS:
        root_of[plan.key] = root_of[plan.parent] if plan.parent else plan.key
    grouped: dict[str, list[str]] = {}
    for plan in FAMILY_MODELS:
        grouped.setdefault(root_of[plan.key], []).append(plan.key)
    return list(grouped.values())


def _cost(keys: Sequence[str]) -> float:
    plans = {plan.key: plan for plan in FAMILY_MODELS}
    return sum(plans[key].corpus_size * plans[key].config.epochs * (2 if plans[key].variant == "dpo" else 1)
               for key in keys)


def assign_chains(workers: int) -> list[list[str]]:
    """Chains packed into ``workers`` bins of similar training cost (longest first); bin 0 is the largest."""
    bins: list[list[str]] = [[] for _ in range(max(1, workers))]
    for chain in sorted(chains(), key=_cost, reverse=True):
        min(bins, key=_cost).extend(chain)
    return sorted((b for b in bins if b), key=_cost, reverse=True)


class _ChildChain:
    """A chain trained by a child interpreter that reports progress as JSON lines on its stdout."""

    def __init__(self, keys: Sequence[str], folder: Path, seed: int, scale: float, events: queue.Queue):
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by finish or kill)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), TOKENIZERS_PARALLELISM="false")
        command = [sys.executable, "-m", "steersweep.actors.toy.builder", "--folder", str(folder),
                   "--seed", str(seed), "--scale", repr(scale), "--keys", ",".join(keys)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self.records: dict[str, dict] | None = None
        self.reader = threading.Thread(target=self._read, args=(events,), daemon=True)
        self.reader.start()

    def _read(self, events: queue.Queue) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            if message["kind"] == "progress":
                events.put(BuildProgress(**message["event"]))
            else:
                self.records = message["records"]

    def finish(self) -> dict[str, dict]:
        code = self.process.wait()
        self.reader.join()
        if code != 0 or self.records is None:
            self.log.seek(0)
            tail = self.log.read()[-3000:]
            raise RuntimeError(
                f"toy family: the build worker for {self.process.args[-1]} failed (exit {code}):\n{tail}"
            )
        self.log.close()
        return self.records

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


def build_models(folder: Path, seed: int, scale: float, progress: ProgressCallback | None,
                 workers: int = 1) -> dict[str, dict]:
    """Train and save every member into ``folder``; with ``workers`` > 1, chains run in parallel processes.

    Progress callbacks always run in this thread (events of child processes are relayed between epochs here).
    """
    bins = assign_chains(workers)
    events: queue.Queue = queue.Queue()

    def relay() -> None:
        while progress is not None:
            try:
                progress(events.get_nowait())
            except queue.Empty:
                return

    def emit(event: BuildProgress) -> None:
        events.put(event)
        relay()

    children = [_ChildChain(keys, folder, seed, scale, events) for keys in bins[1:]]
    try:
        with single_thread():
            records = build_chain(bins[0], folder, seed, scale, emit)
        for child in children:
            while child.process.poll() is None or child.reader.is_alive():
                relay()
                time.sleep(0.1)
            records.update(child.finish())
        relay()
    finally:
        for child in children:
            child.kill()
    return {key: records[key] for key in FAMILY_KEYS}


def _worker_main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Build some chains of the toy family (used by build_family).")
    parser.add_argument("--folder", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--scale", type=float, required=True)
    parser.add_argument("--keys", required=True)
    args = parser.parse_args(argv)
    out = sys.stdout

    def emit(event: BuildProgress) -> None:
        out.write(json.dumps({"kind": "progress", "event": asdict(event)}) + "\n")
        out.flush()

    sys.stdout = sys.stderr  # anything else the libraries print goes to the log, not into the protocol
    with single_thread():
        records = build_chain(args.keys.split(","), Path(args.folder), args.seed, args.scale, emit)
    out.write(json.dumps({"kind": "records", "records": records}) + "\n")
    out.flush()


if __name__ == "__main__":
    _worker_main()
