# The JAX FFI handlers (_jax_ffi), built against the XLA FFI headers of the jaxlib in the
# environment being installed into, found as SdropTorch.cmake finds torch: `python -I`
# (isolated mode) sees exactly that environment's site-packages, which pip's build isolation
# hides from the build's own sys.path. SDROP_JAX_PYTHON names another interpreter;
# SDROP_JAX=OFF skips the handlers, SDROP_JAX=ON makes a missing jax an error. Without them
# the NumPy part works and `import sdrop.jax` says how to get them.
# Read at every configure (not cached): the environment is what the build is for.
set(SDROP_JAX "$ENV{SDROP_JAX}")
set(SDROP_JAX_PYTHON "$ENV{SDROP_JAX_PYTHON}")
if (NOT SDROP_JAX_PYTHON)
  set(SDROP_JAX_PYTHON "${Python_EXECUTABLE}")
endif ()
if (SDROP_JAX STREQUAL "OFF")
  message(STATUS "sdrop: JAX FFI handlers not built (SDROP_JAX=OFF)")
  return()
endif ()
execute_process(
  COMMAND "${SDROP_JAX_PYTHON}" -I -c [=[
import jax, jax.ffi, jaxlib
print(jax.__version__, jaxlib.__version__, jax.ffi.include_dir(), sep="\n")
]=]
  OUTPUT_VARIABLE _jax RESULT_VARIABLE _rc ERROR_VARIABLE _err
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if (NOT _rc EQUAL 0)
  if (SDROP_JAX STREQUAL "ON")
    message(FATAL_ERROR "sdrop: SDROP_JAX=ON but ${SDROP_JAX_PYTHON} cannot import jax: ${_err}")
  endif ()
  message(STATUS "sdrop: jax not found for ${SDROP_JAX_PYTHON}: JAX FFI handlers not built "
                 "(install jax first, then sdrop)")
  return()
endif ()
string(REPLACE "\n" ";" _jax "${_jax}")
list(GET _jax 0 SDROP_JAX_VERSION)
list(GET _jax 1 SDROP_JAXLIB_VERSION)
list(GET _jax 2 _jax_inc)
if (NOT EXISTS "${_jax_inc}/xla/ffi/api/ffi.h")
  message(FATAL_ERROR "sdrop: jaxlib ${SDROP_JAXLIB_VERSION} has no XLA FFI headers in ${_jax_inc}")
endif ()
message(STATUS "sdrop: JAX FFI handlers for jaxlib ${SDROP_JAXLIB_VERSION} (${_jax_inc})")

nanobind_add_module(_jax_ffi NB_STATIC src/jax_ffi.cpp)
target_include_directories(_jax_ffi SYSTEM PRIVATE "${_jax_inc}")
target_link_libraries(_jax_ffi PRIVATE sdrop_shared)
set_target_properties(_jax_ffi PROPERTIES INSTALL_RPATH "$ORIGIN")
# The jaxlib the handlers were compiled against, for diagnostics: the XLA FFI C API is
# versioned and checked by XLA when a handler is called, so a newer jaxlib still loads them.
file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/_jax_build.py"
     "# Generated at build time: the jaxlib whose FFI headers the handlers were built with.\n"
     "JAXLIB_VERSION = \"${SDROP_JAXLIB_VERSION}\"\n")
install(TARGETS _jax_ffi LIBRARY DESTINATION sdrop)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/_jax_build.py" DESTINATION sdrop)
