"""The local logprob judge: an HF causal LM (in process or as a Ray actor) scores from its next-token distribution."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..loading import ModelSpec
from ..messages import PromptInput
from ..model_worker import ModelWorker
from ._base import Judge, ResultCallback
from ._cache import CachedJudgment, JudgeCache
from ._scoring import DEFAULT_MIN_MASS, aggregate_logprob_score, integer_probability_mass
from ._templates import JudgeTemplates
from ._types import JudgeConfigError, JudgePrompt

logger = logging.getLogger(__name__)

PromptLike = str | Sequence[Mapping[str, str]]


class LocalJudgeWorker(ModelWorker):
    """A ``ModelWorker`` for judging: the same batched ``top_logprobs``, plus base-model support for judge prompts.

    Prompts are chat conversations (rendered with the tokenizer's chat template and the generation prompt) or, for
    a base model without a template, plain strings; a one-turn judge prompt is read as plain text by a base model.

    Example:
        >>> worker = LocalJudgeWorker(ModelSpec("Qwen/Qwen2.5-7B-Instruct"))  # doctest: +SKIP
        >>> worker.top_logprobs([[{"role": "user", "content": "Rate 0-100: ..."}]], k=3)  # doctest: +SKIP
        [[('85', -0.4), ('90', -1.3), ('80', -2.2)]]
    """

    def __init__(self, spec: ModelSpec, max_batch_size: int = 16) -> None:
        if max_batch_size < 1:
            raise JudgeConfigError(f"max_batch_size: {max_batch_size} must be >= 1")
        super().__init__(spec, max_batch_size=max_batch_size)

    def model_id(self) -> str:
        return f"local:{self.spec.name or self.spec.path}"

    def _as_model_prompt(self, prompt: PromptLike, index: int) -> PromptInput:
        if isinstance(prompt, str):
            return prompt
        if self.tokenizer.chat_template:
            return tuple(dict(message) for message in prompt)
        if len(prompt) == 1:
            # a judge prompt is one user turn: a base model reads its text as it is
            return prompt[0]["content"]
        raise JudgeConfigError(
            f"prompts[{index}]: a multi-turn conversation needs a chat template, and the tokenizer of "
            f"{self.spec.path!r} has none; use an instruct model as the local judge"
        )

    def top_logprobs(self, prompts: Sequence[PromptLike], k: int = 20) -> list[list[tuple[str, float]]]:
        """The ``k`` most likely next tokens after each prompt: ``[(decoded token, natural-log probability)]``."""
        return super().top_logprobs([self._as_model_prompt(p, i) for i, p in enumerate(prompts)], k)


def local_judge_actor(spec: ModelSpec, *, num_gpus: float = 0, max_batch_size: int = 16, **actor_options: Any) -> Any:
    """Start a ``LocalJudgeWorker`` as a Ray actor (Ray must be initialised); returns the actor handle."""
    import ray

    remote_class = ray.remote(LocalJudgeWorker)
    return remote_class.options(num_gpus=num_gpus, **actor_options).remote(spec, max_batch_size=max_batch_size)


def _is_ray_handle(backend: Any) -> bool:
    method = getattr(backend, "top_logprobs", None)
    return method is not None and hasattr(method, "remote")


class LocalJudge(Judge):
    """Logprob judge on a local model: the same score as ``OpenAIJudge``, from the model's own top-k next tokens.

    Example:
        >>> spec = ModelSpec("Qwen/Qwen2.5-7B-Instruct")
        >>> judge = LocalJudge.from_spec(spec, use_ray=True, num_gpus=1)  # doctest: +SKIP
        >>> judge.judge(items, TraitDefinition("optimism", definition)).trait_scores  # doctest: +SKIP

    Args:
        backend: anything with ``top_logprobs(prompts, k)``: a ``LocalJudgeWorker``, a Ray actor handle of one
            (``local_judge_actor``), or the lead's ``ModelWorker`` / ``ModelActor``.
        model_id: the judge id in cache keys; needed unless the backend is a ``LocalJudgeWorker``.
        batch_size: prompts per backend call (the worker batches them again by ``max_batch_size``).
    """

    def __init__(
        self,
        backend: Any,
        *,
        model_id: str | None = None,
        cache: JudgeCache | None = None,
        templates: JudgeTemplates | None = None,
        min_mass: float = DEFAULT_MIN_MASS,
        top_logprobs: int = 20,
        batch_size: int = 64,
    ) -> None:
        super().__init__(cache=cache, templates=templates, min_mass=min_mass)
        if not hasattr(backend, "top_logprobs"):
            raise JudgeConfigError(f"backend: {type(backend).__name__} has no top_logprobs(prompts, k) method")
        if model_id is None:
            if not isinstance(backend, LocalJudgeWorker):
                raise JudgeConfigError("model_id: give the judge model's id (it keys the cache) for this backend")
            model_id = backend.model_id()
        if top_logprobs < 1 or batch_size < 1:
            raise JudgeConfigError(f"top_logprobs ({top_logprobs}) and batch_size ({batch_size}) must be >= 1")
        self.backend = backend
        self.judge_id = model_id
        self.endpoint = "Ray actor" if _is_ray_handle(backend) else "in process"
        self.top_logprobs = top_logprobs
        self.batch_size = batch_size

    @classmethod
    def from_spec(
        cls,
        spec: ModelSpec,
        *,
        use_ray: bool = False,
        num_gpus: float = 0,
        max_batch_size: int = 16,
        **judge_options: Any,
    ) -> LocalJudge:
        """Load ``spec`` in process, or in a new Ray actor with ``use_ray=True``."""
        model_id = f"local:{spec.name or spec.path}"
        if use_ray:
            backend = local_judge_actor(spec, num_gpus=num_gpus, max_batch_size=max_batch_size)
        else:
            backend = LocalJudgeWorker(spec, max_batch_size=max_batch_size)
        return cls(backend, model_id=model_id, **judge_options)

    async def _top_logprobs(self, prompts: list[tuple[dict[str, str], ...]]) -> list[list[tuple[str, float]]]:
        if _is_ray_handle(self.backend):
            return await self.backend.top_logprobs.remote(prompts, self.top_logprobs)
        return await asyncio.to_thread(self.backend.top_logprobs, prompts, self.top_logprobs)

    async def _judge_prompts(self, prompts: Sequence[JudgePrompt], on_result: ResultCallback) -> None:
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            self.counters.requests += 1
            tops = await self._top_logprobs([prompt.messages for prompt in chunk])
            if len(tops) != len(chunk):
                raise JudgeConfigError(
                    f"backend {self.judge_id}: top_logprobs returned {len(tops)} rows for {len(chunk)} prompts"
                )
            for prompt, top in zip(chunk, tops, strict=True):
                on_result(
                    prompt,
                    CachedJudgment(
                        score=aggregate_logprob_score(top, min_mass=self.min_mass),
                        integer_mass=integer_probability_mass(top),
                        top_logprobs=tuple((str(token), float(logprob)) for token, logprob in top),
                    ),
                )
