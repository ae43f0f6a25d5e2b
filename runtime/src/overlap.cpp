#include "overlap.h"

#include <algorithm>
#include <cstdlib>

namespace sdrop {
namespace {

using i128 = __int128;

i128 floor_div(i128 a, i128 b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
i128 ceil_div(i128 a, i128 b) { return -floor_div(-a, b); }
i128 mod(i128 a, i128 m) {  // m > 0, result in [0, m)
  const i128 r = a % m;
  return r < 0 ? r + m : r;
}
i128 gcd(i128 a, i128 b) {  // a, b >= 0
  while (b != 0) {
    const i128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}
// a*u + b*w = gcd(a, b) for a, b > 0; |u| <= b, |w| <= a.
i128 ext_gcd(i128 a, i128 b, i128* u, i128* w) {
  i128 r0 = a, r1 = b, u0 = 1, u1 = 0, w0 = 0, w1 = 1;
  while (r1 != 0) {
    const i128 q = r0 / r1;
    i128 t = r0 - q * r1; r0 = r1; r1 = t;
    t = u0 - q * u1; u0 = u1; u1 = t;
    t = w0 - q * w1; w0 = w1; w1 = t;
  }
  *u = u0;
  *w = w0;
  return r0;
}

// a*x + b*y = t with x in [xl, xh], y in [yl, yh] (a, b > 0): the solutions of the
// unbounded equation form a line x = x0 + k*(b/g), y = y0 - k*(a/g); intersect both ranges.
bool two_variables(i128 a, i128 xl, i128 xh, i128 b, i128 yl, i128 yh, i128 t) {
  i128 u, w;
  const i128 g = ext_gcd(a, b, &u, &w);
  if (mod(t, g) != 0) return false;
  const i128 m = b / g, n = a / g;
  const i128 x0 = mod(mod(u, m) * mod(t / g, m), m);  // x0 < m: the product fits in 128 bits
  const i128 y0 = (t - a * x0) / b;                   // exact
  const i128 k_lo = std::max(ceil_div(xl - x0, m), ceil_div(y0 - yh, n));
  const i128 k_hi = std::min(floor_div(xh - x0, m), floor_div(y0 - yl, n));
  return k_lo <= k_hi;
}

struct Var {
  i128 c, lo, hi;  // c > 0
};

// Depth-first over the variables, largest coefficient first; each level takes only the
// values that leave the rest able to reach the target interval, and only while a multiple
// of the rest's gcd lies in it; the last two variables are solved in closed form.
class Search {
 public:
  Search(const Var* v, int n, i128 tlo, i128 thi, int64_t budget)
      : n_(n), tlo_(tlo), thi_(thi), budget_(budget) {
    std::copy(v, v + n, v_);
    // The two widest ranges go last (closed form), the rest by decreasing coefficient.
    std::sort(v_, v_ + n_, [](const Var& a, const Var& b) { return a.hi - a.lo < b.hi - b.lo; });
    if (n_ > 2) {
      std::sort(v_, v_ + n_ - 2, [](const Var& a, const Var& b) { return a.c > b.c; });
    }
    min_[n_] = max_[n_] = 0;
    g_[n_] = 0;
    for (int k = n_ - 1; k >= 0; k--) {
      min_[k] = min_[k + 1] + v_[k].c * v_[k].lo;
      max_[k] = max_[k + 1] + v_[k].c * v_[k].hi;
      g_[k] = gcd(v_[k].c, g_[k + 1]);
    }
  }

  Overlap run() {
    const bool found = dfs(0, 0);
    if (found) return Overlap::some;
    return gave_up_ ? Overlap::unknown : Overlap::none;
  }

 private:
  bool spend() {
    if (--budget_ >= 0) return true;
    gave_up_ = true;
    return false;
  }

  bool dfs(int k, i128 partial) {
    if (!spend()) return false;
    const i128 lo = std::max(tlo_ - partial, min_[k]);
    const i128 hi = std::min(thi_ - partial, max_[k]);
    if (lo > hi) return false;
    const int left = n_ - k;
    if (left == 0) return true;  // lo <= 0 <= hi
    if (floor_div(hi, g_[k]) * g_[k] < lo) return false;
    const Var& a = v_[k];
    if (left == 1) {
      return std::max(ceil_div(lo, a.c), a.lo) <= std::min(floor_div(hi, a.c), a.hi);
    }
    if (left == 2) {
      const Var& b = v_[k + 1];
      for (i128 t = lo; t <= hi; t++) {
        if (mod(t, g_[k]) != 0) continue;
        if (two_variables(a.c, a.lo, a.hi, b.c, b.lo, b.hi, t)) return true;
        if (!spend()) return false;
      }
      return false;
    }
    const i128 first = std::max(ceil_div(lo - max_[k + 1], a.c), a.lo);
    const i128 last = std::min(floor_div(hi - min_[k + 1], a.c), a.hi);
    for (i128 x = first; x <= last; x++) {
      if (dfs(k + 1, partial + a.c * x)) return true;
      if (gave_up_) return false;
    }
    return false;
  }

  Var v_[16];
  int n_;
  i128 tlo_, thi_;
  int64_t budget_;
  bool gave_up_ = false;
  i128 min_[17], max_[17], g_[17];
};

bool is_opencl(const Tensor& t) { return t.device.type == kDLOpenCL; }

// Folds variables whose combined values form one interval into a single variable: with
// c_big = k * c_small and the small one's range at least k - 1 wide, k*v_big + v_small takes
// every integer of [k*lo_big + lo_small, k*hi_big + hi_small] and nothing else. Compact,
// sliced and transposed layouts (strides that nest) collapse this way to a few variables,
// which the search then settles at once. Exact: the set of reachable sums is unchanged.
int fold_nested(Var* v, int n) {
  for (bool merged = true; merged;) {
    merged = false;
    std::sort(v, v + n, [](const Var& a, const Var& b) { return a.c < b.c; });
    for (int s = 0; s < n && !merged; s++) {
      for (int b = s + 1; b < n && !merged; b++) {
        if (v[b].c % v[s].c != 0) continue;
        const i128 k = v[b].c / v[s].c;
        if (v[s].hi - v[s].lo < k - 1) continue;
        v[s].lo += k * v[b].lo;
        v[s].hi += k * v[b].hi;
        v[b] = v[--n];
        merged = true;
      }
    }
  }
  return n;
}

}  // namespace

Overlap bounded_solution(const Term* terms, int n, i128 target_lo, i128 target_hi,
                         int64_t budget) {
  Var v[16];
  int m = 0;
  for (int k = 0; k < n; k++) {
    const Term& t = terms[k];
    if (t.lo > t.hi) return Overlap::none;  // an empty range: no vector at all
    if (t.c == 0) continue;                 // any value of it does
    v[m++] = t.c > 0 ? Var{t.c, t.lo, t.hi} : Var{-t.c, -t.hi, -t.lo};
  }
  m = fold_nested(v, m);
  return Search(v, m, target_lo, target_hi, budget).run();
}

Overlap self_overlap(const Tensor& t) {
  if (t.numel <= 1) return Overlap::none;
  struct Axis {
    int64_t extent;
    uint64_t stride;
  };
  Axis axes[kMaxDims];
  int n = 0;
  for (int i = 0; i < t.ndim; i++) {
    if (t.shape[i] > 1) axes[n++] = {t.shape[i], magnitude(t.strides[i])};
  }
  // The common case, exactly: sorted by stride, each stride clears the span of all smaller
  // ones (spans fit: describe() bounds the footprint). A zero stride never does.
  sort_small(axes, n, [](const Axis& a, const Axis& b) { return a.stride < b.stride; });
  uint64_t span = 0;
  bool simple = true;
  for (int i = 0; i < n; i++) {
    if (axes[i].stride == 0) return Overlap::some;
    if (axes[i].stride <= span) simple = false;
    span += uint64_t(axes[i].extent - 1) * axes[i].stride;
  }
  if (simple) return Overlap::none;
  // Otherwise: is there a nonzero d, |d_k| < extent_k, with sum stride_k * d_k = 0? Split on
  // the first nonzero d_k (taken positive, by symmetry), largest stride first.
  int64_t budget = kOverlapBudget;
  bool unknown = false;
  for (int first = n - 1; first >= 0; first--) {
    Term terms[kMaxDims];
    int m = 0;
    terms[m++] = {i128(axes[first].stride), 1, i128(axes[first].extent - 1)};
    for (int j = first - 1; j >= 0; j--) {
      terms[m++] = {i128(axes[j].stride), -i128(axes[j].extent - 1), i128(axes[j].extent - 1)};
    }
    const Overlap r = bounded_solution(terms, m, 0, 0, budget / n);
    if (r == Overlap::some) return r;
    if (r == Overlap::unknown) unknown = true;
  }
  return unknown ? Overlap::unknown : Overlap::none;
}

Overlap self_overlap_by_enumeration(const Tensor& t, bool* out_of_memory) {
  *out_of_memory = false;
  if (t.numel <= 1) return Overlap::none;
  if (t.numel > kEnumerateLimit) return Overlap::unknown;
  int64_t* offs = static_cast<int64_t*>(std::malloc(sizeof(int64_t) * size_t(t.numel)));
  if (!offs) {
    *out_of_memory = true;
    return Overlap::unknown;
  }
  int64_t idx[kMaxDims] = {};
  int64_t off = 0;
  for (int64_t k = 0; k < t.numel; k++) {
    offs[k] = off;
    for (int d = t.ndim - 1; d >= 0; d--) {
      if (++idx[d] < t.shape[d]) {
        off += t.strides[d];
        break;
      }
      off -= (t.shape[d] - 1) * t.strides[d];
      idx[d] = 0;
    }
  }
  std::sort(offs, offs + t.numel);
  bool dup = false;
  for (int64_t k = 1; k < t.numel && !dup; k++) dup = offs[k] == offs[k - 1];
  std::free(offs);
  return dup ? Overlap::some : Overlap::none;
}

bool exactly_in_place(const Tensor& a, const Tensor& b) {
  if (a.base != b.base || a.ndim != b.ndim || a.itemsize != b.itemsize) return false;
  if ((is_opencl(a) || is_opencl(b)) && a.data != b.data) return false;
  for (int i = 0; i < a.ndim; i++) {
    if (a.shape[i] != b.shape[i]) return false;
    if (a.shape[i] > 1 && a.strides[i] != b.strides[i]) return false;
  }
  return true;
}

Overlap share_memory(const Tensor& a, const Tensor& b) {
  if (a.numel == 0 || b.numel == 0) return Overlap::none;
  // cl_mem handles are not addresses: different buffers never share memory (sub-buffers of
  // one buffer are not detected), and within one buffer the offsets are compared.
  if ((is_opencl(a) || is_opencl(b)) && a.data != b.data) return Overlap::none;
  // Byte ranges first (describe() proved they do not wrap).
  const i128 d = i128(a.base) - i128(b.base);  // a's base relative to b's
  if (d + a.hi <= b.lo || b.hi <= d + a.lo) return Overlap::none;
  // Element i of a covers [A, A + size_a), element j of b [B, B + size_b); they share a byte
  // iff A - B lies in [1 - size_a, size_b - 1], with A - B = d + sum(ca*i) - sum(cb*j).
  Term terms[2 * kMaxDims];
  int n = 0;
  for (int i = 0; i < a.ndim; i++) {
    if (a.shape[i] > 1) terms[n++] = {i128(a.strides[i]) * a.itemsize, 0, i128(a.shape[i] - 1)};
  }
  for (int i = 0; i < b.ndim; i++) {
    if (b.shape[i] > 1) terms[n++] = {-i128(b.strides[i]) * b.itemsize, 0, i128(b.shape[i] - 1)};
  }
  return bounded_solution(terms, n, 1 - a.itemsize - d, b.itemsize - 1 - d, kOverlapBudget);
}

}  // namespace sdrop
