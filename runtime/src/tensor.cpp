#include "tensor.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "error.h"

namespace sdrop {
namespace {

constexpr int kDLBoolCode = 6;           // DLPack >= 0.8; the header we build with may predate it
constexpr int kLastDLPackTypeCode = 17;  // kDLFloat4_e2m1fn (DLPack 1.1)

// The byte footprint of a non-empty tensor with a whole-byte dtype: the element offsets its
// strides reach, in unsigned magnitudes (INT64_MIN is 2^63 there, not an overflow), bounded
// by kMaxFootprint at every step, and its first and last byte addresses, which must not wrap.
sdrop_status footprint(const DLTensor* t, Tensor* r) {
  const char* name = r->name;
  uint64_t below = 0, above = 0;  // elements reached below and above base
  bool fits = true;
  for (int i = 0; i < r->ndim && fits; i++) {
    if (r->shape[i] <= 1) continue;  // an extent-1 axis may carry any stride
    uint64_t span;
    uint64_t& side = r->strides[i] < 0 ? below : above;
    fits = mul_within(uint64_t(r->shape[i] - 1), magnitude(r->strides[i]), kMaxFootprint, &span) &&
           add_within(side, span, kMaxFootprint, &side);
  }
  const uint64_t size = uint64_t(r->itemsize);
  uint64_t elements = 0;
  fits = fits && add_within(below, above, kMaxFootprint, &elements) &&
         add_within(elements, 1, kMaxFootprint / size, &elements);
  if (!fits) {
    char dims[200], strides[200];
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "%s.strides %s with shape %s reach more than 2^60 bytes: beyond any address space",
                name, format_dims(r->strides, r->ndim, strides, sizeof strides),
                format_dims(r->shape, r->ndim, dims, sizeof dims));
  }
  const uint64_t lo = below * size, hi = (above + 1) * size;
  const bool opencl = r->device.type == kDLOpenCL;
  // OpenCL: data is a cl_mem handle, base an offset into it; elsewhere an address, and every
  // byte must lie in x86-64 user space (below 2^56 even with 5-level paging: nothing a CPU
  // or CUDA tensor can point to lies above).
  const uint64_t data = opencl ? 0 : uint64_t(reinterpret_cast<uintptr_t>(t->data));
  const uint64_t top = opencl ? kMaxFootprint : kMaxUserAddress;
  uint64_t base;
  if (__builtin_add_overflow(data, t->byte_offset, &base) || base < lo || base > top ||
      hi > top - base) {
    char strides[200];
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "%s.data %p + byte_offset %" PRIu64 " with strides %s reaches outside the %s",
                name, t->data, uint64_t(t->byte_offset),
                format_dims(r->strides, r->ndim, strides, sizeof strides),
                opencl ? "first 2^60 bytes of its cl_mem" : "user address space (below 2^56)");
  }
  r->base = base;
  r->lo = -int64_t(lo);
  r->hi = int64_t(hi);
  return SDROP_OK;
}

bool is_opencl(const Tensor& t) { return t.device.type == kDLOpenCL; }

}  // namespace

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

const char* device_name(Device d, char* buf, size_t size) {
  const char* name = "device type ?";
  switch (d.type) {
    case kDLCPU: name = "cpu"; break;
    case kDLCUDA: name = "cuda"; break;
    case kDLCUDAHost: name = "cuda_host"; break;
    case kDLOpenCL: name = "opencl"; break;
    case kDLVulkan: name = "vulkan"; break;
    case kDLMetal: name = "metal"; break;
    case kDLROCM: name = "rocm"; break;
    case kDLCUDAManaged: name = "cuda_managed"; break;
    default:
      std::snprintf(buf, size, "device type %d:%d", int(d.type), int(d.id));
      return buf;
  }
  std::snprintf(buf, size, "%s:%d", name, int(d.id));
  return buf;
}

sdrop_status describe(const DLTensor* t, const char* name, Tensor* out) {
  if (!t) return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s must not be NULL", name);
  // Filled in place (callers pass a fresh Tensor): no second copy per tensor per call.
  Tensor& r = *out;
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
  if (t->dtype.bits == 0 || t->dtype.code > kLastDLPackTypeCode) {
    char dt[64];
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.dtype (%s) is not a DLPack data type", name,
                dtype_name(t->dtype, dt, sizeof dt));
  }
  static_assert(sizeof(t->device) == sizeof(r.device), "DLDevice is two 32-bit fields");
  std::memcpy(&r.device, &t->device, sizeof r.device);
  if (r.device.type <= 0) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "%s.device.device_type must be a DLPack device type (>= 1), got %d", name,
                int(r.device.type));
  }
  r.dtype = t->dtype;
  // A valid DLPack type narrower than a byte (int4, float4) has itemsize 0: the dtype checks
  // refuse it as unsupported before anything needs its size.
  r.itemsize = t->dtype.bits % 8 == 0 ? t->dtype.bits / 8 : 0;
  bool empty = false;
  for (int i = 0; i < r.ndim; i++) {
    const int64_t e = t->shape[i];
    if (e < 0) {
      return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.shape[%d] must be >= 0, got %" PRId64, name,
                  i, e);
    }
    r.shape[i] = e;
    empty = empty || e == 0;
  }
  // The element count, unless an extent is 0 (then the tensor is empty whatever the others
  // are, and nothing about it is ever addressed).
  uint64_t numel = 1;
  for (int i = 0; i < r.ndim && !empty; i++) {
    if (!mul_within(numel, uint64_t(r.shape[i]), kMaxElements, &numel)) {
      char dims[200];
      return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s has more than 2^62 elements (shape %s)",
                  name, format_dims(r.shape, r.ndim, dims, sizeof dims));
    }
  }
  r.numel = empty ? 0 : int64_t(numel);
  // Element strides: given, or compact row-major (exact whenever the tensor is non-empty).
  uint64_t compact = 1;
  for (int i = r.ndim - 1; i >= 0; i--) {
    r.strides[i] = t->strides ? t->strides[i] : int64_t(compact);
    uint64_t next;
    if (mul_within(compact, uint64_t(r.shape[i] > 0 ? r.shape[i] : 1), kMaxElements, &next)) {
      compact = next;
    }
  }
  r.data = t->data;
  if (r.numel == 0) {
    // Nothing is read or written: no address is formed (NULL data is fine).
    r.base = (is_opencl(r) ? 0 : uint64_t(reinterpret_cast<uintptr_t>(t->data))) + t->byte_offset;
    return SDROP_OK;
  }
  if (!t->data) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "%s.data is NULL but %s has %" PRId64 " elements", name, name, r.numel);
  }
  if (r.itemsize != 0) {
    if (sdrop_status s = footprint(t, &r)) return s;
  }
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

static bool cpu_addressable(Device d) {
  return d.type == kDLCPU || d.type == kDLCUDAHost;
}

sdrop_status backend_of(const Tensor& t, Backend* out) {
  char dev[64];
  if (cpu_addressable(t.device)) {
    *out = Backend::cpu;
    return SDROP_OK;
  }
  if (t.device.type == kDLCUDA || t.device.type == kDLOpenCL) {
    // GPU loads and stores need naturally aligned elements; an OpenCL base is an offset
    // from the start of the cl_mem.
    if (t.numel > 0 && t.itemsize > 0 && t.base % uint64_t(t.itemsize) != 0) {
      return fail(SDROP_ERROR_UNSUPPORTED,
                  "%s on %s: data + byte_offset must be a multiple of the element size (%d "
                  "bytes), got data %p, byte_offset %" PRIu64,
                  t.name, device_name(t.device, dev, sizeof dev), t.itemsize, t.data,
                  t.base - (t.device.type == kDLOpenCL
                                ? 0
                                : uint64_t(reinterpret_cast<uintptr_t>(t.data))));
    }
    *out = t.device.type == kDLCUDA ? Backend::cuda : Backend::opencl;
    return SDROP_OK;
  }
  return fail(SDROP_ERROR_UNSUPPORTED,
              "%s is on %s: sdrop runs on kDLCPU, kDLCUDAHost, kDLCUDA and kDLOpenCL", t.name,
              device_name(t.device, dev, sizeof dev));
}

sdrop_status same_device(const Tensor& a, const Tensor& b) {
  const bool same = (cpu_addressable(a.device) && cpu_addressable(b.device)) ||
                    (a.device.type == b.device.type &&
                     a.device.id == b.device.id);
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

}  // namespace sdrop
