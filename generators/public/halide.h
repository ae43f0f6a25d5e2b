// sdrop as a Halide library: the Philox4x32-10 mask and the dropout arithmetic of every sdrop
// kernel, for a user's own Halide generator to fuse into its Funcs (a convolution's output
// stage, a bias and an activation, a residual add), with masks and values bit-identical to
// sdrop's calls for the same (seed, offset, p). docs/halide.md has the walkthrough; the example
// is examples/halide/bias_relu_dropout_generator.cpp.
//
// Installed as <sdrop/halide.h> (with sdrop/halide/algorithm.h and sdrop/common/*.h); link
// Halide yourself. The CMake package exports sdrop::halide, an interface target with the
// include directory.
//
//   Expr m = sdrop::halide::mask_index({n, c}, {N, C});       // spatial: one bit per (n, c)
//   Expr keep = sdrop::halide::keep(m, seed, offset, threshold, keep_all);
//   y(w, h, c, n) = sdrop::halide::dropout_value(sdrop::DType::f32, v, keep, scale, multiply);
//
// and on the host, the per-call constants from p as sdrop computes them:
//   sdrop::DropoutConstants k = sdrop::dropout_constants(p, sdrop::DType::f32, false);
#pragma once

#include <vector>

#include "Halide.h"
#include "common/dropout_constants.h"
#include "halide/algorithm.h"

namespace sdrop::halide {

using Halide::Expr;

// The mask index m of an element (docs/rng.md#mask-bits): its row-major index in the noise
// shape. `index` and `extent` list the mask axes' coordinates and extents outermost first
// (for NCHW spatial dropout {n, c} and {N, C}); the other axes have extent 1 in the noise
// shape and do not enter. Computed in int64, as the runtime does. For a shard of a larger
// tensor (docs/semantics.md#shards), pass the logical coordinates and extents.
inline Expr mask_index(const std::vector<Expr>& index, const std::vector<Expr>& extent) {
  Expr m = Halide::cast<int64_t>(0);
  for (size_t i = 0; i < index.size(); i++) {
    m = m * Halide::cast<int64_t>(extent[i]) + Halide::cast<int64_t>(index[i]);
  }
  return m;
}

// The keep bit of mask index m: Philox4x32-10 keyed by seed, counter (m / 4, offset), word
// m % 4, compared with the threshold (docs/rng.md#mask-bits). seed and offset are uint64;
// threshold uint32; keep_all bool (DropoutConstants). Compute it once per mask index (a Func
// over the mask axes), not per element: it is ten Philox rounds.
inline Expr keep(Expr m, Expr seed, Expr offset, Expr threshold, Expr keep_all) {
  return gen::philox_keep(m, seed, offset, threshold, keep_all);
}

// The stored type of a dtype on a target: float16 as Float(16) where the target converts in
// hardware (hw_f16: F16C, CUDA), else as its bits (UInt(16)); bfloat16 always as UInt(16).
inline Halide::Type storage_type(DType t, bool hw_f16 = true) {
  return gen::storage_type(t, hw_f16);
}

// The value sdrop stores for an element whose stored value is x (of storage_type(t)):
// kept -> x * s rounded to the dtype, dropped -> +0.0, or x * 0 when multiply (PyTorch's
// NaN/Inf/-0.0). scale is DropoutConstants::scale_f32 (scale_f64 for float64); multiply a
// bool Expr (a runtime choice) or a constant. An x that is itself computed (a bias, an
// activation) should be rounded to the dtype first, as the unfused sequence stores it:
// then fused and unfused results are the same bits.
inline Expr dropout_value(DType t, Expr x, Expr keep, Expr scale, Expr multiply,
                          bool hw_f16 = true) {
  return gen::dropout_value(t, x, keep, scale, multiply, hw_f16);
}

}  // namespace sdrop::halide
