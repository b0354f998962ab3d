"""The sweep pipeline: extract (source x trait) -> search (target x trait x source) -> analysis -> report.

Every unit is idempotent and recorded in ``manifest.json`` when it finishes, so ``steersweep run`` (or ``resume``)
after any crash skips finished units and redoes only the one that was cut. On first need every model is placed and
started through :func:`steersweep.cluster.launch` (named actors ``steersweep/<model>/<replica>``, restarted by Ray,
behind ResilientModel handles) and reused by every stage; a model that fails to load fails its units (one line each)
and the rest of the sweep goes on.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from .config import TOY_SCHEME, SweepConfig, study_name
from .manifest import Manifest, freeze_config
from .rundir import RunDir
from .validation import check_config, check_judge_fields, toy_home

logger = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    run_dir: Path
    actor_starts: dict[str, int] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    best: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
    dashboard_url: str | None = None
    failed: dict[str, str] = field(default_factory=dict)
    """Units that failed (a model that did not load): unit -> one-line message; the run exits 1."""


class ModelStartError(RuntimeError):
    """A model's actor could not start (missing or corrupt checkpoint, out of memory)."""


class ClusterConnectError(ConnectionError):
    """``--address`` / ``cluster.address`` names no reachable Ray cluster."""


class RunDirCorruptError(RuntimeError):
    """A file in the run directory cannot be read; the message names it and how to redo it."""


def _root_cause(error: BaseException) -> str:
    """The innermost ``SomeError: message`` line of a (Ray-wrapped) error, without its traceback."""
    text = str(error)
    found = re.findall(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$", text, re.M)
    if found:
        kind, message = found[-1]
        return f"{kind}: {message.strip()}"[:300]
    return " ".join(text.split())[:300]


def _load_vector(loader: Any, path: Path):
    if not path.exists():
        raise RunDirCorruptError(f"{path}: missing although its extraction unit is recorded as done; delete the "
                                 "unit's entry from manifest.json (or the run directory) to extract it again")
    try:
        return loader.load(path)
    except Exception as error:
        raise RunDirCorruptError(f"{path}: unreadable vector file ({_root_cause(error)}); delete it and its "
                                 "extract/... entry in manifest.json, then rerun to extract it again") from None


def unit_slug(unit: str) -> str:
    """A file name for a unit id: ``search/llama-dpo/optimism/from-llama-base`` -> ``llama-dpo__optimism__from-...``."""
    return unit.split("/", 1)[1].replace("/", "__")


class Pipeline:
    """Runs one SweepConfig into one run directory (see the module docstring)."""

    def __init__(self, config: SweepConfig, run_dir: str | Path, console: Console | None = None,
                 address: str | None = None) -> None:
        self.config = config
        self.run = RunDir(run_dir)
        self.console = console or Console(stderr=True)
        self.address = address
        """``steersweep run --address``: overrides ``cluster.address`` without changing the frozen config."""
        self.connection = None
        self.launched = None
        self.family = None
        self._judge = None
        self._datasets: dict[tuple[str, str], Any] = {}
        self.result = PipelineResult(self.run.root)

    # ------------------------------------------------------------------------------------------------ setup
    def prepare(self) -> None:
        """Check the config against the disk and freeze it; nothing is loaded."""
        check_config(self.config)
        check_judge_fields(self.config)
        freeze_config(self.run.root, self.config.to_yaml())
        self.run.create()
        self.manifest = Manifest(self.run.root)
        if any(m.path.startswith(TOY_SCHEME) for m in self.config.models):
            self._toy_family()  # build (first use) before Ray starts, so the two do not compete for the cores

    def _toy_family(self):
        if self.family is None:
            from steersweep.actors.toy import ensure_family

            self.family = ensure_family(home=toy_home(self.config), seed=self.config.toy.seed,
                                        scale=self.config.toy.scale,
                                        progress=lambda event: self.console.log(f"toy family: {event}"))
        return self.family

    def model_path(self, name: str) -> str:
        path = self.config.model(name).path
        if path.startswith(TOY_SCHEME):
            return str(self._toy_family().path(path.removeprefix(TOY_SCHEME)))
        return path

    def dataset(self, trait_name: str, elicitation: str):
        key = (trait_name, elicitation)
        if key not in self._datasets:
            from steersweep.analysis import load_trait_dataset

            trait = next(t for t in self.config.traits if t.name == trait_name)
            folder = trait.datasets[elicitation]
            if folder.startswith(TOY_SCHEME):
                from .toy_traits import write_toy_trait

                folder = str(write_toy_trait(self.run.root / "traits", folder.removeprefix(TOY_SCHEME)))
            dataset = load_trait_dataset(folder, name=trait_name)
            if trait.max_scenarios:
                dataset = replace(dataset, positive=dataset.positive[: trait.max_scenarios],
                                  negative=dataset.negative[: trait.max_scenarios])
            self._datasets[key] = dataset
        return self._datasets[key]

    def _ray_options(self):
        """How this run reaches Ray: ``--address`` / ``cluster.address``, else a local Ray with the dashboard on. A
        placed actor reserves one logical CPU, so a local Ray gets one more per replica than ``cluster.num_cpus``."""
        from steersweep.cluster import RayOptions

        cluster = self.config.cluster
        address = self.address or cluster.address
        if address:
            return RayOptions(address=address)
        cpus = (cluster.num_cpus or os.cpu_count() or 1) + sum(m.replicas for m in self.config.models)
        return RayOptions(dashboard=cluster.dashboard, num_cpus=cpus)

    def connect(self):
        """Start or join Ray once (the dashboard URL is printed); an unreachable address is one line, exit 1."""
        if self.connection is None:
            from steersweep.cluster import connect_ray

            options = self._ray_options()
            try:
                self.connection = connect_ray(options)
            except Exception as error:
                if not options.address:
                    raise
                raise ClusterConnectError(
                    f"--address / cluster.address {options.address}: cannot reach a Ray cluster there "
                    f"({_root_cause(error)}); start it (`ray start --head`) or pass the address `ray status` shows "
                    "(auto, host:6379 or ray://host:10001)") from None
            if self.connection.dashboard_url:
                self.result.dashboard_url = self.connection.dashboard_url
                self.console.print(f"Ray dashboard: {self.result.dashboard_url}")
        return self.connection

    def launch(self):
        """Every configured model placed (refused before any load when it cannot fit) and started as named actors
        ``steersweep/<model>/<replica>`` with restarts; a model that fails to load is kept in ``failed``."""
        if self.launched is None:
            from steersweep.actors import ModelSpec
            from steersweep.cluster import ModelNeed, launch

            self.connect()
            needs, specs = [], {}
            for model in self.config.models:
                path = self.model_path(model.name)
                needs.append(ModelNeed(model.name, path, model.dtype, model.replicas))
                specs[model.name] = ModelSpec(path, dtype=model.dtype, device=model.device, name=model.name)
            rows = self.config.search.rows_per_call or 64
            self.launched = launch(needs, specs, self._ray_options(), batch_rows=rows,
                                   tokens_per_row=256 + self.config.search.max_new_tokens)
            for name, models in self.launched.replicas.items():
                self.result.actor_starts[name] = self.result.actor_starts.get(name, 0) + len(models)
                self.console.log(f"{name}: {', '.join(m.name for m in models)} started ({specs[name].path})")
            for name, message in self.launched.failed.items():
                self.console.log(f"[red]{name} failed to load[/]: {message}")
        return self.launched

    def load_error(self, *names: str) -> str | None:
        """The one-line load failure of the first of ``names`` that failed to load, else None (launches first)."""
        failed = self.launch().failed
        return next((f"models.{n}: {failed[n]}" for n in names if n in failed), None)

    def replicas(self, name: str) -> list[Any]:
        """The model's replicas (ResilientModel handles), started on first use and reused by every stage."""
        message = self.load_error(name)
        if message:
            raise ModelStartError(message)
        return self.launched.replicas[name]

    def actor(self, name: str):
        """The model's first replica."""
        return self.replicas(name)[0]

    def call(self, name: str, method: str, *args: Any) -> Any:
        return self.actor(name).call(method, *args)

    def judge(self):
        if self._judge is None:
            from steersweep.actors.judges import build_judge

            self._judge = build_judge(self.config.judge, run_dir=self.run.root)
        return self._judge

    # ------------------------------------------------------------------------------------------------ stages
    def _unit(self, unit: str) -> bool:
        if self.manifest.is_done(unit):
            self.result.skipped.append(unit)
            return False
        return True

    def _fail(self, unit: str, message: str) -> None:
        """Record a unit that cannot run (its model did not load): ``failed`` event, one line; the rest goes on."""
        self.manifest.log("failed", unit, error=message)
        self.result.failed[unit] = message
        self.console.log(f"[red]{unit} failed[/]: {message}")

    def extract(self) -> None:
        from steersweep.engine import ExtractionPlan, extract_trait_vectors

        for source, trait_name, elicitation in self.config.extraction_units():
            unit = f"extract/{source}/{trait_name}"
            if not self._unit(unit):
                continue
            error = self.load_error(source)
            if error:
                self._fail(unit, error)
                continue
            started = self.manifest.start(unit)
            trait = next(t for t in self.config.traits if t.name == trait_name)
            plan = ExtractionPlan(
                model=source, layers=None, components=trait.components, positions=trait.positions,
                methods=trait.methods, rollouts=trait.rollouts, do_sample=trait.rollouts > 1,
                max_new_tokens=trait.max_new_tokens, test_fraction=trait.test_fraction, seed=self.config.seed,
                cosine_filter=trait.cosine_filter, pca_components=trait.pca_components,
            )
            self.console.log(f"extract: {source} x {trait_name} ({elicitation} elicitation)")
            outcome = extract_trait_vectors(self.run, self.actor(source), self.dataset(trait_name, elicitation),
                                            plan, judge=self.judge())
            self.manifest.finish(unit, started, [str(p.relative_to(self.run.root)) for p in outcome.written],
                                 elicitation=elicitation, captures=outcome.capture_calls)
            self.result.ran.append(unit)

    def search(self) -> None:
        """One study per (target, trait, vector source) through ``steersweep.search.search``; a unit cut by a crash
        resumes from the trials its Parquet files hold."""
        from steersweep.actors.judges import TraitDefinition
        from steersweep.analysis import TraitVector
        from steersweep.cluster import MeteredJudge, SweepMetrics
        from steersweep.search import RatioPrior, SearchSpace
        from steersweep.search import search as run_search

        config, vectors = self.config, self.config.vectors
        space_args: dict[str, Any] = {"ratio": tuple(config.search.ratio_range)}
        if config.search.layers == "middle":
            space_args["depth"] = (0.25, 0.75)
        elif config.search.layers != "all":
            space_args["layers"] = tuple(config.search.layers)
        space = SearchSpace(**space_args)
        sampler = "tpe" if config.search.sampler == "constrained_tpe" else config.search.sampler
        for target, trait_name, source in config.search_units():
            unit = f"search/{study_name(target, trait_name, source)}"
            if not self._unit(unit):
                continue
            error = self.load_error(target, source)
            if error:
                self._fail(unit, error)
                continue
            started = self.manifest.start(unit)
            elicitation = next(e for s, t, e in config.extraction_units() if s == source and t == trait_name)
            dataset = self.dataset(trait_name, elicitation)
            path = self.run.vector_path(source, trait_name, vectors.method, vectors.component, vectors.position)
            vector = _load_vector(TraitVector, path)
            self.console.log(f"search: vector of {source} on {target} ({trait_name})")
            result = run_search(
                {target: self.replicas(target)}, vector, list(dataset.questions[: config.search.questions]), space,
                sampler, MeteredJudge(self.judge()), self.run.root,
                trait=TraitDefinition(trait_name, dataset.definition),
                target_model=target, vector_source=source, vector_method=vectors.method,
                n_trials=config.search.trials, coherence_threshold=config.search.coherence_threshold,
                max_new_tokens=config.search.max_new_tokens, seed=config.search.seed, storage=config.cluster.storage,
                prior=RatioPrior(start_ratio=config.search.prior_ratio), rows_per_call=config.search.rows_per_call,
                console=self.console, on_trial=SweepMetrics.get().on_trial,
            )
            self.judge().cache.flush()
            studies = sorted(result.best)
            self.manifest.finish(unit, started, [f"data/trials/{s}" for s in studies], studies=studies,
                                 vector_path=str(path.relative_to(self.run.root)))
            self.result.ran.append(unit)

    def analyse(self) -> None:
        """Drift rollouts per (model, trait) through the actors, then the analysis package's tables (as Ray tasks
        when Ray is up); see engine/analysis_stage.py."""
        if not self.config.analysis.enabled:
            return
        from .analysis_stage import TABLE_ANALYSES, drift_units, run_drift_unit, run_table_analysis

        for model, trait, source in drift_units(self.config):
            unit = f"analysis/drifts/{model}/{trait}"
            if not self._unit(unit):
                continue
            started = self.manifest.start(unit)
            extra = run_drift_unit(self, model, trait, source)
            self.manifest.finish(unit, started, extra.pop("outputs"), **extra)
            self.result.ran.append(unit)
        import ray

        for name in TABLE_ANALYSES:
            unit = f"analysis/{name}"
            if name not in self.config.analysis.analyses or not self._unit(unit):
                continue
            started = self.manifest.start(unit)
            written = run_table_analysis(self, name, use_ray=ray.is_initialized())
            self.console.log(f"analysis {name}: " + (", ".join(f"{t} ({n} rows)" for t, n in written.items())
                                                      or "no input yet"))
            self.manifest.finish(unit, started, [f"data/analysis/{t}.parquet" for t in written], tables=written)
            self.result.ran.append(unit)

    def report(self) -> Path:
        from .report import write_report

        started = self.manifest.start("report")
        path = write_report(self.run.root)
        self.manifest.finish("report", started, ["report.html"])
        self.result.report = path
        return path

    def close(self) -> None:
        if self._judge is not None:
            self._judge.close()
        if self.launched is not None:
            self.launched.shutdown()
            self.launched = None

    def run_all(self) -> PipelineResult:
        """Every stage in order; returns what ran, what was skipped, the best config per study, the report path."""
        started = time.perf_counter()
        if self.address or self.config.cluster.address:
            self.connect()  # an unreachable cluster is refused before anything is written
        self.prepare()
        try:
            self.extract()
            self.search()
            self.analyse()
            self.report()
        finally:
            self.close()
        from .status import best_configs

        self.result.best = best_configs(self.run.root)
        logger.info("pipeline finished in %.1f s", time.perf_counter() - started)
        return self.result
