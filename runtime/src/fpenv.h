// The caller's floating-point environment is theirs (docs/semantics.md, "values"): every
// entry point runs with the IEEE default (round to nearest even, no flush-to-zero or
// denormals-are-zero, every exception masked) and puts the caller's environment back on
// return, status flags included, refused calls too. The library's arithmetic is SSE (the
// x87 unit is not used), so MXCSR is the whole environment that matters.
#pragma once

#include <xmmintrin.h>

namespace sdrop {

constexpr unsigned kDefaultMxcsr = 0x1F80;  // all exceptions masked, RNE, no FTZ/DAZ

class FpEnvGuard {
 public:
  FpEnvGuard() : saved_(_mm_getcsr()) { _mm_setcsr(kDefaultMxcsr); }
  ~FpEnvGuard() { _mm_setcsr(saved_); }
  FpEnvGuard(const FpEnvGuard&) = delete;
  FpEnvGuard& operator=(const FpEnvGuard&) = delete;

 private:
  unsigned saved_;
};

}  // namespace sdrop
