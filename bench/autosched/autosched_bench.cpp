// Halide's autoschedulers against the hand schedule, on the pipeline sdrop ships.
//
//   sdrop_autosched_bench [--threads=N] [Google Benchmark flags]
//
// Every schedule runs the same canonical call the library makes for the docs/performance.md
// large tensor (32x64x112x112 float32, default mode): "rows" is NCHW (H*W elements per
// row, N*C rows), "channels_last" is NHWC (C innermost, H*W, then N). The kernels are
// called directly on halide_buffer_t; "library" is sdrop_forward through the C ABI on the
// same memory (validation, planning and ISA dispatch included). Reported: effective GB/s
// (2 * numel * 4 bytes, docs/performance.md) and, in the label, the time relative to the
// hand schedule measured in the same run.
#include <benchmark/benchmark.h>
#include <sdrop/sdrop.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "HalideRuntime.h"
#include "autosched_kernels.h"  // generated: every (schedule, shape) variant

namespace {

using Kernel = int (*)(halide_buffer_t*, uint64_t, uint64_t, int64_t, int64_t, int64_t,
                       int64_t, uint32_t, bool, bool, float, double, bool, bool,
                       halide_buffer_t*);

constexpr int64_t kN = 32, kC = 64, kHW = 112 * 112;
constexpr int64_t kNumel = kN * kC * kHW;

struct Buffers {
  std::vector<float> x, y;
  Buffers() : x(size_t(kNumel)), y(size_t(kNumel)) {
    for (int64_t i = 0; i < kNumel; i++) x[size_t(i)] = float(i % 1000) * 0.001f - 0.5f;
    std::memset(y.data(), 0, y.size() * sizeof(float));
  }
};

Buffers& buffers() {
  static Buffers b;
  return b;
}

// The canonical call of each shape: kernel dims (d0, d1, d2) and mask-index strides.
struct Canonical {
  int32_t extent[3], stride[3];
  int64_t ms[3];
};

Canonical canonical(const std::string& shape) {
  if (shape == "rows") {
    return {{int32_t(kHW), int32_t(kN * kC), 1}, {1, int32_t(kHW), int32_t(kNumel)}, {0, 1, 0}};
  }
  return {{int32_t(kC), int32_t(kHW), int32_t(kN)},
          {1, int32_t(kC), int32_t(kC * kHW)},
          {1, 0, kC}};
}

uint32_t threshold_for(double p) { return uint32_t(std::nearbyint((1.0 - p) * 4294967296.0)); }

void run_kernel(benchmark::State& st, Kernel k, const std::string& shape, double p) {
  Buffers& b = buffers();
  const Canonical c = canonical(shape);
  halide_dimension_t dx[3], dy[3];
  for (int d = 0; d < 3; d++) dx[d] = dy[d] = halide_dimension_t(0, c.extent[d], c.stride[d]);
  halide_buffer_t hx{}, hy{};
  hx.host = reinterpret_cast<uint8_t*>(b.x.data());
  hy.host = reinterpret_cast<uint8_t*>(b.y.data());
  hx.type = hy.type = halide_type_t(halide_type_float, 32);
  hx.dimensions = hy.dimensions = 3;
  hx.dim = dx;
  hy.dim = dy;
  const uint32_t t = threshold_for(p);
  const float s = float(1.0 / (1.0 - p));
  for (auto _ : st) {
    // skip_dropped as the library sets it for this exact-zero call of 103 MB.
    const int r = k(&hx, 1234, 0, 0, c.ms[0], c.ms[1], c.ms[2], t, false, false, s, 0.0,
                    /*serial=*/false, /*skip_dropped=*/true, &hy);
    if (r != 0) {
      st.SkipWithError(("kernel failed with Halide error " + std::to_string(r)).c_str());
      break;
    }
  }
}

void run_library(benchmark::State& st, const std::string& shape, double p) {
  Buffers& b = buffers();
  const bool cl = shape == "channels_last";
  int64_t nchw[4] = {kN, kC, 112, 112}, nhwc[4] = {kN, 112, 112, kC};
  int64_t* sh = cl ? nhwc : nchw;
  DLTensor x{b.x.data(), {kDLCPU, 0}, 4, {kDLFloat, 32, 1}, sh, nullptr, 0};
  DLTensor y{b.y.data(), {kDLCPU, 0}, 4, {kDLFloat, 32, 1}, sh, nullptr, 0};
  sdrop_params prm{p, 1234, 0, sdrop_spatial_axes(4, cl ? SDROP_CHANNELS_LAST : SDROP_CHANNELS_FIRST), 0};
  for (auto _ : st) {
    if (sdrop_forward(&prm, &x, &y) != SDROP_OK) {
      st.SkipWithError(sdrop_last_error());
      break;
    }
  }
}

void finish(benchmark::State& st) {
  st.SetBytesProcessed(int64_t(st.iterations()) * 2 * kNumel * int64_t(sizeof(float)));
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  if (const char* e = std::getenv("SDROP_BENCH_THREADS")) threads = std::atoi(e);
  std::vector<char*> args;
  for (int i = 0; i < argc; i++) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::atoi(argv[i] + 10);
    } else {
      args.push_back(argv[i]);
    }
  }
  sdrop_set_num_threads(threads < 0 ? 0 : threads);
  threads = sdrop_get_num_threads();
  halide_set_num_threads(threads);  // this binary's own Halide runtime, for the direct calls
  benchmark::AddCustomContext("sdrop_threads", std::to_string(threads));
  benchmark::AddCustomContext("cpu_isa", sdrop_cpu_isa_name(sdrop_get_cpu_isa()));

  for (double p : {0.1, 0.5, 0.9}) {
    char pn[16];
    std::snprintf(pn, sizeof pn, "%g", p);
    for (const char* shape : {"rows", "channels_last"}) {
      const std::string sh = shape;
#define SDROP_REGISTER(sched, kshape, fn)                                                    \
  if (sh == #kshape) {                                                                      \
    benchmark::RegisterBenchmark(("autosched/" + sh + "/" #sched "/p:" + pn).c_str(),       \
                                 [sh, p](benchmark::State& st) {                            \
                                   run_kernel(st, &fn, sh, p);                              \
                                   finish(st);                                              \
                                 })                                                         \
        ->UseRealTime()                                                                     \
        ->Unit(benchmark::kMillisecond);                                                    \
  }
      SDROP_FOR_EACH_AUTOSCHED_KERNEL(SDROP_REGISTER)
#undef SDROP_REGISTER
      benchmark::RegisterBenchmark(("autosched/" + sh + "/library/p:" + pn).c_str(),
                                   [sh, p](benchmark::State& st) {
                                     run_library(st, sh, p);
                                     finish(st);
                                   })
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  int n = int(args.size());
  benchmark::Initialize(&n, args.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
