"""sdrop for Keras 3: SpatialDropout1D, SpatialDropout2D, SpatialDropout3D.

Drop-ins for ``keras.layers.SpatialDropout1D/2D/3D`` (the same constructor, noise shapes,
``training`` switch and config) whose masks come from sdrop's Philox kernels through the
backend's native ops: ``sdrop.jax`` (XLA FFI) on the jax backend, ``sdrop.torch`` (the
operator library) on the torch backend. Other backends are refused at construction.

- Noise shapes as Keras: 1D ``(N, T, C)`` drops ``(N, 1, C)``; 2D/3D channels_last (the
  default, ``keras.config.image_data_format()``) ``(N, 1, 1, C)``, channels_first
  ``(N, C, 1, 1)``. In inference (``training=False``) and at ``rate=0`` the input is returned.
- Seeds: each layer owns a ``keras.random.SeedGenerator`` whose state is ``[seed, step]``;
  a training call uses ``(seed, step)`` as sdrop's ``(seed, offset)`` and advances ``step``,
  so every training call draws a new mask and a layer with a seed repeats its sequence. The
  state is a non-trainable Keras variable, so it advances inside jitted train steps on the
  jax backend, and it is saved with the model (``.keras``), so a loaded model continues the
  sequence. ``seed=None`` picks a random seed as Keras does.
- Arithmetic: dropped elements are exactly +0.0 as in Keras; kept ones are ``x * (1/(1-rate))``
  where Keras computes ``x / (1-rate)``: the two can differ in the last bit (docs/python.md).
"""
from __future__ import annotations

import numbers
import operator

import keras

import sdrop as _sd

__all__ = ["SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D"]

_BACKENDS = ("jax", "torch")
_STATE_KEY = "seed_generator_state"  # the name the state is saved under in a .keras file


def _check_backend():
    b = keras.backend.backend()
    if b not in _BACKENDS:
        raise NotImplementedError(
            f"sdrop.keras runs on the jax and torch backends, got {b!r} (set KERAS_BACKEND)")
    return b


class _SpatialDropout(keras.layers.Layer):
    _rank = None

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self._backend = _check_backend()
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate <= 1:
            raise ValueError("Invalid value received for argument `rate`. Expected a float "
                             f"value between 0 and 1. Received: rate={rate!r}")
        if seed is not None:
            try:
                seed = operator.index(seed)
            except TypeError:
                raise ValueError(f"Argument `seed` must be an integer or None. Received: "
                                 f"seed={seed!r}") from None
            if not 0 <= seed < 1 << 32:
                raise ValueError(f"Argument `seed` must be in [0, 2**32) (a Keras seed is "
                                 f"a uint32). Received: seed={seed}")
        if data_format is None:
            data_format = keras.config.image_data_format()
        data_format = str(data_format).lower()
        if data_format not in ("channels_first", "channels_last"):
            raise ValueError("The `data_format` argument must be one of {'channels_first', "
                             f"'channels_last'}}. Received: data_format={data_format}")
        self.rate = rate
        self.seed = seed
        self.data_format = data_format
        state_seed = seed
        if seed is not None and seed >= 1 << 31 and self._backend == "torch":
            state_seed = seed - (1 << 32)  # torch keeps the uint32 seed in an int32: same bits
        self.seed_generator = keras.random.SeedGenerator(state_seed)
        self.input_spec = keras.layers.InputSpec(ndim=self._rank)
        self.supports_masking = True
        self._build_at_init()

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        state = self.seed_generator.next()  # [seed, step] before the step advances
        axes = _sd.mask_axes_bits(None, self._rank, self.data_format)
        if self._backend == "jax":
            from . import jax as sj
            return sj.spatial_dropout(inputs, float(self.rate), seed=state[0], offset=state[1],
                                      mask_axes=axes)
        import torch
        from . import torch as st
        # uint32 values in torch's int32 state -> the int64 CPU scalars the operator takes.
        words = (state.to(torch.int64) & 0xFFFFFFFF).cpu()
        return st._dropout(inputs, words[0], words[1], float(self.rate), axes, 0, None, None)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed, "data_format": self.data_format})
        return config

    # The seed generator's state ([seed, step]) is saved too (Keras's own layers drop it),
    # so a loaded model draws the masks the saved one would have drawn next.
    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[_STATE_KEY] = self.seed_generator.state

    def load_own_variables(self, store):
        state = store[_STATE_KEY] if _STATE_KEY in store.keys() else None
        rest = {k: store[k] for k in store.keys() if k != _STATE_KEY}
        super().load_own_variables(rest)
        if state is not None:
            self.seed_generator.state.assign(state)


@keras.saving.register_keras_serializable(package="sdrop")
class SpatialDropout1D(_SpatialDropout):
    """Spatial 1D dropout of ``(N, T, C)`` input: whole ``(n, :, c)`` rows dropped, noise
    shape ``(N, 1, C)``. ``SpatialDropout1D(rate, seed=None, name=None, dtype=None)``."""

    _rank = 3

    def __init__(self, rate, seed=None, name=None, dtype=None, **kwargs):
        # Keras's 1D layer has no data_format: (N, T, C), channels last.
        super().__init__(rate, data_format="channels_last", seed=seed, name=name, dtype=dtype,
                         **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["data_format"]
        return config


@keras.saving.register_keras_serializable(package="sdrop")
class SpatialDropout2D(_SpatialDropout):
    """Spatial 2D dropout of 4-D input: whole feature maps dropped, noise shape
    ``(N, 1, 1, C)`` (channels_last) or ``(N, C, 1, 1)`` (channels_first).
    ``SpatialDropout2D(rate, data_format=None, seed=None, name=None, dtype=None)``."""

    _rank = 4


@keras.saving.register_keras_serializable(package="sdrop")
class SpatialDropout3D(_SpatialDropout):
    """Spatial 3D dropout of 5-D input: whole volumes dropped, noise shape
    ``(N, 1, 1, 1, C)`` (channels_last) or ``(N, C, 1, 1, 1)`` (channels_first).
    ``SpatialDropout3D(rate, data_format=None, seed=None, name=None, dtype=None)``."""

    _rank = 5
