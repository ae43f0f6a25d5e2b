// The last proof before a kernel runs: every buffer of the call fits the kernels' 32-bit
// Halide indexing and lies inside its tensor's validated footprint, and every mask index is
// in range. The planner is built to guarantee this; the runners check it anyway, so that no
// planner bug can turn into a write outside a tensor.
#pragma once

#include <cstdint>

#include "error.h"
#include "plan.h"
#include "tensor.h"

namespace sdrop {

// The buffer of tensor t at element offset `offset` with the call's extents and the plan's
// strides (picked by `stride`).
inline bool buffer_fits(const Tensor& t, int64_t offset, const Call& c, const Plan& p,
                        int64_t Axis::*stride) {
  constexpr int64_t kMax32 = INT32_MAX;
  __int128 lo = offset, hi = offset, span = 0;
  for (int d = 0; d < 3; d++) {
    const int64_t e = c.extent[d], s = p.inner[d].*stride;
    if (e < 1 || e > kMax32 || s < -kMax32 || s > kMax32) return false;
    const __int128 reach = __int128(e - 1) * s;
    (reach < 0 ? lo : hi) += reach;
    span += reach < 0 ? -reach : reach;
  }
  return span <= kMax32 && lo * t.itemsize >= t.lo && (hi + 1) * t.itemsize <= t.hi;
}

// Mask indices m0 + sum(i_d * ms_d) stay in [0, 2^62).
inline bool mask_indices_fit(const Call& c, const Plan& p) {
  __int128 lo = c.m0, hi = c.m0;
  for (int d = 0; d < 3; d++) {
    const __int128 reach = __int128(c.extent[d] - 1) * p.inner[d].ms;
    (reach < 0 ? lo : hi) += reach;
  }
  return lo >= 0 && hi < (__int128(1) << 62);
}

// The epilogue's channel indices k0 + sum(i_d * ks_d) stay in [0, channels).
inline bool channels_fit(const Call& c, const Plan& p, int64_t channels) {
  __int128 lo = c.k0, hi = c.k0;
  for (int d = 0; d < 3; d++) {
    const __int128 reach = __int128(c.extent[d] - 1) * p.inner[d].ks;
    (reach < 0 ? lo : hi) += reach;
  }
  return lo >= 0 && hi < channels;
}

// What a runner returns when a check above fails: nothing has run.
inline sdrop_status unfit_call() {
  return fail(SDROP_ERROR_INTERNAL,
              "refused a kernel call that would reach outside its tensor or past 32-bit "
              "indexing (a bug in sdrop's planner; nothing was written)");
}

}  // namespace sdrop
