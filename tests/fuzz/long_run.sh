#!/usr/bin/env bash
# The documented long fuzzing run (docs/testing.md): at least RUNS executions (default 10^6)
# of the harness from the checked-in corpus, then the line and branch coverage of the
# runtime's own sources over the corpus the run grew, from clang's source-based coverage
# (llvm-profdata and llvm-cov, Debian's llvm package).
#   usage: tests/fuzz/long_run.sh <build-dir> <source-dir> [runs]
set -euo pipefail
build=$1 src=$2 runs=${3:-1000000}
work="$build/fuzz-long"
mkdir -p "$work/corpus"
cp -n "$src"/tests/fuzz/corpus/* "$work/corpus/" 2>/dev/null || true
halide_inc=$("$src/.venv/bin/python" -c 'import halide,os; print(os.path.join(halide.install_dir(),"include"))')
flags=(-std=c++17 -O1 -g -ffp-contract=off -fno-exceptions -fno-rtti
       -I"$src" -I"$src/runtime/include" -I"$src/runtime/src" -I"$src/tests" -I"$build/generators"
       -I"$halide_inc")
sources=("$src/tests/fuzz/fuzz_api.cc" "$src/tests/reference/sdrop_reference.cc"
         "$src"/runtime/src/*.cpp "$build"/generators/*.o)
clang++ "${flags[@]}" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  "${sources[@]}" -lpthread -ldl -o "$work/fuzz_api"
start=$(date +%s)
"$work/fuzz_api" -runs="$runs" -print_final_stats=1 -max_len=256 -artifact_prefix="$work/" \
  "$work/corpus" > "$work/run.log" 2>&1 || { tail -40 "$work/run.log"; exit 1; }
echo "[fuzz] $runs executions in $(( $(date +%s) - start )) s; corpus: $(ls "$work/corpus" | wc -l) inputs"
grep -E "^#[0-9]+ +DONE|stat::" "$work/run.log" | tail -8
# Coverage: the same harness, instrumented for source-based coverage, replaying the corpus.
command -v llvm-profdata >/dev/null && command -v llvm-cov >/dev/null \
  || { echo "[fuzz] llvm-profdata/llvm-cov not found (apt-get install llvm): no coverage report" >&2; exit 0; }
clang++ "${flags[@]}" -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping \
  "${sources[@]}" -lpthread -ldl -o "$work/fuzz_api_cov"
LLVM_PROFILE_FILE="$work/cov.profraw" "$work/fuzz_api_cov" -runs=0 "$work/corpus" > /dev/null 2>&1
llvm-profdata merge -sparse "$work/cov.profraw" -o "$work/cov.profdata"
llvm-cov report "$work/fuzz_api_cov" -instr-profile="$work/cov.profdata" \
  "$src"/runtime/src/*.cpp | tee "$work/coverage.txt"
