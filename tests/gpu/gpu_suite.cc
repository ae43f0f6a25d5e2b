// The GPU suite, written once and run on every backend variant of the binary (Backends(): the
// OpenCL device, CUDA on a created stream and on the legacy default stream). Every result is
// compared bit for bit with the same call on CPU tensors and, for all but the largest tensors,
// with the scalar reference (gpu_tester.h); refusals return the right status, name the
// argument and write nothing. A backend that cannot run here skips with the reason.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gpu_tester.h"

namespace sdrop_gpu_test {
namespace {

using Op = CallOp;

const std::vector<double> kPs = {0.0, 0.1, 0.5, 0.9, 1.0};

// Three layouts that land on the three kernel shapes (rows, channels_last, elementwise).
struct KernelShape {
  const char* name;
  std::vector<int64_t> shape;
  uint32_t axes;
};
const std::vector<KernelShape>& KernelShapes() {
  static const std::vector<KernelShape> v = {
      {"channels_first", {3, 5, 7, 11}, sdrop_spatial_axes(4, SDROP_CHANNELS_FIRST)},
      {"channels_last", {3, 7, 11, 5}, sdrop_spatial_axes(4, SDROP_CHANNELS_LAST)},
      {"elementwise", {3, 5, 7, 11}, 0xFu}};
  return v;
}

// Channels first / last for ranks 2..5, element-wise, per sample, unbatched, other noise
// shapes, and ranks 0 and 1.
struct LayoutCase {
  std::string name;
  std::vector<int64_t> shape;
  uint32_t mask_axes;
};
std::vector<LayoutCase> LayoutCases() {
  std::vector<LayoutCase> v;
  const std::vector<std::vector<int64_t>> shapes = {
      {5, 7}, {3, 5, 33}, {2, 3, 9, 13}, {2, 3, 4, 5, 6}};
  for (const auto& s : shapes) {
    const int r = static_cast<int>(s.size());
    const std::string rank = "rank" + std::to_string(r);
    v.push_back({"channels_first_" + rank, s, sdrop_spatial_axes(r, SDROP_CHANNELS_FIRST)});
    v.push_back({"channels_last_" + rank, s, sdrop_spatial_axes(r, SDROP_CHANNELS_LAST)});
    v.push_back({"elementwise_" + rank, s, (1u << r) - 1u});
    v.push_back({"per_sample_" + rank, s, 1u});
    v.push_back({"one_draw_" + rank, s, 0u});
  }
  v.push_back({"rank0_scalar", {}, 0u});
  v.push_back({"rank1_elementwise", {37}, 1u});
  v.push_back({"rank1_one_draw", {37}, 0u});
  v.push_back({"unbatched_C_H_W", {6, 5, 7}, 1u});
  v.push_back({"noise_axes_1_3", {3, 4, 5, 6}, 0xAu});
  v.push_back({"noise_axis_2", {3, 4, 5, 6}, 0x4u});
  v.push_back({"noise_axes_1_2_rank5", {2, 3, 4, 5, 6}, 0x6u});
  v.push_back({"noise_axes_0_2_4_rank5", {2, 3, 4, 5, 6}, 0x15u});
  v.push_back({"extent1_axes", {1, 4, 1, 9}, 0x3u});
  return v;
}

// Layouts of a rank-4 tensor: permuted, with gaps, reversed, broadcast input.
struct StrideCase {
  std::string name;
  std::vector<int64_t> x, y;
};
std::vector<StrideCase> StrideCases(const std::vector<int64_t>& shape) {
  using sdrop_test::Identity;
  using sdrop_test::Strides;
  const std::vector<int64_t> compact = sdrop_test::Compact(shape);
  std::vector<StrideCase> v;
  v.push_back({"x_transposed_NHWC", Strides(shape, {0, 2, 3, 1}), compact});
  v.push_back({"y_transposed_NHWC", compact, Strides(shape, {0, 2, 3, 1})});
  v.push_back({"both_transposed_HW_swapped", Strides(shape, {0, 1, 3, 2}), Strides(shape, {0, 1, 3, 2})});
  v.push_back({"x_gaps", Strides(shape, Identity(4), {1, 2, 1, 3}), compact});
  v.push_back({"y_gaps", compact, Strides(shape, Identity(4), {2, 1, 3, 2})});
  v.push_back({"x_negative_inner", Strides(shape, Identity(4), {}, 0x8u), compact});
  v.push_back({"y_negative_all", compact, Strides(shape, Identity(4), {}, 0xFu)});
  v.push_back({"both_negative_channels", Strides(shape, Identity(4), {}, 0x2u),
               Strides(shape, Identity(4), {}, 0x2u)});
  v.push_back({"x_negative_transposed_gaps", Strides(shape, {3, 1, 0, 2}, {1, 2, 1, 2}, 0x5u),
               Strides(shape, {2, 0, 3, 1}, {}, 0x8u)});
  // Zero strides are allowed on inputs (docs/refusals.md#accepted): x broadcast along H and W.
  v.push_back({"x_zero_strides_broadcast", {3, 1, 0, 0}, compact});
  return v;
}

// ---- Fixtures: (backend, dtype), and backend alone for what has no input dtype --------------

using BackendDtype = std::tuple<const Backend*, DLDataType>;

class GpuDtype : public GpuFixture, public testing::WithParamInterface<BackendDtype> {
 protected:
  void SetUp() override { Start(std::get<0>(GetParam())); }
  DLDataType dtype() const { return std::get<1>(GetParam()); }
  size_t es() const { return ElementSize(dtype()); }
  // A case of this dtype; on a backend without it (float64 without cl_khr_fp64) the call must
  // be refused as UNSUPPORTED, writing nothing.
  GpuTester Case(const Device& dev) const {
    GpuTester c(dev);
    c.dtype(dtype());
    const sdrop_status want = backend().DtypeStatus(dtype());
    if (want != SDROP_OK) c.expect_status(want);
    return c;
  }
  GpuTester Case() const { return Case(dev_); }
};

std::string BackendDtypeName(const testing::TestParamInfo<BackendDtype>& info) {
  return std::get<0>(info.param)->name() + "_" + sdrop_test::DTypeString(std::get<1>(info.param));
}
INSTANTIATE_TEST_SUITE_P(Gpu, GpuDtype,
                         testing::Combine(testing::ValuesIn(Backends()),
                                          testing::ValuesIn(sdrop_test::AllDTypes())),
                         BackendDtypeName);

class GpuBackend : public GpuFixture, public testing::WithParamInterface<const Backend*> {
 protected:
  void SetUp() override { Start(GetParam()); }
};

std::string BackendName(const testing::TestParamInfo<const Backend*>& info) {
  return info.param->name();
}
INSTANTIATE_TEST_SUITE_P(Gpu, GpuBackend, testing::ValuesIn(Backends()), BackendName);

class GpuRefusal : public RefusalFixture, public testing::WithParamInterface<const Backend*> {
 protected:
  void SetUp() override { StartRefusals(GetParam()); }
};
INSTANTIATE_TEST_SUITE_P(Gpu, GpuRefusal, testing::ValuesIn(Backends()), BackendName);

// ---- Values: every dtype, both drop modes, every p ----------------------------------------------

TEST_P(GpuDtype, ForwardAndBackwardEveryModeAndP) {
  std::mt19937_64 rng(101);
  for (const KernelShape& k : KernelShapes())
    for (Op op : {Op::kForward, Op::kBackward})
      for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY})
        for (double p : kPs) {
          if (Stop()) return;
          SCOPED_TRACE(k.name);
          Case().op(op).shape(k.shape).mask_axes(k.axes).flags(flags).p(p).seed(rng())
              .offset(rng()).rng_seed(rng()).Run();
        }
}

// NaN (quiet, signaling, payloads), +-Inf, +-0, subnormals, extremes: dropped ones are +0.0 in
// the default mode and x * 0 with SDROP_FLAG_MULTIPLY; p = 0 copies them exactly.
TEST_P(GpuDtype, NanInfSignedZeroSubnormal) {
  std::mt19937_64 rng(102);
  for (const KernelShape& k : KernelShapes())
    for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY})
      for (double p : {0.0, 0.5, 1.0}) {
        if (Stop()) return;
        SCOPED_TRACE(k.name);
        Case().shape(k.shape).mask_axes(k.axes).flags(flags).p(p).values(Values::kSpecials)
            .seed(rng()).rng_seed(rng()).Run();
      }
}

// The same seed gives the same (sample, channel) drops in both layouts, on the device too.
TEST_P(GpuDtype, ChannelsFirstAndLastDropTheSameChannels) {
  if (backend().DtypeStatus(dtype()) != SDROP_OK)
    GTEST_SKIP() << sdrop_test::DTypeString(dtype()) << " does not run on this device";
  const std::vector<int64_t> nchw{3, 6, 5, 7}, nhwc{3, 5, 7, 6};
  sdrop_ref::DType t;
  ASSERT_TRUE(sdrop_ref::DTypeFromDL(dtype(), &t));
  const uint64_t one = sdrop_test::FromDouble(t, 1.0);
  auto ones = [one](int64_t) { return one; };
  const std::vector<uint8_t> a =
      Case().shape(nchw).mask_axes(sdrop_spatial_axes(4, SDROP_CHANNELS_FIRST)).x_bits(ones).Run();
  const std::vector<uint8_t> b =
      Case().shape(nhwc).mask_axes(sdrop_spatial_axes(4, SDROP_CHANNELS_LAST)).x_bits(ones).Run();
  // Both buffers: 64 guard bytes, then the compact tensor.
  const size_t g = TensorBuffer::kGuard, e = es();
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t c = 0; c < 6; ++c) {
      const size_t ia = g + e * static_cast<size_t>(((n * 6 + c) * 5 + 0) * 7 + 0);
      const size_t ib = g + e * static_cast<size_t>(((n * 5 + 0) * 7 + 0) * 6 + c);
      ASSERT_LT(ia + e, a.size());
      ASSERT_LT(ib + e, b.size());
      EXPECT_EQ(std::memcmp(&a[ia], &b[ib], e), 0) << "sample " << n << " channel " << c;
    }
}

// ---- Layouts: ranks 0..8, channels first / last, element-wise and other noise shapes ------------

TEST_P(GpuDtype, EveryRankAndNoiseShape) {
  std::mt19937_64 rng(103);
  for (const LayoutCase& lc : LayoutCases())
    for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
      if (Stop()) return;
      SCOPED_TRACE(lc.name);
      Case().shape(lc.shape).mask_axes(lc.mask_axes).flags(flags).p(0.5).seed(rng())
          .rng_seed(rng()).Run();
      Case().op(Op::kBackward).shape(lc.shape).mask_axes(lc.mask_axes).flags(flags).p(0.1)
          .seed(rng()).rng_seed(rng()).Run();
    }
}

// Ranks up to 8 are accepted (docs/refusals.md#accepted): the runtime loops over the axes the
// kernels lack.
TEST_P(GpuDtype, Ranks6To8) {
  std::mt19937_64 rng(111);
  for (int i = 0; i < 24 && !Stop(); ++i) {
    const int rank = 6 + i % 3;
    std::vector<int64_t> shape(rank);
    for (auto& e : shape) e = 1 + static_cast<int64_t>(rng() % 3);
    const uint32_t all = (1u << rank) - 1u;
    const uint32_t axes = i % 4 == 0   ? sdrop_spatial_axes(rank, SDROP_CHANNELS_FIRST)
                          : i % 4 == 1 ? sdrop_spatial_axes(rank, SDROP_CHANNELS_LAST)
                          : i % 4 == 2 ? all
                                       : static_cast<uint32_t>(rng()) & all;
    Case().op(i % 5 == 0 ? Op::kApplyMask : Op::kForward).shape(shape)
        .x_strides(sdrop_test::RandomStrides(shape, rng))
        .y_strides(sdrop_test::RandomStrides(shape, rng)).mask_axes(axes)
        .flags(i % 2 ? SDROP_FLAG_MULTIPLY : 0u).p(0.5).seed(rng()).rng_seed(rng()).Run();
  }
}

// ---- Strides: transposed, gaps, negative, broadcast inputs, NULL -----------------------------------

TEST_P(GpuDtype, NonContiguousTransposedAndNegativeStrides) {
  const std::vector<int64_t> shape{2, 3, 9, 13};
  std::mt19937_64 rng(104);
  for (const StrideCase& sc : StrideCases(shape))
    for (uint32_t axes : {0x3u, 0x9u, 0xFu, 0x1u})
      for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
        if (Stop()) return;
        SCOPED_TRACE(sc.name);
        Case().shape(shape).x_strides(sc.x).y_strides(sc.y).mask_axes(axes).flags(flags).p(0.5)
            .seed(rng()).rng_seed(rng()).Run();
      }
}

TEST_P(GpuDtype, RandomStridesAndRanks) {
  std::mt19937_64 rng(105);
  for (int i = 0; i < 40 && !Stop(); ++i) {
    const int rank = static_cast<int>(rng() % 6);
    std::vector<int64_t> shape(rank);
    for (auto& e : shape) e = 1 + static_cast<int64_t>(rng() % 6);
    const uint32_t axes = rank == 0 ? 0u : static_cast<uint32_t>(rng()) & ((1u << rank) - 1u);
    Case().op(i % 3 == 0 ? Op::kBackward : Op::kForward).shape(shape)
        .x_strides(sdrop_test::RandomStrides(shape, rng))
        .y_strides(sdrop_test::RandomStrides(shape, rng)).mask_axes(axes)
        .flags(i % 2 ? SDROP_FLAG_MULTIPLY : 0u).p(kPs[rng() % kPs.size()]).seed(rng())
        .offset(rng()).rng_seed(rng()).Run();
  }
}

// NULL strides mean compact row-major, on the device as on the CPU.
TEST_P(GpuDtype, NullStrides) {
  Case().shape({2, 3, 9, 13}).null_strides(true).mask_axes(0x3u).p(0.5).Run();
  Case().shape({2, 9, 13, 3}).null_strides(true).mask_axes(0x9u).p(0.5).Run();
}

// Drop probabilities at the edges of the threshold T = nearbyint((1 - p) 2^32)
// (docs/rng.md#threshold):
// tiny p (keep all or nearly all), the half-way cases, p just below 1 (keep none, huge scale).
TEST_P(GpuDtype, ThresholdEdges) {
  const double two32 = 4294967296.0;
  const std::vector<double> ps = {1e-12, 0.5 / two32, 1.5 / two32, 2.5 / two32, 1e-6,
                                  1.0 / 3.0, 0.3141592653589793, 0.999999,
                                  std::nextafter(1.0, 0.0)};
  std::mt19937_64 rng(112);
  for (double p : ps)
    for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
      if (Stop()) return;
      Case().shape({4, 6, 33}).mask_axes(0x7u).flags(flags).p(p).seed(rng()).rng_seed(rng())
          .Run();
      Case().op(Op::kApplyMask).shape({4, 6, 33}).mask_axes(0x3u).flags(flags).p(p)
          .rng_seed(rng()).Run();
    }
}

// ---- byte_offset into the buffer (a multiple of the element size), or in the pointer ------------

TEST_P(GpuDtype, ByteOffsetsOnXAndY) {
  const std::vector<int64_t> shape{2, 3, 9, 13};
  const uint64_t e = es();
  const std::vector<int64_t> neg = sdrop_test::Strides(shape, sdrop_test::Identity(4), {}, 0xBu);
  std::mt19937_64 rng(106);
  std::vector<bool> in_pointer{false};
  if (backend().offset_in_pointer()) in_pointer.push_back(true);
  for (bool p : in_pointer) {
    SCOPED_TRACE(p ? "offset in the pointer" : "offset in byte_offset");
    Device dev = dev_;
    dev.offset_in_pointer = p;
    for (uint64_t xo : {uint64_t{0}, e, 7 * e, 1000 * e})
      for (uint64_t yo : {uint64_t{0}, 3 * e, 333 * e})
        for (uint32_t axes : {0x3u, 0x9u, 0xFu}) {
          if (Stop()) return;
          Case(dev).shape(shape).x_byte_offset(xo).y_byte_offset(yo).mask_axes(axes).p(0.5)
              .seed(rng()).rng_seed(rng()).Run();
        }
    // With negative strides: data + byte_offset is element 0, lower addresses inside the buffer.
    Case(dev).shape(shape).x_strides(neg).y_strides(neg).x_byte_offset(5 * e).y_byte_offset(e)
        .mask_axes(0x3u).p(0.5).Run();
    Case(dev).shape(shape).x_strides(neg).inplace(true).x_byte_offset(9 * e).mask_axes(0x9u)
        .p(0.5).Run();
  }
}

// ---- In place: y == x ---------------------------------------------------------------------------

TEST_P(GpuDtype, InPlace) {
  std::mt19937_64 rng(107);
  const std::vector<int64_t> shape{2, 3, 9, 13};
  const std::vector<std::vector<int64_t>> layouts = {
      {},
      sdrop_test::Strides(shape, {0, 2, 3, 1}),
      sdrop_test::Strides(shape, sdrop_test::Identity(4), {1, 2, 1, 2}, 0x9u)};
  for (const auto& strides : layouts)
    for (Op op : {Op::kForward, Op::kBackward, Op::kApplyMask})
      for (uint32_t axes : {0x3u, 0x9u, 0xFu})
        for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
          if (Stop()) return;
          Case().op(op).shape(shape).x_strides(strides).inplace(true).x_byte_offset(es() * 2)
              .mask_axes(axes).flags(flags).p(0.5).seed(rng()).rng_seed(rng()).Run();
        }
  // y's own strides, differing from x's only on an extent-1 axis: still in place.
  Case().shape({2, 1, 9, 13}).inplace(true).inplace_y_strides({117, 5, 13, 1}).mask_axes(0x3u)
      .p(0.5).Run();
}

// ---- sdrop_apply_mask ---------------------------------------------------------------------------

TEST_P(GpuDtype, ApplyMaskUint8AndBool) {
  std::mt19937_64 rng(108);
  for (const KernelShape& k : KernelShapes())
    for (DLDataType md : {kU8, kBool})
      for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY})
        for (double p : kPs) {
          if (Stop()) return;
          SCOPED_TRACE(k.name);
          Case().op(Op::kApplyMask).mask_dtype(md).shape(k.shape).mask_axes(k.axes).flags(flags)
              .p(p).values(p == 0.5 ? Values::kSpecials : Values::kMixed).rng_seed(rng()).Run();
        }
  // Strided mask with an offset, strided x and y.
  const std::vector<int64_t> shape{2, 3, 9, 13};
  Case().op(Op::kApplyMask).shape(shape).mask_axes(0x3u).mask_strides({1, -2, 5, 3})
      .mask_byte_offset(5).x_strides(sdrop_test::Strides(shape, {0, 2, 3, 1}))
      .y_byte_offset(es() * 3).p(0.25).Run();
  Case().op(Op::kApplyMask).shape(shape).mask_axes(0xFu)
      .mask_strides(sdrop_test::Strides(shape, {3, 2, 1, 0}, {}, 0x4u)).p(0.5).Run();
}

// ---- Empty tensors: OK, nothing written ------------------------------------------------------------

TEST_P(GpuDtype, EmptyTensorsWriteNothing) {
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{0}, {2, 0, 3}, {0, 4, 5, 6}, {3, 0}})
    for (Op op : {Op::kForward, Op::kBackward, Op::kApplyMask})
      for (bool null_data : {false, true}) {
        const uint32_t axes = static_cast<uint32_t>((1u << shape.size()) - 1u) & 0x3u;
        const std::vector<uint8_t> got =
            Case().op(op).shape(shape).mask_axes(axes).null_data_if_empty(null_data).p(0.5).Run();
        for (size_t i = 0; i < got.size(); ++i)
          if (got[i] != 0xA5) {
            ADD_FAILURE() << "byte " << i << " of an empty output was written";
            break;
          }
      }
}

// ---- Sizes: several work-groups / blocks, not multiples of 256 ------------------------------------

TEST_P(GpuDtype, SeveralBlocksAndRaggedSizes) {
  std::mt19937_64 rng(109);
  struct S { std::vector<int64_t> shape; uint32_t axes; };
  const std::vector<S> cases = {
      {{2, 3, 2777}, 0x3u},            // rows longer than a block, ragged
      {{1, 1, 1025}, 0x3u},            {{4, 5, 255}, 0x3u}, {{3, 257}, 0x1u},
      {{2, 37, 29, 45}, 0x9u},         // channels last: more than 32 channels, ragged
      {{1, 130, 33}, 0x5u},            {{2, 100003}, 0x3u},  // element-wise, ragged
      {{7, 1023}, 0x3u},               {{3, 11, 300, 301}, 0x3u}};
  for (const S& s : cases)
    for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
      if (Stop()) return;
      Case().shape(s.shape).mask_axes(s.axes).flags(flags).p(0.5).seed(rng()).rng_seed(rng())
          .Run();
    }
}

// A tensor of many blocks (the backend's size: 2^23 + 5 elements on OpenCL, 2^26 on CUDA),
// checked against the CPU, channels first and last.
TEST_P(GpuDtype, LargeTensor) {
  if (!backend().main_variant() && dtype().bits != 32)
    GTEST_SKIP() << "float32 only on " << backend().name() << " (every dtype on the main variant)";
  const LargeCase large = backend().large();
  const std::vector<int64_t>& s = large.nchw;
  Case().shape(s).mask_axes(0x3u).p(0.5).values(large.values).reference(false).Run();
  Case().shape({s[0], s[2], s[3], s[1]}).mask_axes(0x9u).p(0.1).flags(SDROP_FLAG_MULTIPLY)
      .values(large.values).reference(false).Run();
}

// ---- float16 (with or without cl_khr_fp16) and bfloat16: every bit pattern -----------------------

TEST_P(GpuDtype, EveryBitPatternOf16BitTypes) {
  if (es() != 2) GTEST_SKIP() << "16-bit types only";
  auto all = [](int64_t i) { return static_cast<uint64_t>(i); };
  for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY})
    for (double p : {0.0, 0.1, 0.5, 0.9, 1.0, 1.0 / 3.0}) {
      Case().shape({65536}).mask_axes(1u).flags(flags).p(p).x_bits(all).Run();
      Case().shape({256, 256}).mask_axes(1u).flags(flags).p(p).x_bits(all).Run();
      Case().op(Op::kApplyMask).shape({256, 256}).mask_axes(2u).flags(flags).p(p).x_bits(all)
          .Run();
    }
}

// ---- sdrop_mask -----------------------------------------------------------------------------------

TEST_P(GpuBackend, MaskUint8AndBool) {
  std::mt19937_64 rng(110);
  struct S { std::vector<int64_t> shape; uint32_t axes; };
  const std::vector<S> cases = {
      {{4, 8, 1, 1}, 0x3u}, {{4, 1, 1, 8}, 0x9u}, {{3, 5, 7}, 0x7u}, {{}, 0u},
      {{1, 1, 1}, 0x0u},    {{37}, 0x1u},         {{2, 3, 4, 5, 6}, 0x1Fu}, {{6, 1, 1000}, 0x5u},
      {{1, 1 << 20 | 7}, 0x3u}};
  for (const S& s : cases)
    for (DLDataType md : {kU8, kBool})
      for (double p : kPs) {
        if (Stop()) return;
        Case().op(Op::kMask).mask_dtype(md).shape(s.shape).mask_axes(s.axes).p(p).seed(rng())
            .offset(rng()).Run();
      }
  // Strided, reversed, with an offset (uint8: any byte offset).
  Case().op(Op::kMask).shape({5, 1, 1, 9}).mask_axes(0x9u).y_strides({-1, 1, 1, 7})
      .y_byte_offset(3).p(0.5).Run();
  Case().op(Op::kMask).mask_dtype(kBool).shape({6, 4}).mask_axes(0x3u).y_strides({2, 13})
      .y_byte_offset(11).p(0.3).Run();
  // Flags are ignored; empty masks write nothing.
  Case().op(Op::kMask).shape({4, 8}).flags(SDROP_FLAG_MULTIPLY).p(0.5).Run();
  Case().op(Op::kMask).shape({4, 0}).mask_axes(0x3u).p(0.5).Run();
  Case().op(Op::kMask).shape({0, 8}).mask_axes(0x3u).null_data_if_empty(true).p(0.5).Run();
}

// ---- The handles and threads ------------------------------------------------------------------------

// The handles are the caller's and per thread: a new thread starts with none.
TEST_P(GpuBackend, HandlesAreTheCallersAndPerThread) {
  void* ctx = reinterpret_cast<void*>(1);
  void* queue = reinterpret_cast<void*>(1);
  backend().GetHandles(&ctx, &queue);
  EXPECT_EQ(ctx, backend().context());
  EXPECT_EQ(queue, backend().queue());
  std::thread([this] {
    void* c = reinterpret_cast<void*>(1);
    void* q = reinterpret_cast<void*>(1);
    backend().GetHandles(&c, &q);
    EXPECT_EQ(c, nullptr) << "a new thread starts without a context";
    EXPECT_EQ(q, nullptr) << "a new thread starts without a queue / stream";
  }).join();
  backend().GetHandles(&ctx, &queue);  // untouched by the other thread
  EXPECT_EQ(ctx, backend().context());
  EXPECT_EQ(queue, backend().queue());
}

// A thread that sets the queue itself gets the same results as the CPU.
TEST_P(GpuBackend, AnotherThreadThatSetsTheQueue) {
  std::thread([this] {
    ASSERT_EQ(backend().SetQueue(backend().queue()), SDROP_OK) << sdrop_last_error();
    void* c = reinterpret_cast<void*>(1);
    void* q = reinterpret_cast<void*>(1);
    backend().GetHandles(&c, &q);
    EXPECT_EQ(c, backend().context());
    EXPECT_EQ(q, backend().queue());
    Case().shape({2, 3, 9, 13}).mask_axes(0x3u).p(0.5).Run();
    Case().op(Op::kMask).shape({2, 3}).mask_axes(0x3u).p(0.5).Run();
  }).join();
}

// Several threads at once, each on its own queue / stream, each running a mix of ops and dtypes:
// the kernels compiled and cached per context are shared, and every result still matches the CPU.
TEST_P(GpuBackend, ConcurrentThreadsWithTheirOwnQueues) {
  constexpr int kThreads = 4;
  std::vector<Queue> queues;
  for (int t = 0; t < kThreads; ++t) {
    queues.push_back(backend().ThreadQueue(t));
    ASSERT_NE(queues.back(), nullptr) << "queue " << t;
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &queues] {
      ASSERT_EQ(backend().SetQueue(queues[t]), SDROP_OK) << sdrop_last_error();
      const Device dev{&backend(), queues[t]};
      std::mt19937_64 rng(300 + t);
      const std::vector<DLDataType>& dtypes = sdrop_test::AllDTypes();
      for (int i = 0; i < 12; ++i) {
        const DLDataType dt = dtypes[(t + i) % dtypes.size()];
        const KernelShape& k = KernelShapes()[(t * 7 + i) % KernelShapes().size()];
        const Op op = i % 4 == 3 ? Op::kApplyMask : i % 4 == 2 ? Op::kMask : Op::kForward;
        GpuTester c(dev);
        c.op(op).shape(k.shape).mask_axes(k.axes).p(kPs[(t + i) % kPs.size()]).seed(rng())
            .rng_seed(rng());
        if (op == Op::kMask) {
          c.shape(sdrop_ref::NoiseShape(k.shape, k.axes));
        } else {
          c.dtype(dt);
          if (backend().DtypeStatus(dt) != SDROP_OK) c.expect_status(backend().DtypeStatus(dt));
        }
        c.Run();
      }
    });
  }
  for (std::thread& th : threads) th.join();
}

// ---- Refusals -------------------------------------------------------------------------------------

TEST_P(GpuRefusal, MixedDevices) {
  const std::vector<int64_t> s{2, 3, 4, 5};
  std::vector<uint8_t> host(kBytes, 0xA5);
  DevTensor x(dl(), xb->handle(), 0, s, kF32), mask(dl(), mb->handle(), 0, {2, 3, 1, 1}, kU8);
  sdrop_test::HostTensor y(host.data(), s, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y.t); }, SDROP_ERROR_INVALID_ARGUMENT, "y", {&host});
  SDROP_EXPECT_REFUSED([&] { return sdrop_backward(&prm, &x, &y.t); }, SDROP_ERROR_INVALID_ARGUMENT, "dx", {&host});
  SDROP_EXPECT_REFUSED([&] { return sdrop_apply_mask(&prm, &x, &mask, &y.t); },
                       SDROP_ERROR_INVALID_ARGUMENT, "y", {&host});
  // And the other way round: x on the CPU, y on the device; a mask on the CPU with x, y on it.
  sdrop_test::HostTensor hx(host.data(), s, kF32);
  DevTensor y2(dl(), yb->handle(), 0, s, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &hx.t, &y2); }, SDROP_ERROR_INVALID_ARGUMENT, "x", {&host});
  std::vector<uint8_t> hmask(64, 1);
  sdrop_test::HostTensor m2(hmask.data(), {2, 3, 1, 1}, kU8);
  SDROP_EXPECT_REFUSED([&] { return sdrop_apply_mask(&prm, &x, &m2.t, &y2); },
                       SDROP_ERROR_INVALID_ARGUMENT, "mask", {&hmask});
  // Another device id of the same type than the other tensor's.
  DevTensor y3(dl(), yb->handle(), 0, s, kF32);
  y3.device.device_id = dl().device_id + 1;
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y3); }, SDROP_ERROR_INVALID_ARGUMENT, "y");
}

TEST_P(GpuRefusal, ByteOffsetNotAMultipleOfTheElementSize) {
  const std::vector<int64_t> s{2, 3, 4, 5};
  DevTensor x(dl(), xb->handle(), 0, s, kF32), y(dl(), yb->handle(), 0, s, kF32);
  DevTensor xo(dl(), xb->handle(), 2, s, kF32), yo(dl(), yb->handle(), 6, s, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &xo, &y); }, kAnyFailure, "x");
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &yo); }, kAnyFailure, "y");
  SDROP_EXPECT_REFUSED([&] { return sdrop_backward(&prm, &xo, &y); }, kAnyFailure, "dy");
  DevTensor mask(dl(), mb->handle(), 0, {2, 3, 1, 1}, kU8);
  SDROP_EXPECT_REFUSED([&] { return sdrop_apply_mask(&prm, &x, &mask, &yo); }, kAnyFailure, "y");
  DevTensor x64(dl(), xb->handle(), 4, s, kF64), y64(dl(), yb->handle(), 0, s, kF64);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x64, &y64); }, kAnyFailure, "x");
  DevTensor x16(dl(), xb->handle(), 0, s, kF16), y16(dl(), yb->handle(), 1, s, kF16);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x16, &y16); }, kAnyFailure, "y");
  DevTensor yb16(dl(), yb->handle(), 3, s, kBF16), xb16(dl(), xb->handle(), 0, s, kBF16);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &xb16, &yb16); }, kAnyFailure, "y");
}

TEST_P(GpuRefusal, NullDataWithANonEmptyShape) {
  const std::vector<int64_t> s{2, 3, 4, 5};
  DevTensor x(dl(), xb->handle(), 0, s, kF32), y(dl(), nullptr, 0, s, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_INVALID_ARGUMENT, "y");
  DevTensor x0(dl(), nullptr, 0, s, kF32), y0(dl(), yb->handle(), 0, s, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x0, &y0); }, SDROP_ERROR_INVALID_ARGUMENT, "x");
}

// Within one buffer, offsets are compared: anything but exactly in place is refused.
TEST_P(GpuRefusal, PartialOverlapInOneBuffer) {
  const std::vector<int64_t> s{2, 3, 4, 5};
  DevTensor x(dl(), xb->handle(), 0, s, kF32);
  DevTensor y_shift(dl(), xb->handle(), 4, s, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y_shift); }, SDROP_ERROR_INVALID_ARGUMENT, "y");
  SDROP_EXPECT_REFUSED([&] { return sdrop_backward(&prm, &x, &y_shift); }, SDROP_ERROR_INVALID_ARGUMENT, "dx");
  // Same start, other strides (the inner axis reversed).
  DevTensor x_mid(dl(), xb->handle(), 4 * 8, s, kF32);
  DevTensor y_mid_rev(dl(), xb->handle(), 4 * 8, s, kF32, {60, 20, 5, -1});
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x_mid, &y_mid_rev); }, SDROP_ERROR_INVALID_ARGUMENT, "y");
  // The output overlapping itself.
  DevTensor y_self(dl(), yb->handle(), 0, s, kF32, {60, 20, 0, 1});
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y_self); }, SDROP_ERROR_INVALID_ARGUMENT, "y");
  // apply_mask: the mask inside y's byte range of the same buffer.
  DevTensor y(dl(), yb->handle(), 0, s, kF32);
  DevTensor m_in_y(dl(), yb->handle(), 16, {2, 3, 1, 1}, kU8);
  SDROP_EXPECT_REFUSED([&] { return sdrop_apply_mask(&prm, &x, &m_in_y, &y); },
                       SDROP_ERROR_INVALID_ARGUMENT, "mask");
  // The same tensor in place is fine.
  DevTensor xi(dl(), xb->handle(), 0, s, kF32);
  EXPECT_EQ(sdrop_forward(&prm, &x, &xi), SDROP_OK) << sdrop_last_error();
  dev_.Finish();
}

// The counterparts of the overlap refusals: disjoint ranges of one buffer are fine, and a mask
// may share a buffer with x or y as long as it does not intersect y.
TEST_P(GpuRefusal, DisjointRangesOfOneBuffer) {
  const std::vector<int64_t> shape{2, 3, 4, 5};  // 480 bytes of float32
  DeviceBuffer buf(dev_, kBytes);
  std::vector<uint8_t> bytes(kBytes);
  for (size_t i = 0; i < kBytes / 4; ++i) {
    const float v = 0.25f * static_cast<float>(i) - 100.0f;
    std::memcpy(&bytes[4 * i], &v, 4);
  }
  for (size_t i = 3000; i < 3006; ++i) bytes[i] = static_cast<uint8_t>(i % 3 == 0);  // a mask
  struct Place { uint64_t x, y, m; };
  for (const Place& l : {Place{0, 480, 3000}, Place{1000, 0, 3000}, Place{2000, 1000, 484},
                         Place{0, 2000, 2}}) {
    SCOPED_TRACE("x at " + std::to_string(l.x) + ", y at " + std::to_string(l.y) + ", mask at " +
                 std::to_string(l.m));
    for (bool apply : {false, true}) {
      buf.WriteAll(bytes);
      std::vector<uint8_t> cpu = bytes;
      DevTensor x(dl(), buf.handle(), l.x, shape, kF32), y(dl(), buf.handle(), l.y, shape, kF32);
      DevTensor m(dl(), buf.handle(), l.m, {2, 3, 1, 1}, kU8);
      DLTensor cx = OnHost(x, cpu), cy = OnHost(y, cpu), cm = OnHost(m, cpu);
      if (apply) {
        ASSERT_EQ(sdrop_apply_mask(&prm, &cx, &cm, &cy), SDROP_OK) << sdrop_last_error();
        EXPECT_EQ(sdrop_apply_mask(&prm, &x, &m, &y), SDROP_OK) << sdrop_last_error();
      } else {
        ASSERT_EQ(sdrop_forward(&prm, &cx, &cy), SDROP_OK) << sdrop_last_error();
        EXPECT_EQ(sdrop_forward(&prm, &x, &y), SDROP_OK) << sdrop_last_error();
      }
      dev_.Finish();
      EXPECT_TRUE(buf.ReadAll() == cpu) << (apply ? "sdrop_apply_mask" : "sdrop_forward");
    }
  }
  // apply_mask in place with the mask in the same buffer, outside x.
  buf.WriteAll(bytes);
  std::vector<uint8_t> cpu = bytes;
  DevTensor x(dl(), buf.handle(), 0, shape, kF32), m(dl(), buf.handle(), 3000, {2, 3, 1, 1}, kU8);
  DLTensor cx = OnHost(x, cpu), cm = OnHost(m, cpu);
  ASSERT_EQ(sdrop_apply_mask(&prm, &cx, &cm, &cx), SDROP_OK) << sdrop_last_error();
  EXPECT_EQ(sdrop_apply_mask(&prm, &x, &m, &x), SDROP_OK) << sdrop_last_error();
  dev_.Finish();
  EXPECT_TRUE(buf.ReadAll() == cpu) << "in place with the mask in the same buffer";
}

}  // namespace
}  // namespace sdrop_gpu_test
