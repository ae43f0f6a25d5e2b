#!/usr/bin/env bash
# The test command: install what is missing, build, run every test through CTest; then the
# Python suite against the package `pip install ./python` makes, in a venv with PyTorch 2.x
# (python/run_tests.sh); then the C++ suite again under AddressSanitizer +
# UndefinedBehaviorSanitizer (build/asan, linking the release build's kernels).
#   bash scripts/test.sh                      # all of it
#   SDROP_PRESET=release bash scripts/test.sh # one preset only (release, debug or asan)
#   SDROP_PYTHON_TESTS=0 bash scripts/test.sh # without the Python suite
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
export PATH="$root/.venv/bin:$PATH"
presets=${SDROP_PRESET:-release asan}
t0=$(date +%s)
phase() { echo "[test] $* (at $(( $(date +%s) - t0 )) s)" >&2; }
python_tests=0
if [[ " $presets " == *" release "* ]] && [ "${SDROP_PYTHON_TESTS:-1}" != 0 ]; then
  python_tests=1
  # The Python suite's frameworks (torch, jax, keras: a few GB from PyPI the first time) are
  # installed while the C++ build runs: that step is mostly waiting on the network and needs
  # nothing built. Its output goes to a log, shown if it fails.
  mkdir -p build
  venv_log="$root/build/python-venv.log"
  # Its own process group (setsid), so that a failed build stops pip too.
  SDROP_FRAMEWORKS_ONLY=1 setsid bash python/install_venv.sh >/dev/null 2>"$venv_log" &
  venv_pid=$!
  trap 'kill -- "-$venv_pid" 2>/dev/null || true' EXIT
fi
for preset in $presets; do
  phase "configure + build ($preset)"
  extra=(-DSDROP_KERNELS_FROM=)
  # The sanitizer build links the release build's kernels when that was built in this run:
  # generated code is not instrumented either way, and generating it is most of a build.
  if [ "$preset" != release ] && [[ " $presets " == *" release "* ]]; then
    extra=(-DSDROP_KERNELS_FROM="$root/build/release/generators")
  fi
  # The memset route of large exact-zero calls is on only where the tuning table says it pays
  # (generators/schedule_table.cmake); the sanitizer build turns it on at its default, 4 MiB,
  # whatever the table says, so that its code and its tests run in every test command.
  if [ "$preset" = asan ]; then extra+=(-DSDROP_MEMSET_DROPPED_BYTES=4194304); fi
  cmake --preset "$preset" "${extra[@]}" >/dev/null
  cmake --build --preset "$preset"
  phase "ctest ($preset)"
  ctest --preset "$preset" -j "$(nproc)"
  if [ "$preset" = release ] && [ "$python_tests" = 1 ]; then
    phase "python: waiting for the frameworks' install (started with the build)"
    if ! wait "$venv_pid"; then
      cat "$venv_log" >&2
      echo "[test] ERROR: installing the Python suite's frameworks failed (log above: $venv_log)" >&2
      exit 1
    fi
    trap - EXIT
    phase "python (pip install ./python into .venv-test, pytest)"
    # The package links this run's release kernels (same sources) rather than generating them
    # a second time inside pip; it is otherwise built and installed as a user's would be.
    SDROP_KERNELS_FROM="$root/build/release/generators" bash python/run_tests.sh
  fi
done
phase "all tests passed"
