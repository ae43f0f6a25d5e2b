/* A CPU-only user of libsdrop.so, run by no_driver_test.sh: the library loads and runs on the
 * CPU without opening any GPU driver (sdrop.h: "the library itself loads and runs on the CPU
 * on a machine with neither CUDA nor OpenCL; the drivers are opened at the first GPU call").
 *
 *  1. CPU calls (forward, backward, mask, apply_mask) give the expected values;
 *  2. after them and after the GPU handle setters/getters, neither libcuda nor libOpenCL is
 *     mapped in this process (/proc/self/maps);
 *  3. where this machine has no libcuda, a kDLCUDA tensor (a fake, never-dereferenced pointer)
 *     gets SDROP_ERROR_BACKEND_UNAVAILABLE with a message, and CPU calls still work after it.
 * Exit status 0 on success; every failure is printed. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sdrop/sdrop.h>

static int failures = 0;

#define CHECK(cond, ...)                                    \
  do {                                                      \
    if (!(cond)) {                                          \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                         \
      fprintf(stderr, "\n");                                \
      failures++;                                           \
    }                                                       \
  } while (0)

/* Whether a library whose file name contains `name` is mapped into this process. */
static int mapped(const char* name) {
  FILE* f = fopen("/proc/self/maps", "r");
  char line[4096];
  int found = 0;
  if (!f) return -1;
  while (fgets(line, sizeof line, f)) {
    const char* slash = strrchr(line, '/');
    if (slash && strstr(slash, name)) found = 1;
  }
  fclose(f);
  return found;
}

static int cpu_calls(void) {
  enum { N = 2, C = 8, HW = 16, NUMEL = N * C * HW };
  static float x[NUMEL], y[NUMEL], dx[NUMEL], y2[NUMEL];
  static uint8_t keep[N * C];
  int64_t shape[3] = {N, C, HW};
  int64_t mshape[3] = {N, C, 1};
  int bad = 0;
  for (int i = 0; i < NUMEL; i++) x[i] = 1.0f + (float)i;
  DLTensor tx = {x, {kDLCPU, 0}, 3, {kDLFloat, 32, 1}, shape, NULL, 0};
  DLTensor ty = tx, tdx = tx, ty2 = tx;
  DLTensor tm = {keep, {kDLCPU, 0}, 3, {kDLUInt, 8, 1}, mshape, NULL, 0};
  ty.data = y;
  tdx.data = dx;
  ty2.data = y2;
  sdrop_params p = {0.5, 1234, 7, sdrop_spatial_axes(3, SDROP_CHANNELS_FIRST), 0};

  sdrop_status s = sdrop_forward(&p, &tx, &ty);
  CHECK(s == SDROP_OK, "sdrop_forward on the CPU: %d %s", (int)s, sdrop_last_error());
  s = sdrop_backward(&p, &tx, &tdx);
  CHECK(s == SDROP_OK, "sdrop_backward on the CPU: %d %s", (int)s, sdrop_last_error());
  s = sdrop_mask(&p, &tm);
  CHECK(s == SDROP_OK, "sdrop_mask on the CPU: %d %s", (int)s, sdrop_last_error());
  s = sdrop_apply_mask(&p, &tx, &tm, &ty2);
  CHECK(s == SDROP_OK, "sdrop_apply_mask on the CPU: %d %s", (int)s, sdrop_last_error());
  if (failures) return 0;
  int kept = 0;
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      const int k = keep[n * C + c];
      kept += k;
      if (k != 0 && k != 1) bad++;
      for (int i = 0; i < HW; i++) {
        const int at = (n * C + c) * HW + i;
        const float want = k ? x[at] * 2.0f : 0.0f;
        if (y[at] != want || dx[at] != want || y2[at] != want) bad++;
      }
    }
  CHECK(bad == 0, "%d CPU results differ from keep ? x * 2 : 0", bad);
  CHECK(kept > 0 && kept < N * C, "p = 0.5 kept %d of %d channels", kept, N * C);
  return kept;
}

int main(void) {
  printf("sdrop %s\n", sdrop_version());
  cpu_calls();

  /* The handle setters and getters are plain per-thread state: no driver either. */
  void* a = (void*)1;
  void* b = (void*)1;
  CHECK(sdrop_set_cuda_stream(NULL, NULL) == SDROP_OK, "sdrop_set_cuda_stream(NULL, NULL)");
  sdrop_get_cuda_stream(&a, &b);
  CHECK(a == NULL && b == NULL, "sdrop_get_cuda_stream after NULL, NULL");
  CHECK(sdrop_set_opencl_queue(NULL, NULL) == SDROP_OK, "sdrop_set_opencl_queue(NULL, NULL)");
  sdrop_get_opencl_queue(&a, &b);
  CHECK(a == NULL && b == NULL, "sdrop_get_opencl_queue after NULL, NULL");

  CHECK(mapped("libcuda.so") == 0, "libcuda is mapped after CPU-only calls");
  CHECK(mapped("libOpenCL.so") == 0, "libOpenCL is mapped after CPU-only calls");
  CHECK(mapped("libcudart") == 0, "libcudart is mapped after CPU-only calls");
  printf("CPU calls ran; no GPU driver library is mapped\n");

  /* Is there a CUDA driver on this machine at all? (Only now: this maps it if so.) */
  void* cuda = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (cuda) {
    printf("this machine has libcuda.so.1: the no-driver call is covered by sdrop_cuda_test\n");
    dlclose(cuda);
  } else {
    int64_t shape[2] = {4, 8};
    DLTensor tx = {(void*)0x1000, {kDLCUDA, 0}, 2, {kDLFloat, 32, 1}, shape, NULL, 0};
    DLTensor ty = tx;
    ty.data = (void*)0x2000;
    sdrop_params p = {0.5, 1, 2, 3u, 0};
    const sdrop_status s = sdrop_forward(&p, &tx, &ty);
    CHECK(s == SDROP_ERROR_BACKEND_UNAVAILABLE,
          "kDLCUDA without libcuda: status %d (want SDROP_ERROR_BACKEND_UNAVAILABLE = 3): %s",
          (int)s, sdrop_last_error());
    CHECK(sdrop_last_error()[0] != '\0', "kDLCUDA without libcuda: no message");
    printf("no libcuda.so.1 here: kDLCUDA call -> %d (%s)\n", (int)s, sdrop_last_error());
    cpu_calls();
    CHECK(mapped("libcuda.so") == 0, "libcuda got mapped although dlopen found none");
  }

  if (failures) {
    fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  printf("OK\n");
  return 0;
}
