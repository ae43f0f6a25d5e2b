// The CPU kernels' parallel loops (halide_do_par_for) on sdrop's own pool.
//
// Halide's pool puts its workers to sleep a few yields after a loop ends, so every call pays a
// futex wake-up and the latency of the woken threads: on a VM tens of microseconds, more than
// a whole cache-resident call takes on one thread. Here workers spin for a short while after a
// loop (kSpinNs) before they block, so back-to-back calls, as in training, find them awake.
// The caller takes tasks too; tasks are handed out one at a time from an atomic counter.
// One loop runs at a time: a caller that finds the pool busy (another thread's call, or a
// nested loop) runs its loop on its own thread, which gives the same results.
#pragma once

#include "HalideRuntime.h"

namespace sdrop {

// halide_do_par_for_t: runs f(uc, i, closure) for i in [min, min + size) on up to
// pool_threads() threads; returns the first nonzero result, else 0.
int pool_do_par_for(void* uc, halide_task_t f, int min, int size, uint8_t* closure);

// Threads a loop may use (the caller included); workers are started when first needed.
void set_pool_threads(int n);

}  // namespace sdrop
