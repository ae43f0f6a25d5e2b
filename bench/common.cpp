#include "common.h"

#include <immintrin.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sdb {

const Size kSizes[3] = {{"tiny", 1, 16, 8, 8},
                        {"cache", 32, 64, 16, 16},
                        {"large", 32, 64, 112, 112}};

// ---- pool -------------------------------------------------------------------------------------
Pool::Pool(int nthreads) : n_(nthreads < 1 ? 1 : nthreads) {
  for (int t = 1; t < n_; ++t) threads_.emplace_back([this, t] { worker(t); });
}

Pool::~Pool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true, std::memory_order_relaxed);
    gen_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  for (auto& th : threads_) th.join();
}

void Pool::run_raw(void (*fn)(void*, int, int), void* ctx, int nt) {
  if (nt <= 0 || nt > n_) nt = n_;
  if (nt == 1) {
    fn(ctx, 0, 1);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  nt_ = nt;
  pending_.store(n_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(mu_);
    gen_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  fn(ctx, 0, nt);
  // Spin briefly, then yield: on a loaded machine a spinning caller would keep a descheduled
  // worker off the core it needs.
  for (unsigned k = 0; pending_.load(std::memory_order_acquire) != 0; ++k) {
    if (k < 2000) _mm_pause();
    else std::this_thread::yield();
  }
}

void Pool::worker(int tid) {
  uint64_t seen = 0;
  for (;;) {
    // Spin up to ~100 us for the next job (back-to-back iterations), then sleep, so that an
    // idle pool never takes a core from the sdrop or libtorch benchmarks that follow.
    auto t0 = std::chrono::steady_clock::now();
    for (unsigned k = 1; gen_.load(std::memory_order_acquire) == seen; ++k) {
      _mm_pause();
      if ((k & 255) == 0 &&
          std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(100)) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return gen_.load(std::memory_order_acquire) != seen; });
      }
    }
    seen = gen_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_relaxed)) return;
    if (tid < nt_) fn_(ctx_, tid, nt_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

Pool& pool() {
  static Pool p(config().threads);
  return p;
}

// ---- names ------------------------------------------------------------------------------------
std::string case_name(const char* impl, const Case& c) {
  char pbuf[32];
  std::snprintf(pbuf, sizeof pbuf, "p%g", c.p);
  std::string s = impl;
  s += c.backward ? "/bwd/" : "/fwd/";
  s += dtype_name(c.dtype);
  s += c.nhwc ? "/nhwc/" : "/nchw/";
  s += c.size->name;
  s += "/";
  s += pbuf;
  s += c.multiply ? "/mul" : "/zero";
  s += c.inplace ? "/inplace" : c.fresh ? "/fresh" : "/oop";
  if (c.isa_name) {
    s += "/isa=";
    s += c.isa_name;
  }
  if (c.threads) s += "/threads=" + std::to_string(c.threads);
  if (c.verbose) s += "/verbose=" + std::to_string(c.verbose);
  return s;
}

// ---- buffers ----------------------------------------------------------------------------------
namespace {
size_t g_reserved = 0;
void* g_a = nullptr;
void* g_b = nullptr;
int g_filled_dtype = -1;
int64_t g_filled_numel = 0;

void* alloc_touched(size_t bytes) {
  const size_t align = size_t(2) << 20;  // 2 MiB: lets transparent huge pages apply if asked
  size_t rounded = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded);
  if (!p) {
    std::fprintf(stderr, "sdrop_bench: cannot allocate %zu bytes\n", rounded);
    std::abort();
  }
  if (config().thp) madvise(p, rounded, MADV_HUGEPAGE);
  // Parallel first touch with the partition the references use.
  pool().run([&](int t, int nt) {
    size_t b, e;
    chunk(rounded, t, nt, 4096, &b, &e);
    std::memset(static_cast<char*>(p) + b, 0, e - b);
  });
  return p;
}

void ensure_buffers() {
  if (g_a) return;
  size_t bytes = g_reserved ? g_reserved : 4096;
  g_a = alloc_touched(bytes);
  g_b = alloc_touched(bytes);
}

uint16_t f32_to_f16(float f) {  // round to nearest even; normal values only (all we use)
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = int32_t((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = x & 0x7fffffu;
  uint32_t h = sign | (uint32_t(exp) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return uint16_t(h);
}

uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
}  // namespace

void* alloc_first_touched(size_t bytes) { return alloc_touched(bytes); }

void reserve_buffers(size_t bytes) {
  if (bytes > g_reserved) g_reserved = bytes;
}

void* buf_a() {
  ensure_buffers();
  return g_a;
}
void* buf_b() {
  ensure_buffers();
  return g_b;
}

void fill_pattern(DType d, void* dst, int64_t numel) {
  static uint16_t h16[1000], b16[1000];
  static float f32[1000];
  static const bool tables = [] {
    for (int i = 0; i < 1000; ++i) {
      f32[i] = 1.0f + float(i) * 0.001f;
      h16[i] = f32_to_f16(f32[i]);
      b16[i] = f32_to_bf16(f32[i]);
    }
    return true;
  }();
  (void)tables;
  pool().run([&](int t, int nt) {
    size_t b, e;
    chunk(size_t(numel), t, nt, 64, &b, &e);
    for (size_t i = b; i < e; ++i) {
      int k = int(i % 1000);
      switch (d) {
        case DType::f32: static_cast<float*>(dst)[i] = f32[k]; break;
        case DType::f64: static_cast<double*>(dst)[i] = 1.0 + k * 0.001; break;
        case DType::f16: static_cast<uint16_t*>(dst)[i] = h16[k]; break;
        case DType::bf16: static_cast<uint16_t*>(dst)[i] = b16[k]; break;
        case DType::u8: break;  // never an input
      }
    }
  });
}

void fill_input(DType d, int64_t numel) {
  ensure_buffers();
  if (g_filled_dtype == int(d) && g_filled_numel >= numel) return;
  if (size_t(numel) * dtype_size(d) > g_reserved) {
    std::fprintf(stderr, "sdrop_bench: buffer too small for %lld elements\n", (long long)numel);
    std::abort();
  }
  fill_pattern(d, g_a, numel);
  g_filled_dtype = int(d);
  g_filled_numel = numel;
}

void copy_a_to_b(size_t bytes) {
  ensure_buffers();
  char* a = static_cast<char*>(g_a);
  char* b = static_cast<char*>(g_b);
  pool().run([&](int t, int nt) {
    size_t lo, hi;
    chunk(bytes, t, nt, 64, &lo, &hi);
    std::memcpy(b + lo, a + lo, hi - lo);
  });
}

}  // namespace sdb
