#!/usr/bin/env bash
# The default benchmark report: builds sdrop and sdrop_bench if needed, runs the report subset
# (about 5 minutes on 2 cores), writes reports/bench.json (Google Benchmark's JSON),
# reports/bench.md, reports/bench.png and reports/bench.txt (the console log), and prints the
# headline. Extra arguments go to sdrop_bench, e.g.
#   bench/run_report.sh --threads=1
#   bench/run_report.sh --full                      # the whole matrix (~20 min)
#   bench/run_report.sh --benchmark_filter=large    # a subset
# SDROP_BENCH_SKIP_BUILD=1 uses the binary already built. Then bench/frameworks/torch_bench.py
# times sdrop.torch against F.dropout2d (~2 min) in the project venv of the Python tests
# (python/install_venv.sh creates it the first time, ~5 GB from PyPI, and reinstalls sdrop
# into it when its sources changed): reports/bench_pytorch.json and a section of bench.md
# (SDROP_BENCH_PYTORCH=0 skips it; if the venv cannot be made, the report says so and goes on).
# Then bench/frameworks/jax_bench.py times sdrop.jax under jax.jit against idiomatic JAX and
# Keras's SpatialDropout2D (~1-2 min) in the same venv: reports/bench_jax.json and a section of
# bench.md (SDROP_BENCH_JAX=0 skips it; a failure is said in the report, which goes on).
# Then sdrop_autosched_bench runs Halide's autoschedulers beside the hand schedule:
# reports/autosched.md (SDROP_BENCH_AUTOSCHED=0 skips it).
#
# GPU benchmarks (CUDA: sdrop vs cudaMemcpy D2D and cuDNN dropout; OpenCL: sdrop vs a copy
# kernel; built when CMake finds CUDA + cuDNN / OpenCL) are left out of the default report
# (run_report.sh passes --no_gpu) so that it stays within its time budget. Opt in with
#   SDROP_BENCH_GPU=1 bench/run_report.sh      # the default report plus the GPU benchmarks
#                                              # (a few minutes more on a CUDA GPU, ~15 s on PoCL)
#   SDROP_BENCH_GPU=only bench/run_report.sh   # the GPU benchmarks alone (--benchmark_filter=^gpu/)
# or run the binary directly: sdrop_bench --benchmark_filter=^gpu/ (^gpu/cuda/, ^gpu/opencl/).
# PoCL (OpenCL on the CPU) keeps its compiled kernels in POCL_CACHE_DIR, by default
# build/pocl-cache here.
set -Eeuo pipefail
trap 'echo "run_report.sh: FAILED at line $LINENO (exit $?)" >&2' ERR

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
py="$root/.venv/bin/python"
[[ -x "$py" ]] || { echo "run_report.sh: no $py (run scripts/setup.sh)" >&2; exit 1; }

if [[ "${SDROP_BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  [[ -f build/release/CMakeCache.txt ]] || cmake --preset release
  cmake --build --preset release
fi
if [[ -x build/release/bench/sdrop_bench ]]; then
  bin="$root/build/release/bench/sdrop_bench"   # built with the project (add_subdirectory(bench))
else
  # Standalone, against the library's build tree.
  if [[ "${SDROP_BENCH_SKIP_BUILD:-0}" != 1 || ! -x build/bench/sdrop_bench ]]; then
    [[ -f build/bench/CMakeCache.txt ]] ||
      cmake -S bench -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DSDROP_BUILD_DIR="$root/build/release"
    cmake --build build/bench
  fi
  bin="$root/build/bench/sdrop_bench"
fi

mkdir -p reports
json="$root/reports/bench.json"
partial="$root/reports/bench.json.partial"   # becomes bench.json only when the run succeeds
rm -f "$partial"
# Random interleaving spreads each benchmark's repetitions over the whole run, so sdrop and the
# references it is divided by see the same drift of the machine (pass
# --benchmark_enable_random_interleaving=false to run them back to back).
gpu_args=()
case "${SDROP_BENCH_GPU:-0}" in
  0|"") gpu_args=(--no_gpu) ;;
  1) ;;
  only) gpu_args=(--benchmark_filter='^gpu/') ;;
  *) echo "run_report.sh: SDROP_BENCH_GPU must be 0, 1 or only (got '$SDROP_BENCH_GPU')" >&2
     exit 2 ;;
esac
if [[ "${SDROP_BENCH_GPU:-0}" != 0 ]]; then
  export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$root/build/pocl-cache}"
  mkdir -p "$POCL_CACHE_DIR"
fi
args=(--benchmark_out="$partial" --benchmark_out_format=json --benchmark_color=false
      --benchmark_enable_random_interleaving=true "${gpu_args[@]}" "$@")
echo "run_report.sh: $bin ${args[*]}" >&2
start=$(date +%s)
# The console table goes to reports/bench.txt; the medians scroll by on stderr as progress.
stdbuf -oL "$bin" "${args[@]}" | tee "$root/reports/bench.txt" |
  { grep --line-buffered -E '_median|ERROR' >&2 || true; }
secs=$(( $(date +%s) - start ))
echo "run_report.sh: benchmarks took ${secs} s" >&2
[[ -s "$partial" ]] || { echo "run_report.sh: $bin wrote no JSON" >&2; exit 1; }
mv -f "$partial" "$json"

# The framework benchmarks run on the thread count the benchmark was given (else 2, the count
# of SPEC §7's report), in the project venv, made or brought up to date once for both.
tthreads=2
for a in "$@"; do [[ "$a" == --threads=* ]] && tthreads=${a#--threads=}; done
tpy="" venv_tried=0
framework_venv() {
  if [[ $venv_tried == 0 ]]; then
    venv_tried=1
    # The package links the release build's kernels (same sources) when there are any.
    kf="$root/build/release/generators"
    [[ -f "$kf/sdrop_kernels.h" ]] || kf=""
    tpy=$(SDROP_KERNELS_FROM="$kf" bash "$root/python/install_venv.sh") || tpy=""
  fi
  [[ -n "$tpy" ]]
}

# PyTorch: sdrop.torch against F.dropout2d in one process.
torch_json="$root/reports/bench_pytorch.json"
torch_args=()
if [[ "${SDROP_BENCH_PYTORCH:-1}" == 0 ]]; then
  torch_args=(--pytorch-skipped "SDROP_BENCH_PYTORCH=0")
elif [[ "${SDROP_BENCH_GPU:-0}" == only ]]; then
  torch_args=(--pytorch-skipped "a GPU-only run (SDROP_BENCH_GPU=only)")
elif ! framework_venv; then
  echo "run_report.sh: python/install_venv.sh failed: no PyTorch comparison" >&2
  torch_args=(--pytorch-skipped "python/install_venv.sh failed (see the console)")
else
  rm -f "$torch_json"
  echo "run_report.sh: bench/frameworks/torch_bench.py --threads=$tthreads" >&2
  if "$tpy" "$root/bench/frameworks/torch_bench.py" --threads="$tthreads" --out "$torch_json" \
       > "$root/reports/bench_pytorch.txt"; then
    torch_args=(--pytorch "$torch_json")
  else
    echo "run_report.sh: torch_bench.py failed: no PyTorch comparison" >&2
    torch_args=(--pytorch-skipped "bench/frameworks/torch_bench.py failed (see the console)")
  fi
fi

# JAX: sdrop.jax under jax.jit against jax.random.bernoulli + jnp.where and Keras's
# SpatialDropout2D, in one process (XLA's CPU pool sized by the script's affinity mask).
jax_json="$root/reports/bench_jax.json"
jax_args=()
if [[ "${SDROP_BENCH_JAX:-1}" == 0 ]]; then
  jax_args=(--jax-skipped "SDROP_BENCH_JAX=0")
elif [[ "${SDROP_BENCH_GPU:-0}" == only ]]; then
  jax_args=(--jax-skipped "a GPU-only run (SDROP_BENCH_GPU=only)")
elif ! framework_venv; then
  echo "run_report.sh: python/install_venv.sh failed: no JAX comparison" >&2
  jax_args=(--jax-skipped "python/install_venv.sh failed (see the console)")
else
  rm -f "$jax_json"
  echo "run_report.sh: bench/frameworks/jax_bench.py --threads $tthreads" >&2
  if "$tpy" "$root/bench/frameworks/jax_bench.py" --threads "$tthreads" --json "$jax_json" \
       > "$root/reports/bench_jax.txt"; then
    jax_args=(--jax "$jax_json")
  else
    echo "run_report.sh: jax_bench.py failed: no JAX comparison" >&2
    jax_args=(--jax-skipped "bench/frameworks/jax_bench.py failed (see the console)")
  fi
fi

gpu_env=""
if [[ "${SDROP_BENCH_GPU:-0}" != 0 ]]; then gpu_env="SDROP_BENCH_GPU=$SDROP_BENCH_GPU "; fi
"$py" "$root/bench/report.py" "$json" --out "$root/reports" \
  --cmd "${gpu_env}bench/run_report.sh${*:+ $*}" "${torch_args[@]}" "${jax_args[@]}"

# Halide's autoschedulers beside the hand schedule (reports/autosched.md; ~1 min). Skipped
# with SDROP_BENCH_AUTOSCHED=0, and when the binary was not built (the standalone bench build
# has no generator to build it from).
as_bin="$root/build/release/bench/autosched/sdrop_autosched_bench"
if [[ "${SDROP_BENCH_AUTOSCHED:-1}" != 0 && "${SDROP_BENCH_GPU:-0}" != only && -x "$as_bin" ]]; then
  threads=()
  for a in "$@"; do [[ "$a" == --threads=* ]] && threads=("$a"); done
  as_json="$root/reports/autosched.json"
  echo "run_report.sh: $as_bin (autoschedulers vs the hand schedule)" >&2
  stdbuf -oL "$as_bin" "${threads[@]}" --benchmark_min_time=0.2 --benchmark_repetitions=5 \
    --benchmark_report_aggregates_only=true --benchmark_enable_random_interleaving=true \
    --benchmark_out="$as_json" --benchmark_out_format=json --benchmark_color=false |
    { grep --line-buffered -E '_median|ERROR' >&2 || true; }
  "$py" "$root/bench/autosched/report.py" "$as_json" --out "$root/reports/autosched.md" \
    --schedules "$root/build/release/bench/autosched" > /dev/null
  echo "run_report.sh: wrote reports/autosched.md" >&2
fi
