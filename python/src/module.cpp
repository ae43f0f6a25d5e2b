// sdrop._sdrop: the C ABI for Python, through nanobind's ndarray (NumPy, PyTorch, JAX, CuPy
// arrays, anything with DLPack or the buffer protocol), zero-copy. One function per entry
// point; the Python layer (sdrop/__init__.py) only allocates outputs and turns arguments
// into the bit masks the C ABI takes. A failed call raises the Python exception class the
// package registered for its status, carrying sdrop_last_error().
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <sdrop/sdrop.h>

namespace nb = nanobind;

namespace {

// A DLTensor over an ndarray's own shape and strides (elements), with storage for them.
struct View {
  int64_t shape[16], strides[16];
  DLTensor t{};

  template <typename Array>
  explicit View(const Array& a) {
    const size_t n = a.ndim() < 16 ? a.ndim() : 16;  // sdrop refuses ndim > 8, naming it
    for (size_t i = 0; i < n; i++) {
      shape[i] = int64_t(a.shape(i));
      strides[i] = a.stride(i);
    }
    t.data = const_cast<void*>(static_cast<const void*>(a.data()));
    t.device = DLDevice{DLDeviceType(a.device_type()), int32_t(a.device_id())};
    t.ndim = int32_t(a.ndim());
    const nb::dlpack::dtype d = a.dtype();
    t.dtype = DLDataType{d.code, d.bits, d.lanes};
    t.shape = shape;
    t.strides = strides;
    t.byte_offset = 0;
  }
};

using In = nb::ndarray<nb::ro>;
using Out = nb::ndarray<>;

// Python exception classes by status, set once by the package (sdrop/_errors.py).
PyObject* g_errors[8] = {};

void check(sdrop_status s) {
  if (s == SDROP_OK) return;
  PyObject* type = (s >= 0 && s < 8 && g_errors[s]) ? g_errors[s] : PyExc_RuntimeError;
  const char* msg = sdrop_last_error();
  PyErr_SetString(type, *msg ? msg : sdrop_status_name(s));
  throw nb::python_error();
}

sdrop_params params(double p, uint64_t seed, uint64_t offset, uint32_t axes, uint32_t flags) {
  return sdrop_params{p, seed, offset, axes, flags};
}

// The shard description, if any: origin and logical shape as int64 arrays of x's rank.
struct Shard {
  std::vector<int64_t> origin, logical;
  sdrop_shard s{nullptr, nullptr};
  Shard(const std::optional<std::vector<int64_t>>& o, const std::optional<std::vector<int64_t>>& l) {
    if (o) origin = *o, s.origin = origin.data();
    if (l) logical = *l, s.logical_shape = logical.data();
  }
  const sdrop_shard* get(size_t ndim) const {
    if (!s.origin && !s.logical_shape) return nullptr;
    if ((s.origin && origin.size() != ndim) || (s.logical_shape && logical.size() != ndim)) {
      PyErr_SetString(g_errors[SDROP_ERROR_INVALID_ARGUMENT] ? g_errors[SDROP_ERROR_INVALID_ARGUMENT]
                                                             : PyExc_ValueError,
                      ("shard origin and logical_shape must have one entry per axis (" +
                       std::to_string(ndim) + ")").c_str());
      throw nb::python_error();
    }
    return &s;
  }
};

void forward(const In& x, Out& y, double p, uint64_t seed, uint64_t offset, uint32_t axes,
             uint32_t flags, std::optional<std::vector<int64_t>> origin,
             std::optional<std::vector<int64_t>> logical, bool backward) {
  View vx(x), vy(y);
  const Shard sh(origin, logical);
  const sdrop_shard* s = sh.get(x.ndim());
  const sdrop_params prm = params(p, seed, offset, axes, flags);
  sdrop_status st;
  {
    nb::gil_scoped_release release;
    st = backward ? sdrop_backward_sharded(&prm, s, &vx.t, &vy.t)
                  : sdrop_forward_sharded(&prm, s, &vx.t, &vy.t);
  }
  check(st);
}

void mask(Out& m, double p, uint64_t seed, uint64_t offset, uint32_t axes,
          std::optional<std::vector<int64_t>> origin, std::optional<std::vector<int64_t>> logical) {
  View vm(m);
  const Shard sh(origin, logical);
  const sdrop_shard* s = sh.get(m.ndim());
  const sdrop_params prm = params(p, seed, offset, axes, 0);
  sdrop_status st;
  {
    nb::gil_scoped_release release;
    st = sdrop_mask_sharded(&prm, s, &vm.t);
  }
  check(st);
}

void apply_mask(const In& x, const In& m, Out& y, double p, uint32_t axes, uint32_t flags) {
  View vx(x), vm(m), vy(y);
  const sdrop_params prm = params(p, 0, 0, axes, flags);
  sdrop_status st;
  {
    nb::gil_scoped_release release;
    st = sdrop_apply_mask(&prm, &vx.t, &vm.t, &vy.t);
  }
  check(st);
}

// The fused channel epilogue (docs/epilogue.md): its optional operands and choices.
struct Epilogue {
  std::optional<View> bias, residual;
  sdrop_epilogue e{};
  Epilogue(const std::optional<In>& b, const std::optional<In>& r, int32_t channel_axis,
           int32_t act, int32_t post) {
    if (b) e.bias = &bias.emplace(*b).t;
    if (r) e.residual = &residual.emplace(*r).t;
    e.channel_axis = channel_axis;
    e.act = act;
    e.post = post;
  }
};

void epilogue(const In& x, Out& y, std::optional<In> bias, std::optional<In> residual, double p,
              uint64_t seed, uint64_t offset, uint32_t axes, uint32_t flags, int32_t channel_axis,
              int32_t act, int32_t post, std::optional<std::vector<int64_t>> origin,
              std::optional<std::vector<int64_t>> logical) {
  View vx(x), vy(y);
  const Epilogue epi(bias, residual, channel_axis, act, post);
  const Shard sh(origin, logical);
  const sdrop_shard* s = sh.get(x.ndim());
  const sdrop_params prm = params(p, seed, offset, axes, flags);
  sdrop_status st;
  {
    nb::gil_scoped_release release;
    st = sdrop_epilogue_forward(&prm, s, &epi.e, &vx.t, &vy.t);
  }
  check(st);
}

void epilogue_backward(const In& x, const In& dy, Out& dx, std::optional<Out> dbias,
                       std::optional<Out> dresidual, std::optional<In> bias,
                       std::optional<In> residual, double p, uint64_t seed, uint64_t offset,
                       uint32_t axes, uint32_t flags, int32_t channel_axis, int32_t act,
                       int32_t post, std::optional<std::vector<int64_t>> origin,
                       std::optional<std::vector<int64_t>> logical) {
  View vx(x), vdy(dy), vdx(dx);
  std::optional<View> vdb, vdr;
  if (dbias) vdb.emplace(*dbias);
  if (dresidual) vdr.emplace(*dresidual);
  const Epilogue epi(bias, residual, channel_axis, act, post);
  const Shard sh(origin, logical);
  const sdrop_shard* s = sh.get(x.ndim());
  const sdrop_params prm = params(p, seed, offset, axes, flags);
  sdrop_status st;
  {
    nb::gil_scoped_release release;
    st = sdrop_epilogue_backward(&prm, s, &epi.e, &vx.t, &vdy.t, &vdx.t, vdb ? &vdb->t : nullptr,
                                 vdr ? &vdr->t : nullptr);
  }
  check(st);
}

}  // namespace

NB_MODULE(_sdrop, m) {
  m.doc() = "The sdrop C ABI (sdrop.h) over nanobind ndarrays.";
  m.def("forward", &forward, nb::arg("x"), nb::arg("y"), nb::arg("p"), nb::arg("seed"),
        nb::arg("offset"), nb::arg("mask_axes"), nb::arg("flags"), nb::arg("origin").none(),
        nb::arg("logical_shape").none(), nb::arg("backward") = false);
  m.def("mask", &mask, nb::arg("mask"), nb::arg("p"), nb::arg("seed"), nb::arg("offset"),
        nb::arg("mask_axes"), nb::arg("origin").none(), nb::arg("logical_shape").none());
  m.def("apply_mask", &apply_mask, nb::arg("x"), nb::arg("mask"), nb::arg("y"), nb::arg("p"),
        nb::arg("mask_axes"), nb::arg("flags"));
  m.def("epilogue", &epilogue, nb::arg("x"), nb::arg("y"), nb::arg("bias").none(),
        nb::arg("residual").none(), nb::arg("p"), nb::arg("seed"), nb::arg("offset"),
        nb::arg("mask_axes"), nb::arg("flags"), nb::arg("channel_axis"), nb::arg("act"),
        nb::arg("post"), nb::arg("origin").none(), nb::arg("logical_shape").none());
  m.def("epilogue_backward", &epilogue_backward, nb::arg("x"), nb::arg("dy"), nb::arg("dx"),
        nb::arg("dbias").none(), nb::arg("dresidual").none(), nb::arg("bias").none(),
        nb::arg("residual").none(), nb::arg("p"), nb::arg("seed"), nb::arg("offset"),
        nb::arg("mask_axes"), nb::arg("flags"), nb::arg("channel_axis"), nb::arg("act"),
        nb::arg("post"), nb::arg("origin").none(), nb::arg("logical_shape").none());
  m.def("spatial_axes", [](int32_t ndim, int layout) {
    return sdrop_spatial_axes(ndim, sdrop_layout(layout));
  });
  m.def("set_num_threads", &sdrop_set_num_threads);
  m.def("get_num_threads", &sdrop_get_num_threads);
  m.def("set_verbose", &sdrop_set_verbose);
  m.def("get_verbose", &sdrop_get_verbose);
  m.def("version", &sdrop_version);
  m.def("last_error", &sdrop_last_error);
  m.def("set_max_cpu_isa", [](int isa) { check(sdrop_set_max_cpu_isa(sdrop_cpu_isa(isa))); });
  m.def("get_max_cpu_isa", [] { return int(sdrop_get_max_cpu_isa()); });
  m.def("get_cpu_isa", [] { return int(sdrop_get_cpu_isa()); });
  m.def("get_host_cpu_isa", [] { return int(sdrop_get_host_cpu_isa()); });
  m.def("cpu_isa_name", [](int isa) { return sdrop_cpu_isa_name(sdrop_cpu_isa(isa)); });
  m.def("set_cuda_stream", [](uintptr_t context, uintptr_t stream) {
    check(sdrop_set_cuda_stream(reinterpret_cast<void*>(context), reinterpret_cast<void*>(stream)));
  });
  // The statuses and flags as the header defines them: the Python enums are built from these.
  m.def("statuses", [] {
    nb::dict d;
    for (int s = SDROP_OK; s <= SDROP_ERROR_INTERNAL; s++)
      d[nb::int_(s)] = nb::str(sdrop_status_name(sdrop_status(s)));
    return d;
  });
  m.attr("FLAG_MULTIPLY") = SDROP_FLAG_MULTIPLY;
  m.attr("FLAG_SCALE_IN_DTYPE") = SDROP_FLAG_SCALE_IN_DTYPE;
  m.attr("CHANNELS_FIRST") = int(SDROP_CHANNELS_FIRST);
  m.attr("CHANNELS_LAST") = int(SDROP_CHANNELS_LAST);
  m.attr("ACTIVATION_IDENTITY") = int(SDROP_ACTIVATION_IDENTITY);
  m.attr("ACTIVATION_RELU") = int(SDROP_ACTIVATION_RELU);
  m.def("set_error_types", [](nb::dict types) {
    for (auto [k, v] : types) {
      const int s = nb::cast<int>(k);
      if (s < 0 || s >= 8) continue;
      Py_XINCREF(v.ptr());
      Py_XDECREF(g_errors[s]);
      g_errors[s] = v.ptr();
    }
  });
}
