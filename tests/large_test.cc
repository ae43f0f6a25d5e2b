// Extents of 2^31 elements and more (docs/refusals.md#accepted). In place float16 over
// 2,202,024,300 elements (2^31 + 54,540,652; 4.1 GiB), checked against the reference on the
// fly, streaming, on every core. Registered with the ctest label "large"; it runs by default
// (about 4.5 GiB of memory and well under two minutes on two cores) and skips itself when the
// memory is not there.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dropout_tester.h"

namespace sdrop_test {
namespace {

constexpr int64_t kTotal = 3LL * 700 * 1048583;  // = 2 * 1101012150
static_assert(kTotal > (int64_t{1} << 31), "must exceed 2^31 elements");
constexpr int64_t kGuardElems = 64;
constexpr uint16_t kGuard = 0xBEEF;
constexpr int kPatternBits = 12;
constexpr int64_t kPatternMask = (1 << kPatternBits) - 1;

int64_t MemAvailableBytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return -1;
}

// Progress on stderr: how long each phase took.
class Phase {
 public:
  explicit Phase(const char* what) : what_(what), t0_(std::chrono::steady_clock::now()) {}
  ~Phase() {
    std::fprintf(stderr, "  [%s: %.1f s]\n", what_,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
  }

 private:
  const char* what_;
  std::chrono::steady_clock::time_point t0_;
};

template <class F>
void ParallelFor(int64_t n, F&& f) {
  const int64_t threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (int64_t t = 0; t < threads; ++t)
    pool.emplace_back([&, t] { f(n * t / threads, n * (t + 1) / threads); });
  for (auto& th : pool) th.join();
}

// One 4.1 GiB buffer shared by the tests (first-touching it is the slowest part on small VMs).
class Large : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    const int64_t need = (kTotal + 2 * kGuardElems) * 2;
    const int64_t avail = MemAvailableBytes();
    if (avail >= 0 && avail < need + (int64_t{512} << 20)) {
      skip_ = "needs " + std::to_string(need >> 20) + " MiB free, " + std::to_string(avail >> 20) +
              " MiB available";
      return;
    }
    buf_ = static_cast<uint16_t*>(std::malloc(static_cast<size_t>(need)));
    if (buf_ == nullptr) {
      skip_ = "could not allocate " + std::to_string(need >> 20) + " MiB";
      return;
    }
    data_ = buf_ + kGuardElems;
    // A cheap pattern of every kind of finite float16 (no NaN, so kept values compare exactly).
    std::mt19937 rng(2024);
    pattern_.resize(size_t{1} << kPatternBits);
    for (auto& v : pattern_) {
      do v = static_cast<uint16_t>(rng()); while ((v & 0x7FFF) > 0x7C00);
    }
  }
  static void TearDownTestSuite() {
    std::free(buf_);
    buf_ = data_ = nullptr;
  }
  void SetUp() override {
    if (buf_ == nullptr) GTEST_SKIP() << skip_;
  }

  // x[i] = pattern[(j + r) & mask] with r = i / row, j = i % row.
  void Fill(int64_t row) {
    Phase phase("fill");
    std::fill(buf_, data_, kGuard);
    std::fill(data_ + kTotal, data_ + kTotal + kGuardElems, kGuard);
    ParallelFor(kTotal, [&](int64_t b, int64_t e) {
      int64_t r = b / row, j = b % row;
      for (int64_t i = b; i < e; ++i) {
        data_[i] = pattern_[(j + r) & kPatternMask];
        if (++j == row) { j = 0; ++r; }
      }
    });
  }

  static bool GuardsIntact() {
    for (int64_t i = 0; i < kGuardElems; ++i)
      if (buf_[i] != kGuard || data_[kTotal + i] != kGuard) return false;
    return true;
  }

  static uint16_t* buf_;
  static uint16_t* data_;
  static std::vector<uint16_t> pattern_;
  static std::string skip_;
};
uint16_t* Large::buf_ = nullptr;
uint16_t* Large::data_ = nullptr;
std::vector<uint16_t> Large::pattern_;
std::string Large::skip_;

// Channels-first (3, 700, 1048583) with mask axes {0, 1}: 2100 channels, the last 52 entirely past
// element 2^31. Each channel is all +0 or all x * s.
TEST_F(Large, InPlaceFloat16SpatialOver2To31Elements) {
  const int64_t N = 3, C = 700, L = 1048583;
  const double p = 0.5;
  const sdrop_params prm{p, 0xC0FFEEull, 12345, 0x3u, 0};
  Fill(L);
  std::vector<int64_t> shape{N, C, L};
  DLTensor t{data_, {kDLCPU, 0}, 3, kF16, shape.data(), nullptr, 0};
  {
    Phase phase("sdrop_forward in place");
    ASSERT_EQ(sdrop_forward(&prm, &t, &t), SDROP_OK) << sdrop_last_error();
  }
  ASSERT_TRUE(GuardsIntact()) << "wrote outside the tensor";

  std::vector<uint16_t> kept(pattern_.size());
  for (size_t k = 0; k < kept.size(); ++k) kept[k] = static_cast<uint16_t>(sdrop_ref::KeptValue(DType::f16, pattern_[k], p));
  std::vector<uint8_t> keep(N * C);
  for (int64_t m = 0; m < N * C; ++m) keep[m] = sdrop_ref::Keep(prm.seed, prm.offset, m, p);
  int64_t kept_past = 0, dropped_past = 0;
  for (int64_t m = (int64_t{1} << 31) / L + 1; m < N * C; ++m) (keep[m] ? kept_past : dropped_past)++;
  EXPECT_GT(kept_past, 0);
  EXPECT_GT(dropped_past, 0);

  std::atomic<int64_t> bad{0}, first_bad{-1};
  Phase phase("check");
  ParallelFor(kTotal, [&](int64_t b, int64_t e) {
    int64_t r = b / L, j = b % L, local_bad = 0, local_first = -1;
    for (int64_t i = b; i < e; ++i) {
      const uint16_t want = keep[r] ? kept[(j + r) & kPatternMask] : 0;
      if (data_[i] != want && local_bad++ == 0) local_first = i;
      if (++j == L) { j = 0; ++r; }
    }
    bad += local_bad;
    if (local_first >= 0) first_bad = local_first;
  });
  EXPECT_EQ(bad.load(), 0) << "first wrong element at linear index " << first_bad.load();
}

// The same memory as (2, 1101012150), element-wise (mask axes {0, 1}): mask indices run past 2^31.
TEST_F(Large, InPlaceFloat16ElementWiseMaskIndicesPast2To31) {
  const int64_t R = 2, L = kTotal / 2;
  const double p = 0.3;
  const sdrop_params prm{p, 0x123456789ull, 7, 0x3u, 0};
  Fill(L);
  std::vector<int64_t> shape{R, L};
  DLTensor t{data_, {kDLCPU, 0}, 2, kF16, shape.data(), nullptr, 0};
  {
    Phase phase("sdrop_forward in place");
    ASSERT_EQ(sdrop_forward(&prm, &t, &t), SDROP_OK) << sdrop_last_error();
  }
  ASSERT_TRUE(GuardsIntact()) << "wrote outside the tensor";

  std::vector<uint16_t> kept(pattern_.size());
  for (size_t k = 0; k < kept.size(); ++k) kept[k] = static_cast<uint16_t>(sdrop_ref::KeptValue(DType::f16, pattern_[k], p));
  const uint64_t threshold = sdrop_ref::Threshold(p);
  std::atomic<int64_t> bad{0}, first_bad{-1}, kept_count{0};
  Phase phase("check");
  ParallelFor(kTotal, [&](int64_t b, int64_t e) {
    int64_t r = b / L, j = b % L, local_bad = 0, local_first = -1, local_kept = 0;
    uint64_t block = ~uint64_t{0};
    sdrop_ref::Counter u{};
    for (int64_t i = b; i < e; ++i) {
      const uint64_t m = static_cast<uint64_t>(i);  // row-major over (R, L) is the linear index
      if ((m >> 2) != block) {
        block = m >> 2;
        u = sdrop_ref::DrawBlock(prm.seed, prm.offset, block);
      }
      const bool keep = sdrop_ref::Keep(u[m & 3], threshold);
      local_kept += keep;
      const uint16_t want = keep ? kept[(j + r) & kPatternMask] : 0;
      if (data_[i] != want && local_bad++ < 5) {
        if (local_first < 0) local_first = i;
        std::fprintf(stderr, "element %lld (row %lld, col %lld): x 0x%04x keep %d want 0x%04x got 0x%04x\n",
                     static_cast<long long>(i), static_cast<long long>(r), static_cast<long long>(j),
                     pattern_[(j + r) & kPatternMask], int(keep), want, data_[i]);
      }
      if (++j == L) { j = 0; ++r; }
    }
    bad += local_bad;
    kept_count += local_kept;
    if (local_first >= 0) first_bad = local_first;
  });
  EXPECT_EQ(bad.load(), 0) << "wrong elements; one at linear index " << first_bad.load();
  const double q = static_cast<double>(threshold) / 4294967296.0;
  EXPECT_NEAR(static_cast<double>(kept_count.load()), q * kTotal, 5 * std::sqrt(kTotal * q * (1 - q)));
}

}  // namespace
}  // namespace sdrop_test
