#include "gpu.h"

#include <cstring>

#include "HalideRuntime.h"
#include "HalideRuntimeCuda.h"
#include "HalideRuntimeOpenCL.h"
#include "cuda.h"
#include "error.h"
#include "halide_hooks.h"
#include "kernel_table.h"
#include "opencl.h"
#include "sdrop_kernels.h"  // generated: prototypes + SDROP_FOR_EACH_GPU_KERNEL

namespace sdrop {
namespace {

// ---- The GPU kernel table ------------------------------------------------------------------

constexpr int kBackends = 2;
using GpuTable = KernelTable<kBackends>;

// The backend tokens of the X-macro list.
enum { cuda = 0, opencl = 1 };

GpuTable make_table() {
  using namespace kernel_tokens;
  GpuTable t;
#define SDROP_PUT(op, shape, dtype, backend) \
  t.put(&hl_sdrop_##op##_##shape##_##dtype##_##backend, shape, dtype, backend);
  SDROP_FOR_EACH_GPU_KERNEL(SDROP_PUT)
#undef SDROP_PUT
  return t;
}

const GpuTable g_table = make_table();

// ---- Buffers -------------------------------------------------------------------------------

// The kernels' 4th dim is the origin: its min is minus the element offset of (0, 0, 0)
// from the device handle, which the kernels read and write at coordinate 0.
struct DeviceBuf {
  halide_buffer_t b;
  halide_dimension_t dim[4];
  bool wrapped = false;
};

// CUDA: the device pointer is advanced to element (0, 0, 0); OpenCL: the cl_mem itself, with
// the offset in the origin dim.
int wrap(DeviceBuf* out, Backend backend, const Tensor& t, int64_t offset, halide_type_t type,
         const Call& c, const Plan& p, int64_t Axis::*stride) {
  *out = DeviceBuf{};
  for (int d = 0; d < 3; d++) {
    out->dim[d].min = 0;
    out->dim[d].extent = int32_t(c.extent[d]);
    out->dim[d].stride = int32_t(p.inner[d].*stride);
  }
  int64_t origin = 0;
  uint64_t handle = 0;
  if (backend == Backend::cuda) {
    handle = t.base + uint64_t(offset * t.itemsize);
  } else {
    origin = int64_t(t.base) / t.itemsize + offset;  // base: an offset into the cl_mem
    handle = uint64_t(reinterpret_cast<uintptr_t>(t.data));
  }
  out->dim[3].min = int32_t(-origin);
  out->dim[3].extent = 1;
  out->dim[3].stride = 1;
  out->b.type = type;
  out->b.dimensions = 4;
  out->b.dim = out->dim;
  const int r = backend == Backend::cuda ? halide_cuda_wrap_device_ptr(nullptr, &out->b, handle)
                                         : halide_opencl_wrap_cl_mem(nullptr, &out->b, handle);
  out->wrapped = r == 0;
  return r;
}

void unwrap(DeviceBuf* b, Backend backend) {
  if (!b->wrapped) return;
  if (backend == Backend::cuda) {
    halide_cuda_detach_device_ptr(nullptr, &b->b);
  } else {
    halide_opencl_detach_cl_mem(nullptr, &b->b);
  }
  b->wrapped = false;
}

bool contains(const char* s, const char* what) { return std::strstr(s, what) != nullptr; }

sdrop_status gpu_failure(Backend backend, int code) {
  const char* api = backend == Backend::cuda ? "CUDA" : "OpenCL";
  const char* msg = halide_message()[0] ? halide_message() : "(no message)";
  if (code == halide_error_code_out_of_memory || contains(msg, "OUT_OF_MEMORY") ||
      contains(msg, "OUT_OF_RESOURCES") || contains(msg, "OUT_OF_HOST_MEMORY") ||
      contains(msg, "MEM_OBJECT_ALLOCATION_FAILURE")) {
    return fail(SDROP_ERROR_OUT_OF_MEMORY, "%s ran out of memory: %s", api, msg);
  }
  return fail(SDROP_ERROR_BACKEND_UNAVAILABLE, "%s kernel failed (Halide error %d): %s", api,
              code, msg);
}

}  // namespace

sdrop_status run_plan_gpu(Backend backend, Op op, DType dtype, const Plan& plan,
                          const Tensor* x, const Tensor& y, const Tensor* k,
                          const KernelArgs& a, RunInfo* info) {
  const Tensor* tensors[3] = {&y, x, k};
  const bool cuda_call = backend == Backend::cuda;
  info->variant = cuda_call ? "cuda" : "opencl";
  if (sdrop_status s = cuda_call ? begin_cuda_call(tensors, 3)
                                 : begin_opencl_call(tensors, 3, dtype)) {
    return s;
  }
  ensure_halide_hooks();
  clear_halide_message();
  const int v = cuda_call ? cuda : opencl;
  const halide_type_t out_type = storage_type(op == Op::mask ? DType::u8 : dtype);
  const halide_type_t in_type = storage_type(dtype);
  int code = 0;
  const sdrop_status proven = for_each_proven_call(op, plan, x, y, k, nullptr, &info->calls,
                                                   &code,
                                                   [&](const Call& c) {
    DeviceBuf xb, yb, kb;
    CallBuffers b;
    int r = wrap(&yb, backend, y, c.y0, out_type, c, plan, &Axis::ys);
    b.y = &yb.b;
    if (r == 0 && x) {
      r = wrap(&xb, backend, *x, c.x0, in_type, c, plan, &Axis::xs);
      b.x = &xb.b;
    }
    if (r == 0 && k) {
      r = wrap(&kb, backend, *k, c.k0, storage_type(DType::u8), c, plan, &Axis::ks);
      b.k = &kb.b;
    }
    if (r == 0) r = call_kernel(g_table, v, op, plan.shape, dtype, a, plan, c, b, false, false);
    unwrap(&kb, backend);
    unwrap(&xb, backend);
    unwrap(&yb, backend);
    return r;
  });
  if (cuda_call) end_cuda_call();
  if (proven != SDROP_OK) return proven;
  return code == 0 ? SDROP_OK : gpu_failure(backend, code);
}

}  // namespace sdrop
