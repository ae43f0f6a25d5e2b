// The CUDA backend (sdrop.h, "GPU backends"): DLTensor.data is a device pointer (cudaMalloc, in
// the primary context the runtime API uses), calls are enqueued on the stream set per thread
// with sdrop_set_cuda_stream. This file is the CUDA Backend the shared suite (gpu_suite.cc)
// runs on, twice: on a created stream and on the legacy default stream (NULL); and the cases
// only CUDA has: pointers that are not (all) device memory, a device id the machine lacks, and
// what the library answers without a device.
//
// This file links libcudart only, never libcuda: it loads on a machine without a driver. There,
// cudaGetDeviceCount fails or finds no device and every device test skips with the reason,
// while CudaWithoutDevice.* checks what the library answers for a kDLCUDA tensor then:
// SDROP_ERROR_BACKEND_UNAVAILABLE and a message, neither an abort nor a hang.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "gpu_tester.h"

namespace sdrop_gpu_test {
namespace {

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

#define SDROP_CUDA_OK(call)                                                                 \
  do {                                                                                      \
    const cudaError_t sdrop_err_ = (call);                                                  \
    EXPECT_EQ(sdrop_err_, cudaSuccess) << #call << ": " << cudaGetErrorString(sdrop_err_); \
  } while (0)

// own_stream: calls go on a created stream; else on the legacy default stream (NULL).
class CudaBackend : public Backend {
 public:
  explicit CudaBackend(bool own_stream) : own_stream_(own_stream) {}
  std::string name() const override { return own_stream_ ? "cuda_stream" : "cuda_default_stream"; }
  DLDevice dl_device() const override { return DLDevice{kDLCUDA, 0}; }
  std::string Unavailable() const override { return Cuda().ok ? "" : Cuda().why; }
  Queue queue() const override { return own_stream_ ? Cuda().stream : nullptr; }
  Queue ThreadQueue(int i) const override {
    while (static_cast<int>(thread_streams_.size()) <= i) {
      cudaStream_t s = nullptr;
      const cudaError_t err = cudaStreamCreate(&s);
      if (err != cudaSuccess) {
        ADD_FAILURE() << "cudaStreamCreate: " << cudaGetErrorString(err);
        return nullptr;
      }
      thread_streams_.push_back(s);
    }
    return thread_streams_[i];
  }
  // NULL context: the primary context of the tensors' device, the runtime API's.
  sdrop_status SetQueue(Queue q) const override { return sdrop_set_cuda_stream(nullptr, q); }
  void GetHandles(void** context, void** queue) const override {
    sdrop_get_cuda_stream(context, queue);
  }
  void* context() const override { return nullptr; }
  void* Alloc(size_t bytes) const override {
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
      ADD_FAILURE() << "cudaMalloc(" << bytes << "): " << cudaGetErrorString(err);
      return nullptr;
    }
    return p;
  }
  void Free(void* buf) const override {
    SDROP_CUDA_OK(cudaDeviceSynchronize());
    SDROP_CUDA_OK(cudaFree(buf));
  }
  // Whole-device synchronisation around the copies: whatever stream sdrop used is done.
  void Write(Queue, void* buf, size_t offset, const void* src, size_t n) const override {
    SDROP_CUDA_OK(cudaDeviceSynchronize());
    SDROP_CUDA_OK(cudaMemcpy(static_cast<char*>(buf) + offset, src, n, cudaMemcpyHostToDevice));
    SDROP_CUDA_OK(cudaDeviceSynchronize());
  }
  void Read(Queue, void* buf, size_t offset, void* dst, size_t n) const override {
    SDROP_CUDA_OK(cudaDeviceSynchronize());
    SDROP_CUDA_OK(cudaMemcpy(dst, static_cast<const char*>(buf) + offset, n, cudaMemcpyDeviceToHost));
  }
  // The stream sdrop was given; then any error a kernel left behind.
  void Finish(Queue q) const override {
    SDROP_CUDA_OK(cudaStreamSynchronize(static_cast<cudaStream_t>(q)));
    SDROP_CUDA_OK(cudaGetLastError());
  }
  bool offset_in_pointer() const override { return true; }
  // 2^26 elements; positive values keep the host-side fill short.
  LargeCase large() const override { return {{16, 64, 256, 256}, Values::kPositive}; }
  bool main_variant() const override { return own_stream_; }

 private:
  bool own_stream_;
  mutable std::vector<cudaStream_t> thread_streams_;  // never destroyed, like Cuda().stream
};

const Backend& CudaOnStream() {
  static const Backend* b = new CudaBackend(true);
  return *b;
}
const Backend& CudaOnDefaultStream() {
  static const Backend* b = new CudaBackend(false);
  return *b;
}

}  // namespace

const std::vector<const Backend*>& Backends() {
  static const std::vector<const Backend*> v = {&CudaOnStream(), &CudaOnDefaultStream()};
  return v;
}

namespace {

// ---- Pointers on a machine with a device -----------------------------------------------------------

using CudaRefusal = RefusalsOn<CudaOnStream>;

// The bounds come from the driver's record of the allocation a pointer falls in: a misaligned
// pointer, a range past the end or below the start, a host pointer, a device id not there.
TEST_F(CudaRefusal, PointersOutsideDeviceMemory) {
  const std::vector<int64_t> s{2, 3, 4, 5};
  std::vector<uint8_t> host(kBytes, 0xA5);
  DevTensor x(dl(), xb->handle(), 0, s, kF32);
  DevTensor yp(dl(), static_cast<char*>(yb->handle()) + 2, 0, s, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &yp); }, kAnyFailure, "y");
  DevTensor y_end(dl(), yb->handle(), kBytes - 4 * 119, s, kF32);  // one element past the end
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y_end); }, kAnyFailure, "y");
  DevTensor y_neg(dl(), yb->handle(), 0, s, kF32, {60, 20, 5, -1});  // 4 elements below
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y_neg); }, kAnyFailure, "y");
  // A host pointer labelled kDLCUDA must not reach a kernel.
  DevTensor y_host(dl(), host.data(), 0, s, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y_host); }, kAnyFailure, "", {&host});
  // A device id this machine does not have.
  const DLDevice missing{kDLCUDA, Cuda().count};
  DevTensor xd(missing, xb->handle(), 0, s, kF32), yd(missing, yb->handle(), 0, s, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &xd, &yd); }, kAnyFailure, "");
}

// ---- Without a device (this runs on machines without a GPU or driver) -------------------------------

class CudaWithoutDevice : public testing::Test {
 protected:
  void SetUp() override {
    if (Cuda().count > 0) GTEST_SKIP() << "this machine has a CUDA device: covered by Gpu/*";
    std::printf("[ CUDA     ] %s\n", Cuda().why.c_str());
  }
  static DLDevice cuda(int id = 0) { return DLDevice{kDLCUDA, id}; }
  static DLDevice cpu(DLDeviceType type = kDLCPU) { return DLDevice{type, 0}; }
  static void* fake(uintptr_t address) { return reinterpret_cast<void*>(address); }
};

// A kDLCUDA tensor (a fake pointer: nothing may be dereferenced) when cudaGetDeviceCount finds no
// device: SDROP_ERROR_BACKEND_UNAVAILABLE with a message, from every entry point.
TEST_F(CudaWithoutDevice, CallsReturnBackendUnavailable) {
  const std::vector<int64_t> s{2, 3, 4, 5};
  DevTensor x(cuda(), fake(0x1000), 0, s, kF32), y(cuda(), fake(0x1000), 0, s, kF32);
  DevTensor y2(cuda(), fake(0x100000), 0, s, kF32);
  DevTensor m(cuda(), fake(0x200000), 0, {2, 3, 1, 1}, kU8);
  const sdrop_params prm{0.5, 1, 2, 0x3u, 0};
  for (void* stream : {static_cast<void*>(nullptr), fake(0x3000)}) {
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
  DevTensor x1(cuda(1), fake(0x1000), 0, s, kF32), y1(cuda(1), fake(0x100000), 0, s, kF32);
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
  DevTensor x(cuda(), fake(0x1000), 0, s, kF32), y(cuda(), fake(0x100000), 0, s, kF32);
  DevTensor hy(cpu(), host.data(), 0, s, kF32), hx(cpu(), host_x.data(), 0, s, kF32);
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
  DevTensor tx(cpu(kDLCUDAHost), x.data(), 0, s, kF32), ty(cpu(kDLCUDAHost), y.data(), 0, s, kF32);
  DevTensor cx(cpu(), x.data(), 0, s, kF32), cw(cpu(), want.data(), 0, s, kF32);
  const sdrop_params prm{0.5, 1, 2, 0x3u, 0};
  ASSERT_EQ(sdrop_forward(&prm, &tx, &ty), SDROP_OK) << sdrop_last_error();
  ASSERT_EQ(sdrop_forward(&prm, &cx, &cw), SDROP_OK) << sdrop_last_error();
  EXPECT_EQ(std::memcmp(y.data(), want.data(), 480), 0);
}

}  // namespace
}  // namespace sdrop_gpu_test
