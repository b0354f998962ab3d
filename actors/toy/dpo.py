"""Direct preference optimisation (DPO) of a toy model against a frozen reference copy of itself.

The loss of one pair is ``-log sigmoid(beta * ((log pi(chosen) - log ref(chosen)) - (log pi(rejected) -
log ref(rejected))))`` over the answer tokens (Rafailov et al., 2023), plus ``sft_weight`` times the per-token
negative log-likelihood of the chosen answer, which keeps a tiny model fluent while its preferences move.

In the toy family the pairs favour balanced answers over the same answers pushed to one mood, so the tuned model
holds on to balance: a steering vector has to push harder to move it (the DPO resistance of the research notes).

Example:
    >>> losses = train_dpo(policy, reference, pairs, ToyConfig(epochs=1), seed=0, pad_id=0)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .corpus import ChatExample, PreferencePair
from .training import (
    EpochReport,
    ToyConfig,
    TrainSequence,
    collate,
    encode_chat_example,
    sequence_logprobs,
    train_epochs,
)


@dataclass(frozen=True)
class EncodedPair:
    """Token ids of the chosen and the rejected conversation (same prompt)."""

    chosen: TrainSequence
    rejected: TrainSequence


def encode_pair(tokenizer: PreTrainedTokenizerBase, pair: PreferencePair) -> EncodedPair:
    """Both answers rendered after the pair's prompt, the loss on the answer tokens only."""
    return EncodedPair(
        chosen=encode_chat_example(tokenizer, ChatExample(pair.messages, pair.chosen, "balanced")),
        rejected=encode_chat_example(tokenizer, ChatExample(pair.messages, pair.rejected, "balanced")),
    )


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Mean DPO loss over a batch of summed answer log-probabilities (one value per pair in each tensor)."""
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    return -functional.logsigmoid(beta * margin).mean()


def train_dpo(
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    pairs: Sequence[EncodedPair],
    config: ToyConfig,
    seed: int,
    pad_id: int,
    beta: float = 0.1,
    sft_weight: float = 0.2,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> list[float]:
    """Tune ``policy`` in place with DPO against the frozen ``reference``; returns the mean loss of every epoch.

    ``config`` supplies the optimiser settings (epochs, batch size, learning rate, warm-up, weight decay). Runs on
    one thread, deterministic given ``seed``.
    """
    if not pairs:
        raise ValueError("pairs: nothing to train on; give at least one preference pair")
    if beta <= 0:
        raise ValueError(f"beta: {beta} must be > 0 (it scales the implicit reward)")
    reference.eval()
    reference.requires_grad_(False)

    def batch_loss(batch: list[EncodedPair]) -> tuple[torch.Tensor, int]:
        # Chosen and rejected go through the model as one batch: rows [0, n) chosen, [n, 2n) rejected.
        input_ids, attention_mask, labels = collate(
            [pair.chosen for pair in batch] + [pair.rejected for pair in batch], pad_id
        )
        with torch.no_grad():
            reference_logprobs, _ = sequence_logprobs(reference, input_ids, attention_mask, labels)
        policy_logprobs, token_counts = sequence_logprobs(policy, input_ids, attention_mask, labels)
        n = len(batch)
        loss = dpo_loss(policy_logprobs[:n], policy_logprobs[n:], reference_logprobs[:n],
                        reference_logprobs[n:], beta)
        if sft_weight:
            loss = loss - sft_weight * policy_logprobs[:n].sum() / token_counts[:n].sum()
        # Weight 1: the epoch loss is the mean over batches.
        return loss, 1

    return train_epochs(policy, pairs, config, seed, batch_loss, on_epoch, "dpo epoch %d/%d: loss %.4f")
