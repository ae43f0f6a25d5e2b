"""Shared by the PyTorch tests: bitwise comparison and PyTorch's own masks."""
import torch

_INT = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
        torch.float64: torch.int64}
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def same_bits(a, b):
    """Equal bit for bit (any NaN equal to any NaN: a NaN's payload may differ,
    docs/rng.md#exactness)."""
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    a, b = a.detach().contiguous(), b.detach().contiguous()
    if a.dtype in _INT:
        nan = torch.isnan(a)
        if not torch.equal(nan, torch.isnan(b)):
            return False
        return torch.equal(a[~nan].view(_INT[a.dtype]), b[~nan].view(_INT[b.dtype]))
    return torch.equal(a, b)


def nonzero_input(shape, dtype=torch.float32, seed=0):
    """Values with |x| >= 0.5: a kept element is never zero, so the mask can be read back."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float32)
    return (x + torch.where(x >= 0, 0.5, -0.5)).to(dtype)


def torch_mask(y, batched=True):
    """The (sample, channel) keep mask PyTorch drew, read off its output of nonzero_input."""
    keep = (y != 0).flatten(2 if batched else 1).any(dim=-1).to(torch.uint8)
    return keep.reshape(keep.shape + (1,) * (y.dim() - keep.dim()))
