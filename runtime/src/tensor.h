// A DLTensor checked and normalised for the runtime: extents and element strides always
// present, the element count and the byte footprint computed without overflow and proven to
// lie in the address space. Pure logic, no kernels.
#pragma once

#include <cstddef>
#include <cstdint>

#include "checked.h"
#include "common/kernel_kinds.h"
#include "sdrop/sdrop.h"

namespace sdrop {

constexpr int kMaxDims = 8;


// Where a call runs, from its tensors' DLPack device type.
enum class Backend { cpu, cuda, opencl };

// A DLDevice read as plain integers: DLDeviceType is a C++ enum whose valid range a caller's
// value (say -1 or 1000) may lie outside, and loading such a value as the enum is undefined.
struct Device {
  int32_t type = 0;
  int32_t id = 0;
};

struct Tensor {
  const char* name = "";
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};  // in elements
  int itemsize = 0;  // bytes; 0 for a dtype that is not a whole number of bytes
  int64_t numel = 0;
  // data + byte_offset as an integer: an address for CPU and CUDA tensors, the offset into
  // the cl_mem for OpenCL ones. Never wraps (describe() proves it).
  uint64_t base = 0;
  // Non-empty tensors: the lowest byte is at base + lo, one past the highest at base + hi
  // (lo <= 0 < hi, hi - lo <= kMaxFootprint).
  int64_t lo = 0, hi = 0;
  void* data = nullptr;  // DLTensor.data: a host or CUDA pointer, or a cl_mem
  Device device;
  DLDataType dtype = {};
};

// Checks what every tensor argument needs (rank 0..8, a known DLPack dtype code with lanes 1,
// extents >= 0 whose product fits, a data pointer when non-empty, strides and byte offset
// whose every element address fits in the address space) and fills `out`.
sdrop_status describe(const DLTensor* t, const char* name, Tensor* out);

// The float element types sdrop computes on; any other valid DLPack dtype is
// SDROP_ERROR_UNSUPPORTED.
sdrop_status float_dtype(const Tensor& t, DType* out);
// uint8 or bool (DLPack code 6, 8 bits) for masks; anything else is INVALID_ARGUMENT.
sdrop_status mask_dtype(const Tensor& t);

// The backend of t's device: kDLCPU and kDLCUDAHost -> cpu, kDLCUDA -> cuda, kDLOpenCL ->
// opencl; any other device is SDROP_ERROR_UNSUPPORTED. GPU tensors must have element-aligned
// addresses (UNSUPPORTED otherwise). Needs a whole-byte dtype (check it first).
sdrop_status backend_of(const Tensor& t, Backend* out);
// a and b on the same device (type and id; any CPU-addressable pair counts as one).
sdrop_status same_device(const Tensor& a, const Tensor& b);

bool same_shape(const Tensor& a, const Tensor& b);
bool same_dtype(const Tensor& a, const Tensor& b);

// Stable insertion sort for the few (<= 8) axes of a tensor: no allocation, unlike
// std::stable_sort, and no libstdc++ symbols in the library.
template <typename T, typename Less>
void sort_small(T* a, int n, Less less) {
  for (int i = 1; i < n; i++) {
    T v = a[i];
    int j = i;
    for (; j > 0 && less(v, a[j - 1]); j--) a[j] = a[j - 1];
    a[j] = v;
  }
}

// "[2, 3, 4]" into buf, for messages.
const char* format_dims(const int64_t* v, int n, char* buf, size_t size);
const char* dtype_name(DLDataType t, char* buf, size_t size);
const char* device_name(Device d, char* buf, size_t size);

}  // namespace sdrop
