// The CUDA backend (sdrop.h, "GPU backends"): DLTensor.data is a device pointer (cudaMalloc, in
// the primary context the runtime API uses), calls are enqueued on the stream set per thread
// with sdrop_set_cuda_stream, and every result is compared bit for bit with the same call on
// CPU tensors and with the scalar SPEC reference (gpu_tester.h).
//
// This file links libcudart only, never libcuda: it loads on a machine without a driver. There,
// cudaGetDeviceCount fails or finds no device and every device test skips with the reason,
// while CudaWithoutDevice.* checks what the library answers for a kDLCUDA tensor then:
// SDROP_ERROR_BACKEND_UNAVAILABLE and a message, neither an abort nor a hang.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gpu_tester.h"

namespace sdrop_gpu_test {
namespace {

using Op = GpuCase::Op;

// ---- The machine's CUDA device, if any -----------------------------------------------------------

struct CudaEnv {
  bool ok = false;
  std::string why;  // when !ok: "no CUDA device: ..."
  int count = 0;
  cudaStream_t stream = nullptr;  // created once, never destroyed
  std::string name;
};

const CudaEnv& Cuda() {
  static const CudaEnv* env = [] {
    CudaEnv* e = new CudaEnv;
    const cudaError_t err = cudaGetDeviceCount(&e->count);
    if (err != cudaSuccess || e->count == 0) {
      e->why = std::string("no CUDA device: ") +
               (err != cudaSuccess ? cudaGetErrorString(err)
                                   : "cudaGetDeviceCount reported 0 devices");
      e->count = 0;
      return e;
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) e->name = prop.name;
    cudaError_t r = cudaSetDevice(0);
    if (r == cudaSuccess) r = cudaStreamCreate(&e->stream);
    if (r != cudaSuccess) {
      e->why = std::string("no usable CUDA device: ") + cudaGetErrorString(r);
      return e;
    }
    std::printf("[ CUDA     ] %d device(s); cuda:0 is %s\n", e->count, e->name.c_str());
    e->ok = true;
    return e;
  }();
  return *env;
}

#define SDROP_CUDA_OK(call)                                                        \
  do {                                                                             \
    const cudaError_t sdrop_err_ = (call);                                         \
    EXPECT_EQ(sdrop_err_, cudaSuccess) << #call << ": " << cudaGetErrorString(sdrop_err_); \
  } while (0)

class CudaDevice : public Device {
 public:
  explicit CudaDevice(cudaStream_t stream = nullptr, bool offset_in_pointer = false)
      : stream_(stream), offset_in_pointer_(offset_in_pointer) {}
  DLDevice dl_device() const override { return DLDevice{kDLCUDA, 0}; }
  void* Alloc(size_t bytes) override {
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
      ADD_FAILURE() << "cudaMalloc(" << bytes << "): " << cudaGetErrorString(err);
      return nullptr;
    }
    return p;
  }
  void Free(void* h) override {
    SDROP_CUDA_OK(cudaDeviceSynchronize());
    SDROP_CUDA_OK(cudaFree(h));
  }
  void Write(void* h, size_t offset, const void* src, size_t n) override {
    SDROP_CUDA_OK(cudaDeviceSynchronize());
    SDROP_CUDA_OK(cudaMemcpy(static_cast<char*>(h) + offset, src, n, cudaMemcpyHostToDevice));
    SDROP_CUDA_OK(cudaDeviceSynchronize());
  }
  void Read(void* h, size_t offset, void* dst, size_t n) override {
    SDROP_CUDA_OK(cudaDeviceSynchronize());
    SDROP_CUDA_OK(cudaMemcpy(dst, static_cast<const char*>(h) + offset, n, cudaMemcpyDeviceToHost));
  }
  // The stream sdrop was given; then any error a kernel left behind.
  void Finish() override {
    SDROP_CUDA_OK(cudaStreamSynchronize(stream_));
    SDROP_CUDA_OK(cudaGetLastError());
  }
  // A CUDA tensor may carry its offset in the pointer or in byte_offset.
  void Address(DLTensor* t, void* handle, uint64_t offset) const override {
    if (offset_in_pointer_) {
      t->data = static_cast<char*>(handle) + offset;
      t->byte_offset = 0;
    } else {
      t->data = handle;
      t->byte_offset = offset;
    }
  }

 private:
  cudaStream_t stream_;
  bool offset_in_pointer_;
};

// (dtype, stream): a created stream or NULL (the legacy default stream).
using CudaParam = std::tuple<DLDataType, bool>;

class CudaDtype : public testing::TestWithParam<CudaParam> {
 protected:
  void SetUp() override {
    if (!Cuda().ok) GTEST_SKIP() << Cuda().why;
    stream_ = std::get<1>(GetParam()) ? Cuda().stream : nullptr;
    dev_ = CudaDevice(stream_);
    ASSERT_EQ(sdrop_set_cuda_stream(nullptr, stream_), SDROP_OK);
  }
  GpuCase Case() { return GpuCase(&dev_).dtype(std::get<0>(GetParam())); }
  DLDataType dtype() const { return std::get<0>(GetParam()); }
  size_t es() const { return ElementSize(dtype()); }

  cudaStream_t stream_ = nullptr;
  CudaDevice dev_;
};

std::string CudaParamName(const testing::TestParamInfo<CudaParam>& info) {
  return sdrop_test::DTypeString(std::get<0>(info.param)) +
         (std::get<1>(info.param) ? "_stream" : "_default_stream");
}
INSTANTIATE_TEST_SUITE_P(AllDTypes, CudaDtype,
                         testing::Combine(testing::ValuesIn(sdrop_test::AllDTypes()),
                                          testing::Bool()),
                         CudaParamName);

bool Stop() { return sdrop_test::FailedParts() >= sdrop_test::kEnoughFailures; }

const std::vector<double> kPs = {0.0, 0.1, 0.5, 0.9, 1.0};

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

// ---- Values ----------------------------------------------------------------------------------------

TEST_P(CudaDtype, ForwardAndBackwardEveryModeAndP) {
  std::mt19937_64 rng(201);
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

TEST_P(CudaDtype, NanInfSignedZeroSubnormal) {
  std::mt19937_64 rng(202);
  for (const KernelShape& k : KernelShapes())
    for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY})
      for (double p : {0.0, 0.5, 1.0}) {
        if (Stop()) return;
        SCOPED_TRACE(k.name);
        Case().shape(k.shape).mask_axes(k.axes).flags(flags).p(p).values(Values::kSpecials)
            .seed(rng()).rng_seed(rng()).Run();
      }
}

TEST_P(CudaDtype, EveryRankAndNoiseShape) {
  std::mt19937_64 rng(203);
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

TEST_P(CudaDtype, NonContiguousTransposedAndNegativeStrides) {
  const std::vector<int64_t> shape{2, 3, 9, 13};
  std::mt19937_64 rng(204);
  for (const StrideCase& sc : StrideCases(shape))
    for (uint32_t axes : {0x3u, 0x9u, 0xFu, 0x1u})
      for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
        if (Stop()) return;
        SCOPED_TRACE(sc.name);
        Case().shape(shape).x_strides(sc.x).y_strides(sc.y).mask_axes(axes).flags(flags).p(0.5)
            .seed(rng()).rng_seed(rng()).Run();
      }
  for (int i = 0; i < 30 && !Stop(); ++i) {
    const int rank = static_cast<int>(rng() % 6);
    std::vector<int64_t> s(rank);
    for (auto& e : s) e = 1 + static_cast<int64_t>(rng() % 6);
    const uint32_t axes = rank == 0 ? 0u : static_cast<uint32_t>(rng()) & ((1u << rank) - 1u);
    Case().shape(s).x_strides(sdrop_test::RandomStrides(s, rng))
        .y_strides(sdrop_test::RandomStrides(s, rng)).mask_axes(axes)
        .flags(i % 2 ? SDROP_FLAG_MULTIPLY : 0u).p(kPs[rng() % kPs.size()]).seed(rng())
        .rng_seed(rng()).Run();
  }
}

TEST_P(CudaDtype, Ranks6To8AndThresholdEdges) {
  std::mt19937_64 rng(209);
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
  const double two32 = 4294967296.0;
  for (double p : {1e-12, 0.5 / two32, 1.5 / two32, 2.5 / two32, 1e-6, 1.0 / 3.0, 0.999999,
                   std::nextafter(1.0, 0.0)})
    for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
      if (Stop()) return;
      Case().shape({4, 6, 33}).mask_axes(0x7u).flags(flags).p(p).seed(rng()).rng_seed(rng()).Run();
    }
}

// byte_offset != 0, and the same offsets carried in the device pointer instead.
TEST_P(CudaDtype, ByteOffsetsAndOffsetPointers) {
  const std::vector<int64_t> shape{2, 3, 9, 13};
  const uint64_t e = es();
  const std::vector<int64_t> neg = sdrop_test::Strides(shape, sdrop_test::Identity(4), {}, 0xBu);
  for (bool in_pointer : {false, true}) {
    CudaDevice dev(stream_, in_pointer);
    SCOPED_TRACE(in_pointer ? "offset in the pointer" : "offset in byte_offset");
    for (uint64_t xo : {uint64_t{0}, e, 7 * e, 1000 * e})
      for (uint64_t yo : {uint64_t{0}, 3 * e, 333 * e})
        for (uint32_t axes : {0x3u, 0x9u, 0xFu}) {
          if (Stop()) return;
          GpuCase(&dev).dtype(dtype()).shape(shape).x_byte_offset(xo).y_byte_offset(yo)
              .mask_axes(axes).p(0.5).Run();
        }
    GpuCase(&dev).dtype(dtype()).shape(shape).x_strides(neg).y_strides(neg).x_byte_offset(5 * e)
        .y_byte_offset(e).mask_axes(0x3u).p(0.5).Run();
    GpuCase(&dev).dtype(dtype()).shape(shape).x_strides(neg).inplace(true).x_byte_offset(9 * e)
        .mask_axes(0x9u).p(0.5).Run();
  }
}

TEST_P(CudaDtype, InPlace) {
  std::mt19937_64 rng(205);
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

TEST_P(CudaDtype, ApplyMaskUint8AndBool) {
  std::mt19937_64 rng(206);
  for (const KernelShape& k : KernelShapes())
    for (DLDataType md : {kU8, kBool})
      for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY})
        for (double p : kPs) {
          if (Stop()) return;
          SCOPED_TRACE(k.name);
          Case().op(Op::kApplyMask).mask_dtype(md).shape(k.shape).mask_axes(k.axes).flags(flags)
              .p(p).values(p == 0.5 ? Values::kSpecials : Values::kMixed).rng_seed(rng()).Run();
        }
  const std::vector<int64_t> shape{2, 3, 9, 13};
  Case().op(Op::kApplyMask).shape(shape).mask_axes(0x3u).mask_strides({1, -2, 5, 3})
      .mask_byte_offset(5).x_strides(sdrop_test::Strides(shape, {0, 2, 3, 1}))
      .y_byte_offset(es() * 3).p(0.25).Run();
}

TEST_P(CudaDtype, EmptyTensorsWriteNothing) {
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{0}, {2, 0, 3}, {0, 4, 5, 6}})
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

TEST_P(CudaDtype, SeveralBlocksAndRaggedSizes) {
  std::mt19937_64 rng(207);
  struct S { std::vector<int64_t> shape; uint32_t axes; };
  const std::vector<S> cases = {
      {{2, 3, 2777}, 0x3u},    {{1, 1, 1025}, 0x3u},   {{4, 5, 255}, 0x3u}, {{3, 257}, 0x1u},
      {{2, 37, 29, 45}, 0x9u}, {{1, 130, 33}, 0x5u},   {{2, 100003}, 0x3u}, {{7, 1023}, 0x3u},
      {{3, 11, 300, 301}, 0x3u}};
  for (const S& s : cases)
    for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
      if (Stop()) return;
      Case().shape(s.shape).mask_axes(s.axes).flags(flags).p(0.5).seed(rng()).rng_seed(rng())
          .Run();
    }
}

// ---- 16-bit types: every bit pattern -------------------------------------------------------------

TEST_P(CudaDtype, EveryBitPatternOf16BitTypes) {
  if (es() != 2) GTEST_SKIP() << "16-bit types only";
  auto all = [](int64_t i) { return static_cast<uint64_t>(i); };
  for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY})
    for (double p : {0.0, 0.1, 0.5, 1.0, 1.0 / 3.0}) {
      Case().shape({65536}).mask_axes(1u).flags(flags).p(p).x_bits(all).Run();
      Case().shape({256, 256}).mask_axes(1u).flags(flags).p(p).x_bits(all).Run();
    }
}

// ---- A large tensor: 2^26 elements, checked against the CPU ---------------------------------------

TEST_P(CudaDtype, LargeTensor64MElements) {
  if (!std::get<1>(GetParam()) && es() != 4) GTEST_SKIP() << "one stream mode per dtype but float32";
  Case().shape({16, 64, 256, 256}).mask_axes(0x3u).p(0.5).values(Values::kPositive)
      .reference(false).Run();
  Case().shape({16, 256, 256, 64}).mask_axes(0x9u).p(0.1).flags(SDROP_FLAG_MULTIPLY)
      .values(Values::kPositive).reference(false).Run();
}

// ---- sdrop_mask --------------------------------------------------------------------------------------

TEST_P(CudaDtype, Mask) {
  if (es() != 4) GTEST_SKIP() << "the mask has no input dtype: run once per stream";
  std::mt19937_64 rng(208);
  struct S { std::vector<int64_t> shape; uint32_t axes; };
  const std::vector<S> cases = {{{4, 8, 1, 1}, 0x3u}, {{4, 1, 1, 8}, 0x9u}, {{3, 5, 7}, 0x7u},
                                {{}, 0u},             {{37}, 0x1u},         {{1, 1 << 20 | 7}, 0x3u}};
  for (const S& s : cases)
    for (DLDataType md : {kU8, kBool})
      for (double p : kPs) {
        if (Stop()) return;
        GpuCase(&dev_).op(Op::kMask).mask_dtype(md).shape(s.shape).mask_axes(s.axes).p(p)
            .seed(rng()).offset(rng()).Run();
      }
  GpuCase(&dev_).op(Op::kMask).shape({5, 1, 1, 9}).mask_axes(0x9u).y_strides({-1, 1, 1, 7})
      .y_byte_offset(3).p(0.5).Run();
  GpuCase(&dev_).op(Op::kMask).shape({0, 8}).mask_axes(0x3u).null_data_if_empty(true).p(0.5).Run();
}

// ---- Threads -----------------------------------------------------------------------------------------

TEST_P(CudaDtype, AnotherThreadThatSetsTheStream) {
  if (es() != 4) GTEST_SKIP() << "once per stream";
  std::thread([this] {
    ASSERT_EQ(sdrop_set_cuda_stream(nullptr, stream_), SDROP_OK);
    void* c = reinterpret_cast<void*>(1);
    void* s = reinterpret_cast<void*>(1);
    sdrop_get_cuda_stream(&c, &s);
    EXPECT_EQ(c, nullptr);
    EXPECT_EQ(s, static_cast<void*>(stream_));
    Case().shape({2, 3, 9, 13}).mask_axes(0x3u).p(0.5).Run();
  }).join();
}

// ---- Refusals on a machine with a device ---------------------------------------------------------

class CudaRefusal : public testing::Test {
 protected:
  static constexpr size_t kBytes = 4096;
  void SetUp() override {
    if (!Cuda().ok) GTEST_SKIP() << Cuda().why;
    ASSERT_EQ(sdrop_set_cuda_stream(nullptr, Cuda().stream), SDROP_OK);
    dev_ = CudaDevice(Cuda().stream);
    std::vector<uint8_t> xs(kBytes);
    for (size_t i = 0; i < kBytes / 4; ++i) {
      const float v = 1.0f + static_cast<float>(i);
      std::memcpy(&xs[4 * i], &v, 4);
    }
    xb.reset(new DeviceBuffer(&dev_, xs));
    yb.reset(new DeviceBuffer(&dev_, std::vector<uint8_t>(kBytes, 0xA5)));
    ASSERT_TRUE(xb->ok() && yb->ok());
  }
  // The call returns a failure (`want`, or any when want < 0) with a message; nothing written.
  template <class F>
  void ExpectRefused(F call, int want) {
    const std::vector<uint8_t> x0 = xb->ReadAll(), y0 = yb->ReadAll();
    const sdrop_status st = call();
    const std::string msg = sdrop_last_error();
    dev_.Finish();
    if (want < 0) {
      EXPECT_NE(st, SDROP_OK) << "accepted";
    } else {
      EXPECT_EQ(st, static_cast<sdrop_status>(want)) << sdrop_status_name(st) << ": " << msg;
    }
    EXPECT_FALSE(msg.empty());
    EXPECT_TRUE(xb->ReadAll() == x0) << "x was written";
    EXPECT_TRUE(yb->ReadAll() == y0) << "y was written";
  }
  CudaDevice dev_;
  std::unique_ptr<DeviceBuffer> xb, yb;
  sdrop_params prm{0.5, 1, 2, 0x3u, 0};
};

struct CuTensor : DLTensor {
  std::vector<int64_t> shape_v, strides_v;
  CuTensor(void* ptr, uint64_t offset, std::vector<int64_t> s, DLDataType dt,
           std::vector<int64_t> st = {}, DLDevice dev = DLDevice{kDLCUDA, 0})
      : DLTensor{}, shape_v(std::move(s)), strides_v(std::move(st)) {
    data = ptr;
    device = dev;
    ndim = static_cast<int>(shape_v.size());
    dtype = dt;
    shape = shape_v.empty() ? nullptr : shape_v.data();
    strides = strides_v.empty() ? nullptr : strides_v.data();
    byte_offset = offset;
  }
  CuTensor(const CuTensor&) = delete;
  CuTensor& operator=(const CuTensor&) = delete;
};

TEST_F(CudaRefusal, MixedDevicesMisalignedOutOfRangeAndOverlap) {
  const std::vector<int64_t> s{2, 3, 4, 5};
  std::vector<uint8_t> host(kBytes, 0xA5);
  CuTensor x(xb->handle(), 0, s, kF32), y(yb->handle(), 0, s, kF32);
  CuTensor hy(host.data(), 0, s, kF32, {}, DLDevice{kDLCPU, 0});
  ExpectRefused([&] { return sdrop_forward(&prm, &x, &hy); }, SDROP_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(host == std::vector<uint8_t>(kBytes, 0xA5));
  // Misaligned: byte_offset, or the pointer itself.
  CuTensor xo(xb->handle(), 2, s, kF32), yp(static_cast<char*>(yb->handle()) + 2, 0, s, kF32);
  ExpectRefused([&] { return sdrop_forward(&prm, &xo, &y); }, -1);
  ExpectRefused([&] { return sdrop_forward(&prm, &x, &yp); }, -1);
  // Past the end of the allocation; below its start with a negative stride.
  CuTensor y_end(yb->handle(), kBytes - 4 * 119, s, kF32);
  ExpectRefused([&] { return sdrop_forward(&prm, &x, &y_end); }, -1);
  CuTensor y_neg(yb->handle(), 0, s, kF32, {60, 20, 5, -1});
  ExpectRefused([&] { return sdrop_forward(&prm, &x, &y_neg); }, -1);
  // A host pointer labelled kDLCUDA must not reach a kernel.
  CuTensor y_host(host.data(), 0, s, kF32);
  ExpectRefused([&] { return sdrop_forward(&prm, &x, &y_host); }, -1);
  EXPECT_TRUE(host == std::vector<uint8_t>(kBytes, 0xA5));
  // A device id this machine does not have.
  CuTensor xd(xb->handle(), 0, s, kF32, {}, DLDevice{kDLCUDA, Cuda().count});
  CuTensor yd(yb->handle(), 0, s, kF32, {}, DLDevice{kDLCUDA, Cuda().count});
  ExpectRefused([&] { return sdrop_forward(&prm, &xd, &yd); }, -1);
  // Partial overlap in one allocation.
  CuTensor y_shift(xb->handle(), 4, s, kF32);
  ExpectRefused([&] { return sdrop_forward(&prm, &x, &y_shift); }, SDROP_ERROR_INVALID_ARGUMENT);
}

// ---- Without a device (this runs on machines without a GPU or driver) -------------------------------

class CudaWithoutDevice : public testing::Test {
 protected:
  void SetUp() override {
    if (Cuda().count > 0) GTEST_SKIP() << "this machine has a CUDA device: covered by CudaDtype.*";
    std::printf("[ CUDA     ] %s\n", Cuda().why.c_str());
  }
};

// A kDLCUDA tensor (a fake pointer: nothing may be dereferenced) when cudaGetDeviceCount finds no
// device: SDROP_ERROR_BACKEND_UNAVAILABLE with a message, from every entry point.
TEST_F(CudaWithoutDevice, CallsReturnBackendUnavailable) {
  const std::vector<int64_t> s{2, 3, 4, 5};
  CuTensor x(reinterpret_cast<void*>(0x1000), 0, s, kF32), y(reinterpret_cast<void*>(0x1000), 0, s, kF32);
  CuTensor y2(reinterpret_cast<void*>(0x100000), 0, s, kF32);
  CuTensor m(reinterpret_cast<void*>(0x200000), 0, {2, 3, 1, 1}, kU8);
  const sdrop_params prm{0.5, 1, 2, 0x3u, 0};
  for (void* stream : {static_cast<void*>(nullptr), reinterpret_cast<void*>(0x3000)}) {
    ASSERT_EQ(sdrop_set_cuda_stream(nullptr, stream), SDROP_OK);
    struct Call { const char* name; std::function<sdrop_status()> f; };
    const std::vector<Call> calls = {
        {"sdrop_forward", [&] { return sdrop_forward(&prm, &x, &y2); }},
        {"sdrop_forward in place", [&] { return sdrop_forward(&prm, &x, &y); }},
        {"sdrop_backward", [&] { return sdrop_backward(&prm, &x, &y2); }},
        {"sdrop_mask", [&] { return sdrop_mask(&prm, &m); }},
        {"sdrop_apply_mask", [&] { return sdrop_apply_mask(&prm, &x, &m, &y2); }}};
    for (const Call& c : calls) {
      const sdrop_status st = c.f();
      const std::string msg = sdrop_last_error();
      EXPECT_EQ(st, SDROP_ERROR_BACKEND_UNAVAILABLE) << c.name << ": " << sdrop_status_name(st) << ": " << msg;
      EXPECT_FALSE(msg.empty()) << c.name;
      std::printf("[ CUDA     ] %s -> %s: %s\n", c.name, sdrop_status_name(st), msg.c_str());
    }
  }
  // Another device id: the same answer.
  CuTensor x1(reinterpret_cast<void*>(0x1000), 0, s, kF32, {}, DLDevice{kDLCUDA, 1});
  CuTensor y1(reinterpret_cast<void*>(0x100000), 0, s, kF32, {}, DLDevice{kDLCUDA, 1});
  EXPECT_EQ(sdrop_forward(&prm, &x1, &y1), SDROP_ERROR_BACKEND_UNAVAILABLE) << sdrop_last_error();
  // From a fresh thread too (nothing set there), and the CPU still works afterwards.
  std::thread([&] {
    EXPECT_EQ(sdrop_forward(&prm, &x, &y2), SDROP_ERROR_BACKEND_UNAVAILABLE) << sdrop_last_error();
    EXPECT_STRNE(sdrop_last_error(), "");
  }).join();
  ASSERT_EQ(sdrop_set_cuda_stream(nullptr, nullptr), SDROP_OK);
  sdrop_test::DropoutTester().shape({2, 3, 4, 5}).p(0.5).Test();
}

// Checked before any driver is needed: mixed devices, and the CPU-side tensor untouched.
TEST_F(CudaWithoutDevice, MixedDevicesAreInvalidArgument) {
  const std::vector<int64_t> s{2, 3, 4, 5};
  std::vector<uint8_t> host(480, 0xA5), host_x(480, 0x3C);
  CuTensor x(reinterpret_cast<void*>(0x1000), 0, s, kF32);
  CuTensor hy(host.data(), 0, s, kF32, {}, DLDevice{kDLCPU, 0});
  CuTensor hx(host_x.data(), 0, s, kF32, {}, DLDevice{kDLCPU, 0});
  CuTensor y(reinterpret_cast<void*>(0x100000), 0, s, kF32);
  const sdrop_params prm{0.5, 1, 2, 0x3u, 0};
  EXPECT_EQ(sdrop_forward(&prm, &x, &hy), SDROP_ERROR_INVALID_ARGUMENT) << sdrop_last_error();
  EXPECT_EQ(sdrop_forward(&prm, &hx, &y), SDROP_ERROR_INVALID_ARGUMENT) << sdrop_last_error();
  EXPECT_NE(std::string(sdrop_last_error()).find("device"), std::string::npos) << sdrop_last_error();
  EXPECT_TRUE(host == std::vector<uint8_t>(480, 0xA5)) << "the CPU output was written";
  EXPECT_TRUE(host_x == std::vector<uint8_t>(480, 0x3C)) << "the CPU input was written";
}

// Pinned host memory (kDLCUDAHost) runs on the CPU: no driver needed for plain host bytes.
TEST_F(CudaWithoutDevice, CudaHostTensorsRunOnTheCpu) {
  std::vector<float> x(120), y(120, -1.0f), want(120, -1.0f);
  for (int i = 0; i < 120; ++i) x[i] = 1.0f + static_cast<float>(i);
  const std::vector<int64_t> s{2, 3, 4, 5};
  CuTensor tx(x.data(), 0, s, kF32, {}, DLDevice{kDLCUDAHost, 0});
  CuTensor ty(y.data(), 0, s, kF32, {}, DLDevice{kDLCUDAHost, 0});
  CuTensor cx(x.data(), 0, s, kF32, {}, DLDevice{kDLCPU, 0});
  CuTensor cw(want.data(), 0, s, kF32, {}, DLDevice{kDLCPU, 0});
  const sdrop_params prm{0.5, 1, 2, 0x3u, 0};
  ASSERT_EQ(sdrop_forward(&prm, &tx, &ty), SDROP_OK) << sdrop_last_error();
  ASSERT_EQ(sdrop_forward(&prm, &cx, &cw), SDROP_OK) << sdrop_last_error();
  EXPECT_EQ(std::memcmp(y.data(), want.data(), 480), 0);
}

}  // namespace
}  // namespace sdrop_gpu_test
