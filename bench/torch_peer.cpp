// libtorch's dropout2d, timed like sdrop: same buffers (wrapped with from_blob, no copy), same
// thread count, training = true. Out of place it allocates and first-touches a new output every
// call; that is part of what a PyTorch user pays, so it is timed.
#include "torch_peer.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cstdio>

namespace sdb {

namespace F = torch::nn::functional;

namespace {
at::ScalarType scalar_type(DType d) {
  switch (d) {
    case DType::f32: return at::kFloat;
    case DType::f64: return at::kDouble;
    case DType::f16: return at::kHalf;
    default: return at::kBFloat16;
  }
}
}  // namespace

void torch_init(int threads) {
  at::set_num_threads(threads);
}

int torch_threads() { return at::get_num_threads(); }

std::string torch_version() { return TORCH_VERSION; }

bool torch_supports(DType d, std::string* why) {
  try {
    torch::NoGradGuard ng;
    auto x = torch::ones({2, 4, 3, 3}, torch::TensorOptions().dtype(scalar_type(d)));
    auto y = F::dropout2d(x, F::Dropout2dFuncOptions().p(0.5).training(true));
    F::dropout2d(x, F::Dropout2dFuncOptions().p(0.5).training(true).inplace(true));
    (void)y.sum().item<double>();
    return true;
  } catch (const std::exception& e) {
    *why = e.what();
    auto nl = why->find('\n');
    if (nl != std::string::npos) why->resize(nl);
    return false;
  }
}

void bm_torch(benchmark::State& st, const Case& c) {
  try {
    torch::NoGradGuard ng;
    const int64_t numel = c.numel();
    const size_t bytes = size_t(numel) * dtype_size(c.dtype);
    fill_input(c.dtype, numel);
    void* data = buf_a();
    if (c.inplace) {
      copy_a_to_b(bytes);
      data = buf_b();
    }
    const Size& s = *c.size;
    std::vector<int64_t> sizes{s.n, s.c, s.h, s.w};
    std::vector<int64_t> strides = c.nhwc
        ? std::vector<int64_t>{s.h * s.w * s.c, 1, s.w * s.c, s.c}
        : std::vector<int64_t>{s.c * s.h * s.w, s.h * s.w, s.w, 1};
    torch::Tensor x = torch::from_blob(data, sizes, strides,
                                       torch::TensorOptions().dtype(scalar_type(c.dtype)));
    auto opts = F::Dropout2dFuncOptions().p(c.p).training(true).inplace(c.inplace);
    bool out_cl = true;
    for (auto _ : st) {
      torch::Tensor y = F::dropout2d(x, opts);
      benchmark::DoNotOptimize(y.data_ptr());
      benchmark::ClobberMemory();
      if (c.nhwc && !c.inplace) out_cl = y.is_contiguous(at::MemoryFormat::ChannelsLast);
    }
    st.SetBytesProcessed(int64_t(st.iterations()) * c.bytes_moved());
    std::string label = "threads=" + std::to_string(at::get_num_threads());
    if (c.nhwc && !c.inplace) label += out_cl ? " out=channels_last" : " out=contiguous";
    st.SetLabel(label);
  } catch (const std::exception& e) {
    st.SkipWithError((std::string("libtorch: ") + e.what()).c_str());
  }
}

void bm_torch_epilogue(benchmark::State& st, const Size& s, double p, int threads,
                       const float* x, const float* bias, const float* residual) {
  const int saved = at::get_num_threads();
  try {
    torch::NoGradGuard ng;
    if (saved != threads) at::set_num_threads(threads);
    const auto f32 = torch::TensorOptions().dtype(at::kFloat);
    torch::Tensor X = torch::from_blob(const_cast<float*>(x), {s.n, s.c, s.h, s.w}, f32);
    torch::Tensor R = torch::from_blob(const_cast<float*>(residual), {s.n, s.c, s.h, s.w}, f32);
    torch::Tensor B = torch::from_blob(const_cast<float*>(bias), {s.c}, f32).view({1, s.c, 1, 1});
    auto opts = F::Dropout2dFuncOptions().p(p).training(true);
    for (auto _ : st) {
      torch::Tensor y = torch::relu(F::dropout2d(torch::relu(X + B), opts) + R);
      benchmark::DoNotOptimize(y.data_ptr());
      benchmark::ClobberMemory();
    }
    st.SetBytesProcessed(int64_t(st.iterations()) * 3 * s.numel() * 4);
    st.SetLabel("threads=" + std::to_string(at::get_num_threads()) + " allocates");
  } catch (const std::exception& e) {
    st.SkipWithError((std::string("libtorch: ") + e.what()).c_str());
  }
  if (at::get_num_threads() != saved) at::set_num_threads(saved);
}

}  // namespace sdb
