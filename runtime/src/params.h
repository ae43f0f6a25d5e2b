// sdrop_params checked, and turned into what the kernels take: the keep threshold T and the
// scale s (docs/rng.md#threshold, docs/rng.md#values-and-scaling), computed once on the host.
#pragma once

#include <cstdint>

#include "sdrop/sdrop.h"
#include "tensor.h"

namespace sdrop {

struct KernelArgs {
  uint64_t seed = 0, offset = 0;
  uint32_t threshold = 0;  // keep iff u < threshold, unless keep_all (T = 2^32)
  bool keep_all = false;
  bool keep_none = false;  // p = 1 (apply_mask drops everything whatever the mask says)
  bool multiply = false;
  float scale_f32 = 1.0f;  // s for float32, and for float16/bfloat16 (rounded to the dtype
                           // first with SDROP_FLAG_SCALE_IN_DTYPE)
  double scale_f64 = 1.0;
  // The fused epilogue's choices (docs/epilogue.md): which optional tensors it has, and
  // whether act and post are ReLU (else identity).
  bool has_bias = false, has_residual = false, act_relu = false, post_relu = false;
  bool want_dr = false;  // backward: dresidual is written
};

// params non-NULL, p in [0, 1] (decided on the bits: no floating-point comparison, so no
// exception flag is raised for a NaN), no unknown flag bits when check_flags.
sdrop_status check_params(const sdrop_params* params, bool check_flags);

// T, s and the flags for dtype. Call inside an FpEnvGuard (the arithmetic assumes the
// default rounding mode).
KernelArgs kernel_args(const sdrop_params& params, DType dtype);

}  // namespace sdrop
