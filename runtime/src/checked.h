// Arithmetic on extents, strides and byte offsets that cannot overflow (docs/refusals.md:
// "hostile descriptors"). Every quantity a caller controls is an int64 or uint64 that may be
// anything, INT64_MIN included; these helpers either give the exact result or say it does not
// fit, and never invoke undefined behaviour.
#pragma once

#include <cstdint>

namespace sdrop {

// |v| as an unsigned number: exact for INT64_MIN (2^63), where -v would overflow.
inline uint64_t magnitude(int64_t v) { return v < 0 ? 0 - static_cast<uint64_t>(v) : uint64_t(v); }

// a * b (both >= 0) if it is at most `limit`.
inline bool mul_within(uint64_t a, uint64_t b, uint64_t limit, uint64_t* out) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r) || r > limit) return false;
  *out = r;
  return true;
}

// a + b if it is at most `limit`.
inline bool add_within(uint64_t a, uint64_t b, uint64_t limit, uint64_t* out) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r) || r > limit) return false;
  *out = r;
  return true;
}

// Largest number of elements a tensor may have, and largest byte footprint (lowest byte to one
// past the highest) a tensor may span. Both far beyond any real address space (x86-64 user
// space is 2^47 or 2^56 bytes), and low enough that sums and products of a few of them, and
// of them with an element size, stay exact in 64 bits and in the overlap solver's 128 bits.
constexpr uint64_t kMaxElements = uint64_t(1) << 62;
constexpr uint64_t kMaxFootprint = uint64_t(1) << 60;
// The top of x86-64 user space with 5-level paging: no CPU or CUDA (UVA) tensor's byte can
// lie at or above it, so a descriptor that reaches there is refused rather than followed.
constexpr uint64_t kMaxUserAddress = uint64_t(1) << 56;

}  // namespace sdrop
