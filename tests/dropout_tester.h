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
    case DType::kF16:
      return {0x7E00, 0xFE00, 0x7C01, 0x7D23, 0xFFFF, 0x7C00, 0xFC00, 0x0000, 0x8000, 0x0001,
              0x8001, 0x03FF, 0x83FF, 0x0400, 0x7BFF, 0xFBFF, 0x3C00, 0xBC00, 0x0200, 0x3BFF};
    case DType::kBF16:
      return {0x7FC0, 0xFFC0, 0x7F81, 0x7FA3, 0xFFFF, 0x7F80, 0xFF80, 0x0000, 0x8000, 0x0001,
              0x8001, 0x007F, 0x807F, 0x0080, 0x7F7F, 0xFF7F, 0x3F80, 0xBF80, 0x0040, 0x3F7F};
    case DType::kF32:
      return {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0x7FA34567u, 0xFFFFFFFFu, 0x7F800000u,
              0xFF800000u, 0x00000000u, 0x80000000u, 0x00000001u, 0x80000001u, 0x007FFFFFu,
              0x807FFFFFu, 0x00800000u, 0x7F7FFFFFu, 0xFF7FFFFFu, 0x3F800000u, 0xBF800000u,
              0x00400000u, 0x3F7FFFFFu};
    case DType::kF64:
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
    case DType::kF16: return sdrop_ref::F32ToF16(static_cast<float>(v));
    case DType::kBF16: return sdrop_ref::F32ToBF16(static_cast<float>(v));
    case DType::kF32: return sdrop_ref::F32ToBits(static_cast<float>(v));
    case DType::kF64: return sdrop_ref::F64ToBits(v);
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


// ---- The dropout tester --------------------------------------------------------------------------

class DropoutTester {
 public:
  enum class Op { kForward, kBackward, kApplyMask };

  DropoutTester& shape(std::vector<int64_t> s) { shape_ = std::move(s); return *this; }
  DropoutTester& dtype(DLDataType d) { dtype_ = d; return *this; }
  DropoutTester& p(double v) { p_ = v; return *this; }
  DropoutTester& seed(uint64_t v) { seed_ = v; return *this; }
  DropoutTester& offset(uint64_t v) { offset_ = v; return *this; }
  DropoutTester& mask_axes(uint32_t v) { mask_axes_ = v; return *this; }
  DropoutTester& flags(uint32_t v) { flags_ = v; return *this; }
  DropoutTester& multiply(bool on) { flags_ = on ? SDROP_FLAG_MULTIPLY : 0u; return *this; }
  DropoutTester& x_strides(std::vector<int64_t> s) { x_.strides = std::move(s); return *this; }
  DropoutTester& y_strides(std::vector<int64_t> s) { y_.strides = std::move(s); return *this; }
  DropoutTester& mask_strides(std::vector<int64_t> s) { m_.strides = std::move(s); return *this; }
  DropoutTester& null_strides(bool on) { x_.null_strides = y_.null_strides = on; return *this; }
  DropoutTester& x_null_strides(bool on) { x_.null_strides = on; return *this; }
  DropoutTester& y_null_strides(bool on) { y_.null_strides = on; return *this; }
  DropoutTester& x_byte_offset(uint64_t b) { x_.extra_byte_offset = b; return *this; }
  DropoutTester& y_byte_offset(uint64_t b) { y_.extra_byte_offset = b; return *this; }
  DropoutTester& x_misalign(size_t b) { x_.misalign = b; return *this; }
  DropoutTester& y_misalign(size_t b) { y_.misalign = b; return *this; }
  DropoutTester& null_data_if_empty(bool on) {
    x_.null_data_if_empty = y_.null_data_if_empty = on;
    return *this;
  }
  // y is x (same data, same strides). inplace_y_strides gives y its own strides, which must
  // only differ from x's on extent-1 axes to still be "in place".
  DropoutTester& inplace(bool on) { inplace_ = on; return *this; }
  DropoutTester& inplace_y_strides(std::vector<int64_t> s) { inplace_y_strides_ = std::move(s); return *this; }
  DropoutTester& values(Values v) { values_ = v; return *this; }
  DropoutTester& op(Op o) { op_ = o; return *this; }
  DropoutTester& mask_dtype(DLDataType d) { mask_dtype_ = d; return *this; }
  DropoutTester& rng_seed(uint64_t s) { rng_seed_ = s; return *this; }

  const std::vector<int64_t>& shape() const { return shape_; }

  sdrop_params params() const { return sdrop_params{p_, seed_, offset_, mask_axes_, flags_}; }

  std::string Describe() const {
    std::ostringstream s;
    s << (op_ == Op::kForward ? "forward" : op_ == Op::kBackward ? "backward" : "apply_mask")
      << " shape=" << VecString(shape_) << " dtype=" << DTypeString(dtype_) << " p=" << std::setprecision(17) << p_ << std::setprecision(6)
      << " seed=" << seed_ << " offset=" << offset_ << " mask_axes=0x" << std::hex << mask_axes_
      << std::dec << " flags=" << flags_ << (inplace_ ? " in-place" : "")
      << " x_strides=" << (x_.null_strides ? "NULL" : VecString(x_.strides))
      << " y_strides=" << (y_.null_strides ? "NULL" : VecString(y_.strides))
      << " x_byte_offset+=" << x_.extra_byte_offset << " y_byte_offset+=" << y_.extra_byte_offset
      << " x_misalign=" << x_.misalign << " y_misalign=" << y_.misalign;
    if (op_ == Op::kApplyMask)
      s << " mask_dtype=" << DTypeString(mask_dtype_) << " mask_strides=" << VecString(m_.strides);
    return s.str();
  }

  // Runs the call and the reference and compares. Returns the output buffer after the call.
  std::vector<uint8_t> Test() const {
    SCOPED_TRACE(Describe());
    std::mt19937_64 rng(rng_seed_);
    DType t;
    EXPECT_TRUE(sdrop_ref::DTypeFromDL(dtype_, &t)) << "tester needs a float dtype";
    const size_t es = ElementSize(dtype_);

    TensorBuffer x(shape_, dtype_, x_);
    x.FillRandomBytes(rng);
    sdrop_ref::ForEachIndex(shape_, [&](const int64_t* idx) {
      sdrop_ref::StoreBits(sdrop_ref::ElementAddress(x.t(), idx), es, RandomValue(t, values_, rng));
    });

    std::unique_ptr<TensorBuffer> y_own;
    std::vector<int64_t> y_inplace_strides;
    DLTensor y_inplace{};
    if (!inplace_) y_own.reset(new TensorBuffer(shape_, dtype_, y_, 0xA5));
    if (inplace_) {
      y_inplace = x.t();
      if (!inplace_y_strides_.empty()) {
        y_inplace_strides = inplace_y_strides_;
        y_inplace.strides = y_inplace_strides.data();
      }
    }
    std::vector<uint8_t>& y_bytes = inplace_ ? x.bytes() : y_own->bytes();
    DLTensor* y_t = inplace_ ? &y_inplace : y_own->tensor();

    std::unique_ptr<TensorBuffer> mask;
    if (op_ == Op::kApplyMask) {
      mask.reset(new TensorBuffer(sdrop_ref::NoiseShape(shape_, mask_axes_), mask_dtype_, m_));
      mask->FillRandomBytes(rng);
      static const uint8_t kU8Values[] = {0, 1, 2, 7, 128, 255, 0, 1};
      sdrop_ref::ForEachIndex(mask->shape(), [&](const int64_t* idx) {
        const bool is_bool = mask_dtype_.code == 6;
        *sdrop_ref::ElementAddress(mask->t(), idx) =
            is_bool ? static_cast<uint8_t>(rng() & 1) : kU8Values[rng() % 8];
      });
    }

    // Reference on copies.
    std::vector<uint8_t> x_before = x.bytes();
    std::vector<uint8_t> x_copy = x.bytes();
    std::vector<uint8_t> y_before = y_bytes;
    std::vector<uint8_t> expected = y_bytes;
    std::vector<uint8_t> mask_before = mask ? mask->bytes() : std::vector<uint8_t>();
    const DLTensor x_ref = x.RebasedOn(x_copy);
    DLTensor y_ref = *y_t;
    if (y_t->data != nullptr)
      y_ref.data = expected.data() + (static_cast<uint8_t*>(y_t->data) - y_bytes.data());
    const sdrop_params prm = params();
    switch (op_) {
      case Op::kForward:
      case Op::kBackward: sdrop_ref::Forward(prm, x_ref, y_ref); break;
      case Op::kApplyMask: sdrop_ref::ApplyMask(prm, x_ref, mask->t(), y_ref); break;
    }

    sdrop_status st = SDROP_ERROR_INTERNAL;
    switch (op_) {
      case Op::kForward: st = sdrop_forward(&prm, x.tensor(), y_t); break;
      case Op::kBackward: st = sdrop_backward(&prm, x.tensor(), y_t); break;
      case Op::kApplyMask: st = sdrop_apply_mask(&prm, x.tensor(), mask->tensor(), y_t); break;
    }
    EXPECT_EQ(st, SDROP_OK) << sdrop_status_name(st) << ": " << sdrop_last_error();
    if (st != SDROP_OK) return y_bytes;

    CompareOutput(y_bytes, expected, *y_t, y_ref, "y");
    if (!inplace_) {
      EXPECT_TRUE(x.bytes() == x_before) << "the input x was modified";
    }
    if (mask) {
      EXPECT_TRUE(mask->bytes() == mask_before) << "the input mask was modified";
    }
    return y_bytes;
  }

 private:
  std::vector<int64_t> shape_{2, 3, 4, 5};
  DLDataType dtype_ = kF32;
  double p_ = 0.5;
  uint64_t seed_ = 0x0123456789ABCDEFull;
  uint64_t offset_ = 42;
  uint32_t mask_axes_ = 0x3u;
  uint32_t flags_ = 0;
  Layout x_, y_, m_;
  bool inplace_ = false;
  std::vector<int64_t> inplace_y_strides_;
  Values values_ = Values::kMixed;
  Op op_ = Op::kForward;
  DLDataType mask_dtype_ = kU8;
  uint64_t rng_seed_ = 7;
};

// ---- The mask tester (sdrop_mask) ----------------------------------------------------------------

class MaskTester {
 public:
  // The mask's own shape: the noise shape (extent 1 on axes not in mask_axes).
  MaskTester& shape(std::vector<int64_t> s) { shape_ = std::move(s); return *this; }
  MaskTester& mask_axes(uint32_t v) { mask_axes_ = v; return *this; }
  MaskTester& dtype(DLDataType d) { dtype_ = d; return *this; }
  MaskTester& p(double v) { p_ = v; return *this; }
  MaskTester& seed(uint64_t v) { seed_ = v; return *this; }
  MaskTester& offset(uint64_t v) { offset_ = v; return *this; }
  MaskTester& flags(uint32_t v) { flags_ = v; return *this; }
  MaskTester& strides(std::vector<int64_t> s) { layout_.strides = std::move(s); return *this; }
  MaskTester& null_strides(bool on) { layout_.null_strides = on; return *this; }
  MaskTester& byte_offset(uint64_t b) { layout_.extra_byte_offset = b; return *this; }
  MaskTester& misalign(size_t b) { layout_.misalign = b; return *this; }

  std::string Describe() const {
    std::ostringstream s;
    s << "mask shape=" << VecString(shape_) << " dtype=" << DTypeString(dtype_) << " p=" << std::setprecision(17) << p_ << std::setprecision(6)
      << " seed=" << seed_ << " offset=" << offset_ << " mask_axes=0x" << std::hex << mask_axes_
      << std::dec << " strides=" << (layout_.null_strides ? "NULL" : VecString(layout_.strides))
      << " byte_offset+=" << layout_.extra_byte_offset << " misalign=" << layout_.misalign;
    return s.str();
  }

  // Returns the keep bits in row-major order of the mask shape, as the library wrote them.
  std::vector<uint8_t> Test() const {
    SCOPED_TRACE(Describe());
    TensorBuffer m(shape_, dtype_, layout_, 0xA5);
    std::vector<uint8_t> expected = m.bytes();
    const DLTensor m_ref = m.RebasedOn(expected);
    const sdrop_params prm{p_, seed_, offset_, mask_axes_, flags_};
    sdrop_ref::Mask(prm, m_ref);
    const sdrop_status st = sdrop_mask(&prm, m.tensor());
    EXPECT_EQ(st, SDROP_OK) << sdrop_status_name(st) << ": " << sdrop_last_error();
    std::vector<uint8_t> bits;
    if (st != SDROP_OK) return bits;
    CompareOutput(m.bytes(), expected, m.t(), m_ref, "mask");
    sdrop_ref::ForEachIndex(shape_, [&](const int64_t* idx) {
      bits.push_back(*sdrop_ref::ElementAddress(m.t(), idx));
    });
    return bits;
  }

 private:
  std::vector<int64_t> shape_{4, 8, 1, 1};
  uint32_t mask_axes_ = 0x3u;
  DLDataType dtype_ = kU8;
  double p_ = 0.5;
  uint64_t seed_ = 0x0123456789ABCDEFull;
  uint64_t offset_ = 42;
  uint32_t flags_ = 0;
  Layout layout_;
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
