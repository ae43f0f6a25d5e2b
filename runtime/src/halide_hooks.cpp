#include "halide_hooks.h"

#include <pthread.h>
#include <xmmintrin.h>

#include <atomic>
#include <cstring>

#include "HalideRuntime.h"
#include "fpenv.h"
#include "thread_pool.h"

// Defined by the Halide runtime (thread pool sizing), not declared in its public header.
extern "C" int halide_host_cpu_count();

namespace sdrop {
namespace {

thread_local char g_halide_message[512];

void on_halide_error(void*, const char* msg) {
  std::strncpy(g_halide_message, msg, sizeof g_halide_message - 1);
}

// Worker threads inherit whatever MXCSR their creator had; every task runs with the IEEE
// default (round to nearest even, no flush-to-zero, no denormals-are-zero) and gives the
// thread its own state back afterwards. Writing MXCSR serialises the core, so it is written
// only when it differs.
int clean_do_task(void* uc, halide_task_t f, int idx, uint8_t* closure) {
  FpEnvGuard env;
  return halide_default_do_task(uc, f, idx, closure);
}

int clean_do_loop_task(void* uc, halide_loop_task_t f, int min, int extent, uint8_t* closure,
                       void* parent) {
  FpEnvGuard env;
  return halide_default_do_loop_task(uc, f, min, extent, closure, parent);
}

constexpr int kMaxThreads = 256;  // Halide's thread pool limit
// halide_host_cpu_count() reads /sys on every call (tens of microseconds): ask once.
int g_cpu_count = 1;
std::atomic<int> g_threads{1};  // the resolved count, what the kernels are told

int resolve(int requested) {
  int n = requested > 0 ? requested : g_cpu_count;
  if (n < 1) n = 1;
  return n > kMaxThreads ? kMaxThreads : n;
}

pthread_once_t g_hooks_once = PTHREAD_ONCE_INIT;
std::atomic<int> g_requested{0};

void install_hooks() {
  g_cpu_count = halide_host_cpu_count();
  halide_set_error_handler(on_halide_error);
  halide_set_custom_do_task(clean_do_task);
  halide_set_custom_do_loop_task(clean_do_loop_task);
  // The kernels' parallel loops run on sdrop's pool (thread_pool.h); Halide's own pool is
  // left for anything else that asks it (async stages: none today).
  halide_set_custom_do_par_for(pool_do_par_for);
  const int n = resolve(g_requested.load());
  g_threads.store(n);
  set_pool_threads(n);
  halide_set_num_threads(n);
}

}  // namespace

void ensure_halide_hooks() { pthread_once(&g_hooks_once, install_hooks); }
const char* halide_message() { return g_halide_message; }
void clear_halide_message() { g_halide_message[0] = '\0'; }

void set_num_threads(int n) {
  if (n < 0) n = 0;
  g_requested.store(n);
  ensure_halide_hooks();
  const int resolved = resolve(n);
  g_threads.store(resolved);
  set_pool_threads(resolved);
  halide_set_num_threads(resolved);
}

int get_num_threads() {
  ensure_halide_hooks();
  return g_threads.load(std::memory_order_relaxed);
}

}  // namespace sdrop
