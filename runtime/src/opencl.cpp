#include "opencl.h"

#include <pthread.h>

#include <cinttypes>
#include <cstring>

#include "drivers.h"
#include "error.h"

namespace sdrop {
namespace {

// The caller's handles, per thread.
thread_local void* t_cl_context = nullptr;
thread_local void* t_cl_queue = nullptr;

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
  // (queue, buffer, blocking, offset, size, host pointer, events...): the epilogue's dbias.
  cl_int (*clEnqueueReadBuffer)(void*, void*, cl_uint, size_t, size_t, void*, cl_uint,
                                const void*, void*) = nullptr;
  cl_int (*clEnqueueWriteBuffer)(void*, void*, cl_uint, size_t, size_t, const void*, cl_uint,
                                 const void*, void*) = nullptr;
  bool ok = false;
};

OpenClApi g_cl;
pthread_once_t g_cl_once = PTHREAD_ONCE_INIT;

void load_opencl() {
  OpenClApi a;
  a.ok = load_symbol(&a.clGetCommandQueueInfo, opencl_symbol, "clGetCommandQueueInfo") &&
         load_symbol(&a.clGetDeviceInfo, opencl_symbol, "clGetDeviceInfo") &&
         load_symbol(&a.clGetMemObjectInfo, opencl_symbol, "clGetMemObjectInfo") &&
         load_symbol(&a.clEnqueueReadBuffer, opencl_symbol, "clEnqueueReadBuffer") &&
         load_symbol(&a.clEnqueueWriteBuffer, opencl_symbol, "clEnqueueWriteBuffer");
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

}  // namespace

sdrop_status begin_opencl_call(const Tensor* const* tensors, int n, DType dtype) {
  const Tensor* first = nullptr;
  for (int i = 0; i < n && !first; i++) first = tensors[i];
  if (sdrop_status s = check_opencl_queue(*first, dtype)) return s;
  for (int i = 0; i < n; i++) {
    if (tensors[i]) {
      if (sdrop_status s = check_cl_mem(*tensors[i])) return s;
    }
  }
  return SDROP_OK;
}

// CL_MEM_OBJECT_ALLOCATION_FAILURE, CL_OUT_OF_RESOURCES, CL_OUT_OF_HOST_MEMORY.
sdrop_status copy_failure(const char* what, cl_int r) {
  const bool memory = r == -4 || r == -5 || r == -6;
  return fail(memory ? SDROP_ERROR_OUT_OF_MEMORY : SDROP_ERROR_BACKEND_UNAVAILABLE,
              "OpenCL %s failed with error %d", what, int(r));
}

sdrop_status opencl_read(void* mem, uint64_t offset, void* dst, size_t n) {
  const cl_int r = g_cl.clEnqueueReadBuffer(t_cl_queue, mem, 1u, size_t(offset), n, dst, 0,
                                            nullptr, nullptr);
  return r == 0 ? SDROP_OK : copy_failure("clEnqueueReadBuffer (the bias gradient's row sums)", r);
}

sdrop_status opencl_write(void* mem, uint64_t offset, const void* src, size_t n) {
  const cl_int r = g_cl.clEnqueueWriteBuffer(t_cl_queue, mem, 1u, size_t(offset), n, src, 0,
                                             nullptr, nullptr);
  return r == 0 ? SDROP_OK : copy_failure("clEnqueueWriteBuffer (dbias)", r);
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
