// The GPU backends' test harness (docs/c-api.md#gpu-backends), written once for
// every backend. A backend (OpenCL, CUDA) implements Backend: device buffers, its queue or
// stream, its handles. A call is described with the builder the CPU tests use
// (dropout_tester.h: CallBuilder); its host buffers are built exactly as there (guard bytes
// around every tensor, a sentinel fill in the output), mirrored byte for byte into device
// buffers, and the same call is made three ways:
//   - on the device (DLTensor.data = the device handle, byte_offset = the tensor's offset in it,
//     or on CUDA the offset carried in the pointer),
//   - on the CPU through the same library (kDLCPU tensors over copies of the host bytes),
//   - through the scalar reference (tests/reference), for all but the largest tensors.
// The device's whole output buffer is read back and compared with the CPU's: elements bit for
// bit (docs/rng.md#exactness: a NaN may only change its payload), every other byte untouched; the
// device's input buffers must come back unchanged.
//
// gpu_suite.cc holds the tests every backend runs; each backend's file defines Backends() (the
// variants it runs the suite on) and the few tests only it has.
#ifndef SDROP_TESTS_GPU_GPU_TESTER_H_
#define SDROP_TESTS_GPU_GPU_TESTER_H_

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <dlpack/dlpack.h>
#include <sdrop/sdrop.h>

#include "dropout_tester.h"
#include "reference/sdrop_reference.h"

inline void PrintTo(const DLDataType& d, std::ostream* os) { *os << sdrop_test::DTypeString(d); }

namespace sdrop_gpu_test {

using sdrop_test::CallBuffers;
using sdrop_test::CallOp;
using sdrop_test::CallTensors;
using sdrop_test::ElementSize;
using sdrop_test::TensorBuffer;
using sdrop_test::Values;
using sdrop_test::kBF16;
using sdrop_test::kBool;
using sdrop_test::kF16;
using sdrop_test::kF32;
using sdrop_test::kF64;
using sdrop_test::kU8;

// A cl_command_queue, or a cudaStream_t (NULL: the legacy default stream).
using Queue = void*;

// The large-tensor case of a backend: sized for the device (PoCL runs on the host's cores).
struct LargeCase {
  std::vector<int64_t> nchw;  // also run channels last, as (N, H, W, C)
  Values values;
};

// What the suite needs of a backend. One object per variant the suite runs on (CUDA: a created
// stream and the legacy default stream); buffers are named by a handle (a cl_mem, a device
// pointer). Write and Read are complete on return; Finish waits for what sdrop enqueued on q.
class Backend {
 public:
  virtual ~Backend() = default;
  // In test names: "opencl", "cuda_stream", ...
  virtual std::string name() const = 0;
  virtual DLDevice dl_device() const = 0;
  // "" when the backend runs here, else why not (the reason its tests skip with).
  virtual std::string Unavailable() const = 0;
  // "" when a missing backend may skip; else why that is a failure.
  virtual std::string MissingIsFailure() const { return ""; }
  // The queue of the test's own thread, and the i-th one for other threads (created at first
  // use on the calling thread, kept until the process ends).
  virtual Queue queue() const = 0;
  virtual Queue ThreadQueue(int i) const = 0;
  // Makes q this thread's queue for sdrop, with the backend's context; the context that
  // GetHandles must then report (CUDA: NULL, the primary context).
  virtual sdrop_status SetQueue(Queue q) const = 0;
  virtual void GetHandles(void** context, void** queue) const = 0;
  virtual void* context() const = 0;
  // A buffer of `bytes` bytes (never 0); nullptr after an ADD_FAILURE when it cannot.
  virtual void* Alloc(size_t bytes) const = 0;
  virtual void Free(void* buf) const = 0;
  virtual void Write(Queue q, void* buf, size_t offset, const void* src, size_t n) const = 0;
  virtual void Read(Queue q, void* buf, size_t offset, void* dst, size_t n) const = 0;
  virtual void Finish(Queue q) const = 0;
  // Whether a tensor may also carry its offset in data (a CUDA pointer can; a cl_mem cannot).
  virtual bool offset_in_pointer() const { return false; }
  // What a call on dtype d must return here (float64 without cl_khr_fp64: UNSUPPORTED).
  virtual sdrop_status DtypeStatus(DLDataType) const { return SDROP_OK; }
  virtual LargeCase large() const = 0;
  // A second variant of a backend runs the slowest cases for float32 only.
  virtual bool main_variant() const { return true; }
};

// The variants this test binary runs the suite on (defined by the backend's file).
const std::vector<const Backend*>& Backends();

// How gtest prints a parameter (in failure lines, "where GetParam() = ...").
inline void PrintTo(const Backend* b, std::ostream* os) { *os << b->name(); }

// A backend bound to one queue and one way of naming offsets: what buffers and calls use.
struct Device {
  const Backend* backend = nullptr;
  Queue queue = nullptr;
  bool offset_in_pointer = false;

  DLDevice dl_device() const { return backend->dl_device(); }
  void* Alloc(size_t bytes) const { return backend->Alloc(bytes); }
  void Free(void* buf) const { backend->Free(buf); }
  void Write(void* buf, size_t offset, const void* src, size_t n) const {
    backend->Write(queue, buf, offset, src, n);
  }
  void Read(void* buf, size_t offset, void* dst, size_t n) const {
    backend->Read(queue, buf, offset, dst, n);
  }
  void Finish() const { backend->Finish(queue); }
  // How a tensor at `offset` bytes into buf is named.
  void Address(DLTensor* t, void* buf, uint64_t offset) const {
    if (offset_in_pointer) {
      t->data = static_cast<char*>(buf) + offset;
      t->byte_offset = 0;
    } else {
      t->data = buf;
      t->byte_offset = offset;
    }
  }
};

// One device buffer, freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer(const Device& dev, size_t bytes) : dev_(dev), size_(bytes == 0 ? 1 : bytes) {
    handle_ = dev_.Alloc(size_);
  }
  DeviceBuffer(const Device& dev, const std::vector<uint8_t>& contents)
      : DeviceBuffer(dev, contents.size()) {
    if (handle_ && !contents.empty()) dev_.Write(handle_, 0, contents.data(), contents.size());
  }
  ~DeviceBuffer() {
    if (handle_) dev_.Free(handle_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* handle() const { return handle_; }
  size_t size() const { return size_; }
  bool ok() const { return handle_ != nullptr; }
  std::vector<uint8_t> ReadAll() const {
    std::vector<uint8_t> out(size_);
    if (handle_) dev_.Read(handle_, 0, out.data(), size_);
    return out;
  }
  void WriteAll(const std::vector<uint8_t>& contents) {
    if (handle_) dev_.Write(handle_, 0, contents.data(), contents.size());
  }

 private:
  Device dev_;
  size_t size_;
  void* handle_ = nullptr;
};

// The device twin of a host TensorBuffer: same bytes, same layout, same offsets.
inline DLTensor DeviceTensor(const Device& dev, const TensorBuffer& host, const DeviceBuffer& buf) {
  DLTensor t = host.t();
  t.device = dev.dl_device();
  if (host.t().data == nullptr) return t;  // an empty tensor with NULL data stays so
  const uint64_t offset =
      static_cast<uint64_t>(static_cast<const uint8_t*>(host.t().data) - host.bytes().data()) +
      host.t().byte_offset;
  dev.Address(&t, buf.handle(), offset);
  return t;
}

// A tensor over a named buffer, built by hand (a DLTensor itself: &t is what the ABI takes).
struct DevTensor : DLTensor {
  std::vector<int64_t> shape_v, strides_v;
  DevTensor(DLDevice dev, void* handle, uint64_t offset, std::vector<int64_t> s, DLDataType dt,
            std::vector<int64_t> st = {})
      : DLTensor{}, shape_v(std::move(s)), strides_v(std::move(st)) {
    data = handle;
    device = dev;
    ndim = static_cast<int>(shape_v.size());
    dtype = dt;
    shape = shape_v.empty() ? nullptr : shape_v.data();
    strides = strides_v.empty() ? nullptr : strides_v.data();
    byte_offset = offset;
  }
  DevTensor(const DevTensor&) = delete;
  DevTensor& operator=(const DevTensor&) = delete;
};

inline std::string DeviceName(DLDevice d) {
  switch (d.device_type) {
    case kDLCPU: return "cpu";
    case kDLCUDA: return "cuda:" + std::to_string(d.device_id);
    case kDLOpenCL: return "opencl:" + std::to_string(d.device_id);
    default: return "device_type " + std::to_string(int(d.device_type));
  }
}

// ---- One call, checked three ways -----------------------------------------------------------

class GpuTester : public sdrop_test::CallBuilder<GpuTester> {
 public:
  using Op = CallOp;

  explicit GpuTester(const Device& dev) : dev_(dev) {}

  // Also compare with the scalar reference (default: when the tensor has at most 2^20 elements).
  GpuTester& reference(bool on) { reference_ = on ? 1 : 0; return *this; }
  // The status the device call must return instead of SDROP_OK (then nothing may be written).
  GpuTester& expect_status(sdrop_status s) { expect_ = s; return *this; }

  // Runs the case; failures are reported through gtest. Returns the device output bytes.
  std::vector<uint8_t> Run() const {
    SCOPED_TRACE("on " + DeviceName(dev_.dl_device()) + ": " + Describe());
    CallBuffers b(s_);
    const TensorBuffer& out = b.out();

    // Device twins of the host buffers.
    std::unique_ptr<DeviceBuffer> dx, dy, dm;
    if (b.x()) dx.reset(new DeviceBuffer(dev_, b.x()->bytes()));
    if (b.y()) dy.reset(new DeviceBuffer(dev_, b.y()->bytes()));
    if (b.mask()) dm.reset(new DeviceBuffer(dev_, b.mask()->bytes()));
    if ((dx && !dx->ok()) || (dy && !dy->ok()) || (dm && !dm->ok())) {
      ADD_FAILURE() << "device allocation failed";
      return {};
    }
    const DeviceBuffer& dout = s_.in_place() ? *dx : *dy;
    CallTensors dev;
    if (b.x()) dev.x = DeviceTensor(dev_, *b.x(), *dx);
    dev.y = b.y() ? DeviceTensor(dev_, *b.y(), *dy) : b.InPlaceY(dev.x);
    if (b.mask()) dev.mask = DeviceTensor(dev_, *b.mask(), *dm);

    const std::vector<uint8_t> x_before = b.XBytes(), mask_before = b.MaskBytes();
    const std::vector<uint8_t> out_before = out.bytes();
    const sdrop_params prm = params();

    // The CPU call on copies of the host bytes.
    std::vector<uint8_t> cpu_x = x_before, cpu_out = out_before, cpu_m = mask_before;
    const CallTensors cpu = b.Over(cpu_x, cpu_out, cpu_m);
    sdrop_status cpu_st = SDROP_ERROR_INTERNAL;
    if (expect_ == SDROP_OK) {
      CallTensors c = cpu;
      cpu_st = sdrop_test::CallSdrop(s_.op, &prm, &c.x, &c.y, &c.mask);
      EXPECT_EQ(cpu_st, SDROP_OK) << "the same call on the CPU: " << sdrop_status_name(cpu_st)
                                  << ": " << sdrop_last_error();
    }

    // The scalar reference, on its own copies.
    const bool use_ref =
        expect_ == SDROP_OK &&
        (reference_ == 1 || (reference_ < 0 && sdrop_ref::Numel(out.t()) <= (int64_t(1) << 20)));
    std::vector<uint8_t> ref_out;
    if (use_ref) {
      ref_out = out_before;
      b.Reference(ref_out);
    }

    // The device call.
    const sdrop_status st = sdrop_test::CallSdrop(s_.op, &prm, &dev.x, &dev.y, &dev.mask);
    const std::string msg = sdrop_last_error();
    dev_.Finish();
    std::vector<uint8_t> got = dout.ReadAll();
    got.resize(out_before.size());
    std::vector<uint8_t> no_x, no_mask;
    const DLTensor got_t = b.Over(no_x, got, no_mask).y;

    if (expect_ != SDROP_OK) {
      EXPECT_EQ(st, expect_) << sdrop_status_name(st) << ": " << msg;
      EXPECT_FALSE(msg.empty()) << "a refused call leaves a message";
      EXPECT_TRUE(got == out_before) << "a refused call wrote to its output";
    } else {
      EXPECT_EQ(st, SDROP_OK) << sdrop_status_name(st) << ": " << msg;
      if (st == SDROP_OK && cpu_st == SDROP_OK)
        sdrop_test::CompareOutput(got, cpu_out, got_t, cpu.y, "device vs cpu");
      if (st == SDROP_OK && use_ref) {
        const DLTensor ref_t = b.Over(no_x, ref_out, no_mask).y;
        sdrop_test::CompareOutput(got, ref_out, got_t, ref_t, "device vs reference");
      }
    }
    if (b.x() && !s_.in_place()) {
      std::vector<uint8_t> x_after = dx->ReadAll();
      x_after.resize(x_before.size());
      EXPECT_TRUE(x_after == x_before) << "the device input x was modified";
    }
    if (b.mask()) {
      std::vector<uint8_t> m_after = dm->ReadAll();
      m_after.resize(mask_before.size());
      EXPECT_TRUE(m_after == mask_before) << "the device input mask was modified";
    }
    return got;
  }

 private:
  Device dev_;
  int reference_ = -1;
  sdrop_status expect_ = SDROP_OK;
};

// ---- Fixtures ---------------------------------------------------------------------------------

inline bool Stop() { return sdrop_test::FailedParts() >= sdrop_test::kEnoughFailures; }

// Every test: its backend's queue set on the test's thread, or a skip saying why it cannot be.
class GpuFixture : public testing::Test {
 protected:
  void Start(const Backend* b) {
    backend_ = b;
    dev_ = Device{b, b->queue()};
    const std::string why = b->Unavailable();
    if (!why.empty()) {
      const std::string failure = b->MissingIsFailure();
      if (!failure.empty()) FAIL() << why << ". " << failure;
      GTEST_SKIP() << why;
    }
    ASSERT_EQ(b->SetQueue(b->queue()), SDROP_OK) << sdrop_last_error();
  }
  bool Started() const { return !IsSkipped() && !HasFatalFailure(); }
  const Backend& backend() const { return *backend_; }
  GpuTester Case() const { return GpuTester(dev_); }

  const Backend* backend_ = nullptr;
  Device dev_;
};

// Whether msg names `name` as a word (not as part of another identifier).
inline bool NamesArgument(const std::string& msg, const std::string& name) {
  auto ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (size_t at = msg.find(name); at != std::string::npos; at = msg.find(name, at + 1)) {
    const size_t end = at + name.size();
    if ((at == 0 || !ident(msg[at - 1])) && (end == msg.size() || !ident(msg[end]))) return true;
  }
  return false;
}

// Refusals: three 4096-byte device buffers (x: 1.0, 2.0, ... as float32; y: 0xA5; a mask: 1),
// and a check that a refused call writes nothing anywhere.
class RefusalFixture : public GpuFixture {
 protected:
  static constexpr size_t kBytes = 4096;
  static constexpr int kAnyFailure = -1;

  void StartRefusals(const Backend* b) {
    Start(b);
    if (!Started()) return;
    std::vector<uint8_t> xs(kBytes);
    for (size_t i = 0; i < kBytes / 4; ++i) {
      const float v = 1.0f + static_cast<float>(i);
      std::memcpy(&xs[4 * i], &v, 4);
    }
    xb.reset(new DeviceBuffer(dev_, xs));
    yb.reset(new DeviceBuffer(dev_, std::vector<uint8_t>(kBytes, 0xA5)));
    mb.reset(new DeviceBuffer(dev_, std::vector<uint8_t>(kBytes, 1)));
    ASSERT_TRUE(xb->ok() && yb->ok() && mb->ok());
  }

  DLDevice dl() const { return backend().dl_device(); }

  struct Snapshot {
    std::vector<uint8_t> x, y, m;
  };
  Snapshot Take() const { return Snapshot{xb->ReadAll(), yb->ReadAll(), mb->ReadAll()}; }
  void ExpectUnchanged(const Snapshot& s) {
    dev_.Finish();
    EXPECT_TRUE(xb->ReadAll() == s.x) << "x's buffer was written";
    EXPECT_TRUE(yb->ReadAll() == s.y) << "y's buffer was written";
    EXPECT_TRUE(mb->ReadAll() == s.m) << "the mask's buffer was written";
  }

  // Runs `call`; expects `want` (kAnyFailure: any status but OK), a message naming `name`
  // (unless empty), and every device buffer and host vector as it was.
  template <class F>
  void ExpectRefused(F call, int want, const std::string& name,
                     std::vector<const std::vector<uint8_t>*> host = {}) {
    const Snapshot before = Take();
    std::vector<std::vector<uint8_t>> h0;
    for (auto* h : host) h0.push_back(*h);
    const sdrop_status st = call();
    const std::string msg = sdrop_last_error();
    if (want == kAnyFailure) {
      EXPECT_NE(st, SDROP_OK) << "the call was accepted";
    } else {
      EXPECT_EQ(st, static_cast<sdrop_status>(want)) << sdrop_status_name(st) << ": " << msg;
    }
    EXPECT_FALSE(msg.empty());
    if (!name.empty()) {
      EXPECT_TRUE(NamesArgument(msg, name)) << "'" << msg << "' does not name " << name;
    }
    ExpectUnchanged(before);
    for (size_t i = 0; i < host.size(); ++i)
      EXPECT_TRUE(*host[i] == h0[i]) << "host buffer " << i << " was written";
  }

  std::unique_ptr<DeviceBuffer> xb, yb, mb;
  sdrop_params prm{0.5, 1, 2, 0x3u, 0};
};

// The refusal fixture of one backend's own cases (TEST_F), on the backend TheBackend() returns.
template <const Backend& (*TheBackend)()>
class RefusalsOn : public RefusalFixture {
 protected:
  void SetUp() override { StartRefusals(&TheBackend()); }
};

// ExpectRefused, with the failing call's line and text in the failure message.
#define SDROP_EXPECT_REFUSED(...) \
  do {                            \
    SCOPED_TRACE(#__VA_ARGS__);   \
    ExpectRefused(__VA_ARGS__);   \
  } while (0)

// The same call on kDLCPU tensors over host bytes: what a device result must equal.
inline DLTensor OnHost(const DLTensor& t, std::vector<uint8_t>& bytes) {
  DLTensor h = t;
  h.device = DLDevice{kDLCPU, 0};
  h.data = bytes.data();
  return h;
}

}  // namespace sdrop_gpu_test

#endif  // SDROP_TESTS_GPU_GPU_TESTER_H_
