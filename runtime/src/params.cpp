#include "params.h"

#include <cstring>

#include "error.h"

namespace sdrop {
namespace {

constexpr uint32_t kKnownFlags = SDROP_FLAG_MULTIPLY | SDROP_FLAG_SCALE_IN_DTYPE;

uint64_t bits_of(double v) {
  uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}
uint32_t bits_of(float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}
float float_of(uint32_t b) {
  float v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

// p in [0, 1] on the bits: +0.0 .. 1.0 are the patterns 0 .. 0x3FF0000000000000 in order,
// and -0.0 (which compares equal to 0) is 0x8000000000000000. NaN, negatives and > 1 are not.
bool p_in_unit_interval(double p) {
  const uint64_t b = bits_of(p);
  return b <= 0x3FF0000000000000ull || b == 0x8000000000000000ull;
}

// nearbyint for 0 <= v <= 2^32 under round-to-nearest-even (set by FpEnvGuard), without
// libm: adding 2^52 leaves no fraction bits, so the addition itself rounds.
double round_half_even(double v) {
  volatile double big = 4503599627370496.0;  // 2^52; volatile: keep (v + big) - big
  return (v + big) - big;
}

// float32 -> bfloat16 / float16 -> float32, round to nearest even, for the finite s >= 1 or
// +Inf of SDROP_FLAG_SCALE_IN_DTYPE (an s above float16's range becomes +Inf, as PyTorch's
// float16 noise tensor does).
float round_to_bf16(float s) {
  const uint32_t u = bits_of(s);
  return float_of(((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16) << 16);
}
float round_to_f16(float s) {
  const uint32_t a = bits_of(s) & 0x7FFFFFFFu;
  if (a >= 0x477FF000u) return float_of(0x7F800000u);  // rounds to Inf
  const uint32_t r = a - 0x38000000u;                  // rebias 127 -> 15 (s >= 1: normal)
  const uint32_t h = (r + 0xFFFu + ((r >> 13) & 1u)) >> 13;
  const uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  return float_of(((e + 112u) << 23) | (m << 13));
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
  KernelArgs a;
  const double keep = 1.0 - params.p;
  const double t = round_half_even(keep * 4294967296.0);
  a.keep_all = t >= 4294967296.0;
  a.threshold = a.keep_all ? 0u : uint32_t(t);
  a.keep_none = bits_of(params.p) == bits_of(1.0);
  a.seed = params.seed;
  a.offset = params.offset;
  a.multiply = (params.flags & SDROP_FLAG_MULTIPLY) != 0;
  a.scale_f32 = 1.0f / static_cast<float>(keep);
  a.scale_f64 = 1.0 / keep;
  if (params.flags & SDROP_FLAG_SCALE_IN_DTYPE) {
    if (dtype == DType::f16) a.scale_f32 = round_to_f16(a.scale_f32);
    if (dtype == DType::bf16) a.scale_f32 = round_to_bf16(a.scale_f32);
  }
  return a;
}

}  // namespace sdrop
