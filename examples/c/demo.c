/* sdrop demo in plain C99: spatial dropout on an N x C x H x W float32 tensor through the
 * C ABI, out of place and in place, with the mask it used and a timing. */
#define _POSIX_C_SOURCE 199309L
#include <sdrop/sdrop.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp(const void* a, const void* b) {
  double d = *(const double*)a - *(const double*)b;
  return (d > 0) - (d < 0);
}

#define CHECK(call)                                                           \
  do {                                                                        \
    sdrop_status s_ = (call);                                                 \
    if (s_ != SDROP_OK) {                                                     \
      fprintf(stderr, "%s failed (%d): %s\n", #call, (int)s_, sdrop_last_error()); \
      return 1;                                                               \
    }                                                                         \
  } while (0)

int main(int argc, char** argv) {
  int64_t shape[4] = {32, 64, 112, 112};
  double p = 0.5;
  int reps = 10;
  if (argc > 1) p = atof(argv[1]);
  if (argc > 2) reps = atoi(argv[2]);
  if (reps < 1) reps = 1;
  const int64_t n = shape[0] * shape[1] * shape[2] * shape[3];
  float* x = malloc(sizeof(float) * n);
  float* y = malloc(sizeof(float) * n);
  uint8_t* mask = malloc(shape[0] * shape[1]);
  double* t = malloc(sizeof(double) * reps);
  if (!x || !y || !mask || !t) { fprintf(stderr, "out of memory\n"); return 1; }
  for (int64_t i = 0; i < n; i++) x[i] = 1.0f + (float)(i % 1000) * 0.001f; /* never 0 */
  memset(y, 0, sizeof(float) * n); /* first touch */

  DLTensor tx = {x, {kDLCPU, 0}, 4, {kDLFloat, 32, 1}, shape, NULL, 0};
  DLTensor ty = tx;
  ty.data = y;
  sdrop_params params = {p, 1234, 0, sdrop_spatial_axes(4, SDROP_CHANNELS_FIRST), 0};

  printf("sdrop %s, CPU variant %s (host %s), %d threads\n", sdrop_version(),
         sdrop_cpu_isa_name(sdrop_get_cpu_isa()), sdrop_cpu_isa_name(sdrop_get_host_cpu_isa()),
         sdrop_get_num_threads());
  printf("x: float32 [%lld, %lld, %lld, %lld], channels first, p = %g\n", (long long)shape[0],
         (long long)shape[1], (long long)shape[2], (long long)shape[3], p);

  CHECK(sdrop_forward(&params, &tx, &ty)); /* warm-up */
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    CHECK(sdrop_forward(&params, &tx, &ty));
    t[r] = now() - t0;
  }
  qsort(t, reps, sizeof(double), cmp);
  const double med = t[reps / 2];
  printf("forward, out of place: median %.3f ms over %d runs, %.1f GB/s effective (2 x %.0f MB)\n",
         med * 1e3, reps, 2.0 * n * sizeof(float) / med * 1e-9, n * sizeof(float) * 1e-6);

  /* The mask it used: one bit per (n, c), the noise shape [N, C, 1, 1]. */
  int64_t mshape[4] = {shape[0], shape[1], 1, 1};
  DLTensor tm = {mask, {kDLCPU, 0}, 4, {kDLUInt, 8, 1}, mshape, NULL, 0};
  CHECK(sdrop_mask(&params, &tm));
  int64_t kept = 0, agree = 0;
  const int64_t plane = shape[2] * shape[3];
  for (int64_t r = 0; r < shape[0] * shape[1]; r++) {
    kept += mask[r];
    agree += (y[r * plane] != 0.0f) == (mask[r] != 0);
  }
  printf("kept %lld of %lld channels (%.1f%%, expected %.1f%%); output agrees with the mask on "
         "%lld of them\n",
         (long long)kept, (long long)(shape[0] * shape[1]), 100.0 * kept / (shape[0] * shape[1]),
         100.0 * (1 - p), (long long)agree);

  /* Backward regenerates the same mask from the same params: dx = dy * mask * s. */
  CHECK(sdrop_backward(&params, &ty, &ty)); /* in place */
  printf("backward in place on y: done (same mask, scaled twice where kept)\n");
  free(x); free(y); free(mask); free(t);
  return 0;
}
