// White-box tests of the exact overlap checks (runtime/src/overlap.*) against brute force:
// for random small layouts (any strides, negative, zero, interleaved, misaligned bases,
// element sizes 1..8) self_overlap and share_memory must say exactly what enumerating every
// element's bytes says, and must never answer `unknown` at these sizes.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <vector>

#include "overlap.h"
#include "tensor.h"

namespace sdrop {
namespace {

struct Layout {
  std::vector<int64_t> shape, strides;
  uint64_t byte_offset = 0;
  int itemsize = 4;
};

// Described through describe(), as the library would: base is an address in a fake arena.
Tensor Describe(const Layout& l, void* data) {
  DLTensor t{};
  t.data = data;
  t.device = {kDLCPU, 0};
  t.ndim = int(l.shape.size());
  t.dtype = DLDataType{kDLUInt, uint8_t(8 * l.itemsize), 1};
  t.shape = const_cast<int64_t*>(l.shape.data());
  t.strides = const_cast<int64_t*>(l.strides.data());
  t.byte_offset = l.byte_offset;
  Tensor r;
  EXPECT_EQ(describe(&t, "t", &r), SDROP_OK);
  return r;
}

// Every element's starting byte offset (relative to the data pointer).
std::vector<int64_t> Offsets(const Layout& l) {
  std::vector<int64_t> out;
  std::vector<int64_t> idx(l.shape.size(), 0);
  for (int64_t e : l.shape)
    if (e == 0) return out;
  for (;;) {
    int64_t off = int64_t(l.byte_offset);
    for (size_t i = 0; i < idx.size(); i++) off += idx[i] * l.strides[i] * l.itemsize;
    out.push_back(off);
    int i = int(idx.size()) - 1;
    for (; i >= 0; i--) {
      if (++idx[i] < l.shape[i]) break;
      idx[i] = 0;
    }
    if (i < 0) return out;
  }
}

bool BruteSelf(const Layout& l) {
  std::vector<int64_t> o = Offsets(l);
  std::sort(o.begin(), o.end());
  return std::adjacent_find(o.begin(), o.end()) != o.end();
}

bool BruteShare(const Layout& a, const Layout& b) {
  std::set<int64_t> bytes;
  for (int64_t o : Offsets(a))
    for (int k = 0; k < a.itemsize; k++) bytes.insert(o + k);
  for (int64_t o : Offsets(b))
    for (int k = 0; k < b.itemsize; k++)
      if (bytes.count(o + k)) return true;
  return false;
}

Layout Random(std::mt19937_64& rng, int itemsize) {
  Layout l;
  const int ndim = int(rng() % 5);
  for (int i = 0; i < ndim; i++) {
    l.shape.push_back(int64_t(rng() % 5));       // 0..4
    l.strides.push_back(int64_t(rng() % 15) - 7);  // -7..7
  }
  if (rng() % 8 == 0 && ndim) l.shape[rng() % ndim] = 1 + int64_t(rng() % 40);
  l.byte_offset = 4096 + rng() % 64;
  l.itemsize = itemsize;
  return l;
}

TEST(OverlapWhiteBox, SelfOverlapMatchesBruteForce) {
  std::mt19937_64 rng(1);
  alignas(64) static char arena[1];
  int overlapping = 0, interleaved_distinct = 0;
  for (int iter = 0; iter < 20000; iter++) {
    const Layout l = Random(rng, 1 << (rng() % 4));
    const Tensor t = Describe(l, arena);
    const bool want = BruteSelf(l);
    const Overlap got = self_overlap(t);
    ASSERT_NE(got, Overlap::unknown);
    ASSERT_EQ(got == Overlap::some, want) << "iteration " << iter;
    overlapping += want;
    bool oom = true;
    ASSERT_EQ(self_overlap_by_enumeration(t, &oom) == Overlap::some, want);
    EXPECT_FALSE(oom);
    // Strides that do not nest (some stride within the span of the smaller ones) and are
    // still injective: the case the exact search exists for.
    std::vector<std::pair<int64_t, int64_t>> axes;  // (|stride|, extent)
    for (size_t i = 0; i < l.shape.size(); i++)
      if (l.shape[i] > 1) axes.push_back({std::abs(l.strides[i]), l.shape[i]});
    std::sort(axes.begin(), axes.end());
    int64_t span = 0;
    bool nested = true;
    for (const auto& a : axes) {
      nested = nested && a.first > span;
      span += (a.second - 1) * a.first;
    }
    interleaved_distinct += !want && !nested;
  }
  // The sample exercises both answers and the non-trivial case.
  EXPECT_GT(overlapping, 1000);
  EXPECT_GT(interleaved_distinct, 100);
}

TEST(OverlapWhiteBox, ShareMemoryMatchesBruteForce) {
  std::mt19937_64 rng(2);
  alignas(64) static char arena[1];
  int sharing = 0, apart_but_interleaved = 0;
  for (int iter = 0; iter < 20000; iter++) {
    const Layout a = Random(rng, 1 << (rng() % 4));
    const Layout b = Random(rng, 1 << (rng() % 4));
    const Tensor ta = Describe(a, arena), tb = Describe(b, arena);
    const bool want = BruteShare(a, b);
    const Overlap got = share_memory(ta, tb);
    ASSERT_NE(got, Overlap::unknown);
    ASSERT_EQ(got == Overlap::some, want) << "iteration " << iter;
    sharing += want;
    const bool ranges_meet = ta.numel && tb.numel && int64_t(ta.base) + ta.hi > int64_t(tb.base) + tb.lo &&
                             int64_t(tb.base) + tb.hi > int64_t(ta.base) + ta.lo;
    apart_but_interleaved += ranges_meet && !want;
  }
  EXPECT_GT(sharing, 1000);
  EXPECT_GT(apart_but_interleaved, 100);
}

// Found by the fuzzer: two compact tensors of 2^48 elements a few elements apart have 8
// variables with ranges up to 2^31; nested strides fold into one, settled at once.
TEST(OverlapWhiteBox, LargeNestedLayoutsAreSettledAtOnce) {
  const std::vector<int64_t> shape = {int64_t(1) << 31, 256, 256, 2};
  const std::vector<int64_t> compact = {131072, 512, 2, 1};
  Layout a{shape, compact, 0, 8};
  char* base = reinterpret_cast<char*>(uintptr_t(1) << 40);
  for (uint64_t shift : {uint64_t(896), uint64_t(4), uint64_t(8) << 48}) {
    Layout b = a;
    b.byte_offset = shift;
    EXPECT_EQ(share_memory(Describe(a, base), Describe(b, base)),
              shift < (uint64_t(8) << 48) ? Overlap::some : Overlap::none) << shift;
  }
  // Even and odd elements of one buffer: never a shared byte.
  Layout even{shape, {262144, 1024, 4, 2}, 0, 8}, odd = even;
  odd.byte_offset = 8;
  EXPECT_EQ(share_memory(Describe(even, base), Describe(odd, base)), Overlap::none);
  EXPECT_EQ(self_overlap(Describe(even, base)), Overlap::none);
}

TEST(OverlapWhiteBox, BoundedSolutionKnownAnswers) {
  // 3a + 5b + 7c = 0, a, b, c in [-1, 1], not all 0: none; 3a + 4b + 7c: a = b = 1, c = -1.
  const Term none[] = {{3, 1, 1}, {5, -1, 1}, {7, -1, 1}};
  EXPECT_EQ(bounded_solution(none, 3, 0, 0, kOverlapBudget), Overlap::none);
  const Term some[] = {{3, 1, 1}, {4, -1, 1}, {7, -1, 1}};
  EXPECT_EQ(bounded_solution(some, 3, 0, 0, kOverlapBudget), Overlap::some);
  // Coefficients near 2^60 with a solution only at the ends of the ranges.
  const __int128 big = __int128(1) << 60;
  const Term ends[] = {{big, 0, 3}, {-(big / 3), 0, 9}, {1, -5, 5}};
  EXPECT_EQ(bounded_solution(ends, 3, 3 * big - 3 * (big / 3) + 1, 3 * big - 3 * (big / 3) + 1,
                             kOverlapBudget),
            Overlap::some);
  // A budget of one node gives up rather than guess.
  EXPECT_EQ(bounded_solution(none, 3, 0, 0, 1), Overlap::unknown);
}

}  // namespace
}  // namespace sdrop
