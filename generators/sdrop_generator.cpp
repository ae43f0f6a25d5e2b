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
//                 Kept rows are scaled, dropped rows are filled without reading x.
//   channels_last d0 varies the mask, d1 does not (ms1 == 0): the keep bits of a row of d0
//                 are drawn once and reused along d1 (N, spatial, C tensors).
//   elementwise   anything else: one draw per element.
// Mask index of element (d0, d1, d2): m = mbase + d0*ms0 + d1*ms1 + d2*ms2 (64-bit).
//
// GPU targets: a device buffer (an OpenCL cl_mem) cannot be offset by pointer arithmetic,
// so every buffer has a 4th, extent-1 "origin" dim whose min the runtime sets to minus the
// element offset of (0, 0, 0); the pipeline reads and writes at origin coordinate 0, and
// the output is written through an RDom over the call's extents (a pure definition would
// loop over the buffer's own, shifted, origin range).
#include <cstdio>
#include <cstdlib>

#include "algorithm.h"

namespace sdrop::gen {

enum class Op { dropout, apply_mask, mask };
enum class Shape { rows, channels_last, elementwise };

class SdropGenerator : public Generator<SdropGenerator> {
 public:
  GeneratorParam<Op> op{"op",
                        Op::dropout,
                        {{"dropout", Op::dropout},
                         {"apply_mask", Op::apply_mask},
                         {"mask", Op::mask}}};
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
  //   tail:       the vector loop's remainder, predicated vectors or a scalar epilogue;
  //   skip_reads: rows only; false keeps the exact-zero mode reading x in dropped rows;
  //   mask_at:    rows only; keep bits drawn per task (vectorized, on the stack) or per row.
  enum class Tail { predicate, guard };
  enum class MaskAt { task, row };
  GeneratorParam<Tail> tail{
      "tail", Tail::predicate, {{"predicate", Tail::predicate}, {"guard", Tail::guard}}};
  GeneratorParam<bool> skip_reads{"skip_reads", true};
  GeneratorParam<MaskAt> mask_at{
      "mask_at", MaskAt::task, {{"task", MaskAt::task}, {"row", MaskAt::row}}};

  void configure() {
    const bool has_x = op != Op::mask;
    const bool draws = op != Op::apply_mask;
    const Type out_type = op == Op::mask ? UInt(8) : storage_type(dtype, hw_f16());
    const int dims = gpu() ? 4 : 3;
    if (has_x) x = add_input<Buffer<>>("x", storage_type(dtype, hw_f16()), dims);
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
    } else {
      keep_none = add_input<bool>("keep_none");
    }
    if (has_x) {
      multiply = add_input<bool>("multiply");
      scale_f32 = add_input<float>("scale_f32");
      scale_f64 = add_input<double>("scale_f64");
    }
    y = add_output<Buffer<>>(op == Op::mask ? "mask_out" : "y", out_type, dims);
  }

  void generate() {
    if (op != Op::dropout && shape != Shape::elementwise) {
      std::fprintf(stderr, "sdrop generator: apply_mask and mask have the elementwise shape only\n");
      std::abort();
    }
    Func out = *y;
    if (op != Op::mask && shape == Shape::rows) {
      define_rows(out);
      return;
    }
    if (shape == Shape::channels_last) {
      keep_cl(d0, d2) = philox_keep(mask_index(d0, 0, d2), *seed, *offset, *threshold, *keep_all);
    }
    // One element of every other (op, shape): CPU as a pure definition, GPU at origin 0.
    auto element = [&](Expr i0, Expr i1, Expr i2) -> Expr {
      if (op == Op::mask) return cast<uint8_t>(select(keep_at(i0, i1, i2), 1, 0));
      Expr keep = shape == Shape::channels_last ? keep_cl(i0, i2) : keep_at(i0, i1, i2);
      return value(x_at(i0, i1, i2), keep);
    };
    if (!gpu()) {
      out(d0, d1, d2) = element(d0, d1, d2);
      return;
    }
    const Expr e0 = out.output_buffer().dim(0).extent(), e1 = out.output_buffer().dim(1).extent(),
               e2 = out.output_buffer().dim(2).extent();
    whole = RDom(0, e0, 0, e1, 0, e2, "whole");
    out(d0, d1, d2, origin) = undef((*y).type());
    out(whole.x, whole.y, whole.z, 0) = element(whole.x, whole.y, whole.z);
  }

  void schedule() {
    if (using_autoscheduler()) {
      // bench/autosched compares Halide's autoschedulers with the hand schedule below;
      // they plan for the SPEC section 7 large tensor (32x64x112x112 float32).
      set_estimates();
      return;
    }
    Func out = *y;
    // Any strides: the runtime passes transposed, negative and broadcast (0) strides.
    out.output_buffer().dim(0).set_stride(Expr());
    if (x) (*x).dim(0).set_stride(Expr());
    if (mask_in) (*mask_in).dim(0).set_stride(Expr());
    Expr dense = out.output_buffer().dim(0).stride() == 1;
    if (x) dense = dense && (*x).dim(0).stride() == 1;
    if (gpu()) {
      schedule_gpu(out, dense);
      return;
    }

    const int vec = natural_vector() * vector_factor;

    if (op != Op::mask && shape == Shape::rows) {
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
  GeneratorInput<float> *scale_f32 = nullptr;
  GeneratorInput<double> *scale_f64 = nullptr;
  GeneratorOutput<Buffer<>> *y = nullptr;

  Var d0{"d0"}, d1{"d1"}, d2{"d2"}, origin{"origin"};
  Func keep_cl{"keep_cl"}, keep_row{"keep_row"};
  RDom rows, whole;
  static constexpr int kMaxRowsPerTask = 1024;

  bool gpu() const { return get_target().has_gpu_feature(); }

  void set_estimates() {
    // (d0, d1, d2) of the canonical call: NCHW puts H*W innermost and N*C in rows;
    // channels-last puts C innermost, H*W next, N outermost.
    const bool cl = shape == Shape::channels_last;
    const Region r = cl ? Region{{0, 64}, {0, 112 * 112}, {0, 32}}
                        : Region{{0, 112 * 112}, {0, 32 * 64}, {0, 1}};
    if (x) x->set_estimates(r);
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
    if (multiply) {
      multiply->set_estimate(false);
      scale_f32->set_estimate(2.0f);
      scale_f64->set_estimate(2.0);
    }
  }

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
  Expr x_at(Expr i0, Expr i1, Expr i2) {
    return gpu() ? (*x)(i0, i1, i2, 0) : (*x)(i0, i1, i2);
  }
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

  // rows: one keep bit per row (d1, d2). The update runs over (x, kind, row) where `kind`
  // (0 = dropped, 1 = kept) is restricted by RDom::where to the row's keep bit and unrolled,
  // so each row runs exactly one of two loops: scale, or a fill that never loads x
  // (exact-zero mode). No element is written twice, so in place is safe.
  void define_rows(Func out) {
    const Expr e0 = (*x).dim(0).extent(), e1 = (*x).dim(1).extent(), e2 = (*x).dim(2).extent();
    keep_row(d1, d2) = philox_keep(mask_index(0, d1, d2), *seed, *offset, *threshold, *keep_all);
    rows = RDom(0, e0, 0, 2, 0, e1, 0, e2, "rows");
    rows.where(rows.y == select(keep_row(rows.z, rows.w), 1, 0));
    const Expr xv = x_at(rows.x, rows.z, rows.w);
    const Expr v = select(rows.y == 1, kept_value(dtype, xv, scale(), hw_f16()),
                          dropped_value(dtype, xv, *multiply, hw_f16()));
    if (gpu()) {
      out(d0, d1, d2, origin) = undef((*y).type());
      out(rows.x, rows.z, rows.w, 0) = v;
    } else {
      out(d0, d1, d2) = undef((*y).type());
      out(rows.x, rows.z, rows.w) = v;
    }
  }

  void schedule_rows(Func out, int vec, Expr dense) {
    // Tasks of up to kMaxRowsPerTask rows of one d2 slice; their keep bits are drawn
    // together (vectorized) into a stack buffer at the start of the task.
    const Expr row_len = max(1, (*x).dim(0).extent());
    const Expr rows_per_task = clamp(task_elems / row_len, 1, kMaxRowsPerTask);
    RVar r1o("r1o"), r1i("r1i"), task("task");
    Stage s = out.update(0);
    s.split(rows.z, r1o, r1i, rows_per_task, TailStrategy::GuardWithIf)
        .fuse(r1o, rows.w, task)
        .parallel(task)
        .unroll(rows.y);
    if (mask_at == MaskAt::task) {
      keep_row.compute_at(out, task)
          .bound_storage(d1, kMaxRowsPerTask)
          .bound_storage(d2, 1)
          .store_in(MemoryType::Stack)
          .vectorize(d1, natural_vector(), TailStrategy::GuardWithIf);
    } else {
      keep_row.compute_at(out, r1i);
    }
    // Exact-zero mode: the dropped loop is a plain fill; x is never read there.
    if (skip_reads) s.specialize(!*multiply).specialize(dense).vectorize(rows.x, vec, tail_strategy());
    s.specialize(dense).vectorize(rows.x, vec, tail_strategy());
  }

  TailStrategy tail_strategy() const {
    return tail == Tail::predicate ? TailStrategy::Predicate : TailStrategy::GuardWithIf;
  }

  void schedule_channels_last(Func out, int vec, Expr dense) {
    // Tasks over (spatial chunk, sample); within a task, spatial positions, then channels
    // (vectorized). The keep bits of the task's channels are drawn once per task into a
    // stack buffer: the runtime never passes more than channel_block channels (d0).
    Var d1o("d1o"), d1i("d1i"), task("task");
    const Expr row_len = max(1, (*x).dim(0).extent());
    const Expr spatial_per_task = max(1, task_elems / row_len);
    out.split(d1, d1o, d1i, spatial_per_task, TailStrategy::GuardWithIf)
        .fuse(d1o, d2, task)
        .parallel(task);
    out.specialize(dense).vectorize(d0, vec, tail_strategy());
    keep_cl.compute_at(out, task)
        .bound_storage(d0, channel_block)
        .store_in(MemoryType::Stack)
        .vectorize(d0, natural_vector(), TailStrategy::GuardWithIf);
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
      RVar xo("xo"), xi("xi"), u("u"), t("t"), row("row"), block("block");
      s.split(rows.x, xo, xi, kGpuThreads * gpu_unroll, TailStrategy::GuardWithIf)
          .split(xi, u, t, kGpuThreads, TailStrategy::GuardWithIf)
          .reorder(t, u, rows.y, xo, rows.z, rows.w)
          .fuse(rows.z, rows.w, row)
          .fuse(xo, row, block)
          .unroll(rows.y)
          .unroll(u)
          .gpu_blocks(block)
          .gpu_threads(t);
      keep_row.compute_at(out, block);
      // Exact-zero mode: the dropped loop never loads x.
      s.specialize(!*multiply).specialize(dense);
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
    s.specialize(dense);
  }

  void schedule_elementwise(Func out, int vec, Expr dense) {
    Var d0o("d0o"), d0i("d0i"), t("t"), task("task");
    out.split(d0, d0o, d0i, task_elems, TailStrategy::GuardWithIf)
        .fuse(d0o, d1, t)
        .fuse(t, d2, task)
        .parallel(task);
    out.specialize(dense).vectorize(d0i, vec, tail_strategy());
  }
};

}  // namespace sdrop::gen

HALIDE_REGISTER_GENERATOR(sdrop::gen::SdropGenerator, sdrop)
