// The fused pipeline of bias_relu_dropout_generator.cpp, built on <sdrop/halide.h>, gives what
// the unfused sequence gives: t = relu(x + bias[c]) stored as float32, then sdrop_forward(t)
// with NCHW spatial dropout, bit for bit, for any p, seed, offset and both dropped-value modes.
#include <gtest/gtest.h>
#include <sdrop/common/dropout_constants.h>
#include <sdrop/sdrop.h>

#include <cstring>
#include <random>
#include <vector>

#include "HalideBuffer.h"
#include "sdrop_bias_relu_dropout.h"

namespace {

struct Case {
  int64_t n, c, h, w;
};

void CheckAgainstTheLibrary(const Case& s, double p, uint64_t seed, uint64_t offset,
                            bool multiply, uint64_t salt) {
  const size_t count = size_t(s.n * s.c * s.h * s.w);
  std::mt19937_64 rng(salt);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(count), bias(size_t(s.c)), t(count), want(count), got(count, -1.0f);
  for (float& v : x) v = normal(rng);
  for (float& v : bias) v = normal(rng);
  // x = -inf or NaN would be a case of its own; here: the same float32 relu as the pipeline's.
  for (size_t i = 0; i < count; i++) {
    const float v = x[i] + bias[(i / size_t(s.h * s.w)) % size_t(s.c)];
    t[i] = v > 0.0f ? v : 0.0f;
  }
  int64_t shape[4] = {s.n, s.c, s.h, s.w};
  DLTensor tt{t.data(), {kDLCPU, 0}, 4, {kDLFloat, 32, 1}, shape, nullptr, 0};
  DLTensor tw{want.data(), {kDLCPU, 0}, 4, {kDLFloat, 32, 1}, shape, nullptr, 0};
  const sdrop_params prm{p, seed, offset, sdrop_spatial_axes(4, SDROP_CHANNELS_FIRST),
                         multiply ? uint32_t(SDROP_FLAG_MULTIPLY) : 0u};
  ASSERT_EQ(sdrop_forward(&prm, &tt, &tw), SDROP_OK) << sdrop_last_error();

  const sdrop::DropoutConstants k = sdrop::dropout_constants(p, sdrop::DType::f32, false);
  Halide::Runtime::Buffer<float, 4> xb(x.data(), int(s.w), int(s.h), int(s.c), int(s.n));
  Halide::Runtime::Buffer<float, 1> bb(bias.data(), int(s.c));
  Halide::Runtime::Buffer<float, 4> yb(got.data(), int(s.w), int(s.h), int(s.c), int(s.n));
  ASSERT_EQ(sdrop_bias_relu_dropout(xb, bb, seed, offset, k.threshold, k.keep_all, k.scale_f32,
                                    multiply, yb),
            0);
  for (size_t i = 0; i < count; i++) {
    uint32_t a, b;
    std::memcpy(&a, &got[i], 4);
    std::memcpy(&b, &want[i], 4);
    if (a != b) {
      ADD_FAILURE() << "element " << i << ": fused " << got[i] << " (0x" << std::hex << a
                    << "), sdrop " << want[i] << " (0x" << b << std::dec << "); shape " << s.n
                    << "x" << s.c << "x" << s.h << "x" << s.w << ", p " << p << ", seed "
                    << seed << ", offset " << offset << ", multiply " << multiply;
      return;
    }
  }
}

TEST(HalideLibrary, FusedBiasReluDropoutEqualsReluThenSdropForward) {
  const std::vector<Case> cases = {{2, 3, 5, 7}, {4, 16, 8, 8}, {3, 5, 1, 33}, {1, 1, 1, 1},
                                   {8, 64, 4, 4}, {2, 300, 3, 5}};  // masks past one Philox block
  uint64_t salt = 1;
  for (const Case& s : cases)
    for (double p : {0.0, 0.1, 0.5, 0.9, 1.0})
      for (bool multiply : {false, true}) {
        CheckAgainstTheLibrary(s, p, 0x9E3779B97F4A7C15ull + salt, salt * 0x100000001ull,
                               multiply, salt);
        salt++;
        if (testing::Test::HasFailure()) return;
      }
}

TEST(HalideLibrary, ConstantsAreTheRuntimes) {
  // p whose 1 - p rounds across a threshold boundary, and p = 0 (keep_all).
  for (double p : {0.0, 1e-300, 0.25, 0.5, 0.7, 1.0 - 1e-12}) {
    CheckAgainstTheLibrary({4, 16, 3, 3}, p, 42, 7, false, 99);
    if (testing::Test::HasFailure()) return;
  }
  const sdrop::DropoutConstants zero = sdrop::dropout_constants(0.0, sdrop::DType::f32, false);
  EXPECT_TRUE(zero.keep_all);
  EXPECT_EQ(zero.scale_f32, 1.0f);
  const sdrop::DropoutConstants half = sdrop::dropout_constants(0.5, sdrop::DType::f32, false);
  EXPECT_FALSE(half.keep_all);
  EXPECT_EQ(half.threshold, 0x80000000u);
  EXPECT_EQ(half.scale_f32, 2.0f);
  EXPECT_TRUE(sdrop::dropout_constants(1.0, sdrop::DType::f32, false).keep_none);
  // PyTorch's float16 rounding of s = 1/0.7 (1.428571...) is 1.4287109375.
  EXPECT_EQ(sdrop::dropout_constants(0.3, sdrop::DType::f16, true).scale_f32, 1.4287109375f);
}

}  // namespace
