"""sdrop — spatial (channel-wise) dropout with a counter-based Philox mask (Python binding).

Zero-copy over DLPack: NumPy arrays, PyTorch tensors and any object with ``__dlpack__``
(CPU memory) are passed to libsdrop as DLTensors without copies. The shared library is found
through ``SDROP_LIBRARY``, else a copy next to this package, else the repository build tree
(``build/release/lib``), else the dynamic loader's search path (``ctypes.util.find_library``).

    y = sdrop.spatial_dropout(x, 0.5, seed=1234, offset=step)          # NCHW, NCL, NCDHW ...
    y = sdrop.spatial_dropout(x, 0.5, seed=1234, layout="channels_last")
    m = sdrop.mask(x, 0.5, seed=1234)                                  # keep mask, noise shape
    y = sdrop.apply_mask(x, m, 0.5)                                    # caller-given mask

PyTorch autograd: ``sdrop.torch.SpatialDropout`` (module) / ``sdrop.torch.SpatialDropoutFunction``.
"""
from __future__ import annotations

import ctypes
import operator
import sys

import numpy as np

from . import _lib
from ._lib import (  # noqa: F401  (re-exported)
    SDROP_FLAG_MULTIPLY,
    SdropBackendUnavailable,
    SdropError,
    SdropInternalError,
    SdropInvalidArgument,
    SdropOutOfMemory,
    SdropUnsupported,
    library_path,
)

__all__ = [
    "spatial_dropout", "spatial_dropout_backward", "mask", "apply_mask", "spatial_axes",
    "set_num_threads", "get_num_threads", "version", "last_error", "library_path",
    "cpu_isa", "host_cpu_isa", "set_max_cpu_isa", "get_max_cpu_isa",
    "SdropError", "SdropInvalidArgument", "SdropUnsupported", "SdropBackendUnavailable",
    "SdropOutOfMemory", "SdropInternalError", "SDROP_FLAG_MULTIPLY",
]

_U64 = (1 << 64) - 1
_LAYOUTS = {"channels_first": _lib.SDROP_CHANNELS_FIRST, "channels_last": _lib.SDROP_CHANNELS_LAST}


# ---- small helpers ------------------------------------------------------------------------------
def _torch_mod():
    return sys.modules.get("torch")


def _is_torch(x) -> bool:
    t = _torch_mod()
    return t is not None and isinstance(x, t.Tensor)


def _layout(layout) -> int:
    try:
        return _LAYOUTS[layout]
    except (KeyError, TypeError):
        raise ValueError(f"layout must be 'channels_first' or 'channels_last', got {layout!r}") from None


def _u64(v, name) -> int:
    try:
        v = operator.index(v)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(v).__name__}") from None
    if not 0 <= v <= _U64:
        raise ValueError(f"{name} must be in [0, 2**64), got {v}")
    return v


def spatial_axes(ndim: int, layout: str = "channels_first") -> int:
    """Mask-axes bitmask of spatial dropout for a batched tensor ({0,1} or {0,ndim-1})."""
    return int(_lib.lib.sdrop_spatial_axes(int(ndim), _layout(layout)))


def _mask_axes(mask_axes, ndim, layout) -> int:
    if mask_axes is None:
        return spatial_axes(ndim, layout)
    if isinstance(mask_axes, (int, np.integer)) and not isinstance(mask_axes, bool):
        v = int(mask_axes)
        if not 0 <= v < (1 << 32):
            raise ValueError(f"mask_axes bitmask must be in [0, 2**32), got {v}")
        return v  # range vs ndim is checked (with a message) by the library
    bits = 0
    for a in mask_axes:
        a = operator.index(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"mask axis {a} out of range for ndim {ndim}")
        bits |= 1 << (a % ndim)
    return bits


def _params(p, seed, offset, mask_axes, flags) -> _lib.SdropParams:
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise TypeError(f"p must be a real number, got {type(p).__name__}") from None
    return _lib.SdropParams(p, _u64(seed, "seed"), _u64(offset, "offset"), mask_axes, flags)


_NP_CODES = {"i": 0, "u": 1, "f": 2, "c": 5, "b": 6}


def _numpy_dltensor(a: np.ndarray, keep: list):
    """A DLTensor describing a NumPy array directly (works for read-only and bool arrays, which
    NumPy's own __dlpack__ refuses)."""
    dt = a.dtype
    if dt.kind not in _NP_CODES or not dt.isnative:
        raise SdropUnsupported(f"unsupported NumPy dtype {dt}")
    isz = dt.itemsize
    if any(s % isz for s in a.strides):
        raise SdropInvalidArgument(f"strides {a.strides} are not multiples of the itemsize {isz}")
    nd = a.ndim
    shape = (ctypes.c_int64 * max(nd, 1))(*a.shape)
    strides = (ctypes.c_int64 * max(nd, 1))(*(s // isz for s in a.strides))
    t = _lib.DLTensor()
    t.data = a.__array_interface__["data"][0] or None
    t.device = _lib.DLDevice(1, 0)  # kDLCPU
    t.ndim = nd
    t.dtype = _lib.DLDataType(_NP_CODES[dt.kind], isz * 8, 1)
    t.shape = ctypes.cast(shape, ctypes.POINTER(ctypes.c_int64))
    t.strides = ctypes.cast(strides, ctypes.POINTER(ctypes.c_int64))
    t.byte_offset = 0
    keep.extend((a, shape, strides, t))
    return ctypes.pointer(t)


def _dl(x, keep: list):
    """DLTensor* for x, zero-copy. Everything that must outlive the C call is put in keep."""
    if isinstance(x, np.ndarray):
        return _numpy_dltensor(x, keep)
    if _is_torch(x):
        torch = _torch_mod()
        x = x.detach()  # __dlpack__ refuses tensors that require grad; shares storage
        if x.dtype == torch.bool:
            x = x.view(torch.uint8)
    if not hasattr(x, "__dlpack__"):
        raise TypeError(f"expected a NumPy array or an object with __dlpack__, got {type(x).__name__}")
    stream = _torch_cuda_stream(x)
    # A CUDA tensor is handed over for use on its current stream (where sdrop then enqueues):
    # no synchronisation needed.
    cap = x.__dlpack__() if stream is None else x.__dlpack__(stream=stream)
    ptr = _lib.capsule_tensor(cap)
    keep.extend((x, cap))  # the capsule's destructor frees the DLManagedTensor: keep it alive
    return ctypes.cast(ptr, ctypes.POINTER(_lib.DLTensor))


def _as_array(x):
    if isinstance(x, np.ndarray) or hasattr(x, "__dlpack__"):
        return x
    return np.asarray(x)


def _empty_like(x):
    if isinstance(x, np.ndarray):
        return np.empty_like(x)
    if _is_torch(x):
        return _torch_mod().empty_like(x, requires_grad=False)
    ns = getattr(x, "__array_namespace__", None)
    if ns is not None:
        return ns().empty_like(x)
    raise TypeError(f"cannot allocate an output like {type(x).__name__}; pass out=")


def _ndim(x) -> int:
    return len(x.shape)


def _output(x, inplace, out):
    if inplace:
        if out is not None and out is not x:
            raise ValueError("pass either inplace=True or out=, not both")
        return x
    return _empty_like(x) if out is None else out


def _torch_cuda_stream(x):
    """The current CUDA stream (an int handle) of a PyTorch CUDA tensor, else None."""
    if _is_torch(x) and x.is_cuda:
        return _torch_mod().cuda.current_stream(x.device).cuda_stream
    return None


def _run(fn, params, *tensors):
    keep: list = []
    ptrs = [_dl(t, keep) for t in tensors]
    stream = next((s for s in map(_torch_cuda_stream, tensors) if s is not None), None)
    if stream is not None:
        # PyTorch's current stream, in the device's primary context (where PyTorch allocates):
        # the call is ordered after the work that produced the inputs, like a torch op.
        _lib.check(_lib.lib.sdrop_set_cuda_stream(None, ctypes.c_void_p(stream or None)))
    status = fn(ctypes.byref(params), *ptrs)
    del keep
    _lib.check(status)


# ---- public API ------------------------------------------------------------------------------------
def spatial_dropout(x, p, *, seed, offset=0, layout="channels_first", mask_axes=None,
                    inplace=False, out=None, nan_propagate=False):
    """y = dropout(x) with one Bernoulli(1-p) draw per (sample, channel) (SPEC section 1).

    mask_axes: None = the spatial axes of ``layout`` ({0,1} or {0,ndim-1}); else an int bitmask
    or an iterable of axes (e.g. ``(0,)`` for unbatched input or stochastic depth, all axes for
    ordinary dropout). inplace=True writes into x; out= writes into a given array; otherwise a
    new array like x is returned. nan_propagate=True makes dropped elements x*0 (PyTorch
    semantics, NaN/Inf propagate) instead of exact +0.0.

    A PyTorch tensor that requires grad (with grad mode on) goes through
    sdrop.torch.SpatialDropoutFunction, so the result is differentiable."""
    x = _as_array(x)
    axes = _mask_axes(mask_axes, _ndim(x), layout)
    flags = _lib.SDROP_FLAG_MULTIPLY if nan_propagate else 0
    if _is_torch(x) and x.requires_grad and _torch_mod().is_grad_enabled() and out is None:
        from .torch import SpatialDropoutFunction
        return SpatialDropoutFunction.apply(x, p, seed, offset, axes, flags, inplace)
    params = _params(p, seed, offset, axes, flags)
    y = _output(x, inplace, out)
    _run(_lib.lib.sdrop_forward, params, x, y)
    return y


def spatial_dropout_backward(dy, p, *, seed, offset=0, layout="channels_first", mask_axes=None,
                             inplace=False, out=None, nan_propagate=False):
    """dx = dy * mask * s with the mask of the forward call that had the same parameters."""
    dy = _as_array(dy)
    axes = _mask_axes(mask_axes, _ndim(dy), layout)
    params = _params(p, seed, offset, axes, _lib.SDROP_FLAG_MULTIPLY if nan_propagate else 0)
    dx = _output(dy, inplace, out)
    _run(_lib.lib.sdrop_backward, params, dy, dx)
    return dx


def mask(shape_or_like, p, *, seed, offset=0, layout="channels_first", mask_axes=None,
         dtype=np.uint8):
    """The keep mask (1 = kept) in the noise shape: x's extent on mask axes, 1 elsewhere.

    shape_or_like: a shape tuple, or an array whose shape is used (a PyTorch tensor gives a
    torch.uint8 / torch.bool tensor, anything else a NumPy array). dtype: uint8 or bool."""
    if isinstance(shape_or_like, (tuple, list)):
        shape, like = tuple(int(s) for s in shape_or_like), None
    elif isinstance(shape_or_like, (int, np.integer)):
        shape, like = (int(shape_or_like),), None
    else:
        like = shape_or_like
        shape = tuple(int(s) for s in like.shape)
    axes = _mask_axes(mask_axes, len(shape), layout)
    if axes >> len(shape):
        # let the library produce the error message
        noise = shape
    else:
        noise = tuple(s if axes >> i & 1 else 1 for i, s in enumerate(shape))
    params = _params(p, seed, offset, axes, 0)
    if like is not None and _is_torch(like):
        torch = _torch_mod()
        want_bool = dtype in (bool, np.bool_, torch.bool)
        if not (want_bool or dtype in (np.uint8, torch.uint8)):
            raise TypeError(f"mask dtype must be uint8 or bool, got {dtype}")
        m = torch.empty(noise, dtype=torch.uint8, device=like.device)
        _run(_lib.lib.sdrop_mask, params, m)
        return m.view(torch.bool) if want_bool else m
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.uint8), np.dtype(np.bool_)):
        raise TypeError(f"mask dtype must be uint8 or bool, got {dt}")
    m = np.empty(noise, dtype=dt)
    _run(_lib.lib.sdrop_mask, params, m)
    return m


def apply_mask(x, mask, p, *, mask_axes=None, inplace=False, out=None, nan_propagate=False):
    """y = keep ? x*s : 0 with a caller-given mask (noise shape, uint8/bool, nonzero = keep).

    mask_axes None: inferred from the mask's shape (axis i is a mask axis iff mask.shape[i] != 1).
    With nan_propagate=True and the mask PyTorch drew, the result is bit-for-bit PyTorch's."""
    x = _as_array(x)
    mask = _as_array(mask)
    if mask_axes is None:
        axes = 0
        for i, s in enumerate(mask.shape):
            if s != 1 and i < 32:
                axes |= 1 << i
    else:
        axes = _mask_axes(mask_axes, _ndim(x), "channels_first")
    params = _params(p, 0, 0, axes, _lib.SDROP_FLAG_MULTIPLY if nan_propagate else 0)
    y = _output(x, inplace, out)
    _run(_lib.lib.sdrop_apply_mask, params, x, mask, y)
    return y


def set_num_threads(n: int) -> None:
    """CPU threads per call (0 = all cores, the default)."""
    _lib.lib.sdrop_set_num_threads(int(n))


def get_num_threads() -> int:
    return int(_lib.lib.sdrop_get_num_threads())


def version() -> str:
    return _lib.lib.sdrop_version().decode()


def last_error() -> str:
    return _lib.last_error()


_ISA = {"sse41": 1, "avx2": 2, "avx512": 3, "all": 255}


def _isa_name(v) -> str:
    return _lib.lib.sdrop_cpu_isa_name(int(v)).decode()


def cpu_isa() -> str:
    """The CPU variant calls run now ("sse41", "avx2", "avx512")."""
    return _isa_name(_lib.lib.sdrop_get_cpu_isa())


def host_cpu_isa() -> str:
    return _isa_name(_lib.lib.sdrop_get_host_cpu_isa())


def get_max_cpu_isa() -> str:
    return _isa_name(_lib.lib.sdrop_get_max_cpu_isa())


def set_max_cpu_isa(isa: str) -> None:
    """Caps the CPU variant: "sse41", "avx2", "avx512" or "all"."""
    if isa not in _ISA:
        raise ValueError(f"isa must be one of {sorted(_ISA)}, got {isa!r}")
    _lib.check(_lib.lib.sdrop_set_max_cpu_isa(_ISA[isa]))


def __getattr__(name):  # lazy `sdrop.torch`, so NumPy-only use never imports PyTorch
    if name == "torch":
        import importlib
        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = version()
