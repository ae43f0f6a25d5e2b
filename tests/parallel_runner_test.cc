// sdrop_set_parallel_runner (docs/c-api.md#parallel-runner): a thread that sets a runner gets
// its calls' parallel loops run on it, with results bit-identical to the reference whatever
// order and threads the runner uses; it applies to that thread only; a runner with one
// thread is never called; a runner that drops a task fails the call instead of leaving
// outputs unwritten unnoticed.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "dropout_tester.h"

namespace sdrop_test {
namespace {

using Op = DropoutTester::Op;

// What a runner saw: how many loops, and how often each task index ran.
struct Record {
  std::atomic<int> loops{0};
  std::vector<std::atomic<int>> hits = std::vector<std::atomic<int>>(1 << 16);
  std::atomic<int> largest{0};
  void saw(int32_t n) {
    loops.fetch_add(1);
    int l = largest.load();
    while (n > l && !largest.compare_exchange_weak(l, n)) {}
  }
};

// Runs every task on the calling thread, last index first.
void reverse_runner(void* ctx, int32_t n, sdrop_task_fn task, void* tctx) {
  auto* r = static_cast<Record*>(ctx);
  r->saw(n);
  for (int32_t i = n - 1; i >= 0; i--) {
    if (i < int32_t(r->hits.size())) r->hits[size_t(i)].fetch_add(1);
    task(tctx, i);
  }
}

// Two threads of its own (odd and even indices, concurrently), started with flush-to-zero
// and denormals-are-zero set, which the tasks must not inherit.
void two_thread_runner(void* ctx, int32_t n, sdrop_task_fn task, void* tctx) {
  static_cast<Record*>(ctx)->saw(n);
  auto half = [&](int32_t first) {
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(_mm_getcsr() | 0x8040u);
#endif
    for (int32_t i = first; i < n; i += 2) task(tctx, i);
  };
  std::thread a(half, 0), b(half, 1);
  a.join();
  b.join();
}

// Forgets the last task.
void lossy_runner(void*, int32_t n, sdrop_task_fn task, void* tctx) {
  for (int32_t i = 0; i + 1 < n; i++) task(tctx, i);
}

class ScopedRunner {
 public:
  ScopedRunner(sdrop_parallel_for_fn run, void* ctx, int threads) {
    EXPECT_EQ(sdrop_set_parallel_runner(run, ctx, threads), SDROP_OK) << sdrop_last_error();
  }
  ~ScopedRunner() { sdrop_set_parallel_runner(nullptr, nullptr, 0); }
};

// Large enough (several MB) that every op runs its parallel loop.
void RunOpsAgainstTheReference(uint64_t salt) {
  struct Case { std::vector<int64_t> shape; DLDataType dt; uint32_t axes; Op op; bool inplace; };
  const std::vector<Case> cases = {
      {{8, 32, 48, 48}, kF32, 0x3u, Op::kForward, false},
      {{8, 40, 40, 32}, kF16, 0x9u, Op::kForward, true},   // channels_last
      {{4, 64, 33, 31}, kBF16, 0x3u, Op::kBackward, false},
      {{2, 32, 64, 65}, kF64, 0x3u, Op::kApplyMask, false},
      {{3, 200000}, kF32, 0x3u, Op::kForward, false}};     // element-wise
  for (const Case& c : cases) {
    for (bool multiply : {false, true}) {
      DropoutTester().shape(c.shape).dtype(c.dt).mask_axes(c.axes).op(c.op).inplace(c.inplace)
          .multiply(multiply).p(0.4).seed(salt).offset(7).rng_seed(salt + 1).Test();
      if (testing::Test::HasFailure()) return;
    }
  }
  MaskTester().shape({4, 300001}).mask_axes(0x3u).p(0.5).seed(salt).Test();
}

TEST(ParallelRunner, LoopsRunOnTheRunnerInAnyOrderAndMatchTheReference) {
  Record r;
  {
    ScopedRunner runner(&reverse_runner, &r, 4);
    RunOpsAgainstTheReference(21);
  }
  EXPECT_GT(r.loops.load(), 0) << "no call used the runner";
  EXPECT_GT(r.largest.load(), 1) << "the runner was only given single-task loops";
}

TEST(ParallelRunner, ConcurrentTasksOnForeignThreadsMatchTheReference) {
  Record r;
  {
    ScopedRunner runner(&two_thread_runner, &r, 2);
    RunOpsAgainstTheReference(22);
  }
  EXPECT_GT(r.loops.load(), 0);
}

TEST(ParallelRunner, EachTaskRunsExactlyOncePerLoop) {
  Record r;
  {
    ScopedRunner runner(&reverse_runner, &r, 2);
    DropoutTester().shape({8, 32, 48, 48}).dtype(kF32).mask_axes(0x3u).p(0.5).Test();
  }
  ASSERT_EQ(r.loops.load(), 1);
  const int n = r.largest.load();
  ASSERT_GT(n, 1);
  for (int i = 0; i < n; i++) EXPECT_EQ(r.hits[size_t(i)].load(), 1) << "task " << i;
}

TEST(ParallelRunner, ARunnerWithOneThreadIsNeverCalled) {
  Record r;
  {
    ScopedRunner runner(&reverse_runner, &r, 1);
    DropoutTester().shape({8, 32, 48, 48}).dtype(kF32).mask_axes(0x3u).p(0.5).Test();
  }
  EXPECT_EQ(r.loops.load(), 0);
}

TEST(ParallelRunner, AppliesOnlyToTheThreadThatSetIt) {
  Record r;
  ScopedRunner runner(&reverse_runner, &r, 2);
  std::thread other([] {
    sdrop_parallel_for_fn run = &lossy_runner;
    void* ctx = &run;
    int threads = 7;
    sdrop_get_parallel_runner(&run, &ctx, &threads);
    EXPECT_EQ(run, nullptr);
    EXPECT_EQ(ctx, nullptr);
    EXPECT_EQ(threads, 0);
    DropoutTester().shape({8, 32, 48, 48}).dtype(kF32).mask_axes(0x3u).p(0.5).Test();
  });
  other.join();
  EXPECT_EQ(r.loops.load(), 0) << "another thread's call used this thread's runner";
}

TEST(ParallelRunner, SetAndGet) {
  Record r;
  ASSERT_EQ(sdrop_set_parallel_runner(&reverse_runner, &r, 3), SDROP_OK);
  sdrop_parallel_for_fn run = nullptr;
  void* ctx = nullptr;
  int threads = 0;
  sdrop_get_parallel_runner(&run, &ctx, &threads);
  EXPECT_EQ(run, &reverse_runner);
  EXPECT_EQ(ctx, &r);
  EXPECT_EQ(threads, 3);
  sdrop_get_parallel_runner(nullptr, nullptr, nullptr);  // any pointer may be NULL

  // A refused setting changes nothing and names the value.
  EXPECT_EQ(sdrop_set_parallel_runner(&lossy_runner, nullptr, 0), SDROP_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(sdrop_last_error()).find("threads must be >= 1"), std::string::npos)
      << sdrop_last_error();
  EXPECT_NE(std::string(sdrop_last_error()).find("got 0"), std::string::npos);
  sdrop_get_parallel_runner(&run, &ctx, &threads);
  EXPECT_EQ(run, &reverse_runner);
  EXPECT_EQ(threads, 3);

  // NULL goes back to sdrop's pool, whatever the other arguments.
  EXPECT_EQ(sdrop_set_parallel_runner(nullptr, &r, -5), SDROP_OK);
  sdrop_get_parallel_runner(&run, &ctx, &threads);
  EXPECT_EQ(run, nullptr);
  EXPECT_EQ(ctx, nullptr);
  EXPECT_EQ(threads, 0);
}

TEST(ParallelRunner, ARunnerThatDropsATaskFailsTheCall) {
  std::vector<int64_t> shape = {8, 32, 48, 48};
  std::vector<float> x(8 * 32 * 48 * 48, 1.0f), y(x.size(), 0.0f);
  DLTensor tx{x.data(), {kDLCPU, 0}, 4, {kDLFloat, 32, 1}, shape.data(), nullptr, 0};
  DLTensor ty{y.data(), {kDLCPU, 0}, 4, {kDLFloat, 32, 1}, shape.data(), nullptr, 0};
  const sdrop_params prm{0.5, 1, 2, sdrop_spatial_axes(4, SDROP_CHANNELS_FIRST), 0};
  ScopedRunner runner(&lossy_runner, nullptr, 2);
  EXPECT_EQ(sdrop_forward(&prm, &tx, &ty), SDROP_ERROR_INTERNAL);
  const std::string msg = sdrop_last_error();
  EXPECT_NE(msg.find("sdrop_set_parallel_runner"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tasks it was given"), std::string::npos) << msg;
  // The next call with a good runner succeeds: nothing sticks.
  Record r;
  ASSERT_EQ(sdrop_set_parallel_runner(&reverse_runner, &r, 2), SDROP_OK);
  EXPECT_EQ(sdrop_forward(&prm, &tx, &ty), SDROP_OK) << sdrop_last_error();
}

}  // namespace
}  // namespace sdrop_test
