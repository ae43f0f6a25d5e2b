// A benchmark case as an sdrop call, for every device: its tensors (DLPack, [N, C, H, W] or
// [N, H, W, C] in memory order when channels last, compact, strides = NULL) and parameters, and
// the selection of cases from the docs/performance.md matrix.
#ifndef SDROP_BENCH_CASES_H_
#define SDROP_BENCH_CASES_H_

#include <sdrop/sdrop.h>

#include <initializer_list>
#include <vector>

#include "common.h"

namespace sdb {

inline DLDataType case_dl_dtype(DType d) {
  switch (d) {
    case DType::f32: return DLDataType{kDLFloat, 32, 1};
    case DType::f64: return DLDataType{kDLFloat, 64, 1};
    case DType::f16: return DLDataType{kDLFloat, 16, 1};
    default: return DLDataType{kDLBfloat, 16, 1};
  }
}

// The tensors and parameters of sdrop_forward on c: x over xdata, y over ydata, on `device`
// (for OpenCL, data is the cl_mem). They point into *this: keep it alive while they are used.
struct CaseCall {
  int64_t shape[4];
  DLTensor x{}, y{};
  sdrop_params prm{};

  CaseCall(const Case& c, DLDevice device, void* xdata, void* ydata) {
    const Size& s = *c.size;
    shape[0] = s.n;
    shape[1] = c.nhwc ? s.h : s.c;
    shape[2] = c.nhwc ? s.w : s.h;
    shape[3] = c.nhwc ? s.c : s.w;
    x.data = xdata;
    x.device = device;
    x.ndim = 4;
    x.dtype = case_dl_dtype(c.dtype);
    x.shape = shape;
    x.strides = nullptr;
    x.byte_offset = 0;
    y = x;
    y.data = ydata;
    prm.p = c.p;
    prm.seed = 0x5d509ull;
    prm.offset = 0;
    prm.mask_axes = sdrop_spatial_axes(4, c.nhwc ? SDROP_CHANNELS_LAST : SDROP_CHANNELS_FIRST);
    prm.flags = c.multiply ? SDROP_FLAG_MULTIPLY : 0u;
  }
  CaseCall(const CaseCall&) = delete;
  CaseCall& operator=(const CaseCall&) = delete;
};

// The forward cases of the matrix over these sizes, dtypes and p (both layouts, modes and places)
// that take(c) keeps, in registration order: size, dtype, layout, p, mode, place.
template <class Take>
std::vector<Case> select_cases(std::initializer_list<const Size*> sizes,
                               std::initializer_list<DType> dtypes, std::initializer_list<double> ps,
                               Take take) {
  std::vector<Case> out;
  for (const Size* size : sizes)
    for (DType d : dtypes)
      for (bool nhwc : {false, true})
        for (double p : ps)
          for (bool mul : {false, true})
            for (bool inplace : {false, true}) {
              Case c;
              c.size = size;
              c.dtype = d;
              c.nhwc = nhwc;
              c.p = p;
              c.multiply = mul;
              c.inplace = inplace;
              if (take(c)) out.push_back(c);
            }
  return out;
}

}  // namespace sdb

#endif  // SDROP_BENCH_CASES_H_
