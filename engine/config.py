"""SweepConfig: one YAML file describes a study (models, traits, the vector transfer plan, search, judge, cluster,
analysis). Parsing checks the schema; :func:`check_config` then checks the world (paths, trait folders, layer depths)
without loading a model. Every error is a :class:`ConfigError` whose one-line message names the field path and the fix.

Example:
    >>> config = SweepConfig.model_validate({
    ...     "models": [{"name": "sft", "path": "toy:llama-sft"}],
    ...     "traits": [{"name": "optimism", "datasets": {"instruction": "toy:instruction"}}],
    ...     "vectors": {"transfer": [{"source": "sft", "targets": ["sft"]}]},
    ... })
    >>> config.search.sampler
    'constrained_tpe'
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

TOY_SCHEME = "toy:"
"""``toy:llama-sft`` names a member of the toy family; ``toy:natural`` / ``toy:instruction`` its trait folders."""


class ConfigError(ValueError):
    """A config problem: ``field`` is the dotted path, the message says what is wrong and how to fix it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Section):
    """One model: a hub id or a local folder (``toy:KEY`` for the toy family)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$", description="short name used in the run directory")
    path: str = Field(min_length=1, description="hub id, local folder, or toy:KEY")
    revision: str | None = None
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    device: str = "auto"
    replicas: int = Field(1, ge=1)
    num_gpus: float = Field(0.0, ge=0)
    family: str | None = None
    variant: Literal["base", "sft", "dpo", "other"] = "other"
    chat_template: bool = True


class TraitConfig(_Section):
    """One trait: its dataset folder per elicitation and how vectors are extracted from it."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
    datasets: dict[Literal["natural", "instruction"], str] = Field(min_length=1)
    positions: tuple[str, ...] = Field(("response[:5]",), min_length=1)
    components: tuple[str, ...] = Field(("residual",), min_length=1)
    methods: tuple[str, ...] = Field(("mean_diff",), min_length=1)
    rollouts: int = Field(1, ge=1)
    max_new_tokens: int = Field(8, ge=1)
    test_fraction: float = Field(0.25, ge=0, lt=1)
    cosine_filter: float | None = Field(None, ge=-1, le=1)
    pca_components: int = Field(0, ge=0)
    max_scenarios: int | None = Field(None, ge=2, description="use the first N scenarios per polarity")


class TransferEntry(_Section):
    """The vector of ``source`` (extracted with ``elicitation``) steers each of ``targets``."""

    source: str
    targets: tuple[str, ...] = Field(min_length=1)
    elicitation: Literal["natural", "instruction"] | None = None
    """Default: natural for a base model (variant base or chat_template off), instruction otherwise."""


class VectorsConfig(_Section):
    """The transfer plan: which model's vector steers which targets, and which vector steers."""

    transfer: tuple[TransferEntry, ...] = Field(min_length=1)
    method: str = "mean_diff"
    component: str = "residual"
    position: str = "response[:5]"


class SearchConfig(_Section):
    """One search per (target, trait, vector source) over layers x perturbation ratio."""

    layers: Literal["all", "middle"] | tuple[int, ...] = "middle"
    ratio_range: tuple[float, float] = (0.05, 2.0)
    sampler: Literal["constrained_tpe", "default", "adaptive", "tpe", "gp", "grid", "random"] = "constrained_tpe"
    """constrained_tpe = steersweep.search's ``tpe`` (prior points first, then TPE under the coherence constraint)."""
    trials: int = Field(16, ge=1)
    rows_per_call: int | None = Field(None, ge=1, description="rows per steer call (default: the actor's capacity)")
    prior_ratio: float = Field(0.6, gt=0)
    coherence_threshold: float = Field(80.0, ge=0, le=100)
    questions: int = Field(8, ge=1, description="evaluation questions per trial (from the trait's steering.json)")
    max_new_tokens: int = Field(32, ge=1)
    rollouts: int = Field(1, ge=1)
    seed: int = 0

    @field_validator("ratio_range")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not (math.isfinite(low) and math.isfinite(high)) or low <= 0 or high <= low:
            raise ValueError(f"{list(value)} must be two finite numbers 0 < low < high (searched on a log scale), "
                             "e.g. [0.05, 2.0]")
        return value

    @field_validator("layers")
    @classmethod
    def _layers(cls, value: Any) -> Any:
        if isinstance(value, tuple):
            if not value:
                raise ValueError("is empty; list decoder layers (0-based), or write all or middle")
            if len(set(value)) != len(value):
                raise ValueError(f"{list(value)} repeats a layer; list each layer once")
            if min(value) < 0:
                raise ValueError(f"{min(value)} is negative; layers are 0-based decoder indices")
        return value


class ToyConfig(_Section):
    """Where the toy family lives (``toy:`` models and datasets); built on first use."""

    home: str | None = None
    seed: int = 0
    scale: float = Field(1.0, gt=0, le=1)


class ClusterConfig(_Section):
    address: str | None = None
    storage: str | None = Field(None, description="Optuna storage URL; default sqlite:///RUN_DIR/study.db")
    dashboard: bool = True
    num_cpus: int | None = Field(None, ge=1)


class AnalysisConfig(_Section):
    """The study-level analyses (``steersweep.analysis``), run after the searches; see engine/analysis_stage.py."""

    enabled: bool = True
    analyses: tuple[Literal["transfer", "drifts", "weight_diff", "similarity"], ...] = (
        "transfer", "drifts", "weight_diff", "similarity")
    """transfer: the transfer matrix (by layer and overall); drifts: drift rollouts per (model, trait), then BAI,
    validation and predictors; weight_diff: per family pair (base -> sft -> dpo) weight diff, logit lens and trait
    alignment; similarity: cosine between the sources' vectors per layer."""
    drift_ratios: tuple[float, ...] = Field((0.0, -0.4, -0.2, 0.2, 0.4), min_length=2,
                                            description="perturbation ratios of the drift rollouts (0 = unsteered)")
    drift_scenarios: int = Field(8, ge=2, description="scenarios (evaluation questions) per drift rollout unit")
    drift_max_new_tokens: int = Field(24, ge=1)
    quantile: float = Field(0.25, gt=0, le=0.5, description="BAI: top / bottom activation quantile")

    @field_validator("drift_ratios")
    @classmethod
    def _drift_ratios(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not all(math.isfinite(r) for r in value):
            raise ValueError(f"{list(value)} holds a non-finite ratio; use finite numbers such as [0, -0.4, 0.4]")
        if 0.0 not in value:
            raise ValueError(f"{list(value)} lacks 0; the unsteered rollout is every scenario's reference")
        if len(set(value)) != len(value):
            raise ValueError(f"{list(value)} repeats a ratio; list each once")
        return value


class SweepConfig(_Section):
    """The whole study; see the module docstring and README for an example."""

    name: str = "study"
    seed: int = 0
    models: tuple[ModelConfig, ...] = Field(min_length=1)
    traits: tuple[TraitConfig, ...] = Field(min_length=1)
    vectors: VectorsConfig
    search: SearchConfig = SearchConfig()
    judge: dict[str, Any] = Field(default_factory=lambda: {"kind": "rule"})
    cluster: ClusterConfig = ClusterConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    toy: ToyConfig = ToyConfig()

    @model_validator(mode="after")
    def _cross_references(self) -> SweepConfig:
        names = [m.name for m in self.models]
        for i, name in enumerate(names):
            if names.index(name) != i:
                raise ConfigError(f"models[{i}].name", f"{name!r} is used twice; give every model its own name")
        traits = [t.name for t in self.traits]
        for i, name in enumerate(traits):
            if traits.index(name) != i:
                raise ConfigError(f"traits[{i}].name", f"{name!r} is used twice; give every trait its own name")
        for i, entry in enumerate(self.vectors.transfer):
            refs = [("source", entry.source)] + [(f"targets[{j}]", t) for j, t in enumerate(entry.targets)]
            for field, value in refs:
                if value not in names:
                    raise ConfigError(f"vectors.transfer[{i}].{field}", f"{value!r} is not a model"
                                      f"{_suggest(value, names)}; use one of the models: {', '.join(names)}")
            elicitation = self.elicitation(i)
            for t, trait in enumerate(self.traits):
                if elicitation not in trait.datasets:
                    raise ConfigError(f"traits[{t}].datasets", f"has no {elicitation!r} folder, which source "
                                      f"{entry.source!r} needs; add datasets.{elicitation} or set "
                                      f"vectors.transfer[{i}].elicitation")
        return self

    def model(self, name: str) -> ModelConfig:
        return next(m for m in self.models if m.name == name)

    def elicitation(self, transfer_index: int) -> str:
        entry = self.vectors.transfer[transfer_index]
        if entry.elicitation:
            return entry.elicitation
        source = self.model(entry.source)
        return "natural" if source.variant == "base" or not source.chat_template else "instruction"

    def extraction_units(self) -> list[tuple[str, str, str]]:
        """``(source model, trait, elicitation)`` in config order, each once."""
        units: list[tuple[str, str, str]] = []
        for i, entry in enumerate(self.vectors.transfer):
            for trait in self.traits:
                unit = (entry.source, trait.name, self.elicitation(i))
                if unit not in units:
                    units.append(unit)
        return units

    def search_units(self) -> list[tuple[str, str, str]]:
        """``(target model, trait, vector source)`` in config order, each once."""
        units: list[tuple[str, str, str]] = []
        for entry in self.vectors.transfer:
            for trait in self.traits:
                for target in entry.targets:
                    if (target, trait.name, entry.source) not in units:
                        units.append((target, trait.name, entry.source))
        return units

    def to_yaml(self) -> str:
        """The resolved config (every default written out), the form frozen in ``RUN_DIR/sweep.yaml``."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, default_flow_style=None, width=120)


def study_name(target: str, trait: str, source: str) -> str:
    """One study per (target, trait, vector source): ``llama-dpo/optimism/from-llama-base``."""
    return f"{target}/{trait}/from-{source}"


# ---------------------------------------------------------------------------------------------- parsing + errors
def _suggest(value: object, options: list[str]) -> str:
    close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "tuple[", "literal[", "list[")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed in the section at ``loc`` (for a did-you-mean on an unknown key)."""
    section: Any = SweepConfig
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(section, "model_fields", None)
        if fields is None or part not in fields:
            return []
        annotation = fields[part].annotation
        section = _inner_model(annotation)
    return list(getattr(section, "model_fields", {}))


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _fix_for(error: dict[str, Any]) -> str:
    kind, loc = error["type"], error["loc"]
    if kind == "extra_forbidden":
        allowed = _fields_at(loc[:-1])
        return f"unknown key{_suggest(loc[-1], allowed)}; allowed here: {', '.join(allowed)}"
    if kind == "missing":
        return "is required; add it (see `steersweep demo --print-config` for a complete example)"
    message = error["msg"].removeprefix("Value error, ")
    if kind == "too_short":
        return f"{message}; list at least one entry (see `steersweep demo --print-config`)"
    given = error.get("input")
    shown = f" (got {given!r})" if not isinstance(given, dict | list) else ""
    if kind.startswith(("int_", "float_", "bool_", "string_", "list_", "tuple_", "dict_", "literal_")):
        return f"{message}{shown}; write a value of that type"
    return f"{message}{shown}"


def parse_config(data: Any, source: str = "config") -> SweepConfig:
    """Validate a mapping (a parsed YAML file) into a SweepConfig; raise the first problem as a ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError("", f"{source}: expected a YAML mapping with models, traits, vectors ...; got "
                          f"{type(data).__name__}")
    try:
        return SweepConfig.model_validate(data)
    except ConfigError:
        raise
    except ValidationError as error:
        first = error.errors()[0]
        ctx = first.get("ctx", {}).get("error")
        if isinstance(ctx, ConfigError):
            raise ctx from None
        raise ConfigError(_path(first["loc"]), _fix_for(first)) from None


def load_config(path: str | Path) -> SweepConfig:
    """Read and validate a YAML config file (relative paths inside it stay relative to the file's folder)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("", f"{path}: no such config file; pass the path of a YAML study config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError("", f"{path}{where}: {problem}; fix the YAML syntax") from None
    config = parse_config(data, str(path))
    return resolve_relative(config, path.parent)


def resolve_relative(config: SweepConfig, base: Path) -> SweepConfig:
    """Make local model paths and trait folders absolute against the config file's folder."""

    def absolute(value: str) -> str:
        if value.startswith(TOY_SCHEME) or Path(value).is_absolute():
            return value
        candidate = (base / value).resolve()
        return str(candidate) if candidate.exists() or value.startswith(".") else value

    models = tuple(m.model_copy(update={"path": absolute(m.path)}) for m in config.models)
    traits = tuple(t.model_copy(update={"datasets": {k: absolute(v) for k, v in t.datasets.items()}})
                   for t in config.traits)
    return config.model_copy(update={"models": models, "traits": traits})
