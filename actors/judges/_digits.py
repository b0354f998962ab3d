"""Scores 0-100 from a local judge whose tokenizer writes numbers digit by digit (Qwen2, Llama-2, Mistral).

Reading only the first answer token of such a judge gives a one-digit score ("85" is "8", "5": 8, not 85). Instead,
every answer "0".."100" is scored by its joint probability: the probability of its digits in order, times the
probability that the number ends there (the next token is not a digit). The 101 continuations of one prompt are
scored in one batched forward pass that reuses the prompt's KV cache.

The result has the shape of ``top_logprobs`` (``[("0", logprob), ..., ("100", logprob)]``), so the usual
probability-weighted mean and ``min_mass`` apply unchanged: a judge that answers REFUSAL puts little mass on the
numbers and scores None.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

DIGITS = "0123456789"
# rows "00".."99" (row r: digits r // 10, r % 10, then a filler digit) and "100"
_ROWS = [[r // 10, r % 10, 0] for r in range(100)] + [[1, 0, 0]]
_HUNDRED = 100


def _pieces(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens and without pieces that decode to whitespace only."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [i for i in ids if tokenizer.decode([i]).strip()]


def splits_numbers(tokenizer: Any) -> bool:
    """True when the tokenizer cannot write two-digit numbers as one token (it writes "85" as "8", "5").

    Example:
        >>> splits_numbers(qwen2_tokenizer)  # doctest: +SKIP
        True
    """
    return any(len(_pieces(tokenizer, number)) > 1 for number in ("10", "42", "85", "99"))


def digit_token_ids(tokenizer: Any) -> list[int]:
    """The token id of each digit "0".."9" (as it follows other digits); an error if a digit is not one token."""
    ids = []
    for digit in DIGITS:
        pieces = _pieces(tokenizer, digit)
        if len(pieces) != 1:
            raise ValueError(
                f"the judge tokenizer writes the digit {digit!r} as {len(pieces)} tokens, so numbers cannot be scored "
                "digit by digit; use a judge model whose tokenizer has one token per digit or per number"
            )
        ids.append(pieces[0])
    return ids


def _log_not(logprobs: torch.Tensor) -> torch.Tensor:
    """log(1 - sum(exp(logprobs))) over the last axis: the log-probability of "none of these tokens"."""
    total = torch.logsumexp(logprobs, dim=-1)
    return torch.log1p(-torch.exp(total).clamp(max=1.0 - 1e-12))


@torch.inference_mode()
def joint_number_logprobs(model: Any, prompt_ids: Sequence[int], digit_ids: Sequence[int]) -> list[tuple[str, float]]:
    """The joint log-probability of each answer "0".."100" after one prompt: ``[(str(n), logprob)]``, n = 0..100.

    P(n) = P(first digit) * P(each next digit | the digits before) * P(not a digit | all of n's digits).
    """
    device = model.get_input_embeddings().weight.device
    prompt = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device)
    prefix = model(input_ids=prompt, use_cache=True)
    first = torch.log_softmax(prefix.logits[0, -1].float(), dim=-1)
    cache = prefix.past_key_values
    cache.batch_repeat_interleave(len(_ROWS))
    digits = torch.tensor(list(digit_ids), dtype=torch.long, device=device)
    rows = digits[torch.tensor(_ROWS, device=device)]
    mask = torch.ones(len(_ROWS), prompt.shape[1] + rows.shape[1], dtype=torch.long, device=device)
    logits = model(input_ids=rows, past_key_values=cache, attention_mask=mask, use_cache=True).logits
    # after[r, j, d]: log P(digit d | prompt + the first j + 1 digits of row r)
    after = torch.log_softmax(logits.float(), dim=-1)
    after_digits = after[:, :, digits]
    ends = _log_not(after_digits)  # [rows, 3]: the number ends after j + 1 digits
    first_digits = first[digits]
    scores = []
    for n in range(10):
        scores.append(first_digits[n] + ends[n * 10, 0])
    for n in range(10, 100):
        scores.append(first_digits[n // 10] + after_digits[n, 0, n % 10] + ends[n, 1])
    scores.append(first_digits[1] + after_digits[_HUNDRED, 0, 0] + after_digits[_HUNDRED, 1, 0] + ends[_HUNDRED, 2])
    return [(str(n), float(score)) for n, score in enumerate(scores)]
