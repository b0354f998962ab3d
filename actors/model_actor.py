"""ModelActor: the ModelWorker as a Ray actor (one loaded model per actor process).

Example:
    >>> actor = ModelActor.options(num_gpus=1).remote(ModelSpec("/models/llama-sft"))  # doctest: +SKIP
    >>> ray.get(actor.steer.remote(request)).texts  # doctest: +SKIP
"""

from __future__ import annotations

import ray

from .model_worker import ModelWorker

# Requests run one at a time per actor (a model's forward hooks are per-process state), so no concurrency group.
ModelActor = ray.remote(ModelWorker)
