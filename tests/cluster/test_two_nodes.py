"""Must-show 1: a real two-node Ray cluster on one machine (``ray start --head`` + ``ray start --address`` on
127.0.0.1, each node with its own CPUs and resources, started and stopped here): a sweep places one actor on each
node, finishes, and its results equal a one-node run's."""

from __future__ import annotations

import pytest
from sweep_helpers import N_TRIALS, compared_rows, run_sweep, save_tiny_llama, trial_counts

from steersweep.actors import ModelSpec, ModelWorker
from steersweep.cluster import (
    ModelNeed,
    ResilientModel,
    actor_status,
    cluster_inventory,
    plan_models,
    start_actors,
    wait_loaded,
)
from steersweep.cluster.local_cluster import LocalCluster, NodeSpec


@pytest.mark.slow  # two Ray nodes + two model actors: ~3 min on 2 loaded cores
def test_two_node_cluster_spreads_actors_and_equals_a_one_node_run(tiny_llama_dir, tmp_path):
    import ray

    paths = {"tiny-a": tiny_llama_dir, "tiny-b": save_tiny_llama(tmp_path / "tiny-b", seed=1)}
    specs = {name: ModelSpec(str(path)) for name, path in paths.items()}
    one_node = run_sweep({name: [ModelWorker(spec)] for name, spec in specs.items()}, tmp_path / "one-node")

    with LocalCluster([NodeSpec("head", num_cpus=1), NodeSpec("worker", num_cpus=1)]) as cluster:
        connection = cluster.connect()
        try:
            cluster.wait_until_joined()
            inventory = cluster_inventory()
            assert len(inventory.nodes) == 2 and inventory.total_gpus == 0
            plan = plan_models([ModelNeed(name, str(path)) for name, path in paths.items()], inventory,
                               batch_rows=8, tokens_per_row=64)
            handles = start_actors(plan, specs, max_restarts=1)
            assert wait_loaded(handles, timeout_s=600) == {}
            nodes = {row.name: row.node_id for row in actor_status()}
            assert len({nodes["steersweep/tiny-a/0"], nodes["steersweep/tiny-b/0"]}) == 2  # one actor per node
            alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
            assert set(nodes.values()) <= alive
            two_nodes = run_sweep({name: [ResilientModel(handles[(name, 0)], f"steersweep/{name}/0", name)]
                                   for name in paths}, tmp_path / "two-nodes")
        finally:
            ray.shutdown()
    assert connection.token_auth and not connection.started_here
    trials, _ = trial_counts(tmp_path / "two-nodes")
    assert sorted(trials.values()) == [1] * (2 * N_TRIALS) and len({study for study, _ in trials}) == 2
    assert compared_rows(two_nodes) == compared_rows(one_node)
