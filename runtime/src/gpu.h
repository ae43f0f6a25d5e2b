// The GPU runner: a plan on the CUDA or OpenCL kernels, on the caller's own handles (cuda.h,
// opencl.h), through the Halide runtime's device interfaces.
#pragma once

#include "kernels.h"

namespace sdrop {

sdrop_status run_plan_gpu(Backend backend, Op op, DType dtype, const Plan& plan,
                          const Tensor* x, const Tensor& y, const Tensor* k,
                          const KernelArgs& args, RunInfo* info);

}  // namespace sdrop
