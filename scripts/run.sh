#!/usr/bin/env bash
# The main job: install what is missing (with the benchmark's libtorch and matplotlib),
# build, then the default benchmark report (about 7 minutes on 2 cores): sdrop against the
# STREAM-style references and libtorch, written to reports/bench.{md,json,png}.
# Arguments go to the benchmark, e.g. --threads=1, --full, --benchmark_filter=large.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh --bench
export PATH="$root/.venv/bin:$PATH"
cmake --preset release >/dev/null
cmake --build --preset release
"$root/build/release/examples/sdrop_demo" 0.5 5   # a first look: one line of timing
SDROP_BENCH_SKIP_BUILD=1 bash "$root/bench/run_report.sh" "$@"
