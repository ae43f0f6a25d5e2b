// Runs a plan on the AOT-compiled Halide kernels: the CPU runner (this file's kernels.cpp)
// over the ISA variant select_isa() picks, or the GPU runner (gpu.h) for CUDA/OpenCL tensors.
#pragma once

#include <cstdint>

#include "params.h"
#include "plan.h"
#include "sdrop/sdrop.h"
#include "tensor.h"

namespace sdrop {

// What ran, for the verbose line (verbose.h).
struct RunInfo {
  const char* variant = "";  // "cpu:avx2", "cuda", "opencl", ...
  int calls = 0;             // kernel calls
  bool serial = false;       // on the calling thread, without the pool
  bool skip_dropped = false; // rows kernels: dropped rows filled without reading x
  bool memset_dropped = false;  // ... by streaming stores, the kernel on the kept rows only
  int workers = 0;           // CPU: most threads that ran tasks of one parallel loop (serial: 1)
};

// The fused epilogue's further tensors (docs/epilogue.md), null where absent. The plan's ks
// steps the channel index; the bias is read at channel * its stride.
struct EpilogueOperands {
  const Tensor* bias = nullptr;
  const Tensor* residual = nullptr;
  const Tensor* dy = nullptr;         // backward
  const Tensor* dresidual = nullptr;  // backward
  const Tensor* dbias = nullptr;      // backward: then the row sums of dx are added up into it
  // Backward on a GPU, dx in place of an input and no dresidual: the kernel's first output goes
  // to a device scratch laid out as dx, which the GPU runner allocates in the call's context
  // (api.cpp's host scratch serves the CPU; see there why it is needed).
  bool dr_scratch = false;
};

// x may be null (Op::mask), k is the mask tensor (apply_mask) or null, e the epilogue's
// operands (epilogue ops only). Absent epilogue operands get stand-ins the kernel does not
// read (zeros for the bias, x for the residual, y = dx for dresidual).
sdrop_status run_plan(Backend backend, Op op, DType dtype, const Plan& plan, const Tensor* x,
                      const Tensor& y, const Tensor* k, const KernelArgs& args, RunInfo* info,
                      const EpilogueOperands* e = nullptr);

}  // namespace sdrop
