// The GPU benchmarks: sdrop on device memory beside the SPEC section 7 GPU references, all under
// the "gpu/" name prefix (filter: --benchmark_filter=^gpu/, ^gpu/cuda/ or ^gpu/opencl/).
//   gpu_cuda.cpp    built when CMake finds the CUDA toolkit and cuDNN: sdrop vs a device-to-device
//                   cudaMemcpyAsync and cuDNN's (element-wise) dropout, timed with CUDA events;
//   gpu_opencl.cpp  built when CMake finds OpenCL: sdrop vs a plain copy kernel.
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

#include "common.h"

namespace sdb {

// Google Benchmark settings of the GPU benchmarks: the CPU ones' repetitions, times and
// warm-up; manual_time: the loop reports its own iteration times (CUDA events).
inline void apply_gpu(benchmark::internal::Benchmark* b, bool manual_time) {
  const Config& cfg = config();
  if (manual_time) b->UseManualTime();
  else b->UseRealTime();
  b->Unit(benchmark::kMicrosecond)
      ->MinTime(cfg.min_time)
      ->MinWarmUpTime(cfg.warmup)
      ->Repetitions(cfg.reps)
      ->ReportAggregatesOnly(true);
}

inline DLDataType gpu_dl_dtype(DType d) {
  switch (d) {
    case DType::f32: return DLDataType{kDLFloat, 32, 1};
    case DType::f64: return DLDataType{kDLFloat, 64, 1};
    case DType::f16: return DLDataType{kDLFloat, 16, 1};
    default: return DLDataType{kDLBfloat, 16, 1};
  }
}

inline const char* gpu_status_name(sdrop_status s) {
  switch (s) {
    case SDROP_OK: return "OK";
    case SDROP_ERROR_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case SDROP_ERROR_UNSUPPORTED: return "UNSUPPORTED";
    case SDROP_ERROR_BACKEND_UNAVAILABLE: return "BACKEND_UNAVAILABLE";
    case SDROP_ERROR_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
    default: return "INTERNAL";
  }
}

// The 4-D shape of a case: [N, C, H, W], or [N, H, W, C] in memory order when channels last
// (DLPack: compact row-major, strides = NULL).
inline void gpu_shape(const Case& c, int64_t shape[4]) {
  const Size& s = *c.size;
  shape[0] = s.n;
  shape[1] = c.nhwc ? s.h : s.c;
  shape[2] = c.nhwc ? s.w : s.h;
  shape[3] = c.nhwc ? s.c : s.w;
}

inline sdrop_params gpu_params(const Case& c) {
  sdrop_params prm{};
  prm.p = c.p;
  prm.seed = 0x5d509ull;
  prm.offset = 0;
  prm.mask_axes = sdrop_spatial_axes(4, c.nhwc ? SDROP_CHANNELS_LAST : SDROP_CHANNELS_FIRST);
  prm.flags = c.multiply ? SDROP_FLAG_MULTIPLY : 0u;
  return prm;
}

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
