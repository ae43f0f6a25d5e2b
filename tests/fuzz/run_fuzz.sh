#!/usr/bin/env bash
# Builds the libFuzzer harness with clang (ASan + UBSan + coverage on the runtime's own
# sources; the generated kernels link in as objects) and runs it for a bounded time from the
# checked-in seed corpus. usage: run_fuzz.sh <build-dir> <source-dir> [seconds]
set -euo pipefail
build=$1 src=$2 secs=${3:-60}
command -v clang++ >/dev/null || { echo "run_fuzz.sh: clang++ not found" >&2; exit 1; }
work="$build/fuzz"
mkdir -p "$work/corpus"
halide_inc=$("$src/.venv/bin/python" -c 'import halide,os; print(os.path.join(halide.install_dir(),"include"))')
clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -ffp-contract=off \
  -fno-exceptions -fno-rtti \
  -I"$src" -I"$src/runtime/include" -I"$src/runtime/src" -I"$src/tests" -I"$build/generators" -I"$halide_inc" \
  "$src/tests/fuzz/fuzz_api.cc" "$src/tests/reference/sdrop_reference.cc" \
  "$src"/runtime/src/*.cpp "$build"/generators/*.o \
  -lpthread -ldl -o "$work/fuzz_api"
cp -n "$src"/tests/fuzz/corpus/* "$work/corpus/" 2>/dev/null || true
"$work/fuzz_api" -max_total_time="$secs" -print_final_stats=1 -max_len=256 -artifact_prefix="$work/" \
  "$work/corpus" 2>&1 | tail -25
