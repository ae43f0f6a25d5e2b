#!/usr/bin/env bash
# The prepared GPU check: the CUDA test suite and the CUDA benchmark rows, run on a bare x86-64
# Linux machine that has an NVIDIA GPU and its driver but no toolchain, from a bundle built
# here. Two halves:
#
#   bash scripts/gpu-check.sh pack [BUILD_DIR]   # here, after a build (default build/release)
#   bash scripts/gpu-check.sh run OUT_DIR        # there, with gpu-check/ beside the sources
#
# pack copies BUILD_DIR's tests/gpu/sdrop_cuda_test (every ctest test labelled "cuda") and a
# sdrop_bench with the CUDA benchmarks into gpu-check/, with every shared library they need
# that such a machine lacks: ldd's list, less glibc, libstdc++, libgcc_s and the driver's
# libcuda (its own), plus the cuDNN parts libcudnn.so opens itself (SDROP_GPU_CHECK_CUDNN_PARTS,
# default "graph ops": cudnnCreate/cudnnSetStream are in libcudnn_graph, cudnnDropout* in
# libcudnn_ops, by nm -D; whether cuDNN opens more of itself is seen only on a GPU, and env.txt
# and summary.md say so). Both binaries link libsdrop statically: no libsdrop.so travels. The
# two binaries are stored gzipped (a third of their size: the bundle is ~50 of the 64 MiB
# rather than ~61); run unpacks them into a temporary folder. When the build's sdrop_bench links libtorch (120 MB)
# pack builds one without it and without OpenCL, from the same sources and libsdrop.a, in
# build/gpu-check-bench. It writes MANIFEST (sizes, origins, commit) and SHA256SUMS, fails when
# the bundle and the working tree together pass 64 MiB (what the device tool carries), and
# proves the bundle loads on its own: every dependency of every file resolves inside it with
# only LD_LIBRARY_PATH set, and both binaries start and list their tests that way.
#
# run needs bash, coreutils, grep, sed, awk, gzip and the driver (nvidia-smi, libcuda.so.1). It checks
# the bundle's checksums and the GPU, then runs, each under `timeout`, with LD_LIBRARY_PATH to
# the bundle first (then the caller's, for the driver):
#   sdrop_cuda_test --gtest_output=xml         (one process for the whole suite; ctest runs
#                                               the same tests one per process)
#   sdrop_bench --benchmark_filter=^gpu/cuda/  (sdrop vs cudaMemcpy D2D and cuDNN dropout)
# and writes to OUT_DIR (six flat files, what the device tool brings back from $OUT):
#   summary.md      tests passed/failed/skipped; per CUDA row GB/s and the ratios
#                   t_memcpy/t_sdrop and t_cudnn/t_sdrop (>= 1: sdrop is faster)
#   cuda_test.xml, cuda_test.log   gtest's XML and output
#   bench.json, bench.log          Google Benchmark's JSON (bench/report.py reads it) and output
#   env.txt         machine, nvidia-smi, the bundle's manifest, ldd, the libraries each binary
#                   loaded and from where
# Exit status: 0 all passed; 1 a test failed, a run timed out or a benchmark failed; 2 usage or
# a broken bundle; 3 no usable GPU (SDROP_GPU_CHECK_ALLOW_NO_GPU=1 runs the binaries anyway,
# where the device tests skip: a check that the bundle loads, exit 0 if nothing failed).
#
# On the device tool: run(command="bash scripts/gpu-check.sh run $OUT", carry=["gpu-check"]).
# Time: both runs together under SDROP_GPU_CHECK_TOTAL_S (default 450 s, so well under 8 min);
# the tests get at most SDROP_GPU_CHECK_TEST_S (240), the benchmarks what is left, at most
# SDROP_GPU_CHECK_BENCH_S (200). Each row is timed 5 x 0.05 s of GPU time (--reps=5
# --min_time=0.05 --warmup=0.05) rather than the report's 5 x 0.2 s: with CUDA events Google
# Benchmark counts GPU time toward min_time, and a small tensor's call takes several times its
# GPU time in wall time. SDROP_GPU_CHECK_BENCH_ARGS adds flags after these (later ones win).
# SDROP_GPU_CHECK_BUNDLE names another bundle folder (default: gpu-check/ at the repository root).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bundle=${SDROP_GPU_CHECK_BUNDLE:-$root/gpu-check}
cap_bytes=$((64 * 1024 * 1024))

die() { echo "gpu-check: $*" >&2; exit 2; }
say() { echo "gpu-check: $*" >&2; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# Libraries the target machine has of its own: glibc's, the C++ runtime (the brief's baseline
# for a Linux machine), and the NVIDIA driver's (libcuda must match the kernel module).
is_system_lib() {
  case "${1##*/}" in
    linux-vdso.so* | ld-linux*.so* | libc.so* | libm.so* | libdl.so* | libpthread.so* | \
      librt.so* | libresolv.so* | libutil.so* | libanl.so* | libmvec.so* | \
      libstdc++.so* | libgcc_s.so* | libcuda.so* | libnvidia-*.so* | libnvcuvid.so* | \
      libstdbuf.so) return 0 ;;
  esac
  return 1
}

# "name path" per line of ldd's answer for $1 ("name not-found" when unresolved).
ldd_deps() {
  ldd "$1" 2>&1 | awk '
    / => not found/ { print $1, "not-found"; next }
    / => \// { print $1, $3; next }
    /^[ \t]*\// { n = $1; sub(/.*\//, "", n); print n, $1 }'
}

# ---- pack -------------------------------------------------------------------------------------

cache_value() {  # cache_value BUILD_DIR VAR: VAR's value in BUILD_DIR's CMakeCache.txt
  sed -n "s/^$2:[A-Z]*=//p" "$1/CMakeCache.txt" | head -n 1
}

# A sdrop_bench with the CUDA benchmarks and no libtorch / OpenCL, built standalone against
# the build's libsdrop.a (bench/CMakeLists.txt's second way in), with the build's compilers,
# CUDA toolkit and cuDNN.
build_gpu_bench() {
  local build=$1 dir=$2 src cmake gen=()
  src=$(cache_value "$build" CMAKE_HOME_DIRECTORY)
  [ -f "$src/bench/CMakeLists.txt" ] || die "no bench/CMakeLists.txt under $build's source '$src'"
  cmake=$(command -v cmake || true)
  [ -n "$cmake" ] || cmake=$root/.venv/bin/cmake
  [ -x "$cmake" ] || die "no cmake on PATH nor in $root/.venv (bash scripts/setup.sh)"
  if command -v ninja >/dev/null || [ -x "$root/.venv/bin/ninja" ]; then
    gen=(-G Ninja "-DCMAKE_MAKE_PROGRAM=$(command -v ninja || echo "$root/.venv/bin/ninja")")
  fi
  local args=(-S "$src/bench" -B "$dir" ${gen[@]+"${gen[@]}"} -DCMAKE_BUILD_TYPE=Release
              "-DSDROP_BUILD_DIR=$build" -DSDROP_BENCH_WITH_TORCH=OFF -DSDROP_BENCH_WITH_OPENCL=OFF)
  local v
  for v in CMAKE_C_COMPILER CMAKE_CXX_COMPILER SDROP_BENCH_CUDNN_INCLUDE_DIR \
           SDROP_BENCH_CUDNN_LIBRARY; do
    local val
    val=$(cache_value "$build" "$v")
    [ -n "$val" ] && args+=("-D$v=$val")
  done
  local nvcc_dir
  nvcc_dir=$(cache_value "$build" CUDAToolkit_BIN_DIR)
  [ -n "$nvcc_dir" ] && args+=("-DCUDAToolkit_ROOT=${nvcc_dir%/bin}")
  # shellcheck disable=SC2206  # extra configure arguments, split on blanks
  args+=(${SDROP_GPU_CHECK_BENCH_CMAKE_ARGS:-})
  say "building a sdrop_bench without libtorch and OpenCL in $dir"
  mkdir -p "$dir" || die "cannot create $dir"
  "$cmake" "${args[@]}" >"$dir/configure.log" 2>&1 ||
    { cat "$dir/configure.log" >&2; die "configure of $dir failed"; }
  "$cmake" --build "$dir" -j "${SDROP_GPU_CHECK_JOBS:-2}" >&2 || die "build of $dir failed"
}

pack() {
  local build
  build=$(cd "${1:-$root/build/release}" 2>/dev/null && pwd) ||
    die "no build directory '${1:-$root/build/release}' (cmake --preset release && cmake --build --preset release)"
  [ -f "$build/CMakeCache.txt" ] || die "$build is not a CMake build tree"
  local test_bin=$build/tests/gpu/sdrop_cuda_test bench_bin=$build/bench/sdrop_bench
  [ -x "$test_bin" ] || die "no $test_bin: the build found no CUDA toolkit (tests/gpu/CMakeLists.txt), or is not finished"
  [ -x "$bench_bin" ] || die "no $bench_bin: the build has no benchmarks (Google Benchmark missing?) or is not finished"
  local bench_from="the build's"
  local bench_deps
  bench_deps=$(ldd_deps "$bench_bin")  # (not piped into grep -q: pipefail would see SIGPIPE)
  if echo "$bench_deps" | grep '^libtorch' >/dev/null; then
    build_gpu_bench "$build" "$root/build/gpu-check-bench"
    bench_bin=$root/build/gpu-check-bench/sdrop_bench
    bench_from="built without libtorch/OpenCL in build/gpu-check-bench from"
  fi
  # Only the CUDA benchmarks' library links cuDNN: without it they were not compiled in.
  ldd_deps "$bench_bin" | grep '^libcudnn\.so' >/dev/null ||
    die "$bench_bin has no CUDA benchmarks (it does not link libcudnn): CMake found no CUDA toolkit or no cuDNN (bench/CMakeLists.txt)"

  # Every ctest test labelled cuda must be a run of the test binary (then one run of it, all
  # tests, covers the label).
  local ctest cuda_cmds cuda_count
  ctest=$(command -v ctest || echo "$root/.venv/bin/ctest")
  cuda_cmds=$("$ctest" --test-dir "$build" -L '^cuda$' -N -V 2>/dev/null | sed -n 's/.*Test command: *//p' | awk '{print $1}' | sort | uniq -c)
  cuda_count=$("$ctest" --test-dir "$build" -L '^cuda$' -N 2>/dev/null | sed -n 's/^Total Tests: *//p')
  [ -n "$cuda_count" ] && [ "$cuda_count" -gt 0 ] || die "ctest lists no test labelled cuda in $build"
  if echo "$cuda_cmds" | awk -v t="$test_bin" '$2 != t { bad = 1 } END { exit !bad }'; then
    die "tests labelled cuda run something else than $test_bin: $cuda_cmds"
  fi

  [ ! -e "$bundle" ] || [ -f "$bundle/MANIFEST" ] ||
    die "$bundle exists and is not a gpu-check bundle (no MANIFEST): not replaced"
  local tmp=$bundle.tmp.$$
  rm -rf "$tmp"
  mkdir -p "$tmp/bin" "$tmp/lib" || die "cannot write $tmp"
  # shellcheck disable=SC2064  # $tmp is a local: expanded now, on purpose
  trap "rm -rf '$tmp'" EXIT
  cp -L "$test_bin" "$tmp/bin/sdrop_cuda_test" && cp -L "$bench_bin" "$tmp/bin/sdrop_bench" ||
    die "copy of the binaries failed"
  : >"$tmp/.origins"
  echo "bin/sdrop_cuda_test $test_bin" >>"$tmp/.origins"
  echo "bin/sdrop_bench $bench_bin" >>"$tmp/.origins"

  # The libraries: ldd of each binary, then of each library added (cuDNN's parts included).
  local queue=("$test_bin" "$bench_bin") i=0 name path
  add_lib() {  # add_lib NAME PATH: copy under the name the loader asks for
    [ -e "$tmp/lib/$1" ] && return 0
    cp -L "$2" "$tmp/lib/$1" || die "copy of $2 failed"
    echo "lib/$1 $(readlink -f "$2")" >>"$tmp/.origins"
    queue+=("$2")
  }
  while [ $i -lt ${#queue[@]} ]; do
    while read -r name path; do
      [ -n "$name" ] || continue
      is_system_lib "$name" && continue
      [ "$path" = not-found ] && die "${queue[$i]} needs $name, which ldd does not find here"
      add_lib "$name" "$path"
      # libcudnn.so.N is a shim that dlopens its parts by need (ldd cannot see them).
      case "$name" in
        libcudnn.so.*)
          local part major=${name#libcudnn.so.}
          for part in ${SDROP_GPU_CHECK_CUDNN_PARTS:-graph ops}; do
            local f=${path%/*}/libcudnn_$part.so.$major
            [ -e "$f" ] || die "cuDNN part $f not found beside $path"
            add_lib "libcudnn_$part.so.$major" "$f"
          done ;;
      esac
    done < <(ldd_deps "${queue[$i]}")
    i=$((i + 1))
  done

  verify_bundle "$tmp" || die "the bundle does not load on its own (above); nothing written to $bundle"

  # The binaries (libsdrop's kernels for every ISA inside each) shrink about 3x with gzip, the
  # libraries hardly (cuDNN's ops: 40 -> 35 MB): only the binaries travel compressed; run
  # unpacks them (gzip is on every Linux). Without, the bundle takes 61 of the 64 MiB.
  local raw_test raw_bench
  raw_test=$(stat -c %s "$tmp/bin/sdrop_cuda_test")
  raw_bench=$(stat -c %s "$tmp/bin/sdrop_bench")
  gzip -9n "$tmp/bin/sdrop_cuda_test" "$tmp/bin/sdrop_bench" || die "gzip failed"
  sed -i "s|^bin/sdrop_cuda_test |bin/sdrop_cuda_test.gz ($raw_test unpacked) |; s|^bin/sdrop_bench |bin/sdrop_bench.gz ($raw_bench unpacked) |" "$tmp/.origins"

  # Sizes, against what the device tool carries: the bundle plus the working tree.
  local total tree
  total=$(find "$tmp" -type f ! -name .origins -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
  tree=$(cd "$root" && git ls-files -z --cached --others --exclude-standard 2>/dev/null |
         xargs -0 -r stat -c %s -- 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
  local commit
  commit=$(git -C "$(cache_value "$build" CMAKE_HOME_DIRECTORY)" rev-parse HEAD 2>/dev/null || echo unknown)
  if [ "$commit" != unknown ] && [ -n "$(git -C "$(cache_value "$build" CMAKE_HOME_DIRECTORY)" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit + uncommitted changes"
  fi
  {
    echo "sdrop gpu-check bundle (scripts/gpu-check.sh pack)"
    echo "created:   $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -srm)"
    echo "source:    $(cache_value "$build" CMAKE_HOME_DIRECTORY) at $commit"
    echo "build:     $build ($(cache_value "$build" CMAKE_BUILD_TYPE), $(cache_value "$build" CMAKE_CXX_COMPILER))"
    echo "bench:     sdrop_bench $bench_from $build"
    echo "cuda tests: ctest -L cuda lists $cuda_count tests, all runs of sdrop_cuda_test"
    echo "cuda_test_count=$cuda_count"
    echo "files (bytes, path, copied from):"
    local rel from
    while read -r rel from; do
      printf '  %10d  %-28s %s\n' "$(stat -c %s "$tmp/$rel")" "$rel" "$from"
    done <"$tmp/.origins"
    echo "total:     $total bytes ($(mib "$total")); working tree $tree bytes ($(mib "$tree")); together $(mib $((total + tree))) of the device tool's 64 MiB"
  } >"$tmp/MANIFEST"
  rm -f "$tmp/.origins"
  (cd "$tmp" && find bin lib MANIFEST -type f | sort | xargs sha256sum >SHA256SUMS) || die "sha256sum failed"
  if [ $((total + tree)) -gt $cap_bytes ]; then
    cat "$tmp/MANIFEST" >&2
    die "bundle ($(mib "$total")) + working tree ($(mib "$tree")) is over 64 MiB: not written"
  fi
  rm -rf "$bundle"
  mv "$tmp" "$bundle" || die "cannot move $tmp to $bundle"
  trap - EXIT
  cat "$bundle/MANIFEST"
  say "bundle written: $bundle ($(mib "$total")); run there: bash scripts/gpu-check.sh run OUT_DIR"
}

# The loader's view with nothing but the bundle: every non-system dependency of every file
# resolves inside it, and both binaries start (listing their tests; the bench asks the CUDA
# runtime for a device, so libcudart runs too). LD_DEBUG names each library initialised.
verify_bundle() {
  local b=$1 f name path bad=0 log
  log=$(mktemp -d) || return 1
  for f in "$b"/bin/* "$b"/lib/*; do
    while read -r name path; do
      is_system_lib "$name" && continue
      if [ "$path" != "$b/lib/$name" ]; then
        echo "  $f: $name resolves to $path, not the bundle" >&2
        bad=1
      fi
    done < <(env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH="$b/lib" bash -c "$(declare -f ldd_deps); ldd_deps '$f'")
  done
  env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH="$b/lib" LD_DEBUG=libs LD_DEBUG_OUTPUT="$log/test" \
    "$b/bin/sdrop_cuda_test" --gtest_list_tests >"$log/test.out" 2>&1 ||
    { echo "  sdrop_cuda_test --gtest_list_tests failed:" >&2; tail -n 5 "$log/test.out" >&2; bad=1; }
  env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH="$b/lib" LD_DEBUG=libs LD_DEBUG_OUTPUT="$log/bench" \
    "$b/bin/sdrop_bench" --benchmark_filter=^gpu/cuda/ --benchmark_list_tests >"$log/bench.out" 2>&1 ||
    { echo "  sdrop_bench --benchmark_list_tests failed:" >&2; tail -n 5 "$log/bench.out" >&2; bad=1; }
  while read -r path; do
    case "$path" in
      "$b"/lib/*) ;;
      *) is_system_lib "$path" || { echo "  a binary loaded $path from outside the bundle" >&2; bad=1; } ;;
    esac
  done < <(loaded_libs "$log"/test.* "$log"/bench.*)
  say "load check (env -i, LD_LIBRARY_PATH=bundle only): $(loaded_libs "$log"/test.* "$log"/bench.* | grep -c "^$b/lib/") bundled libraries loaded, $([ $bad = 0 ] && echo ok || echo FAILED)"
  rm -rf "$log"
  return $bad
}

# The libraries the loader initialised, from LD_DEBUG=libs output files, one path a line.
loaded_libs() {
  cat "$@" 2>/dev/null | sed -n 's/.*calling init: //p' | sort -u
}

# ---- run --------------------------------------------------------------------------------------

find_libcuda() {  # the path of the driver's libcuda.so.1, or nothing
  local p d
  p=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 /{ print $NF; exit }')
  [ -n "$p" ] && { echo "$p"; return; }
  local IFS=:
  for d in ${LD_LIBRARY_PATH:-} /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/nvidia/lib64 \
           /usr/local/nvidia/lib /usr/lib/wsl/lib; do
    [ -n "$d" ] && [ -e "$d/libcuda.so.1" ] && { echo "$d/libcuda.so.1"; return; }
  done
}

run() {
  [ $# -eq 1 ] || die "usage: $0 run OUT_DIR"
  local out=$1 start
  start=$(date +%s)
  mkdir -p "$out" || die "cannot create $out"
  out=$(cd "$out" && pwd)
  [ -f "$bundle/SHA256SUMS" ] ||
    die "no bundle at $bundle: run 'bash scripts/gpu-check.sh pack' where the build is, and bring gpu-check/ along (device tool: carry=[\"gpu-check\"])"
  (cd "$bundle" && sha256sum -c --quiet SHA256SUMS) >&2 || die "the bundle at $bundle fails its checksums (SHA256SUMS)"
  command -v gzip >/dev/null || die "gzip not found: it unpacks the bundled binaries"
  local work f n
  work=$(mktemp -d) || die "mktemp failed"
  # shellcheck disable=SC2064  # $work is a local: expanded now, on purpose
  trap "rm -rf '$work'" EXIT
  mkdir "$work/bin" || die "cannot write $work"
  for f in "$bundle"/bin/*.gz; do
    n=${f##*/}
    gzip -dc "$f" >"$work/bin/${n%.gz}" && chmod +x "$work/bin/${n%.gz}" || die "cannot unpack $f into $work/bin"
  done
  local env_txt=$out/env.txt summary=$out/summary.md
  # Containers often mount the driver's tools here without putting them on PATH.
  [ -x /usr/local/nvidia/bin/nvidia-smi ] && PATH=$PATH:/usr/local/nvidia/bin
  {
    echo "# sdrop gpu-check: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "host: $(uname -srm), $(nproc) CPUs, $(sed -n 's/^PRETTY_NAME=//p' /etc/os-release 2>/dev/null | tr -d '"')"
    echo "LD_LIBRARY_PATH (caller's): ${LD_LIBRARY_PATH:-}"
    echo; echo "## bundle"; cat "$bundle/MANIFEST"
    echo; echo "## nvidia-smi"; nvidia-smi 2>&1 || echo "(nvidia-smi failed or missing)"
  } >"$env_txt"

  # The GPU and its driver.
  local no_gpu="" gpus libcuda
  if ! command -v nvidia-smi >/dev/null; then
    no_gpu="nvidia-smi not found on PATH, nor in /usr/local/nvidia/bin (no NVIDIA driver installed)"
  elif ! gpus=$(nvidia-smi -L 2>&1) || ! echo "$gpus" | grep '^GPU ' >/dev/null; then
    no_gpu="nvidia-smi -L lists no GPU: $(echo "$gpus" | head -n 2 | tr '\n' ' ')"
  fi
  libcuda=$(find_libcuda)
  [ -n "$libcuda" ] || no_gpu="${no_gpu:+$no_gpu; }libcuda.so.1 (the driver's) not found by ldconfig -p nor in LD_LIBRARY_PATH or the usual folders"
  echo "nvidia-smi -L: ${gpus:-}" >>"$env_txt"
  echo "libcuda.so.1: ${libcuda:-not found}" >>"$env_txt"
  if [ -n "$no_gpu" ]; then
    if [ "${SDROP_GPU_CHECK_ALLOW_NO_GPU:-0}" != 1 ]; then
      printf '# sdrop GPU check: NOT RUN\n\nNo usable NVIDIA GPU: %s.\n\n' "$no_gpu" >"$summary"
      echo "gpu-check: NO GPU: $no_gpu" >&2
      echo "gpu-check: nothing was run (SDROP_GPU_CHECK_ALLOW_NO_GPU=1 runs the binaries anyway, to check that the bundle loads); see $out" >&2
      exit 3
    fi
    say "no GPU ($no_gpu): running anyway (SDROP_GPU_CHECK_ALLOW_NO_GPU=1); the device tests will skip"
  fi

  # The bundle first; then the caller's path and libcuda's folder, for the driver alone.
  local lp=$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  [ -n "$libcuda" ] && case ":$lp:" in *":${libcuda%/*}:"*) ;; *) lp=$lp:${libcuda%/*} ;; esac
  local missing=""
  echo >>"$env_txt"; echo "## ldd with LD_LIBRARY_PATH=$lp" >>"$env_txt"
  for f in "$work"/bin/*; do
    { echo "### ${f##*/}"; LD_LIBRARY_PATH=$lp ldd "$f" 2>&1; } >>"$env_txt"
    missing+=$(LD_LIBRARY_PATH=$lp ldd "$f" 2>&1 | grep -E 'not found' | sed "s|^|${f##*/}: |")
  done
  if [ -n "$missing" ]; then
    printf '# sdrop GPU check: NOT RUN\n\nThe bundled binaries cannot load here:\n\n```\n%s\n```\n' "$missing" >"$summary"
    die "the bundled binaries cannot load on this machine:"$'\n'"$missing"
  fi

  local total=${SDROP_GPU_CHECK_TOTAL_S:-450} tmp=$work
  # Line-buffered output, so a run stopped by timeout leaves its output behind.
  local lb=()
  command -v stdbuf >/dev/null && lb=(stdbuf -oL -eL)

  local t_test=${SDROP_GPU_CHECK_TEST_S:-240} test_rc t0 t1
  say "sdrop_cuda_test (timeout ${t_test} s) -> $out/cuda_test.log"
  t0=$(date +%s)
  timeout -k 10 "$t_test" env LD_LIBRARY_PATH="$lp" LD_DEBUG=libs LD_DEBUG_OUTPUT="$tmp/test" \
    ${lb[@]+"${lb[@]}"} "$work/bin/sdrop_cuda_test" --gtest_output="xml:$out/cuda_test.xml" \
    >"$out/cuda_test.log" 2>&1
  test_rc=$?
  t1=$(date +%s)
  local test_s=$((t1 - t0))

  local left=$((total - (t1 - start))) t_bench=${SDROP_GPU_CHECK_BENCH_S:-200} bench_rc=0 bench_s=0
  [ "$left" -lt "$t_bench" ] && t_bench=$left
  if [ "$t_bench" -lt 20 ]; then
    echo "benchmarks not run: ${left} s left of SDROP_GPU_CHECK_TOTAL_S=$total" >"$out/bench.log"
    bench_rc=124
  else
    say "sdrop_bench --benchmark_filter=^gpu/cuda/ (timeout ${t_bench} s) -> $out/bench.log"
    # shellcheck disable=SC2086  # the extra flags are words
    timeout -k 10 "$t_bench" env LD_LIBRARY_PATH="$lp" LD_DEBUG=libs LD_DEBUG_OUTPUT="$tmp/bench" \
      ${lb[@]+"${lb[@]}"} "$work/bin/sdrop_bench" --no_torch --benchmark_filter=^gpu/cuda/ \
      --benchmark_out="$out/bench.json" --benchmark_out_format=json \
      --reps=5 --min_time=0.05 --warmup=0.05 ${SDROP_GPU_CHECK_BENCH_ARGS:-} >"$out/bench.log" 2>&1
    bench_rc=$?
    bench_s=$(($(date +%s) - t1))
  fi

  # Where every library came from: the bundle, the system (glibc, C++ runtime, driver) or
  # elsewhere (which would mean the bundle is not what ran).
  {
    echo; echo "## libraries loaded (LD_DEBUG=libs: calling init)"
    local which
    for which in test bench; do
      echo "### $which"
      loaded_libs "$tmp/$which".* | while read -r f; do
        case "$f" in
          "$bundle"/lib/*) echo "  bundle  $f" ;;
          *) if is_system_lib "$f"; then echo "  system  $f"; else echo "  OUTSIDE $f"; fi ;;
        esac
      done
    done
  } >>"$env_txt"

  local status=0
  write_summary "$out" "$test_rc" "$test_s" "$t_test" "$bench_rc" "$bench_s" "$t_bench" "$no_gpu" || status=1
  echo "gpu-check: results in $out: summary.md, cuda_test.xml/.log, bench.json/.log, env.txt" >&2
  sed -n '1,12p' "$summary" >&2
  [ "$test_rc" = 0 ] && [ "$bench_rc" = 0 ] || status=1
  exit $status
}

# summary.md from the logs, the XML and the JSON; returns 1 when something is wrong that the
# exit codes alone do not show (a GPU that the binaries did not see, failed benchmark rows).
write_summary() {
  local out=$1 test_rc=$2 test_s=$3 t_test=$4 bench_rc=$5 bench_s=$6 t_bench=$7 no_gpu=$8
  local s=$out/summary.md bad=0 problems=""
  local xml=$out/cuda_test.xml log=$out/cuda_test.log json=$out/bench.json
  local tests="?" failures="?" errors="?" skipped="?" want
  if [ -f "$xml" ]; then
    tests=$(sed -n 's/.*<testsuites[^>]* tests="\([0-9]*\)".*/\1/p' "$xml" | head -n 1)
    failures=$(sed -n 's/.*<testsuites[^>]* failures="\([0-9]*\)".*/\1/p' "$xml" | head -n 1)
    errors=$(sed -n 's/.*<testsuites[^>]* errors="\([0-9]*\)".*/\1/p' "$xml" | head -n 1)
    skipped=$(grep -c 'result="skipped"' "$xml")
  fi
  want=$(sed -n 's/^cuda_test_count=//p' "$bundle/MANIFEST")
  # With a GPU the suite must have used it: the binary prints this line when it has a device.
  local saw_device
  saw_device=$(grep -E -m 1 '^\[ CUDA     \] [0-9]+ device' "$log" 2>/dev/null)
  if [ -z "$no_gpu" ] && [ -z "$saw_device" ]; then
    problems+="- nvidia-smi lists a GPU but sdrop_cuda_test found no usable CUDA device (its skip reasons are in cuda_test.log)."$'\n'
    bad=1
  fi
  [ "$tests" != "?" ] && [ -n "$want" ] && [ "$tests" != "$want" ] &&
    problems+="- the XML lists $tests tests, ctest -L cuda listed $want at pack time."$'\n'
  case $test_rc in
    0) ;;
    124 | 137) problems+="- sdrop_cuda_test timed out after ${t_test} s."$'\n' ;;
    *) problems+="- sdrop_cuda_test exited with status $test_rc."$'\n' ;;
  esac
  case $bench_rc in
    0) ;;
    124 | 137) problems+="- sdrop_bench timed out or was not run (limit ${t_bench} s; bench.log)."$'\n' ;;
    *) problems+="- sdrop_bench exited with status $bench_rc (bench.log)."$'\n' ;;
  esac

  {
    if [ -n "$no_gpu" ]; then
      echo "**No GPU** ($no_gpu). Run anyway (SDROP_GPU_CHECK_ALLOW_NO_GPU=1) to check that the bundle loads: the device tests skip and no CUDA benchmark is registered."
    else
      echo "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1)"
    fi
    echo
    echo "## Tests: sdrop_cuda_test (${test_s} s)"
    echo
    echo "$tests tests, $failures failed, $errors errors, $skipped skipped (exit status $test_rc). ${saw_device:+${saw_device#\[ CUDA     \] }}"
    if [ -f "$log" ]; then
      local failed
      failed=$(grep -E '^\[  FAILED  \] [A-Za-z]' "$log" | grep -v ' listed below' | sed 's/^\[  FAILED  \] /- /; s/ (.*//' | sort -u)
      [ -n "$failed" ] && { echo; echo "Failed:"; echo "$failed"; }
      # Skips by reason (gtest prints "<file>:<line>: Skipped", then the reason, then the name).
      local sk
      sk=$(awk '/: Skipped$/ { getline r; if (r == "" || r ~ /^\[/) r = "(no reason given)"; c[r]++ }
                END { for (r in c) printf "%d\t%s\n", c[r], r }' "$log" |
           sort -k1,1nr | awk -F '\t' '{ print "- " $1 " tests: " $2 }')
      [ -n "$sk" ] && { echo; echo "Skipped, by reason:"; echo "$sk"; }
    fi
    echo
    echo "## Benchmarks: sdrop_bench --benchmark_filter=^gpu/cuda/ (${bench_s} s)"
    echo
    if [ -s "$json" ]; then
      bench_table "$json"
    else
      echo "No bench.json. Last lines of bench.log:"; echo; echo '```'; tail -n 8 "$out/bench.log" 2>/dev/null; echo '```'
    fi
  } >"$s.body"
  # Failed benchmark rows, and a GPU run that registered no CUDA row, are failures too.
  if grep -q '^Failed benchmarks' "$s.body"; then
    problems+="- some benchmark rows failed (listed below)."$'\n'
    bad=1
  fi
  if [ -z "$no_gpu" ] && ! grep -q '^| `' "$s.body"; then
    problems+="- no CUDA benchmark row ran although nvidia-smi lists a GPU (bench.log says why)."$'\n'
    bad=1
  fi
  # Not failures of sdrop, but the figures or the proof are incomplete without them.
  local warnings="" dnn outside
  dnn=$(sed -n 's/.*"cudnn": "\(unavailable[^"]*\)".*/\1/p' "$json" 2>/dev/null | head -n 1)
  [ -n "$dnn" ] && warnings+="- cuDNN $dnn: no cuDNN ratios (SDROP_GPU_CHECK_CUDNN_PARTS at pack time bundles more of cuDNN's parts)."$'\n'
  outside=$(sed -n 's/^  OUTSIDE //p' "$out/env.txt" | sort -u | tr '\n' ' ')
  [ -n "$outside" ] && warnings+="- loaded from outside the bundle and the system: $outside(env.txt)."$'\n'
  {
    echo "# sdrop GPU check"
    echo
    if [ -n "$problems" ]; then
      echo "**FAILED**"; echo; printf '%s' "$problems"
    else
      echo "**PASSED**$([ -n "$no_gpu" ] && echo ' (load check only: no GPU)')"
    fi
    [ -n "$warnings" ] && { echo; echo "Warnings:"; echo; printf '%s' "$warnings"; }
    echo
    cat "$s.body"
  } >"$s"
  rm -f "$s.body"
  return $bad
}

# The CUDA rows of Google Benchmark's JSON as markdown. A small JSON scanner in POSIX awk (no
# Python needed there): context.<key> strings and the fields of each benchmarks[] object.
# Names lose Google Benchmark's own tokens (min_time:..., repeats:..., manual_time), as in
# bench/report.py. Medians of the repetitions; ratios t_reference / t_sdrop, so >= 1 means sdrop
# is faster; the references: memcpy D2D of the same width and size, cuDNN dropout of the same
# dtype, layout, size and p (out of place, multiplying), both from the same run.
bench_table() {
  awk '
    function emit(v) {
      if (depth == 2 && k[1] == "context") ctx[k[2]] = v
      else if (depth == 3 && k[1] == "benchmarks") rec[k[3]] = v
    }
    function us(t, unit) {
      return unit == "ns" ? t / 1000 : unit == "ms" ? t * 1000 : unit == "s" ? t * 1e6 : t
    }
    function ratio(a, b) { return (a > 0 && b > 0) ? sprintf("%.2f", a / b) : "-" }
    function record(   name, parts, cnt, j, n) {
      name = ("run_name" in rec) ? rec["run_name"] : rec["name"]
      cnt = split(name, parts, "/"); n = ""
      for (j = 1; j <= cnt; j++)
        if (parts[j] !~ /:/ && parts[j] != "real_time" && parts[j] != "manual_time")
          n = (n == "" ? parts[j] : n "/" parts[j])
      if (n !~ /^gpu\/cuda\//) return
      if (rec["error_occurred"] == "true") {
        if (!(n in errseen)) { errseen[n] = 1; err[++nerr] = n ": " rec["error_message"] }
        return
      }
      if (rec["run_type"] == "aggregate" && rec["aggregate_name"] != "median") return
      if (rec["run_type"] != "aggregate" && (n in median)) return
      if (rec["run_type"] == "aggregate") median[n] = 1
      t[n] = us(rec["real_time"], rec["time_unit"]); gbs[n] = rec["bytes_per_second"] / 1e9
      if (n ~ /^gpu\/cuda\/sdrop\// && !(n in seen)) { seen[n] = 1; order[++nrows] = n }
    }
    { buf = buf $0 "\n" }
    END {
      L = length(buf); depth = 0; i = 1; want_key = 0
      while (i <= L) {
        ch = substr(buf, i, 1)
        if (ch == "\"") {
          s = ""; i++
          while (i <= L) {
            ch = substr(buf, i, 1)
            if (ch == "\\") { s = s substr(buf, i + 1, 1); i += 2; continue }
            if (ch == "\"") break
            s = s ch; i++
          }
          i++
          if (cont[depth] == "{" && want_key) { k[depth] = s; want_key = 0 } else emit(s)
        } else if (ch == "{" || ch == "[") {
          depth++; cont[depth] = ch; k[depth] = ""; want_key = (ch == "{")
          if (depth == 3 && k[1] == "benchmarks") split("", rec)
          i++
        } else if (ch == "}" || ch == "]") {
          if (depth == 3 && k[1] == "benchmarks" && ch == "}") record()
          depth--; i++
        } else if (ch == ",") {
          want_key = (cont[depth] == "{"); i++
        } else if (ch == ":" || ch == " " || ch == "\t" || ch == "\n" || ch == "\r") {
          i++
        } else {
          s = ""
          while (i <= L && substr(buf, i, 1) !~ /[],} \t\n\r]/) { s = s substr(buf, i, 1); i++ }
          emit(s)
        }
      }
      print "Device: " (("cuda" in ctx) ? ctx["cuda"] : "?") "; CUDA runtime " ctx["cuda_runtime"] \
            ", driver " ctx["cuda_driver"] ", cuDNN " ctx["cudnn"] "; sdrop " ctx["sdrop_version"] \
            "; medians of " ctx["bench_repetitions"] " repetitions x " ctx["bench_min_time_s"] " s."
      if ("cudnn_skipped" in ctx) print "\ncuDNN dropout left out: " ctx["cudnn_skipped"] "."
      if (!nrows) print "\nNo CUDA row ran."
      else {
        print "\nRatios are t_reference / t_sdrop (>= 1: sdrop is faster). Bytes: 2 x numel x sizeof."
        print "\n| case | time (us) | GB/s | memcpy D2D GB/s | vs memcpy D2D | cuDNN GB/s | vs cuDNN |"
        print "|---|---|---|---|---|---|---|"
        for (i = 1; i <= nrows; i++) {
          n = order[i]; split(n, p, "/")   # gpu cuda sdrop fwd dtype layout size pP mode place
          w = (p[5] == "f16" || p[5] == "bf16") ? "16bit" : p[5]
          m = "gpu/cuda/ref/memcpy_d2d/" w "/" p[7]
          d = "gpu/cuda/cudnn/fwd/" p[5] "/" p[6] "/" p[7] "/" p[8] "/mul/oop"
          printf "| `%s/%s/%s/%s/%s/%s` | %.1f | %.0f | %s | %s | %s | %s |\n", p[5], p[6], p[7], \
                 p[8], p[9], p[10], t[n], gbs[n], (m in t) ? sprintf("%.0f", gbs[m]) : "-", \
                 ratio(t[m], t[n]), (d in t) ? sprintf("%.0f", gbs[d]) : "-", ratio(t[d], t[n])
        }
      }
      if (nerr) {
        print "\nFailed benchmarks (" nerr "):\n"
        for (i = 1; i <= nerr; i++) print "- " err[i]
      }
    }' "$1"
}

case "${1:-}" in
  pack) shift; [ $# -le 1 ] || die "usage: $0 pack [BUILD_DIR]"; pack "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: bash scripts/gpu-check.sh pack [BUILD_DIR] | run OUT_DIR (see the comment at its top)" >&2; exit 2 ;;
esac
