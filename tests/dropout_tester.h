// Test harness for sdrop, in the style of XNNPACK's operator testers: a fluent builder describes
// one call (shape, strides, mask axes, dtype, p, flags, in place, byte offsets, alignment), Test()
// builds guarded input/output buffers, runs the C ABI and the scalar reference on the same bytes,
// and compares every bit of the output buffer: elements by value (a NaN only has to stay a NaN),
// every other byte must be untouched, and inputs must be unchanged.
#ifndef SDROP_TESTS_DROPOUT_TESTER_H_
#define SDROP_TESTS_DROPOUT_TESTER_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iomanip>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <dlpack/dlpack.h>
#include <sdrop/sdrop.h>

#include "reference/sdrop_reference.h"

namespace sdrop_test {

using sdrop_ref::DType;

constexpr DLDataType kF16{kDLFloat, 16, 1};
constexpr DLDataType kBF16{kDLBfloat, 16, 1};
constexpr DLDataType kF32{kDLFloat, 32, 1};
constexpr DLDataType kF64{kDLFloat, 64, 1};
constexpr DLDataType kU8{kDLUInt, 8, 1};
constexpr DLDataType kBool{6, 8, 1};  // kDLBool; DLPack 0.6 has no enum for it

inline const std::vector<DLDataType>& AllDTypes() {
  static const std::vector<DLDataType> all{kF16, kBF16, kF32, kF64};
  return all;
}

inline std::string DTypeString(DLDataType d) {
  DType t;
  if (sdrop_ref::DTypeFromDL(d, &t)) return sdrop_ref::DTypeName(t);
  if (d.code == kDLUInt && d.bits == 8 && d.lanes == 1) return "uint8";
  if (d.code == 6 && d.bits == 8 && d.lanes == 1) return "bool";
  std::ostringstream s;
  s << "code" << int(d.code) << "_bits" << int(d.bits) << "_lanes" << d.lanes;
  return s.str();
}

inline size_t ElementSize(DLDataType d) {
  return static_cast<size_t>((d.bits + 7) / 8) * (d.lanes == 0 ? 1 : d.lanes);
}

template <class T>
std::string VecString(const std::vector<T>& v) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  s << ")";
  return s.str();
}

// Keeps only the mask-axis bits that exist for this rank.
inline uint32_t AxesFor(size_t rank, uint32_t axes) {
  return rank >= 32 ? axes : axes & ((1u << rank) - 1u);
}

// ---- Strides -------------------------------------------------------------------------------------

inline std::vector<int64_t> Compact(const std::vector<int64_t>& shape) {
  return sdrop_ref::CompactStrides(shape);
}

// perm lists the axes from outermost to innermost in memory; step[i] multiplies the spacing of
// axis i (step > 1 leaves gaps); bit i of negate makes axis i run backwards.
inline std::vector<int64_t> Strides(const std::vector<int64_t>& shape, const std::vector<int>& perm,
                                    const std::vector<int64_t>& step = {}, uint32_t negate = 0) {
  std::vector<int64_t> s(shape.size());
  int64_t acc = 1;
  for (int k = static_cast<int>(perm.size()) - 1; k >= 0; --k) {
    const int a = perm[k];
    s[a] = acc * (step.empty() ? 1 : step[a]);
    acc = s[a] * std::max<int64_t>(shape[a], 1);
  }
  for (size_t i = 0; i < s.size(); ++i)
    if ((negate >> i) & 1u) s[i] = -s[i];
  return s;
}

inline std::vector<int> Identity(size_t n) {
  std::vector<int> p(n);
  std::iota(p.begin(), p.end(), 0);
  return p;
}

// A random non-overlapping layout: permuted, sometimes with gaps, sometimes reversed.
inline std::vector<int64_t> RandomStrides(const std::vector<int64_t>& shape, std::mt19937_64& rng) {
  std::vector<int> perm = Identity(shape.size());
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int64_t> step(shape.size());
  uint32_t negate = 0;
  for (size_t i = 0; i < shape.size(); ++i) {
    step[i] = std::uniform_int_distribution<int>(0, 4)(rng) < 3 ? 1 : 2 + (rng() % 2);
    if (rng() % 10 < 3) negate |= 1u << i;
  }
  return Strides(shape, perm, step, negate);
}

// ---- A tensor inside a guarded byte buffer -------------------------------------------------------

struct Layout {
  std::vector<int64_t> strides;  // in elements; empty: compact
  bool null_strides = false;     // pass strides == NULL (layout is then compact)
  uint64_t extra_byte_offset = 0;
  size_t misalign = 0;           // bytes added to the data pointer
  bool null_data_if_empty = false;
};

class TensorBuffer {
 public:
  static constexpr size_t kGuard = 64;

  TensorBuffer(const std::vector<int64_t>& shape, DLDataType dtype, const Layout& layout,
               uint8_t fill = 0xA5)
      : shape_(shape), strides_(layout.strides.empty() ? Compact(shape) : layout.strides) {
    const size_t es = ElementSize(dtype);
    bool empty = false;
    int64_t lo = 0, hi = 0;
    for (size_t i = 0; i < shape_.size(); ++i) {
      if (shape_[i] <= 0) empty = true;
      const int64_t span = (std::max<int64_t>(shape_[i], 1) - 1) * strides_[i];
      (span < 0 ? lo : hi) += span;
    }
    if (empty) lo = hi = 0;
    const size_t n = static_cast<size_t>(hi - lo + 1);
    bytes_.assign(kGuard + layout.misalign + layout.extra_byte_offset + n * es + kGuard, fill);
    t_.data = bytes_.data() + kGuard + layout.misalign;
    if (empty && layout.null_data_if_empty) t_.data = nullptr;
    t_.device = DLDevice{kDLCPU, 0};
    t_.ndim = static_cast<int>(shape_.size());
    t_.dtype = dtype;
    t_.shape = shape_.empty() ? nullptr : shape_.data();
    t_.strides = layout.null_strides || shape_.empty() ? nullptr : strides_.data();
    if (layout.null_strides) strides_ = Compact(shape_);
    t_.byte_offset = layout.extra_byte_offset + static_cast<uint64_t>(-lo) * es;
  }
  TensorBuffer(const TensorBuffer&) = delete;
  TensorBuffer& operator=(const TensorBuffer&) = delete;

  DLTensor* tensor() { return &t_; }
  const DLTensor& t() const { return t_; }
  std::vector<uint8_t>& bytes() { return bytes_; }
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  const std::vector<int64_t>& strides() const { return strides_; }

  // The same tensor over another byte vector of the same size (a snapshot or an expected copy).
  DLTensor RebasedOn(std::vector<uint8_t>& other) const {
    DLTensor r = t_;
    if (t_.data != nullptr)
      r.data = other.data() + (static_cast<const uint8_t*>(t_.data) - bytes_.data());
    return r;
  }

  void FillRandomBytes(std::mt19937_64& rng) {
    for (auto& b : bytes_) b = static_cast<uint8_t>(rng());
  }

 private:
  std::vector<uint8_t> bytes_;
  std::vector<int64_t> shape_, strides_;
  DLTensor t_{};
};

// ---- Input values --------------------------------------------------------------------------------

enum class Values {
  kMixed,     // mostly ordinary values, plus random bit patterns and every special value
  kSpecials,  // only NaN (quiet, signaling, payloads, negative), +-Inf, +-0, denormals, extremes
  kPositive,  // ordinary values in [0.5, 2): never zero, never overflow when scaled
  kOnes,
};

inline std::vector<uint64_t> SpecialBits(DType t) {
  switch (t) {
    case DType::f16:
      return {0x7E00, 0xFE00, 0x7C01, 0x7D23, 0xFFFF, 0x7C00, 0xFC00, 0x0000, 0x8000, 0x0001,
              0x8001, 0x03FF, 0x83FF, 0x0400, 0x7BFF, 0xFBFF, 0x3C00, 0xBC00, 0x0200, 0x3BFF};
    case DType::bf16:
      return {0x7FC0, 0xFFC0, 0x7F81, 0x7FA3, 0xFFFF, 0x7F80, 0xFF80, 0x0000, 0x8000, 0x0001,
              0x8001, 0x007F, 0x807F, 0x0080, 0x7F7F, 0xFF7F, 0x3F80, 0xBF80, 0x0040, 0x3F7F};
    case DType::f32:
      return {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0x7FA34567u, 0xFFFFFFFFu, 0x7F800000u,
              0xFF800000u, 0x00000000u, 0x80000000u, 0x00000001u, 0x80000001u, 0x007FFFFFu,
              0x807FFFFFu, 0x00800000u, 0x7F7FFFFFu, 0xFF7FFFFFu, 0x3F800000u, 0xBF800000u,
              0x00400000u, 0x3F7FFFFFu};
    case DType::f64:
      return {0x7FF8000000000000ull, 0xFFF8000000000000ull, 0x7FF0000000000001ull,
              0x7FF4567890ABCDEFull, 0xFFFFFFFFFFFFFFFFull, 0x7FF0000000000000ull,
              0xFFF0000000000000ull, 0x0000000000000000ull, 0x8000000000000000ull,
              0x0000000000000001ull, 0x8000000000000001ull, 0x000FFFFFFFFFFFFFull,
              0x800FFFFFFFFFFFFFull, 0x0010000000000000ull, 0x7FEFFFFFFFFFFFFFull,
              0xFFEFFFFFFFFFFFFFull, 0x3FF0000000000000ull, 0xBFF0000000000000ull,
              0x0008000000000000ull, 0x3FEFFFFFFFFFFFFFull};
  }
  return {};
}

inline uint64_t FromDouble(DType t, double v) {
  switch (t) {
    case DType::f16: return sdrop_ref::F32ToF16(static_cast<float>(v));
    case DType::bf16: return sdrop_ref::F32ToBF16(static_cast<float>(v));
    case DType::f32: return sdrop_ref::F32ToBits(static_cast<float>(v));
    case DType::f64: return sdrop_ref::F64ToBits(v);
  }
  return 0;
}

inline uint64_t RandomValue(DType t, Values kind, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  switch (kind) {
    case Values::kOnes: return FromDouble(t, 1.0);
    case Values::kPositive: return FromDouble(t, 0.5 + 1.5 * unit(rng));
    case Values::kSpecials: {
      const std::vector<uint64_t> s = SpecialBits(t);
      return s[rng() % s.size()];
    }
    case Values::kMixed: {
      const double r = unit(rng);
      if (r < 0.15) {
        const std::vector<uint64_t> s = SpecialBits(t);
        return s[rng() % s.size()];
      }
      if (r < 0.30) {  // any bit pattern
        const size_t bytes = sdrop_ref::DTypeSize(t);
        const uint64_t b = rng();
        return bytes == 8 ? b : b & ((uint64_t{1} << (8 * bytes)) - 1);
      }
      const double mag = std::exp2(-10.0 + 20.0 * unit(rng));
      return FromDouble(t, (rng() & 1) ? -mag : mag);
    }
  }
  return 0;
}

// ---- Comparison ----------------------------------------------------------------------------------

// Compares the output buffer with the expected one: y's elements by value (NaN matches any NaN),
// every other byte exactly. Returns the number of mismatches; reports the first few.
inline int64_t CompareOutput(const std::vector<uint8_t>& actual_bytes,
                             const std::vector<uint8_t>& expected_bytes, const DLTensor& actual_y,
                             const DLTensor& expected_y, const std::string& what) {
  int64_t bad = 0;
  std::vector<uint8_t> covered(actual_bytes.size(), 0);
  DType t;
  const bool is_float = sdrop_ref::DTypeFromDL(actual_y.dtype, &t);
  const size_t es = ElementSize(actual_y.dtype);
  const std::vector<int64_t> shape = sdrop_ref::Shape(actual_y);
  sdrop_ref::ForEachIndex(shape, [&](const int64_t* idx) {
    const uint8_t* a = sdrop_ref::ElementAddress(actual_y, idx);
    const uint8_t* e = sdrop_ref::ElementAddress(expected_y, idx);
    const size_t pos = static_cast<size_t>(a - actual_bytes.data());
    std::fill(covered.begin() + pos, covered.begin() + pos + es, 1);
    const uint64_t ab = sdrop_ref::LoadBits(a, es), eb = sdrop_ref::LoadBits(e, es);
    const bool same = ab == eb || (is_float && sdrop_ref::IsNaN(t, ab) && sdrop_ref::IsNaN(t, eb));
    if (!same && ++bad <= 8) {
      std::ostringstream s;
      s << what << ": element " << VecString(std::vector<int64_t>(idx, idx + shape.size()))
        << " expected " << (is_float ? sdrop_ref::HexBits(t, eb) : std::to_string(eb)) << " got "
        << (is_float ? sdrop_ref::HexBits(t, ab) : std::to_string(ab));
      ADD_FAILURE() << s.str();
    }
  });
  for (size_t i = 0; i < actual_bytes.size(); ++i) {
    if (!covered[i] && actual_bytes[i] != expected_bytes[i] && ++bad <= 8)
      ADD_FAILURE() << what << ": byte " << i << " outside the tensor was written (expected "
                    << int(expected_bytes[i]) << ", got " << int(actual_bytes[i]) << ")";
  }
  return bad;
}

// Failed assertions so far in the running test: sweeps stop once enough has been reported.
inline int FailedParts() {
  const testing::TestInfo* info = testing::UnitTest::GetInstance()->current_test_info();
  if (info == nullptr) return 0;
  const testing::TestResult* r = info->result();
  int n = 0;
  for (int i = 0; i < r->total_part_count(); ++i) n += r->GetTestPartResult(i).failed();
  return n;
}
constexpr int kEnoughFailures = 40;


// ---- The call a tester describes ----------------------------------------------------------------
// One builder for every tester (the CPU testers below, the GPU tester in gpu/gpu_tester.h): a
// call's state and how its guarded host buffers are made live here once.

// The entry points. kMask has no x: its output is the mask (of mask_dtype, with shape as given).
enum class CallOp { kForward, kBackward, kApplyMask, kMask };

inline const char* CallOpName(CallOp op) {
  switch (op) {
    case CallOp::kForward: return "forward";
    case CallOp::kBackward: return "backward";
    case CallOp::kApplyMask: return "apply_mask";
    case CallOp::kMask: return "mask";
  }
  return "?";
}

// Everything one call is made of, with the defaults every tester starts from.
struct CallSpec {
  CallOp op = CallOp::kForward;
  std::vector<int64_t> shape{2, 3, 4, 5};
  DLDataType dtype = kF32;
  double p = 0.5;
  uint64_t seed = 0x0123456789ABCDEFull;
  uint64_t offset = 42;
  uint32_t mask_axes = 0x3u;
  uint32_t flags = 0;
  Layout x, y, m;  // y: the mask's layout for kMask
  bool inplace = false;
  std::vector<int64_t> inplace_y_strides;
  Values values = Values::kMixed;
  std::function<uint64_t(int64_t)> x_bits;  // x's elements by row-major index, instead of values
  DLDataType mask_dtype = kU8;
  uint64_t rng_seed = 7;

  bool has_x() const { return op != CallOp::kMask; }
  bool in_place() const { return inplace && has_x(); }
  sdrop_params params() const { return sdrop_params{p, seed, offset, mask_axes, flags}; }

  std::string Describe() const {
    std::ostringstream s;
    s << CallOpName(op) << " shape=" << VecString(shape)
      << " dtype=" << DTypeString(has_x() ? dtype : mask_dtype) << " p=" << std::setprecision(17)
      << p << std::setprecision(6) << " seed=" << seed << " offset=" << offset << " mask_axes=0x"
      << std::hex << mask_axes << std::dec << " flags=" << flags << (in_place() ? " in-place" : "")
      << (x_bits ? " x=bit patterns" : "")
      << " x_strides=" << (x.null_strides ? "NULL" : VecString(x.strides))
      << " y_strides=" << (y.null_strides ? "NULL" : VecString(y.strides))
      << " x_byte_offset+=" << x.extra_byte_offset << " y_byte_offset+=" << y.extra_byte_offset
      << " x_misalign=" << x.misalign << " y_misalign=" << y.misalign;
    if (!inplace_y_strides.empty()) s << " in-place y_strides=" << VecString(inplace_y_strides);
    if (op == CallOp::kApplyMask)
      s << " mask_dtype=" << DTypeString(mask_dtype) << " mask_strides=" << VecString(m.strides)
        << " mask_byte_offset+=" << m.extra_byte_offset;
    return s.str();
  }
};

// The fluent setters of a CallSpec, for any tester (CRTP: each returns the tester itself).
template <class Self>
class CallBuilder {
 public:
  Self& op(CallOp o) { s_.op = o; return self(); }
  Self& shape(std::vector<int64_t> v) { s_.shape = std::move(v); return self(); }
  Self& dtype(DLDataType d) { s_.dtype = d; return self(); }
  Self& p(double v) { s_.p = v; return self(); }
  Self& seed(uint64_t v) { s_.seed = v; return self(); }
  Self& offset(uint64_t v) { s_.offset = v; return self(); }
  Self& mask_axes(uint32_t v) { s_.mask_axes = v; return self(); }
  Self& flags(uint32_t v) { s_.flags = v; return self(); }
  Self& multiply(bool on) { s_.flags = on ? SDROP_FLAG_MULTIPLY : 0u; return self(); }
  Self& x_strides(std::vector<int64_t> v) { s_.x.strides = std::move(v); return self(); }
  Self& y_strides(std::vector<int64_t> v) { s_.y.strides = std::move(v); return self(); }
  Self& mask_strides(std::vector<int64_t> v) { s_.m.strides = std::move(v); return self(); }
  Self& null_strides(bool on) { s_.x.null_strides = s_.y.null_strides = on; return self(); }
  Self& x_null_strides(bool on) { s_.x.null_strides = on; return self(); }
  Self& y_null_strides(bool on) { s_.y.null_strides = on; return self(); }
  // Extra bytes before the tensor in its buffer (on a GPU: in byte_offset, so a multiple of the
  // element size unless a refusal is the point); misalign moves the data pointer instead.
  Self& x_byte_offset(uint64_t b) { s_.x.extra_byte_offset = b; return self(); }
  Self& y_byte_offset(uint64_t b) { s_.y.extra_byte_offset = b; return self(); }
  Self& mask_byte_offset(uint64_t b) { s_.m.extra_byte_offset = b; return self(); }
  Self& x_misalign(size_t b) { s_.x.misalign = b; return self(); }
  Self& y_misalign(size_t b) { s_.y.misalign = b; return self(); }
  Self& null_data_if_empty(bool on) {
    s_.x.null_data_if_empty = s_.y.null_data_if_empty = s_.m.null_data_if_empty = on;
    return self();
  }
  // y is x (same data, same strides). inplace_y_strides gives y its own strides, which must
  // only differ from x's on extent-1 axes to still be "in place".
  Self& inplace(bool on) { s_.inplace = on; return self(); }
  Self& inplace_y_strides(std::vector<int64_t> v) { s_.inplace_y_strides = std::move(v); return self(); }
  Self& values(Values v) { s_.values = v; return self(); }
  Self& x_bits(std::function<uint64_t(int64_t)> f) { s_.x_bits = std::move(f); return self(); }
  Self& mask_dtype(DLDataType d) { s_.mask_dtype = d; return self(); }
  Self& rng_seed(uint64_t v) { s_.rng_seed = v; return self(); }

  const CallSpec& spec() const { return s_; }
  const std::vector<int64_t>& shape() const { return s_.shape; }
  sdrop_params params() const { return s_.params(); }
  std::string Describe() const { return s_.Describe(); }

 protected:
  Self& self() { return static_cast<Self&>(*this); }
  CallSpec s_;
};

// The library call of `op` (x is unused by kMask, the mask by all but kApplyMask).
inline sdrop_status CallSdrop(CallOp op, const sdrop_params* prm, DLTensor* x, DLTensor* y,
                              DLTensor* mask) {
  switch (op) {
    case CallOp::kForward: return sdrop_forward(prm, x, y);
    case CallOp::kBackward: return sdrop_backward(prm, x, y);
    case CallOp::kApplyMask: return sdrop_apply_mask(prm, x, mask, y);
    case CallOp::kMask: return sdrop_mask(prm, y);
  }
  return SDROP_ERROR_INTERNAL;
}

// The tensors of one call (x's or the mask's left zeroed when the op has none).
struct CallTensors {
  DLTensor x{}, y{}, mask{};
};

// The guarded host buffers of a call, filled from rng_seed in one fixed order (x's bytes, x's
// elements, then the mask's bytes and values); the output starts as 0xA5 sentinels. In place,
// there is no y buffer: x's is the output.
class CallBuffers {
 public:
  explicit CallBuffers(const CallSpec& s) : s_(s), inplace_y_strides_(s.inplace_y_strides) {
    std::mt19937_64 rng(s.rng_seed);
    if (s.has_x()) {
      DType t = DType::f32;
      EXPECT_TRUE(sdrop_ref::DTypeFromDL(s.dtype, &t)) << "the tester needs a float dtype";
      const size_t es = ElementSize(s.dtype);
      x_.reset(new TensorBuffer(s.shape, s.dtype, s.x));
      x_->FillRandomBytes(rng);
      int64_t linear = 0;
      sdrop_ref::ForEachIndex(s.shape, [&](const int64_t* idx) {
        sdrop_ref::StoreBits(sdrop_ref::ElementAddress(x_->t(), idx), es,
                             s.x_bits ? s.x_bits(linear++) : RandomValue(t, s.values, rng));
      });
    }
    if (!s.in_place())
      y_.reset(new TensorBuffer(s.shape, s.has_x() ? s.dtype : s.mask_dtype, s.y, 0xA5));
    if (s.op == CallOp::kApplyMask) {
      mask_.reset(new TensorBuffer(sdrop_ref::NoiseShape(s.shape, s.mask_axes), s.mask_dtype, s.m));
      mask_->FillRandomBytes(rng);
      static const uint8_t kU8Values[] = {0, 1, 2, 7, 128, 255, 0, 1};
      const bool is_bool = s.mask_dtype.code == 6;
      sdrop_ref::ForEachIndex(mask_->shape(), [&](const int64_t* idx) {
        *sdrop_ref::ElementAddress(mask_->t(), idx) =
            is_bool ? static_cast<uint8_t>(rng() & 1) : kU8Values[rng() % 8];
      });
    }
  }
  CallBuffers(const CallBuffers&) = delete;
  CallBuffers& operator=(const CallBuffers&) = delete;

  TensorBuffer* x() const { return x_.get(); }
  TensorBuffer* y() const { return y_.get(); }
  TensorBuffer* mask() const { return mask_.get(); }
  TensorBuffer& out() const { return s_.in_place() ? *x_ : *y_; }

  // In place, y is x, with inplace_y_strides when given.
  DLTensor InPlaceY(DLTensor x) const {
    if (!inplace_y_strides_.empty()) x.strides = inplace_y_strides_.data();
    return x;
  }

  // The call's tensors over these buffers, or over copies of their bytes (in place, x and y are
  // both over the output's bytes).
  CallTensors Own() const {
    CallTensors c;
    if (x_) c.x = x_->t();
    c.y = s_.in_place() ? InPlaceY(c.x) : y_->t();
    if (mask_) c.mask = mask_->t();
    return c;
  }
  CallTensors Over(std::vector<uint8_t>& x_bytes, std::vector<uint8_t>& out_bytes,
                   std::vector<uint8_t>& mask_bytes) const {
    CallTensors c;
    if (x_) c.x = x_->RebasedOn(s_.in_place() ? out_bytes : x_bytes);
    c.y = s_.in_place() ? InPlaceY(c.x) : y_->RebasedOn(out_bytes);
    if (mask_) c.mask = mask_->RebasedOn(mask_bytes);
    return c;
  }
  std::vector<uint8_t> XBytes() const { return x_ ? x_->bytes() : std::vector<uint8_t>(); }
  std::vector<uint8_t> MaskBytes() const { return mask_ ? mask_->bytes() : std::vector<uint8_t>(); }

  // Runs the scalar reference on out_bytes (a copy of the output buffer), reading x from a copy
  // of its own: call it before the library writes these buffers.
  void Reference(std::vector<uint8_t>& out_bytes) const {
    std::vector<uint8_t> x_copy = XBytes(), mask_copy = MaskBytes();
    const CallTensors c = Over(x_copy, out_bytes, mask_copy);
    DLTensor x = c.x;
    if (s_.in_place()) x = x_->RebasedOn(x_copy);  // read the input apart from the output
    const sdrop_params prm = s_.params();
    switch (s_.op) {
      case CallOp::kForward:
      case CallOp::kBackward: sdrop_ref::Forward(prm, x, c.y); break;
      case CallOp::kApplyMask: sdrop_ref::ApplyMask(prm, x, c.mask, c.y); break;
      case CallOp::kMask: sdrop_ref::Mask(prm, c.y); break;
    }
  }

 private:
  const CallSpec& s_;
  std::unique_ptr<TensorBuffer> x_, y_, mask_;
  mutable std::vector<int64_t> inplace_y_strides_;  // DLTensor.strides is not const
};

// The CPU check of a spec: the C ABI on the guarded buffers against the reference on copies,
// every output byte compared, inputs unchanged. Returns the output buffer after the call; for
// kMask, `mask_values` (if given) receives the mask's elements in row-major order when the call
// succeeded.
inline std::vector<uint8_t> TestOnCpu(const CallSpec& s,
                                      std::vector<uint8_t>* mask_values = nullptr) {
  SCOPED_TRACE(s.Describe());
  CallBuffers b(s);
  const std::vector<uint8_t> x_before = b.XBytes(), mask_before = b.MaskBytes();
  std::vector<uint8_t> expected = b.out().bytes();
  b.Reference(expected);
  std::vector<uint8_t> unused_x, unused_mask;
  const DLTensor y_ref = b.Over(unused_x, expected, unused_mask).y;

  CallTensors c = b.Own();
  const sdrop_params prm = s.params();
  const sdrop_status st = CallSdrop(s.op, &prm, &c.x, &c.y, &c.mask);
  std::vector<uint8_t>& y_bytes = b.out().bytes();
  EXPECT_EQ(st, SDROP_OK) << sdrop_status_name(st) << ": " << sdrop_last_error();
  if (st != SDROP_OK) return y_bytes;

  CompareOutput(y_bytes, expected, c.y, y_ref, s.has_x() ? "y" : "mask");
  if (b.x() && !s.in_place()) {
    EXPECT_TRUE(b.x()->bytes() == x_before) << "the input x was modified";
  }
  if (b.mask()) {
    EXPECT_TRUE(b.mask()->bytes() == mask_before) << "the input mask was modified";
  }
  if (mask_values && s.op == CallOp::kMask) {
    sdrop_ref::ForEachIndex(s.shape, [&](const int64_t* idx) {
      mask_values->push_back(*sdrop_ref::ElementAddress(c.y, idx));
    });
  }
  return y_bytes;
}

// ---- The dropout tester --------------------------------------------------------------------------

class DropoutTester : public CallBuilder<DropoutTester> {
 public:
  using Op = CallOp;

  // Runs the call and the reference and compares. Returns the output buffer after the call.
  std::vector<uint8_t> Test() const { return TestOnCpu(s_); }
};

// ---- The mask tester (sdrop_mask) ----------------------------------------------------------------

// The same builder with op kMask: shape is the mask's own (the noise shape: extent 1 on axes
// not in mask_axes), and dtype, strides and offsets are the mask's.
class MaskTester : public CallBuilder<MaskTester> {
 public:
  MaskTester() { s_.op = CallOp::kMask; s_.shape = {4, 8, 1, 1}; }
  MaskTester& dtype(DLDataType d) { s_.mask_dtype = d; return *this; }
  MaskTester& strides(std::vector<int64_t> v) { s_.y.strides = std::move(v); return *this; }
  MaskTester& byte_offset(uint64_t b) { s_.y.extra_byte_offset = b; return *this; }
  MaskTester& misalign(size_t b) { s_.y.misalign = b; return *this; }

  // Returns the keep bits in row-major order of the mask shape, as the library wrote them.
  std::vector<uint8_t> Test() const {
    std::vector<uint8_t> bits;
    TestOnCpu(s_, &bits);
    return bits;
  }
};

// ---- Helpers to run a library call directly on small contiguous host vectors --------------------

struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // empty: NULL
  DLTensor t{};
  HostTensor(void* data, std::vector<int64_t> s, DLDataType dtype, std::vector<int64_t> st = {})
      : shape(std::move(s)), strides(std::move(st)) {
    t.data = data;
    t.device = DLDevice{kDLCPU, 0};
    t.ndim = static_cast<int>(shape.size());
    t.dtype = dtype;
    t.shape = shape.empty() ? nullptr : shape.data();
    t.strides = strides.empty() ? nullptr : strides.data();
    t.byte_offset = 0;
  }
  HostTensor(const HostTensor&) = delete;
  HostTensor& operator=(const HostTensor&) = delete;
};

// Scoped CPU ISA cap / thread count, restored on destruction.
class ScopedMaxCpuIsa {
 public:
  explicit ScopedMaxCpuIsa(sdrop_cpu_isa isa) : saved_(sdrop_get_max_cpu_isa()) {
    status_ = sdrop_set_max_cpu_isa(isa);
  }
  ~ScopedMaxCpuIsa() { sdrop_set_max_cpu_isa(saved_); }
  sdrop_status status() const { return status_; }

 private:
  sdrop_cpu_isa saved_;
  sdrop_status status_;
};

// Restores the default (0: all cores) on destruction.
class ScopedNumThreads {
 public:
  explicit ScopedNumThreads(int n) { sdrop_set_num_threads(n); }
  ~ScopedNumThreads() { sdrop_set_num_threads(0); }
};

}  // namespace sdrop_test

#endif  // SDROP_TESTS_DROPOUT_TESTER_H_
