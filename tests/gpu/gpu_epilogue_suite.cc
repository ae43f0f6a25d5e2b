// The fused channel epilogue on every GPU backend of the binary (sdrop_epilogue_forward and
// sdrop_epilogue_backward, docs/epilogue.md). Each case is built in guarded host buffers (one
// per tensor; aliased tensors share one), mirrored byte for byte into device buffers, and run
// twice: on the device, and through the CPU library on copies of the host bytes. Every device
// buffer is then read back whole and must equal the CPU's: the outputs' elements bit for bit (a
// NaN may change only its payload), every other byte untouched, the inputs unchanged. The CPU
// results are held to the unfused sequence by tests/epilogue_test.cc and
// epilogue_backward_test.cc; this file holds the device to the CPU.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gpu_tester.h"

namespace sdrop_gpu_test {
namespace {

using sdrop_test::Layout;
using sdrop_test::Values;

enum class Alias {
  kNone,
  kYIsX,          // forward in place
  kResidualIsY,   // forward: an in-place add
  kDxIsDy,        // backward in place of dy
  kDxIsX,         // backward in place of x
};

const char* AliasName(Alias a) {
  switch (a) {
    case Alias::kNone: return "none";
    case Alias::kYIsX: return "y=x";
    case Alias::kResidualIsY: return "residual=y";
    case Alias::kDxIsDy: return "dx=dy";
    case Alias::kDxIsX: return "dx=x";
  }
  return "?";
}

struct EpiCase {
  bool backward = false;
  std::vector<int64_t> shape{2, 5, 3, 7};
  uint32_t mask_axes = 0x3u;
  int32_t channel_axis = 1;
  DLDataType dtype = kF32;
  double p = 0.5;
  uint64_t seed = 0x0123456789ABCDEFull;
  uint64_t offset = 0xFEDCBA9876543210ull;
  uint32_t flags = 0;
  bool bias = true, residual = true;
  int32_t act = SDROP_ACTIVATION_RELU, post = SDROP_ACTIVATION_RELU;
  bool dbias = true, dresidual = true;  // backward: asked for where there is a bias / residual
  int64_t bias_stride = 1, dbias_stride = 1;
  std::vector<int64_t> xs;  // x's strides (empty: compact; the other tensors are compact)
  uint64_t byte_offset = 0;  // extra, in every tensor's buffer (a multiple of the element size)
  bool stagger = false;      // and i more elements in the i-th buffer: every tensor at its own
  Alias alias = Alias::kNone;
  bool shard = false;
  std::vector<int64_t> origin, logical;
  Values values = Values::kMixed;
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
    s << (backward ? "epilogue_backward" : "epilogue_forward") << " shape=" << sdrop_test::VecString(shape)
      << " dtype=" << sdrop_test::DTypeString(dtype) << " p=" << p << " seed=" << seed
      << " offset=" << offset << " mask_axes=0x" << std::hex << mask_axes << std::dec
      << " channel_axis=" << channel_axis << " flags=" << flags << " bias=" << bias
      << " residual=" << residual << " act=" << act << " post=" << post;
    if (backward) s << " dbias=" << (bias && dbias) << " dresidual=" << (residual && dresidual);
    s << " bias_stride=" << bias_stride << " dbias_stride=" << dbias_stride
      << " x_strides=" << sdrop_test::VecString(xs) << " byte_offset=" << byte_offset
      << (stagger ? " staggered" : "")
      << " alias=" << AliasName(alias) << " rng_seed=" << rng_seed;
    if (shard) s << " shard origin=" << sdrop_test::VecString(origin) << " logical=" << sdrop_test::VecString(logical);
    return s.str();
  }
};

void FillElements(TensorBuffer& b, DLDataType dt, Values v, std::mt19937_64& rng) {
  sdrop_ref::DType t = sdrop_ref::DType::f32;
  ASSERT_TRUE(sdrop_ref::DTypeFromDL(dt, &t));
  const size_t es = ElementSize(dt);
  sdrop_ref::ForEachIndex(b.shape(), [&](const int64_t* idx) {
    sdrop_ref::StoreBits(sdrop_ref::ElementAddress(b.t(), idx), es,
                         sdrop_test::RandomValue(t, v, rng));
  });
}

// The host buffers of a case, the tensors over them, and which buffer each tensor lies in.
struct Buffers {
  std::vector<std::unique_ptr<TensorBuffer>> host;
  std::vector<bool> output;  // holds an output: compared by element, else byte for byte
  std::vector<int> out_tensor;  // for an output buffer: which of `tensors` is that output
  // x, bias, residual, y, dy, dx, dbias, dresidual: the buffer index, or -1.
  enum { kX, kBias, kResidual, kY, kDy, kDx, kDbias, kDresidual, kTensors };
  int at[kTensors] = {-1, -1, -1, -1, -1, -1, -1, -1};

  size_t stagger = 0;  // bytes more per buffer

  int Add(const std::vector<int64_t>& shape, DLDataType dt, Layout l, bool values, Values v,
          std::mt19937_64& rng) {
    l.extra_byte_offset += stagger * host.size();
    host.emplace_back(new TensorBuffer(shape, dt, l, 0xA5));
    if (values) {
      host.back()->FillRandomBytes(rng);
      FillElements(*host.back(), dt, v, rng);
    }
    output.push_back(false);
    out_tensor.push_back(-1);
    return static_cast<int>(host.size()) - 1;
  }
  void MarkOutput(int tensor) {
    output[size_t(at[tensor])] = true;
    out_tensor[size_t(at[tensor])] = tensor;
  }
};

// Runs case c on dev and on the CPU, compares everything; `want` is the device call's status
// (not OK: the call must be refused, writing nothing).
void RunCase(const Device& dev, const EpiCase& c, sdrop_status want) {
  SCOPED_TRACE("on " + DeviceName(dev.dl_device()) + ": " + c.Describe());
  std::mt19937_64 rng(c.rng_seed);
  const DLDataType dt = c.dtype;
  Buffers b;
  b.stagger = c.stagger ? ElementSize(dt) : 0;
  Layout compact;
  compact.extra_byte_offset = c.byte_offset;
  Layout lx = compact;
  lx.strides = c.xs;
  const bool bias = c.bias && !c.shape.empty();
  const int64_t channels = bias ? c.shape[size_t(c.channel_axis)] : 0;
  b.at[Buffers::kX] = b.Add(c.shape, dt, lx, true, c.values, rng);
  if (bias) {
    Layout lb = compact;
    lb.strides = {c.bias_stride};
    b.at[Buffers::kBias] = b.Add({channels}, dt, lb, true, c.values, rng);
  }
  if (!c.backward) {
    if (c.alias == Alias::kYIsX) {
      b.at[Buffers::kY] = b.at[Buffers::kX];
    } else {
      b.at[Buffers::kY] = b.Add(c.shape, dt, compact, c.alias == Alias::kResidualIsY, c.values, rng);
    }
    b.MarkOutput(Buffers::kY);
    if (c.residual) {
      b.at[Buffers::kResidual] = c.alias == Alias::kResidualIsY
                                     ? b.at[Buffers::kY]
                                     : b.Add(c.shape, dt, compact, true, c.values, rng);
    }
  } else {
    if (c.residual) b.at[Buffers::kResidual] = b.Add(c.shape, dt, compact, true, c.values, rng);
    b.at[Buffers::kDy] = b.Add(c.shape, dt, compact, true, c.values, rng);
    if (c.alias == Alias::kDxIsDy) {
      b.at[Buffers::kDx] = b.at[Buffers::kDy];
    } else if (c.alias == Alias::kDxIsX) {
      EXPECT_TRUE(c.xs.empty()) << "dx=x needs x compact, as dx is";
      b.at[Buffers::kDx] = b.at[Buffers::kX];
    } else {
      b.at[Buffers::kDx] = b.Add(c.shape, dt, compact, false, c.values, rng);
    }
    b.MarkOutput(Buffers::kDx);
    if (bias && c.dbias) {
      Layout ld = compact;
      ld.strides = {c.dbias_stride};
      b.at[Buffers::kDbias] = b.Add({channels}, dt, ld, false, c.values, rng);
      b.MarkOutput(Buffers::kDbias);
    }
    if (c.residual && c.dresidual) {
      b.at[Buffers::kDresidual] = b.Add(c.shape, dt, compact, false, c.values, rng);
      b.MarkOutput(Buffers::kDresidual);
    }
  }
  const size_t n = b.host.size();

  // The device twins, and the CPU's copies of the host bytes.
  std::vector<std::unique_ptr<DeviceBuffer>> dbuf;
  std::vector<std::vector<uint8_t>> before(n), cpu(n);
  for (size_t i = 0; i < n; ++i) {
    before[i] = b.host[i]->bytes();
    cpu[i] = before[i];
    dbuf.emplace_back(new DeviceBuffer(dev, before[i]));
    ASSERT_TRUE(dbuf.back()->ok()) << "device allocation failed";
  }
  DLTensor on_dev[Buffers::kTensors] = {}, on_cpu[Buffers::kTensors] = {};
  for (int t = 0; t < Buffers::kTensors; ++t) {
    const int i = b.at[t];
    if (i < 0) continue;
    on_dev[t] = DeviceTensor(dev, *b.host[size_t(i)], *dbuf[size_t(i)]);
    on_cpu[t] = b.host[size_t(i)]->RebasedOn(cpu[size_t(i)]);
  }
  const sdrop_params prm{c.p, c.seed, c.offset, c.mask_axes, c.flags};
  const sdrop_shard sh{c.origin.empty() ? nullptr : c.origin.data(),
                       c.logical.empty() ? nullptr : c.logical.data()};
  const sdrop_shard* shard = c.shard ? &sh : nullptr;
  auto call = [&](DLTensor* t) {
    const sdrop_epilogue e{bias ? &t[Buffers::kBias] : nullptr,
                           c.residual ? &t[Buffers::kResidual] : nullptr, c.channel_axis, c.act,
                           c.post};
    if (!c.backward) return sdrop_epilogue_forward(&prm, shard, &e, &t[Buffers::kX], &t[Buffers::kY]);
    return sdrop_epilogue_backward(&prm, shard, &e, &t[Buffers::kX], &t[Buffers::kDy],
                                   &t[Buffers::kDx],
                                   b.at[Buffers::kDbias] >= 0 ? &t[Buffers::kDbias] : nullptr,
                                   b.at[Buffers::kDresidual] >= 0 ? &t[Buffers::kDresidual] : nullptr);
  };
  const sdrop_status cpu_st = call(on_cpu);
  ASSERT_EQ(cpu_st, SDROP_OK) << "the same call on the CPU: " << sdrop_last_error();
  const sdrop_status st = call(on_dev);
  const std::string msg = sdrop_last_error();
  dev.Finish();
  if (want != SDROP_OK) {
    EXPECT_EQ(st, want) << sdrop_status_name(st) << ": " << msg;
    EXPECT_FALSE(msg.empty()) << "a refused call leaves a message";
  } else {
    EXPECT_EQ(st, SDROP_OK) << sdrop_status_name(st) << ": " << msg;
  }
  static const char* kNames[] = {"x", "bias", "residual", "y", "dy", "dx", "dbias", "dresidual"};
  for (size_t i = 0; i < n; ++i) {
    std::vector<uint8_t> got = dbuf[i]->ReadAll();
    got.resize(before[i].size());
    const std::vector<uint8_t>& expected = want == SDROP_OK ? cpu[i] : before[i];
    if (!b.output[i] || want != SDROP_OK) {
      EXPECT_TRUE(got == expected) << "buffer " << i << " (an input"
                                   << (want != SDROP_OK ? " or output of a refused call" : "")
                                   << ") differs from the CPU's";
      continue;
    }
    const int t = b.out_tensor[i];
    DLTensor got_t = b.host[i]->RebasedOn(got), cpu_t = b.host[i]->RebasedOn(cpu[i]);
    sdrop_test::CompareOutput(got, cpu[i], got_t, cpu_t, std::string("device vs cpu, ") + kNames[t]);
  }
}

// ---- Fixture: (backend, dtype) -----------------------------------------------------------------

using BackendDtype = std::tuple<const Backend*, DLDataType>;

class GpuEpilogue : public GpuFixture, public testing::WithParamInterface<BackendDtype> {
 protected:
  void SetUp() override { Start(std::get<0>(GetParam())); }
  DLDataType dtype() const { return std::get<1>(GetParam()); }
  // Runs c (of this dtype) on the device; float64 without cl_khr_fp64 must be UNSUPPORTED.
  void Run(EpiCase c) {
    c.dtype = dtype();
    RunCase(dev_, c, backend().DtypeStatus(dtype()));
  }
  uint64_t Seed(uint64_t salt) const { return salt * 131 + dtype().code * 64 + dtype().bits; }
};

std::string Name(const testing::TestParamInfo<BackendDtype>& info) {
  return std::get<0>(info.param)->name() + "_" + sdrop_test::DTypeString(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(Gpu, GpuEpilogue,
                         testing::Combine(testing::ValuesIn(Backends()),
                                          testing::ValuesIn(sdrop_test::AllDTypes())),
                         Name);

// NCHW lands on the rows kernels, NHWC on channels_last.
struct Spatial {
  const char* name;
  std::vector<int64_t> shape;
  uint32_t mask_axes;
  int32_t channel_axis;
};
const Spatial kNchw{"NCHW", {2, 5, 3, 7}, 0x3u, 1};
const Spatial kNhwc{"NHWC", {2, 3, 7, 5}, 0x9u, 3};

EpiCase Of(const Spatial& l) {
  EpiCase c;
  c.shape = l.shape;
  c.mask_axes = l.mask_axes;
  c.channel_axis = l.channel_axis;
  return c;
}

// Every bias x residual x act x post combination, both layouts, exact-zero and PyTorch modes.
TEST_P(GpuEpilogue, ForwardEveryCombination) {
  if (!Started()) return;
  std::mt19937_64 rng(Seed(1));
  for (const Spatial& l : {kNchw, kNhwc})
    for (int k = 0; k < 16; ++k)
      for (uint32_t flags : {0u, SDROP_FLAG_MULTIPLY | SDROP_FLAG_SCALE_IN_DTYPE}) {
        SCOPED_TRACE(l.name);
        EpiCase c = Of(l);
        c.combo(k);
        c.flags = flags;
        c.p = k % 5 == 4 ? (k % 2 ? 1.0 : 0.0) : 0.5;
        c.seed = rng();
        c.offset = rng();
        c.rng_seed = rng();
        Run(c);
        if (Stop()) return;
      }
}

// The same for the backward, with dbias and dresidual asked for and not.
TEST_P(GpuEpilogue, BackwardEveryCombination) {
  if (!Started()) return;
  std::mt19937_64 rng(Seed(2));
  for (const Spatial& l : {kNchw, kNhwc})
    for (int k = 0; k < 16; ++k)
      for (int outs = 0; outs < 2; ++outs) {
        SCOPED_TRACE(l.name);
        EpiCase c = Of(l);
        c.backward = true;
        c.combo(k);
        c.dbias = outs == 0;
        c.dresidual = outs == 0;
        c.flags = (k + outs) % 2 ? SDROP_FLAG_MULTIPLY : 0u;
        c.p = k % 5 == 4 ? (k % 2 ? 1.0 : 0.0) : 0.5;
        c.seed = rng();
        c.offset = rng();
        c.rng_seed = rng();
        Run(c);
        if (Stop()) return;
      }
}

// In place: y == x and residual == y forward; dx == dy and dx == x backward, with and without
// dresidual (without, the kernel's first output goes to a device scratch).
TEST_P(GpuEpilogue, InPlaceAndAliases) {
  if (!Started()) return;
  std::mt19937_64 rng(Seed(3));
  for (const Spatial& l : {kNchw, kNhwc})
    for (Alias a : {Alias::kYIsX, Alias::kResidualIsY, Alias::kDxIsDy, Alias::kDxIsX})
      for (int k : {3, 14, 15}) {
        for (int dr = 0; dr < 2; ++dr) {
          const bool backward = a == Alias::kDxIsDy || a == Alias::kDxIsX;
          if (!backward && dr) continue;
          SCOPED_TRACE(l.name);
          EpiCase c = Of(l);
          c.backward = backward;
          c.combo(k);
          c.residual = c.residual || a == Alias::kResidualIsY;
          c.alias = a;
          c.dresidual = dr == 0;
          c.flags = k == 14 ? SDROP_FLAG_MULTIPLY : 0u;
          c.seed = rng();
          c.rng_seed = rng();
          Run(c);
          if (Stop()) return;
        }
      }
}

// Strided x, bias and dbias strides (2, -1, 0 for the bias), byte offsets, shards, mask axes
// that are not spatial (the runtime's rows of one element).
TEST_P(GpuEpilogue, StridesOffsetsShardsAndOtherMaskAxes) {
  if (!Started()) return;
  std::mt19937_64 rng(Seed(4));
  const size_t es = ElementSize(dtype());
  for (int backward = 0; backward < 2; ++backward) {
    for (const Spatial& l : {kNchw, kNhwc}) {
      SCOPED_TRACE(l.name);
      EpiCase c = Of(l);
      c.backward = backward;
      c.combo(15);
      c.seed = rng();
      c.rng_seed = rng();
      c.xs = sdrop_test::Strides(c.shape, {0, 2, 3, 1}, {1, 2, 1, 1}, 0x4u);
      c.bias_stride = 2;
      c.dbias_stride = -1;
      c.byte_offset = 3 * es;
      Run(c);
      // Each tensor at another element offset of its buffer (dx and dresidual too: the
      // backward's two outputs are one Tuple on the device).
      c.stagger = true;
      Run(c);
      c.stagger = false;
      c.xs.clear();
      c.bias_stride = 0;  // one value broadcast to every channel
      c.dbias_stride = 3;
      c.byte_offset = es;
      c.flags = SDROP_FLAG_MULTIPLY;
      Run(c);
      // A shard of the batch and channel axes of a larger logical tensor.
      c = Of(l);
      c.backward = backward;
      c.combo(7);
      c.shard = true;
      c.origin.assign(4, 0);
      c.origin[0] = 1;
      c.origin[size_t(l.channel_axis)] = 2;
      c.logical = c.shape;
      c.logical[0] = 4;
      c.logical[size_t(l.channel_axis)] += 3;
      c.seed = rng();
      Run(c);
    }
    // Element-wise dropout and a per-sample mask: no rows or channels_last kernel fits.
    for (uint32_t axes : {0xFu, 0x1u}) {
      EpiCase c = Of(kNchw);
      c.backward = backward;
      c.combo(13);
      c.mask_axes = axes;
      c.seed = rng();
      c.rng_seed = rng();
      Run(c);
    }
    if (Stop()) return;
  }
}

// Several work-groups per call, rows whose length is and is not a multiple of 8 (the lanes of
// the row sums), more channels than a channels_last block, p = 0.9.
TEST_P(GpuEpilogue, SeveralBlocksAndRaggedRows) {
  if (!Started()) return;
  std::mt19937_64 rng(Seed(5));
  const std::vector<Spatial> big = {{"NCHW 899-element rows", {3, 37, 29, 31}, 0x3u, 1},
                                    {"NCHW 64-element rows", {2, 70, 8, 8}, 0x3u, 1},
                                    {"NHWC 70 channels", {2, 13, 11, 70}, 0x9u, 3}};
  for (const Spatial& l : big)
    for (int backward = 0; backward < 2; ++backward) {
      SCOPED_TRACE(l.name);
      EpiCase c = Of(l);
      c.backward = backward;
      c.combo(backward ? 15 : 11);
      c.p = backward ? 0.9 : 0.5;
      c.seed = rng();
      c.rng_seed = rng();
      Run(c);
      if (Stop()) return;
    }
}

// Empty x: nothing to compute; the backward's dbias is still written (+0.0) on the device (and
// so refused, like any call, for float64 without cl_khr_fp64; the forward has nothing to run).
TEST_P(GpuEpilogue, EmptyTensors) {
  if (!Started()) return;
  for (int backward = 0; backward < 2; ++backward) {
    EpiCase c = Of(kNchw);
    c.shape = {0, 5, 3, 7};
    c.backward = backward;
    c.combo(15);
    c.dtype = dtype();
    RunCase(dev_, c, backward ? backend().DtypeStatus(dtype()) : SDROP_OK);
  }
}

// ---- Refusals: tensors of one call on two devices, nothing written -------------------------------

class GpuEpilogueRefusal : public RefusalFixture,
                           public testing::WithParamInterface<const Backend*> {
 protected:
  void SetUp() override { StartRefusals(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(Gpu, GpuEpilogueRefusal, testing::ValuesIn(Backends()),
                         [](const testing::TestParamInfo<const Backend*>& i) {
                           return i.param->name();
                         });

// x and y on the device, float32 (2, 3, 4, 5): the bias, residual, dbias or dresidual in host
// memory is INVALID_ARGUMENT (SPEC section 5: tensors on different devices), naming it.
TEST_P(GpuEpilogueRefusal, OperandsOnAnotherDevice) {
  if (!Started()) return;
  const std::vector<int64_t> s{2, 3, 4, 5};
  DevTensor x(dl(), xb->handle(), 0, s, kF32), y(dl(), yb->handle(), 0, s, kF32);
  DevTensor dy(dl(), mb->handle(), 0, s, kF32);
  DevTensor bias(dl(), xb->handle(), 480, {3}, kF32), res(dl(), xb->handle(), 512, s, kF32);
  std::vector<uint8_t> host(4096, 0x11);
  DLTensor host_bias = bias, host_res = res;
  host_bias.device = host_res.device = DLDevice{kDLCPU, 0};
  host_bias.data = host.data();
  host_res.data = host.data() + 64;
  host_bias.byte_offset = host_res.byte_offset = 0;
  const sdrop_params prm{0.5, 1, 2, 0x3u, 0};
  const sdrop_epilogue ok{&bias, &res, 1, SDROP_ACTIVATION_RELU, SDROP_ACTIVATION_IDENTITY};
  const sdrop_epilogue cpu_bias{&host_bias, &res, 1, SDROP_ACTIVATION_RELU, 0};
  const sdrop_epilogue cpu_res{&bias, &host_res, 1, 0, SDROP_ACTIVATION_RELU};
  SDROP_EXPECT_REFUSED([&] { return sdrop_epilogue_forward(&prm, nullptr, &cpu_bias, &x, &y); },
                       SDROP_ERROR_INVALID_ARGUMENT, "bias", {&host});
  SDROP_EXPECT_REFUSED([&] { return sdrop_epilogue_forward(&prm, nullptr, &cpu_res, &x, &y); },
                       SDROP_ERROR_INVALID_ARGUMENT, "residual", {&host});
  SDROP_EXPECT_REFUSED(
      [&] { return sdrop_epilogue_backward(&prm, nullptr, &ok, &x, &dy, &y, &host_bias, nullptr); },
      SDROP_ERROR_INVALID_ARGUMENT, "dbias", {&host});
  SDROP_EXPECT_REFUSED(
      [&] { return sdrop_epilogue_backward(&prm, nullptr, &ok, &x, &dy, &y, nullptr, &host_res); },
      SDROP_ERROR_INVALID_ARGUMENT, "dresidual", {&host});
  // The same call with every tensor on the device is accepted.
  EXPECT_EQ(sdrop_epilogue_forward(&prm, nullptr, &ok, &x, &y), SDROP_OK) << sdrop_last_error();
  dev_.Finish();
}

}  // namespace
}  // namespace sdrop_gpu_test
