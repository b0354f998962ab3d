"""The local logprob judge: an HF causal LM (in process or as a Ray actor) scores from its next-token distribution."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..handle import ModelHandle
from ..loading import ModelSpec
from ..messages import PromptInput
from ..model_worker import ModelWorker
from ..prompts import encode_prompt
from ._base import Judge, ResultCallback
from ._cache import CachedJudgment, JudgeCache
from ._digits import digit_token_ids, joint_number_logprobs, splits_numbers
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

    def splits_numbers(self) -> bool:
        """True when this model's tokenizer writes "85" as "8", "5" (then score with :meth:`number_logprobs`)."""
        return splits_numbers(self.tokenizer)

    def number_logprobs(self, prompts: Sequence[PromptLike]) -> list[list[tuple[str, float]]]:
        """The joint log-probability of each answer "0".."100" after each prompt (for digit-splitting tokenizers).

        One prompt at a time; its 101 continuations are scored in one batched pass over the prompt's KV cache.
        """
        digit_ids = digit_token_ids(self.tokenizer)
        return [
            joint_number_logprobs(self.model, encode_prompt(self.tokenizer, self._as_model_prompt(p, i)), digit_ids)
            for i, p in enumerate(prompts)
        ]


def local_judge_actor(spec: ModelSpec, *, num_gpus: float = 0, max_batch_size: int = 16, **actor_options: Any) -> Any:
    """Start a ``LocalJudgeWorker`` as a Ray actor (Ray must be initialised); returns the actor handle."""
    import ray

    remote_class = ray.remote(LocalJudgeWorker)
    return remote_class.options(num_gpus=num_gpus, **actor_options).remote(spec, max_batch_size=max_batch_size)


class LocalJudge(Judge):
    """Logprob judge on a local model: the same score as ``OpenAIJudge``, from the model's own top-k next tokens.

    Example:
        >>> spec = ModelSpec("Qwen/Qwen2.5-7B-Instruct")
        >>> judge = LocalJudge.from_spec(spec, use_ray=True, num_gpus=1)  # doctest: +SKIP
        >>> judge.judge(items, TraitDefinition("optimism", definition)).trait_scores  # doctest: +SKIP

    At start-up the judge checks whether the model's tokenizer writes numbers digit by digit (Qwen2, Llama-2,
    Mistral); if so, the score comes from the joint probability of the answers "0".."100"
    (``LocalJudgeWorker.number_logprobs``) instead of the first token, which could only say 0-9.

    Args:
        backend: anything with ``top_logprobs(prompts, k)``: a ``LocalJudgeWorker``, a Ray actor handle of one
            (``local_judge_actor``), a ``ModelWorker`` / ``ModelActor``, or a ``ModelHandle`` of any of them.
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
        if not hasattr(backend.target if isinstance(backend, ModelHandle) else backend, "top_logprobs"):
            raise JudgeConfigError(f"backend: {type(backend).__name__} has no top_logprobs(prompts, k) method")
        if model_id is None:
            if not isinstance(ModelHandle.of(backend).target, LocalJudgeWorker):
                raise JudgeConfigError("model_id: give the judge model's id (it keys the cache) for this backend")
            model_id = ModelHandle.of(backend).target.model_id()
        if top_logprobs < 1 or batch_size < 1:
            raise JudgeConfigError(f"top_logprobs ({top_logprobs}) and batch_size ({batch_size}) must be >= 1")
        self.handle = ModelHandle.of(backend)
        self.backend = self.handle.target
        self.judge_id = model_id
        self.endpoint = "Ray actor" if self.handle.is_remote else "in process"
        self.top_logprobs = top_logprobs
        self.batch_size = batch_size
        #: "token": the first answer token is the number; "joint": digits are scored jointly (set at start-up)
        self.number_mode = "token"

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

    async def _call(self, method: str, *args: Any) -> Any:
        if self.handle.is_remote:
            return await self.handle.submit(method, *args)
        return await asyncio.to_thread(self.handle.call, method, *args)

    async def _start(self) -> None:
        """Probe the tokenizer: a judge that writes numbers digit by digit is scored by joint probability."""
        if hasattr(self.backend, "splits_numbers"):
            splits = await self._call("splits_numbers")
        else:
            tokenizer = getattr(self.backend, "tokenizer", None)
            if tokenizer is None:
                logger.warning("judge %s: cannot check whether its tokenizer splits numbers into digits", self.judge_id)
                return
            splits = splits_numbers(tokenizer)
            if splits:
                raise JudgeConfigError(
                    f"judge {self.judge_id}: its tokenizer writes numbers digit by digit ('85' is '8', '5'), so the "
                    "first answer token can only say 0-9; use a LocalJudgeWorker (LocalJudge.from_spec, or judge.kind: "
                    "local), which scores the answers 0-100 by their joint probability"
                )
        if splits:
            self.number_mode = "joint"
            logger.info(
                "judge %s: the tokenizer splits numbers into digits; scoring the answers 0-100 by joint probability",
                self.judge_id,
            )

    async def _scores(self, prompts: list[tuple[dict[str, str], ...]]) -> list[list[tuple[str, float]]]:
        if self.number_mode == "joint":
            return await self._call("number_logprobs", prompts)
        return await self._call("top_logprobs", prompts, self.top_logprobs)

    async def _judge_prompts(self, prompts: Sequence[JudgePrompt], on_result: ResultCallback) -> None:
        for start in range(0, len(prompts), self.batch_size):
            if self._stop_requested:
                return
            chunk = prompts[start : start + self.batch_size]
            self.counters.requests += 1
            tops = await self._scores([prompt.messages for prompt in chunk])
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
