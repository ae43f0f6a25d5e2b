// Shared by the PyTorch operator library's files: at::Tensor -> DLTensor views, the call
// parameters, and sdrop statuses -> PyTorch errors (docs/python.md, "PyTorch operators").
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <sdrop/sdrop.h>

namespace sdrop_torch {

// A DLTensor over an at::Tensor's data, shape and strides (elements), zero-copy. Ranks above
// 8 are passed as they are (sdrop refuses them, naming the rank) with their first 16 axes.
struct DL {
  int64_t shape[16], strides[16];
  DLTensor t{};

  explicit DL(const at::Tensor& a) {
    const int64_t n = a.dim() < 16 ? a.dim() : 16;
    const auto sizes = a.sizes();
    const auto st = a.strides();
    for (int64_t i = 0; i < n; i++) {
      shape[i] = sizes[i];
      strides[i] = st[i];
    }
    t.data = a.numel() ? a.data_ptr() : nullptr;
    t.device = a.is_cuda() ? DLDevice{kDLCUDA, int32_t(a.get_device())}
               : a.is_cpu() ? DLDevice{kDLCPU, 0}
                            : DLDevice{kDLExtDev, 0};  // refused by sdrop, naming the device
    t.ndim = int32_t(a.dim());
    t.dtype = dtype_of(a.scalar_type());
    t.shape = shape;
    t.strides = strides;
  }

  static DLDataType dtype_of(at::ScalarType s) {
    switch (s) {
      case at::kFloat: return {kDLFloat, 32, 1};
      case at::kDouble: return {kDLFloat, 64, 1};
      case at::kHalf: return {kDLFloat, 16, 1};
      case at::kBFloat16: return {kDLBfloat, 16, 1};
      case at::kByte: return {kDLUInt, 8, 1};
      case at::kBool: return {6, 8, 1};  // kDLBool
      case at::kChar: return {kDLInt, 8, 1};
      case at::kShort: return {kDLInt, 16, 1};
      case at::kInt: return {kDLInt, 32, 1};
      case at::kLong: return {kDLInt, 64, 1};
      case at::kComplexFloat: return {kDLComplex, 64, 1};
      case at::kComplexDouble: return {kDLComplex, 128, 1};
      default: return {kDLOpaqueHandle, uint8_t(8 * c10::elementSize(s)), 1};
    }
  }
};

// A failed call becomes the PyTorch error of its kind, with sdrop's message: ValueError for
// an invalid argument, NotImplementedError for a valid tensor sdrop cannot run,
// torch.OutOfMemoryError, RuntimeError for the rest.
inline void check(sdrop_status s) {
  if (s == SDROP_OK) return;
  const std::string msg = std::string("sdrop: ") + sdrop_last_error();
  switch (s) {
    case SDROP_ERROR_INVALID_ARGUMENT: TORCH_CHECK_VALUE(false, msg);
    case SDROP_ERROR_UNSUPPORTED: TORCH_CHECK_NOT_IMPLEMENTED(false, msg);
    case SDROP_ERROR_OUT_OF_MEMORY: TORCH_CHECK_WITH(OutOfMemoryError, false, msg);
    default: TORCH_CHECK(false, msg, " (", sdrop_status_name(s), ")");
  }
}

// (seed, offset) from the two int64 scalar CPU tensors every random op takes: the randomness
// is an argument, so the ops are pure functions of their inputs. Scalars (0-dim) on the CPU
// mix with CUDA tensors in one op, as PyTorch's own philox seeds do.
inline uint64_t scalar_of(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.device().is_cpu() && t.scalar_type() == at::kLong && t.numel() == 1,
                    "sdrop: ", name, " must be a CPU int64 tensor of one element, got ",
                    t.scalar_type(), " ", t.sizes(), " on ", t.device());
  return uint64_t(*t.const_data_ptr<int64_t>());  // read on the host, without a dispatch
}

inline sdrop_params params_of(const at::Tensor& seed, const at::Tensor& offset, double p,
                              int64_t mask_axes, int64_t flags) {
  TORCH_CHECK_VALUE(mask_axes >= 0 && mask_axes <= UINT32_MAX,
                    "sdrop: mask_axes must be a bit mask in [0, 2^32), got ", mask_axes);
  TORCH_CHECK_VALUE(flags >= 0 && flags <= UINT32_MAX,
                    "sdrop: flags must be in [0, 2^32), got ", flags);
  return sdrop_params{p, scalar_of(seed, "seed"), scalar_of(offset, "offset"),
                      uint32_t(mask_axes), uint32_t(flags)};
}

// The shard description (docs/semantics.md#shards) of optional int[] arguments.
struct Shard {
  std::vector<int64_t> origin, logical;
  sdrop_shard s{nullptr, nullptr};
  Shard(at::OptionalIntArrayRef o, at::OptionalIntArrayRef l, int64_t ndim) {
    if (o) {
      origin = o->vec();
      TORCH_CHECK_VALUE(int64_t(origin.size()) == ndim, "sdrop: origin must have ", ndim,
                        " entries (one per axis), got ", origin.size());
      s.origin = origin.data();
    }
    if (l) {
      logical = l->vec();
      TORCH_CHECK_VALUE(int64_t(logical.size()) == ndim, "sdrop: logical_shape must have ",
                        ndim, " entries (one per axis), got ", logical.size());
      s.logical_shape = logical.data();
    }
  }
  const sdrop_shard* get() const { return (s.origin || s.logical_shape) ? &s : nullptr; }
};

// While alive, this thread's CPU calls run their parallel loops on PyTorch's intra-op threads
// (at::parallel_for, torch.get_num_threads() of them) instead of sdrop's own pool: two pools
// on the same cores, each spinning a while after its work, slow each other down (a training
// step alternates between torch's ops and sdrop's). The caller's runner is put back after.
class TorchThreads {
 public:
  explicit TorchThreads(const at::Tensor& t) : on_(t.is_cpu()) {
    if (!on_) return;
    sdrop_get_parallel_runner(&run_, &ctx_, &threads_);
    sdrop_set_parallel_runner(&TorchThreads::run, nullptr, at::get_num_threads());
  }
  ~TorchThreads() {
    if (on_) sdrop_set_parallel_runner(run_, ctx_, threads_);
  }
  TorchThreads(const TorchThreads&) = delete;
  TorchThreads& operator=(const TorchThreads&) = delete;

 private:
  static void run(void*, int32_t n, sdrop_task_fn task, void* task_context) {
    try {
      at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; i++) task(task_context, int32_t(i));
      });
    } catch (...) {
      // Nothing may cross back into C; sdrop counts the tasks and fails the call.
    }
  }
  bool on_;
  sdrop_parallel_for_fn run_ = nullptr;
  void* ctx_ = nullptr;
  int threads_ = 0;
};

// CUDA tensors run on PyTorch's current stream of their device (torch_cuda.cpp); a no-op
// in a build without CUDA.
void use_current_stream(const at::Tensor& t);

// One draw of (seed, offset) from torch's default generator of t's device, as torch's own
// dropout consumes it: the CPU generator gives one 64-bit number (the seed; offset 0), a CUDA
// generator its seed and the next Philox offset, advanced by one block (torch_cuda.cpp).
std::pair<uint64_t, uint64_t> draw(const at::Tensor& t);

}  // namespace sdrop_torch
