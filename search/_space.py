"""SearchSpace: where (layers, windows, two-layer ensembles) and how hard (perturbation ratio, sign) a trial steers.

A *site* is where one trial adds the vector: one layer (``L12``), a contiguous window (``L[6-10]``, the coefficient
split evenly across its layers) or a two-layer ensemble (``L8+L16``, half strength at each). A trial is
(site, ratio, sign); the coefficient at each layer of the site is
``weight * sign * ratio * activation_norm[layer] / vector_norm[layer]``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

_WINDOW = re.compile(r"^L\[(\d+)-(\d+)\]$")
_PAIR = re.compile(r"^L(\d+)\+L(\d+)$")
_LAYER = re.compile(r"^L?(\d+)$")
SIGNS = {"+": (1,), "-": (-1,), "both": (1, -1)}


class SearchConfigError(ValueError):
    """A search setting that cannot work; the message names the field and the fix."""


@dataclass(frozen=True)
class Site:
    """Where one trial steers: its layers and the share of the coefficient each gets."""

    layers: tuple[int, ...]
    weights: tuple[float, ...]
    label: str

    @property
    def layer(self) -> int:
        """The first layer (the trials table's ``layer`` column)."""
        return self.layers[0]

    @property
    def is_single(self) -> bool:
        return len(self.layers) == 1

    @classmethod
    def single(cls, layer: int) -> Site:
        return cls((layer,), (1.0,), f"L{layer}")

    @classmethod
    def parse(cls, text: str) -> Site:
        """``L12`` / ``12``, ``L[6-10]`` (window, coefficient split across it), ``L8+L16`` (ensemble, half each).

        Example:
            >>> Site.parse("L[6-8]").weights
            (0.3333333333333333, 0.3333333333333333, 0.3333333333333333)
        """
        text = str(text).strip()
        if match := _WINDOW.match(text):
            start, stop = int(match.group(1)), int(match.group(2))
            if stop <= start:
                raise SearchConfigError(f"space.windows: {text!r} is empty or reversed; write L[first-last] with "
                                        "first < last, e.g. L[6-10]")
            layers = tuple(range(start, stop + 1))
            return cls(layers, tuple(1.0 / len(layers) for _ in layers), text)
        if match := _PAIR.match(text):
            a, b = int(match.group(1)), int(match.group(2))
            if a == b:
                raise SearchConfigError(f"space.ensembles: {text!r} names one layer twice; use two different layers")
            return cls((a, b), (0.5, 0.5), f"L{a}+L{b}")
        if match := _LAYER.match(text):
            return cls.single(int(match.group(1)))
        raise SearchConfigError(f"space: cannot read the site {text!r}; write L12, L[6-10] or L8+L16")


@dataclass(frozen=True)
class SearchSpace:
    """Layers x perturbation ratio x sign, plus optional windows and two-layer ensembles.

    Layers come from exactly one of ``layers`` (explicit list), ``layer_range`` (first, last inclusive) or
    ``depth`` (fractions of depth, e.g. (0.3, 0.6)); with none, every layer. The ratio is searched on a log scale.

    Example:
        >>> space = SearchSpace(depth=(0.25, 0.75), windows=("L[1-2]",))
        >>> [site.label for site in space.sites(num_layers=4)]
        ['L1', 'L2', 'L[1-2]']
    """

    layers: tuple[int, ...] | None = None
    layer_range: tuple[int, int] | None = None
    depth: tuple[float, float] | None = None
    ratio: tuple[float, float] = (0.05, 2.0)
    log_ratio: bool = True
    sign: str = "+"
    windows: tuple[str, ...] = ()
    ensembles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        chosen = [name for name in ("layers", "layer_range", "depth") if getattr(self, name) is not None]
        if len(chosen) > 1:
            raise SearchConfigError(f"space: {' and '.join(chosen)} both choose layers; give only one of them")
        lo, hi = (float(v) for v in self.ratio)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or hi <= lo:
            raise SearchConfigError(
                f"space.ratio: {tuple(self.ratio)} is not a range of positive ratios; give (low, high) with "
                "0 < low < high, e.g. (0.05, 2.0) (use sign='-' or 'both' to steer against the vector)")
        if self.sign not in SIGNS:
            raise SearchConfigError(f"space.sign: {self.sign!r}; use '+', '-' or 'both'")
        if self.depth is not None:
            f0, f1 = self.depth
            if not 0.0 <= f0 <= f1 <= 1.0:
                raise SearchConfigError(f"space.depth: {self.depth} must be fractions 0 <= first <= last <= 1, "
                                        "e.g. (0.3, 0.6)")
        if self.layers is not None and not self.layers:
            raise SearchConfigError("space.layers: the list is empty; name at least one layer or leave it out")
        for text in (*self.windows, *self.ensembles):
            Site.parse(text)

    @property
    def signs(self) -> tuple[int, ...]:
        return SIGNS[self.sign]

    def layer_list(self, num_layers: int) -> list[int]:
        """The single layers this space searches on a model with ``num_layers`` layers (validated)."""
        if self.layers is not None:
            layers, field_name = [int(v) for v in self.layers], "space.layers"
        elif self.layer_range is not None:
            first, last = (int(v) for v in self.layer_range)
            if last < first:
                raise SearchConfigError(f"space.layer_range: {self.layer_range} is reversed; give (first, last)")
            layers, field_name = list(range(first, last + 1)), "space.layer_range"
        elif self.depth is not None:
            f0, f1 = self.depth
            layers = [i for i in range(num_layers) if f0 - 1e-9 <= i / max(1, num_layers - 1) <= f1 + 1e-9]
            if not layers:
                raise SearchConfigError(f"space.depth: {self.depth} holds no layer of a {num_layers}-layer model; "
                                        "widen the fractions")
            field_name = "space.depth"
        else:
            layers, field_name = list(range(num_layers)), "space"
        for layer in layers:
            _check_layer(layer, num_layers, field_name)
        return sorted(dict.fromkeys(layers))

    def sites(self, num_layers: int) -> list[Site]:
        """Single layers (in layer order), then windows, then ensembles; every layer checked against the model."""
        sites = [Site.single(layer) for layer in self.layer_list(num_layers)]
        for field_name, texts in (("space.windows", self.windows), ("space.ensembles", self.ensembles)):
            for text in texts:
                site = Site.parse(text)
                for layer in site.layers:
                    _check_layer(layer, num_layers, field_name)
                sites.append(site)
        labels = [s.label for s in sites]
        if len(set(labels)) != len(labels):
            raise SearchConfigError(f"space: a site is listed twice ({labels}); list each once")
        return sites

    def clip_ratio(self, ratio: float) -> float:
        lo, hi = self.ratio
        return min(max(float(ratio), float(lo)), float(hi))

    def fingerprint(self, num_layers: int) -> str:
        """What a resumed study must agree on: the sites and the ratio range."""
        lo, hi = self.ratio
        return f"sites={','.join(s.label for s in self.sites(num_layers))};ratio={lo:g}-{hi:g};log={self.log_ratio};" \
               f"sign={self.sign}"


def _check_layer(layer: int, num_layers: int, field_name: str) -> None:
    if not 0 <= layer < num_layers:
        raise SearchConfigError(
            f"{field_name}: layer {layer} is out of range for a model with {num_layers} layers; use layers "
            f"0-{num_layers - 1} (or depth fractions such as (0.3, 0.6))")


def site_index(sites: Sequence[Site], label: str) -> int:
    for i, site in enumerate(sites):
        if site.label == label:
            return i
    raise KeyError(label)
