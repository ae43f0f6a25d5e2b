// CUDA benchmarks: sdrop_forward on device memory beside the GPU references of
// docs/performance.md#gpu, a device-to-device cudaMemcpyAsync of the same bytes and cuDNN's
// dropout (cudnnDropoutForward: an element-wise mask, always x * mask * scale) on the same
// shape, in the same process and run.
//
// This file is the CUDA GpuBackend of gpu.h and its peers; the sdrop benchmark, buffers, the
// untimed first call and the loop are gpu.cpp's. Every benchmark runs on one non-blocking stream
// (sdrop_set_cuda_stream(NULL, stream): the primary context of device 0, the one the CUDA runtime
// uses). Each iteration is bracketed by two CUDA events on that stream and reports their elapsed
// time (UseManualTime); the first call (module load / PTX JIT, cuDNN's first launch) is outside
// the timed loop, then Google Benchmark's warm-up. Descriptors and states are set up outside the
// timed region too.
//
// Run only these: sdrop_bench --benchmark_filter=^gpu/cuda/
//
// Linked against libcudart and libcudnn only (never libcuda): the binary starts without a driver;
// the benchmarks are registered only when cudaGetDeviceCount reports a device.
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <dlfcn.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cases.h"
#include "gpu.h"

namespace sdb {
namespace {

std::string cu_error(const char* what, cudaError_t e) {
  return std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}
std::string dnn_error(const char* what, cudnnStatus_t s) {
  return std::string(what) + ": " + cudnnGetErrorString(s);
}

#define SDB_CU(call)                                   \
  do {                                                 \
    cudaError_t sdb_e_ = (call);                       \
    if (sdb_e_ != cudaSuccess) return cu_error(#call, sdb_e_); \
  } while (0)
#define SDB_DNN(call)                                      \
  do {                                                     \
    cudnnStatus_t sdb_s_ = (call);                         \
    if (sdb_s_ != CUDNN_STATUS_SUCCESS) return dnn_error(#call, sdb_s_); \
  } while (0)

cudnnDataType_t dnn_dtype(DType d) {
  switch (d) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::f64: return CUDNN_DATA_DOUBLE;
    case DType::f16: return CUDNN_DATA_HALF;
    default: return CUDNN_DATA_BFLOAT16;
  }
}

const char* width_name(DType d) {
  return d == DType::f64 ? "f64" : d == DType::f32 ? "f32" : "16bit";
}

// ---- the backend: one non-blocking stream, two events, cuDNN on the same stream -----------------
struct Dropout {
  double p;
  cudnnDropoutDescriptor_t desc;
  void* states;
};

class CudaBench : public GpuBackend {
 public:
  const char* name() const override { return "cuda"; }
  DLDevice device() const override { return DLDevice{kDLCUDA, device_id}; }
  bool manual_time() const override { return true; }
  std::string alloc(size_t bytes, void** buf) override {
    SDB_CU(cudaMalloc(buf, bytes));
    return "";
  }
  std::string upload(void* buf, const void* host, size_t bytes) override {
    SDB_CU(cudaMemcpy(buf, host, bytes, cudaMemcpyHostToDevice));
    return "";
  }
  std::string copy(void* dst, void* src, size_t bytes) override {
    SDB_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
    return "";
  }
  std::string use_queue() override {
    sdrop_set_cuda_stream(nullptr, stream);  // the primary context of device_id
    return "";
  }
  std::string sync() override {
    SDB_CU(cudaStreamSynchronize(stream));
    return "";
  }
  // Two events on the stream around the enqueue: the GPU time of the work between them.
  std::string timed(const Enqueue& enqueue, double* seconds) override {
    SDB_CU(cudaEventRecord(ev0, stream));
    std::string err = enqueue();
    if (!err.empty()) return err;
    SDB_CU(cudaEventRecord(ev1, stream));
    SDB_CU(cudaEventSynchronize(ev1));
    float ms = 0.0f;
    SDB_CU(cudaEventElapsedTime(&ms, ev0, ev1));
    *seconds = double(ms) * 1e-3;
    return "";
  }

  std::string init_device() {
    SDB_CU(cudaSetDevice(device_id));
    SDB_CU(cudaFree(nullptr));  // creates the primary context now, not in a timed region
    SDB_CU(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    SDB_CU(cudaEventCreate(&ev0));
    SDB_CU(cudaEventCreate(&ev1));
    return "";
  }
  std::string init_cudnn() {
    SDB_DNN(cudnnCreate(&dnn));
    SDB_DNN(cudnnSetStream(dnn, stream));
    return "";
  }
  // The dropout descriptor of p (its RNG states initialised once, by a kernel on the stream).
  std::string dropout_desc(double p, cudnnDropoutDescriptor_t* out) {
    for (const Dropout& d : drops)
      if (d.p == p) {
        *out = d.desc;
        return "";
      }
    Dropout d{p, nullptr, nullptr};
    if (!states_bytes) SDB_DNN(cudnnDropoutGetStatesSize(dnn, &states_bytes));
    SDB_DNN(cudnnCreateDropoutDescriptor(&d.desc));
    SDB_CU(cudaMalloc(&d.states, states_bytes));
    SDB_DNN(cudnnSetDropoutDescriptor(d.desc, dnn, float(p), d.states, states_bytes, 0x5d509ull));
    SDB_CU(cudaStreamSynchronize(stream));
    drops.push_back(d);
    *out = d.desc;
    return "";
  }
  std::string reserve_space(size_t bytes, void** out) {
    if (bytes > reserve_bytes) {
      if (reserve_buf) SDB_CU(cudaFree(reserve_buf));
      reserve_buf = nullptr;
      reserve_bytes = 0;
      SDB_CU(cudaMalloc(&reserve_buf, bytes));
      reserve_bytes = bytes;
    }
    *out = reserve_buf;
    return "";
  }

  int device_id = 0;
  cudaStream_t stream = nullptr;
  cudaEvent_t ev0 = nullptr, ev1 = nullptr;
  cudnnHandle_t dnn = nullptr;
  size_t states_bytes = 0;
  std::vector<Dropout> drops;
  void* reserve_buf = nullptr;
  size_t reserve_bytes = 0;
};
CudaBench g;

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  ~TensorDesc() {
    if (d) cudnnDestroyTensorDescriptor(d);
  }
  // n, c, h, w are the logical dims whatever the layout; the format sets the strides.
  std::string set(DType dt, bool nhwc, int n, int c, int h, int w) {
    SDB_DNN(cudnnCreateTensorDescriptor(&d));
    SDB_DNN(cudnnSetTensor4dDescriptor(d, nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW,
                                       dnn_dtype(dt), n, c, h, w));
    return "";
  }
};

// ---- peers ------------------------------------------------------------------------------------------
void bm_memcpy(benchmark::State& st, DType d, const Size* size) {
  const size_t bytes = size_t(size->numel()) * dtype_size(d);
  void* in = nullptr;
  void* out = nullptr;
  if (!check(st, g.input(d, &in)) || !check(st, g.output(&out))) return;
  run_timed(st, g, [&] { return g.copy(out, in, bytes); }, 2 * int64_t(bytes),
            "cudaMemcpyAsync D2D");
}

void bm_cudnn(benchmark::State& st, const Case& c) {
  void* in = nullptr;
  void* out = nullptr;
  if (!check(st, g.input(c.dtype, &in)) || !check(st, g.output(&out))) return;
  const Size& s = *c.size;
  TensorDesc xd;
  if (!check(st, xd.set(c.dtype, c.nhwc, int(s.n), int(s.c), int(s.h), int(s.w)))) return;
  size_t rbytes = 0;
  void* reserve = nullptr;
  cudnnDropoutDescriptor_t drop = nullptr;
  if (!check(st, [&]() -> std::string {
        SDB_DNN(cudnnDropoutGetReserveSpaceSize(xd.d, &rbytes));
        return "";
      }()) ||
      !check(st, g.reserve_space(rbytes, &reserve)) || !check(st, g.dropout_desc(c.p, &drop)))
    return;
  auto call = [&]() -> std::string {
    SDB_DNN(cudnnDropoutForward(g.dnn, drop, xd.d, in, xd.d, out, reserve, rbytes));
    return "";
  };
  run_timed(st, g, call, c.bytes_moved(), "element-wise mask");
}

// ---- set-up and registration ----------------------------------------------------------------------
// Whether cuDNN's dropout runs on this dtype: one call on a 1x4x3x3 tensor.
std::string cudnn_probe(DType d) {
  const size_t bytes = 36 * size_t(dtype_size(d));
  void* x = nullptr;
  void* y = nullptr;
  void* reserve = nullptr;
  TensorDesc xd;
  cudnnDropoutDescriptor_t drop = nullptr;
  size_t rbytes = 0;
  std::string err = [&]() -> std::string {
    SDB_CU(cudaMalloc(&x, bytes));
    SDB_CU(cudaMalloc(&y, bytes));
    SDB_CU(cudaMemset(x, 0, bytes));
    std::string e = xd.set(d, false, 1, 4, 3, 3);
    if (!e.empty()) return e;
    SDB_DNN(cudnnDropoutGetReserveSpaceSize(xd.d, &rbytes));
    SDB_CU(cudaMalloc(&reserve, rbytes ? rbytes : 1));
    e = g.dropout_desc(0.5, &drop);
    if (!e.empty()) return e;
    SDB_DNN(cudnnDropoutForward(g.dnn, drop, xd.d, x, xd.d, y, reserve, rbytes));
    SDB_CU(cudaStreamSynchronize(g.stream));
    return "";
  }();
  cudaFree(x);
  cudaFree(y);
  cudaFree(reserve);
  return err;
}

std::string version(int v) {  // CUDA's 1000 * major + 10 * minor
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

// The cases: f32 at every size and both layouts; f16 / bf16 at the large size; all of the
// docs/performance.md matrix (every dtype, size, layout, p, mode and place) with --full.
// Forward only: backward runs the same kernel.
std::vector<Case> cases(bool full) {
  return select_cases({&kSizes[0], &kSizes[1], &kSizes[2]},
                      {DType::f32, DType::f16, DType::bf16, DType::f64}, {0.1, 0.5, 0.9},
                      [full](const Case& c) {
                        const bool large = c.size == &kSizes[2];
                        if (full) return true;
                        if (c.dtype == DType::f32) return large || !c.inplace || c.p == 0.5;
                        if (c.dtype == DType::f16 || c.dtype == DType::bf16)
                          return (large && !c.nhwc && (!c.inplace || c.p == 0.5)) ||
                                 (large && c.nhwc && c.p == 0.5 && !c.multiply && !c.inplace);
                        return false;
                      });
}

}  // namespace

void register_cuda() {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n < 1) {
    std::string why = e != cudaSuccess
                          ? std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e)
                          : std::string("cudaGetDeviceCount found 0 devices");
    if (e == cudaErrorInsufficientDriver) {
      // Also what the runtime says when there is no driver at all: say which.
      if (void* h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL)) dlclose(h);
      else why += "; no NVIDIA driver: libcuda.so.1 not found";
    }
    report_no_device("cuda", "CUDA", why);
    return;
  }
  std::string err = g.init_device();
  if (!err.empty()) {
    std::fprintf(stderr, "cuda: no device (device %d unusable: %s), CUDA benchmarks skipped\n",
                 g.device_id, err.c_str());
    benchmark::AddCustomContext("cuda", "device unusable (" + err + ")");
    return;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, g.device_id);
  int rt = 0, drv = 0;
  cudaRuntimeGetVersion(&rt);
  cudaDriverGetVersion(&drv);
  char desc[512];
  std::snprintf(desc, sizeof desc, "%s (sm_%d%d, %d SMs, %.1f GiB), device %d of %d",
                prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                double(prop.totalGlobalMem) / double(1ull << 30), g.device_id, n);
  benchmark::AddCustomContext("cuda", desc);
  benchmark::AddCustomContext("cuda_runtime", version(rt));
  benchmark::AddCustomContext("cuda_driver", version(drv));

  std::string dnn_err = g.init_cudnn();
  if (dnn_err.empty()) {
    const size_t v = cudnnGetVersion();
    benchmark::AddCustomContext("cudnn", std::to_string(v / 10000) + "." +
                                             std::to_string(v % 10000 / 100) + "." +
                                             std::to_string(v % 100));
  } else {
    std::fprintf(stderr, "cuda: cuDNN unavailable (%s), cuDNN dropout left out\n",
                 dnn_err.c_str());
    benchmark::AddCustomContext("cudnn", "unavailable (" + dnn_err + ")");
  }

  const std::vector<Case> all = cases(config().full);
  bool dnn_ok[4] = {};
  std::string dnn_skipped;
  if (dnn_err.empty()) {
    for (DType d : {DType::f32, DType::f16, DType::bf16, DType::f64}) {
      bool used = false;
      for (const Case& c : all) used = used || c.dtype == d;
      if (!used) continue;
      std::string why = cudnn_probe(d);
      dnn_ok[int(d)] = why.empty();
      if (!why.empty()) {
        std::fprintf(stderr, "cuda: cuDNN dropout on %s left out: %s\n", dtype_name(d),
                     why.c_str());
        dnn_skipped += std::string(dnn_skipped.empty() ? "" : "; ") + dtype_name(d) + ": " + why;
      }
    }
  }
  if (!dnn_skipped.empty()) benchmark::AddCustomContext("cudnn_skipped", dnn_skipped);

  GpuRegistry reg(g);
  for (const Case& c : all) {
    // memcpy D2D: one per width and size (f16 and bf16 share "16bit", as on the CPU).
    const DType d = c.dtype;
    const Size* size = c.size;
    reg.add(std::string("gpu/cuda/ref/memcpy_d2d/") + width_name(d) + "/" + size->name,
            [d, size](benchmark::State& st) { bm_memcpy(st, d, size); });
    // cuDNN: out of place, always multiplies; one per dtype, layout, size and p.
    if (dnn_ok[int(d)]) {
      Case r = c;
      r.multiply = true;
      r.inplace = false;
      reg.add(case_name("gpu/cuda/cudnn", r), [r](benchmark::State& st) { bm_cudnn(st, r); });
    }
    reg.add_sdrop(c);
  }
}

}  // namespace sdb
