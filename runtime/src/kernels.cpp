#include "kernels.h"

#include "HalideRuntime.h"
#include "bias_grad.h"
#include "cpu_isa.h"
#include "error.h"
#include "gpu.h"
#include "halide_hooks.h"
#include "kernel_table.h"
#include "thread_pool.h"
#include "sdrop_config.h"   // generated: SDROP_SERIAL_BYTES, SDROP_SKIP_DROPPED_BYTES
#include "sdrop_kernels.h"  // generated: prototypes + SDROP_FOR_EACH_KERNEL

namespace sdrop {
namespace {

using CpuTable = KernelTable<kNumIsas>;

// The ISA tokens of the X-macro list.
enum { sse41 = int(Isa::sse41), avx2 = int(Isa::avx2), avx512 = int(Isa::avx512) };

CpuTable make_table() {
  using namespace kernel_tokens;
  CpuTable t;
#define SDROP_PUT(op, shape, dtype, isa) \
  t.put(&hl_sdrop_##op##_##shape##_##dtype##_##isa, shape, dtype, isa);
  SDROP_FOR_EACH_KERNEL(SDROP_PUT)
#undef SDROP_PUT
  return t;
}

const CpuTable g_table = make_table();

const char* const kVariantNames[kNumIsas] = {"cpu:sse41", "cpu:avx2", "cpu:avx512"};

// A host buffer of the call: the plan's strides (xs, ys or ks, picked by `stride`) and the
// call's extents. Only what a kernel reads is set: this runs per call. Left uninitialised
// until set(): a call fills only the buffers its op has.
struct HostBuf {
  halide_buffer_t b;
  halide_dimension_t dim[3];

  halide_buffer_t* set(const Tensor& t, int64_t offset, halide_type_t type, const Call& c,
                       const Plan& p, int64_t Axis::*stride) {
    const int64_t s[3] = {p.inner[0].*stride, p.inner[1].*stride, p.inner[2].*stride};
    return wrap(t.base + uint64_t(offset * t.itemsize), type, c, s);
  }

  // The epilogue's bias (bias_view). (api.cpp refuses strides for which this would leave
  // 32 bits.)
  halide_buffer_t* set_bias(const Tensor& t, halide_type_t type, const Call& c, const Plan& p) {
    const BiasView v = bias_view(t.strides[0], c, p);
    return wrap(t.base + uint64_t(v.first * t.itemsize), type, c, v.strides);
  }

  // The epilogue's stand-in for an absent bias: zeros the kernel does not use (has_bias is
  // false), laid out as it indexes a bias: a scalar per row, a vector of d0 in channels_last.
  halide_buffer_t* set_zeros(halide_type_t type, const Call& c, Shape shape) {
    static const double kZeros[kChannelBlock] = {};
    const int64_t s[3] = {shape == Shape::channels_last ? 1 : 0, 0, 0};
    return wrap(uintptr_t(kZeros), type, c, s);
  }

 private:
  halide_buffer_t* wrap(uint64_t host, halide_type_t type, const Call& c, const int64_t* s) {
    // Zeroed here, for the buffers a call uses, rather than all six up front (a tiny call's
    // cost is made of such things).
    b = halide_buffer_t{};
    for (int d = 0; d < 3; d++) {
      dim[d] = halide_dimension_t{};
      dim[d].extent = int32_t(c.extent[d]);
      dim[d].stride = int32_t(s[d]);
    }
    b.host = reinterpret_cast<uint8_t*>(uintptr_t(host));
    b.type = type;
    b.dimensions = 3;
    b.dim = dim;
    return &b;
  }
};

// The Halide message is set only by a failure and consumed here, so no call clears it.
sdrop_status status_of(int code) {
  const char* msg = halide_message()[0] ? halide_message() : "(no message)";
  const sdrop_status s =
      code == halide_error_code_out_of_memory
          ? fail(SDROP_ERROR_OUT_OF_MEMORY, "out of memory in a kernel: %s", msg)
          : fail(SDROP_ERROR_INTERNAL, "kernel failed with Halide error %d: %s", code, msg);
  clear_halide_message();
  return s;
}

}  // namespace

sdrop_status run_plan(Backend backend, Op op, DType dtype, const Plan& plan, const Tensor* x,
                      const Tensor& y, const Tensor* k, const KernelArgs& a, RunInfo* info,
                      const EpilogueOperands* e) {
  const bool fused = op == Op::epilogue || op == Op::epilogue_backward;
  if (backend != Backend::cpu) {
    return run_plan_gpu(backend, op, dtype, plan, x, y, k, a, info, fused ? e : nullptr);
  }
  Isa isa;
  if (sdrop_status s = select_isa(&isa)) return s;
  ensure_halide_hooks();
  const int v = int(isa);
  info->variant = kVariantNames[v];
  const halide_type_t out_type = storage_type(op == Op::mask ? DType::u8 : dtype);
  const halide_type_t in_type = storage_type(dtype);
  // Work that fits in a core's cache runs on the calling thread: waking the pool costs more
  // than the second thread saves there.
  const uint64_t out_bytes = uint64_t(y.numel) * uint64_t(y.itemsize);
  const bool serial = call_threads() == 1 || out_bytes <= uint64_t(SDROP_SERIAL_BYTES);
  // Exact-zero calls too large for the cache: a dropped row's read of x costs more than the
  // branch per vector that skipping it takes (rows kernels; the others ignore it).
  // The epilogue never reads x of a dropped channel in exact-zero mode, whatever the size
  // (docs/epilogue.md): its rows kernels always take the dropped rows' own loop.
  const bool skip_dropped =
      !a.multiply && (fused || (op == Op::dropout && out_bytes > uint64_t(SDROP_SKIP_DROPPED_BYTES)));
  info->serial = serial;
  info->skip_dropped = skip_dropped && plan.shape == Shape::rows;
  int code = 0;
  // The epilogue backward's bias gradient: its scratch first, then the row sums of each call's
  // dx (just written, still in cache) right after the call.
  BiasGrad bias_grad;
  const Tensor* dbias = e && op == Op::epilogue_backward ? e->dbias : nullptr;
  if (dbias) {
    if (sdrop_status s = bias_grad.reserve(plan, dtype, dbias->shape[0])) return s;
  }
  reset_loop_workers();
  if (sdrop_status s = for_each_proven_call(op, plan, x, y, k, e, &info->calls, &code,
                                            [&](const Call& c) {
    HostBuf xb, kb, yb, rb, dyb, drb;
    CallBuffers b;
    b.y = yb.set(y, c.y0, out_type, c, plan, &Axis::ys);
    if (x) b.x = xb.set(*x, c.x0, in_type, c, plan, &Axis::xs);
    if (k) b.k = kb.set(*k, c.k0, storage_type(DType::u8), c, plan, &Axis::ks);
    if (fused) {
      b.k = e->bias ? kb.set_bias(*e->bias, in_type, c, plan) : kb.set_zeros(in_type, c, plan.shape);
      b.r = e->residual ? rb.set(*e->residual, c.r0, in_type, c, plan, &Axis::rs) : b.x;
      if (e->dy) b.dy = dyb.set(*e->dy, c.dy0, in_type, c, plan, &Axis::dys);
      if (op == Op::epilogue_backward) {
        b.dr = e->dresidual ? drb.set(*e->dresidual, c.dr0, in_type, c, plan, &Axis::drs) : b.y;
      }
    }
    int r = call_kernel(g_table, v, op, plan.shape, dtype, a, plan, c, b, serial, skip_dropped);
    if (r == 0 && dbias) {
      CallBuffers sums;
      sums.x = b.y;
      sums.y = bias_grad.rows_buffer(c, plan.shape);
      r = call_kernel(g_table, v, Op::channel_sum, plan.shape, dtype, a, plan, c, sums, serial,
                      false);
      if (r == 0) bias_grad.add(c, plan);
    }
    return r;
  })) {
    return s;
  }
  info->workers = info->calls > 0 && loop_workers() < 1 ? 1 : loop_workers();
  int32_t ran, of;
  if (runner_shortfall(&ran, &of)) {
    clear_halide_message();
    return fail(SDROP_ERROR_INTERNAL,
                "the parallel runner set with sdrop_set_parallel_runner returned after running "
                "%d of the %d tasks it was given (it must run each once)",
                int(ran), int(of));
  }
  if (code != 0) return status_of(code);
  if (dbias) bias_grad.store(*dbias, dtype);
  return SDROP_OK;
}

}  // namespace sdrop
