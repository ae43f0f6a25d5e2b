"""sdrop from Python: spatial dropout on NumPy and PyTorch arrays through DLPack, zero-copy.

Run: PYTHONPATH=python SDROP_LIBRARY=build/release/lib/libsdrop.so python3 examples/python/spatial_dropout.py
"""
import numpy as np

import sdrop

x = np.random.default_rng(0).standard_normal((8, 16, 32, 32), dtype=np.float32)
y = sdrop.spatial_dropout(x, 0.25, seed=42, offset=0)  # channels first: (N, C) draws
keep = sdrop.mask(x, 0.25, seed=42, offset=0)          # the noise shape (8, 16, 1, 1)
assert keep.shape == (8, 16, 1, 1)
assert np.array_equal(y, np.where(keep != 0, x * np.float32(1 / 0.75), np.float32(0)))
print(f"numpy: kept {int(keep.sum())} of {keep.size} channels; y matches x * mask / (1 - p)")

try:
    import torch
except ImportError:
    print("torch not installed: skipping the autograd part")
else:
    from sdrop.torch import SpatialDropout

    layer = SpatialDropout(0.25, seed=7)
    t = torch.randn(4, 8, 16, 16, requires_grad=True)
    out = layer(t)
    out.sum().backward()  # backward regenerates the mask from (seed, offset): nothing stored
    same = torch.equal((t.grad != 0), (out != 0))
    print(f"torch: grad is dropped where the output is: {same}; next step uses a new mask")
    assert same
