// Checks of the scalar reference itself: the oracle must be right before it judges the library.
#include "reference/sdrop_reference.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace sdrop_ref {
namespace {

// ---- Philox: the known answers (docs/rng.md#known-answers) ------------------------------------

TEST(ReferencePhilox, KnownAnswerCounterZeroKeyZero) {
  const Counter out = Philox4x32_10(Counter{0, 0, 0, 0}, Key{0, 0});
  EXPECT_EQ(out, (Counter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
}

TEST(ReferencePhilox, KnownAnswerPiDigits) {
  const Counter out = Philox4x32_10(Counter{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                                    Key{0xa4093822u, 0x299f31d0u});
  EXPECT_EQ(out, (Counter{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(ReferencePhilox, KnownAnswerAllOnes) {  // Random123's kat_vectors, third philox4x32-10 line
  const Counter out = Philox4x32_10(Counter{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                                    Key{0xffffffffu, 0xffffffffu});
  EXPECT_EQ(out, (Counter{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
}

TEST(ReferencePhilox, OneRoundMatchesTheSpecFormula) {
  // (hi0,lo0) = M0*c0, (hi1,lo1) = M1*c2; new counter (hi1^c1^k0, lo1, hi0^c3^k1, lo0).
  const Counter c{1u, 2u, 3u, 4u};
  const Key k{5u, 6u};
  const uint64_t p0 = 0xD2511F53ull * 1u, p1 = 0xCD9E8D57ull * 3u;
  const Counter expect{static_cast<uint32_t>(p1 >> 32) ^ 2u ^ 5u, static_cast<uint32_t>(p1),
                       static_cast<uint32_t>(p0 >> 32) ^ 4u ^ 6u, static_cast<uint32_t>(p0)};
  EXPECT_EQ(PhiloxRound(c, k), expect);
}

TEST(ReferencePhilox, DrawUsesSeedAsKeyBlockAndOffsetAsCounterAndLaneAsWord) {
  // seed 0, offset 0: mask indices 0..3 are the words of the first known answer.
  EXPECT_EQ(Draw(0, 0, 0), 0x6627e8d5u);
  EXPECT_EQ(Draw(0, 0, 1), 0xe169c58du);
  EXPECT_EQ(Draw(0, 0, 2), 0xbc57ac4cu);
  EXPECT_EQ(Draw(0, 0, 3), 0x9b00dbd8u);
  // Every 64-bit half lands in its own word: key (seed lo, seed hi), counter (b lo, b hi,
  // offset lo, offset hi).
  const uint64_t seed = 0x299f31d0a4093822ull, offset = 0x0370734413198a2eull;
  const uint64_t block = 0x05a308d3243f6a88ull;
  const Counter expect = Philox4x32_10(Counter{0x243f6a88u, 0x05a308d3u, 0x13198a2eu, 0x03707344u},
                                       Key{0xa4093822u, 0x299f31d0u});
  for (uint64_t lane = 0; lane < 4; ++lane) EXPECT_EQ(Draw(seed, offset, block * 4 + lane), expect[lane]);
  EXPECT_EQ(DrawBlock(seed, offset, block), expect);
}

// ---- Threshold -----------------------------------------------------------------------------------

TEST(ReferenceThreshold, EndpointsAndExactValues) {
  EXPECT_EQ(Threshold(0.0), 4294967296ull);  // p = 0 keeps every u
  EXPECT_EQ(Threshold(1.0), 0ull);           // p = 1 keeps none
  EXPECT_EQ(Threshold(0.5), 2147483648ull);
  EXPECT_EQ(Threshold(0.25), 3221225472ull);
  EXPECT_EQ(Threshold(0.1), 3865470566ull);   // 0.9 * 2^32 = 3865470566.4000001
  EXPECT_EQ(Threshold(1e-6), 4294963001ull);  // 4294963001.03...
  EXPECT_EQ(Threshold(0.9), 429496730ull);    // 429496729.59999...
}

TEST(ReferenceThreshold, RoundsHalfToEven) {
  EXPECT_EQ(Threshold(1.0 - std::ldexp(1.0, -33)), 0ull);       // 0.5 -> 0
  EXPECT_EQ(Threshold(1.0 - std::ldexp(3.0, -33)), 2ull);       // 1.5 -> 2
  EXPECT_EQ(Threshold(1.0 - std::ldexp(5.0, -33)), 2ull);       // 2.5 -> 2
  EXPECT_EQ(Threshold(0.5 - std::ldexp(3.0, -33)), 2147483650ull);  // 2^31 + 1.5 -> 2^31 + 2
  EXPECT_EQ(Threshold(0.5 - std::ldexp(1.0, -33)), 2147483648ull);  // 2^31 + 0.5 -> 2^31
}

TEST(ReferenceThreshold, IndependentOfTheCallersRoundingMode) {
  const int saved = std::fegetround();
  std::fesetround(FE_TOWARDZERO);
  const uint64_t t = Threshold(1.0 - std::ldexp(3.0, -33));
  const float s = ScaleF32(0.1);
  std::fesetround(saved);
  EXPECT_EQ(t, 2ull);
  EXPECT_EQ(F32ToBits(s), 0x3f8e38e4u);
}

// ---- Scale ---------------------------------------------------------------------------------------

TEST(ReferenceScale, Float32ScaleIsOneOverFloatOfOneMinusP) {
  EXPECT_EQ(F32ToBits(ScaleF32(0.0)), F32ToBits(1.0f));
  EXPECT_EQ(F32ToBits(ScaleF32(0.5)), F32ToBits(2.0f));
  EXPECT_EQ(F32ToBits(ScaleF32(0.75)), F32ToBits(4.0f));
  EXPECT_EQ(F32ToBits(ScaleF32(0.1)), 0x3f8e38e4u);   // numpy: float32(1)/float32(0.9)
  EXPECT_EQ(F32ToBits(ScaleF32(0.3)), 0x3fb6db6eu);
  EXPECT_EQ(F32ToBits(ScaleF32(1e-6)), 0x3f800009u);
  EXPECT_EQ(F32ToBits(ScaleF32(0.9)), F32ToBits(10.0f));
  EXPECT_TRUE(std::isinf(ScaleF32(1.0)));
  EXPECT_EQ(ScaleF64(0.5), 2.0);
  EXPECT_EQ(ScaleF64(0.1), 1.0 / 0.9);
}

// ---- float16 / bfloat16 conversions: known bit patterns ------------------------------------------

TEST(ReferenceFloat16, ToFloat32KnownPatterns) {
  EXPECT_EQ(F16ToF32(0x3C00), 1.0f);
  EXPECT_EQ(F16ToF32(0xC000), -2.0f);
  EXPECT_EQ(F16ToF32(0x7BFF), 65504.0f);
  EXPECT_EQ(F16ToF32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));  // smallest denormal
  EXPECT_EQ(F16ToF32(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(F16ToF32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(F16ToF32(0x3555), 0.333251953125f);
  EXPECT_EQ(F16ToF32(0x3C01), 1.0009765625f);
  EXPECT_EQ(F32ToBits(F16ToF32(0x0000)), 0x00000000u);
  EXPECT_EQ(F32ToBits(F16ToF32(0x8000)), 0x80000000u);
  EXPECT_EQ(F32ToBits(F16ToF32(0x7C00)), 0x7F800000u);
  EXPECT_EQ(F32ToBits(F16ToF32(0xFC00)), 0xFF800000u);
  EXPECT_TRUE(std::isnan(F16ToF32(0x7E00)));
  EXPECT_TRUE(std::isnan(F16ToF32(0x7C01)));  // signaling NaN stays NaN
  EXPECT_TRUE(std::isnan(F16ToF32(0xFFFF)));
}

TEST(ReferenceFloat16, FromFloat32KnownPatterns) {
  EXPECT_EQ(F32ToF16(1.0f), 0x3C00);
  EXPECT_EQ(F32ToF16(-2.0f), 0xC000);
  EXPECT_EQ(F32ToF16(0.1f), 0x2E66);
  EXPECT_EQ(F32ToF16(65504.0f), 0x7BFF);
  EXPECT_EQ(F32ToF16(65519.99f), 0x7BFF);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7C00);  // tie with 65536 rounds to even: Inf
  EXPECT_EQ(F32ToF16(-1e10f), 0xFC00);
  EXPECT_EQ(F32ToF16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);       // tie -> even
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(3.0f, -11)), 0x3C02);       // tie -> even
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -23)), 0x3C01);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);              // tie with 0 -> 0
  EXPECT_EQ(F32ToF16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(F32ToF16(std::ldexp(1.5f, -24)), 0x0002);              // 1.5 ulp -> 2
  EXPECT_EQ(F32ToF16(std::ldexp(2.5f, -24)), 0x0002);              // 2.5 ulp -> 2
  EXPECT_EQ(F32ToF16(std::ldexp(1023.5f, -24)), 0x0400);           // rounds up into the normals
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_EQ(F32ToF16(-1e-8f), 0x8000);
  EXPECT_EQ(F32ToF16(1e-40f), 0x0000);                             // float32 denormal
  EXPECT_EQ(F32ToF16(BitsToF32(0x80000000u)), 0x8000);
  const uint16_t nan1 = F32ToF16(BitsToF32(0x7F800001u));         // tiny payload: not Inf
  const uint16_t nan2 = F32ToF16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE((nan1 & 0x7FFF) > 0x7C00) << std::hex << nan1;
  EXPECT_TRUE((nan2 & 0x7FFF) > 0x7C00) << std::hex << nan2;
}

TEST(ReferenceBFloat16, KnownPatterns) {
  EXPECT_EQ(BF16ToF32(0x3F80), 1.0f);
  EXPECT_EQ(BF16ToF32(0xC040), -3.0f);
  EXPECT_EQ(BF16ToF32(0x0001), BitsToF32(0x00010000u));  // denormal
  EXPECT_EQ(F32ToBits(BF16ToF32(0x8000)), 0x80000000u);
  EXPECT_TRUE(std::isinf(BF16ToF32(0x7F80)));
  EXPECT_TRUE(std::isnan(BF16ToF32(0x7FC0)));
  EXPECT_TRUE(std::isnan(BF16ToF32(0x7F81)));
  EXPECT_EQ(F32ToBF16(1.0f), 0x3F80);
  EXPECT_EQ(F32ToBF16(BitsToF32(0x3F808000u)), 0x3F80);  // tie -> even
  EXPECT_EQ(F32ToBF16(BitsToF32(0x3F818000u)), 0x3F82);  // tie -> even
  EXPECT_EQ(F32ToBF16(BitsToF32(0x3F808001u)), 0x3F81);
  EXPECT_EQ(F32ToBF16(BitsToF32(0x3F807FFFu)), 0x3F80);
  EXPECT_EQ(F32ToBF16(BitsToF32(0x7F7FFFFFu)), 0x7F80);  // FLT_MAX rounds to Inf
  EXPECT_EQ(F32ToBF16(BitsToF32(0x7F7F7FFFu)), 0x7F7F);
  EXPECT_EQ(F32ToBF16(BitsToF32(0x00008000u)), 0x0000);  // denormal tie -> even 0
  EXPECT_EQ(F32ToBF16(BitsToF32(0x00018000u)), 0x0002);
  EXPECT_EQ(F32ToBF16(BitsToF32(0x80000000u)), 0x8000);
  EXPECT_EQ(F32ToBF16(-std::numeric_limits<float>::infinity()), 0xFF80);
  const uint16_t nan1 = F32ToBF16(BitsToF32(0x7F800001u));  // payload only in the low half
  EXPECT_TRUE((nan1 & 0x7FFF) > 0x7F80) << std::hex << nan1;
  const uint16_t nan2 = F32ToBF16(BitsToF32(0xFFC00000u));
  EXPECT_TRUE((nan2 & 0x7FFF) > 0x7F80) << std::hex << nan2;
}

// ---- An independent, by-definition rounding oracle ----------------------------------------------
// Sorted non-negative values of a 16-bit format, the bit pattern of Inf standing for the next
// power of two (IEEE 754: overflow iff |x| >= max + half an ulp, ties to even). Nearest by double
// distance, ties to the even bit pattern.
struct Format {
  std::vector<double> values;    // value of bit pattern i, for i = 0 .. inf_bits
  uint16_t inf_bits;
};

Format MakeFormat(bool bf16) {
  Format f;
  f.inf_bits = bf16 ? 0x7F80 : 0x7C00;
  for (uint32_t b = 0; b <= f.inf_bits; ++b)
    f.values.push_back(bf16 ? static_cast<double>(BF16ToF32(static_cast<uint16_t>(b)))
                            : static_cast<double>(F16ToF32(static_cast<uint16_t>(b))));
  // Inf stands for 2^(emax+1).
  f.values.back() = bf16 ? std::ldexp(1.0, 128) : 65536.0;
  return f;
}

uint16_t RoundByDefinition(const Format& f, float x) {
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(x));
  if (a >= f.values.back()) return sign | f.inf_bits;
  const auto it = std::upper_bound(f.values.begin(), f.values.end(), a);  // first > a
  const size_t hi = static_cast<size_t>(it - f.values.begin());
  const size_t lo = hi - 1;                                                   // values[lo] <= a
  const double dlo = a - f.values[lo], dhi = f.values[hi] - a;
  size_t pick = dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1) == 0 ? lo : hi);
  return static_cast<uint16_t>(sign | pick);
}

std::vector<float> InterestingFloats(bool bf16) {
  std::vector<float> xs;
  const uint32_t inf_bits = bf16 ? 0x7F80 : 0x7C00;
  for (uint32_t b = 0; b < inf_bits; ++b) {
    const double v0 = bf16 ? BF16ToF32(static_cast<uint16_t>(b)) : F16ToF32(static_cast<uint16_t>(b));
    const double v1 = b + 1 == inf_bits ? (bf16 ? std::ldexp(1.0, 128) : 65536.0)
                                        : (bf16 ? BF16ToF32(static_cast<uint16_t>(b + 1))
                                                : F16ToF32(static_cast<uint16_t>(b + 1)));
    const float mid = static_cast<float>((v0 + v1) / 2);  // exact: few significant bits
    for (float v : {static_cast<float>(v0), mid, std::nextafter(mid, 0.0f),
                    std::nextafter(mid, std::numeric_limits<float>::infinity())}) {
      if (std::isinf(v)) continue;
      xs.push_back(v);
      xs.push_back(-v);
    }
  }
  std::mt19937 rng(1234);
  for (int i = 0; i < 1000000; ++i) {
    const float v = BitsToF32(static_cast<uint32_t>(rng()));
    if (!std::isnan(v)) xs.push_back(v);
  }
  for (int i = 0; i < 200000; ++i) {  // uniform in the interesting exponent range
    std::uniform_real_distribution<float> e(-30.0f, 17.0f);
    xs.push_back(std::exp2(e(rng)) * ((i & 1) ? -1.0f : 1.0f));
  }
  return xs;
}

TEST(ReferenceFloat16, RoundingAgreesWithTheDefinition) {
  const Format f = MakeFormat(false);
  int failures = 0;
  for (float x : InterestingFloats(false)) {
    const uint16_t want = RoundByDefinition(f, x), got = F32ToF16(x);
    if (want != got && ++failures <= 10)
      ADD_FAILURE() << "x=" << std::hexfloat << x << " want 0x" << std::hex << want << " got 0x" << got;
  }
  EXPECT_EQ(failures, 0);
}

TEST(ReferenceBFloat16, RoundingAgreesWithTheDefinition) {
  const Format f = MakeFormat(true);
  int failures = 0;
  for (float x : InterestingFloats(true)) {
    const uint16_t want = RoundByDefinition(f, x), got = F32ToBF16(x);
    if (want != got && ++failures <= 10)
      ADD_FAILURE() << "x=" << std::hexfloat << x << " want 0x" << std::hex << want << " got 0x" << got;
  }
  EXPECT_EQ(failures, 0);
}

TEST(ReferenceFloat16, RoundTripIsIdentityForEveryNonNaNValue) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const uint16_t h = static_cast<uint16_t>(b);
    if ((h & 0x7FFF) > 0x7C00) {
      EXPECT_GT(F32ToF16(F16ToF32(h)) & 0x7FFF, 0x7C00) << std::hex << b;
      continue;
    }
    ASSERT_EQ(F32ToF16(F16ToF32(h)), h) << std::hex << b;
  }
}

TEST(ReferenceBFloat16, RoundTripIsIdentityForEveryNonNaNValue) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const uint16_t h = static_cast<uint16_t>(b);
    if ((h & 0x7FFF) > 0x7F80) {
      EXPECT_GT(F32ToBF16(BF16ToF32(h)) & 0x7FFF, 0x7F80) << std::hex << b;
      continue;
    }
    ASSERT_EQ(F32ToBF16(BF16ToF32(h)), h) << std::hex << b;
  }
}

// ---- Exhaustive against the compiler's _Float16 (GCC 12 on x86-64 has it) -------------------------
#if defined(__FLT16_MANT_DIG__)
uint16_t Float16Bits(_Float16 h) {
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}

TEST(ReferenceFloat16, EveryFloat16ValueWidensLikeTheCompiler) {
  for (uint32_t b = 0; b < 65536; ++b) {
    _Float16 h;
    const uint16_t hb = static_cast<uint16_t>(b);
    std::memcpy(&h, &hb, 2);
    const float want = static_cast<float>(h), got = F16ToF32(hb);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << std::hex << b;
    } else {
      ASSERT_EQ(F32ToBits(got), F32ToBits(want)) << std::hex << b;
    }
  }
}

TEST(ReferenceFloat16, NarrowsLikeTheCompiler) {
  int failures = 0;
  for (float x : InterestingFloats(false)) {
    const uint16_t want = Float16Bits(static_cast<_Float16>(x)), got = F32ToF16(x);
    if (want != got && ++failures <= 10)
      ADD_FAILURE() << "x=" << std::hexfloat << x << " compiler 0x" << std::hex << want << " ref 0x" << got;
  }
  EXPECT_EQ(failures, 0);
}
#else
TEST(ReferenceFloat16, EveryFloat16ValueWidensLikeTheCompiler) {
  GTEST_SKIP() << "this compiler has no _Float16";
}
#endif

// ---- Value rules ---------------------------------------------------------------------------------

TEST(ReferenceValues, KeptIsScaledDroppedIsPositiveZeroOrTimesZero) {
  EXPECT_EQ(KeptValue(DType::f32, F32ToBits(3.0f), 0.5), F32ToBits(6.0f));
  EXPECT_EQ(KeptValue(DType::f64, F64ToBits(3.0), 0.5), F64ToBits(6.0));
  EXPECT_EQ(KeptValue(DType::f16, 0x3C00, 0.5), 0x4000u);
  EXPECT_EQ(KeptValue(DType::bf16, 0x3F80, 0.5), 0x4000u);
  EXPECT_EQ(KeptValue(DType::f16, 0x0001, 0.5), 0x0002u);       // denormal stays denormal
  EXPECT_EQ(KeptValue(DType::f32, 0x00000001u, 0.5), 0x00000002u);
  EXPECT_EQ(KeptValue(DType::f64, 1, 0.5), 2u);
  EXPECT_EQ(KeptValue(DType::f16, 0x7BFF, 0.5), 0x7C00u);       // overflow to Inf
  EXPECT_EQ(KeptValue(DType::f32, F32ToBits(3.0f), 0.1), F32ToBits(3.0f * BitsToF32(0x3f8e38e4u)));
  EXPECT_EQ(KeptValue(DType::f16, 0x3C00, 0.1), F32ToF16(BitsToF32(0x3f8e38e4u)));
  EXPECT_TRUE(IsNaN(DType::f16, KeptValue(DType::f16, 0x7E00, 0.5)));
  for (DType t : {DType::f16, DType::bf16, DType::f32, DType::f64}) {
    const uint64_t nan = t == DType::f16 ? 0x7E00 : t == DType::bf16 ? 0x7FC0
                         : t == DType::f32 ? 0x7FC00000u : 0x7FF8000000000000ull;
    const uint64_t neg_inf = t == DType::f16 ? 0xFC00 : t == DType::bf16 ? 0xFF80
                             : t == DType::f32 ? 0xFF800000u : 0xFFF0000000000000ull;
    const uint64_t neg_zero = t == DType::f64 ? 0x8000000000000000ull
                              : t == DType::f32 ? 0x80000000u : 0x8000u;
    const uint64_t neg_one = t == DType::f16 ? 0xBC00 : t == DType::bf16 ? 0xBF80
                             : t == DType::f32 ? F32ToBits(-1.0f) : F64ToBits(-1.0);
    SCOPED_TRACE(DTypeName(t));
    EXPECT_EQ(DroppedValue(t, nan, 0), 0u);
    EXPECT_EQ(DroppedValue(t, neg_inf, 0), 0u);
    EXPECT_EQ(DroppedValue(t, neg_one, 0), 0u);
    EXPECT_TRUE(IsNaN(t, DroppedValue(t, nan, SDROP_FLAG_MULTIPLY)));
    EXPECT_TRUE(IsNaN(t, DroppedValue(t, neg_inf, SDROP_FLAG_MULTIPLY)));
    EXPECT_EQ(DroppedValue(t, neg_one, SDROP_FLAG_MULTIPLY), neg_zero);
    EXPECT_EQ(KeptValue(t, neg_zero, 0.3), neg_zero);
    EXPECT_EQ(KeptValue(t, neg_one, 0.0), neg_one);  // p = 0: exactly x
  }
}

// ---- A hand-worked forward from the first known answer --------------------------------------------
// seed 0, offset 0: u = 6627e8d5, e169c58d, bc57ac4c, 9b00dbd8. With p = 0.5 (T = 2^31) only m = 0
// is kept; with p = 0.1 (T = 0xE6666666) all four are.
TEST(ReferenceForward, HandWorkedExample) {
  std::vector<int64_t> shape{2, 2};
  float x[4] = {1, 2, 3, 4}, y[4] = {-1, -1, -1, -1};
  DLTensor tx{x, {kDLCPU, 0}, 2, {kDLFloat, 32, 1}, shape.data(), nullptr, 0};
  DLTensor ty{y, {kDLCPU, 0}, 2, {kDLFloat, 32, 1}, shape.data(), nullptr, 0};
  sdrop_params prm{0.5, 0, 0, 1u, 0};  // per row: m = row
  Forward(prm, tx, ty);
  EXPECT_EQ(std::vector<float>(y, y + 4), (std::vector<float>{2, 4, 0, 0}));
  prm.mask_axes = 3u;  // element-wise
  Forward(prm, tx, ty);
  EXPECT_EQ(std::vector<float>(y, y + 4), (std::vector<float>{2, 0, 0, 0}));
  prm.mask_axes = 2u;  // per column: m = column
  Forward(prm, tx, ty);
  EXPECT_EQ(std::vector<float>(y, y + 4), (std::vector<float>{2, 0, 6, 0}));
  prm.p = 0.1;
  prm.mask_axes = 3u;
  Forward(prm, tx, ty);
  const float s = BitsToF32(0x3f8e38e4u);
  EXPECT_EQ(std::vector<float>(y, y + 4), (std::vector<float>{1 * s, 2 * s, 3 * s, 4 * s}));
  // Transposed y (column-major strides): the same values at transposed addresses.
  int64_t tstrides[2] = {1, 2};
  ty.strides = tstrides;
  prm.p = 0.5;
  prm.mask_axes = 1u;
  Forward(prm, tx, ty);
  EXPECT_EQ(std::vector<float>(y, y + 4), (std::vector<float>{2, 0, 4, 0}));
}

TEST(ReferenceForward, MaskIndexIsRowMajorInTheNoiseShape) {
  const std::vector<int64_t> shape{2, 3, 4, 5};
  const int64_t idx[4] = {1, 2, 3, 4};
  EXPECT_EQ(MaskIndex(shape, 0x3u, idx), 1u * 3 + 2);            // channels first: n*C + c
  EXPECT_EQ(MaskIndex(shape, 0x9u, idx), 1u * 5 + 4);            // channels last: n*C + c
  EXPECT_EQ(MaskIndex(shape, 0xFu, idx), ((1u * 3 + 2) * 4 + 3) * 5 + 4);
  EXPECT_EQ(MaskIndex(shape, 0x0u, idx), 0u);
  EXPECT_EQ(MaskIndex(shape, 0x6u, idx), 2u * 4 + 3);
  EXPECT_EQ(NoiseShape(shape, 0x9u), (std::vector<int64_t>{2, 1, 1, 5}));
}

}  // namespace
}  // namespace sdrop_ref
