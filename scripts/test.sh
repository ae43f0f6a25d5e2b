#!/usr/bin/env bash
# The test command: install what is missing, build, run every test through CTest; then the
# Python suite against the package `pip install ./python` makes, in a venv with PyTorch 2.x
# (python/run_tests.sh); then the C++ suite again under AddressSanitizer +
# UndefinedBehaviorSanitizer (build/asan).
#   bash scripts/test.sh                      # all of it
#   SDROP_PRESET=release bash scripts/test.sh # one preset only (release, debug or asan)
#   SDROP_PYTHON_TESTS=0 bash scripts/test.sh # without the Python suite
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
export PATH="$root/.venv/bin:$PATH"
presets=${SDROP_PRESET:-release asan}
for preset in $presets; do
  echo "[test] configure + build ($preset)" >&2
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
  echo "[test] ctest ($preset)" >&2
  ctest --preset "$preset" -j "$(nproc)"
  if [ "$preset" = release ] && [ "${SDROP_PYTHON_TESTS:-1}" != 0 ]; then
    echo "[test] python (pip install ./python into .venv-test, pytest)" >&2
    bash python/run_tests.sh
  fi
done
