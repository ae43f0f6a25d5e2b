"""sdrop from Python: NumPy arrays through the C library, PyTorch through its operators.

Run (after `pip install ./python`): python examples/python/spatial_dropout.py
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
    print("torch not installed: skipping the PyTorch part")
else:
    import sdrop.torch as st

    # A drop-in for torch.nn.Dropout2d; seed=None would follow torch.manual_seed instead.
    layer = st.Dropout2d(0.25, seed=7)
    t = torch.randn(4, 8, 16, 16, requires_grad=True)
    out = layer(t)
    out.sum().backward()  # the backward regenerates the mask from (seed, step): nothing stored
    assert torch.equal(t.grad != 0, out != 0)
    compiled = torch.compile(layer, fullgraph=True)
    print(f"torch: step {layer.step}; gradient dropped where the output is; "
          f"compiled output shape {tuple(compiled(t).shape)}")
