"""A real multi-node Ray cluster on one machine (``ray start --head`` + ``ray start --address``), for tests and demos.

Every node is its own ``ray start --block`` process with its own CPUs, resources, ports and a private temp dir, so
it never joins (or is joined by) another Ray on the machine, and stopping it ends exactly the processes it started.

Example:
    >>> with LocalCluster([NodeSpec("head", 1), NodeSpec("worker", 1)]) as cluster:   # doctest: +SKIP
    ...     ray.init(address=cluster.address)
    ...     len(ray.nodes())
    2
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)
_DEFAULT_TOKEN = Path.home() / ".ray" / "auth_token"
_RAY_CLI = (sys.executable, "-m", "ray.scripts.scripts")
"""``ray`` run by this interpreter, so the nodes' workers import what this process imports (its venv)."""


@dataclass(frozen=True)
class NodeSpec:
    """One node: its name (also a custom resource ``node_<name>: 1`` to pin work on it), CPUs, GPUs, resources."""

    name: str
    num_cpus: int = 1
    num_gpus: int = 0
    resources: dict[str, float] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalCluster:
    """Start the head, then the other nodes; :attr:`address` is the GCS address to ``ray.init`` with."""

    def __init__(self, nodes: Sequence[NodeSpec], start_timeout_s: float = 180.0) -> None:
        if not nodes:
            raise ValueError("nodes: a cluster needs at least the head node")
        self.nodes = tuple(nodes)
        self.start_timeout_s = start_timeout_s
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ssr", dir="/tmp"))  # short: Unix socket paths are limited
        self.address = f"127.0.0.1:{_free_port()}"
        self._processes: list[subprocess.Popen] = []

    def _command(self, node: NodeSpec, head: bool) -> list[str]:
        resources = {f"node_{node.name}": 1.0, **node.resources}
        ports = {flag: _free_port() for flag in ("--node-manager-port", "--object-manager-port",
                                                 "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                                                 "--metrics-export-port", "--runtime-env-agent-port")}
        command = [*_RAY_CLI, "start", "--block", "--node-ip-address=127.0.0.1",
                   f"--num-cpus={node.num_cpus}", f"--num-gpus={node.num_gpus}",
                   f"--resources={json.dumps(resources)}", "--disable-usage-stats",
                   *(f"{flag}={port}" for flag, port in ports.items())]
        if head:
            port = self.address.rsplit(":", 1)[1]
            command += ["--head", f"--port={port}", f"--temp-dir={self.temp_dir}", "--include-dashboard=false",
                        f"--ray-client-server-port={_free_port()}"]
        else:
            command += [f"--address={self.address}"]
        return command

    def start(self) -> LocalCluster:
        """Start the head, wait for its GCS port, then start the other nodes (they retry joining on their own)."""
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        if env.get("RAY_AUTH_MODE", "token") == "token":  # token auth on every node, as Ray 2.59+ starts clusters
            env["RAY_AUTH_MODE"] = "token"
            if not (env.get("RAY_AUTH_TOKEN") or env.get("RAY_AUTH_TOKEN_PATH") or _DEFAULT_TOKEN.is_file()):
                subprocess.run([*_RAY_CLI, "get-auth-token", "--generate"], check=True,
                               capture_output=True, env=env, timeout=120)
        for index, node in enumerate(self.nodes):
            log = (self.temp_dir / f"{node.name}.log").open("w")
            process = subprocess.Popen(self._command(node, head=index == 0), stdout=log, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True)
            self._processes.append(process)
            if index == 0:
                self._wait_for_head()
        return self

    def _check_running(self) -> None:
        for process, node in zip(self._processes, self.nodes, strict=False):
            if process.poll() is not None:
                raise RuntimeError(f"ray start for node {node.name!r} exited with {process.returncode}: "
                                   f"{self.log(node.name)[-2000:]}")

    def _wait_for_head(self) -> None:
        host, port = self.address.rsplit(":", 1)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            self._check_running()
            with socket.socket() as sock:
                if sock.connect_ex((host, int(port))) == 0:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"head GCS not listening at {self.address} after {self.start_timeout_s:g} s; "
                           f"logs in {self.temp_dir}")

    def connect(self, attempts: int = 3, **options: object) -> object:
        """``connect_ray`` to this cluster, retried: on a loaded machine the GCS may answer its first calls late."""
        import ray

        from .runtime import RayOptions, connect_ray

        for attempt in range(1, attempts + 1):
            try:
                return connect_ray(RayOptions(address=self.address, **options))  # type: ignore[arg-type]
            except (ConnectionError, RuntimeError) as error:
                ray.shutdown()
                if attempt == attempts:
                    raise
                logger.warning("connecting to %s failed (%s); retrying", self.address, error)
                time.sleep(5.0 * attempt)
        raise AssertionError("unreachable")

    def wait_until_joined(self) -> None:
        """Block until every node is alive (needs this process connected: ``ray.init(address=cluster.address)``)."""
        import ray

        deadline = time.monotonic() + self.start_timeout_s
        while sum(1 for n in ray.nodes() if n.get("Alive")) < len(self.nodes):
            self._check_running()
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all {len(self.nodes)} nodes joined after {self.start_timeout_s:g} s; "
                                   f"logs in {self.temp_dir}")
            time.sleep(1.0)

    def log(self, name: str) -> str:
        path = self.temp_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM each ``ray start --block`` (its node's processes go with it), workers first, then the head."""
        for process in reversed(self._processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self._processes):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        self._processes.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
