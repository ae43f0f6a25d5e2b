// Shared pieces of sdrop_bench: configuration, the thread pool that runs the references and
// first-touches memory, the benchmark cases and the buffers they all use. Deliberately free of
// sdrop.h and torch headers, so each translation unit includes only what it needs.
#ifndef SDROP_BENCH_COMMON_H_
#define SDROP_BENCH_COMMON_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "common/kernel_kinds.h"

namespace sdb {

struct Config {
  int threads = 0;         // the count actually used by sdrop, the references and libtorch
  bool full = false;       // the whole matrix (docs/performance.md#sizes), not the report subset
  bool sweep = false;      // only the size ladder of the threshold sweep (bench/tune.py)
  int reps = 5;            // repetitions; medians are reported
  double min_time = 0.2;   // seconds per repetition
  double warmup = 0.1;     // seconds of warm-up before the first repetition
  bool thp = false;        // madvise(MADV_HUGEPAGE) on the benchmark buffers
  bool torch = true;       // libtorch peer benchmarks (when built with libtorch)
  bool gpu = true;         // CUDA / OpenCL benchmarks (when built and a device exists)
};
const Config& config();

// ---- a small fork-join pool: the caller is thread 0, workers spin briefly, then block ------
class Pool {
 public:
  explicit Pool(int nthreads);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  int size() const { return n_; }
  // Runs f(tid, nt) for tid in [0, nt) on the first nt threads of the pool (nt = size() by
  // default, clamped to [1, size()]) and returns when all are done.
  template <class F>
  void run(F&& f, int nt = 0) {
    using Fn = std::remove_reference_t<F>;
    run_raw([](void* c, int t, int n) { (*static_cast<Fn*>(c))(t, n); },
            const_cast<void*>(static_cast<const void*>(&f)), nt);
  }

 private:
  void run_raw(void (*fn)(void*, int, int), void* ctx, int nt);
  void worker(int tid);
  int n_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> pending_{0};
  void (*fn_)(void*, int, int) = nullptr;
  void* ctx_ = nullptr;
  int nt_ = 1;
  std::atomic<bool> stop_{false};
};
Pool& pool();  // config().threads threads

// [begin, end) of thread t's share of n items, boundaries multiples of `align` items.
inline void chunk(size_t n, int t, int nt, size_t align, size_t* b, size_t* e) {
  auto at = [&](int k) -> size_t {
    if (k <= 0) return 0;
    if (k >= nt) return n;
    size_t v = (size_t)((unsigned __int128)n * (unsigned)k / (unsigned)nt);
    return v / align * align;
  };
  *b = at(t);
  *e = at(t + 1);
}

// ---- cases ---------------------------------------------------------------------------------
using sdrop::DType;  // common/kernel_kinds.h
inline int dtype_size(DType d) { return d == DType::f64 ? 8 : d == DType::f32 ? 4 : 2; }
inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    default: return "f64";
  }
}

struct Size {
  const char* name;
  int64_t n, c, h, w;
  int64_t numel() const { return n * c * h * w; }
};
extern const Size kSizes[3];  // tiny 1x16x8x8, cache 32x64x16x16, large 32x64x112x112

struct Case {
  const Size* size = nullptr;
  DType dtype = DType::f32;
  bool nhwc = false;      // channels last: memory [N,H,W,C]
  double p = 0.5;
  bool multiply = false;  // SDROP_FLAG_MULTIPLY (libtorch always multiplies)
  bool inplace = false;
  bool backward = false;
  int isa = 0;            // 0: not forced; else an sdrop_cpu_isa value to cap at
  const char* isa_name = nullptr;
  bool fresh = false;     // out of place into a new allocation per call, as libtorch does
  int threads = 0;        // 0: config().threads; else sdrop's thread count for this case
  int verbose = 0;        // SDROP_VERBOSE level during the case (its lines go to /dev/null)
  int64_t numel() const { return size->numel(); }
  int64_t bytes_moved() const { return 2 * numel() * dtype_size(dtype); }
};
// "<impl>/<op>/<dtype>/<layout>/<size>/p<p>/<mode>/<oop|inplace|fresh>[/isa=<name>]
//  [/threads=<n>][/verbose=<level>]"
std::string case_name(const char* impl, const Case& c);

// ---- buffers ----------------------------------------------------------------------------------
// Two buffers shared by every benchmark, allocated once at the largest size registered and
// first-touched in parallel by the pool: A is the input (never written by a timed loop), B the
// output and the in-place operand.
void reserve_buffers(size_t bytes);  // at registration
void* buf_a();
void* buf_b();
// Makes A hold numel well-defined values of dtype (1 + (i % 1000)/1000): skipped if it does.
void fill_input(DType d, int64_t numel);
// Writes those values to any host buffer of numel elements of dtype (in parallel): the GPU
// benchmarks stage their device inputs through it.
void fill_pattern(DType d, void* dst, int64_t numel);
// B[0:bytes) = A[0:bytes), in parallel (outside timed loops: the in-place operand).
void copy_a_to_b(size_t bytes);

// ---- references (refs.cpp) --------------------------------------------------------------------
// The references use the benchmark's thread count, but no more than one thread per
// kRefGrainBytes of output (as libtorch's grain of 32768 elements): forking threads for a 4 KiB
// tensor would make the "limit" slower than a plain loop.
constexpr size_t kRefGrainBytes = 128 * 1024;
int ref_threads(size_t output_bytes);
// Element width w in bytes: 4 (float), 8 (double); 2 runs the float kernels over the same bytes.
void ref_scale(void* b, const void* c, size_t bytes, int w, double q);  // b = q * c
void ref_scale_inplace(void* b, size_t bytes, int w, double q);         // b = q * b
void ref_zero(void* b, size_t bytes, int w);                            // b = 0
void ref_memset(void* b, size_t bytes);  // b = 0 by glibc's memset (no read-for-ownership)
void ref_ntcopy(void* b, const void* c, size_t bytes);                  // streaming stores
const char* ref_ntcopy_isa();                                           // "avx" or "sse2"
const char* ref_clone_isa();  // which target_clones variant the scale kernel resolves to

// The fused epilogue's C passes (epilogue_bench.cpp), f32, over a compact [rows = N*C, hw]
// tensor (channel of row r: r % c), with the references' parallel loop on at most `threads`
// threads (and the grain above). relu(t) = t if t > 0, NaN if NaN, else +0.0.
struct EpiShape {
  size_t rows, hw, c;
};
// t = relu(x + bias[channel])
void ref_bias_relu(float* t, const float* x, const float* bias, const EpiShape& s, int threads);
// y = relu(r + t)
void ref_add_relu(float* y, const float* r, const float* t, const EpiShape& s, int threads);
// The traffic limit of y = relu(r + dropout(relu(x + bias))): kept rows (epi_kept_row) read x
// and r, dropped rows read r only, every row writes y: the fewest bytes the chain can move.
void ref_epilogue_traffic(float* y, const float* x, const float* bias, const float* r,
                          const EpiShape& s, double p, int threads);
bool epi_kept_row(size_t row, double p);  // (1 - p) of the rows, evenly spread
// The unfused backward's passes: d = stored <= 0 ? +0.0 : g (a ReLU's gradient from its stored
// output: it passes where that is > 0 or NaN)
void ref_relu_grad(float* d, const float* stored, const float* g, const EpiShape& s, int threads);
// dbias[ch] = the sum of d over n, h, w, in float (parallel over channels; each row of hw summed
// in 8 lanes and the row sums added in n order: the runtime's order, docs/epilogue.md#backward)
void ref_channel_sum(float* dbias, const float* d, const EpiShape& s, int threads);

// A buffer of at least `bytes`, 2 MiB aligned, first-touched in parallel by the pool with the
// partition the references use (as the shared buffers A and B are). Never freed.
void* alloc_first_touched(size_t bytes);

}  // namespace sdb

#endif  // SDROP_BENCH_COMMON_H_
