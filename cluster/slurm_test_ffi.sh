#!/bin/bash
# The phasic multi-node FFI suite as a Slurm batch job.
#
#   sbatch cluster/slurm_test_ffi.sh                  # from the repository root
#   sbatch --wait cluster/slurm_test_ffi.sh; echo $?  # 0 only if every rank passed
#
# One task per node runs tests/test_slurm_multinode_ffi.py and the SLURM variant of
# tests/test_multi_process_svgd.py (TestSlurm) under srun, then
# tests/test_slurm_testkit.py with the phasic-testkit plugin on; each rank writes
# its own JUnit XML, junit-rank<PROCID>.xml and junit-testkit-rank<PROCID>.xml,
# into $PHASIC_SLURM_RESULTS (default: slurm-results/<job id>/). Options on the sbatch command line override
# the #SBATCH lines below, e.g. `sbatch --nodes=2 --ntasks=2 cluster/slurm_test_ffi.sh`.
#
#SBATCH --job-name=phasic-ffi
#SBATCH --nodes=4
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=8
#SBATCH --time=00:30:00
#SBATCH --output=slurm_ffi_test_%j.log

# ---- adapt to your cluster -------------------------------------------------
# module load python/3.11
# source "$HOME/venvs/phasic/bin/activate"        # or: conda activate phasic
# export PHASIC_CPUS=8                            # CPU devices per rank (default: cpus-per-task)
# ---------------------------------------------------------------------------

set -u
cd "${SLURM_SUBMIT_DIR:-.}"

# Devices per rank and OpenMP threads follow the CPUs Slurm gave each task.
export PHASIC_CPUS="${PHASIC_CPUS:-${SLURM_CPUS_PER_TASK:-1}}"
RESULTS="${PHASIC_SLURM_RESULTS:-slurm-results/${SLURM_JOB_ID}}"
mkdir -p "$RESULTS"
export RESULTS

echo "job ${SLURM_JOB_ID}: ${SLURM_NNODES} nodes (${SLURM_JOB_NODELIST}), ${SLURM_NTASKS} tasks," \
     "${SLURM_CPUS_PER_TASK:-1} CPUs per task; python: $(command -v python)"

# --kill-on-bad-exit: a rank that crashes, is killed or times out ends the step at
# once instead of leaving the others blocked in a collective until JAX's heartbeat
# timeout. Failed tests are not a crash: pytest's status 1 is recorded and the
# task exits 0, so every rank finishes the suite and writes its full report.
# SLURM_PROCID is only known inside each task, hence the single quotes.
# phasic-testkit's plugin is off: its srun mode silences ranks > 0 and merges
# only @multiprocess tests, while this suite wants every rank's own report.
srun --kill-on-bad-exit=1 bash -c '
  python -m pytest tests/test_slurm_multinode_ffi.py \
      tests/test_multi_process_svgd.py::TestSlurm -v -p no:cacheprovider \
      -p no:phasic_testkit --timeout="${PHASIC_TEST_TIMEOUT:-120}" \
      --junitxml="$RESULTS/junit-rank${SLURM_PROCID}.xml" \
      -o junit_suite_name="rank${SLURM_PROCID}"
  status=$?
  echo "$status" > "$RESULTS/exit-rank${SLURM_PROCID}"
  [ "$status" -eq 1 ] && exit 0
  exit "$status"
'
srun_status=$?

# Second step: phasic-testkit's plugin ON (it must be installed: its pytest entry
# point loads it). In an srun step the plugin runs @multiprocess tests in place on
# the tasks, checks the task count and merges every rank's outcome into rank 0's
# report; each rank still writes its own JUnit file (rank 0's holds the merged one).
srun --kill-on-bad-exit=1 bash -c '
  python -m pytest tests/test_slurm_testkit.py -v -p no:cacheprovider \
      --timeout="${PHASIC_TEST_TIMEOUT:-120}" \
      --junitxml="$RESULTS/junit-testkit-rank${SLURM_PROCID}.xml" \
      -o junit_suite_name="testkit-rank${SLURM_PROCID}"
  status=$?
  echo "$status" > "$RESULTS/exit-testkit-rank${SLURM_PROCID}"
  [ "$status" -eq 1 ] && exit 0
  exit "$status"
'
testkit_status=$?

# The job passes only if both steps succeeded and every rank's pytest returned 0.
failed=0
for ((rank = 0; rank < SLURM_NTASKS; rank++)); do
  for suite in "" "testkit-"; do
    status=$(cat "$RESULTS/exit-${suite}rank${rank}" 2>/dev/null || echo "none (killed?)")
    if [ "$status" != 0 ]; then
      echo "rank ${rank}: ${suite:-ffi-}suite pytest exit status ${status}"
      failed=1
    fi
  done
done
echo "srun exit status: ${srun_status} (FFI suite), ${testkit_status} (testkit suite)"
if [ "$srun_status" -ne 0 ] || [ "$testkit_status" -ne 0 ] || [ "$failed" -ne 0 ]; then
  exit 1
fi
echo "all ${SLURM_NTASKS} ranks passed both suites"
