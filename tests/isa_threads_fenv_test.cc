// The mask and the values are the same for every CPU ISA variant, every thread count and every
// caller floating-point environment (docs/rng.md, docs/testing.md#statistics and
// docs/refusals.md#the-callers-floating-point-environment).
#include <gtest/gtest.h>

#include <cfenv>
#include <random>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define SDROP_TEST_HAVE_MXCSR 1
#endif

#include "dropout_tester.h"

namespace sdrop_test {
namespace {

using Op = DropoutTester::Op;

// A set of shapes, layouts, dtypes, p and modes wide enough to reach every vector loop and tail.
void RunBitExactSuite(uint64_t salt) {
  std::mt19937_64 rng(salt);
  const std::vector<std::vector<int64_t>> shapes = {
      {1}, {3}, {7}, {8}, {15}, {16}, {17}, {31}, {33}, {64}, {100}, {1000}, {4097},
      {2, 3, 37}, {4, 16, 8, 8}, {2, 64, 7, 9}, {3, 5, 2, 3, 33}, {2, 130, 3}};
  for (const auto& shape : shapes)
    for (DLDataType dt : AllDTypes()) {
      const int rank = static_cast<int>(shape.size());
      const std::vector<uint32_t> axes = {rank >= 2 ? sdrop_spatial_axes(rank, SDROP_CHANNELS_FIRST) : 1u,
                                          rank >= 2 ? sdrop_spatial_axes(rank, SDROP_CHANNELS_LAST) : 0u,
                                          (1u << rank) - 1u};
      for (uint32_t a : axes)
        for (double p : {0.0, 0.1, 0.5, 0.9, 1.0})
          for (bool multiply : {false, true}) {
            DropoutTester t;
            t.shape(shape).dtype(dt).mask_axes(a).p(p).multiply(multiply).seed(rng()).offset(rng())
                .rng_seed(rng());
            switch (rng() % 6) {
              case 0: t.inplace(true); break;
              case 1: t.x_strides(RandomStrides(shape, rng)).y_strides(RandomStrides(shape, rng)); break;
              case 2: t.x_misalign(1).y_misalign(3); break;
              case 3: t.op(Op::kApplyMask).mask_dtype(rng() % 2 ? kU8 : kBool); break;
              case 4: t.op(Op::kBackward); break;
              default: break;
            }
            t.Test();
            if (FailedParts() > kEnoughFailures) return;
          }
    }
  for (const auto& shape : std::vector<std::vector<int64_t>>{{1}, {17}, {64}, {3, 1000}, {2, 1, 33}})
    for (DLDataType dt : {kU8, kBool})
      MaskTester().shape(shape).mask_axes((1u << shape.size()) - 1u).dtype(dt).seed(rng())
          .offset(rng()).p(0.37).Test();
}

// ---- CPU ISA variants ----------------------------------------------------------------------------

std::string IsaParamName(const testing::TestParamInfo<sdrop_cpu_isa>& info) {
  return sdrop_cpu_isa_name(info.param);
}

class CpuIsa : public testing::TestWithParam<sdrop_cpu_isa> {
 protected:
  void SetUp() override {
    if (GetParam() > sdrop_get_host_cpu_isa())
      GTEST_SKIP() << "this CPU's best variant is " << sdrop_cpu_isa_name(sdrop_get_host_cpu_isa())
                   << ", below " << sdrop_cpu_isa_name(GetParam());
  }
  void TearDown() override {
    EXPECT_EQ(sdrop_set_max_cpu_isa(SDROP_CPU_ISA_ALL), SDROP_OK);
    EXPECT_EQ(sdrop_get_cpu_isa(), sdrop_get_host_cpu_isa());
  }
};

INSTANTIATE_TEST_SUITE_P(Variants, CpuIsa,
                         testing::Values(SDROP_CPU_ISA_SSE41, SDROP_CPU_ISA_AVX2, SDROP_CPU_ISA_AVX512),
                         IsaParamName);

TEST_P(CpuIsa, ForcedVariantIsReportedAndBitExact) {
  ASSERT_EQ(sdrop_set_max_cpu_isa(GetParam()), SDROP_OK) << sdrop_last_error();
  EXPECT_EQ(sdrop_get_max_cpu_isa(), GetParam());
  EXPECT_EQ(sdrop_get_cpu_isa(), GetParam());
  RunBitExactSuite(100 + GetParam());
}

TEST(CpuIsaCap, CapAboveTheHostRunsTheHostVariant) {
  const sdrop_cpu_isa host = sdrop_get_host_cpu_isa();
  EXPECT_GE(host, SDROP_CPU_ISA_SSE41);
  EXPECT_LE(host, SDROP_CPU_ISA_AVX512);
  EXPECT_EQ(sdrop_set_max_cpu_isa(SDROP_CPU_ISA_AVX512), SDROP_OK);
  EXPECT_EQ(sdrop_get_max_cpu_isa(), SDROP_CPU_ISA_AVX512);
  EXPECT_EQ(sdrop_get_cpu_isa(), host);
  EXPECT_EQ(sdrop_set_max_cpu_isa(SDROP_CPU_ISA_ALL), SDROP_OK);
  EXPECT_EQ(sdrop_get_max_cpu_isa(), SDROP_CPU_ISA_ALL);
  EXPECT_EQ(sdrop_get_cpu_isa(), host);
}

#if defined(__x86_64__) && defined(__GNUC__)
TEST(CpuIsaCap, HostVariantMatchesCpuid) {
  __builtin_cpu_init();
  sdrop_cpu_isa want = SDROP_CPU_ISA_SSE41;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx"))
    want = SDROP_CPU_ISA_AVX2;
  if (want == SDROP_CPU_ISA_AVX2 && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    want = SDROP_CPU_ISA_AVX512;
  EXPECT_EQ(sdrop_get_host_cpu_isa(), want);
}
#endif

// ---- Threads -------------------------------------------------------------------------------------

TEST(Threads, OneTwoAndAllCoresGiveIdenticalResults) {
  struct Case { std::vector<int64_t> shape; DLDataType dt; uint32_t axes; bool inplace; };
  const std::vector<Case> cases = {
      {{8, 32, 48, 48}, kF32, 0x3u, false},
      {{8, 40, 40, 32}, kF16, 0x9u, false},
      {{4, 64, 33, 31}, kBF16, 0x3u, true},
      {{2, 32, 64, 65}, kF64, 0x9u, false},
      {{3, 200000}, kF32, 0x3u, false}};  // element-wise: a large mask
  for (const Case& c : cases) {
    std::vector<std::vector<uint8_t>> outs;
    for (int n : {1, 2, 0, 3}) {
      ScopedNumThreads threads(n);
      outs.push_back(DropoutTester().shape(c.shape).dtype(c.dt).mask_axes(c.axes).p(0.4)
                         .inplace(c.inplace).seed(9).offset(10).rng_seed(11).Test());
      if (testing::Test::HasFailure()) return;
    }
    for (size_t i = 1; i < outs.size(); ++i)
      EXPECT_TRUE(outs[i] == outs[0]) << "thread setting #" << i << " differs";
  }
  std::vector<std::vector<uint8_t>> masks;
  for (int n : {1, 2, 0}) {
    ScopedNumThreads threads(n);
    masks.push_back(MaskTester().shape({4, 300001}).mask_axes(0x3u).p(0.5).Test());
  }
  EXPECT_EQ(masks[0], masks[1]);
  EXPECT_EQ(masks[0], masks[2]);
}

TEST(Threads, GetNumThreadsReportsTheCountActuallyUsed) {
  sdrop_set_num_threads(1);
  EXPECT_EQ(sdrop_get_num_threads(), 1);
  sdrop_set_num_threads(0);
  const int all = sdrop_get_num_threads();
  EXPECT_GE(all, 1);
  sdrop_set_num_threads(-3);  // negative is taken as 0
  EXPECT_EQ(sdrop_get_num_threads(), all);
  sdrop_set_num_threads(0);
}

// ---- The caller's floating-point environment -----------------------------------------------------

#ifdef SDROP_TEST_HAVE_MXCSR
constexpr unsigned kFtz = 0x8000u, kDaz = 0x0040u;
constexpr unsigned kControlBits = 0xFFC0u;  // MXCSR without the sticky exception flags

TEST(FpEnv, BitExactUnderFlushToZeroDenormalsAreZeroAndOtherRoundingModes) {
  const unsigned mxcsr0 = _mm_getcsr();
  const int round0 = std::fegetround();
  std::vector<sdrop_cpu_isa> isas;
  for (sdrop_cpu_isa isa : {SDROP_CPU_ISA_SSE41, SDROP_CPU_ISA_AVX2, SDROP_CPU_ISA_AVX512})
    if (isa <= sdrop_get_host_cpu_isa()) isas.push_back(isa);
  for (sdrop_cpu_isa isa : isas)
    for (int mode : {FE_TOWARDZERO, FE_UPWARD, FE_DOWNWARD, FE_TONEAREST})
      for (unsigned extra : {kFtz | kDaz, 0u}) {
        SCOPED_TRACE(std::string(sdrop_cpu_isa_name(isa)) + " rounding " + std::to_string(mode) +
                     " ftz/daz " + std::to_string(extra != 0));
        ASSERT_EQ(sdrop_set_max_cpu_isa(isa), SDROP_OK);
        for (DLDataType dt : AllDTypes())
          for (double p : {0.3, 0.5, 0.1})
            for (Values v : {Values::kSpecials, Values::kMixed}) {
              std::fesetround(mode);
              _mm_setcsr(_mm_getcsr() | extra);
              const unsigned before = _mm_getcsr();
              const int round_before = std::fegetround();
              // The tester's reference installs the default environment for itself and restores
              // this one; everything else it does is integer work.
              DropoutTester().shape({4, 8, 67}).dtype(dt).mask_axes(0x3u).p(p).values(v)
                  .multiply(p == 0.1).seed(3).offset(4).Test();
              const unsigned after = _mm_getcsr();
              const int round_after = std::fegetround();
              _mm_setcsr(mxcsr0);
              std::fesetround(round0);
              EXPECT_EQ(after & kControlBits, before & kControlBits) << std::hex << "MXCSR changed";
              EXPECT_EQ(round_after, round_before) << "rounding mode changed";
              if (FailedParts() > kEnoughFailures) {
                sdrop_set_max_cpu_isa(SDROP_CPU_ISA_ALL);
                return;
              }
            }
      }
  sdrop_set_max_cpu_isa(SDROP_CPU_ISA_ALL);
}

// The plainest case: a float32 denormal times 2 stays a denormal under the caller's FTZ/DAZ.
TEST(FpEnv, DenormalsStayDenormalsAndTheEnvironmentIsRestored) {
  const unsigned mxcsr0 = _mm_getcsr();
  std::vector<uint32_t> bits = {0x00000001u, 0x00000003u, 0x007FFFFFu, 0x80000010u};
  std::vector<uint32_t> out(bits.size(), 0xFFFFFFFFu);
  HostTensor tx(bits.data(), {4}, kF32), ty(out.data(), {4}, kF32);
  const sdrop_params prm{0.5, 0, 0, 0u, 0};  // no mask axes: one draw for all; p = 0.5 -> s = 2
  const bool keep = sdrop_ref::Keep(0, 0, 0, 0.5);
  _mm_setcsr(mxcsr0 | kFtz | kDaz | 0x6000u);  // FTZ, DAZ, round toward zero
  const unsigned before = _mm_getcsr();
  const sdrop_status st = sdrop_forward(&prm, &tx.t, &ty.t);
  const unsigned after = _mm_getcsr();
  _mm_setcsr(mxcsr0);
  ASSERT_EQ(st, SDROP_OK) << sdrop_last_error();
  EXPECT_EQ(after & kControlBits, before & kControlBits);
  ASSERT_TRUE(keep) << "seed 0 offset 0 m 0 is kept at p = 0.5 (u = 0x6627e8d5)";
  EXPECT_EQ(out, (std::vector<uint32_t>{0x00000002u, 0x00000006u, 0x00FFFFFEu, 0x80000020u}));
}
#endif

}  // namespace
}  // namespace sdrop_test
