# Locates Halide 21.0.0. Preference: an explicit Halide_DIR, else the halide wheel of
# SDROP_PYTHON (the project's .venv, which scripts/setup.sh fills; the Python package's build
# sets it to the interpreter running the build), asked for its install_dir and searched there
# only, so that another Halide on PATH or CMAKE_PREFIX_PATH is never mixed in.
if (Halide_DIR)
  find_package(Halide 21.0.0 EXACT REQUIRED)
else ()
  find_program(SDROP_PYTHON NAMES python3 python
               HINTS "${PROJECT_SOURCE_DIR}/.venv/bin" NO_DEFAULT_PATH)
  if (NOT SDROP_PYTHON)
    find_program(SDROP_PYTHON NAMES python3 python)
  endif ()
  execute_process(
    COMMAND "${SDROP_PYTHON}" -c "import halide; print(halide.install_dir())"
    OUTPUT_VARIABLE _sdrop_halide_root OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _sdrop_rc ERROR_VARIABLE _sdrop_err)
  if (NOT _sdrop_rc EQUAL 0)
    message(FATAL_ERROR "Halide not found: '${SDROP_PYTHON} -c \"import halide\"' failed "
                        "(${_sdrop_err}). Run scripts/setup.sh, or pass -DHalide_DIR=...")
  endif ()
  file(GLOB _sdrop_halide_config "${_sdrop_halide_root}/lib*/cmake/Halide/HalideConfig.cmake")
  if (NOT _sdrop_halide_config)
    message(FATAL_ERROR "Halide's CMake package is not in ${_sdrop_halide_root}")
  endif ()
  list(GET _sdrop_halide_config 0 _sdrop_halide_config)
  get_filename_component(Halide_DIR "${_sdrop_halide_config}" DIRECTORY CACHE)
  find_package(Halide 21.0.0 EXACT REQUIRED)
endif ()
message(STATUS "sdrop: Halide ${Halide_VERSION} from ${Halide_DIR}")
