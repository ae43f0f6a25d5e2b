// What kind of kernel: the op, the canonical shape and the element type. The one definition
// shared by the generators (each kernel is compiled for one of each), the runtime (which
// picks one per call), the tests' reference and the benchmarks. The public ABI speaks
// DLPack's DLDataType; these are internal indices (into the runtime's kernel tables too).
#pragma once

namespace sdrop {

// epilogue: the fused channel epilogue of docs/epilogue.md, post(r + dropout(act(x + b)));
// epilogue_backward: its gradients (dresidual, dx); channel_sum: per-row sums of a tensor (the
// bias gradient's partial sums).
enum class Op { dropout, apply_mask, mask, epilogue, epilogue_backward, channel_sum };

// The canonical shapes of docs/architecture.md#canonicalisation: rows (a mask bit per
// contiguous row), channels_last (a bit per element of the innermost axis), elementwise.
enum class Shape { rows = 0, channels_last = 1, elementwise = 2 };

// The float types of docs/semantics.md#values, then the mask's uint8 (only ever a mask).
enum class DType { f16, bf16, f32, f64, u8 };

}  // namespace sdrop
