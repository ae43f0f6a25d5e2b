// The CPU kernels' parallel loops (halide_do_par_for) on sdrop's own pool.
//
// Halide's pool puts its workers to sleep a few yields after a loop ends, so every call pays a
// futex wake-up and the latency of the woken threads: on a VM tens of microseconds, more than
// a whole cache-resident call takes on one thread. Here workers spin for a short while after a
// loop (kSpinNs) before they block, so back-to-back calls, as in training, find them awake.
// The caller takes tasks too. Each thread of a loop owns an equal run of its tasks (the same
// run call after call, so a cache-resident tensor's parts stay in the caches of the cores that
// wrote them) and takes them one at a time; a thread done with its own run takes what is
// left of the others'.
// One loop runs at a time: a caller that finds the pool busy (another thread's call, or a
// nested loop) runs its loop on its own thread, which gives the same results.
// A thread that set a runner (sdrop_set_parallel_runner) runs its loops on that instead.
#pragma once

#include <cstdint>

#include "HalideRuntime.h"
#include "sdrop/sdrop.h"

namespace sdrop {

// halide_do_par_for_t: runs f(uc, i, closure) for i in [min, min + size) on up to
// pool_threads() threads; returns the first nonzero result, else 0.
int pool_do_par_for(void* uc, halide_task_t f, int min, int size, uint8_t* closure);

// Threads a loop may use (the caller included); workers are started when first needed.
void set_pool_threads(int n);

// Threads a call on this thread runs on: its runner's count when it set one, else the pool's.
int call_threads();

// The calling thread's runner (docs/c-api.md#parallel-runner).
sdrop_status set_parallel_runner(sdrop_parallel_for_fn run, void* context, int threads);
void get_parallel_runner(sdrop_parallel_for_fn* run, void** context, int* threads);

// The kernels are compiled without asserts, so a loop's result does not reach the caller:
// a runner that returned with tasks not run is noted on the calling thread instead.
// runner_shortfall() returns false, or true with how many of how many tasks ran, and clears.
bool runner_shortfall(int32_t* ran, int32_t* of);

// The most threads that ran tasks of one loop since the last reset, on this calling thread:
// each thread that took at least one task counts (a loop run serially counts 1; none ran: 0).
// The verbose line's `workers`, which tells whether a runner really ran its tasks in parallel.
void reset_loop_workers();
int loop_workers();

}  // namespace sdrop
