"""The run directory's record of work: the frozen config, the manifest of finished units and the event log.

- ``sweep.yaml``: the resolved config, frozen at first start; a different config on resume is refused with the
  changed fields (:func:`freeze_config`).
- ``manifest.json``: ``{unit id: {stage, finished_at, seconds, outputs}}``, rewritten atomically when a unit ends.
- ``events.jsonl``: one line per unit start and end (append only), so tests and ``status`` can count what ran.

Unit ids: ``extract/MODEL/TRAIT``, ``search/TARGET/TRAIT/from-SOURCE``, ``analysis/NAME``, ``report``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigChangedError


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def config_diff(before: str, after: str) -> list[str]:
    """``field: old -> new`` for every field that differs between two YAML configs."""
    old, new = _flatten(yaml.safe_load(before) or {}), _flatten(yaml.safe_load(after) or {})
    return [f"{key}: {old.get(key, '(absent)')} -> {new.get(key, '(absent)')}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def freeze_config(root: Path, text: str) -> Path:
    """Write ``root/sweep.yaml`` at first start; afterwards the text must be the same.

    Raises:
        ConfigChangedError: with the changed fields in its one-line message.
    """
    path = root / "sweep.yaml"
    if path.exists():
        frozen = path.read_text(encoding="utf-8")
        if frozen != text:
            changes = config_diff(frozen, text) or ["formatting only"]
            raise ConfigChangedError(
                f"{root}: this run directory was started with another config ({'; '.join(changes)}); resume with "
                f"`steersweep resume {root}` (the frozen config) or pass another --run-dir"
            )
        return path
    root.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, text)
    return path


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class Manifest:
    """Finished units of one run directory (single writer: the driver)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / "manifest.json"
        self.events = self.root / "events.jsonl"
        self.units: dict[str, dict[str, Any]] = self._read()

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text(encoding="utf-8")).get("units", {})
        except (OSError, ValueError):
            raise ConfigChangedError(f"{self.path}: unreadable manifest; delete it to re-check every unit, "
                                     "or start a new run directory") from None

    def is_done(self, unit: str) -> bool:
        return unit in self.units

    def log(self, event: str, unit: str, **extra: Any) -> None:
        with open(self.events, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"t": round(time.time(), 3), "event": event, "unit": unit, **extra}) + "\n")

    def start(self, unit: str) -> float:
        self.log("start", unit)
        return time.perf_counter()

    def finish(self, unit: str, started: float, outputs: list[str] | None = None, **extra: Any) -> None:
        seconds = round(time.perf_counter() - started, 3)
        self.units[unit] = {"stage": unit.split("/", 1)[0], "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "seconds": seconds, "outputs": outputs or [], **extra}
        _write_atomic(self.path, json.dumps({"units": self.units}, indent=1) + "\n")
        self.log("done", unit, seconds=seconds)

    def forget(self, prefix: str) -> None:
        """Drop the units whose id starts with ``prefix`` (e.g. ``report`` so it is redrawn)."""
        self.units = {k: v for k, v in self.units.items() if not k.startswith(prefix)}
        _write_atomic(self.path, json.dumps({"units": self.units}, indent=1) + "\n")


def read_events(root: Path) -> list[dict[str, Any]]:
    path = Path(root) / "events.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:  # a line cut by a kill
            continue
    return events
