"""The judge section of a sweep config (pydantic) and the factory that builds the configured judge."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ._base import Judge
from ._cache import JudgeCache
from ._scoring import DEFAULT_MIN_MASS
from ._templates import JudgeTemplates
from ._types import JudgeConfigError


class JudgeConfig(BaseModel):
    """How responses are judged. Every field has a default; ``kind`` picks the judge.

    Example (YAML):
        judge:
          kind: openai              # openai | local | rule
          model: gpt-4.1-mini       # openai: the served model id; local: a hub id or a local directory
          base_url: http://localhost:8000/v1   # any OpenAI-compatible server; default OPENAI_BASE_URL or OpenAI
          max_in_flight: 64
          template_version: v2      # v2 (default): coherence = fluency and sense only; v1: the first wording
          trait_template: prompts/my_trait_judge.txt   # optional replacement of the shipped template

    A trait folder's own ``eval_prompt`` (``steering.json``) replaces the trait template for that trait.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["openai", "local", "rule"] = "openai"
    model: str = "gpt-4.1-mini"
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str = "OPENAI_API_KEY"
    min_mass: float = Field(DEFAULT_MIN_MASS, ge=0.0, le=1.0)
    top_logprobs: int = Field(20, ge=1, le=20)
    max_in_flight: int = Field(32, ge=1)
    request_timeout_s: float = Field(60.0, gt=0)
    max_consecutive_failures: int = Field(8, ge=1)
    max_attempts: int = Field(30, ge=1)
    backoff_initial_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    max_retry_after_s: float = Field(120.0, ge=0)
    probe: bool = True
    template_version: Literal["v1", "v2"] = "v2"
    trait_template: Path | None = None
    coherence_template: Path | None = None
    relevance_template: Path | None = None
    retry_rejected: bool = False
    flush_every: int = Field(256, ge=1)
    flush_interval_s: float = Field(10.0, gt=0)
    # local judge
    device: str = "auto"
    dtype: str = "auto"
    use_ray: bool = True
    num_gpus: float = Field(0.0, ge=0)
    batch_size: int = Field(64, ge=1)
    max_batch_size: int = Field(16, ge=1)
    # rule judge: "module:function" returning (trait_score, coherence)
    scorer: str = "steersweep.actors.toy:score_response"

    def resolved_api_key(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        return os.environ.get(self.api_key_env) or None

    def templates(self, base_dir: str | Path | None = None) -> JudgeTemplates:
        """Shipped templates, replaced by ``trait_template`` / ``coherence_template`` (relative to ``base_dir``)."""

        def resolve(path: Path | None) -> Path | None:
            if path is None or path.is_absolute() or base_dir is None:
                return path
            return Path(base_dir) / path

        return JudgeTemplates.from_paths(
            trait=resolve(self.trait_template), coherence=resolve(self.coherence_template),
            relevance=resolve(self.relevance_template), version=self.template_version,
        )


def build_judge(
    config: JudgeConfig | dict[str, Any],
    run_dir: str | Path | None = None,
    *,
    config_dir: str | Path | None = None,
    cache: JudgeCache | None = None,
) -> Judge:
    """The judge the config asks for, with its cache in ``RUN_DIR/data/judgments`` (memory only without run_dir).

    Example:
        >>> judge = build_judge({"kind": "rule"}, run_dir="runs/r1")  # doctest: +SKIP
    """
    from ._local import LocalJudge
    from ._openai import OpenAIJudge
    from ._rule import RuleJudge

    if isinstance(config, dict):
        config = JudgeConfig.model_validate(config)
    if config.backoff_max_s < config.backoff_initial_s:
        raise JudgeConfigError(
            f"judge.backoff_max_s ({config.backoff_max_s}) must be >= "
            f"judge.backoff_initial_s ({config.backoff_initial_s})"
        )
    if cache is None:
        flush = {"flush_every": config.flush_every, "flush_interval_s": config.flush_interval_s}
        cache = JudgeCache.for_run_dir(run_dir, **flush) if run_dir is not None else JudgeCache(None, **flush)
    if config.kind == "rule":
        return RuleJudge(config.scorer, cache=cache)
    templates = config.templates(config_dir)
    if config.kind == "local":
        from ..loading import ModelSpec

        spec = ModelSpec(config.model, dtype=config.dtype, device=config.device)
        return LocalJudge.from_spec(
            spec, use_ray=config.use_ray, num_gpus=config.num_gpus, max_batch_size=config.max_batch_size,
            cache=cache, templates=templates, min_mass=config.min_mass, top_logprobs=config.top_logprobs,
            batch_size=config.batch_size,
        )
    return OpenAIJudge(
        config.model, base_url=config.base_url, api_key=config.resolved_api_key(), cache=cache, templates=templates,
        min_mass=config.min_mass, top_logprobs=config.top_logprobs, max_in_flight=config.max_in_flight,
        request_timeout_s=config.request_timeout_s, max_consecutive_failures=config.max_consecutive_failures,
        max_attempts=config.max_attempts, backoff_initial_s=config.backoff_initial_s,
        backoff_max_s=config.backoff_max_s, max_retry_after_s=config.max_retry_after_s, probe=config.probe,
        retry_rejected=config.retry_rejected,
    )
