#include "bias_grad.h"

#include <cstdlib>
#include <cstring>

#include "common/dropout_constants.h"
#include "error.h"

namespace sdrop {
namespace {

using detail::f32_bits;

// float32 -> bfloat16 bits, to nearest even, a NaN kept a quiet NaN.
uint16_t to_bf16(float v) {
  const uint32_t u = f32_bits(v);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x40u);
  return uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// float32 -> float16 bits, to nearest even, subnormals kept, overflow to Inf, NaN quiet.
uint16_t to_f16(float v) {
  const uint32_t u = f32_bits(v);
  const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return uint16_t(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
  if (a >= 0x477FF000u) return uint16_t(sign | 0x7C00u);
  if (a >= 0x38800000u) {
    const uint32_t r = a - 0x38000000u;
    return uint16_t(sign | ((r + 0xFFFu + ((r >> 13) & 1u)) >> 13));
  }
  const int e = int(a >> 23);
  const uint32_t shift = uint32_t(126 - e < 14 ? 14 : (126 - e > 25 ? 25 : 126 - e));
  const uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
  const uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  const bool up = rem > half || (rem == half && (q & 1u));
  return uint16_t(sign | (q + (up ? 1u : 0u)));
}

// Rows of call c in the channel_sum kernel's output: (d1, d2) for rows, (d0, d2) else.
void rows_of(const Call& c, Shape shape, int64_t* n0, int64_t* n1) {
  *n0 = shape == Shape::rows ? c.extent[1] : c.extent[0];
  *n1 = c.extent[2];
}

}  // namespace

BiasGrad::~BiasGrad() {
  std::free(rows_);
  std::free(sums_);
}

sdrop_status BiasGrad::reserve(const Plan& plan, DType dtype, int64_t channels) {
  f64_ = dtype == DType::f64;
  channels_ = channels;
  int64_t most = 1;
  for_each_call(plan, [&](const Call& c) {
    int64_t n0, n1;
    rows_of(c, plan.shape, &n0, &n1);
    if (n0 * n1 > most) most = n0 * n1;
    return 0;
  });
  most_rows_ = most;
  const size_t item = f64_ ? sizeof(double) : sizeof(float);
  rows_ = std::malloc(size_t(most) * item);
  sums_ = std::calloc(size_t(channels > 0 ? channels : 1), item);  // all bits 0: +0.0
  if (!rows_ || !sums_) {
    return fail(SDROP_ERROR_OUT_OF_MEMORY,
                "cannot allocate %lld bytes of scratch for the bias gradient's sums",
                static_cast<long long>((most + channels) * int64_t(item)));
  }
  return SDROP_OK;
}

halide_buffer_t* BiasGrad::rows_buffer(const Call& c, Shape shape) {
  int64_t n0, n1;
  rows_of(c, shape, &n0, &n1);
  dim_[0] = halide_dimension_t(0, int32_t(n0), 1);
  dim_[1] = halide_dimension_t(0, int32_t(n1), int32_t(n0));
  b_ = halide_buffer_t{};
  b_.host = static_cast<uint8_t*>(rows_);
  b_.type = halide_type_t(halide_type_float, f64_ ? 64 : 32);
  b_.dimensions = 2;
  b_.dim = dim_;
  return &b_;
}

void BiasGrad::add(const Call& c, const Plan& plan) {
  int64_t n0, n1;
  rows_of(c, plan.shape, &n0, &n1);
  // The channel of row (i, j): k0 + i * (ks of the summed-over-not dim) + j * ks of d2.
  const int64_t step0 = plan.shape == Shape::rows ? plan.inner[1].ks : plan.inner[0].ks;
  const int64_t step1 = plan.inner[2].ks;
  for (int64_t j = 0; j < n1; j++) {
    for (int64_t i = 0; i < n0; i++) {
      const int64_t ch = c.k0 + i * step0 + j * step1;
      if (f64_) {
        static_cast<double*>(sums_)[ch] += static_cast<const double*>(rows_)[j * n0 + i];
      } else {
        static_cast<float*>(sums_)[ch] += static_cast<const float*>(rows_)[j * n0 + i];
      }
    }
  }
}

void BiasGrad::store(const Tensor& dbias, DType dtype) const {
  store_at(reinterpret_cast<uint8_t*>(uintptr_t(dbias.base)), dbias.strides[0], dbias.itemsize,
           dtype);
}

void BiasGrad::store_at(uint8_t* base, int64_t stride, int itemsize, DType dtype) const {
  for (int64_t ch = 0; ch < channels_; ch++) {
    uint8_t* at = base + ch * stride * itemsize;
    if (f64_) {
      std::memcpy(at, static_cast<const double*>(sums_) + ch, sizeof(double));
      continue;
    }
    const float v = static_cast<const float*>(sums_)[ch];
    if (dtype == DType::f32) {
      std::memcpy(at, &v, sizeof v);
    } else {
      const uint16_t h = dtype == DType::bf16 ? to_bf16(v) : to_f16(v);
      std::memcpy(at, &h, sizeof h);
    }
  }
}

void store_zero_bias_grad(const Tensor& dbias) {
  uint8_t* base = reinterpret_cast<uint8_t*>(uintptr_t(dbias.base));
  for (int64_t ch = 0; ch < dbias.shape[0]; ch++) {
    std::memset(base + ch * dbias.strides[0] * dbias.itemsize, 0, size_t(dbias.itemsize));
  }
}

}  // namespace sdrop
