#include "drivers.h"

#include <dlfcn.h>
#include <pthread.h>

namespace sdrop {
namespace {

// Sonames tried in order: the runtime package's versioned name first (a machine with only
// the driver has libcuda.so.1 / libOpenCL.so.1, not the development symlinks).
void* open_first(const char* const* names) {
  for (const char* const* n = names; *n; n++) {
    if (void* h = dlopen(*n, RTLD_LAZY | RTLD_LOCAL)) return h;
  }
  return nullptr;
}

void* g_libcuda = nullptr;
void* g_libopencl = nullptr;
pthread_once_t g_libcuda_once = PTHREAD_ONCE_INIT;
pthread_once_t g_libopencl_once = PTHREAD_ONCE_INIT;

void open_libcuda() {
  static const char* const names[] = {"libcuda.so.1", "libcuda.so", nullptr};
  g_libcuda = open_first(names);
}
void open_libopencl() {
  static const char* const names[] = {"libOpenCL.so.1", "libOpenCL.so", nullptr};
  g_libopencl = open_first(names);
}

}  // namespace

void* cuda_symbol(const char* name) {
  pthread_once(&g_libcuda_once, open_libcuda);
  return g_libcuda ? dlsym(g_libcuda, name) : nullptr;
}

void* opencl_symbol(const char* name) {
  pthread_once(&g_libopencl_once, open_libopencl);
  return g_libopencl ? dlsym(g_libopencl, name) : nullptr;
}

bool cuda_library_found() {
  pthread_once(&g_libcuda_once, open_libcuda);
  return g_libcuda != nullptr;
}

}  // namespace sdrop

// The Halide runtime looks its driver entry points up through these (weak in the runtime;
// these definitions replace them), so it shares our handles and our soname choice.
extern "C" void* halide_cuda_get_symbol(void*, const char* name) {
  return sdrop::cuda_symbol(name);
}
extern "C" void* halide_opencl_get_symbol(void*, const char* name) {
  return sdrop::opencl_symbol(name);
}
