// The generated kernels' C signatures, and a table of them by variant (a CPU ISA or a GPU
// backend), canonical shape and dtype, filled from the X-macro lists the build generates
// (sdrop_kernels.h). Shared by the CPU (kernels.cpp) and GPU (gpu.cpp) runners.
#pragma once

#include <cstdint>

#include "HalideRuntime.h"
#include "plan.h"
#include "tensor.h"

namespace sdrop {

// The last bool of each: run on the calling thread, without the thread pool (ignored on GPUs).
using DropoutFn = int (*)(halide_buffer_t*, uint64_t, uint64_t, int64_t, int64_t, int64_t,
                          int64_t, uint32_t, bool, bool, float, double, bool, halide_buffer_t*);
using ApplyMaskFn = int (*)(halide_buffer_t*, halide_buffer_t*, bool, bool, float, double, bool,
                            halide_buffer_t*);
using MaskFn = int (*)(uint64_t, uint64_t, int64_t, int64_t, int64_t, int64_t, uint32_t, bool,
                       bool, halide_buffer_t*);

constexpr int kShapes = 3, kDTypes = 4;

template <int kVariants>
struct KernelTable {
  DropoutFn dropout[kVariants][kShapes][kDTypes] = {};
  ApplyMaskFn apply_mask[kVariants][kDTypes] = {};
  MaskFn mask[kVariants] = {};

  void put(DropoutFn f, int shape, int dtype, int v) { dropout[v][shape][dtype] = f; }
  void put(ApplyMaskFn f, int, int dtype, int v) { apply_mask[v][dtype] = f; }
  void put(MaskFn f, int, int, int v) { mask[v] = f; }
};

// The shape and dtype tokens of the X-macro lists, as indices.
namespace kernel_tokens {
enum { rows = int(Shape::rows), channels_last = int(Shape::channels_last),
       elementwise = int(Shape::elementwise) };
enum { f16 = int(DType::f16), bf16 = int(DType::bf16), f32 = int(DType::f32),
       f64 = int(DType::f64), u8 = 0 };
}  // namespace kernel_tokens

// The element type a kernel's buffer is declared with (bfloat16 is integer work).
inline halide_type_t storage_type(DType d) {
  switch (d) {
    case DType::f16: return halide_type_t(halide_type_float, 16);
    case DType::bf16: return halide_type_t(halide_type_uint, 16);
    case DType::f32: return halide_type_t(halide_type_float, 32);
    case DType::f64: return halide_type_t(halide_type_float, 64);
    case DType::u8: return halide_type_t(halide_type_uint, 8);
  }
  return halide_type_t();
}

}  // namespace sdrop
