"""sdrop — spatial (channel-wise) dropout with a counter-based Philox mask.

The same masks, bit for bit, on every backend, ISA, thread count, layout and dtype, from the
C library libsdrop (shipped inside this package). This module is the array API: NumPy arrays
and anything with DLPack (JAX and CuPy arrays) cross without copies through the native
module ``sdrop._sdrop``. PyTorch tensors go through sdrop's PyTorch operators (autograd,
torch.compile): see ``sdrop.torch``. JAX under jit: ``sdrop.jax``; Keras layers:
``sdrop.keras``.

    y = sdrop.spatial_dropout(x, 0.5, seed=1234, offset=step)          # NCHW, NCL, NCDHW ...
    y = sdrop.spatial_dropout(x, 0.5, seed=1234, layout="channels_last")
    m = sdrop.mask(x, 0.5, seed=1234)                                  # keep mask, noise shape
    y = sdrop.apply_mask(x, m, 0.5)                                    # caller-given mask
    y = sdrop.epilogue(x, 0.1, seed=1234, bias=b, residual=r, post="relu")  # fused epilogue
    dx, db, dr = sdrop.epilogue_backward(x, dy, 0.1, seed=1234, bias=b, residual=r, post="relu")
"""
from __future__ import annotations

import operator
import sys

import numpy as np

from . import _sdrop
from ._errors import (  # noqa: F401  (re-exported)
    SdropBackendUnavailable,
    SdropError,
    SdropInternalError,
    SdropInvalidArgument,
    SdropOutOfMemory,
    SdropUnsupported,
    Status,
)

__all__ = [
    "spatial_dropout", "spatial_dropout_backward", "mask", "apply_mask", "epilogue",
    "epilogue_backward", "spatial_axes",
    "set_num_threads", "get_num_threads", "set_verbose", "get_verbose", "version", "last_error",
    "cpu_isa", "host_cpu_isa", "set_max_cpu_isa", "get_max_cpu_isa", "flags", "Status", "SdropError",
    "SdropInvalidArgument", "SdropUnsupported", "SdropBackendUnavailable", "SdropOutOfMemory",
    "SdropInternalError", "FLAG_MULTIPLY", "FLAG_SCALE_IN_DTYPE",
]

FLAG_MULTIPLY = _sdrop.FLAG_MULTIPLY              # dropped = x * 0 (NaN/Inf propagate, -0.0)
FLAG_SCALE_IN_DTYPE = _sdrop.FLAG_SCALE_IN_DTYPE  # f16/bf16: s rounded to the dtype first
_U64 = (1 << 64) - 1
_LAYOUTS = {"channels_first": _sdrop.CHANNELS_FIRST, "channels_last": _sdrop.CHANNELS_LAST}
_ACTIVATIONS = {"identity": _sdrop.ACTIVATION_IDENTITY, "relu": _sdrop.ACTIVATION_RELU}


# ---- arguments -------------------------------------------------------------------------------
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


def _p(p) -> float:
    try:
        return float(p)
    except (TypeError, ValueError):
        raise TypeError(f"p must be a real number, got {type(p).__name__}") from None


def activation(name) -> int:
    """sdrop_activation of a name: "identity" (or None) -> 0, "relu" -> 1."""
    if name is None:
        name = "identity"
    try:
        return _ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"activation must be 'identity' or 'relu', got {name!r}") from None


def channel_axis_of(channel_axis, ndim: int, layout: str = "channels_first") -> int:
    """The axis a per-channel bias indexes: None -> 1 (channels_first) or ndim-1
    (channels_last); a negative axis counts from the end."""
    if channel_axis is None:
        return 1 if _layout(layout) == _LAYOUTS["channels_first"] else ndim - 1
    a = operator.index(channel_axis)
    return a + ndim if a < 0 else a  # the library checks it against ndim, with a message


def spatial_axes(ndim: int, layout: str = "channels_first") -> int:
    """Mask-axes bit mask of spatial dropout for a batched tensor: {0,1} or {0,ndim-1}
    (sdrop_spatial_axes)."""
    return int(_sdrop.spatial_axes(int(ndim), _layout(layout)))


def _spatial_axes(ndim: int, layout: str) -> int:
    # sdrop_spatial_axes in Python, so that torch.compile traces through it (a test holds
    # the two equal for every rank and layout).
    if _layout(layout) == _LAYOUTS["channels_first"]:
        return 0b11 if 2 <= ndim <= 32 else 0
    return (1 | 1 << (ndim - 1)) if 2 <= ndim <= 32 else 0


def mask_axes_bits(mask_axes, ndim: int, layout: str = "channels_first") -> int:
    """None -> the spatial axes of `layout`; an int -> that bit mask; an iterable -> its axes."""
    if mask_axes is None:
        return _spatial_axes(ndim, layout)
    if isinstance(mask_axes, (int, np.integer)) and not isinstance(mask_axes, bool):
        v = int(mask_axes)
        if not 0 <= v < (1 << 32):
            raise ValueError(f"mask_axes bit mask must be in [0, 2**32), got {v}")
        return v  # the library checks it against ndim, with a message
    bits = 0
    for a in mask_axes:
        a = operator.index(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"mask axis {a} is out of range for a tensor of {ndim} dimensions")
        bits |= 1 << (a % ndim)
    return bits


def flags(nan_propagate: bool = False, scale_in_dtype: bool = False) -> int:
    """The C flags: nan_propagate -> FLAG_MULTIPLY, scale_in_dtype -> FLAG_SCALE_IN_DTYPE."""
    return (FLAG_MULTIPLY if nan_propagate else 0) | (FLAG_SCALE_IN_DTYPE if scale_in_dtype else 0)


def _shard(shard):
    """(origin, logical_shape) or None: see docs/semantics.md#shards."""
    if shard is None:
        return None, None
    origin, logical = shard
    return (None if origin is None else [int(v) for v in origin],
            None if logical is None else [int(v) for v in logical])


# ---- arrays ------------------------------------------------------------------------------------
def _is_torch(x) -> bool:
    t = sys.modules.get("torch")
    return t is not None and isinstance(x, t.Tensor)


def _as_array(x):
    if isinstance(x, np.ndarray) or hasattr(x, "__dlpack__"):
        return x
    return np.asarray(x)


def _empty_like(x):
    if isinstance(x, np.ndarray):
        return np.empty_like(x)
    ns = getattr(x, "__array_namespace__", None)
    if ns is not None:
        return ns().empty_like(x)
    raise TypeError(f"cannot allocate an output like {type(x).__name__}; pass out=")


def _output(x, inplace, out):
    if inplace:
        if out is not None and out is not x:
            raise ValueError("pass either inplace=True or out=, not both")
        out = x
    elif out is None:
        return _empty_like(x)
    if isinstance(out, np.ndarray) and not out.flags.writeable:
        raise SdropInvalidArgument(
            f"the output array is read-only (shape {out.shape}, strides {out.strides}); a "
            "broadcast view's elements also overlap each other")
    return out


# ---- the operations ----------------------------------------------------------------------------
def spatial_dropout(x, p, *, seed, offset=0, layout="channels_first", mask_axes=None,
                    inplace=False, out=None, nan_propagate=False, scale_in_dtype=False,
                    shard=None):
    """y = dropout(x) with one Bernoulli(1-p) draw per element of the noise shape.

    mask_axes: None = the spatial axes of ``layout`` ({0,1} or {0,ndim-1}); else an int bit
    mask or an iterable of axes (``(0,)`` for unbatched input or stochastic depth, all axes for
    ordinary dropout). inplace=True writes into x, out= into a given array; otherwise a new
    array like x is returned. nan_propagate=True: dropped elements are x*0 (PyTorch) instead
    of exact +0.0. scale_in_dtype=True: float16/bfloat16 scale by 1/(1-p) rounded to the
    dtype (PyTorch). shard=(origin, logical_shape): x is that slice of a larger tensor and
    draws its mask (docs/semantics.md#shards).

    A PyTorch tensor goes through sdrop's PyTorch operator (differentiable)."""
    if _is_torch(x):
        from . import torch as st
        return st.spatial_dropout(x, p, seed=seed, offset=offset, layout=layout,
                                  mask_axes=mask_axes, inplace=inplace, out=out,
                                  nan_propagate=nan_propagate, scale_in_dtype=scale_in_dtype,
                                  shard=shard)
    x = _as_array(x)
    axes = mask_axes_bits(mask_axes, len(x.shape), layout)
    y = _output(x, inplace, out)
    origin, logical = _shard(shard)
    _sdrop.forward(x, y, _p(p), _u64(seed, "seed"), _u64(offset, "offset"), axes,
                   flags(nan_propagate, scale_in_dtype), origin, logical)
    return y


def spatial_dropout_backward(dy, p, *, seed, offset=0, layout="channels_first", mask_axes=None,
                             inplace=False, out=None, nan_propagate=False, scale_in_dtype=False,
                             shard=None):
    """dx = dy * mask * s with the mask of the forward call that had the same parameters."""
    dy = _as_array(dy)
    axes = mask_axes_bits(mask_axes, len(dy.shape), layout)
    dx = _output(dy, inplace, out)
    origin, logical = _shard(shard)
    _sdrop.forward(dy, dx, _p(p), _u64(seed, "seed"), _u64(offset, "offset"), axes,
                   flags(nan_propagate, scale_in_dtype), origin, logical, backward=True)
    return dx


def mask(shape_or_like, p, *, seed, offset=0, layout="channels_first", mask_axes=None,
         dtype=np.uint8, shard=None):
    """The keep mask (1 = kept) in the noise shape: x's extent on mask axes, 1 elsewhere.

    shape_or_like: a shape tuple or an array whose shape is used (a PyTorch tensor gives a
    torch tensor on its device). dtype: uint8 or bool."""
    if _is_torch(shape_or_like):
        from . import torch as st
        return st.mask(shape_or_like, p, seed=seed, offset=offset, layout=layout,
                       mask_axes=mask_axes, dtype=dtype, shard=shard)
    if isinstance(shape_or_like, (tuple, list)):
        shape = tuple(int(s) for s in shape_or_like)
    elif isinstance(shape_or_like, (int, np.integer)):
        shape = (int(shape_or_like),)
    else:
        shape = tuple(int(s) for s in shape_or_like.shape)
    axes = mask_axes_bits(mask_axes, len(shape), layout)
    noise = shape if axes >> len(shape) else tuple(s if axes >> i & 1 else 1 for i, s in enumerate(shape))
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.uint8), np.dtype(np.bool_)):
        raise TypeError(f"mask dtype must be uint8 or bool, got {dt}")
    m = np.empty(noise, dtype=dt)
    origin, logical = _shard(shard)
    _sdrop.mask(m, _p(p), _u64(seed, "seed"), _u64(offset, "offset"), axes, origin, logical)
    return m


def apply_mask(x, mask, p, *, mask_axes=None, inplace=False, out=None, nan_propagate=False,
               scale_in_dtype=False):
    """y = keep ? x*s : 0 with a caller-given mask (noise shape, uint8/bool, nonzero = keep).

    mask_axes None: inferred from the mask's shape (axis i is a mask axis iff mask.shape[i] !=
    1). With the mask PyTorch drew, nan_propagate=True and scale_in_dtype=True give PyTorch's
    dropout1d/2d/3d bit for bit."""
    if _is_torch(x):
        from . import torch as st
        return st.apply_mask(x, mask, p, mask_axes=mask_axes, inplace=inplace, out=out,
                             nan_propagate=nan_propagate, scale_in_dtype=scale_in_dtype)
    x, mask = _as_array(x), _as_array(mask)
    if mask_axes is None:
        axes = sum(1 << i for i, s in enumerate(mask.shape) if s != 1 and i < 32)
    else:
        axes = mask_axes_bits(mask_axes, len(x.shape))
    y = _output(x, inplace, out)
    _sdrop.apply_mask(x, mask, y, _p(p), axes, flags(nan_propagate, scale_in_dtype))
    return y


def _operand(a):
    return None if a is None else _as_array(a)


def epilogue(x, p, *, seed, offset=0, bias=None, residual=None, act="relu", post="identity",
             layout="channels_first", mask_axes=None, channel_axis=None, inplace=False, out=None,
             nan_propagate=False, scale_in_dtype=False, shard=None):
    """The fused channel epilogue y = post(residual + dropout(act(x + bias))), bit for bit the
    unfused sequence (docs/epilogue.md): the bias of a convolution, its activation, spatial
    dropout, a residual add and the activation after it, in one pass.

    bias: None or 1-D, one value per channel (x.shape[channel_axis]; channel_axis None is 1 for
    channels_first, ndim-1 for channels_last). residual: None or x's shape and dtype (it may be
    out itself). act, post: "identity" or "relu". The dropout is spatial_dropout's with the same
    seed, offset, layout/mask_axes, nan_propagate, scale_in_dtype and shard. CPU arrays only.

    A PyTorch tensor goes through sdrop's PyTorch operator (differentiable)."""
    if _is_torch(x):
        if inplace or out is not None:
            raise TypeError("inplace= and out= are for NumPy arrays; a torch tensor gets a new tensor")
        from . import torch as st
        return st.epilogue(x, p, seed=seed, offset=offset, bias=bias, residual=residual, act=act,
                           post=post, layout=layout, mask_axes=mask_axes,
                           channel_axis=channel_axis, nan_propagate=nan_propagate,
                           scale_in_dtype=scale_in_dtype, shard=shard)
    x = _as_array(x)
    ndim = len(x.shape)
    axes = mask_axes_bits(mask_axes, ndim, layout)
    ch = channel_axis_of(channel_axis, ndim, layout)
    a, b = activation(act), activation(post)
    y = _output(x, inplace, out)
    origin, logical = _shard(shard)
    _sdrop.epilogue(x, y, _operand(bias), _operand(residual), _p(p), _u64(seed, "seed"),
                    _u64(offset, "offset"), axes, flags(nan_propagate, scale_in_dtype), ch, a, b,
                    origin, logical)
    return y


def epilogue_backward(x, dy, p, *, seed, offset=0, bias=None, residual=None, act="relu",
                      post="identity", layout="channels_first", mask_axes=None,
                      channel_axis=None, nan_propagate=False, scale_in_dtype=False, shard=None,
                      want_dbias=True, want_dresidual=True):
    """(dx, dbias, dresidual): the gradients of epilogue() with the same arguments, from its
    input x and the gradient dy of its output, as autograd of the unfused sequence computes
    them; the mask is regenerated and the forward recomputed (docs/epilogue.md#backward).
    dbias (summed in float, float64 for float64, rounded once) is None without a bias or with
    want_dbias=False; dresidual likewise."""
    x, dy = _as_array(x), _as_array(dy)
    ndim = len(x.shape)
    axes = mask_axes_bits(mask_axes, ndim, layout)
    ch = channel_axis_of(channel_axis, ndim, layout)
    a, b = activation(act), activation(post)
    bias, residual = _operand(bias), _operand(residual)
    dx = _empty_like(x)
    dbias = _empty_like(bias) if want_dbias and bias is not None else None
    dresidual = _empty_like(dy) if want_dresidual and residual is not None else None
    origin, logical = _shard(shard)
    _sdrop.epilogue_backward(x, dy, dx, dbias, dresidual, bias, residual, _p(p),
                             _u64(seed, "seed"), _u64(offset, "offset"), axes,
                             flags(nan_propagate, scale_in_dtype), ch, a, b, origin, logical)
    return dx, dbias, dresidual


# ---- library state -------------------------------------------------------------------------------
def set_num_threads(n: int) -> None:
    """CPU threads per call (0 = all cores, the default)."""
    _sdrop.set_num_threads(int(n))


def get_num_threads() -> int:
    return int(_sdrop.get_num_threads())


def set_verbose(level: int) -> None:
    """One line per call on stderr (1), plus the plan (2), or none (0): docs/c-api.md#verbose-mode.
    Starts from the environment variable SDROP_VERBOSE."""
    _sdrop.set_verbose(int(level))


def get_verbose() -> int:
    return int(_sdrop.get_verbose())


def version() -> str:
    return _sdrop.version()


def last_error() -> str:
    return _sdrop.last_error()


_ISA = {"sse41": 1, "avx2": 2, "avx512": 3, "all": 255}


def cpu_isa() -> str:
    """The CPU variant calls run now ("sse41", "avx2", "avx512")."""
    return _sdrop.cpu_isa_name(_sdrop.get_cpu_isa())


def host_cpu_isa() -> str:
    return _sdrop.cpu_isa_name(_sdrop.get_host_cpu_isa())


def get_max_cpu_isa() -> str:
    return _sdrop.cpu_isa_name(_sdrop.get_max_cpu_isa())


def set_max_cpu_isa(isa: str) -> None:
    """Caps the CPU variant: "sse41", "avx2", "avx512" or "all"."""
    if isa not in _ISA:
        raise ValueError(f"isa must be one of {sorted(_ISA)}, got {isa!r}")
    _sdrop.set_max_cpu_isa(_ISA[isa])


def __getattr__(name):  # lazy submodules: NumPy-only use never imports PyTorch, JAX or Keras
    if name in ("torch", "jax", "keras"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = version()
