#!/usr/bin/env bash
# The Python suite, against what a user installs:
#   1. a project venv (.venv-test, created once and reused) with the frameworks of
#      python/tests/requirements.txt from PyPI (reinstalled only when that file changes);
#   2. `pip install ./python` into it: pip's isolated build, which compiles libsdrop, the
#      nanobind module and the PyTorch operators against that venv's torch;
#   3. pytest from outside the repository (conftest.py refuses the source tree), and the
#      Python example.
# Usage: python/run_tests.sh [pytest args...]
#   SDROP_TEST_VENV=DIR   another venv;  SDROP_PYTHON=python3.X  the interpreter to create it with
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
venv=${SDROP_TEST_VENV:-$repo/.venv-test}
py=${SDROP_PYTHON:-python3}
say() { printf '[python] %s\n' "$*" >&2; }
die() { printf '[python] ERROR: %s\n' "$*" >&2; exit 1; }

if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  "$py" -m venv "$venv" || die "could not create a venv with $py"
fi
req="$here/tests/requirements.txt"
stamp="$venv/.sdrop-requirements"
if ! cmp -s "$req" "$stamp"; then
  say "installing $(grep -v '^#' "$req" | tr '\n' ' ')into $venv (first time: several minutes)"
  "$venv/bin/python" -m pip install -q --upgrade pip || die "pip upgrade failed"
  "$venv/bin/python" -m pip install -q -r "$req" || die "pip install -r $req failed"
  cp "$req" "$stamp"
fi

say "pip install ./python (builds libsdrop and the native modules)"
start=$(date +%s)
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$repo/python" \
  || die "pip install ./python failed"
say "built and installed in $(( $(date +%s) - start )) s"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# A fresh inductor cache per run: compiled graphs of another build must not be reused.
export TORCHINDUCTOR_CACHE_DIR="$work/inductor"
"$venv/bin/python" -m pytest -p no:cacheprovider -q -rfEs "$here/tests" "$@"
"$venv/bin/python" "$repo/examples/python/spatial_dropout.py"
