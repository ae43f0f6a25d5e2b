// A DLTensor checked and normalised for the runtime: extents and element strides always
// present, data + byte_offset folded into one base address. Pure logic, no kernels.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sdrop/sdrop.h"

namespace sdrop {

constexpr int kMaxDims = 8;

enum class DType { f16, bf16, f32, f64, u8 };

// Where a call runs, from its tensors' DLPack device type.
enum class Backend { cpu, cuda, opencl };

struct Tensor {
  const char* name = "";
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};  // in elements
  int itemsize = 0;
  char* base = nullptr;  // data + byte_offset (for OpenCL: an offset from the cl_mem handle)
  void* data = nullptr;  // DLTensor.data: a host or CUDA pointer, or a cl_mem
  int64_t numel = 0;
  DLDevice device = {};
  DLDataType dtype = {};
};

// Checks what every tensor argument needs (rank 0..8, extents >= 0, lanes == 1, a data
// pointer when non-empty, addresses that do not wrap) and fills `out`.
sdrop_status describe(const DLTensor* t, const char* name, Tensor* out);

// The float element types sdrop computes on; anything else is SDROP_ERROR_UNSUPPORTED.
sdrop_status float_dtype(const Tensor& t, DType* out);
// uint8 or bool (DLPack code 6, 8 bits) for masks.
sdrop_status mask_dtype(const Tensor& t);

// The backend of t's device: kDLCPU and kDLCUDAHost -> cpu, kDLCUDA -> cuda, kDLOpenCL ->
// opencl (in a build with GPU kernels); anything else is SDROP_ERROR_UNSUPPORTED. GPU
// tensors must have element-aligned addresses (UNSUPPORTED otherwise).
sdrop_status backend_of(const Tensor& t, Backend* out);
// a and b on the same device (type and id; any CPU-addressable pair counts as one).
sdrop_status same_device(const Tensor& a, const Tensor& b);

bool same_shape(const Tensor& a, const Tensor& b);
bool same_dtype(const Tensor& a, const Tensor& b);

// Two distinct indices reach one address (zero or aliasing strides).
bool self_overlapping(const Tensor& t);
// Same base address and the same strides on every axis of extent > 1.
bool exactly_in_place(const Tensor& a, const Tensor& b);
// Their byte ranges intersect (a conservative test for sharing any element). Two OpenCL
// tensors share memory only if they are in the same cl_mem.
bool ranges_intersect(const Tensor& a, const Tensor& b);
// Byte offsets, relative to base, of the lowest element and one past the highest.
void byte_range(const Tensor& t, int64_t* lo, int64_t* hi);

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
const char* device_name(DLDevice d, char* buf, size_t size);

}  // namespace sdrop
