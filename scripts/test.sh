#!/usr/bin/env bash
# The test command: install what is missing, build, run every test through CTest, then the
# whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer (build/asan).
#   bash scripts/test.sh                      # both
#   SDROP_PRESET=release bash scripts/test.sh # one preset only (release, debug or asan)
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
done
