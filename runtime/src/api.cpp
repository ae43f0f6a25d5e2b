// The C ABI: validate everything (docs/refusals.md) before anything is written, canonicalise,
// run. Every entry point first installs the default floating-point environment and restores
// the caller's on return, so no check and no kernel can trap or leave a flag behind.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>

#include "bias_grad.h"
#include "error.h"
#include "fpenv.h"
#include "gpu.h"
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

// The mask index of every element of t (a shard's, when shard is given), after checking that
// the mask axes are axes of t.
sdrop_status checked_mask_index(const sdrop_params& params, const Tensor& t,
                                const sdrop_shard* shard, MaskIndex* mi) {
  if (sdrop_status s = check_mask_axes(params.mask_axes, t)) return s;
  return mask_index(t, params.mask_axes, shard, mi);
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

// t has x's dtype and is on x's device.
sdrop_status check_like(const Tensor& t, const Tensor& x) {
  if (!same_dtype(t, x)) {
    char a[64], b[64];
    return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.dtype (%s) must equal %s.dtype (%s)", t.name,
                dtype_name(t.dtype, a, sizeof a), x.name, dtype_name(x.dtype, b, sizeof b));
  }
  return same_device(x, t);
}

// a's shape equals b's ("a.shape [..] must equal b.shape [..]" otherwise).
sdrop_status check_same_shape(const Tensor& a, const Tensor& b) {
  if (same_shape(a, b)) return SDROP_OK;
  char da[200], db[200];
  return fail(SDROP_ERROR_INVALID_ARGUMENT, "%s.shape %s must equal %s.shape %s", a.name,
              format_dims(a.shape, a.ndim, da, sizeof da), b.name,
              format_dims(b.shape, b.ndim, db, sizeof db));
}

// x and y: the same shape and dtype, one device, a writable y, in place or apart.
sdrop_status check_pair(const Tensor& x, const Tensor& y, DType* dtype, Backend* backend) {
  if (sdrop_status s = float_dtype(x, dtype)) return s;
  if (sdrop_status s = check_like(y, x)) return s;
  if (sdrop_status s = backend_of(x, backend)) return s;
  if (sdrop_status s = backend_of(y, backend)) return s;
  if (sdrop_status s = check_same_shape(y, x)) return s;
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
  MaskIndex mi;
  if (sdrop_status s = checked_mask_index(*params, x, shard, &mi)) return s;
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

// An optional operand of the epilogue: x's dtype and device, and apart from y (or exactly in
// place where in_place_ok).
sdrop_status check_operand(const Tensor& t, const Tensor& x, const Tensor& y, bool in_place_ok) {
  if (sdrop_status s = check_like(t, x)) return s;
  return check_apart(t, y, in_place_ok);
}

sdrop_status check_activation(int32_t v, const char* name) {
  if (v == SDROP_ACTIVATION_IDENTITY || v == SDROP_ACTIVATION_RELU) return SDROP_OK;
  return fail(SDROP_ERROR_INVALID_ARGUMENT,
              "epilogue->%s must be SDROP_ACTIVATION_IDENTITY (0) or SDROP_ACTIVATION_RELU (1), "
              "got %d",
              name, int(v));
}

// The epilogue's choices and optional inputs (docs/epilogue.md), checked against x and against
// the outputs `outs` (y, or dx and dresidual), then its plan and kernel arguments.
struct EpilogueCall {
  Tensor bias, residual;
  EpilogueOperands ops;
  KernelArgs args;
};

sdrop_status check_epilogue(const sdrop_epilogue* e, const sdrop_params* params,
                            const Tensor& x, const Tensor* const* outs, int n_outs, DType dtype,
                            EpilogueCall* call) {
  if (!e) return fail(SDROP_ERROR_INVALID_ARGUMENT, "epilogue must not be NULL");
  if (sdrop_status s = check_activation(e->act, "act")) return s;
  if (sdrop_status s = check_activation(e->post, "post")) return s;
  if (e->bias) {
    if (e->channel_axis < 0 || e->channel_axis >= x.ndim) {
      return fail(SDROP_ERROR_INVALID_ARGUMENT,
                  "epilogue->channel_axis must be an axis of x (0..%d), got %d", x.ndim - 1,
                  int(e->channel_axis));
    }
    Tensor& bias = call->bias;
    if (sdrop_status s = describe(e->bias, "bias", &bias)) return s;
    const int64_t c = x.shape[e->channel_axis];
    if (bias.ndim != 1 || bias.shape[0] != c) {
      char dims[200];
      return fail(SDROP_ERROR_INVALID_ARGUMENT,
                  "bias.shape must be [%" PRId64 "] (x.shape[%d], the channel axis), got %s", c,
                  int(e->channel_axis), format_dims(bias.shape, bias.ndim, dims, sizeof dims));
    }
    // The kernels index the bias at channel * stride with 32-bit offsets. One channel never
    // uses its stride, which may then be anything (INT64_MIN too: found by the fuzzer);
    // more than one, and describe() has bounded (c - 1) * |stride| by 2^60.
    const uint64_t reach = c > 1 ? uint64_t(c - 1) * magnitude(bias.strides[0]) : 0;
    if (reach > uint64_t(kKernelSpanLimit)) {
      return fail(SDROP_ERROR_UNSUPPORTED,
                  "bias.strides[0] (%" PRId64 ") times its %" PRId64 " channels reaches past the "
                  "kernels' 32-bit indexing; pass a contiguous bias",
                  bias.strides[0], c);
    }
    for (int i = 0; i < n_outs; i++) {
      if (sdrop_status s = check_operand(bias, x, *outs[i], /*in_place_ok=*/false)) return s;
    }
    call->ops.bias = &bias;
  }
  if (e->residual) {
    Tensor& res = call->residual;
    if (sdrop_status s = describe(e->residual, "residual", &res)) return s;
    if (sdrop_status s = check_same_shape(res, x)) return s;
    for (int i = 0; i < n_outs; i++) {
      if (sdrop_status s = check_operand(res, x, *outs[i], /*in_place_ok=*/true)) return s;
    }
    call->ops.residual = &res;
  }
  call->args = kernel_args(*params, dtype);
  call->args.has_bias = e->bias != nullptr;
  call->args.has_residual = e->residual != nullptr;
  call->args.act_relu = e->act == SDROP_ACTIVATION_RELU;
  call->args.post_relu = e->post == SDROP_ACTIVATION_RELU;
  return SDROP_OK;
}

// A heap tensor laid out as `like` (the same strides, so the same plan), for outputs nobody
// reads.
struct ScratchTensor {
  Tensor tensor;
  void* data = nullptr;
  ScratchTensor() = default;
  ScratchTensor(const ScratchTensor&) = delete;
  ScratchTensor& operator=(const ScratchTensor&) = delete;
  ~ScratchTensor() { std::free(data); }

  sdrop_status make(const Tensor& like, const char* name) {
    const int64_t bytes = like.hi - like.lo;  // the validated footprint
    data = std::malloc(size_t(bytes));
    if (!data) {
      return fail(SDROP_ERROR_OUT_OF_MEMORY, "cannot allocate %" PRId64 " bytes for the %s",
                  bytes, name);
    }
    int64_t shape[kMaxDims], strides[kMaxDims];
    for (int i = 0; i < like.ndim; i++) {
      shape[i] = like.shape[i];
      strides[i] = like.strides[i];
    }
    DLTensor t{data, {kDLCPU, 0}, like.ndim, like.dtype, shape, strides, uint64_t(-like.lo)};
    return describe(&t, name, &tensor);  // copies shape and strides
  }
};

// The channel index's strides: 1 on the channel axis (with a bias), 0 elsewhere.
void channel_strides(const sdrop_epilogue& e, int ndim, int64_t* ks) {
  for (int i = 0; i < ndim; i++) ks[i] = 0;
  if (e.bias) ks[e.channel_axis] = 1;
}

// docs/epilogue.md: y = post(residual + dropout(act(x + bias))).
sdrop_status epilogue(CallRecord* r, const sdrop_params* params, const sdrop_shard* shard,
                      const sdrop_epilogue* e, const DLTensor* x_t, DLTensor* y_t) {
  FpEnvGuard env;
  if (sdrop_status s = check_params(params, true)) return s;
  if (!e) return fail(SDROP_ERROR_INVALID_ARGUMENT, "epilogue must not be NULL");
  Tensor x, y;
  if (sdrop_status s = describe(x_t, "x", &x)) return s;
  if (sdrop_status s = describe(y_t, "y", &y)) return s;
  DType dtype;
  Backend backend;
  if (sdrop_status s = check_pair(x, y, &dtype, &backend)) return s;
  EpilogueCall call;
  const Tensor* outs[1] = {&y};
  if (sdrop_status s = check_epilogue(e, params, x, outs, 1, dtype, &call)) return s;
  MaskIndex mi;
  if (sdrop_status s = checked_mask_index(*params, x, shard, &mi)) return s;
  r->x = &x;
  r->y = &y;
  if (x.numel == 0) return trace_no_kernel(r);
  // Without a residual, x's strides stand in for it (the kernel reads none of it), so that
  // they change nothing in the plan.
  int64_t ks[kMaxDims];
  channel_strides(*e, x.ndim, ks);
  const Plan plan = make_epilogue_plan(x.ndim, x.shape, x.strides, y.strides, ks,
                                       e->residual ? call.residual.strides : x.strides, nullptr,
                                       nullptr, mi);
  return run_and_trace(r, backend, Op::epilogue, dtype, plan, &x, y, nullptr, call.args,
                       &call.ops);
}

// docs/epilogue.md#backward: dx, dbias, dresidual of the epilogue, from dy, with the mask
// redrawn and post' recomputed.
sdrop_status epilogue_backward(CallRecord* r, const sdrop_params* params,
                               const sdrop_shard* shard, const sdrop_epilogue* e,
                               const DLTensor* x_t, const DLTensor* dy_t, DLTensor* dx_t,
                               DLTensor* dbias_t, DLTensor* dr_t) {
  FpEnvGuard env;
  if (sdrop_status s = check_params(params, true)) return s;
  if (!e) return fail(SDROP_ERROR_INVALID_ARGUMENT, "epilogue must not be NULL");
  Tensor x, dy, dx, dbias, dr;
  if (sdrop_status s = describe(x_t, "x", &x)) return s;
  if (sdrop_status s = describe(dy_t, "dy", &dy)) return s;
  if (sdrop_status s = describe(dx_t, "dx", &dx)) return s;
  DType dtype;
  Backend backend;
  if (sdrop_status s = check_pair(dy, dx, &dtype, &backend)) return s;
  // x is read beside dy: its shape, dtype and device, and apart from dx (or exactly in place).
  if (sdrop_status s = check_same_shape(x, dy)) return s;
  if (sdrop_status s = check_operand(x, dy, dx, /*in_place_ok=*/true)) return s;
  const Tensor* outs[2] = {&dx, nullptr};
  int n_outs = 1;
  if (dr_t) {
    if (!e || !e->residual) {
      return fail(SDROP_ERROR_INVALID_ARGUMENT,
                  "dresidual is given but epilogue->residual is NULL: there is no residual to "
                  "differentiate");
    }
    if (sdrop_status s = describe(dr_t, "dresidual", &dr)) return s;
    if (sdrop_status s = check_same_shape(dr, dy)) return s;
    if (sdrop_status s = check_output(dr)) return s;
    if (sdrop_status s = check_operand(dr, dy, dx, /*in_place_ok=*/false)) return s;
    if (sdrop_status s = check_apart(dy, dr, /*in_place_ok=*/true)) return s;
    if (sdrop_status s = check_apart(x, dr, /*in_place_ok=*/true)) return s;
    outs[n_outs++] = &dr;
  }
  EpilogueCall call;
  if (sdrop_status s = check_epilogue(e, params, x, outs, n_outs, dtype, &call)) return s;
  if (dbias_t) {
    if (!e->bias) {
      return fail(SDROP_ERROR_INVALID_ARGUMENT,
                  "dbias is given but epilogue->bias is NULL: there is no bias to differentiate");
    }
    if (sdrop_status s = describe(dbias_t, "dbias", &dbias)) return s;
    if (sdrop_status s = check_like(dbias, dy)) return s;
    if (sdrop_status s = check_same_shape(dbias, call.bias)) return s;
    if (sdrop_status s = check_output(dbias)) return s;
    // dbias is written after every kernel: apart from every other tensor of the call.
    const Tensor* others[6] = {&dx, &dy, &x, &call.bias, n_outs > 1 ? &dr : nullptr,
                               e->residual ? &call.residual : nullptr};
    for (const Tensor* o : others) {
      if (!o) continue;
      if (sdrop_status s = check_operand(*o, dy, dbias, /*in_place_ok=*/false)) return s;
    }
    call.ops.dbias = &dbias;
  }
  MaskIndex mi;
  if (sdrop_status s = checked_mask_index(*params, x, shard, &mi)) return s;
  r->x = &dy;
  r->y = &dx;
  if (x.numel == 0) {
    if (dbias_t) {
      if (backend != Backend::cpu) {
        if (sdrop_status s = store_zero_bias_grad_gpu(backend, dbias, dtype)) return s;
      } else {
        store_zero_bias_grad(dbias);
      }
    }
    return trace_no_kernel(r);
  }
  call.ops.dy = &dy;
  call.ops.dresidual = dr_t ? &dr : nullptr;
  call.args.want_dr = dr_t != nullptr;
  // Without a dresidual the kernel writes its first output (then dx's own values) to dx too,
  // and recomputes the second from the inputs: right unless dx is one of those inputs (in
  // place), where the second would read the first. Then the first goes to a scratch tensor:
  // host memory here for the CPU, device memory the GPU runner allocates in the call's context.
  ScratchTensor sink;
  if (!dr_t && (share_memory(dx, dy) != Overlap::none || share_memory(dx, x) != Overlap::none ||
                (e->residual && share_memory(dx, call.residual) != Overlap::none))) {
    if (backend == Backend::cpu) {
      if (sdrop_status s = sink.make(dx, "dresidual scratch")) return s;
      call.ops.dresidual = &sink.tensor;
    } else {
      call.ops.dr_scratch = true;
    }
    call.args.want_dr = true;
  }
  int64_t ks[kMaxDims];
  channel_strides(*e, x.ndim, ks);
  const int64_t* drs = call.ops.dresidual ? call.ops.dresidual->strides : dx.strides;
  const Plan plan = make_epilogue_plan(x.ndim, x.shape, x.strides, dx.strides, ks,
                                       e->residual ? call.residual.strides : x.strides,
                                       dy.strides, drs, mi);
  return run_and_trace(r, backend, Op::epilogue_backward, dtype, plan, &x, dx, nullptr,
                       call.args, &call.ops);
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

sdrop_status sdrop_epilogue_forward(const sdrop_params* params, const sdrop_shard* shard,
                                    const sdrop_epilogue* epilogue_, const DLTensor* x,
                                    DLTensor* y) {
  Traced t("epilogue_forward", params);
  return t.finish(epilogue(t.get(), params, shard, epilogue_, x, y));
}

sdrop_status sdrop_epilogue_backward(const sdrop_params* params, const sdrop_shard* shard,
                                     const sdrop_epilogue* epilogue_, const DLTensor* x,
                                     const DLTensor* dy, DLTensor* dx, DLTensor* dbias,
                                     DLTensor* dresidual) {
  Traced t("epilogue_backward", params);
  return t.finish(
      epilogue_backward(t.get(), params, shard, epilogue_, x, dy, dx, dbias, dresidual));
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
