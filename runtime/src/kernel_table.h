// The generated kernels' C signatures, and a table of them by variant (a CPU ISA or a GPU
// backend), canonical shape and dtype, filled from the X-macro lists the build generates
// (sdrop_kernels.h), and the loop both runners share: prove every call of a plan, then run
// each from the table. The CPU (kernels.cpp) and GPU (gpu.cpp) runners differ only in how
// they wrap a tensor as a halide_buffer_t.
#pragma once

#include <cstdint>

#include "HalideRuntime.h"
#include "call_check.h"
#include "params.h"
#include "plan.h"
#include "tensor.h"

namespace sdrop {

// The last bools: run on the calling thread, without the thread pool (ignored on GPUs); for
// dropout then skip_dropped (rows kernels: dropped rows filled without reading x).
using DropoutFn = int (*)(halide_buffer_t*, uint64_t, uint64_t, int64_t, int64_t, int64_t,
                          int64_t, uint32_t, bool, bool, float, double, bool, bool,
                          halide_buffer_t*);
using ApplyMaskFn = int (*)(halide_buffer_t*, halide_buffer_t*, bool, bool, float, double, bool,
                            halide_buffer_t*);
using MaskFn = int (*)(uint64_t, uint64_t, int64_t, int64_t, int64_t, int64_t, uint32_t, bool,
                       bool, halide_buffer_t*);
// x, bias, residual, then dropout's scalars, then has_bias, has_residual, act_relu, post_relu.
using EpilogueFn = int (*)(halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, uint64_t,
                           uint64_t, int64_t, int64_t, int64_t, int64_t, uint32_t, bool, bool,
                           float, double, bool, bool, bool, bool, bool, bool, halide_buffer_t*);
// The same with dy after the residual, want_dr last, and the outputs dresidual, dx.
using EpilogueBackwardFn = int (*)(halide_buffer_t*, halide_buffer_t*, halide_buffer_t*,
                                   halide_buffer_t*, uint64_t, uint64_t, int64_t, int64_t,
                                   int64_t, int64_t, uint32_t, bool, bool, float, double, bool,
                                   bool, bool, bool, bool, bool, bool, halide_buffer_t*,
                                   halide_buffer_t*);
// x, serial, the 2-D row sums (in the compute type; on GPUs a device buffer at offset 0).
using ChannelSumFn = int (*)(halide_buffer_t*, bool, halide_buffer_t*);

constexpr int kShapes = 3, kDTypes = 4;

template <int kVariants>
struct KernelTable {
  DropoutFn dropout[kVariants][kShapes][kDTypes] = {};
  ApplyMaskFn apply_mask[kVariants][kDTypes] = {};
  MaskFn mask[kVariants] = {};
  // rows and channels_last (elementwise entries stay null):
  EpilogueFn epilogue[kVariants][kShapes][kDTypes] = {};
  EpilogueBackwardFn epilogue_backward[kVariants][kShapes][kDTypes] = {};
  ChannelSumFn channel_sum[kVariants][kShapes][kDTypes] = {};

  void put(DropoutFn f, int shape, int dtype, int v) { dropout[v][shape][dtype] = f; }
  void put(ApplyMaskFn f, int, int dtype, int v) { apply_mask[v][dtype] = f; }
  void put(MaskFn f, int, int, int v) { mask[v] = f; }
  void put(EpilogueFn f, int shape, int dtype, int v) { epilogue[v][shape][dtype] = f; }
  void put(EpilogueBackwardFn f, int shape, int dtype, int v) {
    epilogue_backward[v][shape][dtype] = f;
  }
  void put(ChannelSumFn f, int shape, int dtype, int v) { channel_sum[v][shape][dtype] = f; }
};

// The shape and dtype tokens of the X-macro lists, as indices.
namespace kernel_tokens {
enum { rows = int(Shape::rows), channels_last = int(Shape::channels_last),
       elementwise = int(Shape::elementwise) };
enum { f16 = int(DType::f16), bf16 = int(DType::bf16), f32 = int(DType::f32),
       f64 = int(DType::f64), u8 = 0 };
}  // namespace kernel_tokens

// The element type a kernel's buffer is declared with (bfloat16 is integer work).
inline halide_type_t storage_type(DType d) {
  switch (d) {
    case DType::f16: return halide_type_t(halide_type_float, 16);
    case DType::bf16: return halide_type_t(halide_type_uint, 16);
    case DType::f32: return halide_type_t(halide_type_float, 32);
    case DType::f64: return halide_type_t(halide_type_float, 64);
    case DType::u8: return halide_type_t(halide_type_uint, 8);
  }
  return halide_type_t();
}

// The buffers of one kernel call (x and k null where the op has none; the epilogue's bias
// in k, its residual in r).
struct CallBuffers {
  halide_buffer_t *x = nullptr, *k = nullptr, *y = nullptr, *r = nullptr;
  halide_buffer_t *dy = nullptr, *dr = nullptr;  // the epilogue's backward
};

// Runs table entry (variant v) for op on one call's buffers.
template <int kVariants>
int call_kernel(const KernelTable<kVariants>& t, int v, Op op, Shape shape, DType dtype,
                const KernelArgs& a, const Plan& p, const Call& c, const CallBuffers& b,
                bool serial, bool skip_dropped) {
  const int sh = int(shape), dt = int(dtype);
  const int64_t ms0 = p.inner[0].ms, ms1 = p.inner[1].ms, ms2 = p.inner[2].ms;
  switch (op) {
    case Op::dropout:
      return t.dropout[v][sh][dt](b.x, a.seed, a.offset, c.m0, ms0, ms1, ms2, a.threshold,
                                  a.keep_all, a.multiply, a.scale_f32, a.scale_f64, serial,
                                  skip_dropped, b.y);
    case Op::apply_mask:
      return t.apply_mask[v][dt](b.x, b.k, a.keep_none, a.multiply, a.scale_f32, a.scale_f64,
                                 serial, b.y);
    case Op::mask:
      return t.mask[v](a.seed, a.offset, c.m0, ms0, ms1, ms2, a.threshold, a.keep_all, serial,
                       b.y);
    case Op::epilogue: {
      const EpilogueFn f = t.epilogue[v][sh][dt];
      if (!f) return -1;  // a shape without a kernel: the planner never picks one
      return f(b.x, b.k, b.r, a.seed, a.offset, c.m0, ms0, ms1, ms2, a.threshold, a.keep_all,
               a.multiply, a.scale_f32, a.scale_f64, serial, skip_dropped, a.has_bias,
               a.has_residual, a.act_relu, a.post_relu, b.y);
    }
    case Op::epilogue_backward: {
      const EpilogueBackwardFn f = t.epilogue_backward[v][sh][dt];
      if (!f) return -1;
      return f(b.x, b.k, b.r, b.dy, a.seed, a.offset, c.m0, ms0, ms1, ms2, a.threshold,
               a.keep_all, a.multiply, a.scale_f32, a.scale_f64, serial, skip_dropped,
               a.has_bias, a.has_residual, a.act_relu, a.post_relu, a.want_dr, b.dr, b.y);
    }
    case Op::channel_sum: {
      const ChannelSumFn f = t.channel_sum[v][sh][dt];
      if (!f) return -1;
      return f(b.x, serial, b.y);
    }
  }
  return -1;
}

// Every call of the plan is proven (call_check.h) before the first one runs, so that a
// refusal never follows a partial write; then run(const Call&) for each, stopping at the
// first nonzero result. *calls: the number of kernel calls (for the verbose line).
// e: the epilogue's operands, or null.
template <typename Run>
sdrop_status for_each_proven_call(Op op, const Plan& plan, const Tensor* x, const Tensor& y,
                                  const Tensor* k, const EpilogueOperands* e, int* calls,
                                  int* code, Run&& run) {
  const Tensor* r = e ? e->residual : nullptr;
  const Tensor* dy = e ? e->dy : nullptr;
  const Tensor* dr = e ? e->dresidual : nullptr;
  // Channel indices of the bias and dbias (the plan's ks) lie in [0, channels).
  const Tensor* per_channel = e ? (e->bias ? e->bias : e->dbias) : nullptr;
  int n = 0;
  const int unfit = for_each_call(plan, [&](const Call& c) {
    n++;
    const bool fits = buffer_fits(y, c.y0, c, plan, &Axis::ys) &&
                      (!x || buffer_fits(*x, c.x0, c, plan, &Axis::xs)) &&
                      (!k || buffer_fits(*k, c.k0, c, plan, &Axis::ks)) &&
                      (!r || buffer_fits(*r, c.r0, c, plan, &Axis::rs)) &&
                      (!dy || buffer_fits(*dy, c.dy0, c, plan, &Axis::dys)) &&
                      (!dr || buffer_fits(*dr, c.dr0, c, plan, &Axis::drs)) &&
                      (!per_channel || channels_fit(c, plan, per_channel->shape[0])) &&
                      (op == Op::apply_mask || mask_indices_fit(c, plan));
    return fits ? 0 : 1;
  });
  *calls = n;
  if (unfit) return unfit_call();
  *code = for_each_call(plan, run);
  return SDROP_OK;
}

}  // namespace sdrop
