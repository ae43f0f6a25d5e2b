#include "cuda.h"

#include <pthread.h>

#include <cinttypes>
#include <cstdio>

#include "HalideRuntime.h"
#include "HalideRuntimeCuda.h"
#include "drivers.h"
#include "error.h"

namespace sdrop {
namespace {

// The caller's handles, per thread, and the context the Halide runtime's hooks hand out
// during the call in flight on this thread.
thread_local void* t_cu_context = nullptr;
thread_local void* t_cu_stream = nullptr;
thread_local void* t_active_cu_context = nullptr;

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
  // The epilogue's dbias: copies on the caller's stream.
  CUresult (*cuMemcpyDtoHAsync)(void*, CUdeviceptr, size_t, void*) = nullptr;
  CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void*, size_t, void*) = nullptr;
  CUresult (*cuStreamSynchronize)(void*) = nullptr;
  bool ok = false;
  CUresult init_result = 0;
};

CudaApi g_cuda;
pthread_once_t g_cuda_once = PTHREAD_ONCE_INIT;

void load_cuda() {
  CudaApi a;
  a.ok = load_symbol(&a.cuInit, cuda_symbol, "cuInit") &&
         load_symbol(&a.cuDeviceGetCount, cuda_symbol, "cuDeviceGetCount") &&
         load_symbol(&a.cuDeviceGet, cuda_symbol, "cuDeviceGet") &&
         load_symbol(&a.cuDevicePrimaryCtxRetain, cuda_symbol, "cuDevicePrimaryCtxRetain") &&
         load_symbol(&a.cuCtxPushCurrent, cuda_symbol, "cuCtxPushCurrent_v2") &&
         load_symbol(&a.cuCtxPopCurrent, cuda_symbol, "cuCtxPopCurrent_v2") &&
         load_symbol(&a.cuCtxGetDevice, cuda_symbol, "cuCtxGetDevice") &&
         load_symbol(&a.cuPointerGetAttribute, cuda_symbol, "cuPointerGetAttribute") &&
         load_symbol(&a.cuGetErrorName, cuda_symbol, "cuGetErrorName") &&
         load_symbol(&a.cuMemcpyDtoHAsync, cuda_symbol, "cuMemcpyDtoHAsync_v2") &&
         load_symbol(&a.cuMemcpyHtoDAsync, cuda_symbol, "cuMemcpyHtoDAsync_v2") &&
         load_symbol(&a.cuStreamSynchronize, cuda_symbol, "cuStreamSynchronize");
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
                cuda_library_found() ? "missing entry points" : "not found");
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

}  // namespace

sdrop_status begin_cuda_call(const Tensor* const* tensors, int n) {
  const Tensor* first = nullptr;
  for (int i = 0; i < n && !first; i++) first = tensors[i];
  CUcontext ctx = nullptr;
  if (sdrop_status s = cuda_context_for(*first, &ctx)) return s;
  // One push for every tensor's pointer check.
  if (CUresult r = g_cuda.cuCtxPushCurrent(ctx)) {
    return fail(SDROP_ERROR_BACKEND_UNAVAILABLE, "cannot make the CUDA context current: %s",
                cu_name(r));
  }
  sdrop_status checked = SDROP_OK;
  for (int i = 0; i < n; i++) {
    if (tensors[i] && checked == SDROP_OK) checked = check_cuda_memory(*tensors[i]);
  }
  CUcontext popped;
  g_cuda.cuCtxPopCurrent(&popped);
  if (checked != SDROP_OK) return checked;
  pthread_once(&g_cuda_hooks_once, install_cuda_hooks);
  t_active_cu_context = ctx;
  return SDROP_OK;
}

void end_cuda_call() { t_active_cu_context = nullptr; }

namespace {

// A copy on the thread's stream in the call's context, then a wait for the stream: the read's
// data is there, and the write's source may go (whatever kind of host memory it is).
template <typename Copy>
sdrop_status cuda_copy(const char* what, Copy&& copy) {
  if (CUresult r = g_cuda.cuCtxPushCurrent(t_active_cu_context)) {
    return fail(SDROP_ERROR_BACKEND_UNAVAILABLE, "cannot make the CUDA context current: %s",
                cu_name(r));
  }
  CUresult r = copy(t_cu_stream);
  if (r == 0) r = g_cuda.cuStreamSynchronize(t_cu_stream);
  CUcontext popped;
  g_cuda.cuCtxPopCurrent(&popped);
  if (r == 0) return SDROP_OK;
  return fail(r == 2 ? SDROP_ERROR_OUT_OF_MEMORY : SDROP_ERROR_BACKEND_UNAVAILABLE,
              "CUDA %s failed: %s", what, cu_name(r));  // 2: CUDA_ERROR_OUT_OF_MEMORY
}

}  // namespace

sdrop_status cuda_read(uint64_t src, void* dst, size_t n) {
  return cuda_copy("cuMemcpyDtoHAsync (the bias gradient's row sums)", [&](void* stream) {
    return g_cuda.cuMemcpyDtoHAsync(dst, CUdeviceptr(src), n, stream);
  });
}

sdrop_status cuda_write(uint64_t dst, const void* src, size_t n) {
  return cuda_copy("cuMemcpyHtoDAsync (dbias)", [&](void* stream) {
    return g_cuda.cuMemcpyHtoDAsync(CUdeviceptr(dst), src, n, stream);
  });
}

void set_cuda_stream(void* context, void* stream) {
  t_cu_context = context;
  t_cu_stream = stream;
}

void get_cuda_stream(void** context, void** stream) {
  if (context) *context = t_cu_context;
  if (stream) *stream = t_cu_stream;
}

}  // namespace sdrop
