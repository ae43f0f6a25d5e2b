#include "mask_index.h"

#include <cinttypes>

#include "checked.h"
#include "error.h"

namespace sdrop {

sdrop_status mask_index(const Tensor& t, uint32_t mask_axes, const sdrop_shard* shard,
                        MaskIndex* out) {
  const int64_t* origin = shard ? shard->origin : nullptr;
  const int64_t* logical = shard ? shard->logical_shape : nullptr;
  // The description must fit the shape, and the logical noise shape (0 elements if an
  // extent on a mask axis is 0) must have at most 2^62 elements.
  uint64_t noise = 1;
  bool too_many = false;
  for (int i = 0; i < t.ndim; i++) {
    const int64_t o = origin ? origin[i] : 0;
    const int64_t l = logical ? logical[i] : t.shape[i];
    if (o < 0) {
      return fail(SDROP_ERROR_INVALID_ARGUMENT, "shard.origin[%d] must be >= 0, got %" PRId64,
                  i, o);
    }
    // origin + extent <= logical extent, without forming a sum that could overflow.
    if (l < 0 || t.shape[i] > l || o > l - t.shape[i]) {
      return fail(SDROP_ERROR_INVALID_ARGUMENT,
                  "shard.origin[%d] + %s.shape[%d] must be <= shard.logical_shape[%d], got "
                  "%" PRId64 " + %" PRId64 " and %" PRId64,
                  i, t.name, i, i, o, t.shape[i], l);
    }
    if (mask_axes >> i & 1u) {
      if (l == 0) noise = 0, too_many = false;
      if (noise != 0 && !mul_within(noise, uint64_t(l), kMaxElements, &noise)) too_many = true;
    }
  }
  // Without a logical shape the noise shape is the tensor's own: at most its element count,
  // or, for an empty tensor, never indexed at all.
  if (too_many && noise != 0 && logical) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "the logical noise shape (shard.logical_shape on the mask axes) has more than "
                "2^62 elements: its mask indices would not fit in 64 bits");
  }
  MaskIndex r;
  if (t.numel > 0) {
    // Row-major strides over the logical noise shape; the base is the index of the shard's
    // first element. Every value is below the noise element count, so all of it is exact.
    uint64_t stride = 1, base = 0;
    for (int i = t.ndim - 1; i >= 0; i--) {
      if (!(mask_axes >> i & 1u)) continue;
      r.ms[i] = int64_t(stride);
      base += uint64_t(origin ? origin[i] : 0) * stride;
      stride *= uint64_t(logical ? logical[i] : t.shape[i]);
    }
    r.m0 = int64_t(base);
  }
  *out = r;
  return SDROP_OK;
}

}  // namespace sdrop
