/*
 * sdrop — spatial (channel-wise) dropout with a counter-based Philox mask.
 *
 * The C ABI. C99-compatible; no exceptions cross it; every entry point that can fail returns
 * an sdrop_status and leaves a message in sdrop_last_error() (thread-local). Tensors are DLPack
 * DLTensors, so NumPy, PyTorch, JAX and CuPy arrays cross it without copies.
 *
 * Semantics (docs/semantics.md, docs/rng.md):
 *   noise shape ns[i] = x.shape[i] if bit i of mask_axes is set, else 1;
 *   one Bernoulli(1 - p) draw per noise-shape element m (row-major linear index),
 *   keep[m] = philox4x32_10(seed, offset, m) < nearbyint((1 - p) * 2^32);
 *   y[i] = keep[m(i)] ? x[i] * s : +0.0      s = 1/(1 - p)
 *   (with SDROP_FLAG_MULTIPLY: dropped y[i] = x[i] * 0, as PyTorch computes it).
 * The mask depends on (seed, offset, m) only: the same on every backend, ISA, thread count,
 * layout, stride and dtype. Backward is forward applied to the gradient with the same params.
 */
#ifndef SDROP_SDROP_H_
#define SDROP_SDROP_H_

#include <stdint.h>

#include <dlpack/dlpack.h>

#if defined(_WIN32)
#define SDROP_API
#elif defined(__GNUC__)
#define SDROP_API __attribute__((visibility("default")))
#else
#define SDROP_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define SDROP_VERSION_MAJOR 0
#define SDROP_VERSION_MINOR 1
#define SDROP_VERSION_PATCH 0

typedef enum sdrop_status {
  SDROP_OK = 0,
  SDROP_ERROR_INVALID_ARGUMENT = 1,    /* bad value, shape, dtype pair, stride, overlap     */
  SDROP_ERROR_UNSUPPORTED = 2,         /* valid DLPack, but a dtype/device this build lacks */
  SDROP_ERROR_BACKEND_UNAVAILABLE = 3, /* e.g. CUDA tensor but no driver/device             */
  SDROP_ERROR_OUT_OF_MEMORY = 4,
  SDROP_ERROR_INTERNAL = 5
} sdrop_status;

typedef struct sdrop_params {
  double p;           /* drop probability, [0, 1]                                   */
  uint64_t seed;      /* Philox key                                                  */
  uint64_t offset;    /* Philox counter high half: bump it every step                */
  uint32_t mask_axes; /* bit i set: the mask varies along axis i                    */
  uint32_t flags;     /* SDROP_FLAG_*                                                */
} sdrop_params;

/* Dropped elements become x * 0 (PyTorch: NaN/Inf propagate, negatives give -0.0).
   Default: dropped elements are exactly +0.0, whatever their input (NaN and Inf too). */
#define SDROP_FLAG_MULTIPLY 1u
/* float16/bfloat16: the float32 scale s = 1/(1 - p) is first rounded to the tensor's dtype,
   then x * s is computed in float32 (exactly) and rounded once: PyTorch's arithmetic, whose
   noise tensor holds 1/(1 - p) in the input's dtype (bfloat16, p = 0.1: s = 1.109375). No
   effect on float32/float64. PyTorch's dropout1d/2d/3d is SDROP_FLAG_MULTIPLY |
   SDROP_FLAG_SCALE_IN_DTYPE, bit for bit, given its mask. */
#define SDROP_FLAG_SCALE_IN_DTYPE 2u

typedef enum sdrop_layout { SDROP_CHANNELS_FIRST = 0, SDROP_CHANNELS_LAST = 1 } sdrop_layout;

/* Mask axes of spatial dropout for a batched tensor: {0,1} (channels first) or {0,ndim-1}
   (channels last); 0 if ndim < 2. Unbatched input (C, spatial...) is mask_axes = 1u. */
SDROP_API uint32_t sdrop_spatial_axes(int32_t ndim, sdrop_layout layout);

/* y = dropout(x). y may be x itself (same data, same strides: in place).
   Shapes and dtypes of x and y must match; their strides may differ. */
SDROP_API sdrop_status sdrop_forward(const sdrop_params* params, const DLTensor* x, DLTensor* y);

/* dx = dropout(dy) with the mask of the forward call that had the same params. */
SDROP_API sdrop_status sdrop_backward(const sdrop_params* params, const DLTensor* dy,
                                      DLTensor* dx);

/* Writes the keep mask, 1 = kept, 0 = dropped. The mask's shape is the noise shape: any
   extent on the axes in params->mask_axes, exactly 1 on every other axis. dtype uint8 or
   bool (DLPack code 6, 8 bits). params->flags is ignored. */
SDROP_API sdrop_status sdrop_mask(const sdrop_params* params, DLTensor* mask);

/* y = keep ? x * s : 0 with a caller-given mask (noise shape, uint8/bool, nonzero = keep);
   seed and offset are ignored, p gives s, flags apply; p = 1 drops everything whatever the
   mask says. Lets a caller reproduce another framework's draw bit for bit. */
SDROP_API sdrop_status sdrop_apply_mask(const sdrop_params* params, const DLTensor* x,
                                        const DLTensor* mask, DLTensor* y);

/* ---- Shards of a logical tensor (data and tensor parallelism) ----------------------------
   A call may describe its tensor as a shard of a larger logical tensor X of the same rank:
   per axis i, origin[i] is the index in X of the shard's first element and logical_shape[i]
   is X's extent there (0 <= origin[i], origin[i] + shape[i] <= logical_shape[i]). Mask
   indices are then those of X: the keep bit of an element is the one X's element at
   origin + position gets, so a shard's output is exactly the matching slice of the output
   for the whole of X, however X is split (batch axis: data parallel; channel axis: tensor
   parallel), and different shards of one step draw different masks. NULL origin means all
   zeros; NULL logical_shape means the tensor's own shape; a NULL shard is the plain call.
   A shard that contradicts the shape, or a logical noise shape of more than 2^62 elements,
   is refused with SDROP_ERROR_INVALID_ARGUMENT. For sdrop_mask_sharded the mask's shape is
   the shard's noise shape (extent 1 off the mask axes). */
typedef struct sdrop_shard {
  const int64_t* origin;        /* ndim entries, or NULL */
  const int64_t* logical_shape; /* ndim entries, or NULL */
} sdrop_shard;

SDROP_API sdrop_status sdrop_forward_sharded(const sdrop_params* params,
                                             const sdrop_shard* shard, const DLTensor* x,
                                             DLTensor* y);
SDROP_API sdrop_status sdrop_backward_sharded(const sdrop_params* params,
                                              const sdrop_shard* shard, const DLTensor* dy,
                                              DLTensor* dx);
SDROP_API sdrop_status sdrop_mask_sharded(const sdrop_params* params, const sdrop_shard* shard,
                                          DLTensor* mask);

/* ---- Fused channel epilogue (docs/epilogue.md) -------------------------------------------
   y = post(residual + dropout(act(x + bias))) in one pass over memory: the bias of a
   convolution, its activation, spatial dropout, a residual block's add and the activation after
   it. bias (per channel) and residual are each optional; act and post are each identity or ReLU
   (relu(t) = t if t > 0, NaN if t is NaN, else +0.0). Every step is rounded to the storage dtype
   as the separate operations would store it, so the result is bit for bit that of the unfused
   sequence sdrop_forward would be one step of (with the same params and mask). A dropped channel
   contributes +0.0 (or act(x + bias) * 0 with SDROP_FLAG_MULTIPLY) and, in the default mode, its
   x is not read (in rows layouts such as NCHW, on every backend). CPU, CUDA and OpenCL; on a
   GPU every tensor of the call must be on that device, and a backward call with dbias waits
   for the caller's stream/queue (dbias is summed per channel on the host). */
typedef enum sdrop_activation {
  SDROP_ACTIVATION_IDENTITY = 0,
  SDROP_ACTIVATION_RELU = 1
} sdrop_activation;

typedef struct sdrop_epilogue {
  const DLTensor* bias;     /* NULL, or 1-D with extent x.shape[channel_axis], x's dtype and
                               device, any stride (0 broadcasts one value)                    */
  const DLTensor* residual; /* NULL, or x's shape, dtype and device, any strides; may be y
                               itself (an in-place add) or x, but not overlap y otherwise     */
  int32_t channel_axis;     /* the axis of x that bias indexes; ignored without bias          */
  int32_t act;              /* sdrop_activation of x + bias, before the dropout               */
  int32_t post;             /* sdrop_activation after the residual add                        */
} sdrop_epilogue;

/* y = post(residual + dropout(act(x + bias))). y may be x itself (in place). shard may be NULL
   (the whole tensor) or describe x as a shard of a logical tensor, as above. */
SDROP_API sdrop_status sdrop_epilogue_forward(const sdrop_params* params,
                                              const sdrop_shard* shard,
                                              const sdrop_epilogue* epilogue, const DLTensor* x,
                                              DLTensor* y);

/* The gradients of sdrop_epilogue_forward with the same params, shard and epilogue, from the
   forward's x and the gradient dy of y, as autograd of the unfused sequence computes them (a
   ReLU passes the gradient where its stored output is > 0 or NaN): g = post'(y) * dy,
   dresidual = g, dx = act'(a) * dropout(g) with a = act(x + bias) (the mask regenerated, the
   forward's values recomputed from x, bias and residual: nothing is saved between the calls),
   dbias[c] = the sum of dx over every axis but the channel axis, accumulated in float (double
   for float64) in the order docs/epilogue.md#backward gives, rounded once. dbias and dresidual
   may each be NULL (not wanted); dbias needs epilogue->bias, dresidual epilogue->residual. dx
   may be dy or x itself (in place); dresidual may be dy (in place) but not overlap dx; dbias
   overlaps nothing. */
SDROP_API sdrop_status sdrop_epilogue_backward(const sdrop_params* params,
                                               const sdrop_shard* shard,
                                               const sdrop_epilogue* epilogue, const DLTensor* x,
                                               const DLTensor* dy, DLTensor* dx, DLTensor* dbias,
                                               DLTensor* dresidual);

/* Thread-local message of the last failure on this thread; "" if none. */
SDROP_API const char* sdrop_last_error(void);

/* The enumerator's name: "SDROP_OK", "SDROP_ERROR_INVALID_ARGUMENT", ...; for a value that is
   not an sdrop_status, "SDROP_STATUS_UNKNOWN". Static storage; never NULL. */
SDROP_API const char* sdrop_status_name(sdrop_status status);

/* CPU threads used by a call (the calling thread included). 0 = all cores (the default);
   a negative n is taken as 0. */
SDROP_API void sdrop_set_num_threads(int n);
/* The count actually used (>= 1). */
SDROP_API int sdrop_get_num_threads(void);

/* ---- Parallel loops on the caller's threads --------------------------------------------
   By default a call's parallel loop runs on sdrop's own pool (its workers spin briefly
   between calls, then sleep). A program that has a pool of its own (PyTorch's intra-op
   threads, XLA's, an application's) can run sdrop's loops on it instead, so that two pools
   do not compete for the same cores: sdrop then starts no thread of its own for those calls.
   The runner is per thread (like the GPU handles below): it applies to the calls made on the
   thread that set it.
     run(context, n, task, task_context) must call task(task_context, i) exactly once for
     every i in [0, n), on any of its threads, in any order, concurrently or not, and return
     after the last has returned. Tasks neither throw nor block on each other; each runs
     with the IEEE floating-point default, whatever the thread's state (and restores it).
   threads: how many threads the runner has (the caller included); with 1 a call runs on the
   calling thread without calling run. A runner that returns with a task not run makes the
   call fail with SDROP_ERROR_INTERNAL, naming how many ran. */
typedef void (*sdrop_task_fn)(void* task_context, int32_t i);
typedef void (*sdrop_parallel_for_fn)(void* context, int32_t n, sdrop_task_fn task,
                                      void* task_context);
/* Sets this thread's runner; run = NULL goes back to sdrop's pool (context and threads are
   then ignored). SDROP_ERROR_INVALID_ARGUMENT, and nothing changes, when run is set and
   threads < 1. */
SDROP_API sdrop_status sdrop_set_parallel_runner(sdrop_parallel_for_fn run, void* context,
                                                 int threads);
/* This thread's runner (NULL, NULL, 0 when none); any pointer may be NULL. */
SDROP_API void sdrop_get_parallel_runner(sdrop_parallel_for_fn* run, void** context,
                                         int* threads);

/* ---- Verbose mode, in the style of ONEDNN_VERBOSE -------------------------------------
   Level 1: one line per call on stderr, as the call returns:
     sdrop_verbose,exec,<variant>,<op>,<dtype>,shape=2x3x4,x_strides=12:4:1,y_strides=...,
       mask_axes=0x3,p=0.5,flags=0x0,canonical=rows,kernel_extents=4x6x1,calls=1,serial=1,
       skip_dropped=0,threads=2,time_us=0.41
   where <variant> is cpu:sse41|cpu:avx2|cpu:avx512|cuda|opencl, <op> forward|backward|mask|
   apply_mask (with "_sharded" for the sharded calls) and time_us the wall time of the call
   (for GPU calls, of the enqueueing). Refused calls print
     sdrop_verbose,error,<op>,<status name>,<message>
   Level 2 adds a line per kernel dimension and runtime loop of the plan (sdrop_verbose,plan,...).
   The level starts from the environment variable SDROP_VERBOSE=0|1|2 (read once, at the
   first call; another value counts as 0) and can be changed at any time. Off, it costs one
   load and one branch per call. */
/* Sets the level; a value outside 0..2 is clamped into it. */
SDROP_API void sdrop_set_verbose(int level);
/* The level in force. */
SDROP_API int sdrop_get_verbose(void);

/* "MAJOR.MINOR.PATCH". */
SDROP_API const char* sdrop_version(void);

/* ---- CPU ISA selection, in the style of oneDNN's max-CPU-ISA control ----------------------
   Every CPU kernel is compiled for each of these instruction sets; a call runs the best one
   that the CPU supports and that is not above the cap. The cap starts from the environment
   variable SDROP_MAX_CPU_ISA=sse41|avx2|avx512|all (read once, at the first call that needs
   it; an unknown value makes every call fail with SDROP_ERROR_INVALID_ARGUMENT naming it)
   and can be changed at any time with sdrop_set_max_cpu_isa. The results are bit-identical
   whichever variant runs. */
typedef enum sdrop_cpu_isa {
  SDROP_CPU_ISA_SSE41 = 1,  /* x86-64 with SSE4.1: the baseline                        */
  SDROP_CPU_ISA_AVX2 = 2,   /* AVX, AVX2, FMA, F16C                                   */
  SDROP_CPU_ISA_AVX512 = 3, /* AVX-512 F, CD, VL, BW, DQ (Skylake-SP and later)       */
  SDROP_CPU_ISA_ALL = 255   /* no cap                                                  */
} sdrop_cpu_isa;

/* Caps the variant. Returns SDROP_ERROR_INVALID_ARGUMENT for a value not in the enum. */
SDROP_API sdrop_status sdrop_set_max_cpu_isa(sdrop_cpu_isa isa);
/* The cap in force (SDROP_CPU_ISA_ALL when none). */
SDROP_API sdrop_cpu_isa sdrop_get_max_cpu_isa(void);
/* The variant CPU calls run now: the best the CPU supports, at most the cap. */
SDROP_API sdrop_cpu_isa sdrop_get_cpu_isa(void);
/* The best variant this CPU supports, ignoring the cap. */
SDROP_API sdrop_cpu_isa sdrop_get_host_cpu_isa(void);
/* "sse41", "avx2", "avx512", "all"; "unknown" for other values. */
SDROP_API const char* sdrop_cpu_isa_name(sdrop_cpu_isa isa);

/* ---- GPU backends ---------------------------------------------------------------------
   A call runs where its tensors live: kDLCPU and kDLCUDAHost on the CPU, kDLCUDA on a CUDA
   GPU, kDLOpenCL on an OpenCL device. Every tensor of a call must be on the same device
   (type and device_id; host memory, kDLCPU of any device_id and kDLCUDAHost, counts as one).
   Results are bit-identical to the CPU's.

   GPU calls are enqueued on the caller's CUDA stream / OpenCL queue and return without
   waiting: the output is ready when that stream / queue reaches the call, like any other
   work on it. The handles below are per thread (like CUDA's current context): set them on
   the thread that makes the calls. sdrop neither retains nor releases them; they must
   outlive the calls that use them. Without a driver, a device or the handles a call needs,
   it fails with SDROP_ERROR_BACKEND_UNAVAILABLE and a message; the library itself loads
   and runs on the CPU on a machine with neither CUDA nor OpenCL (the drivers are opened
   at the first GPU call). */

/* CUDA: DLTensor.data is a device pointer (cudaMalloc, PyTorch, CuPy), plus byte_offset.
   context: a CUcontext on the tensors' device; NULL = the primary context of the tensors'
   device_id (the one the CUDA runtime API, PyTorch and CuPy use).
   stream: a CUstream / cudaStream_t of that context; NULL = its legacy default stream.
   Always returns SDROP_OK. */
SDROP_API sdrop_status sdrop_set_cuda_stream(void* context, void* stream);
SDROP_API void sdrop_get_cuda_stream(void** context, void** stream);

/* OpenCL: DLTensor.data is a cl_mem buffer and byte_offset an offset into it (as PyOpenCL
   arrays have), a multiple of the element size. context: the cl_context of the buffers;
   queue: a cl_command_queue of that context, whose device runs the call. Both or neither
   (NULL, NULL: none, and OpenCL calls fail with SDROP_ERROR_BACKEND_UNAVAILABLE); one
   without the other is SDROP_ERROR_INVALID_ARGUMENT. float64 needs cl_khr_fp64 on the
   device (else SDROP_ERROR_UNSUPPORTED); float16 needs no cl_khr_fp16. Kernels are compiled
   at the first call per context and cached until the process ends. */
SDROP_API sdrop_status sdrop_set_opencl_queue(void* context, void* queue);
SDROP_API void sdrop_get_opencl_queue(void** context, void** queue);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SDROP_SDROP_H_ */
