"""Must show 1: the logprob aggregation equals hand computations (numbers, non-number mass, all off-number)."""

from __future__ import annotations

import math

import pytest
from openai.types.chat.chat_completion_token_logprob import TopLogprob

from steersweep.actors.judges import aggregate_logprob_score, integer_probability_mass, parse_score_token


def logprobs(probabilities: dict[str, float]) -> dict[str, float]:
    return {token: math.log(p) for token, p in probabilities.items()}


def test_mass_on_7_70_85_is_the_weighted_mean():
    # 0.5*7 + 0.3*70 + 0.2*85 = 3.5 + 21 + 17 = 41.5, all mass on numbers
    score = aggregate_logprob_score(logprobs({"7": 0.5, "70": 0.3, "85": 0.2}))
    assert score == pytest.approx(41.5, abs=1e-9)


def test_non_number_mass_is_left_out_and_the_rest_renormalised():
    # numbers hold 0.2 + 0.2 + 0.1 = 0.5: (0.2*7 + 0.2*70 + 0.1*85) / 0.5 = (1.4 + 14 + 8.5) / 0.5 = 47.8
    distribution = logprobs({"7": 0.2, "70": 0.2, "85": 0.1, "The": 0.4, "\n": 0.1})
    assert aggregate_logprob_score(distribution) == pytest.approx(47.8, abs=1e-9)
    assert integer_probability_mass(distribution) == pytest.approx(0.5, abs=1e-12)


def test_all_mass_off_number_gives_none_not_zero():
    assert aggregate_logprob_score(logprobs({"The": 0.6, "I": 0.3, "**": 0.1})) is None
    assert aggregate_logprob_score({}) is None


def test_integer_mass_below_min_mass_gives_none():
    distribution = logprobs({"70": 0.2, "Sure": 0.8})
    assert aggregate_logprob_score(distribution) is None  # 0.2 < default 0.25
    assert aggregate_logprob_score(distribution, min_mass=0.1) == pytest.approx(70.0)
    assert aggregate_logprob_score(logprobs({"40": 0.3, "Sure": 0.7})) == pytest.approx(40.0)


def test_whitespace_is_stripped_and_equal_integers_add_up():
    # " 70" and "70\n" are both 70; mass 0.3 + 0.1 on 70 and 0.2 on 10: (0.4*70 + 0.2*10) / 0.6 = 30 / 0.6 = 50
    distribution = logprobs({" 70": 0.3, "70\n": 0.1, "10": 0.2, "so": 0.4})
    assert aggregate_logprob_score(distribution) == pytest.approx(50.0, abs=1e-9)


@pytest.mark.parametrize("token", ["101", "-5", "7.5", "7.", "seven", "½", "²", "1e2", "", " "])
def test_tokens_that_are_not_integers_0_to_100_do_not_count(token):
    assert parse_score_token(token) is None
    # the odd token holds 0.5 and would move the mean if it counted
    assert aggregate_logprob_score(logprobs({token: 0.5, "20": 0.5}), min_mass=0.0) == pytest.approx(20.0)


@pytest.mark.parametrize(("token", "value"), [("0", 0), ("100", 100), (" 42", 42), ("07", 7), ("\t9 ", 9)])
def test_integer_tokens_parse(token, value):
    assert parse_score_token(token) == value


def test_accepts_pairs_dicts_and_openai_top_logprob_objects():
    pairs = [("7", math.log(0.5)), ("70", math.log(0.3)), ("85", math.log(0.2))]
    as_dicts = [{"token": token, "logprob": lp} for token, lp in pairs]
    as_openai = [TopLogprob(token=token, logprob=lp, bytes=None) for token, lp in pairs]
    scores = [aggregate_logprob_score(form) for form in (pairs, as_dicts, as_openai)]
    assert scores == [pytest.approx(41.5)] * 3


def test_min_mass_must_be_a_probability():
    with pytest.raises(ValueError, match="min_mass"):
        aggregate_logprob_score({"5": 0.0}, min_mass=1.5)
