"""RatioPrior: where a search starts before it has evidence (the research's sweet spot: ratio ~0.6, middle layers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._space import Site


@dataclass(frozen=True)
class RatioPrior:
    """The first trials of a study: ``start_ratio`` on up to ``max_layers`` single-layer sites whose depth fraction
    lies in ``middle``. Walks that start here exceed ``soft_cap`` only after a coherent step asked for more.

    Replace it (any object with ``start_sites`` and ``start_ratio``) to start elsewhere.

    Example:
        >>> from steersweep.search import SearchSpace
        >>> sites = SearchSpace().sites(num_layers=32)
        >>> [sites[i].label for i in RatioPrior().start_sites(sites, 32)]
        ['L10', 'L16', 'L21']
    """

    start_ratio: float = 0.6
    middle: tuple[float, float] = (0.3, 0.7)
    max_layers: int = 3
    soft_cap: float = 1.3

    def start_sites(self, sites: Sequence[Site], num_layers: int) -> list[int]:
        """Indices (into ``sites``) of the middle single layers, at most ``max_layers`` spread evenly."""
        f0, f1 = self.middle
        depth = max(1, num_layers - 1)
        middle = [i for i, s in enumerate(sites) if s.is_single and f0 - 1e-9 <= s.layer / depth <= f1 + 1e-9]
        if not middle:  # a space without middle layers: start at the single sites nearest the middle
            singles = [i for i, s in enumerate(sites) if s.is_single] or list(range(len(sites)))
            middle = sorted(singles, key=lambda i: abs(sites[i].layer / depth - 0.5))[:1]
        if len(middle) <= self.max_layers:
            return middle
        step = (len(middle) - 1) / max(1, self.max_layers - 1)
        return sorted({middle[round(k * step)] for k in range(self.max_layers)})
