// The per-call constants of the dropout arithmetic (docs/rng.md#values-and-scaling), from p:
// the keep threshold of the 32-bit draw and the scale s = 1 / (1 - p). One definition for the
// runtime (every sdrop call) and for Halide pipelines that use the algorithm themselves
// (sdrop/halide.h), so that their masks and values are sdrop's bit for bit.
//
// Header-only and free of libm. Call it under the default floating-point environment (round to
// nearest even): the threshold's rounding is an addition. p must be in [0, 1].
#pragma once

#include <cstdint>
#include <cstring>

#include "kernel_kinds.h"

namespace sdrop {

struct DropoutConstants {
  uint32_t threshold;  // keep iff the draw u < threshold, unless keep_all
  bool keep_all;       // threshold 2^32 (p = 0, or 1 - p rounds to 1): every index is kept
  bool keep_none;      // p = 1: nothing is kept, whatever a caller's mask says
  float scale_f32;     // s for float32, and float16/bfloat16 (their own rounding if asked)
  double scale_f64;    // s for float64
};

namespace detail {
inline uint32_t f32_bits(float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}
inline float f32_of(uint32_t b) {
  float v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}
// nearbyint for 0 <= v <= 2^32 under round-to-nearest-even: adding 2^52 leaves no fraction
// bits, so the addition itself rounds (volatile keeps (v + big) - big from being folded).
inline double round_half_even(double v) {
  volatile double big = 4503599627370496.0;  // 2^52
  return (v + big) - big;
}
// float32 -> bfloat16 / float16 -> float32, to nearest even, for the s >= 1 (or +Inf) of
// PyTorch's rounding; an s above float16's range becomes +Inf, as torch's float16 noise does.
inline float round_to_bf16(float s) {
  const uint32_t u = f32_bits(s);
  return f32_of(((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16) << 16);
}
inline float round_to_f16(float s) {
  const uint32_t a = f32_bits(s) & 0x7FFFFFFFu;
  if (a >= 0x477FF000u) return f32_of(0x7F800000u);  // rounds to Inf
  const uint32_t r = a - 0x38000000u;                 // rebias 127 -> 15 (s >= 1: normal)
  const uint32_t h = (r + 0xFFFu + ((r >> 13) & 1u)) >> 13;
  const uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  return f32_of(((e + 112u) << 23) | (m << 13));
}
}  // namespace detail

// scale_in_dtype: s rounded to float16/bfloat16 first, as PyTorch computes it in the dtype
// (SDROP_FLAG_SCALE_IN_DTYPE); no effect on float32/float64.
inline DropoutConstants dropout_constants(double p, DType dtype, bool scale_in_dtype) {
  DropoutConstants c;
  const double keep = 1.0 - p;
  const double t = detail::round_half_even(keep * 4294967296.0);
  c.keep_all = t >= 4294967296.0;
  c.threshold = c.keep_all ? 0u : uint32_t(t);
  uint64_t pb;
  std::memcpy(&pb, &p, sizeof pb);
  c.keep_none = pb == 0x3FF0000000000000ull;  // p = 1, on the bits (no comparison flags)
  c.scale_f32 = 1.0f / static_cast<float>(keep);
  c.scale_f64 = 1.0 / keep;
  if (scale_in_dtype) {
    if (dtype == DType::f16) c.scale_f32 = detail::round_to_f16(c.scale_f32);
    if (dtype == DType::bf16) c.scale_f32 = detail::round_to_bf16(c.scale_f32);
  }
  return c;
}

}  // namespace sdrop
