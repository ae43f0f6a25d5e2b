// Canonicalisation: any rank, layout and strides -> a few 3-D kernel calls.
//
// Every axis carries its strides in x, y and the mask tensor, and its stride in the mask
// index m (0 on axes the mask does not vary along). Extent-1 axes are dropped, axes with a
// negative output stride are flipped, axes are sorted by output stride and adjacent axes
// that step together are merged. The innermost three become the kernel's d0, d1, d2; any
// further axes, and chunks of axes too long for Halide's 32-bit buffer indexing, are looped
// over here. The first two axes' mask strides choose the kernel's canonical shape.
#pragma once

#include <cstdint>

#include "mask_index.h"
#include "sdrop_config.h"  // generated: SDROP_CHANNEL_BLOCK
#include "tensor.h"

namespace sdrop {

// Op and Shape: common/kernel_kinds.h (via tensor.h).

// Axis and Loop are plain aggregates, left uninitialised where declared without a value: a
// plan is made on every call, and initialising its ten loops and the planner's scratch axes
// was a measurable part of a tiny call. kUnitAxis is the neutral axis (extent 1, strides 0).
struct Axis {
  int64_t extent;
  int64_t xs, ys, ks;  // element strides in x, y, mask tensor (epilogue: channel)
  int64_t rs;          // the epilogue's residual
  int64_t dys, drs;    // its backward's dy and dresidual
  int64_t ms;          // stride of the mask index m
};
constexpr Axis kUnitAxis = {1, 0, 0, 0, 0, 0, 0, 0};

// A loop the runtime runs around the kernel call. It either walks an axis the kernel does
// not see, or cuts kernel dim `chunk_dim` (-1: none) into chunks of `chunk` (the last one
// shorter).
struct Loop {
  Axis step;  // extent = iterations; strides per iteration
  int chunk_dim;
  int64_t chunk, total;
};

struct Plan {
  Shape shape = Shape::elementwise;
  Axis inner[3] = {kUnitAxis, kUnitAxis, kUnitAxis};  // kernel dims d0 (innermost), d1, d2
  Loop outer[kMaxDims + 2];  // outermost first; [0, n_outer) are set
  int n_outer = 0;
  // Element offsets (k0: channel index) and the mask index of element (0, 0, 0).
  int64_t x0 = 0, y0 = 0, k0 = 0, r0 = 0, dy0 = 0, dr0 = 0, m0 = 0;
};

// The strides of an axis and the offsets of a plan, tensor by tensor in one order (the mask
// index last), for the steps that treat them all alike.
constexpr int kStrideSets = 7;
constexpr int64_t Axis::*kAxisStrides[kStrideSets] = {&Axis::xs, &Axis::ys,  &Axis::ks, &Axis::rs,
                                                      &Axis::dys, &Axis::drs, &Axis::ms};
constexpr int64_t Plan::*kPlanOffsets[kStrideSets] = {&Plan::x0,  &Plan::y0,  &Plan::k0, &Plan::r0,
                                                      &Plan::dy0, &Plan::dr0, &Plan::m0};

// Largest element offset or extent a kernel call may reach. Halide buffers index with
// int32, and the generated loops compute things like extent + split factor in int32 too,
// so stay well clear of 2^31 (a 2^31 - 4096 chunk overflowed a loop bound and was skipped).
constexpr int64_t kKernelSpanLimit = int64_t(1) << 30;

// Most channels a channels_last kernel call takes (its keep bits live on the stack);
// the generator is built with the same value.
constexpr int64_t kChannelBlock = SDROP_CHANNEL_BLOCK;

// shape: the tensors' common shape; xs/ys/ks: their element strides (ks may be null, xs too
// for Op::mask); mi: the mask index of every element. The limits are parameters for tests.
Plan make_plan(Op op, int ndim, const int64_t* shape, const int64_t* xs, const int64_t* ys,
               const int64_t* ks, const MaskIndex& mi, int64_t span_limit = kKernelSpanLimit,
               int64_t channel_block = kChannelBlock);

// The fused epilogue's plan: ks steps the channel index (1 on the channel axis, 0 elsewhere);
// rs, dys, drs are the residual's, dy's and dresidual's strides (null: none). The kernel shape
// is rows where neither the mask nor the channel varies along d0, channels_last where neither
// varies along d1, and otherwise rows of one element (d0 cut into chunks of 1: correct for any
// noise shape and layout, at scalar speed).
Plan make_epilogue_plan(int ndim, const int64_t* shape, const int64_t* xs, const int64_t* ys,
                        const int64_t* ks, const int64_t* rs, const int64_t* dys,
                        const int64_t* drs, const MaskIndex& mi,
                        int64_t span_limit = kKernelSpanLimit,
                        int64_t channel_block = kChannelBlock);

// The same with the mask index of the whole tensor for mask_axes (no shard).
Plan make_plan(Op op, int ndim, const int64_t* shape, const int64_t* xs, const int64_t* ys,
               const int64_t* ks, uint32_t mask_axes, int64_t span_limit = kKernelSpanLimit,
               int64_t channel_block = kChannelBlock);

// One kernel call: offsets of element (0,0,0) and the kernel dims' extents.
struct Call {
  int64_t x0, y0, k0, m0, r0, dy0, dr0;
  int64_t extent[3];
};

// How a call reads the epilogue's bias: at channel index times the bias's own stride, the plan
// stepping channel indices (ks). The CPU and GPU runners both address it through this.
struct BiasView {
  int64_t first;       // element offset of the call's first channel
  int64_t strides[3];  // of the kernel dims
};
inline BiasView bias_view(int64_t bias_stride, const Call& c, const Plan& p) {
  return {c.k0 * bias_stride,
          {p.inner[0].ks * bias_stride, p.inner[1].ks * bias_stride, p.inner[2].ks * bias_stride}};
}

// Calls fn(const Call&) for every kernel call of the plan, in order; stops at the first
// nonzero return and returns it.
template <typename Fn>
int for_each_call(const Plan& p, Fn&& fn) {
  int64_t idx[kMaxDims + 2] = {};
  for (;;) {
    Call c{p.x0, p.y0, p.k0, p.m0, p.r0, p.dy0, p.dr0,
           {p.inner[0].extent, p.inner[1].extent, p.inner[2].extent}};
    for (int i = 0; i < p.n_outer; i++) {
      const Loop& l = p.outer[i];
      c.x0 += idx[i] * l.step.xs;
      c.y0 += idx[i] * l.step.ys;
      c.k0 += idx[i] * l.step.ks;
      c.m0 += idx[i] * l.step.ms;
      c.r0 += idx[i] * l.step.rs;
      c.dy0 += idx[i] * l.step.dys;
      c.dr0 += idx[i] * l.step.drs;
      if (l.chunk_dim >= 0) {
        const int64_t left = l.total - idx[i] * l.chunk;
        c.extent[l.chunk_dim] = left < l.chunk ? left : l.chunk;
      }
    }
    if (int r = fn(static_cast<const Call&>(c))) return r;
    int i = p.n_outer - 1;
    for (; i >= 0; i--) {
      if (++idx[i] < p.outer[i].step.extent) break;
      idx[i] = 0;
    }
    if (i < 0) return 0;
  }
}

}  // namespace sdrop
