#!/usr/bin/env bash
# Fuzz phasic's graph JSON parser, validator and structure compiler with libFuzzer,
# AddressSanitizer and UBSan.
#
#   packages/phasic-core/fuzz/run.sh [--seconds N] [--workdir DIR]
#
# 1. installs clang from the distribution (apt-get) when clang++ is missing;
# 2. builds fuzz_structure.cpp together with the extension's own json_io.cpp,
#    graph.cpp, structure.cpp, lumping.cpp, elimination.cpp, layout.cpp and the
#    kernel sources (the code `phasic._core` runs; KERNEL_SOURCES below);
# 3. replays every file in regressions/ (inputs that once crashed: they must not now);
# 4. fuzzes for N seconds (default 60) from seeds/ plus the corpus kept in the
#    work directory (default build/fuzz at the repository root), with json.dict.
# Exit status 0: no crash, no leak, no sanitizer report, no timeout.
# A crash leaves its input as WORKDIR/artifacts/crash-* ; turn it into a regression
# (copy it to regressions/, fix the code, add a case to tests/test_bad_inputs_all.py).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
SRC="$HERE/../src/cpp"
SECONDS_TO_RUN=60
WORKDIR="$ROOT/build/fuzz"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) SECONDS_TO_RUN="$2"; shift 2 ;;
    --workdir) WORKDIR="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (expected --seconds N, --workdir DIR)" >&2; exit 2 ;;
  esac
done
if ! [[ "$SECONDS_TO_RUN" =~ ^[0-9]+$ ]] || [[ "$SECONDS_TO_RUN" -lt 1 ]]; then
  echo "run.sh: --seconds must be a positive integer, got '$SECONDS_TO_RUN'" >&2
  exit 2
fi

CXX="${FUZZ_CXX:-}"
if [[ -z "$CXX" ]]; then
  for candidate in clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
    if command -v "$candidate" >/dev/null 2>&1; then CXX="$candidate"; break; fi
  done
fi
if [[ -z "$CXX" ]]; then
  echo "run.sh: clang++ not found; installing the distribution's clang (apt-get install clang)"
  SUDO=""
  if [[ "$(id -u)" -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q clang
  CXX=clang++
fi

# The kernels use OpenMP: clang needs its runtime headers (Debian's libomp-dev).
if ! echo '#include <omp.h>' | "$CXX" -fopenmp -x c++ -fsyntax-only - 2>/dev/null; then
  echo "run.sh: OpenMP headers for $CXX not found; installing libomp-dev"
  SUDO=""
  if [[ "$(id -u)" -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q libomp-dev
fi

# The numeric kernels, one file per algorithm family (src/cpp/README.md).
KERNEL_SOURCES=(per_theta.cpp moments.cpp covariance.cpp sampler.cpp mutation.cpp uniformization.cpp piecewise.cpp discrete.cpp densities.cpp reward_density.cpp state_at_time.cpp)

mkdir -p "$WORKDIR/corpus" "$WORKDIR/artifacts"
BIN="$WORKDIR/fuzz_structure"
echo "run.sh: building $BIN with $("$CXX" --version | head -1)"
"$CXX" -std=c++17 -g -O1 -fno-omit-frame-pointer -fopenmp \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I "$SRC" \
  "$HERE/fuzz_structure.cpp" \
  "$SRC/json_io.cpp" "$SRC/graph.cpp" "$SRC/structure.cpp" "$SRC/lumping.cpp" \
  "$SRC/elimination.cpp" "$SRC/layout.cpp" "${KERNEL_SOURCES[@]/#/$SRC/}" "$SRC/threads.cpp" \
  -o "$BIN"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

shopt -s nullglob
regressions=("$HERE"/regressions/*)
if [[ ${#regressions[@]} -gt 0 ]]; then
  echo "run.sh: replaying ${#regressions[@]} regression input(s)"
  "$BIN" -timeout=30 "${regressions[@]}"
fi

# -timeout catches hangs: a stiff structure may legitimately sweep up to the kernels'
# step cap (2 million steps), about 12 s under AddressSanitizer on this kind of machine.
echo "run.sh: fuzzing for ${SECONDS_TO_RUN}s (corpus $WORKDIR/corpus, seeds $HERE/seeds)"
"$BIN" \
  -max_total_time="$SECONDS_TO_RUN" \
  -dict="$HERE/json.dict" \
  -max_len=4096 \
  -timeout=30 \
  -rss_limit_mb=2048 \
  -malloc_limit_mb=1024 \
  -print_final_stats=1 \
  -artifact_prefix="$WORKDIR/artifacts/" \
  "$WORKDIR/corpus" "$HERE/seeds"
echo "run.sh: no crash in ${SECONDS_TO_RUN}s"
