// Where the operators meet torch's devices: CUDA calls run on PyTorch's current stream of
// their device (in its primary context, where PyTorch allocates), and draws come from the
// device's default generator: the CPU's mt19937 or, in a build against a CUDA-enabled
// torch, the CUDA Philox generator, whose offset advances as PyTorch's own dropout advances
// it.
#include <ATen/CPUGeneratorImpl.h>

#include <mutex>

#include "torch_sdrop.h"

#ifdef SDROP_TORCH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace sdrop_torch {

void use_current_stream(const at::Tensor& t) {
#ifdef SDROP_TORCH_CUDA
  if (!t.is_cuda()) return;
  const c10::cuda::CUDAStream s = c10::cuda::getCurrentCUDAStream(t.get_device());
  check(sdrop_set_cuda_stream(nullptr, s.stream()));
#else
  (void)t;
#endif
}

std::pair<uint64_t, uint64_t> draw(const at::Tensor& t) {
#ifdef SDROP_TORCH_CUDA
  if (t.is_cuda()) {
    auto* gen = at::check_generator<at::CUDAGeneratorImpl>(
        at::cuda::detail::getDefaultCUDAGenerator(t.get_device()));
    std::lock_guard<std::mutex> lock(gen->mutex_);
    return gen->philox_engine_inputs(4);  // one Philox block of the generator's offset space
  }
#endif
  TORCH_CHECK_NOT_IMPLEMENTED(t.is_cpu() || t.is_cuda(), "sdrop: no generator for device ",
                              t.device());
  auto* gen = at::check_generator<at::CPUGeneratorImpl>(at::detail::getDefaultCPUGenerator());
  std::lock_guard<std::mutex> lock(gen->mutex_);
  return {gen->random64(), 0};
}

}  // namespace sdrop_torch
