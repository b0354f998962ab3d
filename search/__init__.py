"""Search space, priors and the Optuna ask/tell scheduler (not built yet)."""
