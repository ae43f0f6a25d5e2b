#include "verbose.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "error.h"
#include "halide_hooks.h"
#include "thread_pool.h"

namespace sdrop {

std::atomic<int> g_verbose{-1};

int read_verbose_env() {
  const char* e = std::getenv("SDROP_VERBOSE");
  int level = 0;
  if (e && (!std::strcmp(e, "1") || !std::strcmp(e, "2"))) level = e[0] - '0';
  int expected = -1;
  // A level set by sdrop_set_verbose before the first call wins over the environment.
  if (!g_verbose.compare_exchange_strong(expected, level)) return expected;
  return level;
}

void set_verbose(int level) {
  g_verbose.store(level < 0 ? 0 : level > 2 ? 2 : level, std::memory_order_relaxed);
}

uint64_t verbose_now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

namespace {

// "2x3x4" (or "scalar") / "12:4:1" into buf.
const char* join(const int64_t* v, int n, char sep, char* buf, size_t size) {
  if (n == 0) {
    std::snprintf(buf, size, "scalar");
    return buf;
  }
  size_t at = 0;
  buf[0] = '\0';
  for (int i = 0; i < n && at < size; i++) {
    const int w = i ? std::snprintf(buf + at, size - at, "%c%" PRId64, sep, v[i])
                    : std::snprintf(buf + at, size - at, "%" PRId64, v[i]);
    if (w < 0) break;
    at += size_t(w);
  }
  return buf;
}

const char* shape_name(Shape s) {
  switch (s) {
    case Shape::rows: return "rows";
    case Shape::channels_last: return "channels_last";
    case Shape::elementwise: return "elementwise";
  }
  return "?";
}

}  // namespace

void verbose_print(const CallRecord& r, sdrop_status status) {
  const int level = r.level;
  if (status != SDROP_OK) {
    std::fprintf(stderr, "sdrop_verbose,error,%s,%s,%s\n", r.op, status_name(status),
                 last_error());
    return;
  }
  const double us = double(verbose_now_ns() - r.start_ns) / 1000.0;
  const Tensor& y = *r.y;
  char dt[64], shape[200], xs[200], ys[200], ext[80];
  dtype_name((r.x ? *r.x : y).dtype, dt, sizeof dt);
  join(y.shape, y.ndim, 'x', shape, sizeof shape);
  join(y.strides, y.ndim, ':', ys, sizeof ys);
  if (r.x) {
    join(r.x->strides, r.x->ndim, ':', xs, sizeof xs);
  } else {
    std::snprintf(xs, sizeof xs, "none");
  }
  const char* canonical = "none";  // empty tensors run no kernel
  ext[0] = '\0';
  if (r.plan) {
    canonical = shape_name(r.plan->shape);
    const int64_t e[3] = {r.plan->inner[0].extent, r.plan->inner[1].extent,
                          r.plan->inner[2].extent};
    join(e, 3, 'x', ext, sizeof ext);
  }
  std::fprintf(stderr,
               "sdrop_verbose,exec,%s,%s,%s,shape=%s,x_strides=%s,y_strides=%s,"
               "mask_axes=0x%x,p=%g,flags=0x%x,canonical=%s,kernel_extents=%s,calls=%d,"
               "serial=%d,skip_dropped=%d,memset_dropped=%d,threads=%d,workers=%d,"
               "time_us=%.2f\n",
               r.run.variant[0] ? r.run.variant : "none", r.op, dt, shape, xs, ys,
               unsigned(r.params->mask_axes), r.params->p, unsigned(r.params->flags),
               canonical, ext[0] ? ext : "none", r.run.calls, int(r.run.serial),
               int(r.run.skip_dropped), int(r.run.memset_dropped), call_threads(),
               r.run.workers, us);
  if (level < 2 || !r.plan) return;
  const Plan& p = *r.plan;
  for (int d = 0; d < 3; d++) {
    const Axis& a = p.inner[d];
    std::fprintf(stderr,
                 "sdrop_verbose,plan,kernel_dim=d%d,extent=%" PRId64 ",x_stride=%" PRId64
                 ",y_stride=%" PRId64 ",mask_tensor_stride=%" PRId64 ",mask_index_stride=%" PRId64
                 "\n",
                 d, a.extent, a.xs, a.ys, a.ks, a.ms);
  }
  for (int i = 0; i < p.n_outer; i++) {
    const Loop& l = p.outer[i];
    std::fprintf(stderr,
                 "sdrop_verbose,plan,loop=%d,iterations=%" PRId64 ",x_step=%" PRId64
                 ",y_step=%" PRId64 ",mask_tensor_step=%" PRId64 ",mask_index_step=%" PRId64,
                 i, l.step.extent, l.step.xs, l.step.ys, l.step.ks, l.step.ms);
    if (l.chunk_dim >= 0) {
      std::fprintf(stderr, ",chunks_of=d%d,chunk=%" PRId64 ",total=%" PRId64, l.chunk_dim,
                   l.chunk, l.total);
    }
    std::fputc('\n', stderr);
  }
  std::fprintf(stderr,
               "sdrop_verbose,plan,origin,x=%" PRId64 ",y=%" PRId64 ",mask_tensor=%" PRId64
               ",mask_index=%" PRId64 "\n",
               p.x0, p.y0, p.k0, p.m0);
}

}  // namespace sdrop
