// docs/semantics.md#shards: a call on a shard of a logical tensor X (its origin in X and X's
// extents) computes exactly the matching slice of what the call on the whole of X computes,
// however X is split; different shards draw different masks; a description that contradicts
// the shape is refused with nothing written.
#include <gtest/gtest.h>

#include <climits>
#include <cstring>
#include <random>
#include <vector>

#include "dropout_tester.h"

namespace sdrop_test {
namespace {

// A dense row-major float tensor and views (slices) of it.
struct Dense {
  std::vector<int64_t> shape, strides;
  std::vector<float> v;
  explicit Dense(std::vector<int64_t> s) : shape(std::move(s)), strides(Compact(shape)) {
    int64_t n = 1;
    for (int64_t e : shape) n *= e;
    v.resize(size_t(n));
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> d(0.5f, 2.0f);
    for (float& f : v) f = d(rng);
  }
  DLTensor tensor() { return DLTensor{v.data(), {kDLCPU, 0}, int32_t(shape.size()), kF32, shape.data(), strides.data(), 0}; }
  // The slice [origin, origin + extent) as a view with this tensor's strides.
  DLTensor view(const std::vector<int64_t>& origin, std::vector<int64_t>& extent) {
    DLTensor t = tensor();
    int64_t off = 0;
    for (size_t i = 0; i < shape.size(); i++) off += origin[i] * strides[i];
    t.byte_offset = uint64_t(off) * sizeof(float);
    t.shape = extent.data();
    return t;
  }
};

// Bit patterns of a view's elements in row-major order.
std::vector<uint32_t> Bits(const DLTensor& t) {
  std::vector<uint32_t> out;
  sdrop_ref::ForEachIndex(sdrop_ref::Shape(t), [&](const int64_t* idx) {
    out.push_back(uint32_t(sdrop_ref::LoadBits(sdrop_ref::ElementAddress(t, idx), 4)));
  });
  return out;
}

TEST(Spec8Shard, EveryShardIsTheSliceOfTheWholeOutput) {
  const std::vector<int64_t> L = {6, 5, 3, 4};
  for (uint32_t axes : {0x3u /* NCHW */, 0x9u /* N..C channels last */, 0xFu, 0x1u}) {
    for (uint32_t flags : {0u, unsigned(SDROP_FLAG_MULTIPLY)}) {
      SCOPED_TRACE(testing::Message() << "mask_axes 0x" << std::hex << axes);
      Dense X(L), Y(L);
      DLTensor xt = X.tensor(), yt = Y.tensor();
      const sdrop_params prm{0.5, 77, 9, axes, flags};
      ASSERT_EQ(sdrop_forward(&prm, &xt, &yt), SDROP_OK) << sdrop_last_error();
      // Batch split (data parallel), channel split (tensor parallel), both, and a split
      // along a spatial axis.
      const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shards = {
          {{0, 0, 0, 0}, {2, 5, 3, 4}}, {{2, 0, 0, 0}, {4, 5, 3, 4}}, {{0, 3, 0, 0}, {6, 2, 3, 4}},
          {{4, 1, 0, 0}, {2, 3, 3, 4}}, {{1, 2, 1, 1}, {3, 2, 2, 3}}, {{5, 4, 2, 3}, {1, 1, 1, 1}}};
      for (auto [origin, extent] : shards) {
        SCOPED_TRACE(VecString(origin) + " " + VecString(extent));
        DLTensor xs = X.view(origin, extent);
        Dense ys(extent);
        DLTensor yst = ys.tensor();
        const sdrop_shard shard{origin.data(), L.data()};
        ASSERT_EQ(sdrop_forward_sharded(&prm, &shard, &xs, &yst), SDROP_OK) << sdrop_last_error();
        EXPECT_EQ(Bits(yst), Bits(Y.view(origin, extent)));
        // The reference, written from the shard rules, agrees.
        Dense ref(extent);
        DLTensor rt = ref.tensor();
        sdrop_ref::ForwardShard(prm, sdrop_ref::Shard{origin, L}, xs, rt);
        EXPECT_EQ(Bits(yst), Bits(rt));
        // Backward is the same operation with the same mask.
        ASSERT_EQ(sdrop_backward_sharded(&prm, &shard, &xs, &yst), SDROP_OK);
        EXPECT_EQ(Bits(yst), Bits(Y.view(origin, extent)));
      }
    }
  }
}

TEST(Spec8Shard, TheMaskOfAShardIsTheSliceOfTheLogicalMask) {
  const std::vector<int64_t> L = {8, 6, 1, 1};
  std::vector<uint8_t> whole(48);
  std::vector<int64_t> wshape = L;
  DLTensor wt{whole.data(), {kDLCPU, 0}, 4, kU8, wshape.data(), nullptr, 0};
  const sdrop_params prm{0.3, 5, 6, 0x3u, 0};
  ASSERT_EQ(sdrop_mask(&prm, &wt), SDROP_OK);
  std::vector<int64_t> origin = {3, 2, 0, 0}, shape = {4, 3, 1, 1};
  std::vector<uint8_t> part(12, 0xEE);
  DLTensor pt{part.data(), {kDLCPU, 0}, 4, kU8, shape.data(), nullptr, 0};
  const sdrop_shard shard{origin.data(), L.data()};
  ASSERT_EQ(sdrop_mask_sharded(&prm, &shard, &pt), SDROP_OK) << sdrop_last_error();
  for (int n = 0; n < 4; n++)
    for (int c = 0; c < 3; c++) EXPECT_EQ(part[n * 3 + c], whole[(n + 3) * 6 + (c + 2)]);
}

TEST(Spec8Shard, ShardsOfOneStepDrawDifferentMasks) {
  // Two ranks, 16 samples each, of a global batch of 32: their masks differ (the same local
  // shape without a shard description would draw the same one).
  const std::vector<int64_t> L = {32, 64, 1, 1};
  std::vector<int64_t> shape = {16, 64, 1, 1}, o0 = {0, 0, 0, 0}, o1 = {16, 0, 0, 0};
  std::vector<uint8_t> m0(1024), m1(1024);
  DLTensor t0{m0.data(), {kDLCPU, 0}, 4, kU8, shape.data(), nullptr, 0}, t1 = t0;
  t1.data = m1.data();
  const sdrop_params prm{0.5, 1, 2, 0x3u, 0};
  const sdrop_shard s0{o0.data(), L.data()}, s1{o1.data(), L.data()};
  ASSERT_EQ(sdrop_mask_sharded(&prm, &s0, &t0), SDROP_OK);
  ASSERT_EQ(sdrop_mask_sharded(&prm, &s1, &t1), SDROP_OK);
  int differ = 0;
  for (int i = 0; i < 1024; i++) differ += m0[i] != m1[i];
  EXPECT_GT(differ, 400);  // about half of 1024 independent bits
}

TEST(Spec8Shard, NoDescriptionIsThePlainCall) {
  Dense X({3, 4, 5, 2}), A({3, 4, 5, 2}), B({3, 4, 5, 2});
  DLTensor xt = X.tensor(), at = A.tensor(), bt = B.tensor();
  const sdrop_params prm{0.5, 3, 1, 0x3u, 0};
  ASSERT_EQ(sdrop_forward(&prm, &xt, &at), SDROP_OK);
  std::vector<int64_t> zeros(4, 0);
  const sdrop_shard nulls{nullptr, nullptr}, trivial{zeros.data(), X.shape.data()};
  for (const sdrop_shard* s : {static_cast<const sdrop_shard*>(nullptr), &nulls, &trivial}) {
    ASSERT_EQ(sdrop_forward_sharded(&prm, s, &xt, &bt), SDROP_OK) << sdrop_last_error();
    EXPECT_EQ(Bits(at), Bits(bt));
  }
}

TEST(Spec8Shard, DescriptionsThatContradictTheShapeAreRefused) {
  Dense X({2, 3, 4}), Y({2, 3, 4});
  DLTensor xt = X.tensor(), yt = Y.tensor();
  const sdrop_params prm{0.5, 3, 1, 0x3u, 0};
  struct Bad { std::vector<int64_t> origin, logical; const char* needle; };
  const int64_t big = int64_t(1) << 40;
  const std::vector<Bad> bad = {
      {{-1, 0, 0}, {4, 3, 4}, "shard.origin[0]"},
      {{INT64_MIN, 0, 0}, {4, 3, 4}, "shard.origin[0]"},
      {{3, 0, 0}, {4, 3, 4}, "shard.logical_shape[0]"},        // 3 + 2 > 4
      {{0, 0, 1}, {2, 3, 4}, "shard.logical_shape[2]"},        // off the mask axes too
      {{INT64_MAX, 0, 0}, {INT64_MAX, 3, 4}, "shard.logical_shape[0]"},  // sum would overflow
      {{0, 0, 0}, {1, 3, 4}, "shard.logical_shape[0]"},        // smaller than the shard
      {{0, 0, 0}, {-2, 3, 4}, "shard.logical_shape[0]"},
      {{0, 0, 0}, {big, big, 4}, "2^62"}};                     // 2^80 mask indices
  for (const Bad& b : bad) {
    SCOPED_TRACE(VecString(b.origin) + " " + VecString(b.logical));
    const sdrop_shard s{b.origin.data(), b.logical.data()};
    const std::vector<float> before = Y.v;
    const sdrop_status st = sdrop_forward_sharded(&prm, &s, &xt, &yt);
    EXPECT_EQ(st, SDROP_ERROR_INVALID_ARGUMENT) << sdrop_status_name(st);
    EXPECT_NE(std::string(sdrop_last_error()).find(b.needle), std::string::npos) << sdrop_last_error();
    EXPECT_EQ(0, std::memcmp(before.data(), Y.v.data(), before.size() * sizeof(float)));
  }
}

}  // namespace
}  // namespace sdrop_test
