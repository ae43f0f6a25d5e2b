#!/usr/bin/env bash
# The project venv of the Python tests and the framework benchmarks (.venv-test), made and
# kept current idempotently, then its python's path printed on stdout:
#   1. created once, with the frameworks of python/tests/requirements.txt from PyPI
#      (reinstalled only when that file changes; the first time ~5 GB and a few minutes);
#   2. `pip install ./python` into it (pip's isolated build: libsdrop, the nanobind module, the
#      PyTorch operators and the XLA FFI handlers against that venv's torch and jaxlib), only
#      when the sources it is built from differ from those of the installed build
#      (SDROP_REINSTALL=1 forces it).
# Progress goes to stderr; any failure stops with a message and a non-zero status.
#   SDROP_TEST_VENV=DIR   another venv;  SDROP_PYTHON=python3.X  the interpreter to create it with
#   SDROP_FRAMEWORKS_ONLY=1  step 1 only (the test command runs it during the C++ build: it is
#                         mostly downloading, and needs no build)
#   SDROP_KERNELS_FROM=DIR  the generators/ folder of a CMake build of these same sources: the
#                         package links that build's kernels instead of generating its own
#                         (the test command passes its release build's; generating the kernels
#                         is most of the package's build time). Everything else is built by pip.
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
  "$venv/bin/python" -m pip install -q --upgrade pip >&2 || die "pip upgrade failed"
  "$venv/bin/python" -m pip install -q -r "$req" >&2 || die "pip install -r $req failed"
  cp "$req" "$stamp"
fi
if [ "${SDROP_FRAMEWORKS_ONLY:-0}" = 1 ]; then
  echo "$venv/bin/python"
  exit 0
fi

# What the package is built from: every file of these folders that git would see (tracked,
# or untracked and not ignored), by content.
src_hash() {
  cd "$repo"
  git ls-files -z -co --exclude-standard -- python runtime generators common cmake \
      CMakeLists.txt | grep -zv '^python/tests/' | sort -z | xargs -0 sha256sum | sha256sum |
    cut -d' ' -f1
}
built="$venv/.sdrop-sources"
want=$(src_hash 2>/dev/null) || want=""   # not a git checkout: always rebuild
if [ "${SDROP_REINSTALL:-0}" = 1 ] || [ -z "$want" ] || [ "$(cat "$built" 2>/dev/null)" != "$want" ] ||
   ! "$venv/bin/python" -c 'import sdrop' 2>/dev/null; then
  say "pip install ./python (builds libsdrop and the native modules: ~15 min on 2 cores, ~1.5 min when it links SDROP_KERNELS_FROM's kernels)"
  rm -f "$built"
  start=$(date +%s)
  kernels=()
  if [ -n "${SDROP_KERNELS_FROM:-}" ]; then
    [ -f "$SDROP_KERNELS_FROM/sdrop_kernels.h" ] || die "SDROP_KERNELS_FROM=$SDROP_KERNELS_FROM has no kernels"
    say "linking the kernels of $SDROP_KERNELS_FROM"
    kernels=(--config-settings=cmake.define.SDROP_KERNELS_FROM="$SDROP_KERNELS_FROM")
  fi
  "$venv/bin/python" -m pip install -q --force-reinstall --no-deps "${kernels[@]}" "$repo/python" >&2 \
    || die "pip install ./python failed"
  say "built and installed in $(( $(date +%s) - start )) s"
  echo "$want" > "$built"
else
  say "sdrop in $venv is built from these sources already"
fi
echo "$venv/bin/python"
