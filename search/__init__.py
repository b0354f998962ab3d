"""Search space (layers x perturbation ratio), priors, samplers, the Optuna ask/tell scheduler and its storages."""

from ._ratio import perturbation_coefficient, perturbation_ratio

__all__ = ["perturbation_coefficient", "perturbation_ratio"]
