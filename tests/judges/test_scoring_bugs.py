"""The judge score's edges: the exact min_mass boundary, the integer-token filter, and unknown metrics."""

from __future__ import annotations

import math

import pytest

from steersweep.actors.judges import (
    JudgeConfigError,
    RuleJudge,
    aggregate_logprob_score,
    integer_probability_mass,
    parse_score_token,
)


def test_mass_exactly_at_min_mass_counts_and_just_below_does_not():
    distribution = {"60": math.log(0.2), "80": math.log(0.1), "Sure": math.log(0.7)}
    mass = math.exp(math.log(0.2)) + math.exp(math.log(0.1))  # the same float sum the judge forms
    expected = (0.2 * 60 + 0.1 * 80) / 0.3
    assert aggregate_logprob_score(distribution, min_mass=mass) == pytest.approx(expected, abs=1e-9)
    assert aggregate_logprob_score(distribution, min_mass=math.nextafter(mass, 1.0)) is None
    assert aggregate_logprob_score(distribution, min_mass=math.nextafter(mass, 0.0)) == pytest.approx(expected)
    assert integer_probability_mass(distribution) == mass


def test_all_mass_on_numbers_passes_min_mass_one():
    assert aggregate_logprob_score({"42": 0.0}, min_mass=1.0) == 42.0  # log(1) = 0: mass exactly 1


def test_zero_integer_mass_is_none_even_with_min_mass_zero():
    assert aggregate_logprob_score({"Sure": 0.0}, min_mass=0.0) is None
    assert aggregate_logprob_score({"7": math.log(0.5)}, min_mass=0.0) == 7.0


@pytest.mark.parametrize("min_mass", [-0.01, 1.01, math.nan])
def test_min_mass_outside_0_1_is_refused(min_mass):
    with pytest.raises(ValueError, match="min_mass"):
        aggregate_logprob_score({"7": 0.0}, min_mass=min_mass)


@pytest.mark.parametrize(("token", "value"), [
    ("0", 0), ("100", 100), ("101", None), (" 7 ", 7), ("007", 7), ("1000", None), ("-5", None), ("7.", None),
    ("", None), ("seven", None), ("5 5", None),
])
def test_score_tokens(token, value):
    assert parse_score_token(token) == value


def test_non_number_tokens_are_skipped_wherever_they_come():
    assert aggregate_logprob_score({"The": math.log(0.5), "40": math.log(0.25), "I": math.log(0.1),
                                    "80": math.log(0.15)}) == pytest.approx((0.25 * 40 + 0.15 * 80) / 0.4)


def test_tokens_spelling_the_same_integer_add_up():
    score = aggregate_logprob_score({"7": math.log(0.25), " 7": math.log(0.25), "100": math.log(0.5)})
    assert score == pytest.approx((0.5 * 7 + 0.5 * 100) / 1.0)


def test_top_logprob_layouts_give_the_same_score():
    probabilities = {"10": 0.4, "90": 0.4, "x": 0.2}
    as_dict = {t: math.log(p) for t, p in probabilities.items()}
    as_pairs = list(as_dict.items())
    as_dicts = [{"token": t, "logprob": lp} for t, lp in as_pairs]
    scores = [aggregate_logprob_score(layout) for layout in (as_dict, as_pairs, as_dicts)]
    assert scores == [pytest.approx(50.0)] * 3


def test_unknown_metric_is_a_config_error(trait):
    judge = RuleJudge(lambda question, response: (50.0, 50.0))
    with pytest.raises(JudgeConfigError, match=r"metrics: 'fluency' is not a judge metric"):
        judge.judge([("q", "r")], trait, metrics=("fluency",))
