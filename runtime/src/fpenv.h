// The caller's floating-point environment is theirs (docs/semantics.md, "values"): every
// entry point runs with the IEEE default (round to nearest even, no flush-to-zero or
// denormals-are-zero, every exception masked) and puts the caller's environment back on
// return, status flags included, refused calls too. The library's arithmetic is SSE (the
// x87 unit is not used), so MXCSR is the whole environment that matters.
#pragma once

#include <xmmintrin.h>

namespace sdrop {

constexpr unsigned kDefaultMxcsr = 0x1F80;  // all exceptions masked, RNE, no FTZ/DAZ

// Writing MXCSR is a serialising instruction (tens of cycles), and the common caller already
// runs with the default: write only what differs, on entry and on exit.
class FpEnvGuard {
 public:
  FpEnvGuard() : saved_(_mm_getcsr()) {
    if (saved_ != kDefaultMxcsr) _mm_setcsr(kDefaultMxcsr);
  }
  ~FpEnvGuard() {
    if (_mm_getcsr() != saved_) _mm_setcsr(saved_);
  }
  FpEnvGuard(const FpEnvGuard&) = delete;
  FpEnvGuard& operator=(const FpEnvGuard&) = delete;

 private:
  unsigned saved_;
};

}  // namespace sdrop
