// libFuzzer harness over the C ABI's argument checks and canonicalisation: random DLTensor
// descriptions (rank, extents, strides, offsets, dtypes, devices, aliasing), random params,
// every entry point. Properties checked on every input:
//   - nothing crashes, hangs, leaks or reads/writes out of bounds (ASan/UBSan);
//   - a refused call writes nothing: the whole arena is unchanged;
//   - an accepted call writes only inside its output's footprint.
// Tensors live in one arena; their data pointers sit in its middle so any accepted layout
// (extents <= 3, |strides| <= 8 or compact, rank <= 8) stays inside it.
#include <sdrop/sdrop.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr size_t kArena = 1 << 18;  // > 2 x the largest compact tensor: 3^8 float64
constexpr size_t kMid = kArena / 2;

struct Reader {
  const uint8_t* p;
  size_t n;
  uint8_t byte() {
    if (!n) return 0;
    --n;
    return *p++;
  }
  int range(int lo, int hi) { return lo + byte() % (hi - lo + 1); }
};

struct Desc {
  int64_t shape[10], strides[10];
  DLTensor t;
};

void make(Reader& r, Desc& d, uint8_t* arena, const DLTensor* like) {
  std::memset(&d, 0, sizeof d);
  const int ndim = like && r.byte() % 4 ? like->ndim : r.range(-1, 9);
  d.t.ndim = ndim;
  const int dims = ndim < 0 ? 0 : (ndim > 10 ? 10 : ndim);
  for (int i = 0; i < dims; i++) {
    d.shape[i] = (like && i < like->ndim && r.byte() % 4) ? like->shape[i] : r.range(-1, 3);
    d.strides[i] = r.range(-8, 8);
  }
  d.t.shape = d.shape;
  d.t.strides = r.byte() % 3 ? d.strides : nullptr;
  static const DLDataType kTypes[] = {{kDLFloat, 32, 1}, {kDLFloat, 16, 1}, {kDLBfloat, 16, 1},
                                      {kDLFloat, 64, 1}, {kDLUInt, 8, 1},   {6, 8, 1},
                                      {kDLInt, 32, 1},   {kDLFloat, 32, 4}, {kDLFloat, 12, 1}};
  d.t.dtype = like && r.byte() % 4 ? like->dtype : kTypes[r.byte() % 9];
  d.t.device = {r.byte() % 8 ? kDLCPU : DLDeviceType(r.range(2, 13)), 0};
  d.t.byte_offset = r.byte() % 4 ? 0 : r.range(0, 9);
  d.t.data = r.byte() % 16 ? arena + kMid + r.range(-64, 64) * 8 : nullptr;
}

void print(const char* name, const DLTensor& t) {
  std::fprintf(stderr, "%s: ndim %d dtype %d/%d/%d dev %d data %s off %llu shape", name,
               int(t.ndim), int(t.dtype.code), int(t.dtype.bits), int(t.dtype.lanes),
               int(t.device.device_type), t.data ? "set" : "NULL",
               (unsigned long long)t.byte_offset);
  for (int i = 0; i < t.ndim && i < 10; i++) std::fprintf(stderr, " %lld", (long long)t.shape[i]);
  std::fprintf(stderr, " strides");
  for (int i = 0; i < t.ndim && i < 10 && t.strides; i++)
    std::fprintf(stderr, " %lld", (long long)t.strides[i]);
  std::fprintf(stderr, "\n");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader r{data, size};
  static std::vector<uint8_t> arena(kArena), before(kArena);
  for (size_t i = 0; i < kArena; i++) arena[i] = uint8_t(i * 131 + 7);
  const int op = r.byte() % 5;
  sdrop_params params{};
  const uint8_t pb = r.byte();
  static const double kP[] = {0.0, 1e-9, 0.1, 0.5, 0.9, 1.0, -0.5, 1.5, __builtin_nan("")};
  params.p = kP[pb % 9];
  params.seed = uint64_t(r.byte()) << 40 | r.byte();
  params.offset = r.byte();
  params.mask_axes = r.byte() % 8 ? r.byte() : 0xffffffffu;
  params.flags = r.byte() % 8 ? r.byte() % 2 : r.byte();
  Desc x, y, m;
  make(r, x, arena.data(), nullptr);
  make(r, y, arena.data(), &x.t);
  make(r, m, arena.data(), &x.t);
  if (r.byte() % 4 == 0) y = x, y.t.shape = y.shape, y.t.strides = x.t.strides ? y.strides : nullptr;
  const bool null_params = r.byte() % 32 == 0;
#define FAIL(why)                                                                          \
  do {                                                                                     \
    std::fprintf(stderr, "%s: op %d status %d p %g axes 0x%x flags %u (%s)\n", why, op,   \
                 int(s), params.p, params.mask_axes, params.flags, sdrop_last_error());     \
    print("x", x.t), print("y", y.t), print("m", m.t);                                     \
    std::abort();                                                                          \
  } while (0)
  before = arena;
  sdrop_status s = SDROP_OK;
  const sdrop_params* pp = null_params ? nullptr : &params;
  switch (op) {
    case 0: s = sdrop_forward(pp, &x.t, &y.t); break;
    case 1: s = sdrop_backward(pp, &x.t, &y.t); break;
    case 2: s = sdrop_mask(pp, &m.t); break;
    case 3: s = sdrop_apply_mask(pp, &x.t, &m.t, &y.t); break;
    case 4: s = sdrop_forward(pp, r.byte() % 2 ? nullptr : &x.t, r.byte() % 2 ? nullptr : &y.t); break;
  }
  if (s == SDROP_OK && op != 4) {
    // Only the output's own elements may change.
    const DLTensor& out = op == 2 ? m.t : y.t;
    std::vector<uint8_t> allowed(kArena, 0);
    if (out.data) {
      int64_t numel = 1, st[10];
      for (int i = 0; i < out.ndim; i++) numel *= out.shape[i];
      int64_t acc = 1;
      for (int i = out.ndim - 1; i >= 0; i--) {
        st[i] = out.strides ? out.strides[i] : acc;
        acc *= out.shape[i];
      }
      const int64_t item = out.dtype.bits / 8;
      const int64_t base = static_cast<uint8_t*>(out.data) + out.byte_offset - arena.data();
      int64_t idx[10] = {};
      for (int64_t k = 0; k < numel; k++) {
        int64_t off = base;
        for (int i = 0; i < out.ndim; i++) off += idx[i] * st[i] * item;
        for (int64_t b = 0; b < item; b++) {
          if (off + b < 0 || off + b >= int64_t(kArena)) FAIL("accepted, but reaches outside");
          allowed[size_t(off + b)] = 1;
        }
        for (int i = out.ndim - 1; i >= 0; i--) {
          if (++idx[i] < out.shape[i]) break;
          idx[i] = 0;
        }
      }
    }
    for (size_t i = 0; i < kArena; i++) {
      if (!allowed[i] && arena[i] != before[i]) FAIL("wrote outside the output");
    }
  }
  if (s != SDROP_OK) {
    if (std::memcmp(before.data(), arena.data(), kArena) != 0) FAIL("wrote on refusal");
    if (!*sdrop_last_error()) FAIL("refused without a message");
  }
  return 0;
}
