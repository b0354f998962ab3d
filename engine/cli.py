"""The `steersweep` command line: demo, toy family, model inspection."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

console = Console()


def _cmd_info(args: argparse.Namespace) -> int:
    from steersweep.actors import ModelSpec, ModelWorker

    info = ModelWorker(ModelSpec(args.model, dtype=args.dtype, device=args.device)).info()
    table = Table(title=f"model {args.model}", show_header=False)
    for field in ("architecture", "model_type", "num_layers", "hidden_size", "kv_dim", "dtype", "devices",
                  "parameter_bytes", "has_chat_template", "vocab_size"):
        table.add_row(field, str(getattr(info, field)))
    console.print(table)
    return 0


def _cmd_toy_build(args: argparse.Namespace) -> int:
    from steersweep.actors.toy import build_family

    def progress(event: object) -> None:
        console.log(str(event))

    family = build_family(home=Path(args.home) if args.home else None, seed=args.seed, force=args.force,
                          progress=progress)
    table = Table(title="toy model family")
    table.add_column("model")
    table.add_column("path")
    for name, path in family.paths.items():
        table.add_row(name, str(path))
    console.print(table)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoOptions, run_demo

    options = DemoOptions(
        run_dir=Path(args.run_dir), home=Path(args.home) if args.home else None, seed=args.seed,
        ratios=tuple(args.ratios), max_new_tokens=args.max_new_tokens,
    )
    run_demo(options, console=console)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="steersweep", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="the main job on the embedded toy family (builds it on first use)")
    demo.add_argument("--run-dir", default="runs/demo", help="run directory (default: runs/demo)")
    demo.add_argument("--home", default=None, help="toy family cache (default: $STEERSWEEP_HOME or user cache)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.8],
                      help="perturbation ratios to sweep (coef = ratio * |h_L| / |v_L|)")
    demo.add_argument("--max-new-tokens", type=int, default=32)
    demo.set_defaults(handler=_cmd_demo)

    info = commands.add_parser("info", help="load a model and print what steersweep sees")
    info.add_argument("model", help="hub id or local path")
    info.add_argument("--dtype", default="auto")
    info.add_argument("--device", default="auto")
    info.set_defaults(handler=_cmd_info)

    toy = commands.add_parser("toy", help="the toy model family with a planted trait")
    toy_commands = toy.add_subparsers(dest="toy_command", required=True)
    build = toy_commands.add_parser("build", help="(re)build the toy family into the cache")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--force", action="store_true", help="rebuild even when a complete build exists")
    build.add_argument("--home", default=None, help="cache directory (default: $STEERSWEEP_HOME or user cache)")
    build.set_defaults(handler=_cmd_toy_build)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    try:
        return int(args.handler(args))
    except (ValueError, RuntimeError, OSError, KeyError) as error:
        console.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True, highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
