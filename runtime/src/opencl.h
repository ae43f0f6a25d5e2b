// OpenCL: the caller's context and queue (per thread), handed to the Halide runtime through
// its halide_acquire_cl_context hook, and the checks a call's tensors (cl_mem buffers)
// pass before any launch. The OpenCL API is declared locally: no OpenCL headers needed.
#pragma once

#include "sdrop/sdrop.h"
#include "tensor.h"

namespace sdrop {

// Checks the ICD loader, the thread's queue (and cl_khr_fp64 for float64) and that every
// tensor is a buffer of the queue's context holding its bytes (nulls in `tensors` skipped).
sdrop_status begin_opencl_call(const Tensor* const* tensors, int n, DType dtype);

// Blocking copies between host memory and `n` bytes at byte `offset` of the cl_mem `mem`, on the
// thread's queue, so after everything enqueued there before (after begin_opencl_call).
sdrop_status opencl_read(void* mem, uint64_t offset, void* dst, size_t n);
sdrop_status opencl_write(void* mem, uint64_t offset, const void* src, size_t n);

// sdrop_set_opencl_queue / sdrop_get_opencl_queue: the calling thread's handles.
sdrop_status set_opencl_queue(void* context, void* queue);
void get_opencl_queue(void** context, void** queue);

}  // namespace sdrop
