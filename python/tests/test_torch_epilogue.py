"""The fused channel epilogue for PyTorch (torch.ops.sdrop.epilogue / epilogue_backward,
sdrop.torch.dropout_epilogue, DropoutEpilogue): bit for bit the unfused torch sequence
post(residual + sdrop.torch.dropout2d(act(x + bias))) forward, its autograd gradients to x,
bias and residual, eager and compiled, seeded as Dropout2d, and the C library's refusals."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch._dynamo  # noqa: E402
from torch._dynamo.testing import CompileCounterWithBackend  # noqa: E402

import sdrop  # noqa: E402
import sdrop.torch as st  # noqa: E402
from helpers import same_bits  # noqa: E402

ops = torch.ops.sdrop
ACT = {"identity": lambda t: t, "relu": torch.relu}
LAYOUTS = ["nchw", "channels_last_memory", "nhwc"]
PAIRS = [("relu", "identity"), ("relu", "relu"), ("identity", "relu"), ("identity", "identity")]


def make(layout, dtype, shape=(4, 6, 5, 7), seed=0, bias=True, residual=True):
    """x, bias, residual of `layout`: nchw, nchw stored channels_last, or a logical nhwc."""
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    logical = (n, h, w, c) if layout == "nhwc" else shape
    x = torch.randn(logical, generator=g).to(dtype)
    b = (torch.randn(c, generator=g) * 0.5).to(dtype) if bias else None
    r = torch.randn(logical, generator=g).to(dtype) if residual else None
    if layout == "channels_last_memory":
        x = x.contiguous(memory_format=torch.channels_last)
        if r is not None:
            r = r.contiguous(memory_format=torch.channels_last)
    return x, b, r


def unfused(x, bias, residual, p, seed, offset, act, post, channels_last=False):
    """The sequence the epilogue fuses, with sdrop's own dropout (the same mask)."""
    ch = x.dim() - 1 if channels_last else 1
    t = x if bias is None else x + bias.view([-1 if i == ch else 1 for i in range(x.dim())])
    a = ACT[act](t)
    if channels_last:
        d = st.spatial_dropout(a, p, seed=seed, offset=offset, layout="channels_last")
    else:
        d = st.dropout2d(a, p, seed=seed, offset=offset)
    z = d if residual is None else residual + d
    return ACT[post](z)


def leaves(*ts):
    return [None if t is None else t.detach().clone().requires_grad_() for t in ts]


def grads_of(y, dy, ins):
    ts = [t for t in ins if t is not None]
    gs = iter(torch.autograd.grad(y, ts, dy))
    return [None if t is None else next(gs) for t in ins]


def assert_bias_grad(a, b, dtype):
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    assert torch.allclose(a.float(), b.float(), **tol), (a, b)


# ---- forward and backward against the unfused sequence ------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("act,post", PAIRS)
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_forward_and_gradients_equal_the_unfused_sequence(dtype, layout, act, post, p):
    x, b, r = make(layout, dtype)
    cl = layout == "nhwc"
    seed, offset = 1234, 7
    xf, bf, rf = leaves(x, b, r)
    y = st.dropout_epilogue(xf, p, bias=bf, residual=rf, act=act, post=post, seed=seed,
                            offset=offset, channels_last=cl)
    xu, bu, ru = leaves(x, b, r)
    y_ref = unfused(xu, bu, ru, p, seed, offset, act, post, cl)
    assert same_bits(y, y_ref)
    if layout == "channels_last_memory":
        assert y.is_contiguous(memory_format=torch.channels_last)  # layout kept
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(5)).to(dtype)
    gx, gb, gr = grads_of(y, dy, [xf, bf, rf])
    rx, rb, rr = grads_of(y_ref, dy, [xu, bu, ru])
    assert same_bits(gx, rx), "dx"
    assert same_bits(gr, rr), "dresidual"
    assert gb.shape == b.shape and gb.dtype == dtype
    assert_bias_grad(gb, rb, dtype)


@pytest.mark.parametrize("bias,residual", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_optional_bias_and_residual(bias, residual, dtype):
    x, b, r = make("nchw", dtype, bias=bias, residual=residual)
    xf, bf, rf = leaves(x, b, r)
    y = st.dropout_epilogue(xf, 0.3, bias=bf, residual=rf, post="relu", seed=3, offset=1)
    xu, bu, ru = leaves(x, b, r)
    y_ref = unfused(xu, bu, ru, 0.3, 3, 1, "relu", "relu")
    assert same_bits(y, y_ref)
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(2)).to(dtype)
    g, gref = grads_of(y, dy, [xf, bf, rf]), grads_of(y_ref, dy, [xu, bu, ru])
    assert same_bits(g[0], gref[0])
    if bias:
        assert_bias_grad(g[1], gref[1], dtype)
    if residual:
        assert same_bits(g[2], gref[2])


def test_gradients_only_where_asked():
    x, b, r = make("nchw", torch.float32)
    b = b.requires_grad_()  # x and residual constants
    y = st.dropout_epilogue(x, 0.5, bias=b, residual=r, seed=1)
    (gb,) = torch.autograd.grad(y, [b], torch.ones_like(y))
    bu = b.detach().clone().requires_grad_()
    (rb,) = torch.autograd.grad(unfused(x, bu, r, 0.5, 1, 0, "relu", "identity"), [bu],
                                torch.ones_like(y))
    assert_bias_grad(gb, rb, torch.float32)
    # the op itself: ungiven gradients are empty tensors
    s, o = torch.tensor(1), torch.tensor(0)
    dx, db, dr = ops.epilogue_backward(torch.ones_like(x), x, b.detach(), r, s, o, 0.5, 0b11, 3,
                                       1, 1, 0, False, False)
    assert dx.shape == x.shape and db.numel() == 0 and dr.numel() == 0
    # x is saved for backward (the forward is recomputed from it): modifying it is caught
    xf = x.clone().requires_grad_()
    h = xf * 1.0
    y = st.dropout_epilogue(h, 0.5, bias=b, seed=1)
    h.mul_(2)
    with pytest.raises(RuntimeError, match="inplace"):
        y.sum().backward()


def nan_input():
    x, b, r = make("nchw", torch.float32)
    x[0, :, 0, 0] = float("nan")
    x[1, :, 2, 3] = -float("inf")
    return x, b, r


def test_nan_propagates_as_in_the_unfused_sequence():
    x, b, r = nan_input()
    for act, post in PAIRS:
        y = st.dropout_epilogue(x, 0.5, bias=b, residual=r, act=act, post=post, seed=9)
        assert same_bits(y, unfused(x, b, r, 0.5, 9, 0, act, post)), (act, post)


@pytest.mark.parametrize("act,post", PAIRS[:3])
def test_nan_gradients_as_in_the_unfused_sequence(act, post):
    x, b, r = nan_input()
    xf, rf, xu, ru = leaves(x, r, x, r)
    y = st.dropout_epilogue(xf, 0.5, bias=b, residual=rf, act=act, post=post, seed=9)
    y_ref = unfused(xu, b, ru, 0.5, 9, 0, act, post)
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    g, gref = grads_of(y, dy, [xf, rf]), grads_of(y_ref, dy, [xu, ru])
    assert same_bits(g[0], gref[0]) and same_bits(g[1], gref[1])


# ---- training switch, seeds, modules ---------------------------------------------------------------
def test_eval_mode_is_the_fused_math_without_dropout_and_draws_nothing():
    x, b, r = make("nchw", torch.float32)
    ref = torch.relu(r + torch.relu(x + b.view(1, -1, 1, 1)))
    torch.manual_seed(4)
    before = torch.get_rng_state()
    assert same_bits(st.dropout_epilogue(x, 0.5, False, bias=b, residual=r, post="relu"), ref)
    assert same_bits(st.dropout_epilogue(x, 0.0, bias=b, residual=r, post="relu"), ref)
    m = st.DropoutEpilogue(0.5, post="relu").eval()
    assert same_bits(m(x, b, r), ref)
    assert torch.equal(torch.get_rng_state(), before), "eval mode drew from the generator"
    ms = st.DropoutEpilogue(0.5, post="relu", seed=3).eval()
    assert same_bits(ms(x, b, r), ref) and ms.step == 0


def test_seed_none_draws_as_dropout2d():
    x, b, r = make("nchw", torch.float32)
    torch.manual_seed(10)
    fused = [st.dropout_epilogue(x, 0.5, bias=b, residual=r) for _ in range(3)]
    after = torch.randint(0, 2**31, (4,))
    torch.manual_seed(10)
    ref = [unfused(x, b, r, 0.5, None, None, "relu", "identity") for _ in range(3)]
    assert all(same_bits(a, c) for a, c in zip(fused, ref))
    assert not same_bits(fused[0], fused[1])  # a new mask per call
    assert torch.equal(after, torch.randint(0, 2**31, (4,))), "the generator afterwards"


@pytest.mark.parametrize("seed", [None, 77])
def test_module_is_seeded_exactly_like_dropout2d(seed):
    x, b, r = make("nchw", torch.float32)

    def run(fused):
        torch.manual_seed(3)
        if fused:
            m = st.DropoutEpilogue(0.4, act="relu", post="relu", seed=seed)
            f = lambda: m(x, b, r)  # noqa: E731
        else:
            m = st.Dropout2d(0.4, seed=seed)
            f = lambda: torch.relu(r + m(torch.relu(x + b.view(1, -1, 1, 1))))  # noqa: E731
        outs = [f() for _ in range(3)]
        return outs, m.step, torch.randint(0, 2**31, (2,))

    a, c = run(True), run(False)
    assert all(same_bits(u, v) for u, v in zip(a[0], c[0]))
    assert a[1] == c[1] and torch.equal(a[2], c[2])


@pytest.mark.parametrize("seed", [None, 5])
@pytest.mark.parametrize("reentrant", [True, False])
def test_checkpointing_changes_nothing(seed, reentrant):
    from torch.utils.checkpoint import checkpoint
    x0, b0, r0 = make("nchw", torch.float32)

    def run(ckpt):
        torch.manual_seed(1)
        m = st.DropoutEpilogue(0.5, post="relu", seed=seed)
        outs = []
        for _ in range(2):
            x, b, r = leaves(x0, b0, r0)
            f = lambda x, b, r: m(x * 2, b, r)  # noqa: E731
            y = checkpoint(f, x, b, r, use_reentrant=reentrant) if ckpt else f(x, b, r)
            y.sum().backward()
            outs += [y.detach(), x.grad, b.grad, r.grad]
        return outs, m.step, torch.randint(0, 2**31, (2,))

    a, c = run(False), run(True)
    assert all(same_bits(u, v) for u, v in zip(a[0], c[0]))
    assert a[1] == c[1] and torch.equal(a[2], c[2])


def test_module_state_dict_resumes_the_sequence():
    x, b, r = make("nchw", torch.float32)
    m = st.DropoutEpilogue(0.5, seed=2**63 + 11)
    m(x, b, r)
    m(x, b, r)
    sd = m.state_dict()
    assert m.step == 2
    nxt = m(x, b, r)
    m2 = st.DropoutEpilogue(0.5)
    m2.load_state_dict(sd)
    assert m2.seed == 2**63 + 11 and m2.step == 2
    assert same_bits(m2(x, b, r), nxt)
    assert "act='relu'" in repr(m2) and "step=3" in repr(m2)


def test_general_form_and_numpy_api_agree():
    x, b, r = make("nhwc", torch.float32)
    y = st.epilogue(x, 0.3, bias=b, residual=r, post="relu", seed=5, offset=2,
                    layout="channels_last")
    assert same_bits(y, st.dropout_epilogue(x, 0.3, bias=b, residual=r, post="relu", seed=5,
                                            offset=2, channels_last=True))
    # sdrop.epilogue on NumPy arrays, with PyTorch's arithmetic flags: the same bits
    yn = sdrop.epilogue(x.numpy(), 0.3, seed=5, offset=2, bias=b.numpy(), residual=r.numpy(),
                        post="relu", layout="channels_last", nan_propagate=True,
                        scale_in_dtype=True)
    assert np.array_equal(yn.view(np.int32), y.numpy().view(np.int32))
    # ... and on torch tensors it goes to the operator (differentiable)
    xt = x.clone().requires_grad_()
    yt = sdrop.epilogue(xt, 0.3, seed=5, offset=2, bias=b, residual=r, post="relu",
                        layout="channels_last", nan_propagate=True, scale_in_dtype=True)
    assert same_bits(yt, y) and yt.requires_grad
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(8))
    (gx,) = torch.autograd.grad(yt, [xt], dy)
    dx, db, dr = sdrop.epilogue_backward(x.numpy(), dy.numpy(), 0.3, seed=5, offset=2,
                                         bias=b.numpy(), residual=r.numpy(), post="relu",
                                         layout="channels_last", nan_propagate=True,
                                         scale_in_dtype=True)
    assert np.array_equal(dx.view(np.int32), gx.numpy().view(np.int32))
    tx, tb, tr = ops.epilogue_backward(dy, x, b, r, torch.tensor(5), torch.tensor(2), 0.3,
                                       0b1001, 3, 3, 1, 1, True, True)
    assert np.array_equal(dx, tx.numpy()) and np.array_equal(db, tb.numpy())
    assert np.array_equal(dr, tr.numpy())


def test_shard_is_the_slice_of_the_whole():
    X, b, R = make("nchw", torch.float32, shape=(6, 4, 3, 3))
    s, o = torch.tensor(21), torch.tensor(4)
    Y = ops.epilogue(X, b, R, s, o, 0.5, 0b11, 3, 1, 1, 1)
    dY = torch.randn(Y.shape, generator=torch.Generator().manual_seed(3))
    dX, _, dR = ops.epilogue_backward(dY, X, b, R, s, o, 0.5, 0b11, 3, 1, 1, 1, False, True)
    for lo, hi in [(0, 3), (3, 6), (2, 5)]:
        sh = ([lo, 0, 0, 0], list(X.shape))
        ys = ops.epilogue(X[lo:hi], b, R[lo:hi], s, o, 0.5, 0b11, 3, 1, 1, 1, *sh)
        assert same_bits(ys, Y[lo:hi])
        dxs, _, drs = ops.epilogue_backward(dY[lo:hi], X[lo:hi], b, R[lo:hi], s, o, 0.5, 0b11, 3,
                                            1, 1, 1, False, True, *sh)
        assert same_bits(dxs, dX[lo:hi]) and same_bits(drs, dR[lo:hi])
    # a module's data_parallel=(rank, world) is that shard of the global batch
    m = st.DropoutEpilogue(0.5, post="relu", seed=21, data_parallel=(1, 2))
    m._set_seed(21, 4)
    assert same_bits(m(X[3:], b, R[3:]), Y[3:])


# ---- torch.compile, Meta, opcheck -----------------------------------------------------------------
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last_memory"])
def test_compiled_equals_eager_in_one_graph(backend, layout):
    torch._dynamo.reset()

    def f(x, b, r):
        return st.dropout_epilogue(x * 2, 0.5, bias=b, residual=r, post="relu", seed=99,
                                   offset=7) * 4

    counter = CompileCounterWithBackend(backend)
    g = torch.compile(f, fullgraph=True, backend=counter)  # fullgraph: a break is an error
    for step in range(2):
        x, b, r = make(layout, torch.float32, seed=step)
        outs = []
        for fn in (f, g):
            xi, bi, ri = leaves(x, b, r)
            y = fn(xi, bi, ri)
            y.sum().backward()
            outs.append((y.detach(), xi.grad, bi.grad, ri.grad))
        (ye, gxe, gbe, gre), (yc, gxc, gbc, grc) = outs
        assert same_bits(ye, yc) and same_bits(gxe, gxc) and same_bits(gre, grc)
        # dbias's summation order follows the strides, which a compiler may choose otherwise
        assert torch.allclose(gbe, gbc, rtol=1e-5, atol=1e-5)
    assert counter.frame_count == 1


@pytest.mark.parametrize("seed", [None, 2024])
def test_compiled_module_equals_eager(seed):
    def run(compiled):
        torch._dynamo.reset()
        torch.manual_seed(42)
        conv = torch.nn.Conv2d(3, 6, 3, bias=False)
        bias = torch.nn.Parameter(torch.randn(6))
        m = st.DropoutEpilogue(0.5, post="relu", seed=seed)

        def block(x):
            h = conv(x)
            return m(h, bias, h.detach() * 0.5)

        counter = CompileCounterWithBackend("aot_eager")
        f = torch.compile(block, fullgraph=True, backend=counter) if compiled else block
        outs = []
        for step in range(3):
            x = torch.randn(2, 3, 7, 7, generator=torch.Generator().manual_seed(step))
            y = f(x)
            y.sum().backward()
            outs.append((y.detach(), bias.grad.clone()))
        return outs, m.step, torch.randint(0, 2**31, (4,)), counter.frame_count

    e, c = run(False), run(True)
    for (ye, ge), (yc, gc) in zip(e[0], c[0]):
        assert same_bits(ye, yc)
        assert torch.allclose(ge, gc, rtol=1e-5, atol=1e-5)
    assert e[1] == c[1] and torch.equal(e[2], c[2])
    assert c[3] == 1


def test_meta_shapes():
    x = torch.empty(2, 3, 4, 5, device="meta", dtype=torch.bfloat16)
    x = x.contiguous(memory_format=torch.channels_last)
    b = torch.empty(3, device="meta", dtype=torch.bfloat16)
    s, o = torch.tensor(1), torch.tensor(2)
    y = ops.epilogue(x, b, x, s, o, 0.5, 0b11, 3, 1, 1, 0)
    assert y.device.type == "meta" and y.shape == x.shape and y.stride() == x.stride()
    dx, db, dr = ops.epilogue_backward(x, x, b, x, s, o, 0.5, 0b11, 3, 1, 1, 0, True, False)
    assert dx.shape == x.shape and db.shape == (3,) and dr.shape == (0,)


def test_opcheck():
    x, b, r = make("nchw", torch.float32)
    s, o = torch.tensor(3), torch.tensor(1)
    args = (x.requires_grad_(), b.requires_grad_(), r.requires_grad_(), s, o, 0.5, 0b11, 3, 1,
            1, 1)
    torch.library.opcheck(ops.epilogue.default, args)
    torch.library.opcheck(ops.epilogue.default, (x.detach(), None, None, s, o, 0.5, 0b11, 3, 1,
                                                 0, 1))
    dy = torch.randn(x.shape)
    torch.library.opcheck(ops.epilogue_backward.default,
                          (dy, x.detach(), b.detach(), r.detach(), s, o, 0.5, 0b11, 3, 1, 1, 1,
                           True, True))


# ---- refusals --------------------------------------------------------------------------------------
def test_refusals_raise_python_exceptions_with_the_c_message():
    x, b, r = make("nchw", torch.float32)
    with pytest.raises(ValueError, match=r"bias.shape must be \[6\]"):
        st.dropout_epilogue(x, 0.5, bias=torch.zeros(5), seed=1)
    with pytest.raises(ValueError, match=r"bias.shape must be \[6\]"):
        st.dropout_epilogue(x, 0.5, False, bias=torch.zeros(5))  # eval mode checks it too
    with pytest.raises(ValueError, match="residual.shape"):
        st.dropout_epilogue(x, 0.5, residual=r[:, :, :2], seed=1)
    with pytest.raises((ValueError, NotImplementedError), match="bias"):
        st.dropout_epilogue(x, 0.5, bias=b.double(), seed=1)
    s, o = torch.tensor(1), torch.tensor(0)
    with pytest.raises(ValueError, match="epilogue->act must be"):
        ops.epilogue(x, b, r, s, o, 0.5, 0b11, 3, 1, 2, 0)
    with pytest.raises(ValueError, match="channel_axis must be an axis of x"):
        ops.epilogue(x, b, r, s, o, 0.5, 0b11, 3, 4, 1, 0)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1\.5"):
        ops.epilogue(x, b, r, s, o, 1.5, 0b11, 3, 1, 1, 0)
    with pytest.raises(ValueError, match="need_bias_grad is set but bias is None"):
        ops.epilogue_backward(x, x, None, r, s, o, 0.5, 0b11, 3, 1, 1, 0, True, False)
    with pytest.raises(ValueError, match="activation must be 'identity' or 'relu'"):
        st.dropout_epilogue(x, 0.5, act="gelu")
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        st.dropout_epilogue(x, 1.5)
    with pytest.raises(ValueError, match="dropout_epilogue: expected"):
        st.dropout_epilogue(torch.ones(3), 0.5)
    # no double backward: refused, not silently wrong
    xf = x.clone().requires_grad_()
    y = st.dropout_epilogue(xf, 0.5, bias=b, seed=1)
    with pytest.raises(NotImplementedError, match="not differentiable in its gradient"):
        torch.autograd.grad(y.pow(2).sum(), xf, create_graph=True)
    # ... but a gradient that is a constant has nothing to record (zero second derivative)
    y = st.dropout_epilogue(xf, 0.5, bias=b, seed=1)
    (gx,) = torch.autograd.grad(y.sum(), xf, create_graph=True)
    assert not gx.requires_grad
    # the NumPy API raises sdrop's own exception classes, with the same message
    with pytest.raises(sdrop.SdropInvalidArgument, match=r"bias.shape must be \[6\]"):
        sdrop.epilogue(x.numpy(), 0.5, seed=1, bias=np.zeros(5, np.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_cuda_equals_cpu_bit_for_bit(memory_format):
    # The library's CUDA kernels are the CPU ones' algorithm (docs/epilogue.md, "On GPUs"):
    # the same output and the same gradients to x, bias and residual, bit for bit.
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 6, 5, 7, generator=g).to(memory_format=memory_format)
    b, r = torch.randn(6, generator=g), torch.randn(4, 6, 5, 7, generator=g)
    dy = torch.randn(4, 6, 5, 7, generator=g)
    outs = []
    for dev in ("cpu", "cuda"):
        xs, bs, rs = (t.to(dev).requires_grad_() for t in (x, b, r))
        y = st.dropout_epilogue(xs, 0.4, bias=bs, residual=rs, act="relu", post="relu",
                                seed=11, offset=5)
        y.backward(dy.to(dev))
        outs.append([t.detach().cpu() for t in (y, xs.grad, bs.grad, rs.grad)])
    for cpu, cuda in zip(*outs):
        assert same_bits(cpu, cuda)
