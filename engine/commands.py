"""The handlers of the `steersweep` subcommands (parsing and exit codes are in :mod:`.cli`)."""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(soft_wrap=True)  # paths and one-line results are never wrapped
DEMO_CONFIG = "demo.yaml"


def _print_outcome(result) -> None:
    console.print(f"units run: {len(result.ran)}, skipped (already done): {len(result.skipped)}")
    for best in result.best:
        if not best.get("found"):
            console.print(f"[bold]{best['study']}[/]: no coherent trial in {best['n_trials']} trials")
            continue
        console.print(
            f"[bold]{best['study']}[/]: best layer {best['layer']}, ratio {best['perturbation_ratio']:.2f} (coef "
            f"{best['coefficient']:.2f}) -> trait {best['trait_score']:.1f} ± {best['trait_score_se']:.1f} SE, "
            f"coherence {best['coherence']:.1f} (n={best['n']} questions; unsteered trait "
            f"{best['baseline_trait_score']:.1f})")
    console.print(f"report: {result.report}")


def _run_config(config, run_dir: Path) -> int:
    from .pipeline import Pipeline
    from .validation import check_config

    check_config(config)  # everything checkable before any file is written or model loaded
    result = Pipeline(config, run_dir, console=Console(stderr=True)).run_all()
    if result.dashboard_url:
        console.print(f"Ray dashboard was at {result.dashboard_url}")
    _print_outcome(result)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config

    return _run_config(load_config(args.config), Path(args.run_dir))


def cmd_resume(args: argparse.Namespace) -> int:
    from .status import load_frozen_config

    return _run_config(load_frozen_config(Path(args.run_dir)), Path(args.run_dir))


def demo_config_text() -> str:
    return resources.files("steersweep.engine").joinpath(DEMO_CONFIG).read_text(encoding="utf-8")


def cmd_demo(args: argparse.Namespace) -> int:
    import yaml

    from .config import parse_config

    if args.print_config:
        sys.stdout.write(demo_config_text())
        return 0
    return _run_config(parse_config(yaml.safe_load(demo_config_text()), "demo config"), Path(args.run_dir))


def cmd_validate(args: argparse.Namespace) -> int:
    from .config import load_config
    from .validation import check_config

    config = load_config(args.config)
    summary = check_config(config)
    table = Table(title=f"{args.config}: valid", show_header=True)
    for column in ("model", "layers", "hidden", "architecture", "config.json"):
        table.add_column(column)
    for shape in summary["models"].values():
        table.add_row(shape.name, str(shape.num_layers), str(shape.hidden_size), shape.architecture,
                      str(shape.config_path or "toy family (built on first use)"))
    console.print(table)
    console.print(f"extraction units: {len(summary['extraction_units'])}, search studies: "
                  f"{len(summary['search_units'])} x {config.search.trials} trials")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Where each model's actors go (GPUs, placement groups), or why the plan is refused; loads nothing."""
    from steersweep.cluster import ModelNeed, ModelShape, plan_models_text

    from .config import load_config
    from .validation import check_config

    config = load_config(args.config)
    shapes = check_config(config)["models"]
    toy = ModelShape.from_config({"hidden_size": 64, "intermediate_size": 192, "num_hidden_layers": 4,
                                  "vocab_size": 1024, "num_attention_heads": 4, "num_key_value_heads": 2})
    needs = [ModelNeed(m.name, str(shapes[m.name].config_path.parent) if shapes[m.name].config_path else m.path,
                       m.dtype, m.replicas, None if shapes[m.name].config_path else toy) for m in config.models]
    rows = config.search.rows_per_call or 64
    console.print(escape(plan_models_text(needs, batch_rows=rows, tokens_per_row=256 + config.search.max_new_tokens)))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .status import run_status

    status = run_status(Path(args.run_dir))
    if args.json:
        print(json.dumps(status, indent=1, default=str))
        return 0
    table = Table(title=f"{status['name']} ({status['run_dir']})")
    for column in ("unit", "state", "seconds"):
        table.add_column(column)
    colour = {"done": "green", "running": "yellow", "left": "white"}
    for unit in status["units"]:
        table.add_row(unit["unit"], f"[{colour[unit['state']]}]{unit['state']}[/]",
                      "" if unit["seconds"] is None else f"{unit['seconds']:.1f}")
    console.print(table)
    counts = status["counts"]
    console.print(f"{counts['done']} done, {counts['running']} running or cut, {counts['left']} left")
    for best in status["best"]:
        if best.get("found"):
            console.print(f"best so far {best['study']}: layer {best['layer']}, ratio "
                          f"{best['perturbation_ratio']:.2f} -> trait {best['trait_score']:.1f} "
                          f"(n={best['n']}), coherence {best['coherence']:.1f}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report
    from .status import load_frozen_config

    load_frozen_config(Path(args.run_dir))
    console.print(f"report: {write_report(Path(args.run_dir))}")
    return 0


def cmd_vectors_ls(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from .status import load_frozen_config

    root = Path(args.run_dir)
    load_frozen_config(root)
    path = root / "data" / "vectors.parquet"
    if not path.exists():
        console.print(f"{root}: no vectors yet")
        return 0
    frame = pq.read_table(path).to_pandas()
    table = Table(title=f"vectors in {root} ({len(frame)} layer rows)")
    columns = ["model", "trait", "method", "component", "position", "layer", "heldout_accuracy", "vector_norm",
               "norm_ratio", "vector_path"]
    for column in columns:
        table.add_column(column)
    for _, row in frame.iterrows():
        table.add_row(*(f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in columns))
    console.print(table)
    return 0


def cmd_toy_build(args: argparse.Namespace) -> int:
    from steersweep.actors.toy import build_family

    family = build_family(seed=args.seed, force=args.force, progress=lambda event: console.log(str(event)))
    table = Table(title="toy model family")
    table.add_column("model")
    table.add_column("path")
    for name, path in family.paths.items():
        table.add_row(name, str(path))
    console.print(table)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from steersweep.actors import ModelSpec, ModelWorker

    info = ModelWorker(ModelSpec(args.model, dtype=args.dtype, device=args.device)).info()
    table = Table(title=f"model {args.model}", show_header=False)
    for name in ("architecture", "model_type", "num_layers", "hidden_size", "kv_dim", "dtype", "devices",
                 "parameter_bytes", "has_chat_template", "vocab_size"):
        table.add_row(name, str(getattr(info, name)))
    console.print(table)
    return 0
