// White-box tests of the runtime's canonicalisation (runtime/src/plan.*): whatever the shape,
// strides, mask axes and limits, the kernel calls of a plan must visit every element of the
// tensor exactly once, with the x offset, mask-tensor offset and mask index m that
// docs/semantics.md#noise-shape-and-mask-axes gives that element. Small span/channel limits
// force the chunking paths that otherwise only tensors of 2^31+ elements would reach.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "call_check.h"
#include "plan.h"

namespace sdrop {
namespace {

struct Case {
  std::vector<int64_t> shape, xs, ys, ks;
  uint32_t mask_axes;
};

using Seen = std::map<int64_t, std::tuple<int64_t, int64_t, int64_t>>;  // y -> (x, k, m)

// What docs/semantics.md says, element by element.
Seen expected(const Case& c) {
  Seen out;
  const int n = int(c.shape.size());
  int64_t numel = 1;
  for (int64_t e : c.shape) numel *= e;
  std::vector<int64_t> idx(n, 0);
  for (int64_t k = 0; k < numel; k++) {
    int64_t xo = 0, yo = 0, ko = 0, m = 0;
    for (int i = 0; i < n; i++) {
      xo += idx[i] * c.xs[i];
      yo += idx[i] * c.ys[i];
      ko += idx[i] * c.ks[i];
      if (c.mask_axes >> i & 1u) m = m * c.shape[i] + idx[i];
    }
    out[yo] = {xo, ko, m};
    for (int i = n - 1; i >= 0; i--) {
      if (++idx[i] < c.shape[i]) break;
      idx[i] = 0;
    }
  }
  return out;
}

// What the plan's kernel calls touch.
Seen visited(const Plan& p, int64_t* calls) {
  Seen out;
  *calls = 0;
  for_each_call(p, [&](const Call& call) {
    ++*calls;
    for (int64_t i2 = 0; i2 < call.extent[2]; i2++)
      for (int64_t i1 = 0; i1 < call.extent[1]; i1++)
        for (int64_t i0 = 0; i0 < call.extent[0]; i0++) {
          const int64_t i[3] = {i0, i1, i2};
          int64_t xo = call.x0, yo = call.y0, ko = call.k0, m = call.m0;
          for (int d = 0; d < 3; d++) {
            xo += i[d] * p.inner[d].xs;
            yo += i[d] * p.inner[d].ys;
            ko += i[d] * p.inner[d].ks;
            m += i[d] * p.inner[d].ms;
          }
          EXPECT_EQ(out.count(yo), 0u) << "y offset " << yo << " written twice";
          out[yo] = {xo, ko, m};
        }
    return 0;
  });
  return out;
}

std::vector<int64_t> compact(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t acc = 1;
  for (int i = int(shape.size()) - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

void check(const Case& c, int64_t span_limit, int64_t channel_block) {
  const Plan p = make_plan(Op::dropout, int(c.shape.size()), c.shape.data(), c.xs.data(),
                           c.ys.data(), c.ks.data(), c.mask_axes, span_limit, channel_block);
  int64_t calls = 0;
  const Seen got = visited(p, &calls);
  EXPECT_EQ(got, expected(c)) << "span_limit " << span_limit << " channel_block "
                              << channel_block;
  for (int d = 0; d < 3; d++) {
    EXPECT_LE((p.inner[d].extent - 1) * std::abs(p.inner[d].ys), span_limit);
    EXPECT_LE((p.inner[d].extent - 1) * std::abs(p.inner[d].xs), span_limit);
  }
  if (p.shape == Shape::channels_last) EXPECT_LE(p.inner[0].extent, channel_block);
}

TEST(Plan, ChannelsFirstMergesToRows) {
  const std::vector<int64_t> shape = {2, 3, 4, 5};
  const auto s = compact(shape);
  const Plan p = make_plan(Op::dropout, 4, shape.data(), s.data(), s.data(), s.data(), 0x3u);
  EXPECT_EQ(p.shape, Shape::rows);
  EXPECT_EQ(p.inner[0].extent, 20);  // H*W, one row per (n, c)
  EXPECT_EQ(p.inner[1].extent, 6);   // N*C merged
  EXPECT_EQ(p.n_outer, 0);
}

TEST(Plan, ChannelsLastIsChannelsLast) {
  const std::vector<int64_t> shape = {2, 4, 5, 3};  // N, H, W, C
  const auto s = compact(shape);
  const Plan p = make_plan(Op::dropout, 4, shape.data(), s.data(), s.data(), s.data(), 0x9u);
  EXPECT_EQ(p.shape, Shape::channels_last);
  EXPECT_EQ(p.inner[0].extent, 3);
  EXPECT_EQ(p.inner[1].extent, 20);
  EXPECT_EQ(p.inner[2].extent, 2);
}

TEST(Plan, AllAxesIsOneElementwiseRun) {
  const std::vector<int64_t> shape = {2, 4, 5, 3};
  const auto s = compact(shape);
  const Plan p = make_plan(Op::dropout, 4, shape.data(), s.data(), s.data(), s.data(), 0xfu);
  EXPECT_EQ(p.shape, Shape::elementwise);
  EXPECT_EQ(p.inner[0].extent, 120);
}

TEST(Plan, NegativeOutputStridesAreWalkedForwards) {
  Case c{{3, 4}, {4, 1}, {-4, -1}, {4, 1}, 0x1u};
  c.ys = {-4, -1};
  const Plan p = make_plan(Op::dropout, 2, c.shape.data(), c.xs.data(), c.ys.data(),
                           c.ks.data(), c.mask_axes);
  for (int d = 0; d < 3; d++) EXPECT_GE(p.inner[d].ys, 0);
  check(c, kKernelSpanLimit, kChannelBlock);
}

TEST(Plan, EveryElementOnceUnderAnyLimits) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 300; trial++) {
    const int n = int(rng() % 6);
    Case c;
    for (int i = 0; i < n; i++) c.shape.push_back(1 + int64_t(rng() % 5));
    c.mask_axes = n ? uint32_t(rng() % (1u << n)) : 0u;
    // y: a permutation of compact strides, some axes reversed, some gaps.
    std::vector<int> perm(n);
    for (int i = 0; i < n; i++) perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), rng);
    c.ys.assign(n, 0);
    int64_t acc = 1 + int64_t(rng() % 2);
    for (int k = n - 1; k >= 0; k--) {
      c.ys[perm[k]] = (rng() % 4 == 0) ? -acc : acc;
      acc *= c.shape[perm[k]] + int64_t(rng() % 2);
    }
    // x: independent layout, sometimes broadcast (stride 0).
    std::shuffle(perm.begin(), perm.end(), rng);
    c.xs.assign(n, 0);
    acc = 1;
    for (int k = n - 1; k >= 0; k--) {
      c.xs[perm[k]] = (rng() % 6 == 0) ? 0 : ((rng() % 4 == 0) ? -acc : acc);
      acc *= c.shape[perm[k]];
    }
    c.ks = compact(c.shape);
    SCOPED_TRACE(trial);
    for (int64_t limit : {int64_t(1), int64_t(3), int64_t(17), kKernelSpanLimit}) {
      for (int64_t block : {int64_t(1), int64_t(2), kChannelBlock}) check(c, limit, block);
    }
  }
}

// The runners' last check (call_check.h) holds for every call of every plan, and catches a
// call that a broken planner would have let reach outside its tensor.
TEST(CallCheck, EveryCallOfAPlanFitsItsTensorsAndATamperedOneDoesNot) {
  std::mt19937_64 rng(11);
  int tampered_caught = 0;
  for (int trial = 0; trial < 300; trial++) {
    const int n = 1 + int(rng() % 5);
    std::vector<int64_t> shape, xs, ys;
    for (int i = 0; i < n; i++) shape.push_back(1 + int64_t(rng() % 5));
    xs = compact(shape);
    ys = compact(shape);
    for (int i = 0; i < n; i++) {
      if (rng() % 3 == 0) ys[i] = -ys[i];
      if (rng() % 3 == 0) xs[i] *= 2;
    }
    auto make = [&](std::vector<int64_t>& st) {
      DLTensor t{reinterpret_cast<void*>(uintptr_t(1) << 40), {kDLCPU, 0}, n, {kDLFloat, 32, 1},
                 shape.data(), st.data(), 0};
      Tensor r;
      EXPECT_EQ(describe(&t, "t", &r), SDROP_OK);
      return r;
    };
    const Tensor tx = make(xs), ty = make(ys);
    const Plan p = make_plan(Op::dropout, n, shape.data(), xs.data(), ys.data(), nullptr,
                             uint32_t(rng() % (1u << n)), int64_t(1) << (2 + rng() % 5), 4);
    for_each_call(p, [&](const Call& c) {
      EXPECT_TRUE(buffer_fits(tx, c.x0, c, p, &Axis::xs));
      EXPECT_TRUE(buffer_fits(ty, c.y0, c, p, &Axis::ys));
      EXPECT_TRUE(mask_indices_fit(c, p));
      Call bad = c;
      bad.y0 = c.y0 + (ty.hi - ty.lo) / 4;  // shifted past the tensor's last byte
      EXPECT_FALSE(buffer_fits(ty, bad.y0, bad, p, &Axis::ys));
      bad.y0 = c.y0 - (ty.hi - ty.lo) / 4;  // before its first
      EXPECT_FALSE(buffer_fits(ty, bad.y0, bad, p, &Axis::ys));
      tampered_caught++;
      return 0;
    });
  }
  EXPECT_GT(tampered_caught, 100);
  // 32-bit indexing: an extent or stride of 2^31 never reaches a kernel.
  Plan p;
  p.inner[0] = Axis{int64_t(1) << 31, 1, 1, 0, 0};
  Call c{};
  c.extent[0] = int64_t(1) << 31;
  c.extent[1] = c.extent[2] = 1;
  Tensor huge;
  huge.itemsize = 1;
  huge.lo = 0;
  huge.hi = int64_t(1) << 40;
  EXPECT_FALSE(buffer_fits(huge, 0, c, p, &Axis::ys));
}

}  // namespace
}  // namespace sdrop
