#!/usr/bin/env bash
# Data-parallel training under Slurm: one task per GPU (or per CPU socket), N nodes.
#
#   sbatch --nodes=4 scripts/slurm-train.sh configs/my.yaml [heed train options...]
#
# Each task runs the same `heed train`; Open MPI picks up Slurm's process layout through PMIx, rank 0
# writes the run directory (which must be on a shared filesystem), and pre-emption (SIGTERM to every
# task, --signal below gives the grace period) ends with a checkpoint that `--resume RUN_DIR` continues.
#SBATCH --job-name=heed-train
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --signal=TERM@120
#SBATCH --requeue
#SBATCH --output=heed-train-%j.log
set -euo pipefail
config=${1:?usage: sbatch scripts/slurm-train.sh CONFIG [heed train options]}
shift
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
run_dir=$(build/heed train "$config" --dump-config "$@" | sed -n 's/^run_dir: *//p' | tr -d '"')
resume=()
# A requeued job (after pre-emption) continues from the run's newest checkpoint.
if ls "$run_dir"/checkpoints/step-* >/dev/null 2>&1; then resume=(--resume "$run_dir"); fi
srun --mpi=pmix --kill-on-bad-exit=1 build/heed train "$config" "$@" "${resume[@]}"
