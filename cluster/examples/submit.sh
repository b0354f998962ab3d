#!/usr/bin/env bash
# Submit a steersweep sweep to a running Ray cluster with `ray job submit` (the driver runs on the head node).
#
#   RAY_ADDRESS=http://HEAD:8265 RAY_AUTH_TOKEN=$(cat ~/.ray/auth_token) cluster/examples/submit.sh sweep.yaml
#
# Token authentication (Ray 2.59+): `ray job submit` sends RAY_AUTH_TOKEN (or the file at RAY_AUTH_TOKEN_PATH, or
# ~/.ray/auth_token) as a bearer token to the dashboard; set RAY_AUTH_MODE=token so the CLI does so for a remote
# address. The run directory must be on storage every node and a later cluster can reach (NFS/EFS/PVC):
# results stay there after the cluster is gone, and the same command resumes the sweep.
set -euo pipefail
CONFIG=${1:?usage: submit.sh SWEEP.yaml [RUN_DIR]}
RUN_DIR=${2:-/mnt/steersweep/runs/$(basename "${CONFIG%.*}")}
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}

ray job submit \
  --address "${RAY_ADDRESS:?set RAY_ADDRESS=http://HEAD:8265}" \
  --submission-id "steersweep-$(basename "$RUN_DIR")-$(date +%s)" \
  --runtime-env-json "$(cat <<JSON
{
  "working_dir": ".",
  "excludes": [".git", ".venv", "runs", "*.parquet", "*.safetensors"],
  "pip": ["steersweep"],
  "env_vars": {"HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", "STEERSWEEP_HOME": "/mnt/steersweep/cache"}
}
JSON
)" \
  -- steersweep run "$CONFIG" --run-dir "$RUN_DIR" --address auto
# Watch: the dashboard's Jobs/Actors pages (actors are named steersweep/<model>/<replica>), Grafana (ray_steersweep_*
# metrics), or `RAY_ADDRESS=HEAD:6379 steersweep status "$RUN_DIR"`.
