#include "thread_pool.h"

#include <immintrin.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "fpenv.h"

namespace sdrop {
namespace {

constexpr int kMaxThreads = 256;
// How long an idle worker keeps spinning before it blocks: long enough to span the gap
// between the calls of a training step, short enough not to hold a core for long.
constexpr int64_t kSpinNs = 100 * 1000;

thread_local bool t_in_pool = false;  // a worker, or a caller running a loop: nested loops run serially

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Everything is seq_cst where two threads must see at least one of each other's writes:
// a worker announces itself (in_job_) before it reads open_, the caller closes open_ before
// it reads in_job_; a sleeper counts itself (sleepers_) before it reads gen_, a poster bumps
// gen_ before it reads sleepers_.
class Pool {
 public:
  int run(void* uc, halide_task_t f, int min, int size, uint8_t* closure, int threads) {
    std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
    if (!busy.owns_lock()) return serial(uc, f, min, size, closure);
    const int helpers = (threads < size ? threads : size) - 1;
    start_workers(helpers);
    f_ = f;
    uc_ = uc;
    closure_ = closure;
    min_ = min;
    size_ = size;
    helpers_ = helpers;
    error_.store(0);
    next_.store(0);
    open_.store(true);
    gen_.fetch_add(1);
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lk(sleep_mu_);
      cv_.notify_all();
    }
    t_in_pool = true;
    work();
    t_in_pool = false;
    // Every task has been taken; close the job and wait for the workers still inside it.
    open_.store(false);
    while (in_job_.load() != 0) _mm_pause();
    return error_.load();
  }

  static int serial(void* uc, halide_task_t f, int min, int size, uint8_t* closure) {
    for (int i = 0; i < size; i++) {
      if (int r = f(uc, min + i, closure)) return r;
    }
    return 0;
  }

 private:
  void work() {
    for (int i; (i = next_.fetch_add(1)) < size_;) {
      if (int r = f_(uc_, min_ + i, closure_)) {
        int zero = 0;
        error_.compare_exchange_strong(zero, r);
      }
    }
  }

  void start_workers(int n) {
    if (n > kMaxThreads - 1) n = kMaxThreads - 1;
    while (started_ < n) {
      const int id = started_++;
      std::thread([this, id] { worker(id); }).detach();
    }
  }

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
        std::unique_lock<std::mutex> lk(sleep_mu_);
        sleepers_.fetch_add(1);
        cv_.wait(lk, [&] { return (g = gen_.load()) != seen; });
        sleepers_.fetch_sub(1);
      }
      seen = g;
      in_job_.fetch_add(1);
      // A loop that wants fewer threads than the pool has leaves the higher ids out.
      if (open_.load() && id < helpers_) {
        FpEnvGuard env;  // workers keep the state they were created with; tasks get the default
        work();
      }
      in_job_.fetch_sub(1);
    }
  }

  std::mutex run_mu_;  // one loop at a time
  int started_ = 0;    // workers started (under run_mu_)

  // The posted loop: written by the caller before open_/gen_, read by workers after them.
  halide_task_t f_ = nullptr;
  void* uc_ = nullptr;
  uint8_t* closure_ = nullptr;
  int min_ = 0, size_ = 0, helpers_ = 0;
  std::atomic<int> next_{0};
  std::atomic<int> error_{0};

  std::atomic<uint64_t> gen_{0};
  std::atomic<bool> open_{false};
  std::atomic<int> in_job_{0};
  std::atomic<int> sleepers_{0};
  std::mutex sleep_mu_;
  std::condition_variable cv_;
};

// Never destroyed: detached workers may still be spinning while the process exits.
Pool* g_pool = nullptr;
pthread_once_t g_pool_once = PTHREAD_ONCE_INIT;
std::atomic<int> g_pool_threads{1};

}  // namespace

int pool_do_par_for(void* uc, halide_task_t f, int min, int size, uint8_t* closure) {
  const int threads = g_pool_threads.load(std::memory_order_relaxed);
  if (size <= 1 || threads <= 1 || t_in_pool) return Pool::serial(uc, f, min, size, closure);
  pthread_once(&g_pool_once, [] { g_pool = new Pool; });
  return g_pool->run(uc, f, min, size, closure, threads);
}

void set_pool_threads(int n) {
  g_pool_threads.store(n < 1 ? 1 : n > kMaxThreads ? kMaxThreads : n);
}

}  // namespace sdrop
