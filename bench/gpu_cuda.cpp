// CUDA benchmarks: sdrop_forward on device memory beside the SPEC section 7 GPU references, a
// device-to-device cudaMemcpyAsync of the same bytes and cuDNN's dropout (cudnnDropoutForward:
// an element-wise mask, always x * mask * scale) on the same shape, in the same process and run.
//
// Every benchmark runs on one non-blocking stream (sdrop_set_cuda_stream(NULL, stream): the
// primary context of device 0, the one the CUDA runtime uses). Each iteration is bracketed by two
// CUDA events on that stream and reports their elapsed time (UseManualTime); a call and a
// synchronize run before the timed loop (module load / PTX JIT, cuDNN's first launch), then
// Google Benchmark's warm-up. Descriptors, states and buffers are set up outside the timed
// region: inputs once per dtype (the values of fill_input), the output buffer shared.
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
#include <utility>
#include <vector>

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

// ---- process-wide CUDA state: set up at registration (stream, events, cuDNN) and lazily at
// the first benchmark that needs it (buffers, dropout descriptors) ---------------------------------
struct Dropout {
  double p;
  cudnnDropoutDescriptor_t desc;
  void* states;
};

struct CudaState {
  int device = 0;
  cudaStream_t stream = nullptr;
  cudaEvent_t ev0 = nullptr, ev1 = nullptr;
  int64_t in_numel[4] = {};  // per DType: elements reserved at registration
  void* in[4] = {};          // per DType: the input, filled once
  size_t out_bytes = 0;      // reserved at registration
  void* out = nullptr;       // output / in-place operand
  cudnnHandle_t dnn = nullptr;
  size_t states_bytes = 0;
  std::vector<Dropout> drops;
  void* reserve = nullptr;
  size_t reserve_bytes = 0;
};
CudaState g;

std::string input(DType d, void** out) {
  const int k = int(d);
  if (!g.in[k]) {
    const int64_t n = g.in_numel[k];
    const size_t bytes = size_t(n) * dtype_size(d);
    SDB_CU(cudaMalloc(&g.in[k], bytes));
    std::vector<unsigned char> host(bytes);
    fill_pattern(d, host.data(), n);
    SDB_CU(cudaMemcpy(g.in[k], host.data(), bytes, cudaMemcpyHostToDevice));
  }
  *out = g.in[k];
  return "";
}

std::string output(void** out) {
  if (!g.out) SDB_CU(cudaMalloc(&g.out, g.out_bytes));
  *out = g.out;
  return "";
}

std::string dropout_desc(double p, cudnnDropoutDescriptor_t* out) {
  for (const Dropout& d : g.drops)
    if (d.p == p) {
      *out = d.desc;
      return "";
    }
  Dropout d{p, nullptr, nullptr};
  if (!g.states_bytes) SDB_DNN(cudnnDropoutGetStatesSize(g.dnn, &g.states_bytes));
  SDB_DNN(cudnnCreateDropoutDescriptor(&d.desc));
  SDB_CU(cudaMalloc(&d.states, g.states_bytes));
  // Initialises the RNG states with a kernel on the handle's stream.
  SDB_DNN(cudnnSetDropoutDescriptor(d.desc, g.dnn, float(p), d.states, g.states_bytes,
                                    0x5d509ull));
  SDB_CU(cudaStreamSynchronize(g.stream));
  g.drops.push_back(d);
  *out = d.desc;
  return "";
}

std::string reserve_space(size_t bytes, void** out) {
  if (bytes > g.reserve_bytes) {
    if (g.reserve) SDB_CU(cudaFree(g.reserve));
    g.reserve = nullptr;
    g.reserve_bytes = 0;
    SDB_CU(cudaMalloc(&g.reserve, bytes));
    g.reserve_bytes = bytes;
  }
  *out = g.reserve;
  return "";
}

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

// Runs enqueue() once per iteration between two events on the stream and reports the elapsed
// GPU time. Returns false (after SkipWithError) on a failure.
template <class Enqueue>
bool timed_loop(benchmark::State& st, Enqueue&& enqueue) {
  for (auto _ : st) {
    cudaError_t e = cudaEventRecord(g.ev0, g.stream);
    std::string err = e == cudaSuccess ? enqueue() : cu_error("cudaEventRecord", e);
    if (err.empty() && (e = cudaEventRecord(g.ev1, g.stream)) != cudaSuccess)
      err = cu_error("cudaEventRecord", e);
    if (err.empty() && (e = cudaEventSynchronize(g.ev1)) != cudaSuccess)
      err = cu_error("cudaEventSynchronize", e);
    float ms = 0.0f;
    if (err.empty() && (e = cudaEventElapsedTime(&ms, g.ev0, g.ev1)) != cudaSuccess)
      err = cu_error("cudaEventElapsedTime", e);
    if (!err.empty()) {
      st.SkipWithError(err.c_str());
      return false;
    }
    st.SetIterationTime(double(ms) * 1e-3);
  }
  return true;
}

bool check(benchmark::State& st, const std::string& err) {
  if (err.empty()) return true;
  st.SkipWithError(err.c_str());
  return false;
}

// ---- sdrop ----------------------------------------------------------------------------------------
void bm_sdrop(benchmark::State& st, const Case& c) {
  const int64_t numel = c.numel();
  const size_t bytes = size_t(numel) * dtype_size(c.dtype);
  void* in = nullptr;
  void* out = nullptr;
  if (!check(st, input(c.dtype, &in)) || !check(st, output(&out))) return;
  void* xdata = in;
  if (c.inplace) {
    if (!check(st, [&]() -> std::string {
          SDB_CU(cudaMemcpyAsync(out, in, bytes, cudaMemcpyDeviceToDevice, g.stream));
          return "";
        }()))
      return;
    xdata = out;
  }
  int64_t shape[4];
  gpu_shape(c, shape);
  DLTensor x{};
  x.data = xdata;
  x.device = DLDevice{kDLCUDA, g.device};
  x.ndim = 4;
  x.dtype = gpu_dl_dtype(c.dtype);
  x.shape = shape;
  x.strides = nullptr;
  x.byte_offset = 0;
  DLTensor y = x;
  y.data = out;
  sdrop_params prm = gpu_params(c);

  sdrop_set_cuda_stream(nullptr, g.stream);
  auto call = [&]() -> std::string {
    ++prm.offset;  // a new mask every call, as in training
    sdrop_status r = sdrop_forward(&prm, &x, &y);
    if (r != SDROP_OK)
      return std::string("sdrop_forward: ") + gpu_status_name(r) + ": " + sdrop_last_error();
    return "";
  };
  // Outside the timed loop: the first call loads the kernel module (the driver JIT-compiles the
  // PTX), and any asynchronous fault shows here rather than in the timings.
  if (!check(st, call()) || !check(st, [&]() -> std::string {
        SDB_CU(cudaStreamSynchronize(g.stream));
        return "";
      }()))
    return;
  if (!timed_loop(st, call)) return;
  st.SetBytesProcessed(int64_t(st.iterations()) * c.bytes_moved());
}

// ---- references -----------------------------------------------------------------------------------
void bm_memcpy(benchmark::State& st, DType d, const Size* size) {
  const size_t bytes = size_t(size->numel()) * dtype_size(d);
  void* in = nullptr;
  void* out = nullptr;
  if (!check(st, input(d, &in)) || !check(st, output(&out))) return;
  auto call = [&]() -> std::string {
    SDB_CU(cudaMemcpyAsync(out, in, bytes, cudaMemcpyDeviceToDevice, g.stream));
    return "";
  };
  if (!check(st, call()) || !check(st, [&]() -> std::string {
        SDB_CU(cudaStreamSynchronize(g.stream));
        return "";
      }()))
    return;
  if (!timed_loop(st, call)) return;
  st.SetBytesProcessed(int64_t(st.iterations()) * 2 * int64_t(bytes));
  st.SetLabel("cudaMemcpyAsync D2D");
}

void bm_cudnn(benchmark::State& st, const Case& c) {
  void* in = nullptr;
  void* out = nullptr;
  if (!check(st, input(c.dtype, &in)) || !check(st, output(&out))) return;
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
      !check(st, reserve_space(rbytes, &reserve)) || !check(st, dropout_desc(c.p, &drop)))
    return;
  auto call = [&]() -> std::string {
    SDB_DNN(cudnnDropoutForward(g.dnn, drop, xd.d, in, xd.d, out, reserve, rbytes));
    return "";
  };
  if (!check(st, call()) || !check(st, [&]() -> std::string {
        SDB_CU(cudaStreamSynchronize(g.stream));
        return "";
      }()))
    return;
  if (!timed_loop(st, call)) return;
  st.SetBytesProcessed(int64_t(st.iterations()) * c.bytes_moved());
  st.SetLabel("element-wise mask");
}

// ---- set-up and registration ----------------------------------------------------------------------
std::string init_device() {
  SDB_CU(cudaSetDevice(g.device));
  SDB_CU(cudaFree(nullptr));  // creates the primary context now, not in a timed region
  SDB_CU(cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking));
  SDB_CU(cudaEventCreate(&g.ev0));
  SDB_CU(cudaEventCreate(&g.ev1));
  return "";
}

std::string init_cudnn() {
  SDB_DNN(cudnnCreate(&g.dnn));
  SDB_DNN(cudnnSetStream(g.dnn, g.stream));
  return "";
}

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
    e = dropout_desc(0.5, &drop);
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

// The cases: f32 at every size and both layouts; f16 / bf16 at the large size; all of SPEC
// section 7 (every dtype, size, layout, p, mode and place) with --full. Forward only: backward
// runs the same kernel.
std::vector<Case> cases(bool full) {
  std::vector<Case> out;
  const double ps[3] = {0.1, 0.5, 0.9};
  for (const Size& size : kSizes) {
    const bool large = &size == &kSizes[2];
    for (DType d : {DType::f32, DType::f16, DType::bf16, DType::f64}) {
      for (bool nhwc : {false, true}) {
        for (double p : ps) {
          for (bool mul : {false, true}) {
            for (bool inplace : {false, true}) {
              Case c;
              c.size = &size;
              c.dtype = d;
              c.nhwc = nhwc;
              c.p = p;
              c.multiply = mul;
              c.inplace = inplace;
              bool take = full;
              if (d == DType::f32) take = take || large || !inplace || p == 0.5;
              if (d == DType::f16 || d == DType::bf16)
                take = take || (large && !nhwc && (!inplace || p == 0.5)) ||
                       (large && nhwc && p == 0.5 && !mul && !inplace);
              if (take) out.push_back(c);
            }
          }
        }
      }
    }
  }
  return out;
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
    std::fprintf(stderr, "cuda: no device (%s), CUDA benchmarks skipped\n", why.c_str());
    benchmark::AddCustomContext("cuda", "no device (" + why + ")");
    return;
  }
  std::string err = init_device();
  if (!err.empty()) {
    std::fprintf(stderr, "cuda: no device (device %d unusable: %s), CUDA benchmarks skipped\n",
                 g.device, err.c_str());
    benchmark::AddCustomContext("cuda", "device unusable (" + err + ")");
    return;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, g.device);
  int rt = 0, drv = 0;
  cudaRuntimeGetVersion(&rt);
  cudaDriverGetVersion(&drv);
  char desc[512];
  std::snprintf(desc, sizeof desc, "%s (sm_%d%d, %d SMs, %.1f GiB), device %d of %d",
                prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                double(prop.totalGlobalMem) / double(1ull << 30), g.device, n);
  benchmark::AddCustomContext("cuda", desc);
  benchmark::AddCustomContext("cuda_runtime", version(rt));
  benchmark::AddCustomContext("cuda_driver", version(drv));

  std::string dnn_err = init_cudnn();
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

  std::vector<std::string> seen;
  auto once = [&](const std::string& name) {
    for (const std::string& s : seen)
      if (s == name) return false;
    seen.push_back(name);
    return true;
  };
  for (const Case& c : all) {
    const int k = int(c.dtype);
    if (c.numel() > g.in_numel[k]) g.in_numel[k] = c.numel();
    const size_t bytes = size_t(c.numel()) * dtype_size(c.dtype);
    if (bytes > g.out_bytes) g.out_bytes = bytes;

    // memcpy D2D: one per width and size (f16 and bf16 share "16bit", as on the CPU).
    std::string name = std::string("gpu/cuda/ref/memcpy_d2d/") + width_name(c.dtype) + "/" +
                       c.size->name;
    if (once(name)) {
      const DType d = c.dtype;
      const Size* size = c.size;
      apply_gpu(benchmark::RegisterBenchmark(
                    name.c_str(), [d, size](benchmark::State& st) { bm_memcpy(st, d, size); }),
                true);
    }
    // cuDNN: out of place, always multiplies; one per dtype, layout, size and p.
    if (dnn_ok[k]) {
      Case r = c;
      r.multiply = true;
      r.inplace = false;
      name = case_name("gpu/cuda/cudnn", r);
      if (once(name))
        apply_gpu(benchmark::RegisterBenchmark(
                      name.c_str(), [r](benchmark::State& st) { bm_cudnn(st, r); }),
                  true);
    }
    name = case_name("gpu/cuda/sdrop", c);
    if (once(name))
      apply_gpu(benchmark::RegisterBenchmark(
                    name.c_str(), [c](benchmark::State& st) { bm_sdrop(st, c); }),
                true);
  }
}

}  // namespace sdb
