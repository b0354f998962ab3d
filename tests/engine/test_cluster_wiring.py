"""The engine on the cluster layer: `steersweep run` starts named actors ``steersweep/<model>/<replica>`` through
``cluster.launch``; a model that fails to load fails its units (one line each) while the rest finishes, exit 1;
``--address`` refuses a malformed address (exit 2) and an unreachable one (exit 1) in one line, writing nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from steersweep.engine.cli import main

SCRIPT = Path(sys.executable).parent / "steersweep"


def _config(tmp_path: Path, models: dict[str, Path], trait_dir: Path, targets: list[str]) -> Path:
    data = {
        "name": "wiring",
        "models": [{"name": name, "path": str(path), "variant": "sft", "dtype": "float32", "device": "cpu"}
                   for name, path in models.items()],
        "traits": [{"name": "cheerful", "datasets": {"instruction": str(trait_dir)}, "max_new_tokens": 3,
                    "max_scenarios": 6}],
        "vectors": {"transfer": [{"source": "chat", "targets": targets}]},
        "search": {"layers": [1, 2], "trials": 2, "questions": 2, "max_new_tokens": 3, "sampler": "random"},
        "judge": {"kind": "rule"},
        "analysis": {"enabled": False},
        "cluster": {"dashboard": False, "num_cpus": 1},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def own_ray():
    """A local Ray of this test's own (metrics exported every 0.5 s); the session's shared Ray, when up, is
    stopped for it and started again after, as tests/conftest.py's ``ray_local`` starts it."""
    import ray

    shared = ray.is_initialized()
    if shared:
        ray.shutdown()
    os.environ["RAY_metrics_report_interval_ms"] = "500"  # noqa: SIM112 (Ray reads this exact name; default 10 s)
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
    os.environ.pop("RAY_metrics_report_interval_ms", None)
    if shared:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)


def _exported(wanted: dict[str, float], timeout_s: float = 60) -> dict[str, float | None]:
    """The sweep's metrics as the node's Prometheus endpoint exports them (summed over tags), once they match."""
    from steersweep.cluster import metrics_endpoints, read_metric

    (endpoint,) = metrics_endpoints()
    deadline, seen = time.monotonic() + timeout_s, {}
    while time.monotonic() < deadline:
        body = urllib.request.urlopen(endpoint, timeout=30).read().decode()
        seen = {name: read_metric(body, name) for name in wanted}
        if seen == wanted:
            break
        time.sleep(1)
    return seen


def test_run_starts_named_actors_and_a_model_that_fails_to_load_fails_only_its_units(
        tmp_path, tiny_model_dirs, trait_dir, own_ray, monkeypatch, capsys):
    from steersweep.cluster import actor_status, metrics_endpoints, read_metric
    from steersweep.engine import pipeline

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_model_dirs["llama"] / "config.json").read_text())  # no weights
    config = _config(tmp_path, {"chat": tiny_model_dirs["llama"], "broken": broken}, trait_dir, ["chat", "broken"])
    seen: list[str] = []
    status_out: list[str] = []
    close = pipeline.Pipeline.close

    def close_after_listing(self):
        seen.extend(a["name"] for a in own_ray.util.list_named_actors(all_namespaces=True))
        actor = own_ray.get_actor("steersweep/chat/0")  # the namespace of the Ray this process joined
        own_ray.kill(actor, no_restart=False)  # Ray restarts it (max_restarts); status must show the restart
        deadline = time.monotonic() + 120
        while not [a for a in actor_status() if a.name == "steersweep/chat/0" and a.restarts and a.state == "ALIVE"]:
            assert time.monotonic() < deadline, actor_status()
            time.sleep(0.5)
        capsys.readouterr()
        assert main(["status", str(self.run.root), "--address", "auto"]) == 0
        status_out.append(capsys.readouterr().out)
        close(self)

    monkeypatch.setattr(pipeline.Pipeline, "close", close_after_listing)
    run_dir = tmp_path / "run"
    assert main(["run", str(config), "--run-dir", str(run_dir)]) == 1
    captured = capsys.readouterr()
    assert "steersweep/chat/0" in seen, seen
    assert "steersweep/broken/0" not in seen, "a model that failed to load is not left running"
    assert re.search(r"actor steersweep/chat/0  ALIVE  restarts=1", status_out[0]), status_out
    failed = [line for line in captured.out.splitlines() if line.startswith("failed ")]
    assert failed == [line for line in failed if "search/broken/cheerful/from-chat" in line] and len(failed) == 1
    assert "models.broken: model path" in failed[0] and "could not be loaded" in failed[0]
    assert "Traceback" not in captured.out + captured.err
    from steersweep.engine.manifest import Manifest

    done = set(Manifest(run_dir).units)
    assert {"extract/chat/cheerful", "search/chat/cheerful/from-chat", "report"} <= done
    assert "search/broken/cheerful/from-chat" not in done
    from steersweep.engine.status import run_status

    states = {u["unit"]: u["state"] for u in run_status(run_dir)["units"]}
    assert states["search/broken/cheerful/from-chat"] == "failed"
    # the engine's search reports through SweepMetrics: its 2 trials told COMPLETE; judge and steer calls metered
    seen = _exported({"ray_steersweep_trials_completed_total": 2.0})
    assert seen == {"ray_steersweep_trials_completed_total": 2.0}
    body = urllib.request.urlopen(metrics_endpoints()[0], timeout=30).read().decode()
    assert read_metric(body, "ray_steersweep_judge_latency_seconds_count", judge="RuleJudge") >= 1
    assert read_metric(body, "ray_steersweep_rows_per_steer_call_count", actor="steersweep/chat/0") >= 1


def test_malformed_address_is_exit_2_in_one_line_and_writes_nothing(tmp_path, capsys):
    assert main(["run", str(tmp_path / "sweep.yaml"), "--run-dir", str(tmp_path / "run"),
                 "--address", "not an address"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ray://HOST:10001" in err
    assert not (tmp_path / "run").exists()


def test_unreachable_address_is_exit_1_in_one_line_and_writes_nothing(tmp_path, tiny_model_dirs, trait_dir):
    config = _config(tmp_path, {"chat": tiny_model_dirs["llama"]}, trait_dir, ["chat"])
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "1",
           "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S": "1"}
    result = subprocess.run([str(SCRIPT), "run", str(config), "--run-dir", str(tmp_path / "run"), "--address",
                             "ray://127.0.0.1:1"], capture_output=True, text=True, timeout=120, env=env, check=False)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "cannot reach a Ray cluster" in line]
    assert len(errors) == 1 and "ray://127.0.0.1:1" in errors[0] and "ray start --head" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists(), "nothing is written before the cluster is reached"
