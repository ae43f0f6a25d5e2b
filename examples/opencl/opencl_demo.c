/* Spatial dropout on an OpenCL device: the caller owns the context, queue and buffers; sdrop
 * enqueues on the queue. Runs on any OpenCL platform (PoCL's CPU device in the tests) and
 * checks the result against the same call on the CPU, which must match bit for bit.
 *
 *   opencl_demo            exit 0 on success, 1 on a mismatch or an error (printed)
 */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <sdrop/sdrop.h>
#include <stdio.h>
#include <string.h>

#define N 4
#define C 16
#define H 9
#define W 7
#define NUMEL (N * C * H * W)

static int check(cl_int err, const char* what) {
  if (err != CL_SUCCESS) fprintf(stderr, "opencl_demo: %s failed (%d)\n", what, (int)err);
  return err != CL_SUCCESS;
}

int main(void) {
  cl_platform_id platform;
  cl_device_id device;
  cl_uint n = 0;
  cl_int err = clGetPlatformIDs(1, &platform, &n);
  if (err != CL_SUCCESS || n == 0) {
    fprintf(stderr, "opencl_demo: no OpenCL platform (install pocl-opencl-icd)\n");
    return 1;
  }
  if (check(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL), "clGetDeviceIDs"))
    return 1;
  cl_context ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
  if (check(err, "clCreateContext")) return 1;
  cl_command_queue queue = clCreateCommandQueue(ctx, device, 0, &err);
  if (check(err, "clCreateCommandQueue")) return 1;

  static float x[NUMEL], y[NUMEL], y_cpu[NUMEL];
  for (int i = 0; i < NUMEL; i++) x[i] = (float)(i % 97) - 48.0f;
  cl_mem dx = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof x, x, &err);
  if (check(err, "clCreateBuffer x")) return 1;
  cl_mem dy = clCreateBuffer(ctx, CL_MEM_READ_WRITE, sizeof y, NULL, &err);
  if (check(err, "clCreateBuffer y")) return 1;

  /* NCHW tensors whose data is the cl_mem: one keep bit per (sample, channel). */
  int64_t shape[4] = {N, C, H, W};
  DLTensor tx = {dx, {kDLOpenCL, 0}, 4, {kDLFloat, 32, 1}, shape, NULL, 0};
  DLTensor ty = tx;
  ty.data = dy;
  sdrop_params p = {0.5, 1234, 0, sdrop_spatial_axes(4, SDROP_CHANNELS_FIRST), 0};

  sdrop_set_opencl_queue(ctx, queue); /* per thread: this thread's calls use this queue */
  if (sdrop_forward(&p, &tx, &ty) != SDROP_OK) {
    fprintf(stderr, "opencl_demo: %s\n", sdrop_last_error());
    return 1;
  }
  /* The call only enqueued the kernel: read back after it on the same queue. */
  if (check(clEnqueueReadBuffer(queue, dy, CL_TRUE, 0, sizeof y, y, 0, NULL, NULL), "read"))
    return 1;

  DLTensor cx = {x, {kDLCPU, 0}, 4, {kDLFloat, 32, 1}, shape, NULL, 0};
  DLTensor cy = cx;
  cy.data = y_cpu;
  if (sdrop_forward(&p, &cx, &cy) != SDROP_OK) {
    fprintf(stderr, "opencl_demo: %s\n", sdrop_last_error());
    return 1;
  }
  int kept = 0;
  for (int m = 0; m < N * C; m++) kept += y_cpu[m * H * W + 1] != 0.0f;
  const int same = memcmp(y, y_cpu, sizeof y) == 0;
  printf("opencl_demo: %d of %d channels kept; OpenCL result %s the CPU's\n", kept, N * C,
         same ? "is bit-identical to" : "DIFFERS from");

  sdrop_set_opencl_queue(NULL, NULL);
  clReleaseMemObject(dx);
  clReleaseMemObject(dy);
  clReleaseCommandQueue(queue);
  clReleaseContext(ctx);
  return same ? 0 : 1;
}
