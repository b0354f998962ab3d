"""Turn prompts (plain text or chat conversations) and responses into token ids, and left-pad batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from .messages import PromptInput


class PromptError(ValueError):
    """A prompt that cannot be rendered for this tokenizer."""


def _as_messages(prompt: PromptInput) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    messages = []
    for i, message in enumerate(prompt):
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise PromptError(f"prompt message {i}: {message!r} needs the keys 'role' and 'content'")
        messages.append({"role": str(message["role"]), "content": str(message["content"])})
    return messages


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: PromptInput) -> list[int]:
    """Token ids of one prompt, ready for the model to continue.

    With a chat template the prompt is rendered with ``add_generation_prompt=True``; without one a plain string is
    tokenized as it is (with the tokenizer's BOS), and a conversation is an error, since a base model has no turns.
    """
    if tokenizer.chat_template:
        rendered = tokenizer.apply_chat_template(_as_messages(prompt), add_generation_prompt=True, tokenize=False)
        ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    elif isinstance(prompt, str):
        ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    else:
        raise PromptError(
            "prompt: a chat conversation was given but the tokenizer has no chat template (a base model); pass "
            "plain text prompts, or set a chat template on the tokenizer"
        )
    if not ids:
        raise PromptError(f"prompt {prompt!r} encodes to no tokens; give a non-empty prompt")
    return list(ids)


def encode_response(tokenizer: PreTrainedTokenizerBase, response: str | Sequence[int]) -> list[int]:
    """Token ids of a response to replay: given ids are used as they are, text is tokenized without specials."""
    if isinstance(response, str):
        return list(tokenizer(response, add_special_tokens=False)["input_ids"]) if response else []
    return [int(token) for token in response]


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack sequences into ``input_ids`` and ``attention_mask`` with padding on the left."""
    width = max(len(seq) for seq in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            input_ids[row, width - len(seq):] = torch.tensor(list(seq), dtype=torch.long)
            attention_mask[row, width - len(seq):] = 1
    return input_ids, attention_mask


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count only real tokens, so a left-padded row sees the same positions as an unpadded one."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp(min=0)
