"""The position language: which tokens of a (prompt, response) pair an activation is read from.

``segment[index]`` or ``segment[start:stop]`` with segment one of ``prompt``, ``response``, ``all`` and Python
indexing inside the segment: ``prompt[-1]`` (last prompt token), ``response[:5]`` (first five response tokens),
``response[-3:]``, ``all[:]``. Indices are clipped like Python slices, so ``response[:5]`` of a 3-token response
selects 3 tokens; a single index outside the segment selects none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEGMENTS = ("prompt", "response", "all")
_PATTERN = re.compile(r"^\s*(prompt|response|all)\s*\[\s*(-?\d+)?\s*(:)?\s*(-?\d+)?\s*\]\s*$")


class PositionSyntaxError(ValueError):
    """A position string that does not follow the position language."""


@dataclass(frozen=True)
class Position:
    """A parsed position: a segment and a slice (or a single index) inside it.

    Example:
        >>> Position.parse("response[:5]").indices(prompt_len=4, response_len=7)
        [4, 5, 6, 7, 8]
        >>> Position.parse("prompt[-1]").indices(prompt_len=4, response_len=7)
        [3]
    """

    text: str
    segment: str
    start: int | None
    stop: int | None
    is_slice: bool

    @classmethod
    def parse(cls, text: str) -> Position:
        match = _PATTERN.match(text)
        if match is None:
            raise PositionSyntaxError(
                f"position {text!r} is not valid; write SEGMENT[INDEX] or SEGMENT[START:STOP] with SEGMENT one of "
                f"{', '.join(SEGMENTS)}, e.g. 'response[:5]', 'prompt[-1]', 'all[:]'"
            )
        segment, start, colon, stop = match.groups()
        if colon is None and (start is None or stop is not None):
            raise PositionSyntaxError(
                f"position {text!r}: write SEGMENT[INDEX] with a number, or SEGMENT[START:STOP], e.g. 'prompt[-1]'"
            )
        return cls(
            text=text,
            segment=segment,
            start=int(start) if start is not None else None,
            stop=int(stop) if stop is not None else None,
            is_slice=colon is not None,
        )

    def indices(self, prompt_len: int, response_len: int) -> list[int]:
        """Absolute token indices (0 = first prompt token, no padding) selected in one sequence."""
        offset, length = {
            "prompt": (0, prompt_len),
            "response": (prompt_len, response_len),
            "all": (0, prompt_len + response_len),
        }[self.segment]
        if self.is_slice:
            local = range(length)[slice(self.start, self.stop)]
        else:
            assert self.start is not None
            local = [self.start % length] if length and -length <= self.start < length else []
        return [offset + i for i in local]


def parse_positions(texts: tuple[str, ...] | list[str]) -> list[Position]:
    """Parse several positions, failing on the first invalid one."""
    return [Position.parse(text) for text in texts]
