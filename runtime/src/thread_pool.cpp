#include "thread_pool.h"

#include <immintrin.h>
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cstdint>

#include "error.h"
#include "fpenv.h"

namespace sdrop {
namespace {

constexpr int kMaxThreads = 256;
// How long an idle worker keeps spinning before it blocks: long enough to span the gap
// between the calls of a training step, short enough not to hold a core for long.
constexpr int64_t kSpinNs = 100 * 1000;

thread_local bool t_in_pool = false;  // a worker, or a caller running a loop: nested loops run serially

// This thread's runner (sdrop_set_parallel_runner), and what the last incomplete run did.
struct Runner {
  sdrop_parallel_for_fn run;
  void* context;
  int threads;
};
thread_local Runner t_runner{nullptr, nullptr, 0};
thread_local int32_t t_ran = 0, t_of = 0;

// Counting the threads of a loop: every loop gets an id; a thread counts itself into a loop
// the first time it takes one of its tasks (t_loop: the last loop it counted itself into).
std::atomic<uint64_t> g_next_loop{1};
thread_local uint64_t t_loop = 0;
thread_local int t_workers = 0;  // the caller's: most threads of one loop since the reset

void count_in(uint64_t loop, std::atomic<int>* workers) {
  if (t_loop == loop) return;
  t_loop = loop;
  workers->fetch_add(1, std::memory_order_relaxed);
}

void note_workers(int n) {
  if (n > t_workers) t_workers = n;
}

// One loop handed to a runner: the Halide task and what its tasks report back.
struct RunnerJob {
  halide_task_t f;
  void* uc;
  uint8_t* closure;
  int min;
  uint64_t loop;
  std::atomic<int> error;
  std::atomic<int32_t> done;
  std::atomic<int> workers;
};

void runner_task(void* job, int32_t i) {
  auto* j = static_cast<RunnerJob*>(job);
  count_in(j->loop, &j->workers);
  const bool was = t_in_pool;
  t_in_pool = true;  // a loop inside a task (none today) runs on its thread
  {
    FpEnvGuard env;  // the runner's threads keep whatever state their owner gave them
    if (int r = j->f(j->uc, j->min + i, j->closure)) {
      int zero = 0;
      j->error.compare_exchange_strong(zero, r);
    }
  }
  t_in_pool = was;
  j->done.fetch_add(1, std::memory_order_relaxed);
}

int run_on_runner(const Runner& r, void* uc, halide_task_t f, int min, int size,
                  uint8_t* closure) {
  RunnerJob j{f, uc, closure, min, g_next_loop.fetch_add(1), {0}, {0}, {0}};
  r.run(r.context, size, &runner_task, &j);
  note_workers(j.workers.load(std::memory_order_relaxed));
  // The runner's return orders its tasks' writes before ours (its contract); the counter
  // catches a runner that dropped some.
  const int32_t done = j.done.load(std::memory_order_acquire);
  if (done != size) {
    if (t_of == 0) {
      t_ran = done;
      t_of = size;
    }
    return -1;  // for a kernel built with asserts
  }
  return j.error.load();
}

// pthreads and clock_gettime only: the static library links into C programs, without the
// C++ runtime.
int64_t now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// Everything is seq_cst where two threads must see at least one of each other's writes:
// a worker announces itself (in_job_) before it reads open_, the caller closes open_ before
// it reads in_job_; a sleeper counts itself (sleepers_) before it reads gen_, a poster bumps
// gen_ before it reads sleepers_.
class Pool {
 public:
  int run(void* uc, halide_task_t f, int min, int size, uint8_t* closure, int threads) {
    if (pthread_mutex_trylock(&run_mu_) != 0) return serial(uc, f, min, size, closure);
    const int helpers = (threads < size ? threads : size) - 1;
    start_workers(helpers);
    f_ = f;
    uc_ = uc;
    closure_ = closure;
    min_ = min;
    size_ = size;
    helpers_ = helpers;
    loop_ = g_next_loop.fetch_add(1);
    workers_.store(0);
    error_.store(0);
    // Thread k (the caller 0, worker w as w + 1) owns the k-th of helpers + 1 equal runs of
    // tasks: the same thread gets the same part of a tensor call after call, so data a
    // cache-resident call left in one core's cache is read there again, not pulled across.
    const int parts = helpers + 1;
    for (int k = 0; k < parts; k++) {
      runs_[k].next.store(int(int64_t(size) * k / parts), std::memory_order_relaxed);
      runs_[k].end = int(int64_t(size) * (k + 1) / parts);
    }
    parts_ = parts;
    open_.store(true);
    gen_.fetch_add(1);
    if (sleepers_.load() > 0) {
      pthread_mutex_lock(&sleep_mu_);
      pthread_cond_broadcast(&cv_);
      pthread_mutex_unlock(&sleep_mu_);
    }
    t_in_pool = true;
    work(0);
    t_in_pool = false;
    // Every task has been taken; close the job and wait for the workers still inside it.
    open_.store(false);
    while (in_job_.load() != 0) _mm_pause();
    note_workers(workers_.load());
    const int r = error_.load();
    pthread_mutex_unlock(&run_mu_);
    return r;
  }

  static int serial(void* uc, halide_task_t f, int min, int size, uint8_t* closure) {
    if (size > 0) note_workers(1);
    for (int i = 0; i < size; i++) {
      if (int r = f(uc, min + i, closure)) return r;
    }
    return 0;
  }

 private:
  // Its own run first, then what is left of the others' (a thread slowed by faults or
  // preemption loses tasks to the rest instead of holding the call up).
  void work(int self) {
    for (int j = 0; j < parts_; j++) {
      Run& run = runs_[(self + j) % parts_];
      for (int i; (i = run.next.fetch_add(1)) < run.end;) {
        count_in(loop_, &workers_);
        if (int r = f_(uc_, min_ + i, closure_)) {
          int zero = 0;
          error_.compare_exchange_strong(zero, r);
        }
      }
    }
  }

  void start_workers(int n) {
    if (n > kMaxThreads - 1) n = kMaxThreads - 1;
    while (started_ < n) {
      ids_[started_] = started_;
      pthread_t t;
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
      const int rc = pthread_create(&t, &attr, &Pool::entry, &ids_[started_]);
      pthread_attr_destroy(&attr);
      if (rc != 0) break;  // fewer workers: the caller takes the tasks they would have
      started_++;
    }
  }

  static void* entry(void* id) {
    the_pool()->worker(*static_cast<int*>(id));
    return nullptr;
  }

 public:
  static Pool* the_pool();

 private:

  void worker(int id) {
    t_in_pool = true;
    uint64_t seen = gen_.load();
    for (;;) {
      // Spin, then block, until a new loop is posted.
      uint64_t g = gen_.load();
      for (int64_t until = now_ns() + kSpinNs; g == seen;) {
        for (int k = 0; k < 64 && (g = gen_.load()) == seen; k++) _mm_pause();
        if (g != seen || now_ns() > until) break;
      }
      if (g == seen) {
        pthread_mutex_lock(&sleep_mu_);
        sleepers_.fetch_add(1);
        while ((g = gen_.load()) == seen) pthread_cond_wait(&cv_, &sleep_mu_);
        sleepers_.fetch_sub(1);
        pthread_mutex_unlock(&sleep_mu_);
      }
      seen = g;
      in_job_.fetch_add(1);
      // A loop that wants fewer threads than the pool has leaves the higher ids out.
      if (open_.load() && id < helpers_) {
        FpEnvGuard env;  // workers keep the state they were created with; tasks get the default
        work(id + 1);
      }
      in_job_.fetch_sub(1);
    }
  }

  pthread_mutex_t run_mu_ = PTHREAD_MUTEX_INITIALIZER;  // one loop at a time
  int started_ = 0;              // workers started (under run_mu_)
  int ids_[kMaxThreads] = {};    // each worker's id, where its thread can read it

  // The posted loop: written by the caller before open_/gen_, read by workers after them.
  halide_task_t f_ = nullptr;
  void* uc_ = nullptr;
  uint8_t* closure_ = nullptr;
  int min_ = 0, size_ = 0, helpers_ = 0;
  uint64_t loop_ = 0;
  // The runs of tasks, one per thread of the loop (each on its own cache line).
  struct alignas(64) Run {
    std::atomic<int> next{0};
    int end = 0;
  };
  Run runs_[kMaxThreads];
  int parts_ = 0;
  std::atomic<int> workers_{0};
  std::atomic<int> error_{0};

  std::atomic<uint64_t> gen_{0};
  std::atomic<bool> open_{false};
  std::atomic<int> in_job_{0};
  std::atomic<int> sleepers_{0};
  pthread_mutex_t sleep_mu_ = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cv_ = PTHREAD_COND_INITIALIZER;
};

// Static storage, constant-initialized and never destroyed: detached workers may still be
// spinning while the process exits.
Pool g_pool;
Pool* Pool::the_pool() { return &g_pool; }
std::atomic<int> g_pool_threads{1};

}  // namespace

int pool_do_par_for(void* uc, halide_task_t f, int min, int size, uint8_t* closure) {
  if (t_runner.run) {
    if (size <= 1 || t_runner.threads <= 1 || t_in_pool) {
      return Pool::serial(uc, f, min, size, closure);
    }
    return run_on_runner(t_runner, uc, f, min, size, closure);
  }
  const int threads = g_pool_threads.load(std::memory_order_relaxed);
  if (size <= 1 || threads <= 1 || t_in_pool) return Pool::serial(uc, f, min, size, closure);
  return g_pool.run(uc, f, min, size, closure, threads);
}

int call_threads() {
  return t_runner.run ? t_runner.threads : g_pool_threads.load(std::memory_order_relaxed);
}

sdrop_status set_parallel_runner(sdrop_parallel_for_fn run, void* context, int threads) {
  if (run && threads < 1) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "sdrop_set_parallel_runner: threads must be >= 1 with a runner, got %d", threads);
  }
  t_runner = run ? Runner{run, context, threads} : Runner{nullptr, nullptr, 0};
  return SDROP_OK;
}

void get_parallel_runner(sdrop_parallel_for_fn* run, void** context, int* threads) {
  if (run) *run = t_runner.run;
  if (context) *context = t_runner.context;
  if (threads) *threads = t_runner.threads;
}

bool runner_shortfall(int32_t* ran, int32_t* of) {
  if (t_of == 0) return false;
  *ran = t_ran;
  *of = t_of;
  t_ran = t_of = 0;
  return true;
}

void reset_loop_workers() { t_workers = 0; }
int loop_workers() { return t_workers; }

void set_pool_threads(int n) {
  g_pool_threads.store(n < 1 ? 1 : n > kMaxThreads ? kMaxThreads : n);
}

}  // namespace sdrop
