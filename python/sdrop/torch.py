"""PyTorch integration: an autograd Function and an nn.Module (imported lazily: `sdrop.torch`)."""
from __future__ import annotations

import torch
from torch import nn

import sdrop as _sd
from . import _lib

__all__ = ["SpatialDropoutFunction", "SpatialDropout", "spatial_dropout"]


class SpatialDropoutFunction(torch.autograd.Function):
    """y = spatial_dropout(x); backward dx = dy * mask * s with the mask regenerated from
    (seed, offset): nothing tensor-sized is saved.

    apply(x, p, seed, offset, mask_axes: int bitmask, flags: int = 0, inplace: bool = False)."""

    @staticmethod
    def forward(ctx, x, p, seed, offset, mask_axes, flags=0, inplace=False):
        ctx.sdrop = (float(p), int(seed), int(offset), int(mask_axes), int(flags))
        y = _sd.spatial_dropout(x.detach(), p, seed=seed, offset=offset, mask_axes=mask_axes,
                                inplace=inplace,
                                nan_propagate=bool(flags & _lib.SDROP_FLAG_MULTIPLY))
        if inplace:
            ctx.mark_dirty(x)
            return x
        return y

    @staticmethod
    def backward(ctx, dy):
        p, seed, offset, axes, flags = ctx.sdrop
        dx = _sd.spatial_dropout_backward(dy.detach(), p, seed=seed, offset=offset,
                                          mask_axes=axes,
                                          nan_propagate=bool(flags & _lib.SDROP_FLAG_MULTIPLY))
        return dx, None, None, None, None, None, None


def spatial_dropout(x, p, *, seed, offset=0, layout="channels_first", mask_axes=None,
                    inplace=False, nan_propagate=False):
    """Differentiable functional form (always goes through SpatialDropoutFunction)."""
    axes = _sd._mask_axes(mask_axes, x.dim(), layout)
    flags = _lib.SDROP_FLAG_MULTIPLY if nan_propagate else 0
    return SpatialDropoutFunction.apply(x, p, seed, offset, axes, flags, inplace)


class SpatialDropout(nn.Module):
    """Drop-in for nn.Dropout1d/2d/3d (channels_first) or Keras SpatialDropout (channels_last).

    Every training-mode forward uses mask (seed, offset) and then bumps offset by one, so
    successive steps draw independent masks and a checkpoint of (seed, offset) reproduces them.
    Identity in eval mode. seed=None draws one from torch's default generator.
    nan_propagate=True (the default) gives PyTorch's x*0 for dropped elements."""

    def __init__(self, p: float = 0.5, layout: str = "channels_first", seed=None, *,
                 mask_axes=None, inplace: bool = False, nan_propagate: bool = True, offset: int = 0):
        super().__init__()
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        _sd._layout(layout)
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.p = float(p)
        self.layout = layout
        self.seed = int(seed)
        self.offset = int(offset)
        self.mask_axes = mask_axes
        self.inplace = inplace
        self.nan_propagate = nan_propagate

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        y = spatial_dropout(x, self.p, seed=self.seed, offset=self.offset, layout=self.layout,
                            mask_axes=self.mask_axes, inplace=self.inplace,
                            nan_propagate=self.nan_propagate)
        self.offset += 1
        return y

    def get_extra_state(self):
        return {"seed": self.seed, "offset": self.offset}

    def set_extra_state(self, state):
        self.seed = int(state["seed"])
        self.offset = int(state["offset"])

    def extra_repr(self) -> str:
        return (f"p={self.p}, layout={self.layout!r}, seed={self.seed}, offset={self.offset}"
                + (", inplace=True" if self.inplace else ""))
