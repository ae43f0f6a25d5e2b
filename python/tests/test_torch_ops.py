"""The PyTorch operators (torch.ops.sdrop.*): bit-for-bit PyTorch arithmetic, sdrop's masks,
C++ autograd that saves nothing tensor-sized, in-place semantics, Meta kernels, refusals."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import ref  # noqa: E402
import vm  # noqa: E402
import sdrop  # noqa: E402
import sdrop.torch as st  # noqa: E402
from helpers import DTYPES, nonzero_input, same_bits, torch_mask  # noqa: E402

ops = torch.ops.sdrop


def scalars(seed, offset):
    def i64(v):
        return v - (1 << 64) if v >= 1 << 63 else v
    return torch.tensor(i64(seed)), torch.tensor(i64(offset))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("kind", ["1d", "2d", "3d"])
def test_bit_parity_with_torch_through_apply_mask(dtype, p, kind):
    shape = {"1d": (4, 16, 9), "2d": (4, 16, 5, 7), "3d": (2, 8, 3, 4, 5)}[kind]
    fn = {"1d": F.dropout1d, "2d": F.dropout2d, "3d": F.dropout3d}[kind]
    x = nonzero_input(shape, dtype)
    torch.manual_seed(1234)
    y_t = fn(x, p, training=True)
    m = torch_mask(y_t)
    y = st.apply_mask(x, m, p)  # defaults: PyTorch's arithmetic (x * 0, s in the dtype)
    assert same_bits(y, y_t)
    assert same_bits(st.apply_mask(x, m.bool(), p), y_t)
    if kind == "2d":
        xc = x.contiguous(memory_format=torch.channels_last)
        yc = st.apply_mask(xc, m, p)
        assert yc.is_contiguous(memory_format=torch.channels_last)  # layout kept
        assert same_bits(yc, y_t)


def test_scale_in_dtype_is_what_makes_bfloat16_match():
    # bfloat16, p = 0.1: PyTorch scales by 1/(1-p) rounded to bfloat16 (1.109375).
    x = nonzero_input((8, 64, 4, 4), torch.bfloat16)
    torch.manual_seed(5)
    y_t = F.dropout2d(x, 0.1, training=True)
    m = torch_mask(y_t)
    assert same_bits(st.apply_mask(x, m, 0.1), y_t)
    assert not same_bits(st.apply_mask(x, m, 0.1, scale_in_dtype=False), y_t)


def test_nan_and_negative_zero_as_torch():
    x = nonzero_input((3, 8, 4, 4))
    x[:, :, 0, 0] = float("nan")
    x[:, :, 0, 1] = -1.0
    torch.manual_seed(7)
    y_t = F.dropout2d(x, 0.5, training=True)
    m = (y_t[:, :, 1:, 1:] != 0).flatten(2).any(dim=2).to(torch.uint8)[:, :, None, None]
    assert same_bits(st.apply_mask(x, m, 0.5), y_t)  # -0.0 and NaN where torch has them
    exact = st.apply_mask(x, m, 0.5, nan_propagate=False)  # Keras: dropped is exactly +0.0
    dropped = (m == 0).expand_as(x)
    assert torch.equal(exact[dropped].view(torch.int32), torch.zeros_like(exact[dropped]).view(torch.int32))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ops_match_the_spec_reference(dtype):
    x = nonzero_input((3, 7, 4, 5), dtype)
    for seed, offset in [(0, 0), (99, 3), (2**63 + 7, 2**40 + 1)]:
        s, o = scalars(seed, offset)
        y = ops.dropout(x, s, o, 0.4, 0b11, 0)
        assert np.array_equal(y.numpy(), ref.dropout(x.numpy(), 0.4, seed, offset, 0b11))
        m = ops.mask(x, s, o, 0.4, 0b11)
        assert m.shape == (3, 7, 1, 1) and m.dtype == torch.uint8
        assert np.array_equal(m.numpy().astype(bool), ref.keep_mask((3, 7, 1, 1), 0.4, seed, offset))
        # the same mask as the NumPy path
        assert np.array_equal(m.numpy(), sdrop.mask(x.numpy(), 0.4, seed=seed, offset=offset))


def test_functional_masks_equal_numpy_for_explicit_seeds():
    x = nonzero_input((4, 6, 3, 3))
    y = st.dropout2d(x, 0.5, seed=11, offset=2)
    assert np.array_equal(y.numpy(), sdrop.spatial_dropout(x.numpy(), 0.5, seed=11, offset=2,
                                                           nan_propagate=True, scale_in_dtype=True))


def test_gradient_is_mask_times_scale_and_nothing_big_is_saved():
    x = nonzero_input((4, 8, 6, 6)).requires_grad_()
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = st.dropout2d(x, 0.5, seed=3, offset=1)
    assert all(n <= 1 for n in saved), f"tensors saved for backward: {saved}"
    g = torch.randn_like(y)
    y.backward(g)
    keep = (y != 0).to(x.dtype)
    s = torch.tensor(1.0) / torch.tensor(0.5)
    assert same_bits(x.grad, g * keep * s)
    # backward is the same op on the gradient, with the same mask
    assert same_bits(x.grad, ops.dropout_backward(g, *scalars(3, 1), 0.5, 0b11, 3))


def test_double_backward():
    x = nonzero_input((2, 6, 3)).requires_grad_()
    y = st.dropout1d(x, 0.5, seed=4)
    (gx,) = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
    (ggx,) = torch.autograd.grad(gx.sum(), x)
    keep = (y != 0).to(x.dtype) * 2.0
    assert torch.allclose(ggx, 2 * keep * keep)


def test_inplace_bumps_the_version_and_follows_autograd_rules():
    x = nonzero_input((2, 4, 3, 3))
    v = x._version
    out = st.dropout2d(x, 0.5, inplace=True, seed=1)
    assert out is x and x._version > v
    # the same refusals as torch's own in-place dropout
    leaf = nonzero_input((2, 4, 3, 3)).requires_grad_()
    with pytest.raises(RuntimeError, match="leaf"):
        F.dropout2d(leaf, 0.5, inplace=True)
    with pytest.raises(RuntimeError, match="leaf"):
        st.dropout2d(leaf, 0.5, inplace=True)
    for fn in (lambda t: F.dropout2d(t, 0.5, inplace=True),
               lambda t: st.dropout2d(t, 0.5, inplace=True)):
        w = nonzero_input((2, 4, 3, 3)).requires_grad_()
        h = w.sigmoid()  # saves its output for backward
        fn(h)
        with pytest.raises(RuntimeError, match="inplace"):
            h.sum().backward()
    # in place on an intermediate whose producer does not need it: the right gradient
    w = nonzero_input((2, 4, 3, 3)).requires_grad_()
    h = w * 3.0
    st.dropout2d(h, 0.5, inplace=True, seed=9)
    h.sum().backward()
    keep = (h != 0).to(w.dtype)
    assert same_bits(w.grad, 3.0 * keep * 2.0)


def test_meta_tensors_and_fake_shapes():
    x = torch.empty(2, 3, 4, 5, device="meta", dtype=torch.bfloat16)
    s, o = scalars(1, 2)
    y = ops.dropout(x, s, o, 0.5, 0b11, 0)
    assert y.device.type == "meta" and y.shape == x.shape and y.dtype == x.dtype
    m = ops.mask(x, s, o, 0.5, 0b1001, True)
    assert m.shape == (2, 1, 1, 5) and m.dtype == torch.bool
    xc = torch.empty(2, 3, 4, 5, device="meta").contiguous(memory_format=torch.channels_last)
    assert ops.dropout(xc, s, o, 0.5, 0b11, 0).stride() == xc.stride()


def test_shard_is_the_slice_of_the_whole():
    X = nonzero_input((6, 5, 3, 3))
    s, o = scalars(21, 4)
    Y = ops.dropout(X, s, o, 0.5, 0b11, 3)
    for origin, size in [((0, 0), (3, 5)), ((3, 0), (3, 5)), ((2, 1), (2, 3))]:
        xs = X[origin[0]:origin[0] + size[0], origin[1]:origin[1] + size[1]]
        ys = ops.dropout(xs, s, o, 0.5, 0b11, 3, [origin[0], origin[1], 0, 0], list(X.shape))
        assert same_bits(ys, Y[origin[0]:origin[0] + size[0], origin[1]:origin[1] + size[1]])


def test_draw_seed_uses_torchs_generator():
    x = torch.empty(2, 2)
    torch.manual_seed(3)
    a = ops.draw_seed(x)
    b = ops.draw_seed(x)
    torch.manual_seed(3)
    assert torch.equal(ops.draw_seed(x)[0], a[0]) and not torch.equal(a[0], b[0])
    torch.manual_seed(3)
    with torch.random.fork_rng():
        ops.draw_seed(x)
    assert torch.equal(ops.draw_seed(x)[0], a[0])  # fork_rng isolated the draw


def test_refusals_raise_python_exceptions_with_the_c_message():
    x = nonzero_input((2, 3, 4))
    s, o = scalars(1, 2)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1\.5"):
        ops.dropout(x, s, o, 1.5, 0b11, 0)
    with pytest.raises(ValueError, match="mask_axes 0x10 has bits at or above x.ndim"):
        ops.dropout(x, s, o, 0.5, 0x10, 0)
    with pytest.raises(ValueError, match="flags has unknown bits"):
        ops.dropout(x, s, o, 0.5, 0b11, 8)
    with pytest.raises(NotImplementedError, match="x.dtype int32 is not supported"):
        ops.dropout(torch.ones(2, 3, dtype=torch.int32), s, o, 0.5, 0b11, 0)
    with pytest.raises(ValueError, match=r"x.ndim must be in \[0, 8\], got 9"):
        ops.dropout(torch.ones([1] * 9), s, o, 0.5, 0b1, 0)
    with pytest.raises(ValueError, match="shard.origin"):
        ops.dropout(x, s, o, 0.5, 0b11, 0, [-1, 0, 0], [2, 3, 4])
    with pytest.raises(ValueError, match="must be <= shard.logical_shape"):
        ops.dropout(x, s, o, 0.5, 0b11, 0, [1, 0, 0], [2, 3, 4])
    with pytest.raises(ValueError, match="mask.shape"):
        ops.apply_mask(x, torch.ones(2, 2, 1, dtype=torch.uint8), 0.5, 0b11, 0)
    with pytest.raises(ValueError, match="mask.dtype must be uint8 or bool"):
        ops.apply_mask(x, torch.ones(2, 3, 1), 0.5, 0b11, 0)
    with pytest.raises(ValueError, match="seed must be a CPU int64 tensor"):
        ops.dropout(x, torch.tensor(1.0), o, 0.5, 0b11, 0)
    # the functional forms check p as torch does
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        st.dropout2d(torch.ones(2, 3, 4, 4), 1.5)


def test_cpu_calls_run_on_torchs_intra_op_threads():
    # The operators lend torch's threads to sdrop (docs/python.md#pytorch-operators): a call's
    # thread count follows torch.set_num_threads, not sdrop's own setting, and the bits do
    # not depend on it. Verbose lines (stderr of the C library) say the count, so the check
    # runs in a subprocess.
    code = """
import torch, sdrop, sdrop.torch  # the latter registers torch.ops.sdrop
x = torch.randn(8, 32, 48, 48)  # 2.4 MB: large enough for a parallel loop
seed, off = torch.tensor(5), torch.tensor(6)
sdrop.set_num_threads(1)
outs = []
for n in (1, 2, 3):
    torch.set_num_threads(n)
    outs.append(torch.ops.sdrop.dropout(x, seed, off, 0.5, 0b11, 0))
    outs.append(torch.ops.sdrop.dropout_backward(x, seed, off, 0.5, 0b11, 1))
assert all(torch.equal(o, outs[k % 2]) for k, o in enumerate(outs)), "bits depend on threads"
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, SDROP_VERBOSE="1"))
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("sdrop_verbose,exec")]
    assert [re.search(r",threads=(\d+),", ln).group(1) for ln in lines] == \
        ["1", "1", "2", "2", "3", "3"], r.stderr
    assert all(",serial=1," in ln for ln in lines[:2]), lines
    assert all(",serial=0," in ln for ln in lines[2:]), lines
    # ... and the tasks really run on that many threads: at::parallel_for is inline, and a
    # library built without OpenMP runs its loop on the calling thread alone (workers=1).
    assert [re.search(r",workers=(\d+),", ln).group(1) for ln in lines] == \
        ["1", "1", "2", "2", "3", "3"], r.stderr



@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and smaps: Linux")
def test_large_cpu_outputs_are_advised_to_huge_pages():
    # docs/python.md#pytorch-operators: a fresh output of 4 MiB or more gets
    # madvise(MADV_HUGEPAGE) on its 2 MiB-aligned interior (the kernel's flag "hg"), so its
    # first touch faults per 2 MiB, not per 4 KiB.
    x = torch.randn(4, 64, 64, 64)  # 4 MiB
    seed, off = torch.tensor(1), torch.tensor(2)
    for y in (torch.ops.sdrop.dropout(x, seed, off, 0.5, 0b11, 0),
              torch.ops.sdrop.dropout_backward(x, seed, off, 0.5, 0b11, 0),
              torch.ops.sdrop.apply_mask(x, torch.ones(4, 64, 1, 1, dtype=torch.uint8), 0.5,
                                         0b11, 0)):
        assert vm.advised_to_huge_pages(y.data_ptr(), y.nbytes)
