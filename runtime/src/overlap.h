// Do a tensor's elements overlap each other, or two tensors share memory? Exact answers
// (docs/refusals.md: "overlap"), computed without allocating: both questions are whether a
// bounded integer vector solves one linear equation, which a pruned exhaustive search
// answers in microseconds for every layout frameworks produce. A layout built to be hard
// can exhaust the search's work limit; the answer is then `unknown`, never a guess.
#pragma once

#include "tensor.h"

namespace sdrop {

enum class Overlap { none, some, unknown };

// Two distinct indices of t reach one element address (an extent-1 axis may have any stride).
Overlap self_overlap(const Tensor& t);

// Exact fallback for self_overlap's `unknown`: sorts every element offset. Allocates
// 8 * numel bytes, so only for numel <= kEnumerateLimit; *out_of_memory when malloc fails.
constexpr int64_t kEnumerateLimit = int64_t(1) << 24;
Overlap self_overlap_by_enumeration(const Tensor& t, bool* out_of_memory);

// a and b share at least one byte (tensors on OpenCL share memory only within one cl_mem).
Overlap share_memory(const Tensor& a, const Tensor& b);

// Same element addresses: same base, element size and shape, and the same stride on every
// axis of extent > 1 (docs/semantics.md#in-place).
bool exactly_in_place(const Tensor& a, const Tensor& b);

// Exposed for tests: does some integer v with lo[k] <= v[k] <= hi[k] (k < n <= 16) satisfy
// target_lo <= sum c[k] * v[k] <= target_hi? |c[k]|, |lo[k]|, |hi[k]| <= 2^62 and
// |target| <= 2^64. Gives `unknown` after `budget` search nodes.
struct Term {
  __int128 c, lo, hi;
};
Overlap bounded_solution(const Term* terms, int n, __int128 target_lo, __int128 target_hi,
                         int64_t budget);

// The search budget of self_overlap and share_memory: nodes, each a few divisions.
constexpr int64_t kOverlapBudget = int64_t(1) << 20;

}  // namespace sdrop
