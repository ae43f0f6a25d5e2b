// A user's own Halide pipeline that fuses sdrop's spatial dropout into its output stage:
//   y = dropout(relu(x + bias[c]))      x: float32 N x C x H x W (Halide dims w, h, c, n)
// in one pass over x, with the mask and values of sdrop_forward on the stored relu output, bit
// for bit (examples/halide/bias_relu_dropout_test.cpp checks it). It uses only the installed
// header <sdrop/halide.h>; the constants come from the host (sdrop::dropout_constants).
#include <sdrop/halide.h>

namespace {

using namespace Halide;

class BiasReluDropout : public Generator<BiasReluDropout> {
 public:
  Input<Buffer<float, 4>> x{"x"};
  Input<Buffer<float, 1>> bias{"bias"};
  Input<uint64_t> seed{"seed"};
  Input<uint64_t> offset{"offset"};
  Input<uint32_t> threshold{"threshold"};  // sdrop::DropoutConstants
  Input<bool> keep_all{"keep_all"};
  Input<float> scale{"scale"};
  Input<bool> multiply{"multiply"};  // dropped = x * 0 (PyTorch) instead of +0.0
  Output<Buffer<float, 4>> y{"y"};

  void generate() {
    // The unfused sequence stores relu(x + b) as float32; here it stays in registers, and a
    // float32 expression is already that value.
    act(w, h, c, n) = max(x(w, h, c, n) + bias(c), 0.0f);
    // Spatial dropout of NCHW: one mask bit per (n, c); m = n * C + c.
    Expr m = sdrop::halide::mask_index({n, c}, {x.dim(3).extent(), x.dim(2).extent()});
    keep(c, n) = sdrop::halide::keep(m, seed, offset, threshold, keep_all);
    y(w, h, c, n) =
        sdrop::halide::dropout_value(sdrop::DType::f32, act(w, h, c, n), keep(c, n), scale,
                                     multiply);
  }

  void schedule() {
    // One keep bit per row (c, n), then the row's pixels in vectors; rows in parallel.
    Var row{"row"};
    y.fuse(c, n, row).parallel(row).vectorize(w, natural_vector_size<float>() * 2,
                                              TailStrategy::GuardWithIf);
    keep.compute_at(y, row);
  }

 private:
  Var w{"w"}, h{"h"}, c{"c"}, n{"n"};
  Func act{"act"}, keep{"keep"};
};

}  // namespace

HALIDE_REGISTER_GENERATOR(BiasReluDropout, sdrop_bias_relu_dropout)
