// The OpenCL backend (sdrop.h, "GPU backends"), run for real on whatever OpenCL device the
// machine has (the test command installs PoCL, a CPU device): tensors are cl_mem buffers of
// the caller's context, calls are enqueued on the caller's queue set per thread with
// sdrop_set_opencl_queue. Every result is compared bit for bit with the same call on CPU
// tensors and, for all but the largest tensors, with the scalar SPEC reference
// (gpu_tester.h). Refusals return the right status, name the argument, and write nothing.
//
// Without an OpenCL platform and device every test FAILS (the test command installs PoCL, so
// a missing one is a setup error), unless SDROP_OPENCL_TESTS=skip is set: then they skip.
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gpu_tester.h"

namespace sdrop_gpu_test {
namespace {

using Op = GpuCase::Op;

// ---- The process's one context and queue ------------------------------------------------------

struct ClEnv {
  bool ok = false;
  std::string why;  // when !ok
  cl_platform_id platform = nullptr;
  cl_device_id device = nullptr;
  cl_context context = nullptr;
  cl_command_queue queue = nullptr;
  std::string platform_name, device_name, version, extensions;
  bool fp64 = false, fp16 = false;
};

std::string PlatformString(cl_platform_id p, cl_platform_info what) {
  size_t n = 0;
  if (clGetPlatformInfo(p, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return "";
  std::string s(n, '\0');
  clGetPlatformInfo(p, what, n, &s[0], nullptr);
  s.resize(std::strlen(s.c_str()));
  return s;
}

std::string DeviceString(cl_device_id d, cl_device_info what) {
  size_t n = 0;
  if (clGetDeviceInfo(d, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return "";
  std::string s(n, '\0');
  clGetDeviceInfo(d, what, n, &s[0], nullptr);
  s.resize(std::strlen(s.c_str()));
  return s;
}

void InitCl(ClEnv* e) {
  cl_uint np = 0;
  cl_int err = clGetPlatformIDs(0, nullptr, &np);
  if (err != CL_SUCCESS || np == 0) {
    e->why = "clGetPlatformIDs found no OpenCL platform (error " + std::to_string(err) + ", " +
             std::to_string(np) + " platforms; is an ICD such as pocl-opencl-icd registered "
             "in /etc/OpenCL/vendors?)";
    return;
  }
  std::vector<cl_platform_id> platforms(np);
  clGetPlatformIDs(np, platforms.data(), nullptr);
  for (cl_platform_id p : platforms) {
    cl_uint nd = 0;
    if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &nd) != CL_SUCCESS || nd == 0) continue;
    std::vector<cl_device_id> devices(nd);
    clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, nd, devices.data(), nullptr);
    e->platform = p;
    e->device = devices[0];
    break;
  }
  if (!e->device) {
    e->why = std::to_string(np) + " OpenCL platform(s), but no device on any of them";
    return;
  }
  const cl_context_properties props[] = {CL_CONTEXT_PLATFORM,
                                         reinterpret_cast<cl_context_properties>(e->platform), 0};
  e->context = clCreateContext(props, 1, &e->device, nullptr, nullptr, &err);
  if (err != CL_SUCCESS) {
    e->why = "clCreateContext failed with error " + std::to_string(err);
    return;
  }
  e->queue = clCreateCommandQueue(e->context, e->device, 0, &err);  // in order
  if (err != CL_SUCCESS) {
    e->why = "clCreateCommandQueue failed with error " + std::to_string(err);
    return;
  }
  e->platform_name = PlatformString(e->platform, CL_PLATFORM_NAME);
  e->device_name = DeviceString(e->device, CL_DEVICE_NAME);
  e->version = DeviceString(e->device, CL_DEVICE_VERSION);
  e->extensions = DeviceString(e->device, CL_DEVICE_EXTENSIONS);
  e->fp64 = e->extensions.find("cl_khr_fp64") != std::string::npos;
  e->fp16 = e->extensions.find("cl_khr_fp16") != std::string::npos;
  e->ok = true;
}

// Created at first use and never released: sdrop caches the kernels it compiled per context
// until the process ends, and a released context's address could come back for a new one.
const ClEnv& Cl() {
  static const ClEnv* env = [] {
    ClEnv* e = new ClEnv;
    InitCl(e);
    if (e->ok)
      std::printf("[ OpenCL   ] %s / %s (%s)%s%s\n", e->platform_name.c_str(),
                  e->device_name.c_str(), e->version.c_str(), e->fp64 ? ", cl_khr_fp64" : "",
                  e->fp16 ? ", cl_khr_fp16" : ", no cl_khr_fp16");
    return e;
  }();
  return *env;
}

bool SkipRequested() {
  const char* v = std::getenv("SDROP_OPENCL_TESTS");
  return v != nullptr && std::strcmp(v, "skip") == 0;
}

#define SDROP_REQUIRE_OPENCL()                                                                 \
  do {                                                                                         \
    if (!Cl().ok) {                                                                            \
      if (SkipRequested()) GTEST_SKIP() << "no OpenCL device (SDROP_OPENCL_TESTS=skip): "      \
                                        << Cl().why;                                           \
      FAIL() << "no OpenCL device: " << Cl().why                                               \
             << ". The test command installs PoCL (pocl-opencl-icd); set "                     \
                "SDROP_OPENCL_TESTS=skip to skip these tests on purpose.";                     \
    }                                                                                          \
  } while (0)

class ClDevice : public Device {
 public:
  ClDevice() = default;
  explicit ClDevice(cl_command_queue queue) : queue_(queue) {}
  DLDevice dl_device() const override { return DLDevice{kDLOpenCL, 0}; }
  void* Alloc(size_t bytes) override {
    cl_int err = CL_SUCCESS;
    cl_mem m = clCreateBuffer(Cl().context, CL_MEM_READ_WRITE, bytes, nullptr, &err);
    if (err != CL_SUCCESS) {
      ADD_FAILURE() << "clCreateBuffer(" << bytes << " bytes) failed: " << err;
      return nullptr;
    }
    return m;
  }
  void Free(void* h) override { clReleaseMemObject(static_cast<cl_mem>(h)); }
  void Write(void* h, size_t offset, const void* src, size_t n) override {
    const cl_int err = clEnqueueWriteBuffer(queue(), static_cast<cl_mem>(h), CL_TRUE, offset,
                                            n, src, 0, nullptr, nullptr);
    EXPECT_EQ(err, CL_SUCCESS) << "clEnqueueWriteBuffer";
  }
  void Read(void* h, size_t offset, void* dst, size_t n) override {
    const cl_int err = clEnqueueReadBuffer(queue(), static_cast<cl_mem>(h), CL_TRUE, offset, n,
                                           dst, 0, nullptr, nullptr);
    EXPECT_EQ(err, CL_SUCCESS) << "clEnqueueReadBuffer";
  }
  void Finish() override { EXPECT_EQ(clFinish(queue()), CL_SUCCESS) << "clFinish"; }

 private:
  cl_command_queue queue() const { return queue_ ? queue_ : Cl().queue; }
  cl_command_queue queue_ = nullptr;
};

// Every test: the process's context and queue, set on the test's thread.
class OpenCl : public testing::Test {
 protected:
  void SetUp() override {
    SDROP_REQUIRE_OPENCL();
    ASSERT_EQ(sdrop_set_opencl_queue(Cl().context, Cl().queue), SDROP_OK) << sdrop_last_error();
  }
  GpuCase Case() { return GpuCase(&dev_); }
  ClDevice dev_;
};

// The same, once per dtype. float64 needs cl_khr_fp64 (UNSUPPORTED without it, and nothing
// written); float16 must work without cl_khr_fp16.
class OpenClDtype : public OpenCl, public testing::WithParamInterface<DLDataType> {
 protected:
  GpuCase Case() {
    GpuCase c(&dev_);
    c.dtype(GetParam());
    if (GetParam().code == kDLFloat && GetParam().bits == 64 && !Cl().fp64)
      c.expect_status(SDROP_ERROR_UNSUPPORTED);
    return c;
  }
  size_t es() const { return ElementSize(GetParam()); }
};

std::string DtypeParamName(const testing::TestParamInfo<DLDataType>& info) {
  return sdrop_test::DTypeString(info.param);
}
INSTANTIATE_TEST_SUITE_P(AllDTypes, OpenClDtype, testing::ValuesIn(sdrop_test::AllDTypes()),
                         DtypeParamName);

bool Stop() { return sdrop_test::FailedParts() >= sdrop_test::kEnoughFailures; }

const std::vector<double> kPs = {0.0, 0.1, 0.5, 0.9, 1.0};

// Three layouts that land on the three kernel shapes (rows, channels_last, elementwise).
struct KernelShape {
  const char* name;
  std::vector<int64_t> shape;
  uint32_t axes;
};
const std::vector<KernelShape>& KernelShapes() {
  static const std::vector<KernelShape> v = {
      {"channels_first", {3, 5, 7, 11}, sdrop_spatial_axes(4, SDROP_CHANNELS_FIRST)},
      {"channels_last", {3, 7, 11, 5}, sdrop_spatial_axes(4, SDROP_CHANNELS_LAST)},
      {"elementwise", {3, 5, 7, 11}, 0xFu}};
  return v;
}

// ---- The environment ------------------------------------------------------------------------------

TEST_F(OpenCl, HandlesAreTheCallersAndPerThread) {
  void* ctx = nullptr;
  void* queue = nullptr;
  sdrop_get_opencl_queue(&ctx, &queue);
  EXPECT_EQ(ctx, static_cast<void*>(Cl().context));
  EXPECT_EQ(queue, static_cast<void*>(Cl().queue));
  std::thread([] {
    void* c = reinterpret_cast<void*>(1);
    void* q = reinterpret_cast<void*>(1);
    sdrop_get_opencl_queue(&c, &q);
    EXPECT_EQ(c, nullptr) << "a new thread starts without an OpenCL context";
    EXPECT_EQ(q, nullptr) << "a new thread starts without an OpenCL queue";
  }).join();
  sdrop_get_opencl_queue(&ctx, &queue);  // untouched by the other thread
  EXPECT_EQ(ctx, static_cast<void*>(Cl().context));
  EXPECT_EQ(queue, static_cast<void*>(Cl().queue));
}

// ---- Values: every dtype, both drop modes, every p --------------------------------------------------

TEST_P(OpenClDtype, ForwardAndBackwardEveryModeAndP) {
  std::mt19937_64 rng(101);
  for (const KernelShape& k : KernelShapes())
    for (Op op : {Op::kForward, Op::kBackward})
      for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY})
        for (double p : kPs) {
          if (Stop()) return;
          SCOPED_TRACE(k.name);
          Case().op(op).shape(k.shape).mask_axes(k.axes).flags(flags).p(p).seed(rng())
              .offset(rng()).rng_seed(rng()).Run();
        }
}

// NaN (quiet, signaling, payloads), +-Inf, +-0, subnormals, extremes: dropped ones are +0.0 in
// the default mode and x * 0 with SDROP_FLAG_MULTIPLY; p = 0 copies them exactly.
TEST_P(OpenClDtype, NanInfSignedZeroSubnormal) {
  std::mt19937_64 rng(102);
  for (const KernelShape& k : KernelShapes())
    for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY})
      for (double p : {0.0, 0.5, 1.0}) {
        if (Stop()) return;
        SCOPED_TRACE(k.name);
        Case().shape(k.shape).mask_axes(k.axes).flags(flags).p(p).values(Values::kSpecials)
            .seed(rng()).rng_seed(rng()).Run();
      }
}

// The same seed gives the same (sample, channel) drops in both layouts, on the device too.
TEST_P(OpenClDtype, ChannelsFirstAndLastDropTheSameChannels) {
  if (GetParam().bits == 64 && !Cl().fp64) GTEST_SKIP() << "no cl_khr_fp64";
  const std::vector<int64_t> nchw{3, 6, 5, 7}, nhwc{3, 5, 7, 6};
  sdrop_ref::DType t;
  ASSERT_TRUE(sdrop_ref::DTypeFromDL(GetParam(), &t));
  const uint64_t one = sdrop_test::FromDouble(t, 1.0);
  auto ones = [one](int64_t) { return one; };
  const std::vector<uint8_t> a =
      Case().shape(nchw).mask_axes(sdrop_spatial_axes(4, SDROP_CHANNELS_FIRST)).x_bits(ones).Run();
  const std::vector<uint8_t> b =
      Case().shape(nhwc).mask_axes(sdrop_spatial_axes(4, SDROP_CHANNELS_LAST)).x_bits(ones).Run();
  // Both buffers: 64 guard bytes, then the compact tensor.
  const size_t g = TensorBuffer::kGuard, e = es();
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t c = 0; c < 6; ++c) {
      const size_t ia = g + e * static_cast<size_t>(((n * 6 + c) * 5 + 0) * 7 + 0);
      const size_t ib = g + e * static_cast<size_t>(((n * 5 + 0) * 7 + 0) * 6 + c);
      ASSERT_LT(ia + e, a.size());
      ASSERT_LT(ib + e, b.size());
      EXPECT_EQ(std::memcmp(&a[ia], &b[ib], e), 0) << "sample " << n << " channel " << c;
    }
}

// ---- Layouts: ranks 0..5, channels first / last, element-wise and other noise shapes -------------

TEST_P(OpenClDtype, EveryRankAndNoiseShape) {
  std::mt19937_64 rng(103);
  for (const LayoutCase& lc : LayoutCases())
    for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
      if (Stop()) return;
      SCOPED_TRACE(lc.name);
      Case().shape(lc.shape).mask_axes(lc.mask_axes).flags(flags).p(0.5).seed(rng())
          .rng_seed(rng()).Run();
      Case().op(Op::kBackward).shape(lc.shape).mask_axes(lc.mask_axes).flags(flags).p(0.1)
          .seed(rng()).rng_seed(rng()).Run();
    }
}

// ---- Strides: transposed, gaps, negative, broadcast inputs ---------------------------------------

TEST_P(OpenClDtype, NonContiguousTransposedAndNegativeStrides) {
  const std::vector<int64_t> shape{2, 3, 9, 13};
  std::mt19937_64 rng(104);
  for (const StrideCase& sc : StrideCases(shape))
    for (uint32_t axes : {0x3u, 0x9u, 0xFu, 0x1u})
      for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
        if (Stop()) return;
        SCOPED_TRACE(sc.name);
        Case().shape(shape).x_strides(sc.x).y_strides(sc.y).mask_axes(axes).flags(flags).p(0.5)
            .seed(rng()).rng_seed(rng()).Run();
      }
}

TEST_P(OpenClDtype, RandomStridesAndRanks) {
  std::mt19937_64 rng(105);
  for (int i = 0; i < 40 && !Stop(); ++i) {
    const int rank = static_cast<int>(rng() % 6);
    std::vector<int64_t> shape(rank);
    for (auto& e : shape) e = 1 + static_cast<int64_t>(rng() % 6);
    const uint32_t axes = rank == 0 ? 0u : static_cast<uint32_t>(rng()) & ((1u << rank) - 1u);
    Case().op(i % 3 == 0 ? Op::kBackward : Op::kForward).shape(shape)
        .x_strides(sdrop_test::RandomStrides(shape, rng))
        .y_strides(sdrop_test::RandomStrides(shape, rng)).mask_axes(axes)
        .flags(i % 2 ? SDROP_FLAG_MULTIPLY : 0u).p(kPs[rng() % kPs.size()]).seed(rng())
        .offset(rng()).rng_seed(rng()).Run();
  }
}

// SPEC section 5 accepts ranks up to 8: the runtime loops over the axes the kernels lack.
TEST_P(OpenClDtype, Ranks6To8) {
  std::mt19937_64 rng(111);
  for (int i = 0; i < 24 && !Stop(); ++i) {
    const int rank = 6 + i % 3;
    std::vector<int64_t> shape(rank);
    for (auto& e : shape) e = 1 + static_cast<int64_t>(rng() % 3);
    const uint32_t all = (1u << rank) - 1u;
    const uint32_t axes = i % 4 == 0   ? sdrop_spatial_axes(rank, SDROP_CHANNELS_FIRST)
                          : i % 4 == 1 ? sdrop_spatial_axes(rank, SDROP_CHANNELS_LAST)
                          : i % 4 == 2 ? all
                                       : static_cast<uint32_t>(rng()) & all;
    Case().op(i % 5 == 0 ? Op::kApplyMask : Op::kForward).shape(shape)
        .x_strides(sdrop_test::RandomStrides(shape, rng))
        .y_strides(sdrop_test::RandomStrides(shape, rng)).mask_axes(axes)
        .flags(i % 2 ? SDROP_FLAG_MULTIPLY : 0u).p(0.5).seed(rng()).rng_seed(rng()).Run();
  }
}

// Drop probabilities at the edges of the threshold T = nearbyint((1 - p) 2^32) (SPEC section 2):
// tiny p (keep all or nearly all), the half-way cases, p just below 1 (keep none, huge scale).
TEST_P(OpenClDtype, ThresholdEdges) {
  const double two32 = 4294967296.0;
  const std::vector<double> ps = {1e-12, 0.5 / two32, 1.5 / two32, 2.5 / two32, 1e-6,
                                  1.0 / 3.0, 0.3141592653589793, 0.999999,
                                  std::nextafter(1.0, 0.0)};
  std::mt19937_64 rng(112);
  for (double p : ps)
    for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
      if (Stop()) return;
      Case().shape({4, 6, 33}).mask_axes(0x7u).flags(flags).p(p).seed(rng()).rng_seed(rng())
          .Run();
      Case().op(Op::kApplyMask).shape({4, 6, 33}).mask_axes(0x3u).flags(flags).p(p)
          .rng_seed(rng()).Run();
    }
}

// NULL strides mean compact row-major, on the device as on the CPU.
TEST_P(OpenClDtype, NullStrides) {
  Case().shape({2, 3, 9, 13}).null_strides(true).mask_axes(0x3u).p(0.5).Run();
  Case().shape({2, 9, 13, 3}).null_strides(true).mask_axes(0x9u).p(0.5).Run();
}

// ---- byte_offset into the cl_mem (a multiple of the element size) ------------------------------

TEST_P(OpenClDtype, ByteOffsetOnXAndY) {
  const std::vector<int64_t> shape{2, 3, 9, 13};
  const uint64_t e = es();
  std::mt19937_64 rng(106);
  for (uint64_t xo : {uint64_t{0}, e, 7 * e, 1000 * e})
    for (uint64_t yo : {uint64_t{0}, 3 * e, 333 * e})
      for (uint32_t axes : {0x3u, 0x9u, 0xFu}) {
        if (Stop()) return;
        Case().shape(shape).x_byte_offset(xo).y_byte_offset(yo).mask_axes(axes).p(0.5)
            .seed(rng()).rng_seed(rng()).Run();
      }
  // With negative strides: data + byte_offset is element 0, lower addresses inside the cl_mem.
  const std::vector<int64_t> neg = sdrop_test::Strides(shape, sdrop_test::Identity(4), {}, 0xBu);
  Case().shape(shape).x_strides(neg).y_strides(neg).x_byte_offset(5 * e).y_byte_offset(e)
      .mask_axes(0x3u).p(0.5).Run();
  Case().shape(shape).x_strides(neg).inplace(true).x_byte_offset(9 * e).mask_axes(0x9u).p(0.5)
      .Run();
}

// ---- In place: y == x -------------------------------------------------------------------------------

TEST_P(OpenClDtype, InPlace) {
  std::mt19937_64 rng(107);
  const std::vector<int64_t> shape{2, 3, 9, 13};
  const std::vector<std::vector<int64_t>> layouts = {
      {},
      sdrop_test::Strides(shape, {0, 2, 3, 1}),
      sdrop_test::Strides(shape, sdrop_test::Identity(4), {1, 2, 1, 2}, 0x9u)};
  for (const auto& strides : layouts)
    for (Op op : {Op::kForward, Op::kBackward, Op::kApplyMask})
      for (uint32_t axes : {0x3u, 0x9u, 0xFu})
        for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
          if (Stop()) return;
          Case().op(op).shape(shape).x_strides(strides).inplace(true).x_byte_offset(es() * 2)
              .mask_axes(axes).flags(flags).p(0.5).seed(rng()).rng_seed(rng()).Run();
        }
}

// ---- sdrop_apply_mask -----------------------------------------------------------------------------

TEST_P(OpenClDtype, ApplyMaskUint8AndBool) {
  std::mt19937_64 rng(108);
  for (const KernelShape& k : KernelShapes())
    for (DLDataType md : {kU8, kBool})
      for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY})
        for (double p : kPs) {
          if (Stop()) return;
          SCOPED_TRACE(k.name);
          Case().op(Op::kApplyMask).mask_dtype(md).shape(k.shape).mask_axes(k.axes).flags(flags)
              .p(p).values(p == 0.5 ? Values::kSpecials : Values::kMixed).rng_seed(rng()).Run();
        }
  // Strided mask with an offset, strided x and y.
  const std::vector<int64_t> shape{2, 3, 9, 13};
  Case().op(Op::kApplyMask).shape(shape).mask_axes(0x3u).mask_strides({1, -2, 5, 3})
      .mask_byte_offset(5).x_strides(sdrop_test::Strides(shape, {0, 2, 3, 1}))
      .y_byte_offset(es() * 3).p(0.25).Run();
  Case().op(Op::kApplyMask).shape(shape).mask_axes(0xFu)
      .mask_strides(sdrop_test::Strides(shape, {3, 2, 1, 0}, {}, 0x4u)).p(0.5).Run();
}

// ---- Empty tensors: OK, nothing written ------------------------------------------------------------

TEST_P(OpenClDtype, EmptyTensorsWriteNothing) {
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{0}, {2, 0, 3}, {0, 4, 5, 6}, {3, 0}})
    for (Op op : {Op::kForward, Op::kBackward, Op::kApplyMask})
      for (bool null_data : {false, true}) {
        const uint32_t axes = static_cast<uint32_t>((1u << shape.size()) - 1u) & 0x3u;
        const std::vector<uint8_t> got =
            Case().op(op).shape(shape).mask_axes(axes).null_data_if_empty(null_data).p(0.5).Run();
        for (size_t i = 0; i < got.size(); ++i)
          if (got[i] != 0xA5) {
            ADD_FAILURE() << "byte " << i << " of an empty output was written";
            break;
          }
      }
}

// ---- Sizes: several work-groups, not multiples of 256 ----------------------------------------------

TEST_P(OpenClDtype, SeveralWorkGroupsAndRaggedSizes) {
  std::mt19937_64 rng(109);
  struct S { std::vector<int64_t> shape; uint32_t axes; };
  const std::vector<S> cases = {
      {{2, 3, 2777}, 0x3u},            // rows longer than a block, ragged
      {{1, 1, 1025}, 0x3u},            {{4, 5, 255}, 0x3u}, {{3, 257}, 0x1u},
      {{2, 37, 29, 45}, 0x9u},         // channels last: more than 32 channels, ragged
      {{1, 130, 33}, 0x5u},            {{2, 100003}, 0x3u},  // element-wise, ragged
      {{7, 1023}, 0x3u},               {{3, 11, 300, 301}, 0x3u}};
  for (const S& s : cases)
    for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
      if (Stop()) return;
      Case().shape(s.shape).mask_axes(s.axes).flags(flags).p(0.5).seed(rng()).rng_seed(rng())
          .Run();
    }
}

// A tensor of 2^23 + 5 elements (several thousand work-groups), checked against the CPU.
TEST_P(OpenClDtype, LargeTensor) {
  const std::vector<int64_t> shape{3, 7, 613, 653};  // 8 406 417 elements
  Case().shape(shape).mask_axes(0x3u).p(0.5).reference(false).Run();
  Case().shape({3, 613, 653, 7}).mask_axes(0x9u).p(0.1).flags(SDROP_FLAG_MULTIPLY).reference(false)
      .Run();
}

// ---- float16 without cl_khr_fp16, bfloat16: every bit pattern ----------------------------------

class OpenCl16Bit : public OpenCl, public testing::WithParamInterface<DLDataType> {};
INSTANTIATE_TEST_SUITE_P(HalfTypes, OpenCl16Bit, testing::Values(kF16, kBF16), DtypeParamName);

TEST_P(OpenCl16Bit, EveryBitPattern) {
  if (GetParam().code == kDLFloat)
    std::printf("[ OpenCL   ] float16 on a device %s cl_khr_fp16\n", Cl().fp16 ? "with" : "WITHOUT");
  auto all = [](int64_t i) { return static_cast<uint64_t>(i); };
  for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY})
    for (double p : {0.0, 0.1, 0.5, 0.9, 1.0, 1.0 / 3.0}) {
      Case().dtype(GetParam()).shape({65536}).mask_axes(1u).flags(flags).p(p).x_bits(all).Run();
      Case().dtype(GetParam()).shape({256, 256}).mask_axes(1u).flags(flags).p(p).x_bits(all).Run();
      Case().op(Op::kApplyMask).dtype(GetParam()).shape({256, 256}).mask_axes(2u).flags(flags).p(p)
          .x_bits(all).Run();
    }
}

// ---- sdrop_mask -------------------------------------------------------------------------------------

TEST_F(OpenCl, MaskUint8AndBool) {
  std::mt19937_64 rng(110);
  struct S { std::vector<int64_t> shape; uint32_t axes; };
  const std::vector<S> cases = {
      {{4, 8, 1, 1}, 0x3u}, {{4, 1, 1, 8}, 0x9u}, {{3, 5, 7}, 0x7u}, {{}, 0u},
      {{1, 1, 1}, 0x0u},    {{37}, 0x1u},         {{2, 3, 4, 5, 6}, 0x1Fu}, {{6, 1, 1000}, 0x5u},
      {{1, 1 << 20 | 7}, 0x3u}};
  for (const S& s : cases)
    for (DLDataType md : {kU8, kBool})
      for (double p : kPs) {
        if (Stop()) return;
        Case().op(Op::kMask).mask_dtype(md).shape(s.shape).mask_axes(s.axes).p(p).seed(rng())
            .offset(rng()).Run();
      }
  // Strided, reversed, with an offset (uint8: any byte offset).
  Case().op(Op::kMask).shape({5, 1, 1, 9}).mask_axes(0x9u).y_strides({-1, 1, 1, 7})
      .y_byte_offset(3).p(0.5).Run();
  Case().op(Op::kMask).mask_dtype(kBool).shape({6, 4}).mask_axes(0x3u).y_strides({2, 13})
      .y_byte_offset(11).p(0.3).Run();
  // Flags are ignored; empty masks write nothing.
  Case().op(Op::kMask).shape({4, 8}).flags(SDROP_FLAG_MULTIPLY).p(0.5).Run();
  Case().op(Op::kMask).shape({4, 0}).mask_axes(0x3u).p(0.5).Run();
  Case().op(Op::kMask).shape({0, 8}).mask_axes(0x3u).null_data_if_empty(true).p(0.5).Run();
}

// ---- Threads and the per-thread queue -----------------------------------------------------------------

// A thread that sets the queue itself gets the same results as the CPU.
TEST_F(OpenCl, AnotherThreadThatSetsTheQueue) {
  std::thread([this] {
    ASSERT_EQ(sdrop_set_opencl_queue(Cl().context, Cl().queue), SDROP_OK);
    Case().shape({2, 3, 9, 13}).mask_axes(0x3u).p(0.5).Run();
    Case().op(Op::kMask).shape({2, 3}).mask_axes(0x3u).p(0.5).Run();
  }).join();
}

// Several threads at once, each on its own queue of the one context (created once, never
// released, like the context), each running a mix of ops and dtypes: the kernels compiled
// and cached per context are shared, and every result still matches the CPU.
TEST_F(OpenCl, ConcurrentThreadsWithTheirOwnQueues) {
  constexpr int kThreads = 4;
  static cl_command_queue queues[kThreads] = {};
  for (cl_command_queue& q : queues) {
    if (q) continue;
    cl_int err = CL_SUCCESS;
    q = clCreateCommandQueue(Cl().context, Cl().device, 0, &err);
    ASSERT_EQ(err, CL_SUCCESS) << "clCreateCommandQueue";
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      ASSERT_EQ(sdrop_set_opencl_queue(Cl().context, queues[t]), SDROP_OK);
      ClDevice dev(queues[t]);
      std::mt19937_64 rng(300 + t);
      const std::vector<DLDataType>& dtypes = sdrop_test::AllDTypes();
      for (int i = 0; i < 12; ++i) {
        const DLDataType dt = dtypes[(t + i) % dtypes.size()];
        const KernelShape& k = KernelShapes()[(t * 7 + i) % KernelShapes().size()];
        const Op op = i % 4 == 3 ? Op::kApplyMask : i % 4 == 2 ? Op::kMask : Op::kForward;
        GpuCase c(&dev);
        c.op(op).shape(k.shape).mask_axes(k.axes).p(kPs[(t + i) % kPs.size()]).seed(rng())
            .rng_seed(rng());
        if (op == Op::kMask) c.shape(sdrop_ref::NoiseShape(k.shape, k.axes));
        else c.dtype(dt);
        c.Run();
      }
    });
  }
  for (std::thread& th : threads) th.join();
}

// ---- Refusals ------------------------------------------------------------------------------------------

bool NamesArgument(const std::string& msg, const std::string& name) {
  for (size_t at = msg.find(name); at != std::string::npos; at = msg.find(name, at + 1)) {
    const bool left_ok = at == 0 || !(std::isalnum(static_cast<unsigned char>(msg[at - 1])) ||
                                      msg[at - 1] == '_');
    const size_t end = at + name.size();
    const bool right_ok = end == msg.size() || !(std::isalnum(static_cast<unsigned char>(msg[end])) ||
                                                 msg[end] == '_');
    if (left_ok && right_ok) return true;
  }
  return false;
}

// A device tensor over a named buffer (a DLTensor itself: &t is what the ABI takes).
struct ClTensor : DLTensor {
  std::vector<int64_t> shape_v, strides_v;
  ClTensor(void* handle, uint64_t offset, std::vector<int64_t> s, DLDataType dt,
           std::vector<int64_t> st = {})
      : DLTensor{}, shape_v(std::move(s)), strides_v(std::move(st)) {
    data = handle;
    device = DLDevice{kDLOpenCL, 0};
    ndim = static_cast<int>(shape_v.size());
    dtype = dt;
    shape = shape_v.empty() ? nullptr : shape_v.data();
    strides = strides_v.empty() ? nullptr : strides_v.data();
    byte_offset = offset;
  }
  ClTensor(const ClTensor&) = delete;
  ClTensor& operator=(const ClTensor&) = delete;
};

class OpenClRefusal : public OpenCl {
 protected:
  static constexpr size_t kBytes = 4096;

  void SetUp() override {
    OpenCl::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::vector<uint8_t> xs(kBytes);
    for (size_t i = 0; i < kBytes / 4; ++i) {
      const float v = 1.0f + static_cast<float>(i);
      std::memcpy(&xs[4 * i], &v, 4);
    }
    xb.reset(new DeviceBuffer(&dev_, xs));
    yb.reset(new DeviceBuffer(&dev_, std::vector<uint8_t>(kBytes, 0xA5)));
    mb.reset(new DeviceBuffer(&dev_, std::vector<uint8_t>(kBytes, 1)));
    ASSERT_TRUE(xb->ok() && yb->ok() && mb->ok());
  }

  struct Snapshot {
    std::vector<uint8_t> x, y, m;
  };
  Snapshot Take() const { return Snapshot{xb->ReadAll(), yb->ReadAll(), mb->ReadAll()}; }
  void ExpectUnchanged(const Snapshot& s) {
    dev_.Finish();
    EXPECT_TRUE(xb->ReadAll() == s.x) << "x's cl_mem was written";
    EXPECT_TRUE(yb->ReadAll() == s.y) << "y's cl_mem was written";
    EXPECT_TRUE(mb->ReadAll() == s.m) << "the mask's cl_mem was written";
  }

  // Runs `call`; expects `want` (kAnyFailure: any status but OK), a message naming `name`,
  // and every device buffer and host vector as it was.
  static constexpr int kAnyFailure = -1;
  template <class F>
  void ExpectRefused(F call, int want, const std::string& name,
                     std::vector<const std::vector<uint8_t>*> host = {}) {
    const Snapshot before = Take();
    std::vector<std::vector<uint8_t>> h0;
    for (auto* h : host) h0.push_back(*h);
    const sdrop_status st = call();
    const std::string msg = sdrop_last_error();
    if (want == kAnyFailure) {
      EXPECT_NE(st, SDROP_OK) << "the call was accepted";
    } else {
      EXPECT_EQ(st, static_cast<sdrop_status>(want)) << sdrop_status_name(st) << ": " << msg;
    }
    EXPECT_FALSE(msg.empty());
    if (!name.empty()) EXPECT_TRUE(NamesArgument(msg, name)) << "'" << msg << "' does not name " << name;
    ExpectUnchanged(before);
    for (size_t i = 0; i < host.size(); ++i)
      EXPECT_TRUE(*host[i] == h0[i]) << "host buffer " << i << " was written";
  }

  std::unique_ptr<DeviceBuffer> xb, yb, mb;
  sdrop_params prm{0.5, 1, 2, 0x3u, 0};
};

// ExpectRefused, with the failing call's line and text in the failure message.
#define SDROP_EXPECT_REFUSED(...)  \
  do {                             \
    SCOPED_TRACE(#__VA_ARGS__);    \
    ExpectRefused(__VA_ARGS__);    \
  } while (0)

TEST_F(OpenClRefusal, XOnOpenClAndYOnCpu) {
  std::vector<uint8_t> host(kBytes, 0xA5);
  ClTensor x(xb->handle(), 0, {2, 3, 4, 5}, kF32);
  sdrop_test::HostTensor y(host.data(), {2, 3, 4, 5}, kF32);
  ClTensor mask(mb->handle(), 0, {2, 3, 1, 1}, kU8);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y.t); }, SDROP_ERROR_INVALID_ARGUMENT, "y", {&host});
  SDROP_EXPECT_REFUSED([&] { return sdrop_backward(&prm, &x, &y.t); }, SDROP_ERROR_INVALID_ARGUMENT, "dx", {&host});
  SDROP_EXPECT_REFUSED([&] { return sdrop_apply_mask(&prm, &x, &mask, &y.t); }, SDROP_ERROR_INVALID_ARGUMENT,
                "y", {&host});
  // And the other way round: x on the CPU, y on OpenCL; a mask on the CPU with x, y on OpenCL.
  sdrop_test::HostTensor hx(host.data(), {2, 3, 4, 5}, kF32);
  ClTensor y2(yb->handle(), 0, {2, 3, 4, 5}, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &hx.t, &y2); }, SDROP_ERROR_INVALID_ARGUMENT, "x", {&host});
  std::vector<uint8_t> hmask(64, 1);
  sdrop_test::HostTensor m2(hmask.data(), {2, 3, 1, 1}, kU8);
  SDROP_EXPECT_REFUSED([&] { return sdrop_apply_mask(&prm, &x, &m2.t, &y2); }, SDROP_ERROR_INVALID_ARGUMENT,
                "mask", {&hmask});
  // Another OpenCL device id than the other tensor's.
  ClTensor y3(yb->handle(), 0, {2, 3, 4, 5}, kF32);
  y3.device.device_id = 1;
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y3); }, SDROP_ERROR_INVALID_ARGUMENT, "y");
}

TEST_F(OpenClRefusal, ByteOffsetNotAMultipleOfTheElementSize) {
  ClTensor x(xb->handle(), 0, {2, 3, 4, 5}, kF32), y(yb->handle(), 0, {2, 3, 4, 5}, kF32);
  ClTensor xo(xb->handle(), 2, {2, 3, 4, 5}, kF32), yo(yb->handle(), 6, {2, 3, 4, 5}, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &xo, &y); }, kAnyFailure, "x");
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &yo); }, kAnyFailure, "y");
  SDROP_EXPECT_REFUSED([&] { return sdrop_backward(&prm, &xo, &y); }, kAnyFailure, "dy");
  ClTensor mask(mb->handle(), 0, {2, 3, 1, 1}, kU8);
  SDROP_EXPECT_REFUSED([&] { return sdrop_apply_mask(&prm, &x, &mask, &yo); }, kAnyFailure, "y");
  ClTensor x64(xb->handle(), 4, {2, 3, 4, 5}, kF64), y64(yb->handle(), 0, {2, 3, 4, 5}, kF64);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x64, &y64); }, kAnyFailure, "x");
  ClTensor x16(xb->handle(), 0, {2, 3, 4, 5}, kF16), y16(yb->handle(), 1, {2, 3, 4, 5}, kF16);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x16, &y16); }, kAnyFailure, "y");
  ClTensor yb16(yb->handle(), 3, {2, 3, 4, 5}, kBF16), xb16(xb->handle(), 0, {2, 3, 4, 5}, kBF16);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &xb16, &yb16); }, kAnyFailure, "y");
}

TEST_F(OpenClRefusal, OneHandleWithoutTheOther) {
  const sdrop_status a = sdrop_set_opencl_queue(Cl().context, nullptr);
  std::string msg = sdrop_last_error();
  EXPECT_EQ(a, SDROP_ERROR_INVALID_ARGUMENT) << sdrop_status_name(a);
  EXPECT_TRUE(NamesArgument(msg, "queue")) << msg;
  const sdrop_status b = sdrop_set_opencl_queue(nullptr, Cl().queue);
  msg = sdrop_last_error();
  EXPECT_EQ(b, SDROP_ERROR_INVALID_ARGUMENT) << sdrop_status_name(b);
  EXPECT_TRUE(NamesArgument(msg, "context")) << msg;
  // A refused call changes nothing: the handles set before are still in force.
  void* ctx = nullptr;
  void* queue = nullptr;
  sdrop_get_opencl_queue(&ctx, &queue);
  EXPECT_EQ(ctx, static_cast<void*>(Cl().context));
  EXPECT_EQ(queue, static_cast<void*>(Cl().queue));
  ClTensor x(xb->handle(), 0, {2, 3, 4, 5}, kF32), y(yb->handle(), 0, {2, 3, 4, 5}, kF32);
  EXPECT_EQ(sdrop_forward(&prm, &x, &y), SDROP_OK) << sdrop_last_error();
  dev_.Finish();
}

// A thread without a queue (none set, or NULL, NULL set): BACKEND_UNAVAILABLE, nothing written.
TEST_F(OpenClRefusal, ThreadWithoutAQueueIsBackendUnavailable) {
  ClTensor x(xb->handle(), 0, {2, 3, 4, 5}, kF32), y(yb->handle(), 0, {2, 3, 4, 5}, kF32);
  ClTensor mask(mb->handle(), 0, {2, 3, 1, 1}, kU8), m_out(yb->handle(), 0, {2, 3, 1, 1}, kU8);
  for (bool set_null : {false, true}) {
    SCOPED_TRACE(set_null ? "after sdrop_set_opencl_queue(NULL, NULL)" : "nothing set");
    const Snapshot before = Take();
    sdrop_status st[4] = {};
    std::string msgs[4];
    std::thread([&] {
      if (set_null) EXPECT_EQ(sdrop_set_opencl_queue(nullptr, nullptr), SDROP_OK);
      st[0] = sdrop_forward(&prm, &x, &y);
      msgs[0] = sdrop_last_error();
      st[1] = sdrop_backward(&prm, &x, &y);
      msgs[1] = sdrop_last_error();
      st[2] = sdrop_mask(&prm, &m_out);
      msgs[2] = sdrop_last_error();
      st[3] = sdrop_apply_mask(&prm, &x, &mask, &y);
      msgs[3] = sdrop_last_error();
    }).join();
    const char* names[4] = {"sdrop_forward", "sdrop_backward", "sdrop_mask", "sdrop_apply_mask"};
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(st[i], SDROP_ERROR_BACKEND_UNAVAILABLE) << names[i] << ": " << sdrop_status_name(st[i])
                                                        << ": " << msgs[i];
      EXPECT_FALSE(msgs[i].empty()) << names[i] << " left no message";
    }
    ExpectUnchanged(before);
  }
  // On this thread too, after NULL, NULL.
  ASSERT_EQ(sdrop_set_opencl_queue(nullptr, nullptr), SDROP_OK);
  void* ctx = reinterpret_cast<void*>(1);
  void* queue = reinterpret_cast<void*>(1);
  sdrop_get_opencl_queue(&ctx, &queue);
  EXPECT_EQ(ctx, nullptr);
  EXPECT_EQ(queue, nullptr);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_BACKEND_UNAVAILABLE, "");
}

TEST_F(OpenClRefusal, ByteRangeBeyondTheClMem) {
  // 4096 bytes hold 1024 float32.
  ClTensor x(xb->handle(), 0, {2, 3, 4, 5}, kF32);
  ClTensor y_big(yb->handle(), 0, {2, 3, 4, 5}, kF32, {1000, 20, 5, 1});  // ends at 4240 bytes
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y_big); }, kAnyFailure, "y");
  ClTensor y_end(yb->handle(), kBytes - 4 * 119, {2, 3, 4, 5}, kF32);  // one element past the end
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y_end); }, kAnyFailure, "y");
  ClTensor y_ok(yb->handle(), 0, {2, 3, 4, 5}, kF32);
  ClTensor x_end(xb->handle(), kBytes, {2, 3, 4, 5}, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x_end, &y_ok); }, kAnyFailure, "x");
  // Negative strides reaching below the start of the cl_mem.
  ClTensor y_neg(yb->handle(), 4 * 50, {2, 3, 4, 5}, kF32, {-60, 20, 5, 1});
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y_neg); }, kAnyFailure, "y");
  ClTensor x_neg(xb->handle(), 0, {2, 3, 4, 5}, kF32, {60, 20, 5, -1});
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x_neg, &y_ok); }, kAnyFailure, "x");
  // The mask of sdrop_mask and of sdrop_apply_mask.
  ClTensor m_big(mb->handle(), 0, {2, 3000, 1, 1}, kU8);
  SDROP_EXPECT_REFUSED([&] { return sdrop_mask(&prm, &m_big); }, kAnyFailure, "mask");
  ClTensor m_off(mb->handle(), kBytes - 5, {2, 3, 1, 1}, kU8);
  SDROP_EXPECT_REFUSED([&] { return sdrop_apply_mask(&prm, &x, &m_off, &y_ok); }, kAnyFailure, "mask");
  // Exactly filling the buffer is fine.
  ClTensor y_fit(yb->handle(), kBytes - 4 * 120, {2, 3, 4, 5}, kF32);
  EXPECT_EQ(sdrop_forward(&prm, &x, &y_fit), SDROP_OK) << sdrop_last_error();
  dev_.Finish();
}

TEST_F(OpenClRefusal, NullDataWithANonEmptyShape) {
  ClTensor x(xb->handle(), 0, {2, 3, 4, 5}, kF32), y(nullptr, 0, {2, 3, 4, 5}, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_INVALID_ARGUMENT, "y");
  ClTensor x0(nullptr, 0, {2, 3, 4, 5}, kF32), y0(yb->handle(), 0, {2, 3, 4, 5}, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x0, &y0); }, SDROP_ERROR_INVALID_ARGUMENT, "x");
}

// Within one cl_mem, offsets are compared: anything but exactly in place is refused.
TEST_F(OpenClRefusal, PartialOverlapInOneClMem) {
  ClTensor x(xb->handle(), 0, {2, 3, 4, 5}, kF32);
  ClTensor y_shift(xb->handle(), 4, {2, 3, 4, 5}, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y_shift); }, SDROP_ERROR_INVALID_ARGUMENT, "y");
  SDROP_EXPECT_REFUSED([&] { return sdrop_backward(&prm, &x, &y_shift); }, SDROP_ERROR_INVALID_ARGUMENT, "dx");
  // Same start, other strides (reversed inner axis from its last element).
  ClTensor y_rev(xb->handle(), 0, {2, 3, 4, 5}, kF32, {60, 20, 5, -1});
  ClTensor x_mid(xb->handle(), 4 * 8, {2, 3, 4, 5}, kF32);
  ClTensor y_mid_rev(xb->handle(), 4 * 8, {2, 3, 4, 5}, kF32, {60, 20, 5, -1});
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x_mid, &y_mid_rev); }, SDROP_ERROR_INVALID_ARGUMENT, "y");
  // The output overlapping itself.
  ClTensor y_self(yb->handle(), 0, {2, 3, 4, 5}, kF32, {60, 20, 0, 1});
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y_self); }, SDROP_ERROR_INVALID_ARGUMENT, "y");
  // apply_mask: the mask inside y's byte range of the same cl_mem.
  ClTensor y(yb->handle(), 0, {2, 3, 4, 5}, kF32);
  ClTensor m_in_y(yb->handle(), 16, {2, 3, 1, 1}, kU8);
  SDROP_EXPECT_REFUSED([&] { return sdrop_apply_mask(&prm, &x, &m_in_y, &y); }, SDROP_ERROR_INVALID_ARGUMENT,
                "mask");
  // The same tensor in place is fine.
  ClTensor xi(xb->handle(), 0, {2, 3, 4, 5}, kF32);
  EXPECT_EQ(sdrop_forward(&prm, &x, &xi), SDROP_OK) << sdrop_last_error();
  dev_.Finish();
}

// The counterparts of the overlap refusals: disjoint ranges of one cl_mem are fine, and a mask
// may share a cl_mem with x or y as long as it does not intersect y.
TEST_F(OpenClRefusal, DisjointRangesOfOneClMem) {
  const std::vector<int64_t> shape{2, 3, 4, 5};  // 480 bytes of float32
  DeviceBuffer buf(&dev_, kBytes);
  std::vector<uint8_t> bytes(kBytes);
  for (size_t i = 0; i < kBytes / 4; ++i) {
    const float v = 0.25f * static_cast<float>(i) - 100.0f;
    std::memcpy(&bytes[4 * i], &v, 4);
  }
  for (size_t i = 3000; i < 3006; ++i) bytes[i] = static_cast<uint8_t>(i % 3 == 0);  // a mask
  struct Layout { uint64_t x, y, m; };
  for (const Layout& l : {Layout{0, 480, 3000}, Layout{1000, 0, 3000}, Layout{2000, 1000, 484},
                          Layout{0, 2000, 2}}) {
    SCOPED_TRACE("x at " + std::to_string(l.x) + ", y at " + std::to_string(l.y) + ", mask at " +
                 std::to_string(l.m));
    for (bool apply : {false, true}) {
      buf.WriteAll(bytes);
      std::vector<uint8_t> cpu = bytes;
      ClTensor x(buf.handle(), l.x, shape, kF32), y(buf.handle(), l.y, shape, kF32);
      ClTensor m(buf.handle(), l.m, {2, 3, 1, 1}, kU8);
      DLTensor cx = x, cy = y, cm = m;
      cx.device = cy.device = cm.device = DLDevice{kDLCPU, 0};
      cx.data = cy.data = cm.data = cpu.data();
      if (apply) {
        ASSERT_EQ(sdrop_apply_mask(&prm, &cx, &cm, &cy), SDROP_OK) << sdrop_last_error();
        EXPECT_EQ(sdrop_apply_mask(&prm, &x, &m, &y), SDROP_OK) << sdrop_last_error();
      } else {
        ASSERT_EQ(sdrop_forward(&prm, &cx, &cy), SDROP_OK) << sdrop_last_error();
        EXPECT_EQ(sdrop_forward(&prm, &x, &y), SDROP_OK) << sdrop_last_error();
      }
      dev_.Finish();
      EXPECT_TRUE(buf.ReadAll() == cpu) << (apply ? "sdrop_apply_mask" : "sdrop_forward");
    }
  }
  // apply_mask in place with the mask in the same cl_mem, outside x.
  buf.WriteAll(bytes);
  std::vector<uint8_t> cpu = bytes;
  ClTensor x(buf.handle(), 0, shape, kF32), m(buf.handle(), 3000, {2, 3, 1, 1}, kU8);
  DLTensor cx = x, cm = m;
  cx.device = cm.device = DLDevice{kDLCPU, 0};
  cx.data = cm.data = cpu.data();
  ASSERT_EQ(sdrop_apply_mask(&prm, &cx, &cm, &cx), SDROP_OK) << sdrop_last_error();
  EXPECT_EQ(sdrop_apply_mask(&prm, &x, &m, &x), SDROP_OK) << sdrop_last_error();
  dev_.Finish();
  EXPECT_TRUE(buf.ReadAll() == cpu) << "in place with the mask in the same cl_mem";
}

// cl_mem handles are not addresses: two buffers never share memory, whatever their handles'
// values and the byte offsets, so x and y in two buffers are always accepted and computed
// correctly, even when handle + byte_offset coincide.
TEST_F(OpenClRefusal, TwoClMemsNeverOverlap) {
  const std::vector<int64_t> shape{2, 3, 4, 5};
  std::vector<uint8_t> xs = xb->ReadAll();
  // Same byte_offset, same strides, two buffers.
  for (uint64_t off : {uint64_t{0}, uint64_t{64}}) {
    ClTensor x(xb->handle(), off, shape, kF32), y(yb->handle(), off, shape, kF32);
    std::vector<uint8_t> cpu_y(kBytes, 0xA5);
    std::vector<uint8_t> cpu_x = xs;
    DLTensor cx = x, cy = y;
    cx.device = cy.device = DLDevice{kDLCPU, 0};
    cx.data = cpu_x.data();
    cy.data = cpu_y.data();
    yb->WriteAll(std::vector<uint8_t>(kBytes, 0xA5));
    ASSERT_EQ(sdrop_forward(&prm, &cx, &cy), SDROP_OK) << sdrop_last_error();
    ASSERT_EQ(sdrop_forward(&prm, &x, &y), SDROP_OK) << sdrop_last_error();
    dev_.Finish();
    EXPECT_TRUE(yb->ReadAll() == cpu_y) << "byte_offset " << off;
  }
  // Handle values that line up: offsets such that x.data + x.byte_offset == y.data +
  // y.byte_offset (or one element apart), which in host memory would be in place / overlap.
  // Handles are host pointers to the implementation's objects: among a few buffers, two are
  // usually close enough for their difference to be a valid byte offset.
  constexpr size_t kBig = 1 << 16;
  std::vector<std::unique_ptr<DeviceBuffer>> pool;
  DeviceBuffer* a = nullptr;
  DeviceBuffer* b = nullptr;
  int64_t delta = 0;
  for (int i = 0; i < 32 && !a; ++i) {
    pool.emplace_back(new DeviceBuffer(&dev_, kBig));
    ASSERT_TRUE(pool.back()->ok());
    for (int j = 0; j < i && !a; ++j) {
      const int64_t d = reinterpret_cast<intptr_t>(pool[i]->handle()) -
                        reinterpret_cast<intptr_t>(pool[j]->handle());
      const int64_t mag = d < 0 ? -d : d;
      if (mag % 4 == 0 && mag <= static_cast<int64_t>(kBig / 4)) {
        a = pool[j].get();
        b = pool[i].get();
        delta = d;  // b - a
      }
    }
  }
  if (!a) {
    std::printf("[ OpenCL   ] no two cl_mem handles close enough to line up; same offsets only\n");
    return;
  }
  std::printf("[ OpenCL   ] lining up two cl_mem handles %lld bytes apart\n",
              static_cast<long long>(delta));
  std::vector<uint8_t> xs2(kBig);
  for (size_t i = 0; i < xs2.size() / 4; ++i) {
    const float v = 0.5f + static_cast<float>(i);
    std::memcpy(&xs2[4 * i], &v, 4);
  }
  for (int64_t shift : {int64_t{0}, int64_t{4}, int64_t{-4}}) {
    // x in a at xo, y in b at yo, with a + xo == b + yo + shift.
    const int64_t base = kBig / 2;
    const int64_t yo = base, xo = base + delta + shift;
    ASSERT_GE(xo, 0);
    a->WriteAll(xs2);
    b->WriteAll(std::vector<uint8_t>(kBig, 0xA5));
    ClTensor x(a->handle(), static_cast<uint64_t>(xo), shape, kF32);
    ClTensor y(b->handle(), static_cast<uint64_t>(yo), shape, kF32);
    ASSERT_EQ(static_cast<char*>(x.data) + x.byte_offset,
              static_cast<char*>(y.data) + y.byte_offset + shift);
    std::vector<uint8_t> cpu_y(kBig, 0xA5), cpu_x = xs2;
    DLTensor cx = x, cy = y;
    cx.device = cy.device = DLDevice{kDLCPU, 0};
    cx.data = cpu_x.data();
    cy.data = cpu_y.data();
    ASSERT_EQ(sdrop_forward(&prm, &cx, &cy), SDROP_OK) << sdrop_last_error();
    EXPECT_EQ(sdrop_forward(&prm, &x, &y), SDROP_OK)
        << "two cl_mem buffers taken as overlapping (handle delta " << delta << ", shift "
        << shift << "): " << sdrop_last_error();
    dev_.Finish();
    EXPECT_TRUE(b->ReadAll() == cpu_y) << "handle delta " << delta << ", shift " << shift;
    EXPECT_TRUE(a->ReadAll() == xs2) << "x was written";
  }
}

}  // namespace
}  // namespace sdrop_gpu_test
