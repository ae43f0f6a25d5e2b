// The sdrop operators for PyTorch (docs/python.md): schemas, the CPU and CUDA kernels (one
// function each: libsdrop runs a call where its tensors are) and the Meta kernels that
// torch.compile, torch.export and FakeTensor trace with. Outputs come from torch's
// allocator. The randomness is an argument: seed and offset are int64 scalar CPU tensors,
// so the dropout, mask and apply_mask ops are pure functions of their inputs; draw_seed and
// seeded_step are where (seed, offset) come from.
#include <ATen/EmptyTensor.h>
#include <torch/csrc/autograd/graph_task.h>
#include <torch/library.h>

#include <tuple>

#include "huge_pages.h"
#include "torch_sdrop.h"

namespace sdrop_torch {
namespace {

using Shape = at::OptionalIntArrayRef;
using T = at::Tensor;

// A new tensor like x, as at::empty_like(x) makes it: x's strides when x is dense (so
// channels_last stays so), else contiguous. A dense CPU tensor is allocated here directly:
// at::empty_like dispatches twice (empty_like, then empty_strided), which at 1×16×8×8 takes
// about as long as the kernel.
T new_like(const T& x) {
  if (x.is_cpu() && x.layout() == at::kStrided && x.is_non_overlapping_and_dense() &&
      !x.is_quantized() && !x.is_conj() && !x.is_neg()) {
    T y = at::detail::empty_strided_cpu(x.sizes(), x.strides(), x.scalar_type());
    sdrop_bindings::advise_huge_pages(y.data_ptr(), y.nbytes());  // fresh: see huge_pages.h
    return y;
  }
  return at::empty_like(x);
}

// y = dropout(x) into `out`, or a fresh tensor of x's layout (channels_last stays so).
T run_dropout(const T& x, const T& seed, const T& offset, double p, int64_t axes,
              int64_t flags, Shape origin, Shape logical, bool backward, const T* out) {
  const sdrop_params prm = params_of(seed, offset, p, axes, flags);
  T y = out ? *out : new_like(x);
  const Shard shard(origin, logical, x.dim());
  use_current_stream(x);
  TorchThreads threads(x);
  DL dx(x), dy(y);
  check(backward ? sdrop_backward_sharded(&prm, shard.get(), &dx.t, &dy.t)
                 : sdrop_forward_sharded(&prm, shard.get(), &dx.t, &dy.t));
  return y;
}

T dropout(const T& x, const T& seed, const T& offset, double p, int64_t axes, int64_t flags,
          Shape origin, Shape logical) {
  return run_dropout(x, seed, offset, p, axes, flags, origin, logical, false, nullptr);
}

T& dropout_(T& x, const T& seed, const T& offset, double p, int64_t axes, int64_t flags,
            Shape origin, Shape logical) {
  run_dropout(x, seed, offset, p, axes, flags, origin, logical, false, &x);
  return x;
}

T dropout_backward(const T& grad, const T& seed, const T& offset, double p, int64_t axes,
                   int64_t flags, Shape origin, Shape logical) {
  return run_dropout(grad, seed, offset, p, axes, flags, origin, logical, true, nullptr);
}

std::vector<int64_t> noise_shape(const T& like, int64_t axes) {
  std::vector<int64_t> s = like.sizes().vec();
  for (size_t i = 0; i < s.size(); i++)
    if (i >= 63 || !((axes >> i) & 1)) s[i] = 1;
  return s;
}

T mask(const T& like, const T& seed, const T& offset, double p, int64_t axes, bool as_bool,
       Shape origin, Shape logical) {
  const sdrop_params prm = params_of(seed, offset, p, axes, 0);
  T m = at::empty(noise_shape(like, axes), like.options().dtype(as_bool ? at::kBool : at::kByte));
  const Shard shard(origin, logical, like.dim());
  use_current_stream(like);
  TorchThreads threads(like);
  DL dm(m);
  check(sdrop_mask_sharded(&prm, shard.get(), &dm.t));
  return m;
}

T apply_mask(const T& x, const T& m, double p, int64_t axes, int64_t flags) {
  TORCH_CHECK_VALUE(axes >= 0 && axes <= UINT32_MAX,
                    "sdrop: mask_axes must be a bit mask in [0, 2^32), got ", axes);
  TORCH_CHECK_VALUE(flags >= 0 && flags <= UINT32_MAX, "sdrop: flags must be in [0, 2^32), got ",
                    flags);
  const sdrop_params prm{p, 0, 0, uint32_t(axes), uint32_t(flags)};
  T y = new_like(x);
  use_current_stream(x);
  TorchThreads threads(x);
  DL dx(x), dm(m), dy(y);
  check(sdrop_apply_mask(&prm, &dx.t, &dm.t, &dy.t));
  return y;
}

// The fused channel epilogue (docs/epilogue.md): y = post(residual + dropout(act(x + bias))),
// on CPU and CUDA tensors alike (libsdrop runs it where its tensors are).
using OptT = std::optional<T>;

bool given(const OptT& t) { return t && t->defined(); }

int32_t int32_arg(int64_t v, const char* name) {
  TORCH_CHECK_VALUE(v >= INT32_MIN && v <= INT32_MAX, "sdrop: ", name,
                    " must fit in 32 bits, got ", v);
  return int32_t(v);
}

// The sdrop_epilogue of a call and the DLTensors it points to.
struct Epilogue {
  std::optional<DL> bias, residual;
  sdrop_epilogue e{};
  Epilogue(const OptT& b, const OptT& r, int64_t channel_axis, int64_t act, int64_t post) {
    if (given(b)) e.bias = &bias.emplace(*b).t;
    if (given(r)) e.residual = &residual.emplace(*r).t;
    e.channel_axis = int32_arg(channel_axis, "channel_axis");
    e.act = int32_arg(act, "act");
    e.post = int32_arg(post, "post");
  }
};

T epilogue(const T& x, const OptT& bias, const OptT& residual, const T& seed, const T& offset,
           double p, int64_t axes, int64_t flags, int64_t channel_axis, int64_t act,
           int64_t post, Shape origin, Shape logical) {
  const sdrop_params prm = params_of(seed, offset, p, axes, flags);
  const Epilogue epi(bias, residual, channel_axis, act, post);
  T y = new_like(x);
  const Shard shard(origin, logical, x.dim());
  use_current_stream(x);
  TorchThreads threads(x);
  DL dx(x), dy(y);
  check(sdrop_epilogue_forward(&prm, shard.get(), &epi.e, &dx.t, &dy.t));
  return y;
}

// The outputs of epilogue_backward: dx like x; dbias (contiguous, bias's shape) and dresidual
// (like residual) when wanted, else empty tensors of x's dtype and device (a custom op's
// outputs are tensors, never None). Shared with the Meta kernel, so the shapes agree.
std::tuple<T, T, T> epilogue_grads(const T& x, const OptT& bias, const OptT& residual,
                                   bool need_bias, bool need_residual, bool cpu) {
  TORCH_CHECK_VALUE(!need_bias || given(bias),
                    "sdrop: need_bias_grad is set but bias is None: there is no bias to "
                    "differentiate");
  TORCH_CHECK_VALUE(!need_residual || given(residual),
                    "sdrop: need_residual_grad is set but residual is None: there is no "
                    "residual to differentiate");
  T dx = cpu ? new_like(x) : at::empty_like(x);
  T db = need_bias ? at::empty_like(*bias, at::MemoryFormat::Contiguous)
                   : at::empty({0}, x.options());
  T dr = need_residual ? (cpu ? new_like(*residual) : at::empty_like(*residual))
                       : at::empty({0}, x.options());
  return {dx, db, dr};
}

std::tuple<T, T, T> epilogue_backward(const T& grad, const T& x, const OptT& bias,
                                      const OptT& residual, const T& seed, const T& offset,
                                      double p, int64_t axes, int64_t flags,
                                      int64_t channel_axis, int64_t act, int64_t post,
                                      bool need_bias, bool need_residual, Shape origin,
                                      Shape logical) {
  const sdrop_params prm = params_of(seed, offset, p, axes, flags);
  const Epilogue epi(bias, residual, channel_axis, act, post);
  auto out = epilogue_grads(x, bias, residual, need_bias, need_residual, x.is_cpu());
  const Shard shard(origin, logical, x.dim());
  use_current_stream(x);
  TorchThreads threads(x);
  DL dl_x(x), dl_dy(grad), dl_dx(std::get<0>(out));
  std::optional<DL> dl_db, dl_dr;
  if (need_bias) dl_db.emplace(std::get<1>(out));
  if (need_residual) dl_dr.emplace(std::get<2>(out));
  check(sdrop_epilogue_backward(&prm, shard.get(), &epi.e, &dl_x.t, &dl_dy.t, &dl_dx.t,
                                dl_db ? &dl_db->t : nullptr, dl_dr ? &dl_dr->t : nullptr));
  return out;
}

// (seed, offset) for one call from the default generator of like's device. torch.manual_seed
// reproduces it, fork_rng isolates it, and checkpointing's preserve_rng_state restores the
// generator, so a recomputed forward draws the same.
T cpu_scalar(int64_t v) {
  T t = at::detail::empty_cpu({}, at::kLong, std::nullopt, std::nullopt, std::nullopt, std::nullopt);
  *t.mutable_data_ptr<int64_t>() = v;
  return t;
}

std::tuple<T, T> draw_seed(const T& like) {
  const auto so = draw(like);
  return {cpu_scalar(int64_t(so.first)), cpu_scalar(int64_t(so.second))};
}

// The offset (step) a module with an explicit seed uses for one call. `state` is the module's
// int64 CPU tensor [next step, ring index, then kRecent entries of (draw, draw, step)]. Each
// call also draws from the default generator, as torch's dropout would; a call made while a
// backward pass runs whose draw is among the recent ones is a checkpointed region being
// recomputed (its generator restored, eagerly or by AOTAutograd), and gets that call's step
// again; any other call takes the next step. So the step advances once per training forward
// whether or not checkpointing recomputes it, and depends on nothing else.
//
// The schema does not declare `state` mutated, on purpose: it is the module's private
// counter, not data. Declared, a compiler would functionalize the op and recompute the
// functional copy in a checkpointed backward without restoring the generator (a fresh draw,
// a second step); undeclared, the op stays a random op, which AOTAutograd recomputes only
// under the generator state it first ran with, and then this lookup gives the same step.
constexpr int64_t kRecent = 64;

T seeded_step(const T& like, const T& state_arg) {
  T state = state_arg;
  TORCH_CHECK_VALUE(state.device().is_cpu() && state.scalar_type() == at::kLong &&
                        state.is_contiguous() && state.numel() == 2 + 3 * kRecent,
                    "sdrop: state must be a contiguous CPU int64 tensor of ", 2 + 3 * kRecent,
                    " elements");
  const auto r = draw(like);
  int64_t* s = state.data_ptr<int64_t>();
  int64_t* recent = s + 2;
  if (torch::autograd::get_current_graph_task_id() != -1) {
    for (int64_t k = 0; k < kRecent; k++) {
      if (uint64_t(recent[3 * k]) == r.first && uint64_t(recent[3 * k + 1]) == r.second &&
          recent[3 * k + 2] >= 0) {
        return cpu_scalar(recent[3 * k + 2]);
      }
    }
  }
  const int64_t step = s[0]++;
  const int64_t slot = s[1] % kRecent;
  s[1] = (slot + 1) % kRecent;
  recent[3 * slot] = int64_t(r.first);
  recent[3 * slot + 1] = int64_t(r.second);
  recent[3 * slot + 2] = step;
  return cpu_scalar(step);
}

// Meta: shapes, dtypes and devices only, for FakeTensor (torch.compile, torch.export).
T dropout_meta(const T& x, const T&, const T&, double, int64_t, int64_t, Shape, Shape) {
  return at::empty_like(x);
}
T& dropout_meta_(T& x, const T&, const T&, double, int64_t, int64_t, Shape, Shape) { return x; }
T mask_meta(const T& like, const T&, const T&, double, int64_t axes, bool as_bool, Shape,
            Shape) {
  return at::empty(noise_shape(like, axes), like.options().dtype(as_bool ? at::kBool : at::kByte));
}
T apply_mask_meta(const T& x, const T&, double, int64_t, int64_t) { return at::empty_like(x); }
T epilogue_meta(const T& x, const OptT&, const OptT&, const T&, const T&, double, int64_t,
                int64_t, int64_t, int64_t, int64_t, Shape, Shape) {
  return at::empty_like(x);
}
std::tuple<T, T, T> epilogue_backward_meta(const T&, const T& x, const OptT& bias,
                                           const OptT& residual, const T&, const T&, double,
                                           int64_t, int64_t, int64_t, int64_t, int64_t,
                                           bool need_bias, bool need_residual, Shape, Shape) {
  return epilogue_grads(x, bias, residual, need_bias, need_residual, false);
}

}  // namespace
}  // namespace sdrop_torch

TORCH_LIBRARY(sdrop, m) {
  // seed, offset: int64 scalar CPU tensors. origin, logical_shape: docs/semantics.md#shards
  // (a shard of a larger logical tensor draws that tensor's mask).
  m.def("dropout(Tensor x, Tensor seed, Tensor offset, float p, int mask_axes, int flags, "
        "int[]? origin=None, int[]? logical_shape=None) -> Tensor");
  m.def("dropout_(Tensor(a!) x, Tensor seed, Tensor offset, float p, int mask_axes, int flags, "
        "int[]? origin=None, int[]? logical_shape=None) -> Tensor(a!)");
  m.def("dropout_backward(Tensor grad, Tensor seed, Tensor offset, float p, int mask_axes, "
        "int flags, int[]? origin=None, int[]? logical_shape=None) -> Tensor");
  m.def("mask(Tensor like, Tensor seed, Tensor offset, float p, int mask_axes, "
        "bool as_bool=False, int[]? origin=None, int[]? logical_shape=None) -> Tensor");
  m.def("apply_mask(Tensor x, Tensor mask, float p, int mask_axes, int flags) -> Tensor");
  // The fused channel epilogue (docs/epilogue.md): y = post(residual + dropout(act(x + bias))),
  // act and post 0 (identity) or 1 (ReLU); its backward gives (dx, dbias, dresidual) from the
  // forward's x and the gradient, the mask regenerated. Ungiven gradients are empty tensors.
  m.def("epilogue(Tensor x, Tensor? bias, Tensor? residual, Tensor seed, Tensor offset, "
        "float p, int mask_axes, int flags, int channel_axis, int act, int post, "
        "int[]? origin=None, int[]? logical_shape=None) -> Tensor");
  m.def("epilogue_backward(Tensor grad, Tensor x, Tensor? bias, Tensor? residual, Tensor seed, "
        "Tensor offset, float p, int mask_axes, int flags, int channel_axis, int act, int post, "
        "bool need_bias_grad, bool need_residual_grad, int[]? origin=None, "
        "int[]? logical_shape=None) -> (Tensor dx, Tensor dbias, Tensor dresidual)");
  // Random: a compiler must neither deduplicate nor reorder them, and recomputes them only
  // with the generator state they ran with (the tag says so).
  m.def("draw_seed(Tensor like) -> (Tensor seed, Tensor offset)",
        {at::Tag::nondeterministic_seeded});
  m.def("seeded_step(Tensor like, Tensor state) -> Tensor",
        {at::Tag::nondeterministic_seeded});
}

TORCH_LIBRARY_IMPL(sdrop, CPU, m) {
  using namespace sdrop_torch;
  m.impl("dropout", &dropout);
  m.impl("dropout_", &dropout_);
  m.impl("dropout_backward", &dropout_backward);
  m.impl("mask", &mask);
  m.impl("apply_mask", &apply_mask);
  m.impl("epilogue", &epilogue);
  m.impl("epilogue_backward", &epilogue_backward);
  m.impl("draw_seed", &draw_seed);
  m.impl("seeded_step", &seeded_step);
}

// The epilogue's CUDA kernels are the same functions: libsdrop refuses CUDA tensors for it in
// this release (SDROP_ERROR_UNSUPPORTED), which reaches Python as NotImplementedError with
// sdrop's message, and a later libsdrop that runs them needs no change here.
#ifdef SDROP_TORCH_CUDA
TORCH_LIBRARY_IMPL(sdrop, CUDA, m) {
  using namespace sdrop_torch;
  m.impl("dropout", &dropout);
  m.impl("dropout_", &dropout_);
  m.impl("dropout_backward", &dropout_backward);
  m.impl("mask", &mask);
  m.impl("apply_mask", &apply_mask);
  m.impl("epilogue", &epilogue);
  m.impl("epilogue_backward", &epilogue_backward);
  m.impl("draw_seed", &draw_seed);
  m.impl("seeded_step", &seeded_step);
}
#endif

// draw_seed and seeded_step return integers, which have no gradient: autograd has nothing to
// record, so it passes them straight to the kernel (without this, every call would go through
// the boxed autograd fallback for custom operators).
TORCH_LIBRARY_IMPL(sdrop, Autograd, m) {
  m.impl("draw_seed", torch::CppFunction::makeFallthrough());
  m.impl("seeded_step", torch::CppFunction::makeFallthrough());
}

TORCH_LIBRARY_IMPL(sdrop, Meta, m) {
  using namespace sdrop_torch;
  m.impl("dropout", &dropout_meta);
  m.impl("dropout_", &dropout_meta_);
  m.impl("dropout_backward", &dropout_meta);
  m.impl("mask", &mask_meta);
  m.impl("apply_mask", &apply_mask_meta);
  m.impl("epilogue", &epilogue_meta);
  m.impl("epilogue_backward", &epilogue_backward_meta);
}
