// What the GPU benchmarks share (gpu.h): device buffers, sdrop_forward on them, the untimed
// first call, the timed loop and registration. The backends' files supply the primitives
// (allocation, copies, their queue / stream, the timing of one iteration) and their peers.
#include "gpu.h"

#include <cstdio>
#include <utility>

#include "cases.h"

namespace sdb {
namespace {

// Runs enqueue() once per iteration through the backend's timing; false (after SkipWithError)
// on a failure.
bool timed_loop(benchmark::State& st, GpuBackend& b, const Enqueue& enqueue) {
  const bool manual = b.manual_time();
  for (auto _ : st) {
    double seconds = 0.0;
    const std::string err = b.timed(enqueue, &seconds);
    if (!err.empty()) {
      st.SkipWithError(err.c_str());
      return false;
    }
    if (manual) st.SetIterationTime(seconds);
  }
  return true;
}

// Google Benchmark settings of the GPU benchmarks: the CPU ones' repetitions, times and
// warm-up; manual_time: the loop reports its own iteration times (device events).
void apply_gpu(benchmark::internal::Benchmark* bm, bool manual_time) {
  const Config& cfg = config();
  if (manual_time) bm->UseManualTime();
  else bm->UseRealTime();
  bm->Unit(benchmark::kMicrosecond)
      ->MinTime(cfg.min_time)
      ->MinWarmUpTime(cfg.warmup)
      ->Repetitions(cfg.reps)
      ->ReportAggregatesOnly(true);
}

// sdrop_forward on the case's tensors (cases.h: on OpenCL, data is the cl_mem); a new mask every
// call (offset + 1), as in training.
void bm_sdrop(benchmark::State& st, GpuBackend& b, const Case& c) {
  void* in = nullptr;
  void* out = nullptr;
  if (!check(st, b.input(c.dtype, &in)) || !check(st, b.output(&out))) return;
  void* xdata = in;
  if (c.inplace) {
    if (!check(st, b.copy(out, in, size_t(c.numel()) * dtype_size(c.dtype)))) return;
    xdata = out;
  }
  CaseCall a(c, b.device(), xdata, out);
  if (!check(st, b.use_queue())) return;
  const Enqueue call = [&]() -> std::string {
    ++a.prm.offset;
    const sdrop_status r = sdrop_forward(&a.prm, &a.x, &a.y);
    if (r != SDROP_OK)
      return std::string("sdrop_forward: ") + sdrop_status_name(r) + ": " + sdrop_last_error();
    return "";
  };
  run_timed(st, b, call, c.bytes_moved());
}

}  // namespace

void GpuBackend::reserve(DType d, int64_t numel) {
  if (numel > in_numel_[int(d)]) in_numel_[int(d)] = numel;
  const size_t bytes = size_t(numel) * dtype_size(d);
  if (bytes > out_bytes_) out_bytes_ = bytes;
}

std::string GpuBackend::input(DType d, void** buf) {
  const int k = int(d);
  if (!in_[k]) {
    const int64_t n = in_numel_[k];
    const size_t bytes = size_t(n) * dtype_size(d);
    std::vector<unsigned char> host(bytes);
    fill_pattern(d, host.data(), n);
    void* b = nullptr;
    std::string err = alloc(bytes, &b);
    if (err.empty()) err = upload(b, host.data(), bytes);
    if (!err.empty()) return err;
    in_[k] = b;
  }
  *buf = in_[k];
  return "";
}

std::string GpuBackend::output(void** buf) {
  if (!out_) {
    std::string err = alloc(out_bytes_, &out_);
    if (!err.empty()) return err;
  }
  *buf = out_;
  return "";
}

bool check(benchmark::State& st, const std::string& err) {
  if (err.empty()) return true;
  st.SkipWithError(err.c_str());
  return false;
}

void run_timed(benchmark::State& st, GpuBackend& b, const Enqueue& enqueue, int64_t bytes,
               const char* label) {
  if (!check(st, enqueue()) || !check(st, b.sync())) return;
  if (!timed_loop(st, b, enqueue)) return;
  st.SetBytesProcessed(int64_t(st.iterations()) * bytes);
  if (label) st.SetLabel(label);
}

bool GpuRegistry::add(const std::string& name, std::function<void(benchmark::State&)> fn) {
  for (const std::string& s : seen_)
    if (s == name) return false;
  seen_.push_back(name);
  apply_gpu(benchmark::RegisterBenchmark(name.c_str(), std::move(fn)), b_.manual_time());
  return true;
}

void GpuRegistry::add_sdrop(const Case& c) {
  b_.reserve(c.dtype, c.numel());
  GpuBackend* b = &b_;
  add(case_name((std::string("gpu/") + b_.name() + "/sdrop").c_str(), c),
      [b, c](benchmark::State& st) { bm_sdrop(st, *b, c); });
}

void report_no_device(const char* key, const char* api, const std::string& why) {
  std::fprintf(stderr, "%s: no device (%s), %s benchmarks skipped\n", key, why.c_str(), api);
  benchmark::AddCustomContext(key, "no device (" + why + ")");
}

}  // namespace sdb
