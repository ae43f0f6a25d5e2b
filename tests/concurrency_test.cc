// Calls from many threads at once are independent: 8 threads, each with its own params,
// layout, dtype and buffers, run concurrently and must give exactly what the same calls give
// one after another (the shared Halide thread pool and the per-thread error string included).
#include <gtest/gtest.h>
#include <sdrop/sdrop.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Job {
  sdrop_params params;
  std::vector<int64_t> shape;
  DLDataType dtype;
  std::vector<uint8_t> x, y;
  size_t item;

  sdrop_status run() {
    DLTensor tx{x.data(), {kDLCPU, 0}, int32_t(shape.size()), dtype, shape.data(), nullptr, 0};
    DLTensor ty = tx;
    ty.data = y.data();
    return sdrop_forward(&params, &tx, &ty);
  }
};

std::vector<Job> make_jobs() {
  std::vector<Job> jobs;
  const DLDataType types[] = {{kDLFloat, 32, 1}, {kDLFloat, 16, 1}, {kDLBfloat, 16, 1},
                              {kDLFloat, 64, 1}};
  for (int i = 0; i < 8; i++) {
    Job j;
    j.shape = {4 + i, 16, 24 + i, 24};
    j.dtype = types[i % 4];
    j.item = j.dtype.bits / 8;
    j.params = {0.1 * (i + 1), uint64_t(1000 + i), uint64_t(i), 0, i % 3 == 2 ? 1u : 0u};
    j.params.mask_axes = i % 2 ? sdrop_spatial_axes(4, SDROP_CHANNELS_LAST)
                               : sdrop_spatial_axes(4, SDROP_CHANNELS_FIRST);
    size_t n = 1;
    for (int64_t e : j.shape) n *= size_t(e);
    j.x.resize(n * j.item);
    for (size_t k = 0; k < j.x.size(); k++) j.x[k] = uint8_t((k * 37 + i) % 61 + 1);
    j.y.assign(n * j.item, 0xAB);
    jobs.push_back(std::move(j));
  }
  return jobs;
}

TEST(Concurrency, EightThreadsMatchSerialRuns) {
  std::vector<Job> serial = make_jobs(), parallel = make_jobs();
  for (Job& j : serial) ASSERT_EQ(j.run(), SDROP_OK) << sdrop_last_error();
  for (int round = 0; round < 5; round++) {
    std::vector<std::thread> threads;
    std::vector<sdrop_status> status(parallel.size(), SDROP_ERROR_INTERNAL);
    std::vector<std::string> errors(parallel.size());
    for (size_t i = 0; i < parallel.size(); i++) {
      threads.emplace_back([&, i] {
        // Every other thread also makes a refused call: its message must stay its own.
        if (i % 2) {
          sdrop_params bad = parallel[i].params;
          bad.p = 2.0;
          DLTensor t{parallel[i].x.data(), {kDLCPU, 0}, 4, parallel[i].dtype,
                     parallel[i].shape.data(), nullptr, 0};
          sdrop_forward(&bad, &t, &t);
        }
        status[i] = parallel[i].run();
        errors[i] = sdrop_last_error();
      });
    }
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < parallel.size(); i++) {
      EXPECT_EQ(status[i], SDROP_OK) << "job " << i;
      EXPECT_EQ(parallel[i].y, serial[i].y) << "job " << i << " round " << round;
      if (i % 2) {
        EXPECT_NE(errors[i].find("got 2"), std::string::npos) << errors[i];
      } else {
        EXPECT_EQ(errors[i], "") << "job " << i;
      }
    }
  }
}

}  // namespace
