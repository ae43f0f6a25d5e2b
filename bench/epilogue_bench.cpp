// The fused channel epilogue (docs/epilogue.md, SPEC §9) timed against what it replaces, f32
// NCHW, p = 0.5, the chain of a convolution's bias, its ReLU, spatial dropout, a residual add
// and the ReLU after it:
//
//   y = relu(residual + dropout(relu(x + bias[c])))
//
//   epilogue/fused/...    one sdrop_epilogue_forward call (bias, residual, act = post = ReLU)
//                         into a reused output;
//   epilogue/unfused/...  the same chain as separate passes over reused buffers: a C pass
//                         t = relu(x + bias) written like the references (refs.cpp, their
//                         parallel loop), sdrop_forward on t in place, a C pass y = relu(r + t);
//   epilogue/unfused_oop/...  the same, but each pass into an output of its own: t = relu(x + b),
//                         u = sdrop_forward(t) out of place, y = relu(r + u) (for the record: no
//                         target is set against it);
//   epilogue/torch/...    libtorch's eager sequence relu(dropout2d(relu(x + bias)) + r), every op
//                         allocating its output as eager PyTorch does (the row's label says so);
//   epilogue/traffic/...  the traffic limit: the chain's arithmetic over the fewest bytes, as
//                         a reference pass (refs.cpp): x read on kept rows only (every other row
//                         at p = 0.5), the residual read, y written.
//
// All on the same first-touched buffers (x is the shared input A, y the shared output B; the
// residual and the unfused intermediate are buffers of their own, first-touched the same way),
// on 2 threads (the count; fewer if --threads says fewer): sdrop_set_num_threads(2),
// the references' pool capped at 2, at::set_num_threads(2). Bytes counted, for every row alike:
// 3 * numel * 4 (x, the residual and y), so their GB/s compare as their times do.
//
// Before its timed loop the fused row checks its output against the unfused sequence's, bit for
// bit (SPEC §9), and reports an error if they differ: the rows time the same computation.
//
// The backward rows (epilogue_bwd/fused, epilogue_bwd/unfused) are described further down.
#include <sdrop/sdrop.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "epilogue.h"
#include "torch_peer.h"

namespace sdb {

namespace {

constexpr int kEpiThreads = 2;  // the thread count
constexpr double kEpiP = 0.5;

int epi_threads() { return config().threads < kEpiThreads ? config().threads : kEpiThreads; }

// The residual, the unfused sequence's intermediate and the bias, at the largest size registered.
size_t g_reserved = 0;
float* g_residual = nullptr;
float* g_tmp = nullptr;
float* g_tmp2 = nullptr;  // unfused_oop's dropout output, allocated by the first such row
std::vector<float> g_bias;

void ensure_buffers(const Size& s) {
  if (!g_residual) {
    const size_t bytes = g_reserved ? g_reserved : 4096;
    g_residual = static_cast<float*>(alloc_first_touched(bytes));
    g_tmp = static_cast<float*>(alloc_first_touched(bytes));
    const size_t n = bytes / 4;
    // Residual values in [-1, 1), so the final ReLU zeroes part of the dropped channels.
    pool().run([&](int t, int nt) {
      size_t b, e;
      chunk(n, t, nt, 16, &b, &e);
      for (size_t i = b; i < e; ++i) g_residual[i] = float(int(i % 1000) - 500) * 0.002f;
    });
  }
  if (g_bias.size() < size_t(s.c)) {
    g_bias.resize(size_t(s.c));
    for (size_t c = 0; c < g_bias.size(); ++c) g_bias[c] = -0.25f + 0.03125f * float(c % 16);
  }
}

// The tensors of one call: x over A, y over B, the residual, the bias, the intermediate t.
struct EpiCall {
  int64_t shape[4];
  int64_t bias_shape[1];
  DLTensor x{}, y{}, r{}, b{}, t{};
  sdrop_params prm{};
  sdrop_epilogue epi{};
  EpiShape geom{};

  DLTensor u{};  // unfused_oop's dropout output

  explicit EpiCall(const Size& s) {
    shape[0] = s.n;
    shape[1] = s.c;
    shape[2] = s.h;
    shape[3] = s.w;
    bias_shape[0] = s.c;
    x.data = buf_a();
    x.device = DLDevice{kDLCPU, 0};
    x.ndim = 4;
    x.dtype = DLDataType{kDLFloat, 32, 1};
    x.shape = shape;
    x.strides = nullptr;
    x.byte_offset = 0;
    y = x;
    y.data = buf_b();
    r = x;
    r.data = g_residual;
    t = x;
    t.data = g_tmp;
    u = x;
    u.data = g_tmp2;
    b = x;
    b.ndim = 1;
    b.shape = bias_shape;
    b.data = g_bias.data();
    prm.p = kEpiP;
    prm.seed = 0x5d509ull;
    prm.offset = 0;
    prm.mask_axes = sdrop_spatial_axes(4, SDROP_CHANNELS_FIRST);
    prm.flags = 0u;
    epi.bias = &b;
    epi.residual = &r;
    epi.channel_axis = 1;
    epi.act = SDROP_ACTIVATION_RELU;
    epi.post = SDROP_ACTIVATION_RELU;
    geom.rows = size_t(s.n * s.c);
    geom.hw = size_t(s.h * s.w);
    geom.c = size_t(s.c);
  }
  EpiCall(const EpiCall&) = delete;
  EpiCall& operator=(const EpiCall&) = delete;

  const float* xf() const { return static_cast<const float*>(x.data); }
  float* yf() const { return static_cast<float*>(y.data); }
  const float* rf() const { return static_cast<const float*>(r.data); }
  float* tf() const { return static_cast<float*>(t.data); }
  const float* bf() const { return static_cast<const float*>(b.data); }
};

std::string fail(const char* what, sdrop_status st) {
  return std::string(what) + ": " + sdrop_status_name(st) + ": " + sdrop_last_error();
}

// The unfused sequence: t = relu(x + b); t = dropout(t) in place; y = relu(r + t).
sdrop_status unfused(EpiCall& c, int threads) {
  ref_bias_relu(c.tf(), c.xf(), c.bf(), c.geom, threads);
  sdrop_status st = sdrop_forward(&c.prm, &c.t, &c.t);
  if (st != SDROP_OK) return st;
  ref_add_relu(c.yf(), c.rf(), c.tf(), c.geom, threads);
  return SDROP_OK;
}

// The same with the dropout out of place into u: y = relu(r + u).
sdrop_status unfused_oop(EpiCall& c, int threads) {
  ref_bias_relu(c.tf(), c.xf(), c.bf(), c.geom, threads);
  sdrop_status st = sdrop_forward(&c.prm, &c.t, &c.u);
  if (st != SDROP_OK) return st;
  ref_add_relu(c.yf(), c.rf(), static_cast<const float*>(c.u.data), c.geom, threads);
  return SDROP_OK;
}

// The fused output at one offset against the unfused sequence's (untimed): "" when they are the
// same bits, else what differs.
std::string check_fused(EpiCall& c, int64_t numel) {
  sdrop_status st = sdrop_epilogue_forward(&c.prm, nullptr, &c.epi, &c.x, &c.y);
  if (st != SDROP_OK) return fail("sdrop_epilogue_forward", st);
  // The unfused sequence into t, its last pass compared element by element instead of stored.
  ref_bias_relu(c.tf(), c.xf(), c.bf(), c.geom, config().threads);
  st = sdrop_forward(&c.prm, &c.t, &c.t);
  if (st != SDROP_OK) return fail("sdrop_forward", st);
  const float* y = c.yf();
  const float* r = c.rf();
  const float* t = c.tf();
  for (int64_t i = 0; i < numel; ++i) {
    float v = r[i] + t[i];
    v = v <= 0.0f ? 0.0f : v;
    if (std::memcmp(&v, y + i, 4) != 0) {
      char buf[160];
      std::snprintf(buf, sizeof buf,
                    "fused != unfused at element %lld: %a vs %a (x %a, residual %a)",
                    (long long)i, double(y[i]), double(v), double(c.xf()[i]), double(r[i]));
      return buf;
    }
  }
  return "";
}

enum class Impl { fused, unfused, unfused_oop, torch, traffic };
const char* impl_name(Impl i) {
  switch (i) {
    case Impl::fused: return "fused";
    case Impl::unfused: return "unfused";
    case Impl::unfused_oop: return "unfused_oop";
    case Impl::torch: return "torch";
    default: return "traffic";
  }
}

void bm_epilogue(benchmark::State& st, Impl impl, const Size* size) {
  const int64_t numel = size->numel();
  fill_input(DType::f32, numel);
  ensure_buffers(*size);
  EpiCall c(*size);
  const int threads = epi_threads();
  const int64_t counted = 3 * numel * 4;
  std::string label;
  switch (impl) {
    case Impl::fused: {
      sdrop_set_num_threads(threads);
      // Checked once per size (Google Benchmark calls this function several times a row).
      static std::string checked[3], bad_at[3];
      const size_t k = size_t(size - kSizes);
      if (checked[k].empty()) {
        bad_at[k] = check_fused(c, numel);
        checked[k] = "yes";
      }
      const std::string bad = bad_at[k];
      if (!bad.empty()) {
        sdrop_set_num_threads(config().threads);
        st.SkipWithError(bad.c_str());
        return;
      }
      label = std::string("isa=") + sdrop_cpu_isa_name(sdrop_get_cpu_isa()) +
              " threads=" + std::to_string(sdrop_get_num_threads());
      for (auto _ : st) {
        ++c.prm.offset;  // a new mask every call, as in training
        sdrop_status r = sdrop_epilogue_forward(&c.prm, nullptr, &c.epi, &c.x, &c.y);
        benchmark::DoNotOptimize(c.y.data);
        benchmark::ClobberMemory();
        if (r != SDROP_OK) {
          st.SkipWithError(fail("sdrop_epilogue_forward", r).c_str());
          break;
        }
      }
      sdrop_set_num_threads(config().threads);
      break;
    }
    case Impl::unfused:
    case Impl::unfused_oop: {
      if (impl == Impl::unfused_oop && !g_tmp2)
        g_tmp2 = static_cast<float*>(alloc_first_touched(g_reserved));
      c.u.data = g_tmp2;
      sdrop_set_num_threads(threads);
      label = "threads=" + std::to_string(sdrop_get_num_threads()) + " refs=" +
              std::to_string(std::min(ref_threads(size_t(numel) * 4), threads));
      for (auto _ : st) {
        ++c.prm.offset;
        sdrop_status r = impl == Impl::unfused ? unfused(c, threads) : unfused_oop(c, threads);
        benchmark::DoNotOptimize(c.y.data);
        benchmark::ClobberMemory();
        if (r != SDROP_OK) {
          st.SkipWithError(fail("sdrop_forward", r).c_str());
          break;
        }
      }
      sdrop_set_num_threads(config().threads);
      break;
    }
    case Impl::torch:
      bm_torch_epilogue(st, *size, kEpiP, threads, c.xf(), c.bf(), c.rf());
      return;  // it sets its own bytes and label
    case Impl::traffic:
      label = std::string("clone=") + ref_clone_isa() + " threads=" +
              std::to_string(std::min(ref_threads(size_t(numel) * 4), threads));
      for (auto _ : st) {
        ref_epilogue_traffic(c.yf(), c.xf(), c.bf(), c.rf(), c.geom, kEpiP, threads);
        benchmark::DoNotOptimize(c.y.data);
        benchmark::ClobberMemory();
      }
      break;
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * counted);
  st.SetLabel(label);
}


// ---- backward ---------------------------------------------------------------------------------
// The gradients of the same chain from dy (docs/epilogue.md#backward), on the same 2 threads:
//
//   epilogue_bwd/fused/...    one sdrop_epilogue_backward(params, NULL, &epi, &x, &dy, &dx,
//                             &dbias, &dresidual) into reused outputs (y recomputed inside,
//                             nothing stored by the forward);
//   epilogue_bwd/unfused/...  what autograd of the unfused sequence does, from the forward's
//                             stored ReLU outputs a = relu(x + b) and y (computed untimed, once
//                             per size), as separate passes over reused buffers: a C pass
//                             g = y <= 0 ? 0 : dy (it is also dresidual), sdrop_backward(g) into
//                             da (out of place), a C pass dx = a <= 0 ? 0 : da and a C reduction
//                             dbias[c] = the sum of dx over n, h, w (refs.cpp, their parallel
//                             loop; the reduction parallel over channels, float accumulation).
//
// Both at one fixed offset: the stored a and y are those of one mask, and regenerating a mask
// costs the same whichever it is. dx is the shared output B, dy, a, y, g, da and the fused
// dresidual buffers of their own, first-touched the same way. Bytes counted, for both rows:
// 5 * numel * 4 (x, the residual and dy read, dx and dresidual written).
//
// Before its timed loop the fused row checks its dx and dresidual against the unfused passes'
// bit for bit and its dbias within a relative 1e-4, and reports an error otherwise.
float* g_dy = nullptr;    // dy
float* g_a = nullptr;     // the forward's stored a = relu(x + b)
float* g_ys = nullptr;    // the forward's stored y
float* g_g = nullptr;     // the unfused g = relu'(y) * dy (its dresidual)
float* g_da = nullptr;    // the unfused sdrop_backward(g)
float* g_dres = nullptr;  // the fused dresidual
std::vector<float> g_dbias;
const Size* g_stored = nullptr;  // the size whose a and y g_a and g_ys hold

void ensure_bwd_buffers(const Size& s) {
  if (!g_dy) {
    const size_t bytes = g_reserved ? g_reserved : 4096;
    for (float** p : {&g_dy, &g_a, &g_ys, &g_g, &g_da, &g_dres})
      *p = static_cast<float*>(alloc_first_touched(bytes));
    const size_t n = bytes / 4;
    // dy of both signs, in a pattern of its own (not the residual's).
    pool().run([&](int t, int nt) {
      size_t b, e;
      chunk(n, t, nt, 16, &b, &e);
      for (size_t i = b; i < e; ++i) g_dy[i] = float(int((i * 7) % 1000) - 500) * 0.001f;
    });
  }
  if (g_dbias.size() < size_t(s.c)) g_dbias.resize(size_t(s.c));
}

// The tensors of one backward call: the forward's (x, residual, bias, params, epilogue) and dy,
// dx over B, dbias, the fused dresidual, the unfused a, y, g and da.
struct BwdCall {
  EpiCall c;
  int64_t db_shape[1];
  DLTensor dy{}, dx{}, db{}, dres{}, a{}, ys{}, g{}, da{};

  explicit BwdCall(const Size& s) : c(s) {
    db_shape[0] = s.c;
    auto over = [&](void* p) {
      DLTensor t = c.x;
      t.data = p;
      return t;
    };
    dy = over(g_dy);
    dx = over(buf_b());
    dres = over(g_dres);
    a = over(g_a);
    ys = over(g_ys);
    g = over(g_g);
    da = over(g_da);
    db = c.b;
    db.shape = db_shape;
    db.data = g_dbias.data();
  }
  BwdCall(const BwdCall&) = delete;
  BwdCall& operator=(const BwdCall&) = delete;

  static float* f(const DLTensor& t) { return static_cast<float*>(t.data); }
};

// The unfused forward at this size, storing what autograd keeps: a = relu(x + b) and
// y = relu(r + dropout(a)) (untimed; g holds dropout(a) in between). Redone only when the size
// changes: nothing else writes these buffers.
sdrop_status store_forward(BwdCall& b, const Size* size) {
  if (g_stored == size) return SDROP_OK;
  EpiCall& c = b.c;
  ref_bias_relu(BwdCall::f(b.a), c.xf(), c.bf(), c.geom, config().threads);
  sdrop_status st = sdrop_forward(&c.prm, &b.a, &b.g);
  if (st != SDROP_OK) return st;
  ref_add_relu(BwdCall::f(b.ys), c.rf(), BwdCall::f(b.g), c.geom, config().threads);
  g_stored = size;
  return SDROP_OK;
}

// Autograd of the unfused sequence: g = relu'(y) dy; da = sdrop_backward(g); dx = relu'(a) da;
// dbias = the channel sums of dx. dx into `dx`, dbias into `dbias`.
sdrop_status unfused_bwd(BwdCall& b, DLTensor& dx, float* dbias, int threads) {
  const EpiShape& s = b.c.geom;
  ref_relu_grad(BwdCall::f(b.g), BwdCall::f(b.ys), BwdCall::f(b.dy), s, threads);
  sdrop_status st = sdrop_backward(&b.c.prm, &b.g, &b.da);
  if (st != SDROP_OK) return st;
  ref_relu_grad(BwdCall::f(dx), BwdCall::f(b.a), BwdCall::f(b.da), s, threads);
  ref_channel_sum(dbias, BwdCall::f(dx), s, threads);
  return SDROP_OK;
}

// The fused gradients against the unfused passes' (untimed): "" when dx and dresidual are the
// same bits and every dbias[c] is within a relative 1e-4, else what differs. The unfused dx goes
// to B, the fused one to the da buffer (free once the unfused passes are done).
std::string check_fused_bwd(BwdCall& b, int64_t numel) {
  std::vector<float> ref(size_t(b.c.geom.c));
  sdrop_status st = unfused_bwd(b, b.dx, ref.data(), config().threads);
  if (st != SDROP_OK) return fail("sdrop_backward", st);
  st = sdrop_epilogue_backward(&b.c.prm, nullptr, &b.c.epi, &b.c.x, &b.dy, &b.da, &b.db, &b.dres);
  if (st != SDROP_OK) return fail("sdrop_epilogue_backward", st);
  char buf[200];
  const float* fdx = BwdCall::f(b.da);
  const float* udx = BwdCall::f(b.dx);
  const float* fdr = BwdCall::f(b.dres);
  const float* udr = BwdCall::f(b.g);
  for (int64_t i = 0; i < numel; ++i) {
    if (std::memcmp(fdx + i, udx + i, 4) != 0) {
      std::snprintf(buf, sizeof buf, "fused dx != unfused at element %lld: %a vs %a",
                    (long long)i, double(fdx[i]), double(udx[i]));
      return buf;
    }
    if (std::memcmp(fdr + i, udr + i, 4) != 0) {
      std::snprintf(buf, sizeof buf, "fused dresidual != unfused at element %lld: %a vs %a",
                    (long long)i, double(fdr[i]), double(udr[i]));
      return buf;
    }
  }
  const float* fdb = BwdCall::f(b.db);
  for (size_t k = 0; k < ref.size(); ++k) {
    const double d = std::fabs(double(fdb[k]) - double(ref[k]));
    if (!(d <= 1e-4 * std::fabs(double(ref[k])))) {
      std::snprintf(buf, sizeof buf,
                    "fused dbias != unfused at channel %zu: %a vs %a (relative %g > 1e-4)", k,
                    double(fdb[k]), double(ref[k]), d / std::fabs(double(ref[k])));
      return buf;
    }
  }
  return "";
}

void bm_epilogue_bwd(benchmark::State& st, Impl impl, const Size* size) {
  const int64_t numel = size->numel();
  fill_input(DType::f32, numel);
  ensure_buffers(*size);
  ensure_bwd_buffers(*size);
  BwdCall b(*size);
  const int threads = epi_threads();
  const int64_t counted = 5 * numel * 4;
  if (sdrop_status s0 = store_forward(b, size); s0 != SDROP_OK) {
    st.SkipWithError(fail("sdrop_forward", s0).c_str());
    return;
  }
  std::string label;
  sdrop_set_num_threads(threads);
  if (impl == Impl::fused) {
    static std::string checked[3], bad_at[3];
    const size_t k = size_t(size - kSizes);
    if (checked[k].empty()) {
      bad_at[k] = check_fused_bwd(b, numel);
      checked[k] = "yes";
    }
    const std::string bad = bad_at[k];
    if (!bad.empty()) {
      sdrop_set_num_threads(config().threads);
      st.SkipWithError(bad.c_str());
      return;
    }
    label = std::string("isa=") + sdrop_cpu_isa_name(sdrop_get_cpu_isa()) +
            " threads=" + std::to_string(sdrop_get_num_threads());
    for (auto _ : st) {
      sdrop_status r = sdrop_epilogue_backward(&b.c.prm, nullptr, &b.c.epi, &b.c.x, &b.dy, &b.dx,
                                               &b.db, &b.dres);
      benchmark::DoNotOptimize(b.dx.data);
      benchmark::ClobberMemory();
      if (r != SDROP_OK) {
        st.SkipWithError(fail("sdrop_epilogue_backward", r).c_str());
        break;
      }
    }
  } else {
    label = "threads=" + std::to_string(sdrop_get_num_threads()) + " refs=" +
            std::to_string(std::min(ref_threads(size_t(numel) * 4), threads));
    for (auto _ : st) {
      sdrop_status r = unfused_bwd(b, b.dx, BwdCall::f(b.db), threads);
      benchmark::DoNotOptimize(b.dx.data);
      benchmark::ClobberMemory();
      if (r != SDROP_OK) {
        st.SkipWithError(fail("sdrop_backward", r).c_str());
        break;
      }
    }
  }
  sdrop_set_num_threads(config().threads);
  st.SetBytesProcessed(int64_t(st.iterations()) * counted);
  st.SetLabel(label);
}

}  // namespace

void register_epilogue(void (*apply)(benchmark::internal::Benchmark*)) {
  for (const Size& size : kSizes) {
    const size_t bytes = size_t(size.numel()) * 4;
    reserve_buffers(bytes);
    if (bytes > g_reserved) g_reserved = bytes;
    for (Impl impl : {Impl::fused, Impl::unfused, Impl::unfused_oop, Impl::torch, Impl::traffic}) {
      if (impl == Impl::torch) {
        std::string why;
        if (!config().torch || !torch_supports(DType::f32, &why)) continue;
      }
      const std::string name = std::string("epilogue/") + impl_name(impl) + "/f32/nchw/" +
                               size.name + "/p0.5";
      const Size* s = &size;
      apply(benchmark::RegisterBenchmark(
          name.c_str(), [impl, s](benchmark::State& st) { bm_epilogue(st, impl, s); }));
    }
    for (Impl impl : {Impl::fused, Impl::unfused}) {
      const std::string name = std::string("epilogue_bwd/") + impl_name(impl) + "/f32/nchw/" +
                               size.name + "/p0.5";
      const Size* s = &size;
      apply(benchmark::RegisterBenchmark(
          name.c_str(), [impl, s](benchmark::State& st) { bm_epilogue_bwd(st, impl, s); }));
    }
  }
}

}  // namespace sdb
