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

// The fused epilogue's passes (epilogue_bench.cpp), with relu(t) = t if t > 0, NaN if NaN,
// else +0.0 (docs/epilogue.md): `v <= 0 ? 0 : v` is exactly that, and a vector select.
SDB_CLONES void bias_relu_f32(float* __restrict t, const float* __restrict x, float b, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float v = x[i] + b;
    t[i] = v <= 0.0f ? 0.0f : v;
  }
}
SDB_CLONES void add_relu_f32(float* __restrict y, const float* __restrict r,
                             const float* __restrict t, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float v = r[i] + t[i];
    y[i] = v <= 0.0f ? 0.0f : v;
  }
}
// The whole chain on a kept row (reads x and r, writes y) and on a dropped one (reads r only).
SDB_CLONES void epi_kept_f32(float* __restrict y, const float* __restrict x,
                             const float* __restrict r, float b, float s, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    float a = x[i] + b;
    a = a <= 0.0f ? 0.0f : a;
    const float v = r[i] + a * s;
    y[i] = v <= 0.0f ? 0.0f : v;
  }
}
SDB_CLONES void epi_dropped_f32(float* __restrict y, const float* __restrict r, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float v = r[i] + 0.0f;
    y[i] = v <= 0.0f ? 0.0f : v;
  }
}

// The unfused backward's passes (epilogue_bench.cpp). A ReLU's gradient passes where its stored
// output s is > 0 or NaN and is +0.0 elsewhere (PyTorch's threshold_backward on the result):
// `s <= 0 ? 0 : g` is exactly that.
SDB_CLONES void relu_grad_f32(float* __restrict d, const float* __restrict s,
                              const float* __restrict g, size_t n) {
  for (size_t i = 0; i < n; ++i) d[i] = s[i] <= 0.0f ? 0.0f : g[i];
}
// A row's sum in float, in the order of the runtime's dbias (docs/epilogue.md#backward): 8 lanes,
// lane j adding elements j, j+8, ... from +0.0, the last n mod 8 elements to lanes 0, 1, ...,
// the lanes combined as ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)).
SDB_CLONES float row_sum_f32(const float* __restrict x, size_t n) {
  float l[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) l[j] += x[i + j];
  for (int j = 0; i < n; ++i, ++j) l[j] += x[i];
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
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
// max_threads > 0 caps the count further (the epilogue's passes run on its own count).
template <class Body>
static void par(size_t n, int w, Body&& body, int max_threads = 0) {
  const size_t align = 64 / size_t(w);
  int nt = ref_threads(n * size_t(w));
  if (max_threads > 0 && nt > max_threads) nt = max_threads;
  pool().run(
      [&](int t, int nt_) {
        size_t b, e;
        chunk(n, t, nt_, align, &b, &e);
        if (e > b) body(b, e);
      },
      nt);
}

// Elements [i, e) of a [rows, hw] tensor, one row's segment at a time: body(row, begin, end).
template <class Body>
static void by_rows(size_t i, size_t e, size_t hw, Body&& body) {
  while (i < e) {
    const size_t row = i / hw;
    const size_t end = (row + 1) * hw < e ? (row + 1) * hw : e;
    body(row, i, end);
    i = end;
  }
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

bool epi_kept_row(size_t row, double p) {
  // Row r is kept when floor((r + 1)(1 - p)) > floor(r (1 - p)): exactly (1 - p) of the rows,
  // spread evenly (every other row at p = 0.5).
  const double q = 1.0 - p;
  return size_t(double(row + 1) * q) > size_t(double(row) * q);
}

void ref_bias_relu(float* t, const float* x, const float* bias, const EpiShape& s, int threads) {
  par(s.rows * s.hw, 4, [&](size_t i, size_t e) {
    by_rows(i, e, s.hw, [&](size_t row, size_t b, size_t f) {
      kern::bias_relu_f32(t + b, x + b, bias[row % s.c], f - b);
    });
  }, threads);
}

void ref_add_relu(float* y, const float* r, const float* t, const EpiShape& s, int threads) {
  par(s.rows * s.hw, 4, [&](size_t i, size_t e) { kern::add_relu_f32(y + i, r + i, t + i, e - i); },
      threads);
}

void ref_epilogue_traffic(float* y, const float* x, const float* bias, const float* r,
                          const EpiShape& s, double p, int threads) {
  const float scale = p < 1.0 ? float(1.0 / (1.0 - p)) : 0.0f;
  par(s.rows * s.hw, 4, [&](size_t i, size_t e) {
    by_rows(i, e, s.hw, [&](size_t row, size_t b, size_t f) {
      if (epi_kept_row(row, p))
        kern::epi_kept_f32(y + b, x + b, r + b, bias[row % s.c], scale, f - b);
      else
        kern::epi_dropped_f32(y + b, r + b, f - b);
    });
  }, threads);
}

void ref_relu_grad(float* d, const float* stored, const float* g, const EpiShape& s,
                   int threads) {
  par(s.rows * s.hw, 4, [&](size_t i, size_t e) {
    kern::relu_grad_f32(d + i, stored + i, g + i, e - i);
  }, threads);
}

void ref_channel_sum(float* dbias, const float* d, const EpiShape& s, int threads) {
  // Parallel over channels (each thread a run of them), with the references' grain on the bytes
  // read; within a channel its rows n = 0, 1, ... in turn, each summed by row_sum_f32.
  int nt = ref_threads(s.rows * s.hw * 4);
  if (threads > 0 && nt > threads) nt = threads;
  if (size_t(nt) > s.c) nt = int(s.c);
  const size_t n = s.c ? s.rows / s.c : 0;
  pool().run(
      [&](int t, int nt_) {
        size_t b, e;
        chunk(s.c, t, nt_, 1, &b, &e);
        for (size_t c = b; c < e; ++c) {
          float acc = 0.0f;
          for (size_t k = 0; k < n; ++k) acc += kern::row_sum_f32(d + (k * s.c + c) * s.hw, s.hw);
          dbias[c] = acc;
        }
      },
      nt);
}

const char* ref_ntcopy_isa() { return kern::have_avx() ? "avx" : "sse2"; }

const char* ref_clone_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "default";
}

}  // namespace sdb
