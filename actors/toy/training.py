"""Model shapes and next-token training of the toy family (CPU, deterministic given a seed).

One config dataclass (:class:`ToyConfig`: the architecture, its size and the optimiser settings) and one training
function (:func:`train_causal_lm`). The models are real transformers classes (``LlamaForCausalLM``,
``Qwen2ForCausalLM``, ``MistralForCausalLM``) built from their config classes, so a saved checkpoint is a standard
Hugging Face folder.

Example:
    >>> config = ToyConfig(architecture="qwen2", epochs=1)
    >>> model = make_model(config, vocab_size=115, seed=0)  # doctest: +SKIP
    >>> losses = train_causal_lm(model, sequences, config, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .corpus import ChatExample
from .tokenizer import END_OF_TURN, EOS

logger = logging.getLogger(__name__)

ARCHITECTURES: tuple[str, ...] = ("llama", "qwen2", "mistral")

_Item = TypeVar("_Item")


@dataclass(frozen=True)
class ToyConfig:
    """The shape of a toy model and how it is trained.

    The shape fields map one to one onto the transformers config of ``architecture``; the optimiser fields drive
    :func:`train_causal_lm` (AdamW, linear warm-up then cosine decay to a tenth of the peak learning rate).
    """

    architecture: str = "llama"
    hidden_size: int = 64
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 192
    max_positions: int = 128
    initializer_range: float = 0.05
    """Standard deviation of the initial weights (tests use larger values for peaked random models)."""
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    loss_on_prompt: bool = False
    """Learn every token (training from scratch) or only the answer tokens (supervised fine-tuning)."""

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture: {self.architecture!r} is not a toy architecture; use one of {', '.join(ARCHITECTURES)}"
            )
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads: hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}, and "
                f"num_heads by num_kv_heads {self.num_kv_heads}"
            )


@dataclass(frozen=True)
class TrainSequence:
    """Token ids of one training text; the loss covers the tokens from ``answer_start`` on."""

    ids: tuple[int, ...]
    answer_start: int = 1


@dataclass(frozen=True)
class EpochReport:
    """Reported to a progress callback after each epoch."""

    epoch: int
    epochs: int
    loss: float
    """Mean training loss of the epoch, in nats per learned token."""
    steps: int


def make_model(config: ToyConfig, vocab_size: int, seed: int, special_ids: dict[str, int]) -> PreTrainedModel:
    """A freshly initialised float32 model of ``config.architecture`` (same seed, same weights)."""
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    shape = dict(
        vocab_size=vocab_size, hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads, max_position_embeddings=config.max_positions,
        bos_token_id=special_ids["bos"], eos_token_id=special_ids["eos"], pad_token_id=special_ids["pad"],
        tie_word_embeddings=False, initializer_range=config.initializer_range, rms_norm_eps=1e-5,
    )
    if config.architecture == "llama":
        model_config, model_class = LlamaConfig(**shape), LlamaForCausalLM
    elif config.architecture == "qwen2":
        model_config, model_class = Qwen2Config(**shape, use_sliding_window=False), Qwen2ForCausalLM
    else:
        model_config, model_class = MistralConfig(**shape, sliding_window=None), MistralForCausalLM
    torch.manual_seed(seed)
    return model_class(model_config)


def encode_chat_example(tokenizer: PreTrainedTokenizerBase, example: ChatExample) -> TrainSequence:
    """Prompt rendered by the chat template, then the answer and ``<|end|>``; the loss starts at the answer."""
    prompt = tokenizer.apply_chat_template(list(example.messages), add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    # No space before <|end|>: it would become a lone space token.
    answer_ids = tokenizer(f"{example.response}{END_OF_TURN}", add_special_tokens=False)["input_ids"]
    return TrainSequence(tuple(prompt_ids) + tuple(answer_ids), answer_start=len(prompt_ids))


def encode_document(tokenizer: PreTrainedTokenizerBase, text: str) -> TrainSequence:
    """``<bos> text <eos>``; the loss covers every token after ``<bos>``."""
    ids = tokenizer(f"{text}{EOS}", add_special_tokens=True)["input_ids"]
    return TrainSequence(tuple(ids), answer_start=1)


def collate(batch: Sequence[TrainSequence], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 where no loss is taken)."""
    width = max(len(item.ids) for item in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, item in enumerate(batch):
        ids = torch.tensor(item.ids, dtype=torch.long)
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
        labels[row, item.answer_start: len(ids)] = ids[item.answer_start:]
    return input_ids, attention_mask, labels


def sequence_logprobs(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the summed log-probability of the labelled tokens, and how many tokens were labelled."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    targets = labels[:, 1:]
    learned = targets != -100
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    token_logprobs = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (token_logprobs * learned).sum(-1), learned.sum(-1)


def learning_rate(step: int, total_steps: int, config: ToyConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay from the peak to a tenth of it."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def make_optimizer(model: PreTrainedModel, config: ToyConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only (not on norms and biases)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.98))


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread: the same floating-point reduction order on every run (bitwise-reproducible
    weights), and no thread oversubscription, which makes tiny models several times slower on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_causal_lm(
    model: PreTrainedModel,
    sequences: Sequence[TrainSequence],
    config: ToyConfig,
    seed: int,
    pad_id: int,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> list[float]:
    """Train ``model`` in place on next-token prediction; returns the mean loss (nats/token) of every epoch.

    Deterministic: the batch order comes from a generator seeded with ``seed``, nothing else is random, and torch
    runs on one thread (see :func:`single_thread`).
    """
    if not sequences:
        raise ValueError("sequences: nothing to train on; give at least one training sequence")

    def batch_loss(batch: list[TrainSequence]) -> tuple[torch.Tensor, int]:
        input_ids, attention_mask, labels = collate(batch, pad_id)
        logprob_sums, token_counts = sequence_logprobs(model, input_ids, attention_mask, labels)
        # Weighted by tokens so that the epoch loss is per token, not per batch (the last batch may be short).
        return -logprob_sums.sum() / token_counts.sum(), int(token_counts.sum())

    return train_epochs(model, sequences, config, seed, batch_loss, on_epoch, "epoch %d/%d: loss %.4f nats/token")


def train_epochs(
    model: PreTrainedModel,
    items: Sequence[_Item],
    config: ToyConfig,
    seed: int,
    batch_loss: Callable[[list[_Item]], tuple[torch.Tensor, int]],
    on_epoch: Callable[[EpochReport], None] | None,
    log_format: str,
) -> list[float]:
    """The loop shared by the toy trainers; returns the mean loss of every epoch.

    Each epoch walks ``items`` in a fresh order drawn from a generator seeded with ``seed``, in batches of
    ``config.batch_size``; ``batch_loss`` turns one batch into its loss tensor and a weight, and one AdamW step (see
    :func:`make_optimizer`, :func:`learning_rate`, gradients clipped to norm 1) follows. The epoch loss is the
    weighted mean of the batch losses. Runs on one thread (see :func:`single_thread`); ``log_format`` takes the epoch,
    the number of epochs and the loss.
    """
    with single_thread():
        generator = torch.Generator().manual_seed(seed)
        steps_per_epoch = math.ceil(len(items) / config.batch_size)
        total_steps = steps_per_epoch * config.epochs
        optimizer = make_optimizer(model, config)
        model.train()
        epoch_losses = []
        step = 0
        for epoch in range(config.epochs):
            order = torch.randperm(len(items), generator=generator).tolist()
            total_loss, total_weight = 0.0, 0
            for start in range(0, len(order), config.batch_size):
                loss, weight = batch_loss([items[i] for i in order[start: start + config.batch_size]])
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(step, total_steps, config)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                step += 1
                total_loss += loss.item() * weight
                total_weight += weight
            epoch_losses.append(total_loss / total_weight)
            logger.info(log_format, epoch + 1, config.epochs, epoch_losses[-1])
            if on_epoch is not None:
                on_epoch(EpochReport(epoch + 1, config.epochs, epoch_losses[-1], step))
        model.eval()
        return epoch_losses
