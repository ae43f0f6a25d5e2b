import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import ref  # noqa: E402
import sdrop  # noqa: E402
import sdrop.torch as st  # noqa: E402

INT = {torch.float32: torch.int32, torch.float64: torch.int64}


def same_bits(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    return torch.equal(a.contiguous().view(INT[a.dtype]), b.contiguous().view(INT[b.dtype]))


def nonzero_input(shape, dtype, gen_seed=0):
    g = torch.Generator().manual_seed(gen_seed)
    x = torch.randn(shape, generator=g, dtype=dtype)
    return x + torch.where(x >= 0, 0.5, -0.5).to(dtype)  # |x| >= 0.5: no zeros after scaling


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("kind", ["1d", "2d", "3d"])
def test_bit_parity_with_pytorch(dtype, p, kind):
    shape = {"1d": (4, 16, 9), "2d": (4, 16, 5, 7), "3d": (2, 8, 3, 4, 5)}[kind]
    fn = {"1d": F.dropout1d, "2d": F.dropout2d, "3d": F.dropout3d}[kind]
    x = nonzero_input(shape, dtype)
    torch.manual_seed(1234)
    y_t = fn(x, p, training=True)
    # channel kept iff any element nonzero (x has no zeros)
    mask = (y_t != 0).flatten(2).any(dim=2).to(torch.uint8).reshape(shape[:2] + (1,) * (len(shape) - 2))
    assert 0 < int(mask.sum()) < mask.numel() or p in (0.1, 0.9)
    y = sdrop.apply_mask(x, mask, p, nan_propagate=True)
    assert isinstance(y, torch.Tensor)
    assert same_bits(y, y_t)
    # bool mask and channels-last memory format give the same bits
    yb = sdrop.apply_mask(x, mask.bool(), p, nan_propagate=True)
    assert same_bits(yb, y_t)
    if kind == "2d":
        xc = x.contiguous(memory_format=torch.channels_last)
        yc = sdrop.apply_mask(xc, mask, p, nan_propagate=True)
        assert same_bits(yc, y_t)


def test_parity_with_nan_and_negative_zero():
    x = nonzero_input((3, 8, 4, 4), torch.float32)
    x[:, :, 0, 0] = float("nan")
    torch.manual_seed(7)
    y_t = F.dropout2d(x, 0.5, training=True)
    mask = (y_t[:, :, 1:, :] != 0).flatten(2).any(dim=2).to(torch.uint8)[:, :, None, None]
    y = sdrop.apply_mask(x, mask, 0.5, nan_propagate=True)
    nan = torch.isnan(y_t)
    assert torch.equal(nan, torch.isnan(y))
    assert torch.equal(y[~nan].view(torch.int32), y_t[~nan].view(torch.int32))  # -0.0 included


def test_torch_forward_matches_reference_zero_copy():
    x = nonzero_input((2, 6, 3, 3), torch.float32)
    y = sdrop.spatial_dropout(x, 0.5, seed=99, offset=3)
    r = ref.dropout(x.numpy(), 0.5, 99, 3, 0b11)
    assert np.array_equal(y.numpy().view(np.uint32), r.view(np.uint32))
    x2 = x.clone()
    ptr = x2.data_ptr()
    out = sdrop.spatial_dropout(x2, 0.5, seed=99, offset=3, inplace=True)
    assert out is x2 and x2.data_ptr() == ptr and torch.equal(x2, y)
    # non-contiguous tensors
    xt = x.transpose(2, 3)
    assert torch.equal(sdrop.spatial_dropout(xt, 0.5, seed=99, offset=3), y.transpose(2, 3))
    m = sdrop.mask(x, 0.5, seed=99, offset=3)
    assert isinstance(m, torch.Tensor) and m.dtype == torch.uint8 and m.shape == (2, 6, 1, 1)
    assert sdrop.mask(x, 0.5, seed=99, offset=3, dtype=torch.bool).dtype == torch.bool


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_autograd_gradient_is_mask_times_scale(dtype):
    x = nonzero_input((4, 8, 3, 5), dtype).requires_grad_()
    p, seed, offset = 0.4, 2024, 5
    y = st.SpatialDropoutFunction.apply(x, p, seed, offset, 0b11)
    keep = torch.from_numpy(ref.keep_mask((4, 8, 1, 1), p, seed, offset))
    s = (torch.tensor(1.0, dtype=torch.float32) / torch.tensor(1.0 - p, dtype=torch.float32)).to(dtype) \
        if dtype == torch.float32 else torch.tensor(1.0 / (1.0 - p), dtype=dtype)
    analytic = torch.where(keep, s, torch.zeros((), dtype=dtype)).expand_as(x)
    g = torch.randn_like(x)
    (y * g).sum().backward()
    assert torch.equal(x.grad, g * analytic)
    # d(sum y)/dx: expanded (zero-stride) incoming gradient
    x.grad = None
    st.spatial_dropout(x, p, seed=seed, offset=offset).sum().backward()
    assert torch.equal(x.grad, analytic)
    # forward = x * analytic
    assert torch.equal(y.detach(), x.detach() * analytic)


def test_autograd_gradcheck_float64():
    x = nonzero_input((2, 4, 3), torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: st.SpatialDropoutFunction.apply(t, 0.5, 3, 1, 0b11), (x,))


def test_function_saves_nothing_tensor_sized():
    x = nonzero_input((2, 4, 3), torch.float32).requires_grad_()
    y = st.SpatialDropoutFunction.apply(x, 0.5, 3, 1, 0b11)
    assert len(y.grad_fn.saved_tensors) == 0


def test_plain_api_on_grad_tensor_is_differentiable():
    x = nonzero_input((2, 4, 3), torch.float32).requires_grad_()
    y = sdrop.spatial_dropout(x, 0.5, seed=3, offset=1)
    assert y.requires_grad
    y.sum().backward()
    assert torch.equal(x.grad, sdrop.spatial_dropout(torch.ones_like(x), 0.5, seed=3, offset=1))


def test_inplace_autograd():
    x0 = nonzero_input((2, 4, 3), torch.float32).requires_grad_()
    x = x0 * 1.0
    y = st.spatial_dropout(x, 0.5, seed=5, offset=2, inplace=True)
    assert y is x
    y.sum().backward()
    assert torch.equal(x0.grad, sdrop.spatial_dropout(torch.ones_like(x0), 0.5, seed=5, offset=2))


def test_module_offset_bumping_and_eval():
    m = st.SpatialDropout(0.5, seed=11)
    x = nonzero_input((8, 16, 2, 2), torch.float32)
    y0 = m(x)
    assert m.offset == 1
    y1 = m(x)
    assert m.offset == 2
    assert torch.equal(y0, sdrop.spatial_dropout(x, 0.5, seed=11, offset=0))
    assert torch.equal(y1, sdrop.spatial_dropout(x, 0.5, seed=11, offset=1))
    assert not torch.equal(y0, y1)
    m.eval()
    assert m(x) is x and m.offset == 2
    # state_dict carries (seed, offset)
    m2 = st.SpatialDropout(0.5, seed=1)
    m2.load_state_dict(m.state_dict())
    assert (m2.seed, m2.offset) == (11, 2)
    # channels_last module drops the same (n, c) pairs
    ml = st.SpatialDropout(0.5, layout="channels_last", seed=11, offset=0).train()
    yl = ml(x.permute(0, 2, 3, 1).contiguous())
    assert torch.equal(yl.permute(0, 3, 1, 2), y0)


def test_module_in_a_model_trains():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), st.SpatialDropout(0.3, seed=1), torch.nn.ReLU())
    x = torch.randn(2, 3, 6, 6)
    model(x).sum().backward()
    assert model[0].weight.grad is not None and torch.isfinite(model[0].weight.grad).all()


def test_torch_errors():
    x = nonzero_input((2, 3, 4), torch.float32)
    with pytest.raises(ValueError, match=r"1\.5"):
        sdrop.spatial_dropout(x, 1.5, seed=1)
    with pytest.raises((TypeError, NotImplementedError)):
        sdrop.spatial_dropout(torch.ones(2, 3, dtype=torch.int32), 0.5, seed=1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_dtypes_computed_in_float32(dtype):
    x = nonzero_input((2, 8, 3), torch.float32).to(dtype)
    y = sdrop.spatial_dropout(x, 0.3, seed=4, offset=1)
    r = torch.from_numpy(ref.dropout(x.float().numpy(), 0.3, 4, 1, 0b11)).to(dtype)
    assert torch.equal(y.view(torch.int16), r.view(torch.int16))


def test_numpy_only_import_does_not_load_torch():
    import subprocess
    import sys
    import os
    code = "import sys, sdrop, numpy as np; sdrop.spatial_dropout(np.ones((2,3,4)), 0.5, seed=1); " \
           "assert 'torch' not in sys.modules"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# ---- CUDA tensors (skipped without a GPU) ---------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device for PyTorch")


@cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_cuda_tensor_matches_cpu_bit_for_bit(dtype, layout):
    x = nonzero_input((4, 16, 9, 7), torch.float32).to(dtype)
    y_cpu = sdrop.spatial_dropout(x, 0.4, seed=7, offset=3, layout=layout)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):  # sdrop enqueues on PyTorch's current stream
        xg = x.cuda()
        yg = sdrop.spatial_dropout(xg, 0.4, seed=7, offset=3, layout=layout)
        sdrop.spatial_dropout(xg, 0.4, seed=7, offset=3, layout=layout, inplace=True)
    s.synchronize()
    assert yg.is_cuda
    bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[x.element_size()]
    assert torch.equal(yg.cpu().view(bits), y_cpu.view(bits))
    assert torch.equal(xg.cpu().view(bits), y_cpu.view(bits))  # in place gave the same bits


@cuda
def test_cuda_autograd_matches_cpu():
    x = nonzero_input((2, 8, 5, 5), torch.float32).requires_grad_()
    xg = x.detach().cuda().requires_grad_()
    y = st.SpatialDropoutFunction.apply(x, 0.5, 11, 2, 0b11, False)
    yg = st.SpatialDropoutFunction.apply(xg, 0.5, 11, 2, 0b11, False)
    y.sum().backward()
    yg.sum().backward()
    assert torch.equal(yg.detach().cpu(), y.detach())
    assert torch.equal(xg.grad.cpu(), x.grad)
