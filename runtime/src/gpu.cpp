#include "gpu.h"

#include <dlfcn.h>
#include <pthread.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "HalideRuntime.h"
#include "HalideRuntimeCuda.h"
#include "HalideRuntimeOpenCL.h"
#include "call_check.h"
#include "error.h"
#include "kernel_table.h"
#include "sdrop_kernels.h"  // generated: prototypes + SDROP_FOR_EACH_GPU_KERNEL

namespace sdrop {
namespace {

// ---- The caller's handles, per thread ------------------------------------------------------

thread_local void* t_cu_context = nullptr;
thread_local void* t_cu_stream = nullptr;
thread_local void* t_cl_context = nullptr;
thread_local void* t_cl_queue = nullptr;
// What the Halide runtime's hooks hand out during the call in flight on this thread.
thread_local void* t_active_cu_context = nullptr;

// ---- Driver entry points, opened at run time -----------------------------------------------

// Sonames tried in order: the runtime package's versioned name first (a machine with only
// the driver has libcuda.so.1 / libOpenCL.so.1, not the development symlinks).
void* open_first(const char* const* names) {
  for (const char* const* n = names; *n; n++) {
    if (void* h = dlopen(*n, RTLD_LAZY | RTLD_LOCAL)) return h;
  }
  return nullptr;
}

void* g_libcuda = nullptr;
void* g_libopencl = nullptr;
pthread_once_t g_libcuda_once = PTHREAD_ONCE_INIT;
pthread_once_t g_libopencl_once = PTHREAD_ONCE_INIT;

void open_libcuda() {
  static const char* const names[] = {"libcuda.so.1", "libcuda.so", nullptr};
  g_libcuda = open_first(names);
}
void open_libopencl() {
  static const char* const names[] = {"libOpenCL.so.1", "libOpenCL.so", nullptr};
  g_libopencl = open_first(names);
}

void* cuda_symbol(const char* name) {
  pthread_once(&g_libcuda_once, open_libcuda);
  return g_libcuda ? dlsym(g_libcuda, name) : nullptr;
}
void* opencl_symbol(const char* name) {
  pthread_once(&g_libopencl_once, open_libopencl);
  return g_libopencl ? dlsym(g_libopencl, name) : nullptr;
}

template <typename Fn>
bool load(Fn* fn, void* (*lookup)(const char*), const char* name) {
  *fn = reinterpret_cast<Fn>(lookup(name));
  return *fn != nullptr;
}

}  // namespace
}  // namespace sdrop

// The Halide runtime looks its driver entry points up through these (weak in the runtime;
// these definitions replace them), so it shares our handles and our soname choice.
extern "C" void* halide_cuda_get_symbol(void*, const char* name) {
  return sdrop::cuda_symbol(name);
}
extern "C" void* halide_opencl_get_symbol(void*, const char* name) {
  return sdrop::opencl_symbol(name);
}

// OpenCL: the Halide runtime asks for a context and queue here (weak in the runtime; these
// definitions replace them). The caller's, per thread; none is ever created. With
// create == false (the runtime's clean-up at exit) there is none to give: the caller's
// handles may be gone by then.
extern "C" int halide_acquire_cl_context(void*, void** ctx, void** queue, bool create) {
  if (!create || !sdrop::t_cl_context) {
    *ctx = nullptr;
    *queue = nullptr;
    return create ? -1 : 0;
  }
  *ctx = sdrop::t_cl_context;
  *queue = sdrop::t_cl_queue;
  return 0;
}
extern "C" int halide_release_cl_context(void*) { return 0; }

namespace sdrop {
namespace {

// ---- CUDA driver API, declared here: the library builds without the CUDA toolkit -------

using CUresult = int;
using CUdevice = int;
using CUcontext = void*;
using CUdeviceptr = unsigned long long;
constexpr int kCuPointerAttributeDeviceOrdinal = 9;
constexpr int kCuPointerAttributeRangeStartAddr = 11;
constexpr int kCuPointerAttributeRangeSize = 12;

struct CudaApi {
  CUresult (*cuInit)(unsigned) = nullptr;
  CUresult (*cuDeviceGetCount)(int*) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice*, int) = nullptr;
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice) = nullptr;
  CUresult (*cuCtxPushCurrent)(CUcontext) = nullptr;
  CUresult (*cuCtxPopCurrent)(CUcontext*) = nullptr;
  CUresult (*cuCtxGetDevice)(CUdevice*) = nullptr;
  CUresult (*cuPointerGetAttribute)(void*, int, CUdeviceptr) = nullptr;
  CUresult (*cuGetErrorName)(CUresult, const char**) = nullptr;
  bool ok = false;
  CUresult init_result = 0;
};

CudaApi g_cuda;
pthread_once_t g_cuda_once = PTHREAD_ONCE_INIT;

void load_cuda() {
  CudaApi a;
  a.ok = load(&a.cuInit, cuda_symbol, "cuInit") &&
         load(&a.cuDeviceGetCount, cuda_symbol, "cuDeviceGetCount") &&
         load(&a.cuDeviceGet, cuda_symbol, "cuDeviceGet") &&
         load(&a.cuDevicePrimaryCtxRetain, cuda_symbol, "cuDevicePrimaryCtxRetain") &&
         load(&a.cuCtxPushCurrent, cuda_symbol, "cuCtxPushCurrent_v2") &&
         load(&a.cuCtxPopCurrent, cuda_symbol, "cuCtxPopCurrent_v2") &&
         load(&a.cuCtxGetDevice, cuda_symbol, "cuCtxGetDevice") &&
         load(&a.cuPointerGetAttribute, cuda_symbol, "cuPointerGetAttribute") &&
         load(&a.cuGetErrorName, cuda_symbol, "cuGetErrorName");
  if (a.ok) a.init_result = a.cuInit(0);
  g_cuda = a;
}

// "CUDA_ERROR_NO_DEVICE (100)"; one thread-local buffer, enough for one message.
const char* cu_name(CUresult r) {
  thread_local char buf[96];
  const char* s = nullptr;
  if (g_cuda.cuGetErrorName && g_cuda.cuGetErrorName(r, &s) != 0) s = nullptr;
  std::snprintf(buf, sizeof buf, "%s (%d)", s ? s : "CUresult", r);
  return buf;
}

// Primary contexts, retained once per device and kept for the life of the process.
constexpr int kMaxCudaDevices = 64;
CUcontext g_primary[kMaxCudaDevices] = {};
pthread_mutex_t g_primary_lock = PTHREAD_MUTEX_INITIALIZER;

// The context a CUDA call runs in, checked against the tensors' device.
sdrop_status cuda_context_for(const Tensor& t, CUcontext* out) {
  pthread_once(&g_cuda_once, load_cuda);
  if (!g_cuda.ok) {
    return fail(SDROP_ERROR_BACKEND_UNAVAILABLE,
                "%s is on CUDA, but no CUDA driver could be loaded (libcuda.so.1: %s)", t.name,
                g_libcuda ? "missing entry points" : "not found");
  }
  if (g_cuda.init_result != 0) {
    return fail(SDROP_ERROR_BACKEND_UNAVAILABLE, "%s is on CUDA, but cuInit failed: %s",
                t.name, cu_name(g_cuda.init_result));
  }
  int count = 0;
  if (CUresult r = g_cuda.cuDeviceGetCount(&count)) {
    return fail(SDROP_ERROR_BACKEND_UNAVAILABLE, "cuDeviceGetCount failed: %s", cu_name(r));
  }
  const int id = t.device.id;
  if (id < 0 || id >= count || id >= kMaxCudaDevices) {
    return fail(SDROP_ERROR_BACKEND_UNAVAILABLE,
                "%s is on cuda:%d, but this machine has %d CUDA device(s)", t.name, id, count);
  }
  if (CUcontext c = t_cu_context) {
    // The caller's context: it must be on the tensors' device.
    CUdevice dev = -1;
    CUresult r = g_cuda.cuCtxPushCurrent(c);
    if (r == 0) {
      r = g_cuda.cuCtxGetDevice(&dev);
      CUcontext popped;
      g_cuda.cuCtxPopCurrent(&popped);
    }
    if (r != 0) {
      return fail(SDROP_ERROR_BACKEND_UNAVAILABLE,
                  "the CUDA context set with sdrop_set_cuda_stream is not usable: %s",
                  cu_name(r));
    }
    if (dev != id) {
      return fail(SDROP_ERROR_INVALID_ARGUMENT,
                  "the CUDA context set with sdrop_set_cuda_stream is on device %d, but %s is "
                  "on cuda:%d",
                  dev, t.name, id);
    }
    *out = c;
    return SDROP_OK;
  }
  pthread_mutex_lock(&g_primary_lock);
  CUresult r = 0;
  if (!g_primary[id]) {
    CUdevice dev;
    r = g_cuda.cuDeviceGet(&dev, id);
    if (r == 0) r = g_cuda.cuDevicePrimaryCtxRetain(&g_primary[id], dev);
  }
  *out = g_primary[id];
  pthread_mutex_unlock(&g_primary_lock);
  if (r != 0) {
    return fail(SDROP_ERROR_BACKEND_UNAVAILABLE,
                "cannot use the primary context of cuda:%d: %s", id, cu_name(r));
  }
  return SDROP_OK;
}

// The tensor's bytes lie in one allocation on its device (a host pointer handed over as
// kDLCUDA would otherwise fault on the device and poison the caller's context). Called with
// the call's context current.
sdrop_status check_cuda_memory(const Tensor& t) {
  if (t.numel == 0) return SDROP_OK;
  const int64_t lo = t.lo, hi = t.hi;  // describe() proved base + lo .. base + hi do not wrap
  const CUdeviceptr first = CUdeviceptr(t.base + uint64_t(lo));
  int ordinal = -1;
  CUdeviceptr start = 0;
  size_t size = 0;
  CUresult r = g_cuda.cuPointerGetAttribute(&ordinal, kCuPointerAttributeDeviceOrdinal, first);
  if (r == 0) r = g_cuda.cuPointerGetAttribute(&start, kCuPointerAttributeRangeStartAddr, first);
  if (r == 0) r = g_cuda.cuPointerGetAttribute(&size, kCuPointerAttributeRangeSize, first);
  if (r != 0) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "%s.data %p (+ byte_offset) is not CUDA device memory: %s", t.name, t.data,
                cu_name(r));
  }
  if (ordinal != t.device.id) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.data is memory of cuda:%d, not cuda:%d",
                t.name, ordinal, int(t.device.id));
  }
  if (uint64_t(hi - lo) > uint64_t(start + size - first)) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "%s reaches %" PRId64 " bytes past its allocation of %zu bytes", t.name,
                int64_t(first - start) + (hi - lo) - int64_t(size), size);
  }
  return SDROP_OK;
}

int cuda_acquire(void*, void** ctx, bool create) {
  *ctx = create ? t_active_cu_context : nullptr;
  return create && !*ctx ? -1 : 0;
}
int cuda_release(void*) { return 0; }
int cuda_get_stream(void*, void*, void** stream) {
  *stream = t_cu_stream;
  return 0;
}

pthread_once_t g_cuda_hooks_once = PTHREAD_ONCE_INIT;
void install_cuda_hooks() {
  halide_set_cuda_acquire_context(cuda_acquire);
  halide_set_cuda_release_context(cuda_release);
  halide_set_cuda_get_stream(cuda_get_stream);
}

// ---- OpenCL API, declared here for the same reason ------------------------------------------

using cl_int = int32_t;
using cl_uint = uint32_t;
constexpr cl_uint kClQueueContext = 0x1090;
constexpr cl_uint kClQueueDevice = 0x1091;
constexpr cl_uint kClDeviceExtensions = 0x1030;
constexpr cl_uint kClMemType = 0x1100;
constexpr cl_uint kClMemSize = 0x1102;
constexpr cl_uint kClMemContext = 0x1106;
constexpr cl_uint kClMemObjectBuffer = 0x10F0;

struct OpenClApi {
  cl_int (*clGetCommandQueueInfo)(void*, cl_uint, size_t, void*, size_t*) = nullptr;
  cl_int (*clGetDeviceInfo)(void*, cl_uint, size_t, void*, size_t*) = nullptr;
  cl_int (*clGetMemObjectInfo)(void*, cl_uint, size_t, void*, size_t*) = nullptr;
  bool ok = false;
};

OpenClApi g_cl;
pthread_once_t g_cl_once = PTHREAD_ONCE_INIT;

void load_opencl() {
  OpenClApi a;
  a.ok = load(&a.clGetCommandQueueInfo, opencl_symbol, "clGetCommandQueueInfo") &&
         load(&a.clGetDeviceInfo, opencl_symbol, "clGetDeviceInfo") &&
         load(&a.clGetMemObjectInfo, opencl_symbol, "clGetMemObjectInfo");
  g_cl = a;
}

sdrop_status check_opencl_queue(const Tensor& t, DType dtype) {
  pthread_once(&g_cl_once, load_opencl);
  if (!g_cl.ok) {
    return fail(SDROP_ERROR_BACKEND_UNAVAILABLE,
                "%s is on OpenCL, but no OpenCL ICD loader could be loaded (libOpenCL.so.1)",
                t.name);
  }
  if (!t_cl_context) {
    return fail(SDROP_ERROR_BACKEND_UNAVAILABLE,
                "%s is on OpenCL, but this thread has no OpenCL queue: call "
                "sdrop_set_opencl_queue(context, queue) first",
                t.name);
  }
  void* qctx = nullptr;
  void* device = nullptr;
  cl_int r = g_cl.clGetCommandQueueInfo(t_cl_queue, kClQueueContext, sizeof qctx, &qctx, nullptr);
  if (r == 0) r = g_cl.clGetCommandQueueInfo(t_cl_queue, kClQueueDevice, sizeof device, &device, nullptr);
  if (r != 0) {
    return fail(SDROP_ERROR_BACKEND_UNAVAILABLE,
                "the OpenCL queue set with sdrop_set_opencl_queue is not usable (error %d)", r);
  }
  if (qctx != t_cl_context) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "the OpenCL queue set with sdrop_set_opencl_queue belongs to another context");
  }
  if (dtype == DType::f64) {
    char ext[4096] = {};
    r = g_cl.clGetDeviceInfo(device, kClDeviceExtensions, sizeof ext - 1, ext, nullptr);
    if (r != 0 || !std::strstr(ext, "cl_khr_fp64")) {
      return fail(SDROP_ERROR_UNSUPPORTED,
                  "%s is float64, but the OpenCL device of the queue lacks cl_khr_fp64", t.name);
    }
  }
  return SDROP_OK;
}

// Element indices from the start of the cl_mem stay below this (the kernels index in int32).
constexpr int64_t kOpenClIndexLimit = (int64_t(1) << 31) - 1;

// The tensor is a buffer of the queue's context and its bytes lie inside it.
sdrop_status check_cl_mem(const Tensor& t) {
  if (t.numel == 0) return SDROP_OK;
  void* ctx = nullptr;
  cl_uint type = 0;
  size_t size = 0;
  cl_int r = g_cl.clGetMemObjectInfo(t.data, kClMemContext, sizeof ctx, &ctx, nullptr);
  if (r == 0) r = g_cl.clGetMemObjectInfo(t.data, kClMemType, sizeof type, &type, nullptr);
  if (r == 0) r = g_cl.clGetMemObjectInfo(t.data, kClMemSize, sizeof size, &size, nullptr);
  if (r != 0 || type != kClMemObjectBuffer) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.data %p is not an OpenCL buffer (cl_mem)%s",
                t.name, t.data, r != 0 ? "" : ": it is an image or pipe");
  }
  if (ctx != t_cl_context) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "%s.data is a cl_mem of another context than the one set with "
                "sdrop_set_opencl_queue",
                t.name);
  }
  // base is the offset into the cl_mem, at most 2^60, and lo, hi its footprint (describe()).
  const int64_t lo = t.lo, hi = t.hi, offset = int64_t(t.base);
  if (offset + lo < 0 || uint64_t(offset + hi) > uint64_t(size)) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "%s spans bytes [%" PRId64 ", %" PRId64 ") of its cl_mem, which has %zu", t.name,
                offset + lo, offset + hi, size);
  }
  if ((offset + hi) / t.itemsize > kOpenClIndexLimit) {
    return fail(SDROP_ERROR_UNSUPPORTED,
                "%s reaches element %" PRId64 " of its cl_mem; OpenCL calls take the first 2^31",
                t.name, (offset + hi) / t.itemsize);
  }
  return SDROP_OK;
}

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
                          const KernelArgs& a) {
  const Tensor* tensors[3] = {x, &y, k};
  if (backend == Backend::cuda) {
    CUcontext ctx = nullptr;
    if (sdrop_status s = cuda_context_for(y, &ctx)) return s;
    // One push for every tensor's pointer check.
    if (CUresult r = g_cuda.cuCtxPushCurrent(ctx)) {
      return fail(SDROP_ERROR_BACKEND_UNAVAILABLE, "cannot make the CUDA context current: %s",
                  cu_name(r));
    }
    sdrop_status checked = SDROP_OK;
    for (const Tensor* t : tensors) {
      if (t && checked == SDROP_OK) checked = check_cuda_memory(*t);
    }
    CUcontext popped;
    g_cuda.cuCtxPopCurrent(&popped);
    if (checked != SDROP_OK) return checked;
    pthread_once(&g_cuda_hooks_once, install_cuda_hooks);
    t_active_cu_context = ctx;
  } else {
    if (sdrop_status s = check_opencl_queue(y, dtype)) return s;
    for (const Tensor* t : tensors) {
      if (t) {
        if (sdrop_status s = check_cl_mem(*t)) return s;
      }
    }
  }
  ensure_halide_hooks();
  clear_halide_message();
  const int b = backend == Backend::cuda ? cuda : opencl;
  const int dt = int(dtype), sh = int(plan.shape);
  const halide_type_t out_type = storage_type(op == Op::mask ? DType::u8 : dtype);
  const halide_type_t in_type = storage_type(dtype);
  bool fits = true;
  const int code = for_each_call(plan, [&](const Call& c) {
    fits = buffer_fits(y, c.y0, c, plan, &Axis::ys) &&
           (!x || buffer_fits(*x, c.x0, c, plan, &Axis::xs)) &&
           (!k || buffer_fits(*k, c.k0, c, plan, &Axis::ks)) &&
           (op == Op::apply_mask || mask_indices_fit(c, plan));
    if (!fits) return -1;
    DeviceBuf xb, yb, kb;
    int r = wrap(&yb, backend, y, c.y0, out_type, c, plan, &Axis::ys);
    if (r == 0 && x) r = wrap(&xb, backend, *x, c.x0, in_type, c, plan, &Axis::xs);
    if (r == 0 && k) r = wrap(&kb, backend, *k, c.k0, storage_type(DType::u8), c, plan, &Axis::ks);
    const int64_t ms0 = plan.inner[0].ms, ms1 = plan.inner[1].ms, ms2 = plan.inner[2].ms;
    if (r == 0) {
      switch (op) {
        case Op::dropout:
          r = g_table.dropout[b][sh][dt](&xb.b, a.seed, a.offset, c.m0, ms0, ms1, ms2,
                                         a.threshold, a.keep_all, a.multiply, a.scale_f32,
                                         a.scale_f64, false, &yb.b);
          break;
        case Op::apply_mask:
          r = g_table.apply_mask[b][dt](&xb.b, &kb.b, a.keep_none, a.multiply, a.scale_f32,
                                        a.scale_f64, false, &yb.b);
          break;
        case Op::mask:
          r = g_table.mask[b](a.seed, a.offset, c.m0, ms0, ms1, ms2, a.threshold, a.keep_all,
                              false, &yb.b);
          break;
      }
    }
    unwrap(&kb, backend);
    unwrap(&xb, backend);
    unwrap(&yb, backend);
    return r;
  });
  t_active_cu_context = nullptr;
  if (!fits) return unfit_call();
  return code == 0 ? SDROP_OK : gpu_failure(backend, code);
}

void set_cuda_stream(void* context, void* stream) {
  t_cu_context = context;
  t_cu_stream = stream;
}

void get_cuda_stream(void** context, void** stream) {
  if (context) *context = t_cu_context;
  if (stream) *stream = t_cu_stream;
}

sdrop_status set_opencl_queue(void* context, void* queue) {
  if (!context != !queue) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "sdrop_set_opencl_queue needs both a context and a queue, or neither; got "
                "context %p, queue %p",
                context, queue);
  }
  t_cl_context = context;
  t_cl_queue = queue;
  return SDROP_OK;
}

void get_opencl_queue(void** context, void** queue) {
  if (context) *context = t_cl_context;
  if (queue) *queue = t_cl_queue;
}

}  // namespace sdrop
