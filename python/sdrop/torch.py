"""sdrop for PyTorch: native operators, drop-in modules and functions.

The operators (``torch.ops.sdrop.*``) are a C++ library registered with TORCH_LIBRARY and
built against the torch this package was installed with: CPU and (in a CUDA build) CUDA
kernels calling libsdrop directly, autograd in C++ (the backward regenerates the mask from
(seed, offset): nothing tensor-sized is saved), and Meta kernels, so ``torch.compile``
(fullgraph) and ``torch.export`` trace through them.

Drop-ins for ``torch.nn``: ``Dropout1d``, ``Dropout2d``, ``Dropout3d`` (the same constructor
and call, plus ``seed=``) and ``dropout1d/2d/3d`` functions; ``SpatialDropout`` (any layout,
any mask axes). They compute what PyTorch computes (dropped = x * 0, float16/bfloat16
scaled in their dtype), bit for bit given the mask, and draw their masks from Philox:

- ``seed=None``: each call takes (seed, offset) from torch's default generator of the
  input's device, as torch's own dropout consumes it: ``torch.manual_seed`` reproduces a
  run, ``torch.random.fork_rng`` isolates it, and activation checkpointing's
  ``preserve_rng_state`` makes a recomputed forward draw the same mask.
- ``seed=int`` (modules): masks are (seed, step) with step advancing once per training
  forward; (seed, step) is in the module's state_dict, so a resumed run continues the same
  sequence, and checkpointing (reentrant or not) neither changes a mask nor advances the
  step twice.

The fused channel epilogue ``post(residual + dropout2d(act(x + bias)))``: ``dropout_epilogue``
and ``DropoutEpilogue`` (one pass forward, one backward, gradients to x, bias and residual;
CPU and CUDA), ``epilogue`` for any layout and mask axes.

See docs/python.md.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

import sdrop as _sd

__all__ = [
    "Dropout1d", "Dropout2d", "Dropout3d", "SpatialDropout", "dropout1d", "dropout2d",
    "dropout3d", "spatial_dropout", "mask", "apply_mask", "draw_seed", "DropoutEpilogue",
    "dropout_epilogue", "epilogue",
]


# ---- the operator library ------------------------------------------------------------------------
def _load_ops():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "_torch_ops.so")
    if not os.path.exists(path):
        raise ImportError(
            "sdrop was installed without its PyTorch operators: torch was not importable in "
            "the environment `pip install` built for. Install torch, then reinstall sdrop "
            "(pip install --force-reinstall --no-deps ./python).")
    from . import _torch_build
    if _torch_build.TORCH_VERSION != torch.__version__:
        raise ImportError(
            f"sdrop's PyTorch operators were built for torch {_torch_build.TORCH_VERSION}, "
            f"but torch {torch.__version__} is installed: reinstall sdrop "
            "(pip install --force-reinstall --no-deps ./python) to rebuild them.")
    torch.ops.load_library(path)


_load_ops()
_ops = torch.ops.sdrop
# The overloads themselves: calling them skips the packet's overload resolution per call.
_dropout = _ops.dropout.default
_dropout_ = _ops.dropout_.default
_draw_seed = _ops.draw_seed.default
_seeded_step = _ops.seeded_step.default
_epilogue = _ops.epilogue.default

# Eager calls go through _torch_eager (python/src/torch_eager.cpp): the same operators through
# the same dispatcher, in one crossing from Python instead of two boxed op calls and the
# seed tensors' construction. Not while torch.compile or torch.export traces (they see the
# operators as written below), nor for an input whose __torch_function__ (a subclass, a
# TorchFunctionMode) must see the ops called from Python.
from . import _torch_eager as _eager  # noqa: E402  (needs the operators loaded)

_compiling = torch.compiler.is_compiling
_has_torch_function = torch.overrides.has_torch_function_unary


def _eager_ok(x) -> bool:
    return not _compiling() and not _has_torch_function(x)


# The random ops' fakes: int64 scalars on the CPU, whatever the device of `like`.
@torch.library.register_fake("sdrop::draw_seed")
def _draw_seed_fake(like):
    return (torch.empty((), dtype=torch.int64, device="cpu"),
            torch.empty((), dtype=torch.int64, device="cpu"))


@torch.library.register_fake("sdrop::seeded_step")
def _seeded_step_fake(like, state):
    return torch.empty((), dtype=torch.int64, device="cpu")


_RECENT = 64  # calls a module remembers for checkpointing (torch_ops.cpp, seeded_step)


_TORCH_FLAGS = _sd.FLAG_MULTIPLY | _sd.FLAG_SCALE_IN_DTYPE  # PyTorch's own arithmetic


def draw_seed(like: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(seed, offset) for one call, from torch's default generator of like's device."""
    return _ops.draw_seed(like)


def _i64(v: int, name: str) -> int:
    v = int(v)
    if not 0 <= v < 1 << 64:
        raise ValueError(f"{name} must be in [0, 2**64), got {v}")
    return v - (1 << 64) if v >= 1 << 63 else v  # the same 64 bits, as torch's int64


def _seed_tensors(x, seed, offset):
    if seed is None:
        if offset is not None:
            raise ValueError("offset= needs seed=: with seed=None both come from torch's generator")
        return _draw_seed(x)
    return (torch.tensor(_i64(seed, "seed"), dtype=torch.int64),
            torch.tensor(_i64(0 if offset is None else offset, "offset"), dtype=torch.int64))


def _shard_args(shard, x):
    """(origin, logical_shape) lists for the ops, or (None, None)."""
    if shard is None:
        return None, None
    origin, logical = shard
    return (None if origin is None else [int(v) for v in origin],
            None if logical is None else [int(v) for v in logical])


def _check_p(p):
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return p


def _run(x, p, seed_t, offset_t, axes, flags, inplace, origin, logical):
    return (_dropout_ if inplace else _dropout)(x, seed_t, offset_t, p, axes, flags, origin, logical)


def _call(x, p, seed, offset, axes, flags, inplace, shard):
    """One call of the functions: (seed, offset) given, or drawn from torch's generator."""
    origin, logical = _shard_args(shard, x)
    if _eager_ok(x):
        if seed is None:
            if offset is not None:
                _seed_tensors(x, seed, offset)  # raises what it raises on every path
            return _eager.drawn(x, p, axes, flags, inplace, origin, logical)
        return _eager.seeded(x, _i64(seed, "seed"), _i64(0 if offset is None else offset, "offset"),
                             p, axes, flags, inplace, origin, logical)
    seed_t, offset_t = _seed_tensors(x, seed, offset)
    return _run(x, p, seed_t, offset_t, axes, flags, inplace, origin, logical)


# ---- functions -------------------------------------------------------------------------------------
def spatial_dropout(x: torch.Tensor, p: float, *, seed: Optional[int] = None,
                    offset: Optional[int] = None, layout: str = "channels_first",
                    mask_axes=None, inplace: bool = False, out=None,
                    nan_propagate: bool = True, scale_in_dtype: bool = True, shard=None):
    """Spatial dropout of any layout and mask axes (always applied: no `training` switch).

    seed=None draws (seed, offset) from torch's default generator of x's device.
    nan_propagate/scale_in_dtype default to PyTorch's arithmetic; both False is Keras/TF's
    (dropped elements exactly +0.0). shard=(origin, logical_shape): x is that slice of a
    larger logical tensor (docs/semantics.md#shards). Differentiable."""
    if out is not None:
        raise TypeError("out= is for NumPy arrays; a torch tensor gets a new tensor (or inplace=True)")
    p = _check_p(p)
    axes = _sd.mask_axes_bits(mask_axes, x.dim(), layout)
    return _call(x, p, seed, offset, axes, _sd.flags(nan_propagate, scale_in_dtype), inplace, shard)


def mask(x: torch.Tensor, p: float, *, seed: Optional[int] = None, offset: Optional[int] = None,
         layout: str = "channels_first", mask_axes=None, dtype=torch.uint8, shard=None):
    """The keep mask (1 = kept) of x's noise shape, on x's device, uint8 or bool."""
    as_bool = dtype in (torch.bool, bool)
    if not as_bool and dtype not in (torch.uint8,) and str(dtype) != "uint8":
        raise TypeError(f"mask dtype must be uint8 or bool, got {dtype}")
    axes = _sd.mask_axes_bits(mask_axes, x.dim(), layout)
    seed_t, offset_t = _seed_tensors(x, seed, offset)
    origin, logical = _shard_args(shard, x)
    return _ops.mask(x, seed_t, offset_t, float(p), axes, as_bool, origin, logical)


def apply_mask(x: torch.Tensor, mask: torch.Tensor, p: float, *, mask_axes=None,
               inplace: bool = False, out=None, nan_propagate: bool = True,
               scale_in_dtype: bool = True):
    """y = keep ? x*s : 0 with a caller-given mask; with PyTorch's mask and the default flags,
    bit for bit what F.dropout1d/2d/3d computed. Differentiable in x."""
    if out is not None or inplace:
        raise TypeError("apply_mask on torch tensors returns a new tensor (no out=, no inplace)")
    if mask_axes is None:
        axes = sum(1 << i for i, s in enumerate(mask.shape) if s != 1 and i < 32)
    else:
        axes = _sd.mask_axes_bits(mask_axes, x.dim())
    return _ops.apply_mask(x, mask, float(p), axes, _sd.flags(nan_propagate, scale_in_dtype))


# ---- the fused channel epilogue --------------------------------------------------------------------
# (seed, offset) of a call without dropout (eval mode, p = 0, an empty input): at p = 0 every
# element is kept whatever the mask, and no draw is taken from torch's generator, as the
# unfused sequence's dropout takes none.
_NO_SEED = torch.zeros((), dtype=torch.int64)


def epilogue(x: torch.Tensor, p: float, *, bias: Optional[torch.Tensor] = None,
             residual: Optional[torch.Tensor] = None, act: str = "relu", post: str = "identity",
             seed: Optional[int] = None, offset: Optional[int] = None,
             layout: str = "channels_first", mask_axes=None, channel_axis=None,
             nan_propagate: bool = True, scale_in_dtype: bool = True, shard=None):
    """The fused channel epilogue y = post(residual + spatial_dropout(act(x + bias))) of any
    layout and mask axes, always applied (no `training` switch), bit for bit the unfused
    sequence (docs/epilogue.md). bias: None or 1-D of x.shape[channel_axis] (channel_axis None:
    1 for channels_first, ndim-1 for channels_last); residual: None or x's shape; both x's
    dtype. act, post: "identity" or "relu". Differentiable in x, bias and residual (the
    backward regenerates the mask). CPU tensors only."""
    p = _check_p(p)
    axes = _sd.mask_axes_bits(mask_axes, x.dim(), layout)
    ch = _sd.channel_axis_of(channel_axis, x.dim(), layout)
    seed_t, offset_t = _seed_tensors(x, seed, offset)  # drawn at p = 0 too, as spatial_dropout
    origin, logical = _shard_args(shard, x)
    return _epilogue(x, bias, residual, seed_t, offset_t, p, axes,
                     _sd.flags(nan_propagate, scale_in_dtype), ch, _sd.activation(act),
                     _sd.activation(post), origin, logical)


def _epilogue_axes(input, channels_last):
    """(mask_axes, channel_axis) of a batched (N, C, ...) or, channels_last, (N, ..., C) input."""
    if input.dim() < 2:
        raise _rank_error("dropout_epilogue", input.dim(),
                          "batched (N, ..., C)" if channels_last else "batched (N, C, ...)")
    if channels_last:
        return 1 | 1 << (input.dim() - 1), input.dim() - 1
    return 0b11, 1


def dropout_epilogue(input: torch.Tensor, p: float = 0.5, training: bool = True, *,
                     bias: Optional[torch.Tensor] = None, residual: Optional[torch.Tensor] = None,
                     act: str = "relu", post: str = "identity", seed: Optional[int] = None,
                     offset: Optional[int] = None, channels_last: bool = False):
    """post(residual + dropout2d(act(input + bias))) in one pass, bit for bit the unfused
    sequence with sdrop.torch.dropout2d (same seed and offset: the same mask, PyTorch's
    arithmetic), and its gradients to input, bias and residual in one more.

    input: (N, C, ...) (any memory format, channels_last included), or with channels_last=True
    a logical (N, ..., C) tensor (Keras' layout: one draw per sample and last-axis channel).
    bias: None or (C,); residual: None or input's shape; both input's dtype. act, post:
    "identity" or "relu". training=False (or p = 0): the same fused math without dropout
    (bias, act, residual and post still applied), and no draw from torch's generator.
    seed=None draws (seed, offset) from torch's default generator, as dropout2d does. CPU
    tensors only (CUDA tensors raise NotImplementedError)."""
    p = _check_p(p)
    axes, ch = _epilogue_axes(input, channels_last)
    if not training or p == 0.0 or input.numel() == 0:  # where dropout2d returns its input
        p, seed_t, offset_t = 0.0, _NO_SEED, _NO_SEED
    else:
        seed_t, offset_t = _seed_tensors(input, seed, offset)
    return _epilogue(input, bias, residual, seed_t, offset_t, p, axes, _TORCH_FLAGS, ch,
                     _sd.activation(act), _sd.activation(post))


def _feature(input, p, training, inplace, seed, offset, axes, shard):
    p = _check_p(p)
    if not training or p == 0.0 or input.numel() == 0:
        return input  # as torch: the input itself
    if (seed is None and offset is None and shard is None and not _compiling()
            and not _has_torch_function(input)):  # _eager_ok, inline
        # The common call, without _call's frames (at 1×16×8×8 each one is a few % of it).
        return _eager.drawn(input, p, axes, _TORCH_FLAGS, inplace)
    return _call(input, p, seed, offset, axes, _TORCH_FLAGS, inplace, shard)


def _rank_error(name, got, want):
    return ValueError(f"{name}: expected a {want} input, got {got}-D")


def _axes_1d(input):
    if input.dim() == 3:
        return 0b11          # (N, C, L)
    if input.dim() == 2:
        return 0b1           # unbatched (C, L)
    raise _rank_error("dropout1d", input.dim(), "2-D (C, L) or 3-D (N, C, L)")


def _axes_2d(input, batched):
    if input.dim() == 4:
        return 0b11          # (N, C, H, W)
    if input.dim() == 3:
        if batched is None:
            raise ValueError(
                "dropout2d got a 3-D input, which has two readings: an unbatched image (C, H, W) "
                "(one draw per channel), or a batch of sequences (N, C, L) (one draw per sample "
                "and channel, what torch.nn.functional.dropout2d does with a warning). Choose "
                "with batched=False for (C, H, W) or batched=True for (N, C, L) (or use "
                "dropout1d).")
        return 0b11 if batched else 0b1
    raise _rank_error("dropout2d", input.dim(), "3-D (C, H, W) or 4-D (N, C, H, W)")


def _axes_3d(input, batched):
    if input.dim() == 5:
        return 0b11          # (N, C, D, H, W)
    if input.dim() == 4:
        return 0b11 if batched else 0b1  # unbatched (C, D, H, W), as torch reads it
    raise _rank_error("dropout3d", input.dim(), "4-D (C, D, H, W) or 5-D (N, C, D, H, W)")


def dropout1d(input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
              *, seed: Optional[int] = None, offset: Optional[int] = None, shard=None):
    """torch.nn.functional.dropout1d with sdrop's Philox mask: (N, C, L) or unbatched (C, L)."""
    return _feature(input, p, training, inplace, seed, offset, _axes_1d(input), shard)


def dropout2d(input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
              *, seed: Optional[int] = None, offset: Optional[int] = None,
              batched: Optional[bool] = None, shard=None):
    """torch.nn.functional.dropout2d with sdrop's Philox mask: (N, C, H, W); a 3-D input
    needs batched= (see the error it raises otherwise)."""
    return _feature(input, p, training, inplace, seed, offset, _axes_2d(input, batched), shard)


def dropout3d(input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
              *, seed: Optional[int] = None, offset: Optional[int] = None,
              batched: Optional[bool] = None, shard=None):
    """torch.nn.functional.dropout3d with sdrop's Philox mask: (N, C, D, H, W) or unbatched
    (C, D, H, W)."""
    return _feature(input, p, training, inplace, seed, offset, _axes_3d(input, batched), shard)


# ---- modules ---------------------------------------------------------------------------------------
class _Philox(nn.Module):
    """What the modules share: p, inplace, and where each call's (seed, offset) comes from.

    With an explicit seed the module holds two int64 CPU tensors: the seed, and the state of
    ``torch.ops.sdrop.seeded_step`` (the next step and the steps of recent calls, so that a
    checkpointed region's recomputation gets its call's step again). They stay on the CPU
    whatever the module's device (they are read on the host) and are not buffers (neither
    .to() nor DDP's buffer broadcast touches them); state_dict saves (seed, step) as the
    module's extra state."""

    def __init__(self, p: float = 0.5, inplace: bool = False, *, seed: Optional[int] = None,
                 shard=None, data_parallel: Optional[Tuple[int, int]] = None):
        super().__init__()
        self.p = _check_p(p)
        self.inplace = inplace
        self.shard = shard
        self.data_parallel = data_parallel
        self._seed = self._state = None
        if seed is not None:
            self._set_seed(seed, 0)

    def _set_seed(self, seed, step):
        self._seed = torch.tensor(_i64(seed, "seed"), dtype=torch.int64)
        self._state = torch.full((2 + 3 * _RECENT,), -1, dtype=torch.int64)
        self._state[0] = int(step)
        self._state[1] = 0

    @property
    def seed(self) -> Optional[int]:
        return None if self._seed is None else int(self._seed) & ((1 << 64) - 1)

    @property
    def step(self) -> Optional[int]:
        """The step the next training forward uses (explicit seed only)."""
        return None if self._state is None else int(self._state[0])

    def _seed_offset(self, x):
        if self._seed is None:
            return _draw_seed(x)
        return self._seed, _seeded_step(x, self._state)

    def _shard_for(self, x):
        if self.data_parallel is not None:
            rank, world = self.data_parallel
            n = x.shape[0]
            return ([rank * n] + [0] * (x.dim() - 1), [world * n] + list(x.shape[1:]))
        return _shard_args(self.shard, x)

    def _dropout(self, x, axes, flags):
        if not self.training or self.p == 0.0 or x.numel() == 0:
            return x
        origin, logical = self._shard_for(x)
        if _eager_ok(x):
            if self._seed is None:
                return _eager.drawn(x, self.p, axes, flags, self.inplace, origin, logical)
            return _eager.stepped(x, self._seed, self._state, self.p, axes, flags, self.inplace,
                                  origin, logical)
        seed_t, offset_t = self._seed_offset(x)
        return _run(x, self.p, seed_t, offset_t, axes, flags, self.inplace, origin, logical)

    def get_extra_state(self):
        return {} if self._seed is None else {"seed": self.seed, "step": self.step}

    def set_extra_state(self, state):
        if state:
            self._set_seed(state["seed"], state["step"])

    def extra_repr(self) -> str:
        s = f"p={self.p}, inplace={self.inplace}"
        if self._seed is not None:
            s += f", seed={self.seed}, step={self.step}"
        if self.data_parallel is not None:
            s += f", data_parallel={self.data_parallel}"
        return s


class Dropout1d(_Philox):
    """torch.nn.Dropout1d with sdrop's mask: (N, C, L) or unbatched (C, L); plus seed=."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self._dropout(input, _axes_1d(input), _TORCH_FLAGS)


class Dropout2d(_Philox):
    """torch.nn.Dropout2d with sdrop's mask: (N, C, H, W); a 3-D input needs batched=."""

    def __init__(self, p: float = 0.5, inplace: bool = False, *, seed: Optional[int] = None,
                 batched: Optional[bool] = None, shard=None, data_parallel=None):
        super().__init__(p, inplace, seed=seed, shard=shard, data_parallel=data_parallel)
        self.batched = batched

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self._dropout(input, _axes_2d(input, self.batched), _TORCH_FLAGS)


class Dropout3d(_Philox):
    """torch.nn.Dropout3d with sdrop's mask: (N, C, D, H, W) or unbatched (C, D, H, W)."""

    def __init__(self, p: float = 0.5, inplace: bool = False, *, seed: Optional[int] = None,
                 batched: Optional[bool] = None, shard=None, data_parallel=None):
        super().__init__(p, inplace, seed=seed, shard=shard, data_parallel=data_parallel)
        self.batched = batched

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self._dropout(input, _axes_3d(input, self.batched), _TORCH_FLAGS)


class SpatialDropout(_Philox):
    """Spatial dropout of either layout (Keras' SpatialDropout1D/2D/3D for channels_last),
    or of any mask axes. Identity in eval mode.

    nan_propagate/scale_in_dtype: PyTorch's arithmetic by default; both False gives dropped
    elements exactly +0.0 and s in float32 (Keras/TensorFlow)."""

    def __init__(self, p: float = 0.5, layout: str = "channels_first", *, mask_axes=None,
                 inplace: bool = False, seed: Optional[int] = None, nan_propagate: bool = True,
                 scale_in_dtype: bool = True, shard=None, data_parallel=None):
        super().__init__(p, inplace, seed=seed, shard=shard, data_parallel=data_parallel)
        _sd._layout(layout)
        self.layout = layout
        self.mask_axes = mask_axes
        self.flags = _sd.flags(nan_propagate, scale_in_dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        axes = _sd.mask_axes_bits(self.mask_axes, input.dim(), self.layout)
        return self._dropout(input, axes, self.flags)

    def extra_repr(self) -> str:
        return f"layout={self.layout!r}, " + super().extra_repr()


class DropoutEpilogue(_Philox):
    """The fused channel epilogue as a module: forward(input, bias=None, residual=None) is
    dropout_epilogue(input, p, self.training, bias=bias, residual=residual, act=act, post=post)
    with the mask drawn exactly as Dropout2d draws it (seed=None: torch's default generator;
    seed=int: (seed, step), the step advancing once per training forward and saved in
    state_dict). Eval mode: the same fused math without dropout."""

    def __init__(self, p: float = 0.5, act: str = "relu", post: str = "identity", *,
                 seed: Optional[int] = None, channels_last: bool = False, shard=None,
                 data_parallel=None):
        super().__init__(p, False, seed=seed, shard=shard, data_parallel=data_parallel)
        self._act, self._post = _sd.activation(act), _sd.activation(post)
        self.act, self.post = act, post
        self.channels_last = channels_last

    def forward(self, input: torch.Tensor, bias: Optional[torch.Tensor] = None,
                residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        axes, ch = _epilogue_axes(input, self.channels_last)
        if self.training and self.p != 0.0 and input.numel() != 0:
            p = self.p
            seed_t, offset_t = self._seed_offset(input)
        else:
            p, seed_t, offset_t = 0.0, _NO_SEED, _NO_SEED
        origin, logical = self._shard_for(input)
        return _epilogue(input, bias, residual, seed_t, offset_t, p, axes, _TORCH_FLAGS, ch,
                         self._act, self._post, origin, logical)

    def extra_repr(self) -> str:
        s = f"p={self.p}, act={self.act!r}, post={self.post!r}"
        if self.channels_last:
            s += ", channels_last=True"
        if self._seed is not None:
            s += f", seed={self.seed}, step={self.step}"
        if self.data_parallel is not None:
            s += f", data_parallel={self.data_parallel}"
        return s
