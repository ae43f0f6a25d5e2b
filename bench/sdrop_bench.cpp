// sdrop_bench: sdrop against the memory-bound references of docs/performance.md and libtorch's
// dropout2d, all in one process and one run, on the same first-touched buffers and with the same
// thread count.
//
// Own flags (the rest goes to Google Benchmark, e.g. --benchmark_filter=...):
//   --full            the whole matrix (every size, layout, p, dtype, mode, place, direction)
//   --sweep           only the ladder of bench/tune.py's threshold sweep: f32 NCHW p = 0.5,
//                     default and multiply mode, out of place, from 1x16x8x8 to 32x64x128x128
//                     (4 KiB to 128 MiB of output), on 1 thread and on the default count
//                     instead of the ~5 minute report subset
//   --threads=N       threads for sdrop, the references and libtorch (default: env
//                     SDROP_BENCH_THREADS, else sdrop's default = all cores)
//   --reps=N          repetitions (default 5; medians are reported)
//   --min_time=S      seconds per repetition (default 0.2)
//   --warmup=S        warm-up seconds before the first repetition (default 0.1)
//   --thp             madvise(MADV_HUGEPAGE) on the buffers (default: the system's policy)
//   --no_torch        leave out the libtorch peer
//   --no_gpu          leave out the CUDA and OpenCL benchmarks: no GPU driver is even asked
//                     for a device (bench/run_report.sh passes it unless SDROP_BENCH_GPU=1
//                     or SDROP_BENCH_GPU=only)
//
// GPU benchmarks (gpu.h, gpu_cuda.cpp, gpu_opencl.cpp), registered when the binary was built
// with CUDA + cuDNN / OpenCL and a device answers (else one line on stderr says why):
//   sdrop_bench --benchmark_filter=^gpu/          every GPU benchmark, and only those
//   sdrop_bench --benchmark_filter=^gpu/cuda/     sdrop vs cudaMemcpy D2D and cuDNN dropout
//   sdrop_bench --benchmark_filter=^gpu/opencl/   sdrop vs an OpenCL copy kernel
//
// Benchmark names ("/"-separated, parsed by report.py):
//   sdrop/<fwd|bwd>/<dtype>/<nchw|nhwc>/<size>/p<p>/<zero|mul>/<oop|inplace|fresh>[/isa=<isa>]
//        [/threads=<n>][/verbose=<level>]     fresh: a new output allocation per call
//   torch/fwd/<dtype>/<nchw|nhwc>/<size>/p<p>/mul/<oop|inplace>
//   ref/<scale|scale_inplace|zero|memset|ntcopy|memcpy_1t>/<f32|f64|16bit>/<size>
//   epilogue/<fused|unfused|unfused_oop|torch|traffic>/f32/nchw/<size>/p0.5
//        (epilogue_bench.cpp: the fused channel epilogue against the unfused passes, libtorch
//        eager and its traffic limit)
//   epilogue_bwd/<fused|unfused>/f32/nchw/<size>/p0.5
//        (its backward: sdrop_epilogue_backward against autograd's unfused passes)
//   gpu/...: see gpu.h
// Bytes processed: 2 * numel * sizeof(dtype) for dropout and the scales and copies, numel *
// sizeof(dtype) for the zero fill, 3 * numel * 4 for every epilogue row (x, residual, y),
// 5 * numel * 4 for every epilogue_bwd row (x, residual, dy, dx, dresidual).
#include <benchmark/benchmark.h>
#include <sdrop/sdrop.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cases.h"
#include "common.h"
#include "epilogue.h"
#include "gpu.h"
#include "torch_peer.h"

namespace sdb {

namespace {
Config g_config;
}
const Config& config() { return g_config; }

namespace {

void apply_common(benchmark::internal::Benchmark* b) {
  const Config& cfg = config();
  b->UseRealTime()
      ->Unit(benchmark::kMicrosecond)
      ->MinTime(cfg.min_time)
      ->MinWarmUpTime(cfg.warmup)
      ->Repetitions(cfg.reps)
      ->ReportAggregatesOnly(true);
}

// ---- sdrop ------------------------------------------------------------------------------------
// Sends stderr to /dev/null while it lives: the verbose rows time the line being formatted and
// written, not a terminal scrolling.
class StderrToNull {
 public:
  StderrToNull() {
    std::fflush(stderr);
    saved_ = dup(2);
    const int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) {
      dup2(fd, 2);
      close(fd);
    }
  }
  ~StderrToNull() {
    std::fflush(stderr);
    if (saved_ >= 0) {
      dup2(saved_, 2);
      close(saved_);
    }
  }
  StderrToNull(const StderrToNull&) = delete;
  StderrToNull& operator=(const StderrToNull&) = delete;

 private:
  int saved_ = -1;
};

void bm_sdrop(benchmark::State& st, const Case& c) {
  const int64_t numel = c.numel();
  const size_t bytes = size_t(numel) * dtype_size(c.dtype);
  fill_input(c.dtype, numel);
  void* xdata = buf_a();
  void* ydata = buf_b();
  if (c.inplace) {
    copy_a_to_b(bytes);
    xdata = ydata;
  }
  CaseCall call(c, DLDevice{kDLCPU, 0}, xdata, ydata);
  sdrop_params& prm = call.prm;

  if (c.isa) {
    sdrop_status r = sdrop_set_max_cpu_isa(static_cast<sdrop_cpu_isa>(c.isa));
    if (r != SDROP_OK) {
      st.SkipWithError((std::string("sdrop_set_max_cpu_isa: ") + sdrop_last_error()).c_str());
      return;
    }
  }
  if (c.threads) sdrop_set_num_threads(c.threads);
  const std::string isa_used = sdrop_cpu_isa_name(sdrop_get_cpu_isa());
  const int threads_used = sdrop_get_num_threads();
  const size_t alloc_bytes = (bytes + 63) / 64 * 64;  // aligned_alloc wants a multiple
  {
    std::unique_ptr<StderrToNull> quiet;
    if (c.verbose) {
      quiet = std::make_unique<StderrToNull>();
      sdrop_set_verbose(c.verbose);
    }
    for (auto _ : st) {
      ++prm.offset;  // a new mask every call, as in training
      // fresh: a new output every call, allocated and first-touched as libtorch's is.
      void* out = c.fresh ? std::aligned_alloc(64, alloc_bytes) : nullptr;
      if (c.fresh) call.y.data = out;
      sdrop_status r = c.backward ? sdrop_backward(&prm, &call.x, &call.y)
                                  : sdrop_forward(&prm, &call.x, &call.y);
      benchmark::DoNotOptimize(call.y.data);
      benchmark::ClobberMemory();
      std::free(out);
      if (r != SDROP_OK) {
        if (c.verbose) sdrop_set_verbose(0);
        quiet.reset();
        st.SkipWithError((std::string(c.backward ? "sdrop_backward: " : "sdrop_forward: ") +
                          sdrop_status_name(r) + ": " + sdrop_last_error())
                             .c_str());
        break;
      }
    }
    if (c.verbose) sdrop_set_verbose(0);
  }
  if (c.isa) sdrop_set_max_cpu_isa(SDROP_CPU_ISA_ALL);
  if (c.threads) sdrop_set_num_threads(config().threads);
  st.SetBytesProcessed(int64_t(st.iterations()) * c.bytes_moved());
  st.SetLabel("isa=" + isa_used + " threads=" + std::to_string(threads_used));
}

// ---- references -------------------------------------------------------------------------------
enum class Ref { scale, scale_inplace, zero, memset, ntcopy, memcpy_1t };
const char* ref_name(Ref r) {
  switch (r) {
    case Ref::scale: return "scale";
    case Ref::scale_inplace: return "scale_inplace";
    case Ref::zero: return "zero";
    case Ref::memset: return "memset";
    case Ref::ntcopy: return "ntcopy";
    default: return "memcpy_1t";
  }
}
const char* width_name(int w) { return w == 8 ? "f64" : w == 4 ? "f32" : "16bit"; }

void bm_ref(benchmark::State& st, Ref r, const Size* size, int w) {
  const size_t bytes = size_t(size->numel()) * size_t(w);
  void* a = buf_a();
  void* b = buf_b();
  fill_input(w == 8 ? DType::f64 : DType::f32, int64_t(bytes / (w == 8 ? 8 : 4)));
  if (r == Ref::scale_inplace) copy_a_to_b(bytes);
  // q and 1/q alternate in place, so the data neither overflows nor turns denormal.
  const double q = 2.0;
  int64_t k = 0;
  for (auto _ : st) {
    switch (r) {
      case Ref::scale: ref_scale(b, a, bytes, w, q); break;
      case Ref::scale_inplace: ref_scale_inplace(b, bytes, w, (k++ & 1) ? 1.0 / q : q); break;
      case Ref::zero: ref_zero(b, bytes, w); break;
      case Ref::memset: ref_memset(b, bytes); break;
      case Ref::ntcopy: ref_ntcopy(b, a, bytes); break;
      case Ref::memcpy_1t: std::memcpy(b, a, bytes); break;
    }
    benchmark::DoNotOptimize(b);
    benchmark::ClobberMemory();
  }
  const int64_t moved = (r == Ref::zero || r == Ref::memset) ? int64_t(bytes) : 2 * int64_t(bytes);
  st.SetBytesProcessed(int64_t(st.iterations()) * moved);
  if (r == Ref::ntcopy)
    st.SetLabel(std::string("stream=") + ref_ntcopy_isa() +
                " threads=" + std::to_string(ref_threads(bytes)));
  else if (r == Ref::memcpy_1t) st.SetLabel("threads=1");
  else
    st.SetLabel(std::string("clone=") + ref_clone_isa() +
                " threads=" + std::to_string(ref_threads(bytes)));
}

// ---- registration -----------------------------------------------------------------------------
struct Registry {
  std::vector<std::string> seen;
  bool have(const std::string& n) {
    for (auto& s : seen)
      if (s == n) return true;
    seen.push_back(n);
    return false;
  }
};
Registry g_reg;

void add_ref(Ref r, const Size* s, int w) {
  std::string name = std::string("ref/") + ref_name(r) + "/" + width_name(w) + "/" + s->name;
  if (g_reg.have(name)) return;
  reserve_buffers(size_t(s->numel()) * size_t(w));
  apply_common(benchmark::RegisterBenchmark(
      name.c_str(), [r, s, w](benchmark::State& st) { bm_ref(st, r, s, w); }));
}

void add_refs(const Size* s, int w) {
  for (Ref r : {Ref::scale, Ref::scale_inplace, Ref::zero, Ref::memset, Ref::ntcopy,
                Ref::memcpy_1t})
    add_ref(r, s, w);
}

void add_sdrop(const Case& c) {
  std::string name = case_name("sdrop", c);
  if (g_reg.have(name)) return;
  reserve_buffers(size_t(c.numel()) * dtype_size(c.dtype));
  apply_common(benchmark::RegisterBenchmark(
      name.c_str(), [c](benchmark::State& st) { bm_sdrop(st, c); }));
}

void add_torch(Case c) {
  if (!config().torch) return;
  c.multiply = true;  // dropout2d computes x * (mask / (1 - p))
  c.backward = false;
  c.isa = 0;
  c.isa_name = nullptr;
  std::string why;
  if (!torch_supports(c.dtype, &why)) return;
  std::string name = case_name("torch", c);
  if (g_reg.have(name)) return;
  reserve_buffers(size_t(c.numel()) * dtype_size(c.dtype));
  apply_common(benchmark::RegisterBenchmark(
      name.c_str(), [c](benchmark::State& st) { bm_torch(st, c); }));
}

// The threshold sweep's ladder (bench/tune.py --thresholds): where one thread stops beating
// the pool, and where skipping the reads of dropped rows starts to pay. Each size twice: on one
// thread and on the default count; the runtime's own thresholds decide the rest, so the sweep
// builds it with them at 0 or past every size.
const std::vector<Size>& sweep_sizes() {
  // From the report's tiny size to past its large one, doubling one axis at a time, so that
  // the draws (N x C) grow with the bytes as they do in real layers: 4 KiB to 128 MiB of f32.
  static const std::vector<Size> sizes = {
      {"sweep4k", 1, 16, 8, 8},      {"sweep8k", 2, 16, 8, 8},       {"sweep16k", 2, 32, 8, 8},
      {"sweep32k", 4, 32, 8, 8},     {"sweep64k", 4, 64, 8, 8},      {"sweep128k", 8, 64, 8, 8},
      {"sweep256k", 8, 64, 16, 8},   {"sweep512k", 16, 64, 16, 8},   {"sweep1m", 16, 64, 16, 16},
      {"sweep2m", 32, 64, 16, 16},   {"sweep4m", 32, 64, 32, 16},    {"sweep8m", 32, 64, 32, 32},
      {"sweep16m", 32, 64, 64, 32},  {"sweep32m", 32, 64, 64, 64},   {"sweep64m", 32, 64, 128, 64},
      {"sweep128m", 32, 64, 128, 128}};
  return sizes;
}

void register_sweep() {
  for (const Size& size : sweep_sizes()) {
    for (bool mul : {false, true}) {
      for (int threads : {1, 0}) {
        if (threads == 1 && config().threads == 1) continue;
        Case c;
        c.size = &size;
        c.multiply = mul;
        c.threads = threads;
        add_sdrop(c);
      }
    }
  }
}

void register_all() {
  if (config().sweep) return register_sweep();
  const bool full = config().full;
  const double ps[3] = {0.1, 0.5, 0.9};
  const DType dtypes[4] = {DType::f32, DType::f16, DType::bf16, DType::f64};
  const Size* large = &kSizes[2];

  if (config().torch) {
    std::string skipped;
    for (DType d : dtypes) {
      std::string why;
      if (!torch_supports(d, &why)) {
        std::fprintf(stderr, "sdrop_bench: libtorch dropout2d on %s left out: %s\n",
                     dtype_name(d), why.c_str());
        skipped += std::string(skipped.empty() ? "" : "; ") + dtype_name(d) + ": " + why;
      }
    }
    if (!skipped.empty()) benchmark::AddCustomContext("torch_skipped", skipped);
  }

  for (const Size& size : kSizes) {
    const bool is_large = &size == large;
    // References for this size: f32 always; the other widths where their dtypes run.
    add_refs(&size, 4);
    if (full || is_large) {
      add_refs(&size, 2);
      add_refs(&size, 8);
    }
    for (DType d : dtypes) {
      for (bool nhwc : {false, true}) {
        for (double p : ps) {
          for (bool mul : {false, true}) {
            for (bool inplace : {false, true}) {
              for (bool bwd : {false, true}) {
                Case c;
                c.size = &size;
                c.dtype = d;
                c.nhwc = nhwc;
                c.p = p;
                c.multiply = mul;
                c.inplace = inplace;
                c.backward = bwd;
                bool take = full;
                if (!take && !bwd && d == DType::f32) take = true;  // f32 forward: everything
                if (!take && !bwd && is_large && !nhwc && p == 0.5)  // other dtypes: large
                  take = true;
                if (!take && bwd && d == DType::f32 && is_large && !nhwc &&
                    (!inplace || p == 0.5))  // backward: large NCHW f32
                  take = true;
                if (take) add_sdrop(c);
              }
            }
          }
        }
      }
    }
    // Every CPU ISA variant up to the host's, forced, on the large f32 NCHW p = 0.5 case.
    if (is_large) {
      const int host = sdrop_get_host_cpu_isa();
      for (int isa : {int(SDROP_CPU_ISA_SSE41), int(SDROP_CPU_ISA_AVX2),
                      int(SDROP_CPU_ISA_AVX512)}) {
        if (isa > host) continue;
        for (bool mul : {false, true}) {
          Case c;
          c.size = &size;
          c.p = 0.5;
          c.multiply = mul;
          c.isa = isa;
          c.isa_name = sdrop_cpu_isa_name(static_cast<sdrop_cpu_isa>(isa));
          add_sdrop(c);
        }
      }
    }
    // Like for like with libtorch, which allocates (and so first-touches) its output on every
    // call: sdrop into a fresh allocation per call, f32 NCHW default mode.
    for (double p : ps) {
      if (!full && !is_large && p != 0.5) continue;
      Case c;
      c.size = &size;
      c.p = p;
      c.fresh = true;
      add_sdrop(c);
    }
    // One thread beside the default count where the data fits in cache: the parallel schedule
    // must never be slower than a single thread.
    if (std::strcmp(size.name, "cache") == 0 && config().threads > 1) {
      for (int k = 0; k < 3; k++) {
        Case c;
        c.size = &size;
        c.multiply = k == 1;
        c.inplace = k == 2;
        c.threads = 1;
        add_sdrop(c);
      }
    }
    // What SDROP_VERBOSE=1 costs a tiny call when on (off is every other row).
    if (std::strcmp(size.name, "tiny") == 0) {
      Case c;
      c.size = &size;
      c.verbose = 1;
      add_sdrop(c);
    }
    // libtorch dropout2d: out of place, in place, channels-first and channels-last input.
    for (DType d : dtypes) {
      for (bool nhwc : {false, true}) {
        for (double p : ps) {
          for (bool inplace : {false, true}) {
            Case c;
            c.size = &size;
            c.dtype = d;
            c.nhwc = nhwc;
            c.p = p;
            c.inplace = inplace;
            bool take = full || d == DType::f32 || (is_large && !nhwc && p == 0.5);
            if (take) add_torch(c);
          }
        }
      }
    }
  }
  // The fused channel epilogue (every size, f32 NCHW p = 0.5, 2 threads): epilogue_bench.cpp.
  register_epilogue(apply_common);
}

bool flag_value(const char* arg, const char* name, const char** value) {
  size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0) return false;
  if (arg[n] == '=') {
    *value = arg + n + 1;
    return true;
  }
  if (arg[n] == '\0') {
    *value = nullptr;
    return true;
  }
  return false;
}

double to_double(const char* flag, const char* v) {
  char* end = nullptr;
  double d = v ? std::strtod(v, &end) : 0.0;
  if (!v || end == v || *end) {
    std::fprintf(stderr, "sdrop_bench: %s needs a number, got '%s'\n", flag, v ? v : "");
    std::exit(2);
  }
  return d;
}

}  // namespace
}  // namespace sdb

int main(int argc, char** argv) {
  using namespace sdb;
  Config& cfg = g_config;
  int threads = 0;
  if (const char* e = std::getenv("SDROP_BENCH_THREADS")) threads = int(to_double("SDROP_BENCH_THREADS", e));
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    const char* v = nullptr;
    if (flag_value(argv[i], "--full", &v)) cfg.full = true;
    else if (flag_value(argv[i], "--sweep", &v)) cfg.sweep = true;
    else if (flag_value(argv[i], "--thp", &v)) cfg.thp = true;
    else if (flag_value(argv[i], "--no_torch", &v)) cfg.torch = false;
    else if (flag_value(argv[i], "--no_gpu", &v)) cfg.gpu = false;
    else if (flag_value(argv[i], "--threads", &v)) threads = int(to_double("--threads", v));
    else if (flag_value(argv[i], "--reps", &v)) cfg.reps = int(to_double("--reps", v));
    else if (flag_value(argv[i], "--min_time", &v)) cfg.min_time = to_double("--min_time", v);
    else if (flag_value(argv[i], "--warmup", &v)) cfg.warmup = to_double("--warmup", v);
    else rest.push_back(argv[i]);
  }
  if (cfg.reps < 1) cfg.reps = 1;

  // One thread count for everything: sdrop's (its default is all cores), then the same for the
  // references' pool and for libtorch.
  sdrop_set_num_threads(threads < 0 ? 0 : threads);
  cfg.threads = sdrop_get_num_threads();
  if (!kHaveTorch) cfg.torch = false;
  if (cfg.torch) torch_init(cfg.threads);

  benchmark::AddCustomContext("sdrop_version", sdrop_version());
  benchmark::AddCustomContext("sdrop_threads", std::to_string(cfg.threads));
  benchmark::AddCustomContext("sdrop_host_isa", sdrop_cpu_isa_name(sdrop_get_host_cpu_isa()));
  benchmark::AddCustomContext("sdrop_isa", sdrop_cpu_isa_name(sdrop_get_cpu_isa()));
  benchmark::AddCustomContext("bench_set", cfg.full ? "full" : "report");
  benchmark::AddCustomContext("bench_repetitions", std::to_string(cfg.reps));
  benchmark::AddCustomContext("bench_min_time_s", std::to_string(cfg.min_time));
  benchmark::AddCustomContext("bench_warmup_s", std::to_string(cfg.warmup));
  benchmark::AddCustomContext("bench_thp", cfg.thp ? "madvise" : "system default");
  benchmark::AddCustomContext("ref_clone_isa", ref_clone_isa());
  benchmark::AddCustomContext("ref_ntcopy_isa", ref_ntcopy_isa());
  benchmark::AddCustomContext("torch_version", cfg.torch ? torch_version() : "not built/disabled");
  if (cfg.torch) benchmark::AddCustomContext("torch_threads", std::to_string(torch_threads()));
  // The names carry only a size's name: its N x C x H x W shape is here, for report.py
  // ("tiny=1x16x8x8,cache=...", in the order registered).
  std::string sizes;
  std::vector<Size> named(kSizes, kSizes + 3);
  if (cfg.sweep) named = sweep_sizes();
  for (const Size& s : named) {
    if (!sizes.empty()) sizes += ",";
    sizes += std::string(s.name) + "=" + std::to_string(s.n) + "x" + std::to_string(s.c) + "x" +
             std::to_string(s.h) + "x" + std::to_string(s.w);
  }
  benchmark::AddCustomContext("bench_sizes", sizes);

  register_all();
  if (cfg.gpu && !cfg.sweep) {
    register_cuda();
    register_opencl();
  } else {
    benchmark::AddCustomContext("cuda", "skipped (--no_gpu)");
    benchmark::AddCustomContext("opencl", "skipped (--no_gpu)");
  }

  int rargc = int(rest.size());
  rest.push_back(nullptr);
  benchmark::Initialize(&rargc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rargc, rest.data())) return 2;
  std::fprintf(stderr, "sdrop_bench: sdrop %s, %d threads, %s set, %d reps x %.2f s\n",
               sdrop_version(), cfg.threads, cfg.full ? "full" : "report", cfg.reps,
               cfg.min_time);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
