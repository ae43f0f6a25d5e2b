// docs/refusals.md: every refusal returns the right status, leaves a message naming the argument
// (and the value where there is one), and writes NOTHING: every byte of every buffer is checked.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "dropout_tester.h"

namespace sdrop_test {
namespace {

enum Kind { kForward = 1, kBackward = 2, kMask = 4, kApplyMask = 8 };
constexpr int kXY = kForward | kBackward | kApplyMask;  // calls that take x and y
constexpr int kAll = kXY | kMask;

const char* KindName(int k) {
  return k == kForward ? "sdrop_forward" : k == kBackward ? "sdrop_backward"
         : k == kMask ? "sdrop_mask" : "sdrop_apply_mask";
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// needle "a|b": the message contains a or b (case-insensitive).
bool ContainsAny(const std::string& msg, const std::string& needle) {
  const std::string m = Lower(msg);
  size_t start = 0;
  for (;;) {
    const size_t bar = needle.find('|', start);
    const std::string alt = Lower(needle.substr(start, bar == std::string::npos ? bar : bar - start));
    if (m.find(alt) != std::string::npos) return true;
    if (bar == std::string::npos) return false;
    start = bar + 1;
  }
}

class Refusal : public testing::Test {
 protected:
  static constexpr size_t kBuf = 16384, kMid = 8192;

  void SetUp() override { Reset(); }

  // A valid call: x, y float32 (2,3,4,5) compact, mask uint8 (2,3,1,1), channels-first axes.
  void Reset() {
    xbuf.assign(kBuf, 0x5A);
    ybuf.assign(kBuf, 0xA5);
    mbuf.assign(kBuf, 0xC3);
    for (size_t i = 0; i < 120; ++i) {  // x = 1 .. 120 (the rest of xbuf stays 0x5A)
      const float v = static_cast<float>(i + 1);
      std::memcpy(&xbuf[kMid + 4 * i], &v, 4);
    }
    for (size_t i = 0; i < 6; ++i) mbuf[kMid + i] = static_cast<uint8_t>(i % 2);
    xshape = yshape = {2, 3, 4, 5};
    xstrides = ystrides = {60, 20, 5, 1};
    mshape = {2, 3, 1, 1};
    mstrides = {3, 1, 1, 1};
    x = DLTensor{xbuf.data() + kMid, {kDLCPU, 0}, 4, kF32, xshape.data(), xstrides.data(), 0};
    y = DLTensor{ybuf.data() + kMid, {kDLCPU, 0}, 4, kF32, yshape.data(), ystrides.data(), 0};
    mask = DLTensor{mbuf.data() + kMid, {kDLCPU, 0}, 4, kU8, mshape.data(), mstrides.data(), 0};
    params = sdrop_params{0.5, 1, 2, 0x3u, 0};
  }

  sdrop_status Run(int kind, const sdrop_params* prm, DLTensor* px, DLTensor* py, DLTensor* pm) {
    switch (kind) {
      case kForward: return sdrop_forward(prm, px, py);
      case kBackward: return sdrop_backward(prm, px, py);
      case kMask: return sdrop_mask(prm, pm);
      default: return sdrop_apply_mask(prm, px, pm, py);
    }
  }

  // Runs each call in kinds on the (mutated) fixture and checks the refusal. names are argument
  // names the message must mention (not checked for sdrop_backward, whose arguments are dy/dx);
  // values must appear in every message.
  void ExpectRefused(int kinds, sdrop_status want, std::vector<std::string> names,
                     std::vector<std::string> values = {}, bool null_params = false,
                     int null_tensor = 0 /* 1: x, 2: y, 4: mask */) {
    for (int kind : {kForward, kBackward, kMask, kApplyMask}) {
      if (!(kinds & kind)) continue;
      SCOPED_TRACE(KindName(kind));
      const std::vector<uint8_t> x0 = xbuf, y0 = ybuf, m0 = mbuf;
      const sdrop_status st = Run(kind, null_params ? nullptr : &params,
                                  (null_tensor & 1) ? nullptr : &x,
                                  (null_tensor & 2) ? nullptr : &y,
                                  (null_tensor & 4) ? nullptr : &mask);
      EXPECT_EQ(st, want) << "got " << sdrop_status_name(st) << " (" << sdrop_last_error() << ")";
      const char* msg_c = sdrop_last_error();
      ASSERT_NE(msg_c, nullptr);
      const std::string msg = msg_c;
      EXPECT_FALSE(msg.empty()) << "sdrop_last_error() is empty after a refusal";
      if (kind != kBackward) {
        for (const auto& n : names)
          EXPECT_TRUE(ContainsAny(msg, n)) << "message \"" << msg << "\" does not name " << n;
      }
      for (const auto& v : values)
        EXPECT_TRUE(ContainsAny(msg, v)) << "message \"" << msg << "\" does not show " << v;
      EXPECT_TRUE(xbuf == x0) << "x's buffer was written";
      EXPECT_TRUE(ybuf == y0) << "y's buffer was written";
      EXPECT_TRUE(mbuf == m0) << "mask's buffer was written";
    }
  }

  std::vector<uint8_t> xbuf, ybuf, mbuf;
  std::vector<int64_t> xshape, yshape, mshape, xstrides, ystrides, mstrides;
  DLTensor x{}, y{}, mask{};
  sdrop_params params{};
};

// The unmutated fixture is accepted by all four calls: each refusal below is due to its mutation.
TEST_F(Refusal, BaselineIsAccepted) {
  for (int kind : {kForward, kBackward, kMask, kApplyMask}) {
    Reset();
    EXPECT_EQ(Run(kind, &params, &x, &y, &mask), SDROP_OK) << KindName(kind) << ": " << sdrop_last_error();
  }
}

TEST_F(Refusal, NullParams) { ExpectRefused(kAll, SDROP_ERROR_INVALID_ARGUMENT, {"params"}, {}, true); }

TEST_F(Refusal, NullTensors) {
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"x"}, {}, false, 1);
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"y"}, {}, false, 2);
  ExpectRefused(kMask | kApplyMask, SDROP_ERROR_INVALID_ARGUMENT, {"mask"}, {}, false, 4);
}

TEST_F(Refusal, NullDataWithNonEmptyShape) {
  x.data = nullptr;
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"x", "data|null"});
  Reset();
  y.data = nullptr;
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"y", "data|null"});
  Reset();
  mask.data = nullptr;
  ExpectRefused(kMask | kApplyMask, SDROP_ERROR_INVALID_ARGUMENT, {"mask", "data|null"});
}

TEST_F(Refusal, PNotInZeroOne) {
  struct Bad { double p; const char* shown; };
  const Bad bad[] = {{1.5, "1.5"},
                     {-0.25, "-0.25"},
                     {std::nan(""), "nan"},
                     {std::numeric_limits<double>::infinity(), "inf"},
                     {-std::numeric_limits<double>::infinity(), "inf"},
                     {1.0 + std::ldexp(1.0, -52), ""},
                     {-std::numeric_limits<double>::denorm_min(), ""}};
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.shown);
    Reset();
    params.p = b.p;
    std::vector<std::string> values;
    if (*b.shown) values.push_back(b.shown);
    ExpectRefused(kAll, SDROP_ERROR_INVALID_ARGUMENT, {"p"}, values);
  }
}

TEST_F(Refusal, RankAboveEight) {
  std::vector<int64_t> shape9(9, 1), strides9(9, 1), mshape9(9, 1), mstrides9(9, 1);
  x.ndim = y.ndim = mask.ndim = 9;
  x.shape = y.shape = shape9.data();
  x.strides = y.strides = strides9.data();
  mask.shape = mshape9.data();
  mask.strides = mstrides9.data();
  params.mask_axes = 0x1u;
  ExpectRefused(kAll, SDROP_ERROR_INVALID_ARGUMENT, {"ndim|rank|dimension"}, {"9"});
  x.ndim = y.ndim = mask.ndim = -1;
  ExpectRefused(kAll, SDROP_ERROR_INVALID_ARGUMENT, {"ndim|rank|dimension"}, {"-1"});
}

TEST_F(Refusal, MaskAxesBitsAtOrAboveRank) {
  for (uint32_t axes : {0x10u, 0x13u, 0x80000000u, 0x100u}) {
    Reset();
    params.mask_axes = axes;
    ExpectRefused(kAll, SDROP_ERROR_INVALID_ARGUMENT, {"mask_axes"});
  }
  // Rank 0: no axis at all.
  Reset();
  x.ndim = y.ndim = mask.ndim = 0;
  params.mask_axes = 0x1u;
  ExpectRefused(kAll, SDROP_ERROR_INVALID_ARGUMENT, {"mask_axes"});
}

TEST_F(Refusal, ShapeOrDTypeOfXAndYDiffer) {
  yshape = {2, 3, 5, 4};
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"shape|extent|dim"});
  Reset();
  y.ndim = 3;
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"ndim|rank|shape|dim"});
  Reset();
  y.dtype = kF64;
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"dtype|type"});
  Reset();
  y.dtype = kF16;
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"dtype|type"});
  Reset();
  y.dtype = kBF16;
  x.dtype = kF16;
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"dtype|type"});
}

TEST_F(Refusal, MaskIsNotTheNoiseShape) {
  mshape = {2, 3, 1, 2};  // extent > 1 on an axis outside mask_axes
  ExpectRefused(kMask | kApplyMask, SDROP_ERROR_INVALID_ARGUMENT, {"mask"});
  Reset();
  mshape = {2, 3, 4, 1};
  ExpectRefused(kMask | kApplyMask, SDROP_ERROR_INVALID_ARGUMENT, {"mask"});
  Reset();
  mshape = {2, 2, 1, 1};  // not x's extent on a mask axis
  ExpectRefused(kApplyMask, SDROP_ERROR_INVALID_ARGUMENT, {"mask"});
  Reset();
  mask.ndim = 2;  // (2, 3): not x's rank
  ExpectRefused(kApplyMask, SDROP_ERROR_INVALID_ARGUMENT, {"mask"});
}

TEST_F(Refusal, MaskDTypeOtherThanUint8OrBool) {
  for (DLDataType dt : {kF32, DLDataType{kDLInt, 8, 1}, DLDataType{kDLUInt, 16, 1},
                        DLDataType{kDLUInt, 8, 2}, DLDataType{6, 16, 1}}) {
    SCOPED_TRACE(DTypeString(dt));
    Reset();
    mask.dtype = dt;
    ExpectRefused(kMask | kApplyMask, SDROP_ERROR_INVALID_ARGUMENT, {"mask"});
  }
}

TEST_F(Refusal, TensorsOnDifferentDevices) {
  y.device = DLDevice{kDLCUDA, 0};
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"device"});
  Reset();
  x.device = DLDevice{kDLCUDA, 0};
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"device"});
  Reset();
  mask.device = DLDevice{kDLOpenCL, 0};
  ExpectRefused(kApplyMask, SDROP_ERROR_INVALID_ARGUMENT, {"device"});
}

TEST_F(Refusal, OutputElementsOverlap) {
  const std::vector<std::vector<int64_t>> bad_y = {
      {60, 20, 5, 0},   // zero stride on an extent-5 axis
      {0, 20, 5, 1},    // zero stride on the batch axis
      {20, 5, 5, 1},    // (0,1,0,0) and (0,0,1,0) alias
      {60, 20, 4, 1},   // (0,0,1,0) and (0,0,0,4) alias
      {1, 1, 1, 1},
      {-60, 20, 5, -5}};  // (0,0,1,0) and (0,0,0,1)... alias through the negative stride
  for (const auto& s : bad_y) {
    SCOPED_TRACE(VecString(s));
    Reset();
    ystrides = s;
    ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"y|overlap|stride"});
  }
  for (const auto& s : std::vector<std::vector<int64_t>>{{1, 1, 1, 1}, {0, 1, 1, 1}, {3, 0, 1, 1}}) {
    SCOPED_TRACE(VecString(s));
    Reset();
    mstrides = s;
    ExpectRefused(kMask, SDROP_ERROR_INVALID_ARGUMENT, {"mask"});
  }
}

TEST_F(Refusal, XAndYPartiallyOverlap) {
  // y shifted by one element in x's own buffer.
  y.data = x.data;
  y.byte_offset = 4;
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"x|y|overlap|alias|place"});
  // y over exactly x's addresses, but a different element order (column-major).
  Reset();
  y.data = x.data;
  ystrides = {1, 2, 6, 24};
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"x|y|overlap|alias|place"});
  // y over x's addresses reversed.
  Reset();
  y.data = x.data;
  y.byte_offset = 119 * 4;
  ystrides = {-60, -20, -5, -1};
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"x|y|overlap|alias|place"});
  // y's first element is x's last.
  Reset();
  y.data = x.data;
  y.byte_offset = 119 * 4;
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"x|y|overlap|alias|place"});
}

TEST_F(Refusal, NegativeExtents) {
  xshape = yshape = {2, -3, 4, 5};
  ExpectRefused(kXY, SDROP_ERROR_INVALID_ARGUMENT, {"shape|extent|dim|x"}, {"-3"});
  Reset();
  mshape = {2, -3, 1, 1};
  ExpectRefused(kMask, SDROP_ERROR_INVALID_ARGUMENT, {"mask"}, {"-3"});
  Reset();
  xshape = yshape = {2, 3, 0, -1};  // an empty-looking shape is still refused
  ExpectRefused(kForward, SDROP_ERROR_INVALID_ARGUMENT, {"shape|extent|dim|x"}, {"-1"});
}

TEST_F(Refusal, LanesOtherThanOne) {
  // docs/refusals.md lists lanes != 1 among the refusals; a vector dtype is also arguably
  // "valid DLPack but unsupported", so either refusal status is accepted here. The rest must hold.
  for (int kind : {kForward, kBackward, kApplyMask}) {
    Reset();
    x.dtype = y.dtype = DLDataType{kDLFloat, 32, 4};
    const std::vector<uint8_t> x0 = xbuf, y0 = ybuf;
    const sdrop_status st = Run(kind, &params, &x, &y, &mask);
    EXPECT_TRUE(st == SDROP_ERROR_INVALID_ARGUMENT || st == SDROP_ERROR_UNSUPPORTED)
        << KindName(kind) << ": " << sdrop_status_name(st);
    if (kind != kBackward) {
      EXPECT_TRUE(ContainsAny(sdrop_last_error(), "lanes")) << sdrop_last_error();
    }
    EXPECT_TRUE(ContainsAny(sdrop_last_error(), "4")) << sdrop_last_error();
    EXPECT_TRUE(xbuf == x0 && ybuf == y0) << "written";
  }
}

TEST_F(Refusal, UnsupportedDTypeIsUnsupported) {
  for (DLDataType dt : {DLDataType{kDLInt, 32, 1}, DLDataType{kDLUInt, 8, 1},
                        DLDataType{kDLComplex, 64, 1}, DLDataType{kDLInt, 16, 1}}) {
    SCOPED_TRACE(DTypeString(dt));
    Reset();
    x.dtype = y.dtype = dt;
    ExpectRefused(kXY, SDROP_ERROR_UNSUPPORTED, {"dtype|type|x"});
  }
}

// A refusal in one argument position must not be masked by an empty tensor either: shape
// mismatches are refused even when both are empty.
TEST_F(Refusal, MismatchIsRefusedEvenForEmptyTensors) {
  xshape = {2, 0, 4, 5};
  yshape = {2, 0, 5, 4};
  x.data = y.data = nullptr;
  ExpectRefused(kForward, SDROP_ERROR_INVALID_ARGUMENT, {"shape|extent|dim"});
}

// ---- sdrop_last_error and the ISA cap ------------------------------------------------------------

TEST(LastError, IsEmptyOnAFreshThread) {
  std::string seen = "not run";
  std::thread([&] { seen = sdrop_last_error(); }).join();
  EXPECT_EQ(seen, "");
}

TEST(LastError, IsThreadLocal) {
  // Fail on this thread; another thread still sees "" and, after a success, still "".
  const sdrop_params bad{1.5, 0, 0, 0, 0};
  float v = 1.0f, w = 0.0f;
  HostTensor tx(&v, {1}, kF32), ty(&w, {1}, kF32);
  ASSERT_EQ(sdrop_forward(&bad, &tx.t, &ty.t), SDROP_ERROR_INVALID_ARGUMENT);
  const std::string here = sdrop_last_error();
  EXPECT_FALSE(here.empty());
  std::string there = "not run", after_success = "not run";
  std::thread([&] {
    there = sdrop_last_error();
    const sdrop_params good{0.5, 0, 0, 1, 0};
    HostTensor a(&v, {1}, kF32), b(&w, {1}, kF32);
    float out = 0.0f;
    HostTensor c(&out, {1}, kF32);
    if (sdrop_forward(&good, &a.t, &c.t) == SDROP_OK) after_success = sdrop_last_error();
    // A failure over there does not change the message over here.
    const sdrop_params worse{-2.0, 0, 0, 0, 0};
    sdrop_forward(&worse, &a.t, &c.t);
  }).join();
  EXPECT_EQ(there, "");
  EXPECT_EQ(after_success, "");
  EXPECT_EQ(std::string(sdrop_last_error()), here);
}

TEST(CpuIsaCap, BogusValueIsRefusedAndTheCapIsUnchanged) {
  const sdrop_cpu_isa before = sdrop_get_max_cpu_isa();
  for (int bogus : {0, 4, 7, 254, 256, -1}) {
    EXPECT_EQ(sdrop_set_max_cpu_isa(static_cast<sdrop_cpu_isa>(bogus)), SDROP_ERROR_INVALID_ARGUMENT)
        << bogus;
    EXPECT_FALSE(std::string(sdrop_last_error()).empty());
    EXPECT_EQ(sdrop_get_max_cpu_isa(), before);
  }
}

}  // namespace
}  // namespace sdrop_test
