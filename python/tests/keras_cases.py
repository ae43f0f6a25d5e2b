"""sdrop.keras on one Keras backend (KERAS_BACKEND, fixed when keras is imported), run by
test_keras.py in a subprocess per backend. Not collected by itself (no test_ prefix)."""
import os

import numpy as np
import pytest

BACKEND = os.environ["KERAS_BACKEND"]
import keras  # noqa: E402

import sdrop  # noqa: E402
import sdrop.keras as sk  # noqa: E402

assert keras.backend.backend() == BACKEND

S = 1234
LAYERS = {1: sk.SpatialDropout1D, 2: sk.SpatialDropout2D, 3: sk.SpatialDropout3D}
KERAS = {1: keras.layers.SpatialDropout1D, 2: keras.layers.SpatialDropout2D,
         3: keras.layers.SpatialDropout3D}
SHAPES = {1: (4, 5, 6), 2: (4, 3, 5, 6), 3: (3, 2, 3, 4, 5)}  # channels_last unless permuted


def nonzero(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape)
    return (x + np.where(x >= 0, 0.5, -0.5)).astype(np.float32)


def to_np(t):
    return keras.ops.convert_to_numpy(t)


def cases():
    """(dims, data_format, layout for sdrop, input shape)."""
    for d in (1, 2, 3):
        for fmt in ((None,) if d == 1 else ("channels_last", "channels_first")):
            yield d, fmt, "channels_last" if fmt in (None, "channels_last") else "channels_first"


def make(d, fmt, rate, seed):
    return LAYERS[d](rate, seed=seed) if d == 1 else LAYERS[d](rate, data_format=fmt, seed=seed)


def shape_of(d, layout):
    s = SHAPES[d]
    return s if layout == "channels_last" else (s[0], s[-1]) + s[1:-1]


def noise_shape(shape, layout):
    if layout == "channels_last":
        return (shape[0],) + (1,) * (len(shape) - 2) + (shape[-1],)
    return shape[:2] + (1,) * (len(shape) - 2)


@pytest.mark.parametrize("d,fmt,layout", list(cases()))
def test_layer_masks_are_the_plain_api_masks(d, fmt, layout):
    x = nonzero(shape_of(d, layout))
    layer = make(d, fmt, 0.5, S)
    for step in range(3):  # each training call: the next step of (seed, step)
        y = to_np(layer(x, training=True))
        want = sdrop.spatial_dropout(x, 0.5, seed=S, offset=step, layout=layout)
        assert np.array_equal(y.view(np.uint32), want.view(np.uint32)), step
        m = sdrop.mask(x.shape, 0.5, seed=S, offset=step, layout=layout)
        assert m.shape == noise_shape(x.shape, layout)
        assert np.array_equal((y != 0), np.broadcast_to(m.astype(bool), x.shape))
    assert [int(v) & 0xFFFFFFFF for v in to_np(layer.seed_generator.state)] == [S, 3]


# 3D takes the same path as 2D in both implementations; each case costs Keras's eager
# jax.random compile (~2 s), so 1D and both 2D formats stand for the rest.
@pytest.mark.parametrize("d,fmt,layout", [c for c in cases() if c[0] < 3])
def test_keras_own_layer_drops_the_same_units_shape(d, fmt, layout):
    """Keras's own SpatialDropoutND: whole (sample, channel) units of the same noise shape
    dropped, kept ones scaled by 1/(1-rate) (to within the last bit: x/k vs x*(1/k))."""
    x = nonzero((16,) + shape_of(d, layout)[1:])
    kw = {} if d == 1 else {"data_format": fmt}
    theirs = to_np(KERAS[d](0.5, seed=3, **kw)(x, training=True))
    ours = to_np(make(d, fmt, 0.5, 3)(x, training=True))
    ns = noise_shape(x.shape, layout)
    red = tuple(i for i in range(x.ndim) if ns[i] == 1)
    for y in (theirs, ours):
        kept = (y != 0)
        unit = kept.any(axis=red, keepdims=True)
        assert np.array_equal(kept, np.broadcast_to(unit, x.shape))  # all-or-none per unit
        assert 0 < unit.sum() < unit.size
        np.testing.assert_allclose(y[kept], x[kept] * 2.0, rtol=1.2e-7, atol=0)


def test_inference_is_identity_and_does_not_advance():
    x = nonzero(SHAPES[2])
    layer = sk.SpatialDropout2D(0.5, seed=S)
    for y in (layer(x), layer(x, training=False)):
        assert np.array_equal(to_np(y), x)
    assert np.array_equal(to_np(sk.SpatialDropout2D(0.0, seed=1)(x, training=True)), x)
    assert int(to_np(layer.seed_generator.state)[1]) == 0
    zeros = to_np(sk.SpatialDropout2D(1.0, seed=1)(-x, training=True))
    assert np.array_equal(zeros.view(np.uint32), np.zeros_like(x).view(np.uint32))  # +0.0


def test_constructor_config_and_refusals():
    layer = sk.SpatialDropout2D(0.25, data_format="channels_first", seed=2**32 - 1,
                                name="sd", dtype="float32")
    cfg = layer.get_config()
    assert (cfg["rate"], cfg["seed"], cfg["data_format"], cfg["name"]) == (0.25, 2**32 - 1, "channels_first", "sd")
    again = sk.SpatialDropout2D.from_config(cfg)
    assert again.get_config() == cfg
    back = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(back) is sk.SpatialDropout2D and back.get_config() == cfg
    x = nonzero((2, 3, 4, 4))
    assert np.array_equal(to_np(back(x, training=True)), to_np(layer(x, training=True)))
    assert np.array_equal(to_np(layer(x, training=True)),
                          sdrop.spatial_dropout(x, 0.25, seed=2**32 - 1, offset=1))
    assert "data_format" not in sk.SpatialDropout1D(0.5).get_config()
    assert sk.SpatialDropout3D(0.5).data_format == keras.config.image_data_format()
    assert sk.SpatialDropout2D(0.5).seed_generator is not None  # seed=None: Keras picks one
    with pytest.raises(ValueError, match="rate=1.5"):
        sk.SpatialDropout2D(1.5)
    with pytest.raises(ValueError, match="data_format=nchw"):
        sk.SpatialDropout2D(0.5, data_format="nchw")
    with pytest.raises(ValueError, match="seed=-1"):
        sk.SpatialDropout2D(0.5, seed=-1)
    with pytest.raises(ValueError, match="expected ndim=4"):
        sk.SpatialDropout2D(0.5)(np.zeros((2, 3, 4), np.float32))


# ---- a model: conv -> SpatialDropout2D -> dense --------------------------------------------------
def build(seed=S):
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((6, 6, 2)),
        keras.layers.Conv2D(4, 3, padding="same", name="conv"),
        sk.SpatialDropout2D(0.5, seed=seed, name="drop"),
        keras.layers.Flatten(),
        keras.layers.Dense(3, name="dense"),
    ])


def loss_fn(out, t):
    return keras.ops.mean((out - t) ** 2)


def grads(model, x, t, scale=None):
    """Gradients of the loss w.r.t. the trainable weights, through the model (scale=None) or
    through conv -> (* scale) -> dense, the reference with a given mask."""
    def forward(weights=None):
        if scale is None:
            return model(x, training=True)
        conv, dense = model.get_layer("conv"), model.get_layer("dense")
        h = conv(x) * scale
        return dense(keras.ops.reshape(h, (h.shape[0], -1)))

    if BACKEND == "jax":
        import jax
        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]

        def f(tv):
            if scale is None:
                out, _ = model.stateless_call(tv, ntv, x, training=True)
            else:
                with keras.StatelessScope(state_mapping=list(zip(model.trainable_variables, tv))):
                    out = forward()
            return loss_fn(out, t)
        return [np.asarray(g) for g in jax.grad(f)(tv)]
    for v in model.trainable_variables:
        v.value.grad = None
    loss_fn(forward(), keras.ops.convert_to_tensor(t)).backward()
    return [v.value.grad.numpy().copy() for v in model.trainable_variables]


def test_model_gradient_training_and_save_load(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 6, 6, 2)).astype(np.float32)
    t = rng.standard_normal((8, 3)).astype(np.float32)
    model = build()
    drop = model.get_layer("drop")
    # the gradient through sdrop's layer equals the reference with the plain API's mask
    m = sdrop.mask((8, 6, 6, 4), 0.5, seed=S, offset=0, layout="channels_last")
    scale = keras.ops.convert_to_tensor(m.astype(np.float32) * np.float32(2.0))
    g_ref = grads(model, x, t, scale)
    g = grads(model, x, t)
    assert len(g) == 4 and any(np.abs(a).sum() > 0 for a in g)
    for a, b in zip(g, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    if BACKEND == "torch":  # eager: the call advanced the step; on jax stateless_call did not
        assert int(to_np(drop.seed_generator.state)[1]) == 1
        drop.seed_generator.state.assign(np.array([S, 0], np.int32))
    # fit (jitted train step on jax): the step advances once per batch, inside the step
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    assert model.jit_compile == (BACKEND == "jax")  # jax: fit's train step is jax.jit'ed
    before = [np.array(to_np(v)) for v in model.trainable_variables]
    hist = model.fit(x, t, batch_size=4, epochs=3, verbose=0, shuffle=False)
    assert int(to_np(drop.seed_generator.state)[1]) == 6
    assert all(np.isfinite(hist.history["loss"]))
    assert all(not np.array_equal(a, to_np(b)) for a, b in zip(before, model.trainable_variables))
    # save / load: same class, config, weights, inference outputs and next training mask
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    ld = loaded.get_layer("drop")
    assert type(ld) is sk.SpatialDropout2D and ld.get_config() == drop.get_config()
    assert np.array_equal(to_np(loaded.predict(x, verbose=0)), to_np(model.predict(x, verbose=0)))
    assert np.array_equal(to_np(ld.seed_generator.state), to_np(drop.seed_generator.state))
    h = nonzero((8, 6, 6, 4))
    assert np.array_equal(to_np(ld(h, training=True)), to_np(drop(h, training=True)))
    assert np.array_equal(to_np(drop(h, training=False)), h)
