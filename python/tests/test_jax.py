"""sdrop.jax: the XLA FFI handlers under jit, grad and vmap, against the reference (ref.py) and
the NumPy and PyTorch paths (docs/python.md#jax)."""
import contextlib
import re
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.ad_checkpoint  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_dtypes  # noqa: E402

import ref  # noqa: E402
import vm  # noqa: E402
import sdrop  # noqa: E402
import sdrop.jax as sj  # noqa: E402

U32 = 0xFFFFFFFF
SEEDS = [(0, 0), (1234, 7), (2**63 + 5, 2**40 + 3)]


def bits(a):
    a = np.ascontiguousarray(np.asarray(a))
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    return np.array_equal(bits(a), bits(b))


def rand(shape, dtype=np.float32, seed=0):
    """|x| >= 0.5: a kept element is never zero, so the mask can be read back."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return (x + np.where(x >= 0, 0.5, -0.5)).astype(dtype)


def words(v):
    return np.array([v & U32, v >> 32], np.uint32)


def as_int(w):
    w = np.asarray(w, np.uint64)
    return int(w[0]) | int(w[1]) << 32


# ---- values ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_forward_equals_numpy_api_and_reference(dtype, layout):
    x = rand((4, 6, 3, 5), dtype)
    axes = sdrop.spatial_axes(4, layout)
    for p in (0.0, 0.3, 1.0):
        for seed, offset in SEEDS:
            with jax.enable_x64(True) if dtype == np.float64 else contextlib.nullcontext():
                y = sj.spatial_dropout(jnp.asarray(x), p, seed=seed, offset=offset, layout=layout)
            want = sdrop.spatial_dropout(x, p, seed=seed, offset=offset, layout=layout)
            assert same_bits(y, want), (p, seed, offset)
            if dtype != np.float16:
                assert same_bits(y, ref.dropout(x, p, seed, offset, axes)), (p, seed, offset)


def test_bfloat16_flags_and_mask_axes():
    x32 = rand((3, 5, 4))
    xb = x32.astype(ml_dtypes.bfloat16)
    y = sj.spatial_dropout(jnp.asarray(xb), 0.1, seed=9, offset=2)
    want = ref.dropout(xb.astype(np.float32), 0.1, 9, 2, 0b11).astype(ml_dtypes.bfloat16)
    assert same_bits(y, want)
    # scale_in_dtype: the scale rounded to bfloat16 first (1/(1-0.1) -> 1.109375)
    ys = sj.spatial_dropout(jnp.asarray(xb), 0.1, seed=9, offset=2, scale_in_dtype=True)
    keep = ref.keep_mask((3, 5, 1), 0.1, 9, 2)
    want_s = np.where(keep, xb.astype(np.float32) * np.float32(1.109375), 0).astype(ml_dtypes.bfloat16)
    assert same_bits(ys, want_s)
    # nan_propagate: dropped = x * 0 (NaN stays NaN, negative gives -0.0)
    xn = -np.abs(x32)
    yn = sj.spatial_dropout(jnp.asarray(xn), 1.0, seed=1, nan_propagate=True)
    assert same_bits(yn, np.full_like(xn, -0.0))
    # any mask axes: ordinary dropout (all axes) and per-sample (axis 0)
    for axes in [(0, 1, 2), (0,), (-1,)]:
        bitmask = sdrop.mask_axes_bits(axes, 3)
        assert same_bits(sj.spatial_dropout(jnp.asarray(x32), 0.5, seed=4, mask_axes=axes),
                         ref.dropout(x32, 0.5, 4, 0, bitmask))


def test_empty_and_scalar_shapes():
    assert sj.spatial_dropout(jnp.zeros((0, 3, 2)), 0.5, seed=1).shape == (0, 3, 2)
    x = np.float32(2.5)
    y = sj.spatial_dropout(jnp.asarray(x), 0.5, seed=3, mask_axes=())
    assert same_bits(y, ref.dropout(np.asarray(x), 0.5, 3, 0, 0))


# ---- masks: the same bits as NumPy and PyTorch --------------------------------------------------
def test_mask_equals_numpy_and_torch():
    torch = pytest.importorskip("torch")
    import sdrop.torch as st
    shape = (5, 7, 3, 2)
    for layout in ("channels_first", "channels_last"):
        for seed, offset in SEEDS:
            m = sj.mask(shape, 0.4, seed=seed, offset=offset, layout=layout)
            assert m.dtype == jnp.uint8
            mn = sdrop.mask(shape, 0.4, seed=seed, offset=offset, layout=layout)
            mt = st.mask(torch.empty(shape), 0.4, seed=seed, offset=offset, layout=layout)
            assert np.array_equal(np.asarray(m), mn) and np.array_equal(mn, mt.numpy())
    mb = sj.mask(jnp.zeros(shape), 0.4, seed=3, dtype=bool)
    assert mb.dtype == jnp.bool_ and mb.shape == (5, 7, 1, 1)
    assert np.array_equal(np.asarray(mb), ref.keep_mask((5, 7, 1, 1), 0.4, 3, 0))


def test_apply_mask_and_its_gradient():
    x = rand((4, 6, 3))
    m = sj.mask(x.shape, 0.5, seed=8, offset=1)
    y = sj.apply_mask(jnp.asarray(x), m, 0.5)
    assert same_bits(y, sj.spatial_dropout(jnp.asarray(x), 0.5, seed=8, offset=1))
    assert same_bits(y, sdrop.apply_mask(x, np.asarray(m), 0.5))
    w = jnp.asarray(rand(x.shape, seed=1))
    g = jax.grad(lambda v: jnp.sum(sj.apply_mask(v, m, 0.5) * w))(jnp.asarray(x))
    assert same_bits(g, sdrop.apply_mask(np.asarray(w), np.asarray(m), 0.5))


# ---- seeds, offsets and keys --------------------------------------------------------------------
def test_jit_takes_seed_and_offset_as_operands():
    x = jnp.asarray(rand((3, 8, 2, 2)))
    f = jax.jit(lambda x, s, o: sj.spatial_dropout(x, 0.5, seed=s, offset=o))
    for step in range(4):
        y = f(x, jnp.uint32(77), jnp.uint32(step))
        assert same_bits(y, sdrop.spatial_dropout(np.asarray(x), 0.5, seed=77, offset=step))
    f(x, jnp.asarray(words(2**40 + 1)), jnp.asarray(words(2**33 + 9)))  # (low, high) words
    assert f._cache_size() == 2  # one trace per operand shape: steps do not recompile
    y = f(x, jnp.asarray(words(2**40 + 1)), jnp.asarray(words(2**33 + 9)))
    assert same_bits(y, sdrop.spatial_dropout(np.asarray(x), 0.5, seed=2**40 + 1, offset=2**33 + 9))
    # a signed 32-bit scalar is taken modulo 2**32
    y = f(x, jnp.int32(-1), jnp.int32(3))
    assert same_bits(y, sdrop.spatial_dropout(np.asarray(x), 0.5, seed=U32, offset=3))


def test_uint64_operands_with_x64():
    x = rand((2, 8, 3))
    with jax.enable_x64(True):
        f = jax.jit(lambda x, s, o: sj.spatial_dropout(x, 0.5, seed=s, offset=o))
        for seed, offset in SEEDS:
            y = f(jnp.asarray(x), jnp.uint64(seed), jnp.uint64(offset))
            assert same_bits(y, sdrop.spatial_dropout(x, 0.5, seed=seed, offset=offset))
        y = f(jnp.asarray(x), jnp.int64(-2), jnp.int64(5))  # modulo 2**64
        assert same_bits(y, sdrop.spatial_dropout(x, 0.5, seed=2**64 - 2, offset=5))


def test_key_gives_seed_and_offset():
    x = rand((4, 8, 2))
    key = jax.random.key(42)
    w = np.asarray(jax.random.bits(key, (4,), jnp.uint32))
    seed, offset = as_int(w[:2]), as_int(w[2:])
    want = sdrop.spatial_dropout(x, 0.5, seed=seed, offset=offset)
    assert same_bits(sj.spatial_dropout(jnp.asarray(x), 0.5, key=key), want)
    assert same_bits(jax.jit(lambda x, k: sj.spatial_dropout(x, 0.5, key=k))(jnp.asarray(x), key), want)
    s, o = sj.seed_offset(key)
    assert as_int(s) == seed and as_int(o) == offset
    legacy = jax.random.PRNGKey(42)  # raw uint32[2] keys work too
    w = np.asarray(jax.random.bits(legacy, (4,), jnp.uint32))
    assert np.array_equal(np.asarray(sj.mask(x.shape, 0.5, key=legacy)),
                          sdrop.mask(x.shape, 0.5, seed=as_int(w[:2]), offset=as_int(w[2:])))


# ---- grad ----------------------------------------------------------------------------------------
def test_grad_regenerates_the_mask_and_saves_only_the_parameters(capsys):
    x = jnp.asarray(rand((4, 6, 5, 3)))
    w = jnp.asarray(rand(x.shape, seed=1))

    def loss(x, step):
        return jnp.sum(sj.spatial_dropout(x, 0.3, seed=5, offset=step) * w)

    for step in (0, 1):
        g = jax.jit(jax.grad(loss))(x, jnp.uint32(step))
        want = sdrop.spatial_dropout_backward(np.asarray(w), 0.3, seed=5, offset=step)
        assert same_bits(g, want)
        assert same_bits(g, ref.dropout(np.asarray(w), 0.3, 5, step, 0b11))
    # residuals: the two (seed, offset) words, nothing of x's size
    jax.ad_checkpoint.print_saved_residuals(
        lambda x: jnp.sum(sj.spatial_dropout(x, 0.3, seed=5, offset=jnp.uint32(1))), x)
    saved = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(saved) == 2 and all(re.match(r"u32\[2\] ", line) for line in saved), saved


def test_backward_api_and_second_order():
    dy = jnp.asarray(rand((3, 4, 6)))
    dx = sj.spatial_dropout_backward(dy, 0.5, seed=2, offset=1)
    assert same_bits(dx, sdrop.spatial_dropout_backward(np.asarray(dy), 0.5, seed=2, offset=1))
    # the backward's own vjp is the forward (the operation is its own adjoint)
    _, vjp = jax.vjp(lambda g: sj.spatial_dropout_backward(g, 0.5, seed=2, offset=1), dy)
    assert same_bits(vjp(dy)[0], sj.spatial_dropout(dy, 0.5, seed=2, offset=1))
    # grad of a function of the gradient (reverse over reverse)
    f = lambda x: jnp.sum(sj.spatial_dropout(x, 0.5, seed=2, offset=1) ** 2)  # noqa: E731
    hvp = jax.grad(lambda x: jnp.sum(jax.grad(f)(x) * dy))(dy)
    keep = np.broadcast_to(ref.keep_mask((3, 4, 1), 0.5, 2, 1), dy.shape)
    np.testing.assert_allclose(np.asarray(hvp), np.where(keep, 2 * 4 * np.asarray(dy), 0), rtol=1e-6)


# ---- vmap ----------------------------------------------------------------------------------------
def test_vmap_is_the_per_element_call():
    xs = jnp.asarray(rand((3, 4, 5, 2)))  # vmapped over axis 0: each element is (4, 5, 2)
    f = lambda x, s, o: sj.spatial_dropout(x, 0.5, seed=s, offset=o)  # noqa: E731
    # unbatched (seed, offset): every element gets the same mask, as f(xs[i]) would
    y = jax.vmap(f, in_axes=(0, None, None))(xs, 11, 2)
    for i in range(3):
        assert same_bits(y[i], sdrop.spatial_dropout(np.asarray(xs[i]), 0.5, seed=11, offset=2))
    # batched seeds and/or offsets, batched or unbatched x: each element its own call
    seeds = jnp.asarray([1, 2, 2**31 + 3], jnp.uint32)
    offsets = jnp.asarray([0, 5, 9], jnp.uint32)
    x0 = xs[0]
    for in_axes, args in [((0, 0, None), (xs, seeds, 4)), ((None, None, 0), (x0, 3, offsets)),
                          ((0, 0, 0), (xs, seeds, offsets))]:
        y = jax.jit(jax.vmap(f, in_axes=in_axes))(*args)
        for i in range(3):
            xi, si, oi = (a[i] if ax == 0 else a for a, ax in zip(args, in_axes))
            want = sdrop.spatial_dropout(np.asarray(xi), 0.5, seed=int(si), offset=int(oi))
            assert same_bits(y[i], want), (in_axes, i)
    keys = jax.random.split(jax.random.key(0), 3)
    y = jax.vmap(lambda x, k: sj.spatial_dropout(x, 0.5, key=k))(xs, keys)
    for i in range(3):
        assert same_bits(y[i], sj.spatial_dropout(xs[i], 0.5, key=keys[i]))


def test_vmap_nested_grad_mask_and_apply_mask():
    xs = jnp.asarray(rand((2, 3, 4, 5)))
    f = lambda x, o: sj.spatial_dropout(x, 0.5, seed=6, offset=o)  # noqa: E731
    offsets = jnp.arange(6, dtype=jnp.uint32).reshape(2, 3)
    y = jax.vmap(jax.vmap(f))(xs, offsets)  # two batch axes, per-element offsets
    for i in range(2):
        for j in range(3):
            assert same_bits(y[i, j], sdrop.spatial_dropout(np.asarray(xs[i, j]), 0.5, seed=6,
                                                           offset=int(offsets[i, j])))
    y = jax.vmap(jax.vmap(lambda x: f(x, 1)))(xs)  # nested, unbatched randomness: one call
    assert same_bits(y[1, 2], sdrop.spatial_dropout(np.asarray(xs[1, 2]), 0.5, seed=6, offset=1))
    # per-example gradients
    w = jnp.asarray(rand((4, 5), seed=3))
    g = jax.vmap(jax.grad(lambda x, o: jnp.sum(f(x, o) * w)))(xs[0], offsets[0])
    for j in range(3):
        assert same_bits(g[j], sdrop.spatial_dropout_backward(np.broadcast_to(np.asarray(w), (4, 5)).copy(),
                                                              0.5, seed=6, offset=j))
    # masks and apply_mask under vmap
    ms = jax.vmap(lambda o: sj.mask((4, 5), 0.5, seed=6, offset=o))(offsets[0])
    for j in range(3):
        assert np.array_equal(np.asarray(ms[j]), sdrop.mask((4, 5), 0.5, seed=6, offset=j))
    ya = jax.vmap(lambda x, m: sj.apply_mask(x, m, 0.5))(xs[0], ms)  # batched masks
    assert same_bits(ya, jax.vmap(f)(xs[0], offsets[0]))
    yu = jax.vmap(lambda x: sj.apply_mask(x, ms[1], 0.5))(xs[0])  # one mask for all
    for j in range(3):
        assert same_bits(yu[j], f(xs[0, j], 1))


# ---- refusals ------------------------------------------------------------------------------------
def test_bad_arguments_are_refused_naming_them():
    x = jnp.asarray(rand((2, 3, 4)))
    with pytest.raises(sdrop.SdropInvalidArgument, match=r"p must be in \[0, 1\], got 1.5"):
        sj.spatial_dropout(x, 1.5, seed=1)
    with pytest.raises(TypeError, match="p must be a Python number"):
        jax.jit(lambda x, p: sj.spatial_dropout(x, p, seed=1))(x, 0.5)
    with pytest.raises(sdrop.SdropUnsupported, match="x dtype must be .* got int32"):
        sj.spatial_dropout(jnp.zeros((2, 3), jnp.int32), 0.5, seed=1)
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\), got -1"):
        sj.spatial_dropout(x, 0.5, seed=-1)
    with pytest.raises(TypeError, match="offset must be an integer scalar .* got float32"):
        sj.spatial_dropout(x, 0.5, seed=1, offset=jnp.float32(1))
    with pytest.raises(ValueError, match="either seed= .* or key="):
        sj.spatial_dropout(x, 0.5, seed=1, key=jax.random.key(0))
    with pytest.raises(TypeError, match="seed= .* or key= is required"):
        sj.spatial_dropout(x, 0.5)
    with pytest.raises(ValueError, match="layout must be"):
        sj.spatial_dropout(x, 0.5, seed=1, layout="nchw")
    with pytest.raises(TypeError, match="mask dtype must be uint8 or bool, got float32"):
        sj.mask(x, 0.5, seed=1, dtype=np.float32)


def test_library_errors_come_back_from_the_handler():
    x9 = jnp.zeros((1,) * 9)
    # eager: sdrop's exception class with the C library's message (sdrop_last_error)
    with pytest.raises(sdrop.SdropInvalidArgument, match=r"x.ndim must be in \[0, 8\], got 9"):
        sj.spatial_dropout(x9, 0.5, seed=1)
    with pytest.raises(sdrop.SdropInvalidArgument, match=r"ndim must be in \[0, 8\], got 20"):
        sj.mask((1,) * 20, 0.5, seed=1)
    # under jit: JAX raises the handler's ffi::Error, which carries the same message
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"ndim must be in \[0, 8\], got 9.*SDROP_ERROR_INVALID_ARGUMENT"):
        jax.block_until_ready(jax.jit(lambda x: sj.spatial_dropout(x, 0.5, seed=1))(x9))
    x = jnp.zeros((2, 3, 4))
    with pytest.raises(sdrop.SdropInvalidArgument, match="mask"):
        sj.apply_mask(x, jnp.ones((2, 4, 1), jnp.uint8), 0.5, mask_axes=(0, 1))
    with pytest.raises(sdrop.SdropInvalidArgument, match="mask_axes 0x8 has bits at or above"):
        sj.spatial_dropout(x, 0.5, seed=1, mask_axes=0b1000)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and smaps: Linux")
def test_large_results_are_advised_to_huge_pages():
    # docs/python.md#jax: XLA gives every call a fresh result buffer; the forward, backward
    # and apply-mask handlers advise one of 4 MiB or more to transparent huge pages, so its
    # first touch faults per 2 MiB, not per 4 KiB.
    x = jnp.ones((4, 64, 64, 64), jnp.float32)  # 4 MiB
    for y in (sj.spatial_dropout(x, 0.5, seed=1, offset=2),
              sj.spatial_dropout_backward(x, 0.5, seed=1, offset=2),
              sj.apply_mask(x, jnp.ones((4, 64, 1, 1), jnp.uint8), 0.5)):
        y = jax.block_until_ready(y)
        assert vm.advised_to_huge_pages(y.unsafe_buffer_pointer(), y.nbytes)
