#!/usr/bin/env bash
# Installs what sdrop needs to build and test, idempotently:
#   - Debian packages (apt-get), only those missing;
#   - a project-local .venv with Halide 21.0.0, CMake >= 3.28 and Ninja from PyPI.
#   setup.sh --bench   also what the benchmarks need (libtorch-dev, matplotlib).
# Fails loudly: any step that fails stops the script with a message.
set -euo pipefail
want_bench=0
for arg in "$@"; do
  case "$arg" in
    --bench) want_bench=1 ;;
    *) echo "[setup] unknown argument: $arg" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# --- Debian packages ---------------------------------------------------------
apt_pkgs=(
  g++ libgtest-dev libgmock-dev libbenchmark-dev
  libdlpack-dev
  pocl-opencl-icd ocl-icd-opencl-dev opencl-headers
  python3-venv
  clang libclang-rt-14-dev  # the libFuzzer harness (tests/fuzz)
)
((want_bench)) && apt_pkgs+=(libtorch-dev)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "need root or sudo to apt-get install ${missing[*]}"
    sudo_cmd=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q || die "apt-get update failed"
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed"
fi

# --- Python venv with Halide, CMake, Ninja -----------------------------------
py=${SDROP_PYTHON:-python3}
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  "$py" -m venv "$venv" || die "could not create a venv with $py"
fi
want_halide=21.0.0
have_halide=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("halide"))' 2>/dev/null || true)
if [ "$have_halide" != "$want_halide" ] \
   || ! "$venv/bin/python" -c 'import cmake, ninja, pytest' 2>/dev/null; then
  say "installing halide==$want_halide, cmake, ninja, pytest into .venv"
  "$venv/bin/python" -m pip install -q --upgrade pip || die "pip upgrade failed"
  "$venv/bin/python" -m pip install -q "halide==$want_halide" "cmake>=3.28,<4.2" "ninja" "pytest" \
    || die "pip install halide==$want_halide cmake ninja pytest failed"
fi
if ((want_bench)) && ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  say "installing matplotlib into .venv (benchmark plots)"
  "$venv/bin/python" -m pip install -q matplotlib || die "pip install matplotlib failed"
fi
"$venv/bin/cmake" --version >/dev/null || die ".venv/bin/cmake does not run"
"$venv/bin/python" -c 'import halide; print(halide.install_dir())' >/dev/null \
  || die "the halide wheel does not import"
say "ok"
