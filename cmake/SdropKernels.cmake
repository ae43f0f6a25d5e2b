# The AOT kernel variants: every (op, shape, dtype) of generators/sdrop_generator.cpp,
# compiled once per CPU ISA with one shared Halide runtime. Targets are named explicitly
# (never `host`): the objects must run on any x86-64 machine whose ISA the runtime detects.

# ISA variant -> Halide target. The runtime (runtime/src/cpu_isa.cpp) picks among them.
set(SDROP_CPU_ISAS sse41 avx2 avx512)
set(SDROP_TARGET_BASE "x86-64-linux")
set(SDROP_TARGET_sse41  "${SDROP_TARGET_BASE}-sse41")
set(SDROP_TARGET_avx2   "${SDROP_TARGET_BASE}-sse41-avx-avx2-f16c-fma")
set(SDROP_TARGET_avx512 "${SDROP_TARGET_BASE}-sse41-avx-avx2-f16c-fma-avx512-avx512_skylake")
# GPU backends: the same generator with GPU schedules. The host side is x86-64 baseline;
# CUDA kernels are PTX for compute capability 7.0, which the driver JIT-compiles for the
# GPU it finds (Volta through Hopper and later); OpenCL kernels are OpenCL C with fp64
# (cl_doubles) for float64, and float16 done in integer arithmetic (no cl_khr_fp16 needed).
# The Halide runtime loads libcuda / libOpenCL only when a GPU call runs.
set(SDROP_GPU_BACKENDS cuda opencl)
set(SDROP_TARGET_cuda   "${SDROP_TARGET_BASE}-sse41-cuda-cuda_capability_70")
set(SDROP_TARGET_opencl "${SDROP_TARGET_BASE}-sse41-opencl-cl_doubles")
set(SDROP_RUNTIME_TARGET "${SDROP_TARGET_BASE}-cuda-opencl")

# The runtime validates every argument before a kernel runs, so the kernels carry no
# asserts and no bounds queries; strict_float keeps x*0 and x*s exactly as docs/rng.md#exactness
# says.
set(SDROP_KERNEL_FEATURES "no_asserts-no_bounds_query-strict_float")

# (op, shape) pairs and dtypes. apply_mask and mask run on the elementwise shape only; the
# fused epilogue (docs/epilogue.md: forward, backward, and the row sums of the bias gradient)
# on rows and channels_last, on every CPU ISA and GPU backend (the runtime maps every other
# layout onto rows of one element).
set(SDROP_KERNEL_SHAPES "dropout:rows" "dropout:channels_last" "dropout:elementwise"
                        "apply_mask:elementwise" "mask:elementwise"
                        "epilogue:rows" "epilogue:channels_last"
                        "epilogue_backward:rows" "epilogue_backward:channels_last"
                        "channel_sum:rows" "channel_sum:channels_last")
# Ops built for the CPU ISAs only (none at present; the loop below skips their GPU variants).
set(SDROP_CPU_ONLY_OPS "")
set(SDROP_DTYPES f16 bf16 f32 f64)

# Most channels one channels_last kernel call takes (its keep bits live in a stack buffer of
# this many bytes); the runtime cuts wider rows. One value for generator and runtime.
set(SDROP_CHANNEL_BLOCK 2048)

# Per-variant schedule knobs (vector_factor=, task_elems=) and the runtime's three byte
# thresholds below. The table is written by the tuning sweep; entries it lacks get the
# generator's defaults, thresholds it lacks the defaults below.
set(SDROP_SCHEDULE_TABLE "${PROJECT_SOURCE_DIR}/generators/schedule_table.cmake" CACHE FILEPATH
    "Schedule knobs per kernel variant (bench/tune.py writes candidates and winners)")
include("${SDROP_SCHEDULE_TABLE}" OPTIONAL)

# The runtime's byte thresholds: a -D value wins, then the table's (SDROP_TUNED_*), then the
# default. Empty cache entries, so that a re-tuned table reaches an existing build tree.
# SDROP_SERIAL_BYTES: calls whose output has at most this many bytes run on the calling thread
# (no thread pool).
# SDROP_SKIP_DROPPED_BYTES: exact-zero calls with more output bytes than this fill dropped rows
# without reading x (a branch per vector in the rows kernel); smaller ones run the
# branch-free loop.
set(SDROP_SERIAL_BYTES "" CACHE STRING
    "Output bytes up to which a CPU call runs serially (empty: the schedule table's, else 65536)")
set(SDROP_SKIP_DROPPED_BYTES "" CACHE STRING
    "Output bytes above which exact-zero rows calls skip reading dropped rows (empty: the schedule table's, else 1048576)")
# SDROP_MEMSET_DROPPED_BYTES: exact-zero rows calls (contiguous rows of y) with more output
# than this fill dropped rows with streaming stores and run the kernel on the kept rows only.
set(SDROP_MEMSET_DROPPED_BYTES "" CACHE STRING
    "Output bytes above which exact-zero rows calls fill dropped rows by streaming stores (empty: the schedule table's, else 4194304)")
foreach (knob_default SERIAL_BYTES=65536 SKIP_DROPPED_BYTES=1048576 MEMSET_DROPPED_BYTES=4194304)
  string(REPLACE "=" ";" knob_default "${knob_default}")
  list(GET knob_default 0 knob)
  list(GET knob_default 1 default)
  if (NOT SDROP_${knob} STREQUAL "")
    set(SDROP_EFFECTIVE_${knob} "${SDROP_${knob}}")
  elseif (DEFINED SDROP_TUNED_${knob})
    set(SDROP_EFFECTIVE_${knob} "${SDROP_TUNED_${knob}}")
  else ()
    set(SDROP_EFFECTIVE_${knob} "${default}")
  endif ()
endforeach ()

# Another build tree's generators/ folder whose kernels this build links instead of generating
# its own (same sources, same configuration): the sanitizer build of the test command takes the
# release build's, since the generated code is not instrumented either way and generating the
# kernels is most of a build's time.
set(SDROP_KERNELS_FROM "" CACHE PATH "generators/ folder of a build of the same sources to take the kernels from")

function(sdrop_add_kernels)
  set(runtime sdrop_halide_runtime)
  set(from "${SDROP_KERNELS_FROM}")
  if (from)
    if (NOT EXISTS "${from}/sdrop_kernels.h" OR NOT EXISTS "${from}/${runtime}.o")
      message(FATAL_ERROR "SDROP_KERNELS_FROM=${from}: no kernels there (build that tree first)")
    endif ()
    message(STATUS "sdrop: kernels taken from ${from}")
    add_custom_target(sdrop_kernels_imported)
  else ()
    add_halide_runtime(${runtime} TARGETS ${SDROP_RUNTIME_TARGET})
  endif ()

  set(objects "")
  set(libs "")
  set(includes "")
  set(xmacro "")
  set(gpu_xmacro "")
  foreach (isa IN LISTS SDROP_CPU_ISAS SDROP_GPU_BACKENDS)
    foreach (pair IN LISTS SDROP_KERNEL_SHAPES)
      string(REPLACE ":" ";" pair "${pair}")
      list(GET pair 0 op)
      list(GET pair 1 shape)
      if (op IN_LIST SDROP_CPU_ONLY_OPS AND isa IN_LIST SDROP_GPU_BACKENDS)
        continue ()
      endif ()
      if (op STREQUAL "mask")
        set(dtypes u8)
      else ()
        set(dtypes ${SDROP_DTYPES})
      endif ()
      foreach (dtype IN LISTS dtypes)
        set(name "hl_sdrop_${op}_${shape}_${dtype}_${isa}")
        set(params op=${op} shape=${shape} channel_block=${SDROP_CHANNEL_BLOCK})
        if (NOT dtype STREQUAL "u8")
          list(APPEND params dtype=${dtype})
        endif ()
        set(knobs "${SDROP_SCHEDULE_${isa}_${op}_${shape}_${dtype}}")
        separate_arguments(knobs UNIX_COMMAND "${knobs}")
        if (from)
          list(APPEND objects "${from}/${name}.o")
        else ()
          add_halide_library(${name} FROM sdrop_generators GENERATOR sdrop
                             TARGETS "${SDROP_TARGET_${isa}}-${SDROP_KERNEL_FEATURES}"
                             USE_RUNTIME ${runtime}
                             PARAMS ${params} ${knobs}
                             STMT stmt_${name})
          list(APPEND libs ${name})
          list(APPEND objects "${CMAKE_CURRENT_BINARY_DIR}/${name}.o")
        endif ()
        string(APPEND includes "#include \"${name}.h\"\n")
        if (isa IN_LIST SDROP_GPU_BACKENDS)
          string(APPEND gpu_xmacro "  X(${op}, ${shape}, ${dtype}, ${isa}) \\\n")
        else ()
          string(APPEND xmacro "  X(${op}, ${shape}, ${dtype}, ${isa}) \\\n")
        endif ()
      endforeach ()
    endforeach ()
  endforeach ()

  # One header the runtime includes: every kernel's prototype and an X-macro table of them.
  set(header "${CMAKE_CURRENT_BINARY_DIR}/sdrop_kernels.h")
  file(CONFIGURE OUTPUT "${header}" CONTENT
"// Generated by cmake/SdropKernels.cmake: every AOT kernel variant. Do not edit.
#pragma once
@includes@
#define SDROP_FOR_EACH_KERNEL(X) \\
@xmacro@
#define SDROP_FOR_EACH_GPU_KERNEL(X) \\
@gpu_xmacro@
" @ONLY)

  # Build constants the runtime shares with the generator.
  file(CONFIGURE OUTPUT "${CMAKE_CURRENT_BINARY_DIR}/sdrop_config.h" CONTENT
"// Generated by cmake/SdropKernels.cmake: values the generator was built with. Do not edit.
#pragma once
#define SDROP_CHANNEL_BLOCK @SDROP_CHANNEL_BLOCK@
#define SDROP_SERIAL_BYTES @SDROP_EFFECTIVE_SERIAL_BYTES@
#define SDROP_SKIP_DROPPED_BYTES @SDROP_EFFECTIVE_SKIP_DROPPED_BYTES@
#define SDROP_MEMSET_DROPPED_BYTES @SDROP_EFFECTIVE_MEMSET_DROPPED_BYTES@
" @ONLY)

  add_library(sdrop_kernels INTERFACE)
  target_include_directories(sdrop_kernels INTERFACE "${CMAKE_CURRENT_BINARY_DIR}")
  if (from)
    # The kernels' headers (after this build's own sdrop_kernels.h and sdrop_config.h).
    target_include_directories(sdrop_kernels INTERFACE "${from}")
    set(SDROP_KERNEL_OBJECTS ${objects} "${from}/${runtime}.o" PARENT_SCOPE)
    set(SDROP_KERNEL_LIBS sdrop_kernels_imported PARENT_SCOPE)
  else ()
    target_link_libraries(sdrop_kernels INTERFACE ${libs})
    set(SDROP_KERNEL_OBJECTS ${objects} "${CMAKE_CURRENT_BINARY_DIR}/${runtime}.o" PARENT_SCOPE)
    set(SDROP_KERNEL_LIBS ${libs} ${runtime} PARENT_SCOPE)
  endif ()
endfunction()
