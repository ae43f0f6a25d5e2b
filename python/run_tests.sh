#!/usr/bin/env bash
# Runs the Python binding's tests against the repository-built libsdrop.so.
# Usage: python/run_tests.sh [pytest args...]   (env: SDROP_LIBRARY overrides the library)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="${SDROP_PY_VENV:-$REPO/.venv-py}"
PY=/usr/bin/python3

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv --system-site-packages "$VENV"
fi
# Install from PyPI only what is missing (Debian's python3-numpy/-pytest/-torch are preferred).
missing=()
"$VENV/bin/python" -c "import numpy" 2>/dev/null || missing+=(numpy)
"$VENV/bin/python" -c "import pytest" 2>/dev/null || missing+=(pytest)
if ((${#missing[@]})); then
  echo "run_tests.sh: installing ${missing[*]} into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet "${missing[@]}"
fi

export SDROP_LIBRARY="${SDROP_LIBRARY:-$REPO/build/release/lib/libsdrop.so}"
if [[ ! -f "$SDROP_LIBRARY" ]]; then
  echo "run_tests.sh: $SDROP_LIBRARY not found; build first (cmake --build --preset release)" >&2
  exit 2
fi
cd "$HERE"
exec "$VENV/bin/python" -m pytest -p no:cacheprovider -q -rfEs tests "$@"
