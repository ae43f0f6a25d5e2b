#!/usr/bin/env bash
# The default benchmark report: builds sdrop and sdrop_bench if needed, runs the report subset
# (about 5 minutes on 2 cores), writes reports/bench.json (Google Benchmark's JSON),
# reports/bench.md, reports/bench.png and reports/bench.txt (the console log), and prints the
# headline. Extra arguments go to sdrop_bench, e.g.
#   bench/run_report.sh --threads=1
#   bench/run_report.sh --full                      # the whole SPEC section 7 matrix (~20 min)
#   bench/run_report.sh --benchmark_filter=large    # a subset
# SDROP_BENCH_SKIP_BUILD=1 uses the binary already built.
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
args=(--benchmark_out="$partial" --benchmark_out_format=json --benchmark_color=false
      --benchmark_enable_random_interleaving=true "$@")
echo "run_report.sh: $bin ${args[*]}" >&2
start=$(date +%s)
# The console table goes to reports/bench.txt; the medians scroll by on stderr as progress.
stdbuf -oL "$bin" "${args[@]}" | tee "$root/reports/bench.txt" |
  { grep --line-buffered -E '_median|ERROR' >&2 || true; }
secs=$(( $(date +%s) - start ))
echo "run_report.sh: benchmarks took ${secs} s" >&2
[[ -s "$partial" ]] || { echo "run_report.sh: $bin wrote no JSON" >&2; exit 1; }
mv -f "$partial" "$json"

"$py" "$root/bench/report.py" "$json" --out "$root/reports" \
  --cmd "bench/run_report.sh${*:+ $*}"
