// Runs a plan on the AOT-compiled Halide kernels of the selected ISA variant, and owns the
// Halide runtime's process-wide hooks (error handler, thread count, FP state of workers).
#pragma once

#include <cstdint>

#include "params.h"
#include "plan.h"
#include "sdrop/sdrop.h"
#include "tensor.h"

namespace sdrop {

// x may be null (Op::mask), k is the mask tensor (apply_mask) or null. GPU backends go to
// run_plan_gpu (gpu.h).
sdrop_status run_plan(Backend backend, Op op, DType dtype, const Plan& plan, const Tensor* x,
                      const Tensor& y, const Tensor* k, const KernelArgs& args);

// The Halide runtime's process-wide hooks (error handler, thread pool, FP state of
// workers), installed once; the last Halide error message on this thread.
void ensure_halide_hooks();
const char* halide_message();
void clear_halide_message();

void set_num_threads(int n);
int get_num_threads();

}  // namespace sdrop
