// The C ABI: validate everything (docs/refusals.md) before anything is written, canonicalise,
// run. Every entry point first installs the default floating-point environment and restores
// the caller's on return, so no check and no kernel can trap or leave a flag behind.
#include <cinttypes>
#include <cstdio>

#include "error.h"
#include "fpenv.h"
#include "cuda.h"
#include "halide_hooks.h"
#include "kernels.h"
#include "mask_index.h"
#include "overlap.h"
#include "params.h"
#include "plan.h"
#include "sdrop/sdrop.h"
#include "tensor.h"
#include "thread_pool.h"
#include "opencl.h"
#include "verbose.h"

namespace sdrop {
namespace {

sdrop_status check_mask_axes(uint32_t mask_axes, const Tensor& t) {
  const uint32_t allowed = (1u << t.ndim) - 1u;  // ndim <= 8
  if (mask_axes & ~allowed) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "mask_axes 0x%x has bits at or above %s.ndim (%d): axis %d does not exist",
                unsigned(mask_axes), t.name, t.ndim, __builtin_ctz(mask_axes & ~allowed));
  }
  return SDROP_OK;
}

// An output's elements are distinct addresses (docs/refusals.md#overlap-decided-exactly), decided exactly.
sdrop_status check_output(const Tensor& y) {
  Overlap o = self_overlap(y);
  bool out_of_memory = false;
  if (o == Overlap::unknown) o = self_overlap_by_enumeration(y, &out_of_memory);
  if (o == Overlap::none) return SDROP_OK;
  char dims[200], strides[200];
  format_dims(y.shape, y.ndim, dims, sizeof dims);
  format_dims(y.strides, y.ndim, strides, sizeof strides);
  if (o == Overlap::some) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "%s has elements that overlap each other (shape %s, strides %s)", y.name, dims,
                strides);
  }
  if (out_of_memory) {
    return fail(SDROP_ERROR_OUT_OF_MEMORY,
                "cannot allocate %" PRId64 " bytes to check that the elements of %s (shape %s, "
                "strides %s) do not overlap",
                int64_t(sizeof(int64_t)) * y.numel, y.name, dims, strides);
  }
  return fail(SDROP_ERROR_UNSUPPORTED,
              "%s's strides %s (shape %s) interleave in a way the overlap check cannot settle "
              "within its work limit; use a layout whose strides nest",
              y.name, strides, dims);
}

// a (read) and b (written) share no byte, or, where allowed, are exactly in place.
sdrop_status check_apart(const Tensor& a, const Tensor& b, bool in_place_ok) {
  if (in_place_ok && exactly_in_place(a, b)) return SDROP_OK;
  const Overlap o = share_memory(a, b);
  if (o == Overlap::none) return SDROP_OK;
  if (o == Overlap::some) {
    if (in_place_ok) {
      return fail(SDROP_ERROR_INVALID_ARGUMENT,
                  "%s and %s overlap partially: they must be the same elements (in place: same "
                  "data, byte_offset and strides) or not share memory at all",
                  a.name, b.name);
    }
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s and %s share memory: %s would overwrite %s",
                a.name, b.name, b.name, a.name);
  }
  return fail(SDROP_ERROR_UNSUPPORTED,
              "cannot settle within the overlap check's work limit whether %s and %s share "
              "memory; make them disjoint or exactly in place",
              a.name, b.name);
}

// x and y: the same shape and dtype, one device, a writable y, in place or apart.
sdrop_status check_pair(const Tensor& x, const Tensor& y, DType* dtype, Backend* backend) {
  if (sdrop_status s = float_dtype(x, dtype)) return s;
  if (!same_dtype(x, y)) {
    char a[64], b[64];
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.dtype (%s) must equal %s.dtype (%s)", y.name,
                dtype_name(y.dtype, a, sizeof a), x.name, dtype_name(x.dtype, b, sizeof b));
  }
  if (sdrop_status s = same_device(x, y)) return s;
  if (sdrop_status s = backend_of(x, backend)) return s;
  if (sdrop_status s = backend_of(y, backend)) return s;
  if (!same_shape(x, y)) {
    char a[200], b[200];
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.shape %s must equal %s.shape %s", y.name,
                format_dims(y.shape, y.ndim, a, sizeof a), x.name,
                format_dims(x.shape, x.ndim, b, sizeof b));
  }
  if (sdrop_status s = check_output(y)) return s;
  return check_apart(x, y, /*in_place_ok=*/true);
}

sdrop_status dropout(CallRecord* r, const sdrop_params* params, const sdrop_shard* shard,
                     const DLTensor* xt, DLTensor* yt, const char* xname, const char* yname) {
  FpEnvGuard env;
  if (sdrop_status s = check_params(params, true)) return s;
  Tensor x, y;
  if (sdrop_status s = describe(xt, xname, &x)) return s;
  if (sdrop_status s = describe(yt, yname, &y)) return s;
  DType dtype;
  Backend backend;
  if (sdrop_status s = check_pair(x, y, &dtype, &backend)) return s;
  if (sdrop_status s = check_mask_axes(params->mask_axes, x)) return s;
  MaskIndex mi;
  if (sdrop_status s = mask_index(x, params->mask_axes, shard, &mi)) return s;
  r->x = &x;
  r->y = &y;
  if (x.numel == 0) return trace_no_kernel(r);
  const Plan plan = make_plan(Op::dropout, x.ndim, x.shape, x.strides, y.strides, nullptr, mi);
  return run_and_trace(r, backend, Op::dropout, dtype, plan, &x, y, nullptr,
                       kernel_args(*params, dtype));
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

sdrop_status mask(CallRecord* r, const sdrop_params* params, const sdrop_shard* shard,
                  DLTensor* mask_t) {
  FpEnvGuard env;
  if (sdrop_status s = check_params(params, false)) return s;
  Tensor mask;
  if (sdrop_status s = describe(mask_t, "mask", &mask)) return s;
  if (sdrop_status s = mask_dtype(mask)) return s;
  Backend backend;
  if (sdrop_status s = backend_of(mask, &backend)) return s;
  if (sdrop_status s = check_mask_axes(params->mask_axes, mask)) return s;
  if (sdrop_status s = check_noise_shape(mask, mask, params->mask_axes)) return s;
  if (sdrop_status s = check_output(mask)) return s;
  MaskIndex mi;
  if (sdrop_status s = mask_index(mask, params->mask_axes, shard, &mi)) return s;
  r->y = &mask;
  if (mask.numel == 0) return trace_no_kernel(r);
  const Plan plan = make_plan(Op::mask, mask.ndim, mask.shape, nullptr, mask.strides, nullptr, mi);
  return run_and_trace(r, backend, Op::mask, DType::u8, plan, nullptr, mask, nullptr,
                       kernel_args(*params, DType::u8));
}

sdrop_status apply_mask(CallRecord* r, const sdrop_params* params, const DLTensor* x_t,
                        const DLTensor* mask_t, DLTensor* y_t) {
  FpEnvGuard env;
  if (sdrop_status s = check_params(params, true)) return s;
  Tensor x, mask, y;
  if (sdrop_status s = describe(x_t, "x", &x)) return s;
  if (sdrop_status s = describe(mask_t, "mask", &mask)) return s;
  if (sdrop_status s = describe(y_t, "y", &y)) return s;
  DType dtype;
  Backend backend;
  if (sdrop_status s = check_pair(x, y, &dtype, &backend)) return s;
  if (sdrop_status s = mask_dtype(mask)) return s;
  if (sdrop_status s = same_device(x, mask)) return s;
  if (sdrop_status s = check_mask_axes(params->mask_axes, x)) return s;
  if (sdrop_status s = check_noise_shape(mask, x, params->mask_axes)) return s;
  if (sdrop_status s = check_apart(mask, y, /*in_place_ok=*/false)) return s;
  r->x = &x;
  r->y = &y;
  if (x.numel == 0) return trace_no_kernel(r);
  // The mask tensor broadcasts: its strides on the non-mask axes (extent 1) are unused.
  int64_t ks[kMaxDims];
  for (int i = 0; i < x.ndim; i++) ks[i] = (params->mask_axes >> i & 1u) ? mask.strides[i] : 0;
  const Plan plan = make_plan(Op::apply_mask, x.ndim, x.shape, x.strides, y.strides, ks,
                              params->mask_axes);
  return run_and_trace(r, backend, Op::apply_mask, dtype, plan, &x, y, &mask,
                       kernel_args(*params, dtype));
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
  Traced t("forward", params);
  return t.finish(dropout(t.get(), params, nullptr, x, y, "x", "y"));
}

sdrop_status sdrop_backward(const sdrop_params* params, const DLTensor* dy, DLTensor* dx) {
  Traced t("backward", params);
  return t.finish(dropout(t.get(), params, nullptr, dy, dx, "dy", "dx"));
}

sdrop_status sdrop_mask(const sdrop_params* params, DLTensor* mask_t) {
  Traced t("mask", params);
  return t.finish(mask(t.get(), params, nullptr, mask_t));
}

sdrop_status sdrop_forward_sharded(const sdrop_params* params, const sdrop_shard* shard,
                                   const DLTensor* x, DLTensor* y) {
  Traced t("forward_sharded", params);
  return t.finish(dropout(t.get(), params, shard, x, y, "x", "y"));
}

sdrop_status sdrop_backward_sharded(const sdrop_params* params, const sdrop_shard* shard,
                                    const DLTensor* dy, DLTensor* dx) {
  Traced t("backward_sharded", params);
  return t.finish(dropout(t.get(), params, shard, dy, dx, "dy", "dx"));
}

sdrop_status sdrop_mask_sharded(const sdrop_params* params, const sdrop_shard* shard,
                                DLTensor* mask_t) {
  Traced t("mask_sharded", params);
  return t.finish(mask(t.get(), params, shard, mask_t));
}

sdrop_status sdrop_apply_mask(const sdrop_params* params, const DLTensor* x_t,
                              const DLTensor* mask_t, DLTensor* y_t) {
  Traced t("apply_mask", params);
  return t.finish(apply_mask(t.get(), params, x_t, mask_t, y_t));
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

const char* sdrop_status_name(sdrop_status s) { return status_name(s); }

void sdrop_set_num_threads(int n) { set_num_threads(n); }

int sdrop_get_num_threads(void) { return get_num_threads(); }

sdrop_status sdrop_set_parallel_runner(sdrop_parallel_for_fn run, void* context, int threads) {
  return set_parallel_runner(run, context, threads);
}

void sdrop_get_parallel_runner(sdrop_parallel_for_fn* run, void** context, int* threads) {
  get_parallel_runner(run, context, threads);
}

void sdrop_set_verbose(int level) { set_verbose(level); }

int sdrop_get_verbose(void) { return verbose_level(); }

const char* sdrop_version(void) {
#define SDROP_STR2(x) #x
#define SDROP_STR(x) SDROP_STR2(x)
  return SDROP_STR(SDROP_VERSION_MAJOR) "." SDROP_STR(SDROP_VERSION_MINOR) "." SDROP_STR(
      SDROP_VERSION_PATCH);
}

}  // extern "C"
