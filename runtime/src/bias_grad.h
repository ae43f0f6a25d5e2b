// The epilogue backward's bias gradient (docs/epilogue.md#backward): each kernel call's
// channel_sum kernel sums the rows of dx it just wrote (in the fixed lane order of the
// generator), and these row sums are added per channel here, in the compute type (float, or
// double for float64), in the order of the plan's calls and of the rows within a call; the
// channel sums are rounded to the dtype once, when stored.
#pragma once

#include <cstdint>

#include "HalideRuntime.h"
#include "plan.h"
#include "sdrop/sdrop.h"
#include "tensor.h"

namespace sdrop {

class BiasGrad {
 public:
  BiasGrad() = default;
  BiasGrad(const BiasGrad&) = delete;
  BiasGrad& operator=(const BiasGrad&) = delete;
  ~BiasGrad();

  // Scratch for the rows of the plan's largest call and for the channels' sums, allocated
  // before any kernel runs (so that running out of memory writes nothing).
  sdrop_status reserve(const Plan& plan, DType dtype, int64_t channels);
  // The 2-D buffer the channel_sum kernel writes call c's row sums to.
  halide_buffer_t* rows_buffer(const Call& c, Shape shape);
  // Adds call c's row sums into their channels.
  void add(const Call& c, const Plan& plan);
  // Stores the channel sums into dbias (1-D, `channels` elements, host memory).
  void store(const Tensor& dbias, DType dtype) const;
  // The same rounded values into host memory at `base`, element i at base + i * stride
  // elements of `itemsize` bytes (the GPU runner stages them there, then copies them over).
  void store_at(uint8_t* base, int64_t stride, int itemsize, DType dtype) const;
  // Row sums in the plan's largest call (what the GPU runner's device scratch holds), and the
  // bytes of one row sum.
  int64_t most_rows() const { return most_rows_; }
  int row_bytes() const { return f64_ ? 8 : 4; }

 private:
  int64_t most_rows_ = 1;
  void* rows_ = nullptr;
  void* sums_ = nullptr;
  bool f64_ = false;
  int64_t channels_ = 0;
  halide_buffer_t b_ = {};
  halide_dimension_t dim_[2] = {};
};

// dbias = 0 (an empty x: nothing to sum).
void store_zero_bias_grad(const Tensor& dbias);

}  // namespace sdrop
