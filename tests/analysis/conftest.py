"""Synthetic contrast data with a planted trait direction (and a nuisance direction of large within-class spread)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest


@dataclass
class PlantedContrast:
    positive: np.ndarray  # [n, n_layers, dim]
    negative: np.ndarray
    trait: np.ndarray  # unit [dim]
    nuisance: np.ndarray  # unit [dim], orthogonal to trait


def make_planted_contrast(
    seed: int = 0, n: int = 300, dim: int = 32, n_layers: int = 4, delta: float = 3.0, nuisance_sd: float = 40.0,
    noise_sd: float = 1.0, offset: float = 0.0,
) -> PlantedContrast:
    """Two Gaussian classes ``+-delta/2`` apart along ``trait``; isotropic noise plus a large spread along
    ``nuisance`` shared by both classes; an optional common offset along a third direction."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, 3)))
    trait, nuisance, common = basis[:, 0], basis[:, 1], basis[:, 2]

    def one_class(sign: float) -> np.ndarray:
        x = rng.normal(scale=noise_sd, size=(n, n_layers, dim))
        x += rng.normal(scale=nuisance_sd, size=(n, n_layers, 1)) * nuisance
        x += sign * delta / 2 * trait + offset * common
        return x

    return PlantedContrast(one_class(+1.0), one_class(-1.0), trait, nuisance)


@pytest.fixture
def planted() -> PlantedContrast:
    """300 samples per class, 4 layers of dim 32, trait separation 3, nuisance spread 40 (sd)."""
    return make_planted_contrast()


@pytest.fixture
def planted_factory():
    """``make_planted_contrast`` itself, for tests that need other sizes."""
    return make_planted_contrast
