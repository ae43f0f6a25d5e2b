// Statistics of the mask (docs/testing.md#statistics), over many (seed, offset) pairs and large
// masks.
//
// Bounds: the kept count K of M draws is within 5 sigma of its mean; the Pearson correlation phi
// of two 0/1 keep sequences of length M satisfies |phi| * sqrt(M) < 5; the chi-square statistic
// over 256 equiprobable bins of u is below 347.65, the upper 1e-4 point of the chi-square
// distribution with 255 degrees of freedom (Q(127.5, 347.65/2) = 1.0e-4 by the regularized upper
// incomplete gamma function; the Wilson-Hilferty approximation gives 347.7). Every seed below is
// fixed, so these are deterministic tests, not flaky ones.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "dropout_tester.h"

namespace sdrop_test {
namespace {

constexpr double kChi2Critical255At1e4 = 347.65;
constexpr int64_t kM = int64_t{1} << 20;

uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// sdrop_mask over a 1-D noise shape of m elements.
std::vector<uint8_t> LibraryMask(uint64_t seed, uint64_t offset, double p, int64_t m) {
  std::vector<uint8_t> mask(static_cast<size_t>(m), 0xA5);
  HostTensor t(mask.data(), {m}, kU8);
  const sdrop_params prm{p, seed, offset, 0x1u, 0};
  const sdrop_status st = sdrop_mask(&prm, &t.t);
  EXPECT_EQ(st, SDROP_OK) << sdrop_last_error();
  return mask;
}

int64_t Count(const std::vector<uint8_t>& v) {
  int64_t k = 0;
  for (uint8_t b : v) k += b != 0;
  return k;
}

// Pearson correlation of two 0/1 sequences a[i], b[i + lag] (the phi coefficient).
double Phi(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, size_t lag, int64_t* n_out) {
  int64_t n11 = 0, n10 = 0, n01 = 0, n00 = 0;
  const size_t n = a.size() - lag;
  for (size_t i = 0; i < n; ++i) {
    const bool x = a[i] != 0, y = b[i + lag] != 0;
    (x ? (y ? n11 : n10) : (y ? n01 : n00))++;
  }
  *n_out = static_cast<int64_t>(n);
  const double num = static_cast<double>(n11) * n00 - static_cast<double>(n10) * n01;
  const double den = std::sqrt(static_cast<double>(n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00));
  return den == 0 ? 0.0 : num / den;
}

void ExpectUncorrelated(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, size_t lag,
                        const std::string& what) {
  int64_t n;
  const double phi = Phi(a, b, lag, &n);
  EXPECT_LT(std::fabs(phi) * std::sqrt(static_cast<double>(n)), 5.0)
      << what << ": phi = " << phi << " over " << n << " pairs";
}

TEST(Statistics, KeptFractionIsWithinFiveSigma) {
  uint64_t s = 1;
  for (double p : {0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99}) {
    const double q = static_cast<double>(sdrop_ref::Threshold(p)) / 4294967296.0;
    int64_t total_k = 0, total_m = 0;
    for (int pair = 0; pair < 8; ++pair) {
      const uint64_t seed = SplitMix(s), offset = pair < 4 ? pair : SplitMix(s);
      const int64_t k = Count(LibraryMask(seed, offset, p, kM));
      const double sigma = std::sqrt(kM * q * (1 - q));
      EXPECT_LE(std::fabs(k - q * kM), 5 * sigma)
          << "p=" << p << " seed=" << seed << " offset=" << offset << " kept " << k << " of " << kM;
      total_k += k;
      total_m += kM;
    }
    const double sigma = std::sqrt(total_m * q * (1 - q));
    EXPECT_LE(std::fabs(total_k - q * total_m), 5 * sigma) << "p=" << p << " over all pairs";
  }
}

TEST(Statistics, AdjacentChannelsAreUncorrelated) {
  uint64_t s = 2;
  for (double p : {0.5, 0.1, 0.9}) {
    for (int pair = 0; pair < 3; ++pair) {
      const uint64_t seed = SplitMix(s), offset = SplitMix(s);
      // A (1024 samples, 1024 channels) channels-first mask: channel c and c+1 are m and m+1.
      const std::vector<uint8_t> k = LibraryMask(seed, offset, p, kM);
      for (size_t lag : {1, 2, 3, 4, 5, 8, 1024})  // within a Philox block, across, next sample
        ExpectUncorrelated(k, k, lag, "p=" + std::to_string(p) + " lag " + std::to_string(lag));
    }
  }
}

TEST(Statistics, AdjacentOffsetsAreUncorrelated) {
  uint64_t s = 3;
  for (double p : {0.5, 0.1, 0.9}) {
    std::vector<std::pair<uint64_t, uint64_t>> pairs = {{SplitMix(s), 0}, {SplitMix(s), 41},
                                                        {SplitMix(s), 0xFFFFFFFFull},  // carry
                                                        {SplitMix(s), SplitMix(s)}};
    for (const auto& so : pairs) {
      const auto a = LibraryMask(so.first, so.second, p, kM);
      const auto b = LibraryMask(so.first, so.second + 1, p, kM);
      ExpectUncorrelated(a, b, 0, "offset " + std::to_string(so.second) + " vs +1, p=" + std::to_string(p));
    }
  }
}

TEST(Statistics, AdjacentSeedsAreUncorrelated) {
  uint64_t s = 4;
  for (double p : {0.5, 0.1, 0.9}) {
    const std::vector<uint64_t> seeds = {0, 1, 0xFFFFFFFFull, SplitMix(s), SplitMix(s)};
    for (uint64_t seed : seeds) {
      const uint64_t offset = SplitMix(s) & 0xFFFF;
      const auto a = LibraryMask(seed, offset, p, kM);
      const auto b = LibraryMask(seed + 1, offset, p, kM);
      ExpectUncorrelated(a, b, 0, "seed " + std::to_string(seed) + " vs +1, p=" + std::to_string(p));
    }
  }
}

double ChiSquare(const std::vector<int64_t>& bins, int64_t n) {
  const double e = static_cast<double>(n) / bins.size();
  double chi2 = 0;
  for (int64_t o : bins) chi2 += (o - e) * (o - e) / e;
  return chi2;
}

// The generator itself (the reference Philox, bit-exact to the library as the other tests show).
TEST(Statistics, ChiSquareOf256BinsOfUPasses) {
  uint64_t s = 5;
  for (int pair = 0; pair < 4; ++pair) {
    const uint64_t seed = SplitMix(s), offset = pair;
    std::vector<int64_t> bins(256, 0);
    for (int64_t b = 0; b < kM / 4; ++b) {
      const sdrop_ref::Counter u = sdrop_ref::DrawBlock(seed, offset, static_cast<uint64_t>(b));
      for (uint32_t w : u) ++bins[w >> 24];
    }
    const double chi2 = ChiSquare(bins, kM);
    EXPECT_LT(chi2, kChi2Critical255At1e4) << "seed " << seed << " offset " << offset;
  }
}

// The library's own u, read through its masks: at p = 1 - j/256, T = j * 2^24 exactly, so the mask
// is "top 8 bits of u < j". Over j = 0..256 the masks must be nested, give the top 8 bits of every
// u (checked against the reference Philox, draw by draw), and their histogram passes chi-square.
TEST(Statistics, LibraryMasksAtPEqualOneMinusJOver256RevealTheTop8BitsOfU) {
  const int64_t m = int64_t{1} << 18;
  for (const auto& so : std::vector<std::pair<uint64_t, uint64_t>>{{0x5EED, 1}, {1ull << 40, 77}}) {
    std::vector<uint8_t> top8(static_cast<size_t>(m), 0);
    std::vector<uint8_t> prev = LibraryMask(so.first, so.second, 1.0, m);  // j = 0: keeps none
    ASSERT_EQ(Count(prev), 0);
    std::vector<int64_t> bins(256, 0);
    for (int j = 1; j <= 256; ++j) {
      const double p = 1.0 - j / 256.0;
      ASSERT_EQ(sdrop_ref::Threshold(p), static_cast<uint64_t>(j) << 24);
      const std::vector<uint8_t> cur = LibraryMask(so.first, so.second, p, m);
      int64_t newly = 0;
      for (int64_t i = 0; i < m; ++i) {
        ASSERT_TRUE(cur[i] >= prev[i]) << "masks not nested at j=" << j << " i=" << i;
        if (cur[i] == 0) ++top8[i];  // after j = 256, top8 = #{j : u >> 24 >= j}
        newly += cur[i] && !prev[i];
      }
      bins[j - 1] = newly;
      prev = cur;
    }
    EXPECT_EQ(Count(prev), m);  // j = 256 (p = 0) keeps all
    int64_t mismatches = 0;
    for (int64_t i = 0; i < m; ++i)
      if (top8[i] != (sdrop_ref::Draw(so.first, so.second, static_cast<uint64_t>(i)) >> 24) &&
          ++mismatches <= 5)
        ADD_FAILURE() << "draw " << i << ": library top 8 bits " << int(top8[i]) << ", reference "
                      << (sdrop_ref::Draw(so.first, so.second, static_cast<uint64_t>(i)) >> 24);
    EXPECT_EQ(mismatches, 0);
    EXPECT_LT(ChiSquare(bins, m), kChi2Critical255At1e4) << "seed " << so.first;
  }
}

}  // namespace
}  // namespace sdrop_test
