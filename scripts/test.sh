#!/usr/bin/env bash
# The test command: install what is missing, build, run every test through CTest.
#   bash scripts/test.sh            # release build in build/release
#   SDROP_PRESET=asan bash scripts/test.sh   # the same under AddressSanitizer + UBSan
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
export PATH="$root/.venv/bin:$PATH"
preset=${SDROP_PRESET:-release}
echo "[test] configure + build ($preset)" >&2
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
echo "[test] ctest ($preset)" >&2
ctest --preset "$preset" -j "$(nproc)"
