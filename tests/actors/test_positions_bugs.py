"""The position language against plain Python indexing of the segment's token list (property-based)."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from steersweep.actors import Position, PositionSyntaxError, parse_positions

SEGMENTS = ("prompt", "response", "all")
lengths = st.integers(min_value=0, max_value=12)
indices = st.integers(min_value=-16, max_value=16)


def segment_tokens(segment: str, prompt_len: int, response_len: int) -> list[int]:
    """The absolute indices of a segment, spelled out: the reference the language must agree with."""
    tokens = list(range(prompt_len + response_len))
    return {"prompt": tokens[:prompt_len], "response": tokens[prompt_len:], "all": tokens}[segment]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SEGMENTS), indices, lengths, lengths)
@example("prompt", 5, 4, 3)  # one past the end of a 4-token prompt: nothing, never a response token
@example("prompt", 4, 4, 3)
@example("prompt", -4, 4, 3)  # the first of a 4-token prompt
@example("prompt", -5, 4, 3)
@example("response", 0, 4, 0)  # an empty response
@example("response", -1, 4, 1)
def test_single_index_is_python_indexing_or_nothing(segment, index, prompt_len, response_len):
    tokens = segment_tokens(segment, prompt_len, response_len)
    try:
        expected = [tokens[index]]
    except IndexError:
        expected = []
    assert Position.parse(f"{segment}[{index}]").indices(prompt_len, response_len) == expected


optional_indices = st.none() | indices


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SEGMENTS), optional_indices, optional_indices, lengths, lengths)
@example("response", None, 5, 4, 3)  # response[:5] of a 3-token response: 3 tokens
@example("prompt", -3, None, 2, 3)
@example("all", None, None, 0, 0)
def test_slice_is_python_slicing(segment, start, stop, prompt_len, response_len):
    text = f"{segment}[{'' if start is None else start}:{'' if stop is None else stop}]"
    expected = segment_tokens(segment, prompt_len, response_len)[start:stop]
    assert Position.parse(text).indices(prompt_len, response_len) == expected


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(SEGMENTS), optional_indices, optional_indices)
def test_spacing_does_not_change_the_meaning(segment, start, stop):
    compact = f"{segment}[{'' if start is None else start}:{'' if stop is None else stop}]"
    spaced = f"  {segment} [ {'' if start is None else start} : {'' if stop is None else stop} ]  "
    assert Position.parse(spaced).indices(5, 4) == Position.parse(compact).indices(5, 4)


@pytest.mark.parametrize("text", ["prompt[]", "prompt[1:2:3]", "tokens[0]", "prompt[a]", "prompt[0]x", "prompt[+1]",
                                  "prompt", "response[1.5]"])
def test_malformed_positions_name_the_syntax(text):
    with pytest.raises(PositionSyntaxError, match="SEGMENT"):
        Position.parse(text)


def test_syntax_errors_list_the_segments_and_examples():
    with pytest.raises(PositionSyntaxError) as error:
        Position.parse("tokens[0]")
    assert str(error.value) == (
        "position 'tokens[0]' is not valid; write SEGMENT[INDEX] or SEGMENT[START:STOP] with SEGMENT one of "
        "prompt, response, all, e.g. 'response[:5]', 'prompt[-1]', 'all[:]'"
    )
    with pytest.raises(PositionSyntaxError) as error:
        Position.parse("prompt[]")
    assert str(error.value) == (
        "position 'prompt[]': write SEGMENT[INDEX] with a number, or SEGMENT[START:STOP], e.g. 'prompt[-1]'"
    )


def test_parse_keeps_the_text_and_the_parts():
    assert Position.parse(" response[-3:] ") == Position(" response[-3:] ", "response", -3, None, True)
    assert Position.parse("prompt[2]") == Position("prompt[2]", "prompt", 2, None, False)
    assert Position.parse("all[:4]") == Position("all[:4]", "all", None, 4, True)
    assert [p.text for p in parse_positions(["prompt[-1]", "all[:]"])] == ["prompt[-1]", "all[:]"]
    with pytest.raises(PositionSyntaxError, match="'bad'"):
        parse_positions(["prompt[-1]", "bad"])
