// The references (docs/performance.md#references), run on the benchmark pool over
// first-touched buffers: STREAM-style scale out of place and in place, a zero fill of the output
// and a non-temporal-store copy. Compiled with -O3 (see CMakeLists.txt); the loops are cloned for
// AVX-512 / AVX2 / baseline with target_clones and the best one is picked at load time (ifunc),
// the streaming copy dispatches on __builtin_cpu_supports("avx").
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "common.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SDB_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#elif defined(__clang__) && defined(__x86_64__)
#define SDB_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SDB_CLONES
#endif

namespace sdb {
namespace kern {

SDB_CLONES void scale_f32(float* __restrict b, const float* __restrict c, float q, size_t n) {
  for (size_t i = 0; i < n; ++i) b[i] = q * c[i];
}
SDB_CLONES void scale_f64(double* __restrict b, const double* __restrict c, double q, size_t n) {
  for (size_t i = 0; i < n; ++i) b[i] = q * c[i];
}
SDB_CLONES void scale_inplace_f32(float* __restrict b, float q, size_t n) {
  for (size_t i = 0; i < n; ++i) b[i] = q * b[i];
}
SDB_CLONES void scale_inplace_f64(double* __restrict b, double q, size_t n) {
  for (size_t i = 0; i < n; ++i) b[i] = q * b[i];
}
// Plain vector stores (the file is compiled with -fno-tree-loop-distribute-patterns, so this
// stays a store loop like the one a kernel writes, not a call to memset).
SDB_CLONES void zero_f32(float* __restrict b, size_t n) {
  for (size_t i = 0; i < n; ++i) b[i] = 0.0f;
}
SDB_CLONES void zero_f64(double* __restrict b, size_t n) {
  for (size_t i = 0; i < n; ++i) b[i] = 0.0;
}

__attribute__((target("avx"))) void ntcopy_avx(float* dst, const float* src, size_t n) {
  size_t i = 0;
  for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & 31); ++i) dst[i] = src[i];
  for (; i + 32 <= n; i += 32) {
    __m256 v0 = _mm256_loadu_ps(src + i), v1 = _mm256_loadu_ps(src + i + 8);
    __m256 v2 = _mm256_loadu_ps(src + i + 16), v3 = _mm256_loadu_ps(src + i + 24);
    _mm256_stream_ps(dst + i, v0);
    _mm256_stream_ps(dst + i + 8, v1);
    _mm256_stream_ps(dst + i + 16, v2);
    _mm256_stream_ps(dst + i + 24, v3);
  }
  for (; i + 8 <= n; i += 8) _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
  _mm_sfence();
}

void ntcopy_sse2(float* dst, const float* src, size_t n) {
  size_t i = 0;
  for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & 15); ++i) dst[i] = src[i];
  for (; i + 16 <= n; i += 16) {
    __m128 v0 = _mm_loadu_ps(src + i), v1 = _mm_loadu_ps(src + i + 4);
    __m128 v2 = _mm_loadu_ps(src + i + 8), v3 = _mm_loadu_ps(src + i + 12);
    _mm_stream_ps(dst + i, v0);
    _mm_stream_ps(dst + i + 4, v1);
    _mm_stream_ps(dst + i + 8, v2);
    _mm_stream_ps(dst + i + 12, v3);
  }
  for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
  _mm_sfence();
}

bool have_avx() {
  static const bool v = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") != 0;
  }();
  return v;
}

}  // namespace kern

int ref_threads(size_t bytes) {
  size_t nt = bytes / kRefGrainBytes;
  if (nt < 1) nt = 1;
  if (nt > size_t(pool().size())) nt = size_t(pool().size());
  return int(nt);
}

// Splits n elements of w bytes into per-thread ranges on 64-byte boundaries, at least
// kRefGrainBytes each, and runs body(b, e) there.
template <class Body>
static void par(size_t n, int w, Body&& body) {
  const size_t align = 64 / size_t(w);
  pool().run(
      [&](int t, int nt) {
        size_t b, e;
        chunk(n, t, nt, align, &b, &e);
        if (e > b) body(b, e);
      },
      ref_threads(n * size_t(w)));
}

void ref_scale(void* b, const void* c, size_t bytes, int w, double q) {
  if (w == 8) {
    auto* B = static_cast<double*>(b);
    auto* C = static_cast<const double*>(c);
    par(bytes / 8, 8, [&](size_t i, size_t e) { kern::scale_f64(B + i, C + i, q, e - i); });
  } else {
    auto* B = static_cast<float*>(b);
    auto* C = static_cast<const float*>(c);
    const float qf = float(q);
    par(bytes / 4, 4, [&](size_t i, size_t e) { kern::scale_f32(B + i, C + i, qf, e - i); });
  }
}

void ref_scale_inplace(void* b, size_t bytes, int w, double q) {
  if (w == 8) {
    auto* B = static_cast<double*>(b);
    par(bytes / 8, 8, [&](size_t i, size_t e) { kern::scale_inplace_f64(B + i, q, e - i); });
  } else {
    auto* B = static_cast<float*>(b);
    const float qf = float(q);
    par(bytes / 4, 4, [&](size_t i, size_t e) { kern::scale_inplace_f32(B + i, qf, e - i); });
  }
}

void ref_zero(void* b, size_t bytes, int w) {
  if (w == 8) {
    auto* B = static_cast<double*>(b);
    par(bytes / 8, 8, [&](size_t i, size_t e) { kern::zero_f64(B + i, e - i); });
  } else {
    auto* B = static_cast<float*>(b);
    par(bytes / 4, 4, [&](size_t i, size_t e) { kern::zero_f32(B + i, e - i); });
  }
}

// glibc picks its own stores: above its non-temporal threshold they bypass the cache and skip
// the read-for-ownership that a store loop pays, which is what the dropped part of a large
// output could cost at best.
void ref_memset(void* b, size_t bytes) {
  auto* B = static_cast<unsigned char*>(b);
  par(bytes, 1, [&](size_t i, size_t e) { std::memset(B + i, 0, e - i); });
}

void ref_ntcopy(void* b, const void* c, size_t bytes) {
  auto* B = static_cast<float*>(b);
  auto* C = static_cast<const float*>(c);
  const bool avx = kern::have_avx();
  par(bytes / 4, 4, [&](size_t i, size_t e) {
    if (avx) kern::ntcopy_avx(B + i, C + i, e - i);
    else kern::ntcopy_sse2(B + i, C + i, e - i);
  });
}

const char* ref_ntcopy_isa() { return kern::have_avx() ? "avx" : "sse2"; }

const char* ref_clone_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "default";
}

}  // namespace sdb
