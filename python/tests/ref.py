"""A small NumPy reference of docs/semantics.md and docs/rng.md (Philox4x32-10 in uint64
arithmetic)."""
import numpy as np

M32 = np.uint64(0xFFFFFFFF)
M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = 0x9E3779B9, 0xBB67AE85


def philox4x32_10(ctr, key):
    """ctr: 4 uint64 arrays (32-bit values), key: 2 ints. Returns 4 uint64 arrays."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in ctr)
    k0, k1 = int(key[0]) & 0xFFFFFFFF, int(key[1]) & 0xFFFFFFFF
    for _ in range(10):
        p0 = M0 * c0
        p1 = M1 * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & M32
        hi1, lo1 = p1 >> np.uint64(32), p1 & M32
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
        k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
    return c0, c1, c2, c3


def draws(seed, offset, n):
    m = np.arange(n, dtype=np.uint64)
    b = m >> np.uint64(2)
    z = np.zeros_like(b)
    out = philox4x32_10(
        (b & M32, b >> np.uint64(32), z + np.uint64(offset & 0xFFFFFFFF), z + np.uint64(offset >> 32)),
        (seed & 0xFFFFFFFF, seed >> 32))
    words = np.stack(out, axis=-1)  # (blocks, 4)
    return words[np.arange(n), (m & np.uint64(3)).astype(np.int64)]


def threshold(p):
    return int(np.rint((1.0 - p) * 2.0**32))  # rint: round half to even


def keep_mask(noise_shape, p, seed, offset):
    n = int(np.prod(noise_shape, dtype=np.int64))
    u = draws(seed, offset, n)
    return (u < np.uint64(threshold(p)) if threshold(p) < 2**32 else np.ones(n, bool)).reshape(noise_shape)


def noise_shape(shape, axes):
    return tuple(s if axes >> i & 1 else 1 for i, s in enumerate(shape))


def dropout(x, p, seed, offset, axes, multiply=False):
    keep = keep_mask(noise_shape(x.shape, axes), p, seed, offset)
    if x.dtype == np.float32:
        s = np.float32(1.0) / np.float32(1.0 - p) if p < 1 else np.float32(0)
    else:
        s = 1.0 / (1.0 - p) if p < 1 else 0.0
    scaled = x * x.dtype.type(s)
    dropped = x * x.dtype.type(0) if multiply else np.zeros_like(x)
    return np.where(keep, scaled, dropped)
