// The GPU drivers' libraries, opened at the first GPU call and never at load time (a CPU
// process must not need, or load, libcuda or libOpenCL), and their entry points by name.
#pragma once

namespace sdrop {

// An entry point of libcuda.so.1 / libOpenCL.so.1, or null when the library or the symbol
// is missing. Thread-safe; the library is opened once.
void* cuda_symbol(const char* name);
void* opencl_symbol(const char* name);

// Whether the library itself could be opened (for messages).
bool cuda_library_found();

template <typename Fn>
bool load_symbol(Fn* fn, void* (*lookup)(const char*), const char* name) {
  *fn = reinterpret_cast<Fn>(lookup(name));
  return *fn != nullptr;
}

}  // namespace sdrop
