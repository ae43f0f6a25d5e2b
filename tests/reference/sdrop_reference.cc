// Scalar reference for sdrop (see sdrop_reference.h). Written from the contract only
// (SPEC.md; in the repository docs/semantics.md and docs/rng.md).
#include "reference/sdrop_reference.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <xmmintrin.h>
#define SDROP_REF_HAVE_MXCSR 1
#endif

namespace sdrop_ref {

// ---- Philox --------------------------------------------------------------------------------------

uint64_t Threshold(double p) {
  ScopedDefaultFpEnv env;
  volatile double one_minus_p = 1.0 - p;                 // in double
  volatile double scaled = one_minus_p * 4294967296.0;   // exact: times 2^32
  const double t = std::nearbyint(scaled);               // round half to even (default mode)
  // Cross-check the rounding by hand: floor, then half-to-even.
  const double f = std::floor(scaled);
  const double frac = scaled - f;  // exact
  double r = f;
  if (frac > 0.5 || (frac == 0.5 && std::fmod(f, 2.0) == 1.0)) r = f + 1.0;
  if (r != t) std::abort();  // the environment is not what we installed: a reference bug
  return static_cast<uint64_t>(t);
}

bool Keep(uint64_t seed, uint64_t offset, uint64_t m, double p) {
  return Keep(Draw(seed, offset, m), Threshold(p));
}

// ---- Values --------------------------------------------------------------------------------------

float ScaleF32(double p) {
  ScopedDefaultFpEnv env;
  volatile double d = 1.0 - p;
  volatile float df = static_cast<float>(d);
  volatile float s = 1.0f / df;
  return s;
}

double ScaleF64(double p) {
  ScopedDefaultFpEnv env;
  volatile double d = 1.0 - p;
  volatile double s = 1.0 / d;
  return s;
}

float BitsToF32(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
uint32_t F32ToBits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
double BitsToF64(uint64_t b) {
  double d;
  std::memcpy(&d, &b, 8);
  return d;
}
uint64_t F64ToBits(double d) {
  uint64_t b;
  std::memcpy(&b, &d, 8);
  return b;
}

float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h >> 15) << 31;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t man = h & 0x3FFu;
  if (exp == 0x1Fu) return BitsToF32(sign | 0x7F800000u | (man << 13));  // Inf / NaN (payload)
  if (exp == 0) {
    if (man == 0) return BitsToF32(sign);  // +-0
    // Denormal: man * 2^-24 = 2^-14 * (man / 1024). Normalize.
    int e = -14;
    while ((man & 0x400u) == 0) {
      man <<= 1;
      --e;
    }
    man &= 0x3FFu;
    return BitsToF32(sign | (static_cast<uint32_t>(e + 127) << 23) | (man << 13));
  }
  return BitsToF32(sign | ((exp - 15u + 127u) << 23) | (man << 13));
}

uint16_t F32ToF16(float f) {
  const uint32_t x = F32ToBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));  // NaN
  if (ax >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520: Inf (incl. Inf)
  if (ax >= 0x38800000u) {  // >= 2^-14: normal float16
    const uint32_t e = (ax >> 23) - 127u + 15u;
    const uint32_t mant = ax & 0x7FFFFFu;
    uint32_t h = (e << 10) | (mant >> 13);
    const uint32_t rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // carry may bump the exponent
    return static_cast<uint16_t>(sign | h);
  }
  if (ax <= 0x33000000u) return sign;  // <= 2^-25 (a tie with 0 rounds to even 0)
  // Denormal float16: result = round(value / 2^-24), value = mant24 * 2^(e - 150).
  const uint32_t e = ax >> 23;  // 102 .. 112
  const uint32_t mant = (ax & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126u - e;  // 14 .. 24
  uint32_t h = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (h & 1u))) ++h;  // may become 0x400, the smallest normal
  return static_cast<uint16_t>(sign | h);
}

float BF16ToF32(uint16_t h) { return BitsToF32(static_cast<uint32_t>(h) << 16); }

uint16_t F32ToBF16(float f) {
  const uint32_t x = F32ToBits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);  // quiet NaN
  const uint32_t rounded = x + 0x7FFFu + ((x >> 16) & 1u);  // half to even; overflows to Inf
  return static_cast<uint16_t>(rounded >> 16);
}

bool DTypeFromDL(DLDataType dt, DType* out) {
  if (dt.lanes != 1) return false;
  if (dt.code == kDLFloat && dt.bits == 16) *out = DType::f16;
  else if (dt.code == kDLFloat && dt.bits == 32) *out = DType::f32;
  else if (dt.code == kDLFloat && dt.bits == 64) *out = DType::f64;
  else if (dt.code == kDLBfloat && dt.bits == 16) *out = DType::bf16;
  else return false;
  return true;
}

DLDataType DTypeToDL(DType t) {
  switch (t) {
    case DType::f16: return DLDataType{kDLFloat, 16, 1};
    case DType::bf16: return DLDataType{kDLBfloat, 16, 1};
    case DType::f32: return DLDataType{kDLFloat, 32, 1};
    case DType::f64: return DLDataType{kDLFloat, 64, 1};
    case DType::u8: return DLDataType{kDLUInt, 8, 1};  // the mask's
  }
  return DLDataType{kDLFloat, 32, 1};
}

size_t DTypeSize(DType t) {
  switch (t) {
    case DType::f16:
    case DType::bf16: return 2;
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::u8: return 1;
  }
  return 0;
}

const char* DTypeName(DType t) {
  switch (t) {
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::u8: return "uint8";
  }
  return "?";
}

bool IsNaN(DType t, uint64_t b) {
  switch (t) {
    case DType::f16: return (b & 0x7FFFu) > 0x7C00u;
    case DType::bf16: return (b & 0x7FFFu) > 0x7F80u;
    case DType::f32: return (b & 0x7FFFFFFFu) > 0x7F800000u;
    case DType::f64: return (b & 0x7FFFFFFFFFFFFFFFull) > 0x7FF0000000000000ull;
    case DType::u8: return false;
  }
  return false;
}

namespace {

// The value rules with s precomputed.
struct ValueRule {
  DType t;
  float s32;
  double s64;
  uint32_t flags;

  ValueRule(DType type, double p, uint32_t f)
      : t(type), s32(ScaleF32(p)), s64(ScaleF64(p)), flags(f) {
    // docs/rng.md#values-and-scaling: with SDROP_FLAG_SCALE_IN_DTYPE the float32 s is first
    // rounded to the 16-bit storage format (PyTorch's noise tensor holds 1/(1-p) in the
    // input's dtype).
    if (flags & SDROP_FLAG_SCALE_IN_DTYPE) {
      if (t == DType::f16) s32 = F16ToF32(F32ToF16(s32));
      if (t == DType::bf16) s32 = BF16ToF32(F32ToBF16(s32));
    }
  }

  uint64_t Scaled(uint64_t x, float s, double sd) const {
    switch (t) {
      case DType::f32: return F32ToBits(BitsToF32(static_cast<uint32_t>(x)) * s);
      case DType::f64: return F64ToBits(BitsToF64(x) * sd);
      case DType::f16: return F32ToF16(F16ToF32(static_cast<uint16_t>(x)) * s);
      case DType::bf16: return F32ToBF16(BF16ToF32(static_cast<uint16_t>(x)) * s);
      case DType::u8: break;  // not a value dtype
    }
    return 0;
  }
  uint64_t Kept(uint64_t x) const { return Scaled(x, s32, s64); }
  uint64_t Dropped(uint64_t x) const {
    if ((flags & SDROP_FLAG_MULTIPLY) == 0) return 0;  // +0.0 in every format
    return Scaled(x, 0.0f, 0.0);
  }
};

}  // namespace

uint64_t KeptValue(DType t, uint64_t x_bits, double p) { return ValueRule(t, p, 0).Kept(x_bits); }

uint64_t DroppedValue(DType t, uint64_t x_bits, uint32_t flags) {
  return ValueRule(t, 0.0, flags).Dropped(x_bits);
}

// ---- Strided tensors -----------------------------------------------------------------------------

int64_t Numel(const DLTensor& t) {
  int64_t n = 1;
  for (int i = 0; i < t.ndim; ++i) n *= t.shape[i];
  return n;
}

std::vector<int64_t> CompactStrides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t acc = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

std::vector<int64_t> Shape(const DLTensor& t) {
  return std::vector<int64_t>(t.shape, t.shape + t.ndim);
}

std::vector<int64_t> Strides(const DLTensor& t) {
  if (t.strides == nullptr) return CompactStrides(Shape(t));
  return std::vector<int64_t>(t.strides, t.strides + t.ndim);
}

unsigned char* ElementAddress(const DLTensor& t, const int64_t* idx) {
  DType dt;
  size_t size = 1;
  if (DTypeFromDL(t.dtype, &dt)) size = DTypeSize(dt);
  else size = (t.dtype.bits + 7u) / 8u;
  int64_t off = 0;
  if (t.strides == nullptr) {
    int64_t acc = 1;  // compact row-major
    for (int i = t.ndim - 1; i >= 0; --i) {
      off += idx[i] * acc;
      acc *= t.shape[i];
    }
  } else {
    for (int i = 0; i < t.ndim; ++i) off += idx[i] * t.strides[i];
  }
  return static_cast<unsigned char*>(t.data) + t.byte_offset +
         off * static_cast<int64_t>(size);
}

uint64_t LoadBits(const void* p, size_t size) {
  uint64_t b = 0;
  std::memcpy(&b, p, size);  // little endian
  return b;
}

void StoreBits(void* p, size_t size, uint64_t bits) { std::memcpy(p, &bits, size); }

std::vector<int64_t> NoiseShape(const std::vector<int64_t>& shape, uint32_t mask_axes) {
  std::vector<int64_t> ns(shape.size(), 1);
  for (size_t i = 0; i < shape.size(); ++i)
    if ((mask_axes >> i) & 1u) ns[i] = shape[i];
  return ns;
}

uint64_t MaskIndex(const std::vector<int64_t>& shape, uint32_t mask_axes, const int64_t* idx) {
  uint64_t m = 0;
  for (size_t i = 0; i < shape.size(); ++i)
    if ((mask_axes >> i) & 1u) m = m * static_cast<uint64_t>(shape[i]) + static_cast<uint64_t>(idx[i]);
  return m;
}

std::vector<uint8_t> KeepBits(uint64_t seed, uint64_t offset, double p, uint64_t count) {
  const uint64_t t = Threshold(p);
  std::vector<uint8_t> keep(count);
  for (uint64_t b = 0; b * 4 < count; ++b) {
    const Counter u = DrawBlock(seed, offset, b);
    for (uint64_t lane = 0; lane < 4 && b * 4 + lane < count; ++lane)
      keep[b * 4 + lane] = Keep(u[lane], t) ? 1 : 0;
  }
  return keep;
}

namespace {

uint64_t Product(const std::vector<int64_t>& v) {
  uint64_t n = 1;
  for (int64_t e : v) n *= static_cast<uint64_t>(e < 0 ? 0 : e);
  return n;
}

void ApplyKeep(const sdrop_params& params, const DLTensor& x, const DLTensor& y,
               const std::vector<int64_t>& shape, const std::vector<uint8_t>* keep_by_m,
               const DLTensor* mask) {
  DType t;
  if (!DTypeFromDL(x.dtype, &t)) std::abort();
  const size_t size = DTypeSize(t);
  const ValueRule rule(t, params.p, params.flags);
  const bool drop_all = params.p == 1.0;
  std::vector<int64_t> midx(shape.size(), 0);
  ForEachIndex(shape, [&](const int64_t* idx) {
    bool keep;
    if (keep_by_m != nullptr) {
      keep = (*keep_by_m)[MaskIndex(shape, params.mask_axes, idx)] != 0;
    } else {
      for (size_t i = 0; i < shape.size(); ++i)
        midx[i] = ((params.mask_axes >> i) & 1u) ? idx[i] : 0;
      keep = !drop_all && *ElementAddress(*mask, midx.data()) != 0;
    }
    const uint64_t xb = LoadBits(ElementAddress(x, idx), size);
    StoreBits(ElementAddress(y, idx), size, keep ? rule.Kept(xb) : rule.Dropped(xb));
  });
}

}  // namespace

uint64_t ShardMaskIndex(const Shard& shard, uint32_t mask_axes, const int64_t* idx) {
  uint64_t m = 0;
  for (size_t i = 0; i < shard.logical.size(); ++i)
    if ((mask_axes >> i) & 1u)
      m = m * static_cast<uint64_t>(shard.logical[i]) + static_cast<uint64_t>(shard.origin[i] + idx[i]);
  return m;
}

void ForwardShard(const sdrop_params& params, const Shard& shard, const DLTensor& x,
                  const DLTensor& y) {
  ScopedDefaultFpEnv env;
  DType t;
  if (!DTypeFromDL(x.dtype, &t)) std::abort();
  const size_t size = DTypeSize(t);
  const ValueRule rule(t, params.p, params.flags);
  ForEachIndex(Shape(x), [&](const int64_t* idx) {
    const bool keep = Keep(params.seed, params.offset, ShardMaskIndex(shard, params.mask_axes, idx), params.p);
    const uint64_t xb = LoadBits(ElementAddress(x, idx), size);
    StoreBits(ElementAddress(y, idx), size, keep ? rule.Kept(xb) : rule.Dropped(xb));
  });
}

void MaskShard(const sdrop_params& params, const Shard& shard, const DLTensor& mask) {
  ScopedDefaultFpEnv env;
  ForEachIndex(Shape(mask), [&](const int64_t* idx) {
    *ElementAddress(mask, idx) =
        Keep(params.seed, params.offset, ShardMaskIndex(shard, params.mask_axes, idx), params.p) ? 1 : 0;
  });
}

void Forward(const sdrop_params& params, const DLTensor& x, const DLTensor& y) {
  ScopedDefaultFpEnv env;
  const std::vector<int64_t> shape = Shape(x);
  const std::vector<uint8_t> keep =
      KeepBits(params.seed, params.offset, params.p, Product(NoiseShape(shape, params.mask_axes)));
  ApplyKeep(params, x, y, shape, &keep, nullptr);
}

void ApplyMask(const sdrop_params& params, const DLTensor& x, const DLTensor& mask,
               const DLTensor& y) {
  ScopedDefaultFpEnv env;
  ApplyKeep(params, x, y, Shape(x), nullptr, &mask);
}

void Mask(const sdrop_params& params, const DLTensor& mask) {
  const std::vector<int64_t> shape = Shape(mask);  // the noise shape itself
  const std::vector<uint8_t> keep = KeepBits(params.seed, params.offset, params.p, Product(shape));
  ForEachIndex(shape, [&](const int64_t* idx) {
    *ElementAddress(mask, idx) = keep[MaskIndex(shape, params.mask_axes, idx)];
  });
}

// ---- Floating-point environment ------------------------------------------------------------------

ScopedDefaultFpEnv::ScopedDefaultFpEnv() {
  std::fegetenv(&saved_);
#ifdef SDROP_REF_HAVE_MXCSR
  saved_mxcsr_ = _mm_getcsr();
#endif
  std::fesetenv(FE_DFL_ENV);
  std::fesetround(FE_TONEAREST);
#ifdef SDROP_REF_HAVE_MXCSR
  _mm_setcsr(0x1F80u);  // all exceptions masked, round to nearest, no FTZ, no DAZ
#endif
}

ScopedDefaultFpEnv::~ScopedDefaultFpEnv() {
  std::fesetenv(&saved_);
#ifdef SDROP_REF_HAVE_MXCSR
  _mm_setcsr(saved_mxcsr_);
#endif
}

std::string HexBits(DType t, uint64_t bits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%0*llx", static_cast<int>(DTypeSize(t) * 2),
                static_cast<unsigned long long>(bits));
  return buf;
}

}  // namespace sdrop_ref
