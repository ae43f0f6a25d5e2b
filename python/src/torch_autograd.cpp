// Autograd for the sdrop operators, in C++ (as torchvision's ops do): the backward of
// dropout regenerates the mask from (seed, offset) instead of storing it, so a call saves two
// scalar tensors and its parameters, nothing tensor-sized. dropout_backward is its own
// backward (it is linear in the gradient with the same mask), so any order of derivative
// works. Registered for the Autograd key; below it the calls redispatch to the CPU, CUDA or
// Meta kernels, which is also how AOTAutograd traces them under torch.compile.
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>
#include <tuple>
#include <vector>

#include "torch_sdrop.h"

namespace sdrop_torch {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using T = at::Tensor;
using Shape = at::OptionalIntArrayRef;

c10::OptionalIntArrayRef opt(const std::optional<std::vector<int64_t>>& v) {
  return v ? c10::OptionalIntArrayRef(*v) : c10::nullopt;
}
std::optional<std::vector<int64_t>> keep(Shape s) {
  return s ? std::optional<std::vector<int64_t>>(s->vec()) : std::nullopt;
}

c10::OperatorHandle op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
}

T call_dropout(const char* name, const T& x, const T& seed, const T& offset, double p,
               int64_t axes, int64_t flags, Shape origin, Shape logical) {
  static const auto fwd = op("sdrop::dropout").typed<T(const T&, const T&, const T&, double,
                                                        int64_t, int64_t, Shape, Shape)>();
  static const auto bwd = op("sdrop::dropout_backward")
                              .typed<T(const T&, const T&, const T&, double, int64_t, int64_t,
                                       Shape, Shape)>();
  return (name[0] == 'f' ? fwd : bwd).call(x, seed, offset, p, axes, flags, origin, logical);
}

void save(AutogradContext* ctx, const T& seed, const T& offset, double p, int64_t axes,
          int64_t flags, Shape origin, Shape logical) {
  // Sized once: grown entry by entry, the map rehashes several times per call, which at the
  // tiny size costs about as much as the kernel.
  ctx->saved_data.reserve(7);
  ctx->saved_data["seed"] = seed;
  ctx->saved_data["offset"] = offset;
  ctx->saved_data["p"] = p;
  ctx->saved_data["axes"] = axes;
  ctx->saved_data["flags"] = flags;
  if (origin) ctx->saved_data["origin"] = origin->vec();
  if (logical) ctx->saved_data["logical"] = logical->vec();
}

// The gradient of any of them: dropout_backward with the saved parameters.
T grad_of(AutogradContext* ctx, const T& g) {
  auto& d = ctx->saved_data;
  std::optional<std::vector<int64_t>> origin, logical;
  if (d.count("origin")) origin = d["origin"].toIntVector();
  if (d.count("logical")) logical = d["logical"].toIntVector();
  return call_dropout("backward", g, d["seed"].toTensor(), d["offset"].toTensor(),
                      d["p"].toDouble(), d["axes"].toInt(), d["flags"].toInt(), opt(origin),
                      opt(logical));
}

variable_list grads(AutogradContext* ctx, const variable_list& g) {
  return {grad_of(ctx, g[0]), T(), T(), T(), T(), T(), T(), T()};
}

// dropout and dropout_backward: out = op(x) with the same mask both ways.
template <char kWhich>
struct Dropout : public torch::autograd::Function<Dropout<kWhich>> {
  static T forward(AutogradContext* ctx, const T& x, const T& seed, const T& offset, double p,
                   int64_t axes, int64_t flags, Shape origin, Shape logical) {
    save(ctx, seed, offset, p, axes, flags, origin, logical);
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_dropout(kWhich == 'f' ? "forward" : "backward", x, seed, offset, p, axes,
                        flags, origin, logical);
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) { return grads(ctx, g); }
};

// dropout_: in place; the input is marked dirty, so autograd bumps its version and refuses
// what it refuses for any in-place op (a leaf that requires grad, a tensor saved by another
// op for its backward).
struct DropoutInPlace : public torch::autograd::Function<DropoutInPlace> {
  static T forward(AutogradContext* ctx, T x, const T& seed, const T& offset, double p,
                   int64_t axes, int64_t flags, Shape origin, Shape logical) {
    save(ctx, seed, offset, p, axes, flags, origin, logical);
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      static const auto inplace =
          op("sdrop::dropout_").typed<T&(T&, const T&, const T&, double, int64_t, int64_t,
                                          Shape, Shape)>();
      inplace.call(x, seed, offset, p, axes, flags, origin, logical);
    }
    ctx->mark_dirty({x});
    return x;
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) { return grads(ctx, g); }
};

T call_apply_mask(const T& x, const T& mask, double p, int64_t axes, int64_t flags) {
  static const auto raw =
      op("sdrop::apply_mask").typed<T(const T&, const T&, double, int64_t, int64_t)>();
  return raw.call(x, mask, p, axes, flags);
}

// apply_mask: differentiable in x only; the gradient applies the same mask (the caller's:
// it cannot be regenerated, so it is what is saved).
struct ApplyMask : public torch::autograd::Function<ApplyMask> {
  static T forward(AutogradContext* ctx, const T& x, const T& mask, double p, int64_t axes,
                   int64_t flags) {
    ctx->saved_data["mask"] = mask;
    ctx->saved_data["p"] = p;
    ctx->saved_data["axes"] = axes;
    ctx->saved_data["flags"] = flags;
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_apply_mask(x, mask, p, axes, flags);
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) {
    auto& d = ctx->saved_data;
    // Through the dispatcher again, so that a double backward sees this as an op too.
    return {call_apply_mask(g[0], d["mask"].toTensor(), d["p"].toDouble(), d["axes"].toInt(),
                            d["flags"].toInt()),
            T(), T(), T(), T()};
  }
};

// No graph to record (grad mode off, or an input that does not require grad): straight to the
// kernel below, as PyTorch's own generated autograd kernels do.
bool records(const T& x) { return at::GradMode::is_enabled() && x.requires_grad(); }

// The fused channel epilogue (docs/epilogue.md). Its backward recomputes the forward from x,
// bias and residual and regenerates the mask, so those three are saved (as the unfused
// sequence saves its ReLUs' outputs) and nothing else tensor-sized; the gradient flows to x,
// bias and residual. epilogue_backward is not differentiable in its gradient (no double
// backward).
using OptT = std::optional<T>;
using EpilogueFn = T(const T&, const OptT&, const OptT&, const T&, const T&, double, int64_t,
                     int64_t, int64_t, int64_t, int64_t, Shape, Shape);
using EpilogueBackwardFn = std::tuple<T, T, T>(const T&, const T&, const OptT&, const OptT&,
                                               const T&, const T&, double, int64_t, int64_t,
                                               int64_t, int64_t, int64_t, bool, bool, Shape,
                                               Shape);

T call_epilogue(const T& x, const OptT& bias, const OptT& residual, const T& seed,
                const T& offset, double p, int64_t axes, int64_t flags, int64_t channel_axis,
                int64_t act, int64_t post, Shape origin, Shape logical) {
  static const auto raw = op("sdrop::epilogue").typed<EpilogueFn>();
  return raw.call(x, bias, residual, seed, offset, p, axes, flags, channel_axis, act, post,
                  origin, logical);
}

std::tuple<T, T, T> call_epilogue_backward(const T& g, const T& x, const OptT& bias,
                                           const OptT& residual, const T& seed, const T& offset,
                                           double p, int64_t axes, int64_t flags,
                                           int64_t channel_axis, int64_t act, int64_t post,
                                           bool need_bias, bool need_residual, Shape origin,
                                           Shape logical) {
  static const auto raw = op("sdrop::epilogue_backward").typed<EpilogueBackwardFn>();
  return raw.call(g, x, bias, residual, seed, offset, p, axes, flags, channel_axis, act, post,
                  need_bias, need_residual, origin, logical);
}

bool given(const OptT& t) { return t && t->defined(); }
OptT optional_of(const T& t) { return t.defined() ? OptT(t) : OptT(); }
bool wants_grad(const OptT& t) { return given(t) && t->requires_grad(); }

struct Epilogue : public torch::autograd::Function<Epilogue> {
  static T forward(AutogradContext* ctx, const T& x, const OptT& bias, const OptT& residual,
                   const T& seed, const T& offset, double p, int64_t axes, int64_t flags,
                   int64_t channel_axis, int64_t act, int64_t post, Shape origin,
                   Shape logical) {
    save(ctx, seed, offset, p, axes, flags, origin, logical);
    ctx->saved_data["channel_axis"] = channel_axis;
    ctx->saved_data["act"] = act;
    ctx->saved_data["post"] = post;
    ctx->save_for_backward({x, given(bias) ? *bias : T(), given(residual) ? *residual : T()});
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_epilogue(x, bias, residual, seed, offset, p, axes, flags, channel_axis, act,
                         post, origin, logical);
  }

  static variable_list backward(AutogradContext* ctx, variable_list g) {
    const variable_list saved = ctx->get_saved_variables();
    const T &x = saved[0], &bias = saved[1], &residual = saved[2];
    // The edges are the forward's defined tensor arguments: x, [bias], [residual], seed, offset.
    const bool need_x = ctx->needs_input_grad(0);
    const bool need_bias = bias.defined() && ctx->needs_input_grad(1);
    const bool need_residual =
        residual.defined() && ctx->needs_input_grad(bias.defined() ? 2 : 1);
    variable_list out(13);
    if (!g[0].defined() || !(need_x || need_bias || need_residual)) return out;
    auto& d = ctx->saved_data;
    std::optional<std::vector<int64_t>> origin, logical;
    if (d.count("origin")) origin = d["origin"].toIntVector();
    if (d.count("logical")) logical = d["logical"].toIntVector();
    auto [dx, dbias, dresidual] = call_epilogue_backward(
        g[0], x, optional_of(bias), optional_of(residual), d["seed"].toTensor(),
        d["offset"].toTensor(), d["p"].toDouble(), d["axes"].toInt(), d["flags"].toInt(),
        d["channel_axis"].toInt(), d["act"].toInt(), d["post"].toInt(), need_bias,
        need_residual, opt(origin), opt(logical));
    if (need_x) out[0] = dx;
    if (need_bias) out[1] = dbias;
    if (need_residual) out[2] = dresidual;
    return out;
  }
};

T epilogue_autograd(const T& x, const OptT& bias, const OptT& residual, const T& seed,
                    const T& offset, double p, int64_t axes, int64_t flags,
                    int64_t channel_axis, int64_t act, int64_t post, Shape origin,
                    Shape logical) {
  if (!at::GradMode::is_enabled() ||
      !(x.requires_grad() || wants_grad(bias) || wants_grad(residual))) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_epilogue(x, bias, residual, seed, offset, p, axes, flags, channel_axis, act,
                         post, origin, logical);
  }
  return Epilogue::apply(x, bias, residual, seed, offset, p, axes, flags, channel_axis, act,
                         post, origin, logical);
}

// The gradients are linear in g and piecewise constant in x, bias and residual (a ReLU's
// derivative is 0 or 1), so without a g that requires grad there is nothing to record (their
// derivatives are zero almost everywhere, as for threshold_backward). With one (a double
// backward through the epilogue, create_graph=True) it refuses, rather than return gradients
// autograd would silently treat as constants.
std::tuple<T, T, T> epilogue_backward_autograd(const T& g, const T& x, const OptT& bias,
                                               const OptT& residual, const T& seed,
                                               const T& offset, double p, int64_t axes,
                                               int64_t flags, int64_t channel_axis,
                                               int64_t act, int64_t post, bool need_bias,
                                               bool need_residual, Shape origin,
                                               Shape logical) {
  TORCH_CHECK_NOT_IMPLEMENTED(
      !at::GradMode::is_enabled() || !g.requires_grad(),
      "sdrop: epilogue_backward is not differentiable in its gradient: the fused epilogue has "
      "no double backward (create_graph=True with a gradient that requires grad)");
  at::AutoDispatchBelowADInplaceOrView guard;
  return call_epilogue_backward(g, x, bias, residual, seed, offset, p, axes, flags,
                                channel_axis, act, post, need_bias, need_residual, origin,
                                logical);
}

T dropout_autograd(const T& x, const T& seed, const T& offset, double p, int64_t axes,
                   int64_t flags, Shape origin, Shape logical) {
  if (!records(x)) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_dropout("forward", x, seed, offset, p, axes, flags, origin, logical);
  }
  return Dropout<'f'>::apply(x, seed, offset, p, axes, flags, origin, logical);
}
T dropout_backward_autograd(const T& g, const T& seed, const T& offset, double p, int64_t axes,
                            int64_t flags, Shape origin, Shape logical) {
  if (!records(g)) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_dropout("backward", g, seed, offset, p, axes, flags, origin, logical);
  }
  return Dropout<'b'>::apply(g, seed, offset, p, axes, flags, origin, logical);
}
T& dropout_inplace_autograd(T& x, const T& seed, const T& offset, double p, int64_t axes,
                            int64_t flags, Shape origin, Shape logical) {
  if (!records(x) && !x.is_inference()) {
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      static const auto inplace =
          op("sdrop::dropout_").typed<T&(T&, const T&, const T&, double, int64_t, int64_t,
                                          Shape, Shape)>();
      inplace.call(x, seed, offset, p, axes, flags, origin, logical);
    }
    x.unsafeGetTensorImpl()->bump_version();  // what mark_dirty does for a recorded call
    return x;
  }
  DropoutInPlace::apply(x, seed, offset, p, axes, flags, origin, logical);
  return x;
}
T apply_mask_autograd(const T& x, const T& mask, double p, int64_t axes, int64_t flags) {
  if (!records(x)) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_apply_mask(x, mask, p, axes, flags);
  }
  return ApplyMask::apply(x, mask, p, axes, flags);
}

}  // namespace
}  // namespace sdrop_torch

TORCH_LIBRARY_IMPL(sdrop, Autograd, m) {
  using namespace sdrop_torch;
  m.impl("dropout", &dropout_autograd);
  m.impl("dropout_backward", &dropout_backward_autograd);
  m.impl("dropout_", &dropout_inplace_autograd);
  m.impl("apply_mask", &apply_mask_autograd);
  m.impl("epilogue", &epilogue_autograd);
  m.impl("epilogue_backward", &epilogue_backward_autograd);
}
