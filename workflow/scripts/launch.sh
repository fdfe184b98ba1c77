#!/usr/bin/env bash
# launch.sh GPUS MODE STAGE ARGS...: run `atommem STAGE ARGS...` on GPUS devices.
#   GPUS=0         CPU mode: every GPU hidden, plain `atommem`; MODE=train with ACCELERATE_CONFIG set runs
#                  the processes of that config instead (config/accelerate/cpu.yaml: 2, DDP over gloo).
#   MODE=train     GPUS>0: one process per GPU through `accelerate launch` (sft, rl).
#   MODE=single    GPUS>0: one process that uses all its GPUs itself (vLLM tensor parallel).
#   MODE=serve     ARGS is a whole command, not an atommem stage: a server the workflow starts for its jobs
#                  (embedder.serve), on GPUS devices claimed as for the jobs, and held while it runs.
# Devices: SLURM sets CUDA_VISIBLE_DEVICES for its jobs; a local run does not, so the job claims
# GPUS free device ids with flock. The locks live as long as the job's processes (also on SIGKILL),
# so jobs sharing a node get disjoint devices. ACCELERATE_CONFIG, when set, is passed to accelerate.
# ATOMMEM_PARENT_RUN_ID, when set, becomes the run's MLflow parent.
# Preemption (MODE=train): sft and rl stop on SIGTERM/SIGUSR1 after their current step with a checkpoint
# and exit 75; inside a SLURM job this script then requeues the job (`scontrol requeue`, which needs
# sbatch --requeue: profiles/slurm sets it), and the requeued job resumes from that checkpoint.
set -euo pipefail
gpus=$1 mode=$2
shift 2
PREEMPTED=75

train() {  # run a training command; a preempted one is requeued when this is a SLURM job
    local status=0
    "$@" || status=$?
    if [ "$status" -eq "$PREEMPTED" ] && [ -n "${SLURM_JOB_ID:-}" ]; then
        echo "launch.sh: preempted with a checkpoint written; requeueing SLURM job $SLURM_JOB_ID" >&2
        scontrol requeue "$SLURM_JOB_ID" || echo "launch.sh: scontrol requeue $SLURM_JOB_ID failed" >&2
    fi
    exit "$status"
}
# the DAG invocation's MLflow parent run (set by the Snakefile's onstart, inherited by every job)
if [ -n "${ATOMMEM_PARENT_RUN_ID:-}" ] && [ "$mode" != serve ]; then
    set -- "$@" --set "tracking.parent_run_id=$ATOMMEM_PARENT_RUN_ID"
fi

if [ "$gpus" -eq 0 ]; then
    export CUDA_VISIBLE_DEVICES=""
    if [ "$mode" = train ] && [ -n "${ACCELERATE_CONFIG:-}" ]; then
        # the job's threads (Snakemake sets OMP_NUM_THREADS) are shared by the config's processes; accelerate
        # would give each process all of them, twice as many threads as cores with 2 processes
        procs=$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1])).get("num_processes") or 1)' \
            "$ACCELERATE_CONFIG")
        per_process=$(( ${OMP_NUM_THREADS:-$procs} / procs ))
        train accelerate launch --config_file "$ACCELERATE_CONFIG" \
            --num_cpu_threads_per_process $(( per_process > 0 ? per_process : 1 )) -m atommem.cli "$@"
    fi
    if [ "$mode" = train ]; then
        train atommem "$@"
    fi
    if [ "$mode" = serve ]; then
        exec "$@"
    fi
    exec atommem "$@"
fi

if [ -z "${CUDA_VISIBLE_DEVICES:-}" ]; then
    total=$(nvidia-smi -L | wc -l)
    if [ "$gpus" -gt "$total" ]; then
        echo "launch.sh: $gpus GPUs asked, $total on this node" >&2
        exit 1
    fi
    lock_dir=${TMPDIR:-/tmp}/atommem-gpu-locks
    mkdir -p "$lock_dir"
    claim() {  # lock free devices until $gpus are held; fills claimed (ids) and fds (their locks)
        claimed=() fds=()
        for ((i = 0; i < total && ${#claimed[@]} < gpus; i++)); do
            exec {fd}>"$lock_dir/$i.lock"
            if flock -n "$fd"; then claimed+=("$i") fds+=("$fd"); else exec {fd}>&-; fi
        done
    }
    claim
    while [ "${#claimed[@]}" -lt "$gpus" ]; do
        # other jobs hold devices: free ours so two waiting jobs cannot deadlock, then retry
        for fd in "${fds[@]}"; do exec {fd}>&-; done
        sleep 5
        claim
    done
    CUDA_VISIBLE_DEVICES=$(IFS=,; echo "${claimed[*]}")
    export CUDA_VISIBLE_DEVICES
fi
echo "launch.sh: CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES" >&2

if [ "$mode" = serve ]; then
    exec "$@"  # the claimed devices' locks stay open in the server, so no job claims them while it runs
fi

if [ "$mode" = train ]; then
    train accelerate launch --num_processes "$gpus" ${ACCELERATE_CONFIG:+--config_file "$ACCELERATE_CONFIG"} \
        -m atommem.cli "$@"
fi
exec atommem "$@"
