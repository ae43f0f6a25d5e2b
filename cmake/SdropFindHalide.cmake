# Locates Halide 21.0.0. Preference: an explicit Halide_DIR / CMAKE_PREFIX_PATH, else the
# halide wheel in the project's .venv (scripts/setup.sh installs it), asked for its install_dir.
if (NOT Halide_DIR)
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
  list(PREPEND CMAKE_PREFIX_PATH "${_sdrop_halide_root}")
endif ()
find_package(Halide 21.0.0 EXACT REQUIRED)
message(STATUS "sdrop: Halide ${Halide_VERSION} from ${Halide_DIR}")
