// Verbose mode (sdrop.h, "Verbose mode"; docs/c-api.md#verbose-mode): one line on stderr per
// call, saying what ran; nothing when off. The lines are parsed here field by field, as a
// user's script would.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "dropout_tester.h"

namespace sdrop_test {
namespace {

constexpr DLDataType kF32{kDLFloat, 32, 1};
constexpr DLDataType kU8{kDLUInt, 8, 1};

// Runs f with stderr (fd 2) sent to a temporary file; returns what was written.
template <typename F>
std::string CaptureStderr(F&& f) {
  std::fflush(stderr);
  FILE* tmp = std::tmpfile();
  const int saved = dup(2);
  dup2(fileno(tmp), 2);
  f();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::string out;
  std::rewind(tmp);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, tmp)) > 0) out.append(buf, n);
  std::fclose(tmp);
  return out;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string::npos ? at : at - start));
    if (at == std::string::npos) return parts;
    start = at + 1;
  }
}

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> lines = Split(s, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

// An exec line: the five positional fields, then key=value pairs.
struct ExecLine {
  std::vector<std::string> head;
  std::map<std::string, std::string> kv;
};

ExecLine ParseExec(const std::string& line) {
  ExecLine e;
  for (const std::string& f : Split(line, ',')) {
    const size_t eq = f.find('=');
    if (eq == std::string::npos) {
      e.head.push_back(f);
    } else {
      e.kv[f.substr(0, eq)] = f.substr(eq + 1);
    }
  }
  return e;
}

class ScopedVerbose {
 public:
  explicit ScopedVerbose(int level) : saved_(sdrop_get_verbose()) { sdrop_set_verbose(level); }
  ~ScopedVerbose() { sdrop_set_verbose(saved_); }

 private:
  int saved_;
};

sdrop_params Params(uint32_t axes) {
  sdrop_params p{};
  p.p = 0.5;
  p.seed = 7;
  p.mask_axes = axes;
  return p;
}

// The exec line of one successful sdrop_forward(p, x, y); a call that prints more or fewer
// lines fails the test (and gets five empty head fields, no key=value pairs).
ExecLine ForwardLine(const sdrop_params& p, HostTensor& x, HostTensor& y) {
  const std::vector<std::string> lines =
      Lines(CaptureStderr([&] { EXPECT_EQ(sdrop_forward(&p, &x.t, &y.t), SDROP_OK); }));
  EXPECT_EQ(lines.size(), 1u);
  return lines.size() == 1 ? ParseExec(lines[0]) : ExecLine{std::vector<std::string>(5), {}};
}

TEST(Verbose, OffPrintsNothing) {
  ScopedVerbose v(0);
  std::vector<float> x(120, 1.0f), y(120);
  HostTensor tx(x.data(), {2, 3, 4, 5}, kF32), ty(y.data(), {2, 3, 4, 5}, kF32);
  const sdrop_params p = Params(0x3);
  const std::string err = CaptureStderr([&] {
    EXPECT_EQ(sdrop_forward(&p, &tx.t, &ty.t), SDROP_OK);
    EXPECT_NE(sdrop_forward(nullptr, &tx.t, &ty.t), SDROP_OK);
  });
  EXPECT_EQ(err, "");
}

TEST(Verbose, ForwardSaysWhatRan) {
  ScopedVerbose v(1);
  std::vector<float> x(120, 1.0f), y(120);
  HostTensor tx(x.data(), {2, 3, 4, 5}, kF32), ty(y.data(), {2, 3, 4, 5}, kF32);
  const sdrop_params p = Params(0x3);
  const ExecLine e = ForwardLine(p, tx, ty);
  ASSERT_EQ(e.head.size(), 5u);
  EXPECT_EQ(e.head[0], "sdrop_verbose");
  EXPECT_EQ(e.head[1], "exec");
  EXPECT_EQ(e.head[2].rfind("cpu:", 0), 0u) << "variant: " << e.head[2];
  EXPECT_EQ(e.head[3], "forward");
  EXPECT_EQ(e.head[4], "float32");
  EXPECT_EQ(e.kv.at("shape"), "2x3x4x5");
  EXPECT_EQ(e.kv.at("x_strides"), "60:20:5:1");
  EXPECT_EQ(e.kv.at("y_strides"), "60:20:5:1");
  EXPECT_EQ(e.kv.at("mask_axes"), "0x3");
  EXPECT_EQ(e.kv.at("p"), "0.5");
  EXPECT_EQ(e.kv.at("flags"), "0x0");
  // Six (sample, channel) rows of 20 contiguous elements: one rows-kernel call.
  EXPECT_EQ(e.kv.at("canonical"), "rows");
  EXPECT_EQ(e.kv.at("calls"), "1");
  EXPECT_EQ(e.kv.at("skip_dropped"), "0");  // 480 bytes: the branch-free loop
  EXPECT_EQ(e.kv.at("threads"), std::to_string(sdrop_get_num_threads()));
  EXPECT_EQ(e.kv.at("workers"), "1");  // 480 bytes run serially
  EXPECT_GE(std::stod(e.kv.at("time_us")), 0.0);
  // The ISA variant named is the one the cap allows.
  const std::string isa = e.head[2].substr(4);
  EXPECT_TRUE(isa == "sse41" || isa == "avx2" || isa == "avx512") << isa;
}

// Past SDROP_SKIP_DROPPED_BYTES (1 MiB by default) of output, exact-zero rows calls skip
// reading dropped rows; multiply mode reads them always (x * 0).
TEST(Verbose, LargeExactZeroRowsCallsSkipDroppedRows) {
  ScopedVerbose v(1);
  // Twice the build's threshold of output (512 channels of 32x32 with the default 1 MiB).
  const int64_t c = int64_t(2 * uint64_t(SDROP_TEST_SKIP_DROPPED_BYTES) / 4096) + 1;
  std::vector<float> x(size_t(c) * 1024, 1.0f), y(size_t(c) * 1024);
  HostTensor tx(x.data(), {1, c, 32, 32}, kF32), ty(y.data(), {1, c, 32, 32}, kF32);
  for (bool multiply : {false, true}) {
    sdrop_params p = Params(0x3);
    p.flags = multiply ? SDROP_FLAG_MULTIPLY : 0u;
    const ExecLine e = ForwardLine(p, tx, ty);
    EXPECT_EQ(e.kv.at("canonical"), "rows");
    EXPECT_EQ(e.kv.at("skip_dropped"), multiply ? "0" : "1");
    // Past the memset threshold too only if the build set that one lower.
    const bool memset = uint64_t(c) * 4096 > uint64_t(SDROP_TEST_MEMSET_DROPPED_BYTES);
    EXPECT_EQ(e.kv.at("memset_dropped"), memset && !multiply ? "1" : "0");
  }
}

// Past SDROP_MEMSET_DROPPED_BYTES (4 MiB by default), exact-zero rows calls with contiguous
// rows of y fill dropped rows by memset; multiply mode never does, nor do rows of y with a
// stride.
TEST(Verbose, LargerExactZeroRowsCallsMemsetDroppedRows) {
  // Past 8 MiB the tensors get slow to check; the test command's sanitizer build sets the
  // threshold to 4 MiB whatever the tuning table says, and runs this there.
  if (uint64_t(SDROP_TEST_MEMSET_DROPPED_BYTES) > (uint64_t(8) << 20))
    GTEST_SKIP() << "this build takes the memset route past "
                 << SDROP_TEST_MEMSET_DROPPED_BYTES << " bytes only (tested at 4 MiB in build/asan)";
  ScopedVerbose v(1);
  const int64_t c = int64_t(2 * uint64_t(SDROP_TEST_MEMSET_DROPPED_BYTES) / 4096) + 1;
  std::vector<float> x(size_t(c) * 1024, 1.0f), y(size_t(c) * 1024 * 2);
  HostTensor tx(x.data(), {1, c, 32, 32}, kF32), ty(y.data(), {1, c, 32, 32}, kF32);
  HostTensor ty2(y.data(), {1, c, 32, 32}, kF32, {2 * c * 1024, 2048, 64, 2});
  for (bool multiply : {false, true}) {
    sdrop_params p = Params(0x3);
    p.flags = multiply ? SDROP_FLAG_MULTIPLY : 0u;
    const ExecLine e = ForwardLine(p, tx, ty);
    EXPECT_EQ(e.kv.at("memset_dropped"), multiply ? "0" : "1");
    EXPECT_EQ(e.kv.at("skip_dropped"), multiply ? "0" : "1");
  }
  const ExecLine e = ForwardLine(Params(0x3), tx, ty2);
  EXPECT_EQ(e.kv.at("memset_dropped"), "0");
}

TEST(Verbose, ChannelsLastAndVariantFollowTheCap) {
  ScopedVerbose v(1);
  ScopedMaxCpuIsa cap(SDROP_CPU_ISA_SSE41);
  ASSERT_EQ(cap.status(), SDROP_OK);
  // (2, 4, 5, 3) with channels last: axes 0 and 3.
  std::vector<float> x(120, 1.0f), y(120);
  HostTensor tx(x.data(), {2, 4, 5, 3}, kF32), ty(y.data(), {2, 4, 5, 3}, kF32);
  const sdrop_params p = Params(sdrop_spatial_axes(4, SDROP_CHANNELS_LAST));
  const ExecLine e = ForwardLine(p, tx, ty);
  EXPECT_EQ(e.head[2], "cpu:sse41");
  EXPECT_EQ(e.kv.at("mask_axes"), "0x9");
  EXPECT_EQ(e.kv.at("canonical"), "channels_last");
}

TEST(Verbose, EveryEntryPointNamesItsOp) {
  ScopedVerbose v(1);
  std::vector<float> x(120, 1.0f), y(120);
  std::vector<uint8_t> m(6);
  HostTensor tx(x.data(), {2, 3, 4, 5}, kF32), ty(y.data(), {2, 3, 4, 5}, kF32);
  HostTensor tm(m.data(), {2, 3, 1, 1}, kU8);
  const sdrop_params p = Params(0x3);
  const int64_t first[4] = {2, 0, 0, 0}, extent[4] = {4, 3, 4, 5};
  const sdrop_shard shard{first, extent};
  const std::vector<std::string> lines = Lines(CaptureStderr([&] {
    EXPECT_EQ(sdrop_forward(&p, &tx.t, &ty.t), SDROP_OK);
    EXPECT_EQ(sdrop_backward(&p, &tx.t, &ty.t), SDROP_OK);
    EXPECT_EQ(sdrop_mask(&p, &tm.t), SDROP_OK);
    EXPECT_EQ(sdrop_apply_mask(&p, &tx.t, &tm.t, &ty.t), SDROP_OK);
    EXPECT_EQ(sdrop_forward_sharded(&p, &shard, &tx.t, &ty.t), SDROP_OK);
    EXPECT_EQ(sdrop_backward_sharded(&p, &shard, &tx.t, &ty.t), SDROP_OK);
    EXPECT_EQ(sdrop_mask_sharded(&p, &shard, &tm.t), SDROP_OK);
  }));
  const std::vector<std::string> want = {"forward",         "backward",         "mask",
                                         "apply_mask",      "forward_sharded",  "backward_sharded",
                                         "mask_sharded"};
  ASSERT_EQ(lines.size(), want.size());
  for (size_t i = 0; i < want.size(); i++) {
    const ExecLine e = ParseExec(lines[i]);
    ASSERT_EQ(e.head.size(), 5u) << lines[i];
    EXPECT_EQ(e.head[3], want[i]) << lines[i];
  }
  const ExecLine mask = ParseExec(lines[2]);
  EXPECT_EQ(mask.head[4], "uint8");
  EXPECT_EQ(mask.kv.at("x_strides"), "none");
  EXPECT_EQ(mask.kv.at("shape"), "2x3x1x1");
}

TEST(Verbose, RefusalPrintsTheStatusAndTheMessage) {
  ScopedVerbose v(1);
  std::vector<float> x(120, 1.0f), y(120);
  HostTensor tx(x.data(), {2, 3, 4, 5}, kF32), ty(y.data(), {2, 3, 4, 6}, kF32);
  const sdrop_params p = Params(0x3);
  std::string message;
  const std::vector<std::string> lines = Lines(CaptureStderr([&] {
    EXPECT_EQ(sdrop_forward(&p, &tx.t, &ty.t), SDROP_ERROR_INVALID_ARGUMENT);
    message = sdrop_last_error();
  }));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "sdrop_verbose,error,forward,SDROP_ERROR_INVALID_ARGUMENT," + message);
  EXPECT_NE(message.find("y.shape"), std::string::npos) << message;
}

TEST(Verbose, EmptyTensorRunsNoKernel) {
  ScopedVerbose v(1);
  float dummy = 0;
  HostTensor tx(&dummy, {2, 0, 4}, kF32), ty(&dummy, {2, 0, 4}, kF32);
  const sdrop_params p = Params(0x3);
  const ExecLine e = ForwardLine(p, tx, ty);
  EXPECT_EQ(e.head[2], "none");
  EXPECT_EQ(e.kv.at("canonical"), "none");
  EXPECT_EQ(e.kv.at("calls"), "0");
}

TEST(Verbose, LevelTwoAddsThePlan) {
  ScopedVerbose v(2);
  std::vector<float> x(120, 1.0f), y(120);
  HostTensor tx(x.data(), {2, 3, 4, 5}, kF32), ty(y.data(), {2, 3, 4, 5}, kF32);
  const sdrop_params p = Params(0x3);
  const std::vector<std::string> lines =
      Lines(CaptureStderr([&] { ASSERT_EQ(sdrop_forward(&p, &tx.t, &ty.t), SDROP_OK); }));
  ASSERT_GE(lines.size(), 5u);  // exec, three kernel dims, the origin
  EXPECT_EQ(lines[0].rfind("sdrop_verbose,exec,", 0), 0u);
  int dims = 0, origins = 0;
  for (size_t i = 1; i < lines.size(); i++) {
    EXPECT_EQ(lines[i].rfind("sdrop_verbose,plan,", 0), 0u) << lines[i];
    dims += lines[i].find("kernel_dim=") != std::string::npos;
    origins += lines[i].find(",origin,") != std::string::npos;
  }
  EXPECT_EQ(dims, 3);
  EXPECT_EQ(origins, 1);
}

// Runs every task on the calling thread.
void one_thread_runner(void*, int32_t n, sdrop_task_fn task, void* tctx) {
  for (int32_t i = 0; i < n; i++) task(tctx, i);
}

// Two threads of its own, each running half of the tasks (the first half, the second half).
void two_thread_runner(void*, int32_t n, sdrop_task_fn task, void* tctx) {
  auto part = [&](int32_t begin, int32_t end) {
    for (int32_t i = begin; i < end; i++) task(tctx, i);
  };
  std::thread a(part, 0, n / 2), b(part, n / 2, n);
  a.join();
  b.join();
}

// `workers` counts the threads that really ran tasks, not the threads a call was offered:
// a runner that claims 4 threads but runs everything on one shows 1 (as at::parallel_for
// does in a library compiled without OpenMP, where this field caught it), one that splits
// the tasks over two threads shows 2.
TEST(Verbose, WorkersAreTheThreadsThatRanTasks) {
  ScopedVerbose v(1);
  const std::vector<int64_t> shape = {8, 64, 64, 64};  // 8 MiB: a parallel loop of many tasks
  std::vector<float> x(8 * 64 * 64 * 64, 1.0f), y(x.size());
  HostTensor tx(x.data(), shape, kF32), ty(y.data(), shape, kF32);
  const sdrop_params p = Params(0x3);
  struct Case { sdrop_parallel_for_fn run; int threads; const char* workers; };
  for (const Case& c : {Case{&one_thread_runner, 4, "1"}, Case{&two_thread_runner, 2, "2"}}) {
    ASSERT_EQ(sdrop_set_parallel_runner(c.run, nullptr, c.threads), SDROP_OK);
    const ExecLine e = ForwardLine(p, tx, ty);
    sdrop_set_parallel_runner(nullptr, nullptr, 0);
    ASSERT_FALSE(e.kv.empty());
    EXPECT_EQ(e.kv.at("serial"), "0");
    EXPECT_EQ(e.kv.at("threads"), std::to_string(c.threads));
    EXPECT_EQ(e.kv.at("workers"), c.workers) << "runner offering " << c.threads << " threads";
  }
}

TEST(Verbose, LevelIsClamped) {
  ScopedVerbose v(0);
  sdrop_set_verbose(7);
  EXPECT_EQ(sdrop_get_verbose(), 2);
  sdrop_set_verbose(-3);
  EXPECT_EQ(sdrop_get_verbose(), 0);
}

// Run with SDROP_VERBOSE=1 in the environment (tests/CMakeLists.txt): the level comes from it,
// read once, so changing the environment later changes nothing.
TEST(VerboseEnv, ReadOnceFromTheEnvironment) {
  ASSERT_STREQ(std::getenv("SDROP_VERBOSE"), "1");
  EXPECT_EQ(sdrop_get_verbose(), 1);
  setenv("SDROP_VERBOSE", "0", 1);
  std::vector<float> x(6, 1.0f), y(6);
  HostTensor tx(x.data(), {2, 3}, kF32), ty(y.data(), {2, 3}, kF32);
  const sdrop_params p = Params(0x3);
  const std::vector<std::string> lines =
      Lines(CaptureStderr([&] { ASSERT_EQ(sdrop_forward(&p, &tx.t, &ty.t), SDROP_OK); }));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("sdrop_verbose,exec,", 0), 0u);
}

}  // namespace
}  // namespace sdrop_test
