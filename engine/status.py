"""Where a run stands, from its files only (sweep.yaml, manifest.json, events.jsonl, data/trials): never starts Ray
or loads a model, so ``steersweep status`` answers in about a second even while the sweep runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, SweepConfig, parse_config, study_name
from .manifest import Manifest, read_events


def load_frozen_config(root: Path) -> SweepConfig:
    path = Path(root) / "sweep.yaml"
    if not path.is_file():
        raise ConfigError("", f"{root}: not a run directory (no sweep.yaml); pass the folder given to "
                          "`steersweep run --run-dir`")
    try:
        return parse_config(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
    except yaml.YAMLError:
        raise ConfigError("", f"{path}: the frozen config is not valid YAML; restore it or start a new run "
                          "directory") from None


def read_trials(root: Path):
    """``data/trials`` as a pandas frame (None when no study has finished)."""
    table = read_tables(Path(root) / "data" / "trials")
    return None if table is None else table.to_pandas()


def read_tables(folder: Path):
    """Every finished ``*.parquet`` under ``folder`` as one Arrow table (hidden temporary files skipped), or None.

    The same as actors.arrow_io.read_parquet_dir without importing the actors package (torch, Ray)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(p for p in Path(folder).rglob("*.parquet") if not p.name.startswith(".")) \
        if Path(folder).exists() else []
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def best_configs(root: Path) -> list[dict[str, Any]]:
    from .search_stage import best_trials

    return best_trials(read_trials(root))


def all_units(config: SweepConfig) -> list[str]:
    units = [f"extract/{s}/{t}" for s, t, _ in config.extraction_units()]
    units += [f"search/{study_name(*u)}" for u in config.search_units()]
    from .analysis_stage import analysis_units

    units += analysis_units(config)
    return [*units, "report"]


def run_status(root: Path) -> dict[str, Any]:
    """``{"run_dir", "name", "units": [{unit, state, seconds}], "counts", "best"}``; state is done / running / left /
    failed (running = started and not finished: in progress, or cut by a crash and redone on resume; failed = its
    model did not load, with ``error``)."""
    root = Path(root)
    config = load_frozen_config(root)
    manifest = Manifest(root)
    last: dict[str, dict[str, Any]] = {}
    for event in read_events(root):
        if event.get("event") in ("start", "failed"):
            last[event["unit"]] = event
    units = []
    for unit in all_units(config):
        if manifest.is_done(unit):
            units.append({"unit": unit, "state": "done", "seconds": manifest.units[unit].get("seconds")})
        elif unit in last and last[unit]["event"] == "failed":  # its model did not load (the error says why)
            units.append({"unit": unit, "state": "failed", "seconds": None, "error": last[unit].get("error")})
        else:
            units.append({"unit": unit, "state": "running" if unit in last else "left", "seconds": None})
    counts = {state: sum(u["state"] == state for u in units) for state in ("done", "running", "left", "failed")}
    return {"run_dir": str(root), "name": config.name, "units": units, "counts": counts,
            "best": best_configs(root), "report": str(root / "report.html") if (root / "report.html").exists()
            else None}
