// The fused channel epilogue (SPEC section 9; sdrop.h, sdrop_epilogue_forward):
//   y = post(residual + dropout(act(x + bias)))
// checked bit for bit against the UNFUSED sequence computed here one step at a time, every step
// rounded to the storage dtype (float16/bfloat16 in float32, then round to nearest even; float32
// in float; float64 in double), with the dropout step done by the library's own sdrop_forward
// (or sdrop_forward_sharded) with the same params, so the mask is the library's. The default
// mode's dropped channels are also checked directly (post(residual + 0), whatever x holds, and x
// never read for a large rows call), and every refusal returns its status, names the argument
// and writes nothing.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dropout_tester.h"

namespace sdrop_test {
namespace {

using sdrop_ref::DType;

// ---- The unfused sequence, one rounded step at a time -------------------------------------------

DType TypeOf(DLDataType d) {
  DType t = DType::f32;
  EXPECT_TRUE(sdrop_ref::DTypeFromDL(d, &t)) << DTypeString(d);
  return t;
}

double AsDouble(DType t, uint64_t b) {
  switch (t) {
    case DType::f16: return sdrop_ref::F16ToF32(static_cast<uint16_t>(b));
    case DType::bf16: return sdrop_ref::BF16ToF32(static_cast<uint16_t>(b));
    case DType::f32: return sdrop_ref::BitsToF32(static_cast<uint32_t>(b));
    case DType::f64: return sdrop_ref::BitsToF64(b);
    default: break;
  }
  return 0.0;
}

// a + b as the separate elementwise add would store it: in float32 for the 16-bit formats (then
// rounded to nearest even), in float for float32, in double for float64.
uint64_t AddRounded(DType t, uint64_t a, uint64_t b) {
  switch (t) {
    case DType::f16:
      return sdrop_ref::F32ToF16(sdrop_ref::F16ToF32(static_cast<uint16_t>(a)) +
                                 sdrop_ref::F16ToF32(static_cast<uint16_t>(b)));
    case DType::bf16:
      return sdrop_ref::F32ToBF16(sdrop_ref::BF16ToF32(static_cast<uint16_t>(a)) +
                                  sdrop_ref::BF16ToF32(static_cast<uint16_t>(b)));
    case DType::f32:
      return sdrop_ref::F32ToBits(sdrop_ref::BitsToF32(static_cast<uint32_t>(a)) +
                                  sdrop_ref::BitsToF32(static_cast<uint32_t>(b)));
    case DType::f64: return sdrop_ref::F64ToBits(sdrop_ref::BitsToF64(a) + sdrop_ref::BitsToF64(b));
    default: break;
  }
  return 0;
}

// relu(t) = t if t > 0, NaN if t is NaN, else +0.0 (all-zero bits in every format).
uint64_t Activation(DType t, int32_t act, uint64_t v) {
  if (act == SDROP_ACTIVATION_IDENTITY) return v;
  if (sdrop_ref::IsNaN(t, v)) return v;
  return AsDouble(t, v) > 0.0 ? v : 0;
}

const char* ActName(int32_t a) { return a == SDROP_ACTIVATION_RELU ? "relu" : "identity"; }

// A tensor's elements in row-major order.
std::vector<uint64_t> ElementsOf(const DLTensor& t) {
  std::vector<uint64_t> out;
  const size_t es = ElementSize(t.dtype);
  sdrop_ref::ForEachIndex(sdrop_ref::Shape(t), [&](const int64_t* idx) {
    out.push_back(sdrop_ref::LoadBits(sdrop_ref::ElementAddress(t, idx), es));
  });
  return out;
}

// The unfused sequence on the current contents of x, bias and residual (call it before the fused
// call can write them): t = x + bias[c], a = act(t), d = sdrop_forward(params, a) (the library's
// own dropout and mask; sdrop_forward_sharded with the same shard when there is one),
// z = residual + d, y = post(z). Returns y's elements in row-major order.
std::vector<uint64_t> Unfused(const sdrop_params& prm, const sdrop_shard* shard,
                              const sdrop_epilogue& e, const DLTensor& x) {
  sdrop_ref::ScopedDefaultFpEnv env;
  const DType t = TypeOf(x.dtype);
  const size_t es = sdrop_ref::DTypeSize(t);
  std::vector<int64_t> shape = sdrop_ref::Shape(x);
  const std::vector<uint64_t> xv = ElementsOf(x);
  const std::vector<uint64_t> bv = e.bias ? ElementsOf(*e.bias) : std::vector<uint64_t>();
  const std::vector<uint64_t> rv = e.residual ? ElementsOf(*e.residual) : std::vector<uint64_t>();
  const size_t n = xv.size();

  // t = x + bias, a = act(t): the tensor the separate dropout would be given.
  std::vector<uint8_t> a_bytes(n * es + 1), d_bytes(n * es + 1, 0xA5);
  size_t i = 0;
  sdrop_ref::ForEachIndex(shape, [&](const int64_t* idx) {
    uint64_t v = xv[i];
    if (e.bias) v = AddRounded(t, v, bv[static_cast<size_t>(idx[e.channel_axis])]);
    sdrop_ref::StoreBits(a_bytes.data() + i * es, es, Activation(t, e.act, v));
    ++i;
  });
  DLTensor a{a_bytes.data(), {kDLCPU, 0}, x.ndim, x.dtype, shape.empty() ? nullptr : shape.data(),
             nullptr, 0};
  DLTensor d = a;
  d.data = d_bytes.data();
  const sdrop_status st =
      shard ? sdrop_forward_sharded(&prm, shard, &a, &d) : sdrop_forward(&prm, &a, &d);
  EXPECT_EQ(st, SDROP_OK) << "the unfused dropout step: " << sdrop_last_error();

  // z = residual + d, y = post(z).
  std::vector<uint64_t> y(n);
  for (size_t k = 0; k < n; ++k) {
    const uint64_t dv = sdrop_ref::LoadBits(d_bytes.data() + k * es, es);
    const uint64_t z = e.residual ? AddRounded(t, rv[k], dv) : dv;
    y[k] = Activation(t, e.post, z);
  }
  return y;
}

// Compares a tensor's elements (row-major) with expected bits; a NaN only has to stay a NaN.
int64_t CompareElements(const DLTensor& y, const std::vector<uint64_t>& expected,
                        const std::string& what) {
  const DType t = TypeOf(y.dtype);
  const std::vector<uint64_t> got = ElementsOf(y);
  EXPECT_EQ(got.size(), expected.size());
  int64_t bad = 0;
  const std::vector<int64_t> shape = sdrop_ref::Shape(y);
  size_t i = 0;
  sdrop_ref::ForEachIndex(shape, [&](const int64_t* idx) {
    if (i >= expected.size() || i >= got.size()) return;
    const uint64_t g = got[i], w = expected[i];
    const bool same = g == w || (sdrop_ref::IsNaN(t, g) && sdrop_ref::IsNaN(t, w));
    if (!same && ++bad <= 8)
      ADD_FAILURE() << what << ": element " << VecString(std::vector<int64_t>(idx, idx + shape.size()))
                    << " expected " << sdrop_ref::HexBits(t, w) << " got " << sdrop_ref::HexBits(t, g);
    ++i;
  });
  return bad;
}

// ---- One fused call, described --------------------------------------------------------------------

enum class Alias {
  kNone,
  kYIsX,          // in place: y is x
  kResidualIsY,   // an in-place add: the residual is y (y apart from x)
  kResidualIsX,   // the residual is x
  kAllOne,        // y is x and the residual is x (so y too)
};

const char* AliasName(Alias a) {
  switch (a) {
    case Alias::kNone: return "none";
    case Alias::kYIsX: return "y=x";
    case Alias::kResidualIsY: return "residual=y";
    case Alias::kResidualIsX: return "residual=x";
    case Alias::kAllOne: return "y=x=residual";
  }
  return "?";
}

struct EpiCase {
  std::vector<int64_t> shape{2, 5, 3, 7};
  DLDataType dtype = kF32;
  double p = 0.5;
  uint64_t seed = 0x0123456789ABCDEFull;
  uint64_t offset = 0xFEDCBA9876543210ull;
  uint32_t mask_axes = 0x3u;
  uint32_t flags = 0;
  bool bias = true;
  int32_t channel_axis = 1;
  int64_t bias_stride = 1;
  bool residual = true;
  int32_t act = SDROP_ACTIVATION_RELU, post = SDROP_ACTIVATION_RELU;
  std::vector<int64_t> xs, ys, rs;  // strides in elements; empty: compact
  uint64_t x_off = 0, y_off = 0, r_off = 0, b_off = 0;  // extra byte offsets
  size_t misalign = 0;  // bytes added to the data pointers (x; y, residual, bias get others)
  bool null_data_if_empty = false;
  Alias alias = Alias::kNone;
  Values values = Values::kMixed;
  bool shard = false;  // pass origin / logical below
  std::vector<int64_t> origin, logical;  // empty (with shard): NULL
  uint64_t rng_seed = 1;

  // Combination k of 16: bias, residual, act, post.
  EpiCase& combo(int k) {
    bias = k & 1;
    residual = (k >> 1) & 1;
    act = (k >> 2) & 1;
    post = (k >> 3) & 1;
    return *this;
  }

  std::string Describe() const {
    std::ostringstream s;
    s << "epilogue shape=" << VecString(shape) << " dtype=" << DTypeString(dtype)
      << " p=" << std::setprecision(17) << p << std::setprecision(6) << " seed=" << seed
      << " offset=" << offset << " mask_axes=0x" << std::hex << mask_axes << std::dec
      << " flags=" << flags << " bias=" << (bias ? "yes" : "no") << " channel_axis="
      << channel_axis << " bias_stride=" << bias_stride << " residual=" << (residual ? "yes" : "no")
      << " act=" << ActName(act) << " post=" << ActName(post) << " alias=" << AliasName(alias)
      << " x_strides=" << VecString(xs) << " y_strides=" << VecString(ys)
      << " r_strides=" << VecString(rs) << " offsets=" << x_off << "/" << y_off << "/" << r_off
      << "/" << b_off << " misalign=" << misalign << " values=" << int(values) << " rng_seed=" << rng_seed;
    if (shard) s << " shard origin=" << VecString(origin) << " logical=" << VecString(logical);
    return s.str();
  }
};

void FillElements(TensorBuffer& b, DType t, Values v, std::mt19937_64& rng) {
  const size_t es = sdrop_ref::DTypeSize(t);
  sdrop_ref::ForEachIndex(b.shape(), [&](const int64_t* idx) {
    sdrop_ref::StoreBits(sdrop_ref::ElementAddress(b.t(), idx), es, RandomValue(t, v, rng));
  });
}

// Runs the case: guarded buffers, the unfused sequence on the inputs as they are before the call,
// the fused call, then every byte of the output buffer (y's elements by value, the rest exactly)
// and every input buffer that is not the output (exactly). Returns y's elements (row-major) after
// the call.
std::vector<uint64_t> RunCase(const EpiCase& c) {
  SCOPED_TRACE(c.Describe());
  const DType t = TypeOf(c.dtype);
  std::mt19937_64 rng(c.rng_seed);
  const bool y_is_x = c.alias == Alias::kYIsX || c.alias == Alias::kAllOne;
  const bool r_is_x = c.residual && (c.alias == Alias::kResidualIsX || c.alias == Alias::kAllOne);
  const bool r_is_y = c.residual && c.alias == Alias::kResidualIsY;

  Layout lx, ly, lr, lb;
  lx.strides = c.xs;
  lx.extra_byte_offset = c.x_off;
  ly.strides = c.ys;
  ly.extra_byte_offset = c.y_off;
  lr.strides = c.rs;
  lr.extra_byte_offset = c.r_off;
  lb.strides = {c.bias_stride};
  lb.extra_byte_offset = c.b_off;
  lx.misalign = c.misalign;
  ly.misalign = (c.misalign * 3) % 8;
  lr.misalign = (c.misalign * 5) % 8;
  lb.misalign = (c.misalign * 7) % 8;
  lx.null_data_if_empty = ly.null_data_if_empty = lr.null_data_if_empty = lb.null_data_if_empty =
      c.null_data_if_empty;

  TensorBuffer xb(c.shape, c.dtype, lx);
  xb.FillRandomBytes(rng);
  FillElements(xb, t, c.values, rng);
  std::unique_ptr<TensorBuffer> yb, rb, bb;
  if (!y_is_x) {
    yb.reset(new TensorBuffer(c.shape, c.dtype, ly, 0xA5));
    if (r_is_y) FillElements(*yb, t, c.values, rng);  // y holds the residual
  }
  if (c.residual && !r_is_x && !r_is_y) {
    rb.reset(new TensorBuffer(c.shape, c.dtype, lr));
    rb->FillRandomBytes(rng);
    FillElements(*rb, t, c.values, rng);
  }
  if (c.bias) {
    const int64_t channels =
        c.channel_axis >= 0 && c.channel_axis < int32_t(c.shape.size()) ? c.shape[c.channel_axis] : 1;
    bb.reset(new TensorBuffer({channels}, c.dtype, lb));
    bb->FillRandomBytes(rng);
    FillElements(*bb, t, c.values, rng);
  }

  DLTensor x = xb.t();
  DLTensor y = y_is_x ? x : yb->t();
  DLTensor r{}, b{};
  if (c.residual) r = r_is_x ? x : r_is_y ? y : rb->t();
  if (c.bias) b = bb->t();
  const sdrop_epilogue e{c.bias ? &b : nullptr, c.residual ? &r : nullptr, c.channel_axis, c.act,
                         c.post};
  const sdrop_params prm{c.p, c.seed, c.offset, c.mask_axes, c.flags};
  const sdrop_shard sh{c.origin.empty() ? nullptr : c.origin.data(),
                       c.logical.empty() ? nullptr : c.logical.data()};
  const sdrop_shard* shard = c.shard ? &sh : nullptr;

  // The expected output buffer: as it is now, with y's elements replaced by the unfused result.
  TensorBuffer& out = y_is_x ? xb : *yb;
  const std::vector<uint64_t> want = Unfused(prm, shard, e, x);
  std::vector<uint8_t> expected = out.bytes();
  {
    DLTensor ye = out.RebasedOn(expected);
    if (y_is_x) ye.strides = x.strides;
    size_t i = 0;
    const size_t es = sdrop_ref::DTypeSize(t);
    sdrop_ref::ForEachIndex(c.shape, [&](const int64_t* idx) {
      sdrop_ref::StoreBits(sdrop_ref::ElementAddress(ye, idx), es, want[i++]);
    });
  }
  const std::vector<uint8_t> x_before = xb.bytes();
  const std::vector<uint8_t> r_before = rb ? rb->bytes() : std::vector<uint8_t>();
  const std::vector<uint8_t> b_before = bb ? bb->bytes() : std::vector<uint8_t>();

  const sdrop_status st = sdrop_epilogue_forward(&prm, shard, &e, &x, &y);
  EXPECT_EQ(st, SDROP_OK) << sdrop_status_name(st) << ": " << sdrop_last_error();
  if (st != SDROP_OK) return {};

  const DLTensor y_expected = out.RebasedOn(expected);
  CompareOutput(out.bytes(), expected, y, y_expected, "y");
  if (!y_is_x) {
    EXPECT_TRUE(xb.bytes() == x_before) << "the input x was modified";
  }
  if (rb) {
    EXPECT_TRUE(rb->bytes() == r_before) << "the input residual was modified";
  }
  if (bb) {
    EXPECT_TRUE(bb->bytes() == b_before) << "the input bias was modified";
  }
  return ElementsOf(y);
}

// Spatial-dropout layouts: shape, mask axes, channel axis.
struct LayoutCase {
  const char* name;
  std::vector<int64_t> shape;
  uint32_t mask_axes;
  int32_t channel_axis;
};

const std::vector<LayoutCase>& SpatialLayouts() {
  static const std::vector<LayoutCase> all = {
      {"NCHW", {2, 5, 3, 7}, 0x3u, 1},
      {"NHWC", {2, 3, 7, 5}, 0x9u, 3},
      {"NCL (1-D)", {2, 5, 7}, 0x3u, 1},
      {"NLC (1-D)", {2, 7, 5}, 0x5u, 2},
      {"NCDHW (3-D)", {2, 3, 2, 3, 5}, 0x3u, 1},
      {"NDHWC (3-D)", {2, 2, 3, 5, 3}, 0x11u, 4},
      {"CHW unbatched", {5, 3, 7}, 0x1u, 0},
      {"CL unbatched (1-D)", {5, 9}, 0x1u, 0},
      {"HWC unbatched, channels last", {3, 7, 5}, 0x4u, 2},
  };
  return all;
}

const double kPs[] = {0.0, 0.3, 0.5, 1.0};
const uint32_t kFlagSets[] = {0u, SDROP_FLAG_MULTIPLY, SDROP_FLAG_SCALE_IN_DTYPE,
                              SDROP_FLAG_MULTIPLY | SDROP_FLAG_SCALE_IN_DTYPE};

std::string ParamName(const testing::TestParamInfo<DLDataType>& info) {
  return DTypeString(info.param);
}

class EpilogueDType : public testing::TestWithParam<DLDataType> {};
INSTANTIATE_TEST_SUITE_P(Epilogue, EpilogueDType, testing::ValuesIn(AllDTypes()), ParamName);

// Every combination of bias x residual x act x post, every flag set, p in {0, 0.3, 0.5, 1},
// 64-bit seeds and offsets, NCHW and NHWC.
TEST_P(EpilogueDType, EveryCombinationFlagsAndPBothLayouts) {
  std::mt19937_64 rng(0xE91 + GetParam().code * 64 + GetParam().bits);
  for (int layout = 0; layout < 2; ++layout) {
    const LayoutCase& l = SpatialLayouts()[layout];
    SCOPED_TRACE(l.name);
    for (int k = 0; k < 16; ++k)
      for (uint32_t flags : kFlagSets)
        for (double p : kPs) {
          EpiCase c;
          c.combo(k);
          c.shape = l.shape;
          c.mask_axes = l.mask_axes;
          c.channel_axis = l.channel_axis;
          c.dtype = GetParam();
          c.flags = flags;
          c.p = p;
          c.seed = rng();
          c.offset = rng();
          c.rng_seed = rng();
          RunCase(c);
          if (FailedParts() > kEnoughFailures) return;
        }
  }
}

// 1-D and 3-D spatial ranks, unbatched input, rank 1 and rank 0, both layouts.
TEST_P(EpilogueDType, SpatialRanksAndUnbatchedInput) {
  std::mt19937_64 rng(0xE92 + GetParam().code * 64 + GetParam().bits);
  for (const LayoutCase& l : SpatialLayouts())
    for (int k = 0; k < 16; ++k)
      for (double p : {0.3, 0.5}) {
        SCOPED_TRACE(l.name);
        EpiCase c;
        c.combo(k);
        c.shape = l.shape;
        c.mask_axes = l.mask_axes;
        c.channel_axis = l.channel_axis;
        c.dtype = GetParam();
        c.flags = kFlagSets[rng() % 4];
        c.p = p;
        c.seed = rng();
        c.offset = rng();
        c.rng_seed = rng();
        RunCase(c);
        if (FailedParts() > kEnoughFailures) return;
      }
  // Rank 1 (a vector of channels) and rank 0 (no channel axis: no bias).
  for (int k = 0; k < 16; ++k) {
    EpiCase c;
    c.combo(k);
    c.shape = {9};
    c.mask_axes = 0x1u;
    c.channel_axis = 0;
    c.dtype = GetParam();
    c.seed = rng();
    c.rng_seed = rng();
    RunCase(c);
    c.combo(k & ~1);
    c.shape = {};
    c.mask_axes = 0u;
    for (double p : {0.0, 0.5, 1.0}) {
      c.p = p;
      c.seed = rng();
      RunCase(c);
    }
  }
}

// Mask axes that are not spatial: elementwise dropout (every axis), per-sample (axis 0), one draw
// for the whole tensor (none), and sets that leave the channel axis out.
TEST_P(EpilogueDType, MaskAxesThatAreNotSpatial) {
  std::mt19937_64 rng(0xE93 + GetParam().code * 64 + GetParam().bits);
  for (uint32_t axes : {0xFu, 0x1u, 0x0u, 0x4u, 0x6u, 0xAu})
    for (int32_t channel_axis : {1, 3, 0})
      for (int k = 0; k < 16; ++k) {
        EpiCase c;
        c.combo(k);
        c.mask_axes = axes;
        c.channel_axis = channel_axis;
        c.dtype = GetParam();
        c.flags = kFlagSets[rng() % 4];
        c.p = k % 3 == 0 ? 0.3 : 0.5;
        c.seed = rng();
        c.offset = rng();
        c.rng_seed = rng();
        RunCase(c);
        if (FailedParts() > kEnoughFailures) return;
      }
}

// A bias of one channel never uses its stride, so any stride is fine there, the extremes
// included (negating INT64_MIN was undefined behaviour in the span check; found by the fuzzer).
TEST_P(EpilogueDType, OneChannelBiasTakesAnyStride) {
  for (int64_t bias_stride : {INT64_MIN, INT64_MIN + 1, INT64_MAX})
    for (int k : {1, 5, 15}) {
      EpiCase c;
      c.combo(k);
      c.dtype = GetParam();
      c.shape = {2, 1, 3, 7};
      c.bias_stride = bias_stride;
      c.p = 0.5;
      c.seed = 7 + k;
      RunCase(c);
    }
}

// Non-contiguous strides: transposed, reversed, padded rows; y and the residual in layouts of
// their own; bias with stride 2, 0 (one value broadcast), -1; byte offsets.
TEST_P(EpilogueDType, NonContiguousStridesAndBiasStrides) {
  const std::vector<int64_t> shape{2, 5, 3, 7};
  const std::vector<int64_t> padded{5 * 3 * 9, 3 * 9, 9, 1};  // rows of 7 in 9
  struct S { std::vector<int64_t> xs, ys, rs; };
  const std::vector<S> layouts = {
      {Strides(shape, {3, 2, 1, 0}), {}, {}},                        // x transposed
      {{}, Strides(shape, {0, 2, 3, 1}), {}},                        // y channels last in memory
      {{}, {}, Strides(shape, {1, 0, 3, 2})},                        // residual permuted
      {Strides(shape, Identity(4), {}, 0xFu), {}, {}},               // x fully reversed
      {{}, Strides(shape, Identity(4), {}, 0x5u), Strides(shape, Identity(4), {}, 0xAu)},
      {padded, {}, {}},                                              // x with a padded row stride
      {padded, padded, padded},
      {Strides(shape, {2, 3, 0, 1}, {1, 2, 1, 1}), Strides(shape, {3, 2, 1, 0}, {}, 0x2u),
       Strides(shape, Identity(4), {1, 1, 1, 3}, 0x8u)},
      {{0, 21, 7, 1}, {}, {0, 0, 7, 1}},                             // broadcast x and residual
  };
  std::mt19937_64 rng(0xE94 + GetParam().code * 64 + GetParam().bits);
  for (const S& s : layouts)
    for (int64_t bias_stride : {1, 2, 0, -1, -3})
      for (int k : {1, 3, 5, 7, 13, 15, 2}) {
        EpiCase c;
        c.combo(k);
        c.dtype = GetParam();
        c.xs = s.xs;
        c.ys = s.ys;
        c.rs = s.rs;
        c.bias_stride = bias_stride;
        c.x_off = rng() % 3 * ElementSize(c.dtype);
        c.y_off = rng() % 3 * ElementSize(c.dtype);
        c.r_off = rng() % 3 * ElementSize(c.dtype);
        c.b_off = rng() % 3 * ElementSize(c.dtype);
        c.misalign = rng() % 8;  // any alignment (section 5)
        c.flags = kFlagSets[rng() % 4];
        c.p = 0.5;
        c.seed = rng();
        c.offset = rng();
        c.rng_seed = rng();
        RunCase(c);
        // The same in channels-last order.
        c.shape = {2, 3, 7, 5};
        c.mask_axes = 0x9u;
        c.channel_axis = 3;
        c.xs = s.xs.empty() ? s.xs : RandomStrides(c.shape, rng);
        c.ys = s.ys.empty() ? s.ys : RandomStrides(c.shape, rng);
        c.rs = s.rs.empty() ? s.rs : RandomStrides(c.shape, rng);
        RunCase(c);
        if (FailedParts() > kEnoughFailures) return;
      }
}

// In place (y == x), an in-place add (residual == y), residual == x, and all three one tensor,
// with compact and non-contiguous layouts.
TEST_P(EpilogueDType, InPlaceAndAliasedResidual) {
  std::mt19937_64 rng(0xE95 + GetParam().code * 64 + GetParam().bits);
  for (Alias alias : {Alias::kYIsX, Alias::kResidualIsY, Alias::kResidualIsX, Alias::kAllOne})
    for (int layout = 0; layout < 2; ++layout)
      for (int k = 0; k < 16; ++k)
        for (int strided = 0; strided < 2; ++strided) {
          if ((alias != Alias::kYIsX) && !(k & 2)) continue;  // those need a residual
          const LayoutCase& l = SpatialLayouts()[layout];
          EpiCase c;
          c.combo(k);
          c.alias = alias;
          c.shape = l.shape;
          c.mask_axes = l.mask_axes;
          c.channel_axis = l.channel_axis;
          c.dtype = GetParam();
          if (strided) {
            c.xs = RandomStrides(c.shape, rng);
            c.ys = RandomStrides(c.shape, rng);  // y's own (unless y is x)
            c.rs = RandomStrides(c.shape, rng);
          }
          c.flags = kFlagSets[rng() % 4];
          c.p = kPs[rng() % 4];
          c.seed = rng();
          c.offset = rng();
          c.rng_seed = rng();
          RunCase(c);
          if (FailedParts() > kEnoughFailures) return;
        }
}

// NaN (quiet, signaling, payloads), +-Inf, -0.0, denormals, extremes and negative values in x,
// bias and residual, in kept and dropped channels, both modes.
TEST_P(EpilogueDType, SpecialValues) {
  std::mt19937_64 rng(0xE96 + GetParam().code * 64 + GetParam().bits);
  for (Values v : {Values::kSpecials, Values::kMixed})
    for (int k = 0; k < 16; ++k)
      for (uint32_t flags : kFlagSets)
        for (double p : {v == Values::kSpecials ? 0.0 : 1.0, 0.5}) {
          EpiCase c;
          c.combo(k);
          c.shape = {4, 8, 25};
          c.dtype = GetParam();
          c.values = v;
          c.flags = flags;
          c.p = p;
          c.seed = rng();
          c.offset = rng();
          c.rng_seed = rng();
          RunCase(c);
          if (FailedParts() > kEnoughFailures) return;
        }
}

// A shard (origin, logical shape) gives exactly the matching slice of the whole-tensor call
// (bias: the slice of the whole bias on the channel axis; residual: the slice of the whole
// residual); and each shard is the unfused sequence with sdrop_forward_sharded.
TEST_P(EpilogueDType, ShardIsTheSliceOfTheWholeCall) {
  const DLDataType dt = GetParam();
  const DType t = TypeOf(dt);
  const size_t es = ElementSize(dt);
  std::mt19937_64 rng(0xE97 + dt.code * 64 + dt.bits);
  struct L { std::vector<int64_t> shape; uint32_t axes; int32_t ch; };
  for (const L& l : {L{{6, 5, 3, 4}, 0x3u, 1}, L{{6, 3, 4, 5}, 0x9u, 3}, L{{6, 5, 3, 4}, 0xFu, 1},
                     L{{6, 5, 3, 4}, 0x1u, 2}})
    for (int k : {15, 3, 1, 12, 0})
      for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY}) {
        SCOPED_TRACE(testing::Message() << "logical " << VecString(l.shape) << " axes 0x" << std::hex
                                        << l.axes << std::dec << " combo " << k << " flags " << flags);
        EpiCase c;
        c.combo(k);
        const std::vector<int64_t>& Ls = l.shape;
        TensorBuffer X(Ls, dt, Layout{}), R(Ls, dt, Layout{}), B({Ls[l.ch]}, dt, Layout{});
        TensorBuffer Y(Ls, dt, Layout{}, 0xA5);
        FillElements(X, t, Values::kMixed, rng);
        FillElements(R, t, Values::kMixed, rng);
        FillElements(B, t, Values::kMixed, rng);
        const sdrop_params prm{0.5, rng(), rng(), l.axes, flags};
        const sdrop_epilogue whole{c.bias ? B.tensor() : nullptr, c.residual ? R.tensor() : nullptr,
                                   l.ch, c.act, c.post};
        ASSERT_EQ(sdrop_epilogue_forward(&prm, nullptr, &whole, X.tensor(), Y.tensor()), SDROP_OK)
            << sdrop_last_error();
        const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shards = {
            {{0, 0, 0, 0}, {2, 0, 0, 0}}, {{2, 0, 0, 0}, {4, 0, 0, 0}}, {{0, 2, 0, 0}, {6, 2, 0, 0}},
            {{4, 1, 0, 0}, {2, 2, 0, 0}}, {{1, 1, 1, 1}, {3, 2, 2, 3}}, {{5, 1, 2, 3}, {1, 1, 1, 1}}};
        for (auto [origin, extent] : shards) {
          // origin and extent are written in (N, C, ...) order; for channels last the channel
          // split goes to the last axis. Extent 0 here: the rest of the axis.
          if (l.ch == 3) {
            std::swap(origin[1], origin[3]);
            std::swap(extent[1], extent[3]);
          }
          for (size_t i = 0; i < 4; ++i) {
            origin[i] = std::min(origin[i], Ls[i] - 1);
            extent[i] = extent[i] == 0 ? Ls[i] - origin[i] : std::min(extent[i], Ls[i] - origin[i]);
          }
          SCOPED_TRACE(VecString(origin) + " + " + VecString(extent));
          auto view = [&](TensorBuffer& whole_t) {
            DLTensor v = whole_t.t();
            int64_t off = 0;
            for (size_t i = 0; i < 4; ++i) off += origin[i] * whole_t.strides()[i];
            v.byte_offset += uint64_t(off) * es;
            v.shape = extent.data();
            return v;
          };
          DLTensor xs = view(X), rs = view(R), ys_whole = view(Y);
          DLTensor bs = B.t();
          std::vector<int64_t> bshape = {extent[l.ch]};
          bs.shape = bshape.data();
          bs.byte_offset += uint64_t(origin[l.ch]) * es;
          TensorBuffer ys(extent, dt, Layout{}, 0xA5);
          const sdrop_epilogue part{c.bias ? &bs : nullptr, c.residual ? &rs : nullptr, l.ch, c.act,
                                    c.post};
          const sdrop_shard shard{origin.data(), Ls.data()};
          const std::vector<uint64_t> want = Unfused(prm, &shard, part, xs);
          ASSERT_EQ(sdrop_epilogue_forward(&prm, &shard, &part, &xs, ys.tensor()), SDROP_OK)
              << sdrop_last_error();
          CompareElements(*ys.tensor(), ElementsOf(ys_whole), "shard vs whole");
          CompareElements(*ys.tensor(), want, "shard vs unfused");
        }
        if (FailedParts() > kEnoughFailures) return;
      }
  // Through RunCase too: NULL origin, NULL logical shape, and a shard with strided tensors.
  for (int k = 0; k < 16; ++k) {
    EpiCase c;
    c.combo(k);
    c.dtype = dt;
    c.shard = true;
    c.seed = rng();
    c.rng_seed = rng();
    RunCase(c);  // both NULL
    c.origin = {3, 2, 0, 0};
    c.logical = {8, 9, 3, 7};
    c.xs = RandomStrides(c.shape, rng);
    c.rs = RandomStrides(c.shape, rng);
    c.ys = RandomStrides(c.shape, rng);
    c.bias_stride = 2;
    RunCase(c);
    c.origin.clear();  // NULL origin: zeros
    RunCase(c);
    c.origin = {0, 0, 0, 0};
    c.logical.clear();  // NULL logical shape: the tensor's own
    c.alias = k & 2 ? Alias::kResidualIsY : Alias::kYIsX;
    RunCase(c);
  }
}

// Extent 0 anywhere: OK, nothing written (every byte of every buffer checked), NULL data too.
TEST_P(EpilogueDType, EmptyTensorsAreOkAndWriteNothing) {
  for (const auto& shape : std::vector<std::vector<int64_t>>{{2, 0, 3, 7}, {0, 5, 3, 7}, {2, 5, 0, 7},
                                                            {2, 5, 3, 0}})
    for (int k = 0; k < 16; ++k)
      for (bool null_data : {false, true}) {
        EpiCase c;
        c.combo(k);
        c.shape = shape;
        c.dtype = GetParam();
        c.null_data_if_empty = null_data;
        c.alias = k & 2 ? Alias::kResidualIsY : Alias::kNone;
        RunCase(c);
        c.alias = Alias::kYIsX;
        RunCase(c);
      }
}

// Larger shapes (vector loops, tails, several rows per thread) under every ISA cap and thread
// count: still the unfused sequence, bit for bit.
TEST_P(EpilogueDType, IsaCapsAndThreadCounts) {
  std::mt19937_64 rng(0xE98 + GetParam().code * 64 + GetParam().bits);
  for (sdrop_cpu_isa isa : {SDROP_CPU_ISA_SSE41, SDROP_CPU_ISA_AVX2, SDROP_CPU_ISA_AVX512})
    for (int threads : {1, 2}) {
      ScopedMaxCpuIsa cap(isa);
      ASSERT_EQ(cap.status(), SDROP_OK);
      ScopedNumThreads nt(threads);
      SCOPED_TRACE(testing::Message() << "isa cap " << sdrop_cpu_isa_name(isa) << " threads "
                                      << threads);
      for (int layout = 0; layout < 2; ++layout)
        for (int k : {15, 3, 0}) {
          EpiCase c;
          c.combo(k);
          c.shape = layout == 0 ? std::vector<int64_t>{3, 16, 9, 17} : std::vector<int64_t>{3, 9, 17, 16};
          c.mask_axes = layout == 0 ? 0x3u : 0x9u;
          c.channel_axis = layout == 0 ? 1 : 3;
          c.dtype = GetParam();
          c.flags = kFlagSets[rng() % 4];
          c.p = 0.5;
          c.seed = rng();
          c.offset = rng();
          c.rng_seed = rng();
          RunCase(c);
          if (k == 15) {
            c.alias = layout ? Alias::kAllOne : Alias::kYIsX;
            RunCase(c);
          }
          if (FailedParts() > kEnoughFailures) return;
        }
    }
}

// ---- Values the contract states directly ---------------------------------------------------------

// Random configurations of everything at once.
TEST(EpilogueValues, RandomConfigurations) {
  std::mt19937_64 rng(0xE99);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int iter = 0; iter < 300; ++iter) {
    EpiCase c;
    const int rank = 1 + int(rng() % 5);
    c.shape.assign(size_t(rank), 1);
    for (int i = 0; i < rank; ++i) c.shape[size_t(i)] = 1 + int64_t(rng() % (i == rank - 1 ? 12 : 5));
    c.dtype = AllDTypes()[rng() % 4];
    c.combo(int(rng() % 16));
    c.mask_axes = uint32_t(rng()) & ((1u << rank) - 1u);
    c.channel_axis = int32_t(rng() % uint64_t(rank));
    c.bias_stride = int64_t(rng() % 5) - 2;
    c.flags = kFlagSets[rng() % 4];
    c.p = rng() % 3 ? unit(rng) : kPs[rng() % 4];
    c.seed = rng();
    c.offset = rng();
    c.rng_seed = rng();
    const int a = int(rng() % 6);
    c.alias = a == 1 ? Alias::kYIsX : a == 2 && c.residual ? Alias::kResidualIsY
              : a == 3 && c.residual ? Alias::kResidualIsX : a == 4 && c.residual ? Alias::kAllOne
              : Alias::kNone;
    if (rng() % 3) c.xs = RandomStrides(c.shape, rng);
    if (rng() % 3) c.ys = RandomStrides(c.shape, rng);
    if (rng() % 3) c.rs = RandomStrides(c.shape, rng);
    c.misalign = rng() % 8;
    c.x_off = rng() % 20;
    c.y_off = rng() % 20;
    c.r_off = rng() % 20;
    c.b_off = rng() % 20;
    RunCase(c);
    if (FailedParts() > kEnoughFailures) return;
  }
}

// Outputs above 1 MiB (where the library may take other loops) in both modes, out of place and
// in place, in both layouts.
TEST(EpilogueValues, LargeCalls) {
  std::mt19937_64 rng(0xE9A);
  struct L { DLDataType dt; std::vector<int64_t> shape; uint32_t axes; int32_t ch; };
  struct K { int combo; uint32_t flags; Alias alias; };
  const std::vector<K> all = {K{15, 0u, Alias::kNone}, K{15, SDROP_FLAG_MULTIPLY, Alias::kNone},
                              K{15, 0u, Alias::kYIsX}, K{7, 0u, Alias::kResidualIsY},
                              K{0, 0u, Alias::kNone}};
  const std::vector<K> few = {K{15, 0u, Alias::kNone}, K{3, SDROP_FLAG_MULTIPLY, Alias::kNone}};
  for (const L& l : {L{kF32, {2, 64, 33, 65}, 0x3u, 1}, L{kBF16, {2, 64, 65, 65}, 0x3u, 1},
                     L{kF32, {2, 33, 65, 64}, 0x9u, 3}})
    for (const K& k : l.dt.code == kDLFloat && l.axes == 0x3u ? all : few) {
      EpiCase c;
      c.combo(k.combo);
      c.alias = k.alias;
      c.dtype = l.dt;
      c.shape = l.shape;
      c.mask_axes = l.axes;
      c.channel_axis = l.ch;
      c.flags = k.flags;
      c.p = 0.5;
      c.seed = rng();
      c.offset = rng();
      c.rng_seed = rng();
      c.values = Values::kMixed;
      RunCase(c);
    }
}

// The contract, without the library's dropout: dropped channels are post(residual + 0) in the
// default mode, kept ones post(residual + act(x + bias) * s), whatever a dropped channel's x holds
// (NaN, Inf, any bits); and the output does not change when that x changes.
TEST(EpilogueValues, DefaultModeDroppedChannelIsPostOfResidualPlusZeroWhateverX) {
  const std::vector<int64_t> shape{4, 6, 3, 5};
  for (DLDataType dt : AllDTypes())
    for (int k = 0; k < 16; ++k)
      for (double p : {0.5, 1.0}) {
        SCOPED_TRACE(testing::Message() << DTypeString(dt) << " combo " << k << " p " << p);
        const DType t = TypeOf(dt);
        const size_t es = ElementSize(dt);
        EpiCase c;
        c.combo(k);
        std::mt19937_64 rng(100 + uint64_t(k));
        const uint64_t seed = rng(), offset = rng();
        const sdrop_params prm{p, seed, offset, 0x3u, 0};
        const std::vector<uint8_t> keep = sdrop_ref::KeepBits(seed, offset, p, 4 * 6);
        TensorBuffer X(shape, dt, Layout{}), R(shape, dt, Layout{}), B({6}, dt, Layout{});
        TensorBuffer Y1(shape, dt, Layout{}, 0xA5), Y2(shape, dt, Layout{}, 0x5A);
        FillElements(R, t, Values::kMixed, rng);
        FillElements(B, t, Values::kMixed, rng);
        if (p == 1.0) {  // every channel dropped: the bias may be NaN too
          for (int64_t ch = 0; ch < 6; ++ch) {
            const int64_t idx[1] = {ch};
            sdrop_ref::StoreBits(sdrop_ref::ElementAddress(B.t(), idx), es, SpecialBits(t)[0]);
          }
        }
        // Kept channels: ordinary values; dropped channels: NaN / Inf / garbage, two versions.
        std::vector<uint64_t> xv;
        for (int version = 0; version < 2; ++version) {
          DLTensor& Xt = *X.tensor();
          sdrop_ref::ForEachIndex(shape, [&](const int64_t* idx) {
            const bool kept = keep[size_t(idx[0] * 6 + idx[1])];
            uint64_t v;
            if (kept) {
              v = version == 0 ? RandomValue(t, Values::kPositive, rng)
                               : sdrop_ref::LoadBits(sdrop_ref::ElementAddress(Xt, idx), es);
              if (version == 0 && (rng() & 1)) v = FromDouble(t, -AsDouble(t, v));
            } else {
              const std::vector<uint64_t> s = SpecialBits(t);
              v = version == 0 ? s[rng() % 7] /* NaNs and Infs */ : rng() & (es == 8 ? ~0ull : (1ull << (8 * es)) - 1);
            }
            sdrop_ref::StoreBits(sdrop_ref::ElementAddress(Xt, idx), es, v);
          });
          if (version == 0) xv = ElementsOf(*X.tensor());
          const sdrop_epilogue e{c.bias ? B.tensor() : nullptr, c.residual ? R.tensor() : nullptr, 1,
                                 c.act, c.post};
          TensorBuffer& Y = version == 0 ? Y1 : Y2;
          ASSERT_EQ(sdrop_epilogue_forward(&prm, nullptr, &e, X.tensor(), Y.tensor()), SDROP_OK)
              << sdrop_last_error();
        }
        // The direct statement.
        const std::vector<uint64_t> rv = ElementsOf(*R.tensor()), bv = ElementsOf(*B.tensor());
        std::vector<uint64_t> want;
        size_t i = 0;
        sdrop_ref::ForEachIndex(shape, [&](const int64_t* idx) {
          const bool kept = keep[size_t(idx[0] * 6 + idx[1])];
          uint64_t d = 0;  // +0.0
          if (kept) {
            uint64_t a = xv[i];
            if (c.bias) a = AddRounded(t, a, bv[size_t(idx[1])]);
            a = Activation(t, c.act, a);
            d = sdrop_ref::KeptValue(t, a, p);
          }
          const uint64_t z = c.residual ? AddRounded(t, rv[i], d) : d;
          want.push_back(Activation(t, c.post, z));
          ++i;
        });
        CompareElements(*Y1.tensor(), want, "y (NaN/Inf in dropped x)");
        CompareElements(*Y2.tensor(), want, "y (other garbage in dropped x)");
        if (FailedParts() > kEnoughFailures) return;
      }
}

// With SDROP_FLAG_MULTIPLY a dropped channel is post(residual + act(x + bias) * 0): NaN and Inf
// propagate, negatives give -0.0 (which a residual add or a ReLU then turns into +0.0).
TEST(EpilogueValues, MultiplyModeDroppedChannelIsActTimesZero) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {-2.0f, 3.0f, nan, inf, -inf, -0.0f};
  std::vector<float> bias = {0.5f};
  std::vector<float> res(6, -0.0f);
  struct Want { int32_t act, post; bool residual; std::vector<uint32_t> bits; };
  // act(x + 0.5) for x above: -1.5, 3.5, NaN, Inf, -Inf, 0.5; times 0: -0, +0, NaN, NaN, NaN, +0.
  const std::vector<Want> wants = {
      {0, 0, false, {0x80000000u, 0u, 0x7FC00000u, 0x7FC00000u, 0x7FC00000u, 0u}},
      {1, 0, false, {0u, 0u, 0x7FC00000u, 0x7FC00000u, 0u, 0u}},  // relu(-Inf) = +0, * 0 = +0
      {0, 0, true, {0x80000000u, 0u, 0x7FC00000u, 0x7FC00000u, 0x7FC00000u, 0u}},  // -0 + -0 = -0
      {0, 1, false, {0u, 0u, 0x7FC00000u, 0x7FC00000u, 0x7FC00000u, 0u}},
  };
  for (const Want& w : wants) {
    std::vector<float> y(6, 123.0f);
    HostTensor tx(x.data(), {1, 6}, kF32), ty(y.data(), {1, 6}, kF32), tb(bias.data(), {6}, kF32, {0}),
        tr(res.data(), {1, 6}, kF32);
    const sdrop_epilogue e{&tb.t, w.residual ? &tr.t : nullptr, 1, w.act, w.post};
    const sdrop_params prm{1.0, 1, 2, 0x3u, SDROP_FLAG_MULTIPLY};
    ASSERT_EQ(sdrop_epilogue_forward(&prm, nullptr, &e, &tx.t, &ty.t), SDROP_OK) << sdrop_last_error();
    for (size_t i = 0; i < 6; ++i) {
      const uint32_t got = sdrop_ref::F32ToBits(y[i]);
      if (w.bits[i] == 0x7FC00000u)
        EXPECT_TRUE(std::isnan(y[i])) << "element " << i << " act " << w.act << " post " << w.post;
      else
        EXPECT_EQ(got, w.bits[i]) << "element " << i << " act " << w.act << " post " << w.post
                                  << " residual " << w.residual;
    }
  }
}

// Known answers, float32, everything kept (p = 0): relu of NaN is NaN, relu of -0.0 and of
// negatives is +0.0, relu of a positive denormal is itself; the identity keeps -0.0.
TEST(EpilogueValues, ReluKnownAnswers) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float den = std::numeric_limits<float>::denorm_min();
  std::vector<float> x = {nan, -0.0f, -1.0f, den, 2.5f, -den, 0.0f};
  for (int32_t act : {0, 1})
    for (int32_t post : {0, 1}) {
      std::vector<float> y(x.size(), 7.0f);
      HostTensor tx(x.data(), {7}, kF32), ty(y.data(), {7}, kF32);
      const sdrop_epilogue e{nullptr, nullptr, 0, act, post};
      const sdrop_params prm{0.0, 1, 2, 0x1u, 0};
      ASSERT_EQ(sdrop_epilogue_forward(&prm, nullptr, &e, &tx.t, &ty.t), SDROP_OK) << sdrop_last_error();
      const bool relu = act || post;
      EXPECT_TRUE(std::isnan(y[0]));
      EXPECT_EQ(sdrop_ref::F32ToBits(y[1]), relu ? 0u : 0x80000000u);
      EXPECT_EQ(sdrop_ref::F32ToBits(y[2]), relu ? 0u : sdrop_ref::F32ToBits(-1.0f));
      EXPECT_EQ(sdrop_ref::F32ToBits(y[3]), 1u);
      EXPECT_EQ(y[4], 2.5f);
      EXPECT_EQ(sdrop_ref::F32ToBits(y[5]), relu ? 0u : 0x80000001u);
      EXPECT_EQ(sdrop_ref::F32ToBits(y[6]), 0u);
    }
}

// Each step is rounded to the storage dtype before the next: x = 1, bias = residual = half an ulp
// of 1. Rounded at every step (ties to even) the result is 1; summed without the intermediate
// roundings it would be 1 + 1 ulp.
TEST(EpilogueValues, EveryStepIsRoundedToTheDtype) {
  struct Case { DLDataType dt; uint16_t one, bias, residual, want_p0; };
  // bf16: 1 = 0x3F80, 2^-8 = 0x3B80; residual 2^-8 again: 1 + 2^-8 -> 1 (tie, even) = 0x3F80.
  // f16: 1 = 0x3C00, 2^-11 = 0x1000; 1 + 2^-11 -> 1 = 0x3C00.
  for (const Case& k : {Case{kBF16, 0x3F80, 0x3B80, 0x3B80, 0x3F80}, Case{kF16, 0x3C00, 0x1000, 0x1000, 0x3C00}}) {
    uint16_t x = k.one, b = k.bias, r = k.residual, y = 0;
    HostTensor tx(&x, {1}, k.dt), ty(&y, {1}, k.dt), tb(&b, {1}, k.dt), tr(&r, {1}, k.dt);
    const sdrop_epilogue e{&tb.t, &tr.t, 0, 0, 0};
    const sdrop_params prm{0.0, 1, 2, 0x1u, 0};
    ASSERT_EQ(sdrop_epilogue_forward(&prm, nullptr, &e, &tx.t, &ty.t), SDROP_OK) << sdrop_last_error();
    // Unrounded in float32: 1 + 2^-k + 2^-k = 1 + 2^(1-k), representable: the fused result would
    // differ if a step skipped its rounding.
    EXPECT_EQ(y, k.want_p0) << DTypeString(k.dt);
  }
  // float32: 1 + 2^-24 rounds to 1 at each step (1 + 2^-23 if summed in double).
  float x = 1.0f, b = std::ldexp(1.0f, -24), r = std::ldexp(1.0f, -24), y = 0.0f;
  HostTensor tx(&x, {1}, kF32), ty(&y, {1}, kF32), tb(&b, {1}, kF32), tr(&r, {1}, kF32);
  const sdrop_epilogue e{&tb.t, &tr.t, 0, 0, 0};
  const sdrop_params prm{0.0, 1, 2, 0x1u, 0};
  ASSERT_EQ(sdrop_epilogue_forward(&prm, nullptr, &e, &tx.t, &ty.t), SDROP_OK) << sdrop_last_error();
  EXPECT_EQ(y, 1.0f);
}

// channel_axis is ignored without a bias: any value gives the call without one.
TEST(EpilogueValues, ChannelAxisIsIgnoredWithoutBias) {
  for (int32_t axis : {-1, 4, 99, INT32_MIN}) {
    EpiCase c;
    c.combo(2 | 4 | 8);  // residual, relu, relu; no bias
    c.channel_axis = axis;
    c.rng_seed = uint64_t(axis) & 0xFFFF;
    RunCase(c);
  }
}

// Inputs may share memory with each other: the residual a shifted view of x, the bias inside x.
TEST(EpilogueValues, InputsMayOverlapEachOther) {
  std::vector<float> buf(400);
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> d(-2.0f, 2.0f);
  for (float& f : buf) f = d(rng);
  std::vector<float> y(120, 9.0f);
  HostTensor tx(buf.data(), {2, 3, 4, 5}, kF32), tr(buf.data(), {2, 3, 4, 5}, kF32),
      tb(buf.data(), {3}, kF32, {7}), ty(y.data(), {2, 3, 4, 5}, kF32);
  tr.t.byte_offset = 3 * sizeof(float);
  tb.t.byte_offset = 50 * sizeof(float);
  const sdrop_epilogue e{&tb.t, &tr.t, 1, 1, 1};
  const sdrop_params prm{0.5, 11, 12, 0x3u, 0};
  const std::vector<uint64_t> want = Unfused(prm, nullptr, e, tx.t);
  const std::vector<float> before = buf;
  ASSERT_EQ(sdrop_epilogue_forward(&prm, nullptr, &e, &tx.t, &ty.t), SDROP_OK) << sdrop_last_error();
  CompareElements(ty.t, want, "y");
  EXPECT_TRUE(buf == before) << "an input was written";
}

// In the default mode a dropped channel's x is not read: x's dropped (sample, channel) planes are
// unreadable pages (NCHW, one page per plane). Run in a child process so that a read fails the
// test instead of killing the binary.
void DroppedPlanesNotReadChild(int64_t N, int64_t C) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  const int64_t plane = int64_t(page / sizeof(float));
  const size_t bytes = size_t(N * C) * page;
  void* xmem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (xmem == MAP_FAILED) std::exit(10);
  float* x = static_cast<float*>(xmem);
  for (int64_t i = 0; i < N * C * plane; ++i) x[i] = 1.5f;
  std::vector<float> bias(size_t(C), 0.25f), res(size_t(N * C * plane), -1.0f),
      y(size_t(N * C * plane), 77.0f);
  std::vector<uint8_t> keep(size_t(N * C));
  const sdrop_params prm{0.5, 20261203, 9, 0x3u, 0};
  int64_t mshape[4] = {N, C, 1, 1};
  DLTensor m{keep.data(), {kDLCPU, 0}, 4, kU8, mshape, nullptr, 0};
  if (sdrop_mask(&prm, &m) != SDROP_OK) std::exit(11);
  int dropped = 0;
  for (int64_t i = 0; i < N * C; ++i) {
    if (keep[size_t(i)]) continue;
    if (mprotect(static_cast<char*>(xmem) + size_t(i) * page, page, PROT_NONE) != 0) std::exit(12);
    ++dropped;
  }
  if (dropped == 0 || dropped == N * C) std::exit(13);
  const int64_t side = int64_t(std::sqrt(double(plane)));
  int64_t shape[4] = {N, C, plane / side, side};
  if (shape[2] * shape[3] != plane) {
    shape[2] = 1;
    shape[3] = plane;
  }
  int64_t bshape[1] = {C};
  DLTensor tx{x, {kDLCPU, 0}, 4, kF32, shape, nullptr, 0};
  DLTensor ty{y.data(), {kDLCPU, 0}, 4, kF32, shape, nullptr, 0};
  DLTensor tr{res.data(), {kDLCPU, 0}, 4, kF32, shape, nullptr, 0};
  DLTensor tb{bias.data(), {kDLCPU, 0}, 1, kF32, bshape, nullptr, 0};
  for (int threads : {1, 2})
    for (int32_t post : {0, 1}) {
      sdrop_set_num_threads(threads);
      const sdrop_epilogue e{&tb, &tr, 1, SDROP_ACTIVATION_RELU, post};
      if (sdrop_epilogue_forward(&prm, nullptr, &e, &tx, &ty) != SDROP_OK) std::exit(14);
      // kept: post(-1 + (1.5 + 0.25) * 2) = 2.5; dropped: post(-1 + 0) = -1 or +0.
      for (int64_t i = 0; i < N * C; ++i) {
        const float want = keep[size_t(i)] ? 2.5f : post ? 0.0f : -1.0f;
        for (int64_t j = 0; j < plane; ++j)
          if (std::memcmp(&y[size_t(i * plane + j)], &want, sizeof want) != 0) std::exit(15);
      }
    }
  std::exit(0);
}

// A large call: 2 MiB of output.
TEST(EpilogueValues, DefaultModeDroppedChannelsOfXAreNotRead) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const int64_t channels = int64_t((1u << 20) / size_t(sysconf(_SC_PAGESIZE)));
  EXPECT_EXIT(DroppedPlanesNotReadChild(2, channels), testing::ExitedWithCode(0), "")
      << "exit 14: the call failed; 15: wrong values; a signal: a dropped plane of x was read";
}

// The header and SPEC section 9 say it without a size condition: a small call (64 KiB) too.
TEST(EpilogueValues, DefaultModeDroppedChannelsOfXAreNotReadInSmallCallsEither) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(DroppedPlanesNotReadChild(2, 8), testing::ExitedWithCode(0), "")
      << "exit 14: the call failed; 15: wrong values; a signal: a dropped plane of x was read";
}

// ---- Refusals --------------------------------------------------------------------------------------

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return s;
}

// needle "a|b": the message contains a or b (case-insensitive).
bool ContainsAny(const std::string& msg, const std::string& needle) {
  const std::string m = Lower(msg);
  size_t start = 0;
  for (;;) {
    const size_t bar = needle.find('|', start);
    const std::string alt = Lower(needle.substr(start, bar == std::string::npos ? bar : bar - start));
    if (m.find(alt) != std::string::npos) return true;
    if (bar == std::string::npos) return false;
    start = bar + 1;
  }
}

class EpilogueRefusal : public testing::Test {
 protected:
  static constexpr size_t kBuf = 4096, kMid = 2048;

  void SetUp() override { Reset(); }

  // A valid call: float32 (2,3,4,5) compact x, y and residual, a bias of 3, relu both sides,
  // channels-first spatial mask axes.
  void Reset() {
    xbuf.assign(kBuf, 0x5A);
    ybuf.assign(kBuf, 0xA5);
    rbuf.assign(kBuf, 0x77);
    bbuf.assign(kBuf, 0x3C);
    for (size_t i = 0; i < 120; ++i) {
      const float xv = float(i) - 60.0f, rv = 0.5f * float(i % 7);
      std::memcpy(&xbuf[kMid + 4 * i], &xv, 4);
      std::memcpy(&rbuf[kMid + 4 * i], &rv, 4);
    }
    const float bv[3] = {0.5f, -0.5f, 0.25f};
    std::memcpy(&bbuf[kMid], bv, sizeof bv);
    xshape = yshape = rshape = {2, 3, 4, 5};
    xstrides = ystrides = rstrides = {60, 20, 5, 1};
    bshape = {3};
    bstrides = {1};
    x = DLTensor{xbuf.data() + kMid, {kDLCPU, 0}, 4, kF32, xshape.data(), xstrides.data(), 0};
    y = DLTensor{ybuf.data() + kMid, {kDLCPU, 0}, 4, kF32, yshape.data(), ystrides.data(), 0};
    res = DLTensor{rbuf.data() + kMid, {kDLCPU, 0}, 4, kF32, rshape.data(), rstrides.data(), 0};
    bias = DLTensor{bbuf.data() + kMid, {kDLCPU, 0}, 1, kF32, bshape.data(), bstrides.data(), 0};
    epi = sdrop_epilogue{&bias, &res, 1, SDROP_ACTIVATION_RELU, SDROP_ACTIVATION_RELU};
    params = sdrop_params{0.5, 0x123456789ull, 0xABCDEF0123ull, 0x3u, 0};
    px = &x;
    py = &y;
    pparams = &params;
    pepi = &epi;
    shard = nullptr;
  }

  sdrop_status Call() { return sdrop_epilogue_forward(pparams, shard, pepi, px, py); }

  // The call is refused with `want`, a message naming each of `names` (alternatives with '|')
  // and showing each of `values`, and no byte of any buffer changed.
  void ExpectRefused(sdrop_status want, const std::vector<std::string>& names,
                     const std::vector<std::string>& values = {}, bool also_other = false,
                     sdrop_status other = SDROP_OK) {
    const std::vector<uint8_t> x0 = xbuf, y0 = ybuf, r0 = rbuf, b0 = bbuf;
    const sdrop_status st = Call();
    if (also_other)
      EXPECT_TRUE(st == want || st == other) << "got " << sdrop_status_name(st) << " ("
                                             << sdrop_last_error() << ")";
    else
      EXPECT_EQ(st, want) << "got " << sdrop_status_name(st) << " (" << sdrop_last_error() << ")";
    const char* msg_c = sdrop_last_error();
    ASSERT_NE(msg_c, nullptr);
    const std::string msg = msg_c;
    EXPECT_FALSE(msg.empty()) << "sdrop_last_error() is empty after a refusal";
    for (const auto& n : names)
      EXPECT_TRUE(ContainsAny(msg, n)) << "message \"" << msg << "\" does not name " << n;
    for (const auto& v : values)
      EXPECT_TRUE(ContainsAny(msg, v)) << "message \"" << msg << "\" does not show " << v;
    EXPECT_TRUE(xbuf == x0) << "x's buffer was written";
    EXPECT_TRUE(ybuf == y0) << "y's buffer was written";
    EXPECT_TRUE(rbuf == r0) << "residual's buffer was written";
    EXPECT_TRUE(bbuf == b0) << "bias's buffer was written";
  }

  std::vector<uint8_t> xbuf, ybuf, rbuf, bbuf;
  std::vector<int64_t> xshape, yshape, rshape, bshape, xstrides, ystrides, rstrides, bstrides;
  DLTensor x{}, y{}, res{}, bias{};
  sdrop_epilogue epi{};
  sdrop_params params{};
  DLTensor* px = nullptr;
  DLTensor* py = nullptr;
  const sdrop_params* pparams = nullptr;
  const sdrop_epilogue* pepi = nullptr;
  const sdrop_shard* shard = nullptr;
};

// The unmutated fixture is accepted (and so are its variants without bias or residual): each
// refusal below is due to its mutation.
TEST_F(EpilogueRefusal, BaselineIsAccepted) {
  EXPECT_EQ(Call(), SDROP_OK) << sdrop_last_error();
  Reset();
  epi.bias = nullptr;
  EXPECT_EQ(Call(), SDROP_OK) << sdrop_last_error();
  Reset();
  epi.residual = nullptr;
  EXPECT_EQ(Call(), SDROP_OK) << sdrop_last_error();
  Reset();
  epi.residual = &y;  // exactly y: an in-place add
  EXPECT_EQ(Call(), SDROP_OK) << sdrop_last_error();
  Reset();
  epi.residual = &x;
  py = &x;  // in place, residual x
  EXPECT_EQ(Call(), SDROP_OK) << sdrop_last_error();
}

TEST_F(EpilogueRefusal, NullParamsEpilogueOrTensors) {
  pparams = nullptr;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"params"});
  Reset();
  pepi = nullptr;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"epilogue"});
  Reset();
  px = nullptr;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"x"});
  Reset();
  py = nullptr;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"y"});
  Reset();
  bias.data = nullptr;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"bias"});
  Reset();
  res.data = nullptr;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"residual"});
}

TEST_F(EpilogueRefusal, PNotInZeroOneAndUnknownFlags) {
  struct Bad { double p; const char* shown; };
  for (const Bad& b : {Bad{1.5, "1.5"}, Bad{-0.25, "-0.25"}, Bad{std::nan(""), "nan"},
                       Bad{std::numeric_limits<double>::infinity(), "inf"}}) {
    SCOPED_TRACE(b.shown);
    Reset();
    params.p = b.p;
    ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"p"}, {b.shown});
  }
  Reset();
  params.flags = 4u;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"flags"});
  Reset();
  params.mask_axes = 0x10u;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"mask_axes"});
}

TEST_F(EpilogueRefusal, ActOrPostNotAnActivation) {
  for (int32_t v : {2, -1, 1000}) {
    SCOPED_TRACE(v);
    Reset();
    epi.act = v;
    ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"act"}, {std::to_string(v)});
    Reset();
    epi.post = v;
    ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"post"}, {std::to_string(v)});
    // Also without bias and residual (nothing else to check).
    Reset();
    epi = sdrop_epilogue{nullptr, nullptr, 0, v, 0};
    ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"act"}, {std::to_string(v)});
  }
}

TEST_F(EpilogueRefusal, ChannelAxisOutOfRangeWithABias) {
  for (int32_t axis : {-1, 4, 5, 100, INT32_MIN}) {
    SCOPED_TRACE(axis);
    Reset();
    epi.channel_axis = axis;
    ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"channel_axis"}, {std::to_string(axis)});
  }
  // Rank 0: no axis at all for a bias.
  Reset();
  x.ndim = y.ndim = res.ndim = 0;
  params.mask_axes = 0;
  epi.channel_axis = 0;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"channel_axis|bias"});
}

TEST_F(EpilogueRefusal, BiasOfTheWrongShapeDTypeOrDevice) {
  bias.ndim = 0;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"bias"});
  Reset();
  bshape = {3, 1};
  bstrides = {1, 1};
  bias.shape = bshape.data();  // the vectors grew
  bias.strides = bstrides.data();
  bias.ndim = 2;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"bias"}, {"[3, 1]|ndim 2|2-d|2 dim"});
  for (int64_t extent : {2, 4, 1, 0}) {
    SCOPED_TRACE(extent);
    Reset();
    bshape = {extent};
    ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"bias"}, {std::to_string(extent)});
  }
  Reset();
  epi.channel_axis = 2;  // extent 4 there, the bias has 3
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"bias"});
  for (DLDataType dt : {kF64, kF16, kBF16, DLDataType{kDLInt, 32, 1}}) {
    SCOPED_TRACE(DTypeString(dt));
    Reset();
    bias.dtype = dt;
    ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"bias"});
  }
  Reset();
  // A CUDA or OpenCL bias with CPU x: tensors on different devices (section 5), naming the bias.
  bias.device = DLDevice{kDLCUDA, 0};
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"bias"});
  Reset();
  bias.device = DLDevice{kDLOpenCL, 0};
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"bias"});
}

// "Everything sdrop_forward refuses": a bias or residual on another host device (another CPU
// device_id, kDLCUDAHost) is refused exactly when sdrop_forward refuses y on that device.
TEST_F(EpilogueRefusal, OtherHostDevicesAsSdropForwardTreatsThem) {
  for (DLDevice d : {DLDevice{kDLCPU, 1}, DLDevice{kDLCUDAHost, 0}, DLDevice{kDLCUDAHost, 2}}) {
    SCOPED_TRACE(testing::Message() << "device " << int(d.device_type) << ":" << d.device_id);
    std::vector<uint8_t> scratch(kBuf, 0);
    DLTensor y2 = y;
    y2.data = scratch.data() + kMid;
    y2.device = d;
    const sdrop_status fwd = sdrop_forward(&params, &x, &y2);
    for (int which = 0; which < 2; ++which) {
      Reset();
      (which ? res : bias).device = d;
      if (fwd == SDROP_OK) {
        EXPECT_EQ(Call(), SDROP_OK) << (which ? "residual" : "bias") << ": " << sdrop_last_error();
      } else {
        ExpectRefused(fwd, {which ? "residual" : "bias"});
      }
    }
  }
}

TEST_F(EpilogueRefusal, ResidualOfTheWrongShapeDTypeOrDevice) {
  rshape = {2, 3, 5, 4};
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"residual"});
  Reset();
  rshape = {2, 3, 4, 1};
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"residual"});
  Reset();
  res.ndim = 3;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"residual"});
  for (DLDataType dt : {kF64, kF16, kBF16}) {
    SCOPED_TRACE(DTypeString(dt));
    Reset();
    res.dtype = dt;
    ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"residual"});
  }
  Reset();
  res.device = DLDevice{kDLCUDA, 0};
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"residual"});
  Reset();
  res.device = DLDevice{kDLOpenCL, 0};
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"residual"});
}

TEST_F(EpilogueRefusal, ResidualOverlappingYOtherThanExactly) {
  // y's memory shifted by one element.
  res.data = y.data;
  res.byte_offset = 4;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"residual"});
  // y's addresses in another order (column-major).
  Reset();
  res.data = y.data;
  rstrides = {1, 2, 6, 24};
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"residual"});
  // y's addresses reversed.
  Reset();
  res.data = y.data;
  res.byte_offset = 119 * 4;
  rstrides = {-60, -20, -5, -1};
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"residual"});
  // Residual's last element is y's first.
  Reset();
  y.data = res.data;
  y.byte_offset = 119 * 4;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"residual|y"});
  // In place (y is x) and a residual overlapping x (hence y) but not exactly.
  Reset();
  py = &x;
  res.data = x.data;
  res.byte_offset = 20 * 4;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"residual"});
  // A residual broadcast over y's memory (zero stride): overlaps y without being it.
  Reset();
  res.data = y.data;
  rstrides = {0, 20, 5, 1};
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"residual"});
}

TEST_F(EpilogueRefusal, BiasOverlappingY) {
  bias.data = y.data;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"bias"});
  Reset();
  bias.data = y.data;
  bias.byte_offset = 117 * 4;  // its last element is y's last
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"bias"});
  Reset();
  bias.data = y.data;
  bstrides = {0};  // one value, inside y
  bias.byte_offset = 50 * 4;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"bias"});
  Reset();
  py = &x;  // in place: a bias inside x is inside y
  bias.data = x.data;
  bias.byte_offset = 7 * 4;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"bias"});
}

TEST_F(EpilogueRefusal, XAndYPartiallyOverlap) {
  y.data = x.data;
  y.byte_offset = 4;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"x|y|overlap|alias|place"});
  Reset();
  y.data = x.data;
  ystrides = {1, 2, 6, 24};
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"x|y|overlap|alias|place"});
  Reset();
  y.data = x.data;
  y.byte_offset = 119 * 4;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"x|y|overlap|alias|place"});
  Reset();
  epi.residual = nullptr;
  epi.bias = nullptr;
  y.data = x.data;
  y.byte_offset = 8;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"x|y|overlap|alias|place"});
  // y overlapping itself.
  Reset();
  ystrides = {60, 20, 5, 0};
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"y|overlap|stride"});
}

TEST_F(EpilogueRefusal, ShapeOrDTypeOfXAndYDiffer) {
  yshape = {2, 3, 5, 4};
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"shape|extent|dim"});
  Reset();
  y.dtype = kF64;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"dtype|type"});
}

// Every tensor labelled CUDA or OpenCL (over host bytes): the call goes to that backend, which
// this process has not set up (no OpenCL queue set; no CUDA driver, or one that finds host
// memory): BACKEND_UNAVAILABLE, or INVALID_ARGUMENT from a CUDA driver. Nothing is written.
// tests/gpu runs the epilogue on real device buffers.
TEST_F(EpilogueRefusal, CudaAndOpenClTensorsGoToTheirBackend) {
  for (int dev : {int(kDLCUDA), int(kDLOpenCL)}) {
    SCOPED_TRACE(dev);
    for (int with : {0, 1, 2, 3}) {  // without/with bias, residual
      Reset();
      const DLDevice d{static_cast<DLDeviceType>(dev), 0};
      x.device = y.device = bias.device = res.device = d;
      if (!(with & 1)) epi.bias = nullptr;
      if (!(with & 2)) epi.residual = nullptr;
      if (dev == kDLOpenCL) {
        ExpectRefused(SDROP_ERROR_BACKEND_UNAVAILABLE, {"opencl"});
      } else {
        ExpectRefused(SDROP_ERROR_BACKEND_UNAVAILABLE, {"cuda"}, {}, true,
                      SDROP_ERROR_INVALID_ARGUMENT);
      }
    }
  }
}

TEST_F(EpilogueRefusal, UnsupportedDTypeIsUnsupported) {
  for (DLDataType dt : {DLDataType{kDLInt, 32, 1}, DLDataType{kDLUInt, 8, 1},
                        DLDataType{kDLComplex, 64, 1}}) {
    SCOPED_TRACE(DTypeString(dt));
    Reset();
    x.dtype = y.dtype = bias.dtype = res.dtype = dt;
    ExpectRefused(SDROP_ERROR_UNSUPPORTED, {"dtype|type"});
    Reset();
    x.dtype = y.dtype = dt;
    epi.bias = epi.residual = nullptr;
    ExpectRefused(SDROP_ERROR_UNSUPPORTED, {"dtype|type"});
  }
}

TEST_F(EpilogueRefusal, ShardThatContradictsTheShape) {
  struct Bad { std::vector<int64_t> origin, logical; const char* needle; };
  const std::vector<Bad> bad = {
      {{-1, 0, 0, 0}, {4, 3, 4, 5}, "shard.origin[0]"},
      {{3, 0, 0, 0}, {4, 3, 4, 5}, "shard.logical_shape[0]"},  // 3 + 2 > 4
      {{0, 1, 0, 0}, {2, 3, 4, 5}, "shard.logical_shape[1]"},  // 1 + 3 > 3
      {{0, 0, 0, 0}, {1, 3, 4, 5}, "shard.logical_shape[0]"},  // smaller than the shard
      {{0, 0, 0, 0}, {-2, 3, 4, 5}, "shard.logical_shape[0]"}};
  for (const Bad& b : bad) {
    SCOPED_TRACE(VecString(b.origin) + " " + VecString(b.logical));
    Reset();
    const sdrop_shard s{b.origin.data(), b.logical.data()};
    shard = &s;
    ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {b.needle});
  }
}

TEST_F(EpilogueRefusal, EmptyTensorsAreStillChecked) {
  // An empty x with a mismatched bias or a bad act is refused as well.
  xshape = yshape = rshape = {2, 0, 4, 5};
  bshape = {3};
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"bias"});
  Reset();
  xshape = yshape = rshape = {2, 0, 4, 5};
  bshape = {0};
  epi.post = 2;
  ExpectRefused(SDROP_ERROR_INVALID_ARGUMENT, {"post"});
}

}  // namespace
}  // namespace sdrop_test
