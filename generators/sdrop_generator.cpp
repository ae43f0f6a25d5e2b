// The sdrop generator: one pipeline family built from algorithm.h, instantiated per
//   op    — dropout (Philox mask), apply_mask (caller's mask), mask (write the keep bits);
//   shape — the canonical loop nest the runtime maps every tensor onto (see below);
//   dtype — f16, bf16, f32, f64;
// and per target (the CPU ISA variants, CUDA, OpenCL). generate() states what is computed;
// schedule() says how, driven by a few knobs that the tuning table sets per (target, op,
// shape, dtype).
//
// Canonical shapes (3-D, innermost first; the runtime merges, sorts and flips axes so that
// every tensor lands on one of them, and loops over any further axes itself):
//   rows          d0 does not vary the mask (ms0 == 0): one keep bit per row (d1, d2).
//   channels_last d0 varies the mask, d1 does not (ms1 == 0): the keep bits of a row of d0
//                 are drawn once and reused along d1 (N, spatial, C tensors).
//   elementwise   anything else: one draw per element.
// Mask index of element (d0, d1, d2): m = mbase + d0*ms0 + d1*ms1 + d2*ms2 (64-bit).
//
// CPU: each task draws the keep bits it needs into a stack buffer first, a Philox block
// (4 consecutive mask indices) per draw where consecutive elements of the drawn dimension
// have consecutive mask indices (the common case), then runs branch-free vector loops that
// select x*s or the dropped value (rows with skip_dropped: only each row's own loop, see
// define_rows_cpu). GPU: a rows block draws its row's bit once and runs only
// the kept or the dropped loop (the dropped one never loads x in exact-zero mode). The fused
// epilogue and its row sums run on both, from the same algorithm.h expressions, so a GPU
// result is the CPU's bit for bit.
//
// GPU targets: a device buffer (an OpenCL cl_mem) cannot be offset by pointer arithmetic,
// so every buffer has a 4th, extent-1 "origin" dim that the runtime gives min -1 and the
// element offset of (0, 0, 0) as its stride (a Tuple output's buffers are addressed with the
// first one's mins, but each with its own strides); the pipeline reads and writes at origin
// coordinate 0, and the output is written through an RDom over the call's extents (a pure
// definition would loop over the buffer's own origin range).
#include <cstdio>
#include <cstdlib>

#include "algorithm.h"

namespace sdrop::gen {

class SdropGenerator : public Generator<SdropGenerator> {
 public:
  GeneratorParam<Op> op{"op",
                        Op::dropout,
                        {{"dropout", Op::dropout},
                         {"apply_mask", Op::apply_mask},
                         {"mask", Op::mask},
                         {"epilogue", Op::epilogue},
                         {"epilogue_backward", Op::epilogue_backward},
                         {"channel_sum", Op::channel_sum}}};
  GeneratorParam<Shape> shape{"shape",
                              Shape::elementwise,
                              {{"rows", Shape::rows},
                               {"channels_last", Shape::channels_last},
                               {"elementwise", Shape::elementwise}}};
  GeneratorParam<DType> dtype{
      "dtype",
      DType::f32,
      {{"f16", DType::f16}, {"bf16", DType::bf16}, {"f32", DType::f32}, {"f64", DType::f64}}};

  // Schedule knobs. vector_factor: vectors of the natural width per inner iteration;
  // task_elems: elements per parallel task (small tensors run in one task, on the caller);
  // channel_block: most channels (d0) a channels_last call gets; the runtime cuts wider rows
  // (it reads the same value, SDROP_CHANNEL_BLOCK, from the build).
  GeneratorParam<int> vector_factor{"vector_factor", 2, 1, 16};
  GeneratorParam<int> task_elems{"task_elems", 1 << 16, 1024, 1 << 26};
  GeneratorParam<int> channel_block{"channel_block", 2048, 16, 1 << 16};
  // GPU rows: elements per thread per block (a block covers kGpuThreads * gpu_unroll).
  GeneratorParam<int> gpu_unroll{"gpu_unroll", 1, 1, 64};
  // More choices the tuning sweep explores (bench/tune.py):
  //   tail:  the vector loop's remainder, predicated vectors or a scalar epilogue;
  //   draws: CPU keep bits a Philox block (4 mask indices) per draw where the layout allows,
  //          or one Philox per mask index always.
  enum class Tail { predicate, guard };
  enum class Draws { block, each };
  GeneratorParam<Tail> tail{
      "tail", Tail::predicate, {{"predicate", Tail::predicate}, {"guard", Tail::guard}}};
  GeneratorParam<Draws> draws_per{
      "draws", Draws::block, {{"block", Draws::block}, {"each", Draws::each}}};

  void configure() {
    const bool has_x = op != Op::mask;  // channel_sum: x is the tensor summed
    const bool draws = op != Op::apply_mask && op != Op::channel_sum;
    const Type out_type = op == Op::mask ? UInt(8) : storage_type(dtype, hw_f16());
    const int dims = gpu() ? 4 : 3;
    if (has_x) x = add_input<Buffer<>>("x", storage_type(dtype, hw_f16()), dims);
    if (epilogue()) {
      // Broadcast views: the runtime gives the bias x's rank with stride 0 off the channel
      // axis (rows: stride 0 along d0; channels_last: along d1), and without a bias or a
      // residual it passes stand-ins (zeros; x) that the flags below keep unused.
      bias = add_input<Buffer<>>("bias", storage_type(dtype, hw_f16()), dims);
      residual = add_input<Buffer<>>("residual", storage_type(dtype, hw_f16()), dims);
    }
    if (op == Op::epilogue_backward) dy = add_input<Buffer<>>("dy", storage_type(dtype, hw_f16()), dims);
    if (op == Op::apply_mask) mask_in = add_input<Buffer<>>("mask", UInt(8), dims);
    if (draws) {
      seed = add_input<uint64_t>("seed");
      offset = add_input<uint64_t>("offset");
      mbase = add_input<int64_t>("mbase");
      ms0 = add_input<int64_t>("ms0");
      ms1 = add_input<int64_t>("ms1");
      ms2 = add_input<int64_t>("ms2");
      threshold = add_input<uint32_t>("threshold");
      keep_all = add_input<bool>("keep_all");
    } else if (op == Op::apply_mask) {
      keep_none = add_input<bool>("keep_none");
    }
    if (has_x && op != Op::channel_sum) {
      multiply = add_input<bool>("multiply");
      scale_f32 = add_input<float>("scale_f32");
      scale_f64 = add_input<double>("scale_f64");
    }
    // Run on the calling thread, without the thread pool (the runtime's choice for work that
    // fits in a core's cache, where waking workers costs more than it saves). GPU kernels
    // take it too, for one signature, and ignore it.
    serial = add_input<bool>("serial");
    // Dropout, CPU rows: dropped rows are filled without reading x, at the cost of a branch
    // per vector (the runtime's choice for exact-zero calls too large for the cache, where
    // the read of a dropped row costs more than the branch). Other shapes and GPU kernels
    // take it for one signature: GPU rows never read dropped rows anyway.
    if (op == Op::dropout || epilogue()) skip_dropped = add_input<bool>("skip_dropped");
    if (epilogue()) {
      has_bias = add_input<bool>("has_bias");
      has_residual = add_input<bool>("has_residual");
      act_relu = add_input<bool>("act_relu");
      post_relu = add_input<bool>("post_relu");
    }
    // Backward without a dresidual to write: the runtime passes dx for both outputs, and the
    // first value is then dx's too (the same bits twice, so the order of the stores is moot).
    if (op == Op::epilogue_backward) want_dr = add_input<bool>("want_dr");
    if (op == Op::channel_sum) {
      y = add_output<Buffer<>>("sum", compute_type(), 2);
    } else if (op == Op::epilogue_backward) {
      // (dresidual, dx).
      y = add_output<Buffer<>>("dxr", {out_type, out_type}, dims);
    } else {
      y = add_output<Buffer<>>(op == Op::mask ? "mask_out" : "y", out_type, dims);
    }
  }

  void generate() {
    const bool fused = epilogue() || op == Op::channel_sum;
    if (op != Op::dropout && !fused && shape != Shape::elementwise) {
      std::fprintf(stderr, "sdrop generator: apply_mask and mask have the elementwise shape only\n");
      std::abort();
    }
    if (fused && shape == Shape::elementwise) {
      std::fprintf(stderr, "sdrop generator: the epilogue is built for rows and channels_last\n");
      std::abort();
    }
    Func out = *y;
    if (op == Op::channel_sum) {
      define_channel_sum(out);
      return;
    }
    if (gpu()) {
      define_gpu(out);
      return;
    }
    // CPU: pure definitions over (d0, d1, d2); the keep bit of an element comes from the
    // per-task buffer of the shape's drawn dimension (d1 for rows, d0 otherwise).
    Expr keep;
    if (op == Op::apply_mask) {
      keep = !*keep_none && (*mask_in)(d0, d1, d2) != 0;
    } else if (shape == Shape::rows) {
      keep = define_keep_along(keep_row, d1, {d1, d2}, mask_index(0, d1, d2), *ms1) != 0;
      define_rows_cpu(out, keep);
      return;
    } else if (shape == Shape::channels_last) {
      keep = define_keep_along(keep_cl, d0, {d0, d2}, mask_index(d0, 0, d2), *ms0) != 0;
    } else {
      keep = define_keep_along(keep_el, d0, {d0, d1, d2}, mask_index(d0, d1, d2), *ms0) != 0;
    }
    if (op == Op::mask) {
      out(d0, d1, d2) = cast<uint8_t>(select(keep, 1, 0));
    } else if (op == Op::epilogue_backward) {
      out(d0, d1, d2) = backward_at(d0, d1, d2, keep, false);
    } else {
      out(d0, d1, d2) = element(d0, d1, d2, keep);
    }
  }

  // Backward of the epilogue at element (i0, i1, i2), as autograd of the unfused sequence
  // computes it, with the mask redrawn and post' recomputed from x, b and r: g = post'(y) dy is
  // dresidual, and dx = act'(a) * dropout(g). `dropped`: the keep bit is known to be 0 in
  // exact-zero mode (a rows kernel's dropped row), so dx = +0.0 and x is not read.
  Tuple backward_at(Expr i0, Expr i1, Expr i2, Expr keep, bool dropped) {
    const Expr zero = Internal::make_zero(storage_type(dtype, hw_f16()));
    const Expr dyv = in_at(dy, i0, i1, i2);
    const Expr pre = dropped ? Expr() : pre_at(i0, i1, i2);
    const Expr d = dropped ? zero : value(pre, keep);
    const Expr yv = epilogue_post(dtype, d, in_at(residual, i0, i1, i2), *has_residual,
                                  *post_relu, hw_f16());
    const Expr g = select(*post_relu, relu_grad(dtype, dyv, yv, hw_f16()), dyv);
    if (dropped) return Tuple(select(*want_dr, g, zero), zero);
    const Expr da = value(g, keep);
    const Expr dx = select(*act_relu, relu_grad(dtype, da, pre, hw_f16()), da);
    return Tuple(select(*want_dr, g, dx), dx);
  }

  // Per-row sums in the compute type: rows sums d0 for each (d1, d2), channels_last sums d1 for
  // each (d0, d2). The order is fixed (docs/epilogue.md#backward), the same on every ISA: rows
  // in 8 lanes, lane j adding elements j, j + 8, ... in turn, then ((0+1)+(2+3))+((4+5)+(6+7));
  // channels_last in the order of d1.
  void define_channel_sum(Func out) {
    const Expr zero = Internal::make_zero(compute_type());
    auto at = [&](Expr i0, Expr i1, Expr i2) { return to_compute(dtype, x_at(i0, i1, i2), hw_f16()); };
    if (shape == Shape::channels_last) {
      sum_k = RDom(0, (*x).dim(1).extent(), "sum_k");
      out(d0, d2) = zero;
      out(d0, d2) = out(d0, d2) + at(d0, sum_k, d2);
      return;
    }
    const Expr e0 = (*x).dim(0).extent();
    const Expr full = e0 / 8, rem = e0 % 8;
    sum_k = RDom(0, full, "sum_k");
    lanes(lane, d1, d2) = zero;
    lanes(lane, d1, d2) = lanes(lane, d1, d2) + at(sum_k * 8 + lane, d1, d2);
    // The last e0 % 8 elements go to lanes 0 .. rem-1 (read once per row, clamped in range:
    // with rem == 0 the unused load is of the row's last element, not one past it).
    const Expr tail_i = min(full * 8 + min(lane, max(rem - 1, 0)), e0 - 1);
    lanes_tail(lane, d1, d2) = lanes(lane, d1, d2) + select(lane < rem, at(tail_i, d1, d2), zero);
    auto t = [&](int j) { return lanes_tail(j, d1, d2); };
    out(d1, d2) = ((t(0) + t(1)) + (t(2) + t(3))) + ((t(4) + t(5)) + (t(6) + t(7)));
  }

  // The stored result of element (i0, i1, i2) with keep bit `keep`: the dropout of x, or of
  // the epilogue's act(x + b) followed by post(r + .) (docs/epilogue.md). `dropped` replaces the
  // dropout's value where given (the rows kernels' fill of a dropped row, which reads no x).
  Expr element(Expr i0, Expr i1, Expr i2, Expr keep, Expr kept_only = Expr()) {
    if (!epilogue()) return kept_only.defined() ? kept_only : value(x_at(i0, i1, i2), keep);
    return epilogue_post(dtype, kept_only.defined() ? kept_only : value(pre_at(i0, i1, i2), keep),
                         in_at(residual, i0, i1, i2), *has_residual, *post_relu, hw_f16());
  }
  // act(x + b) as stored. CPU: the bias is indexed where it does not vary in the shape (rows:
  // d0, channels_last: d1) at 0, so that it is a scalar per row or a vector per channel block.
  // GPU: at the element itself (the bias's stride is 0 there), so that the runtime's stand-in
  // for an absent bias, x, is read only at the element the thread reads anyway: no thread
  // reads an element another one writes in place.
  Expr pre_at(Expr i0, Expr i1, Expr i2) {
    Expr b = gpu() ? in_at(bias, i0, i1, i2)
                   : shape == Shape::rows ? in_at(bias, 0, i1, i2) : in_at(bias, i0, 0, i2);
    return epilogue_pre(dtype, x_at(i0, i1, i2), b, *has_bias, *act_relu, hw_f16());
  }

  // keep(args) for the mask index m of element `args`, which moves by `ms` per step of `v`:
  // a Func over args that the schedule computes per task. Where |ms| <= 1 it is gathered
  // from a Func over an aligned run of mask indices (`blk`, one Philox block feeding 4 of
  // them); elsewhere (rare layouts) each index has its own Philox. A specialization of the
  // output on `blocked()` keeps just the path it takes.
  Expr define_keep_along(Func keep, Var v, std::vector<Var> args, Expr m, Expr ms) {
    const Expr direct = cast<uint8_t>(philox_keep(m, *seed, *offset, *threshold, *keep_all));
    if (draws_per == Draws::each) {
      keep(args) = direct;
      return keep(args);
    }
    // The run starts at the block boundary at or below the index of v = 0: its word `lane` of
    // block `blk` is the draw of mask index aligned + 4*blk + lane, and element v sits at
    // j = (m(0) - aligned) + v * ms, that is lane j & 3 of block j >> 2.
    const Expr m_zero = substitute(v.name(), Expr(0), m);
    const Expr first_block = m_zero >> 2;
    std::vector<Var> run_args = {lane, blk};
    run_args.insert(run_args.end(), args.begin() + 1, args.end());
    keep_run(run_args) = cast<uint8_t>(philox_keep_block(first_block + cast<int64_t>(blk), lane,
                                                         *seed, *offset, *threshold, *keep_all));
    std::vector<Expr> at(args.begin(), args.end());
    const Expr jv = cast<int32_t>(m_zero & int64_t(3)) + v * cast<int32_t>(ms);
    at[0] = jv >> 2;
    at.insert(at.begin(), jv & 3);
    keep(args) = select(blocked(), keep_run(at), direct);
    return keep(args);
  }

  // CPU rows: an update over (kind, row) whose RDom::where leaves, per row, the loop of its
  // kind only (1 = kept: x*s; 0 = dropped: zeros, x never loaded) when skip_dropped; without
  // it only kind 1 runs, the branch-free select(keep, x*s, dropped) of every other shape.
  // Either way each element is written once, so in place is safe.
  void define_rows_cpu(Func out, Expr keep) {
    const OutputImageParam yb = out.output_buffers()[0];  // a copy: output_buffers() is a temporary
    rows = RDom(0, 2, yb.dim(1).min(), yb.dim(1).extent(), yb.dim(2).min(), yb.dim(2).extent(),
                "rows");
    const Expr keep_r = substitute({{d1.name(), rows.y}, {d2.name(), rows.z}}, keep);
    rows.where(rows.x == select(*skip_dropped, select(keep_r, 1, 0), 1));
    if (op == Op::epilogue_backward) {
      const Type t = storage_type(dtype, hw_f16());
      out(d0, d1, d2) = Tuple(undef(t), undef(t));
      out(d0, rows.y, rows.z) =
          select(*skip_dropped,
                 select(rows.x == 1, backward_at(d0, rows.y, rows.z, Internal::const_true(), false),
                        backward_at(d0, rows.y, rows.z, Internal::const_false(), true)),
                 backward_at(d0, rows.y, rows.z, keep_r, false));
      return;
    }
    const Expr xv = op == Op::epilogue ? pre_at(d0, rows.y, rows.z) : (*x)(d0, rows.y, rows.z);
    const Expr zero = Internal::make_zero(storage_type(dtype, hw_f16()));
    out(d0, d1, d2) = undef((*y).type());
    const Expr skipping =
        select(rows.x == 1, kept_value(dtype, xv, scale(), hw_f16()), zero);
    out(d0, rows.y, rows.z) =
        select(*skip_dropped, element(d0, rows.y, rows.z, keep_r, skipping),
               element(d0, rows.y, rows.z, keep_r, value(xv, keep_r)));
  }

  // The mask-index step along the drawn dimension (d1 for rows, d0 otherwise).
  Expr drawn_stride() const { return shape == Shape::rows ? Expr(*ms1) : Expr(*ms0); }
  // Consecutive elements of the drawn dimension have mask indices at most one apart.
  Expr blocked() const {
    return drawn_stride() >= Expr(int64_t(-1)) && drawn_stride() <= Expr(int64_t(1));
  }

  // GPU: every op at origin 0 through an RDom over the call (a pure definition would loop
  // over the buffer's own, shifted, origin range); rows as a kept/dropped branch per row.
  void define_gpu(Func out) {
    if (op != Op::mask && shape == Shape::rows) {
      define_rows_gpu(out);
      return;
    }
    if (shape == Shape::channels_last) {
      keep_cl(d0, d2) = philox_keep(mask_index(d0, 0, d2), *seed, *offset, *threshold, *keep_all);
    }
    auto keep_of = [&](Expr i0, Expr i1, Expr i2) -> Expr {
      return shape == Shape::channels_last ? keep_cl(i0, i2) : keep_at(i0, i1, i2);
    };
    const OutputImageParam yb = out.output_buffers()[0];  // a copy: output_buffers() is a temporary
    whole = RDom(0, yb.dim(0).extent(), 0, yb.dim(1).extent(), 0, yb.dim(2).extent(), "whole");
    if (op == Op::epilogue_backward) {
      const Type t = storage_type(dtype, hw_f16());
      out(d0, d1, d2, origin) = Tuple(undef(t), undef(t));
      out(whole.x, whole.y, whole.z, 0) =
          backward_at(whole.x, whole.y, whole.z, keep_of(whole.x, whole.y, whole.z), false);
      return;
    }
    out(d0, d1, d2, origin) = undef((*y).type());
    if (op == Op::mask) {
      out(whole.x, whole.y, whole.z, 0) =
          cast<uint8_t>(select(keep_at(whole.x, whole.y, whole.z), 1, 0));
      return;
    }
    out(whole.x, whole.y, whole.z, 0) =
        element(whole.x, whole.y, whole.z, keep_of(whole.x, whole.y, whole.z));
  }

  void schedule() {
    if (using_autoscheduler()) {
      // bench/autosched compares Halide's autoschedulers with the hand schedule below;
      // they plan for the large tensor of docs/performance.md (32x64x112x112 float32).
      set_estimates();
      return;
    }
    Func out = *y;
    // Any strides: the runtime passes transposed, negative and broadcast (0) strides.
    Expr dense = Internal::const_true();
    for (OutputImageParam b : out.output_buffers()) {
      b.dim(0).set_stride(Expr());
      dense = dense && b.dim(0).stride() == 1;
    }
    if (x) (*x).dim(0).set_stride(Expr());
    if (mask_in) (*mask_in).dim(0).set_stride(Expr());
    if (x) dense = dense && (*x).dim(0).stride() == 1;
    if (dy) {
      (*dy).dim(0).set_stride(Expr());
      dense = dense && (*dy).dim(0).stride() == 1;
    }
    if (op == Op::channel_sum) {
      schedule_channel_sum(out, dense);
      return;
    }
    if (epilogue()) {
      (*bias).dim(0).set_stride(Expr());
      (*residual).dim(0).set_stride(Expr());
      dense = dense && (*residual).dim(0).stride() == 1;
      // channels_last reads a vector of biases along d0 (rows: one per row).
      if (shape == Shape::channels_last) dense = dense && (*bias).dim(0).stride() == 1;
    }
    if (gpu()) {
      schedule_gpu(out, dense);
      return;
    }

    const int vec = natural_vector() * vector_factor;

    if (op != Op::mask && shape == Shape::rows) {  // dropout, epilogue
      schedule_rows(out, vec, dense);
    } else if (shape == Shape::channels_last) {
      schedule_channels_last(out, vec, dense);
    } else {
      schedule_elementwise(out, vec, dense);
    }
  }

 private:
  GeneratorInput<Buffer<>> *x = nullptr;
  GeneratorInput<Buffer<>> *mask_in = nullptr;
  GeneratorInput<uint64_t> *seed = nullptr, *offset = nullptr;
  GeneratorInput<int64_t> *mbase = nullptr, *ms0 = nullptr, *ms1 = nullptr, *ms2 = nullptr;
  GeneratorInput<uint32_t> *threshold = nullptr;
  GeneratorInput<bool> *keep_all = nullptr, *keep_none = nullptr, *multiply = nullptr;
  GeneratorInput<bool> *serial = nullptr, *skip_dropped = nullptr;
  GeneratorInput<Buffer<>> *bias = nullptr, *residual = nullptr, *dy = nullptr;
  GeneratorInput<bool> *has_bias = nullptr, *has_residual = nullptr, *act_relu = nullptr,
                       *post_relu = nullptr, *want_dr = nullptr;
  GeneratorInput<float> *scale_f32 = nullptr;
  GeneratorInput<double> *scale_f64 = nullptr;
  GeneratorOutput<Buffer<>> *y = nullptr;

  Var d0{"d0"}, d1{"d1"}, d2{"d2"}, origin{"origin"};
  Func keep_cl{"keep_cl"}, keep_row{"keep_row"}, keep_el{"keep_el"}, keep_run{"keep_run"};
  Var lane{"lane"}, blk{"blk"};
  RDom rows, whole, sum_k;
  Func lanes{"lanes"}, lanes_tail{"lanes_tail"};
  static constexpr int kMaxRowsPerTask = 1024;
  static constexpr int kDrawChunk = 2048;  // elements whose keep bits an elementwise chunk draws

  bool gpu() const { return get_target().has_gpu_feature(); }
  bool epilogue() const { return op == Op::epilogue || op == Op::epilogue_backward; }
  Type compute_type() const { return dtype == DType::f64 ? Float(64) : Float(32); }

  void schedule_channel_sum(Func out, Expr dense) {
    if (gpu()) {
      schedule_channel_sum_gpu(out);
      return;
    }
    const int vec = natural_vector() * vector_factor;
    Var t("t"), task("task"), ti("ti");
    if (shape == Shape::channels_last) {
      // Vectors of channels (d0), d1 summed in order inside, samples (d2) in parallel.
      Var d0o("d0o"), d0i("d0i");
      out.update(0).split(d0, d0o, d0i, vec, TailStrategy::GuardWithIf).reorder(d0i, sum_k, d0o, d2);
      Stage u = out.update(0);
      u.specialize(*serial).specialize(dense).vectorize(d0i);
      u.parallel(d2);
      u.specialize(dense).vectorize(d0i);
      out.compute_root();
      return;
    }
    // Tasks of rows; per row its 8 lane sums in a vector.
    const Expr row_len = max(1, (*x).dim(0).extent());
    const Expr rows_per_task = clamp(task_elems / row_len, 1, kMaxRowsPerTask);
    out.fuse(d1, d2, t).split(t, task, ti, rows_per_task, TailStrategy::GuardWithIf);
    lanes.compute_at(out, ti).bound_storage(lane, 8).vectorize(lane, 8);
    lanes.update(0).vectorize(lane, 8);
    lanes.update(0).specialize((*x).dim(0).stride() == 1);  // dense vector loads
    out.specialize(*serial);
    out.parallel(task);
  }

  void set_estimates() {
    // (d0, d1, d2) of the canonical call: NCHW puts H*W innermost and N*C in rows;
    // channels-last puts C innermost, H*W next, N outermost.
    const bool cl = shape == Shape::channels_last;
    const Region r = cl ? Region{{0, 64}, {0, 112 * 112}, {0, 32}}
                        : Region{{0, 112 * 112}, {0, 32 * 64}, {0, 1}};
    if (x) x->set_estimates(r);
    if (bias) {
      bias->set_estimates(r);
      residual->set_estimates(r);
      has_bias->set_estimate(true);
      has_residual->set_estimate(true);
      act_relu->set_estimate(true);
      post_relu->set_estimate(true);
    }
    if (mask_in) mask_in->set_estimates(r);
    y->set_estimates(r);
    if (seed) {
      seed->set_estimate(uint64_t(1));
      offset->set_estimate(uint64_t(0));
      mbase->set_estimate(int64_t(0));
      ms0->set_estimate(int64_t(cl ? 1 : 0));
      ms1->set_estimate(int64_t(cl ? 0 : 1));
      ms2->set_estimate(int64_t(cl ? 64 : 0));
      threshold->set_estimate(uint32_t(1u << 31));
      keep_all->set_estimate(false);
    }
    if (keep_none) keep_none->set_estimate(false);
    if (skip_dropped) skip_dropped->set_estimate(false);
    if (multiply) {
      multiply->set_estimate(false);
      scale_f32->set_estimate(2.0f);
      scale_f64->set_estimate(2.0);
    }
  }

  int natural_vector_of(Type t) const { return get_target().natural_vector_size(t); }
  int natural_vector() const {
    // f16/bf16 are computed in f32: size the vectors by the compute type.
    const Type t = op == Op::mask ? UInt(32) : (dtype == DType::f64 ? Float(64) : Float(32));
    return get_target().natural_vector_size(t);
  }

  Expr mask_index(Expr i0, Expr i1, Expr i2) {
    return *mbase + cast<int64_t>(i0) * *ms0 + cast<int64_t>(i1) * *ms1 +
           cast<int64_t>(i2) * *ms2;
  }
  Expr keep_at(Expr i0, Expr i1, Expr i2) {
    if (op == Op::apply_mask) {
      Expr k = gpu() ? (*mask_in)(i0, i1, i2, 0) : (*mask_in)(i0, i1, i2);
      return !*keep_none && k != 0;
    }
    return philox_keep(mask_index(i0, i1, i2), *seed, *offset, *threshold, *keep_all);
  }
  // Input b at (i0, i1, i2), and at origin 0 on GPU targets.
  Expr in_at(GeneratorInput<Buffer<>> *b, Expr i0, Expr i1, Expr i2) {
    return gpu() ? (*b)(i0, i1, i2, 0) : (*b)(i0, i1, i2);
  }
  Expr x_at(Expr i0, Expr i1, Expr i2) { return in_at(x, i0, i1, i2); }
  Expr scale() const { return dtype == DType::f64 ? Expr(*scale_f64) : Expr(*scale_f32); }
  Expr value(Expr xv, Expr keep) {
    return dropout_value(dtype, xv, keep, scale(), *multiply, hw_f16());
  }
  // OpenCL has float16 only with cl_khr_fp16 (the cl_half feature); CUDA always.
  bool hw_f16() const {
    const Target t = get_target();
    if (t.has_feature(Target::OpenCL)) return t.has_feature(Target::CLHalf);
    return t.has_gpu_feature() || t.arch != Target::X86 || t.has_feature(Target::F16C);
  }

  // GPU rows: one keep bit per row (d1, d2). The update runs over (kind, row) where `kind`
  // (0 = dropped, 1 = kept) is restricted by RDom::where to the row's keep bit and unrolled,
  // with the elements of the row (d0) a pure variable inside: each row runs exactly one of two
  // loops, scale or a fill that never loads x (exact-zero mode; the epilogue's dropped rows read
  // only the residual, and dy in the backward). No element is written twice, so in place is safe.
  void define_rows_gpu(Func out) {
    const Expr e1 = (*x).dim(1).extent(), e2 = (*x).dim(2).extent();
    keep_row(d1, d2) = philox_keep(mask_index(0, d1, d2), *seed, *offset, *threshold, *keep_all);
    rows = RDom(0, 2, 0, e1, 0, e2, "rows");
    rows.where(rows.x == select(keep_row(rows.y, rows.z), 1, 0));
    const Expr kept = rows.x == 1;
    if (op == Op::epilogue_backward) {
      // Dropped rows: x * 0 with SDROP_FLAG_MULTIPLY, else backward_at's x-free zeros (the
      // schedule's !multiply specialization folds the select, and the loads of x with it).
      const Type t = storage_type(dtype, hw_f16());
      const Expr yes = Internal::const_true(), no = Internal::const_false();
      out(d0, d1, d2, origin) = Tuple(undef(t), undef(t));
      out(d0, rows.y, rows.z, 0) =
          select(kept, backward_at(d0, rows.y, rows.z, yes, false),
                 select(*multiply, backward_at(d0, rows.y, rows.z, no, false),
                        backward_at(d0, rows.y, rows.z, no, true)));
      return;
    }
    const Expr xv = op == Op::epilogue ? pre_at(d0, rows.y, rows.z) : x_at(d0, rows.y, rows.z);
    const Expr v = select(kept, kept_value(dtype, xv, scale(), hw_f16()),
                          dropped_value(dtype, xv, *multiply, hw_f16()));
    out(d0, d1, d2, origin) = undef((*y).type());
    out(d0, rows.y, rows.z, 0) = element(d0, rows.y, rows.z, Expr(), v);
  }

  void schedule_rows(Func out, int vec, Expr dense) {
    // Tasks of up to kMaxRowsPerTask rows of one d2 slice; within a task, the rows' keep
    // bits first, then row by row the vector loop of the row's kind (define_rows_cpu).
    const Expr row_len = max(1, (*x).dim(0).extent());
    const Expr rows_per_task = clamp(task_elems / row_len, 1, kMaxRowsPerTask);
    RVar r1o("r1o"), r1i("r1i"), task("task");
    Stage s = out.update(0);
    s.split(rows.y, r1o, r1i, rows_per_task, TailStrategy::GuardWithIf)
        .fuse(r1o, rows.z, task)
        .reorder(d0, rows.x, r1i, task)
        .unroll(rows.x);
    schedule_keep(out, task, keep_row, d1, kMaxRowsPerTask);
    auto rows_loop = [&](Stage t) { t.specialize(dense).vectorize(d0, vec, tail_strategy()); };
    specialize_cpu(s.specialize(*skip_dropped), task, rows_loop, /*by_mode=*/false);
    specialize_cpu(s, task, rows_loop);
  }

  // The drawn keep bits of a task, computed at its start into stack buffers: `keep` (u8 per
  // element of v) and, on the blocked path, `keep_run`, a run of mask indices drawn 4 at a
  // time: split by the Philox block and vectorized over its 4 words, whose one Philox does
  // not depend on the word, so it is computed once (as a scalar) for the 4 of them.
  void schedule_keep(Func out, VarOrRVar task, Func keep, Var v, int max_extent) {
    keep.compute_at(LoopLevel(out, task)).store_in(MemoryType::Stack).bound_storage(v, max_extent);
    for (const Var& other : keep.args()) {
      if (other.name() != v.name()) keep.bound_storage(other, 1);
    }
    if (draws_per == Draws::each) {
      keep.vectorize(v, natural_vector(), TailStrategy::GuardWithIf);
      return;
    }
    // Blocked: gathered from the run, a dense copy where consecutive elements of v are
    // consecutive mask indices (the common case).
    Stage blocked_keep = keep.specialize(blocked());
    blocked_keep.specialize(drawn_stride() == Expr(int64_t(1)))
        .vectorize(v, natural_vector(), TailStrategy::GuardWithIf);
    blocked_keep.vectorize(v, natural_vector(), TailStrategy::GuardWithIf);
    keep.vectorize(v, natural_vector(), TailStrategy::GuardWithIf);
    // One Philox per block: the 4 words (lane, unrolled) of 8 blocks at a time (vectorized),
    // the same Philox for every lane, which LLVM computes once; the interleaved stores of
    // the 4 lanes become dense ones.
    Var bo("bo"), bi("bi");
    const int blocks = natural_vector_of(UInt(32));
    keep_run.compute_at(LoopLevel(out, task))
        .store_in(MemoryType::Stack)
        .bound_storage(lane, 4)
        .bound_storage(blk, max_extent / 4 + 4)
        .split(blk, bo, bi, blocks, TailStrategy::GuardWithIf)
        .reorder(bi, lane, bo)
        .unroll(lane)
        .vectorize(bi);
    for (const Var& other : keep_run.args()) {
      if (other.name() != lane.name() && other.name() != blk.name()) keep_run.bound_storage(other, 1);
    }
  }

  // Every CPU loop nest four ways: blocked draws or not, on the calling thread alone
  // (serial) or with `task` on the thread pool; `vectorize` gives each its vectorized
  // specializations.
  // by_mode: also a loop nest for exact-zero mode, where the dropped value is a constant, not
  // x * 0 (the skip_dropped nest of the rows kernels needs none: it never multiplies by 0).
  template <typename Fn>
  void specialize_cpu(Stage s, VarOrRVar task, Fn vectorize_dense, bool by_mode = true) {
    auto vectorize = [&](Stage t) {
      if (multiply && by_mode) vectorize_dense(t.specialize(!*multiply));
      vectorize_dense(t);
    };
    auto by_residual = [&](Stage t) {
      // Epilogue: a nest that loads the residual and one that does not.
      if (has_residual) vectorize(t.specialize(*has_residual));
      vectorize(t);
    };
    auto serial_and_parallel = [&](Stage t) {
      Stage alone = t.specialize(*serial);
      by_residual(alone);
      t.parallel(task);
      by_residual(t);
    };
    if (op != Op::apply_mask && draws_per == Draws::block) {
      serial_and_parallel(s.specialize(blocked()));
    }
    serial_and_parallel(s);
  }

  TailStrategy tail_strategy() const {
    return tail == Tail::predicate ? TailStrategy::Predicate : TailStrategy::GuardWithIf;
  }

  void schedule_channels_last(Func out, int vec, Expr dense) {
    // Tasks over (spatial chunk, sample); within a task, the keep bits of its channels (the
    // runtime never passes more than channel_block of them), then spatial positions, then
    // channels (vectorized).
    Var d1o("d1o"), d1i("d1i"), task("task");
    const Expr row_len = max(1, (*x).dim(0).extent());
    const Expr spatial_per_task = max(1, task_elems / row_len);
    Stage s = out;
    s.split(d1, d1o, d1i, spatial_per_task, TailStrategy::GuardWithIf).fuse(d1o, d2, task);
    schedule_keep(out, task, keep_cl, d0, channel_block);
    specialize_cpu(s, task, [&](Stage t) { t.specialize(dense).vectorize(d0, vec, tail_strategy()); });
  }

  // GPU: blocks of kGpuThreads threads. The keep bit of a row, or the keep bits of a block's
  // channels, are drawn once per block into shared memory, not once per element: a Philox
  // draw costs about as much as moving a few hundred bytes at an H100's bandwidth.
  static constexpr int kGpuThreads = 256;

  void schedule_gpu(Func out, Expr dense) {
    Stage s = out.update(0);
    if (op != Op::mask && shape == Shape::rows) {
      // Block = kGpuThreads * gpu_unroll consecutive elements of one row; each thread
      // touches every kGpuThreads-th of them (coalesced), then the row's other loop (the
      // RDom::where on the keep bit leaves one of kept / dropped per row).
      Var xo("xo"), xi("xi"), u("u"), t("t");
      RVar row("row"), block("block");  // block fuses a Var and an RVar: an RVar
      s.split(d0, xo, xi, kGpuThreads * gpu_unroll, TailStrategy::GuardWithIf)
          .split(xi, u, t, kGpuThreads, TailStrategy::GuardWithIf)
          .reorder(t, u, rows.x, xo, rows.y, rows.z)
          .fuse(rows.y, rows.z, row)
          .fuse(xo, row, block)
          .unroll(rows.x)
          .unroll(u)
          .gpu_blocks(block)
          .gpu_threads(t);
      keep_row.compute_at(out, block);
      // Exact-zero mode: the dropped loop never loads x.
      by_residual(s.specialize(!*multiply), dense);
    } else if (shape == Shape::channels_last) {
      // Block = 32 channels x 64 spatial positions of one sample; threads 32 x 8.
      RVar co("co"), ci("ci"), so("so"), si("si"), su("su"), st("st"), sblock("sblock");
      s.split(whole.x, co, ci, 32, TailStrategy::GuardWithIf)
          .split(whole.y, so, si, 64, TailStrategy::GuardWithIf)
          .split(si, su, st, 8, TailStrategy::GuardWithIf)
          .reorder(ci, st, su, co, so, whole.z)
          .fuse(so, whole.z, sblock)
          .gpu_blocks(sblock, co)
          .gpu_threads(ci, st);
      keep_cl.compute_at(out, co).gpu_threads(d0);
    } else {
      // One draw per element: one flat index over the call, kGpuThreads per block.
      RVar f("f"), block("block"), t("t");
      s.fuse(whole.x, whole.y, f)
          .fuse(f, whole.z, f)
          .split(f, block, t, kGpuThreads, TailStrategy::GuardWithIf)
          .gpu_blocks(block)
          .gpu_threads(t);
    }
    // Unit-stride inner dim (the usual case): simpler addressing, wider accesses.
    by_residual(s, dense);
  }

  // The epilogue on GPU: a nest that does not load the residual when there is none (the
  // runtime's stand-in is x, which a dropped row must not read); each with its dense version.
  void by_residual(Stage s, Expr dense) {
    if (has_residual) s.specialize(!*has_residual).specialize(dense);
    s.specialize(dense);
  }

  // GPU row sums: one thread per row, its sum sequential in the fixed order of
  // define_channel_sum (rows: the 8 lane sums in the thread's registers; channels_last: d1 in
  // turn, adjacent threads on adjacent channels). A block is 64 rows of one d2 slice.
  void schedule_channel_sum_gpu(Func out) {
    Var ao("ao"), ai("ai"), bo("bo"), bi("bi");
    const TailStrategy guard = TailStrategy::GuardWithIf;
    if (shape == Shape::channels_last) {
      out.gpu_tile(d0, d2, ao, bo, ai, bi, 64, 1, guard);
      out.update(0).gpu_tile(d0, d2, ao, bo, ai, bi, 64, 1, guard);
      return;
    }
    out.gpu_tile(d1, d2, ao, bo, ai, bi, 64, 1, guard);
    lanes.compute_at(out, ai).bound(lane, 0, 8).unroll(lane);
    lanes.update(0).reorder(lane, sum_k).unroll(lane);
  }

  void schedule_elementwise(Func out, int vec, Expr dense) {
    // Tasks of task_elems elements along d0 of one (d1, d2), in chunks of kDrawChunk whose
    // keep bits are drawn first (a small stack buffer each, so no call allocates).
    Var d0o("d0o"), d0i("d0i"), d0c("d0c"), d0v("d0v"), t("t"), task("task");
    Stage s = out;
    s.split(d0, d0o, d0i, task_elems, TailStrategy::GuardWithIf)
        .split(d0i, d0c, d0v, kDrawChunk, TailStrategy::GuardWithIf)
        .fuse(d0o, d1, t)
        .fuse(t, d2, task);
    if (op != Op::apply_mask) schedule_keep(out, d0c, keep_el, d0, kDrawChunk);
    specialize_cpu(s, task, [&](Stage u) { u.specialize(dense).vectorize(d0v, vec, tail_strategy()); });
  }
};

}  // namespace sdrop::gen

HALIDE_REGISTER_GENERATOR(sdrop::gen::SdropGenerator, sdrop)
