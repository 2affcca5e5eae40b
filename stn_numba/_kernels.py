"""Per-pixel kernels: one output pixel's sample, coordinate gradient and input-gradient scatter.

The one owner of the interpolation arithmetic. Each function handles one output pixel
``(n, h, w)`` (or ``(n, d, h, w)``) and all of its channels; the padding, unnormalising
and weights come from :mod:`stn_numba._coords`. The CUDA kernels
(:mod:`stn_numba._cuda`) call these functions, one thread per output pixel. The CPU
drivers (:mod:`stn_numba._cpu`) call the same pieces from row loops that keep a row's
taps and weights in scratch arrays (so that LLVM vectorises them): the formulas
(:func:`bilinear_weights`, :func:`bilinear_value`, :func:`bilinear_grads`,
:func:`bicubic_value`, :func:`trilinear_weights`,
:func:`trilinear_value`, :func:`trilinear_grads`, :func:`valid_tap`) are written once,
here, and both targets compute the same numbers in the same order.

Layout: input ``(N, C, H, W)`` / ``(N, C, D, H, W)`` (channels-last images are strided
views of the same shape); ``(gx, gy[, gz])`` are the normalised grid values of the
pixel, already read from the grid or computed from θ (:func:`grid_point_2d`).

Precision: everything is computed in the float type of ``gx`` (the grid's, θ's),
with constants and image values converted by :func:`stn_numba._coords.cast`; the θ
gradient's row sums are float64.

Where each mode's math lives:

* bilinear: :func:`bilinear_point_2d` (taps and fractions), :func:`bilinear_weights`,
  :func:`bilinear_value` (forward), :func:`bilinear_grads` (grid gradient),
  :func:`scatter_2d` (input gradient);
* trilinear: :func:`trilinear_point_3d`, :func:`trilinear_weights`,
  :func:`trilinear_value`, :func:`trilinear_grads`, :func:`scatter_3d`;
* nearest: :func:`nearest_sample_2d`, :func:`nearest_sample_3d`, and the nearest branches of
  the scatters (its grid gradient is zero);
* bicubic (2-D only): :func:`cubic_taps` (taps and Keys weights), :func:`bicubic_value`,
  the bicubic branches of :func:`grad_point_2d` and :func:`scatter_2d`;
* B-splines (``bspline2`` ... ``bspline5``, 2-D and 3-D): the weights and the prefilter in
  :mod:`stn_numba._bspline`; :func:`spline_taps` (taps through the padding),
  :func:`spline_sample_2d` / :func:`spline_sample_3d`, and the B-spline branches of the
  grid gradients and scatters. They read the prefiltered coefficients (made by the
  drivers' ``spline_coefficients``), not the image;
* padding and unnormalising (all modes): :mod:`stn_numba._coords`.
"""

import math

import numpy as np
from numba.extending import register_jitable

from ._bspline import MIRROR, PERIODIC, fold_index, spline_weight_grads, spline_weights, zero_margin
from ._coords import (
    BIG,
    base_coord,
    cast,
    cubic_weight_grads,
    cubic_weights,
    floor_index,
    inside,
    nearest_index,
    normalize,
    pad_coordinate,
    source_index,
    tap_index,
    unnormalize,
    wrap_tap,
    zero_of,
)
from ._jit import accumulate, kernel, scalar
from ._modes import (
    BICUBIC,
    BORDER,
    BSPLINE2,
    FLOW,
    NEAREST,
    PERSPECTIVE,
    REFLECTION,
    WRAP,
    ZEROS,
    spline_order,
)

BIG_SPAN = BIG / 2

# ----------------------------------------------------------------------------
# Flat work index -> output position (the CPU row loops and the CUDA grid-stride loops)
# ----------------------------------------------------------------------------


@scalar
def unravel_2d(i, A, B):
    """Flat index ``i`` over (N, A, B) -> (n, a, b); e.g. (n, h, w), or rows (n, d, h)."""
    n = i // (A * B)
    r = i - n * (A * B)
    a = r // B
    return n, a, r - a * B


@scalar
def unravel_3d(i, A, B, C):
    """Flat index ``i`` over (N, A, B, C) -> (n, a, b, c), e.g. voxels (n, d, h, w)."""
    q = i // C
    n, a, b = unravel_2d(q, A, B)
    return n, a, b, i - q * C


# ----------------------------------------------------------------------------
# Where an output pixel reads from: the grid, or θ applied to the base grid.
# ----------------------------------------------------------------------------


@scalar
def source_point_2d(grid, theta, source, n, h, w, xb, yb, align_corners):
    """Normalised source point (gx, gy) of output pixel (n, h, w), in the grid's float
    type (θ and the flow have it too; see :func:`stn_numba._coords.cast`), given
    the pixel's base-grid coordinates (xb, yb) = (x_w, y_h) of :func:`base_coord`.

    ``source`` says where it comes from (:mod:`stn_numba._modes`): False/GRID reads
    ``grid``; True/AFFINE applies θ; PERSPECTIVE applies the homography ``theta`` (NaN
    behind the camera); FLOW adds the displacement ``grid[n, h, w]`` (input pixels) to
    (w, h) and normalises it for the input size (W, H) = ``theta[0, :, 0]`` (xb, yb
    unused). The CPU drivers pass (xb, yb) from tables made once per call (a division
    per pixel less); :func:`grid_point_2d` computes them per pixel.
    """
    if source == PERSPECTIVE:
        gx, gy, _ = perspective_xy(theta, n, xb, yb)
        return gx, gy
    if source == FLOW:
        fx = grid[n, h, w, 0]
        fy = grid[n, h, w, 1]
        gx, _ = normalize(cast(w, fx) + fx, theta[0, 0, 0], align_corners)
        gy, _ = normalize(cast(h, fy) + fy, theta[0, 1, 0], align_corners)
        return gx, gy
    if source:
        gx = theta[n, 0, 0] * xb + theta[n, 0, 1] * yb + theta[n, 0, 2]
        gy = theta[n, 1, 0] * xb + theta[n, 1, 1] * yb + theta[n, 1, 2]
        return gx, gy
    return grid[n, h, w, 0], grid[n, h, w, 1]


@scalar
def grid_point_2d(grid, theta, fused, n, h, w, Ho, Wo, align_corners):
    """:func:`source_point_2d` with the base-grid coordinates computed here (the CUDA
    kernels' per-pixel form; ``fused`` is the source)."""
    xb = zero_of(grid)
    yb = xb
    if fused and fused != FLOW:
        xb = base_coord(w, Wo, align_corners, xb)
        yb = base_coord(h, Ho, align_corners, xb)
    return source_point_2d(grid, theta, fused, n, h, w, xb, yb, align_corners)


@scalar
def source_point_3d(grid, theta, source, n, d, h, w, xb, yb, zb, align_corners):
    """Normalised source point (gx, gy, gz) of output voxel (n, d, h, w), in the grid's
    float type, given its base-grid coordinates; ``source`` as in :func:`source_point_2d`
    (no PERSPECTIVE in 3-D: warp_perspective samples a 3-D homography's grid; FLOW's
    input size (W, H, D) is ``theta[0, :, 0]``)."""
    if source == FLOW:
        fx = grid[n, d, h, w, 0]
        fy = grid[n, d, h, w, 1]
        fz = grid[n, d, h, w, 2]
        gx, _ = normalize(cast(w, fx) + fx, theta[0, 0, 0], align_corners)
        gy, _ = normalize(cast(h, fy) + fy, theta[0, 1, 0], align_corners)
        gz, _ = normalize(cast(d, fz) + fz, theta[0, 2, 0], align_corners)
        return gx, gy, gz
    if source:
        gx = theta[n, 0, 0] * xb + theta[n, 0, 1] * yb + theta[n, 0, 2] * zb + theta[n, 0, 3]
        gy = theta[n, 1, 0] * xb + theta[n, 1, 1] * yb + theta[n, 1, 2] * zb + theta[n, 1, 3]
        gz = theta[n, 2, 0] * xb + theta[n, 2, 1] * yb + theta[n, 2, 2] * zb + theta[n, 2, 3]
        return gx, gy, gz
    return grid[n, d, h, w, 0], grid[n, d, h, w, 1], grid[n, d, h, w, 2]


@scalar
def grid_point_3d(grid, theta, fused, n, d, h, w, Do, Ho, Wo, align_corners):
    """:func:`source_point_3d` with the base-grid coordinates computed here."""
    xb = zero_of(grid)
    yb = xb
    zb = xb
    if fused and fused != FLOW:
        xb = base_coord(w, Wo, align_corners, xb)
        yb = base_coord(h, Ho, align_corners, xb)
        zb = base_coord(d, Do, align_corners, xb)
    return source_point_3d(grid, theta, fused, n, d, h, w, xb, yb, zb, align_corners)


# ----------------------------------------------------------------------------
# 2-D helpers
# ----------------------------------------------------------------------------


@kernel
def _value_2d(inp, n, c, y, x, like):
    """input[n, c, y, x] in like's float type, or 0 when (y, x) is outside (index -1
    means outside too)."""
    if inside(y, inp.shape[2]) and inside(x, inp.shape[3]):
        return cast(inp[n, c, y, x], like)
    return cast(0, like)


@kernel
def cubic_taps(g, size, padding_mode, align_corners):
    """Bicubic along one axis: 4 tap indices (-1 = outside), weights, weight grads, d/dg."""
    i, scale, _ = unnormalize(g, size, align_corners)
    i0, t = floor_index(i)
    fi = cast(i0, g)
    ia = tap_index(fi - cast(1, g), size, padding_mode, align_corners)
    ib = tap_index(fi, size, padding_mode, align_corners)
    ic = tap_index(fi + cast(1, g), size, padding_mode, align_corners)
    id_ = tap_index(fi + cast(2, g), size, padding_mode, align_corners)
    return (ia, ib, ic, id_), cubic_weights(t), cubic_weight_grads(t), scale


@scalar
def _cubic_row(inp, n, c, y, xs, wx):
    """Σ_i wx[i] · input[n, c, y, xs[i]] over the 4 taps of one row (tap indices from
    :func:`cubic_taps`: -1 = outside, read as 0), in this order."""
    z = cast(0, wx[0])
    if y < 0:
        return z
    return (
        wx[0] * (cast(inp[n, c, y, xs[0]], z) if xs[0] >= 0 else z)
        + wx[1] * (cast(inp[n, c, y, xs[1]], z) if xs[1] >= 0 else z)
        + wx[2] * (cast(inp[n, c, y, xs[2]], z) if xs[2] >= 0 else z)
        + wx[3] * (cast(inp[n, c, y, xs[3]], z) if xs[3] >= 0 else z)
    )


@scalar
def bicubic_value(inp, n, c, xs, ys, wx, wy):
    """Bicubic value of channel c at taps ``xs``, ``ys`` (4 each, -1: outside) with
    weights ``wx``, ``wy``: Σ_j wy[j] · Σ_i wx[i] · input[ys[j], xs[i]], in this order."""
    return (
        wy[0] * _cubic_row(inp, n, c, ys[0], xs, wx)
        + wy[1] * _cubic_row(inp, n, c, ys[1], xs, wx)
        + wy[2] * _cubic_row(inp, n, c, ys[2], xs, wx)
        + wy[3] * _cubic_row(inp, n, c, ys[3], xs, wx)
    )


# ----------------------------------------------------------------------------
# The (bi/tri)linear formulas. Their one owner: the CUDA kernels below and the
# CPU row loops (stn_numba._cpu) both call these, so the two cannot drift.
# ----------------------------------------------------------------------------


@scalar
def valid_tap(i, size, ok):
    """Tap index i if the point is valid (``ok``) and 0 <= i < size, else -1 (outside).
    Branch-free, so that the CPU row loops vectorise."""
    return i if ok & (i >= 0) & (i < size) else -1


@scalar
def bilinear_weights(tx, ty):
    """(w00, w01, w10, w11): the weights of taps (y0, x0), (y0, x1), (y1, x0), (y1, x1)
    for fractions (tx, ty), as PyTorch's products."""
    one = cast(1, tx)
    return (one - tx) * (one - ty), tx * (one - ty), (one - tx) * ty, tx * ty


@scalar
def bilinear_value(inp, n, c, xa, xb, ya, yb, w00, w01, w10, w11):
    """Σ weight · input[n, c] over the 4 taps (columns xa, xb, rows ya, yb; -1: outside,
    skipped), in PyTorch's order of additions, in the weights' float type."""
    v = cast(0, w00)
    if ya >= 0:
        if xa >= 0:
            v += cast(inp[n, c, ya, xa], v) * w00
        if xb >= 0:
            v += cast(inp[n, c, ya, xb], v) * w01
    if yb >= 0:
        if xa >= 0:
            v += cast(inp[n, c, yb, xa], v) * w10
        if xb >= 0:
            v += cast(inp[n, c, yb, xb], v) * w11
    return v


@scalar
def bilinear_grads(g, v00, v01, v10, v11, tx, ty):
    """g · (d/dtx, d/dty) of the bilinear value of corner values v.. (PyTorch's
    expressions): one channel's share of the pixel-coordinate gradient."""
    one = cast(1, tx)
    return (
        g * ((v01 - v00) * (one - ty) + (v11 - v10) * ty),
        g * ((v10 - v00) * (one - tx) + (v11 - v01) * tx),
    )


@scalar
def trilinear_weights(tx, ty, tz):
    """The 8 corner weights: ``[4·bz + 2·by + bx]`` is corner (bz, by, bx)'s (0: floor,
    1: floor + 1), (wz · wy) · wx."""
    one = cast(1, tx)
    wx0 = one - tx
    wy0 = one - ty
    wz0 = one - tz
    return (
        (wz0 * wy0) * wx0,
        (wz0 * wy0) * tx,
        (wz0 * ty) * wx0,
        (wz0 * ty) * tx,
        (tz * wy0) * wx0,
        (tz * wy0) * tx,
        (tz * ty) * wx0,
        (tz * ty) * tx,
    )


@scalar
def trilinear_value(inp, n, c, x0, x1, y0, y1, z0, z1, wt):
    """Σ weight · input[n, c] over the 8 taps (-1: outside, skipped), corners in (bz, by,
    bx) order with ``wt[4·bz + 2·by + bx]`` their weights."""
    v = cast(0, wt[0])
    for bz in range(2):
        zi = z1 if bz == 1 else z0
        if zi < 0:
            continue
        for by in range(2):
            yi = y1 if by == 1 else y0
            if yi < 0:
                continue
            for bx in range(2):
                xi = x1 if bx == 1 else x0
                if xi >= 0:
                    v += cast(inp[n, c, zi, yi, xi], v) * wt[4 * bz + 2 * by + bx]
    return v


@scalar
def trilinear_grads(v, tx, ty, tz, bx, by, bz):
    """Corner (bz, by, bx)'s share of (d/dtx, d/dty, d/dtz) for v = g · its value."""
    one = cast(1, tx)
    wx = lerp_weight(tx, bx)
    wy = lerp_weight(ty, by)
    wz = lerp_weight(tz, bz)
    sx = one if bx == 1 else -one
    sy = one if by == 1 else -one
    sz = one if bz == 1 else -one
    return v * sx * wy * wz, v * wx * sy * wz, v * wx * wy * sz


# ----------------------------------------------------------------------------
# B-splines: taps and weights along one axis, values. ``coef`` is the prefiltered
# image; with zeros padding it has a margin of zero_margin(order) pixels on every side.
# ----------------------------------------------------------------------------

#: zero_margin(order) of orders 0-5 (a tuple: a compile-time constant in the kernels).
MARGINS = tuple(zero_margin(k) for k in range(6))


@register_jitable  # called from Python (the drivers' hosts) and from the kernels
def spline_margin(mode, padding_mode):
    """Pixels of margin on each side of the coefficient array of ``mode``."""
    if padding_mode == ZEROS:
        return MARGINS[spline_order(mode)]
    return 0


@register_jitable  # called from Python (the drivers' hosts) and from the kernels
def spline_boundary(padding_mode):
    """How the prefilter extends the samples beyond the ends (and the taps read the
    coefficients there) for ``padding_mode``: see :func:`spline_taps`; ``wrap``
    repeats the samples, and its taps read the coefficients modulo the size."""
    if padding_mode == WRAP:
        return PERIODIC
    return MIRROR


@kernel
def _spline_index(i, size, padding_mode, margin):
    """Coefficient index of tap ``i`` of an axis of ``size`` pixels, -1 when outside."""
    if padding_mode == ZEROS:
        k = i + margin
        return k if k >= 0 and k < size + 2 * margin else -1
    return fold_index(i, size, spline_boundary(padding_mode))


@kernel
def spline_taps(g, size, mode, padding_mode, align_corners):
    """B-spline along one axis -> (6 coefficient indices, -1: outside or unused), their
    weights, the weights' derivatives, d(pixel coordinate)/d(grid value)).

    ``border`` and ``reflection`` move the point into [0, size - 1] as for the other
    modes, and the taps beyond the ends read the whole-sample mirror of the
    coefficients, which is the extension the prefilter assumed: the spline
    interpolates the samples and the value at the edge continues outside (border).
    ``zeros`` reads the coefficients of the image extended by zeros, on its margin.
    """
    order = spline_order(mode)
    margin = spline_margin(mode, padding_mode)
    x, scale, _ = unnormalize(g, size, align_corners)
    if padding_mode != ZEROS:
        x, d = pad_coordinate(x, size, padding_mode, align_corners)
        scale = scale * d
    i0, w = spline_weights(x, order)
    dw = spline_weight_grads(x, order)
    idx = (
        _spline_index(i0, size, padding_mode, margin),
        _spline_index(i0 + 1, size, padding_mode, margin),
        _spline_index(i0 + 2, size, padding_mode, margin),
        _spline_index(i0 + 3, size, padding_mode, margin) if order >= 3 else -1,
        _spline_index(i0 + 4, size, padding_mode, margin) if order >= 4 else -1,
        _spline_index(i0 + 5, size, padding_mode, margin) if order >= 5 else -1,
    )
    return idx, w, dw, scale


@scalar
def _spline_row(coef, n, c, y, xs, wx, order):
    """Σ_i wx[i] · coef[n, c, y, xs[i]] over the taps of one row (-1: read as 0)."""
    z = cast(0, wx[0])
    if y < 0:
        return z
    acc = z
    for i in range(order + 1):
        if xs[i] >= 0:
            acc += wx[i] * cast(coef[n, c, y, xs[i]], z)
    return acc


@scalar
def spline_value_2d(coef, n, c, xs, ys, wx, wy, order):
    """Σ_j wy[j] · Σ_i wx[i] · coef[ys[j], xs[i]], in this order."""
    acc = cast(0, wx[0])
    for j in range(order + 1):
        acc += wy[j] * _spline_row(coef, n, c, ys[j], xs, wx, order)
    return acc


@kernel
def spline_sample_2d(coef, out, n, h, w, gx, gy, mode, padding_mode, align_corners):
    m = 2 * spline_margin(mode, padding_mode)
    if gx != gx or gy != gy:
        _zero_2d(out, n, h, w)
        return
    order = spline_order(mode)
    xs, wx, _, _ = spline_taps(gx, coef.shape[3] - m, mode, padding_mode, align_corners)
    ys, wy, _, _ = spline_taps(gy, coef.shape[2] - m, mode, padding_mode, align_corners)
    for c in range(coef.shape[1]):
        out[n, c, h, w] = spline_value_2d(coef, n, c, xs, ys, wx, wy, order)


@kernel
def spline_sample_3d(coef, out, n, d, h, w, gx, gy, gz, mode, padding_mode, align_corners):
    m = 2 * spline_margin(mode, padding_mode)
    C = coef.shape[1]
    if gx != gx or gy != gy or gz != gz:
        for c in range(C):
            out[n, c, d, h, w] = 0
        return
    order = spline_order(mode)
    xs, wx, _, _ = spline_taps(gx, coef.shape[4] - m, mode, padding_mode, align_corners)
    ys, wy, _, _ = spline_taps(gy, coef.shape[3] - m, mode, padding_mode, align_corners)
    zs, wz, _, _ = spline_taps(gz, coef.shape[2] - m, mode, padding_mode, align_corners)
    for c in range(C):
        acc = cast(0, gx)
        for k in range(order + 1):
            if zs[k] < 0:
                continue
            plane = cast(0, gx)
            for j in range(order + 1):
                if ys[j] < 0:
                    continue
                row = cast(0, gx)
                for i in range(order + 1):
                    if xs[i] >= 0:
                        row += wx[i] * cast(coef[n, c, zs[k], ys[j], xs[i]], gx)
                plane += wy[j] * row
            acc += wz[k] * plane
        out[n, c, d, h, w] = acc


@kernel
def spline_grad_point_2d(coef, gout, n, h, w, gx, gy, mode, padding_mode, align_corners):
    """(dL/dgx, dL/dgy) of a B-spline output pixel, summed over channels."""
    m = 2 * spline_margin(mode, padding_mode)
    order = spline_order(mode)
    xs, wx, dwx, sx = spline_taps(gx, coef.shape[3] - m, mode, padding_mode, align_corners)
    ys, wy, dwy, sy = spline_taps(gy, coef.shape[2] - m, mode, padding_mode, align_corners)
    gix = cast(0, gx)
    giy = cast(0, gx)
    for c in range(coef.shape[1]):
        g = cast(gout[n, c, h, w], gx)
        ax = cast(0, gx)
        ay = cast(0, gx)
        for j in range(order + 1):
            ax += wy[j] * _spline_row(coef, n, c, ys[j], xs, dwx, order)
            ay += dwy[j] * _spline_row(coef, n, c, ys[j], xs, wx, order)
        gix += g * ax
        giy += g * ay
    return sx * gix, sy * giy


@kernel
def spline_grad_point_3d(coef, gout, n, d, h, w, gx, gy, gz, mode, padding_mode, align_corners):
    """(dL/dgx, dL/dgy, dL/dgz) of a B-spline output voxel, summed over channels."""
    m = 2 * spline_margin(mode, padding_mode)
    order = spline_order(mode)
    xs, wx, dwx, sx = spline_taps(gx, coef.shape[4] - m, mode, padding_mode, align_corners)
    ys, wy, dwy, sy = spline_taps(gy, coef.shape[3] - m, mode, padding_mode, align_corners)
    zs, wz, dwz, sz = spline_taps(gz, coef.shape[2] - m, mode, padding_mode, align_corners)
    zero = cast(0, gx)
    gix = zero
    giy = zero
    giz = zero
    for c in range(coef.shape[1]):
        g = cast(gout[n, c, d, h, w], gx)
        for k in range(order + 1):
            if zs[k] < 0:
                continue
            for j in range(order + 1):
                if ys[j] < 0:
                    continue
                r = zero
                dr = zero
                for i in range(order + 1):
                    if xs[i] >= 0:
                        v = cast(coef[n, c, zs[k], ys[j], xs[i]], gx)
                        r += wx[i] * v
                        dr += dwx[i] * v
                gix += g * (wz[k] * (wy[j] * dr))
                giy += g * (wz[k] * (dwy[j] * r))
                giz += g * (dwz[k] * (wy[j] * r))
    return sx * gix, sy * giy, sz * giz


# ----------------------------------------------------------------------------
# 2-D forward
# ----------------------------------------------------------------------------


@scalar
def sample_2d(inp, out, n, h, w, gx, gy, mode, padding_mode, align_corners):
    """out[n, :, h, w] = input sampled at grid point (gx, gy), any mode (B-splines read
    the coefficients in ``inp``)."""
    if mode >= BSPLINE2:
        spline_sample_2d(inp, out, n, h, w, gx, gy, mode, padding_mode, align_corners)
    elif mode == BICUBIC:
        bicubic_sample_2d(inp, out, n, h, w, gx, gy, padding_mode, align_corners)
    elif mode == NEAREST:
        nearest_sample_2d(inp, out, n, h, w, gx, gy, padding_mode, align_corners)
    else:
        bilinear_sample_2d(inp, out, n, h, w, gx, gy, padding_mode, align_corners)


@kernel
def _zero_2d(out, n, h, w):
    for c in range(out.shape[1]):
        out[n, c, h, w] = 0


@kernel
def bicubic_sample_2d(inp, out, n, h, w, gx, gy, padding_mode, align_corners):
    H = inp.shape[2]
    W = inp.shape[3]
    if gx != gx or gy != gy:
        _zero_2d(out, n, h, w)
        return
    xs, wx, _, _ = cubic_taps(gx, W, padding_mode, align_corners)
    ys, wy, _, _ = cubic_taps(gy, H, padding_mode, align_corners)
    for c in range(inp.shape[1]):
        out[n, c, h, w] = bicubic_value(inp, n, c, xs, ys, wx, wy)


@kernel
def nearest_sample_2d(inp, out, n, h, w, gx, gy, padding_mode, align_corners):
    H = inp.shape[2]
    W = inp.shape[3]
    ix, _, okx = source_index(gx, W, padding_mode, align_corners)
    iy, _, oky = source_index(gy, H, padding_mode, align_corners)
    xi = wrap_tap(nearest_index(ix), W, padding_mode)
    yi = wrap_tap(nearest_index(iy), H, padding_mode)
    if okx and oky and inside(xi, W) and inside(yi, H):
        for c in range(inp.shape[1]):
            out[n, c, h, w] = cast(inp[n, c, yi, xi], gx)
    else:
        _zero_2d(out, n, h, w)


@scalar
def bilinear_point_2d(gx, gy, W, H, padding_mode, align_corners):
    """Grid point -> (x0, y0, tx, ty, dx, dy, valid): top-left tap, fractions, and
    d(pixel coordinate)/d(grid value) per axis. Scalars only, so that the CPU
    drivers' pixel loops inline it."""
    ix, dx, okx = source_index(gx, W, padding_mode, align_corners)
    iy, dy, oky = source_index(gy, H, padding_mode, align_corners)
    x0, tx = floor_index(ix)
    y0, ty = floor_index(iy)
    return x0, y0, tx, ty, dx, dy, okx & oky  # &, not and: no branch (row loops vectorise)


@kernel
def bilinear_sample_2d(inp, out, n, h, w, gx, gy, padding_mode, align_corners):
    H = inp.shape[2]
    W = inp.shape[3]
    x0, y0, tx, ty, _, _, ok = bilinear_point_2d(gx, gy, W, H, padding_mode, align_corners)
    if not ok:
        _zero_2d(out, n, h, w)
        return
    xa, xb = valid_tap(x0, W, True), valid_tap(wrap_tap(x0 + 1, W, padding_mode), W, True)
    ya, yb = valid_tap(y0, H, True), valid_tap(wrap_tap(y0 + 1, H, padding_mode), H, True)
    w00, w01, w10, w11 = bilinear_weights(tx, ty)
    for c in range(inp.shape[1]):
        out[n, c, h, w] = bilinear_value(inp, n, c, xa, xb, ya, yb, w00, w01, w10, w11)


# ----------------------------------------------------------------------------
# 2-D backward: d loss / d (gx, gy) of one pixel (gather, race-free)
# ----------------------------------------------------------------------------


@kernel
def grad_point_2d(inp, gout, n, h, w, gx, gy, mode, padding_mode, align_corners):
    """(dL/dgx, dL/dgy) of output pixel (n, h, w), summed over channels."""
    C = inp.shape[1]
    H = inp.shape[2]
    W = inp.shape[3]
    zero = cast(0, gx)
    if mode == NEAREST or gx != gx or gy != gy:
        return zero, zero
    if mode >= BSPLINE2:
        return spline_grad_point_2d(inp, gout, n, h, w, gx, gy, mode, padding_mode, align_corners)
    if mode == BICUBIC:
        xs, wx, dwx, sx = cubic_taps(gx, W, padding_mode, align_corners)
        ys, wy, dwy, sy = cubic_taps(gy, H, padding_mode, align_corners)
        gix = zero
        giy = zero
        for c in range(C):
            g = cast(gout[n, c, h, w], gx)
            r0 = _cubic_row(inp, n, c, ys[0], xs, wx)
            r1 = _cubic_row(inp, n, c, ys[1], xs, wx)
            r2 = _cubic_row(inp, n, c, ys[2], xs, wx)
            r3 = _cubic_row(inp, n, c, ys[3], xs, wx)
            d0 = _cubic_row(inp, n, c, ys[0], xs, dwx)
            d1 = _cubic_row(inp, n, c, ys[1], xs, dwx)
            d2 = _cubic_row(inp, n, c, ys[2], xs, dwx)
            d3 = _cubic_row(inp, n, c, ys[3], xs, dwx)
            gix += g * (wy[0] * d0 + wy[1] * d1 + wy[2] * d2 + wy[3] * d3)
            giy += g * (dwy[0] * r0 + dwy[1] * r1 + dwy[2] * r2 + dwy[3] * r3)
        return sx * gix, sy * giy
    # bilinear
    ix, dx, _ = source_index(gx, W, padding_mode, align_corners)
    iy, dy, _ = source_index(gy, H, padding_mode, align_corners)
    x0, tx = floor_index(ix)
    y0, ty = floor_index(iy)
    x1 = wrap_tap(x0 + 1, W, padding_mode)
    y1 = wrap_tap(y0 + 1, H, padding_mode)
    gix = zero
    giy = zero
    for c in range(C):
        g = cast(gout[n, c, h, w], gx)
        v00 = _value_2d(inp, n, c, y0, x0, gx)
        v01 = _value_2d(inp, n, c, y0, x1, gx)
        v10 = _value_2d(inp, n, c, y1, x0, gx)
        v11 = _value_2d(inp, n, c, y1, x1, gx)
        a, b = bilinear_grads(g, v00, v01, v10, v11, tx, ty)
        gix += a
        giy += b
    return dx * gix, dy * giy


# ----------------------------------------------------------------------------
# 2-D backward: scatter of one pixel's gradient into the input rows [r0, r1)
# ----------------------------------------------------------------------------


@kernel
def _add_2d(gin, n, c, y, x, r0, r1, v, scale):
    if y >= r0 and y < r1 and inside(x, gin.shape[3]):
        accumulate(gin, (n, c, y, x), v, scale)


@kernel
def scatter_2d(gin, gout, n, h, w, gx, gy, mode, padding_mode, align_corners, r0, r1, scale):
    """grad_input[n, :, r0:r1, :] += this output pixel's share of grad_output[n, :, h, w].

    Each contribution goes through :func:`accumulate` (``scale`` is for the GPU's
    fixed-point accumulator; the CPU ignores it). Only the input rows in [r0, r1)
    are written: the CPU driver gives each task its own band of rows, so the
    scatter is race-free, and every input element receives its contributions in
    output raster order whatever the bands are — the result is bit-identical for
    any number of threads. The GPU passes the whole axis.
    """
    C = gin.shape[1]
    H = gin.shape[2]
    W = gin.shape[3]
    if gx != gx or gy != gy:
        return
    if mode >= BSPLINE2:
        m = 2 * spline_margin(mode, padding_mode)
        order = spline_order(mode)
        ys, wy, _, _ = spline_taps(gy, H - m, mode, padding_mode, align_corners)
        xs, wx, _, _ = spline_taps(gx, W - m, mode, padding_mode, align_corners)
        for c in range(C):
            g = cast(gout[n, c, h, w], gx)
            for j in range(order + 1):
                if ys[j] < r0 or ys[j] >= r1:
                    continue
                for i in range(order + 1):
                    if xs[i] >= 0:
                        accumulate(gin, (n, c, ys[j], xs[i]), g * wy[j] * wx[i], scale)
        return
    if mode == BICUBIC:
        ys, wy, _, _ = cubic_taps(gy, H, padding_mode, align_corners)
        hit = False
        for j in range(4):
            if ys[j] >= r0 and ys[j] < r1:
                hit = True
        if not hit:
            return
        xs, wx, _, _ = cubic_taps(gx, W, padding_mode, align_corners)
        for c in range(C):
            g = cast(gout[n, c, h, w], gx)
            for j in range(4):
                for i in range(4):
                    _add_2d(gin, n, c, ys[j], xs[i], r0, r1, g * wy[j] * wx[i], scale)
        return
    iy, _, oky = source_index(gy, H, padding_mode, align_corners)
    if not oky:
        return
    if mode == NEAREST:
        yi = wrap_tap(nearest_index(iy), H, padding_mode)
        if yi < r0 or yi >= r1:
            return
        ix, _, okx = source_index(gx, W, padding_mode, align_corners)
        if not okx:
            return
        xi = wrap_tap(nearest_index(ix), W, padding_mode)
        if inside(xi, W):
            for c in range(C):
                accumulate(gin, (n, c, yi, xi), cast(gout[n, c, h, w], gx), scale)
        return
    # bilinear
    y0, ty = floor_index(iy)
    y1 = wrap_tap(y0 + 1, H, padding_mode)
    if (y0 < r0 or y0 >= r1) and (y1 < r0 or y1 >= r1):  # y1 is not y0 + 1 under wrap
        return
    ix, _, okx = source_index(gx, W, padding_mode, align_corners)
    if not okx:
        return
    x0, tx = floor_index(ix)
    x1 = wrap_tap(x0 + 1, W, padding_mode)
    w00, w01, w10, w11 = bilinear_weights(tx, ty)
    for c in range(C):
        g = cast(gout[n, c, h, w], gx)
        _add_2d(gin, n, c, y0, x0, r0, r1, w00 * g, scale)
        _add_2d(gin, n, c, y0, x1, r0, r1, w01 * g, scale)
        _add_2d(gin, n, c, y1, x0, r0, r1, w10 * g, scale)
        _add_2d(gin, n, c, y1, x1, r0, r1, w11 * g, scale)


# ----------------------------------------------------------------------------
# 3-D (trilinear and nearest)
# ----------------------------------------------------------------------------


@kernel
def _value_3d(inp, n, c, z, y, x, like):
    if inside(z, inp.shape[2]) and inside(y, inp.shape[3]) and inside(x, inp.shape[4]):
        return cast(inp[n, c, z, y, x], like)
    return cast(0, like)


@scalar
def lerp_weight(t, bit):
    """Weight of corner ``bit`` (0: floor, 1: floor + 1) for fraction t."""
    return t if bit == 1 else cast(1, t) - t


@scalar
def trilinear_point_3d(gx, gy, gz, W, H, D, padding_mode, align_corners):
    """Grid point -> (x0, y0, z0, tx, ty, tz, dx, dy, dz, valid); see bilinear_point_2d."""
    ix, dx, okx = source_index(gx, W, padding_mode, align_corners)
    iy, dy, oky = source_index(gy, H, padding_mode, align_corners)
    iz, dz, okz = source_index(gz, D, padding_mode, align_corners)
    x0, tx = floor_index(ix)
    y0, ty = floor_index(iy)
    z0, tz = floor_index(iz)
    return x0, y0, z0, tx, ty, tz, dx, dy, dz, okx & oky & okz


@scalar
def sample_3d(inp, out, n, d, h, w, gx, gy, gz, mode, padding_mode, align_corners):
    """out[n, :, d, h, w] = input sampled at grid point (gx, gy, gz), any mode."""
    if mode >= BSPLINE2:
        spline_sample_3d(inp, out, n, d, h, w, gx, gy, gz, mode, padding_mode, align_corners)
    elif mode == NEAREST:
        nearest_sample_3d(inp, out, n, d, h, w, gx, gy, gz, padding_mode, align_corners)
    else:
        trilinear_sample_3d(inp, out, n, d, h, w, gx, gy, gz, padding_mode, align_corners)


@kernel
def nearest_sample_3d(inp, out, n, d, h, w, gx, gy, gz, padding_mode, align_corners):
    C = inp.shape[1]
    D = inp.shape[2]
    H = inp.shape[3]
    W = inp.shape[4]
    ix, _, okx = source_index(gx, W, padding_mode, align_corners)
    iy, _, oky = source_index(gy, H, padding_mode, align_corners)
    iz, _, okz = source_index(gz, D, padding_mode, align_corners)
    if not (okx and oky and okz):
        for c in range(C):
            out[n, c, d, h, w] = 0
        return
    xi = wrap_tap(nearest_index(ix), W, padding_mode)
    yi = wrap_tap(nearest_index(iy), H, padding_mode)
    zi = wrap_tap(nearest_index(iz), D, padding_mode)
    for c in range(C):
        out[n, c, d, h, w] = _value_3d(inp, n, c, zi, yi, xi, gx)


@kernel
def trilinear_sample_3d(inp, out, n, d, h, w, gx, gy, gz, padding_mode, align_corners):
    C = inp.shape[1]
    D = inp.shape[2]
    H = inp.shape[3]
    W = inp.shape[4]
    x0, y0, z0, tx, ty, tz, _, _, _, ok = trilinear_point_3d(
        gx, gy, gz, W, H, D, padding_mode, align_corners
    )
    if not ok:
        for c in range(C):
            out[n, c, d, h, w] = 0
        return
    xa, xb = valid_tap(x0, W, True), valid_tap(wrap_tap(x0 + 1, W, padding_mode), W, True)
    ya, yb = valid_tap(y0, H, True), valid_tap(wrap_tap(y0 + 1, H, padding_mode), H, True)
    za, zb = valid_tap(z0, D, True), valid_tap(wrap_tap(z0 + 1, D, padding_mode), D, True)
    wt = trilinear_weights(tx, ty, tz)
    for c in range(C):
        out[n, c, d, h, w] = trilinear_value(inp, n, c, xa, xb, ya, yb, za, zb, wt)


@kernel
def grad_point_3d(inp, gout, n, d, h, w, gx, gy, gz, mode, padding_mode, align_corners):
    """(dL/dgx, dL/dgy, dL/dgz) of output voxel (n, d, h, w), summed over channels."""
    if mode >= BSPLINE2:
        if gx != gx or gy != gy or gz != gz:
            z = cast(0, gx)
            return z, z, z
        return spline_grad_point_3d(
            inp, gout, n, d, h, w, gx, gy, gz, mode, padding_mode, align_corners
        )
    C = inp.shape[1]
    D = inp.shape[2]
    H = inp.shape[3]
    W = inp.shape[4]
    ix, dx, okx = source_index(gx, W, padding_mode, align_corners)
    iy, dy, oky = source_index(gy, H, padding_mode, align_corners)
    iz, dz, okz = source_index(gz, D, padding_mode, align_corners)
    zero = cast(0, gx)
    if mode == NEAREST or not (okx and oky and okz):
        return zero, zero, zero
    x0, tx = floor_index(ix)
    y0, ty = floor_index(iy)
    z0, tz = floor_index(iz)
    x1 = wrap_tap(x0 + 1, W, padding_mode)
    y1 = wrap_tap(y0 + 1, H, padding_mode)
    z1 = wrap_tap(z0 + 1, D, padding_mode)
    gix = zero
    giy = zero
    giz = zero
    for c in range(C):
        g = cast(gout[n, c, d, h, w], gx)
        for bz in range(2):
            zi = z1 if bz == 1 else z0
            for by in range(2):
                yi = y1 if by == 1 else y0
                for bx in range(2):
                    xi = x1 if bx == 1 else x0
                    v = g * _value_3d(inp, n, c, zi, yi, xi, gx)
                    a, b, e = trilinear_grads(v, tx, ty, tz, bx, by, bz)
                    gix += a
                    giy += b
                    giz += e
    return dx * gix, dy * giy, dz * giz


@kernel
def scatter_3d(gin, gout, n, d, h, w, gx, gy, gz, mode, padding_mode, align_corners, s0, s1, scale):
    """grad_input[n, :, s0:s1] += this output voxel's share; see :func:`scatter_2d`."""
    C = gin.shape[1]
    D = gin.shape[2]
    H = gin.shape[3]
    W = gin.shape[4]
    if mode >= BSPLINE2:
        if gx != gx or gy != gy or gz != gz:
            return
        m = 2 * spline_margin(mode, padding_mode)
        order = spline_order(mode)
        zs, wz, _, _ = spline_taps(gz, D - m, mode, padding_mode, align_corners)
        ys, wy, _, _ = spline_taps(gy, H - m, mode, padding_mode, align_corners)
        xs, wx, _, _ = spline_taps(gx, W - m, mode, padding_mode, align_corners)
        for c in range(C):
            g = cast(gout[n, c, d, h, w], gx)
            for k in range(order + 1):
                if zs[k] < s0 or zs[k] >= s1:
                    continue
                for j in range(order + 1):
                    if ys[j] < 0:
                        continue
                    for i in range(order + 1):
                        if xs[i] >= 0:
                            v = g * wz[k] * wy[j] * wx[i]
                            accumulate(gin, (n, c, zs[k], ys[j], xs[i]), v, scale)
        return
    iz, _, okz = source_index(gz, D, padding_mode, align_corners)
    if not okz:
        return
    if mode == NEAREST:
        zi = wrap_tap(nearest_index(iz), D, padding_mode)
        if zi < s0 or zi >= s1:
            return
        ix, _, okx = source_index(gx, W, padding_mode, align_corners)
        iy, _, oky = source_index(gy, H, padding_mode, align_corners)
        if not (okx and oky):
            return
        xi = wrap_tap(nearest_index(ix), W, padding_mode)
        yi = wrap_tap(nearest_index(iy), H, padding_mode)
        if inside(xi, W) and inside(yi, H):
            for c in range(C):
                accumulate(gin, (n, c, zi, yi, xi), cast(gout[n, c, d, h, w], gx), scale)
        return
    z0, tz = floor_index(iz)
    z1 = wrap_tap(z0 + 1, D, padding_mode)
    if (z0 < s0 or z0 >= s1) and (z1 < s0 or z1 >= s1):  # z1 is not z0 + 1 under wrap
        return
    ix, _, okx = source_index(gx, W, padding_mode, align_corners)
    iy, _, oky = source_index(gy, H, padding_mode, align_corners)
    if not (okx and oky):
        return
    x0, tx = floor_index(ix)
    y0, ty = floor_index(iy)
    x1 = wrap_tap(x0 + 1, W, padding_mode)
    y1 = wrap_tap(y0 + 1, H, padding_mode)
    wt = trilinear_weights(tx, ty, tz)
    for c in range(C):
        g = cast(gout[n, c, d, h, w], gx)
        for bz in range(2):
            zi = z1 if bz == 1 else z0
            if zi < s0 or zi >= s1:
                continue
            for by in range(2):
                yi = y1 if by == 1 else y0
                if not inside(yi, H):
                    continue
                for bx in range(2):
                    xi = x1 if bx == 1 else x0
                    if inside(xi, W):
                        accumulate(gin, (n, c, zi, yi, xi), wt[4 * bz + 2 * by + bx] * g, scale)


# ----------------------------------------------------------------------------
# θ gradient: one output pixel's grid gradient times its base-grid point
# ----------------------------------------------------------------------------


@scalar
def theta_terms_2d(acc, row, ggx, ggy, xb, yb):
    """acc[row, :6] += (ggx, ggy) ⊗ (xb, yb, 1), θ's layout flattened."""
    ggx = float(ggx)
    ggy = float(ggy)
    acc[row, 0] += ggx * xb
    acc[row, 1] += ggx * yb
    acc[row, 2] += ggx
    acc[row, 3] += ggy * xb
    acc[row, 4] += ggy * yb
    acc[row, 5] += ggy


@kernel
def accumulate_theta_2d(acc, row, ggx, ggy, w, h, Wo, Ho, align_corners):
    """acc[row, :6] += (ggx, ggy) ⊗ (x_w, y_h, 1), θ's layout flattened."""
    xb = base_coord(w, Wo, align_corners, ggx)
    yb = base_coord(h, Ho, align_corners, ggx)
    theta_terms_2d(acc, row, ggx, ggy, xb, yb)


@scalar
def theta_terms_3d(acc, row, ggx, ggy, ggz, xb, yb, zb):
    """acc[row, :12] += (ggx, ggy, ggz) ⊗ (xb, yb, zb, 1), θ's layout flattened."""
    ggx = float(ggx)
    ggy = float(ggy)
    ggz = float(ggz)
    acc[row, 0] += ggx * xb
    acc[row, 1] += ggx * yb
    acc[row, 2] += ggx * zb
    acc[row, 3] += ggx
    acc[row, 4] += ggy * xb
    acc[row, 5] += ggy * yb
    acc[row, 6] += ggy * zb
    acc[row, 7] += ggy
    acc[row, 8] += ggz * xb
    acc[row, 9] += ggz * yb
    acc[row, 10] += ggz * zb
    acc[row, 11] += ggz


@kernel
def accumulate_theta_3d(acc, row, ggx, ggy, ggz, w, h, d, Wo, Ho, Do, align_corners):
    """acc[row, :12] += (ggx, ggy, ggz) ⊗ (x_w, y_h, z_d, 1), θ's layout flattened."""
    xb = base_coord(w, Wo, align_corners, ggx)
    yb = base_coord(h, Ho, align_corners, ggx)
    zb = base_coord(d, Do, align_corners, ggx)
    theta_terms_3d(acc, row, ggx, ggy, ggz, xb, yb, zb)


# ----------------------------------------------------------------------------
# Which input rows (slices) one output row of an affine warp can touch
# ----------------------------------------------------------------------------


@kernel
def _span(a, b, size, padding_mode, align_corners):
    """Conservative input index range [lo, hi] touched by unpadded pixel coordinates in
    [a, b] under any interpolation (taps floor-1 .. floor+2), or the whole axis.

    ``wrap`` always gets the whole axis: a row that crosses the last index also touches
    the first, which no single interval [lo, hi] short of the whole axis covers."""
    if not (a == a and b == b) or a < -BIG_SPAN or b > BIG_SPAN or padding_mode == WRAP:
        return 0, size - 1
    if padding_mode == REFLECTION:
        lo = -0.5 if not align_corners else 0.0
        hi = size - 0.5 if not align_corners else size - 1.0
        if a < lo or b > hi:
            return 0, size - 1
    lo_i = int(math.floor(a)) - 2
    hi_i = int(math.floor(b)) + 3
    if padding_mode == BORDER:
        lo_i = max(lo_i, 0)
        hi_i = min(hi_i, size - 1)
        if lo_i > size - 1:
            lo_i = size - 1
        if hi_i < 0:
            hi_i = 0
    return lo_i, hi_i


@kernel
def row_span(grid, theta, fused, n, row, axis, fixed, Wo, size, padding_mode, align_corners):
    """Input index range [lo, hi] along ``axis`` (1: y, 2: z) that one output row can
    touch; (size, -1) when it touches nothing.

    Fused (θ): only x varies along the row and the coordinate is linear in it, so
    the row's end points bound it (``fixed`` is θ's row ``axis`` applied to the row's
    other, constant, coordinates). Grid: the min and max over the row
    (``row`` indexes the grid flattened to (N * rows, Wo, dims)).
    """
    if fused:
        t = float(theta[n, axis, 0])
        g0 = t * float(base_coord(0, Wo, align_corners, theta[n, axis, 0])) + fixed
        g1 = t * float(base_coord(Wo - 1, Wo, align_corners, theta[n, axis, 0])) + fixed
        lo_g = min(g0, g1)
        hi_g = max(g0, g1)
        if not (lo_g == lo_g and hi_g == hi_g):
            return 0, size - 1
    else:
        lo_g = math.inf
        hi_g = -math.inf
        for w in range(Wo):
            g = float(grid[row, w, axis])
            if g < lo_g:
                lo_g = g
            if g > hi_g:
                hi_g = g
        if lo_g > hi_g:  # all NaN (or empty row): nothing is touched
            return size, -1
    a, _, _ = unnormalize(lo_g, size, align_corners)
    b, _, _ = unnormalize(hi_g, size, align_corners)
    return _span(a, b, size, padding_mode, align_corners)


# ----------------------------------------------------------------------------
# Projective grids: θ is a 3×3 homography on normalised (x, y, 1), or a 4×4 one on
# (x, y, z, 1)
# ----------------------------------------------------------------------------

#: A point whose homogeneous w is not above this is behind the camera or at infinity:
#: it samples as outside (NaN grid value: 0 in every padding mode, zero gradient).
W_EPS = 1e-12


@kernel
def perspective_point_2d(theta, n, h, w, Ho, Wo, align_corners):
    """(gx, gy, 1/w) of output pixel (n, h, w) under the homography θ[n];
    (NaN, NaN, 0) where w <= W_EPS."""
    xb = base_coord(w, Wo, align_corners, theta[n, 0, 0])
    yb = base_coord(h, Ho, align_corners, theta[n, 0, 0])
    return perspective_xy(theta, n, xb, yb)


@scalar
def perspective_xy(theta, n, xb, yb):
    """(gx, gy, 1/w) of the base-grid point (xb, yb) under the homography θ[n];
    (NaN, NaN, 0) where w <= W_EPS."""
    X = theta[n, 0, 0] * xb + theta[n, 0, 1] * yb + theta[n, 0, 2]
    Y = theta[n, 1, 0] * xb + theta[n, 1, 1] * yb + theta[n, 1, 2]
    Z = theta[n, 2, 0] * xb + theta[n, 2, 1] * yb + theta[n, 2, 2]
    if not Z > cast(W_EPS, Z):  # also catches NaN
        nan = cast(np.nan, Z)
        return nan, nan, cast(0, Z)
    r = cast(1, Z) / Z
    return X * r, Y * r, r


@kernel
def accumulate_perspective_2d(acc, row, ggx, ggy, theta, n, h, w, Ho, Wo, align_corners):
    """acc[row, :9] += dL/dθ[n] of one pixel: with b = (x_w, y_h, 1) and (gx, gy) =
    (X, Y) / Z, dL/dθ[0] = ggx·b/Z, dL/dθ[1] = ggy·b/Z, dL/dθ[2] = -(ggx·gx + ggy·gy)·b/Z.
    Pixels with Z <= W_EPS (sampled as outside), with a non-finite grid value (an inf
    or NaN in θ: the sampler's derivative there is 0, and 0·inf must not leak NaN into
    dL/dθ) and NaN gradients add nothing."""
    gx, gy, r = perspective_point_2d(theta, n, h, w, Ho, Wo, align_corners)
    ggx = float(ggx)
    ggy = float(ggy)
    if r == 0.0 or ggx != ggx or ggy != ggy:
        return
    if not (math.isfinite(gx) and math.isfinite(gy)):
        return
    xb = float(base_coord(w, Wo, align_corners, gx))
    yb = float(base_coord(h, Ho, align_corners, gx))
    ax = ggx * r
    ay = ggy * r
    az = -(ggx * gx + ggy * gy) * r
    acc[row, 0] += ax * xb
    acc[row, 1] += ax * yb
    acc[row, 2] += ax
    acc[row, 3] += ay * xb
    acc[row, 4] += ay * yb
    acc[row, 5] += ay
    acc[row, 6] += az * xb
    acc[row, 7] += az * yb
    acc[row, 8] += az


@kernel
def perspective_point_3d(theta, n, d, h, w, Do, Ho, Wo, align_corners):
    """(gx, gy, gz, 1/W) of output voxel (n, d, h, w) under the 3-D homography θ[n]
    (4×4 on (x, y, z, 1)); (NaN, NaN, NaN, 0) where W <= W_EPS."""
    xb = base_coord(w, Wo, align_corners, theta[n, 0, 0])
    yb = base_coord(h, Ho, align_corners, theta[n, 0, 0])
    zb = base_coord(d, Do, align_corners, theta[n, 0, 0])
    return perspective_xyz(theta, n, xb, yb, zb)


@scalar
def perspective_xyz(theta, n, xb, yb, zb):
    """(gx, gy, gz, 1/W) of the base-grid point (xb, yb, zb) under the 4×4 homography
    θ[n], (X, Y, Z, W) = θ[n] @ (xb, yb, zb, 1) (each row summed in affine_grid's
    order, so an affine θ[n] = [θ; 0 0 0 1] gives affine_grid's values);
    (NaN, NaN, NaN, 0) where W <= W_EPS."""
    X = theta[n, 0, 0] * xb + theta[n, 0, 1] * yb + theta[n, 0, 2] * zb + theta[n, 0, 3]
    Y = theta[n, 1, 0] * xb + theta[n, 1, 1] * yb + theta[n, 1, 2] * zb + theta[n, 1, 3]
    Z = theta[n, 2, 0] * xb + theta[n, 2, 1] * yb + theta[n, 2, 2] * zb + theta[n, 2, 3]
    Wh = theta[n, 3, 0] * xb + theta[n, 3, 1] * yb + theta[n, 3, 2] * zb + theta[n, 3, 3]
    if not Wh > cast(W_EPS, Wh):  # also catches NaN
        nan = cast(np.nan, Wh)
        return nan, nan, nan, cast(0, Wh)
    r = cast(1, Wh) / Wh
    return X * r, Y * r, Z * r, r


@kernel
def accumulate_perspective_3d(
    acc, row, ggx, ggy, ggz, theta, n, d, h, w, Do, Ho, Wo, align_corners
):
    """acc[row, :16] += dL/dθ[n] of one voxel: with b = (x_w, y_h, z_d, 1) and
    (gx, gy, gz) = (X, Y, Z) / W, dL/dθ[0] = ggx·b/W, dL/dθ[1] = ggy·b/W,
    dL/dθ[2] = ggz·b/W, dL/dθ[3] = -(ggx·gx + ggy·gy + ggz·gz)·b/W. Voxels skipped as
    in :func:`accumulate_perspective_2d` (W <= W_EPS, non-finite grid value, NaN
    gradient)."""
    gx, gy, gz, r = perspective_point_3d(theta, n, d, h, w, Do, Ho, Wo, align_corners)
    ggx = float(ggx)
    ggy = float(ggy)
    ggz = float(ggz)
    if r == 0.0 or ggx != ggx or ggy != ggy or ggz != ggz:
        return
    if not (math.isfinite(gx) and math.isfinite(gy) and math.isfinite(gz)):
        return
    xb = float(base_coord(w, Wo, align_corners, gx))
    yb = float(base_coord(h, Ho, align_corners, gx))
    zb = float(base_coord(d, Do, align_corners, gx))
    ax = ggx * r
    ay = ggy * r
    az = ggz * r
    aw = -(ggx * gx + ggy * gy + ggz * gz) * r
    acc[row, 0] += ax * xb
    acc[row, 1] += ax * yb
    acc[row, 2] += ax * zb
    acc[row, 3] += ax
    acc[row, 4] += ay * xb
    acc[row, 5] += ay * yb
    acc[row, 6] += ay * zb
    acc[row, 7] += ay
    acc[row, 8] += az * xb
    acc[row, 9] += az * yb
    acc[row, 10] += az * zb
    acc[row, 11] += az
    acc[row, 12] += aw * xb
    acc[row, 13] += aw * yb
    acc[row, 14] += aw * zb
    acc[row, 15] += aw


# ----------------------------------------------------------------------------
# Flow grids: a displacement in input pixels per output pixel
# ----------------------------------------------------------------------------


@kernel
def flow_point_2d(flow, n, h, w, Hin, Win, align_corners):
    """Grid value of output pixel (n, h, w) displaced by ``flow[n, h, w]`` = (dx, dy)
    input pixels: the pixel (w + dx, h + dy) normalised for an Hin × Win input."""
    fx = flow[n, h, w, 0]
    fy = flow[n, h, w, 1]
    gx, _ = normalize(cast(w, fx) + fx, Win, align_corners)
    gy, _ = normalize(cast(h, fy) + fy, Hin, align_corners)
    return gx, gy


@kernel
def flow_point_3d(flow, n, d, h, w, Din, Hin, Win, align_corners):
    """As :func:`flow_point_2d` for voxel (n, d, h, w), flow (dx, dy, dz)."""
    fx = flow[n, d, h, w, 0]
    fy = flow[n, d, h, w, 1]
    fz = flow[n, d, h, w, 2]
    gx, _ = normalize(cast(w, fx) + fx, Win, align_corners)
    gy, _ = normalize(cast(h, fy) + fy, Hin, align_corners)
    gz, _ = normalize(cast(d, fz) + fz, Din, align_corners)
    return gx, gy, gz


# ----------------------------------------------------------------------------
# Thin-plate spline (tps_grid): evaluate the spline at one base-grid point, and
# accumulate that point's basis row times its grid gradient (see stn_numba._tps)
# ----------------------------------------------------------------------------


@scalar
def tps_radial(dx, dy):
    """U(r) = r² log(r²) of the offset (dx, dy); U(0) = 0."""
    r2 = dx * dx + dy * dy
    if r2 == 0.0:
        return 0.0
    return r2 * math.log(r2)


@kernel
def tps_point(coef, src, n, xb, yb):
    """f(xb, yb) of sample n: ``coef`` (N, K + 3, 2) = [w_1 .. w_K, a_0, a_1, a_2],
    ``src`` (N or 1, K, 2) source points (one set shared when its batch is 1), float64."""
    K = src.shape[1]
    m = n if src.shape[0] > 1 else 0
    gx = coef[n, K, 0] + coef[n, K + 1, 0] * xb + coef[n, K + 2, 0] * yb
    gy = coef[n, K, 1] + coef[n, K + 1, 1] * xb + coef[n, K + 2, 1] * yb
    for k in range(K):
        u = tps_radial(xb - src[m, k, 0], yb - src[m, k, 1])
        gx += coef[n, k, 0] * u
        gy += coef[n, k, 1] * u
    return gx, gy


@kernel
def accumulate_tps(acc, row, src, n, xb, yb, ggx, ggy):
    """acc[row, 2j + c] += B_j · (ggx, ggy)[c], B = (U(|p - s_1|) .. U(|p - s_K|), 1, x, y)."""
    K = src.shape[1]
    m = n if src.shape[0] > 1 else 0
    ggx = float(ggx)
    ggy = float(ggy)
    for k in range(K):
        u = tps_radial(xb - src[m, k, 0], yb - src[m, k, 1])
        acc[row, 2 * k] += u * ggx
        acc[row, 2 * k + 1] += u * ggy
    acc[row, 2 * K] += ggx
    acc[row, 2 * K + 1] += ggy
    acc[row, 2 * K + 2] += xb * ggx
    acc[row, 2 * K + 3] += xb * ggy
    acc[row, 2 * K + 4] += yb * ggx
    acc[row, 2 * K + 5] += yb * ggy
