// The fused channel epilogue's benchmarks (epilogue_bench.cpp): sdrop_epilogue_forward against
// the same chain run as separate passes, libtorch's eager sequence and the chain's traffic limit;
// sdrop_epilogue_backward against what autograd of the unfused sequence does.
#ifndef SDROP_BENCH_EPILOGUE_H_
#define SDROP_BENCH_EPILOGUE_H_

#include <benchmark/benchmark.h>

namespace sdb {

// Registers the epilogue rows at every size of kSizes, each with apply() (sdrop_bench's
// repetitions, warm-up, real time): the names are
//   epilogue/<fused|unfused|unfused_oop|torch|traffic>/f32/nchw/<size>/p0.5
//   epilogue_bwd/<fused|unfused>/f32/nchw/<size>/p0.5
void register_epilogue(void (*apply)(benchmark::internal::Benchmark*));

}  // namespace sdb

#endif  // SDROP_BENCH_EPILOGUE_H_
