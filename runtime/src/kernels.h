// Runs a plan on the AOT-compiled Halide kernels of the selected ISA variant, and owns the
// Halide runtime's process-wide hooks (error handler, thread count, FP state of workers).
#pragma once

#include <cstdint>

#include "plan.h"
#include "sdrop/sdrop.h"
#include "tensor.h"

namespace sdrop {

struct KernelArgs {
  uint64_t seed = 0, offset = 0;
  uint32_t threshold = 0;  // keep iff u < threshold, unless keep_all (T = 2^32)
  bool keep_all = false;
  bool keep_none = false;  // apply_mask with p = 1
  bool multiply = false;
  float scale_f32 = 1.0f;
  double scale_f64 = 1.0;
};

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
