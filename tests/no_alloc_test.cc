// The CPU path allocates nothing per call: forward, backward, mask and apply_mask on every
// canonical shape make no malloc call, the first call included (sdrop's thread pool lives in
// static storage; its workers' stacks are the C library's, mapped by pthread_create).
// The test binary is linked with -Wl,--wrap=malloc, so every malloc inside libsdrop.a
// (the Halide runtime included) goes through the counter below.
#include <gtest/gtest.h>
#include <sdrop/sdrop.h>

#include <atomic>
#include <cstdlib>
#include <vector>

extern "C" void* __real_malloc(size_t);
static std::atomic<long> g_mallocs{0};
extern "C" void* __wrap_malloc(size_t n) {
  g_mallocs.fetch_add(1, std::memory_order_relaxed);
  return __real_malloc(n);
}

namespace {

DLTensor f32(std::vector<float>& v, std::vector<int64_t>& shape) {
  return DLTensor{v.data(), {kDLCPU, 0}, int32_t(shape.size()), {kDLFloat, 32, 1}, shape.data(),
                  nullptr, 0};
}

TEST(NoAllocation, NoMallocPerCallOnAnyCanonicalShape) {
  std::vector<int64_t> shape = {8, 64, 32, 32};
  std::vector<float> x(8 * 64 * 32 * 32, 1.0f), y(x.size());
  std::vector<uint8_t> m(8 * 64);
  std::vector<int64_t> mshape = {8, 64, 1, 1};
  DLTensor tx = f32(x, shape), ty = f32(y, shape);
  DLTensor tm{m.data(), {kDLCPU, 0}, 4, {kDLUInt, 8, 1}, mshape.data(), nullptr, 0};
  const uint32_t layouts[] = {sdrop_spatial_axes(4, SDROP_CHANNELS_FIRST),  // rows
                              sdrop_spatial_axes(4, SDROP_CHANNELS_LAST),   // channels_last
                              0xfu};                                        // elementwise
  // The counter works: --wrap=malloc applies to every object of the link, libsdrop.a's
  // members as much as this file.
  const long probe = g_mallocs.load();
  void* volatile q = std::malloc(16);
  std::free(q);
  ASSERT_EQ(g_mallocs.load() - probe, 1) << "--wrap=malloc is not in effect";
  sdrop_set_num_threads(2);
  const long at_start = g_mallocs.load();
  sdrop_params first{0.5, 11, 3, layouts[0], 0};
  ASSERT_EQ(sdrop_forward(&first, &tx, &ty), SDROP_OK) << sdrop_last_error();
  EXPECT_EQ(g_mallocs.load() - at_start, 0) << "the first call (the pool starts) allocated";
  for (uint32_t axes : layouts) {
    for (uint32_t flags : {0u, unsigned(SDROP_FLAG_MULTIPLY)}) {
      sdrop_params p{0.5, 11, 3, axes, flags};
      ASSERT_EQ(sdrop_forward(&p, &tx, &ty), SDROP_OK) << sdrop_last_error();  // warm-up
      const long before = g_mallocs.load();
      for (int i = 0; i < 5; i++) {
        ASSERT_EQ(sdrop_forward(&p, &tx, &ty), SDROP_OK);
        ASSERT_EQ(sdrop_backward(&p, &ty, &ty), SDROP_OK);
      }
      EXPECT_EQ(g_mallocs.load() - before, 0) << "mask_axes 0x" << std::hex << axes;
    }
  }
  sdrop_params p{0.5, 11, 3, 0x3u, 0};
  ASSERT_EQ(sdrop_mask(&p, &tm), SDROP_OK);
  ASSERT_EQ(sdrop_apply_mask(&p, &tx, &tm, &ty), SDROP_OK);
  const long before = g_mallocs.load();
  ASSERT_EQ(sdrop_mask(&p, &tm), SDROP_OK);
  ASSERT_EQ(sdrop_apply_mask(&p, &tx, &tm, &ty), SDROP_OK);
  EXPECT_EQ(g_mallocs.load() - before, 0);
}

// The overlap checks are exact without allocating (docs/refusals.md): outputs whose strides
// interleave but never meet, and x and y interleaved in one buffer, cost no malloc.
TEST(NoAllocation, Spec5_ExactOverlapChecksAllocateNothing) {
  std::vector<float> buf(4096, 1.0f);
  std::vector<int64_t> shape = {3, 5}, strides = {2, 3}, xstrides = {5, 1};
  std::vector<float> x(15, 1.0f);
  DLTensor tx{x.data(), {kDLCPU, 0}, 2, {kDLFloat, 32, 1}, shape.data(), xstrides.data(), 0};
  DLTensor ty{buf.data(), {kDLCPU, 0}, 2, {kDLFloat, 32, 1}, shape.data(), strides.data(), 0};
  std::vector<int64_t> ishape = {8, 64}, istrides = {128, 2};
  DLTensor ix{buf.data() + 64, {kDLCPU, 0}, 2, {kDLFloat, 32, 1}, ishape.data(), istrides.data(), 0};
  DLTensor iy = ix;
  iy.byte_offset = 4;  // the odd elements, x the even ones
  sdrop_params p{0.5, 11, 3, 0x3u, 0};
  ASSERT_EQ(sdrop_forward(&p, &tx, &ty), SDROP_OK) << sdrop_last_error();
  ASSERT_EQ(sdrop_forward(&p, &ix, &iy), SDROP_OK) << sdrop_last_error();
  const long before = g_mallocs.load();
  for (int i = 0; i < 5; i++) {
    ASSERT_EQ(sdrop_forward(&p, &tx, &ty), SDROP_OK);
    ASSERT_EQ(sdrop_forward(&p, &ix, &iy), SDROP_OK);
  }
  EXPECT_EQ(g_mallocs.load() - before, 0);
}

}  // namespace
