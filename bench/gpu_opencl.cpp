// OpenCL benchmarks: sdrop_forward on cl_mem buffers beside a plain copy kernel of the same bytes
// (out[i] = in[i], built from a source string), on whatever OpenCL device the machine has: the
// first GPU of any platform, else the first device (PoCL's CPU device on the development VM).
//
// This file is the OpenCL GpuBackend of gpu.h and its peer; the sdrop benchmark, buffers, the
// untimed first call and the loop are gpu.cpp's. One context and in-order queue for the process
// (sdrop_set_opencl_queue on the benchmark thread). Each iteration enqueues the call and waits
// for it with clFinish, so real time is the time of one call as a caller that waits sees it.
// Outside the timed loop: the buffers, the copy kernel's build and one call of each benchmark
// (sdrop compiles its kernels at the first call per context: seconds on PoCL, which caches them
// in POCL_CACHE_DIR).
//
// Run only these: sdrop_bench --benchmark_filter=^gpu/opencl/
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cases.h"
#include "gpu.h"

namespace sdb {
namespace {

std::string cl_error(const char* what, cl_int e) {
  return std::string(what) + " failed (OpenCL error " + std::to_string(e) + ")";
}

#define SDB_CL(call)                                   \
  do {                                                 \
    cl_int sdb_e_ = (call);                            \
    if (sdb_e_ != CL_SUCCESS) return cl_error(#call, sdb_e_); \
  } while (0)

// Plain copy, one work item per element: the reference every OpenCL implementation can run near
// its peak bandwidth.
const char* kCopySource =
    "__kernel void sdb_copy(__global const float* restrict in, __global float* restrict out) {\n"
    "  const size_t i = get_global_id(0);\n"
    "  out[i] = in[i];\n"
    "}\n";

// ---- the backend: one context and in-order queue ----------------------------------------------
class OclBench : public GpuBackend {
 public:
  const char* name() const override { return "opencl"; }
  DLDevice device() const override { return DLDevice{kDLOpenCL, 0}; }
  bool manual_time() const override { return false; }
  std::string alloc(size_t bytes, void** buf) override {
    cl_int e = CL_SUCCESS;
    *buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE, bytes, nullptr, &e);
    if (e != CL_SUCCESS) return cl_error("clCreateBuffer", e);
    return "";
  }
  std::string upload(void* buf, const void* host, size_t bytes) override {
    SDB_CL(clEnqueueWriteBuffer(queue, static_cast<cl_mem>(buf), CL_TRUE, 0, bytes, host, 0,
                                nullptr, nullptr));
    return "";
  }
  std::string copy(void* dst, void* src, size_t bytes) override {
    SDB_CL(clEnqueueCopyBuffer(queue, static_cast<cl_mem>(src), static_cast<cl_mem>(dst), 0, 0,
                               bytes, 0, nullptr, nullptr));
    return "";
  }
  std::string use_queue() override {
    if (sdrop_set_opencl_queue(ctx, queue) != SDROP_OK)
      return std::string("sdrop_set_opencl_queue: ") + sdrop_last_error();
    return "";
  }
  std::string sync() override {
    SDB_CL(clFinish(queue));
    return "";
  }
  // The call and clFinish: real time is the time of one call as a caller that waits sees it.
  std::string timed(const Enqueue& enqueue, double*) override {
    std::string err = enqueue();
    if (!err.empty()) return err;
    return sync();
  }

  std::string copy_kernel() {
    if (copy_k) return "";
    cl_int e = CL_SUCCESS;
    program = clCreateProgramWithSource(ctx, 1, &kCopySource, nullptr, &e);
    if (e != CL_SUCCESS) return cl_error("clCreateProgramWithSource", e);
    e = clBuildProgram(program, 1, &device_id, "", nullptr, nullptr);
    if (e != CL_SUCCESS) {
      size_t n = 0;
      clGetProgramBuildInfo(program, device_id, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
      std::string log(n, '\0');
      clGetProgramBuildInfo(program, device_id, CL_PROGRAM_BUILD_LOG, n, &log[0], nullptr);
      return cl_error("clBuildProgram", e) + ": " + log;
    }
    copy_k = clCreateKernel(program, "sdb_copy", &e);
    if (e != CL_SUCCESS) return cl_error("clCreateKernel", e);
    return "";
  }

  cl_platform_id platform = nullptr;
  cl_device_id device_id = nullptr;
  cl_context ctx = nullptr;
  cl_command_queue queue = nullptr;
  cl_program program = nullptr;
  cl_kernel copy_k = nullptr;
};
OclBench g;

// ---- the peer ------------------------------------------------------------------------------------
void bm_copy(benchmark::State& st, const Size* size) {
  void* in = nullptr;
  void* out = nullptr;
  if (!check(st, g.input(DType::f32, &in)) || !check(st, g.output(&out)) ||
      !check(st, g.copy_kernel()))
    return;
  const size_t n = size_t(size->numel());
  cl_mem src = static_cast<cl_mem>(in), dst = static_cast<cl_mem>(out);
  auto call = [&]() -> std::string {
    SDB_CL(clSetKernelArg(g.copy_k, 0, sizeof(cl_mem), &src));
    SDB_CL(clSetKernelArg(g.copy_k, 1, sizeof(cl_mem), &dst));
    SDB_CL(clEnqueueNDRangeKernel(g.queue, g.copy_k, 1, nullptr, &n, nullptr, 0, nullptr, nullptr));
    return "";
  };
  run_timed(st, g, call, 2 * int64_t(n * sizeof(float)), "out[i] = in[i]");
}

// A string property of a platform or device (clGetPlatformInfo, clGetDeviceInfo).
template <class Object, class Info, class Get>
std::string info(Object o, Info what, Get get) {
  size_t n = 0;
  if (get(o, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return "?";
  std::string s(n, '\0');
  get(o, what, n, &s[0], nullptr);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

// The device: the first GPU of any platform, else the first device of any type.
std::string find_device() {
  cl_uint np = 0;
  SDB_CL(clGetPlatformIDs(0, nullptr, &np));
  if (np == 0) return "no OpenCL platform";
  std::vector<cl_platform_id> plats(np);
  SDB_CL(clGetPlatformIDs(np, plats.data(), nullptr));
  for (cl_device_type type : {cl_device_type(CL_DEVICE_TYPE_GPU), cl_device_type(CL_DEVICE_TYPE_ALL)}) {
    for (cl_platform_id p : plats) {
      cl_device_id d = nullptr;
      cl_uint nd = 0;
      if (clGetDeviceIDs(p, type, 1, &d, &nd) == CL_SUCCESS && nd > 0) {
        g.platform = p;
        g.device_id = d;
        return "";
      }
    }
  }
  return std::to_string(np) + " platform(s) but no device";
}

std::string init() {
  std::string err = find_device();
  if (!err.empty()) return err;
  cl_int e = CL_SUCCESS;
  g.ctx = clCreateContext(nullptr, 1, &g.device_id, nullptr, nullptr, &e);
  if (e != CL_SUCCESS) return cl_error("clCreateContext", e);
  g.queue = clCreateCommandQueue(g.ctx, g.device_id, 0, &e);
  if (e != CL_SUCCESS) return cl_error("clCreateCommandQueue", e);
  return "";
}

// f32, p = 0.5, at the cache-sized (32x64x16x16) and the large size: default mode out of place,
// and SDROP_FLAG_MULTIPLY at the large size; with --full both layouts, modes and places.
std::vector<Case> cases(bool full) {
  return select_cases({&kSizes[1], &kSizes[2]}, {DType::f32}, {0.5}, [full](const Case& c) {
    return full || (!c.nhwc && !c.inplace && (!c.multiply || c.size == &kSizes[2]));
  });
}

}  // namespace

void register_opencl() {
  std::string err = init();
  if (!err.empty()) {
    report_no_device("opencl", "OpenCL", err);
    return;
  }
  cl_uint cus = 0;
  clGetDeviceInfo(g.device_id, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cus, &cus, nullptr);
  benchmark::AddCustomContext("opencl", info(g.device_id, CL_DEVICE_NAME, clGetDeviceInfo) +
                                            " (" + std::to_string(cus) + " compute units), " +
                                            info(g.platform, CL_PLATFORM_NAME, clGetPlatformInfo) +
                                            ", driver " +
                                            info(g.device_id, CL_DRIVER_VERSION, clGetDeviceInfo));
  GpuRegistry reg(g);
  for (const Case& c : cases(config().full)) {
    const Size* size = c.size;  // the copy: one per size; add_sdrop reserves its buffers
    reg.add(std::string("gpu/opencl/ref/copy/f32/") + size->name,
            [size](benchmark::State& st) { bm_copy(st, size); });
    reg.add_sdrop(c);
  }
}

}  // namespace sdb
