// SDROP_MAX_CPU_ISA (sdrop.h): the cap starts from the environment variable, read once. Each test
// here runs in its own process with the variable set by ctest (see CMakeLists.txt); without the
// variable they skip.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "dropout_tester.h"

namespace sdrop_test {
namespace {

const char* Env() { return std::getenv("SDROP_MAX_CPU_ISA"); }

bool KnownCap(const std::string& v, sdrop_cpu_isa* out) {
  if (v == "sse41") *out = SDROP_CPU_ISA_SSE41;
  else if (v == "avx2") *out = SDROP_CPU_ISA_AVX2;
  else if (v == "avx512") *out = SDROP_CPU_ISA_AVX512;
  else if (v == "all") *out = SDROP_CPU_ISA_ALL;
  else return false;
  return true;
}

TEST(EnvMaxCpuIsa, CapComesFromTheEnvironment) {
  sdrop_cpu_isa cap;
  if (Env() == nullptr || !KnownCap(Env(), &cap)) GTEST_SKIP() << "SDROP_MAX_CPU_ISA not set to a known value";
  EXPECT_EQ(sdrop_get_max_cpu_isa(), cap);
  const sdrop_cpu_isa want = cap == SDROP_CPU_ISA_ALL ? sdrop_get_host_cpu_isa()
                                                      : std::min(cap, sdrop_get_host_cpu_isa());
  EXPECT_EQ(sdrop_get_cpu_isa(), want);
  // And the calls run (and are bit-exact) under it.
  for (DLDataType dt : AllDTypes())
    DropoutTester().shape({3, 16, 9, 9}).dtype(dt).mask_axes(0x3u).p(0.3).Test();
  MaskTester().shape({4, 1000}).mask_axes(0x3u).Test();
  // The function still overrides it.
  EXPECT_EQ(sdrop_set_max_cpu_isa(SDROP_CPU_ISA_SSE41), SDROP_OK);
  EXPECT_EQ(sdrop_get_cpu_isa(), SDROP_CPU_ISA_SSE41);
}

TEST(EnvMaxCpuIsa, UnknownValueMakesCallsFailNamingIt) {
  sdrop_cpu_isa cap;
  if (Env() == nullptr || KnownCap(Env(), &cap)) GTEST_SKIP() << "SDROP_MAX_CPU_ISA not set to an unknown value";
  const std::string value = Env();
  std::vector<float> x(8, 1.0f), y(8, 5.0f);
  std::vector<uint8_t> m(8, 0xA5);
  HostTensor tx(x.data(), {8}, kF32), ty(y.data(), {8}, kF32), tm(m.data(), {8}, kU8);
  const sdrop_params prm{0.5, 1, 2, 0x1u, 0};
  EXPECT_EQ(sdrop_forward(&prm, &tx.t, &ty.t), SDROP_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(sdrop_last_error()).find(value), std::string::npos)
      << "message \"" << sdrop_last_error() << "\" does not name " << value;
  EXPECT_EQ(sdrop_mask(&prm, &tm.t), SDROP_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(sdrop_backward(&prm, &tx.t, &ty.t), SDROP_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(sdrop_apply_mask(&prm, &tx.t, &tm.t, &ty.t), SDROP_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(y, std::vector<float>(8, 5.0f)) << "written despite the failure";
  EXPECT_EQ(m, std::vector<uint8_t>(8, 0xA5)) << "written despite the failure";
}

}  // namespace
}  // namespace sdrop_test
