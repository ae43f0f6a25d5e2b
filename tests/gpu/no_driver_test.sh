#!/usr/bin/env bash
# libsdrop.so needs no GPU driver to load or to run on the CPU (sdrop.h, "GPU backends"):
#   1. neither libcuda, libcudart nor libOpenCL is a link-time dependency, direct (readelf
#      NEEDED) or indirect (ldd);
#   2. a CPU-only program linked to it (no_driver_probe.c) runs, gets the right values, and never
#      has a driver library mapped; where the machine has no libcuda, a kDLCUDA call fails
#      cleanly with SDROP_ERROR_BACKEND_UNAVAILABLE.
# LD_LIBRARY_PATH is left as the caller has it.
#   usage: no_driver_test.sh path/to/libsdrop.so path/to/sdrop_no_driver_probe
set -euo pipefail
lib=${1:?libsdrop.so}
probe=${2:?probe program}
status=0
drivers='libcuda\.so|libcudart|libOpenCL\.so|libnvrtc|libnvidia'

echo "== readelf -d $lib (NEEDED)"
needed=$(readelf -d "$lib" | awk '/\(NEEDED\)/ {print $NF}')
echo "$needed"
if grep -Eq "$drivers" <<<"$needed"; then
  echo "FAIL: libsdrop.so has a GPU driver library among its NEEDED entries" >&2
  status=1
fi

echo "== ldd $lib"
deps=$(ldd "$lib")
echo "$deps"
if grep -Eq "$drivers" <<<"$deps"; then
  echo "FAIL: loading libsdrop.so loads a GPU driver library" >&2
  status=1
fi
if grep -q 'not found' <<<"$deps"; then
  echo "FAIL: libsdrop.so has unresolved dependencies" >&2
  status=1
fi

echo "== ldd $probe"
pdeps=$(ldd "$probe")
echo "$pdeps"
if grep -Eq "$drivers" <<<"$pdeps"; then
  echo "FAIL: the probe itself links a GPU driver library" >&2
  status=1
fi
if ! grep -q 'libsdrop\.so' <<<"$pdeps"; then
  echo "FAIL: the probe does not use the shared libsdrop.so" >&2
  status=1
fi

if ldconfig -p 2>/dev/null | grep -q 'libcuda\.so'; then
  echo "== this machine has libcuda (the probe checks that CPU calls never map it)"
else
  echo "== no libcuda on this machine: the probe runs where the driver is absent"
fi

echo "== $probe"
if ! "$probe"; then
  echo "FAIL: the CPU-only probe failed" >&2
  status=1
fi
exit $status
