// The OpenCL backend (sdrop.h, "GPU backends"), run for real on whatever OpenCL device the
// machine has (the test command installs PoCL, a CPU device): tensors are cl_mem buffers of
// the caller's context, calls are enqueued on the caller's queue set per thread with
// sdrop_set_opencl_queue. This file is the OpenCL Backend the shared suite (gpu_suite.cc) runs
// on, and the cases only OpenCL has: the context + queue pair, a thread without a queue, the
// bounds of a cl_mem, and handles that are not addresses.
//
// Without an OpenCL platform and device every test FAILS (the test command installs PoCL, so
// a missing one is a setup error), unless SDROP_OPENCL_TESTS=skip is set: then they skip.
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gpu_tester.h"

namespace sdrop_gpu_test {
namespace {

// ---- The process's one context and queue ------------------------------------------------------

struct ClEnv {
  bool ok = false;
  std::string why;  // when !ok
  cl_platform_id platform = nullptr;
  cl_device_id device = nullptr;
  cl_context context = nullptr;
  cl_command_queue queue = nullptr;
  std::string platform_name, device_name, version, extensions;
  bool fp64 = false, fp16 = false;
};

template <class Object, class Info, class Get>
std::string InfoString(Object o, Info what, Get get) {
  size_t n = 0;
  if (get(o, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return "";
  std::string s(n, '\0');
  get(o, what, n, &s[0], nullptr);
  s.resize(std::strlen(s.c_str()));
  return s;
}

void InitCl(ClEnv* e) {
  cl_uint np = 0;
  cl_int err = clGetPlatformIDs(0, nullptr, &np);
  if (err != CL_SUCCESS || np == 0) {
    e->why = "clGetPlatformIDs found no OpenCL platform (error " + std::to_string(err) + ", " +
             std::to_string(np) + " platforms; is an ICD such as pocl-opencl-icd registered "
             "in /etc/OpenCL/vendors?)";
    return;
  }
  std::vector<cl_platform_id> platforms(np);
  clGetPlatformIDs(np, platforms.data(), nullptr);
  for (cl_platform_id p : platforms) {
    cl_uint nd = 0;
    if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &nd) != CL_SUCCESS || nd == 0) continue;
    std::vector<cl_device_id> devices(nd);
    clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, nd, devices.data(), nullptr);
    e->platform = p;
    e->device = devices[0];
    break;
  }
  if (!e->device) {
    e->why = std::to_string(np) + " OpenCL platform(s), but no device on any of them";
    return;
  }
  const cl_context_properties props[] = {CL_CONTEXT_PLATFORM,
                                         reinterpret_cast<cl_context_properties>(e->platform), 0};
  e->context = clCreateContext(props, 1, &e->device, nullptr, nullptr, &err);
  if (err != CL_SUCCESS) {
    e->why = "clCreateContext failed with error " + std::to_string(err);
    return;
  }
  e->queue = clCreateCommandQueue(e->context, e->device, 0, &err);  // in order
  if (err != CL_SUCCESS) {
    e->why = "clCreateCommandQueue failed with error " + std::to_string(err);
    return;
  }
  e->platform_name = InfoString(e->platform, CL_PLATFORM_NAME, clGetPlatformInfo);
  e->device_name = InfoString(e->device, CL_DEVICE_NAME, clGetDeviceInfo);
  e->version = InfoString(e->device, CL_DEVICE_VERSION, clGetDeviceInfo);
  e->extensions = InfoString(e->device, CL_DEVICE_EXTENSIONS, clGetDeviceInfo);
  e->fp64 = e->extensions.find("cl_khr_fp64") != std::string::npos;
  e->fp16 = e->extensions.find("cl_khr_fp16") != std::string::npos;
  e->ok = true;
}

// Created at first use and never released: sdrop caches the kernels it compiled per context
// until the process ends, and a released context's address could come back for a new one.
const ClEnv& Cl() {
  static const ClEnv* env = [] {
    ClEnv* e = new ClEnv;
    InitCl(e);
    if (e->ok)
      std::printf("[ OpenCL   ] %s / %s (%s)%s%s\n", e->platform_name.c_str(),
                  e->device_name.c_str(), e->version.c_str(), e->fp64 ? ", cl_khr_fp64" : "",
                  e->fp16 ? ", cl_khr_fp16" : ", no cl_khr_fp16 (float16 runs without it)");
    return e;
  }();
  return *env;
}

class OpenClBackend : public Backend {
 public:
  std::string name() const override { return "opencl"; }
  DLDevice dl_device() const override { return DLDevice{kDLOpenCL, 0}; }
  std::string Unavailable() const override {
    return Cl().ok ? "" : "no OpenCL device: " + Cl().why;
  }
  std::string MissingIsFailure() const override {
    const char* v = std::getenv("SDROP_OPENCL_TESTS");
    if (v != nullptr && std::strcmp(v, "skip") == 0) return "";
    return "The test command installs PoCL (pocl-opencl-icd); set SDROP_OPENCL_TESTS=skip to "
           "skip these tests on purpose.";
  }
  Queue queue() const override { return Cl().queue; }
  Queue ThreadQueue(int i) const override {
    while (static_cast<int>(thread_queues_.size()) <= i) {
      cl_int err = CL_SUCCESS;
      cl_command_queue q = clCreateCommandQueue(Cl().context, Cl().device, 0, &err);
      if (err != CL_SUCCESS) {
        ADD_FAILURE() << "clCreateCommandQueue failed: " << err;
        return nullptr;
      }
      thread_queues_.push_back(q);
    }
    return thread_queues_[i];
  }
  sdrop_status SetQueue(Queue q) const override { return sdrop_set_opencl_queue(Cl().context, q); }
  void GetHandles(void** context, void** queue) const override {
    sdrop_get_opencl_queue(context, queue);
  }
  void* context() const override { return Cl().context; }
  void* Alloc(size_t bytes) const override {
    cl_int err = CL_SUCCESS;
    cl_mem m = clCreateBuffer(Cl().context, CL_MEM_READ_WRITE, bytes, nullptr, &err);
    if (err != CL_SUCCESS) {
      ADD_FAILURE() << "clCreateBuffer(" << bytes << " bytes) failed: " << err;
      return nullptr;
    }
    return m;
  }
  void Free(void* buf) const override { clReleaseMemObject(static_cast<cl_mem>(buf)); }
  void Write(Queue q, void* buf, size_t offset, const void* src, size_t n) const override {
    const cl_int err = clEnqueueWriteBuffer(static_cast<cl_command_queue>(q), static_cast<cl_mem>(buf),
                                            CL_TRUE, offset, n, src, 0, nullptr, nullptr);
    EXPECT_EQ(err, CL_SUCCESS) << "clEnqueueWriteBuffer";
  }
  void Read(Queue q, void* buf, size_t offset, void* dst, size_t n) const override {
    const cl_int err = clEnqueueReadBuffer(static_cast<cl_command_queue>(q), static_cast<cl_mem>(buf),
                                           CL_TRUE, offset, n, dst, 0, nullptr, nullptr);
    EXPECT_EQ(err, CL_SUCCESS) << "clEnqueueReadBuffer";
  }
  void Finish(Queue q) const override {
    EXPECT_EQ(clFinish(static_cast<cl_command_queue>(q)), CL_SUCCESS) << "clFinish";
  }
  sdrop_status DtypeStatus(DLDataType d) const override {
    return d.code == kDLFloat && d.bits == 64 && !Cl().fp64 ? SDROP_ERROR_UNSUPPORTED : SDROP_OK;
  }
  // 2^23 + 5 elements: several thousand work-groups, in seconds on a CPU device.
  LargeCase large() const override { return {{3, 7, 613, 653}, Values::kMixed}; }

 private:
  mutable std::vector<cl_command_queue> thread_queues_;  // never released, like the context
};

const Backend& TheOpenCl() {
  static const Backend* b = new OpenClBackend;
  return *b;
}

}  // namespace

const std::vector<const Backend*>& Backends() {
  static const std::vector<const Backend*> v = {&TheOpenCl()};
  return v;
}

namespace {

// ---- What only OpenCL has ------------------------------------------------------------------------

using OpenClRefusal = RefusalsOn<TheOpenCl>;

TEST_F(OpenClRefusal, OneHandleWithoutTheOther) {
  const sdrop_status a = sdrop_set_opencl_queue(Cl().context, nullptr);
  std::string msg = sdrop_last_error();
  EXPECT_EQ(a, SDROP_ERROR_INVALID_ARGUMENT) << sdrop_status_name(a);
  EXPECT_TRUE(NamesArgument(msg, "queue")) << msg;
  const sdrop_status b = sdrop_set_opencl_queue(nullptr, Cl().queue);
  msg = sdrop_last_error();
  EXPECT_EQ(b, SDROP_ERROR_INVALID_ARGUMENT) << sdrop_status_name(b);
  EXPECT_TRUE(NamesArgument(msg, "context")) << msg;
  // A refused call changes nothing: the handles set before are still in force.
  void* ctx = nullptr;
  void* queue = nullptr;
  sdrop_get_opencl_queue(&ctx, &queue);
  EXPECT_EQ(ctx, static_cast<void*>(Cl().context));
  EXPECT_EQ(queue, static_cast<void*>(Cl().queue));
  DevTensor x(dl(), xb->handle(), 0, {2, 3, 4, 5}, kF32), y(dl(), yb->handle(), 0, {2, 3, 4, 5}, kF32);
  EXPECT_EQ(sdrop_forward(&prm, &x, &y), SDROP_OK) << sdrop_last_error();
  dev_.Finish();
}

// A thread without a queue (none set, or NULL, NULL set): BACKEND_UNAVAILABLE, nothing written.
TEST_F(OpenClRefusal, ThreadWithoutAQueueIsBackendUnavailable) {
  DevTensor x(dl(), xb->handle(), 0, {2, 3, 4, 5}, kF32), y(dl(), yb->handle(), 0, {2, 3, 4, 5}, kF32);
  DevTensor mask(dl(), mb->handle(), 0, {2, 3, 1, 1}, kU8), m_out(dl(), yb->handle(), 0, {2, 3, 1, 1}, kU8);
  for (bool set_null : {false, true}) {
    SCOPED_TRACE(set_null ? "after sdrop_set_opencl_queue(NULL, NULL)" : "nothing set");
    const Snapshot before = Take();
    sdrop_status st[4] = {};
    std::string msgs[4];
    std::thread([&] {
      if (set_null) {
        EXPECT_EQ(sdrop_set_opencl_queue(nullptr, nullptr), SDROP_OK);
      }
      st[0] = sdrop_forward(&prm, &x, &y);
      msgs[0] = sdrop_last_error();
      st[1] = sdrop_backward(&prm, &x, &y);
      msgs[1] = sdrop_last_error();
      st[2] = sdrop_mask(&prm, &m_out);
      msgs[2] = sdrop_last_error();
      st[3] = sdrop_apply_mask(&prm, &x, &mask, &y);
      msgs[3] = sdrop_last_error();
    }).join();
    const char* names[4] = {"sdrop_forward", "sdrop_backward", "sdrop_mask", "sdrop_apply_mask"};
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(st[i], SDROP_ERROR_BACKEND_UNAVAILABLE) << names[i] << ": " << sdrop_status_name(st[i])
                                                        << ": " << msgs[i];
      EXPECT_FALSE(msgs[i].empty()) << names[i] << " left no message";
    }
    ExpectUnchanged(before);
  }
  // On this thread too, after NULL, NULL.
  ASSERT_EQ(sdrop_set_opencl_queue(nullptr, nullptr), SDROP_OK);
  void* ctx = reinterpret_cast<void*>(1);
  void* queue = reinterpret_cast<void*>(1);
  sdrop_get_opencl_queue(&ctx, &queue);
  EXPECT_EQ(ctx, nullptr);
  EXPECT_EQ(queue, nullptr);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y); }, SDROP_ERROR_BACKEND_UNAVAILABLE, "");
}

// The bounds come from clGetMemObjectInfo's CL_MEM_SIZE: exact, whatever the allocator does.
TEST_F(OpenClRefusal, ByteRangeBeyondTheClMem) {
  const std::vector<int64_t> s{2, 3, 4, 5};  // 4096 bytes hold 1024 float32
  DevTensor x(dl(), xb->handle(), 0, s, kF32);
  DevTensor y_big(dl(), yb->handle(), 0, s, kF32, {1000, 20, 5, 1});  // ends at 4240 bytes
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y_big); }, kAnyFailure, "y");
  DevTensor y_end(dl(), yb->handle(), kBytes - 4 * 119, s, kF32);  // one element past the end
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y_end); }, kAnyFailure, "y");
  DevTensor y_ok(dl(), yb->handle(), 0, s, kF32);
  DevTensor x_end(dl(), xb->handle(), kBytes, s, kF32);
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x_end, &y_ok); }, kAnyFailure, "x");
  // Negative strides reaching below the start of the cl_mem.
  DevTensor y_neg(dl(), yb->handle(), 4 * 50, s, kF32, {-60, 20, 5, 1});
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x, &y_neg); }, kAnyFailure, "y");
  DevTensor x_neg(dl(), xb->handle(), 0, s, kF32, {60, 20, 5, -1});
  SDROP_EXPECT_REFUSED([&] { return sdrop_forward(&prm, &x_neg, &y_ok); }, kAnyFailure, "x");
  // The mask of sdrop_mask and of sdrop_apply_mask.
  DevTensor m_big(dl(), mb->handle(), 0, {2, 3000, 1, 1}, kU8);
  SDROP_EXPECT_REFUSED([&] { return sdrop_mask(&prm, &m_big); }, kAnyFailure, "mask");
  DevTensor m_off(dl(), mb->handle(), kBytes - 5, {2, 3, 1, 1}, kU8);
  SDROP_EXPECT_REFUSED([&] { return sdrop_apply_mask(&prm, &x, &m_off, &y_ok); }, kAnyFailure, "mask");
  // Exactly filling the buffer is fine.
  DevTensor y_fit(dl(), yb->handle(), kBytes - 4 * 120, s, kF32);
  EXPECT_EQ(sdrop_forward(&prm, &x, &y_fit), SDROP_OK) << sdrop_last_error();
  dev_.Finish();
}

// cl_mem handles are not addresses: two buffers never share memory, whatever their handles'
// values and the byte offsets, so x and y in two buffers are always accepted and computed
// correctly, even when handle + byte_offset coincide.
TEST_F(OpenClRefusal, TwoClMemsNeverOverlap) {
  const std::vector<int64_t> shape{2, 3, 4, 5};
  std::vector<uint8_t> xs = xb->ReadAll();
  // Same byte_offset, same strides, two buffers.
  for (uint64_t off : {uint64_t{0}, uint64_t{64}}) {
    DevTensor x(dl(), xb->handle(), off, shape, kF32), y(dl(), yb->handle(), off, shape, kF32);
    std::vector<uint8_t> cpu_y(kBytes, 0xA5);
    std::vector<uint8_t> cpu_x = xs;
    DLTensor cx = OnHost(x, cpu_x), cy = OnHost(y, cpu_y);
    yb->WriteAll(std::vector<uint8_t>(kBytes, 0xA5));
    ASSERT_EQ(sdrop_forward(&prm, &cx, &cy), SDROP_OK) << sdrop_last_error();
    ASSERT_EQ(sdrop_forward(&prm, &x, &y), SDROP_OK) << sdrop_last_error();
    dev_.Finish();
    EXPECT_TRUE(yb->ReadAll() == cpu_y) << "byte_offset " << off;
  }
  // Handle values that line up: offsets such that x.data + x.byte_offset == y.data +
  // y.byte_offset (or one element apart), which in host memory would be in place / overlap.
  // Handles are host pointers to the implementation's objects: among a few buffers, two are
  // usually close enough for their difference to be a valid byte offset.
  constexpr size_t kBig = 1 << 16;
  std::vector<std::unique_ptr<DeviceBuffer>> pool;
  DeviceBuffer* a = nullptr;
  DeviceBuffer* b = nullptr;
  int64_t delta = 0;
  for (int i = 0; i < 32 && !a; ++i) {
    pool.emplace_back(new DeviceBuffer(dev_, kBig));
    ASSERT_TRUE(pool.back()->ok());
    for (int j = 0; j < i && !a; ++j) {
      const int64_t d = reinterpret_cast<intptr_t>(pool[i]->handle()) -
                        reinterpret_cast<intptr_t>(pool[j]->handle());
      const int64_t mag = d < 0 ? -d : d;
      if (mag % 4 == 0 && mag <= static_cast<int64_t>(kBig / 4)) {
        a = pool[j].get();
        b = pool[i].get();
        delta = d;  // b - a
      }
    }
  }
  if (!a) {
    std::printf("[ OpenCL   ] no two cl_mem handles close enough to line up; same offsets only\n");
    return;
  }
  std::printf("[ OpenCL   ] lining up two cl_mem handles %lld bytes apart\n",
              static_cast<long long>(delta));
  std::vector<uint8_t> xs2(kBig);
  for (size_t i = 0; i < xs2.size() / 4; ++i) {
    const float v = 0.5f + static_cast<float>(i);
    std::memcpy(&xs2[4 * i], &v, 4);
  }
  for (int64_t shift : {int64_t{0}, int64_t{4}, int64_t{-4}}) {
    // x in a at xo, y in b at yo, with a + xo == b + yo + shift.
    const int64_t base = kBig / 2;
    const int64_t yo = base, xo = base + delta + shift;
    ASSERT_GE(xo, 0);
    a->WriteAll(xs2);
    b->WriteAll(std::vector<uint8_t>(kBig, 0xA5));
    DevTensor x(dl(), a->handle(), static_cast<uint64_t>(xo), shape, kF32);
    DevTensor y(dl(), b->handle(), static_cast<uint64_t>(yo), shape, kF32);
    ASSERT_EQ(static_cast<char*>(x.data) + x.byte_offset,
              static_cast<char*>(y.data) + y.byte_offset + shift);
    std::vector<uint8_t> cpu_y(kBig, 0xA5), cpu_x = xs2;
    DLTensor cx = OnHost(x, cpu_x), cy = OnHost(y, cpu_y);
    ASSERT_EQ(sdrop_forward(&prm, &cx, &cy), SDROP_OK) << sdrop_last_error();
    EXPECT_EQ(sdrop_forward(&prm, &x, &y), SDROP_OK)
        << "two cl_mem buffers taken as overlapping (handle delta " << delta << ", shift "
        << shift << "): " << sdrop_last_error();
    dev_.Finish();
    EXPECT_TRUE(b->ReadAll() == cpu_y) << "handle delta " << delta << ", shift " << shift;
    EXPECT_TRUE(a->ReadAll() == xs2) << "x was written";
  }
}

}  // namespace
}  // namespace sdrop_gpu_test
