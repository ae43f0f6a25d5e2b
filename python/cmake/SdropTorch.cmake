# The PyTorch operator library, built against the torch of the environment being installed
# into. pip's build isolation hides that environment from the build's own sys.path, but the
# interpreter running the build is the environment's: `python -I` (isolated mode: no
# PYTHONPATH, no user site) sees exactly its site-packages. SDROP_TORCH_PYTHON names another
# interpreter; SDROP_TORCH=OFF skips the operators.
# Read at every configure (not cached): the environment is what the build is for.
set(SDROP_TORCH "$ENV{SDROP_TORCH}")
set(SDROP_TORCH_PYTHON "$ENV{SDROP_TORCH_PYTHON}")
if (NOT SDROP_TORCH_PYTHON)
  set(SDROP_TORCH_PYTHON "${Python_EXECUTABLE}")
endif ()
if (SDROP_TORCH STREQUAL "OFF")
  message(STATUS "sdrop: PyTorch operators not built (SDROP_TORCH=OFF)")
  return()
endif ()
execute_process(
  COMMAND "${SDROP_TORCH_PYTHON}" -I -c [=[
import os, sys, torch
d = os.path.dirname(torch.__file__)
inc = [os.path.join(d, "include"), os.path.join(d, "include", "torch", "csrc", "api", "include")]
cuda_inc = ""
if torch.version.cuda:
    for cand in [os.path.join(os.path.dirname(d), "nvidia", n, "include") for n in ("cu13", "cu12", "cuda_runtime")]:
        if os.path.exists(os.path.join(cand, "cuda_runtime_api.h")):
            cuda_inc = cand
            break
print(torch.__version__, int(torch._C._GLIBCXX_USE_CXX11_ABI), os.path.join(d, "lib"),
      "|".join(inc), int("OpenMP" in torch.__config__.parallel_info()), torch.version.cuda or "",
      cuda_inc, sep="\n")
]=]
  OUTPUT_VARIABLE _torch RESULT_VARIABLE _rc ERROR_VARIABLE _err
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if (NOT _rc EQUAL 0)
  if (SDROP_TORCH STREQUAL "ON")
    message(FATAL_ERROR "sdrop: SDROP_TORCH=ON but ${SDROP_TORCH_PYTHON} cannot import torch: ${_err}")
  endif ()
  message(STATUS "sdrop: torch not found for ${SDROP_TORCH_PYTHON}: PyTorch operators not built "
                 "(install torch first, then sdrop)")
  return()
endif ()
string(REPLACE "\n" ";" _torch "${_torch}")
list(GET _torch 0 SDROP_TORCH_VERSION)
list(GET _torch 1 _abi)
list(GET _torch 2 _torch_lib)
list(GET _torch 3 _torch_inc)
list(GET _torch 4 _torch_openmp)
string(REPLACE "|" ";" _torch_inc "${_torch_inc}")
list(LENGTH _torch _n)
set(_torch_cuda "")
set(_cuda_inc "")
if (_n GREATER 5)
  list(GET _torch 5 _torch_cuda)
endif ()
if (_n GREATER 6)
  list(GET _torch 6 _cuda_inc)
endif ()
message(STATUS "sdrop: PyTorch operators for torch ${SDROP_TORCH_VERSION} (${_torch_lib})")

add_library(_torch_ops MODULE src/torch_ops.cpp src/torch_autograd.cpp src/torch_cuda.cpp)
# torch 2.x headers need C++20.
set_target_properties(_torch_ops PROPERTIES PREFIX "" INSTALL_RPATH "$ORIGIN" CXX_STANDARD 20
                                            CXX_VISIBILITY_PRESET hidden)
target_include_directories(_torch_ops SYSTEM PRIVATE ${_torch_inc})
target_compile_definitions(_torch_ops PRIVATE _GLIBCXX_USE_CXX11_ABI=${_abi})
target_link_directories(_torch_ops PRIVATE "${_torch_lib}")
target_link_libraries(_torch_ops PRIVATE sdrop_shared torch torch_cpu c10)
# at::parallel_for (the runner sdrop's CPU calls run their loops on, torch_sdrop.h) is inline:
# with torch's OpenMP backend its loop is a `#pragma omp parallel` compiled into this library,
# which without -fopenmp runs on the calling thread alone (measured: no second thread, half
# the throughput at 32×64×112×112). The OpenMP runtime it then needs, libgomp.so.1, is the
# one libtorch_cpu has already loaded (the same soname), so there is one pool of threads.
if (_torch_openmp AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_compile_options(_torch_ops PRIVATE -fopenmp)
  target_link_options(_torch_ops PRIVATE -fopenmp)
elseif (_torch_openmp)
  message(WARNING "sdrop: torch uses OpenMP but ${CMAKE_CXX_COMPILER_ID} is not GCC: the "
                  "operators' CPU loops will run on one thread")
endif ()
if (_torch_cuda AND _cuda_inc)
  message(STATUS "sdrop: ... with CUDA ${_torch_cuda} (headers ${_cuda_inc})")
  target_compile_definitions(_torch_ops PRIVATE SDROP_TORCH_CUDA=1)
  target_include_directories(_torch_ops SYSTEM PRIVATE "${_cuda_inc}")
  target_link_libraries(_torch_ops PRIVATE torch_cuda c10_cuda)
endif ()
# sdrop.torch's eager calls in one crossing (src/torch_eager.cpp): a Python extension over
# torch's pybind11 and libtorch_python, calling the operators above through the dispatcher.
Python_add_library(_torch_eager MODULE WITH_SOABI src/torch_eager.cpp)
set_target_properties(_torch_eager PROPERTIES INSTALL_RPATH "$ORIGIN" CXX_STANDARD 20
                                              CXX_VISIBILITY_PRESET hidden)
target_include_directories(_torch_eager SYSTEM PRIVATE ${_torch_inc})
target_compile_definitions(_torch_eager PRIVATE _GLIBCXX_USE_CXX11_ABI=${_abi})
target_link_directories(_torch_eager PRIVATE "${_torch_lib}")
target_link_libraries(_torch_eager PRIVATE torch_python torch torch_cpu c10)
install(TARGETS _torch_eager LIBRARY DESTINATION sdrop)

# The version the operators were built for: sdrop.torch refuses to load them into another.
file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/_torch_build.py"
     "# Generated at build time: the torch the operator library was built against.\n"
     "TORCH_VERSION = \"${SDROP_TORCH_VERSION}\"\n")
install(TARGETS _torch_ops LIBRARY DESTINATION sdrop)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/_torch_build.py" DESTINATION sdrop)
