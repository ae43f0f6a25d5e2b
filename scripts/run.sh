#!/usr/bin/env bash
# The main job: install what is missing, build the library, then run the demo on the
# embedded default problem (32x64x112x112 float32, channels first, p = 0.5).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
export PATH="$root/.venv/bin:$PATH"
cmake --preset release >/dev/null
cmake --build --preset release
"$root/build/release/examples/sdrop_demo" "$@"
