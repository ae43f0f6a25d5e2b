// The GPU runner: a plan on the CUDA or OpenCL kernels, on the caller's own handles (cuda.h,
// opencl.h), through the Halide runtime's device interfaces.
#pragma once

#include "kernels.h"

namespace sdrop {

// e: the fused epilogue's operands (epilogue ops only), as for run_plan; a dbias is summed on
// the device per call, added up per channel on the host (bias_grad.h) and written back.
sdrop_status run_plan_gpu(Backend backend, Op op, DType dtype, const Plan& plan,
                          const Tensor* x, const Tensor& y, const Tensor* k,
                          const KernelArgs& args, RunInfo* info,
                          const EpilogueOperands* e = nullptr);

// dbias = 0 on its device (the epilogue backward of an empty x), after the same checks of the
// backend, its handles and the tensor as a call.
sdrop_status store_zero_bias_grad_gpu(Backend backend, const Tensor& dbias, DType dtype);

}  // namespace sdrop
