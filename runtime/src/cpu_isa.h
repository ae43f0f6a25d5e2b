// Which CPU kernel variant runs: the best ISA the CPU supports, capped like oneDNN's
// ONEDNN_MAX_CPU_ISA (SDROP_MAX_CPU_ISA, sdrop_set_max_cpu_isa).
#pragma once

#include "sdrop/sdrop.h"

namespace sdrop {

enum class Isa { sse41 = 0, avx2 = 1, avx512 = 2 };
constexpr int kNumIsas = 3;

// The variant to run now, or an error (e.g. an unknown SDROP_MAX_CPU_ISA value).
sdrop_status select_isa(Isa* out);

}  // namespace sdrop
