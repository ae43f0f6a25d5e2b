// A device-agnostic harness for the GPU backends (SPEC section 4, sdrop.h "GPU backends"): a
// call is described once (op, shape, strides, byte offsets, dtype, p, flags, in place), its
// buffers are built on the host exactly as the CPU tests build them (guard bytes around every
// tensor, a sentinel fill in the output), mirrored byte for byte into device buffers, and the
// same call is made three ways:
//   - on the device (DLTensor.data = the device handle, byte_offset = the tensor's offset in it),
//   - on the CPU through the same library (kDLCPU tensors over the host bytes),
//   - through the scalar SPEC reference (tests/reference), for all but the largest tensors.
// The device's whole output buffer is read back and compared with the CPU's: elements bit for
// bit (SPEC section 3: a NaN may only change its payload), every other byte untouched; the
// device's input buffers must come back unchanged.
//
// A backend test (OpenCL, CUDA) implements Device and uses GpuCase / Refused below.
#ifndef SDROP_TESTS_GPU_GPU_TESTER_H_
#define SDROP_TESTS_GPU_GPU_TESTER_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <dlpack/dlpack.h>
#include <sdrop/sdrop.h>

#include "dropout_tester.h"
#include "reference/sdrop_reference.h"

namespace sdrop_gpu_test {

using sdrop_test::ElementSize;
using sdrop_test::Layout;
using sdrop_test::TensorBuffer;
using sdrop_test::Values;
using sdrop_test::VecString;
using sdrop_test::kBF16;
using sdrop_test::kBool;
using sdrop_test::kF16;
using sdrop_test::kF32;
using sdrop_test::kF64;
using sdrop_test::kU8;

// What the harness needs of a device. Buffers are named by a handle: a cl_mem for OpenCL, a
// device pointer for CUDA. Write/Read are complete on return; Finish waits for the calls
// sdrop enqueued on the caller's queue / stream.
class Device {
 public:
  virtual ~Device() = default;
  virtual DLDevice dl_device() const = 0;
  // A buffer of `bytes` bytes (never 0); nullptr after an ADD_FAILURE when it cannot.
  virtual void* Alloc(size_t bytes) = 0;
  virtual void Free(void* handle) = 0;
  virtual void Write(void* handle, size_t offset, const void* src, size_t n) = 0;
  virtual void Read(void* handle, size_t offset, void* dst, size_t n) = 0;
  virtual void Finish() = 0;
  // How a tensor at `offset` bytes into the buffer is named. Default: data = the handle,
  // byte_offset = offset (an OpenCL cl_mem can only be named that way).
  virtual void Address(DLTensor* t, void* handle, uint64_t offset) const {
    t->data = handle;
    t->byte_offset = offset;
  }
};

// One device buffer, freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer(Device* dev, size_t bytes) : dev_(dev), size_(bytes == 0 ? 1 : bytes) {
    handle_ = dev_->Alloc(size_);
  }
  DeviceBuffer(Device* dev, const std::vector<uint8_t>& contents) : DeviceBuffer(dev, contents.size()) {
    if (handle_ && !contents.empty()) dev_->Write(handle_, 0, contents.data(), contents.size());
  }
  ~DeviceBuffer() {
    if (handle_) dev_->Free(handle_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* handle() const { return handle_; }
  size_t size() const { return size_; }
  bool ok() const { return handle_ != nullptr; }
  std::vector<uint8_t> ReadAll() const {
    std::vector<uint8_t> out(size_);
    if (handle_) dev_->Read(handle_, 0, out.data(), size_);
    return out;
  }
  void WriteAll(const std::vector<uint8_t>& contents) {
    if (handle_) dev_->Write(handle_, 0, contents.data(), contents.size());
  }

 private:
  Device* dev_;
  size_t size_;
  void* handle_ = nullptr;
};

// The device twin of a host TensorBuffer: same bytes, same layout, same offsets.
inline DLTensor DeviceTensor(const Device& dev, TensorBuffer& host, const DeviceBuffer& buf) {
  DLTensor t = host.t();
  t.device = dev.dl_device();
  if (host.t().data == nullptr) {  // an empty tensor with NULL data stays so
    t.data = nullptr;
    return t;
  }
  const uint64_t offset =
      static_cast<uint64_t>(static_cast<const uint8_t*>(host.t().data) - host.bytes().data()) +
      host.t().byte_offset;
  dev.Address(&t, buf.handle(), offset);
  return t;
}

inline std::string DeviceName(DLDevice d) {
  switch (d.device_type) {
    case kDLCPU: return "cpu";
    case kDLCUDA: return "cuda:" + std::to_string(d.device_id);
    case kDLOpenCL: return "opencl:" + std::to_string(d.device_id);
    default: return "device_type " + std::to_string(int(d.device_type));
  }
}

// ---- One call, checked three ways -----------------------------------------------------------

class GpuCase {
 public:
  enum class Op { kForward, kBackward, kApplyMask, kMask };

  explicit GpuCase(Device* dev) : dev_(dev) {}

  GpuCase& op(Op o) { op_ = o; return *this; }
  GpuCase& shape(std::vector<int64_t> s) { shape_ = std::move(s); return *this; }
  GpuCase& dtype(DLDataType d) { dtype_ = d; return *this; }
  GpuCase& p(double v) { p_ = v; return *this; }
  GpuCase& seed(uint64_t v) { seed_ = v; return *this; }
  GpuCase& offset(uint64_t v) { offset_ = v; return *this; }
  GpuCase& mask_axes(uint32_t v) { mask_axes_ = v; return *this; }
  GpuCase& flags(uint32_t v) { flags_ = v; return *this; }
  GpuCase& x_strides(std::vector<int64_t> s) { x_.strides = std::move(s); return *this; }
  GpuCase& y_strides(std::vector<int64_t> s) { y_.strides = std::move(s); return *this; }
  GpuCase& mask_strides(std::vector<int64_t> s) { m_.strides = std::move(s); return *this; }
  GpuCase& null_strides(bool on) { x_.null_strides = y_.null_strides = on; return *this; }
  // Extra bytes before the tensor in its buffer (SPEC: any byte_offset; on a GPU a multiple
  // of the element size). misalign also moves the tensor, through byte_offset as well.
  GpuCase& x_byte_offset(uint64_t b) { x_.extra_byte_offset = b; return *this; }
  GpuCase& y_byte_offset(uint64_t b) { y_.extra_byte_offset = b; return *this; }
  GpuCase& mask_byte_offset(uint64_t b) { m_.extra_byte_offset = b; return *this; }
  GpuCase& null_data_if_empty(bool on) {
    x_.null_data_if_empty = y_.null_data_if_empty = m_.null_data_if_empty = on;
    return *this;
  }
  GpuCase& inplace(bool on) { inplace_ = on; return *this; }
  GpuCase& values(Values v) { values_ = v; return *this; }
  // x's elements as raw bits, by row-major linear index (instead of random values).
  GpuCase& x_bits(std::function<uint64_t(int64_t)> f) { x_bits_ = std::move(f); return *this; }
  GpuCase& mask_dtype(DLDataType d) { mask_dtype_ = d; return *this; }
  GpuCase& rng_seed(uint64_t s) { rng_seed_ = s; return *this; }
  // Also compare with the scalar reference (default: when the tensor has at most 2^20 elements).
  GpuCase& reference(bool on) { reference_ = on ? 1 : 0; return *this; }
  // The status the device call must return instead of SDROP_OK (then nothing may be written).
  GpuCase& expect_status(sdrop_status s) { expect_ = s; return *this; }

  sdrop_params params() const { return sdrop_params{p_, seed_, offset_, mask_axes_, flags_}; }

  std::string Describe() const {
    std::ostringstream s;
    s << OpName() << " on " << DeviceName(dev_->dl_device()) << " shape=" << VecString(shape_)
      << " dtype=" << sdrop_test::DTypeString(op_ == Op::kMask ? mask_dtype_ : dtype_)
      << " p=" << p_ << " seed=" << seed_ << " offset=" << offset_ << " mask_axes=0x" << std::hex
      << mask_axes_ << std::dec << " flags=" << flags_ << (inplace_ ? " in-place" : "")
      << " x_strides=" << (x_.null_strides ? "NULL" : VecString(x_.strides))
      << " y_strides=" << (y_.null_strides ? "NULL" : VecString(y_.strides))
      << " x_byte_offset+=" << x_.extra_byte_offset << " y_byte_offset+=" << y_.extra_byte_offset;
    if (op_ == Op::kApplyMask)
      s << " mask_dtype=" << sdrop_test::DTypeString(mask_dtype_)
        << " mask_strides=" << VecString(m_.strides) << " mask_byte_offset+=" << m_.extra_byte_offset;
    return s.str();
  }

  // Runs the case; failures are reported through gtest. Returns the device output bytes.
  std::vector<uint8_t> Run() const {
    SCOPED_TRACE(Describe());
    std::mt19937_64 rng(rng_seed_);
    const bool has_x = op_ != Op::kMask;
    const bool is_mask_op = op_ == Op::kMask;
    sdrop_ref::DType t = sdrop_ref::DType::kF32;
    if (has_x) EXPECT_TRUE(sdrop_ref::DTypeFromDL(dtype_, &t)) << "a float dtype is needed";
    const size_t es = ElementSize(dtype_);

    // Host buffers, as the CPU tests build them.
    std::unique_ptr<TensorBuffer> x, y, mask;
    if (has_x) {
      x.reset(new TensorBuffer(shape_, dtype_, x_));
      x->FillRandomBytes(rng);
      int64_t linear = 0;
      sdrop_ref::ForEachIndex(shape_, [&](const int64_t* idx) {
        sdrop_ref::StoreBits(sdrop_ref::ElementAddress(x->t(), idx), es,
                             x_bits_ ? x_bits_(linear++) : sdrop_test::RandomValue(t, values_, rng));
      });
    }
    if (is_mask_op) {
      y.reset(new TensorBuffer(shape_, mask_dtype_, y_, 0xA5));
    } else if (!inplace_) {
      y.reset(new TensorBuffer(shape_, dtype_, y_, 0xA5));
    }
    if (op_ == Op::kApplyMask) {
      mask.reset(new TensorBuffer(sdrop_ref::NoiseShape(shape_, mask_axes_), mask_dtype_, m_));
      mask->FillRandomBytes(rng);
      static const uint8_t kU8Values[] = {0, 1, 2, 7, 128, 255, 0, 1};
      const bool is_bool = mask_dtype_.code == 6;
      sdrop_ref::ForEachIndex(mask->shape(), [&](const int64_t* idx) {
        *sdrop_ref::ElementAddress(mask->t(), idx) =
            is_bool ? static_cast<uint8_t>(rng() & 1) : kU8Values[rng() % 8];
      });
    }
    TensorBuffer& out = inplace_ && has_x ? *x : *y;

    // Device twins.
    std::unique_ptr<DeviceBuffer> dx, dy, dm;
    if (x) dx.reset(new DeviceBuffer(dev_, x->bytes()));
    if (y) dy.reset(new DeviceBuffer(dev_, y->bytes()));
    if (mask) dm.reset(new DeviceBuffer(dev_, mask->bytes()));
    if ((dx && !dx->ok()) || (dy && !dy->ok()) || (dm && !dm->ok())) {
      ADD_FAILURE() << "device allocation failed";
      return {};
    }
    const DeviceBuffer& dout = inplace_ && has_x ? *dx : *dy;
    DLTensor dev_x{}, dev_y{}, dev_m{};
    if (x) dev_x = DeviceTensor(*dev_, *x, *dx);
    if (y) dev_y = DeviceTensor(*dev_, *y, *dy);
    if (mask) dev_m = DeviceTensor(*dev_, *mask, *dm);
    if (inplace_ && has_x) dev_y = dev_x;

    const std::vector<uint8_t> x_before = x ? x->bytes() : std::vector<uint8_t>();
    const std::vector<uint8_t> out_before = out.bytes();
    const std::vector<uint8_t> mask_before = mask ? mask->bytes() : std::vector<uint8_t>();

    // The CPU call on copies of the host bytes.
    std::vector<uint8_t> cpu_x = x_before, cpu_out = out_before, cpu_m = mask_before;
    DLTensor cpu_xt{}, cpu_yt = out.RebasedOn(cpu_out), cpu_mt{};
    if (x) cpu_xt = inplace_ ? out.RebasedOn(cpu_out) : x->RebasedOn(cpu_x);
    if (mask) cpu_mt = mask->RebasedOn(cpu_m);
    const sdrop_params prm = params();
    sdrop_status cpu_st = SDROP_ERROR_INTERNAL;
    if (expect_ == SDROP_OK) {
      cpu_st = Call(&prm, &cpu_xt, &cpu_yt, &cpu_mt);
      EXPECT_EQ(cpu_st, SDROP_OK) << "the same call on the CPU: " << sdrop_status_name(cpu_st) << ": "
                                  << sdrop_last_error();
    }

    // The scalar reference, on its own copies.
    const bool use_ref =
        expect_ == SDROP_OK &&
        (reference_ == 1 || (reference_ < 0 && sdrop_ref::Numel(out.t()) <= (int64_t(1) << 20)));
    std::vector<uint8_t> ref_out, ref_x;
    DLTensor ref_yt{};
    if (use_ref) {
      ref_out = out_before;
      ref_x = x_before;
      ref_yt = out.RebasedOn(ref_out);
      switch (op_) {
        case Op::kForward:
        case Op::kBackward: sdrop_ref::Forward(prm, x->RebasedOn(ref_x), ref_yt); break;
        case Op::kApplyMask: sdrop_ref::ApplyMask(prm, x->RebasedOn(ref_x), mask->t(), ref_yt); break;
        case Op::kMask: sdrop_ref::Mask(prm, ref_yt); break;
      }
    }

    // The device call.
    const sdrop_status st = Call(&prm, has_x ? &dev_x : nullptr, &dev_y, mask ? &dev_m : nullptr);
    const std::string msg = sdrop_last_error();
    dev_->Finish();
    std::vector<uint8_t> got = dout.ReadAll();
    got.resize(out_before.size());
    const DLTensor got_t = out.RebasedOn(got);

    if (expect_ != SDROP_OK) {
      EXPECT_EQ(st, expect_) << sdrop_status_name(st) << ": " << msg;
      EXPECT_FALSE(msg.empty()) << "a refused call leaves a message";
      EXPECT_TRUE(got == out_before) << "a refused call wrote to its output";
    } else {
      EXPECT_EQ(st, SDROP_OK) << sdrop_status_name(st) << ": " << msg;
      if (st == SDROP_OK && cpu_st == SDROP_OK) {
        const DLTensor cpu_t = out.RebasedOn(cpu_out);
        sdrop_test::CompareOutput(got, cpu_out, got_t, cpu_t, "device vs cpu");
      }
      if (st == SDROP_OK && use_ref) {
        sdrop_test::CompareOutput(got, ref_out, got_t, ref_yt, "device vs reference");
      }
    }
    if (x && !inplace_) {
      std::vector<uint8_t> x_after = dx->ReadAll();
      x_after.resize(x_before.size());
      EXPECT_TRUE(x_after == x_before) << "the device input x was modified";
    }
    if (mask) {
      std::vector<uint8_t> m_after = dm->ReadAll();
      m_after.resize(mask_before.size());
      EXPECT_TRUE(m_after == mask_before) << "the device input mask was modified";
    }
    return got;
  }

 private:
  const char* OpName() const {
    switch (op_) {
      case Op::kForward: return "forward";
      case Op::kBackward: return "backward";
      case Op::kApplyMask: return "apply_mask";
      case Op::kMask: return "mask";
    }
    return "?";
  }

  sdrop_status Call(const sdrop_params* prm, DLTensor* x, DLTensor* y, DLTensor* m) const {
    switch (op_) {
      case Op::kForward: return sdrop_forward(prm, x, y);
      case Op::kBackward: return sdrop_backward(prm, x, y);
      case Op::kApplyMask: return sdrop_apply_mask(prm, x, m, y);
      case Op::kMask: return sdrop_mask(prm, y);
    }
    return SDROP_ERROR_INTERNAL;
  }

  Device* dev_;
  Op op_ = Op::kForward;
  std::vector<int64_t> shape_{2, 3, 4, 5};
  DLDataType dtype_ = kF32;
  double p_ = 0.5;
  uint64_t seed_ = 0x0123456789ABCDEFull;
  uint64_t offset_ = 42;
  uint32_t mask_axes_ = 0x3u;
  uint32_t flags_ = 0;
  Layout x_, y_, m_;
  bool inplace_ = false;
  Values values_ = Values::kMixed;
  std::function<uint64_t(int64_t)> x_bits_;
  DLDataType mask_dtype_ = kU8;
  uint64_t rng_seed_ = 7;
  int reference_ = -1;
  sdrop_status expect_ = SDROP_OK;
};

// ---- Shapes and layouts shared by the backend suites ------------------------------------------

struct LayoutCase {
  std::string name;
  std::vector<int64_t> shape;
  uint32_t mask_axes;
};

// Channels first / last for ranks 2..5, element-wise, per sample, unbatched, other noise
// shapes, and ranks 0 and 1.
inline std::vector<LayoutCase> LayoutCases() {
  std::vector<LayoutCase> v;
  const std::vector<std::vector<int64_t>> shapes = {
      {5, 7}, {3, 5, 33}, {2, 3, 9, 13}, {2, 3, 4, 5, 6}};
  for (const auto& s : shapes) {
    const int r = static_cast<int>(s.size());
    v.push_back({"channels_first_rank" + std::to_string(r), s,
                 sdrop_spatial_axes(r, SDROP_CHANNELS_FIRST)});
    v.push_back({"channels_last_rank" + std::to_string(r), s,
                 sdrop_spatial_axes(r, SDROP_CHANNELS_LAST)});
    v.push_back({"elementwise_rank" + std::to_string(r), s, (1u << r) - 1u});
    v.push_back({"per_sample_rank" + std::to_string(r), s, 1u});
    v.push_back({"one_draw_rank" + std::to_string(r), s, 0u});
  }
  v.push_back({"rank0_scalar", {}, 0u});
  v.push_back({"rank1_elementwise", {37}, 1u});
  v.push_back({"rank1_one_draw", {37}, 0u});
  v.push_back({"unbatched_C_H_W", {6, 5, 7}, 1u});
  v.push_back({"noise_axes_1_3", {3, 4, 5, 6}, 0xAu});
  v.push_back({"noise_axis_2", {3, 4, 5, 6}, 0x4u});
  v.push_back({"noise_axes_1_2_rank5", {2, 3, 4, 5, 6}, 0x6u});
  v.push_back({"noise_axes_0_2_4_rank5", {2, 3, 4, 5, 6}, 0x15u});
  v.push_back({"extent1_axes", {1, 4, 1, 9}, 0x3u});
  return v;
}

// Layouts of a rank-4 (2, 3, 9, 13) tensor: permuted, with gaps, reversed, broadcast input.
struct StrideCase {
  std::string name;
  std::vector<int64_t> x, y;
};

inline std::vector<StrideCase> StrideCases(const std::vector<int64_t>& shape) {
  using sdrop_test::Identity;
  using sdrop_test::Strides;
  const std::vector<int64_t> compact = sdrop_test::Compact(shape);
  std::vector<StrideCase> v;
  v.push_back({"x_transposed_NHWC", Strides(shape, {0, 2, 3, 1}), compact});
  v.push_back({"y_transposed_NHWC", compact, Strides(shape, {0, 2, 3, 1})});
  v.push_back({"both_transposed_HW_swapped", Strides(shape, {0, 1, 3, 2}), Strides(shape, {0, 1, 3, 2})});
  v.push_back({"x_gaps", Strides(shape, Identity(4), {1, 2, 1, 3}), compact});
  v.push_back({"y_gaps", compact, Strides(shape, Identity(4), {2, 1, 3, 2})});
  v.push_back({"x_negative_inner", Strides(shape, Identity(4), {}, 0x8u), compact});
  v.push_back({"y_negative_all", compact, Strides(shape, Identity(4), {}, 0xFu)});
  v.push_back({"both_negative_channels", Strides(shape, Identity(4), {}, 0x2u),
               Strides(shape, Identity(4), {}, 0x2u)});
  v.push_back({"x_negative_transposed_gaps", Strides(shape, {3, 1, 0, 2}, {1, 2, 1, 2}, 0x5u),
               Strides(shape, {2, 0, 3, 1}, {}, 0x8u)});
  // Zero strides are allowed on inputs (SPEC section 5): x broadcast along H and W.
  v.push_back({"x_zero_strides_broadcast", {3, 1, 0, 0}, compact});
  return v;
}

}  // namespace sdrop_gpu_test

#endif  // SDROP_TESTS_GPU_GPU_TESTER_H_
