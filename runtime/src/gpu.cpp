#include "gpu.h"

#include <cstdlib>
#include <cstring>

#include "HalideRuntime.h"
#include "HalideRuntimeCuda.h"
#include "HalideRuntimeOpenCL.h"
#include "bias_grad.h"
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

// The kernels' 4th dim is the origin, read and written at coordinate 0: its min is -1 and its
// stride the element offset of (0, 0, 0) from the device handle, so (0 - min) * stride is that
// offset. Not min = -offset with stride 1: the buffers of a Tuple output (the backward's
// dresidual and dx) are addressed with the first one's mins, and the two may sit at different
// offsets of their cl_mems; each keeps its own strides.
struct DeviceBuf {
  halide_buffer_t b;
  halide_dimension_t dim[4];
  bool wrapped = false;
};

// Attaches the backend's native handle (a CUdeviceptr, a cl_mem) to out->b, whose dims are set.
int wrap_native(DeviceBuf* out, Backend backend, uint64_t handle) {
  const int r = backend == Backend::cuda ? halide_cuda_wrap_device_ptr(nullptr, &out->b, handle)
                                         : halide_opencl_wrap_cl_mem(nullptr, &out->b, handle);
  out->wrapped = r == 0;
  return r;
}

// CUDA: the device pointer is advanced to element (0, 0, 0); OpenCL: the cl_mem itself, with
// the offset in the origin dim. s: the element strides of the kernel dims.
int wrap(DeviceBuf* out, Backend backend, const Tensor& t, int64_t offset, halide_type_t type,
         const Call& c, const int64_t* s) {
  *out = DeviceBuf{};
  for (int d = 0; d < 3; d++) {
    out->dim[d].min = 0;
    out->dim[d].extent = int32_t(c.extent[d]);
    out->dim[d].stride = int32_t(s[d]);
  }
  int64_t origin = 0;
  uint64_t handle = 0;
  if (backend == Backend::cuda) {
    handle = t.base + uint64_t(offset * t.itemsize);
  } else {
    origin = int64_t(t.base) / t.itemsize + offset;  // base: an offset into the cl_mem
    handle = uint64_t(reinterpret_cast<uintptr_t>(t.data));
  }
  out->dim[3].min = -1;
  out->dim[3].extent = 1;
  out->dim[3].stride = int32_t(origin);
  out->b.type = type;
  out->b.dimensions = 4;
  out->b.dim = out->dim;
  return wrap_native(out, backend, handle);
}

// A tensor with the plan's strides (xs, ys, ... picked by `stride`).
int wrap(DeviceBuf* out, Backend backend, const Tensor& t, int64_t offset, halide_type_t type,
         const Call& c, const Plan& p, int64_t Axis::*stride) {
  const int64_t s[3] = {p.inner[0].*stride, p.inner[1].*stride, p.inner[2].*stride};
  return wrap(out, backend, t, offset, type, c, s);
}

// The epilogue's bias (bias_view, as on the CPU).
int wrap_bias(DeviceBuf* out, Backend backend, const Tensor& t, halide_type_t type,
              const Call& c, const Plan& p) {
  const BiasView v = bias_view(t.strides[0], c, p);
  return wrap(out, backend, t, v.first, type, c, v.strides);
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

// Device memory of the call's backend, allocated through the Halide runtime in the caller's
// context (CUDA: only between begin_cuda_call and end_cuda_call) and freed on destruction.
class DeviceScratch {
 public:
  DeviceScratch() = default;
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  ~DeviceScratch() {
    if (allocated_) halide_device_free(nullptr, &b_);
  }

  // At least `bytes` bytes: a 2-D uint8 buffer of rows of 2^20, each extent within 32 bits.
  int allocate(Backend backend, int64_t bytes) {
    backend_ = backend;
    constexpr int64_t kRow = int64_t(1) << 20;
    const int64_t rows = (bytes + kRow - 1) / kRow;
    dim_[0] = halide_dimension_t(0, int32_t(bytes < kRow ? bytes : kRow), 1);
    dim_[1] = halide_dimension_t(0, int32_t(rows < 1 ? 1 : rows), int32_t(kRow));
    b_ = halide_buffer_t{};
    b_.type = halide_type_t(halide_type_uint, 8);
    b_.dimensions = 2;
    b_.dim = dim_;
    const int r = halide_device_malloc(nullptr, &b_,
                                       backend == Backend::cuda ? halide_cuda_device_interface()
                                                                : halide_opencl_device_interface());
    allocated_ = r == 0;
    return r;
  }
  // The native handle: a CUdeviceptr, or a cl_mem.
  uint64_t handle() {
    return backend_ == Backend::cuda ? uint64_t(halide_cuda_get_device_ptr(nullptr, &b_))
                                     : uint64_t(halide_opencl_get_cl_mem(nullptr, &b_));
  }

 private:
  Backend backend_ = Backend::cuda;
  halide_buffer_t b_ = {};
  halide_dimension_t dim_[2] = {};
  bool allocated_ = false;
};

// A tensor over device scratch `handle` laid out as `like` (same strides, same footprint), so
// the plan made for `like` addresses it.
Tensor scratch_like(const Tensor& like, Backend backend, uint64_t handle) {
  Tensor t = like;
  t.name = "dresidual scratch";
  t.data = reinterpret_cast<void*>(uintptr_t(handle));
  t.base = (backend == Backend::cuda ? handle : 0) + uint64_t(-like.lo);
  return t;
}

// Host bytes -> the device's n bytes at `byte_offset` from t's base (a CUDA address, or an
// offset into t's cl_mem).
sdrop_status write_device(Backend backend, const Tensor& t, int64_t byte_offset, const void* src,
                          size_t n) {
  if (backend == Backend::cuda) return cuda_write(t.base + uint64_t(byte_offset), src, n);
  return opencl_write(t.data, t.base + uint64_t(byte_offset), src, n);
}

// dbias's elements from `values` (compact host bytes): one copy when its elements are
// adjacent in increasing order, else one per element (the bytes between them are not its).
sdrop_status write_channels(Backend backend, const Tensor& dbias, const uint8_t* values) {
  const int64_t n = dbias.shape[0], stride = dbias.strides[0], item = dbias.itemsize;
  if (n == 0) return SDROP_OK;
  if (n == 1 || stride == 1) return write_device(backend, dbias, 0, values, size_t(n * item));
  for (int64_t i = 0; i < n; i++) {
    if (sdrop_status s = write_device(backend, dbias, i * stride * item, values + i * item,
                                      size_t(item))) {
      return s;
    }
  }
  return SDROP_OK;
}

// Device bytes at the start of scratch `handle` -> host.
sdrop_status read_device(Backend backend, uint64_t handle, void* dst, size_t n) {
  if (backend == Backend::cuda) return cuda_read(handle, dst, n);
  return opencl_read(reinterpret_cast<void*>(uintptr_t(handle)), 0, dst, n);
}

sdrop_status begin_call(Backend backend, const Tensor* const* tensors, int n, DType dtype) {
  return backend == Backend::cuda ? begin_cuda_call(tensors, n)
                                  : begin_opencl_call(tensors, n, dtype);
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
                          const KernelArgs& a, RunInfo* info, const EpilogueOperands* e) {
  const bool cuda_call = backend == Backend::cuda;
  const EpilogueOperands none;
  const EpilogueOperands& ops = e ? *e : none;
  const Tensor* tensors[8] = {&y, x, k, ops.bias, ops.residual, ops.dy, ops.dresidual, ops.dbias};
  info->variant = cuda_call ? "cuda" : "opencl";
  if (sdrop_status s = begin_call(backend, tensors, 8, dtype)) return s;
  ensure_halide_hooks();
  clear_halide_message();
  const int v = cuda_call ? cuda : opencl;
  const halide_type_t out_type = storage_type(op == Op::mask ? DType::u8 : dtype);
  const halide_type_t in_type = storage_type(dtype);
  // Scratch first, before any kernel (running out of memory writes nothing); freed before
  // end_cuda_call, while the call's context is still the runtime's. `code`: a Halide error.
  int code = 0;
  const sdrop_status status = [&]() -> sdrop_status {
    EpilogueOperands call_ops = ops;
    DeviceScratch dr_mem, rows_mem;
    Tensor dr_scratch;
    if (ops.dr_scratch) {
      code = dr_mem.allocate(backend, y.hi - y.lo);
      if (code != 0) return SDROP_OK;
      dr_scratch = scratch_like(y, backend, dr_mem.handle());
      call_ops.dresidual = &dr_scratch;
    }
    BiasGrad bias_grad;
    uint64_t rows_handle = 0;
    if (ops.dbias) {
      if (sdrop_status s = bias_grad.reserve(plan, dtype, ops.dbias->shape[0])) return s;
      code = rows_mem.allocate(backend, bias_grad.most_rows() * bias_grad.row_bytes());
      if (code != 0) return SDROP_OK;
      rows_handle = rows_mem.handle();
    }
    sdrop_status copy_status = SDROP_OK;
    constexpr int kCopyFailed = -1000;  // not a Halide error code: copy_status says what
    const sdrop_status proven = for_each_proven_call(
        op, plan, x, y, k, e ? &call_ops : nullptr, &info->calls, &code, [&](const Call& c) {
          DeviceBuf xb, yb, kb, rb, dyb, drb, sb;
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
          if (r == 0 && e) {
            // Absent operands: x stands in for the bias and the residual (the kernels read
            // a stand-in, if at all, only at the element they compute: never one another
            // thread writes in place; the nests for has_residual == false load none), dx for
            // dresidual (the same values written twice).
            b.k = b.x;
            b.r = b.x;
            if (call_ops.bias) {
              r = wrap_bias(&kb, backend, *call_ops.bias, in_type, c, plan);
              b.k = &kb.b;
            }
            if (r == 0 && call_ops.residual) {
              r = wrap(&rb, backend, *call_ops.residual, c.r0, in_type, c, plan, &Axis::rs);
              b.r = &rb.b;
            }
            if (r == 0 && call_ops.dy) {
              r = wrap(&dyb, backend, *call_ops.dy, c.dy0, in_type, c, plan, &Axis::dys);
              b.dy = &dyb.b;
            }
            b.dr = b.y;
            if (r == 0 && call_ops.dresidual) {
              r = wrap(&drb, backend, *call_ops.dresidual, c.dr0, in_type, c, plan, &Axis::drs);
              b.dr = &drb.b;
            }
          }
          if (r == 0) r = call_kernel(g_table, v, op, plan.shape, dtype, a, plan, c, b, false, false);
          if (r == 0 && ops.dbias) {
            // This call's row sums of dx on the device, then on the host for their channels.
            const halide_buffer_t* host_rows = bias_grad.rows_buffer(c, plan.shape);
            sb = DeviceBuf{};
            sb.dim[0] = host_rows->dim[0];
            sb.dim[1] = host_rows->dim[1];
            sb.b.type = host_rows->type;
            sb.b.dimensions = 2;
            sb.b.dim = sb.dim;
            r = wrap_native(&sb, backend, rows_handle);
            CallBuffers sums;
            sums.x = b.y;
            sums.y = &sb.b;
            if (r == 0) {
              r = call_kernel(g_table, v, Op::channel_sum, plan.shape, dtype, a, plan, c, sums,
                              false, false);
            }
            if (r == 0) {
              const size_t bytes = size_t(sb.dim[0].extent) * size_t(sb.dim[1].extent) *
                                   size_t(bias_grad.row_bytes());
              copy_status = read_device(backend, rows_handle, host_rows->host, bytes);
              if (copy_status != SDROP_OK) r = kCopyFailed;
            }
            if (r == 0) bias_grad.add(c, plan);
          }
          unwrap(&sb, backend);
          unwrap(&drb, backend);
          unwrap(&dyb, backend);
          unwrap(&rb, backend);
          unwrap(&kb, backend);
          unwrap(&xb, backend);
          unwrap(&yb, backend);
          return r;
        });
    if (proven != SDROP_OK) return proven;
    if (code == kCopyFailed) {
      code = 0;
      return copy_status;
    }
    if (code != 0 || !ops.dbias) return SDROP_OK;
    // The channel sums, rounded to the dtype as on the CPU, into the caller's dbias.
    const Tensor& dbias = *ops.dbias;
    uint8_t* staged = static_cast<uint8_t*>(std::malloc(size_t(dbias.shape[0] * dbias.itemsize)));
    if (!staged) {
      return fail(SDROP_ERROR_OUT_OF_MEMORY, "cannot allocate %lld bytes to stage dbias",
                  static_cast<long long>(dbias.shape[0] * dbias.itemsize));
    }
    bias_grad.store_at(staged, 1, dbias.itemsize, dtype);
    const sdrop_status s = write_channels(backend, dbias, staged);
    std::free(staged);
    return s;
  }();
  if (cuda_call) end_cuda_call();
  if (status != SDROP_OK) return status;
  return code == 0 ? SDROP_OK : gpu_failure(backend, code);
}

sdrop_status store_zero_bias_grad_gpu(Backend backend, const Tensor& dbias, DType dtype) {
  const Tensor* tensors[1] = {&dbias};
  if (sdrop_status s = begin_call(backend, tensors, 1, dtype)) return s;
  ensure_halide_hooks();
  sdrop_status s = SDROP_OK;
  if (dbias.shape[0] > 0) {
    // All bits 0 is +0.0 in every dtype.
    void* zeros = std::calloc(size_t(dbias.shape[0]), size_t(dbias.itemsize));
    s = zeros ? write_channels(backend, dbias, static_cast<const uint8_t*>(zeros))
              : fail(SDROP_ERROR_OUT_OF_MEMORY, "cannot allocate %lld bytes to stage dbias",
                     static_cast<long long>(dbias.shape[0] * dbias.itemsize));
    std::free(zeros);
  }
  if (backend == Backend::cuda) end_cuda_call();
  return s;
}

}  // namespace sdrop
