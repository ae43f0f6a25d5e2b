#include "kernels.h"

#include <pthread.h>
#include <xmmintrin.h>

#include <atomic>
#include <cstring>

#include "HalideRuntime.h"
#include "call_check.h"
#include "cpu_isa.h"
#include "error.h"
#include "gpu.h"
#include "kernel_table.h"
#include "sdrop_kernels.h"  // generated: prototypes + SDROP_FOR_EACH_KERNEL

// Defined by the Halide runtime (thread pool sizing), not declared in its public header.
extern "C" int halide_host_cpu_count();

namespace sdrop {
namespace {

// ---- The kernel table, filled from the generated X-macro list -----------------------------

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

// ---- Halide runtime hooks -------------------------------------------------------------------

// Halide reports failures through this handler (its default aborts the process).
thread_local char g_halide_message[512];

void on_halide_error(void*, const char* msg) {
  std::strncpy(g_halide_message, msg, sizeof g_halide_message - 1);
}

// Worker threads inherit whatever MXCSR their creator had; every task runs with the IEEE
// default (round to nearest even, no flush-to-zero, no denormals-are-zero) and gives the
// thread its own state back afterwards.
constexpr unsigned kDefaultCsr = 0x1F80;

int clean_do_task(void* uc, halide_task_t f, int idx, uint8_t* closure) {
  const unsigned saved = _mm_getcsr();
  _mm_setcsr(kDefaultCsr);
  const int r = halide_default_do_task(uc, f, idx, closure);
  _mm_setcsr(saved);
  return r;
}

int clean_do_loop_task(void* uc, halide_loop_task_t f, int min, int extent, uint8_t* closure,
                       void* parent) {
  const unsigned saved = _mm_getcsr();
  _mm_setcsr(kDefaultCsr);
  const int r = halide_default_do_loop_task(uc, f, min, extent, closure, parent);
  _mm_setcsr(saved);
  return r;
}

constexpr int kMaxThreads = 256;  // Halide's thread pool limit
std::atomic<int> g_requested_threads{0};

int effective_threads(int requested) {
  int n = requested > 0 ? requested : halide_host_cpu_count();
  if (n < 1) n = 1;
  return n > kMaxThreads ? kMaxThreads : n;
}

pthread_once_t g_hooks_once = PTHREAD_ONCE_INIT;

void install_hooks() {
  halide_set_error_handler(on_halide_error);
  halide_set_custom_do_task(clean_do_task);
  halide_set_custom_do_loop_task(clean_do_loop_task);
  halide_set_num_threads(effective_threads(g_requested_threads.load()));
}

void ensure_hooks() { pthread_once(&g_hooks_once, install_hooks); }

// ---- Buffers --------------------------------------------------------------------------------

struct Buf {
  halide_buffer_t b;
  halide_dimension_t dim[3];
};

// Strides picks xs, ys or ks from each axis.
void make_buf(Buf* out, const Tensor& t, int64_t offset, halide_type_t type, const Call& c,
              const Plan& p, int64_t Axis::*stride) {
  *out = Buf{};
  for (int d = 0; d < 3; d++) {
    out->dim[d].min = 0;
    out->dim[d].extent = int32_t(c.extent[d]);
    out->dim[d].stride = int32_t(p.inner[d].*stride);
  }
  out->b.host = reinterpret_cast<uint8_t*>(uintptr_t(t.base + uint64_t(offset * t.itemsize)));
  out->b.type = type;
  out->b.dimensions = 3;
  out->b.dim = out->dim;
}

sdrop_status status_of(int code) {
  if (code == halide_error_code_out_of_memory) {
    return fail(SDROP_ERROR_OUT_OF_MEMORY, "out of memory in a kernel: %s", g_halide_message);
  }
  return fail(SDROP_ERROR_INTERNAL, "kernel failed with Halide error %d: %s", code,
              g_halide_message[0] ? g_halide_message : "(no message)");
}

}  // namespace

void ensure_halide_hooks() { ensure_hooks(); }
const char* halide_message() { return g_halide_message; }
void clear_halide_message() { g_halide_message[0] = '\0'; }

sdrop_status run_plan(Backend backend, Op op, DType dtype, const Plan& plan, const Tensor* x,
                      const Tensor& y, const Tensor* k, const KernelArgs& a) {
  if (backend != Backend::cpu) return run_plan_gpu(backend, op, dtype, plan, x, y, k, a);
  Isa isa;
  if (sdrop_status s = select_isa(&isa)) return s;
  ensure_hooks();
  g_halide_message[0] = '\0';
  const int i = int(isa), dt = int(dtype), sh = int(plan.shape);
  const halide_type_t out_type = storage_type(op == Op::mask ? DType::u8 : dtype);
  const halide_type_t in_type = storage_type(dtype);
  // Work that fits in a core's cache runs on the calling thread: waking the pool costs more
  // than the second thread saves there.
  const bool serial = get_num_threads() == 1 ||
                      uint64_t(y.numel) * uint64_t(y.itemsize) <= uint64_t(SDROP_SERIAL_BYTES);
  bool fits = true;
  const int code = for_each_call(plan, [&](const Call& c) {
    fits = buffer_fits(y, c.y0, c, plan, &Axis::ys) &&
           (!x || buffer_fits(*x, c.x0, c, plan, &Axis::xs)) &&
           (!k || buffer_fits(*k, c.k0, c, plan, &Axis::ks)) &&
           (op == Op::apply_mask || mask_indices_fit(c, plan));
    if (!fits) return -1;
    Buf xb, yb, kb;
    make_buf(&yb, y, c.y0, out_type, c, plan, &Axis::ys);
    if (x) make_buf(&xb, *x, c.x0, in_type, c, plan, &Axis::xs);
    const int64_t ms0 = plan.inner[0].ms, ms1 = plan.inner[1].ms, ms2 = plan.inner[2].ms;
    switch (op) {
      case Op::dropout:
        return g_table.dropout[i][sh][dt](&xb.b, a.seed, a.offset, c.m0, ms0, ms1, ms2,
                                          a.threshold, a.keep_all, a.multiply, a.scale_f32,
                                          a.scale_f64, serial, &yb.b);
      case Op::apply_mask:
        make_buf(&kb, *k, c.k0, storage_type(DType::u8), c, plan, &Axis::ks);
        return g_table.apply_mask[i][dt](&xb.b, &kb.b, a.keep_none, a.multiply, a.scale_f32,
                                         a.scale_f64, serial, &yb.b);
      case Op::mask:
        return g_table.mask[i](a.seed, a.offset, c.m0, ms0, ms1, ms2, a.threshold, a.keep_all,
                               serial, &yb.b);
    }
    return -1;
  });
  if (!fits) return unfit_call();
  return code == 0 ? SDROP_OK : status_of(code);
}

void set_num_threads(int n) {
  if (n < 0) n = 0;
  g_requested_threads.store(n);
  ensure_hooks();
  halide_set_num_threads(effective_threads(n));
}

int get_num_threads() { return effective_threads(g_requested_threads.load()); }

}  // namespace sdrop
