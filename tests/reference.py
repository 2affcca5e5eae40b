"""Naive reference implementations, written from PyTorch's GridSampler.h semantics.

Plain Python loops in float64, no Numba and nothing imported from ``stn_numba``: slow,
obvious and independent of the library. Used on tiny shapes only.

- ``ref_affine_grid``: base grid (``linspace`` per axis) times θᵀ.
- ``ref_grid_sample``: 2-D nearest / bilinear / bicubic and 3-D nearest / trilinear, every
  padding mode. Bicubic applies padding per tap (``get_value_bounded``), Keys A = −0.75.
  ``wrap`` (not PyTorch's) takes every tap index modulo the axis size: the image repeats
  with period size pixels.
"""

import math

import numpy as np

A = -0.75


def _base(size, align_corners):
    if size == 1:
        return np.zeros(1)  # torch: linspace of one step is [0]
    lin = np.linspace(-1.0, 1.0, size)
    return lin if align_corners else lin * (size - 1) / size


def ref_affine_grid(theta, size, align_corners):
    """Sampling grid of ``theta`` (N, d, d+1) for output ``size`` (N, C, *spatial)."""
    theta = np.asarray(theta, np.float64)
    spatial = tuple(size[2:])
    d = len(spatial)
    axes = [_base(s, align_corners) for s in spatial]  # (D,) H, W
    mesh = np.meshgrid(*axes, indexing="ij")
    # last axis in (x, y[, z]) order: x runs over the last spatial axis
    base = np.stack([m for m in reversed(mesh)] + [np.ones(spatial)], -1)
    out = np.empty((theta.shape[0], *spatial, d))
    for n in range(theta.shape[0]):
        out[n] = base @ theta[n].T
    return out


def _unnormalize(c, size, align_corners):
    if align_corners:
        return (c + 1.0) / 2.0 * (size - 1)
    return ((c + 1.0) * size - 1.0) / 2.0


def _reflect(c, twice_low, twice_high):
    if twice_low == twice_high:
        return 0.0
    lo = twice_low / 2.0
    span = (twice_high - twice_low) / 2.0
    c = abs(c - lo)
    extra = math.fmod(c, span)
    flips = math.floor(c / span)
    return extra + lo if flips % 2 == 0 else span - extra + lo


def _pad(c, size, padding, align_corners):
    if padding == "border":
        return min(max(c, 0.0), size - 1.0)
    if padding == "reflection":
        if align_corners:
            c = _reflect(c, 0.0, 2.0 * (size - 1))
        else:
            c = _reflect(c, -1.0, 2.0 * size - 1.0)
        return min(max(c, 0.0), size - 1.0)
    if padding == "wrap":
        return c % size  # in [0, size]; the taps are taken modulo size again
    return c


def _tap(i, size, padding):
    """Integer tap index after padding: modulo size for wrap, else as is."""
    return i % size if padding == "wrap" else i


def _read(img, idx):
    """img[idx] if every index is inside, else 0 (zeros padding of a tap)."""
    for i, s in zip(idx, img.shape, strict=True):
        if i < 0 or i >= s:
            return 0.0
    return img[idx]


def _cubic(t):
    x1 = t + 1.0
    w0 = ((A * x1 - 5.0 * A) * x1 + 8.0 * A) * x1 - 4.0 * A
    w1 = ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0
    x2 = 1.0 - t
    w2 = ((A + 2.0) * x2 - (A + 3.0)) * x2 * x2 + 1.0
    x3 = 2.0 - t
    w3 = ((A * x3 - 5.0 * A) * x3 + 8.0 * A) * x3 - 4.0 * A
    return (w0, w1, w2, w3)


def _sample_point(img, coords, mode, padding, align_corners):
    """One channel ``img`` (spatial, axes ordered z, y, x) at normalised ``coords`` (x, y[, z])."""
    sizes = img.shape[::-1]  # W, H[, D] to match coords
    if mode == "bicubic":
        u = [_unnormalize(c, s, align_corners) for c, s in zip(coords, sizes, strict=True)]
        fx, fy = math.floor(u[0]), math.floor(u[1])
        wx, wy = _cubic(u[0] - fx), _cubic(u[1] - fy)
        total = 0.0
        for j in range(4):
            for i in range(4):
                tx = _pad(fx - 1.0 + i, sizes[0], padding, align_corners)
                ty = _pad(fy - 1.0 + j, sizes[1], padding, align_corners)
                tx, ty = _tap(int(tx), sizes[0], padding), _tap(int(ty), sizes[1], padding)
                total += wx[i] * wy[j] * _read(img, (ty, tx))
        return total
    u = [
        _pad(_unnormalize(c, s, align_corners), s, padding, align_corners)
        for c, s in zip(coords, sizes, strict=True)
    ]
    if mode == "nearest":
        # Python round: half to even
        idx = tuple(_tap(int(round(c)), s, padding) for c, s in zip(u, sizes, strict=True))[::-1]
        return _read(img, idx)
    # (bi/tri)linear: 2**d corners
    lo = [math.floor(c) for c in u]
    frac = [c - f for c, f in zip(u, lo, strict=True)]
    total = 0.0
    d = len(u)
    for corner in range(2**d):
        w = 1.0
        idx = []
        for k in range(d):
            bit = (corner >> k) & 1
            w *= frac[k] if bit else 1.0 - frac[k]
            idx.append(_tap(lo[k] + bit, sizes[k], padding))
        total += w * _read(img, tuple(reversed(idx)))
    return total


def ref_grid_sample(input, grid, mode="bilinear", padding="zeros", align_corners=False):
    """Naive grid_sample: input (N, C, *in_spatial), grid (N, *out_spatial, d) → float64."""
    x = np.asarray(input, np.float64)
    g = np.asarray(grid, np.float64)
    n, c = x.shape[:2]
    out_spatial = g.shape[1:-1]
    out = np.zeros((n, c, *out_spatial))
    for b in range(n):
        for pos in np.ndindex(*out_spatial):
            coords = g[(b, *pos)]
            for ch in range(c):
                out[(b, ch, *pos)] = _sample_point(x[b, ch], coords, mode, padding, align_corners)
    return out
