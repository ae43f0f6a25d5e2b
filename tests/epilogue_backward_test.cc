// sdrop_epilogue_backward (SPEC section 9; sdrop.h): the gradients of
//   y = post(residual + dropout(act(x + bias)))
// from the forward's x and dy, checked against the UNFUSED autograd sequence computed here one
// rounded step at a time, written from the contract alone:
//   y  = the unfused forward (x + bias, act, the library's own sdrop_forward, + residual, post),
//   g  = post'(y) * dy     (ReLU: dy where the stored y is > 0 or NaN, else +0.0; identity: dy),
//   dresidual = g,
//   h  = sdrop_backward(params, g)       (the library's own dropout backward: the same mask),
//   dx = act'(a) * h       with a = act(x + bias) as stored,
//   dbias[c] = the sum of dx over every non-channel axis, in float32 (double for float64),
//              rounded once: bit for bit in the documented order for contiguous channels-first
//              tensors (8 lanes per (n, c) row, combined pairwise, then rows in n order), within
//              a tolerance of a double-precision sum elsewhere.
// dx and dresidual are compared bit for bit (a NaN only has to stay a NaN), every byte around the
// outputs must be untouched, the inputs must be unchanged, and refusals write nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <functional>
#include <iomanip>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "dropout_tester.h"

namespace sdrop_test {
namespace {

using sdrop_ref::DType;

constexpr int32_t kId = SDROP_ACTIVATION_IDENTITY;
constexpr int32_t kRelu = SDROP_ACTIVATION_RELU;

// ---- Scalar arithmetic of the unfused sequence -----------------------------------------------------

DType TypeOf(DLDataType d) {
  DType t = DType::f32;
  EXPECT_TRUE(sdrop_ref::DTypeFromDL(d, &t)) << DTypeString(d);
  return t;
}

float AsFloat(DType t, uint64_t b) {
  switch (t) {
    case DType::f16: return sdrop_ref::F16ToF32(static_cast<uint16_t>(b));
    case DType::bf16: return sdrop_ref::BF16ToF32(static_cast<uint16_t>(b));
    case DType::f32: return sdrop_ref::BitsToF32(static_cast<uint32_t>(b));
    default: break;
  }
  return static_cast<float>(sdrop_ref::BitsToF64(b));
}

double AsDouble(DType t, uint64_t b) {
  return t == DType::f64 ? sdrop_ref::BitsToF64(b) : static_cast<double>(AsFloat(t, b));
}

// A float32 value stored in a 16/32-bit dtype (round to nearest even).
uint64_t FloatTo(DType t, float f) {
  switch (t) {
    case DType::f16: return sdrop_ref::F32ToF16(f);
    case DType::bf16: return sdrop_ref::F32ToBF16(f);
    case DType::f32: return sdrop_ref::F32ToBits(f);
    default: break;
  }
  return sdrop_ref::F64ToBits(f);
}

uint64_t SignBit(DType t) {
  switch (t) {
    case DType::f16:
    case DType::bf16: return 0x8000u;
    case DType::f32: return 0x80000000u;
    default: break;
  }
  return 0x8000000000000000ull;
}

// a + b as the separate elementwise add stores it.
uint64_t AddRounded(DType t, uint64_t a, uint64_t b) {
  if (t == DType::f64)
    return sdrop_ref::F64ToBits(sdrop_ref::BitsToF64(a) + sdrop_ref::BitsToF64(b));
  return FloatTo(t, AsFloat(t, a) + AsFloat(t, b));
}

bool IsNaN(DType t, uint64_t b) { return sdrop_ref::IsNaN(t, b); }

// relu(v) = v if v > 0, NaN if v is NaN, else +0.0.
uint64_t Act(DType t, int32_t act, uint64_t v) {
  if (act == kId || IsNaN(t, v)) return v;
  return AsDouble(t, v) > 0.0 ? v : 0;
}

// act' on the activation's stored output `out`, times the incoming gradient g: ReLU passes g where
// out > 0 or NaN (threshold_backward on the result), else +0.0; identity passes everything.
uint64_t ActGrad(DType t, int32_t act, uint64_t out, uint64_t g) {
  if (act == kId) return g;
  if (IsNaN(t, out) || AsDouble(t, out) > 0.0) return g;
  return 0;
}

const char* ActName(int32_t a) { return a == kRelu ? "relu" : a == kId ? "identity" : "invalid"; }

bool SameBits(DType t, uint64_t a, uint64_t b) { return a == b || (IsNaN(t, a) && IsNaN(t, b)); }

// Two calls' elements, bit for bit (a NaN only has to stay a NaN).
void ExpectSameElements(DType t, const std::vector<uint64_t>& a, const std::vector<uint64_t>& b,
                        const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (!SameBits(t, a[i], b[i]) && ++bad <= 5)
      ADD_FAILURE() << what << ": element " << i << " " << sdrop_ref::HexBits(t, a[i]) << " vs "
                    << sdrop_ref::HexBits(t, b[i]);
}

// A tensor's elements in row-major order.
std::vector<uint64_t> ElementsOf(const DLTensor& t) {
  std::vector<uint64_t> out;
  const size_t es = ElementSize(t.dtype);
  sdrop_ref::ForEachIndex(sdrop_ref::Shape(t), [&](const int64_t* idx) {
    out.push_back(sdrop_ref::LoadBits(sdrop_ref::ElementAddress(t, idx), es));
  });
  return out;
}

void StoreElements(const DLTensor& t, const std::vector<uint64_t>& v) {
  const size_t es = ElementSize(t.dtype);
  size_t i = 0;
  sdrop_ref::ForEachIndex(sdrop_ref::Shape(t), [&](const int64_t* idx) {
    sdrop_ref::StoreBits(sdrop_ref::ElementAddress(t, idx), es, v[i++]);
  });
}

// ---- Deterministic input values, by logical position (so a shard sees the whole's slice) --------

uint64_t Mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t Hash(uint64_t seed, int which, uint64_t i) {
  return Mix(seed ^ Mix(static_cast<uint64_t>(which) * 0x100000001B3ull + Mix(i)));
}

enum class Kind {
  kX,         // negatives, exact zeros (+0/-0), +-1, +-0.5, a few NaN/Inf/denormals
  kBias,      // half of them in {+-0, +-0.5, +-1} so that x + bias hits 0 exactly
  kResidual,  // like x; a fifth of them -x (so residual + dropout(...) can cancel)
  kDy,        // ordinary values plus NaN (quiet, signaling, negative), +-Inf, -0.0, denormals
  kDyFinite,  // finite only (zeros and denormals included)
  kDyWide,    // finite, a wide dynamic range: the order of a sum shows in its rounding
};

std::vector<uint64_t> SpecialList(DType t) {
  switch (t) {
    case DType::f16:
      return {0x7E00, 0xFE00, 0x7C01, 0x7C00, 0xFC00, 0x0000, 0x8000, 0x0001, 0x8001, 0x03FF};
    case DType::bf16:
      return {0x7FC0, 0xFFC0, 0x7F81, 0x7F80, 0xFF80, 0x0000, 0x8000, 0x0001, 0x8001, 0x007F};
    case DType::f32:
      return {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0x7F800000u, 0xFF800000u,
              0x00000000u, 0x80000000u, 0x00000001u, 0x80000001u, 0x007FFFFFu};
    default:
      return {0x7FF8000000000000ull, 0xFFF8000000000000ull, 0x7FF0000000000001ull,
              0x7FF0000000000000ull, 0xFFF0000000000000ull, 0x0000000000000000ull,
              0x8000000000000000ull, 0x0000000000000001ull, 0x8000000000000001ull,
              0x000FFFFFFFFFFFFFull};
  }
}
// The finite tail of SpecialList: +0, -0, denormals.
std::vector<uint64_t> FiniteSpecialList(DType t) {
  std::vector<uint64_t> s = SpecialList(t);
  return std::vector<uint64_t>(s.begin() + 5, s.end());
}

uint64_t ValueBits(DType t, Kind k, uint64_t h) {
  const double u1 = static_cast<double>(h & 0xFFFF) / 65536.0;
  const double u2 = static_cast<double>((h >> 16) & 0xFFFFF) / 1048576.0;
  const bool neg = (h >> 40) & 1;
  const uint64_t pick = h >> 41;
  static const double kExact[] = {0.0, -0.0, 1.0, -1.0, 0.5, -0.5};
  auto mag = [&](double lo, double hi) {
    const double m = std::exp2(lo + (hi - lo) * u2);
    return sdrop_test::FromDouble(t, neg ? -m : m);
  };
  switch (k) {
    case Kind::kX:
    case Kind::kResidual:
      if (u1 < 0.15) return sdrop_test::FromDouble(t, kExact[pick % 6]);
      if (u1 < 0.20) return SpecialList(t)[pick % 10];
      return mag(-6, 6);
    case Kind::kBias:
      if (u1 < 0.5) return sdrop_test::FromDouble(t, kExact[pick % 6]);
      return mag(-4, 2);
    case Kind::kDy:
      if (u1 < 0.15) return SpecialList(t)[pick % 10];
      return mag(-6, 6);
    case Kind::kDyFinite:
      if (u1 < 0.08) return FiniteSpecialList(t)[pick % 5];
      return mag(-6, 6);
    case Kind::kDyWide:
      if (t == DType::f16) return mag(-8, 8);
      return mag(-20, 20);
  }
  return 0;
}

// ---- The unfused reference ------------------------------------------------------------------------

struct Expected {
  std::vector<uint64_t> a, y, g, dx;    // row-major (a = act(x + bias) as stored)
  std::vector<uint64_t> dbias_ordered;  // the documented order (channels first only)
  std::vector<uint64_t> dbias_sequential;  // a plain row-major float sum (to show order matters)
  std::vector<double> dbias_double, dbias_abs;
};

// A compact scratch tensor.
struct Scratch {
  std::vector<uint8_t> bytes;
  DLTensor t{};
  Scratch(const std::vector<int64_t>& shape, DLDataType dtype) {
    size_t n = 1;
    for (int64_t e : shape) n *= static_cast<size_t>(std::max<int64_t>(e, 0));
    bytes.assign(std::max<size_t>(n, 1) * ElementSize(dtype), 0xA5);
    t.data = bytes.data();
    t.device = DLDevice{kDLCPU, 0};
    t.ndim = static_cast<int32_t>(shape.size());
    t.dtype = dtype;
    t.shape = const_cast<int64_t*>(shape.data());
    t.strides = nullptr;
    t.byte_offset = 0;
  }
};

template <class Acc>
Acc Lane(DType t, uint64_t b);
template <>
float Lane<float>(DType t, uint64_t b) { return AsFloat(t, b); }
template <>
double Lane<double>(DType, uint64_t b) { return sdrop_ref::BitsToF64(b); }

template <class Acc>
uint64_t Store(DType t, Acc v);
template <>
uint64_t Store<float>(DType t, float v) { return FloatTo(t, v); }
template <>
uint64_t Store<double>(DType, double v) { return sdrop_ref::F64ToBits(v); }

// dbias in the documented order for a contiguous channels-first tensor (channel axis 1): per
// (n, c) row of HW elements, lane j sums the row's elements j, j+8, ... in turn from +0.0 (the
// tail of HW mod 8 going to lanes 0..rem-1 after the full groups is the same rule), the lanes
// combined ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)); the rows added in n order from +0.0.
template <class Acc>
std::vector<uint64_t> DbiasOrdered(DType t, const std::vector<int64_t>& shape,
                                   const std::vector<uint64_t>& dx) {
  const int64_t n = shape[0], c = shape[1];
  int64_t hw = 1;
  for (size_t i = 2; i < shape.size(); ++i) hw *= shape[i];
  std::vector<uint64_t> out(static_cast<size_t>(c));
  for (int64_t ci = 0; ci < c; ++ci) {
    Acc total = Acc(0);
    for (int64_t ni = 0; ni < n; ++ni) {
      Acc l[8] = {Acc(0), Acc(0), Acc(0), Acc(0), Acc(0), Acc(0), Acc(0), Acc(0)};
      const size_t base = static_cast<size_t>((ni * c + ci) * hw);
      for (int64_t k = 0; k < hw; ++k) l[k % 8] = l[k % 8] + Lane<Acc>(t, dx[base + k]);
      const Acc row = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
      total = total + row;
    }
    out[static_cast<size_t>(ci)] = Store<Acc>(t, total);
  }
  return out;
}

template <class Acc>
std::vector<uint64_t> DbiasSequential(DType t, const std::vector<int64_t>& shape, int32_t ca,
                                      const std::vector<uint64_t>& dx) {
  std::vector<Acc> acc(static_cast<size_t>(shape[ca]), Acc(0));
  size_t i = 0;
  sdrop_ref::ForEachIndex(shape, [&](const int64_t* idx) {
    Acc& a = acc[static_cast<size_t>(idx[ca])];
    a = a + Lane<Acc>(t, dx[i++]);
  });
  std::vector<uint64_t> out;
  for (Acc a : acc) out.push_back(Store<Acc>(t, a));
  return out;
}

struct RefInputs {
  sdrop_params prm{};
  const sdrop_shard* shard = nullptr;
  DLDataType dtype = kF32;
  std::vector<int64_t> shape;
  int32_t channel_axis = 1, act = kRelu, post = kRelu;
  bool has_bias = false, has_residual = false;
  std::vector<uint64_t> x, bias, r, dy;  // row-major; bias: per channel
};

Expected Reference(const RefInputs& in) {
  sdrop_ref::ScopedDefaultFpEnv env;
  const DType t = TypeOf(in.dtype);
  const size_t es = sdrop_ref::DTypeSize(t);
  const size_t n = in.x.size();
  Expected e;
  // a = act(x + bias), the tensor the separate dropout is given.
  Scratch a(in.shape, in.dtype), d(in.shape, in.dtype), g(in.shape, in.dtype),
      h(in.shape, in.dtype);
  std::vector<uint64_t> av(n);
  size_t i = 0;
  sdrop_ref::ForEachIndex(in.shape, [&](const int64_t* idx) {
    uint64_t v = in.x[i];
    if (in.has_bias) v = AddRounded(t, v, in.bias[static_cast<size_t>(idx[in.channel_axis])]);
    av[i] = Act(t, in.act, v);
    ++i;
  });
  if (n) StoreElements(a.t, av);
  sdrop_status st = in.shard ? sdrop_forward_sharded(&in.prm, in.shard, &a.t, &d.t)
                             : sdrop_forward(&in.prm, &a.t, &d.t);
  EXPECT_EQ(st, SDROP_OK) << "the unfused dropout forward: " << sdrop_last_error();
  const std::vector<uint64_t> dv = n ? ElementsOf(d.t) : std::vector<uint64_t>();
  e.y.resize(n);
  e.g.resize(n);
  for (size_t k = 0; k < n; ++k) {
    const uint64_t z = in.has_residual ? AddRounded(t, in.r[k], dv[k]) : dv[k];
    e.y[k] = Act(t, in.post, z);
    e.g[k] = ActGrad(t, in.post, e.y[k], in.dy[k]);
  }
  if (n) StoreElements(g.t, e.g);
  st = in.shard ? sdrop_backward_sharded(&in.prm, in.shard, &g.t, &h.t)
                : sdrop_backward(&in.prm, &g.t, &h.t);
  EXPECT_EQ(st, SDROP_OK) << "the unfused dropout backward: " << sdrop_last_error();
  const std::vector<uint64_t> hv = n ? ElementsOf(h.t) : std::vector<uint64_t>();
  e.dx.resize(n);
  for (size_t k = 0; k < n; ++k) e.dx[k] = ActGrad(t, in.act, av[k], hv[k]);
  e.a = av;
  (void)es;

  if (in.has_bias) {
    const size_t c = static_cast<size_t>(in.shape[in.channel_axis]);
    e.dbias_double.assign(c, 0.0);
    e.dbias_abs.assign(c, 0.0);
    i = 0;
    sdrop_ref::ForEachIndex(in.shape, [&](const int64_t* idx) {
      const double v = AsDouble(t, e.dx[i++]);
      e.dbias_double[static_cast<size_t>(idx[in.channel_axis])] += v;
      e.dbias_abs[static_cast<size_t>(idx[in.channel_axis])] += std::fabs(v);
    });
    if (in.channel_axis == 1 && in.shape.size() >= 2)
      e.dbias_ordered = t == DType::f64 ? DbiasOrdered<double>(t, in.shape, e.dx)
                                        : DbiasOrdered<float>(t, in.shape, e.dx);
    e.dbias_sequential = t == DType::f64
                             ? DbiasSequential<double>(t, in.shape, in.channel_axis, e.dx)
                             : DbiasSequential<float>(t, in.shape, in.channel_axis, e.dx);
  }
  return e;
}

// ---- One backward call, described ------------------------------------------------------------------

enum class DbiasCheck { kAuto, kOrdered, kTolerance };

struct BwdCase {
  std::vector<int64_t> shape{3, 5, 4, 6};
  DLDataType dtype = kF32;
  double p = 0.4;
  uint64_t seed = 0x243F6A8885A308D3ull;
  uint64_t offset = 0x13198A2E03707344ull;
  uint32_t mask_axes = 0x3u;
  uint32_t flags = 0;
  bool bias = true;
  int32_t channel_axis = 1;
  int64_t bias_stride = 1;
  bool residual = true;
  int32_t act = kRelu, post = kRelu;
  bool want_dbias = true, want_dresidual = true;  // pass dbias / dresidual (when bias / residual)
  int64_t dbias_stride = 1;
  std::vector<int64_t> xs, dys, dxs, rs, drs;  // strides in elements; empty: compact
  size_t misalign = 0;  // the data pointers are moved by misalign, 2*misalign, ... bytes
  uint64_t byte_offset = 0;  // extra byte_offset of every tensor
  bool dx_is_dy = false, dx_is_x = false, dr_is_dy = false;
  bool null_data_if_empty = false;
  Kind dy_kind = Kind::kDy;
  std::vector<uint64_t> x_values, dy_values;  // row-major bits, overriding the generated ones
  bool shard = false;
  std::vector<int64_t> origin, logical;  // with shard; empty: NULL
  DbiasCheck dbias_check = DbiasCheck::kAuto;
  uint64_t rng_seed = 1;

  // Combination k of 16: bias, residual, act, post.
  BwdCase& combo(int k) {
    bias = k & 1;
    residual = (k >> 1) & 1;
    act = (k >> 2) & 1 ? kRelu : kId;
    post = (k >> 3) & 1 ? kRelu : kId;
    return *this;
  }

  bool Compact() const {
    return xs.empty() && dys.empty() && dxs.empty() && rs.empty() && drs.empty();
  }
  bool Ordered() const {
    if (dbias_check == DbiasCheck::kOrdered) return true;
    if (dbias_check == DbiasCheck::kTolerance) return false;
    // The documented order sums rows of H*W: the mask must not vary along the spatial axes.
    return Compact() && channel_axis == 1 && shape.size() >= 2 && (mask_axes >> 2) == 0;
  }

  std::string Describe() const {
    std::ostringstream s;
    s << "epilogue_backward shape=" << VecString(shape) << " dtype=" << DTypeString(dtype)
      << " p=" << std::setprecision(17) << p << std::setprecision(6) << " seed=" << seed
      << " offset=" << offset << " mask_axes=0x" << std::hex << mask_axes << std::dec
      << " flags=" << flags << " bias=" << (bias ? "yes" : "no") << " channel_axis="
      << channel_axis << " bias_stride=" << bias_stride << " residual=" << (residual ? "yes" : "no")
      << " act=" << ActName(act) << " post=" << ActName(post)
      << " dbias=" << (bias && want_dbias ? "yes" : "NULL") << " dbias_stride=" << dbias_stride
      << " dresidual=" << (residual && want_dresidual ? "yes" : "NULL")
      << " x_strides=" << VecString(xs) << " dy_strides=" << VecString(dys)
      << " dx_strides=" << VecString(dxs) << " r_strides=" << VecString(rs)
      << " dr_strides=" << VecString(drs) << " misalign=" << misalign
      << " byte_offset+=" << byte_offset << (dx_is_dy ? " dx=dy" : "") << (dx_is_x ? " dx=x" : "")
      << (dr_is_dy ? " dresidual=dy" : "") << " dy_kind=" << int(dy_kind)
      << (dy_values.empty() ? "" : " dy=given") << (x_values.empty() ? "" : " x=given")
      << " dbias_check=" << (Ordered() ? "documented order" : "tolerance")
      << " rng_seed=" << rng_seed;
    if (shard) s << " shard origin=" << VecString(origin) << " logical=" << VecString(logical);
    return s.str();
  }
};

struct Outcome {
  sdrop_status status = SDROP_ERROR_INTERNAL;
  std::vector<uint64_t> dx, dbias, dr;  // row-major, as the library wrote them
  Expected expected;
};

// dbias against the reference: bit for bit in the documented order, else within a tolerance of
// the double-precision sum (NaN where it is NaN, the same infinity where it is infinite).
void CheckDbias(DType t, const std::vector<uint64_t>& got, const Expected& e, bool ordered) {
  ASSERT_EQ(got.size(), e.dbias_double.size());
  if (ordered && e.dbias_ordered.size() != got.size()) {
    ADD_FAILURE() << "the documented order needs channel axis 1 (the test's own error)";
    return;
  }
  for (size_t c = 0; c < got.size(); ++c) {
    if (ordered) {
      EXPECT_TRUE(SameBits(t, got[c], e.dbias_ordered[c]))
          << "dbias[" << c << "] expected " << sdrop_ref::HexBits(t, e.dbias_ordered[c]) << " ("
          << AsDouble(t, e.dbias_ordered[c]) << ") got " << sdrop_ref::HexBits(t, got[c]) << " ("
          << AsDouble(t, got[c]) << "); a row-major float sum would give "
          << sdrop_ref::HexBits(t, e.dbias_sequential[c]);
      continue;
    }
    const double ref = e.dbias_double[c];
    const double g = AsDouble(t, got[c]);
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(g)) << "dbias[" << c << "] expected NaN, got "
                                 << sdrop_ref::HexBits(t, got[c]);
      continue;
    }
    if (std::isinf(ref)) {
      EXPECT_EQ(g, ref) << "dbias[" << c << "] got " << sdrop_ref::HexBits(t, got[c]);
      continue;
    }
    double rel = 1e-5, eps = 0, tiny = 0, max_finite = 0;
    switch (t) {
      case DType::f16: eps = std::exp2(-10); tiny = std::exp2(-24); max_finite = 65504; break;
      case DType::bf16: eps = std::exp2(-7); tiny = std::exp2(-133); max_finite = 3.39e38; break;
      case DType::f32: eps = 0; tiny = std::exp2(-149); max_finite = 3.40e38; break;
      default: rel = 1e-12; tiny = 5e-324; max_finite = 1.79e308; break;
    }
    const double tol = rel * e.dbias_abs[c] + eps * std::fabs(ref) + tiny;
    if (std::isinf(g) && std::fabs(ref) + tol >= max_finite && std::signbit(g) == std::signbit(ref))
      continue;  // the dtype overflows
    EXPECT_LE(std::fabs(g - ref), tol)
        << "dbias[" << c << "] got " << sdrop_ref::HexBits(t, got[c]) << " = " << std::setprecision(17)
        << g << ", the double sum is " << ref << " (sum |dx| " << e.dbias_abs[c] << ")";
  }
}

// Runs the case: guarded buffers, the reference on the inputs as they are before the call, the
// call, then every byte of every output buffer (elements by value, the rest exactly) and every
// input buffer that is not an output (exactly).
Outcome RunBackward(const BwdCase& c) {
  SCOPED_TRACE(c.Describe());
  Outcome out;
  const DType t = TypeOf(c.dtype);
  const size_t es = sdrop_ref::DTypeSize(t);
  const size_t nd = c.shape.size();
  std::mt19937_64 rng(c.rng_seed);
  std::vector<int64_t> origin = c.origin, logical = c.logical;
  if (origin.empty()) origin.assign(nd, 0);
  if (logical.empty()) logical = c.shape;
  const std::vector<int64_t> lstrides = sdrop_ref::CompactStrides(logical);
  const bool has_ca = c.channel_axis >= 0 && c.channel_axis < static_cast<int32_t>(nd);
  const int64_t channels = has_ca ? c.shape[c.channel_axis] : 1;
  const bool want_db = c.bias && c.want_dbias;
  const bool want_dr = c.residual && c.want_dresidual;

  size_t mis = 0;
  auto layout = [&](const std::vector<int64_t>& s) {
    Layout l;
    l.strides = s;
    l.extra_byte_offset = c.byte_offset;
    l.misalign = (mis += c.misalign) % 8;
    l.null_data_if_empty = c.null_data_if_empty;
    return l;
  };
  auto logical_index = [&](const int64_t* idx) {
    uint64_t li = 0;
    for (size_t i = 0; i < nd; ++i) li += static_cast<uint64_t>((origin[i] + idx[i]) * lstrides[i]);
    return li;
  };
  // Fills a buffer's elements: given row-major bits, or generated by logical position.
  auto fill = [&](TensorBuffer& b, int which, Kind k, const std::vector<uint64_t>& given,
                  const std::vector<uint64_t>* negate_of) {
    b.FillRandomBytes(rng);
    size_t i = 0;
    sdrop_ref::ForEachIndex(b.shape(), [&](const int64_t* idx) {
      uint64_t v;
      if (!given.empty()) {
        v = given[i];
      } else {
        const uint64_t h = Hash(c.rng_seed, which, logical_index(idx));
        v = negate_of && (h >> 56) < 51 ? (*negate_of)[i] ^ SignBit(t) : ValueBits(t, k, h);
      }
      sdrop_ref::StoreBits(sdrop_ref::ElementAddress(b.t(), idx), es, v);
      ++i;
    });
  };

  TensorBuffer xb(c.shape, c.dtype, layout(c.xs));
  fill(xb, 1, Kind::kX, c.x_values, nullptr);
  const std::vector<uint64_t> xv = ElementsOf(xb.t());
  TensorBuffer dyb(c.shape, c.dtype, layout(c.dys));
  fill(dyb, 2, c.dy_kind, c.dy_values, nullptr);
  std::unique_ptr<TensorBuffer> rb, bb, dxb, dbb, drb;
  if (c.residual) {
    rb.reset(new TensorBuffer(c.shape, c.dtype, layout(c.rs)));
    fill(*rb, 3, Kind::kResidual, {}, &xv);
  }
  if (c.bias) {
    Layout lb = layout({c.bias_stride});
    lb.null_data_if_empty = false;
    bb.reset(new TensorBuffer({channels}, c.dtype, lb));
    bb->FillRandomBytes(rng);
    const int64_t c0 = has_ca ? origin[c.channel_axis] : 0;
    for (int64_t ci = 0; ci < channels; ++ci) {
      const int64_t idx[1] = {ci};
      sdrop_ref::StoreBits(sdrop_ref::ElementAddress(bb->t(), idx), es,
                           ValueBits(t, Kind::kBias, Hash(c.rng_seed, 4, c0 + ci)));
    }
  }
  if (!c.dx_is_dy && !c.dx_is_x) dxb.reset(new TensorBuffer(c.shape, c.dtype, layout(c.dxs), 0xA5));
  if (want_dr && !c.dr_is_dy) drb.reset(new TensorBuffer(c.shape, c.dtype, layout(c.drs), 0xA5));
  if (want_db) {
    Layout lb = layout({c.dbias_stride});
    lb.null_data_if_empty = false;
    dbb.reset(new TensorBuffer({channels}, c.dtype, lb, 0xA5));
  }

  DLTensor x = xb.t(), dy = dyb.t(), r{}, b{}, dbias{}, dr{};
  DLTensor dx = c.dx_is_dy ? dy : c.dx_is_x ? x : dxb->t();
  if (c.residual) r = rb->t();
  if (c.bias) b = bb->t();
  if (want_db) dbias = dbb->t();
  if (want_dr) dr = c.dr_is_dy ? dy : drb->t();
  const sdrop_epilogue e{c.bias ? &b : nullptr, c.residual ? &r : nullptr, c.channel_axis, c.act,
                         c.post};
  const sdrop_params prm{c.p, c.seed, c.offset, c.mask_axes, c.flags};
  const sdrop_shard sh{c.origin.empty() ? nullptr : c.origin.data(),
                       c.logical.empty() ? nullptr : c.logical.data()};
  const sdrop_shard* shard = c.shard ? &sh : nullptr;

  RefInputs in;
  in.prm = prm;
  in.shard = shard;
  in.dtype = c.dtype;
  in.shape = c.shape;
  in.channel_axis = c.channel_axis;
  in.act = c.act;
  in.post = c.post;
  in.has_bias = c.bias;
  in.has_residual = c.residual;
  in.x = xv;
  in.dy = ElementsOf(dy);
  if (c.residual) in.r = ElementsOf(r);
  if (c.bias) in.bias = ElementsOf(b);
  out.expected = Reference(in);
  const Expected& want = out.expected;

  // The expected bytes of every buffer: as they are now, with the outputs' elements replaced.
  TensorBuffer& dx_owner = c.dx_is_dy ? dyb : c.dx_is_x ? xb : *dxb;
  std::vector<uint8_t> x_exp = xb.bytes(), dy_exp = dyb.bytes();
  std::vector<uint8_t> dx_exp = dx_owner.bytes();
  std::vector<uint8_t> dr_exp = drb ? drb->bytes() : std::vector<uint8_t>();
  const std::vector<uint8_t> r_before = rb ? rb->bytes() : std::vector<uint8_t>();
  const std::vector<uint8_t> b_before = bb ? bb->bytes() : std::vector<uint8_t>();
  const std::vector<uint8_t> db_before = dbb ? dbb->bytes() : std::vector<uint8_t>();
  auto rebased = [](const DLTensor& view, const TensorBuffer& owner, std::vector<uint8_t>& bytes) {
    DLTensor moved = view;
    if (view.data)
      moved.data = bytes.data() + (static_cast<const uint8_t*>(view.data) - owner.bytes().data());
    return moved;
  };
  std::vector<uint8_t>& dx_target = c.dx_is_dy ? dy_exp : c.dx_is_x ? x_exp : dx_exp;
  const DLTensor dx_expected = rebased(dx, dx_owner, dx_target);
  if (!want.dx.empty()) StoreElements(dx_expected, want.dx);
  DLTensor dr_expected{};
  if (want_dr) {
    dr_expected = c.dr_is_dy ? rebased(dr, dyb, dy_exp) : rebased(dr, *drb, dr_exp);
    if (!want.g.empty()) StoreElements(dr_expected, want.g);
  }

  out.status = sdrop_epilogue_backward(&prm, shard, &e, &x, &dy, &dx, want_db ? &dbias : nullptr,
                                       want_dr ? &dr : nullptr);
  EXPECT_EQ(out.status, SDROP_OK) << sdrop_status_name(out.status) << ": " << sdrop_last_error();
  if (out.status != SDROP_OK) return out;

  if (c.dx_is_dy) {
    CompareOutput(dyb.bytes(), dy_exp, dx, dx_expected, "dx (in dy)");
  } else if (c.dx_is_x) {
    CompareOutput(xb.bytes(), x_exp, dx, dx_expected, "dx (in x)");
  } else {
    CompareOutput(dxb->bytes(), dx_exp, dx, dx_expected, "dx");
  }
  // The inputs of the first few wrong elements, for the report.
  {
    const std::vector<uint64_t> got_dx = ElementsOf(dx);
    const std::vector<uint64_t> got_dr = want_dr ? ElementsOf(dr) : std::vector<uint64_t>();
    int shown = 0;
    for (size_t k = 0; k < got_dx.size() && shown < 3; ++k) {
      const bool bad_dx = !SameBits(t, got_dx[k], want.dx[k]);
      const bool bad_dr = want_dr && !SameBits(t, got_dr[k], want.g[k]);
      if (!bad_dx && !bad_dr) continue;
      ++shown;
      ADD_FAILURE() << "row-major element " << k << ": x " << sdrop_ref::HexBits(t, in.x[k])
                    << " a=act(x+b) " << sdrop_ref::HexBits(t, want.a[k])
                    << (c.residual ? " residual " + sdrop_ref::HexBits(t, in.r[k]) : std::string())
                    << " y " << sdrop_ref::HexBits(t, want.y[k]) << " dy "
                    << sdrop_ref::HexBits(t, in.dy[k]) << " g=post'(y)dy "
                    << sdrop_ref::HexBits(t, want.g[k]) << " | expected dx "
                    << sdrop_ref::HexBits(t, want.dx[k]) << " got " << sdrop_ref::HexBits(t, got_dx[k])
                    << (want_dr ? " | dresidual got " + sdrop_ref::HexBits(t, got_dr[k]) : std::string());
    }
  }
  if (want_dr) {
    if (c.dr_is_dy)
      CompareOutput(dyb.bytes(), dy_exp, dr, dr_expected, "dresidual (in dy)");
    else
      CompareOutput(drb->bytes(), dr_exp, dr, dr_expected, "dresidual");
  }
  if (!c.dx_is_dy && !c.dr_is_dy) { EXPECT_TRUE(dyb.bytes() == dy_exp) << "the input dy was modified"; }
  if (!c.dx_is_x) { EXPECT_TRUE(xb.bytes() == x_exp) << "the input x was modified"; }
  if (rb) { EXPECT_TRUE(rb->bytes() == r_before) << "the input residual was modified"; }
  if (bb) { EXPECT_TRUE(bb->bytes() == b_before) << "the input bias was modified"; }

  out.dx = ElementsOf(dx);
  if (want_dr) out.dr = ElementsOf(dr);
  if (want_db) {
    out.dbias = ElementsOf(dbias);
    CheckDbias(t, out.dbias, want, c.Ordered());
    // Nothing but dbias's elements written in its buffer.
    std::vector<uint8_t> db_exp = db_before;
    StoreElements(rebased(dbias, *dbb, db_exp), out.dbias);
    EXPECT_TRUE(dbb->bytes() == db_exp) << "bytes around dbias were written";
  }
  return out;
}

// ---- Layouts -----------------------------------------------------------------------------------------

struct LayoutCase {
  const char* name;
  std::vector<int64_t> shape;
  uint32_t mask_axes;
  int32_t channel_axis;
};

const LayoutCase kNCHW{"NCHW", {3, 5, 4, 6}, 0x3u, 1};
const LayoutCase kNHWC{"NHWC", {3, 4, 6, 5}, 0x9u, 3};

const std::vector<LayoutCase>& SpatialRanks() {
  static const std::vector<LayoutCase> all = {
      {"NCL (1-D, L=13)", {3, 5, 13}, 0x3u, 1},
      {"NLC (1-D)", {3, 13, 5}, 0x5u, 2},
      {"NCDHW (3-D, DHW=30)", {2, 3, 2, 3, 5}, 0x3u, 1},
      {"NDHWC (3-D)", {2, 2, 3, 5, 3}, 0x11u, 4},
      {"NCHW, HW=3", {3, 4, 1, 3}, 0x3u, 1},
      {"NCHW, HW=1", {4, 6, 1, 1}, 0x3u, 1},
      {"NC (no spatial axis)", {5, 7}, 0x3u, 1},
      {"NCHW, HW=37", {2, 3, 1, 37}, 0x3u, 1},
      {"CHW unbatched", {5, 3, 7}, 0x1u, 0},
  };
  return all;
}

const uint32_t kFlagSets[] = {0u, SDROP_FLAG_MULTIPLY, SDROP_FLAG_SCALE_IN_DTYPE,
                              SDROP_FLAG_MULTIPLY | SDROP_FLAG_SCALE_IN_DTYPE};

std::string ParamName(const testing::TestParamInfo<DLDataType>& info) {
  return DTypeString(info.param);
}

uint64_t DTypeSeed(DLDataType d) { return d.code * 1000u + d.bits; }

class EpilogueBackwardValues : public testing::TestWithParam<DLDataType> {};
INSTANTIATE_TEST_SUITE_P(EpilogueBackward, EpilogueBackwardValues, testing::ValuesIn(AllDTypes()),
                         ParamName);

// ---- 1. dx and dresidual bit for bit ---------------------------------------------------------------

// Every combination of bias x residual x act x post, every flag set, p in {0, 0.4, 1}, NCHW and
// NHWC, with NaN/Inf/-0.0/denormals in dy and negatives and exact zeros in x.
TEST_P(EpilogueBackwardValues, EveryCombinationFlagsAndPBothLayouts) {
  std::mt19937_64 rng(0xB01 + DTypeSeed(GetParam()));
  for (const LayoutCase* l : {&kNCHW, &kNHWC}) {
    SCOPED_TRACE(l->name);
    for (int k = 0; k < 16; ++k)
      for (uint32_t flags : kFlagSets)
        for (double p : {0.0, 0.4, 1.0}) {
          BwdCase c;
          c.combo(k);
          c.shape = l->shape;
          c.mask_axes = l->mask_axes;
          c.channel_axis = l->channel_axis;
          c.dtype = GetParam();
          c.flags = flags;
          c.p = p;
          c.seed = rng();
          c.offset = rng();
          c.rng_seed = rng();
          RunBackward(c);
          if (FailedParts() > kEnoughFailures) return;
        }
  }
}

// 1-D and 3-D spatial ranks (and rows of HW = 1, 3, 13, 30, 37 elements), every combination.
TEST_P(EpilogueBackwardValues, SpatialRanks) {
  std::mt19937_64 rng(0xB02 + DTypeSeed(GetParam()));
  for (const LayoutCase& l : SpatialRanks()) {
    SCOPED_TRACE(l.name);
    for (int k = 0; k < 16; ++k) {
      BwdCase c;
      c.combo(k);
      c.shape = l.shape;
      c.mask_axes = l.mask_axes;
      c.channel_axis = l.channel_axis;
      c.dtype = GetParam();
      c.flags = kFlagSets[rng() % 4];
      c.p = k % 3 == 0 ? 0.0 : 0.4;
      c.seed = rng();
      c.offset = rng();
      c.rng_seed = rng();
      RunBackward(c);
      if (FailedParts() > kEnoughFailures) return;
    }
  }
}

// Mask axes that are not spatial: every axis (element-wise dropout) and only axis 0 (per sample),
// and no axis at all (one draw for the whole tensor).
TEST_P(EpilogueBackwardValues, NonSpatialMaskAxes) {
  std::mt19937_64 rng(0xB03 + DTypeSeed(GetParam()));
  int parity = 0;
  for (uint32_t axes : {0xFu, 0x1u, 0x0u, 0x6u})
    for (const LayoutCase* l : {&kNCHW, &kNHWC})
      for (int k = 0; k < 16; ++k) {
        SCOPED_TRACE(l->name);
        BwdCase c;
        c.combo(k);
        c.shape = l->shape;
        c.channel_axis = l->channel_axis;
        c.mask_axes = axes;
        c.dtype = GetParam();
        // Both modes for every combination, split between the two layouts.
        c.flags = (k + parity++ / 16) % 2 ? SDROP_FLAG_MULTIPLY : 0u;
        c.p = 0.4;
        c.seed = rng();
        c.offset = rng();
        c.rng_seed = rng();
        RunBackward(c);
        if (FailedParts() > kEnoughFailures) return;
      }
}

// Non-contiguous tensors: transposed, reversed, padded, random, each tensor on its own and all at
// once; the bias with stride 2 and 0; dbias with stride 3 and -1; odd addresses.
TEST_P(EpilogueBackwardValues, NonContiguousStrides) {
  std::mt19937_64 rng(0xB04 + DTypeSeed(GetParam()));
  const std::vector<int64_t> shape{3, 5, 4, 6};
  const std::vector<std::vector<int64_t>> layouts = {
      Strides(shape, {3, 2, 1, 0}),                  // transposed
      Strides(shape, {0, 2, 3, 1}),                  // NCHW data as NHWC memory
      Strides(shape, Identity(4), {}, 0xFu),         // every axis reversed
      Strides(shape, Identity(4), {}, 0x6u),         // C and H reversed
      Strides(shape, Identity(4), {1, 2, 1, 3}),     // padded
      Strides(shape, {1, 0, 3, 2}, {2, 1, 2, 1}, 0x9u),
  };
  for (size_t li = 0; li < layouts.size(); ++li)
    for (int which = 0; which < 6; ++which) {
      BwdCase c;
      c.combo(static_cast<int>(rng() % 16) | 3);  // bias and residual: every tensor is there
      c.dtype = GetParam();
      c.flags = kFlagSets[rng() % 4];
      c.seed = rng();
      c.rng_seed = rng();
      const std::vector<int64_t>& s = layouts[li];
      switch (which) {
        case 0: c.xs = s; break;
        case 1: c.dys = s; break;
        case 2: c.dxs = s; break;
        case 3: c.rs = s; break;
        case 4: c.drs = s; break;
        case 5: c.xs = c.dys = c.dxs = c.rs = c.drs = s; break;
      }
      c.bias_stride = std::vector<int64_t>{1, 2, 0, -1}[rng() % 4];
      c.dbias_stride = std::vector<int64_t>{1, 3, -1}[rng() % 3];
      c.misalign = rng() % 3;
      RunBackward(c);
      if (FailedParts() > kEnoughFailures) return;
    }
  // Random layouts for every tensor, both spatial layouts, every combination.
  for (int k = 0; k < 32; ++k) {
    BwdCase c;
    c.combo(k % 16);
    const LayoutCase& l = k < 16 ? kNCHW : kNHWC;
    c.shape = l.shape;
    c.mask_axes = l.mask_axes;
    c.channel_axis = l.channel_axis;
    c.dtype = GetParam();
    c.flags = kFlagSets[rng() % 4];
    c.p = k % 5 == 0 ? 1.0 : 0.4;
    c.seed = rng();
    c.rng_seed = rng();
    c.xs = RandomStrides(c.shape, rng);
    c.dys = RandomStrides(c.shape, rng);
    c.dxs = RandomStrides(c.shape, rng);
    c.rs = RandomStrides(c.shape, rng);
    c.drs = RandomStrides(c.shape, rng);
    c.bias_stride = k % 2 ? 2 : 0;
    c.byte_offset = 8 * (rng() % 3);
    RunBackward(c);
    if (FailedParts() > kEnoughFailures) return;
  }
  // The bias broadcast with stride 0 and with stride 2, contiguous otherwise (dbias exact).
  for (int64_t bs : {0, 2})
    for (int k = 1; k < 16; k += 2) {
      BwdCase c;
      c.combo(k);
      c.dtype = GetParam();
      c.bias_stride = bs;
      c.seed = rng();
      c.rng_seed = rng();
      RunBackward(c);
    }
}

// Mostly special values in dy (NaN of every kind, +-Inf, -0.0, denormals) with mostly exact zeros
// and negatives in x, in kept and dropped channels, both modes.
TEST_P(EpilogueBackwardValues, SpecialValuesAndReluBoundaries) {
  std::mt19937_64 rng(0xB05 + DTypeSeed(GetParam()));
  const DType t = TypeOf(GetParam());
  const std::vector<uint64_t> specials = SpecialList(t);
  const std::vector<uint64_t> xs = {FromDouble(t, 0.0), FromDouble(t, -0.0), FromDouble(t, 1.0),
                                    FromDouble(t, -1.0), FromDouble(t, -0.5), FromDouble(t, 0.5),
                                    specials[0], specials[3], specials[4], specials[7]};
  const int64_t n = 3 * 5 * 4 * 6;
  for (int k = 0; k < 16; ++k)
    for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
      BwdCase c;
      c.combo(k);
      c.dtype = GetParam();
      c.flags = flags;
      c.p = 0.4;
      c.seed = rng();
      c.rng_seed = rng();
      for (int64_t i = 0; i < n; ++i) {
        c.x_values.push_back(xs[rng() % xs.size()]);
        c.dy_values.push_back(rng() % 2 ? specials[rng() % specials.size()]
                                        : FromDouble(t, (rng() % 2 ? -1.0 : 1.0) * 1.5));
      }
      RunBackward(c);
      if (FailedParts() > kEnoughFailures) return;
    }
}

// The rules by hand, independently of the reference's composition (p = 0: dropout is the
// identity; p = 1 drops everything).
TEST_P(EpilogueBackwardValues, HandComputedGradients) {
  const DType t = TypeOf(GetParam());
  const size_t es = sdrop_ref::DTypeSize(t);
  const uint64_t pz = 0, nz = SignBit(t), one = FromDouble(t, 1.0), m1 = FromDouble(t, -1.0);
  const uint64_t two = FromDouble(t, 2.0), three = FromDouble(t, 3.0), nan = SpecialList(t)[0];
  const uint64_t inf = SpecialList(t)[3], ninf = SpecialList(t)[4], den = SpecialList(t)[7];
  const uint64_t half = FromDouble(t, 0.5);
  // shape (1, 2, 4): channel 0 and 1; bias (-1, 0.5).
  std::vector<int64_t> shape{1, 2, 4};
  auto call = [&](double p, uint32_t flags, int32_t act, int32_t post, bool with_bias,
                  bool with_res, const std::vector<uint64_t>& xv, const std::vector<uint64_t>& rv,
                  const std::vector<uint64_t>& dyv, std::vector<uint64_t>* dx_out,
                  std::vector<uint64_t>* dr_out, std::vector<uint64_t>* db_out) {
    std::vector<uint8_t> xm(8 * es), dym(8 * es), rm(8 * es), dxm(8 * es, 0xA5), drm(8 * es, 0xA5),
        bm(2 * es), dbm(2 * es, 0xA5);
    HostTensor x(xm.data(), shape, GetParam()), dy(dym.data(), shape, GetParam()),
        r(rm.data(), shape, GetParam()), dx(dxm.data(), shape, GetParam()),
        dr(drm.data(), shape, GetParam()), b(bm.data(), {2}, GetParam()),
        db(dbm.data(), {2}, GetParam());
    StoreElements(x.t, xv);
    StoreElements(dy.t, dyv);
    if (!rv.empty()) StoreElements(r.t, rv);
    StoreElements(b.t, {m1, half});
    const sdrop_epilogue e{with_bias ? &b.t : nullptr, with_res ? &r.t : nullptr, 1, act, post};
    const sdrop_params prm{p, 5, 6, 0x3u, flags};
    const sdrop_status st = sdrop_epilogue_backward(&prm, nullptr, &e, &x.t, &dy.t, &dx.t,
                                                    with_bias ? &db.t : nullptr,
                                                    with_res ? &dr.t : nullptr);
    ASSERT_EQ(st, SDROP_OK) << sdrop_last_error();
    *dx_out = ElementsOf(dx.t);
    if (dr_out) *dr_out = ElementsOf(dr.t);
    if (db_out) *db_out = ElementsOf(db.t);
  };
  auto expect_bits = [&](const std::vector<uint64_t>& got, const std::vector<uint64_t>& want,
                         const char* what) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_TRUE(SameBits(t, got[i], want[i]))
          << what << "[" << i << "] expected " << sdrop_ref::HexBits(t, want[i]) << " got "
          << sdrop_ref::HexBits(t, got[i]);
  };
  std::vector<uint64_t> dx, dr, db;
  const std::vector<uint64_t> dyv{three, m1, two, nz, den, nan, three, m1};
  {  // act = relu with bias (-1, 0.5): x + b = 0, -0.5(+0 out), 1, NaN | -0.5+0.5=0, 0.5+0.5, -1+0.5, 0
    SCOPED_TRACE("act relu boundary");
    const std::vector<uint64_t> xv{one, half, two, nan, FromDouble(t, -0.5), half, m1, FromDouble(t, -0.5)};
    call(0.0, 0, kRelu, kId, true, false, xv, {}, dyv, &dx, nullptr, &db);
    expect_bits(dx, {pz, pz, two, nz, pz, nan, pz, pz}, "dx");
    // dbias[0] = 0 + 0 + 2 + -0 = 2; dbias[1] = NaN.
    expect_bits(db, {two, nan}, "dbias");
  }
  {  // post = relu on y = x + r: y = 0 (x + -x), negative, positive, NaN, -0 -> +0 ...
    SCOPED_TRACE("post relu boundary");
    const std::vector<uint64_t> xv{one, m1, two, nan, nz, den, inf, one};
    const std::vector<uint64_t> rv{m1, half, pz, one, nz, pz, ninf, pz};
    // z = 0, -0.5, 2, NaN, -0 (relu +0), den, NaN, 1
    call(0.0, 0, kId, kRelu, false, true, xv, rv, dyv, &dx, &dr, nullptr);
    // y = +0, +0, 2, NaN, +0, den, NaN, 1: dy passes at 2, 3, 5, 6, 7.
    expect_bits(dx, {pz, pz, two, nz, pz, nan, three, m1}, "dx");
    expect_bits(dr, {pz, pz, two, nz, pz, nan, three, m1}, "dresidual");
  }
  {  // p = 1: default mode, every dropped gradient +0.0 whatever dy (NaN, Inf too) ...
    SCOPED_TRACE("p = 1, default mode");
    const std::vector<uint64_t> xv{one, m1, two, nan, nz, den, inf, one};
    const std::vector<uint64_t> dyp{nan, m1, inf, nz, ninf, one, pz, m1};
    call(1.0, 0, kId, kId, true, true, xv, xv, dyp, &dx, &dr, &db);
    expect_bits(dx, std::vector<uint64_t>(8, pz), "dx");
    expect_bits(dr, dyp, "dresidual");  // identity post: dresidual = dy exactly
    expect_bits(db, {pz, pz}, "dbias");
    // ... and with SDROP_FLAG_MULTIPLY dy * 0: NaN, -0.0, NaN, -0.0 | NaN, +0.0, +0.0, -0.0.
    SCOPED_TRACE("p = 1, SDROP_FLAG_MULTIPLY");
    call(1.0, SDROP_FLAG_MULTIPLY, kId, kId, true, true, xv, xv, dyp, &dx, &dr, &db);
    expect_bits(dx, {nan, nz, nan, nz, nan, pz, pz, nz}, "dx");
    expect_bits(db, {nan, nan}, "dbias");
  }
}

// channel_axis is ignored without a bias: any value gives what channel_axis 1 gives.
TEST_P(EpilogueBackwardValues, ChannelAxisIgnoredWithoutBias) {
  for (int k = 0; k < 16; k += 2) {  // no bias
    BwdCase c;
    c.combo(k);
    c.dtype = GetParam();
    c.rng_seed = 30 + k;
    const Outcome a = RunBackward(c);
    for (int32_t ca : {57, -3, 4}) {
      c.channel_axis = ca;
      const Outcome b = RunBackward(c);
      ExpectSameElements(TypeOf(c.dtype), a.dx, b.dx, "dx, channel_axis " + std::to_string(ca));
      ExpectSameElements(TypeOf(c.dtype), a.dr, b.dr, "dresidual, channel_axis " + std::to_string(ca));
    }
  }
}

// ---- 2. dbias --------------------------------------------------------------------------------------

class EpilogueBackwardDbias : public testing::TestWithParam<DLDataType> {};
INSTANTIATE_TEST_SUITE_P(EpilogueBackward, EpilogueBackwardDbias, testing::ValuesIn(AllDTypes()),
                         ParamName);

// Contiguous channels-first tensors: dbias bit for bit in the documented order, for rows of
// HW = 1, 3, 13, 24, 30, 37, 64 elements, values of a wide dynamic range (the order shows), every
// ISA variant and several thread counts. The test checks that its values tell the documented
// order from a plain sequential sum.
TEST_P(EpilogueBackwardDbias, DocumentedOrderForContiguousChannelsFirst) {
  const DType t = TypeOf(GetParam());
  std::mt19937_64 rng(0xD01 + DTypeSeed(GetParam()));
  const std::vector<std::vector<int64_t>> shapes = {
      {3, 5, 4, 6}, {3, 5, 13}, {2, 3, 2, 3, 5}, {3, 4, 1, 3}, {4, 6, 1, 1}, {2, 3, 1, 37},
      {5, 7}, {2, 2, 8, 8}};
  int differs = 0, channels = 0;
  for (const auto& shape : shapes)
    for (int k = 1; k < 16; k += 2)  // with bias
      for (double p : {0.0, 0.4}) {
        BwdCase c;
        c.combo(k);
        c.shape = shape;
        c.dtype = GetParam();
        c.p = p;
        c.flags = kFlagSets[rng() % 4];
        c.dy_kind = Kind::kDyWide;
        c.dbias_check = DbiasCheck::kOrdered;
        c.seed = rng();
        c.rng_seed = rng();
        const Outcome o = RunBackward(c);
        for (size_t ci = 0; ci < o.expected.dbias_ordered.size(); ++ci) {
          ++channels;
          differs += o.expected.dbias_ordered[ci] != o.expected.dbias_sequential[ci];
        }
        if (FailedParts() > kEnoughFailures) return;
      }
  if (t == DType::f32 || t == DType::f64) {
    EXPECT_GT(differs, channels / 20) << "the values do not tell the documented order from a "
                                         "sequential sum: this test would not notice";
  }
  // The same on every ISA variant the CPU has and for 1, 2 and all threads.
  for (sdrop_cpu_isa isa : {SDROP_CPU_ISA_SSE41, SDROP_CPU_ISA_AVX2, SDROP_CPU_ISA_AVX512}) {
    if (isa > sdrop_get_host_cpu_isa()) continue;
    ScopedMaxCpuIsa cap(isa);
    ASSERT_EQ(cap.status(), SDROP_OK);
    for (int threads : {1, 2, 0}) {
      ScopedNumThreads nt(threads);
      SCOPED_TRACE(std::string("isa ") + sdrop_cpu_isa_name(isa) + " threads " +
                   std::to_string(threads));
      BwdCase c;
      c.shape = {4, 6, 5, 11};
      c.dtype = GetParam();
      c.dy_kind = Kind::kDyWide;
      c.dbias_check = DbiasCheck::kOrdered;
      c.rng_seed = 77;
      RunBackward(c);
    }
  }
}

// Other layouts and strides: within a tolerance of the double-precision sum; and the same result
// for every thread count (a fixed order).
TEST_P(EpilogueBackwardDbias, OtherLayoutsWithinToleranceAndFixedOrder) {
  std::mt19937_64 rng(0xD02 + DTypeSeed(GetParam()));
  struct L {
    std::vector<int64_t> shape;
    uint32_t axes;
    int32_t ca;
    bool transpose;
  };
  const std::vector<L> ls = {{{3, 4, 6, 5}, 0x9u, 3, false}, {{3, 5, 4, 6}, 0x3u, 1, true},
                             {{3, 13, 5}, 0x5u, 2, false},   {{5, 3, 7}, 0x1u, 0, false},
                             {{3, 4, 5, 6}, 0x5u, 2, false}, {{2, 3, 2, 3, 5}, 0x3u, 1, true},
                             {{9}, 0x1u, 0, false}};
  for (const L& l : ls)
    for (int k = 1; k < 16; k += 2)
      for (Kind kind : {Kind::kDyFinite, Kind::kDyWide, Kind::kDy}) {
        BwdCase c;
        c.combo(k);
        c.shape = l.shape;
        c.mask_axes = l.axes;
        c.channel_axis = l.ca;
        c.dtype = GetParam();
        c.dy_kind = kind;
        c.flags = kFlagSets[rng() % 4];
        c.seed = rng();
        c.rng_seed = rng();
        c.dbias_check = DbiasCheck::kTolerance;
        if (l.transpose) {
          std::vector<int> perm = Identity(l.shape.size());
          std::reverse(perm.begin(), perm.end());
          c.xs = c.dys = c.dxs = Strides(l.shape, perm);
        }
        std::vector<uint64_t> first;
        for (int threads : {1, 2}) {
          ScopedNumThreads nt(threads);
          const Outcome o = RunBackward(c);
          if (first.empty()) {
            first = o.dbias;
          } else {
            ASSERT_EQ(first.size(), o.dbias.size());
            for (size_t i = 0; i < first.size(); ++i)
              EXPECT_TRUE(SameBits(TypeOf(c.dtype), first[i], o.dbias[i]))
                  << "dbias[" << i << "] differs between 1 and 2 threads";
          }
        }
        if (FailedParts() > kEnoughFailures) return;
      }
}

// float16/bfloat16: the float32 sum rounded once (to nearest even), not a sum rounded at each step
// in the 16-bit format. dx = dy here (p = 0, identity activations, no residual).
TEST(EpilogueBackwardDbiasHalf, TheFloatSumIsRoundedOnceToNearestEven) {
  for (DLDataType dt : {kF16, kBF16}) {
    const DType t = TypeOf(dt);
    SCOPED_TRACE(DTypeString(dt));
    // ulp(1) = 2^-10 (float16), 2^-7 (bfloat16); h = half of it.
    const double h = t == DType::f16 ? std::exp2(-11) : std::exp2(-8);
    // (3, 2, 4, 6): channel 0 rows are (1, h, h, ..., h), channel 1 rows are (1 + 2h, h, 0...).
    const std::vector<int64_t> shape{3, 2, 4, 6};
    std::vector<uint64_t> dy;
    for (int n = 0; n < 3; ++n)
      for (int c = 0; c < 2; ++c)
        for (int k = 0; k < 24; ++k) {
          double v;
          if (c == 0) v = k == 0 ? 1.0 : h;
          else v = k == 0 ? (n == 0 ? 1.0 + 2 * h : 0.0) : (k == 1 && n == 0 ? h : 0.0);
          dy.push_back(FromDouble(t, v));
        }
    BwdCase c;
    c.shape = shape;
    c.dtype = dt;
    c.p = 0.0;
    c.act = c.post = kId;
    c.residual = false;
    c.dy_values = dy;
    c.x_values.assign(dy.size(), FromDouble(t, 1.0));
    c.dbias_check = DbiasCheck::kOrdered;
    const Outcome o = RunBackward(c);
    ASSERT_EQ(o.dbias.size(), 2u);
    // Channel 0: 3 + 69h exactly in float32 -> nearest even.
    const uint64_t want0 = FloatTo(t, static_cast<float>(3.0 + 69 * h));
    EXPECT_EQ(o.dbias[0], want0) << "got " << sdrop_ref::HexBits(t, o.dbias[0]) << " expected "
                                 << sdrop_ref::HexBits(t, want0);
    // Rounded at each step, 1 + h stays 1 (a tie, to even): the sum would be 3.
    EXPECT_NE(want0, FromDouble(t, 3.0));
    // Channel 1: 1 + 3h exactly: a tie between 1 + 2h (odd) and 1 + 4h (even) -> 1 + 4h.
    const uint64_t want1 = FromDouble(t, 1.0 + 4 * h);
    EXPECT_EQ(o.dbias[1], want1) << "got " << sdrop_ref::HexBits(t, o.dbias[1]) << " expected "
                                 << sdrop_ref::HexBits(t, want1);
  }
}

// ---- 3. NULL outputs and in place ------------------------------------------------------------------

class EpilogueBackwardAliasing : public testing::TestWithParam<DLDataType> {};
INSTANTIATE_TEST_SUITE_P(EpilogueBackward, EpilogueBackwardAliasing,
                         testing::ValuesIn(AllDTypes()), ParamName);

TEST_P(EpilogueBackwardAliasing, NullDbiasOrDresidualGiveTheSameDx) {
  std::mt19937_64 rng(0xA01 + DTypeSeed(GetParam()));
  for (int k = 0; k < 16; ++k)
    for (bool nhwc : {false, true}) {
      BwdCase c;
      c.combo(k | 3);
      c.dtype = GetParam();
      c.flags = kFlagSets[rng() % 4];
      c.seed = rng();
      c.rng_seed = rng();
      if (nhwc) {
        c.shape = kNHWC.shape;
        c.mask_axes = kNHWC.mask_axes;
        c.channel_axis = kNHWC.channel_axis;
      }
      const Outcome all = RunBackward(c);
      for (int v = 1; v < 4; ++v) {
        BwdCase d = c;
        d.want_dbias = !(v & 1);
        d.want_dresidual = !(v & 2);
        const Outcome o = RunBackward(d);
        const std::string what = std::string("dbias ") + (d.want_dbias ? "given" : "NULL") +
                                 ", dresidual " + (d.want_dresidual ? "given" : "NULL");
        ExpectSameElements(TypeOf(c.dtype), o.dx, all.dx, "dx, " + what);
        if (d.want_dbias) ExpectSameElements(TypeOf(c.dtype), o.dbias, all.dbias, "dbias, " + what);
        if (d.want_dresidual) ExpectSameElements(TypeOf(c.dtype), o.dr, all.dr, "dresidual, " + what);
      }
      if (FailedParts() > kEnoughFailures) return;
    }
}

TEST_P(EpilogueBackwardAliasing, DxIsDyInPlace) {
  std::mt19937_64 rng(0xA02 + DTypeSeed(GetParam()));
  for (int k = 0; k < 16; ++k)
    for (int layout = 0; layout < 3; ++layout)
      for (bool want_dr : {true, false}) {
        if (!want_dr && !(k & 2)) continue;  // without a residual there is no dresidual anyway
        BwdCase c;
        c.combo(k);
        c.dtype = GetParam();
        c.flags = kFlagSets[rng() % 4];
        c.seed = rng();
        c.rng_seed = rng();
        c.want_dresidual = want_dr;
        if (layout == 1) c.xs = c.dys = Strides(c.shape, {0, 2, 3, 1});
        if (layout == 2) c.dys = Strides(c.shape, Identity(4), {1, 1, 2, 1}, 0x5u);
        const Outcome apart = RunBackward(c);
        c.dx_is_dy = true;
        const Outcome inplace = RunBackward(c);
        ExpectSameElements(TypeOf(c.dtype), apart.dx, inplace.dx, "dx apart vs dx = dy");
        // dbias's order is fixed for given strides (docs/epilogue.md#backward): in place, dx
        // takes dy's strides, so only the compact layout (dx's strides the same both ways) must
        // give the same bits.
        if (layout == 0)
          ExpectSameElements(TypeOf(c.dtype), apart.dbias, inplace.dbias, "dbias apart vs dx = dy");
        if (FailedParts() > kEnoughFailures) return;
      }
}

TEST_P(EpilogueBackwardAliasing, DresidualIsDyInPlace) {
  std::mt19937_64 rng(0xA03 + DTypeSeed(GetParam()));
  for (int k = 0; k < 16; ++k) {
    BwdCase c;
    c.combo(k | 2);  // with a residual
    c.dtype = GetParam();
    c.flags = kFlagSets[rng() % 4];
    c.seed = rng();
    c.rng_seed = rng();
    if (k & 1) c.dys = Strides(c.shape, {3, 2, 1, 0});
    const Outcome apart = RunBackward(c);
    c.dr_is_dy = true;
    const Outcome inplace = RunBackward(c);
    ExpectSameElements(TypeOf(c.dtype), apart.dx, inplace.dx, "dx apart vs dresidual = dy");
    ExpectSameElements(TypeOf(c.dtype), apart.dr, inplace.dr, "dresidual apart vs = dy");
    if (FailedParts() > kEnoughFailures) return;
  }
}

// The header allows dx to be x itself too.
TEST_P(EpilogueBackwardAliasing, DxIsXInPlace) {
  std::mt19937_64 rng(0xA04 + DTypeSeed(GetParam()));
  for (int k = 0; k < 16; ++k) {
    BwdCase c;
    c.combo(k);
    c.dtype = GetParam();
    c.flags = kFlagSets[rng() % 4];
    c.seed = rng();
    c.rng_seed = rng();
    if (k & 1) c.xs = Strides(c.shape, {1, 0, 3, 2}, {}, 0x2u);
    c.dx_is_x = true;
    RunBackward(c);
    if (FailedParts() > kEnoughFailures) return;
  }
}

// ---- 4. Empty tensors --------------------------------------------------------------------------------

TEST_P(EpilogueBackwardAliasing, EmptyTensorGivesZeroDbias) {
  const DType t = TypeOf(GetParam());
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{
           {3, 5, 0, 6}, {0, 5, 4, 6}, {3, 5, 4, 0}, {0, 5}})
    for (bool null_data : {false, true})
      for (int k = 1; k < 16; k += 2) {
        BwdCase c;
        c.combo(k);
        c.shape = shape;
        c.dtype = GetParam();
        c.null_data_if_empty = null_data;
        const Outcome o = RunBackward(c);
        ASSERT_EQ(o.dbias.size(), 5u);
        for (size_t i = 0; i < 5; ++i)
          EXPECT_EQ(o.dbias[i], 0u) << "dbias[" << i << "] of an empty tensor: "
                                    << sdrop_ref::HexBits(t, o.dbias[i]) << ", not +0.0";
      }
  // Empty channel axis: an empty dbias, nothing written.
  BwdCase c;
  c.shape = {3, 0, 4, 6};
  c.dtype = GetParam();
  const Outcome o = RunBackward(c);
  EXPECT_TRUE(o.dbias.empty());
  // An extent-1 channel axis: dbias may have any stride, 0 included.
  BwdCase one;
  one.shape = {3, 1, 4, 6};
  one.dtype = GetParam();
  one.dbias_stride = 0;
  one.bias_stride = 0;
  RunBackward(one);
}

// ---- 5. Refusals ---------------------------------------------------------------------------------------

std::string Lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// A valid call (f32, NCHW 3x5x4x6, bias, residual, relu/relu) whose pieces the tests break.
class EpilogueBackwardRefusal : public testing::Test {
 protected:
  EpilogueBackwardRefusal()
      : shape_{3, 5, 4, 6},
        x_(shape_, kF32, Layout{}),
        dy_(shape_, kF32, Layout{}),
        r_(shape_, kF32, Layout{}),
        bias_({5}, kF32, Layout{}),
        dx_(shape_, kF32, Layout{}, 0xA5),
        dbias_({5}, kF32, Layout{}, 0xA5),
        dr_(shape_, kF32, Layout{}, 0xA5) {
    std::mt19937_64 rng(3);
    for (TensorBuffer* b : {&x_, &dy_, &r_, &bias_}) {
      b->FillRandomBytes(rng);
      sdrop_ref::ForEachIndex(b->shape(), [&](const int64_t* idx) {
        sdrop_ref::StoreBits(sdrop_ref::ElementAddress(b->t(), idx), 4,
                             ValueBits(DType::f32, Kind::kX, rng()));
      });
    }
    x = x_.t();
    dy = dy_.t();
    r = r_.t();
    bias = bias_.t();
    dx = dx_.t();
    dbias = dbias_.t();
    dr = dr_.t();
    e = sdrop_epilogue{&bias, &r, 1, kRelu, kRelu};
    prm = sdrop_params{0.4, 11, 12, 0x3u, 0};
    buffers_ = {&x_, &dy_, &r_, &bias_, &dx_, &dbias_, &dr_};
  }

  sdrop_status Call() {
    return sdrop_epilogue_backward(&prm, nullptr, &e, &x, &dy, &dx, &dbias, &dr);
  }

  // The valid call works (so the refusals below are the broken piece's).
  void ExpectValidCallWorks() {
    const sdrop_status st = Call();
    EXPECT_EQ(st, SDROP_OK) << sdrop_last_error();
  }

  // Runs `call`, expects `want` and a message naming every token (case-insensitive), and every
  // byte of every buffer (outputs' sentinels included) unchanged.
  void ExpectRefused(sdrop_status want, const std::vector<std::string>& tokens,
                     const std::function<sdrop_status()>& call, TensorBuffer* extra = nullptr) {
    std::vector<TensorBuffer*> all = buffers_;
    if (extra) all.push_back(extra);
    std::vector<std::vector<uint8_t>> before;
    for (TensorBuffer* b : all) before.push_back(b->bytes());
    const sdrop_status st = call();
    EXPECT_EQ(st, want) << "got " << sdrop_status_name(st) << ": " << sdrop_last_error();
    const std::string msg = sdrop_last_error();
    EXPECT_FALSE(msg.empty()) << "no message";
    for (const std::string& tok : tokens)
      EXPECT_NE(Lower(msg).find(Lower(tok)), std::string::npos)
          << "the message does not name '" << tok << "': " << msg;
    static const char* kNames[] = {"x", "dy", "residual", "bias", "dx", "dbias", "dresidual",
                                   "extra"};
    for (size_t i = 0; i < all.size(); ++i)
      EXPECT_TRUE(all[i]->bytes() == before[i]) << "the buffer of " << kNames[i]
                                                << " was written by a refused call";
  }

  std::vector<int64_t> shape_;
  TensorBuffer x_, dy_, r_, bias_, dx_, dbias_, dr_;
  std::vector<TensorBuffer*> buffers_;
  DLTensor x{}, dy{}, r{}, bias{}, dx{}, dbias{}, dr{};
  sdrop_epilogue e{};
  sdrop_params prm{};
};

TEST_F(EpilogueBackwardRefusal, ValidBaselineWorks) { ExpectValidCallWorks(); }

TEST_F(EpilogueBackwardRefusal, NullEpilogue) {
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"epilogue"}, [&] {
    return sdrop_epilogue_backward(&prm, nullptr, nullptr, &x, &dy, &dx, nullptr, nullptr);
  });
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"epilogue"}, [&] {
    return sdrop_epilogue_backward(&prm, nullptr, nullptr, &x, &dy, &dx, &dbias, &dr);
  });
}

TEST_F(EpilogueBackwardRefusal, NullParamsOrTensors) {
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"params"}, [&] {
    return sdrop_epilogue_backward(nullptr, nullptr, &e, &x, &dy, &dx, &dbias, &dr);
  });
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dy"}, [&] {
    return sdrop_epilogue_backward(&prm, nullptr, &e, &x, nullptr, &dx, &dbias, &dr);
  });
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dx"}, [&] {
    return sdrop_epilogue_backward(&prm, nullptr, &e, &x, &dy, nullptr, &dbias, &dr);
  });
  prm.p = 1.5;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"p", "1.5"}, [&] { return Call(); });
}

TEST_F(EpilogueBackwardRefusal, DbiasWithoutBias) {
  e.bias = nullptr;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dbias"}, [&] { return Call(); });
}

TEST_F(EpilogueBackwardRefusal, DresidualWithoutResidual) {
  e.residual = nullptr;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dresidual"}, [&] { return Call(); });
}

TEST_F(EpilogueBackwardRefusal, DbiasWrongShape) {
  TensorBuffer six({6}, kF32, Layout{}, 0xA5);
  DLTensor db6 = six.t();
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dbias"}, [&] {
    return sdrop_epilogue_backward(&prm, nullptr, &e, &x, &dy, &dx, &db6, &dr);
  }, &six);
  TensorBuffer two_d({1, 5}, kF32, Layout{}, 0xA5);
  DLTensor db2 = two_d.t();
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dbias"}, [&] {
    return sdrop_epilogue_backward(&prm, nullptr, &e, &x, &dy, &dx, &db2, &dr);
  }, &two_d);
}

TEST_F(EpilogueBackwardRefusal, DbiasWrongDtype) {
  TensorBuffer f64({5}, kF64, Layout{}, 0xA5);
  DLTensor d = f64.t();
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dbias"}, [&] {
    return sdrop_epilogue_backward(&prm, nullptr, &e, &x, &dy, &dx, &d, &dr);
  }, &f64);
  TensorBuffer f16({5}, kF16, Layout{}, 0xA5);
  DLTensor h = f16.t();
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dbias"}, [&] {
    return sdrop_epilogue_backward(&prm, nullptr, &e, &x, &dy, &dx, &h, &dr);
  }, &f16);
}

TEST_F(EpilogueBackwardRefusal, DbiasOverlappingAnotherTensor) {
  // Inside dx.
  dbias.data = dx.data;
  dbias.byte_offset = dx.byte_offset + 4 * 17;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dbias"}, [&] { return Call(); });
  // Inside dresidual.
  dbias.data = dr.data;
  dbias.byte_offset = dr.byte_offset;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dbias"}, [&] { return Call(); });
  // Over the inputs: "dbias overlaps nothing".
  dbias.data = dy.data;
  dbias.byte_offset = dy.byte_offset + 4;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dbias"}, [&] { return Call(); });
  dbias.data = bias.data;
  dbias.byte_offset = bias.byte_offset;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dbias"}, [&] { return Call(); });
}

TEST_F(EpilogueBackwardRefusal, DbiasWithStrideZero) {
  int64_t zero = 0;
  dbias.strides = &zero;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dbias"}, [&] { return Call(); });
}

TEST_F(EpilogueBackwardRefusal, DresidualOverlappingDx) {
  // dresidual is dx itself.
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dresidual"}, [&] {
    return sdrop_epilogue_backward(&prm, nullptr, &e, &x, &dy, &dx, &dbias, &dx);
  });
  // Partially.
  dr = dx;
  dr.byte_offset += 4 * 7;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dresidual"}, [&] { return Call(); });
  // dx in dy's place and dresidual as dy too.
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dresidual"}, [&] {
    return sdrop_epilogue_backward(&prm, nullptr, &e, &x, &dy, &dy, &dbias, &dy);
  });
}

TEST_F(EpilogueBackwardRefusal, DresidualPartiallyOverlappingDy) {
  dr = dy;
  dr.byte_offset += 4;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dresidual"}, [&] { return Call(); });
  // Same data, other strides: not in place.
  std::vector<int64_t> t = Strides(shape_, {3, 2, 1, 0});
  dr = dy;
  dr.strides = t.data();
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dresidual"}, [&] { return Call(); });
}

TEST_F(EpilogueBackwardRefusal, DxPartiallyOverlappingDy) {
  dx = dy;
  dx.byte_offset += 4;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dx"}, [&] { return Call(); });
}

TEST_F(EpilogueBackwardRefusal, ShapeMismatches) {
  std::vector<int64_t> other{3, 5, 4, 7};
  TensorBuffer x7(other, kF32, Layout{});
  DLTensor xo = x7.t();
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"shape"}, [&] {
    return sdrop_epilogue_backward(&prm, nullptr, &e, &xo, &dy, &dx, &dbias, &dr);
  }, &x7);
  TensorBuffer dx7(other, kF32, Layout{}, 0xA5);
  DLTensor dxo = dx7.t();
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dx"}, [&] {
    return sdrop_epilogue_backward(&prm, nullptr, &e, &x, &dy, &dxo, &dbias, &dr);
  }, &dx7);
  TensorBuffer dr7(other, kF32, Layout{}, 0xA5);
  DLTensor dro = dr7.t();
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dresidual"}, [&] {
    return sdrop_epilogue_backward(&prm, nullptr, &e, &x, &dy, &dx, &dbias, &dro);
  }, &dr7);
  // x of another dtype than dy.
  TensorBuffer x64(shape_, kF64, Layout{});
  DLTensor xd = x64.t();
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {}, [&] {
    return sdrop_epilogue_backward(&prm, nullptr, &e, &xd, &dy, &dx, &dbias, &dr);
  }, &x64);
}

TEST_F(EpilogueBackwardRefusal, InvalidActivations) {
  e.act = 77;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"act", "77"}, [&] { return Call(); });
  e.act = -1;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"act", "-1"}, [&] { return Call(); });
  e.act = kRelu;
  e.post = 93;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"post", "93"}, [&] { return Call(); });
}

TEST_F(EpilogueBackwardRefusal, ChannelAxisOutOfRangeWithBias) {
  e.channel_axis = 57;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"channel_axis", "57"}, [&] { return Call(); });
  e.channel_axis = 4;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"channel_axis"}, [&] { return Call(); });
  e.channel_axis = -1;  // not documented as counting from the end; refused either way
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {}, [&] { return Call(); });
  // The bias's extent is not x.shape[channel_axis].
  e.channel_axis = 3;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"bias"}, [&] { return Call(); });
}

// Every tensor labelled CUDA or OpenCL (over host bytes): the call goes to that backend, which
// this process has not set up (no OpenCL queue set; no CUDA driver, or one that finds host
// memory). Refused, nothing written; tests/gpu runs the backward on real device buffers.
TEST_F(EpilogueBackwardRefusal, GpuTensorsGoToTheirBackend) {
  for (DLDeviceType dev : {kDLCUDA, kDLOpenCL}) {
    SCOPED_TRACE(dev == kDLCUDA ? "CUDA" : "OpenCL");
    DLTensor* all[] = {&x, &dy, &r, &bias, &dx, &dbias, &dr};
    for (DLTensor* t : all) t->device = DLDevice{dev, 0};
    const sdrop_status want = SDROP_ERROR_BACKEND_UNAVAILABLE;
    if (dev == kDLOpenCL) {
      ExpectRefused(want, {"opencl"}, [&] { return Call(); });
      ExpectRefused(want, {"opencl"}, [&] {
        return sdrop_epilogue_backward(&prm, nullptr, &e, &x, &dy, &dx, nullptr, nullptr);
      });
    } else {
      for (int outs = 0; outs < 2; ++outs) {
        std::vector<std::vector<uint8_t>> before;
        for (TensorBuffer* b : buffers_) before.push_back(b->bytes());
        const sdrop_status st =
            outs ? Call() : sdrop_epilogue_backward(&prm, nullptr, &e, &x, &dy, &dx, nullptr, nullptr);
        EXPECT_TRUE(st == want || st == SDROP_ERROR_INVALID_ARGUMENT)
            << sdrop_status_name(st) << ": " << sdrop_last_error();
        EXPECT_NE(Lower(sdrop_last_error()).find("cuda"), std::string::npos) << sdrop_last_error();
        for (size_t i = 0; i < buffers_.size(); ++i)
          EXPECT_TRUE(buffers_[i]->bytes() == before[i]) << "buffer " << i << " was written";
      }
    }
    for (DLTensor* t : all) t->device = DLDevice{kDLCPU, 0};
  }
  // Mixed devices: invalid.
  dx.device = DLDevice{kDLCUDA, 0};
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {}, [&] { return Call(); });
}

// ---- 6. Shards ------------------------------------------------------------------------------------------

class EpilogueBackwardShard : public testing::TestWithParam<DLDataType> {};
INSTANTIATE_TEST_SUITE_P(EpilogueBackward, EpilogueBackwardShard, testing::ValuesIn(AllDTypes()),
                         ParamName);

// Shards of the batch axis (data parallel) and of the channel axis (tensor parallel): dx and
// dresidual are the matching slices of the whole tensor's, dbias the sum over the shard's slice.
TEST_P(EpilogueBackwardShard, ShardsAreSlicesOfTheWhole) {
  std::mt19937_64 rng(0x5A + DTypeSeed(GetParam()));
  const std::vector<int64_t> whole_shape{5, 6, 4, 6};
  for (int k = 0; k < 16; ++k)
    for (int axis : {0, 1}) {
      BwdCase w;
      w.combo(k);
      w.shape = whole_shape;
      w.dtype = GetParam();
      w.flags = kFlagSets[rng() % 4];
      w.seed = rng();
      w.offset = rng();
      w.rng_seed = rng();
      const Outcome whole = RunBackward(w);
      const std::vector<std::pair<int64_t, int64_t>> pieces =
          axis == 0 ? std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {2, 3}, {3, 5}}
                    : std::vector<std::pair<int64_t, int64_t>>{{0, 4}, {4, 6}};
      for (const auto& piece : pieces) {
        SCOPED_TRACE("shard of axis " + std::to_string(axis) + " [" + std::to_string(piece.first) +
                     ", " + std::to_string(piece.second) + ")");
        BwdCase s = w;
        s.shape[axis] = piece.second - piece.first;
        s.shard = true;
        s.origin.assign(4, 0);
        s.origin[axis] = piece.first;
        s.logical = whole_shape;
        const Outcome part = RunBackward(s);
        // The matching slices of the whole call's outputs.
        size_t i = 0, bad = 0;
        sdrop_ref::ForEachIndex(whole_shape, [&](const int64_t* idx) {
          const size_t wi = i++;
          if (idx[axis] < piece.first || idx[axis] >= piece.second) return;
          std::vector<int64_t> local(idx, idx + 4);
          local[axis] -= piece.first;
          const size_t si = static_cast<size_t>(
              ((local[0] * s.shape[1] + local[1]) * s.shape[2] + local[2]) * s.shape[3] + local[3]);
          const DType t = TypeOf(w.dtype);
          if (si >= part.dx.size()) return;
          if (!SameBits(t, part.dx[si], whole.dx[wi]) && ++bad <= 5)
            ADD_FAILURE() << "dx" << VecString(local) << " of the shard "
                          << sdrop_ref::HexBits(t, part.dx[si]) << " but the whole tensor's is "
                          << sdrop_ref::HexBits(t, whole.dx[wi]);
          if (!part.dr.empty() && !SameBits(t, part.dr[si], whole.dr[wi]) && ++bad <= 5)
            ADD_FAILURE() << "dresidual" << VecString(local) << " differs from the whole's";
        });
        if (axis == 1 && w.bias) {  // a channel shard: dbias is the whole's slice
          for (int64_t ci = 0; ci < s.shape[1]; ++ci)
            EXPECT_TRUE(SameBits(TypeOf(w.dtype), part.dbias[ci], whole.dbias[piece.first + ci]))
                << "dbias[" << ci << "] of the channel shard";
        }
      }
      if (FailedParts() > kEnoughFailures) return;
    }
}

}  // namespace
}  // namespace sdrop_test
