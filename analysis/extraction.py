"""Trait-vector extraction methods: pure functions from class activations to one oriented vector per layer.

Every method takes the activations of the positive class and of the negative class, either as one array
``[n_samples, n_layers, dim]`` (``[n_samples, dim]`` is one layer) or as a sequence with one ``[n_samples_l, dim]``
array per layer (layers may keep different samples, e.g. after cosine filtering), and returns an
:class:`ExtractionResult` with one vector per layer.

Polarity: the returned vector always makes the positive class project higher than the negative class on the data it
was fitted on. When a method's raw solution points the other way it is negated and the layer is recorded in
``polarity_flipped``. A dataset whose positive and negative files are swapped therefore yields the negated vector;
whether the labels themselves are right is checked against judge scores (see :func:`label_polarity`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

LayeredActivations = np.ndarray | Sequence[np.ndarray]
"""``[n, n_layers, dim]``, ``[n, dim]`` (one layer), or one ``[n_l, dim]`` array per layer."""


@dataclass(frozen=True)
class ExtractionResult:
    """One extracted vector per layer, oriented so that the positive class projects higher.

    Attributes:
        method: name of the method that produced the vectors (``mean_diff``, ``probe``, ``gradient`` ...).
        vectors: float32 ``[n_layers, dim]``; row ``i`` belongs to the i-th layer of the input.
        polarity_flipped: bool ``[n_layers]``; True where the method's raw solution was negated.
        n_positive: positive samples used per layer.
        n_negative: negative samples used per layer.
        details: method-specific extras (e.g. the probe's training accuracy per layer).
    """

    method: str
    vectors: np.ndarray
    polarity_flipped: np.ndarray
    n_positive: tuple[int, ...]
    n_negative: tuple[int, ...]
    details: dict[str, object] = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return int(self.vectors.shape[0])


def as_layers(activations: LayeredActivations, name: str) -> list[np.ndarray]:
    """Normalise any accepted activation layout to one float64 ``[n, dim]`` array per layer.

    Raises:
        ValueError: naming ``name`` when the shape is not one of the accepted layouts or holds NaN/inf.
    """
    if isinstance(activations, np.ndarray):
        if activations.ndim == 2:
            layers = [activations]
        elif activations.ndim == 3:
            layers = [activations[:, i, :] for i in range(activations.shape[1])]
        else:
            raise ValueError(
                f"{name}: expected [n_samples, n_layers, dim] or [n_samples, dim], got shape {activations.shape}"
            )
    else:
        layers = list(activations)
        for i, layer in enumerate(layers):
            if np.ndim(layer) != 2:
                raise ValueError(f"{name}[{i}]: expected one [n_samples, dim] array per layer, got {np.shape(layer)}")
    out = [np.asarray(layer, dtype=np.float64) for layer in layers]
    for i, layer in enumerate(out):
        if not np.all(np.isfinite(layer)):
            bad = int((~np.isfinite(layer)).any(axis=1).sum())
            raise ValueError(
                f"{name}: layer index {i} has {bad} sample(s) with NaN/inf (e.g. a position that selected no "
                "token); drop those samples before extracting"
            )
    return out


def _paired_layers(positive: LayeredActivations, negative: LayeredActivations) -> list[tuple[np.ndarray, np.ndarray]]:
    pos_layers = as_layers(positive, "positive")
    neg_layers = as_layers(negative, "negative")
    if len(pos_layers) != len(neg_layers):
        raise ValueError(f"positive has {len(pos_layers)} layers but negative has {len(neg_layers)}; give the same")
    pairs = []
    for i, (pos, neg) in enumerate(zip(pos_layers, neg_layers, strict=True)):
        if pos.shape[1] != neg.shape[1]:
            raise ValueError(f"layer index {i}: positive dim {pos.shape[1]} != negative dim {neg.shape[1]}")
        if len(pos) == 0 or len(neg) == 0:
            raise ValueError(
                f"layer index {i}: {len(pos)} positive and {len(neg)} negative samples; each class needs at least one"
            )
        pairs.append((pos, neg))
    return pairs


def orient(vector: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return ``(vector, False)`` if the positive class projects higher on average, else ``(-vector, True)``."""
    margin = float(positive.mean(axis=0) @ vector - negative.mean(axis=0) @ vector)
    if margin < 0:
        return -vector, True
    return vector, False


def _finish(
    method: str,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    raw: list[np.ndarray],
    details: dict[str, object] | None = None,
) -> ExtractionResult:
    vectors, flipped = [], []
    for (pos, neg), vector in zip(pairs, raw, strict=True):
        oriented, was_flipped = orient(vector, pos, neg)
        vectors.append(oriented)
        flipped.append(was_flipped)
    if any(flipped):
        logger.info("%s: polarity flipped at layer indices %s", method, [i for i, f in enumerate(flipped) if f])
    return ExtractionResult(
        method=method,
        vectors=np.stack(vectors).astype(np.float32),
        polarity_flipped=np.array(flipped, dtype=bool),
        n_positive=tuple(len(p) for p, _ in pairs),
        n_negative=tuple(len(n) for _, n in pairs),
        details=details or {},
    )


def mean_diff(positive: LayeredActivations, negative: LayeredActivations) -> ExtractionResult:
    """Difference of class means, ``mean(positive) - mean(negative)``, unnormalised (its norm is meaningful).

    Example:
        >>> pos = np.array([[2.0, 0.0], [4.0, 0.0]]); neg = np.array([[0.0, 0.0], [0.0, 2.0]])
        >>> mean_diff(pos, neg).vectors
        array([[ 3., -1.]], dtype=float32)
    """
    pairs = _paired_layers(positive, negative)
    raw = [pos.mean(axis=0) - neg.mean(axis=0) for pos, neg in pairs]
    return _finish("mean_diff", pairs, raw)


def probe(
    positive: LayeredActivations,
    negative: LayeredActivations,
    *,
    regularization: float = 1.0,
    max_iter: int = 2000,
    class_weight: str | None = "balanced",
) -> ExtractionResult:
    """Logistic-regression probe per layer (scikit-learn, L2); the vector is the weight vector, unnormalised.

    The features are divided by one scalar per layer (their root-mean-square spread around the class means)
    before fitting and the weights mapped back, so the regularisation means the same for a model whose
    activations are 100x larger: the direction does not depend on the activations' units, and the returned
    vector projects raw activations onto the probe's logit scale.

    Args:
        regularization: scikit-learn's ``C`` (inverse L2 strength) on the rescaled features.
        max_iter: lbfgs iterations; a probe that does not converge is logged, not fatal.
        class_weight: ``balanced`` so that unequal class sizes (e.g. after judge vetting) do not bias the probe.

    The details hold ``train_accuracy`` per layer (accuracy of the fitted classifier on its own training data).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    pairs = _paired_layers(positive, negative)
    raw, train_accuracy, not_converged = [], [], []
    for i, (pos, neg) in enumerate(pairs):
        features = np.concatenate([pos, neg])
        labels = np.concatenate([np.ones(len(pos), dtype=int), np.zeros(len(neg), dtype=int)])
        spread = np.concatenate([pos - pos.mean(axis=0), neg - neg.mean(axis=0)])
        scale = float(np.sqrt(np.mean(spread**2)))
        scale = scale if scale > 0 else (float(np.sqrt(np.mean(features**2))) or 1.0)
        features = features / scale
        classifier = LogisticRegression(C=regularization, max_iter=max_iter, class_weight=class_weight)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            classifier.fit(features, labels)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            not_converged.append(i)
        raw.append(classifier.coef_[0].astype(np.float64) / scale)
        train_accuracy.append(float(classifier.score(features, labels)))
    if not_converged:
        logger.warning("probe: lbfgs did not converge in %d iterations at layer indices %s", max_iter, not_converged)
    return _finish("probe", pairs, raw, {"train_accuracy": train_accuracy, "not_converged": not_converged})


def gradient(
    positive: LayeredActivations,
    negative: LayeredActivations,
    *,
    steps: int = 400,
    learning_rate: float = 0.02,
    ridge: float = 0.05,
    seed: int = 0,
) -> ExtractionResult:
    """A unit direction optimised by gradient ascent to separate the classes, one per layer.

    The objective is the standardised separation of the projections (Fisher's criterion),
    ``f(v) = v.(mu_pos - mu_neg) / sqrt(v' S_w v + ridge * s2 * |v|^2)`` with ``S_w`` the pooled within-class
    covariance and ``s2`` its mean eigenvalue, so directions along which the classes vary a lot on their own
    (nuisance directions) are discounted. Adam ascends ``f`` from the normalised mean difference; ``steps`` and
    ``ridge`` regularise when there are fewer samples than dimensions. The gradient is analytic (numpy), so the
    method is cheap enough to run on every layer.

    The details hold the final objective (the training Cohen's d along the vector, up to the ridge) per layer.
    """
    pairs = _paired_layers(positive, negative)
    rng = np.random.default_rng(seed)
    raw, objective = [], []
    for pos, neg in pairs:
        diff = pos.mean(axis=0) - neg.mean(axis=0)
        centred = np.concatenate([pos - pos.mean(axis=0), neg - neg.mean(axis=0)])
        dof = max(len(centred) - 2, 1)
        dim = diff.shape[0]
        # v' S_w v = |C v|^2 / dof with C the centred samples: never form the dim x dim covariance
        mean_eigenvalue = float(np.sum(centred**2)) / dof / dim
        shrink = ridge * (mean_eigenvalue if mean_eigenvalue > 0 else 1.0)

        def fisher(v: np.ndarray, centred: np.ndarray = centred, diff: np.ndarray = diff, dof: int = dof,
                   shrink: float = shrink) -> tuple[float, np.ndarray]:
            projected = centred @ v
            spread = float(projected @ projected) / dof + shrink * float(v @ v)
            spread = max(spread, 1e-300)
            numerator = float(v @ diff)
            grad_spread = 2.0 * (centred.T @ projected) / dof + 2.0 * shrink * v
            value = numerator / np.sqrt(spread)
            return value, diff / np.sqrt(spread) - 0.5 * numerator * grad_spread / spread**1.5

        norm = float(np.linalg.norm(diff))
        direction = diff / norm if norm > 0 else rng.standard_normal(dim)
        direction = direction / np.linalg.norm(direction)
        first, second = np.zeros(dim), np.zeros(dim)
        beta1, beta2, eps = 0.9, 0.999, 1e-12
        for step in range(1, steps + 1):
            _, grad = fisher(direction)
            first = beta1 * first + (1 - beta1) * grad
            second = beta2 * second + (1 - beta2) * grad**2
            update = (first / (1 - beta1**step)) / (np.sqrt(second / (1 - beta2**step)) + eps)
            direction = direction + learning_rate * update
            direction = direction / np.linalg.norm(direction)  # f is scale-free: stay on the unit sphere
        value, _ = fisher(direction)
        raw.append(direction)
        objective.append(float(value))
    return _finish("gradient", pairs, raw, {"fisher_objective": objective})


ExtractionMethod = Callable[[LayeredActivations, LayeredActivations], ExtractionResult]

METHODS: dict[str, ExtractionMethod] = {"mean_diff": mean_diff, "probe": probe, "gradient": gradient}
"""Extraction methods by name, as written in a sweep config."""


def get_method(name: str) -> ExtractionMethod:
    """Look up an extraction method by name, with an error that lists the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"method: unknown extraction method {name!r}; use one of {', '.join(METHODS)}") from None
