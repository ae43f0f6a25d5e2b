#include "plan.h"

#include <algorithm>

namespace sdrop {
namespace {

int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

// Largest offset the axes reach in any one tensor (the mask index is not a buffer offset).
int64_t span(const Axis* a, int n) {
  int64_t most = 0;
  for (int t = 0; t + 1 < kStrideSets; t++) {
    int64_t s = 0;
    for (int i = 0; i < n; i++) s += (a[i].extent - 1) * abs64(a[i].*kAxisStrides[t]);
    most = std::max(most, s);
  }
  return most;
}

int64_t max_stride(const Axis& a) {
  int64_t most = 0;
  for (int t = 0; t + 1 < kStrideSets; t++) most = std::max(most, abs64(a.*kAxisStrides[t]));
  return most;
}

// An outer axis `o` merges into the inner one `in` when every stride steps together.
bool steps_together(const Axis& o, const Axis& in) {
  for (int t = 0; t < kStrideSets; t++) {
    if (o.*kAxisStrides[t] != in.*kAxisStrides[t] * in.extent) return false;
  }
  return true;
}

// more: the epilogue's residual, dy and dresidual strides (null: the plain ops).
Plan plan_of(Op op, int ndim, const int64_t* shape, const int64_t* xs, const int64_t* ys,
             const int64_t* ks, const int64_t* const* more, const MaskIndex& mi,
             int64_t span_limit, int64_t channel_block);

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
  return plan_of(op, ndim, shape, xs, ys, ks, nullptr, mi, span_limit, channel_block);
}

Plan make_epilogue_plan(int ndim, const int64_t* shape, const int64_t* xs, const int64_t* ys,
                        const int64_t* ks, const int64_t* rs, const int64_t* dys,
                        const int64_t* drs, const MaskIndex& mi, int64_t span_limit,
                        int64_t channel_block) {
  const int64_t* more[3] = {rs, dys, drs};
  return plan_of(Op::epilogue, ndim, shape, xs, ys, ks, more, mi, span_limit, channel_block);
}

namespace {

Plan plan_of(Op op, int ndim, const int64_t* shape, const int64_t* xs, const int64_t* ys,
             const int64_t* ks, const int64_t* const* more, const MaskIndex& mi,
             int64_t span_limit, int64_t channel_block) {
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
    ax.rs = more && more[0] ? more[0][i] : 0;
    ax.dys = more && more[1] ? more[1][i] : 0;
    ax.drs = more && more[2] ? more[2][i] : 0;
    ax.ms = ms[i];
    // Walk the output forwards: flip an axis it walks backwards.
    if (ax.ys < 0) {
      const int64_t last = ax.extent - 1;
      for (int t = 0; t < kStrideSets; t++) {
        p.*kPlanOffsets[t] += last * (ax.*kAxisStrides[t]);
        ax.*kAxisStrides[t] = -(ax.*kAxisStrides[t]);
      }
    }
    a[n++] = ax;
  }
  // Outermost first: by output stride, then input stride (stable for determinism).
  sort_small(a, n, [](const Axis& l, const Axis& r) {
    if (l.ys != r.ys) return l.ys > r.ys;
    return abs64(l.xs) > abs64(r.xs);
  });
  // Merge an outer axis into the inner one when all strides step together (in place: the
  // merged axes a[0..nm) never pass the one being read, and a second array would be one more
  // thing every call initialises).
  Axis* const merged = a;
  int nm = 0;
  for (int i = 0; i < n; i++) {
    if (nm > 0) {
      Axis& o = merged[nm - 1];
      const Axis& in = a[i];
      if (steps_together(o, in)) {
        Axis fused = in;
        fused.extent = o.extent * in.extent;
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
  for (int i = 0; i < first_kernel; i++) p.outer[p.n_outer++] = Loop{merged[i], -1, 0, 0};
  for (int d = 0; d < h; d++) p.inner[d] = merged[nm - 1 - d];
  for (int d = h; d < 3; d++) p.inner[d] = kUnitAxis;  // padding dims

  // Cut kernel dim d into chunks of c with a loop around the call.
  auto chunk = [&p](int d, int64_t c) {
    Loop l;
    l.step = p.inner[d];
    l.step.extent = (p.inner[d].extent + c - 1) / c;
    for (int t = 0; t < kStrideSets; t++) l.step.*kAxisStrides[t] *= c;
    l.chunk_dim = d;
    l.chunk = c;
    l.total = p.inner[d].extent;
    p.inner[d].extent = c;
    p.outer[p.n_outer++] = l;
  };
  if (span_chunk > 0) chunk(h - 1, span_chunk);

  if (op == Op::epilogue) {  // and its backward
    const Axis &i0 = p.inner[0], &i1 = p.inner[1];
    if (i0.ms == 0 && i0.ks == 0) {
      p.shape = Shape::rows;
    } else if (i1.extent > 1 && i1.ms == 0 && i1.ks == 0) {
      p.shape = Shape::channels_last;
      if (i0.extent > channel_block) chunk(0, channel_block);
    } else {
      p.shape = Shape::rows;
      chunk(0, 1);
    }
  } else if (op != Op::dropout) {
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

}  // namespace
}  // namespace sdrop
