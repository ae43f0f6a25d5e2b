// A plain scalar reference for sdrop, written from the contract's semantics and RNG rules
// (docs/semantics.md, docs/rng.md) and nothing else.
//
// Everything here is deliberately naive: one element at a time, integer bit manipulation for the
// 16-bit float formats, no vectorization, no tricks. It is the oracle the tests compare the
// library with, bit for bit, so it is itself checked in reference_test.cc (Philox known answers,
// conversions against known bit patterns, an independent by-definition rounding oracle and,
// where the compiler has _Float16, every one of the 65536 float16 values).
#ifndef SDROP_TESTS_REFERENCE_SDROP_REFERENCE_H_
#define SDROP_TESTS_REFERENCE_SDROP_REFERENCE_H_

#include <array>
#include <cfenv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <dlpack/dlpack.h>
#include <sdrop/sdrop.h>

#include "common/kernel_kinds.h"

namespace sdrop_ref {

// ---- Philox4x32-10 (docs/rng.md#philox4x32-10) -------------------------------------------------
constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

using Counter = std::array<uint32_t, 4>;
using Key = std::array<uint32_t, 2>;

// One Philox round as written in docs/rng.md (without the key bump). Inline: the >2^31
// element test draws half a billion blocks.
inline Counter PhiloxRound(const Counter& c, const Key& k) {
  const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c[0];  // (hi0, lo0)
  const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c[2];  // (hi1, lo1)
  const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
  const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
  return Counter{hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
}

// Ten rounds, bumping the key after each.
inline Counter Philox4x32_10(Counter c, Key k) {
  for (int round = 0; round < 10; ++round) {
    c = PhiloxRound(c, k);
    k[0] += kPhiloxW0;
    k[1] += kPhiloxW1;
  }
  return c;
}

// Draws of a whole block (4 consecutive mask indices 4b .. 4b+3): key (seed lo, seed hi),
// counter (b lo, b hi, offset lo, offset hi).
inline Counter DrawBlock(uint64_t seed, uint64_t offset, uint64_t block) {
  const Key key{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  const Counter ctr{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                    static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32)};
  return Philox4x32_10(ctr, key);
}

// The draw u for mask index m: block b = m >> 2, lane m & 3.
inline uint32_t Draw(uint64_t seed, uint64_t offset, uint64_t m) {
  return DrawBlock(seed, offset, m >> 2)[m & 3];
}

// T = nearbyint((1 - p) * 2^32) in double, round half to even, as an integer in [0, 2^32].
// Computed in the default floating-point environment whatever the caller's.
uint64_t Threshold(double p);
inline bool Keep(uint32_t u, uint64_t threshold) { return static_cast<uint64_t>(u) < threshold; }
bool Keep(uint64_t seed, uint64_t offset, uint64_t m, double p);

// ---- Values (docs/rng.md#values-and-scaling) ---------------------------------------------------
// s = 1.0f / (float)(1.0 - p) for float32/float16/bfloat16; s = 1.0 / (1.0 - p) for float64.
float ScaleF32(double p);
double ScaleF64(double p);

// Bit-exact conversions (round to nearest even; denormals, Inf kept; NaN -> NaN).
float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);
float BF16ToF32(uint16_t h);
uint16_t F32ToBF16(float f);

float BitsToF32(uint32_t b);
uint32_t F32ToBits(float f);
double BitsToF64(uint64_t b);
uint64_t F64ToBits(double d);

using sdrop::DType;  // common/kernel_kinds.h (u8 is the mask's, never a value type here)
// The four element types of docs/semantics.md#values (lanes must be 1); false for anything else.
bool DTypeFromDL(DLDataType dt, DType* out);
DLDataType DTypeToDL(DType t);
size_t DTypeSize(DType t);
const char* DTypeName(DType t);
bool IsNaN(DType t, uint64_t bits);

// One element (raw bits in the low bytes of a uint64): kept -> x * s, dropped -> +0.0 or, with
// SDROP_FLAG_MULTIPLY, x * 0. Assume the default floating-point environment.
uint64_t KeptValue(DType t, uint64_t x_bits, double p);
uint64_t DroppedValue(DType t, uint64_t x_bits, uint32_t flags);

// ---- Strided DLTensor helpers -------------------------------------------------------------------
int64_t Numel(const DLTensor& t);  // product of extents (1 for rank 0)
std::vector<int64_t> CompactStrides(const std::vector<int64_t>& shape);
std::vector<int64_t> Shape(const DLTensor& t);
std::vector<int64_t> Strides(const DLTensor& t);  // explicit strides, compact when NULL
// Address of the element at multi-index idx: data + byte_offset + sum(idx * stride) * size.
unsigned char* ElementAddress(const DLTensor& t, const int64_t* idx);
uint64_t LoadBits(const void* p, size_t size);
void StoreBits(void* p, size_t size, uint64_t bits);

// Calls f(idx) for every multi-index of shape in row-major order (nothing for an empty shape;
// once with an empty index for rank 0).
template <class F>
void ForEachIndex(const std::vector<int64_t>& shape, F&& f) {
  for (int64_t e : shape)
    if (e <= 0) return;
  std::vector<int64_t> idx(shape.size(), 0);
  for (;;) {
    f(static_cast<const int64_t*>(idx.data()));
    int i = static_cast<int>(shape.size()) - 1;
    for (; i >= 0; --i) {
      if (++idx[i] < shape[i]) break;
      idx[i] = 0;
    }
    if (i < 0) return;
  }
}

// Noise shape: ns[i] = shape[i] for i in mask_axes, else 1.
std::vector<int64_t> NoiseShape(const std::vector<int64_t>& shape, uint32_t mask_axes);
// Row-major linear index, in the noise shape, of idx projected on the mask axes.
uint64_t MaskIndex(const std::vector<int64_t>& shape, uint32_t mask_axes, const int64_t* idx);
// Keep bits (0/1) for every mask index 0 .. count-1.
std::vector<uint8_t> KeepBits(uint64_t seed, uint64_t offset, double p, uint64_t count);

// ---- Whole operations over strided CPU DLTensors -------------------------------------------------
// They write y exactly where the library should and nothing else. x (and mask) must not share
// memory with y: for an in-place reference pass a copy of the input. Preconditions (valid
// arguments) are asserted by the caller; these functions do not validate like the library does.
void Forward(const sdrop_params& params, const DLTensor& x, const DLTensor& y);
void ApplyMask(const sdrop_params& params, const DLTensor& x, const DLTensor& mask,
               const DLTensor& y);
void Mask(const sdrop_params& params, const DLTensor& mask);

// docs/semantics.md#shards: the tensor is the shard of a logical tensor starting at `origin`,
// whose extents are `logical`; mask indices are the logical tensor's.
struct Shard {
  std::vector<int64_t> origin, logical;
};
uint64_t ShardMaskIndex(const Shard& shard, uint32_t mask_axes, const int64_t* idx);
void ForwardShard(const sdrop_params& params, const Shard& shard, const DLTensor& x,
                  const DLTensor& y);
void MaskShard(const sdrop_params& params, const Shard& shard, const DLTensor& mask);

// Installs the default floating-point environment (round to nearest, no flush-to-zero,
// no denormals-are-zero) and restores the previous one on destruction.
class ScopedDefaultFpEnv {
 public:
  ScopedDefaultFpEnv();
  ~ScopedDefaultFpEnv();
  ScopedDefaultFpEnv(const ScopedDefaultFpEnv&) = delete;
  ScopedDefaultFpEnv& operator=(const ScopedDefaultFpEnv&) = delete;

 private:
  std::fenv_t saved_;
  unsigned saved_mxcsr_ = 0;
};

std::string HexBits(DType t, uint64_t bits);

}  // namespace sdrop_ref

#endif  // SDROP_TESTS_REFERENCE_SDROP_REFERENCE_H_
