#include "params.h"

#include <cstring>

#include "common/dropout_constants.h"
#include "error.h"

namespace sdrop {
namespace {

constexpr uint32_t kKnownFlags = SDROP_FLAG_MULTIPLY | SDROP_FLAG_SCALE_IN_DTYPE;

uint64_t bits_of(double v) {
  uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

// p in [0, 1] on the bits: +0.0 .. 1.0 are the patterns 0 .. 0x3FF0000000000000 in order,
// and -0.0 (which compares equal to 0) is 0x8000000000000000. NaN, negatives and > 1 are not.
bool p_in_unit_interval(double p) {
  const uint64_t b = bits_of(p);
  return b <= 0x3FF0000000000000ull || b == 0x8000000000000000ull;
}

}  // namespace

sdrop_status check_params(const sdrop_params* params, bool check_flags) {
  if (!params) return fail(SDROP_ERROR_INVALID_ARGUMENT, "params must not be NULL");
  if (!p_in_unit_interval(params->p)) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "p must be in [0, 1], got %.17g", params->p);
  }
  if (check_flags && (params->flags & ~kKnownFlags)) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "flags has unknown bits: 0x%x (known: SDROP_FLAG_MULTIPLY = 0x1, "
                "SDROP_FLAG_SCALE_IN_DTYPE = 0x2)",
                unsigned(params->flags & ~kKnownFlags));
  }
  return SDROP_OK;
}

KernelArgs kernel_args(const sdrop_params& params, DType dtype) {
  const DropoutConstants c =
      dropout_constants(params.p, dtype, (params.flags & SDROP_FLAG_SCALE_IN_DTYPE) != 0);
  KernelArgs a;
  a.threshold = c.threshold;
  a.keep_all = c.keep_all;
  a.keep_none = c.keep_none;
  a.seed = params.seed;
  a.offset = params.offset;
  a.multiply = (params.flags & SDROP_FLAG_MULTIPLY) != 0;
  a.scale_f32 = c.scale_f32;
  a.scale_f64 = c.scale_f64;
  return a;
}

}  // namespace sdrop
