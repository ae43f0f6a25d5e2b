#include "plan.h"

#include <algorithm>

namespace sdrop {
namespace {

int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

// Largest offset the axes reach in each of x, y and the mask tensor.
int64_t span(const Axis* a, int n) {
  int64_t sx = 0, sy = 0, sk = 0;
  for (int i = 0; i < n; i++) {
    sx += (a[i].extent - 1) * abs64(a[i].xs);
    sy += (a[i].extent - 1) * abs64(a[i].ys);
    sk += (a[i].extent - 1) * abs64(a[i].ks);
  }
  return std::max(sx, std::max(sy, sk));
}

int64_t max_stride(const Axis& a) {
  return std::max(abs64(a.xs), std::max(abs64(a.ys), abs64(a.ks)));
}

}  // namespace

Plan make_plan(Op op, int ndim, const int64_t* shape, const int64_t* xs, const int64_t* ys,
               const int64_t* ks, uint32_t mask_axes, int64_t span_limit,
               int64_t channel_block) {
  // Row-major over the noise shape.
  MaskIndex mi;
  int64_t m = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    if (mask_axes >> i & 1u) {
      mi.ms[i] = m;
      m *= shape[i];
    }
  }
  return make_plan(op, ndim, shape, xs, ys, ks, mi, span_limit, channel_block);
}

Plan make_plan(Op op, int ndim, const int64_t* shape, const int64_t* xs, const int64_t* ys,
               const int64_t* ks, const MaskIndex& mi, int64_t span_limit,
               int64_t channel_block) {
  Plan p;
  p.m0 = mi.m0;
  const int64_t* ms = mi.ms;
  Axis a[kMaxDims];
  int n = 0;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] == 1) continue;
    Axis ax;
    ax.extent = shape[i];
    ax.xs = xs ? xs[i] : 0;
    ax.ys = ys[i];
    ax.ks = ks ? ks[i] : 0;
    ax.ms = ms[i];
    // Walk the output forwards: flip an axis it walks backwards.
    if (ax.ys < 0) {
      const int64_t last = ax.extent - 1;
      p.x0 += last * ax.xs;
      p.y0 += last * ax.ys;
      p.k0 += last * ax.ks;
      p.m0 += last * ax.ms;
      ax.xs = -ax.xs;
      ax.ys = -ax.ys;
      ax.ks = -ax.ks;
      ax.ms = -ax.ms;
    }
    a[n++] = ax;
  }
  // Outermost first: by output stride, then input stride (stable for determinism).
  sort_small(a, n, [](const Axis& l, const Axis& r) {
    if (l.ys != r.ys) return l.ys > r.ys;
    return abs64(l.xs) > abs64(r.xs);
  });
  // Merge an outer axis into the inner one when all four strides step together.
  Axis merged[kMaxDims];
  int nm = 0;
  for (int i = 0; i < n; i++) {
    if (nm > 0) {
      Axis& o = merged[nm - 1];
      const Axis& in = a[i];
      const int64_t e = in.extent;
      if (o.xs == in.xs * e && o.ys == in.ys * e && o.ks == in.ks * e && o.ms == in.ms * e) {
        Axis fused = in;
        fused.extent = o.extent * e;
        o = fused;
        continue;
      }
    }
    merged[nm++] = a[i];
  }
  // The innermost (up to) three axes go to the kernel; cut them down until their offsets
  // fit in 32 bits: chunk the outermost kernel dim, or hand it to the outer loops.
  int h = std::min(nm, 3);
  int64_t span_chunk = 0;
  for (;;) {
    const Axis* kern = merged + (nm - h);
    if (h == 0 || span(kern, h) <= span_limit) break;
    const Axis& top = kern[0];
    const int64_t rest = span(kern + 1, h - 1);
    const int64_t stride = max_stride(top);
    if (rest <= span_limit && stride <= span_limit) {
      const int64_t c = stride == 0 ? top.extent : (span_limit - rest) / stride + 1;
      if (c >= 2 || h == 1) {
        span_chunk = std::min(c, top.extent);
        break;
      }
    }
    h--;
  }
  const int first_kernel = nm - h;
  for (int i = 0; i < first_kernel; i++) p.outer[p.n_outer++].step = merged[i];
  for (int d = 0; d < h; d++) p.inner[d] = merged[nm - 1 - d];
  for (int d = h; d < 3; d++) p.inner[d] = Axis{};  // padding dims: extent 1, strides 0

  // Cut kernel dim d into chunks of c with a loop around the call.
  auto chunk = [&p](int d, int64_t c) {
    Loop l;
    l.step = p.inner[d];
    l.step.extent = (p.inner[d].extent + c - 1) / c;
    l.step.xs *= c;
    l.step.ys *= c;
    l.step.ks *= c;
    l.step.ms *= c;
    l.chunk_dim = d;
    l.chunk = c;
    l.total = p.inner[d].extent;
    p.inner[d].extent = c;
    p.outer[p.n_outer++] = l;
  };
  if (span_chunk > 0) chunk(h - 1, span_chunk);

  if (op != Op::dropout) {
    p.shape = Shape::elementwise;
  } else if (p.inner[0].ms == 0) {
    p.shape = Shape::rows;
  } else if (p.inner[1].extent > 1 && p.inner[1].ms == 0) {
    p.shape = Shape::channels_last;
    if (p.inner[0].extent > channel_block) chunk(0, channel_block);
  } else {
    p.shape = Shape::elementwise;
  }
  return p;
}

}  // namespace sdrop
