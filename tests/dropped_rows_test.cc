// Large exact-zero calls never read a dropped row of x (docs/performance.md#mixed-limit):
// the rows kernels fill dropped rows without loading them once the output passes
// SDROP_SKIP_DROPPED_BYTES (1 MiB by default; the build passes its value). Here x's dropped
// rows are unreadable pages: a read would fault, so the test fails without the feature.
#include <gtest/gtest.h>
#include <sdrop/sdrop.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

DLTensor Tensor(void* data, int64_t* shape, int ndim, DLDataType dt) {
  DLTensor t{};
  t.data = data;
  t.device = DLDevice{kDLCPU, 0};
  t.ndim = ndim;
  t.dtype = dt;
  t.shape = shape;
  return t;
}

// Twice each threshold of output: the kernel's skipping loop, then the memset route (2 MiB
// and 8 MiB with the defaults).
class DroppedRows : public ::testing::TestWithParam<uint64_t> {};

TEST_P(DroppedRows, LargeExactZeroCallsNeverReadThem) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  const int64_t row = int64_t(page / sizeof(float));  // one page per (sample, channel)
  // Past 8 MiB the tensors get slow to check; the test command's sanitizer build sets the
  // memset threshold to 4 MiB whatever the tuning table says, and runs this there.
  if (GetParam() > (uint64_t(8) << 20))
    GTEST_SKIP() << "threshold " << GetParam() << " bytes: tested at 4 MiB in build/asan";
  const int64_t channels = int64_t(2 * GetParam() / page) + 1;
  const size_t bytes = size_t(channels) * page;
  void* xmem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(xmem, MAP_FAILED);
  float* x = static_cast<float*>(xmem);
  for (int64_t i = 0; i < channels * row; i++) x[i] = 1.5f;
  std::vector<float> y(static_cast<size_t>(channels * row), -1.0f);
  std::vector<uint8_t> keep(static_cast<size_t>(channels));

  sdrop_params p{};
  p.p = 0.5;
  p.seed = 20261202;
  p.offset = 7;
  p.mask_axes = sdrop_spatial_axes(3, SDROP_CHANNELS_FIRST);
  int64_t shape[3] = {1, channels, row}, mshape[3] = {1, channels, 1};
  DLTensor m = Tensor(keep.data(), mshape, 3, DLDataType{kDLUInt, 8, 1});
  ASSERT_EQ(sdrop_mask(&p, &m), SDROP_OK) << sdrop_last_error();
  int dropped = 0;
  for (int64_t c = 0; c < channels; c++) {
    if (keep[size_t(c)]) continue;
    ASSERT_EQ(mprotect(static_cast<char*>(xmem) + size_t(c) * page, page, PROT_NONE), 0);
    dropped++;
  }
  ASSERT_GT(dropped, 0);
  ASSERT_LT(dropped, channels);

  DLTensor tx = Tensor(x, shape, 3, DLDataType{kDLFloat, 32, 1});
  DLTensor ty = Tensor(y.data(), shape, 3, DLDataType{kDLFloat, 32, 1});
  for (int threads : {1, 2}) {
    sdrop_set_num_threads(threads);
    ASSERT_EQ(sdrop_forward(&p, &tx, &ty), SDROP_OK) << sdrop_last_error();
    for (int64_t c = 0; c < channels; c++) {
      const float want = keep[size_t(c)] ? 3.0f : 0.0f;
      for (int64_t i = 0; i < row; i++) {
        const float got = y[size_t(c * row + i)];
        ASSERT_EQ(std::memcmp(&got, &want, sizeof got), 0)
            << "channel " << c << " element " << i << " threads " << threads;
      }
    }
  }
  sdrop_set_num_threads(0);
  ASSERT_EQ(munmap(xmem, bytes), 0);
}

INSTANTIATE_TEST_SUITE_P(PastEachThreshold, DroppedRows,
                         ::testing::Values(uint64_t(SDROP_TEST_SKIP_DROPPED_BYTES),
                                           uint64_t(SDROP_TEST_MEMSET_DROPPED_BYTES)));

}  // namespace
