// SDROP_VERBOSE (sdrop.h, "Verbose mode"): what a call did, one line on stderr per call.
// Off, the cost is verbose_level()'s relaxed load and a branch: the timer starts only when on.
#pragma once

#include <atomic>
#include <cstdint>

#include "kernels.h"
#include "params.h"
#include "plan.h"
#include "sdrop/sdrop.h"
#include "tensor.h"

namespace sdrop {

extern std::atomic<int> g_verbose;  // -1 until the environment has been read
int read_verbose_env();

inline int verbose_level() {
  const int v = g_verbose.load(std::memory_order_relaxed);
  return v >= 0 ? v : read_verbose_env();
}
void set_verbose(int level);

// A monotonic clock in nanoseconds, for the line's time.
uint64_t verbose_now_ns();

// What one call did; filled as it runs, printed as it returns.
struct CallRecord {
  const char* op = "";
  const sdrop_params* params = nullptr;
  const Tensor* x = nullptr;  // the input (null for mask)
  const Tensor* y = nullptr;  // the output
  const Plan* plan = nullptr; // null for calls that ran no kernel (empty tensors)
  RunInfo run;
  int level = 0;
  uint64_t start_ns = 0;
  bool printed = false;
};

// Prints the exec line (and, at level 2, the plan) for status OK, or the error line.
void verbose_print(const CallRecord& r, sdrop_status status);

// The tail of every entry point that runs a plan: run it and, when verbose, print the line
// while the plan is still alive.
inline sdrop_status run_and_trace(CallRecord* r, Backend backend, Op op, DType dtype,
                                  const Plan& plan, const Tensor* x, const Tensor& y,
                                  const Tensor* k, const KernelArgs& args,
                                  const EpilogueOperands* e = nullptr) {
  const sdrop_status s = run_plan(backend, op, dtype, plan, x, y, k, args, &r->run, e);
  if (r->level) {
    r->plan = &plan;
    verbose_print(*r, s);
    r->printed = true;
  }
  return s;
}

// The tail of a call that ran no kernel (empty tensors).
inline sdrop_status trace_no_kernel(CallRecord* r) {
  if (r->level) {
    verbose_print(*r, SDROP_OK);
    r->printed = true;
  }
  return SDROP_OK;
}

// Entry points: starts the record (and the clock when verbose), and prints the error line
// for refusals (successful calls printed theirs while their tensors were in scope).
class Traced {
 public:
  Traced(const char* op, const sdrop_params* params) {
    rec_.op = op;
    rec_.params = params;
    rec_.level = verbose_level();
    if (rec_.level) rec_.start_ns = verbose_now_ns();
  }
  CallRecord* operator->() { return &rec_; }
  CallRecord* get() { return &rec_; }
  sdrop_status finish(sdrop_status s) {
    if (rec_.level && !rec_.printed && s != SDROP_OK) verbose_print(rec_, s);
    return s;
  }

 private:
  CallRecord rec_;
};

}  // namespace sdrop
