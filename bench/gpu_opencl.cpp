// OpenCL benchmarks: sdrop_forward on cl_mem buffers beside a plain copy kernel of the same bytes
// (out[i] = in[i], built from a source string), on whatever OpenCL device the machine has: the
// first GPU of any platform, else the first device (PoCL's CPU device on the development VM).
//
// One context and in-order queue for the process (sdrop_set_opencl_queue on the benchmark
// thread). Each iteration enqueues the call and waits for it with clFinish, so real time is
// the time of one call as a caller that waits sees it. Outside the timed loop: the buffers,
// the copy kernel's build and one call of each benchmark (sdrop compiles its kernels at the
// first call per context: seconds on PoCL, which caches them in POCL_CACHE_DIR).
//
// Run only these: sdrop_bench --benchmark_filter=^gpu/opencl/
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include <cstdio>
#include <string>
#include <vector>

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

struct OclState {
  cl_platform_id platform = nullptr;
  cl_device_id device = nullptr;
  cl_context ctx = nullptr;
  cl_command_queue queue = nullptr;
  cl_program program = nullptr;
  cl_kernel copy = nullptr;
  size_t bytes = 0;  // reserved at registration (f32 only)
  cl_mem in = nullptr, out = nullptr;
};
OclState g;

// Plain copy, one work item per element: the reference every OpenCL implementation can run near
// its peak bandwidth.
const char* kCopySource =
    "__kernel void sdb_copy(__global const float* restrict in, __global float* restrict out) {\n"
    "  const size_t i = get_global_id(0);\n"
    "  out[i] = in[i];\n"
    "}\n";

std::string buffers() {
  if (g.in) return "";
  cl_int e = CL_SUCCESS;
  g.in = clCreateBuffer(g.ctx, CL_MEM_READ_WRITE, g.bytes, nullptr, &e);
  if (e != CL_SUCCESS) return cl_error("clCreateBuffer(input)", e);
  g.out = clCreateBuffer(g.ctx, CL_MEM_READ_WRITE, g.bytes, nullptr, &e);
  if (e != CL_SUCCESS) return cl_error("clCreateBuffer(output)", e);
  std::vector<float> host(g.bytes / sizeof(float));
  fill_pattern(DType::f32, host.data(), int64_t(host.size()));
  SDB_CL(clEnqueueWriteBuffer(g.queue, g.in, CL_TRUE, 0, g.bytes, host.data(), 0, nullptr,
                              nullptr));
  // Touch the output once too, so no first use is timed.
  SDB_CL(clEnqueueCopyBuffer(g.queue, g.in, g.out, 0, 0, g.bytes, 0, nullptr, nullptr));
  SDB_CL(clFinish(g.queue));
  return "";
}

std::string copy_kernel() {
  if (g.copy) return "";
  cl_int e = CL_SUCCESS;
  g.program = clCreateProgramWithSource(g.ctx, 1, &kCopySource, nullptr, &e);
  if (e != CL_SUCCESS) return cl_error("clCreateProgramWithSource", e);
  e = clBuildProgram(g.program, 1, &g.device, "", nullptr, nullptr);
  if (e != CL_SUCCESS) {
    size_t n = 0;
    clGetProgramBuildInfo(g.program, g.device, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
    std::string log(n, '\0');
    clGetProgramBuildInfo(g.program, g.device, CL_PROGRAM_BUILD_LOG, n, &log[0], nullptr);
    return cl_error("clBuildProgram", e) + ": " + log;
  }
  g.copy = clCreateKernel(g.program, "sdb_copy", &e);
  if (e != CL_SUCCESS) return cl_error("clCreateKernel", e);
  return "";
}

// Runs call() then clFinish once per iteration; false (after SkipWithError) on a failure.
template <class Call>
bool timed_loop(benchmark::State& st, Call&& call) {
  for (auto _ : st) {
    std::string err = call();
    if (err.empty()) {
      cl_int e = clFinish(g.queue);
      if (e != CL_SUCCESS) err = cl_error("clFinish", e);
    }
    if (!err.empty()) {
      st.SkipWithError(err.c_str());
      return false;
    }
  }
  return true;
}

bool check(benchmark::State& st, const std::string& err) {
  if (err.empty()) return true;
  st.SkipWithError(err.c_str());
  return false;
}

void bm_sdrop(benchmark::State& st, const Case& c) {
  if (!check(st, buffers())) return;
  const size_t bytes = size_t(c.numel()) * dtype_size(c.dtype);
  cl_mem xbuf = g.in;
  if (c.inplace) {
    if (!check(st, [&]() -> std::string {
          SDB_CL(clEnqueueCopyBuffer(g.queue, g.in, g.out, 0, 0, bytes, 0, nullptr, nullptr));
          return "";
        }()))
      return;
    xbuf = g.out;
  }
  int64_t shape[4];
  gpu_shape(c, shape);
  DLTensor x{};
  x.data = xbuf;  // DLPack on OpenCL: data is the cl_mem, byte_offset an offset into it
  x.device = DLDevice{kDLOpenCL, 0};
  x.ndim = 4;
  x.dtype = gpu_dl_dtype(c.dtype);
  x.shape = shape;
  x.strides = nullptr;
  x.byte_offset = 0;
  DLTensor y = x;
  y.data = g.out;
  sdrop_params prm = gpu_params(c);

  sdrop_status r = sdrop_set_opencl_queue(g.ctx, g.queue);
  if (r != SDROP_OK) {
    st.SkipWithError((std::string("sdrop_set_opencl_queue: ") + sdrop_last_error()).c_str());
    return;
  }
  auto call = [&]() -> std::string {
    ++prm.offset;  // a new mask every call, as in training
    sdrop_status s = sdrop_forward(&prm, &x, &y);
    if (s != SDROP_OK)
      return std::string("sdrop_forward: ") + gpu_status_name(s) + ": " + sdrop_last_error();
    return "";
  };
  // Outside the timed loop: the first call per context builds the kernels.
  if (!check(st, call()) || !check(st, [&]() -> std::string {
        SDB_CL(clFinish(g.queue));
        return "";
      }()))
    return;
  if (!timed_loop(st, call)) return;
  st.SetBytesProcessed(int64_t(st.iterations()) * c.bytes_moved());
}

void bm_copy(benchmark::State& st, const Size* size) {
  if (!check(st, buffers()) || !check(st, copy_kernel())) return;
  const size_t n = size_t(size->numel());
  auto call = [&]() -> std::string {
    SDB_CL(clSetKernelArg(g.copy, 0, sizeof(cl_mem), &g.in));
    SDB_CL(clSetKernelArg(g.copy, 1, sizeof(cl_mem), &g.out));
    SDB_CL(clEnqueueNDRangeKernel(g.queue, g.copy, 1, nullptr, &n, nullptr, 0, nullptr, nullptr));
    return "";
  };
  if (!check(st, call()) || !check(st, [&]() -> std::string {
        SDB_CL(clFinish(g.queue));
        return "";
      }()))
    return;
  if (!timed_loop(st, call)) return;
  st.SetBytesProcessed(int64_t(st.iterations()) * 2 * int64_t(n * sizeof(float)));
  st.SetLabel("out[i] = in[i]");
}

std::string info(cl_platform_id p, cl_platform_info what) {
  size_t n = 0;
  if (clGetPlatformInfo(p, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return "?";
  std::string s(n, '\0');
  clGetPlatformInfo(p, what, n, &s[0], nullptr);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}
std::string info(cl_device_id d, cl_device_info what) {
  size_t n = 0;
  if (clGetDeviceInfo(d, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return "?";
  std::string s(n, '\0');
  clGetDeviceInfo(d, what, n, &s[0], nullptr);
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
        g.device = d;
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
  g.ctx = clCreateContext(nullptr, 1, &g.device, nullptr, nullptr, &e);
  if (e != CL_SUCCESS) return cl_error("clCreateContext", e);
  g.queue = clCreateCommandQueue(g.ctx, g.device, 0, &e);
  if (e != CL_SUCCESS) return cl_error("clCreateCommandQueue", e);
  return "";
}

// f32, p = 0.5, at the cache-sized (32x64x16x16) and the large size: default mode out of place,
// and SDROP_FLAG_MULTIPLY at the large size; with --full both layouts, modes and places.
std::vector<Case> cases(bool full) {
  std::vector<Case> out;
  for (const Size* size : {&kSizes[1], &kSizes[2]}) {
    for (bool nhwc : {false, true}) {
      for (bool mul : {false, true}) {
        for (bool inplace : {false, true}) {
          Case c;
          c.size = size;
          c.dtype = DType::f32;
          c.nhwc = nhwc;
          c.p = 0.5;
          c.multiply = mul;
          c.inplace = inplace;
          bool take = full || (!nhwc && !inplace && (!mul || size == &kSizes[2]));
          if (take) out.push_back(c);
        }
      }
    }
  }
  return out;
}

}  // namespace

void register_opencl() {
  std::string err = init();
  if (!err.empty()) {
    std::fprintf(stderr, "opencl: no device (%s), OpenCL benchmarks skipped\n", err.c_str());
    benchmark::AddCustomContext("opencl", "no device (" + err + ")");
    return;
  }
  cl_uint cus = 0;
  clGetDeviceInfo(g.device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cus, &cus, nullptr);
  benchmark::AddCustomContext("opencl", info(g.device, CL_DEVICE_NAME) + " (" +
                                            std::to_string(cus) + " compute units), " +
                                            info(g.platform, CL_PLATFORM_NAME) + ", driver " +
                                            info(g.device, CL_DRIVER_VERSION));
  std::vector<std::string> seen;
  for (const Case& c : cases(config().full)) {
    const size_t bytes = size_t(c.numel()) * dtype_size(c.dtype);
    if (bytes > g.bytes) g.bytes = bytes;
    std::string name = std::string("gpu/opencl/ref/copy/f32/") + c.size->name;
    bool have = false;
    for (const std::string& s : seen) have = have || s == name;
    if (!have) {
      seen.push_back(name);
      const Size* size = c.size;
      apply_gpu(benchmark::RegisterBenchmark(
                    name.c_str(), [size](benchmark::State& st) { bm_copy(st, size); }),
                false);
    }
    name = case_name("gpu/opencl/sdrop", c);
    apply_gpu(benchmark::RegisterBenchmark(
                  name.c_str(), [c](benchmark::State& st) { bm_sdrop(st, c); }),
              false);
  }
}

}  // namespace sdb
