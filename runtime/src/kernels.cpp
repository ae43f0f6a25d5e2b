#include "kernels.h"

#include <emmintrin.h>

#include <cstring>

#include "HalideRuntime.h"
#include "bias_grad.h"
#include "cpu_isa.h"
#include "error.h"
#include "gpu.h"
#include "halide_hooks.h"
#include "kernel_table.h"
#include "thread_pool.h"
#include "sdrop_config.h"   // generated: SDROP_SERIAL_BYTES, SDROP_*_DROPPED_BYTES
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

// Exact-zero rows calls past SDROP_MEMSET_DROPPED_BYTES (docs/performance.md#mixed-limit):
// dropped rows are filled with streaming stores, as glibc's memset fills large blocks, which
// write whole lines without reading them first (a kernel's vector stores pay that
// read-for-ownership), and the dropout kernel runs on the runs of kept rows only, so x of a
// dropped row is never read. The keep bits of the call's rows come first, from one mask
// kernel call on the calling thread; the values from the dropout kernel: the same bits as
// every other path. Each piece is a sub-box of the call proven by for_each_proven_call. Only
// for rows long enough to stream (kMemsetMinRowBytes) and calls of at most kMemsetMaxRows
// rows (their keep bytes live on the stack); other calls get the kernel's skipping loop.
// Whether it pays depends on the machine: bench/tune.py --thresholds decides.
constexpr int64_t kMemsetMinRowBytes = 4096;
constexpr int64_t kMemsetMaxRows = 16384;
constexpr int64_t kMemsetTaskBytes = 256 * 1024;  // output of one parallel task, about

// Zeros at p, without reading the lines first: non-temporal 16-byte stores over the
// line-aligned middle (write-combined into whole lines), plain memset for the ragged ends. The
// caller fences (sfence) before its writes are handed to another thread.
void zero_fill_streaming(uint8_t* p, size_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  const uintptr_t first = (a + 63) & ~uintptr_t(63), last = (a + bytes) & ~uintptr_t(63);
  if (last <= first) {
    std::memset(p, 0, bytes);
    return;
  }
  std::memset(p, 0, first - a);
  const __m128i z = _mm_setzero_si128();
  for (uintptr_t q = first; q < last; q += 64) {
    __m128i* line = reinterpret_cast<__m128i*>(q);
    _mm_stream_si128(line, z);
    _mm_stream_si128(line + 1, z);
    _mm_stream_si128(line + 2, z);
    _mm_stream_si128(line + 3, z);
  }
  std::memset(reinterpret_cast<void*>(last), 0, a + bytes - last);
}

struct MemsetRows {
  int v;  // ISA variant
  DType dtype;
  halide_type_t type;
  const KernelArgs* a;
  const Plan* p;
  const Tensor* x;
  const Tensor* y;
  Call c;
  const uint8_t* keep;  // per row of the call, (d2, d1) order
  int64_t rows_per_task;
};

bool memset_rows_fit(const Call& c, const Tensor& y) {
  return c.extent[0] * y.itemsize >= kMemsetMinRowBytes &&
         c.extent[1] * c.extent[2] <= kMemsetMaxRows;
}

// Rows [task * rows_per_task, ...) of the call.
int memset_rows_task(void*, int task, uint8_t* closure) {
  const MemsetRows& m = *reinterpret_cast<const MemsetRows*>(closure);
  const Call& c = m.c;
  const Axis &d1 = m.p->inner[1], &d2 = m.p->inner[2];
  const int64_t e1 = c.extent[1], rows = e1 * c.extent[2];
  const size_t row_bytes = size_t(c.extent[0] * m.y->itemsize);
  int64_t r = int64_t(task) * m.rows_per_task;
  const int64_t end = r + m.rows_per_task < rows ? r + m.rows_per_task : rows;
  while (r < end) {
    const int64_t i2 = r / e1, i1 = r % e1;
    // A run of rows of slice i2, all kept or all dropped.
    const bool kept = m.keep[r] != 0;
    int64_t n = 1;
    while (r + n < end && i1 + n < e1 && (m.keep[r + n] != 0) == kept) n++;
    if (kept) {
      Call sub = c;
      sub.x0 += i1 * d1.xs + i2 * d2.xs;
      sub.y0 += i1 * d1.ys + i2 * d2.ys;
      sub.m0 += i1 * d1.ms + i2 * d2.ms;
      sub.extent[1] = n;
      sub.extent[2] = 1;
      HostBuf xb, yb;
      CallBuffers b;
      b.x = xb.set(*m.x, sub.x0, m.type, sub, *m.p, &Axis::xs);
      b.y = yb.set(*m.y, sub.y0, m.type, sub, *m.p, &Axis::ys);
      if (int rc = call_kernel(g_table, m.v, Op::dropout, Shape::rows, m.dtype, *m.a, *m.p, sub,
                               b, /*serial=*/true, /*skip_dropped=*/false)) {
        return rc;
      }
    } else {
      for (int64_t q = 0; q < n; q++) {
        const int64_t off = c.y0 + (i1 + q) * d1.ys + i2 * d2.ys;  // y's rows are contiguous
        const uint64_t at = m.y->base + uint64_t(off * m.y->itemsize);
        zero_fill_streaming(reinterpret_cast<uint8_t*>(uintptr_t(at)), row_bytes);
      }
    }
    r += n;
  }
  _mm_sfence();  // the streaming stores are visible before the task counts as done
  return 0;
}

int run_memset_rows(int v, DType dtype, const KernelArgs& a, const Plan& p, const Call& c,
                    const Tensor& x, const Tensor& y, bool serial) {
  const Axis &d1 = p.inner[1], &d2 = p.inner[2];
  const int64_t e1 = c.extent[1], e2 = c.extent[2], rows = e1 * e2;
  // The keep byte of every row: the mask kernel over the (d1, d2) grid of mask indices.
  uint8_t keep[kMemsetMaxRows];
  halide_dimension_t kd[3] = {{0, int32_t(e1), 1}, {0, int32_t(e2), int32_t(e1)},
                              {0, 1, int32_t(rows)}};
  halide_buffer_t kb{};
  kb.host = keep;
  kb.type = storage_type(DType::u8);
  kb.dimensions = 3;
  kb.dim = kd;
  if (int rc = g_table.mask[v](a.seed, a.offset, c.m0, d1.ms, d2.ms, 0, a.threshold,
                               a.keep_all, /*serial=*/true, &kb)) {
    return rc;
  }
  const int64_t row_bytes = c.extent[0] * y.itemsize;
  int64_t per = (kMemsetTaskBytes + row_bytes - 1) / row_bytes;
  per = per < 1 ? 1 : per;
  MemsetRows m{v, dtype, storage_type(dtype), &a, &p, &x, &y, c, keep, per};
  const int tasks = int((rows + per - 1) / per);
  uint8_t* closure = reinterpret_cast<uint8_t*>(&m);
  if (serial) {
    for (int t = 0; t < tasks; t++) {
      if (int rc = memset_rows_task(nullptr, t, closure)) return rc;
    }
    return 0;
  }
  return pool_do_par_for(nullptr, memset_rows_task, 0, tasks, closure);
}

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
  // Larger still, dropped rows by streaming stores (memset_rows_task), where y's rows are
  // contiguous.
  const bool memset_dropped = op == Op::dropout && !a.multiply && plan.shape == Shape::rows &&
                              plan.inner[0].ys == 1 &&
                              out_bytes > uint64_t(SDROP_MEMSET_DROPPED_BYTES);
  info->serial = serial;
  info->skip_dropped = skip_dropped && plan.shape == Shape::rows;
  info->memset_dropped = false;  // set by a call that took the route
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
    if (memset_dropped && memset_rows_fit(c, y)) {  // a plain dropout: no epilogue operands
      info->memset_dropped = true;
      return run_memset_rows(v, dtype, a, plan, c, *x, y, serial);
    }
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
