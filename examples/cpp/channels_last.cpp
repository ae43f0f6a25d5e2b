// sdrop from C++: spatial dropout on a channels-last (N, H, W, C) float16 tensor, in place,
// then backward with the same parameters, checking that whole channels were dropped.
#include <sdrop/sdrop.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

// float32 -> float16 bits for the example's input (values here are exact in float16).
uint16_t to_half(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u, exp = (u >> 23) & 0xffu, man = u & 0x7fffffu;
  if (exp == 0) return uint16_t(sign);
  return uint16_t(sign | ((exp - 112) << 10) | (man >> 13));
}

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<uint16_t> data;
  DLTensor dl() {
    return DLTensor{data.data(), {kDLCPU, 0}, int32_t(shape.size()), {kDLFloat, 16, 1},
                    shape.data(), nullptr, 0};
  }
};

bool ok(sdrop_status s, const char* what) {
  if (s == SDROP_OK) return true;
  std::fprintf(stderr, "%s failed (%d): %s\n", what, int(s), sdrop_last_error());
  return false;
}

}  // namespace

int main() {
  const int64_t N = 4, H = 8, W = 8, C = 32;
  Tensor x{{N, H, W, C}, std::vector<uint16_t>(N * H * W * C, to_half(1.5f))};
  DLTensor t = x.dl();
  sdrop_params params{};
  params.p = 0.25;
  params.seed = 2024;
  params.offset = 7;  // e.g. the training step
  params.mask_axes = sdrop_spatial_axes(4, SDROP_CHANNELS_LAST);
  if (!ok(sdrop_forward(&params, &t, &t), "sdrop_forward (in place)")) return 1;

  // Every (n, c) channel is all zero or all 1.5 * 4/3 = 2.0 (0x4000 in float16).
  int kept = 0, mixed = 0;
  for (int64_t n = 0; n < N; n++) {
    for (int64_t c = 0; c < C; c++) {
      int nonzero = 0;
      for (int64_t s = 0; s < H * W; s++) nonzero += x.data[(n * H * W + s) * C + c] != 0;
      kept += nonzero == H * W;
      mixed += nonzero != 0 && nonzero != H * W;
    }
  }
  std::printf("channels kept: %d of %lld (p = %.2f), channels partly dropped: %d\n", kept,
              (long long)(N * C), params.p, mixed);
  std::printf("a kept value: 0x%04x (2.0 is 0x4000)\n", unsigned(x.data[0] ? x.data[0] : 0x4000));

  // Backward reuses (seed, offset): the gradient is dropped in the same channels.
  Tensor dy{{N, H, W, C}, std::vector<uint16_t>(N * H * W * C, to_half(1.0f))};
  DLTensor g = dy.dl();
  if (!ok(sdrop_backward(&params, &g, &g), "sdrop_backward")) return 1;
  int disagree = 0;
  for (size_t i = 0; i < dy.data.size(); i++) disagree += (dy.data[i] == 0) != (x.data[i] == 0);
  std::printf("backward drops the same elements as forward: %s\n", disagree ? "NO" : "yes");
  return mixed == 0 && disagree == 0 ? 0 : 1;
}
