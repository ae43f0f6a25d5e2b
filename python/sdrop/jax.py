"""sdrop for JAX: the kernels as XLA FFI custom calls, under jit, grad and vmap.

The forward, backward, mask and apply-mask kernels are XLA FFI handlers in C++
(``sdrop._jax_ffi``, built against the FFI headers of the installed jaxlib) that call libsdrop
on XLA's buffers; no Python runs when a compiled step executes. CPU only.

    y = sdrop.jax.spatial_dropout(x, 0.5, seed=1234, offset=step)   # step may be traced
    y = sdrop.jax.spatial_dropout(x, 0.5, key=jax.random.key(0))
    m = sdrop.jax.mask(x, 0.5, seed=1234, offset=step)
    y = sdrop.jax.apply_mask(x, m, 0.5)

- ``seed`` and ``offset`` are operands, not constants: a Python int, an integer scalar (traced
  or not; 32-bit types give values modulo 2**32, 64-bit ones modulo 2**64) or a uint32[2]
  array of (low, high) words, so a jitted step does not recompile when they change. ``p``,
  ``layout``, ``mask_axes`` and the flags are compile-time attributes.
- ``key=``: a ``jax.random`` key instead; ``jax.random.bits(key, (4,), uint32)`` gives the
  words (seed low, seed high, offset low, offset high) (``seed_offset``).
- ``jax.grad``: a ``jax.custom_vjp`` whose backward runs the backward kernel with the saved
  (seed, offset) words: the mask is regenerated, nothing tensor-sized is kept. (apply_mask
  keeps the caller's mask.) Reverse mode of any order; no forward mode (jvp).
- ``jax.vmap``: ``vmap(f)(xs)[i] == f(xs[i])`` bit for bit. With unbatched (seed, offset)
  every element gets the same mask, as with an unbatched ``jax.random`` key; vmap over seeds,
  offsets or keys (``jax.random.split``) for different masks.

Masks are the C library's: bit-identical to ``sdrop.mask`` (NumPy) and ``sdrop.torch.mask``
for the same (seed, offset). See docs/python.md.
"""
from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np

import sdrop as _sd
from ._errors import SdropError, SdropInvalidArgument, SdropUnsupported, Status

__all__ = ["spatial_dropout", "spatial_dropout_backward", "mask", "apply_mask", "seed_offset"]


def _register():
    try:
        from . import _jax_ffi
    except ImportError as e:
        raise ImportError(
            "sdrop was installed without its JAX FFI handlers: jax was not importable in the "
            "environment `pip install` built for. Install jax, then reinstall sdrop "
            "(pip install --force-reinstall --no-deps ./python).") from e
    for name, capsule in _jax_ffi.registrations().items():
        jax.ffi.register_ffi_target(name, capsule, platform="cpu")


_register()

_FLOATS = tuple(np.dtype(d) for d in (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64))
_MASK_DTYPES = (np.dtype(np.uint8), np.dtype(np.bool_))
_STATUS = re.compile(r"\((SDROP_ERROR_[A-Z_]+)\)")


# ---- errors ------------------------------------------------------------------------------------
def _sdrop_error(e: Exception):
    """The sdrop exception a handler's ffi::Error stands for (it ends in "(SDROP_ERROR_...)")."""
    text = str(e)
    m = _STATUS.search(text)
    if not m or m.group(1) not in Status.__members__:
        return None
    status = Status[m.group(1)]
    start = text.find("sdrop: ")
    msg = text[start + len("sdrop: "):m.start()].rstrip() if start >= 0 else text
    for cls in SdropError.__subclasses__():
        if cls.status == status:
            return cls(msg)
    return None


def _call(target, result, *args, **attrs):
    """ffi_call of one handler. Run eagerly, a failure raises sdrop's exception class; under
    jit it is raised by JAX when the computation runs (JaxRuntimeError, same message)."""
    fn = jax.ffi.ffi_call(target, result, vmap_method="expand_dims")
    try:
        return fn(*args, **attrs)
    except jax.errors.JaxRuntimeError as e:
        err = _sdrop_error(e)
        if err is None:
            raise
        raise err from None


# ---- arguments -----------------------------------------------------------------------------------
def _static_p(p) -> float:
    if isinstance(p, jax.core.Tracer):
        raise TypeError("p must be a Python number when tracing (it is a compile-time attribute "
                        "of the kernel), got a traced value")
    p = _sd._p(p)
    if not 0.0 <= p <= 1.0:
        raise SdropInvalidArgument(f"p must be in [0, 1], got {p!r}")
    return p


def _words(v, name):
    """A seed or offset as uint32[2] (low, high): the handlers' operand."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
    if isinstance(v, (int, np.integer)):
        v = _sd._u64(v, name)
        return np.array([v & 0xFFFFFFFF, v >> 32], dtype=np.uint32)
    try:
        a = jnp.asarray(v)
    except TypeError:
        raise TypeError(f"{name} must be an integer or an integer array, got "
                        f"{type(v).__name__}") from None
    if a.shape == (2,) and a.dtype == np.uint32:
        return a
    if a.shape != () or not jnp.issubdtype(a.dtype, jnp.integer):
        raise TypeError(f"{name} must be an integer scalar or uint32[2] (low, high words), "
                        f"got {a.dtype}{list(a.shape)}")
    if a.dtype.itemsize == 8:  # only with jax_enable_x64
        u = a if a.dtype == np.uint64 else jax.lax.bitcast_convert_type(a, jnp.uint64)
        return jnp.stack([(u & 0xFFFFFFFF).astype(jnp.uint32), (u >> 32).astype(jnp.uint32)])
    return jnp.stack([a.astype(jnp.uint32), jnp.zeros((), jnp.uint32)])


def seed_offset(key):
    """(seed, offset) as uint32[2] (low, high) words from a jax.random key: the four words of
    jax.random.bits(key, (4,), uint32) are seed low, seed high, offset low, offset high."""
    bits = jax.random.bits(key, (4,), jnp.uint32)
    return bits[:2], bits[2:]


def _randomness(seed, offset, key):
    if key is not None:
        if seed is not None or offset is not None:
            raise ValueError("pass either seed= (with offset=) or key=, not both")
        return seed_offset(key)
    if seed is None:
        raise TypeError("seed= (with offset=, default 0) or key= is required")
    return _words(seed, "seed"), _words(0 if offset is None else offset, "offset")


def _float_input(x, name):
    x = jnp.asarray(x)
    if x.dtype not in _FLOATS:
        raise SdropUnsupported(f"{name} dtype must be float16, bfloat16, float32 or float64, "
                               f"got {x.dtype}")
    return x


def _attrs(p, axes, flags, ndim):
    return dict(p=np.float64(p), mask_axes=np.uint32(axes), flags=np.uint32(flags),
                ndim=np.int64(ndim))


# ---- differentiable kernels ------------------------------------------------------------------------
def _kernel(target, x, seed, offset, p, axes, flags):
    return _call(target, jax.ShapeDtypeStruct(x.shape, x.dtype), x, seed, offset,
                 **_attrs(p, axes, flags, x.ndim))


# dropout and its backward are each other's vjp (the backward is the same operation on the
# gradient, docs/semantics.md): the residuals are the (seed, offset) words only.
@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _dropout(x, seed, offset, p, axes, flags):
    return _kernel("sdrop_forward", x, seed, offset, p, axes, flags)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _dropout_backward(dy, seed, offset, p, axes, flags):
    return _kernel("sdrop_backward", dy, seed, offset, p, axes, flags)


def _dropout_fwd(x, seed, offset, p, axes, flags):
    return _dropout(x, seed, offset, p, axes, flags), (seed, offset)


def _dropout_bwd(p, axes, flags, res, g):
    return _dropout_backward(g, *res, p, axes, flags), None, None


def _dropout_backward_fwd(dy, seed, offset, p, axes, flags):
    return _dropout_backward(dy, seed, offset, p, axes, flags), (seed, offset)


def _dropout_backward_bwd(p, axes, flags, res, g):
    return _dropout(g, *res, p, axes, flags), None, None


_dropout.defvjp(_dropout_fwd, _dropout_bwd)
_dropout_backward.defvjp(_dropout_backward_fwd, _dropout_backward_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _apply(x, m, p, axes, flags):
    return _call("sdrop_apply_mask", jax.ShapeDtypeStruct(x.shape, x.dtype), x, m,
                 **_attrs(p, axes, flags, x.ndim))


def _apply_fwd(x, m, p, axes, flags):
    return _apply(x, m, p, axes, flags), m  # a caller's mask cannot be regenerated


def _apply_bwd(p, axes, flags, m, g):
    return _apply(g, m, p, axes, flags), None


_apply.defvjp(_apply_fwd, _apply_bwd)


# ---- the API ---------------------------------------------------------------------------------------
def spatial_dropout(x, p, *, seed=None, offset=None, key=None, layout="channels_first",
                    mask_axes=None, nan_propagate=False, scale_in_dtype=False):
    """y = dropout(x), one Bernoulli(1-p) draw per element of the noise shape (always applied).

    seed/offset (offset default 0) or key: see the module's docstring. layout, mask_axes,
    nan_propagate, scale_in_dtype: as sdrop.spatial_dropout. Differentiable (jax.grad)."""
    x = _float_input(x, "x")
    p = _static_p(p)
    axes = _sd.mask_axes_bits(mask_axes, x.ndim, layout)
    s, o = _randomness(seed, offset, key)
    return _dropout(x, s, o, p, axes, _sd.flags(nan_propagate, scale_in_dtype))


def spatial_dropout_backward(dy, p, *, seed=None, offset=None, key=None,
                             layout="channels_first", mask_axes=None, nan_propagate=False,
                             scale_in_dtype=False):
    """dx = dy * mask * s with the mask of the spatial_dropout call that had the same
    parameters (what jax.grad runs)."""
    dy = _float_input(dy, "dy")
    p = _static_p(p)
    axes = _sd.mask_axes_bits(mask_axes, dy.ndim, layout)
    s, o = _randomness(seed, offset, key)
    return _dropout_backward(dy, s, o, p, axes, _sd.flags(nan_propagate, scale_in_dtype))


def mask(shape_or_like, p, *, seed=None, offset=None, key=None, layout="channels_first",
         mask_axes=None, dtype=jnp.uint8):
    """The keep mask (1 = kept) in the noise shape (x's extent on mask axes, 1 elsewhere), as
    a jax array of uint8 or bool."""
    if isinstance(shape_or_like, (tuple, list)):
        shape = tuple(int(s) for s in shape_or_like)
    elif isinstance(shape_or_like, (int, np.integer)):
        shape = (int(shape_or_like),)
    else:
        shape = tuple(int(s) for s in jnp.shape(shape_or_like))
    p = _static_p(p)
    axes = _sd.mask_axes_bits(mask_axes, len(shape), layout)
    noise = shape if axes >> len(shape) else tuple(
        n if axes >> i & 1 else 1 for i, n in enumerate(shape))  # bad axes: the library says
    dt = np.dtype(dtype)
    if dt not in _MASK_DTYPES:
        raise TypeError(f"mask dtype must be uint8 or bool, got {dt}")
    s, o = _randomness(seed, offset, key)
    return _call("sdrop_mask", jax.ShapeDtypeStruct(noise, dt), s, o,
                 p=np.float64(p), mask_axes=np.uint32(axes), ndim=np.int64(len(noise)))


def apply_mask(x, mask, p, *, mask_axes=None, nan_propagate=False, scale_in_dtype=False):
    """y = keep ? x*s : 0 with a caller-given mask (noise shape, uint8/bool, nonzero = keep).
    mask_axes None: inferred from the mask's shape. Differentiable in x (the mask is saved)."""
    x = _float_input(x, "x")
    m = jnp.asarray(mask)
    if m.dtype not in _MASK_DTYPES:
        raise SdropInvalidArgument(f"mask dtype must be uint8 or bool, got {m.dtype}")
    p = _static_p(p)
    if mask_axes is None:
        axes = sum(1 << i for i, n in enumerate(m.shape) if n != 1 and i < 32)
    else:
        axes = _sd.mask_axes_bits(mask_axes, x.ndim)
    return _apply(x, m, p, axes, _sd.flags(nan_propagate, scale_in_dtype))
