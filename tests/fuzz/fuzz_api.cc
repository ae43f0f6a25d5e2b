// libFuzzer harness over the whole C ABI, looking for trouble (docs/testing.md, "fuzzing").
//
// Descriptors are biased to the boundaries: extents 0, 1, 2^31, 2^32, 2^62, INT64_MAX and
// products that wrap; strides +-1, +-2^31, +-2^32, +-2^62, INT64_MIN, INT64_MAX; byte offsets
// and data pointers near 0, 2^56 and 2^64; dtypes and devices that DLPack has and sdrop lacks;
// p NaN (quiet and signaling), -0, subnormal, 1 + ulp; unknown flag bits; shards whose origin
// or logical extent contradicts the shape; in place, interleaved and overlapping tensors.
//
// Every call is judged by a model of docs/refusals.md written here independently of the
// runtime (128-bit arithmetic; overlap by enumerating the arena's bytes):
//   - the model refuses: the library must refuse, with INVALID_ARGUMENT or UNSUPPORTED as the
//     faults found say, a message, and every byte of the arena untouched;
//   - the model accepts and every byte the call may touch is inside the arena: the library
//     must succeed, and the arena must equal what the scalar reference (tests/reference/)
//     computes on a copy, element by element (a NaN may change its payload) and byte by byte
//     elsewhere;
//   - the model accepts a tensor outside the arena: the call is not made (it would be valid,
//     and follow the pointer).
// ASan and UBSan watch every call.
#include <sdrop/sdrop.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "reference/sdrop_reference.h"

namespace {

using i128 = __int128;

constexpr size_t kArena = 1 << 16;
constexpr size_t kMid = kArena / 2;
constexpr int kBoolCode = 6;

// ---- Input ------------------------------------------------------------------------------------

struct Reader {
  const uint8_t* p;
  size_t n;
  uint8_t byte() {
    if (!n) return 0;
    --n;
    return *p++;
  }
  int range(int lo, int hi) { return lo + byte() % (hi - lo + 1); }
  template <typename T, size_t N>
  T pick(const T (&a)[N]) { return a[byte() % N]; }
};

const int64_t kBigExtents[] = {256, 65536, int64_t(1) << 31, int64_t(1) << 32, int64_t(1) << 62,
                               INT64_MAX, 3 * (int64_t(1) << 61), -1, INT64_MIN, 1 << 20};
const int64_t kBigStrides[] = {int64_t(1) << 31,  -(int64_t(1) << 31), int64_t(1) << 32,
                               -(int64_t(1) << 32), int64_t(1) << 62, -(int64_t(1) << 62),
                               INT64_MIN,          INT64_MAX,          -INT64_MAX,
                               int64_t(1) << 40,   int64_t(1) << 58,   int64_t(1) << 59};
const uint64_t kBigOffsets[] = {uint64_t(1) << 32, uint64_t(1) << 63, UINT64_MAX, UINT64_MAX - 7,
                                UINT64_MAX - kMid + 8, uint64_t(1) << 56, uint64_t(1) << 60};
const DLDataType kTypes[] = {{kDLFloat, 32, 1}, {kDLFloat, 16, 1}, {kDLBfloat, 16, 1},
                             {kDLFloat, 64, 1}, {kDLUInt, 8, 1},   {kBoolCode, 8, 1},
                             {kDLInt, 32, 1},   {kDLInt, 4, 1},    {10, 8, 1},
                             {kDLFloat, 32, 4}, {kDLFloat, 0, 1},  {99, 32, 1},
                             {kDLFloat, 12, 1}, {kDLComplex, 64, 1}};
const int kDevices[] = {kDLCPU, kDLCPU, kDLCPU, kDLCPU, kDLCPU, kDLCPU, kDLCUDAHost, kDLVulkan,
                        0,      -1,     kDLMetal, kDLCUDA, kDLOpenCL, 1000};

struct Desc {
  int64_t shape[10], strides[10];
  DLTensor t;
};

void make(Reader& r, Desc& d, uint8_t* arena, const DLTensor* like) {
  std::memset(&d, 0, sizeof d);
  const int ndim = like && r.byte() % 4 ? like->ndim : r.range(-1, 10);
  d.t.ndim = ndim;
  const int dims = ndim < 0 ? 0 : (ndim > 10 ? 10 : ndim);
  for (int i = 0; i < dims; i++) {
    const uint8_t k = r.byte();
    if (like && like->shape && i < like->ndim && k % 4) {
      d.shape[i] = like->shape[i];
    } else {
      d.shape[i] = k % 16 == 0 ? r.pick(kBigExtents) : r.range(0, 4);
    }
    const uint8_t s = r.byte();
    d.strides[i] = s % 16 == 0 ? r.pick(kBigStrides) : r.range(-8, 8);
  }
  d.t.shape = r.byte() % 64 ? d.shape : nullptr;
  d.t.strides = r.byte() % 3 ? d.strides : nullptr;
  d.t.dtype = like && r.byte() % 4 ? like->dtype : r.pick(kTypes);
  // Written as an int: a C caller may pass any value, but in C++ an out-of-range value of
  // the DLDeviceType enum cannot even be formed.
  const int32_t dev[2] = {r.byte() % 4 ? int32_t(kDLCPU) : r.pick(kDevices), 0};
  std::memcpy(&d.t.device, dev, sizeof dev);
  const uint8_t o = r.byte();
  d.t.byte_offset = o % 16 == 0 ? r.pick(kBigOffsets) : (o % 4 ? 0 : uint64_t(r.range(0, 9)));
  const uint8_t p = r.byte();
  if (p % 32 == 0) {
    d.t.data = nullptr;
  } else if (p % 32 == 1) {
    d.t.data = reinterpret_cast<void*>(uintptr_t(8));
  } else if (p % 32 == 2) {
    d.t.data = reinterpret_cast<void*>(~uintptr_t(0) - 63);
  } else if (p % 32 == 3) {
    d.t.data = reinterpret_cast<void*>((uintptr_t(1) << 56) - 16);
  } else {
    d.t.data = arena + kMid + r.range(-64, 64) * 8;
  }
}

// ---- The model ----------------------------------------------------------------------------------

struct Faults {
  int invalid = 0, unsupported = 0, gpu = 0;
  int unknown = 0;  // overlap the model could not decide (the library may refuse it either way)
};

bool valid_code(const DLDataType& d) { return d.bits != 0 && d.code <= 17; }
bool float_type(const DLDataType& d) {
  return d.lanes == 1 && ((d.code == kDLFloat && (d.bits == 16 || d.bits == 32 || d.bits == 64)) ||
                          (d.code == kDLBfloat && d.bits == 16));
}
bool mask_type(const DLDataType& d) {
  return d.lanes == 1 && d.bits == 8 && (d.code == kDLUInt || d.code == kBoolCode);
}
int dev_type(const DLDevice& d) {
  int32_t v;
  std::memcpy(&v, &d, sizeof v);
  return v;
}
int dev_id(const DLDevice& d) {
  int32_t v[2];
  std::memcpy(v, &d, sizeof v);
  return v[1];
}
bool cpu_device(const DLDevice& d) { return dev_type(d) == kDLCPU || dev_type(d) == kDLCUDAHost; }
bool gpu_device(const DLDevice& d) { return dev_type(d) == kDLCUDA || dev_type(d) == kDLOpenCL; }

// One tensor as the model sees it.
struct Model {
  bool present = false, structural = false, count_ok = false, empty = false, addr_ok = false;
  bool gpu = false;  // addresses not modelled (overlap unknown to the model)
  int itemsize = 0;
  i128 numel = 0;
  int64_t strides[10] = {};
  i128 base = 0, lo = 0, hi = 0;  // absolute first byte and one past the last
  bool in_arena = false;
  std::vector<uint64_t> starts;  // bitmap of element start bytes in the arena
};

bool set_bit(std::vector<uint64_t>& b, i128 at) {
  b[size_t(at >> 6)] |= uint64_t(1) << (at & 63);
  return true;
}

// Element start bytes as a bitmap: shifted ORs per axis, doubling (extents may be 2^31).
void element_starts(Model& m, const DLTensor& t, uint8_t* arena) {
  m.starts.assign(kArena / 64, 0);
  set_bit(m.starts, m.base - i128(uintptr_t(arena)));
  for (int i = 0; i < t.ndim; i++) {
    const int64_t e = t.shape[i];
    if (e <= 1 || m.strides[i] == 0) continue;
    const i128 step = i128(m.strides[i]) * m.itemsize;
    int64_t covered = 1;
    while (covered < e) {
      const int64_t take = covered < e - covered ? covered : e - covered;
      const i128 shift = step * take;
      std::vector<uint64_t> add(m.starts.size(), 0);
      for (size_t w = 0; w < m.starts.size(); w++) {
        uint64_t bits = m.starts[w];
        while (bits) {
          const int b = __builtin_ctzll(bits);
          bits &= bits - 1;
          const i128 to = i128(w * 64 + size_t(b)) + shift;
          if (to >= 0 && to < i128(kArena)) set_bit(add, to);
        }
      }
      for (size_t w = 0; w < add.size(); w++) m.starts[w] |= add[w];
      covered += take;
    }
  }
}

size_t popcount(const std::vector<uint64_t>& b) {
  size_t n = 0;
  for (uint64_t w : b) n += size_t(__builtin_popcountll(w));
  return n;
}

std::vector<uint64_t> covered_bytes(const Model& m) {
  std::vector<uint64_t> c(m.starts.size(), 0);
  for (size_t w = 0; w < m.starts.size(); w++) {
    uint64_t bits = m.starts[w];
    while (bits) {
      const int b = __builtin_ctzll(bits);
      bits &= bits - 1;
      for (int k = 0; k < m.itemsize; k++) {
        const size_t at = w * 64 + size_t(b) + size_t(k);
        if (at < kArena) c[at >> 6] |= uint64_t(1) << (at & 63);
      }
    }
  }
  return c;
}

Model describe(const DLTensor* t, uint8_t* arena) {
  Model m;
  if (!t) return m;
  m.present = true;
  m.structural = t->ndim >= 0 && t->ndim <= 8 && (t->ndim == 0 || t->shape) &&
                 t->dtype.lanes == 1 && valid_code(t->dtype) && dev_type(t->device) > 0;
  if (!m.structural) return m;
  for (int i = 0; i < t->ndim; i++) m.structural = m.structural && t->shape[i] >= 0;
  if (!m.structural) return m;
  m.itemsize = t->dtype.bits % 8 ? 0 : t->dtype.bits / 8;
  i128 n = 1;
  bool over = false;
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] == 0) m.empty = true;
  }
  for (int i = 0; i < t->ndim && !m.empty; i++) {
    n *= t->shape[i];
    if (n > (i128(1) << 62)) over = true;
    if (over) break;
  }
  m.count_ok = m.empty || !over;
  m.numel = m.empty ? 0 : n;
  i128 compact = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    m.strides[i] = t->strides ? t->strides[i] : int64_t(compact);
    if (compact < (i128(1) << 62)) compact *= t->shape[i] > 0 ? t->shape[i] : 1;
  }
  if (m.empty || !m.count_ok) {
    m.addr_ok = true;
    return m;
  }
  if (!t->data || m.itemsize == 0) {
    m.addr_ok = t->data != nullptr;  // a sub-byte dtype is refused for its type instead
    return m;
  }
  if (gpu_device(t->device)) {
    // Not modelled: GPU addresses follow their backend's rules (an OpenCL tensor's are
    // offsets into its cl_mem), and no GPU call can succeed in this process anyway.
    m.addr_ok = m.gpu = true;
    return m;
  }
  // Each reach is below 2^126 in magnitude; the sums saturate at 2^100 (far past every
  // limit below), so that 32 of them cannot overflow the model's own arithmetic.
  const i128 cap = i128(1) << 100;
  i128 below = 0, above = 0;
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] <= 1) continue;
    const i128 reach = i128(t->shape[i] - 1) * m.strides[i];
    i128& side = reach < 0 ? below : above;
    const i128 mag = reach < 0 ? -reach : reach;
    side = mag >= cap - side ? cap : side + mag;
  }
  const i128 lim = i128(1) << 60;
  const bool span_ok = below <= lim && above <= lim && (below + above + 1) * m.itemsize <= lim;
  m.base = i128(uintptr_t(t->data)) + i128(t->byte_offset);
  m.lo = m.base - below * m.itemsize;
  m.hi = m.base + (above + 1) * m.itemsize;
  m.addr_ok = span_ok && m.base < (i128(1) << 64) && m.lo >= 0 && m.hi <= (i128(1) << 56);
  m.in_arena = m.addr_ok && m.lo >= i128(uintptr_t(arena)) &&
               m.hi <= i128(uintptr_t(arena)) + i128(kArena);
  if (m.in_arena) element_starts(m, *t, arena);
  return m;
}

// Faults every tensor argument can have on its own.
void tensor_faults(const Model& m, Faults* f) {
  if (!m.present || !m.structural || !m.count_ok || !m.addr_ok) f->invalid++;
}

bool same_shape(const DLTensor& a, const DLTensor& b) {
  if (a.ndim != b.ndim) return false;
  for (int i = 0; i < a.ndim; i++)
    if (a.shape[i] != b.shape[i]) return false;
  return true;
}

bool same_device(const DLTensor& a, const DLTensor& b) {
  return (cpu_device(a.device) && cpu_device(b.device)) ||
         (dev_type(a.device) == dev_type(b.device) && dev_id(a.device) == dev_id(b.device));
}

// Device faults of a tensor that is otherwise valid: unsupported, or a GPU (whose calls
// need a driver and handles this process has not set: refused some other way).
void device_faults(const DLTensor& t, bool empty, Faults* f) {
  if (gpu_device(t.device)) f->gpu += !empty;  // an empty call returns before any GPU work
  else if (!cpu_device(t.device)) f->unsupported++;
}

// Overlap within an output: 1 yes, 0 no, -1 unknown to the model (then the call is outside
// the arena anyway).
int self_overlap(const Model& m) {
  if (m.empty || m.numel <= 1) return 0;
  if (m.gpu) return -1;
  if (!m.in_arena) {
    // More elements than footprint bytes: two of them share a start.
    return m.numel > (m.hi - m.lo) ? 1 : -1;
  }
  return i128(popcount(m.starts)) < m.numel ? 1 : 0;
}

bool in_place(const DLTensor& a, const Model& ma, const DLTensor& b, const Model& mb) {
  if (ma.base != mb.base || a.ndim != b.ndim || ma.itemsize != mb.itemsize) return false;
  for (int i = 0; i < a.ndim; i++) {
    if (a.shape[i] != b.shape[i]) return false;
    if (a.shape[i] > 1 && ma.strides[i] != mb.strides[i]) return false;
  }
  return true;
}

// Share a byte: 1 yes, 0 no, -1 unknown (a tensor outside the arena).
int share(const Model& a, const Model& b) {
  if (a.empty || b.empty) return 0;
  if (a.gpu || b.gpu) return -1;
  if (a.hi <= b.lo || b.hi <= a.lo) return 0;
  if (!a.in_arena || !b.in_arena) return -1;
  const std::vector<uint64_t> ca = covered_bytes(a), cb = covered_bytes(b);
  for (size_t w = 0; w < ca.size(); w++)
    if (ca[w] & cb[w]) return 1;
  return 0;
}

bool p_valid(double p) {
  uint64_t b;
  std::memcpy(&b, &p, 8);
  return b <= 0x3FF0000000000000ull || b == 0x8000000000000000ull;
}

// The shard rules (docs/semantics.md#shards) for a tensor of this shape.
bool shard_ok(const DLTensor& t, uint32_t axes, const int64_t* origin, const int64_t* logical) {
  i128 noise = 1;
  bool zero = false;
  for (int i = 0; i < t.ndim; i++) {
    const i128 o = origin ? origin[i] : 0, l = logical ? logical[i] : t.shape[i];
    if (o < 0 || o + t.shape[i] > l) return false;
    if (axes >> i & 1u) {
      zero = zero || l == 0;
      if (noise <= (i128(1) << 62)) noise *= l;  // saturates: stays above 2^62
    }
  }
  return zero || !logical || noise <= (i128(1) << 62);
}

// ---- Judging a call -------------------------------------------------------------------------

[[noreturn]] void die(const char* why, int op, sdrop_status s, const Faults& f) {
  std::fprintf(stderr, "FUZZ FAILURE: %s (op %d, status %s, model faults: %d invalid, %d "
               "unsupported, %d gpu): %s\n", why, op, sdrop_status_name(s), f.invalid,
               f.unsupported, f.gpu, sdrop_last_error());
  std::abort();
}

void expect_refusal(int op, sdrop_status s, const Faults& f) {
  if (s == SDROP_OK) die("accepted a call the model refuses", op, s, f);
  if (!*sdrop_last_error()) die("refused without a message", op, s, f);
  // A GPU tensor may be refused first for its backend's own reasons (alignment, no driver).
  if (f.unknown || f.gpu) return;
  if (f.unsupported == 0 && s != SDROP_ERROR_INVALID_ARGUMENT) die("wrong status", op, s, f);
  if (f.invalid == 0 && s != SDROP_ERROR_UNSUPPORTED) die("wrong status", op, s, f);
  if (s != SDROP_ERROR_INVALID_ARGUMENT && s != SDROP_ERROR_UNSUPPORTED) die("wrong status", op, s, f);
}

DLTensor rebased(const DLTensor& t, uint8_t* from, uint8_t* to) {
  DLTensor r = t;
  r.data = to + (static_cast<uint8_t*>(t.data) - from);
  return r;
}

// The fused epilogue with hostile bias and residual descriptors beside x and y. No model of its
// own rules here (tests/epilogue_test.cc and epilogue_backward_test.cc have them); what must
// hold whatever the rules: a tensor the model finds malformed (or a non-empty GPU one: this
// process sets no OpenCL queue and uses no CUDA device) is refused, a refusal writes nothing,
// an accepted call writes only y's elements, and no
// call touches memory outside its tensors (ASan). Calls that are well-formed but reach outside
// the arena are skipped, as in the main harness.
int fuzz_epilogue(Reader& r, uint8_t* A, std::vector<uint8_t>& before, const sdrop_params* pp,
                  const sdrop_shard* ps, DLTensor* px, DLTensor* py, Desc& m, const Desc& x) {
  Desc res;
  make(r, res, A, &x.t);
  if (r.byte() % 2 && m.t.ndim >= 1 && m.t.shape) {  // usually a plausible bias
    m.t.ndim = 1;
    m.shape[0] = x.t.ndim > 0 && x.t.shape ? x.t.shape[r.byte() % x.t.ndim] : r.range(0, 4);
  }
  sdrop_epilogue e{};
  e.bias = r.byte() % 4 ? &m.t : nullptr;
  const uint8_t rk = r.byte();
  e.residual = rk % 4 == 0 ? nullptr : rk % 4 == 1 ? py : &res.t;
  e.channel_axis = int32_t(r.byte() % 10) - 1;
  e.act = r.byte() % 8 ? r.byte() % 2 : int32_t(r.byte()) - 128;
  e.post = r.byte() % 8 ? r.byte() % 2 : int32_t(r.byte()) - 128;
  const sdrop_epilogue* pe = r.byte() % 32 ? &e : nullptr;
  bool must_refuse = !pp || !pe, safe = true;
  for (const DLTensor* t : {static_cast<const DLTensor*>(px), static_cast<const DLTensor*>(py),
                            e.bias, e.residual}) {
    if (!t && (t == px || t == py)) must_refuse = true;
    if (!t) continue;
    const Model md = describe(t, A);
    Faults f;
    tensor_faults(md, &f);
    if (f.invalid || md.gpu) must_refuse = true;
    else if (!md.empty && !md.in_arena) safe = false;
  }
  if (!safe && !must_refuse) return 0;
  before.assign(A, A + kArena);
  const sdrop_status s = sdrop_epilogue_forward(pp, ps, pe, px, py);
  const Faults none;
  if (must_refuse && s == SDROP_OK) die("epilogue accepted a malformed call", 6, s, none);
  if (s != SDROP_OK) {
    if (!*sdrop_last_error()) die("epilogue refused without a message", 6, s, none);
    if (std::memcmp(before.data(), A, kArena) != 0) die("epilogue wrote on refusal", 6, s, none);
    return 0;
  }
  static std::vector<uint8_t> mine(kArena);
  std::fill(mine.begin(), mine.end(), uint8_t(0));
  const size_t es = py->dtype.bits / 8;
  const Model my = describe(py, A);
  if (!my.empty) {
    sdrop_ref::ForEachIndex(sdrop_ref::Shape(*py), [&](const int64_t* idx) {
      std::memset(&mine[size_t(sdrop_ref::ElementAddress(*py, idx) - A)], 1, es);
    });
  }
  for (size_t i = 0; i < kArena; i++) {
    if (!mine[i] && A[i] != before[i]) die("epilogue wrote outside y", 6, s, none);
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader r{data, size};
  static std::vector<uint8_t> arena(kArena), before(kArena), copy(kArena), expected(kArena);
  for (size_t i = 0; i < kArena; i++) arena[i] = uint8_t(i * 131 + 7);
  uint8_t* A = arena.data();
  // 0 forward, 1 backward, 2 mask, 3 apply_mask, 4 forward_sharded, 5 mask_sharded; a first
  // byte >= 224 (one input in 8): the fused epilogue (fuzz_epilogue).
  const uint8_t op_byte = r.byte();
  const int op = op_byte % 6;
  sdrop_params params{};
  static const uint64_t kP[] = {0x0000000000000000ull, 0x3E112E0BE826D695ull /* 1e-9 */,
                                0x3FB999999999999Aull, 0x3FE0000000000000ull,
                                0x3FECCCCCCCCCCCCDull, 0x3FF0000000000000ull,
                                0x8000000000000000ull /* -0 */, 0x0000000000000001ull,
                                0x8000000000000001ull, 0x3FF0000000000001ull /* 1 + ulp */,
                                0x3FEFFFFFFFFFFFFFull, 0x7FF8000000000000ull, 0x7FF0000000000001ull,
                                0xFFF8000000000000ull, 0x7FF0000000000000ull, 0xBFE0000000000000ull};
  std::memcpy(&params.p, &kP[r.byte() % 16], 8);
  params.seed = uint64_t(r.byte()) << 40 | r.byte();
  params.offset = r.byte() % 8 ? r.byte() : UINT64_MAX - r.byte();
  params.mask_axes = r.byte() % 8 ? r.byte() : 0xffffffffu;
  params.flags = r.byte() % 8 ? r.byte() % 4 : r.byte();
  Desc x, y, m;
  make(r, x, A, nullptr);
  make(r, y, A, &x.t);
  make(r, m, A, &x.t);
  if (op == 2 || op == 5) {  // a mask of the noise shape, usually
    for (int i = 0; i < m.t.ndim && i < 10 && m.t.shape == m.shape; i++)
      if (!(params.mask_axes >> i & 1u) && r.byte() % 8) m.shape[i] = 1;
    if (r.byte() % 4) m.t.dtype = {kDLUInt, 8, 1};
  }
  if (op == 3) {
    for (int i = 0; i < m.t.ndim && i < 10 && m.t.shape == m.shape; i++)
      if (!(params.mask_axes >> i & 1u) && r.byte() % 8) m.shape[i] = 1;
    if (r.byte() % 4) m.t.dtype = r.byte() % 2 ? DLDataType{kDLUInt, 8, 1} : DLDataType{kBoolCode, 8, 1};
  }
  const uint8_t alias = r.byte();
  if (alias % 4 == 0) {  // in place, or nearly
    y = x;
    y.t.shape = x.t.shape ? y.shape : nullptr;
    y.t.strides = x.t.strides ? y.strides : nullptr;
    if (alias % 16 == 4) y.t.byte_offset += uint64_t(r.range(1, 8));
    if (alias % 16 == 8 && y.t.ndim > 0 && y.t.strides)
      y.strides[0] = int64_t(uint64_t(y.strides[0]) + uint64_t(r.range(-2, 2)));  // wraps, no UB
  }
  int64_t origin[10], logical[10];
  const bool sharded = op == 4 || op == 5;
  const DLTensor& st = op == 5 ? m.t : x.t;
  const bool shard_null = r.byte() % 16 == 0;
  for (int i = 0; i < 10; i++) {
    const int64_t e = (st.shape && i < st.ndim && st.ndim <= 10) ? st.shape[i] : 1;
    const uint8_t k = r.byte();
    origin[i] = k % 16 == 0 ? r.pick(kBigStrides) : r.range(0, 3);
    logical[i] = k % 16 == 1 ? r.pick(kBigExtents)
                             : int64_t(uint64_t(e) + uint64_t(origin[i]) + uint64_t(r.range(-1, 3)));
  }
  const sdrop_shard shard{r.byte() % 8 ? origin : nullptr, r.byte() % 8 ? logical : nullptr};
  const bool null_params = r.byte() % 32 == 0;
  const int drop_tensor = r.byte() % 32;  // 1..3: that tensor is NULL

  DLTensor* px = drop_tensor == 1 ? nullptr : &x.t;
  DLTensor* py = drop_tensor == 2 ? nullptr : &y.t;
  DLTensor* pm = drop_tensor == 3 ? nullptr : &m.t;
  const sdrop_params* pp = null_params ? nullptr : &params;
  const sdrop_shard* ps = shard_null ? nullptr : &shard;
  if (op_byte >= 224) return fuzz_epilogue(r, A, before, pp, ps, px, py, m, x);

  // The model's verdict.
  Faults f;
  bool runnable = true;  // every byte the call may touch is in the arena
  const bool takes_x = op != 2 && op != 5, takes_m = op == 2 || op == 3 || op == 5;
  const bool takes_y = takes_x;
  if (!pp || !p_valid(params.p)) f.invalid++;
  const bool checks_flags = takes_x;
  if (pp && checks_flags && (params.flags & ~3u)) f.invalid++;
  Model mx, my, mm;
  if (takes_x) {
    mx = describe(px, A);
    my = describe(py, A);
    tensor_faults(mx, &f);
    tensor_faults(my, &f);
  }
  if (takes_m) {
    mm = describe(pm, A);
    tensor_faults(mm, &f);
  }
  const bool tensors_ok = f.invalid == 0;
  if (takes_x && tensors_ok) {
    if (!float_type(x.t.dtype)) f.unsupported++;
    const bool dtypes_equal = x.t.dtype.code == y.t.dtype.code && x.t.dtype.bits == y.t.dtype.bits;
    if (!dtypes_equal) f.invalid++;
    if (!same_device(x.t, y.t)) f.invalid++;
    device_faults(x.t, mx.empty, &f);
    device_faults(y.t, my.empty, &f);
    if (!same_shape(x.t, y.t)) f.invalid++;
    if (pp && x.t.ndim < 32 && (params.mask_axes >> x.t.ndim)) f.invalid++;
    if (float_type(x.t.dtype) && dtypes_equal && same_shape(x.t, y.t)) {
      const int so = self_overlap(my);
      if (so == 1) f.invalid++;
      if (so == -1) runnable = false, f.unknown++;
      if (!in_place(x.t, mx, y.t, my)) {
        const int sh = share(mx, my);
        if (sh == 1) f.invalid++;
        if (sh == -1) runnable = false, f.unknown++;
      }
    }
    if (op == 4 && pp && !(params.mask_axes >> x.t.ndim) && ps && !shard_ok(x.t, params.mask_axes, ps->origin, ps->logical_shape))
      f.invalid++;
    runnable = runnable && (mx.empty || mx.in_arena) && (my.empty || my.in_arena);
  }
  if (takes_m && tensors_ok) {
    if (!mask_type(m.t.dtype)) f.invalid++;
    const DLTensor& like = op == 3 ? x.t : m.t;
    if (op == 3 && !same_device(x.t, m.t)) f.invalid++;
    if (op != 3) device_faults(m.t, mm.empty, &f);
    if (pp && m.t.ndim < 32 && (params.mask_axes >> m.t.ndim)) f.invalid++;
    bool noise_ok = m.t.ndim == like.ndim;
    for (int i = 0; noise_ok && i < m.t.ndim; i++) {
      const int64_t want = (pp && (params.mask_axes >> i & 1u)) ? like.shape[i] : 1;
      noise_ok = m.t.shape[i] == want;
    }
    if (!noise_ok) f.invalid++;
    if (op == 3 && mask_type(m.t.dtype)) {
      const int sh = share(mm, my);
      if (sh == 1) f.invalid++;
      if (sh == -1) runnable = false, f.unknown++;
    }
    if (op != 3 && mask_type(m.t.dtype)) {
      const int so = self_overlap(mm);
      if (so == 1) f.invalid++;
      if (so == -1) runnable = false, f.unknown++;
    }
    if (op == 5 && pp && !(params.mask_axes >> m.t.ndim) && ps && noise_ok &&
        !shard_ok(m.t, params.mask_axes, ps->origin, ps->logical_shape))
      f.invalid++;
    runnable = runnable && (mm.empty || mm.in_arena);
  }
  const bool refuse = f.invalid + f.unsupported + f.gpu > 0;
  if (!refuse && !runnable) return 0;  // valid, but would follow a pointer out of the arena

  before = arena;
  sdrop_status s = SDROP_OK;
  switch (op) {
    case 0: s = sdrop_forward(pp, px, py); break;
    case 1: s = sdrop_backward(pp, px, py); break;
    case 2: s = sdrop_mask(pp, pm); break;
    case 3: s = sdrop_apply_mask(pp, px, pm, py); break;
    case 4: s = sdrop_forward_sharded(pp, ps, px, py); break;
    case 5: s = sdrop_mask_sharded(pp, ps, pm); break;
  }
  if (refuse) {
    expect_refusal(op, s, f);
    if (std::memcmp(before.data(), A, kArena) != 0) die("wrote on refusal", op, s, f);
    return 0;
  }
  if (s != SDROP_OK) die("refused a call the model accepts", op, s, f);
  const bool empty = takes_x ? mx.empty : mm.empty;
  if (empty) {
    if (std::memcmp(before.data(), A, kArena) != 0) die("wrote on an empty call", op, s, f);
    return 0;
  }
  // The reference on copies: inputs read from `copy` (the arena before the call), outputs
  // written into `expected`.
  copy = before;
  expected = before;
  const DLTensor& out = takes_x ? y.t : m.t;
  const DLTensor out_ref = rebased(out, A, expected.data());
  sdrop_ref::Shard shard_ref;
  const DLTensor& shard_like = takes_x ? x.t : m.t;
  for (int i = 0; i < shard_like.ndim; i++) {
    shard_ref.origin.push_back(ps && ps->origin ? origin[i] : 0);
    shard_ref.logical.push_back(ps && ps->logical_shape ? logical[i] : shard_like.shape[i]);
  }
  switch (op) {
    case 0:
    case 1: sdrop_ref::Forward(params, rebased(x.t, A, copy.data()), out_ref); break;
    case 2: sdrop_ref::Mask(params, out_ref); break;
    case 3:
      sdrop_ref::ApplyMask(params, rebased(x.t, A, copy.data()), rebased(m.t, A, copy.data()), out_ref);
      break;
    case 4: sdrop_ref::ForwardShard(params, shard_ref, rebased(x.t, A, copy.data()), out_ref); break;
    case 5: sdrop_ref::MaskShard(params, shard_ref, out_ref); break;
  }
  // Output elements by value (a NaN may carry another payload), every other byte exactly.
  sdrop_ref::DType dt;
  const bool is_float = sdrop_ref::DTypeFromDL(out.dtype, &dt);
  const size_t es = out.dtype.bits / 8;
  static std::vector<uint8_t> seen(kArena);
  std::fill(seen.begin(), seen.end(), uint8_t(0));
  sdrop_ref::ForEachIndex(sdrop_ref::Shape(out), [&](const int64_t* idx) {
    const uint8_t* a = sdrop_ref::ElementAddress(out, idx);
    const uint8_t* e = sdrop_ref::ElementAddress(out_ref, idx);
    const uint64_t ab = sdrop_ref::LoadBits(a, es), eb = sdrop_ref::LoadBits(e, es);
    const bool same = ab == eb || (is_float && sdrop_ref::IsNaN(dt, ab) && sdrop_ref::IsNaN(dt, eb));
    if (!same) die("output differs from the reference", op, s, f);
    std::memset(&seen[size_t(a - A)], 1, es);
  });
  for (size_t i = 0; i < kArena; i++) {
    if (!seen[i] && A[i] != expected[i]) die("wrote outside the output", op, s, f);
  }
  return 0;
}
