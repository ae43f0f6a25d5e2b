// The C ABI: validate everything (SPEC §5) before anything is written, canonicalise, run.
#include <xmmintrin.h>

#include <cinttypes>
#include <cstdio>

#include "error.h"
#include "gpu.h"
#include "kernels.h"
#include "plan.h"
#include "sdrop/sdrop.h"
#include "tensor.h"

namespace sdrop {
namespace {

constexpr uint32_t kKnownFlags = SDROP_FLAG_MULTIPLY;

// The caller's floating-point environment is theirs: run with the IEEE default (round to
// nearest even, no FTZ/DAZ, exceptions masked) so T, s and every product are as SPEC says,
// then put theirs back, status flags included. All the arithmetic here and in the kernels
// is SSE, so MXCSR is the whole environment that matters (the x87 unit is not used).
class FpEnvGuard {
 public:
  FpEnvGuard() : saved_(_mm_getcsr()) { _mm_setcsr(0x1F80); }
  ~FpEnvGuard() { _mm_setcsr(saved_); }
  FpEnvGuard(const FpEnvGuard&) = delete;
  FpEnvGuard& operator=(const FpEnvGuard&) = delete;

 private:
  unsigned saved_;
};

// nearbyint for 0 <= v <= 2^32 under round-to-nearest-even (set by FpEnvGuard), without
// libm: adding 2^52 leaves no fraction bits, so the addition itself rounds.
double round_half_even(double v) {
  volatile double big = 4503599627370496.0;  // 2^52; volatile: keep (v + big) - big
  return (v + big) - big;
}

sdrop_status check_params(const sdrop_params* params, bool check_flags) {
  if (!params) return fail(SDROP_ERROR_INVALID_ARGUMENT, "params must not be NULL");
  const double p = params->p;
  if (!(p >= 0.0 && p <= 1.0)) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "p must be in [0, 1], got %g", p);
  }
  if (check_flags && (params->flags & ~kKnownFlags)) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "flags has unknown bits: 0x%x (known: SDROP_FLAG_MULTIPLY = 0x1)",
                unsigned(params->flags & ~kKnownFlags));
  }
  return SDROP_OK;
}

sdrop_status check_mask_axes(uint32_t mask_axes, const Tensor& t) {
  const uint32_t allowed = t.ndim >= 32 ? ~0u : (1u << t.ndim) - 1u;
  if (mask_axes & ~allowed) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "mask_axes 0x%x has bits at or above %s.ndim (%d): axis %d does not exist",
                unsigned(mask_axes), t.name, t.ndim, __builtin_ctz(mask_axes & ~allowed));
  }
  return SDROP_OK;
}

sdrop_status check_output(const Tensor& y) {
  if (self_overlapping(y)) {
    char dims[200], strides[200];
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "%s has elements that overlap each other (shape %s, strides %s)", y.name,
                format_dims(y.shape, y.ndim, dims, sizeof dims),
                format_dims(y.strides, y.ndim, strides, sizeof strides));
  }
  return SDROP_OK;
}

// x and y: the same shape and dtype, one device, a writable y, in place or apart.
sdrop_status check_pair(const Tensor& x, const Tensor& y, DType* dtype, Backend* backend) {
  if (sdrop_status s = same_device(x, y)) return s;
  if (sdrop_status s = backend_of(x, backend)) return s;
  if (sdrop_status s = backend_of(y, backend)) return s;
  if (!same_dtype(x, y)) {
    char a[64], b[64];
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.dtype (%s) must equal %s.dtype (%s)", y.name,
                dtype_name(y.dtype, a, sizeof a), x.name, dtype_name(x.dtype, b, sizeof b));
  }
  if (sdrop_status s = float_dtype(x, dtype)) return s;
  if (!same_shape(x, y)) {
    char a[200], b[200];
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.shape %s must equal %s.shape %s", y.name,
                format_dims(y.shape, y.ndim, a, sizeof a), x.name,
                format_dims(x.shape, x.ndim, b, sizeof b));
  }
  if (sdrop_status s = check_output(y)) return s;
  if (!exactly_in_place(x, y) && ranges_intersect(x, y)) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "%s and %s overlap partially: they must be the same elements (in place: same "
                "data, byte_offset and strides) or not share memory at all",
                x.name, y.name);
  }
  return SDROP_OK;
}

KernelArgs kernel_args(const sdrop_params& params) {
  KernelArgs a;
  const double keep = 1.0 - params.p;
  const double t = round_half_even(keep * 4294967296.0);
  a.keep_all = t >= 4294967296.0;
  a.threshold = a.keep_all ? 0u : uint32_t(t);
  a.keep_none = params.p == 1.0;
  a.seed = params.seed;
  a.offset = params.offset;
  a.multiply = (params.flags & SDROP_FLAG_MULTIPLY) != 0;
  a.scale_f32 = 1.0f / static_cast<float>(keep);
  a.scale_f64 = 1.0 / keep;
  return a;
}

sdrop_status dropout(const sdrop_params* params, const DLTensor* xt, DLTensor* yt,
                     const char* xname, const char* yname) {
  if (sdrop_status s = check_params(params, true)) return s;
  Tensor x, y;
  if (sdrop_status s = describe(xt, xname, &x)) return s;
  if (sdrop_status s = describe(yt, yname, &y)) return s;
  DType dtype;
  Backend backend;
  if (sdrop_status s = check_pair(x, y, &dtype, &backend)) return s;
  if (sdrop_status s = check_mask_axes(params->mask_axes, x)) return s;
  if (x.numel == 0) return SDROP_OK;
  FpEnvGuard env;
  const Plan plan = make_plan(Op::dropout, x.ndim, x.shape, x.strides, y.strides, nullptr,
                              params->mask_axes);
  return run_plan(backend, Op::dropout, dtype, plan, &x, y, nullptr, kernel_args(*params));
}

// The mask's shape must be the noise shape of `like` (or, for sdrop_mask, its own).
sdrop_status check_noise_shape(const Tensor& mask, const Tensor& like, uint32_t mask_axes) {
  if (mask.ndim != like.ndim) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.ndim must be %d (that of %s), got %d",
                mask.name, like.ndim, like.name, mask.ndim);
  }
  for (int i = 0; i < mask.ndim; i++) {
    const int64_t want = (mask_axes >> i & 1u) ? like.shape[i] : 1;
    if (mask.shape[i] != want) {
      char dims[200];
      int64_t noise[kMaxDims];
      for (int j = 0; j < like.ndim; j++) noise[j] = (mask_axes >> j & 1u) ? like.shape[j] : 1;
      return fail(SDROP_ERROR_INVALID_ARGUMENT,
                  "%s.shape[%d] must be %" PRId64 " (the noise shape is %s), got %" PRId64,
                  mask.name, i, want, format_dims(noise, like.ndim, dims, sizeof dims),
                  mask.shape[i]);
    }
  }
  return SDROP_OK;
}

}  // namespace
}  // namespace sdrop

using namespace sdrop;

extern "C" {

uint32_t sdrop_spatial_axes(int32_t ndim, sdrop_layout layout) {
  if (ndim < 2 || ndim > 32) return 0;
  if (layout == SDROP_CHANNELS_FIRST) return 0x3u;
  if (layout == SDROP_CHANNELS_LAST) return 0x1u | (1u << (ndim - 1));
  return 0;
}

sdrop_status sdrop_forward(const sdrop_params* params, const DLTensor* x, DLTensor* y) {
  return dropout(params, x, y, "x", "y");
}

sdrop_status sdrop_backward(const sdrop_params* params, const DLTensor* dy, DLTensor* dx) {
  return dropout(params, dy, dx, "dy", "dx");
}

sdrop_status sdrop_mask(const sdrop_params* params, DLTensor* mask_t) {
  if (sdrop_status s = check_params(params, false)) return s;
  Tensor mask;
  if (sdrop_status s = describe(mask_t, "mask", &mask)) return s;
  Backend backend;
  if (sdrop_status s = backend_of(mask, &backend)) return s;
  if (sdrop_status s = mask_dtype(mask)) return s;
  if (sdrop_status s = check_mask_axes(params->mask_axes, mask)) return s;
  if (sdrop_status s = check_noise_shape(mask, mask, params->mask_axes)) return s;
  if (sdrop_status s = check_output(mask)) return s;
  if (mask.numel == 0) return SDROP_OK;
  FpEnvGuard env;
  const Plan plan = make_plan(Op::mask, mask.ndim, mask.shape, nullptr, mask.strides, nullptr,
                              params->mask_axes);
  return run_plan(backend, Op::mask, DType::u8, plan, nullptr, mask, nullptr,
                  kernel_args(*params));
}

sdrop_status sdrop_apply_mask(const sdrop_params* params, const DLTensor* x_t,
                              const DLTensor* mask_t, DLTensor* y_t) {
  if (sdrop_status s = check_params(params, true)) return s;
  Tensor x, mask, y;
  if (sdrop_status s = describe(x_t, "x", &x)) return s;
  if (sdrop_status s = describe(mask_t, "mask", &mask)) return s;
  if (sdrop_status s = describe(y_t, "y", &y)) return s;
  DType dtype;
  Backend backend;
  if (sdrop_status s = check_pair(x, y, &dtype, &backend)) return s;
  if (sdrop_status s = same_device(x, mask)) return s;
  if (sdrop_status s = mask_dtype(mask)) return s;
  if (sdrop_status s = check_mask_axes(params->mask_axes, x)) return s;
  if (sdrop_status s = check_noise_shape(mask, x, params->mask_axes)) return s;
  if (ranges_intersect(mask, y)) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "mask and y overlap: y would overwrite the mask");
  }
  if (x.numel == 0) return SDROP_OK;
  // The mask tensor broadcasts: its strides on the non-mask axes (extent 1) are unused.
  int64_t ks[kMaxDims];
  for (int i = 0; i < x.ndim; i++) ks[i] = (params->mask_axes >> i & 1u) ? mask.strides[i] : 0;
  FpEnvGuard env;
  const Plan plan = make_plan(Op::apply_mask, x.ndim, x.shape, x.strides, y.strides, ks,
                              params->mask_axes);
  return run_plan(backend, Op::apply_mask, dtype, plan, &x, y, &mask, kernel_args(*params));
}

sdrop_status sdrop_set_cuda_stream(void* context, void* stream) {
  set_cuda_stream(context, stream);
  return SDROP_OK;
}

void sdrop_get_cuda_stream(void** context, void** stream) { get_cuda_stream(context, stream); }

sdrop_status sdrop_set_opencl_queue(void* context, void* queue) {
  return set_opencl_queue(context, queue);
}

void sdrop_get_opencl_queue(void** context, void** queue) { get_opencl_queue(context, queue); }

const char* sdrop_last_error(void) { return last_error(); }

void sdrop_set_num_threads(int n) { set_num_threads(n); }

int sdrop_get_num_threads(void) { return get_num_threads(); }

const char* sdrop_version(void) {
#define SDROP_STR2(x) #x
#define SDROP_STR(x) SDROP_STR2(x)
  return SDROP_STR(SDROP_VERSION_MAJOR) "." SDROP_STR(SDROP_VERSION_MINOR) "." SDROP_STR(
      SDROP_VERSION_PATCH);
}

}  // extern "C"
