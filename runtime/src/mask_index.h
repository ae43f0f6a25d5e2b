// Where an element's keep bit comes from (docs/semantics.md): the row-major index m, in the
// noise shape, of its position projected on the mask axes, m = m0 + sum(index[i] * ms[i]).
// For a shard of a logical tensor (docs/semantics.md#shards) the positions and the noise shape are those of
// the logical tensor.
#pragma once

#include <cstdint>

#include "sdrop/sdrop.h"
#include "tensor.h"

namespace sdrop {

struct MaskIndex {
  int64_t ms[kMaxDims] = {};  // 0 on axes the mask does not vary along
  int64_t m0 = 0;
};

// mask_axes must already be checked against t.ndim. shard may be NULL (t is the whole
// tensor). Refuses (INVALID_ARGUMENT, naming the axis and values) an origin < 0, a shard
// reaching past its logical extent, or a logical noise shape of more than 2^62 elements.
sdrop_status mask_index(const Tensor& t, uint32_t mask_axes, const sdrop_shard* shard,
                        MaskIndex* out);

}  // namespace sdrop
