"""Turn a judge's top next-token logprobs into one 0-100 score (probability-weighted mean over integer tokens)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_MIN_MASS = 0.25
"""Below this probability mass on integer tokens the judge did not answer with a number: the score is None."""

_INTEGER_TOKEN = re.compile(r"[0-9]{1,3}")


def parse_score_token(token: str) -> int | None:
    """The integer 0-100 that ``token`` spells (surrounding whitespace ignored), else None.

    Example:
        >>> parse_score_token(" 70"), parse_score_token("7."), parse_score_token("101")
        (70, None, None)
    """
    text = token.strip()
    if not _INTEGER_TOKEN.fullmatch(text):
        return None
    value = int(text)
    return value if value <= 100 else None


def _pairs(top_logprobs: Iterable[Any] | Mapping[str, float]) -> list[tuple[str, float]]:
    """Accept ``{token: logprob}``, ``[(token, logprob)]`` or objects with ``.token`` / ``.logprob`` (OpenAI)."""
    if isinstance(top_logprobs, Mapping):
        return [(str(token), float(logprob)) for token, logprob in top_logprobs.items()]
    pairs = []
    for entry in top_logprobs:
        if isinstance(entry, tuple | list):
            token, logprob = entry
        elif isinstance(entry, Mapping):
            token, logprob = entry["token"], entry["logprob"]
        else:
            token, logprob = entry.token, entry.logprob
        pairs.append((str(token), float(logprob)))
    return pairs


def integer_probability_mass(top_logprobs: Iterable[Any] | Mapping[str, float]) -> float:
    """Total probability (not renormalised) on the tokens that are integers 0-100."""
    return sum(math.exp(logprob) for token, logprob in _pairs(top_logprobs) if parse_score_token(token) is not None)


def aggregate_logprob_score(
    top_logprobs: Iterable[Any] | Mapping[str, float], min_mass: float = DEFAULT_MIN_MASS
) -> float | None:
    """Probability-weighted mean of the integer tokens 0-100 among ``top_logprobs``, renormalised over them.

    Tokens that are not integers 0-100 (words, punctuation, 101, "7.") are left out; tokens that spell the same
    integer (``"7"`` and ``" 7"``) add up. When the probability mass on integer tokens is below ``min_mass`` the
    judge did not answer with a number and the result is None, never 0.

    Example:
        >>> import math
        >>> round(aggregate_logprob_score({"70": math.log(0.5), "85": math.log(0.3), "The": math.log(0.2)}), 3)
        75.625

    Args:
        top_logprobs: ``{token: logprob}``, ``[(token, logprob)]``, dicts or OpenAI ``TopLogprob`` objects.
        min_mass: smallest total probability on integer tokens for the score to count (0-1).

    Returns:
        The score in [0, 100], or None when the integer mass is below ``min_mass`` (or zero).
    """
    if not 0.0 <= min_mass <= 1.0:
        raise ValueError(f"min_mass: {min_mass} is not a probability; use a value in [0, 1] (default 0.25)")
    mass = 0.0
    weighted = 0.0
    for token, logprob in _pairs(top_logprobs):
        value = parse_score_token(token)
        if value is None:
            continue
        probability = math.exp(logprob)
        mass += probability
        weighted += probability * value
    if mass <= 0.0 or mass < min_mass:
        return None
    return weighted / mass
