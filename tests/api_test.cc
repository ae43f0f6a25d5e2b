// Small entry points of the C ABI (docs/c-api.md and sdrop.h).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "dropout_tester.h"

namespace sdrop_test {
namespace {

TEST(Api, VersionIsMajorMinorPatchOfTheHeader) {
  char want[64];
  std::snprintf(want, sizeof want, "%d.%d.%d", SDROP_VERSION_MAJOR, SDROP_VERSION_MINOR,
                SDROP_VERSION_PATCH);
  ASSERT_NE(sdrop_version(), nullptr);
  EXPECT_EQ(std::string(sdrop_version()), want);
}

TEST(Api, SpatialAxes) {
  // Channels first (N, C, spatial...): {0, 1}; channels last (N, spatial..., C): {0, d-1}.
  for (sdrop_layout l : {SDROP_CHANNELS_FIRST, SDROP_CHANNELS_LAST}) {
    EXPECT_EQ(sdrop_spatial_axes(0, l), 0u);
    EXPECT_EQ(sdrop_spatial_axes(1, l), 0u);
    EXPECT_EQ(sdrop_spatial_axes(2, l), 0x3u);
  }
  EXPECT_EQ(sdrop_spatial_axes(3, SDROP_CHANNELS_FIRST), 0x3u);
  EXPECT_EQ(sdrop_spatial_axes(4, SDROP_CHANNELS_FIRST), 0x3u);
  EXPECT_EQ(sdrop_spatial_axes(5, SDROP_CHANNELS_FIRST), 0x3u);
  EXPECT_EQ(sdrop_spatial_axes(8, SDROP_CHANNELS_FIRST), 0x3u);
  EXPECT_EQ(sdrop_spatial_axes(3, SDROP_CHANNELS_LAST), 0x5u);
  EXPECT_EQ(sdrop_spatial_axes(4, SDROP_CHANNELS_LAST), 0x9u);
  EXPECT_EQ(sdrop_spatial_axes(5, SDROP_CHANNELS_LAST), 0x11u);
  EXPECT_EQ(sdrop_spatial_axes(8, SDROP_CHANNELS_LAST), 0x81u);
}

TEST(Api, CpuIsaNames) {
  EXPECT_STREQ(sdrop_cpu_isa_name(SDROP_CPU_ISA_SSE41), "sse41");
  EXPECT_STREQ(sdrop_cpu_isa_name(SDROP_CPU_ISA_AVX2), "avx2");
  EXPECT_STREQ(sdrop_cpu_isa_name(SDROP_CPU_ISA_AVX512), "avx512");
  EXPECT_STREQ(sdrop_cpu_isa_name(SDROP_CPU_ISA_ALL), "all");
  EXPECT_STREQ(sdrop_cpu_isa_name(static_cast<sdrop_cpu_isa>(42)), "unknown");
  EXPECT_STREQ(sdrop_cpu_isa_name(static_cast<sdrop_cpu_isa>(0)), "unknown");
}

TEST(Api, NoCapByDefault) {
  if (std::getenv("SDROP_MAX_CPU_ISA") != nullptr)
    GTEST_SKIP() << "SDROP_MAX_CPU_ISA is set in this environment";
  EXPECT_EQ(sdrop_get_max_cpu_isa(), SDROP_CPU_ISA_ALL);
  EXPECT_EQ(sdrop_get_cpu_isa(), sdrop_get_host_cpu_isa());
}

TEST(Api, LastErrorIsEmptyBeforeAnyFailure) {
  // Run on a fresh thread so that no earlier test's failure on the main thread counts.
  std::string seen = "not run";
  std::thread([&] {
    float x = 1.0f, y = 0.0f;
    HostTensor tx(&x, {1}, kF32), ty(&y, {1}, kF32);
    const sdrop_params prm{0.5, 0, 0, 1u, 0};
    seen = sdrop_last_error();
    if (sdrop_forward(&prm, &tx.t, &ty.t) != SDROP_OK) seen = "forward failed";
    else if (std::string(sdrop_last_error()) != seen) seen = "changed by a success";
  }).join();
  EXPECT_EQ(seen, "");
}

}  // namespace
}  // namespace sdrop_test
