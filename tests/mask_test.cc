// sdrop_mask, sdrop_apply_mask, and the invariance of the mask (docs/semantics.md,
// docs/rng.md#mask-bits, docs/c-api.md, docs/refusals.md).
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "dropout_tester.h"

namespace sdrop_test {
namespace {

using Op = DropoutTester::Op;

// ---- sdrop_mask ----------------------------------------------------------------------------------

TEST(Mask, EqualsTheReferenceKeepBitsForUint8AndBool) {
  std::mt19937_64 rng(31);
  for (DLDataType dt : {kU8, kBool})
    for (int rank = 1; rank <= 8; ++rank)
      for (int k = 0; k < 6; ++k) {
        const uint32_t axes = static_cast<uint32_t>(rng()) & ((1u << rank) - 1u);
        std::vector<int64_t> shape(rank, 1);
        for (int i = 0; i < rank; ++i)
          if ((axes >> i) & 1u) shape[i] = 1 + static_cast<int64_t>(rng() % (rank > 4 ? 4 : 9));
        for (double p : {0.0, 1e-6, 0.1, 0.5, 0.9, 1.0})
          MaskTester().shape(shape).mask_axes(axes).dtype(dt).p(p).seed(rng()).offset(rng()).Test();
      }
}

TEST(Mask, StridedOffsetAndMisalignedMasks) {
  std::mt19937_64 rng(32);
  const std::vector<int64_t> shape{6, 1, 1, 37};
  for (DLDataType dt : {kU8, kBool})
    for (int k = 0; k < 20; ++k)
      MaskTester().shape(shape).mask_axes(0x9u).dtype(dt).p(0.5).seed(rng())
          .strides(RandomStrides(shape, rng)).byte_offset(rng() % 9).misalign(rng() % 5).Test();
  MaskTester().shape(shape).mask_axes(0x9u).null_strides(true).Test();
  // A large mask: vectorized generation and its tails.
  MaskTester().shape({3, 1000003}).mask_axes(0x3u).p(0.3).Test();
  MaskTester().shape({1, 4097}).mask_axes(0x2u).p(0.7).offset(0xFFFFFFFFull).Test();
}

TEST(Mask, FlagsAreIgnored) {
  const std::vector<uint8_t> a = MaskTester().shape({4, 64}).mask_axes(0x3u).flags(0).Test();
  const std::vector<uint8_t> b =
      MaskTester().shape({4, 64}).mask_axes(0x3u).flags(SDROP_FLAG_MULTIPLY).Test();
  EXPECT_EQ(a, b);
}

TEST(Mask, PZeroKeepsAllPOneKeepsNone) {
  for (uint8_t v : MaskTester().shape({5, 100}).mask_axes(0x3u).p(0.0).Test()) ASSERT_EQ(v, 1);
  for (uint8_t v : MaskTester().shape({5, 100}).mask_axes(0x3u).p(1.0).Test()) ASSERT_EQ(v, 0);
}

TEST(Mask, EmptyMaskIsOk) {
  MaskTester().shape({0, 1}).mask_axes(0x1u).Test();
  MaskTester().shape({3, 0}).mask_axes(0x3u).Test();
}

// The forward output's zero / non-zero pattern is the mask.
TEST(Mask, ForwardZeroPatternAgreesWithMask) {
  const int64_t N = 3, C = 11, H = 5, W = 6;
  for (DLDataType dt : AllDTypes())
    for (sdrop_layout layout : {SDROP_CHANNELS_FIRST, SDROP_CHANNELS_LAST}) {
      SCOPED_TRACE(DTypeString(dt) + (layout ? " channels_last" : " channels_first"));
      const bool cf = layout == SDROP_CHANNELS_FIRST;
      const std::vector<int64_t> shape = cf ? std::vector<int64_t>{N, C, H, W}
                                            : std::vector<int64_t>{N, H, W, C};
      const size_t es = ElementSize(dt);
      const sdrop_ref::DType t = dt.bits == 16 ? (dt.code == kDLBfloat ? DType::bf16 : DType::f16)
                                               : dt.bits == 32 ? DType::f32 : DType::f64;
      std::vector<uint8_t> x(N * C * H * W * es), y(x.size(), 0xA5);
      std::mt19937_64 rng(33);
      for (size_t i = 0; i < x.size() / es; ++i)
        sdrop_ref::StoreBits(&x[i * es], es, RandomValue(t, Values::kPositive, rng));
      HostTensor tx(x.data(), shape, dt), ty(y.data(), shape, dt);
      const sdrop_params prm{0.5, 1234, 5, sdrop_spatial_axes(4, layout), 0};
      ASSERT_EQ(sdrop_forward(&prm, &tx.t, &ty.t), SDROP_OK) << sdrop_last_error();
      std::vector<uint8_t> m(N * C, 0xA5);
      HostTensor tm(m.data(), cf ? std::vector<int64_t>{N, C, 1, 1} : std::vector<int64_t>{N, 1, 1, C},
                    kU8);
      ASSERT_EQ(sdrop_mask(&prm, &tm.t), SDROP_OK) << sdrop_last_error();
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t hw = 0; hw < H * W; ++hw) {
            const int64_t i = cf ? (n * C + c) * H * W + hw : (n * H * W + hw) * C + c;
            const bool zero = sdrop_ref::LoadBits(&y[i * es], es) == 0;
            ASSERT_EQ(zero, m[n * C + c] == 0) << "n=" << n << " c=" << c << " hw=" << hw;
          }
    }
}

// ---- sdrop_apply_mask ----------------------------------------------------------------------------

TEST(ApplyMask, MatchesTheReferenceForUint8AndBoolMasks) {
  std::mt19937_64 rng(34);
  for (DLDataType dt : AllDTypes())
    for (DLDataType mdt : {kU8, kBool})
      for (const auto& shape : std::vector<std::vector<int64_t>>{{3, 4, 5}, {2, 6, 3, 3}, {17}, {}})
        for (double p : {0.0, 0.1, 0.5, 1.0})
          for (bool multiply : {false, true}) {
            const int rank = static_cast<int>(shape.size());
            const uint32_t axes = rank == 0 ? 0u : static_cast<uint32_t>(rng()) & ((1u << rank) - 1u);
            DropoutTester().op(Op::kApplyMask).shape(shape).dtype(dt).mask_dtype(mdt).p(p)
                .mask_axes(axes).multiply(multiply).values(Values::kMixed).rng_seed(rng())
                .x_strides(RandomStrides(shape, rng)).y_strides(RandomStrides(shape, rng)).Test();
          }
}

TEST(ApplyMask, StridedAndBroadcastMasksAndInPlace) {
  std::mt19937_64 rng(35);
  const std::vector<int64_t> shape{3, 5, 4, 2};
  const std::vector<int64_t> noise{3, 5, 1, 1};
  for (DLDataType dt : AllDTypes()) {
    DropoutTester().op(Op::kApplyMask).shape(shape).dtype(dt).mask_axes(0x3u)
        .mask_strides(RandomStrides(noise, rng)).rng_seed(rng()).Test();
    DropoutTester().op(Op::kApplyMask).shape(shape).dtype(dt).mask_axes(0x3u)
        .mask_strides({0, 1, 9, -4}).rng_seed(rng()).Test();  // zero stride: inputs may broadcast
    DropoutTester().op(Op::kApplyMask).shape(shape).dtype(dt).mask_axes(0x3u).inplace(true)
        .p(0.3).rng_seed(rng()).Test();
  }
}

TEST(ApplyMask, AnyNonZeroMaskValueKeeps) {
  std::vector<float> x = {1, 2, 3, 4, 5, 6}, y(6, -1.0f);
  std::vector<uint8_t> m = {0, 1, 7, 255, 128, 0};
  HostTensor tx(x.data(), {6}, kF32), ty(y.data(), {6}, kF32), tm(m.data(), {6}, kU8);
  const sdrop_params prm{0.5, 0, 0, 0x1u, 0};
  ASSERT_EQ(sdrop_apply_mask(&prm, &tx.t, &tm.t, &ty.t), SDROP_OK) << sdrop_last_error();
  EXPECT_EQ(y, (std::vector<float>{0, 4, 6, 8, 10, 0}));
}

TEST(ApplyMask, SeedAndOffsetAreIgnored) {
  std::vector<float> x = {1, 2, 3, 4}, y1(4), y2(4);
  std::vector<uint8_t> m = {1, 0, 1, 0};
  HostTensor tx(x.data(), {4}, kF32), ty1(y1.data(), {4}, kF32), ty2(y2.data(), {4}, kF32),
      tm(m.data(), {4}, kBool);
  sdrop_params prm{0.5, 1, 2, 0x1u, 0};
  ASSERT_EQ(sdrop_apply_mask(&prm, &tx.t, &tm.t, &ty1.t), SDROP_OK) << sdrop_last_error();
  prm.seed = 999;
  prm.offset = 1000;
  ASSERT_EQ(sdrop_apply_mask(&prm, &tx.t, &tm.t, &ty2.t), SDROP_OK) << sdrop_last_error();
  EXPECT_EQ(y1, (std::vector<float>{2, 0, 6, 0}));
  EXPECT_EQ(y1, y2);
}

TEST(ApplyMask, POneDropsEverythingWhateverTheMaskSays) {
  for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
    std::vector<float> x = {1, -2, 3, 4}, y(4, 9.0f);
    std::vector<uint8_t> m = {1, 1, 7, 255};
    HostTensor tx(x.data(), {4}, kF32), ty(y.data(), {4}, kF32), tm(m.data(), {4}, kU8);
    const sdrop_params prm{1.0, 0, 0, 0x1u, flags};
    ASSERT_EQ(sdrop_apply_mask(&prm, &tx.t, &tm.t, &ty.t), SDROP_OK) << sdrop_last_error();
    EXPECT_EQ(sdrop_ref::F32ToBits(y[0]), 0u);
    EXPECT_EQ(sdrop_ref::F32ToBits(y[1]), flags ? 0x80000000u : 0u);
    EXPECT_EQ(sdrop_ref::F32ToBits(y[2]), 0u);
    EXPECT_EQ(sdrop_ref::F32ToBits(y[3]), 0u);
  }
}

// sdrop_apply_mask with the mask of sdrop_mask reproduces sdrop_forward bit for bit.
TEST(ApplyMask, WithTheLibrarysOwnMaskReproducesForward) {
  std::mt19937_64 rng(36);
  for (DLDataType dt : AllDTypes()) {
    const std::vector<int64_t> shape{4, 6, 5, 7};
    const size_t es = ElementSize(dt);
    const size_t n = 4 * 6 * 5 * 7;
    std::vector<uint8_t> x(n * es), y1(n * es, 1), y2(n * es, 2), m(24, 0xA5);
    for (auto& b : x) b = static_cast<uint8_t>(rng());
    HostTensor tx(x.data(), shape, dt), ty1(y1.data(), shape, dt), ty2(y2.data(), shape, dt),
        tm(m.data(), {4, 6, 1, 1}, kU8);
    for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
      const sdrop_params prm{0.4, rng(), rng(), 0x3u, flags};
      ASSERT_EQ(sdrop_forward(&prm, &tx.t, &ty1.t), SDROP_OK) << sdrop_last_error();
      ASSERT_EQ(sdrop_mask(&prm, &tm.t), SDROP_OK) << sdrop_last_error();
      ASSERT_EQ(sdrop_apply_mask(&prm, &tx.t, &tm.t, &ty2.t), SDROP_OK) << sdrop_last_error();
      DLTensor ry1 = ty1.t, ry2 = ty2.t;
      // NaN payloads may differ between the two calls; compare by value rules.
      EXPECT_EQ(CompareOutput(y2, y1, ry2, ry1, DTypeString(dt)), 0);
    }
  }
}

// ---- The mask depends only on (seed, offset, m) --------------------------------------------------

std::vector<uint8_t> ZeroPatternPerChannel(const std::vector<int64_t>& shape, DLDataType dt,
                                           sdrop_layout layout, const sdrop_params& base) {
  const bool cf = layout == SDROP_CHANNELS_FIRST;
  const int64_t N = shape[0], C = cf ? shape[1] : shape.back();
  int64_t numel = 1;
  for (int64_t e : shape) numel *= e;
  const int64_t inner = numel / (N * C);
  const size_t es = ElementSize(dt);
  DType t;
  sdrop_ref::DTypeFromDL(dt, &t);
  std::vector<uint8_t> x(numel * es), y(numel * es, 0xA5);
  for (int64_t i = 0; i < numel; ++i) sdrop_ref::StoreBits(&x[i * es], es, FromDouble(t, 1.0));
  HostTensor tx(x.data(), shape, dt), ty(y.data(), shape, dt);
  sdrop_params prm = base;
  prm.mask_axes = sdrop_spatial_axes(static_cast<int32_t>(shape.size()), layout);
  EXPECT_EQ(sdrop_forward(&prm, &tx.t, &ty.t), SDROP_OK) << sdrop_last_error();
  std::vector<uint8_t> kept(N * C);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t i = cf ? (n * C + c) * inner : n * inner * C + c;  // first spatial element
      kept[n * C + c] = sdrop_ref::LoadBits(&y[i * es], es) != 0;
    }
  return kept;
}

TEST(MaskInvariance, ChannelsFirstAndChannelsLastDropTheSameSampleChannelPairs) {
  const sdrop_params base{0.5, 0xDEADBEEFCAFEull, 17, 0, 0};
  for (DLDataType dt : AllDTypes()) {
    const auto cf = ZeroPatternPerChannel({4, 32, 3, 5}, dt, SDROP_CHANNELS_FIRST, base);
    const auto cl = ZeroPatternPerChannel({4, 3, 5, 32}, dt, SDROP_CHANNELS_LAST, base);
    EXPECT_EQ(cf, cl) << DTypeString(dt);
    const auto cf3 = ZeroPatternPerChannel({4, 32, 7}, dt, SDROP_CHANNELS_FIRST, base);
    const auto cl5 = ZeroPatternPerChannel({4, 2, 3, 2, 32}, dt, SDROP_CHANNELS_LAST, base);
    EXPECT_EQ(cf, cf3) << DTypeString(dt);
    EXPECT_EQ(cf, cl5) << DTypeString(dt);
  }
}

TEST(MaskInvariance, SameMaskForEveryDType) {
  const sdrop_params base{0.3, 42, 7, 0, 0};
  const auto ref = ZeroPatternPerChannel({8, 16, 2, 2}, kF32, SDROP_CHANNELS_FIRST, base);
  for (DLDataType dt : AllDTypes())
    EXPECT_EQ(ZeroPatternPerChannel({8, 16, 2, 2}, dt, SDROP_CHANNELS_FIRST, base), ref)
        << DTypeString(dt);
  // And it is the sdrop_mask bits.
  std::vector<uint8_t> m(8 * 16);
  HostTensor tm(m.data(), {8, 16, 1, 1}, kBool);
  sdrop_params prm = base;
  prm.mask_axes = 0x3u;
  ASSERT_EQ(sdrop_mask(&prm, &tm.t), SDROP_OK) << sdrop_last_error();
  EXPECT_EQ(m, ref);
}

TEST(MaskInvariance, SameMaskWhateverTheStrides) {
  // Ones in, so the output is the mask times s: permuted, reversed, gapped layouts of x and y all
  // give the reference pattern, which depends on the logical index only.
  const std::vector<int64_t> shape{4, 8, 3, 5};
  for (int k = 0; k < 6; ++k) {
    std::mt19937_64 rng(37 + k);
    DropoutTester().shape(shape).mask_axes(0x3u).values(Values::kOnes).seed(5)
        .x_strides(RandomStrides(shape, rng)).y_strides(RandomStrides(shape, rng)).Test();
  }
}

TEST(MaskInvariance, DifferentOffsetOrSeedGivesADifferentMask) {
  const std::vector<int64_t> shape{64, 64};
  const auto a = MaskTester().shape(shape).mask_axes(0x3u).seed(1).offset(1).Test();
  const auto b = MaskTester().shape(shape).mask_axes(0x3u).seed(1).offset(2).Test();
  const auto c = MaskTester().shape(shape).mask_axes(0x3u).seed(2).offset(1).Test();
  const auto d = MaskTester().shape(shape).mask_axes(0x3u).seed(1).offset(1ull << 32 | 1).Test();
  const auto e = MaskTester().shape(shape).mask_axes(0x3u).seed(1ull << 32 | 1).offset(1).Test();
  const auto a2 = MaskTester().shape(shape).mask_axes(0x3u).seed(1).offset(1).Test();
  EXPECT_EQ(a, a2);  // deterministic
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
  EXPECT_NE(a, e);
  // Roughly half of the 4096 bits differ between independent masks at p = 0.5.
  int diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += a[i] != b[i];
  EXPECT_GT(diff, 1700);
  EXPECT_LT(diff, 2400);
}

}  // namespace
}  // namespace sdrop_test
