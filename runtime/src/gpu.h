// The GPU backends: runs a plan on the CUDA or OpenCL kernels, on the caller's own handles
// (per thread), through the Halide runtime's device interfaces. The drivers are opened at
// the first GPU call, never at load time.
#pragma once

#include "kernels.h"

namespace sdrop {

sdrop_status run_plan_gpu(Backend backend, Op op, DType dtype, const Plan& plan,
                          const Tensor* x, const Tensor& y, const Tensor* k,
                          const KernelArgs& args);

// The calling thread's handles (sdrop_set_cuda_stream / sdrop_set_opencl_queue).
void set_cuda_stream(void* context, void* stream);
void get_cuda_stream(void** context, void** stream);
sdrop_status set_opencl_queue(void* context, void* queue);
void get_opencl_queue(void** context, void** queue);

}  // namespace sdrop
