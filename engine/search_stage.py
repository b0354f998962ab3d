"""Best configs from the trials table (``data/trials``, written by :func:`steersweep.search.search`).

Kept free of torch, Ray and Optuna so ``steersweep status`` answers from the files alone.
"""

from __future__ import annotations

from typing import Any


def best_trials(trials) -> list[dict[str, Any]]:
    """Per study, the best feasible trial (highest trait score; ties: more coherent, then gentler ratio).

    ``trials`` is a pandas frame of ``data/trials``; studies without a feasible trial report none.
    """
    out = []
    if trials is None or len(trials) == 0:
        return out
    for study, group in trials.groupby("study", sort=False):
        ok = group[(group["state"] == "COMPLETE") & group["feasible"]]
        if ok.empty:
            out.append({"study": study, "found": False, "n_trials": len(group)})
            continue
        best = ok.sort_values(["trait_score", "coherence", "perturbation_ratio"],
                              ascending=[False, False, True]).iloc[0]
        keys = ("target_model", "trait", "vector_source", "site", "layer", "perturbation_ratio", "coefficient",
                "trait_score", "trait_score_se", "coherence", "coherence_se", "n", "baseline_trait_score",
                "baseline_coherence", "trial_number")
        out.append({"study": study, "found": True, "n_trials": len(group), **{
            k: (best[k].item() if hasattr(best[k], "item") else best[k]) for k in keys if k in best.index}})
    return out
