#!/usr/bin/env bash
# Installs the build tree into a scratch prefix and builds the examples against it, as a
# consumer would: with find_package(sdrop) (static and shared) and with pkg-config + a bare
# C compiler (static archive: no Halide, LLVM, libstdc++ or libm needed at the link).
# With a Halide_DIR, also the Halide example generator against the installed <sdrop/halide.h>
# (sdrop::halide), run once to generate its pipeline.
# usage: run.sh <build-dir> <source-dir> <cmake> [<Halide_DIR>]
set -euo pipefail
build=$1 src=$2 cmake=$3 halide=${4:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$cmake" --install "$build" --prefix "$work/prefix" >/dev/null
"$cmake" -S "$src/tests/consumer" -B "$work/b" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DEXAMPLES="$src/examples" -DCMAKE_BUILD_TYPE=Release ${halide:+-DHalide_DIR="$halide"} \
  >/dev/null
"$cmake" --build "$work/b" >/dev/null
"$work/b/demo_static" 0.5 1
LD_LIBRARY_PATH="$work/prefix/lib" "$work/b/cpp_shared"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
cc -std=c99 "$src/examples/c/demo.c" $(pkg-config --cflags sdrop) \
  "$work/prefix/lib/libsdrop.a" -o "$work/demo_pc"
"$work/demo_pc" 0.1 1
if [ -n "$halide" ]; then
  test -f "$work/b/libsdrop_bias_relu_dropout.a" || { echo "consumer: no Halide example built" >&2; exit 1; }
fi
echo "consumer: find_package (static, shared), pkg-config${halide:+ and the Halide library} builds all ran"
