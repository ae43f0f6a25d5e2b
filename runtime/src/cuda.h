// CUDA: the caller's context and stream (per thread), the checks a call's tensors pass
// before any launch, and the hooks through which the Halide runtime uses that context and
// stream. The driver API is declared locally: the library builds without the CUDA toolkit.
#pragma once

#include "sdrop/sdrop.h"
#include "tensor.h"

namespace sdrop {

// Checks the driver, the device, the context and that every tensor lies in one device
// allocation (nulls in `tensors` are skipped); on success the call's context is what the
// Halide runtime gets until end_cuda_call().
sdrop_status begin_cuda_call(const Tensor* const* tensors, int n);
void end_cuda_call();

// Copies between host memory and `n` bytes at device address src / dst, on the thread's stream
// in the call's context (between begin_cuda_call and end_cuda_call), complete on return.
sdrop_status cuda_read(uint64_t src, void* dst, size_t n);
sdrop_status cuda_write(uint64_t dst, const void* src, size_t n);

// sdrop_set_cuda_stream / sdrop_get_cuda_stream: the calling thread's handles.
void set_cuda_stream(void* context, void* stream);
void get_cuda_stream(void** context, void** stream);

}  // namespace sdrop
