"""The launch recipes in cluster/examples parse and hold what the README promises (GPU workers, token auth,
results on storage outside the cluster, runtime_env)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "cluster" / "examples"


def test_kuberay_rayjob_has_gpu_workers_token_auth_and_the_run_dir_on_a_pvc():
    job = yaml.safe_load((EXAMPLES / "kuberay-rayjob.yaml").read_text())
    assert job["kind"] == "RayJob" and job["spec"]["backoffLimit"] >= 1
    assert "--address auto" in job["spec"]["entrypoint"] and "--run-dir /runs/" in job["spec"]["entrypoint"]
    cluster = job["spec"]["rayClusterSpec"]
    (group,) = cluster["workerGroupSpecs"]
    (worker,) = group["template"]["spec"]["containers"]
    assert int(worker["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    for pod in (cluster["headGroupSpec"]["template"]["spec"], group["template"]["spec"],
                job["spec"]["submitterPodTemplate"]["spec"]):
        env = {e["name"]: e for container in pod["containers"] for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "steersweep-ray-token"
    volumes = cluster["headGroupSpec"]["template"]["spec"]["volumes"]
    assert volumes[0]["persistentVolumeClaim"]["claimName"] == "steersweep-runs"


def test_ray_up_yaml_mounts_the_token_and_starts_nodes_with_token_auth():
    config = yaml.safe_load((EXAMPLES / "ray-up-gpu.yaml").read_text())
    assert config["file_mounts"] == {"~/.ray/auth_token": "~/.ray/auth_token"}
    assert all("RAY_AUTH_MODE=token ray start" in " ".join(config[key])
               for key in ("head_start_ray_commands", "worker_start_ray_commands"))
    assert {"gpu_worker_1x80g", "gpu_worker_8x80g"} <= set(config["available_node_types"])


def test_submit_recipe_passes_a_valid_runtime_env():
    script = (EXAMPLES / "submit.sh").read_text()
    subprocess.run(["bash", "-n", str(EXAMPLES / "submit.sh")], check=True)
    runtime_env = json.loads(re.search(r"<<JSON\n(.*?)\nJSON", script, re.S).group(1))
    assert set(runtime_env) == {"working_dir", "excludes", "pip", "env_vars"}
    assert "ray job submit" in script and "--address auto" in script and "RAY_AUTH_MODE" in script
