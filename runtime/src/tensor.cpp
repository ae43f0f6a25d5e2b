#include "tensor.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "error.h"

namespace sdrop {
namespace {

constexpr int kDLBoolCode = 6;  // DLPack >= 0.8; the header we build with may predate it
constexpr int64_t kMaxSpan = int64_t(1) << 62;

int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

bool is_opencl(const Tensor& t) { return t.device.device_type == kDLOpenCL; }

}  // namespace

void byte_range(const Tensor& t, int64_t* lo, int64_t* hi) {
  int64_t l = 0, h = 0;
  for (int i = 0; i < t.ndim; i++) {
    const int64_t span = (t.shape[i] - 1) * t.strides[i];
    if (span < 0) l += span; else h += span;
  }
  *lo = l * t.itemsize;
  *hi = (h + 1) * t.itemsize;
}

const char* format_dims(const int64_t* v, int n, char* buf, size_t size) {
  size_t used = 0;
  used += std::snprintf(buf + used, size - used, "[");
  for (int i = 0; i < n && used < size; i++) {
    used += std::snprintf(buf + used, size - used, i ? ", %" PRId64 : "%" PRId64, v[i]);
  }
  if (used < size) std::snprintf(buf + used, size - used, "]");
  return buf;
}

const char* dtype_name(DLDataType t, char* buf, size_t size) {
  const char* base = nullptr;
  switch (t.code) {
    case kDLInt: base = "int"; break;
    case kDLUInt: base = "uint"; break;
    case kDLFloat: base = "float"; break;
    case kDLBfloat: base = "bfloat"; break;
    case kDLOpaqueHandle: base = "handle"; break;
    case kDLComplex: base = "complex"; break;
    case kDLBoolCode: base = "bool"; break;
    default: break;
  }
  if (base) {
    std::snprintf(buf, size, "%s%d", base, int(t.bits));
  } else {
    std::snprintf(buf, size, "code %d, %d bits", int(t.code), int(t.bits));
  }
  if (t.lanes != 1) {
    size_t n = std::strlen(buf);
    std::snprintf(buf + n, size - n, " x %d lanes", int(t.lanes));
  }
  return buf;
}

const char* device_name(DLDevice d, char* buf, size_t size) {
  const char* name = "device type ?";
  switch (d.device_type) {
    case kDLCPU: name = "cpu"; break;
    case kDLCUDA: name = "cuda"; break;
    case kDLCUDAHost: name = "cuda_host"; break;
    case kDLOpenCL: name = "opencl"; break;
    case kDLVulkan: name = "vulkan"; break;
    case kDLMetal: name = "metal"; break;
    case kDLROCM: name = "rocm"; break;
    case kDLCUDAManaged: name = "cuda_managed"; break;
    default:
      std::snprintf(buf, size, "device type %d:%d", int(d.device_type), int(d.device_id));
      return buf;
  }
  std::snprintf(buf, size, "%s:%d", name, int(d.device_id));
  return buf;
}

sdrop_status describe(const DLTensor* t, const char* name, Tensor* out) {
  if (!t) return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s must not be NULL", name);
  Tensor r;
  r.name = name;
  if (t->ndim < 0 || t->ndim > kMaxDims) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.ndim must be in [0, %d], got %d", name,
                kMaxDims, int(t->ndim));
  }
  r.ndim = t->ndim;
  if (r.ndim > 0 && !t->shape) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.shape must not be NULL when %s.ndim is %d",
                name, name, r.ndim);
  }
  if (t->dtype.lanes != 1) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.dtype.lanes must be 1, got %d", name,
                int(t->dtype.lanes));
  }
  if (t->dtype.bits == 0 || t->dtype.bits % 8 != 0) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.dtype.bits must be a whole number of bytes, got %d",
                name, int(t->dtype.bits));
  }
  r.dtype = t->dtype;
  r.device = t->device;
  r.itemsize = t->dtype.bits / 8;
  r.numel = 1;
  bool overflow = false;
  for (int i = 0; i < r.ndim; i++) {
    const int64_t e = t->shape[i];
    if (e < 0) {
      return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.shape[%d] must be >= 0, got %" PRId64, name,
                  i, e);
    }
    r.shape[i] = e;
    if (e != 0 && r.numel > kMaxSpan / e) overflow = true;
    r.numel *= e;
  }
  if (r.numel == 0) overflow = false;
  if (overflow) {
    char dims[200];
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s has too many elements (shape %s)", name,
                format_dims(r.shape, r.ndim, dims, sizeof dims));
  }
  // Element strides: given, or compact row-major.
  int64_t compact = 1;
  for (int i = r.ndim - 1; i >= 0; i--) {
    r.strides[i] = t->strides ? t->strides[i] : compact;
    compact *= std::max<int64_t>(r.shape[i], 1);
  }
  if (r.numel > 0) {
    // Every address the tensor reaches must be representable.
    int64_t span = 0;
    for (int i = 0; i < r.ndim; i++) {
      const int64_t s = abs64(r.strides[i]);
      if (r.shape[i] > 1 && s > kMaxSpan / r.shape[i]) { span = kMaxSpan; break; }
      span += (r.shape[i] - 1) * s;
      if (span >= kMaxSpan / 16) break;
    }
    if (span >= kMaxSpan / 16) {
      char dims[200];
      return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.strides %s reach beyond the address space",
                  name, format_dims(r.strides, r.ndim, dims, sizeof dims));
    }
    if (!t->data) {
      return fail(SDROP_ERROR_INVALID_ARGUMENT,
                  "%s.data is NULL but %s has %" PRId64 " elements", name, name, r.numel);
    }
  }
  // An empty tensor may have NULL data: no pointer arithmetic on it (UB, found by fuzzing).
  r.base = t->data ? static_cast<char*>(t->data) + t->byte_offset : nullptr;
  r.data = t->data;
  *out = r;
  return SDROP_OK;
}

sdrop_status float_dtype(const Tensor& t, DType* out) {
  const DLDataType d = t.dtype;
  if (d.code == kDLFloat && d.bits == 16) { *out = DType::f16; return SDROP_OK; }
  if (d.code == kDLFloat && d.bits == 32) { *out = DType::f32; return SDROP_OK; }
  if (d.code == kDLFloat && d.bits == 64) { *out = DType::f64; return SDROP_OK; }
  if (d.code == kDLBfloat && d.bits == 16) { *out = DType::bf16; return SDROP_OK; }
  char name[64];
  return fail(SDROP_ERROR_UNSUPPORTED,
              "%s.dtype %s is not supported: sdrop takes float16, bfloat16, float32, float64",
              t.name, dtype_name(d, name, sizeof name));
}

sdrop_status mask_dtype(const Tensor& t) {
  const DLDataType d = t.dtype;
  if ((d.code == kDLUInt || d.code == kDLBoolCode) && d.bits == 8) return SDROP_OK;
  char name[64];
  return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.dtype must be uint8 or bool, got %s", t.name,
              dtype_name(d, name, sizeof name));
}

static bool cpu_addressable(DLDevice d) {
  return d.device_type == kDLCPU || d.device_type == kDLCUDAHost;
}

sdrop_status backend_of(const Tensor& t, Backend* out) {
  char dev[64];
  if (cpu_addressable(t.device)) {
    *out = Backend::cpu;
    return SDROP_OK;
  }
  if (t.device.device_type == kDLCUDA || t.device.device_type == kDLOpenCL) {
    // GPU loads and stores need naturally aligned elements; an OpenCL offset is counted
    // in elements from the start of the cl_mem.
    const uintptr_t addr = t.device.device_type == kDLOpenCL
                               ? uintptr_t(t.base - static_cast<char*>(t.data))
                               : reinterpret_cast<uintptr_t>(t.base);
    if (t.numel > 0 && addr % uintptr_t(t.itemsize) != 0) {
      return fail(SDROP_ERROR_UNSUPPORTED,
                  "%s on %s: data + byte_offset must be a multiple of the element size (%d "
                  "bytes), got byte_offset %" PRIu64,
                  t.name, device_name(t.device, dev, sizeof dev), t.itemsize,
                  uint64_t(t.base - static_cast<char*>(t.data)));
    }
    *out = t.device.device_type == kDLCUDA ? Backend::cuda : Backend::opencl;
    return SDROP_OK;
  }
  return fail(SDROP_ERROR_UNSUPPORTED,
              "%s is on %s: sdrop runs on kDLCPU, kDLCUDAHost, kDLCUDA and kDLOpenCL", t.name,
              device_name(t.device, dev, sizeof dev));
}

sdrop_status same_device(const Tensor& a, const Tensor& b) {
  const bool same = (cpu_addressable(a.device) && cpu_addressable(b.device)) ||
                    (a.device.device_type == b.device.device_type &&
                     a.device.device_id == b.device.device_id);
  if (!same) {
    char da[64], db[64];
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "%s and %s must be on the same device, got %s on %s and %s on %s", a.name,
                b.name, a.name, device_name(a.device, da, sizeof da), b.name,
                device_name(b.device, db, sizeof db));
  }
  return SDROP_OK;
}

bool same_shape(const Tensor& a, const Tensor& b) {
  if (a.ndim != b.ndim) return false;
  for (int i = 0; i < a.ndim; i++) {
    if (a.shape[i] != b.shape[i]) return false;
  }
  return true;
}

bool same_dtype(const Tensor& a, const Tensor& b) {
  return a.dtype.code == b.dtype.code && a.dtype.bits == b.dtype.bits &&
         a.dtype.lanes == b.dtype.lanes;
}

bool self_overlapping(const Tensor& t) {
  if (t.numel <= 1) return false;
  // Axes that move, sorted by |stride|. If each stride clears the span of all smaller ones,
  // the layout is injective; a zero stride never is.
  struct Axis { int64_t extent, stride; };
  Axis axes[kMaxDims];
  int n = 0;
  for (int i = 0; i < t.ndim; i++) {
    if (t.shape[i] > 1) axes[n++] = {t.shape[i], abs64(t.strides[i])};
  }
  sort_small(axes, n, [](const Axis& a, const Axis& b) { return a.stride < b.stride; });
  int64_t span = 0;
  bool simple = true;
  for (int i = 0; i < n; i++) {
    if (axes[i].stride == 0) return true;
    if (axes[i].stride <= span) { simple = false; break; }
    span += (axes[i].extent - 1) * axes[i].stride;
  }
  if (simple) return false;
  // Interleaved strides (rare): compare every address. Too large to enumerate: call it
  // overlapping rather than risk writing one element twice.
  constexpr int64_t kEnumerateLimit = int64_t(1) << 24;
  if (t.numel > kEnumerateLimit) return true;
  int64_t* offs = static_cast<int64_t*>(std::malloc(sizeof(int64_t) * size_t(t.numel)));
  if (!offs) return true;
  int64_t idx[kMaxDims] = {};
  int64_t off = 0;
  for (int64_t k = 0; k < t.numel; k++) {
    offs[k] = off;
    for (int d = n - 1; d >= 0; d--) {
      if (++idx[d] < axes[d].extent) { off += axes[d].stride; break; }
      off -= (axes[d].extent - 1) * axes[d].stride;
      idx[d] = 0;
    }
  }
  std::sort(offs, offs + t.numel);
  bool dup = false;
  for (int64_t k = 1; k < t.numel && !dup; k++) dup = offs[k] == offs[k - 1];
  std::free(offs);
  return dup;
}

bool exactly_in_place(const Tensor& a, const Tensor& b) {
  if (a.base != b.base || a.ndim != b.ndim || a.itemsize != b.itemsize) return false;
  if ((is_opencl(a) || is_opencl(b)) && a.data != b.data) return false;
  for (int i = 0; i < a.ndim; i++) {
    if (a.shape[i] != b.shape[i]) return false;
    if (a.shape[i] > 1 && a.strides[i] != b.strides[i]) return false;
  }
  return true;
}

bool ranges_intersect(const Tensor& a, const Tensor& b) {
  if (a.numel == 0 || b.numel == 0) return false;
  // cl_mem handles are not addresses: different buffers never share memory (sub-buffers
  // of one buffer are not detected), and within one buffer the offsets are compared.
  if ((is_opencl(a) || is_opencl(b)) && a.data != b.data) return false;
  int64_t alo, ahi, blo, bhi;
  byte_range(a, &alo, &ahi);
  byte_range(b, &blo, &bhi);
  const intptr_t a0 = reinterpret_cast<intptr_t>(a.base) + alo;
  const intptr_t a1 = reinterpret_cast<intptr_t>(a.base) + ahi;
  const intptr_t b0 = reinterpret_cast<intptr_t>(b.base) + blo;
  const intptr_t b1 = reinterpret_cast<intptr_t>(b.base) + bhi;
  return a0 < b1 && b0 < a1;
}

}  // namespace sdrop
