// The GPU benchmarks: sdrop on device memory beside the GPU references (docs/performance.md#gpu),
// all under the "gpu/" name prefix (filter: --benchmark_filter=^gpu/, ^gpu/cuda/ or ^gpu/opencl/).
//   gpu.cpp         what every backend shares: buffers, the sdrop benchmark, the untimed first
//                   call, the timed loop, registration under unique names;
//   gpu_cuda.cpp    built when CMake finds the CUDA toolkit and cuDNN: the CUDA GpuBackend (CUDA
//                   events) and its peers, a device-to-device cudaMemcpyAsync and cuDNN's
//                   (element-wise) dropout;
//   gpu_opencl.cpp  built when CMake finds OpenCL: the OpenCL GpuBackend (a waiting caller's real
//                   time) and its peer, a plain copy kernel.
// Each registers its benchmarks only when a device answers, else prints one line saying why.
// Names ("/"-separated, parsed by report.py):
//   gpu/<cuda|opencl>/sdrop/fwd/<dtype>/<nchw|nhwc>/<size>/p<p>/<zero|mul>/<oop|inplace>
//   gpu/cuda/cudnn/fwd/<dtype>/<nchw|nhwc>/<size>/p<p>/mul/oop
//   gpu/cuda/ref/memcpy_d2d/<f32|16bit|f64>/<size>
//   gpu/opencl/ref/copy/f32/<size>
// Bytes processed: 2 * numel * sizeof(dtype) for all of them, as on the CPU.
#ifndef SDROP_BENCH_GPU_H_
#define SDROP_BENCH_GPU_H_

#include <benchmark/benchmark.h>
#include <sdrop/sdrop.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common.h"

namespace sdb {

// One enqueue of a benchmark's work on the backend's queue / stream: "" or what failed.
using Enqueue = std::function<std::string()>;

// What the shared GPU benchmark code needs of a backend. Errors are returned as strings ("" when
// none), which the benchmarks report with SkipWithError.
class GpuBackend {
 public:
  virtual ~GpuBackend() = default;
  // "cuda", "opencl": the second part of the names, and the custom-context key.
  virtual const char* name() const = 0;
  virtual DLDevice device() const = 0;
  // Whether iterations report the device's own times (UseManualTime) rather than real time.
  virtual bool manual_time() const = 0;
  // A device buffer as DLTensor.data names it (a pointer, a cl_mem), and a blocking upload.
  virtual std::string alloc(size_t bytes, void** buf) = 0;
  virtual std::string upload(void* buf, const void* host, size_t bytes) = 0;
  // Enqueues a device-to-device copy of the first `bytes` bytes.
  virtual std::string copy(void* dst, void* src, size_t bytes) = 0;
  // Makes the backend's queue / stream this thread's for sdrop.
  virtual std::string use_queue() = 0;
  // Waits until everything enqueued so far is done.
  virtual std::string sync() = 0;
  // One timed iteration: enqueue() and the wait for it; *seconds is the device's time of it
  // when manual_time().
  virtual std::string timed(const Enqueue& enqueue, double* seconds) = 0;

  // The largest input per dtype and output of the benchmarks registered (before they run).
  void reserve(DType d, int64_t numel);
  // The input of dtype d (fill_pattern's values) and the output (also the in-place operand):
  // allocated at the first benchmark that needs them, kept for the process.
  std::string input(DType d, void** buf);
  std::string output(void** buf);

 private:
  int64_t in_numel_[4] = {};
  void* in_[4] = {};
  size_t out_bytes_ = 0;
  void* out_ = nullptr;
};

// Skips the benchmark with err unless it is empty.
bool check(benchmark::State& st, const std::string& err);

// The shape of every GPU benchmark: one untimed call and a wait (kernel module load or build,
// a library's first launch, any asynchronous fault), then the timed loop; `bytes` moved per
// iteration, and a label if given.
void run_timed(benchmark::State& st, GpuBackend& b, const Enqueue& enqueue, int64_t bytes,
               const char* label = nullptr);

// A backend's benchmarks, registered once per name (peers shared by several cases).
class GpuRegistry {
 public:
  explicit GpuRegistry(GpuBackend& b) : b_(b) {}
  // Registers fn as `name` unless a benchmark of that name is registered; false if it was.
  bool add(const std::string& name, std::function<void(benchmark::State&)> fn);
  // sdrop_forward on the case: gpu/<backend>/sdrop/...; reserves its buffers.
  void add_sdrop(const Case& c);

 private:
  GpuBackend& b_;
  std::vector<std::string> seen_;
};

// The "no device" line on stderr and in the context ("<key>: no device (<why>)").
void report_no_device(const char* key, const char* api, const std::string& why);

#ifdef SDROP_BENCH_HAVE_CUDA
void register_cuda();
#else
inline void register_cuda() { benchmark::AddCustomContext("cuda", "not built (no CUDA toolkit/cuDNN)"); }
#endif

#ifdef SDROP_BENCH_HAVE_OPENCL
void register_opencl();
#else
inline void register_opencl() { benchmark::AddCustomContext("opencl", "not built (no OpenCL)"); }
#endif

}  // namespace sdb

#endif  // SDROP_BENCH_GPU_H_
