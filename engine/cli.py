"""The `steersweep` command line: run a study config, resume, status, report, validate, the demo, the toy family.

Exit codes: 0 done, 2 bad input (config, options, run directory), 1 failure, 130 interrupted (Ctrl-C). Errors are
one line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape


class UsageError(ValueError):
    """Bad command-line input (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage + message otherwise)
        raise UsageError(f"{self.prog}: {message}; see `{self.prog} --help`")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("steersweep")
    except PackageNotFoundError:
        return "unknown"


def _add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", default=None, metavar="DIR",
                        help="steersweep's cache (toy family in DIR/toy); the same as STEERSWEEP_HOME=DIR")


def build_parser() -> argparse.ArgumentParser:
    from . import commands

    kw = dict(allow_abbrev=False)
    parser = _Parser(prog="steersweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                     **kw)
    parser.add_argument("--version", action="version", version=f"steersweep {_version()}",
                        help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    run = sub.add_parser("run", help="run a study config to the end (resumes what the run directory holds)", **kw)
    run.add_argument("config", help="the study's YAML config (start from `steersweep demo --print-config`)")
    run.add_argument("--run-dir", required=True, help="run directory (created; rerun the same to continue)")
    _add_home(run)
    run.set_defaults(handler=commands.cmd_run)

    resume = sub.add_parser("resume", help="continue a run with its frozen config", **kw)
    resume.add_argument("run_dir", metavar="RUN_DIR", help="run directory of an earlier `steersweep run`")
    _add_home(resume)
    resume.set_defaults(handler=commands.cmd_resume)

    status = sub.add_parser("status", help="done / running / left per unit and the best config so far "
                            "(reads files only)", **kw)
    status.add_argument("run_dir", metavar="RUN_DIR", help="run directory")
    status.add_argument("--json", action="store_true", help="print JSON instead of tables")
    status.set_defaults(handler=commands.cmd_status)

    report = sub.add_parser("report", help="(re)write RUN_DIR/report.html from the run's tables", **kw)
    report.add_argument("run_dir", metavar="RUN_DIR", help="run directory")
    report.set_defaults(handler=commands.cmd_report)

    plan = sub.add_parser("plan", help="print where each model's actors go on the GPUs seen, loading nothing", **kw)
    plan.add_argument("config", help="the study's YAML config")
    plan.set_defaults(handler=commands.cmd_plan)

    validate = sub.add_parser("validate", help="check a study config fully without loading a model", **kw)
    validate.add_argument("config", help="the study's YAML config")
    _add_home(validate)
    validate.set_defaults(handler=commands.cmd_validate)

    demo = sub.add_parser("demo", help="the cross-model study on the embedded toy family (builds it on first use)",
                          **kw)
    demo.add_argument("--run-dir", default="runs/demo", help="run directory (default: runs/demo)")
    demo.add_argument("--print-config", action="store_true",
                      help="print the demo's study config (a starting point for your own) and exit")
    _add_home(demo)
    demo.set_defaults(handler=commands.cmd_demo)

    vectors = sub.add_parser("vectors", help="the run's trait vectors", **kw)
    vectors_sub = vectors.add_subparsers(dest="vectors_command", required=True, parser_class=_Parser,
                                         metavar="COMMAND")
    ls = vectors_sub.add_parser("ls", help="list the vectors of a run with their diagnostics", **kw)
    ls.add_argument("run_dir", metavar="RUN_DIR", help="run directory")
    ls.set_defaults(handler=commands.cmd_vectors_ls)

    toy = sub.add_parser("toy", help="the toy model family with a planted trait", **kw)
    toy_sub = toy.add_subparsers(dest="toy_command", required=True, parser_class=_Parser, metavar="COMMAND")
    build = toy_sub.add_parser("build", help="(re)build the toy family into the cache", **kw)
    build.add_argument("--seed", type=int, default=0, help="seed of the family (default 0)")
    build.add_argument("--force", action="store_true", help="rebuild even when a complete build exists")
    _add_home(build)
    build.set_defaults(handler=commands.cmd_toy_build)

    info = sub.add_parser("info", help="load a model and print what steersweep sees", **kw)
    info.add_argument("model", help="hub id or local path")
    info.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"),
                      help="weights dtype (default auto)")
    info.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    info.set_defaults(handler=commands.cmd_info)
    return parser


def _is_bad_input(error: BaseException) -> bool:
    from .config import ConfigError
    from .errors import ConfigChangedError

    if isinstance(error, UsageError | ConfigError | ConfigChangedError):
        return True
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"TraitDatasetError", "ModelLoadError", "JudgeConfigError", "ExtractionError"})


def main(argv: Sequence[str] | None = None) -> int:
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        err.print(f"[bold red]error:[/] {escape(str(error))}")
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=Console(stderr=True), show_path=False)], force=True)
    if getattr(args, "home", None):
        os.environ["STEERSWEEP_HOME"] = os.path.abspath(os.path.expanduser(args.home))
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/] (finished units are kept; rerun the same command to continue)")
        return 130
    except Exception as error:  # one line unless --debug
        if debug:
            err.print_exception()
        if "Ray" in type(error).__name__ or "ActorDied" in type(error).__name__:
            from .pipeline import _root_cause

            message = _root_cause(error)
        else:
            message = " ".join(str(error).split()) or type(error).__name__
        first = message if len(message) < 600 else message[:600] + " ..."
        code = 2 if _is_bad_input(error) else 1
        kind = "error" if code == 2 else f"failed ({type(error).__name__})"
        err.print(f"[bold red]{kind}:[/] {escape(first)}" + ("" if debug else " (--debug for the traceback)"
                                                              if code == 1 else ""))
        return code


if __name__ == "__main__":
    sys.exit(main())
