// sdrop_forward / sdrop_backward: bit-exact against the scalar reference (docs/semantics.md,
// docs/rng.md, docs/refusals.md#accepted).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "dropout_tester.h"

namespace sdrop_test {
namespace {

using Op = DropoutTester::Op;

const std::vector<double> kPs = {0.0, 1e-6, 0.1, 0.5, 0.9, 1.0, 0.3141592653589793};

std::string ParamName(const testing::TestParamInfo<DLDataType>& info) {
  return DTypeString(info.param);
}

class Forward : public testing::TestWithParam<DLDataType> {};
INSTANTIATE_TEST_SUITE_P(AllDTypes, Forward, testing::ValuesIn(AllDTypes()), ParamName);

// Every rank 0..8, several mask-axis sets, every p of the list, both modes; compact tensors.
TEST_P(Forward, EveryRankFrom0To8WithManyMaskAxes) {
  const int64_t extents[8] = {3, 2, 4, 1, 3, 2, 2, 3};
  std::mt19937_64 rng(11);
  for (int rank = 0; rank <= 8; ++rank) {
    std::vector<int64_t> shape(extents, extents + rank);
    const uint32_t all = rank == 0 ? 0u : (1u << rank) - 1u;
    std::vector<uint32_t> axes_sets = {0u, all, sdrop_spatial_axes(rank, SDROP_CHANNELS_FIRST),
                                       sdrop_spatial_axes(rank, SDROP_CHANNELS_LAST)};
    if (rank >= 1) axes_sets.push_back(1u);  // per-sample / unbatched
    for (int k = 0; k < 3 && rank > 0; ++k) axes_sets.push_back(static_cast<uint32_t>(rng()) & all);
    for (uint32_t axes : axes_sets)
      for (double p : kPs)
        for (bool multiply : {false, true})
          DropoutTester().shape(shape).dtype(GetParam()).mask_axes(axes).p(p).multiply(multiply)
              .seed(rng()).offset(rng()).rng_seed(rng()).Test();
  }
}

// Spatial dropout in both layouts (docs/semantics.md#layouts), with sizes that exercise vector
// loops and tails.
TEST_P(Forward, SpatialDropoutBothLayouts) {
  const std::vector<std::vector<int64_t>> shapes = {
      {2, 3},       {2, 3, 37},      {4, 16, 8, 8},  {2, 5, 3, 7, 9},
      {3, 17, 33, 2}, {1, 64, 16, 17}, {2, 1, 129},   {5, 7, 1, 1}};
  std::mt19937_64 rng(12);
  for (const auto& shape : shapes)
    for (sdrop_layout layout : {SDROP_CHANNELS_FIRST, SDROP_CHANNELS_LAST})
      for (double p : {0.1, 0.5, 0.9})
        for (uint32_t flags : {0u, 1u, 2u, 3u})  // MULTIPLY, SCALE_IN_DTYPE, both
          DropoutTester().shape(shape).dtype(GetParam())
              .mask_axes(sdrop_spatial_axes(static_cast<int32_t>(shape.size()), layout))
              .p(p).flags(flags).seed(rng()).rng_seed(rng()).Test();
}

TEST_P(Forward, PermutedStrides) {
  const std::vector<int64_t> shape{3, 4, 5, 6};
  std::vector<int> perm = Identity(4);
  std::mt19937_64 rng(13);
  do {
    for (bool multiply : {false, true})
      DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x3u).p(0.5).multiply(multiply)
          .x_strides(Strides(shape, perm)).seed(rng()).rng_seed(rng()).Test();
    // y permuted too (and differently from x).
    std::vector<int> rev(perm.rbegin(), perm.rend());
    DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x9u).p(0.3)
        .x_strides(Strides(shape, perm)).y_strides(Strides(shape, rev)).seed(rng()).Test();
  } while (std::next_permutation(perm.begin(), perm.end()));
}

TEST_P(Forward, NegativeStrides) {
  const std::vector<int64_t> shape{2, 3, 5, 7};
  std::mt19937_64 rng(14);
  for (uint32_t negate = 1; negate < 16; ++negate) {
    DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x3u).p(0.5)
        .x_strides(Strides(shape, Identity(4), {}, negate)).seed(rng()).Test();
    DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x9u).p(0.1).multiply(true)
        .y_strides(Strides(shape, Identity(4), {}, negate)).seed(rng()).Test();
    DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0xFu).p(0.9)
        .x_strides(Strides(shape, Identity(4), {}, negate))
        .y_strides(Strides(shape, Identity(4), {}, negate ^ 0xFu)).seed(rng()).Test();
  }
}

TEST_P(Forward, SteppedNonContiguousStrides) {
  const std::vector<int64_t> shape{3, 4, 9, 10};
  std::mt19937_64 rng(15);
  const std::vector<std::vector<int64_t>> steps = {
      {1, 1, 1, 2}, {1, 1, 3, 1}, {2, 1, 1, 1}, {1, 2, 2, 3}, {1, 1, 1, 7}};
  for (const auto& step : steps) {
    DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x3u).p(0.5)
        .x_strides(Strides(shape, Identity(4), step)).seed(rng()).Test();
    DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x9u).p(0.5).multiply(true)
        .y_strides(Strides(shape, Identity(4), step)).seed(rng()).Test();
    DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x3u).p(0.25)
        .x_strides(Strides(shape, {3, 2, 1, 0}, step)).y_strides(Strides(shape, Identity(4), step))
        .seed(rng()).Test();
  }
}

TEST_P(Forward, NullStridesMeanCompactRowMajor) {
  std::mt19937_64 rng(16);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{7}, {2, 3, 4}, {3, 1, 5, 2, 2}}) {
    DropoutTester().shape(shape).dtype(GetParam()).mask_axes(AxesFor(shape.size(), 0x3u)).p(0.5)
        .null_strides(true).seed(rng()).Test();
    DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x1u).p(0.5).x_null_strides(true)
        .y_strides(RandomStrides(shape, rng)).seed(rng()).Test();
    DropoutTester().shape(shape).dtype(GetParam()).mask_axes(AxesFor(shape.size(), 0x2u)).p(0.5)
        .y_null_strides(true)
        .x_strides(RandomStrides(shape, rng)).seed(rng()).Test();
  }
}

TEST_P(Forward, ByteOffsetsAndOddAddresses) {
  const std::vector<int64_t> shape{2, 4, 5, 9};
  std::mt19937_64 rng(17);
  for (uint64_t x_off : {0, 1, 2, 3, 8, 13, 64})
    for (size_t misalign : {0, 1, 3}) {
      DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x3u).p(0.5)
          .x_byte_offset(x_off).x_misalign(misalign)
          .y_byte_offset(x_off * 3 % 17).y_misalign((misalign + 1) % 4).seed(rng()).Test();
      DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x9u).p(0.2).inplace(true)
          .x_byte_offset(x_off).x_misalign(misalign).seed(rng()).Test();
    }
}

// NaN, +-Inf, -0, denormals and extremes in both kept and dropped channels, both modes.
TEST_P(Forward, SpecialValuesInKeptAndDroppedChannels) {
  const std::vector<int64_t> shape{4, 8, 25};
  const uint64_t seed = 99, offset = 5;
  const std::vector<uint8_t> keep = sdrop_ref::KeepBits(seed, offset, 0.5, 32);
  int kept = 0;
  for (uint8_t k : keep) kept += k;
  ASSERT_GT(kept, 0);
  ASSERT_LT(kept, 32);  // both kinds of channel are present
  for (bool multiply : {false, true})
    for (double p : {0.0, 0.5, 0.1, 1.0})
      for (uint64_t r = 0; r < 3; ++r)
        DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x3u).p(p).multiply(multiply)
            .values(Values::kSpecials).seed(seed).offset(offset).rng_seed(r).Test();
}

TEST_P(Forward, InPlace) {
  std::mt19937_64 rng(18);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{6}, {2, 3, 4, 5}, {3, 4, 7, 2, 3}})
    for (double p : kPs)
      for (bool multiply : {false, true}) {
        DropoutTester().shape(shape).dtype(GetParam()).mask_axes(AxesFor(shape.size(), 0x3u)).p(p)
            .multiply(multiply).inplace(true).seed(rng()).rng_seed(rng()).Test();
        DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x1u).p(p).multiply(multiply)
            .inplace(true).x_strides(RandomStrides(shape, rng)).seed(rng()).Test();
      }
}

// In place means same addresses; an extent-1 axis may carry any stride
// (docs/semantics.md#in-place).
TEST_P(Forward, InPlaceWithStridesDifferingOnlyOnExtentOneAxes) {
  const std::vector<int64_t> shape{2, 1, 3, 1, 4};
  const std::vector<int64_t> x_strides = Compact(shape);
  std::vector<int64_t> y_strides = x_strides;
  y_strides[1] = 1000;
  y_strides[3] = -7;
  DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x7u).p(0.5).inplace(true)
      .x_strides(x_strides).inplace_y_strides(y_strides).Test();
}

// Overlap means two distinct indices reach one address (docs/refusals.md#overlap-decided-exactly);
// an extent-1 axis may carry any stride, zero included, on the output too.
TEST_P(Forward, OutputStridesOnExtentOneAxesAreFree) {
  const std::vector<int64_t> shape{2, 1, 3, 1, 4};
  for (const auto& ys : std::vector<std::vector<int64_t>>{{12, 0, 4, 0, 1}, {1, -5, 2, 99, 6}}) {
    DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x5u).p(0.5).y_strides(ys).Test();
    DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x5u).p(0.5).x_strides(ys).Test();
  }
  MaskTester().shape({3, 1, 1, 5}).mask_axes(0x9u).strides({5, 0, -3, 1}).Test();
}

TEST_P(Forward, EmptyTensorsAreOkAndWriteNothing) {
  for (const auto& shape : std::vector<std::vector<int64_t>>{{0}, {2, 0, 3}, {0, 5}, {3, 4, 0}})
    for (bool null_data : {false, true}) {
      DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x1u).p(0.5)
          .null_data_if_empty(null_data).Test();
      DropoutTester().shape(shape).dtype(GetParam()).mask_axes(0x1u).p(0.5).op(Op::kBackward)
          .null_data_if_empty(null_data).Test();
    }
}

// docs/refusals.md#accepted: zero strides are allowed on inputs (a broadcast x).
TEST_P(Forward, BroadcastInputWithZeroStrides) {
  const std::vector<int64_t> shape{3, 4, 5, 6};
  std::mt19937_64 rng(19);
  const std::vector<std::vector<int64_t>> x_strides = {
      {0, 6, 0, 1}, {0, 0, 0, 0}, {30, 0, 6, 1}, {0, 1, 4, 0}, {24, 6, 0, 1}};
  for (const auto& xs : x_strides)
    for (uint32_t axes : {0x3u, 0x9u, 0xFu})
      for (bool multiply : {false, true})
        DropoutTester().shape(shape).dtype(GetParam()).mask_axes(axes).p(0.5).multiply(multiply)
            .x_strides(xs).y_strides(RandomStrides(shape, rng)).seed(rng()).Test();
}

TEST_P(Forward, BackwardIsTheSameOperationOnTheGradient) {
  std::mt19937_64 rng(20);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{4, 8, 3, 3}, {2, 5, 7}, {9}})
    for (double p : kPs)
      for (bool multiply : {false, true}) {
        const uint64_t seed = rng(), offset = rng(), data = rng();
        const std::vector<int64_t> xs = RandomStrides(shape, rng);
        const std::vector<uint8_t> fwd = DropoutTester().shape(shape).dtype(GetParam()).p(p)
            .mask_axes(AxesFor(shape.size(), 0x3u)).multiply(multiply).seed(seed).offset(offset).rng_seed(data)
            .x_strides(xs).op(Op::kForward).Test();
        const std::vector<uint8_t> bwd = DropoutTester().shape(shape).dtype(GetParam()).p(p)
            .mask_axes(AxesFor(shape.size(), 0x3u)).multiply(multiply).seed(seed).offset(offset).rng_seed(data)
            .x_strides(xs).op(Op::kBackward).Test();
        EXPECT_TRUE(fwd == bwd) << "backward differs from forward";
      }
}

// Random everything: rank, extents, mask axes, layouts of x and y, offsets, alignment, p, mode.
TEST_P(Forward, RandomConfigurations) {
  std::mt19937_64 rng(0x5D20 + GetParam().bits + GetParam().code);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int iter = 0; iter < 400; ++iter) {
    const int rank = static_cast<int>(rng() % 9);
    std::vector<int64_t> shape(rank);
    int64_t numel = 1;
    for (int i = 0; i < rank; ++i) {
      const int64_t cap = std::max<int64_t>(1, 2048 / numel);
      shape[i] = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(std::min<int64_t>(cap, 9 + (i == rank - 1) * 40)));
      numel *= shape[i];
    }
    const uint32_t axes = rank == 0 ? 0u : static_cast<uint32_t>(rng()) & ((1u << rank) - 1u);
    const double p = (rng() % 3 == 0) ? kPs[rng() % kPs.size()] : unit(rng);
    DropoutTester t;
    t.shape(shape).dtype(GetParam()).mask_axes(axes).p(p).flags(uint32_t(rng() % 4)).seed(rng())
        .offset(rng()).rng_seed(rng()).op(rng() % 4 == 0 ? Op::kBackward : Op::kForward);
    if (rng() % 5 == 0) {
      t.inplace(true);
    } else {
      if (rng() % 6 == 0) t.y_null_strides(true); else t.y_strides(RandomStrides(shape, rng));
      t.y_byte_offset(rng() % 20).y_misalign(rng() % 8);
    }
    if (rng() % 6 == 0) t.x_null_strides(true); else t.x_strides(RandomStrides(shape, rng));
    t.x_byte_offset(rng() % 20).x_misalign(rng() % 8);
    t.Test();
    if (FailedParts() > kEnoughFailures) break;
  }
}

// ---- Statements of docs/rng.md#values-and-scaling that need no reference ----------------------

TEST(ForwardValues, PZeroIsAnExactCopy) {
  std::vector<float> x = {1.5f, -0.0f, 1e-45f, -3e38f, std::numeric_limits<float>::infinity(), 7.0f};
  std::vector<float> y(x.size(), 123.0f);
  HostTensor tx(x.data(), {2, 3}, kF32), ty(y.data(), {2, 3}, kF32);
  const sdrop_params prm{0.0, 1, 2, 0x3u, 0};
  ASSERT_EQ(sdrop_forward(&prm, &tx.t, &ty.t), SDROP_OK) << sdrop_last_error();
  EXPECT_EQ(0, std::memcmp(x.data(), y.data(), x.size() * sizeof(float)));
}

TEST(ForwardValues, POneDropsEverythingToPositiveZero) {
  std::vector<float> x = {1.5f, -2.0f, std::nanf(""), -std::numeric_limits<float>::infinity()};
  std::vector<float> y(x.size(), 123.0f);
  HostTensor tx(x.data(), {4}, kF32), ty(y.data(), {4}, kF32);
  const sdrop_params prm{1.0, 1, 2, 0x1u, 0};
  ASSERT_EQ(sdrop_forward(&prm, &tx.t, &ty.t), SDROP_OK) << sdrop_last_error();
  for (float v : y) EXPECT_EQ(sdrop_ref::F32ToBits(v), 0u);
}

TEST(ForwardValues, MultiplyFlagGivesXTimesZero) {
  std::vector<float> x = {1.5f, -2.0f, std::nanf(""), -std::numeric_limits<float>::infinity(), -0.0f};
  std::vector<float> y(x.size(), 123.0f);
  HostTensor tx(x.data(), {5}, kF32), ty(y.data(), {5}, kF32);
  const sdrop_params prm{1.0, 1, 2, 0x1u, SDROP_FLAG_MULTIPLY};
  ASSERT_EQ(sdrop_forward(&prm, &tx.t, &ty.t), SDROP_OK) << sdrop_last_error();
  EXPECT_EQ(sdrop_ref::F32ToBits(y[0]), 0x00000000u);
  EXPECT_EQ(sdrop_ref::F32ToBits(y[1]), 0x80000000u);  // -0.0
  EXPECT_TRUE(std::isnan(y[2]));
  EXPECT_TRUE(std::isnan(y[3]));                       // -Inf * 0
  EXPECT_EQ(sdrop_ref::F32ToBits(y[4]), 0x80000000u);
}

// Known answers (docs/rng.md#values-and-scaling): with SDROP_FLAG_SCALE_IN_DTYPE a 16-bit tensor
// is scaled by s rounded to its dtype (PyTorch's noise tensor); without, by the float32 s.
// bfloat16, p = 0.1: s = 1.1111112f, in bfloat16 1.109375; x = 1.75 gives 1.9453125 (0x3FF9) or
// 1.94140625 -> 1.9375 (0x3FF8). float16: s -> 1.111328125; x = 1.75 (0x3F00)
// gives 0x3FC7 or 0x3FC8. float32 and float64 are unaffected.
TEST(ForwardValues, ScaleInDtypeRoundsTheScaleToTheDtypeFirst) {
  struct Case { DLDataType dt; uint16_t x, plain, in_dtype; };
  for (const Case& c : {Case{kBF16, 0x3FE0, 0x3FF9, 0x3FF8}, Case{kF16, 0x3F00, 0x3FC7, 0x3FC8}}) {
    for (uint32_t flags : {0u, unsigned(SDROP_FLAG_SCALE_IN_DTYPE)}) {
      uint16_t x = c.x, y = 0;
      uint8_t keep = 1;
      HostTensor tx(&x, {1}, c.dt), ty(&y, {1}, c.dt), tm(&keep, {1}, kU8);
      const sdrop_params prm{0.1, 0, 0, 0x1u, flags};
      ASSERT_EQ(sdrop_apply_mask(&prm, &tx.t, &tm.t, &ty.t), SDROP_OK) << sdrop_last_error();
      EXPECT_EQ(y, flags ? c.in_dtype : c.plain) << DTypeString(c.dt) << " flags " << flags;
    }
  }
  float x = 1.75f, y0 = 0.0f, y1 = 0.0f;
  uint8_t keep = 1;
  HostTensor tx(&x, {1}, kF32), ty0(&y0, {1}, kF32), ty1(&y1, {1}, kF32), tm(&keep, {1}, kU8);
  const sdrop_params plain{0.1, 0, 0, 0x1u, 0}, in_dtype{0.1, 0, 0, 0x1u, SDROP_FLAG_SCALE_IN_DTYPE};
  ASSERT_EQ(sdrop_apply_mask(&plain, &tx.t, &tm.t, &ty0.t), SDROP_OK);
  ASSERT_EQ(sdrop_apply_mask(&in_dtype, &tx.t, &tm.t, &ty1.t), SDROP_OK);
  EXPECT_EQ(sdrop_ref::F32ToBits(y0), sdrop_ref::F32ToBits(y1));
}

TEST(ForwardValues, ScalarRankZero) {
  for (double p : {0.0, 0.5, 1.0}) {
    float x = 3.0f, y = -1.0f;
    HostTensor tx(&x, {}, kF32), ty(&y, {}, kF32);
    const sdrop_params prm{p, 1, 2, 0u, 0};
    ASSERT_EQ(sdrop_forward(&prm, &tx.t, &ty.t), SDROP_OK) << sdrop_last_error();
    const bool keep = sdrop_ref::Keep(1, 2, 0, p);
    EXPECT_EQ(y, keep ? 3.0f * sdrop_ref::ScaleF32(p) : 0.0f) << "p=" << p;
  }
}

// Every channel is either all +0 or all x*s (docs/testing.md#statistics), read straight off the
// output.
TEST(ForwardValues, EveryChannelIsAllZeroOrAllScaled) {
  const int64_t N = 8, C = 64, H = 9, W = 11;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(0.5f, 2.0f);
  for (sdrop_layout layout : {SDROP_CHANNELS_FIRST, SDROP_CHANNELS_LAST})
    for (double p : {0.1, 0.5, 0.9}) {
      std::vector<float> x(N * C * H * W), y(x.size());
      for (float& v : x) v = dist(rng);
      const std::vector<int64_t> shape = layout == SDROP_CHANNELS_FIRST
                                             ? std::vector<int64_t>{N, C, H, W}
                                             : std::vector<int64_t>{N, H, W, C};
      HostTensor tx(x.data(), shape, kF32), ty(y.data(), shape, kF32);
      const sdrop_params prm{p, 77, 1, sdrop_spatial_axes(4, layout), 0};
      ASSERT_EQ(sdrop_forward(&prm, &tx.t, &ty.t), SDROP_OK) << sdrop_last_error();
      const float s = sdrop_ref::ScaleF32(p);
      int64_t mixed = 0, kept = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
          int64_t zeros = 0, scaled = 0;
          for (int64_t hw = 0; hw < H * W; ++hw) {
            const int64_t i = layout == SDROP_CHANNELS_FIRST ? (n * C + c) * H * W + hw
                                                             : (n * H * W + hw) * C + c;
            if (sdrop_ref::F32ToBits(y[i]) == 0) ++zeros;
            else if (y[i] == x[i] * s) ++scaled;
          }
          if (scaled == H * W) ++kept;
          else if (zeros != H * W) ++mixed;
        }
      EXPECT_EQ(mixed, 0) << "layout " << layout << " p " << p;
      EXPECT_GT(kept, 0);
      EXPECT_LT(kept, N * C);
    }
}

// Exact-zero calls with more than SDROP_SKIP_DROPPED_BYTES (1 MiB by default) of output take
// the rows kernels' other loop, which fills dropped rows without reading x: the same bits, dense,
// strided, reversed and in place, in both modes (multiply always reads x).
TEST_P(Forward, LargeRowsCallsThatSkipDroppedRows) {
  // Past the build's threshold in every dtype: 2 x 64 x 65 x 65 with the default 1 MiB.
  const int64_t n = int64_t(SDROP_TEST_SKIP_DROPPED_BYTES) / (64 * 65 * 65 * 2) + 1;
  const std::vector<int64_t> shape = {n, 64, 65, 65};
  std::mt19937_64 rng(21);
  for (double p : {0.1, 0.5, 0.9})
    for (bool multiply : {false, true}) {
      auto t = [&] {
        DropoutTester d;
        d.shape(shape).dtype(GetParam()).mask_axes(0x3).p(p).multiply(multiply).seed(rng())
            .offset(rng()).rng_seed(rng());
        return d;
      };
      t().Test();
      t().inplace(true).Test();
      t().x_strides({64 * 65 * 66, 65 * 66, 66, 1}).Test();           // padded rows
      t().x_strides(Strides(shape, Identity(4), {}, 0xFu)).Test();    // every axis reversed
      t().y_strides(Strides(shape, Identity(4), {1, 1, 1, 2})).Test();  // y not unit-stride
    }
}

// Past SDROP_MEMSET_DROPPED_BYTES (4 MiB by default) exact-zero rows calls whose rows of y are
// contiguous fill dropped rows by memset and run the kernel on the runs of kept rows only:
// the same bits again, dense, in place, with x padded or reversed, at every p including the
// ends (all kept, all dropped).
TEST_P(Forward, LargeRowsCallsThatMemsetDroppedRows) {
  // Past 8 MiB the tensors get slow to check; the test command's sanitizer build sets the
  // threshold to 4 MiB whatever the tuning table says, and runs this there.
  if (uint64_t(SDROP_TEST_MEMSET_DROPPED_BYTES) > (uint64_t(8) << 20))
    GTEST_SKIP() << "this build takes the memset route past "
                 << SDROP_TEST_MEMSET_DROPPED_BYTES << " bytes only (tested at 4 MiB in build/asan)";
  const int64_t n = int64_t(SDROP_TEST_MEMSET_DROPPED_BYTES) / (64 * 65 * 65 * 2) + 1;
  const std::vector<int64_t> shape = {n, 64, 65, 65};
  std::mt19937_64 rng(22);
  for (double p : {0.0, 0.1, 0.5, 0.9, 1.0}) {
    auto t = [&] {
      DropoutTester d;
      d.shape(shape).dtype(GetParam()).mask_axes(0x3).p(p).seed(rng()).offset(rng())
          .rng_seed(rng());
      return d;
    };
    t().Test();
    t().inplace(true).Test();
    t().x_strides({64 * 65 * 66, 65 * 66, 66, 1}).Test();         // padded rows
    t().x_strides(Strides(shape, Identity(4), {}, 0xFu)).Test();  // every axis reversed
  }
}

}  // namespace
}  // namespace sdrop_test
