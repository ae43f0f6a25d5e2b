import itertools
import re

import numpy as np
import pytest

import ref
import sdrop

DTYPES = [np.float32, np.float64, np.float16]


def bits_equal(a, b):
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    ui = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return np.array_equal(a.view(ui), b.view(ui))


def rand(shape, dtype=np.float32, seed=0):
    r = np.random.default_rng(seed)
    return (r.standard_normal(shape) + 0.1).astype(dtype)


def test_verbose_mode_prints_one_line_per_call(capfd):
    x = rand((2, 3, 4, 5))
    level = sdrop.get_verbose()
    sdrop.set_verbose(1)
    try:
        assert sdrop.get_verbose() == 1
        sdrop.spatial_dropout(x, 0.5, seed=1)
        with pytest.raises(sdrop.SdropInvalidArgument):
            sdrop.spatial_dropout(x, 1.5, seed=1)
    finally:
        sdrop.set_verbose(level)
    sdrop.spatial_dropout(x, 0.5, seed=1)  # level 0: nothing
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 2, err
    assert err[0].startswith("sdrop_verbose,exec,cpu:"), err
    assert re.search(r",forward(_sharded)?,float32,shape=2x3x4x5,", err[0]), err
    assert re.match(r"sdrop_verbose,error,forward(_sharded)?,SDROP_ERROR_INVALID_ARGUMENT,",
                    err[1]), err
    assert "p must be in [0, 1], got 1.5" in err[1]


def test_version_threads_and_library():
    assert sdrop.version().count(".") == 2
    assert sdrop.__version__ == sdrop.version()
    n = sdrop.get_num_threads()
    sdrop.set_num_threads(1)
    assert sdrop.get_num_threads() == 1
    sdrop.set_num_threads(0)
    assert sdrop.get_num_threads() >= 1
    sdrop.set_num_threads(n)
    assert sdrop.spatial_axes(4) == 0b11
    assert sdrop.spatial_axes(4, "channels_last") == 0b1001
    assert sdrop.spatial_axes(1) == 0
    for ndim in range(0, 12):  # the traceable Python copy equals sdrop_spatial_axes
        for layout in ("channels_first", "channels_last"):
            assert sdrop.mask_axes_bits(None, ndim, layout) == sdrop.spatial_axes(ndim, layout)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_forward_matches_reference(dtype, p):
    x = rand((4, 16, 5, 3), dtype)
    for seed, offset in [(0, 0), (1234, 7), (2**63 + 5, 2**40 + 3)]:
        y = sdrop.spatial_dropout(x, p, seed=seed, offset=offset)
        if dtype == np.float16:  # computed in float32, rounded on store
            r = ref.dropout(x.astype(np.float32), p, seed, offset, 0b11).astype(np.float16)
        else:
            r = ref.dropout(x, p, seed, offset, 0b11)
        assert bits_equal(y, r), (seed, offset)


def test_p_zero_is_exact_copy_and_p_one_is_positive_zero():
    x = rand((2, 3, 4))
    y = sdrop.spatial_dropout(x, 0.0, seed=3)
    assert y is not x and bits_equal(y, x)
    z = sdrop.spatial_dropout(-np.abs(x), 1.0, seed=3)
    assert bits_equal(z, np.zeros_like(x))
    zm = sdrop.spatial_dropout(-np.abs(x), 1.0, seed=3, nan_propagate=True)
    assert bits_equal(zm, np.full_like(x, -0.0))


def test_nan_handling():
    x = rand((8, 32, 2))
    x[:, :, 0] = np.nan
    y = sdrop.spatial_dropout(x, 0.5, seed=11)
    keep = ref.keep_mask((8, 32, 1), 0.5, 11, 0)
    assert (~keep).any() and keep.any()
    assert np.all(y[~np.broadcast_to(keep, x.shape)] == 0)  # no NaN leaks (+0.0)
    ym = sdrop.spatial_dropout(x, 0.5, seed=11, nan_propagate=True)
    assert np.isnan(ym[:, :, 0]).all()


def test_mask_and_layouts():
    x = rand((3, 6, 4, 5))
    m = sdrop.mask(x, 0.5, seed=42, offset=2)
    assert m.shape == (3, 6, 1, 1) and m.dtype == np.uint8
    assert np.array_equal(m.astype(bool), ref.keep_mask((3, 6, 1, 1), 0.5, 42, 2))
    mb = sdrop.mask((3, 6, 4, 5), 0.5, seed=42, offset=2, dtype=bool)
    assert mb.dtype == np.bool_ and np.array_equal(mb, m.astype(bool))
    # channels_last drops the same (n, c) pairs
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    ml = sdrop.mask(xl, 0.5, seed=42, offset=2, layout="channels_last")
    assert ml.shape == (3, 1, 1, 6)
    assert np.array_equal(ml.reshape(3, 6), m.reshape(3, 6))
    y = sdrop.spatial_dropout(x, 0.5, seed=42, offset=2)
    yl = sdrop.spatial_dropout(xl, 0.5, seed=42, offset=2, layout="channels_last")
    assert bits_equal(yl.transpose(0, 3, 1, 2), y)
    # explicit axes: int bitmask, iterable, negative axes
    for axes in (0b1001, (0, 3), [0, -1]):
        assert bits_equal(sdrop.spatial_dropout(xl, 0.5, seed=42, offset=2, mask_axes=axes), yl)
    # element-wise dropout and per-sample dropout
    for axes in (0b1111, 0b0001):
        assert bits_equal(sdrop.spatial_dropout(x, 0.3, seed=5, mask_axes=axes),
                          ref.dropout(x, 0.3, 5, 0, axes))


def test_offsets_give_different_masks():
    masks = [sdrop.mask((64, 64), 0.5, seed=9, offset=o) for o in range(4)]
    for a, b in itertools.combinations(masks, 2):
        assert not np.array_equal(a, b)


@pytest.mark.parametrize("view", ["slice", "transpose", "negative", "broadcast_in"])
def test_strided_views(view):
    base = rand((4, 12, 6, 5), np.float64)
    if view == "slice":
        x = base[:, ::2, 1:, ::2]
    elif view == "transpose":
        x = base.transpose(0, 1, 3, 2)
    elif view == "negative":
        x = base[::-1, :, ::-1]
    else:  # zero strides on the input are fine
        x = np.broadcast_to(base[:, :, :1, :1], (4, 12, 6, 5))
    assert not x.flags.c_contiguous
    y = sdrop.spatial_dropout(x, 0.4, seed=77, offset=1)
    assert bits_equal(y, ref.dropout(np.ascontiguousarray(x), 0.4, 77, 1, 0b11))
    # strided output too
    out_base = np.full((4, 12, 16, 16), 7.0)
    out = out_base[:, : x.shape[1], ::2, ::2][:, :, : x.shape[2], : x.shape[3]]
    r = sdrop.spatial_dropout(x, 0.4, seed=77, offset=1, out=out)
    assert r is out and bits_equal(out, y)
    assert np.all(out_base[:, :, 1::2] == 7.0)  # nothing written outside the view


def test_inplace_and_out():
    x = rand((2, 8, 3, 3))
    expect = ref.dropout(x, 0.5, 3, 4, 0b11)
    x2 = x.copy()
    r = sdrop.spatial_dropout(x2, 0.5, seed=3, offset=4, inplace=True)
    assert r is x2 and bits_equal(x2, expect)
    v = x.copy()
    view = v[:, ::2]
    sdrop.spatial_dropout(view, 0.5, seed=3, offset=4, inplace=True)
    assert bits_equal(view, ref.dropout(np.ascontiguousarray(x[:, ::2]), 0.5, 3, 4, 0b11))
    assert bits_equal(v[:, 1::2], x[:, 1::2])
    out = np.empty_like(x)
    assert sdrop.spatial_dropout(x, 0.5, seed=3, offset=4, out=out) is out
    assert bits_equal(out, expect)


def test_backward_equals_forward_on_gradient():
    dy = rand((5, 7, 3))
    dx = sdrop.spatial_dropout_backward(dy, 0.3, seed=8, offset=2)
    assert bits_equal(dx, sdrop.spatial_dropout(dy, 0.3, seed=8, offset=2))


def test_apply_mask():
    x = rand((3, 5, 4, 4))
    m = (np.arange(15).reshape(3, 5, 1, 1) % 3 != 0)
    for mm in (m, m.astype(np.uint8)):
        y = sdrop.apply_mask(x, mm, 0.25)
        s = np.float32(1) / np.float32(0.75)
        assert bits_equal(y, np.where(m, x * s, np.float32(0)))
    # seed/offset-generated mask reproduces forward
    g = sdrop.mask(x, 0.6, seed=1, offset=1)
    assert bits_equal(sdrop.apply_mask(x, g, 0.6), sdrop.spatial_dropout(x, 0.6, seed=1, offset=1))
    x2 = x.copy()
    assert sdrop.apply_mask(x2, g, 0.6, inplace=True) is x2
    assert bits_equal(x2, sdrop.spatial_dropout(x, 0.6, seed=1, offset=1))


def test_readonly_input_and_empty():
    x = rand((2, 3, 4))
    x.flags.writeable = False
    assert bits_equal(sdrop.spatial_dropout(x, 0.5, seed=2), ref.dropout(x, 0.5, 2, 0, 0b11))
    e = np.empty((0, 3, 4), np.float32)
    assert sdrop.spatial_dropout(e, 0.5, seed=1).shape == (0, 3, 4)
    s = np.float32(3.0).reshape(())  # rank 0
    assert sdrop.spatial_dropout(np.array(s), 0.0, seed=1) == 3.0


def test_errors_carry_the_c_message():
    x = rand((2, 3, 4))
    with pytest.raises(ValueError, match=r"1\.5") as ei:
        sdrop.spatial_dropout(x, 1.5, seed=1)
    assert isinstance(ei.value, sdrop.SdropError)
    assert "1.5" in sdrop.last_error()
    with pytest.raises(ValueError):
        sdrop.spatial_dropout(x, float("nan"), seed=1)
    with pytest.raises(ValueError):
        sdrop.spatial_dropout(x, 0.5, seed=1, mask_axes=0b1000)  # bit >= ndim
    with pytest.raises(ValueError):
        sdrop.spatial_dropout(x, 0.5, seed=1, out=np.empty((2, 3, 5), np.float32))
    with pytest.raises(ValueError):
        sdrop.spatial_dropout(x, 0.5, seed=1, out=np.empty((2, 3, 4), np.float64))
    with pytest.raises(ValueError):
        sdrop.apply_mask(x, np.ones((2, 2, 1), np.uint8), 0.5)
    with pytest.raises(ValueError):  # overlapping output
        sdrop.spatial_dropout(x, 0.5, seed=1, out=np.broadcast_to(np.empty((1, 3, 4), np.float32), (2, 3, 4)))
    with pytest.raises((TypeError, NotImplementedError)):
        sdrop.spatial_dropout(np.ones((2, 3), np.int32), 0.5, seed=1)
    with pytest.raises(ValueError):
        sdrop.spatial_dropout(x, 0.5, seed=-1)
    with pytest.raises(ValueError):
        sdrop.spatial_dropout(x, 0.5, seed=1, layout="NCHW")
    # nothing written on failure
    out = np.full_like(x, 5.0)
    with pytest.raises(ValueError):
        sdrop.spatial_dropout(x, -0.1, seed=1, out=out)
    assert np.all(out == 5.0)


def test_dlpack_generic_object():
    class Wrapper:  # any producer with __dlpack__ works
        def __init__(self, a):
            self.a = a
            self.shape = a.shape

        def __dlpack__(self, stream=None):
            return self.a.__dlpack__()

    x = rand((2, 4, 3))
    out = np.empty_like(x)
    sdrop.spatial_dropout(Wrapper(x), 0.5, seed=6, out=Wrapper(out))
    assert bits_equal(out, ref.dropout(x, 0.5, 6, 0, 0b11))


# ---- the fused channel epilogue (docs/epilogue.md) --------------------------------------------------
def _relu(t):
    return np.where(np.isnan(t) | (t > 0), t, t.dtype.type(0))  # NaN stays NaN, else +0.0


def _relu_grad(out, g):
    return np.where(np.isnan(out) | (out > 0), g, g.dtype.type(0))


def _bias_view(b, ndim, ch):
    return b.reshape([-1 if i == ch else 1 for i in range(ndim)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("act,post", [("relu", "identity"), ("relu", "relu"), ("identity", "relu")])
@pytest.mark.parametrize("multiply", [False, True])
def test_epilogue_equals_the_unfused_sequence(dtype, layout, act, post, multiply):
    shape = (3, 8, 5, 6) if layout == "channels_first" else (3, 5, 6, 8)
    ch = 1 if layout == "channels_first" else 3
    x, r = rand(shape, dtype, 1), rand(shape, dtype, 2)
    b = (rand((8,), np.float32, 3) * 0.5).astype(dtype)
    dy = rand(shape, dtype, 4)
    kw = dict(seed=77, offset=3, layout=layout, nan_propagate=multiply)
    A = {"identity": lambda t: t, "relu": _relu}
    # unfused, each step stored in the dtype (NumPy's float16 arithmetic rounds each op once)
    t = x + _bias_view(b, 4, ch)
    a = A[act](t)
    d = sdrop.spatial_dropout(a, 0.3, **kw)
    z = r + d
    y_ref = A[post](z)
    y = sdrop.epilogue(x, 0.3, bias=b, residual=r, act=act, post=post, **kw)
    assert bits_equal(y, y_ref)
    # in place, and into out=
    out = np.empty_like(x)
    assert sdrop.epilogue(x, 0.3, bias=b, residual=r, act=act, post=post, out=out, **kw) is out
    assert bits_equal(out, y_ref)
    xi = x.copy()
    sdrop.epilogue(xi, 0.3, bias=b, residual=r, act=act, post=post, inplace=True, **kw)
    assert bits_equal(xi, y_ref)
    # backward: what autograd of the unfused sequence computes
    g = _relu_grad(y_ref, dy) if post == "relu" else dy
    dd = sdrop.spatial_dropout_backward(g, 0.3, **kw)
    dx_ref = _relu_grad(a, dd) if act == "relu" else dd
    axes = tuple(i for i in range(4) if i != ch)
    db_ref = dx_ref.astype(np.float64).sum(axis=axes)
    dx, db, dr = sdrop.epilogue_backward(x, dy, 0.3, bias=b, residual=r, act=act, post=post, **kw)
    assert bits_equal(dx, dx_ref) and bits_equal(dr, g)
    assert db.shape == (8,) and db.dtype == dtype
    tol = 1e-2 if dtype == np.float16 else 1e-5
    assert np.allclose(db.astype(np.float64), db_ref, rtol=tol, atol=tol)
    # wanted gradients only
    dx2, db2, dr2 = sdrop.epilogue_backward(x, dy, 0.3, bias=b, residual=r, act=act, post=post,
                                            want_dbias=False, want_dresidual=False, **kw)
    assert bits_equal(dx2, dx) and db2 is None and dr2 is None


def test_epilogue_without_bias_or_residual_and_unbatched():
    x = rand((6, 4, 4), seed=5)
    y = sdrop.epilogue(x, 0.5, seed=1, mask_axes=(0,), channel_axis=0)  # relu, no bias
    assert bits_equal(y, sdrop.spatial_dropout(_relu(x), 0.5, seed=1, mask_axes=(0,)))
    dx, db, dr = sdrop.epilogue_backward(x, np.ones_like(x), 0.5, seed=1, mask_axes=(0,),
                                         channel_axis=0)
    assert db is None and dr is None
    b = rand((6,), seed=6)
    y = sdrop.epilogue(x, 0.5, seed=1, bias=b, mask_axes=(0,), channel_axis=-3, act="identity")
    assert bits_equal(y, sdrop.spatial_dropout(x + b[:, None, None], 0.5, seed=1, mask_axes=(0,)))


def test_epilogue_errors_carry_the_c_message():
    x = rand((2, 6, 3, 3))
    with pytest.raises(sdrop.SdropInvalidArgument, match=r"bias.shape must be \[6\]"):
        sdrop.epilogue(x, 0.5, seed=1, bias=np.zeros(5, np.float32))
    with pytest.raises(sdrop.SdropInvalidArgument, match="residual.shape"):
        sdrop.epilogue(x, 0.5, seed=1, residual=x[:, :3])
    with pytest.raises(ValueError, match="activation must be 'identity' or 'relu'"):
        sdrop.epilogue(x, 0.5, seed=1, act="gelu")
    with pytest.raises(sdrop.SdropError, match="bias"):
        sdrop.epilogue(x, 0.5, seed=1, bias=np.zeros(6, np.float64))
