// docs/refusals.md#hostile-descriptors: strides of magnitude 2^63, element counts
// whose product wraps, byte offsets near 2^64, a caller that traps floating-point
// exceptions, valid DLPack dtypes and devices sdrop lacks, and output layouts whose strides
// interleave. Each is refused with the right status, a message naming the argument, and
// nothing written; or, where the contract accepts it, computed exactly.
#include <fenv.h>
#include <gtest/gtest.h>
#include <xmmintrin.h>

#include <climits>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "dropout_tester.h"

namespace sdrop_test {
namespace {

constexpr int64_t kI64Min = INT64_MIN;
constexpr int64_t kI64Max = INT64_MAX;

// Three guarded arenas (x, y, mask); tensors point into their middles.
class Hostile : public testing::Test {
 protected:
  static constexpr size_t kBytes = 1 << 16, kMid = kBytes / 2;

  void SetUp() override {
    xb.assign(kBytes, 0x5A);
    yb.assign(kBytes, 0xA5);
    mb.assign(kBytes, 0xC3);
  }

  static DLTensor T(std::vector<uint8_t>& buf, DLDataType dt, std::vector<int64_t>& shape,
                    std::vector<int64_t>* strides, uint64_t byte_offset = 0) {
    return DLTensor{buf.data() + kMid, {kDLCPU, 0}, int32_t(shape.size()), dt, shape.data(),
                    strides ? strides->data() : nullptr, byte_offset};
  }

  // The call returns `want`, leaves a message containing every needle, and writes nothing.
  void ExpectRefused(const std::function<sdrop_status()>& call, sdrop_status want,
                     const std::vector<std::string>& needles) {
    const std::vector<uint8_t> x0 = xb, y0 = yb, m0 = mb;
    const sdrop_status st = call();
    const std::string msg = sdrop_last_error();
    EXPECT_EQ(st, want) << sdrop_status_name(st) << ": " << msg;
    EXPECT_FALSE(msg.empty());
    for (const std::string& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos) << "\"" << msg << "\" does not mention " << n;
    EXPECT_TRUE(xb == x0) << "x's arena was written";
    EXPECT_TRUE(yb == y0) << "y's arena was written";
    EXPECT_TRUE(mb == m0) << "mask's arena was written";
  }

  std::vector<uint8_t> xb, yb, mb;
  sdrop_params prm{0.5, 1, 2, 0x3u, 0};
};

// ---- Strides ---------------------------------------------------------------------------

TEST_F(Hostile, Spec5_StridesOfMagnitude2Pow63AreRefused) {
  std::vector<int64_t> shape = {2, 3}, good = {3, 1};
  const std::vector<std::vector<int64_t>> bad = {
      {kI64Min, 1},      {3, kI64Min},        {kI64Max, 1},        {-kI64Max, 1},
      {int64_t(1) << 62, 1}, {-(int64_t(1) << 62), 1}, {int64_t(1) << 61, 1},  // 2^63 bytes
      {int64_t(1) << 59, int64_t(1) << 59}};  // each fits, their sum does not
  for (const auto& s : bad) {
    SCOPED_TRACE(VecString(s));
    std::vector<int64_t> bs = s;
    DLTensor x = T(xb, kF32, shape, &good), y = T(yb, kF32, shape, &bs);
    ExpectRefused([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_INVALID_ARGUMENT,
                  {"y.strides"});
    x = T(xb, kF32, shape, &bs), y = T(yb, kF32, shape, &good);
    ExpectRefused([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_INVALID_ARGUMENT,
                  {"x.strides"});
    x = T(xb, kF32, shape, &bs);  // in place
    ExpectRefused([&] { return sdrop_backward(&prm, &x, &x); }, SDROP_ERROR_INVALID_ARGUMENT,
                  {"dy.strides"});
    DLTensor m = T(mb, kU8, shape, &bs);
    ExpectRefused([&] { return sdrop_mask(&prm, &m); }, SDROP_ERROR_INVALID_ARGUMENT,
                  {"mask.strides"});
    x = T(xb, kF32, shape, &good), y = T(yb, kF32, shape, &good);
    ExpectRefused([&] { return sdrop_apply_mask(&prm, &x, &m, &y); },
                  SDROP_ERROR_INVALID_ARGUMENT, {"mask.strides"});
  }
}

TEST_F(Hostile, Spec5_AnExtentOneAxisMayCarryAnyStride) {
  DropoutTester().shape({2, 1, 3}).x_strides({3, kI64Max, 1}).y_strides({3, kI64Min, 1}).Test();
  DropoutTester().shape({1, 4}).inplace(true).x_strides({kI64Min, 1}).Test();
  MaskTester().shape({1, 5}).mask_axes(0x3u).strides({kI64Min, 1}).Test();
}

// ---- Element counts ----------------------------------------------------------------------

TEST_F(Hostile, Spec5_ElementCountsThatWrapAreRefusedNotTakenAsEmpty) {
  const std::vector<std::vector<int64_t>> bad = {
      {int64_t(1) << 32, int64_t(1) << 32},                        // 2^64: wraps to 0
      {256, 256, 256, 256, 256, 256, 256, 256},                    // 2^64 again
      {int64_t(1) << 31, int64_t(1) << 31, 4},                     // 2^64
      {3, int64_t(1) << 62},                                       // 3 * 2^62
      {kI64Max, 2}};
  for (auto shape : bad) {
    SCOPED_TRACE(VecString(shape));
    std::vector<int64_t> zeros(shape.size(), 0);
    for (bool null_data : {true, false}) {
      DLTensor x = T(xb, kF32, shape, &zeros), y = T(yb, kF32, shape, &zeros);
      if (null_data) x.data = y.data = nullptr;
      ExpectRefused([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_INVALID_ARGUMENT,
                    {"x", "elements"});
      prm.mask_axes = 0x1u;
      DLTensor m = T(mb, kU8, shape, &zeros);
      if (null_data) m.data = nullptr;
      ExpectRefused([&] { return sdrop_mask(&prm, &m); }, SDROP_ERROR_INVALID_ARGUMENT,
                    {"mask"});
      prm.mask_axes = 0x3u;
    }
  }
  // 2^62 elements fit the count, but an output of that many distinct elements does not fit
  // the address space.
  std::vector<int64_t> shape = {int64_t(1) << 31, int64_t(1) << 31}, zeros = {0, 0},
                       compact = {int64_t(1) << 31, 1};
  DLTensor x = T(xb, kF32, shape, &zeros), y = T(yb, kF32, shape, &compact);
  ExpectRefused([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_INVALID_ARGUMENT,
                {"y.strides"});
}

TEST_F(Hostile, Spec5_AZeroExtentMakesAnyShapeEmpty) {
  std::vector<int64_t> shape = {0, int64_t(1) << 40, int64_t(1) << 40};
  std::vector<int64_t> wild = {kI64Min, kI64Max, 7};
  for (bool null_data : {true, false}) {
    DLTensor x = T(xb, kF32, shape, &wild), y = T(yb, kF32, shape, nullptr);
    if (null_data) x.data = y.data = nullptr;
    const std::vector<uint8_t> y0 = yb;
    EXPECT_EQ(sdrop_forward(&prm, &x, &y), SDROP_OK) << sdrop_last_error();
    EXPECT_TRUE(yb == y0);
  }
}

// ---- Byte offsets and addresses -------------------------------------------------------------

TEST_F(Hostile, Spec5_AddressesThatWrapAreRefused) {
  std::vector<int64_t> shape = {2, 3}, compact = {3, 1}, backwards = {-3, -1};
  for (uint64_t off : {UINT64_MAX - 3, UINT64_MAX, uint64_t(1) << 63, UINT64_MAX - kMid}) {
    SCOPED_TRACE(off);
    DLTensor x = T(xb, kF32, shape, &compact), y = T(yb, kF32, shape, &compact, off);
    ExpectRefused([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_INVALID_ARGUMENT,
                  {"y.data", "byte_offset"});
    y = T(yb, kF32, shape, &compact);
    x = T(xb, kF32, shape, &compact, off);
    ExpectRefused([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_INVALID_ARGUMENT,
                  {"x.data", "byte_offset"});
  }
  // Below address 0 and past 2^64 - 1.
  DLTensor x = T(xb, kF32, shape, &compact);
  DLTensor y = T(yb, kF32, shape, &backwards);
  y.data = reinterpret_cast<void*>(uintptr_t(8));
  ExpectRefused([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_INVALID_ARGUMENT,
                {"y.data"});
  y = T(yb, kF32, shape, &compact);
  y.data = reinterpret_cast<void*>(~uintptr_t(0) - 15);
  ExpectRefused([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_INVALID_ARGUMENT,
                {"y.data"});
}

// ---- The caller's floating-point environment ----------------------------------------------

// Every entry point, refused and accepted, with every exception trapping: no SIGFPE, and
// the status flags afterwards are exactly the caller's (one set before, none added).
void CallEverythingWithTrapsOn() {
  float x[24], y[24];
  for (int i = 0; i < 24; i++) x[i] = 1.0f + float(i) / 7.0f;
  uint8_t m[6];
  std::vector<int64_t> shape = {2, 3, 4}, mshape = {2, 3, 1};
  DLTensor tx{x, {kDLCPU, 0}, 3, kF32, shape.data(), nullptr, 0};
  DLTensor ty{y, {kDLCPU, 0}, 3, kF32, shape.data(), nullptr, 0};
  DLTensor tm{m, {kDLCPU, 0}, 3, kU8, mshape.data(), nullptr, 0};
  uint64_t snan_bits = 0x7FF0000000000001ull;
  double snan;
  std::memcpy(&snan, &snan_bits, sizeof snan);
  const double ps[] = {__builtin_nan(""), -__builtin_nan(""), snan, __builtin_inf(),
                       -__builtin_inf(), 1.5, -0.25, -4.9e-324, 0.3, 1.0, 0.0, 4.9e-324};
  feclearexcept(FE_ALL_EXCEPT);
  // The caller's own pending flag, in MXCSR only: a pending x87 flag would trap the test's
  // own next x87 instruction once unmasked.
  _mm_setcsr(_mm_getcsr() | 0x0008u);  // overflow flag
  feenableexcept(FE_ALL_EXCEPT);
  int refused = 0;
  for (double p : ps) {
    for (uint32_t flags : {0u, unsigned(SDROP_FLAG_MULTIPLY | SDROP_FLAG_SCALE_IN_DTYPE)}) {
      const sdrop_params prm{p, 9, 1, 0x3u, flags};
      refused += sdrop_forward(&prm, &tx, &ty) != SDROP_OK;
      refused += sdrop_backward(&prm, &ty, &ty) != SDROP_OK;
      refused += sdrop_mask(&prm, &tm) != SDROP_OK;
      refused += sdrop_apply_mask(&prm, &tx, &tm, &ty) != SDROP_OK;
    }
  }
  fedisableexcept(FE_ALL_EXCEPT);
  const int flags = fetestexcept(FE_ALL_EXCEPT);
  if (refused != 8 * 8) std::exit(2);  // the 8 bad p values, 8 calls each
  std::exit(flags == FE_OVERFLOW ? 0 : 3);  // nothing added, nothing cleared
}

TEST(HostileFpEnv, Spec5_NoCallTrapsOrRaisesAFlagWhateverTheCallersEnvironment) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(CallEverythingWithTrapsOn(), testing::ExitedWithCode(0), "");
}

// ---- Statuses ------------------------------------------------------------------------------

TEST_F(Hostile, Spec4_AValidDLPackDTypeSdropLacksIsUnsupported) {
  std::vector<int64_t> shape = {2, 3};
  const DLDataType unsupported[] = {
      {kDLInt, 4, 1},  {kDLUInt, 1, 1},  {kDLInt, 32, 1}, {kDLUInt, 8, 1}, {kDLComplex, 64, 1},
      {6, 8, 1} /* bool */, {10, 8, 1} /* float8_e4m3fn */, {17, 4, 1} /* float4_e2m1fn */,
      {kDLFloat, 80, 1}, {kDLFloat, 8, 1}, {kDLBfloat, 32, 1}, {kDLOpaqueHandle, 64, 1}};
  for (DLDataType dt : unsupported) {
    SCOPED_TRACE(DTypeString(dt));
    DLTensor x = T(xb, dt, shape, nullptr), y = T(yb, dt, shape, nullptr);
    ExpectRefused([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_UNSUPPORTED,
                  {"x.dtype"});
  }
  // Not DLPack data types at all, and masks of any other type: invalid arguments.
  for (DLDataType dt : {DLDataType{99, 32, 1}, DLDataType{kDLFloat, 0, 1}}) {
    SCOPED_TRACE(DTypeString(dt));
    DLTensor x = T(xb, dt, shape, nullptr), y = T(yb, dt, shape, nullptr);
    ExpectRefused([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_INVALID_ARGUMENT,
                  {"x.dtype"});
  }
  for (DLDataType dt : {DLDataType{kDLInt, 4, 1}, DLDataType{10, 8, 1}}) {
    DLTensor m = T(mb, dt, shape, nullptr);
    ExpectRefused([&] { return sdrop_mask(&prm, &m); }, SDROP_ERROR_INVALID_ARGUMENT,
                  {"mask.dtype"});
  }
}

TEST_F(Hostile, Spec4_AValidDeviceSdropLacksIsUnsupported) {
  std::vector<int64_t> shape = {2, 3};
  for (int dev : {int(kDLVulkan), int(kDLMetal), int(kDLROCM), int(kDLCUDAManaged), 1000}) {
    SCOPED_TRACE(dev);
    DLTensor x = T(xb, kF32, shape, nullptr), y = T(yb, kF32, shape, nullptr);
    x.device = y.device = DLDevice{DLDeviceType(dev), 0};
    ExpectRefused([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_UNSUPPORTED, {"x"});
  }
  for (int dev : {0, -3}) {
    DLTensor x = T(xb, kF32, shape, nullptr), y = T(yb, kF32, shape, nullptr);
    x.device = y.device = DLDevice{DLDeviceType(dev), 0};
    ExpectRefused([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_INVALID_ARGUMENT,
                  {"x.device"});
  }
}

TEST(StatusName, NamesEveryStatusLikeCuGetErrorName) {
  EXPECT_STREQ(sdrop_status_name(SDROP_OK), "SDROP_OK");
  EXPECT_STREQ(sdrop_status_name(SDROP_ERROR_INVALID_ARGUMENT), "SDROP_ERROR_INVALID_ARGUMENT");
  EXPECT_STREQ(sdrop_status_name(SDROP_ERROR_UNSUPPORTED), "SDROP_ERROR_UNSUPPORTED");
  EXPECT_STREQ(sdrop_status_name(SDROP_ERROR_BACKEND_UNAVAILABLE),
               "SDROP_ERROR_BACKEND_UNAVAILABLE");
  EXPECT_STREQ(sdrop_status_name(SDROP_ERROR_OUT_OF_MEMORY), "SDROP_ERROR_OUT_OF_MEMORY");
  EXPECT_STREQ(sdrop_status_name(SDROP_ERROR_INTERNAL), "SDROP_ERROR_INTERNAL");
  for (int bogus : {-1, 6, 1000}) {
    EXPECT_STREQ(sdrop_status_name(static_cast<sdrop_status>(bogus)), "SDROP_STATUS_UNKNOWN");
  }
}

// ---- Overlap, decided exactly ------------------------------------------------------------

TEST_F(Hostile, Spec5_InterleavedOutputsThatOverlapAreRefused) {
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> bad = {
      {{4, 5}, {2, 3}},        // (3, 0) and (0, 2): 6 = 6
      {{2, 2, 2}, {3, 4, 7}},  // (1, 1, 0) and (0, 0, 1): 3 + 4 = 7
      {{3, 40}, {39, 1}}};     // (1, 0) and (0, 39)
  for (auto [shape, strides] : bad) {
    SCOPED_TRACE(VecString(shape) + " " + VecString(strides));
    std::vector<int64_t> cs = sdrop_ref::CompactStrides(shape);
    DLTensor x = T(xb, kF32, shape, &cs), y = T(yb, kF32, shape, &strides);
    ExpectRefused([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_INVALID_ARGUMENT,
                  {"y", "overlap"});
  }
}

TEST_F(Hostile, Spec5_InterleavedOutputsThatDoNotOverlapAreComputed) {
  // Strides that do not nest but reach distinct addresses.
  DropoutTester().shape({3, 5}).y_strides({2, 3}).mask_axes(0x3u).Test();
  DropoutTester().shape({2, 2, 2}).y_strides({3, 5, 7}).mask_axes(0x7u).Test();
  DropoutTester().shape({3, 4, 5}).x_strides({-1, 14, 18}).inplace(true).Test();
  MaskTester().shape({3, 5}).mask_axes(0x3u).strides({2, 3}).Test();
  // More than 2^24 elements: the old enumerating check refused these as "possibly
  // overlapping"; 2a + 3b is injective for a < 3.
  MaskTester().shape({3, int64_t(1) << 23}).mask_axes(0x3u).strides({2, 3}).Test();
}

// A layout built to exhaust the search (8 interleaving axes, no solution in reach, 2^32
// elements): refused as unsupported rather than guessed. Run in a child process: if the
// library wrongly accepted it, it would write through a pointer into nothing.
void CallOnAHardLayout() {
  std::vector<int64_t> shape(8, 16);
  // Random strides in [2^40, 2^41): 31^6 search nodes above the closed-form pair.
  std::vector<int64_t> strides = {1660532718661, 1888676593817, 1649024160628, 1213968101973,
                                  1446978349627, 1916041629942, 1933794305448, 1325185362280};
  static uint8_t byte;
  DLTensor m{&byte, {kDLCPU, 0}, 8, kU8, shape.data(), strides.data(), 0};
  const sdrop_params prm{0.5, 1, 2, 0xffu, 0};
  std::exit(int(sdrop_mask(&prm, &m)));
}

TEST(HostileOverlap, Spec5_ALayoutTooHardToDecideIsUnsupportedNotGuessed) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(CallOnAHardLayout(), testing::ExitedWithCode(int(SDROP_ERROR_UNSUPPORTED)), "");
}

TEST_F(Hostile, Spec5_XAndYInterleavedWithoutSharingABytePass) {
  // x: the even elements of one buffer, y: the odd ones (the old range test refused this).
  std::vector<float> buf(64);
  for (int i = 0; i < 64; i++) buf[i] = float(i + 1);
  std::vector<int64_t> shape = {4, 8}, strides = {16, 2};
  DLTensor x{buf.data(), {kDLCPU, 0}, 2, kF32, shape.data(), strides.data(), 0};
  DLTensor y = x;
  y.byte_offset = 4;
  const sdrop_params p{0.5, 3, 4, 0x1u, 0};
  ASSERT_EQ(sdrop_forward(&p, &x, &y), SDROP_OK) << sdrop_last_error();
  uint8_t keep[4];
  std::vector<int64_t> ms = {4, 1};
  DLTensor m{keep, {kDLCPU, 0}, 2, kU8, ms.data(), nullptr, 0};
  ASSERT_EQ(sdrop_mask(&p, &m), SDROP_OK);
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < 8; c++) {
      EXPECT_EQ(buf[16 * r + 2 * c], float(16 * r + 2 * c + 1));  // x untouched
      EXPECT_EQ(buf[16 * r + 2 * c + 1], keep[r] ? 2.0f * float(16 * r + 2 * c + 1) : 0.0f);
    }
}

TEST_F(Hostile, Spec5_XAndYSharingBytesAreRefusedEvenWhenMisaligned) {
  std::vector<int64_t> shape = {4, 8}, strides = {16, 2};
  DLTensor x = T(xb, kF32, shape, &strides), y = x;
  y.byte_offset = 2;  // every y element shares two bytes with an x element
  ExpectRefused([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_INVALID_ARGUMENT,
                {"x and y", "overlap"});
  // The mask inside y's gaps is fine; inside y's elements it is not.
  std::vector<int64_t> yshape = {2, 3}, ystrides = {6, 2}, mshape = {2, 3}, mstrides = {24, 8};
  y = T(yb, kF32, yshape, &ystrides);
  x = T(xb, kF32, yshape, nullptr);
  DLTensor m = T(yb, kU8, mshape, &mstrides, 1);  // bytes 1, 9, 17, ...: within y's elements
  ExpectRefused([&] { return sdrop_apply_mask(&prm, &x, &m, &y); },
                SDROP_ERROR_INVALID_ARGUMENT, {"mask and y"});
  m.byte_offset = 4;  // bytes 4, 12, 20, ...: the gaps between y's elements (0-3, 8-11, ...)
  yb.assign(kBytes, 0);
  EXPECT_EQ(sdrop_apply_mask(&prm, &x, &m, &y), SDROP_OK) << sdrop_last_error();
}

}  // namespace
}  // namespace sdrop_test
