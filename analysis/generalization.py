"""Generalization matrices: fit a vector on one tag (split, topic, language ...) and test it on every tag.

Each group's samples are divided into a fitting part and a held-out part (stratified by class, whole scenarios
kept together when ``unit_ids`` are given). The vector fitted on group A's fitting part is evaluated on the
held-out part of every group B, so the diagonal (A on A) is held-out too and comparable with the off-diagonal.
Accuracy uses the threshold halfway between the two class-mean projections of the fitting data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .extraction import ExtractionMethod, as_layers, probe


@dataclass(frozen=True)
class GeneralizationMatrix:
    """Accuracy ``[n_layers, n_train_groups, n_test_groups]`` of vectors fitted on one group, tested on another."""

    method: str
    groups: tuple[str, ...]
    layers: tuple[int, ...]
    accuracy: np.ndarray
    n_test: tuple[int, ...]
    """Held-out samples per test group."""

    def table(self, layer: int) -> np.ndarray:
        """The ``[train, test]`` accuracy table at model layer ``layer``."""
        try:
            return self.accuracy[self.layers.index(layer)]
        except ValueError:
            raise KeyError(f"layer {layer} is not in this matrix (layers {list(self.layers)})") from None

    def diagonal_mean(self, layer: int) -> float:
        return float(np.mean(np.diag(self.table(layer))))

    def off_diagonal_mean(self, layer: int) -> float:
        table = self.table(layer)
        mask = ~np.eye(len(self.groups), dtype=bool)
        return float(np.mean(table[mask])) if mask.any() else float("nan")

    def rows(self) -> list[dict[str, object]]:
        """One row per (layer, train group, test group), ready for a Parquet table."""
        out = []
        for li, layer in enumerate(self.layers):
            for ti, train in enumerate(self.groups):
                for ei, test in enumerate(self.groups):
                    out.append({"method": self.method, "layer": layer, "train_group": train, "test_group": test,
                                "accuracy": float(self.accuracy[li, ti, ei]), "n_test": self.n_test[ei]})
        return out

    def format(self, layer: int) -> str:
        """A plain-text train x test table (accuracy in %)."""
        width = max(8, *(len(g) for g in self.groups)) + 1
        lines = [f"{self.method} @ layer {layer}: train (rows) x test (columns), held-out accuracy %".ljust(width)]
        lines.append(" " * width + "".join(g.rjust(width) for g in self.groups))
        for ti, train in enumerate(self.groups):
            cells = "".join(f"{100 * v:.1f}".rjust(width) for v in self.table(layer)[ti])
            lines.append(train.ljust(width) + cells)
        return "\n".join(lines)


def heldout_split(
    labels: np.ndarray, unit_ids: Sequence[str] | None = None, heldout_fraction: float = 0.5, seed: int = 0
) -> np.ndarray:
    """A bool mask of held-out samples, stratified by label; samples sharing a unit id stay together."""
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction: {heldout_fraction} must be strictly between 0 and 1")
    labels = np.asarray(labels, dtype=bool)
    units = np.asarray(unit_ids if unit_ids is not None else np.arange(len(labels)).astype(str))
    rng = np.random.default_rng(seed)
    heldout = np.zeros(len(labels), dtype=bool)
    for label in (True, False):
        class_units = np.unique(units[labels == label])
        rng.shuffle(class_units)
        n_held = round(heldout_fraction * len(class_units))
        n_held = min(max(n_held, 1), len(class_units) - 1) if len(class_units) > 1 else 0
        heldout |= (labels == label) & np.isin(units, class_units[:n_held])
    return heldout


def _accuracy(vector: np.ndarray, threshold: float, samples: np.ndarray, labels: np.ndarray) -> float:
    projections = samples @ vector
    correct = np.where(labels, projections > threshold, projections < threshold)
    return float(np.mean(correct)) if len(correct) else float("nan")


def generalization_matrix(
    activations: np.ndarray,
    labels: Sequence[bool] | np.ndarray,
    groups: Sequence[str],
    *,
    method: ExtractionMethod = probe,
    layers: Sequence[int] | None = None,
    unit_ids: Sequence[str] | None = None,
    heldout_fraction: float = 0.5,
    seed: int = 0,
) -> GeneralizationMatrix:
    """Train x test accuracy per layer across the tag values in ``groups``.

    Args:
        activations: ``[n_samples, n_layers, dim]`` (or ``[n_samples, dim]``).
        labels: True for the positive class.
        groups: tag of each sample (topic, language, split ...); the matrix has one row/column per distinct tag.
        method: extraction method (``probe`` by default; pass ``mean_diff`` or ``gradient`` to compare).
        layers: model layer index of each activation layer (default 0..n-1).
        unit_ids: scenario id per sample, so that rollouts of one scenario are never split.

    Example:
        >>> m = generalization_matrix(acts, labels, topics, method=mean_diff)   # doctest: +SKIP
        >>> print(m.format(layer=0))                                            # doctest: +SKIP
    """
    per_layer = as_layers(activations, "activations")
    labels = np.asarray(labels, dtype=bool)
    groups = np.asarray([str(g) for g in groups])
    n = len(labels)
    if len(groups) != n or len(per_layer[0]) != n:
        raise ValueError(f"labels ({n}), groups ({len(groups)}) and activations ({len(per_layer[0])}) must align")
    names = tuple(sorted(set(groups.tolist())))
    heldout = np.zeros(n, dtype=bool)
    units = np.asarray(unit_ids) if unit_ids is not None else None
    for g in names:
        in_group = groups == g
        if labels[in_group].all() or not labels[in_group].any():
            raise ValueError(f"groups: tag {g!r} has only one class; every tag needs positive and negative samples")
        heldout[in_group] = heldout_split(
            labels[in_group], units[in_group] if units is not None else None, heldout_fraction, seed
        )
    layer_ids = tuple(layers) if layers is not None else tuple(range(len(per_layer)))
    accuracy = np.zeros((len(per_layer), len(names), len(names)))
    method_name = "?"
    for ti, train_group in enumerate(names):
        fit = (groups == train_group) & ~heldout
        result = method([x[fit & labels] for x in per_layer], [x[fit & ~labels] for x in per_layer])
        method_name = result.method
        for li, x in enumerate(per_layer):
            vector = result.vectors[li].astype(np.float64)
            threshold = 0.5 * (float(np.mean(x[fit & labels] @ vector)) + float(np.mean(x[fit & ~labels] @ vector)))
            for ei, test_group in enumerate(names):
                test = (groups == test_group) & heldout
                accuracy[li, ti, ei] = _accuracy(vector, threshold, x[test], labels[test])
    n_test = tuple(int(((groups == g) & heldout).sum()) for g in names)
    return GeneralizationMatrix(method_name, names, layer_ids, accuracy, n_test)
