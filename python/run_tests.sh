#!/usr/bin/env bash
# The Python suite, against what a user installs:
#   1.-2. python/install_venv.sh: the project venv (.venv-test, created once and reused) with
#      the frameworks of python/tests/requirements.txt from PyPI, and `pip install ./python`
#      into it (pip's isolated build, against that venv's torch and jaxlib) whenever the
#      sources differ from those of the installed build;
#   3. pytest from outside the repository (conftest.py refuses the source tree), and the
#      Python example.
# Usage: python/run_tests.sh [pytest args...]
#   SDROP_TEST_VENV=DIR   another venv;  SDROP_PYTHON=python3.X  the interpreter to create it with
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
vpy=$(bash "$here/install_venv.sh")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# A fresh inductor cache per run: compiled graphs of another build must not be reused.
export TORCHINDUCTOR_CACHE_DIR="$work/inductor"
"$vpy" -m pytest -p no:cacheprovider -q -rfEs "$here/tests" "$@"
"$vpy" "$repo/examples/python/spatial_dropout.py"
