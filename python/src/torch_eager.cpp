// sdrop._torch_eager: what sdrop.torch's functions and modules do per eager call, in one
// crossing from Python. The Python path calls torch.ops.sdrop.draw_seed (or seeded_step) and
// then torch.ops.sdrop.dropout: two boxed calls, each parsing its arguments against the schema
// into a stack (about as long as the kernel itself at 1×16×8×8), plus the Python frames and
// the seed tensors torch.tensor makes. Here the same operators are called through the same
// dispatcher, unboxed, so everything below the Python API sees what it saw before: autograd,
// dispatch modes (FakeTensor, make_fx, non-strict export), functorch, checkpointing's
// generator restore. What is skipped is only Python-side: sdrop.torch takes this path only
// when the input has no __torch_function__ to honour and torch.compile is not tracing
// (docs/python.md, "Eager calls").
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/library.h>

#include <pybind11/stl.h>

#include <optional>
#include <tuple>
#include <vector>

namespace py = pybind11;

namespace {

using T = at::Tensor;
using Shape = at::OptionalIntArrayRef;
using Ints = std::optional<std::vector<int64_t>>;

c10::OperatorHandle op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
}

// The operators of _torch_ops.so (loaded before this module is imported), looked up once.
struct Ops {
  c10::TypedOperatorHandle<std::tuple<T, T>(const T&)> draw_seed =
      op("sdrop::draw_seed").typed<std::tuple<T, T>(const T&)>();
  c10::TypedOperatorHandle<T(const T&, const T&)> seeded_step =
      op("sdrop::seeded_step").typed<T(const T&, const T&)>();
  c10::TypedOperatorHandle<T(const T&, const T&, const T&, double, int64_t, int64_t, Shape,
                             Shape)>
      dropout = op("sdrop::dropout")
                    .typed<T(const T&, const T&, const T&, double, int64_t, int64_t, Shape,
                             Shape)>();
  c10::TypedOperatorHandle<T&(T&, const T&, const T&, double, int64_t, int64_t, Shape, Shape)>
      dropout_ = op("sdrop::dropout_")
                     .typed<T&(T&, const T&, const T&, double, int64_t, int64_t, Shape,
                               Shape)>();
};
const Ops& ops() {
  static const Ops o;
  return o;
}

Shape shape(const Ints& v) { return v ? Shape(*v) : std::nullopt; }

// y = dropout(x) (or dropout_) with (seed, offset) from `seeds`, the GIL released as torch's
// own bindings release it; c10 errors become the Python exceptions torch raises for them.
template <typename Seeds>
T run(const T& x, double p, int64_t axes, int64_t flags, bool inplace, const Ints& origin,
      const Ints& logical, Seeds&& seeds) {
  py::gil_scoped_release nogil;
  const auto [seed, offset] = seeds();
  if (inplace) {
    T out = x;  // the same TensorImpl: the caller gets x's own Python object back
    return ops().dropout_.call(out, seed, offset, p, axes, flags, shape(origin), shape(logical));
  }
  return ops().dropout.call(x, seed, offset, p, axes, flags, shape(origin), shape(logical));
}

T cpu_scalar(int64_t v) {
  T t = at::detail::empty_cpu({}, at::kLong, std::nullopt, std::nullopt, std::nullopt,
                              std::nullopt);
  *t.mutable_data_ptr<int64_t>() = v;
  return t;
}

}  // namespace

PYBIND11_MODULE(_torch_eager, m) {
  m.doc() = "sdrop.torch's eager calls in one crossing (python/src/torch_eager.cpp)";
  // (seed, offset) drawn from torch's default generator of x's device: sdrop::draw_seed.
  m.def(
      "drawn",
      [](const T& x, double p, int64_t axes, int64_t flags, bool inplace, const Ints& origin,
         const Ints& logical) {
        HANDLE_TH_ERRORS
        return run(x, p, axes, flags, inplace, origin, logical,
                   [&] { return ops().draw_seed.call(x); });
        END_HANDLE_TH_ERRORS_PYBIND
      },
      py::arg("x"), py::arg("p"), py::arg("axes"), py::arg("flags"), py::arg("inplace"),
      py::arg("origin") = py::none(), py::arg("logical") = py::none());
  // An explicit (seed, offset), already the int64 of its 64 bits.
  m.def(
      "seeded",
      [](const T& x, int64_t seed, int64_t offset, double p, int64_t axes, int64_t flags,
         bool inplace, const Ints& origin, const Ints& logical) {
        HANDLE_TH_ERRORS
        return run(x, p, axes, flags, inplace, origin, logical,
                   [&] { return std::make_tuple(cpu_scalar(seed), cpu_scalar(offset)); });
        END_HANDLE_TH_ERRORS_PYBIND
      },
      py::arg("x"), py::arg("seed"), py::arg("offset"), py::arg("p"), py::arg("axes"),
      py::arg("flags"), py::arg("inplace"), py::arg("origin") = py::none(),
      py::arg("logical") = py::none());
  // A module's own seed tensor and step state: sdrop::seeded_step.
  m.def(
      "stepped",
      [](const T& x, const T& seed, const T& state, double p, int64_t axes, int64_t flags,
         bool inplace, const Ints& origin, const Ints& logical) {
        HANDLE_TH_ERRORS
        return run(x, p, axes, flags, inplace, origin, logical, [&] {
          return std::make_tuple(seed, ops().seeded_step.call(x, state));
        });
        END_HANDLE_TH_ERRORS_PYBIND
      },
      py::arg("x"), py::arg("seed"), py::arg("state"), py::arg("p"), py::arg("axes"),
      py::arg("flags"), py::arg("inplace"), py::arg("origin") = py::none(),
      py::arg("logical") = py::none());
}
