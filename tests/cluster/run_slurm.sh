#!/usr/bin/env bash
# Run a small config through a real single-node SLURM cluster with --profile profiles/slurm,
# next to a local run of the same config, for tests/test_cluster.py to compare.
#   usage: tests/cluster/run_slurm.sh WORKDIR   (WORKDIR/config/config.yaml must exist; root)
# Writes WORKDIR/local/results, WORKDIR/slurm/results, WORKDIR/sacct.txt.
# The test cluster has no GPUs, so the profile is copied with GPU requests dropped
# (sbatch rejects --gpus on a GPU-less node); everything else is profiles/slurm as shipped.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
W=$(cd "${1:?usage: $0 WORKDIR}" && pwd)
PY="$REPO/.venv/bin/python"
export SLURM_CI_DBD=1 SLURM_CI_DIR="${SLURM_CI_DIR:-/tmp/slurm-test-$$}"
cluster() { bash "$REPO/tests/cluster/slurm_cluster.sh" "$@"; }
trap 'cluster down' EXIT

mkdir -p "$W/profile" "$W/local/config" "$W/slurm/config"
cp "$W/config/config.yaml" "$W/local/config/"
cp "$W/config/config.yaml" "$W/slurm/config/"
"$PY" - "$REPO/profiles/slurm/config.yaml" "$W/profile/config.yaml" <<'PY'
import sys, yaml
profile = yaml.safe_load(open(sys.argv[1]))
gpu_rules = ("build_engine", "validate_gpu", "bench_component", "bench_chain")
profile["set-resources"] = [f"{r}:gpu=0" for r in gpu_rules] + [f"{r}:mem_mb=2000" for r in gpu_rules]
profile["set-threads"] = ["bench_component=1", "bench_chain=1"]   # 2-CPU test node
profile["default-resources"] = ["mem_mb=2000", "runtime=30"]
profile["slurm-init-seconds-before-status-checks"] = 1
yaml.safe_dump(profile, open(sys.argv[2], "w"))
PY

smk() { (cd "$1" && timeout -s KILL 1200 "$PY" -m snakemake --snakefile "$REPO/Snakefile" "${@:2}"); }

smk "$W/local" --cores 2 > "$W/local.log" 2>&1
# sacct lists jobs since midnight unless told a start: a run that crosses midnight lost its earlier jobs
since=$(date +%Y-%m-%dT%H:%M:%S)
cluster up > "$W/cluster_up.log" 2>&1
smk "$W/slurm" --profile "$W/profile" > "$W/slurm.log" 2>&1
sacct -n -X -P -S "$since" -o JobID,JobName,Comment,State,ExitCode > "$W/sacct.txt"
echo "local and SLURM runs done; $(grep -c COMPLETED "$W/sacct.txt") SLURM jobs COMPLETED"
