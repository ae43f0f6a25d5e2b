// The Halide runtime's process-wide hooks, installed once: the error handler (its default
// aborts the process), the worker threads' floating-point state, and the thread pool size.
#pragma once

namespace sdrop {

void ensure_halide_hooks();

// The last Halide error message on this thread ("" if none since the last clear).
const char* halide_message();
void clear_halide_message();

// sdrop_set_num_threads / sdrop_get_num_threads. The count is resolved once (0: one per
// core) and cached, so that a call never asks the system for its CPU count.
void set_num_threads(int n);
int get_num_threads();

}  // namespace sdrop
