// The libtorch peer: torch::nn::functional::dropout2d in the same process (torch_peer.cpp, built
// when CMake finds libtorch; stubs otherwise).
#ifndef SDROP_BENCH_TORCH_PEER_H_
#define SDROP_BENCH_TORCH_PEER_H_

#include <benchmark/benchmark.h>

#include <string>

#include "common.h"

namespace sdb {

#ifdef SDROP_BENCH_HAVE_TORCH
constexpr bool kHaveTorch = true;
void torch_init(int threads);  // at::set_num_threads(threads)
int torch_threads();
std::string torch_version();
// Whether dropout2d (out of place and in place) runs on this dtype on the CPU.
bool torch_supports(DType d, std::string* why);
// c.multiply is ignored (dropout2d always multiplies); c.nhwc: a channels-last input.
void bm_torch(benchmark::State& st, const Case& c);
// The fused epilogue's chain in eager libtorch (epilogue_bench.cpp), f32 NCHW over the caller's
// buffers (from_blob, no copy), on `threads` intra-op threads:
//   y = relu(dropout2d(relu(x + bias.view({1, C, 1, 1}))) + residual)
// Every op allocates (and first-touches) its output, as eager PyTorch does.
void bm_torch_epilogue(benchmark::State& st, const Size& s, double p, int threads,
                       const float* x, const float* bias, const float* residual);
#else
constexpr bool kHaveTorch = false;
inline void torch_init(int) {}
inline int torch_threads() { return 0; }
inline std::string torch_version() { return "not built"; }
inline bool torch_supports(DType, std::string* why) {
  *why = "built without libtorch";
  return false;
}
inline void bm_torch(benchmark::State& st, const Case&) { st.SkipWithError("no libtorch"); }
inline void bm_torch_epilogue(benchmark::State& st, const Size&, double, int, const float*,
                              const float*, const float*) {
  st.SkipWithError("no libtorch");
}
#endif

}  // namespace sdb

#endif  // SDROP_BENCH_TORCH_PEER_H_
