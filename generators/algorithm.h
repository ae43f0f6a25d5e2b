// The math of sdrop, written once: the Philox4x32-10 draw behind the mask (docs/rng.md#mask-bits)
// and the keep/scale/zero arithmetic (docs/rng.md#values-and-scaling). Every generator,
// schedule, dtype and target builds its pipeline from these functions; nothing here knows about
// loops or hardware.
#pragma once

#include "Halide.h"
#include "../common/kernel_kinds.h"

#include <array>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace sdrop::gen {

using namespace Halide;

// A 32-bit unsigned constant (plain C++ integer literals would be read as signed int).
inline Expr u32(uint32_t v) { return Internal::UIntImm::make(UInt(32), v); }

// ---- Philox4x32-10 ------------------------------------------------------------------------

// One Philox4x32-10 block: counter (c0..c3), key (k0, k1) -> four 32-bit words, handed to
// `body`, whose result is returned. Each round's words are bound with Let, so the expression
// is a chain of ten rounds rather than a tree that doubles every round.
inline Expr philox4x32_10(Expr c0, Expr c1, Expr c2, Expr c3, Expr k0, Expr k1,
                          const std::function<Expr(const std::array<Expr, 4> &)> &body) {
  const Expr M0 = u32(0xD2511F53u);
  const Expr M1 = u32(0xCD9E8D57u);
  const Expr W0 = u32(0x9E3779B9u);
  const Expr W1 = u32(0xBB67AE85u);
  static int unique = 0;  // generators run single-threaded
  const std::string prefix = "philox" + std::to_string(unique++) + "_";
  std::array<Expr, 4> c = {c0, c1, c2, c3};
  std::vector<std::pair<std::string, Expr>> lets;
  Expr key0 = k0, key1 = k1;
  for (int r = 0; r < 10; r++) {
    Expr p0 = widening_mul(c[0], M0);  // full 64-bit products
    Expr p1 = widening_mul(c[2], M1);
    Expr hi0 = cast<uint32_t>(p0 >> 32), lo0 = cast<uint32_t>(p0);
    Expr hi1 = cast<uint32_t>(p1 >> 32), lo1 = cast<uint32_t>(p1);
    std::array<Expr, 4> next = {hi1 ^ c[1] ^ key0, lo1, hi0 ^ c[3] ^ key1, lo0};
    for (int i = 0; i < 4; i++) {
      std::string name = prefix + std::to_string(r) + "_" + std::to_string(i);
      lets.emplace_back(name, next[i]);
      c[i] = Internal::Variable::make(UInt(32), name);
    }
    key0 = key0 + W0;
    key1 = key1 + W1;
  }
  Expr e = body(c);
  for (auto it = lets.rbegin(); it != lets.rend(); ++it) {
    e = Internal::Let::make(it->first, it->second, e);
  }
  return e;
}

// The uniform 32-bit draw u for mask index m (docs/rng.md#mask-bits): key = seed, counter =
// (m >> 2, offset), word m & 3 of the block. m is a signed 64-bit index (always >= 0).
// Word `lane` (0..3) of Philox block `block` (= m >> 2): the draw of mask index 4*block + lane.
inline Expr philox_block_word(Expr block, Expr lane, Expr seed, Expr offset) {
  Expr b = cast<uint64_t>(block);
  Expr l = cast<uint32_t>(lane);
  return philox4x32_10(cast<uint32_t>(b), cast<uint32_t>(b >> 32), cast<uint32_t>(offset),
                       cast<uint32_t>(offset >> 32), cast<uint32_t>(seed),
                       cast<uint32_t>(seed >> 32), [&](const std::array<Expr, 4> &w) {
                         return select(l == 0, w[0], l == 1, w[1], l == 2, w[2], w[3]);
                       });
}

inline Expr philox_draw(Expr m, Expr seed, Expr offset) {
  return philox_block_word(cast<uint64_t>(m) >> 2, cast<uint64_t>(m) & 3, seed, offset);
}

// Keep iff u < T, T in [0, 2^32]. T = 2^32 cannot be a uint32, so it comes as keep_all.
inline Expr keep_of_draw(Expr u, Expr threshold, Expr keep_all) { return keep_all || u < threshold; }

inline Expr philox_keep(Expr m, Expr seed, Expr offset, Expr threshold, Expr keep_all) {
  return keep_of_draw(philox_draw(m, seed, offset), threshold, keep_all);
}

// The keep bit of mask index 4*block + lane: what philox_keep gives for that index, written
// per block so that a schedule can compute one Philox for the block's 4 indices.
inline Expr philox_keep_block(Expr block, Expr lane, Expr seed, Expr offset, Expr threshold,
                              Expr keep_all) {
  return keep_of_draw(philox_block_word(block, lane, seed, offset), threshold, keep_all);
}

// ---- Values -------------------------------------------------------------------------------

// body(v) with v bound to `value` by a Let: a value used several times is then one variable,
// not a subexpression every later pass copies (chained software float16 conversions grew
// into expressions that exhausted the generator's memory).
inline Expr let_in(const char *hint, Expr value, const std::function<Expr(Expr)> &body) {
  static int unique = 0;  // generators run single-threaded
  const std::string name = std::string("sdrop_") + hint + std::to_string(unique++);
  return Internal::Let::make(name, value, body(Internal::Variable::make(value.type(), name)));
}

// The element types the kernels store (common/kernel_kinds.h), and the type the arithmetic is done in.
using sdrop::DType;
using sdrop::Op;
using sdrop::Shape;

// hw_f16: the target converts between float16 and float32 in hardware (F16C, CUDA). Without
// it float16 is stored as its bits (uint16) and converted in integer arithmetic: Halide's
// software narrowing on SSE4.1 turns NaN into Inf, and OpenCL has `half` only with
// cl_khr_fp16, which PoCL lacks.
inline Type storage_type(DType t, bool hw_f16) {
  switch (t) {
    case DType::f16: return hw_f16 ? Float(16) : UInt(16);
    case DType::bf16: return UInt(16);  // bfloat16 is integer work on every backend
    case DType::f32: return Float(32);
    case DType::f64: return Float(64);
    case DType::u8: return UInt(8);
  }
  return Type();
}

inline bool computes_in_double(DType t) { return t == DType::f64; }

// bfloat16 <-> float32, exact and round-to-nearest-even, NaN kept a (quiet) NaN.
inline Expr bf16_bits_to_f32(Expr bits) {
  return reinterpret<float>(cast<uint32_t>(bits) << 16);
}
inline Expr f32_to_bf16_bits(Expr f) {
  return let_in("bf", reinterpret<uint32_t>(f), [](Expr u) {
    Expr is_nan = (u & u32(0x7fffffffu)) > u32(0x7f800000u);
    Expr rounded = (u + (u32(0x7fffu) + ((u >> 16) & u32(1)))) >> 16;
    return cast<uint16_t>(select(is_nan, (u >> 16) | u32(0x40u), rounded));
  });
}

// float16 bits -> float32, exact: subnormals, infinities and NaN payloads kept.
inline Expr f16_bits_to_f32(Expr bits) {
  return let_in("h", cast<uint32_t>(bits), [](Expr u) {
  Expr sign = (u & u32(0x8000u)) << 16;
  Expr e = (u >> 10) & u32(0x1fu);
  Expr m = u & u32(0x3ffu);
  Expr normal = sign | ((e + u32(112)) << 23) | (m << 13);
  Expr special = sign | u32(0x7f800000u) | (m << 13);
  // Zero and subnormals: m * 2^-24 is exact in float32.
  Expr tiny = sign | reinterpret<uint32_t>(strict_float(cast<float>(m) * 5.9604644775390625e-8f));
  return reinterpret<float>(select(e == u32(0), tiny, e == u32(31), special, normal));
  });
}

// float32 -> float16 bits, round to nearest even, subnormals kept, NaN kept a quiet NaN,
// in integer arithmetic (targets without hw_f16).
inline Expr f32_to_f16_bits(Expr f) {
  return let_in("f", reinterpret<uint32_t>(f), [](Expr u) {
  Expr sign = (u >> 16) & u32(0x8000u);
  Expr a = u & u32(0x7fffffffu);
  Expr nan = sign | u32(0x7e00u) | ((a >> 13) & u32(0x3ffu));
  Expr inf = sign | u32(0x7c00u);
  // Normal range: rebias the exponent (127 -> 15), round the 13 dropped bits.
  Expr r = a - u32(0x38000000u);
  Expr normal = sign | ((r + (u32(0xfffu) + ((r >> 13) & u32(1)))) >> 13);
  // Subnormal range: the 24-bit significand shifted right by 126 - exponent, rounded.
  Expr e = cast<int32_t>(a >> 23);
  Expr shift = cast<uint32_t>(clamp(126 - e, 14, 25));
  Expr m = (a & u32(0x7fffffu)) | u32(0x800000u);
  Expr q = m >> shift;
  Expr rem = m & ((u32(1) << shift) - u32(1));
  Expr half = u32(1) << (shift - u32(1));
  Expr up = rem > half || (rem == half && (q & u32(1)) == u32(1));
  Expr sub = sign | (q + select(up, u32(1), u32(0)));
  Expr bits = select(a > u32(0x7f800000u), nan,
                     a >= u32(0x477ff000u), inf,
                     a >= u32(0x38800000u), normal, sub);
  return cast<uint16_t>(bits);
  });
}

inline Expr to_compute(DType t, Expr stored, bool hw_f16) {
  switch (t) {
    case DType::f16: return hw_f16 ? cast<float>(stored) : f16_bits_to_f32(stored);
    case DType::bf16: return bf16_bits_to_f32(stored);
    case DType::f32: return stored;
    case DType::f64: return stored;
    case DType::u8: break;  // masks are never values
  }
  return Expr();
}

inline Expr from_compute(DType t, Expr v, bool hw_f16) {
  switch (t) {
    case DType::f16:  // IEEE round-to-nearest-even either way
      return hw_f16 ? cast(Float(16), v) : f32_to_f16_bits(v);
    case DType::bf16: return f32_to_bf16_bits(v);
    case DType::f32: return v;
    case DType::f64: return v;
    case DType::u8: break;
  }
  return Expr();
}

// docs/rng.md#values-and-scaling: kept -> x * s; dropped -> +0.0, or x * 0 with
// SDROP_FLAG_MULTIPLY (PyTorch).
// `scale` is s in the compute type (float, or double for f64), rounded on the host.
// strict_float keeps the simplifier and LLVM from folding x * 0 or contracting anything.
inline Expr kept_value(DType t, Expr x, Expr scale, bool hw_f16) {
  return from_compute(t, strict_float(to_compute(t, x, hw_f16) * scale), hw_f16);
}
inline Expr dropped_value(DType t, Expr x, Expr multiply, bool hw_f16) {
  Expr xc = to_compute(t, x, hw_f16);
  Expr times_zero = from_compute(t, strict_float(xc * Internal::make_zero(xc.type())), hw_f16);
  return select(multiply, times_zero, Internal::make_zero(storage_type(t, hw_f16)));
}
inline Expr dropout_value(DType t, Expr x, Expr keep, Expr scale, Expr multiply, bool hw_f16) {
  return let_in("x", x, [&](Expr xv) {
    return select(keep, kept_value(t, xv, scale, hw_f16), dropped_value(t, xv, multiply, hw_f16));
  });
}

// ---- The fused channel epilogue (docs/epilogue.md) ------------------------------------------
// y = post(r + dropout(act(x + b))), each step rounded to the storage type as the separate
// operations would store it, so that fused and unfused results are the same bits. The flags
// are runtime values (the schedule specializes on the ones that change what is loaded).

// relu(t) = t if t > 0, NaN if t is NaN, else +0.0 (so -0.0 and negatives give +0.0). Float
// tests here use only < and > (and is_nan): Halide 21 lowers a strict float a <= b as !(b < a),
// which a NaN passes.
inline Expr relu(Expr t) {
  return select(t > 0 || is_nan(t), t, Internal::make_zero(t.type()));
}

// act(x + b) as stored: the dropout's input. x and b are stored values.
inline Expr epilogue_pre(DType t, Expr x, Expr b, Expr has_bias, Expr act_relu, bool hw_f16) {
  Expr sum = from_compute(t, strict_float(to_compute(t, x, hw_f16) + to_compute(t, b, hw_f16)),
                          hw_f16);
  return let_in("pre", select(has_bias, sum, x), [&](Expr stored) {
    // relu commutes with the rounding, so it may act on the stored value's compute form.
    return select(act_relu, from_compute(t, relu(to_compute(t, stored, hw_f16)), hw_f16),
                  stored);
  });
}

// The gradient through a relu whose stored output is `out`: g where out > 0 or NaN, else +0.0
// (PyTorch's threshold_backward on the result, as autograd of the unfused sequence does it).
inline Expr relu_grad(DType t, Expr g, Expr out, bool hw_f16) {
  return let_in("relu_out", to_compute(t, out, hw_f16), [&](Expr o) {
    return select(o > 0 || is_nan(o), g, Internal::make_zero(g.type()));
  });
}

// post(r + d) as stored, from the dropout's stored output d and the residual r.
inline Expr epilogue_post(DType t, Expr d, Expr r, Expr has_residual, Expr post_relu,
                          bool hw_f16) {
  return let_in("d", to_compute(t, d, hw_f16), [&](Expr dc) {
    Expr z = select(has_residual, strict_float(to_compute(t, r, hw_f16) + dc), dc);
    return let_in("z", z, [&](Expr zv) {
      return from_compute(t, select(post_relu, relu(zv), zv), hw_f16);
    });
  });
}

}  // namespace sdrop::gen
