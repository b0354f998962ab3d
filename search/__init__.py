"""Search: where (layers) and how hard (perturbation ratio) a trait vector steers a model.

Search space and prior, samplers (default, adaptive, tpe, gp, grid, random), one Optuna study per (target model,
trait, vector source), the scheduler that packs many trials into one batched steer call per actor, Parquet tables,
resume, and the ``search(...)`` entry point.
"""

from ._adaptive import Step, WalkRule, best_step, recommendation, run_walk, step_table, walk_values
from ._api import SearchResult, best_trial, collect, search, walk_tables
from ._live import LiveView
from ._prior import RatioPrior
from ._ratio import perturbation_coefficient, perturbation_ratio
from ._samplers import (
    SAMPLERS,
    WAIT,
    AdaptiveSearch,
    Context,
    DefaultSearch,
    GPSearch,
    GridSearch,
    Observation,
    Point,
    RandomSearch,
    Sampler,
    TPESearch,
    grid_ratios,
    make_sampler,
)
from ._scheduler import FAULT_ENV, InjectedFault, Progress, Scheduler, StudyRun
from ._space import SearchConfigError, SearchSpace, Site
from ._storage import resolve_storage
from ._study import ADOPT, SearchStudy, StudySpec, TrialPlan
from ._tables import BASELINE_TRIAL, RESPONSES_SCHEMA, TRIALS_SCHEMA, read_rows, trials_frame, write_rows
from ._validate import check_study_inputs, vector_layers

__all__ = [
    "ADOPT",
    "BASELINE_TRIAL",
    "FAULT_ENV",
    "RESPONSES_SCHEMA",
    "SAMPLERS",
    "TRIALS_SCHEMA",
    "WAIT",
    "AdaptiveSearch",
    "Context",
    "DefaultSearch",
    "GPSearch",
    "GridSearch",
    "InjectedFault",
    "LiveView",
    "Observation",
    "Point",
    "Progress",
    "RandomSearch",
    "RatioPrior",
    "Sampler",
    "Scheduler",
    "SearchConfigError",
    "SearchResult",
    "SearchSpace",
    "SearchStudy",
    "Site",
    "Step",
    "StudyRun",
    "StudySpec",
    "TPESearch",
    "TrialPlan",
    "WalkRule",
    "best_step",
    "best_trial",
    "check_study_inputs",
    "collect",
    "grid_ratios",
    "make_sampler",
    "perturbation_coefficient",
    "perturbation_ratio",
    "read_rows",
    "recommendation",
    "resolve_storage",
    "run_walk",
    "search",
    "step_table",
    "trials_frame",
    "vector_layers",
    "walk_tables",
    "walk_values",
    "write_rows",
]
