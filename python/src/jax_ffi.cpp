// sdrop._jax_ffi: the sdrop kernels as XLA FFI handlers for JAX (docs/python.md#jax), built
// against the FFI headers of the jaxlib in the target environment (python/cmake/SdropJax.cmake).
// Each handler describes XLA's buffers as DLTensors (compact row-major: ffi_call's default
// layout) and calls the C ABI on them, so no Python runs in the call path. A failed call
// returns an ffi::Error carrying sdrop_last_error() and the status name, which JAX raises.
//
// Operands: the randomness is data, not attributes, so a new step does not recompile:
// seed and offset are uint32[2] (low word, high word). p, mask_axes, flags and the rank of
// one unbatched call (ndim) are attributes.
//
// vmap (vmap_method="expand_dims"): every operand gets the same leading batch axes, extent 1
// where it is unbatched; the result has the full batch extents. nb = result rank - ndim.
// Each batch element gets exactly the call the unbatched function would make, so
// vmap(f)(xs)[i] == f(xs[i]) bit for bit. When the randomness (seed/offset, or a caller's
// mask) is unbatched, that is one call over the whole buffer with the batch axes off the mask
// axes (they then draw nothing); otherwise one call per batch element.
#include <nanobind/nanobind.h>

#include <cstdint>
#include <string>

#include "xla/ffi/api/ffi.h"
#include <sdrop/sdrop.h>

#include "huge_pages.h"

namespace ffi = xla::ffi;
namespace nb = nanobind;

namespace {

constexpr int kMaxRank = 16;  // nested vmaps handled (batch axes); sdrop refuses ndim > 8

DLDataType dl_dtype(ffi::DataType t) {
  using D = ffi::DataType;
  switch (t) {
    case D::F16: return {kDLFloat, 16, 1};
    case D::BF16: return {kDLBfloat, 16, 1};
    case D::F32: return {kDLFloat, 32, 1};
    case D::F64: return {kDLFloat, 64, 1};
    case D::U8: return {kDLUInt, 8, 1};
    case D::PRED: return {6, 8, 1};  // kDLBool (DLPack >= 0.8; older headers lack the name)
    case D::S8: return {kDLInt, 8, 1};
    case D::S16: return {kDLInt, 16, 1};
    case D::S32: return {kDLInt, 32, 1};
    case D::S64: return {kDLInt, 64, 1};
    case D::U16: return {kDLUInt, 16, 1};
    case D::U32: return {kDLUInt, 32, 1};
    case D::U64: return {kDLUInt, 64, 1};
    case D::C64: return {kDLComplex, 64, 1};
    case D::C128: return {kDLComplex, 128, 1};
    default: return {kDLOpaqueHandle, 8, 1};  // refused by sdrop, naming the dtype
  }
}

ffi::Error status_error(sdrop_status s) {
  if (s == SDROP_OK) return ffi::Error::Success();
  ffi::ErrorCode code;
  switch (s) {
    case SDROP_ERROR_INVALID_ARGUMENT: code = ffi::ErrorCode::kInvalidArgument; break;
    case SDROP_ERROR_UNSUPPORTED: code = ffi::ErrorCode::kUnimplemented; break;
    case SDROP_ERROR_BACKEND_UNAVAILABLE: code = ffi::ErrorCode::kUnavailable; break;
    case SDROP_ERROR_OUT_OF_MEMORY: code = ffi::ErrorCode::kResourceExhausted; break;
    default: code = ffi::ErrorCode::kInternal; break;
  }
  // The status name in parentheses: sdrop.jax reads it back to raise its exception class.
  return ffi::Error(code, std::string("sdrop: ") + sdrop_last_error() + " (" +
                              sdrop_status_name(s) + ")");
}

ffi::Error invalid(const std::string& what) {
  return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                    "sdrop: " + what + " (SDROP_ERROR_INVALID_ARGUMENT)");
}

// One XLA buffer: its data, dtype and dims; `slice` views batch element `b` of it.
struct Operand {
  char* data;
  DLDataType dtype;
  const int64_t* dims;
  int rank;
  int64_t elem;  // bytes per element

  template <typename Buffer>
  static Operand of(const Buffer& b) {
    const auto d = b.dimensions();
    const DLDataType dt = dl_dtype(b.element_type());
    return {static_cast<char*>(b.untyped_data()), dt, d.begin(), int(d.size()),
            int64_t(ffi::ByteWidth(b.element_type()))};
  }
};

// The leading batch axes vmap added (the result's first nb extents) and, per operand, where
// batch element `index` starts (extent-1 batch axes are broadcast: stride 0).
struct Batch {
  int nb = 0;
  int64_t extent[kMaxRank] = {};
  int64_t count = 1;

  // Any rank without batch axes (sdrop itself refuses ndim > 8, naming it).
  ffi::Error init(const Operand& result, int64_t ndim) {
    if (ndim < 0 || ndim > result.rank || result.rank - ndim > kMaxRank)
      return invalid("result rank " + std::to_string(result.rank) + " for calls of rank " +
                     std::to_string(ndim) + " (at most " + std::to_string(kMaxRank) +
                     " batch axes)");
    nb = int(result.rank - ndim);
    for (int i = 0; i < nb; i++) count *= (extent[i] = result.dims[i]);
    return ffi::Error::Success();
  }

  // An operand of inner rank `inner` must carry the batch axes, each 1 or the batch extent.
  ffi::Error check(const Operand& o, int64_t inner, const char* name) const {
    bool ok = o.rank == nb + inner;
    for (int i = 0; ok && i < nb; i++) ok = o.dims[i] == 1 || o.dims[i] == extent[i];
    if (!ok)
      return invalid(std::string(name) + " has rank " + std::to_string(o.rank) +
                     ", not the batch axes plus " + std::to_string(inner));
    return ffi::Error::Success();
  }

  bool unbatched(const Operand& o) const {
    for (int i = 0; i < nb; i++)
      if (o.dims[i] != 1) return false;
    return true;
  }

  bool full(const Operand& o) const {
    for (int i = 0; i < nb; i++)
      if (o.dims[i] != extent[i]) return false;
    return true;
  }

  // One sdrop call can cover every batch element: the batch axes, in front, join the call
  // as axes the mask does not vary along (mask_axes shifted past them).
  bool single_call(uint32_t axes, int64_t ndim) const {
    return nb == 0 || (!(axes >> ndim) && nb + ndim <= 8);
  }

  // Byte offset of batch element `index` in operand o.
  int64_t offset(const Operand& o, int64_t index) const {
    int64_t inner = o.elem;
    for (int i = nb; i < o.rank; i++) inner *= o.dims[i];
    int64_t off = 0, stride = inner;
    for (int i = nb - 1; i >= 0; i--) {
      const int64_t j = index % extent[i];
      index /= extent[i];
      if (o.dims[i] != 1) off += j * stride;
      stride *= o.dims[i];
    }
    return off;
  }
};

// A compact row-major DLTensor over axes [first, rank) of an operand, at a byte offset.
DLTensor view(const Operand& o, int first, int64_t byte_offset) {
  DLTensor t{};
  t.data = o.data ? o.data + byte_offset : nullptr;
  t.device = DLDevice{kDLCPU, 0};
  t.ndim = o.rank - first;
  t.dtype = o.dtype;
  t.shape = const_cast<int64_t*>(o.dims + first);
  t.strides = nullptr;
  t.byte_offset = 0;
  return t;
}

uint64_t word64(const Operand& o, int64_t byte_offset) {
  const uint32_t* w = reinterpret_cast<const uint32_t*>(o.data + byte_offset);
  return uint64_t(w[0]) | uint64_t(w[1]) << 32;
}

ffi::Error check_words(const Batch& b, const Operand& o, const char* name) {
  if (ffi::Error e = b.check(o, 1, name); e.failure()) return e;
  if (o.dims[o.rank - 1] != 2) return invalid(std::string(name) + " must end in 2 uint32 words");
  return ffi::Error::Success();
}

// Batch axes shifted in front of the mask axes; the caller checks nb + ndim <= 8 first.
uint32_t shifted(uint32_t axes, int nb) { return nb ? uint32_t(uint64_t(axes) << nb) : axes; }

template <bool Backward>
ffi::Error dropout_impl(ffi::AnyBuffer x_buf, ffi::Buffer<ffi::U32> seed_buf,
                        ffi::Buffer<ffi::U32> offset_buf, ffi::Result<ffi::AnyBuffer> y_buf,
                        double p, uint32_t axes, uint32_t flags, int64_t ndim) {
  const Operand x = Operand::of(x_buf), y = Operand::of(*y_buf);
  const Operand seed = Operand::of(seed_buf), offset = Operand::of(offset_buf);
  Batch b;
  if (ffi::Error e = b.init(y, ndim); e.failure()) return e;
  if (ffi::Error e = b.check(x, ndim, Backward ? "dy" : "x"); e.failure()) return e;
  if (ffi::Error e = check_words(b, seed, "seed"); e.failure()) return e;
  if (ffi::Error e = check_words(b, offset, "offset"); e.failure()) return e;
  // XLA's result buffers are fresh allocations each call (huge_pages.h).
  sdrop_bindings::advise_huge_pages(y.data, size_t(y_buf->size_bytes()));
  auto call = [&](const DLTensor& tx, DLTensor& ty, uint64_t s, uint64_t o, uint32_t a) {
    const sdrop_params prm{p, s, o, a, flags};
    return Backward ? sdrop_backward(&prm, &tx, &ty) : sdrop_forward(&prm, &tx, &ty);
  };
  // One call when every batch element has the same (seed, offset) and its own x.
  if (b.single_call(axes, ndim) && b.unbatched(seed) && b.unbatched(offset) && b.full(x)) {
    const DLTensor tx = view(x, 0, 0);
    DLTensor ty = view(y, 0, 0);
    return status_error(call(tx, ty, word64(seed, 0), word64(offset, 0), shifted(axes, b.nb)));
  }
  for (int64_t i = 0; i < b.count; i++) {
    const DLTensor tx = view(x, b.nb, b.offset(x, i));
    DLTensor ty = view(y, b.nb, b.offset(y, i));
    const sdrop_status s =
        call(tx, ty, word64(seed, b.offset(seed, i)), word64(offset, b.offset(offset, i)), axes);
    if (s != SDROP_OK) return status_error(s);
  }
  return ffi::Error::Success();
}

ffi::Error mask_impl(ffi::Buffer<ffi::U32> seed_buf, ffi::Buffer<ffi::U32> offset_buf,
                     ffi::Result<ffi::AnyBuffer> m_buf, double p, uint32_t axes, int64_t ndim) {
  const Operand m = Operand::of(*m_buf);
  const Operand seed = Operand::of(seed_buf), offset = Operand::of(offset_buf);
  Batch b;
  if (ffi::Error e = b.init(m, ndim); e.failure()) return e;
  if (ffi::Error e = check_words(b, seed, "seed"); e.failure()) return e;
  if (ffi::Error e = check_words(b, offset, "offset"); e.failure()) return e;
  for (int64_t i = 0; i < b.count; i++) {
    DLTensor tm = view(m, b.nb, b.offset(m, i));
    const sdrop_params prm{p, word64(seed, b.offset(seed, i)), word64(offset, b.offset(offset, i)),
                           axes, 0};
    if (const sdrop_status s = sdrop_mask(&prm, &tm); s != SDROP_OK) return status_error(s);
  }
  return ffi::Error::Success();
}

ffi::Error apply_mask_impl(ffi::AnyBuffer x_buf, ffi::AnyBuffer m_buf,
                           ffi::Result<ffi::AnyBuffer> y_buf, double p, uint32_t axes,
                           uint32_t flags, int64_t ndim) {
  const Operand x = Operand::of(x_buf), m = Operand::of(m_buf), y = Operand::of(*y_buf);
  Batch b;
  if (ffi::Error e = b.init(y, ndim); e.failure()) return e;
  if (ffi::Error e = b.check(x, ndim, "x"); e.failure()) return e;
  if (ffi::Error e = b.check(m, ndim, "mask"); e.failure()) return e;
  sdrop_bindings::advise_huge_pages(y.data, size_t(y_buf->size_bytes()));
  if (b.single_call(axes, ndim) && b.unbatched(m) && b.full(x)) {
    const DLTensor tx = view(x, 0, 0), tm = view(m, 0, 0);
    DLTensor ty = view(y, 0, 0);
    const sdrop_params prm{p, 0, 0, shifted(axes, b.nb), flags};
    return status_error(sdrop_apply_mask(&prm, &tx, &tm, &ty));
  }
  for (int64_t i = 0; i < b.count; i++) {
    const DLTensor tx = view(x, b.nb, b.offset(x, i)), tm = view(m, b.nb, b.offset(m, i));
    DLTensor ty = view(y, b.nb, b.offset(y, i));
    const sdrop_params prm{p, 0, 0, axes, flags};
    if (const sdrop_status s = sdrop_apply_mask(&prm, &tx, &tm, &ty); s != SDROP_OK)
      return status_error(s);
  }
  return ffi::Error::Success();
}

}  // namespace

#define SDROP_DROPOUT_BINDING                                                             \
  ffi::Ffi::Bind()                                                                        \
      .Arg<ffi::AnyBuffer>()                                                              \
      .Arg<ffi::Buffer<ffi::U32>>()                                                       \
      .Arg<ffi::Buffer<ffi::U32>>()                                                       \
      .Ret<ffi::AnyBuffer>()                                                              \
      .Attr<double>("p")                                                                  \
      .Attr<uint32_t>("mask_axes")                                                        \
      .Attr<uint32_t>("flags")                                                            \
      .Attr<int64_t>("ndim")

XLA_FFI_DEFINE_HANDLER_SYMBOL(SdropJaxForward, dropout_impl<false>, SDROP_DROPOUT_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(SdropJaxBackward, dropout_impl<true>, SDROP_DROPOUT_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(SdropJaxMask, mask_impl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<double>("p")
                                  .Attr<uint32_t>("mask_axes")
                                  .Attr<int64_t>("ndim"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(SdropJaxApplyMask, apply_mask_impl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<double>("p")
                                  .Attr<uint32_t>("mask_axes")
                                  .Attr<uint32_t>("flags")
                                  .Attr<int64_t>("ndim"));

NB_MODULE(_jax_ffi, m) {
  m.doc() = "sdrop's XLA FFI handlers (CPU), as PyCapsules for jax.ffi.register_ffi_target.";
  m.def("registrations", [] {
    nb::dict d;
    d["sdrop_forward"] = nb::capsule(reinterpret_cast<void*>(SdropJaxForward));
    d["sdrop_backward"] = nb::capsule(reinterpret_cast<void*>(SdropJaxBackward));
    d["sdrop_mask"] = nb::capsule(reinterpret_cast<void*>(SdropJaxMask));
    d["sdrop_apply_mask"] = nb::capsule(reinterpret_cast<void*>(SdropJaxApplyMask));
    return d;
  });
}
