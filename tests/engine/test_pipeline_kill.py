"""Must-show 3 (slow): the demo's pipeline killed with SIGKILL at three points (mid-extraction, mid-search,
mid-analysis) and rerun ends with the same tables as an uninterrupted run, and no finished unit runs twice (counted
from events.jsonl). Also: status/report/vectors ls read files only, actors start once per model.

Runs the packaged demo config on the small toy family (5% corpus scale) with a smaller search budget."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from report_browser import chromium, open_page

from steersweep.engine.commands import demo_config_text
from steersweep.engine.manifest import read_events

pytestmark = pytest.mark.slow

SCRIPT = Path(sys.executable).parent / "steersweep"
KILL_AT = ("extract/llama-sft/optimism", "search/llama-dpo/optimism/from-llama-base", "report")
"""Mid-extraction, mid-search, and while the report is written (the analysis units take milliseconds)."""


def _config(tmp: Path, family) -> Path:
    data = yaml.safe_load(demo_config_text())
    (tmp / "home").mkdir()
    (tmp / "home" / "toy").symlink_to(family.root.parent)  # toy.home: DIR means DIR/toy, like STEERSWEEP_HOME
    data["toy"] = {"home": str(tmp / "home"), "seed": 0, "scale": family.manifest["scale"]}
    data["search"].update(trials=6, questions=4, max_new_tokens=12)
    data["traits"][0]["max_scenarios"] = 16
    data["cluster"] = {"dashboard": False, "num_cpus": 2}
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _start(config: Path, run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen([str(SCRIPT), "run", str(config), "--run-dir", str(run_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def _kill_when_started(process: subprocess.Popen, run_dir: Path, unit: str, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e["event"] == "start" and e["unit"] == unit for e in read_events(run_dir)):
            os.killpg(process.pid, signal.SIGKILL)  # the driver and the Ray processes it started
            process.wait(timeout=60)
            return
        if process.poll() is not None:
            raise AssertionError(f"finished before {unit} started: {process.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"{unit} did not start in {timeout} s")


def _finish(config: Path, run_dir: Path) -> str:
    process = _start(config, run_dir)
    out, err = process.communicate(timeout=1200)
    assert process.returncode == 0, err[-3000:]
    return out


def _tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    data = run_dir / "data"
    trials = pd.read_parquet(data / "trials").drop(columns=["seconds"])
    out = {"trials": trials, "responses": pd.read_parquet(data / "responses"),
           "vectors": pd.read_parquet(data / "vectors.parquet").drop(columns=["vector_path"])}
    for path in sorted((data / "analysis").glob("*.parquet")):
        out[f"analysis/{path.stem}"] = pd.read_parquet(path)
    return {name: frame.sort_values(list(frame.columns[:3])).reset_index(drop=True) for name, frame in out.items()}


def test_sigkill_at_three_points_then_rerun_gives_the_same_tables(tmp_path, small_family):
    family, _ = small_family
    config = _config(tmp_path, family)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    started = time.perf_counter()
    out = _finish(config, reference)
    uninterrupted_s = time.perf_counter() - started
    assert "report:" in out and ("best" in out or "no coherent trial" in out)

    for unit in KILL_AT:
        _kill_when_started(_start(config, killed), killed, unit)
        manifest = json.loads((killed / "manifest.json").read_text())["units"]
        assert unit not in manifest
    _finish(config, killed)

    expected, got = _tables(reference), _tables(killed)
    assert set(expected) == set(got)
    for name in expected:
        pd.testing.assert_frame_equal(expected[name], got[name], check_exact=False, rtol=1e-9, obj=name)

    events = read_events(killed)
    done = Counter(e["unit"] for e in events if e["event"] == "done")
    starts = Counter(e["unit"] for e in events if e["event"] == "start")
    assert all(count == 1 for unit, count in done.items() if unit != "report"), done
    for unit in KILL_AT:  # the unit that was cut ran again, and only it
        assert starts[unit] == 2 and done[unit] == 1, (unit, starts[unit])
    redone = {u for u, c in starts.items() if c > 1}
    assert redone == set(KILL_AT), redone
    print(f"uninterrupted run {uninterrupted_s:.0f} s; units {len(done)}; starts {sum(starts.values())}")

    # the real run's report draws in headless Chromium with the network off
    if chromium() is not None:
        page = open_page(reference / "report.html", tmp_path / "profile", screenshot=tmp_path / "report.png")
        assert page.console == [], page.console
        sections = re.findall(r'data-section="(\w+)"', page.dom)
        assert sections == ["summary", "study", "study", "study", "study", "transfer", "analysis", "config"]
        plots = re.findall(r'data-plot="(\w+)"><div[^>]*>\s*<div id="plot-\d+" class="([^"]*)"', page.dom)
        assert len(plots) >= 8 and all("js-plotly-plot" in cls for _, cls in plots), plots

    # status reads the files only: no Ray, no torch in its process
    probe = subprocess.run([sys.executable, "-c", (
        "import sys, json; from steersweep.engine.status import run_status; "
        f"s = run_status({str(killed)!r}); "
        "assert 'ray' not in sys.modules and 'torch' not in sys.modules, 'status imported ray/torch'; "
        "print(json.dumps(s['counts']))")], capture_output=True, text=True, timeout=300, check=False)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert json.loads(probe.stdout) == {"done": len(done), "running": 0, "left": 0}
