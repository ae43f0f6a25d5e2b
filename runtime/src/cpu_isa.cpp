#include "cpu_isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "error.h"

namespace sdrop {
namespace {

// What the CPU and OS support, from GCC's cpuid probe (it checks XGETBV for AVX state).
sdrop_cpu_isa detect_host() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma")) {
    return SDROP_CPU_ISA_AVX512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx") &&
      __builtin_cpu_supports("fma")) {
    // F16C has no __builtin_cpu_supports name in GCC 12: every AVX2 CPU shipped has it;
    // check the CPUID bit anyway (leaf 1, ECX bit 29).
    unsigned a, b, c, d;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (c & (1u << 29)) return SDROP_CPU_ISA_AVX2;
  }
  return SDROP_CPU_ISA_SSE41;  // the x86-64 baseline sdrop is built for
}

// Cap: 0 = not read from the environment yet; -1 = the environment value was invalid.
std::atomic<int> g_cap{0};
char g_bad_env[64];

int parse_isa(const char* s) {
  if (!std::strcmp(s, "sse41")) return SDROP_CPU_ISA_SSE41;
  if (!std::strcmp(s, "avx2")) return SDROP_CPU_ISA_AVX2;
  if (!std::strcmp(s, "avx512")) return SDROP_CPU_ISA_AVX512;
  if (!std::strcmp(s, "all") || !*s) return SDROP_CPU_ISA_ALL;
  return -1;
}

int cap() {
  int c = g_cap.load(std::memory_order_acquire);
  if (c != 0) return c;
  const char* env = std::getenv("SDROP_MAX_CPU_ISA");
  int parsed = env ? parse_isa(env) : SDROP_CPU_ISA_ALL;
  if (parsed < 0) {
    std::strncpy(g_bad_env, env, sizeof g_bad_env - 1);
  }
  int expected = 0;
  g_cap.compare_exchange_strong(expected, parsed, std::memory_order_acq_rel);
  return g_cap.load(std::memory_order_acquire);
}

bool valid(sdrop_cpu_isa isa) {
  return isa == SDROP_CPU_ISA_SSE41 || isa == SDROP_CPU_ISA_AVX2 ||
         isa == SDROP_CPU_ISA_AVX512 || isa == SDROP_CPU_ISA_ALL;
}

}  // namespace

sdrop_status select_isa(Isa* out) {
  const int c = cap();
  if (c < 0) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "SDROP_MAX_CPU_ISA must be one of sse41, avx2, avx512, all; got '%s'",
                g_bad_env);
  }
  const int host = sdrop_get_host_cpu_isa();
  const int use = c < host ? c : host;
  *out = static_cast<Isa>(use - 1);
  return SDROP_OK;
}

}  // namespace sdrop

using namespace sdrop;

extern "C" {

sdrop_status sdrop_set_max_cpu_isa(sdrop_cpu_isa isa) {
  if (!valid(isa)) {
    return fail(SDROP_ERROR_INVALID_ARGUMENT,
                "isa must be SDROP_CPU_ISA_SSE41, _AVX2, _AVX512 or _ALL, got %d", int(isa));
  }
  g_cap.store(int(isa), std::memory_order_release);
  return SDROP_OK;
}

sdrop_cpu_isa sdrop_get_max_cpu_isa(void) {
  const int c = cap();
  return c < 0 ? SDROP_CPU_ISA_ALL : static_cast<sdrop_cpu_isa>(c);
}

sdrop_cpu_isa sdrop_get_host_cpu_isa(void) {
  // A plain atomic rather than a function-local static: no libstdc++ guard needed.
  static std::atomic<int> host{0};
  int h = host.load(std::memory_order_relaxed);
  if (h == 0) {
    h = detect_host();
    host.store(h, std::memory_order_relaxed);
  }
  return static_cast<sdrop_cpu_isa>(h);
}

sdrop_cpu_isa sdrop_get_cpu_isa(void) {
  const int c = sdrop_get_max_cpu_isa();
  const int host = sdrop_get_host_cpu_isa();
  return static_cast<sdrop_cpu_isa>(c < host ? c : host);
}

const char* sdrop_cpu_isa_name(sdrop_cpu_isa isa) {
  switch (isa) {
    case SDROP_CPU_ISA_SSE41: return "sse41";
    case SDROP_CPU_ISA_AVX2: return "avx2";
    case SDROP_CPU_ISA_AVX512: return "avx512";
    case SDROP_CPU_ISA_ALL: return "all";
  }
  return "unknown";
}

}  // extern "C"
