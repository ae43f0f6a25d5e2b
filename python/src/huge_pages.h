// Transparent huge pages for a fresh output the bindings are about to fill (PyTorch's and
// XLA's CPU allocators hand out blocks this big fresh from mmap on every call and unmap them
// on free): advice for the 2 MiB-aligned interior of [data, data + bytes) when it spans at
// least 4 MiB, as NumPy gives its own arrays. Without it the kernel's first touch faults once
// per 4 KiB page: 25,088 faults at 32×64×112×112 float32, about half of such a call here
// (docs/python.md#pytorch-operators). Advice only: with THP off it changes nothing, and it
// never changes a value.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace sdrop_bindings {

inline void advise_huge_pages(void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20, kFrom = uintptr_t(4) << 20;
  if (!data || bytes < kFrom) return;
  const uintptr_t a = reinterpret_cast<uintptr_t>(data);
  const uintptr_t lo = (a + kHuge - 1) & ~(kHuge - 1), hi = (a + bytes) & ~(kHuge - 1);
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);  // errors: no advice
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace sdrop_bindings
