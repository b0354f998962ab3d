"""check_config: everything about a SweepConfig that can be checked without loading a model.

Model folders (or the Hugging Face cache) hold a config.json whose depth bounds the search layers; trait folders
parse; positions, components and methods are known; the judge section is a valid JudgeConfig. Nothing here imports
torch, transformers or Ray, so ``steersweep validate`` answers in about a second.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .config import TOY_SCHEME, ConfigError, SweepConfig, _suggest

TOY_KEYS = ("llama-base", "llama-sft", "llama-dpo", "qwen2-sft", "mistral-sft")
"""The toy family's members (steersweep.actors.toy.FAMILY_KEYS; a test keeps the two equal)."""
TOY_DATASETS = ("natural", "instruction")
TOY_NUM_LAYERS = 4
COMPONENTS = ("residual", "attn_out", "mlp_out", "k_proj", "v_proj")
STEERABLE_COMPONENTS = ("residual", "attn_out", "mlp_out")
JUDGE_KEYS = (
    "kind", "model", "base_url", "api_key", "api_key_env", "min_mass", "top_logprobs", "max_in_flight",
    "request_timeout_s", "max_consecutive_failures", "max_attempts", "backoff_initial_s", "backoff_max_s",
    "max_retry_after_s", "probe", "template_version", "trait_template", "coherence_template", "relevance_template",
    "retry_rejected", "flush_every", "flush_interval_s", "device", "dtype", "use_ray", "num_gpus", "batch_size",
    "max_batch_size", "scorer",
)
"""steersweep.actors.judges.JudgeConfig's fields (a test keeps the two equal)."""
_POSITION = re.compile(r"^(prompt|response|all)\[(-?\d+|-?\d*:-?\d*)\]$")
_DEPTH_KEYS = ("num_hidden_layers", "n_layer", "num_layers")


@dataclass(frozen=True)
class ModelShape:
    """What config.json says about one model."""

    name: str
    num_layers: int
    hidden_size: int | None
    architecture: str
    config_path: Path | None


def toy_home(config: SweepConfig) -> Path:
    """The toy cache: ``toy.home``/toy, else ``$STEERSWEEP_HOME/toy``, else the user cache (as actors.toy.toy_home)."""
    if config.toy.home:
        return Path(config.toy.home).expanduser() / "toy"
    configured = os.environ.get("STEERSWEEP_HOME")
    if configured:
        return Path(configured).expanduser() / "toy"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("steersweep")) / "toy"


def toy_family_root(config: SweepConfig) -> Path:
    scale = config.toy.scale
    name = f"family-seed{config.toy.seed}" if scale == 1.0 else f"family-seed{config.toy.seed}-scale{scale:g}"
    return toy_home(config) / name


def _config_json(path: str, revision: str | None) -> Path | None:
    local = Path(path).expanduser()
    if local.is_dir():
        return local / "config.json" if (local / "config.json").is_file() else None
    if local.is_absolute() or path.startswith((".", "~")) or path.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(path, "config.json", revision=revision)
    except Exception:  # an invalid repo id or revision: treated as not cached
        return None
    return Path(found) if isinstance(found, str) else None


def model_shape(config: SweepConfig, index: int) -> ModelShape:
    """Depth and width of ``models[index]`` from its config.json (the toy family's known shape before it is built)."""
    model = config.models[index]
    field = f"models[{index}].path"
    if model.path.startswith(TOY_SCHEME):
        key = model.path.removeprefix(TOY_SCHEME)
        if key not in TOY_KEYS:
            raise ConfigError(field, f"{model.path!r} is not a toy model{_suggest(key, list(TOY_KEYS))}; use toy:"
                              + " or toy:".join(TOY_KEYS))
        built = toy_family_root(config) / key / "config.json"
        if not built.is_file():
            return ModelShape(model.name, TOY_NUM_LAYERS, 64, "toy", None)
        path = built
    else:
        path = _config_json(model.path, model.revision)
        if path is None:
            local = Path(model.path).expanduser()
            if local.is_dir():
                raise ConfigError(field, f"{model.path} has no config.json; point it at a Hugging Face model folder")
            raise ConfigError(field, f"{model.path!r} is neither a local folder nor in the Hugging Face cache (nothing "
                              "downloads at run time); fix the path or run `huggingface-cli download "
                              f"{model.path}` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(field, f"{path} is not readable JSON ({error}); restore the model's config.json") from None
    text = data.get("text_config", data) if isinstance(data, dict) else {}
    depth = next((text[k] for k in _DEPTH_KEYS if isinstance(text.get(k), int)), None)
    if depth is None:
        raise ConfigError(field, f"{path} names no layer count ({' / '.join(_DEPTH_KEYS)}); is it a causal LM?")
    architecture = (data.get("architectures") or [data.get("model_type", "?")])[0]
    return ModelShape(model.name, depth, text.get("hidden_size"), str(architecture), path)


def search_layers(config: SweepConfig, num_layers: int) -> tuple[int, ...]:
    """The layers searched on a model of ``num_layers`` decoder layers."""
    layers = config.search.layers
    if layers == "all":
        return tuple(range(num_layers))
    if layers == "middle":
        low, high = num_layers // 4, max(num_layers // 4 + 1, (3 * num_layers + 3) // 4)
        return tuple(range(low, min(high, num_layers)))
    return tuple(layers)


def _check_trait(config: SweepConfig, t: int) -> dict[str, int]:
    from steersweep.analysis.trait_dataset import TraitDatasetError, load_trait_dataset

    trait = config.traits[t]
    counts = {}
    for elicitation, folder in trait.datasets.items():
        field = f"traits[{t}].datasets.{elicitation}"
        if folder.startswith(TOY_SCHEME):
            key = folder.removeprefix(TOY_SCHEME)
            if key not in TOY_DATASETS:
                raise ConfigError(field, f"{folder!r} is not a toy dataset; use toy:natural or toy:instruction")
            counts[elicitation] = -1
            continue
        try:
            dataset = load_trait_dataset(folder, name=trait.name)
        except TraitDatasetError as error:
            raise ConfigError(field, str(error)) from None
        if dataset.elicitation != elicitation:
            raise ConfigError(field, f"{folder} holds {dataset.elicitation} scenarios (positive/negative."
                              f"{'txt' if dataset.elicitation == 'natural' else 'jsonl'}); list it under "
                              f"datasets.{dataset.elicitation}")
        if len(dataset.questions) < config.search.questions:
            raise ConfigError("search.questions", f"{config.search.questions} questions asked but {folder}/steering."
                              f"json has {len(dataset.questions)}; lower search.questions or add questions")
        counts[elicitation] = len(dataset.scenarios)
    for name, values, allowed in (("positions", trait.positions, None), ("components", trait.components, COMPONENTS),
                                  ("methods", trait.methods, ("mean_diff", "probe", "gradient", "contrastive_probe"))):
        for i, value in enumerate(values):
            ok = _POSITION.match(value) if allowed is None else value in allowed
            if not ok:
                hint = ("a position like response[:5], prompt[-1] or all[:]" if allowed is None
                        else f"one of {', '.join(allowed)}{_suggest(value, list(allowed))}")
                raise ConfigError(f"traits[{t}].{name}[{i}]", f"{value!r} is not valid; use {hint}")
    return counts


def check_config(config: SweepConfig) -> dict[str, object]:
    """Check ``config`` against the disk; return a summary (model shapes, units) for ``steersweep validate``.

    Raises:
        ConfigError: the first problem, naming its field and the fix.
    """
    shapes = {m.name: model_shape(config, i) for i, m in enumerate(config.models)}
    datasets = {t.name: _check_trait(config, i) for i, t in enumerate(config.traits)}
    vectors = config.vectors
    if vectors.component not in STEERABLE_COMPONENTS:
        raise ConfigError("vectors.component", f"{vectors.component!r} cannot be steered; use one of "
                          f"{', '.join(STEERABLE_COMPONENTS)}")
    for t, trait in enumerate(config.traits):
        for name, value, options in (("method", vectors.method, trait.methods),
                                     ("component", vectors.component, trait.components),
                                     ("position", vectors.position, trait.positions)):
            if value not in options:
                raise ConfigError(f"vectors.{name}", f"{value!r} is not extracted for trait {trait.name!r} "
                                  f"(traits[{t}].{name}s lists {list(options)}); add it there or pick one of them")
    sources = {e.source for e in vectors.transfer}
    for i, entry in enumerate(vectors.transfer):
        src = shapes[entry.source]
        for j, target in enumerate(entry.targets):
            tgt = shapes[target]
            if src.hidden_size and tgt.hidden_size and src.hidden_size != tgt.hidden_size:
                raise ConfigError(f"vectors.transfer[{i}].targets[{j}]", f"{target} has hidden size {tgt.hidden_size} "
                                  f"but source {entry.source} has {src.hidden_size}; a vector only steers a model of "
                                  "the same width")
    for name in {t for e in vectors.transfer for t in e.targets} | sources:
        shape = shapes[name]
        layers = search_layers(config, shape.num_layers)
        bad = [layer for layer in layers if layer >= shape.num_layers]
        if bad:
            where = shape.config_path or "the toy family"
            raise ConfigError("search.layers", f"layer {bad[0]} is beyond the depth of model {name} "
                              f"({shape.num_layers} layers, from {where}); use layers 0-{shape.num_layers - 1}")
    _check_judge(config)
    _check_cluster(config)
    return {"models": shapes, "datasets": datasets, "extraction_units": config.extraction_units(),
            "search_units": config.search_units()}


def _check_judge(config: SweepConfig) -> None:
    judge = dict(config.judge)
    for key in judge:
        if key not in JUDGE_KEYS:
            raise ConfigError(f"judge.{key}", f"unknown key{_suggest(key, list(JUDGE_KEYS))}; allowed here: "
                              f"{', '.join(JUDGE_KEYS)}")
    kind = judge.get("kind", "openai")
    if kind not in ("openai", "local", "rule"):
        raise ConfigError("judge.kind", f"{kind!r} is not a judge{_suggest(kind, ['openai', 'local', 'rule'])}; use "
                          "openai, local or rule")
    for name in ("trait_template", "coherence_template", "relevance_template"):
        if judge.get(name) and not Path(judge[name]).expanduser().is_file():
            raise ConfigError(f"judge.{name}", f"{judge[name]} does not exist; fix the path or remove the key")
    if kind == "local" and not Path(str(judge.get("model", ""))).expanduser().is_dir() \
            and _config_json(str(judge.get("model", "")), None) is None:
        raise ConfigError("judge.model", f"{judge.get('model')!r} is neither a local folder nor in the Hugging Face "
                          "cache; point it at the local judge model")


def _check_cluster(config: SweepConfig) -> None:
    storage = config.cluster.storage
    if storage and not storage.startswith(("sqlite:///", "postgresql://", "mysql://", "journal:")):
        raise ConfigError("cluster.storage", f"{storage!r} is not an Optuna storage URL; use sqlite:///PATH, "
                          "postgresql://... or journal:PATH")
    address = config.cluster.address
    if address and not (address == "auto" or address.startswith("ray://") or re.match(r"^[\w.-]+:\d+$", address)):
        raise ConfigError("cluster.address", f"{address!r} is not a Ray address; use auto, HOST:PORT or "
                          "ray://HOST:10001 (or leave it out for a local Ray)")


def check_judge_fields(config: SweepConfig) -> None:
    """The judge section against the full JudgeConfig schema (imports the judges package: call it at run time)."""
    from pydantic import ValidationError

    from steersweep.actors.judges import JudgeConfig

    try:
        JudgeConfig.model_validate(config.judge)
    except ValidationError as error:
        first = error.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        allowed = list(JudgeConfig.model_fields)
        fix = (f"unknown key{_suggest(first['loc'][-1], allowed)}" if first["type"] == "extra_forbidden"
               else first["msg"])
        raise ConfigError(f"judge.{loc}", fix) from None
