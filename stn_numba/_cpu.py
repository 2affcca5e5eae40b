"""CPU drivers: ``prange`` loops over the per-pixel arithmetic of :mod:`stn_numba._kernels`.

The hot paths (bilinear, bicubic and trilinear forward, the one-pass backward) work a
row at a time: the row's taps and weights into scratch arrays, then the reads. They
add no arithmetic of their own: the weights, sums and gradient terms are the
:mod:`stn_numba._kernels` functions that the CUDA kernels call, so the CPU and the GPU
compute the same numbers in the same order.

Every driver parallelises over ``N × rows`` (``N × D × H`` in 3-D), so one large
image still uses every core. The arrays are contiguous and already validated by
:mod:`stn_numba.functional`; ``fused=True`` takes the sampling points from ``theta``
(warp_affine), otherwise from ``grid`` (the unused one is an empty placeholder, in
the computation's float type).

Specialised per use (:func:`stn_numba._jit.specialise`): ``sample_2d_cpu(source, mode,
padding, channels_last)`` and the other factories return the driver of that one path,
compiled on its first call; ``run_sample``/``run_backward``/``run_splat`` pick it.

Precision: coordinates, weights and per-pixel sums are computed in the float type of
the grid (θ, the homography and the flow share it; :mod:`stn_numba._coords`), which
is the image's for float images; integer images are read into it. θ gradients are
summed per row and reduced in float64.

Backward, race-free and deterministic:

* the grid/θ gradient is a gather per output pixel (no shared writes); θ's is
  summed per output row into ``rowacc`` and then reduced in a fixed order;
* the input gradient is a scatter. Each task owns a band of input rows
  (``scatter_*``) and walks the output pixels of its sample in raster order, adding
  only the taps that land in its band. Every input element therefore receives its
  contributions in the same order whatever the number of bands, so the result is
  bit-identical for any thread count, and the bands can follow the thread count.
"""

import math
from contextlib import contextmanager

import numba
import numpy as np
from numba import prange

from ._bspline import prefilter_line, prefilter_line_transpose
from ._compat import serialised as _serialised
from ._coords import base_coord, cast, wrap_tap, zero_of
from ._jit import bind, driver, kernel, scalar, specialise
from ._kernels import (
    accumulate_perspective_2d,
    accumulate_perspective_3d,
    accumulate_tps,
    bicubic_value,
    bilinear_grads,
    bilinear_point_2d,
    bilinear_value,
    bilinear_weights,
    cubic_taps,
    flow_point_2d,
    flow_point_3d,
    grad_point_2d,
    grad_point_3d,
    nearest_sample_2d,
    nearest_sample_3d,
    perspective_point_2d,
    perspective_point_3d,
    row_span,
    sample_2d,
    sample_3d,
    scatter_2d,
    scatter_3d,
    source_point_2d,
    source_point_3d,
    spline_boundary,
    spline_margin,
    theta_terms_2d,
    theta_terms_3d,
    tps_point,
    trilinear_grads,
    trilinear_point_3d,
    trilinear_value,
    trilinear_weights,
    unravel_2d,
    valid_tap,
)
from ._modes import (
    AFFINE,
    BICUBIC,
    BILINEAR,
    BORDER,
    FLOW,
    GRID,
    NEAREST,
    REFLECTION,
    WRAP,
    ZEROS,
    spline_order,
)

#: Inside a specialised forward driver, bound (``_jit.bind``) to the specialisation of
#: the mode's row function, which it calls once per task. The row functions are
#: inlined by Numba (``scalar``): compiled on their own, their loops are slower.
rows = None

# ----------------------------------------------------------------------------
# affine_grid
# ----------------------------------------------------------------------------


@kernel
def base_table(n, align_corners, like):
    """The base-grid coordinates ``base_coord(i, n)`` of every i, in the dtype of array
    ``like``, made once per call so that the pixel loops do not divide per pixel
    (bit-identical to computing them there)."""
    t = np.empty(n, dtype=like.dtype)
    for i in range(n):
        t[i] = base_coord(i, n, align_corners, zero_of(like))
    return t


@driver
def affine_grid_2d(theta, grid, align_corners):
    N, Ho, Wo = grid.shape[0], grid.shape[1], grid.shape[2]
    xs, ys = base_table(Wo, align_corners, grid), base_table(Ho, align_corners, grid)
    for job in prange(N * Ho):
        n = job // Ho
        h = job - n * Ho
        for w in range(Wo):
            gx, gy = source_point_2d(grid, theta, True, n, h, w, xs[w], ys[h], align_corners)
            grid[n, h, w, 0] = gx
            grid[n, h, w, 1] = gy


@driver
def affine_grid_3d(theta, grid, align_corners):
    N, Do, Ho, Wo = grid.shape[0], grid.shape[1], grid.shape[2], grid.shape[3]
    xs, ys = base_table(Wo, align_corners, grid), base_table(Ho, align_corners, grid)
    zs = base_table(Do, align_corners, grid)
    for job in prange(N * Do * Ho):
        n, d, h = unravel_2d(job, Do, Ho)
        for w in range(Wo):
            gx, gy, gz = source_point_3d(
                grid, theta, True, n, d, h, w, xs[w], ys[h], zs[d], align_corners
            )
            grid[n, d, h, w, 0] = gx
            grid[n, d, h, w, 1] = gy
            grid[n, d, h, w, 2] = gz


@driver
def affine_grid_backward_2d(ggrid, rowacc, align_corners):
    """rowacc[n * Ho + h] = Σ_w ggrid[n, h, w] ⊗ (x_w, y_h, 1), flattened to 6 values."""
    N, Ho, Wo = ggrid.shape[0], ggrid.shape[1], ggrid.shape[2]
    xs, ys = base_table(Wo, align_corners, ggrid), base_table(Ho, align_corners, ggrid)
    for job in prange(N * Ho):
        n = job // Ho
        h = job - n * Ho
        for k in range(6):
            rowacc[job, k] = 0.0
        for w in range(Wo):
            theta_terms_2d(rowacc, job, ggrid[n, h, w, 0], ggrid[n, h, w, 1], xs[w], ys[h])


@driver
def affine_grid_backward_3d(ggrid, rowacc, align_corners):
    N, Do, Ho, Wo = ggrid.shape[0], ggrid.shape[1], ggrid.shape[2], ggrid.shape[3]
    xs, ys = base_table(Wo, align_corners, ggrid), base_table(Ho, align_corners, ggrid)
    zs = base_table(Do, align_corners, ggrid)
    for job in prange(N * Do * Ho):
        n, d, h = unravel_2d(job, Do, Ho)
        for k in range(12):
            rowacc[job, k] = 0.0
        for w in range(Wo):
            theta_terms_3d(
                rowacc,
                job,
                ggrid[n, d, h, w, 0],
                ggrid[n, d, h, w, 1],
                ggrid[n, d, h, w, 2],
                xs[w],
                ys[h],
                zs[d],
            )


# ----------------------------------------------------------------------------
# grid_sample / warp_affine forward
# ----------------------------------------------------------------------------


@scalar
def bilinear_taps_2d(inp, n, c, w, xi, yi, wt):
    """Output column w of channel c from a row's scratch taps (see sample_2d_cpu):
    :func:`~stn_numba._kernels.bilinear_value`, as the GPU computes it."""
    return bilinear_value(
        inp, n, c, xi[0, w], xi[1, w], yi[0, w], yi[1, w], wt[0, w], wt[1, w], wt[2, w], wt[3, w]
    )


@scalar
def bicubic_taps_2d(inp, n, c, w, ti, tw):
    """Output column w of channel c from a row's scratch taps (see sample_2d_cpu):
    :func:`~stn_numba._kernels.bicubic_value`, as the GPU computes it (0 for a NaN point)."""
    if ti[4, w] == -2:
        return zero_of(tw)
    return bicubic_value(
        inp,
        n,
        c,
        (ti[0, w], ti[1, w], ti[2, w], ti[3, w]),
        (ti[4, w], ti[5, w], ti[6, w], ti[7, w]),
        (tw[0, w], tw[1, w], tw[2, w], tw[3, w]),
        (tw[4, w], tw[5, w], tw[6, w], tw[7, w]),
    )


@scalar
def taps_2d(gx, gy, W, H, padding_mode, align_corners, w, xi, yi, wt):
    """Column w of a row's scratch taps (-1: outside) and bilinear weights, from source
    point (gx, gy): bilinear_sample_2d's arithmetic. Written without a branch of its
    own (``&``, not short-circuit ``and``), so that a loop over it, with
    ``padding_mode`` a constant, vectorises (zeros, border)."""
    x0, y0, tx, ty, _, _, ok = bilinear_point_2d(gx, gy, W, H, padding_mode, align_corners)
    xi[0, w] = valid_tap(x0, W, ok)
    xi[1, w] = valid_tap(wrap_tap(x0 + 1, W, padding_mode), W, ok)
    yi[0, w] = valid_tap(y0, H, True)
    yi[1, w] = valid_tap(wrap_tap(y0 + 1, H, padding_mode), H, True)
    wt[0, w], wt[1, w], wt[2, w], wt[3, w] = bilinear_weights(tx, ty)


@scalar
def _affine_2d(a, b, xb, yb):
    """θ's rows a, b applied to base point (xb, yb): source_point_2d's sums."""
    return a[0] * xb + a[1] * yb + a[2], b[0] * xb + b[1] * yb + b[2]


@specialise(kernel)
def row_taps_2d(source, padding_mode):
    def row_taps_2d(grid, theta, n, h, xs, yb, W, H, align_corners, xi, yi, wt, gs):
        """Stage 1 of :func:`sample_2d_cpu`'s bilinear path: the taps and weights of output
        row (n, h) (base-grid row coordinate ``yb``, column table ``xs``) into the scratch
        rows, for zeros or border padding (reflection, whose fold is scalar anyway, is
        faster inline in the driver). A function of its own, called once per row, with one
        loop per padding mode (the mode a constant in each): LLVM vectorises them (packed
        ``vcvttpd2qq`` / ``vrndscalepd`` in the assembly), which it does not for a loop
        that picks source and padding per pixel. warp_affine's loops take the points
        straight from θ (its coefficients read once); the other sources' points go to the
        scratch ``gs`` first: read straight from an interleaved float32 grid, the taps loop
        stays scalar (benchmarks/README.md has the figures)."""
        if source == AFFINE:
            a = (theta[n, 0, 0], theta[n, 0, 1], theta[n, 0, 2])
            b = (theta[n, 1, 0], theta[n, 1, 1], theta[n, 1, 2])
            if padding_mode == ZEROS:
                for w in range(xs.shape[0]):
                    gx, gy = _affine_2d(a, b, xs[w], yb)
                    taps_2d(gx, gy, W, H, ZEROS, align_corners, w, xi, yi, wt)
            else:
                for w in range(xs.shape[0]):
                    gx, gy = _affine_2d(a, b, xs[w], yb)
                    taps_2d(gx, gy, W, H, BORDER, align_corners, w, xi, yi, wt)
            return
        for w in range(xs.shape[0]):
            gs[0, w], gs[1, w] = source_point_2d(
                grid, theta, source, n, h, w, xs[w], yb, align_corners
            )
        if padding_mode == ZEROS:
            for w in range(xs.shape[0]):
                taps_2d(gs[0, w], gs[1, w], W, H, ZEROS, align_corners, w, xi, yi, wt)
        else:
            for w in range(xs.shape[0]):
                taps_2d(gs[0, w], gs[1, w], W, H, BORDER, align_corners, w, xi, yi, wt)

    return row_taps_2d


@specialise(scalar)
def bilinear_rows_2d(fused, padding_mode, channels_last):
    def bilinear_rows_2d(inp, grid, theta, out, xs, ys, align_corners, j0, j1):
        """Output rows [j0, j1) of the bilinear forward, in two stages per row
        (bilinear_sample_2d's arithmetic, in its order): the taps and weights of the
        whole row into scratch rows (row_taps_2d, vectorised), then the reads per
        channel. One task's contiguous chunk of rows: the scratch is allocated once."""
        Ho, Wo = out.shape[2], out.shape[3]
        C, H, W = inp.shape[1], inp.shape[2], inp.shape[3]
        xi = np.empty((2, Wo), dtype=np.int64)  # tap columns, -1 when outside
        yi = np.empty((2, Wo), dtype=np.int64)  # tap rows, -1 when outside
        wt = np.empty((4, Wo), dtype=grid.dtype)
        gs = np.empty((2, Wo if fused != AFFINE else 0), dtype=grid.dtype)  # source points
        for job in range(j0, j1):
            n = job // Ho
            h = job - n * Ho
            if padding_mode == REFLECTION or padding_mode == WRAP:  # scalar: inline is faster
                for w in range(Wo):
                    gx, gy = source_point_2d(
                        grid, theta, fused, n, h, w, xs[w], ys[h], align_corners
                    )
                    taps_2d(gx, gy, W, H, padding_mode, align_corners, w, xi, yi, wt)
            else:
                row_taps_2d(grid, theta, n, h, xs, ys[h], W, H, align_corners, xi, yi, wt, gs)
            # stage 2 inline here: as a function called per row it is slower
            if channels_last:  # the channels of a pixel are adjacent: pixel by pixel
                for w in range(Wo):
                    for c in range(C):
                        out[n, c, h, w] = bilinear_taps_2d(inp, n, c, w, xi, yi, wt)
            else:  # plane by plane
                for c in range(C):
                    for w in range(Wo):
                        out[n, c, h, w] = bilinear_taps_2d(inp, n, c, w, xi, yi, wt)

    return bind(bilinear_rows_2d, row_taps_2d=row_taps_2d(fused, padding_mode))


@specialise(scalar)
def bicubic_rows_2d(fused, padding_mode, channels_last):
    def bicubic_rows_2d(inp, grid, theta, out, xs, ys, align_corners, j0, j1):
        """Output rows [j0, j1) of the bicubic forward, bicubic_sample_2d in the same two
        stages: the 4 + 4 padded tap indices (-1: outside) and Keys weights of the row,
        then the 16 reads per channel."""
        Ho, Wo = out.shape[2], out.shape[3]
        C, H, W = inp.shape[1], inp.shape[2], inp.shape[3]
        ti = np.empty((8, Wo), dtype=np.int64)  # x taps 0-3, y taps 0-3; -2: NaN point
        tw = np.empty((8, Wo), dtype=grid.dtype)  # their weights
        for job in range(j0, j1):
            n = job // Ho
            h = job - n * Ho
            for w in range(Wo):
                gx, gy = source_point_2d(grid, theta, fused, n, h, w, xs[w], ys[h], align_corners)
                if gx != gx or gy != gy:
                    ti[4, w] = -2
                    continue
                tx, wx, _, _ = cubic_taps(gx, W, padding_mode, align_corners)
                ty, wy, _, _ = cubic_taps(gy, H, padding_mode, align_corners)
                for i in range(4):
                    ti[i, w] = tx[i]
                    ti[4 + i, w] = ty[i]
                    tw[i, w] = wx[i]
                    tw[4 + i, w] = wy[i]
            if channels_last:
                for w in range(Wo):
                    for c in range(C):
                        out[n, c, h, w] = bicubic_taps_2d(inp, n, c, w, ti, tw)
            else:
                for c in range(C):
                    for w in range(Wo):
                        out[n, c, h, w] = bicubic_taps_2d(inp, n, c, w, ti, tw)

    return bicubic_rows_2d


@specialise(scalar)
def nearest_rows_2d(fused, padding_mode, channels_last):
    def nearest_rows_2d(inp, grid, theta, out, xs, ys, align_corners, j0, j1):
        """Output rows [j0, j1) of the nearest forward, one pixel at a time."""
        Ho, Wo = out.shape[2], out.shape[3]
        for job in range(j0, j1):
            n = job // Ho
            h = job - n * Ho
            for w in range(Wo):
                gx, gy = source_point_2d(grid, theta, fused, n, h, w, xs[w], ys[h], align_corners)
                nearest_sample_2d(inp, out, n, h, w, gx, gy, padding_mode, align_corners)

    return nearest_rows_2d


@specialise(scalar)
def spline_rows_2d(fused, mode, padding_mode):
    def spline_rows_2d(inp, grid, theta, out, xs, ys, align_corners, j0, j1):
        """Output rows [j0, j1) of a B-spline forward (``inp`` holds the coefficients),
        one pixel at a time: :func:`~stn_numba._kernels.spline_sample_2d`."""
        Ho, Wo = out.shape[2], out.shape[3]
        for job in range(j0, j1):
            n = job // Ho
            h = job - n * Ho
            for w in range(Wo):
                gx, gy = source_point_2d(grid, theta, fused, n, h, w, xs[w], ys[h], align_corners)
                sample_2d(inp, out, n, h, w, gx, gy, mode, padding_mode, align_corners)

    return spline_rows_2d


_ROWS_2D = {BILINEAR: bilinear_rows_2d, BICUBIC: bicubic_rows_2d, NEAREST: nearest_rows_2d}


def _rows_2d(fused, mode, padding_mode, channels_last):
    if spline_order(mode):
        return spline_rows_2d(fused, mode, padding_mode)
    return _ROWS_2D[mode](fused, padding_mode, channels_last)


@specialise(driver)
def sample_2d_cpu(fused, mode, padding_mode, channels_last):
    def sample_2d_cpu(inp, grid, theta, out, align_corners, tasks):
        """The forward over ``tasks`` contiguous chunks of output rows, in parallel; each
        chunk is one call of the mode's row function (``rows``)."""
        N, Ho, Wo = out.shape[0], out.shape[2], out.shape[3]
        xs, ys = base_table(Wo, align_corners, grid), base_table(Ho, align_corners, grid)
        jobs = N * Ho
        chunks = max(1, min(jobs, tasks))
        for t in prange(chunks):
            j0 = t * jobs // chunks
            j1 = (t + 1) * jobs // chunks
            rows(inp, grid, theta, out, xs, ys, align_corners, j0, j1)

    return bind(sample_2d_cpu, rows=_rows_2d(fused, mode, padding_mode, channels_last))


@scalar
def taps_3d(gx, gy, gz, W, H, D, padding_mode, align_corners, w, ti, wt):
    """:func:`taps_2d` in 3-D: tap columns, rows, slices (-1: outside) into ``ti[0:2]``,
    ``ti[2:4]``, ``ti[4:6]``; the 8 weights (wz·wy)·wx of corner (bz, by, bx) into
    ``wt[4·bz + 2·by + bx]``, as :func:`~stn_numba._kernels.trilinear_weights` gives them."""
    x0, y0, z0, tx, ty, tz, _, _, _, ok = trilinear_point_3d(
        gx, gy, gz, W, H, D, padding_mode, align_corners
    )
    ti[0, w] = valid_tap(x0, W, ok)
    ti[1, w] = valid_tap(wrap_tap(x0 + 1, W, padding_mode), W, ok)
    ti[2, w] = valid_tap(y0, H, True)
    ti[3, w] = valid_tap(wrap_tap(y0 + 1, H, padding_mode), H, True)
    ti[4, w] = valid_tap(z0, D, True)
    ti[5, w] = valid_tap(wrap_tap(z0 + 1, D, padding_mode), D, True)
    w0, w1, w2, w3, w4, w5, w6, w7 = trilinear_weights(tx, ty, tz)
    wt[0, w], wt[1, w], wt[2, w], wt[3, w] = w0, w1, w2, w3
    wt[4, w], wt[5, w], wt[6, w], wt[7, w] = w4, w5, w6, w7


@scalar
def _affine_3d(a, b, c, xb, yb, zb):
    """θ's rows a, b, c applied to base point (xb, yb, zb): source_point_3d's sums."""
    gx = a[0] * xb + a[1] * yb + a[2] * zb + a[3]
    gy = b[0] * xb + b[1] * yb + b[2] * zb + b[3]
    gz = c[0] * xb + c[1] * yb + c[2] * zb + c[3]
    return gx, gy, gz


@specialise(kernel)
def row_taps_3d(source, padding_mode):
    def row_taps_3d(grid, theta, n, d, h, xs, yb, zb, W, H, D, align_corners, ti, wt, gs):
        """:func:`row_taps_2d` in 3-D (trilinear). warp_affine's loops take the points
        straight from θ: through the scratch ``gs`` they run at half the speed here,
        unlike in 2-D."""
        if source == AFFINE:
            t = theta
            a = (t[n, 0, 0], t[n, 0, 1], t[n, 0, 2], t[n, 0, 3])
            b = (t[n, 1, 0], t[n, 1, 1], t[n, 1, 2], t[n, 1, 3])
            c = (t[n, 2, 0], t[n, 2, 1], t[n, 2, 2], t[n, 2, 3])
            if padding_mode == ZEROS:
                for w in range(xs.shape[0]):
                    gx, gy, gz = _affine_3d(a, b, c, xs[w], yb, zb)
                    taps_3d(gx, gy, gz, W, H, D, ZEROS, align_corners, w, ti, wt)
            elif padding_mode == BORDER:
                for w in range(xs.shape[0]):
                    gx, gy, gz = _affine_3d(a, b, c, xs[w], yb, zb)
                    taps_3d(gx, gy, gz, W, H, D, BORDER, align_corners, w, ti, wt)
            else:
                for w in range(xs.shape[0]):
                    gx, gy, gz = _affine_3d(a, b, c, xs[w], yb, zb)
                    taps_3d(gx, gy, gz, W, H, D, padding_mode, align_corners, w, ti, wt)
            return
        for w in range(xs.shape[0]):
            gs[0, w], gs[1, w], gs[2, w] = source_point_3d(
                grid, theta, source, n, d, h, w, xs[w], yb, zb, align_corners
            )
        if padding_mode == ZEROS:
            for w in range(xs.shape[0]):
                taps_3d(gs[0, w], gs[1, w], gs[2, w], W, H, D, ZEROS, align_corners, w, ti, wt)
        elif padding_mode == BORDER:
            for w in range(xs.shape[0]):
                taps_3d(gs[0, w], gs[1, w], gs[2, w], W, H, D, BORDER, align_corners, w, ti, wt)
        else:
            for w in range(xs.shape[0]):
                gx, gy, gz = gs[0, w], gs[1, w], gs[2, w]
                taps_3d(gx, gy, gz, W, H, D, padding_mode, align_corners, w, ti, wt)

    return row_taps_3d


@scalar
def trilinear_taps_3d(inp, n, c, w, ti, wt):
    """Output column w of channel c from a row's scratch taps:
    :func:`~stn_numba._kernels.trilinear_value`, as the GPU computes it."""
    return trilinear_value(
        inp,
        n,
        c,
        ti[0, w],
        ti[1, w],
        ti[2, w],
        ti[3, w],
        ti[4, w],
        ti[5, w],
        (wt[0, w], wt[1, w], wt[2, w], wt[3, w], wt[4, w], wt[5, w], wt[6, w], wt[7, w]),
    )


@specialise(scalar)
def trilinear_rows_3d(fused, padding_mode, channels_last):
    def trilinear_rows_3d(inp, grid, theta, out, xs, ys, zs, align_corners, j0, j1):
        """Output rows [j0, j1) of the trilinear forward: the two stages per output row
        of :func:`bilinear_rows_2d`."""
        Do, Ho, Wo = out.shape[2], out.shape[3], out.shape[4]
        C, D, H, W = inp.shape[1], inp.shape[2], inp.shape[3], inp.shape[4]
        ti = np.empty((6, Wo), dtype=np.int64)  # tap columns, rows, slices; -1: outside
        wt = np.empty((8, Wo), dtype=grid.dtype)  # the 8 corner weights
        gs = np.empty((3, Wo if fused != AFFINE else 0), dtype=grid.dtype)  # source points
        for job in range(j0, j1):
            n, d, h = unravel_2d(job, Do, Ho)
            row_taps_3d(grid, theta, n, d, h, xs, ys[h], zs[d], W, H, D, align_corners, ti, wt, gs)
            if channels_last:
                for w in range(Wo):
                    for c in range(C):
                        out[n, c, d, h, w] = trilinear_taps_3d(inp, n, c, w, ti, wt)
            else:
                for c in range(C):
                    for w in range(Wo):
                        out[n, c, d, h, w] = trilinear_taps_3d(inp, n, c, w, ti, wt)

    return bind(trilinear_rows_3d, row_taps_3d=row_taps_3d(fused, padding_mode))


@specialise(scalar)
def nearest_rows_3d(fused, padding_mode, channels_last):
    def nearest_rows_3d(inp, grid, theta, out, xs, ys, zs, align_corners, j0, j1):
        """Output rows [j0, j1) of the nearest 3-D forward, one voxel at a time."""
        Do, Ho, Wo = out.shape[2], out.shape[3], out.shape[4]
        for job in range(j0, j1):
            n, d, h = unravel_2d(job, Do, Ho)
            for w in range(Wo):
                gx, gy, gz = source_point_3d(
                    grid, theta, fused, n, d, h, w, xs[w], ys[h], zs[d], align_corners
                )
                nearest_sample_3d(inp, out, n, d, h, w, gx, gy, gz, padding_mode, align_corners)

    return nearest_rows_3d


@specialise(scalar)
def spline_rows_3d(fused, mode, padding_mode):
    def spline_rows_3d(inp, grid, theta, out, xs, ys, zs, align_corners, j0, j1):
        """Output rows [j0, j1) of a B-spline 3-D forward, one voxel at a time."""
        Do, Ho, Wo = out.shape[2], out.shape[3], out.shape[4]
        for job in range(j0, j1):
            n, d, h = unravel_2d(job, Do, Ho)
            for w in range(Wo):
                gx, gy, gz = source_point_3d(
                    grid, theta, fused, n, d, h, w, xs[w], ys[h], zs[d], align_corners
                )
                sample_3d(inp, out, n, d, h, w, gx, gy, gz, mode, padding_mode, align_corners)

    return spline_rows_3d


_ROWS_3D = {BILINEAR: trilinear_rows_3d, NEAREST: nearest_rows_3d}


def _rows_3d(fused, mode, padding_mode, channels_last):
    if spline_order(mode):
        return spline_rows_3d(fused, mode, padding_mode)
    return _ROWS_3D[mode](fused, padding_mode, channels_last)


@specialise(driver)
def sample_3d_cpu(fused, mode, padding_mode, channels_last):
    def sample_3d_cpu(inp, grid, theta, out, align_corners, tasks):
        """:func:`sample_2d_cpu` in 3-D (rows are (n, d, h))."""
        N, Do, Ho, Wo = out.shape[0], out.shape[2], out.shape[3], out.shape[4]
        xs, ys = base_table(Wo, align_corners, grid), base_table(Ho, align_corners, grid)
        zs = base_table(Do, align_corners, grid)
        jobs = N * Do * Ho
        chunks = max(1, min(jobs, tasks))
        for t in prange(chunks):
            j0 = t * jobs // chunks
            j1 = (t + 1) * jobs // chunks
            rows(inp, grid, theta, out, xs, ys, zs, align_corners, j0, j1)

    return bind(sample_3d_cpu, rows=_rows_3d(fused, mode, padding_mode, channels_last))


# ----------------------------------------------------------------------------
# Backward: grid / θ gradient (gather, one task per output row)
# ----------------------------------------------------------------------------


@specialise(driver)
def grad_points_2d_cpu(fused, mode, padding_mode):
    def grad_points_2d_cpu(inp, gout, grid, theta, ggrid, rowacc, align_corners):
        """Grid gradient into ``ggrid`` (grid path) or θ row sums into ``rowacc`` (fused)."""
        N, Ho, Wo = gout.shape[0], gout.shape[2], gout.shape[3]
        xs, ys = base_table(Wo, align_corners, grid), base_table(Ho, align_corners, grid)
        for job in prange(N * Ho):
            n = job // Ho
            h = job - n * Ho
            if fused:
                for k in range(6):
                    rowacc[job, k] = 0.0
            for w in range(Wo):
                gx, gy = source_point_2d(grid, theta, fused, n, h, w, xs[w], ys[h], align_corners)
                ggx, ggy = grad_point_2d(
                    inp, gout, n, h, w, gx, gy, mode, padding_mode, align_corners
                )
                if fused:
                    theta_terms_2d(rowacc, job, ggx, ggy, xs[w], ys[h])
                else:
                    ggrid[n, h, w, 0] = ggx
                    ggrid[n, h, w, 1] = ggy

    return grad_points_2d_cpu


@specialise(driver)
def grad_points_3d_cpu(fused, mode, padding_mode):
    def grad_points_3d_cpu(inp, gout, grid, theta, ggrid, rowacc, align_corners):
        N, Do, Ho, Wo = gout.shape[0], gout.shape[2], gout.shape[3], gout.shape[4]
        xs, ys = base_table(Wo, align_corners, grid), base_table(Ho, align_corners, grid)
        zs = base_table(Do, align_corners, grid)
        for job in prange(N * Do * Ho):
            n, d, h = unravel_2d(job, Do, Ho)
            if fused:
                for k in range(12):
                    rowacc[job, k] = 0.0
            for w in range(Wo):
                gx, gy, gz = source_point_3d(
                    grid, theta, fused, n, d, h, w, xs[w], ys[h], zs[d], align_corners
                )
                ggx, ggy, ggz = grad_point_3d(
                    inp, gout, n, d, h, w, gx, gy, gz, mode, padding_mode, align_corners
                )
                if fused:
                    theta_terms_3d(rowacc, job, ggx, ggy, ggz, xs[w], ys[h], zs[d])
                else:
                    ggrid[n, d, h, w, 0] = ggx
                    ggrid[n, d, h, w, 1] = ggy
                    ggrid[n, d, h, w, 2] = ggz

    return grad_points_3d_cpu


# ----------------------------------------------------------------------------
# Backward: input gradient (banded scatter, deterministic)
# ----------------------------------------------------------------------------


@specialise(driver)
def scatter_2d_cpu(fused, mode, padding_mode):
    def scatter_2d_cpu(gout, grid, theta, gin, spans, bands, align_corners):
        """gin (zeroed) += the input gradient; task (n, k) owns input rows of band k."""
        N, Hin = gin.shape[0], gin.shape[2]
        Ho, Wo = gout.shape[2], gout.shape[3]
        xs, ys = base_table(Wo, align_corners, grid), base_table(Ho, align_corners, grid)
        for job in prange(N * bands):
            n = job // bands
            k = job - n * bands
            r0 = (k * Hin) // bands
            r1 = ((k + 1) * Hin) // bands
            for h in range(Ho):
                if spans[n * Ho + h, 1] < r0 or spans[n * Ho + h, 0] >= r1:
                    continue  # every tap of this output row misses the band
                for w in range(Wo):
                    gx, gy = source_point_2d(
                        grid, theta, fused, n, h, w, xs[w], ys[h], align_corners
                    )
                    scatter_2d(
                        gin, gout, n, h, w, gx, gy, mode, padding_mode, align_corners, r0, r1, 1.0
                    )

    return scatter_2d_cpu


@specialise(driver)
def scatter_3d_cpu(fused, mode, padding_mode):
    def scatter_3d_cpu(gout, grid, theta, gin, spans, bands, align_corners):
        """gin (zeroed) += the input gradient; task (n, k) owns input depth slices of band k."""
        N, Din = gin.shape[0], gin.shape[2]
        Do, Ho, Wo = gout.shape[2], gout.shape[3], gout.shape[4]
        xs, ys = base_table(Wo, align_corners, grid), base_table(Ho, align_corners, grid)
        zs = base_table(Do, align_corners, grid)
        for job in prange(N * bands):
            n = job // bands
            k = job - n * bands
            s0 = (k * Din) // bands
            s1 = ((k + 1) * Din) // bands
            for d in range(Do):
                for h in range(Ho):
                    row = (n * Do + d) * Ho + h
                    if spans[row, 1] < s0 or spans[row, 0] >= s1:
                        continue  # every tap of this output row misses the band
                    for w in range(Wo):
                        gx, gy, gz = source_point_3d(
                            grid, theta, fused, n, d, h, w, xs[w], ys[h], zs[d], align_corners
                        )
                        scatter_3d(
                            gin,
                            gout,
                            n,
                            d,
                            h,
                            w,
                            gx,
                            gy,
                            gz,
                            mode,
                            padding_mode,
                            align_corners,
                            s0,
                            s1,
                            1.0,
                        )

    return scatter_3d_cpu


@scalar
def _store_point_2d(gs, w, W, H, padding_mode, align_corners, ii, ff):
    """Column w of :func:`point_row_2d`: bilinear_point_2d of source point gs[:, w]."""
    x0, y0, tx, ty, dx, dy, ok = bilinear_point_2d(
        gs[0, w], gs[1, w], W, H, padding_mode, align_corners
    )
    ii[0, w], ii[1, w], ii[2, w] = x0, y0, ok
    ff[0, w], ff[1, w], ff[2, w], ff[3, w] = tx, ty, dx, dy


@specialise(kernel)
def point_row_2d(fused, padding_mode):
    def point_row_2d(grid, theta, n, h, xs, yb, W, H, align_corners, ii, ff, gs):
        """Stage 1 of :func:`backward_bilinear_2d_cpu`: each column's source point, then
        its :func:`bilinear_point_2d` (x0, y0, valid into ``ii``; tx, ty, dx, dy into
        ``ff``). With zeros or border padding (a constant in its loop) the second loop has
        no branch and vectorises (see :func:`row_taps_2d`); reflection stays scalar."""
        for w in range(xs.shape[0]):
            gs[0, w], gs[1, w] = source_point_2d(
                grid, theta, fused, n, h, w, xs[w], yb, align_corners
            )
        if padding_mode == ZEROS:
            for w in range(xs.shape[0]):
                _store_point_2d(gs, w, W, H, ZEROS, align_corners, ii, ff)
        elif padding_mode == BORDER:
            for w in range(xs.shape[0]):
                _store_point_2d(gs, w, W, H, BORDER, align_corners, ii, ff)
        else:
            for w in range(xs.shape[0]):
                _store_point_2d(gs, w, W, H, padding_mode, align_corners, ii, ff)

    return point_row_2d


@specialise(driver)
def backward_bilinear_2d_cpu(fused, padding_mode):
    def backward_bilinear_2d_cpu(
        gout,
        inp,
        grid,
        theta,
        gin,
        ggrid,
        rowacc,
        spans,
        bands,
        align_corners,
        input_grad,
        point_grad,
    ):
        """Bilinear backward in one pass: input-gradient scatter and grid/θ gradient together.

        Task (n, k) owns input rows [r0, r1) of sample n (as :func:`scatter_2d_cpu`, so the
        scatter is race-free and bit-identical for any band count) and computes the grid
        gradient of the output pixels it *owns*: those whose top tap row, clamped into the
        image, lies in its band. Pixels with no tap inside keep their zero gradient (``ggrid``
        arrives zeroed). θ row sums (``fused``) need a whole row in one task: bands == 1.
        The arithmetic is that of :func:`scatter_2d` and :func:`grad_point_2d`, in the same
        order, so the results are bit-identical to the two-pass path.
        """
        N, C, H, W = inp.shape[0], inp.shape[1], inp.shape[2], inp.shape[3]
        Ho, Wo = gout.shape[2], gout.shape[3]
        xs, ys = base_table(Wo, align_corners, grid), base_table(Ho, align_corners, grid)
        for job in prange(N * bands):
            n = job // bands
            k = job - n * bands
            r0 = (k * H) // bands
            r1 = ((k + 1) * H) // bands
            ii = np.empty((3, Wo), dtype=np.int64)  # the row's points: x0, y0, valid
            ff = np.empty((4, Wo), dtype=grid.dtype)  # tx, ty, dx, dy
            gs = np.empty((2, Wo), dtype=grid.dtype)  # source points (gx, gy)
            for h in range(Ho):
                row = n * Ho + h
                if fused and point_grad:
                    for q in range(6):
                        rowacc[row, q] = 0.0
                if spans[row, 1] < r0 or spans[row, 0] >= r1:
                    continue  # every tap of this output row misses the band
                point_row_2d(grid, theta, n, h, xs, ys[h], W, H, align_corners, ii, ff, gs)
                for w in range(Wo):
                    x0, y0, ok = ii[0, w], ii[1, w], ii[2, w] != 0
                    tx, ty, dx, dy = ff[0, w], ff[1, w], ff[2, w], ff[3, w]
                    x1 = wrap_tap(x0 + 1, W, padding_mode)
                    y1 = wrap_tap(y0 + 1, H, padding_mode)
                    b_y0 = y0 >= r0 and y0 < r1
                    b_y1 = y1 >= r0 and y1 < r1
                    if not ok or not (b_y0 or b_y1):  # y1 is not y0 + 1 under wrap
                        continue
                    yc = min(max(y0, 0), H - 1)
                    own = point_grad and yc >= r0 and yc < r1
                    in_x0 = x0 >= 0 and x0 < W
                    in_x1 = x1 >= 0 and x1 < W
                    in_y0 = y0 >= 0 and y0 < H
                    in_y1 = y1 >= 0 and y1 < H
                    zero = cast(0, tx)
                    w00, w01, w10, w11 = bilinear_weights(tx, ty)
                    gix = zero
                    giy = zero
                    for c in range(C):
                        g = cast(gout[n, c, h, w], tx)
                        if input_grad:
                            if b_y0:
                                if in_x0:
                                    gin[n, c, y0, x0] += w00 * g
                                if in_x1:
                                    gin[n, c, y0, x1] += w01 * g
                            if b_y1:
                                if in_x0:
                                    gin[n, c, y1, x0] += w10 * g
                                if in_x1:
                                    gin[n, c, y1, x1] += w11 * g
                        if own:
                            v00 = cast(inp[n, c, y0, x0], tx) if in_y0 and in_x0 else zero
                            v01 = cast(inp[n, c, y0, x1], tx) if in_y0 and in_x1 else zero
                            v10 = cast(inp[n, c, y1, x0], tx) if in_y1 and in_x0 else zero
                            v11 = cast(inp[n, c, y1, x1], tx) if in_y1 and in_x1 else zero
                            a, b = bilinear_grads(g, v00, v01, v10, v11, tx, ty)
                            gix += a
                            giy += b
                    if own:
                        ggx = dx * gix
                        ggy = dy * giy
                        if fused:
                            theta_terms_2d(rowacc, row, ggx, ggy, xs[w], ys[h])
                        else:
                            ggrid[n, h, w, 0] = ggx
                            ggrid[n, h, w, 1] = ggy

    return bind(backward_bilinear_2d_cpu, point_row_2d=point_row_2d(fused, padding_mode))


@scalar
def _store_point_3d(gs, w, W, H, D, padding_mode, align_corners, ii, ff):
    """Column w of :func:`point_row_3d`: trilinear_point_3d of source point gs[:, w]."""
    x0, y0, z0, tx, ty, tz, dx, dy, dz, ok = trilinear_point_3d(
        gs[0, w], gs[1, w], gs[2, w], W, H, D, padding_mode, align_corners
    )
    ii[0, w], ii[1, w], ii[2, w], ii[3, w] = x0, y0, z0, ok
    ff[0, w], ff[1, w], ff[2, w] = tx, ty, tz
    ff[3, w], ff[4, w], ff[5, w] = dx, dy, dz


@specialise(kernel)
def point_row_3d(fused, padding_mode):
    def point_row_3d(grid, theta, n, d, h, xs, yb, zb, W, H, D, align_corners, ii, ff, gs):
        """:func:`point_row_2d` in 3-D: x0, y0, z0, valid into ``ii``; tx, ty, tz, dx, dy,
        dz into ``ff``."""
        for w in range(xs.shape[0]):
            gs[0, w], gs[1, w], gs[2, w] = source_point_3d(
                grid, theta, fused, n, d, h, w, xs[w], yb, zb, align_corners
            )
        if padding_mode == ZEROS:
            for w in range(xs.shape[0]):
                _store_point_3d(gs, w, W, H, D, ZEROS, align_corners, ii, ff)
        elif padding_mode == BORDER:
            for w in range(xs.shape[0]):
                _store_point_3d(gs, w, W, H, D, BORDER, align_corners, ii, ff)
        else:
            for w in range(xs.shape[0]):
                _store_point_3d(gs, w, W, H, D, padding_mode, align_corners, ii, ff)

    return point_row_3d


@specialise(driver)
def backward_trilinear_3d_cpu(fused, padding_mode):
    def backward_trilinear_3d_cpu(
        gout,
        inp,
        grid,
        theta,
        gin,
        ggrid,
        rowacc,
        spans,
        bands,
        align_corners,
        input_grad,
        point_grad,
    ):
        """Trilinear backward in one pass; see :func:`backward_bilinear_2d_cpu` (the bands
        are of depth slices here; a voxel's owner holds its clamped front tap slice). The
        arithmetic is that of :func:`scatter_3d` and :func:`grad_point_3d`, in their order."""
        N, C, D, H, W = inp.shape[0], inp.shape[1], inp.shape[2], inp.shape[3], inp.shape[4]
        Do, Ho, Wo = gout.shape[2], gout.shape[3], gout.shape[4]
        xs, ys = base_table(Wo, align_corners, grid), base_table(Ho, align_corners, grid)
        zs = base_table(Do, align_corners, grid)
        for job in prange(N * bands):
            n = job // bands
            k = job - n * bands
            s0 = (k * D) // bands
            s1 = ((k + 1) * D) // bands
            ii = np.empty((4, Wo), dtype=np.int64)  # the row's points: x0, y0, z0, valid
            ff = np.empty((6, Wo), dtype=grid.dtype)  # tx, ty, tz, dx, dy, dz
            gs = np.empty((3, Wo), dtype=grid.dtype)  # source points
            for d in range(Do):
                for h in range(Ho):
                    row = (n * Do + d) * Ho + h
                    if fused and point_grad:
                        for q in range(12):
                            rowacc[row, q] = 0.0
                    if spans[row, 1] < s0 or spans[row, 0] >= s1:
                        continue  # every tap of this output row misses the band
                    point_row_3d(
                        grid, theta, n, d, h, xs, ys[h], zs[d], W, H, D, align_corners, ii, ff, gs
                    )
                    for w in range(Wo):
                        x0, y0, z0, ok = ii[0, w], ii[1, w], ii[2, w], ii[3, w] != 0
                        tx, ty, tz = ff[0, w], ff[1, w], ff[2, w]
                        dx, dy, dz = ff[3, w], ff[4, w], ff[5, w]
                        x1 = wrap_tap(x0 + 1, W, padding_mode)
                        y1 = wrap_tap(y0 + 1, H, padding_mode)
                        z1 = wrap_tap(z0 + 1, D, padding_mode)
                        if not ok or ((z0 < s0 or z0 >= s1) and (z1 < s0 or z1 >= s1)):
                            continue  # (z1 is not z0 + 1 under wrap)
                        zc = min(max(z0, 0), D - 1)
                        own = point_grad and zc >= s0 and zc < s1
                        zero = cast(0, tx)
                        gix = zero
                        giy = zero
                        giz = zero
                        wt = trilinear_weights(tx, ty, tz)
                        for c in range(C):
                            g = cast(gout[n, c, d, h, w], tx)
                            if input_grad:
                                for bz in range(2):
                                    zi = z1 if bz == 1 else z0
                                    if zi < s0 or zi >= s1:
                                        continue
                                    for by in range(2):
                                        yi = y1 if by == 1 else y0
                                        if yi < 0 or yi >= H:
                                            continue
                                        for bx in range(2):
                                            xi = x1 if bx == 1 else x0
                                            if xi >= 0 and xi < W:
                                                wgt = wt[4 * bz + 2 * by + bx]
                                                gin[n, c, zi, yi, xi] += wgt * g
                            if own:
                                for bz in range(2):
                                    zi = z1 if bz == 1 else z0
                                    for by in range(2):
                                        yi = y1 if by == 1 else y0
                                        for bx in range(2):
                                            xi = x1 if bx == 1 else x0
                                            val = zero
                                            if (
                                                zi >= 0 and zi < D and yi >= 0 and yi < H
                                                and xi >= 0 and xi < W
                                            ):  # fmt: skip
                                                val = cast(inp[n, c, zi, yi, xi], tx)
                                            v = g * val
                                            a, b, e = trilinear_grads(v, tx, ty, tz, bx, by, bz)
                                            gix += a
                                            giy += b
                                            giz += e
                        if own:
                            ggx = dx * gix
                            ggy = dy * giy
                            ggz = dz * giz
                            if fused:
                                theta_terms_3d(rowacc, row, ggx, ggy, ggz, xs[w], ys[h], zs[d])
                            else:
                                ggrid[n, d, h, w, 0] = ggx
                                ggrid[n, d, h, w, 1] = ggy
                                ggrid[n, d, h, w, 2] = ggz

    return bind(backward_trilinear_3d_cpu, point_row_3d=point_row_3d(fused, padding_mode))


@driver
def row_spans_2d(grid, theta, fused, spans, Ho, Wo, Hin, padding_mode, align_corners):
    """spans[n * Ho + h] = input rows [lo, hi] that output row (n, h) can touch."""
    rows = spans.shape[0]
    flat = grid.reshape((-1, Wo, 2)) if not fused else grid.reshape((0, Wo, 2))
    for job in prange(rows):
        n = job // Ho
        h = job - n * Ho
        fixed = 0.0
        if fused:
            yb = float(base_coord(h, Ho, align_corners, theta[n, 1, 1]))
            fixed = float(theta[n, 1, 1]) * yb + float(theta[n, 1, 2])
        lo, hi = row_span(
            flat, theta, fused, n, job, 1, fixed, Wo, Hin, padding_mode, align_corners
        )
        spans[job, 0] = lo
        spans[job, 1] = hi


@driver
def row_spans_3d(grid, theta, fused, spans, Do, Ho, Wo, Din, padding_mode, align_corners):
    """spans[(n * Do + d) * Ho + h] = input slices [lo, hi] that output row (n, d, h) can touch."""
    rows = spans.shape[0]
    flat = grid.reshape((-1, Wo, 3)) if not fused else grid.reshape((0, Wo, 3))
    for job in prange(rows):
        n, d, h = unravel_2d(job, Do, Ho)
        fixed = 0.0
        if fused:
            zb = float(base_coord(d, Do, align_corners, theta[n, 2, 1]))
            yb = float(base_coord(h, Ho, align_corners, theta[n, 2, 1]))
            fixed = theta[n, 2, 1] * yb + theta[n, 2, 2] * zb + theta[n, 2, 3]
        lo, hi = row_span(
            flat, theta, fused, n, job, 2, fixed, Wo, Din, padding_mode, align_corners
        )
        spans[job, 0] = lo
        spans[job, 1] = hi


# ----------------------------------------------------------------------------
# Projective and flow grids
# ----------------------------------------------------------------------------


@driver
def perspective_grid_2d(theta, grid, align_corners):
    N, Ho, Wo = grid.shape[0], grid.shape[1], grid.shape[2]
    for job in prange(N * Ho):
        n = job // Ho
        h = job - n * Ho
        for w in range(Wo):
            gx, gy, _ = perspective_point_2d(theta, n, h, w, Ho, Wo, align_corners)
            grid[n, h, w, 0] = gx
            grid[n, h, w, 1] = gy


@driver
def perspective_grid_backward_2d(ggrid, theta, rowacc, align_corners):
    """rowacc[n * Ho + h] = dL/dθ[n] of output row (n, h), flattened to 9 values."""
    N, Ho, Wo = ggrid.shape[0], ggrid.shape[1], ggrid.shape[2]
    for job in prange(N * Ho):
        n = job // Ho
        h = job - n * Ho
        for k in range(9):
            rowacc[job, k] = 0.0
        for w in range(Wo):
            accumulate_perspective_2d(
                rowacc, job, ggrid[n, h, w, 0], ggrid[n, h, w, 1], theta, n, h, w, Ho, Wo,
                align_corners,
            )  # fmt: skip


@driver
def perspective_grid_3d(theta, grid, align_corners):
    N, Do, Ho, Wo = grid.shape[0], grid.shape[1], grid.shape[2], grid.shape[3]
    for job in prange(N * Do * Ho):
        n, d, h = unravel_2d(job, Do, Ho)
        for w in range(Wo):
            gx, gy, gz, _ = perspective_point_3d(theta, n, d, h, w, Do, Ho, Wo, align_corners)
            grid[n, d, h, w, 0] = gx
            grid[n, d, h, w, 1] = gy
            grid[n, d, h, w, 2] = gz


@driver
def perspective_grid_backward_3d(ggrid, theta, rowacc, align_corners):
    """rowacc[(n * Do + d) * Ho + h] = dL/dθ[n] of output row (n, d, h), flattened to 16
    values."""
    N, Do, Ho, Wo = ggrid.shape[0], ggrid.shape[1], ggrid.shape[2], ggrid.shape[3]
    for job in prange(N * Do * Ho):
        n, d, h = unravel_2d(job, Do, Ho)
        for k in range(16):
            rowacc[job, k] = 0.0
        for w in range(Wo):
            accumulate_perspective_3d(
                rowacc, job, ggrid[n, d, h, w, 0], ggrid[n, d, h, w, 1], ggrid[n, d, h, w, 2],
                theta, n, d, h, w, Do, Ho, Wo, align_corners,
            )  # fmt: skip


@driver
def flow_grid_2d(flow, grid, Hin, Win, align_corners):
    N, Ho, Wo = flow.shape[0], flow.shape[1], flow.shape[2]
    for job in prange(N * Ho):
        n = job // Ho
        h = job - n * Ho
        for w in range(Wo):
            gx, gy = flow_point_2d(flow, n, h, w, Hin, Win, align_corners)
            grid[n, h, w, 0] = gx
            grid[n, h, w, 1] = gy


@driver
def flow_grid_3d(flow, grid, Din, Hin, Win, align_corners):
    N, Do, Ho, Wo = flow.shape[0], flow.shape[1], flow.shape[2], flow.shape[3]
    for job in prange(N * Do * Ho):
        n, d, h = unravel_2d(job, Do, Ho)
        for w in range(Wo):
            gx, gy, gz = flow_point_3d(flow, n, d, h, w, Din, Hin, Win, align_corners)
            grid[n, d, h, w, 0] = gx
            grid[n, d, h, w, 1] = gy
            grid[n, d, h, w, 2] = gz


# ----------------------------------------------------------------------------
# Host side: the backend interface shared with stn_numba._cuda
# ----------------------------------------------------------------------------


# ----------------------------------------------------------------------------
# B-spline coefficients (the prefilter) and the transpose for the input gradient
# ----------------------------------------------------------------------------


@driver
def spline_coefficients_2d(inp, coef, order, boundary, margin):
    """coef (N, C, H + 2m, W + 2m) = the image in the middle, zeros around, prefiltered
    along each axis (rows, then columns), in coef's float type."""
    N, C, H, W = inp.shape[0], inp.shape[1], inp.shape[2], inp.shape[3]
    Hp, Wp = coef.shape[2], coef.shape[3]
    for job in prange(N * C * Hp):
        n, c, y = unravel_2d(job, C, Hp)
        for x in range(Wp):
            coef[n, c, y, x] = 0
        if y >= margin and y < margin + H:
            for x in range(W):
                coef[n, c, y, x + margin] = inp[n, c, y - margin, x]
        prefilter_line(coef[n, c, y, :], order, boundary)
    for job in prange(N * C * Wp):
        n, c, x = unravel_2d(job, C, Wp)
        prefilter_line(coef[n, c, :, x], order, boundary)


@driver
def spline_coefficients_backward_2d(gcoef, gin, order, boundary, margin):
    """gin = the transpose of :func:`spline_coefficients_2d` applied to gcoef (which
    is overwritten): the prefilter's transpose along each axis, then the middle."""
    N, C, H, W = gin.shape[0], gin.shape[1], gin.shape[2], gin.shape[3]
    Wp = gcoef.shape[3]
    for job in prange(N * C * Wp):
        n, c, x = unravel_2d(job, C, Wp)
        prefilter_line_transpose(gcoef[n, c, :, x], order, boundary)
    for job in prange(N * C * H):
        n, c, y = unravel_2d(job, C, H)
        prefilter_line_transpose(gcoef[n, c, y + margin, :], order, boundary)
        for x in range(W):
            gin[n, c, y, x] = gcoef[n, c, y + margin, x + margin]


@driver
def spline_coefficients_3d(inp, coef, order, boundary, margin):
    """:func:`spline_coefficients_2d` in 3-D (x, then y, then z)."""
    N, C, D, H, W = inp.shape[0], inp.shape[1], inp.shape[2], inp.shape[3], inp.shape[4]
    Dp, Hp, Wp = coef.shape[2], coef.shape[3], coef.shape[4]
    for job in prange(N * C * Dp):
        n, c, z = unravel_2d(job, C, Dp)
        for y in range(Hp):
            for x in range(Wp):
                coef[n, c, z, y, x] = 0
            if z >= margin and z < margin + D and y >= margin and y < margin + H:
                for x in range(W):
                    coef[n, c, z, y, x + margin] = inp[n, c, z - margin, y - margin, x]
            prefilter_line(coef[n, c, z, y, :], order, boundary)
        for x in range(Wp):
            prefilter_line(coef[n, c, z, :, x], order, boundary)
    for job in prange(N * C * Hp):
        n, c, y = unravel_2d(job, C, Hp)
        for x in range(Wp):
            prefilter_line(coef[n, c, :, y, x], order, boundary)


@driver
def spline_coefficients_backward_3d(gcoef, gin, order, boundary, margin):
    """The transpose of :func:`spline_coefficients_3d` (gcoef is overwritten)."""
    N, C, D, H, W = gin.shape[0], gin.shape[1], gin.shape[2], gin.shape[3], gin.shape[4]
    Dp, Hp, Wp = gcoef.shape[2], gcoef.shape[3], gcoef.shape[4]
    for job in prange(N * C * Hp):
        n, c, y = unravel_2d(job, C, Hp)
        for x in range(Wp):
            prefilter_line_transpose(gcoef[n, c, :, y, x], order, boundary)
    for job in prange(N * C * Dp):
        n, c, z = unravel_2d(job, C, Dp)
        for x in range(Wp):
            prefilter_line_transpose(gcoef[n, c, z, :, x], order, boundary)
        for y in range(Hp):
            prefilter_line_transpose(gcoef[n, c, z, y, :], order, boundary)
        if z >= margin and z < margin + D:
            for y in range(H):
                for x in range(W):
                    gin[n, c, z - margin, y, x] = gcoef[n, c, z, y + margin, x + margin]


def spline_coefficients(inp, mode, padding_mode, dtype):
    """The B-spline coefficients of ``inp`` for ``mode`` and ``padding_mode``, a new
    C-contiguous array of float type ``dtype`` (with the zeros margin)."""
    m = spline_margin(mode, padding_mode)
    shape = inp.shape[:2] + tuple(s + 2 * m for s in inp.shape[2:])
    coef = np.empty(shape, dtype=dtype)
    run = spline_coefficients_2d if inp.ndim == 4 else spline_coefficients_3d
    if coef.size:
        run(inp, coef, spline_order(mode), spline_boundary(padding_mode), m)
    return coef


def spline_coefficients_backward(gcoef, like, mode, padding_mode):
    """The input gradient from the coefficients' gradient ``gcoef`` (overwritten): an
    array of like's shape and memory order, in gcoef's float type."""
    gin = np.empty_like(like, dtype=gcoef.dtype)
    run = spline_coefficients_backward_2d if gin.ndim == 4 else spline_coefficients_backward_3d
    if gin.size:
        m = spline_margin(mode, padding_mode)
        run(gcoef, gin, spline_order(mode), spline_boundary(padding_mode), m)
    return gin


#: Work (output values, times 2 for a backward) per thread below which a parallel
#: call does not pay: smaller calls run on fewer threads, down to one (measured in
#: benchmarks/README.md: a second thread pays from about 10,000 output values).
GRAIN = 1 << 12


@contextmanager
def _threads_for(work):
    """Run the body with at most one thread per :data:`GRAIN` units of ``work`` (at
    least one, at most Numba's current count), then restore the count. Numba's
    thread count is per calling thread, so concurrent calls do not interfere; every
    driver's result is the same for any thread count."""
    n = numba.get_num_threads()
    want = max(1, min(n, int(work) // GRAIN))
    if want == n:
        yield
        return
    numba.set_num_threads(want)
    try:
        yield
    finally:
        numba.set_num_threads(n)


def empty(shape, dtype):
    return np.empty(shape, dtype=dtype)


def _placeholder(dtype, ndim):
    """An empty array standing in for the unused grid or θ of a driver call."""
    return np.zeros((0,) * ndim, dtype=dtype)


def bands(n, rows):
    """Bands of input rows per sample for the input-gradient scatter.

    Any value gives bit-identical results (see the module docstring), so it
    follows the thread count: one band per thread when the batch is smaller.
    """
    threads = numba.get_num_threads()
    if n >= threads:
        return 1
    return max(1, min(rows, math.ceil(threads / max(n, 1))))


def _reduce(acc, n, dims, dtype, cols=None):
    """Per-row θ partial sums -> (N, dims, cols), cols = dims + 1 by default, in a
    fixed order."""
    cols = dims + 1 if cols is None else cols
    if n == 0:
        return np.zeros((0, dims, cols), dtype=dtype)
    acc = acc.reshape(n, -1, dims * cols)
    total = np.zeros((n, dims * cols), dtype=np.float64)
    for r in range(acc.shape[1]):  # fixed order, independent of threads
        total += acc[:, r]
    return total.reshape(n, dims, cols).astype(dtype)


@_serialised
def run_affine_grid(theta, grid, align_corners):
    if theta.shape[1] == 2:
        affine_grid_2d(theta, grid, align_corners)
    else:
        affine_grid_3d(theta, grid, align_corners)


@_serialised
def run_affine_grid_backward(ggrid, align_corners):
    dims = ggrid.shape[-1]
    rows = int(np.prod(ggrid.shape[:-2]))
    acc = np.empty((rows, dims * (dims + 1)), dtype=np.float64)
    if dims == 2:
        affine_grid_backward_2d(ggrid, acc, align_corners)
    else:
        affine_grid_backward_3d(ggrid, acc, align_corners)
    return _reduce(acc, ggrid.shape[0], dims, ggrid.dtype)


def flow_sizes(inp, dtype):
    """The input size (W, H[, D]) as the (1, dims, 1) ``theta`` of a FLOW source."""
    dims = inp.ndim - 2
    return np.array(inp.shape[2:][::-1], dtype=dtype).reshape(1, dims, 1)


@_serialised
def run_sample(inp, grid, theta, out, mode, padding_mode, align_corners, source=None):
    """Forward. ``source`` (:mod:`stn_numba._modes`): None means AFFINE when ``grid`` is
    None (θ given), else GRID; PERSPECTIVE: ``theta`` is the homography and there is no
    grid; FLOW: ``grid`` is the flow (input pixels)."""
    dims = inp.ndim - 2
    if source is None:
        source = AFFINE if grid is None else GRID
    if source == FLOW:
        theta = flow_sizes(inp, grid.dtype)
    ct = (grid if grid is not None else theta).dtype  # the computation's float type
    grid = _placeholder(ct, dims + 2) if grid is None else grid
    theta = _placeholder(ct, 3) if theta is None else theta
    with _threads_for(out.size):
        if spline_order(mode):
            inp = spline_coefficients(inp, mode, padding_mode, ct)
        tasks = 4 * numba.get_num_threads()  # chunks of rows: a few per thread
        sample = sample_2d_cpu if dims == 2 else sample_3d_cpu
        # one channel: either loop order reads the same pixels, so the common
        # (channels-first) driver serves it, whatever stride the channel axis has
        channels_last = inp.shape[1] > 1 and inp.strides[1] < inp.strides[-1]
        sample(source, mode, padding_mode, channels_last)(
            inp, grid, theta, out, align_corners, tasks
        )


@_serialised
def run_backward(gout, *args, **kwargs):
    """(grad_input or None, grad_grid / grad_theta or None). Always deterministic."""
    with _threads_for(2 * gout.size):
        return _run_backward(gout, *args, **kwargs)


def _run_backward(
    gout,
    inp,
    grid,
    theta,
    mode,
    padding_mode,
    align_corners,
    input_grad,
    point_grad,
    deterministic=True,
):
    """(grad_input or None, grad_grid / grad_theta or None). Always deterministic."""
    fused = grid is None
    dims = inp.ndim - 2
    dtype = (theta if fused else grid).dtype  # the computation's float type
    grid = _placeholder(dtype, dims + 2) if fused else grid
    theta = _placeholder(dtype, 3) if not fused else theta
    n = inp.shape[0]
    grad_input = grad_point = None
    image = inp
    if spline_order(mode):  # B-splines sample (and scatter into) the coefficients
        inp = spline_coefficients(inp, mode, padding_mode, dtype)
    nb = bands(n, inp.shape[2])
    spans = None
    if input_grad or mode == BILINEAR:
        rows = n * int(np.prod(gout.shape[2:-1]))
        spans = np.empty((rows, 2), dtype=np.int64)
        # which input rows each output row touches, to skip the rest (B-splines: all)
        if nb > 1 and not spline_order(mode):
            sp = gout.shape[2:]
            if dims == 2:
                row_spans_2d(
                    grid, theta, fused, spans, *sp, inp.shape[2], padding_mode, align_corners
                )
            else:
                row_spans_3d(
                    grid, theta, fused, spans, *sp, inp.shape[2], padding_mode, align_corners
                )
        else:
            spans[:, 0] = 0
            spans[:, 1] = inp.shape[2] - 1
    if mode == BILINEAR and (nb == 1 or not (fused and point_grad)):
        # one pass for both gradients (θ row sums need whole rows: one band)
        grad_input = np.zeros_like(inp) if input_grad else None
        gin = grad_input if input_grad else _placeholder(dtype, dims + 2)
        k = dims * (dims + 1)
        acc = np.empty((spans.shape[0] if fused and point_grad else 0, k), dtype=np.float64)
        ggrid = _placeholder(dtype, dims + 2)
        if point_grad and not fused:
            ggrid = grad_point = np.zeros(grid.shape, dtype=dtype)
        one_pass = backward_bilinear_2d_cpu if dims == 2 else backward_trilinear_3d_cpu
        one_pass(fused, padding_mode)(
            gout,
            inp,
            grid,
            theta,
            gin,
            ggrid,
            acc,
            spans,
            nb,
            align_corners,
            input_grad,
            point_grad,
        )
        if point_grad and fused:
            grad_point = _reduce(acc, n, dims, dtype)
        return grad_input, grad_point
    if input_grad:
        grad_input = np.zeros_like(inp)
        scatter = scatter_2d_cpu if dims == 2 else scatter_3d_cpu
        scatter(fused, mode, padding_mode)(gout, grid, theta, grad_input, spans, nb, align_corners)
        if spline_order(mode):
            grad_input = spline_coefficients_backward(grad_input, image, mode, padding_mode)
    if point_grad:
        points = grad_points_2d_cpu if dims == 2 else grad_points_3d_cpu
        if fused:
            rows = n * int(np.prod(gout.shape[2:-1]))
            acc = np.empty((rows, dims * (dims + 1)), dtype=np.float64)
            ggrid = _placeholder(dtype, dims + 2)
            points(True, mode, padding_mode)(inp, gout, grid, theta, ggrid, acc, align_corners)
            grad_point = _reduce(acc, n, dims, dtype)
        else:
            grad_point = np.empty(grid.shape, dtype=dtype)
            acc = np.empty((0, 0), dtype=np.float64)
            points(False, mode, padding_mode)(
                inp, gout, grid, theta, grad_point, acc, align_corners
            )
    return grad_input, grad_point


@_serialised
def run_perspective_grid(theta, grid, align_corners):
    if theta.shape[1] == 3:
        perspective_grid_2d(theta, grid, align_corners)
    else:
        perspective_grid_3d(theta, grid, align_corners)


@_serialised
def run_perspective_grid_backward(ggrid, theta, align_corners):
    k = theta.shape[1]  # 3 (2-D) or 4 (3-D): θ is k × k
    acc = np.empty((int(np.prod(ggrid.shape[:-2])), k * k), dtype=np.float64)
    if k == 3:
        perspective_grid_backward_2d(ggrid, theta, acc, align_corners)
    else:
        perspective_grid_backward_3d(ggrid, theta, acc, align_corners)
    return _reduce(acc, ggrid.shape[0], k, ggrid.dtype, k)


@_serialised
def run_flow_grid(flow, grid, in_size, align_corners):
    if flow.ndim == 4:
        flow_grid_2d(flow, grid, *in_size, align_corners)
    else:
        flow_grid_3d(flow, grid, *in_size, align_corners)


@_serialised
def run_flow_grid_backward(ggrid, scales):
    """dL/dflow = dL/dgrid times d grid / d flow, a constant per axis (``scales``, (x, y[, z]))."""
    return (ggrid.astype(np.float64) * np.asarray(scales, np.float64)).astype(ggrid.dtype)


# ----------------------------------------------------------------------------
# Thin-plate spline (tps_grid): the spline's coefficients are solved on the host
# (stn_numba._tps); the drivers evaluate it per pixel, or sum its basis rows
# ----------------------------------------------------------------------------


@driver
def tps_grid_2d(coef, src, grid, align_corners):
    N, Ho, Wo = grid.shape[0], grid.shape[1], grid.shape[2]
    for job in prange(N * Ho):
        n = job // Ho
        h = job - n * Ho
        yb = base_coord(h, Ho, align_corners, 0.0)
        for w in range(Wo):
            gx, gy = tps_point(coef, src, n, base_coord(w, Wo, align_corners, 0.0), yb)
            grid[n, h, w, 0] = gx
            grid[n, h, w, 1] = gy


@driver
def tps_grid_backward_2d(ggrid, src, rowacc, align_corners):
    """rowacc[n * Ho + h] = Σ_w B[(n, h, w)] ⊗ ggrid[n, h, w], flattened to 2 (K + 3)."""
    N, Ho, Wo = ggrid.shape[0], ggrid.shape[1], ggrid.shape[2]
    for job in prange(N * Ho):
        n = job // Ho
        h = job - n * Ho
        for q in range(rowacc.shape[1]):
            rowacc[job, q] = 0.0
        yb = base_coord(h, Ho, align_corners, 0.0)
        for w in range(Wo):
            xb = base_coord(w, Wo, align_corners, 0.0)
            accumulate_tps(rowacc, job, src, n, xb, yb, ggrid[n, h, w, 0], ggrid[n, h, w, 1])


@_serialised
def run_tps_grid(coef, src, grid, align_corners):
    """grid (N, H, W, 2) = the splines of ``coef`` (N, K + 3, 2) at the base grid."""
    tps_grid_2d(coef, src, grid, align_corners)


@_serialised
def run_tps_grid_backward(ggrid, src, align_corners):
    """G = Σ_p B[p]ᵀ ⊗ ggrid[p] per sample, (N, K + 3, 2) float64, in a fixed order."""
    n, k3 = ggrid.shape[0], src.shape[1] + 3
    rows = n * ggrid.shape[1]
    acc = np.empty((rows, 2 * k3), dtype=np.float64)
    tps_grid_backward_2d(ggrid, src, acc, align_corners)
    return _reduce_rows(acc, n).reshape(n, k3, 2)


def _reduce_rows(acc, n):
    """Per-row partial sums (n * rows, P) -> (n, P), summed in row order."""
    acc = acc.reshape(n, -1, acc.shape[1]) if n else acc.reshape(0, 0, acc.shape[1])
    total = np.zeros((n, acc.shape[2]), dtype=np.float64)
    for r in range(acc.shape[1]):  # fixed order, independent of threads
        total += acc[:, r]
    return total


# ----------------------------------------------------------------------------
# splat (forward warping): the input-gradient scatter on its own
# ----------------------------------------------------------------------------


@_serialised
def run_splat(src, grid, out, *args, **kwargs):
    """out[...] = splat of ``src`` (on grid's lattice) into ``out`` (N, C, *size); see
    :func:`_run_splat`."""
    with _threads_for(2 * src.size):
        return _run_splat(src, grid, out, *args, **kwargs)


def _run_splat(src, grid, out, mode, padding_mode, align_corners, deterministic=True):
    """out[...] = splat of ``src`` (on grid's lattice) into ``out`` (N, C, *size).

    The adjoint of the sampler: the drivers of :func:`run_backward`'s input gradient,
    with ``src`` as grad_output, so the result is bit-identical to it (and to itself
    for any thread count). Extra memory: the int64 row spans, 16 bytes per input row.
    ``deterministic`` is accepted for the interface: the CPU is always deterministic.
    """
    dims = src.ndim - 2
    dtype = src.dtype
    n = src.shape[0]
    out[...] = 0
    theta = _placeholder(dtype, 3)
    nb = bands(n, out.shape[2])
    rows = n * int(np.prod(src.shape[2:-1]))
    spans = np.empty((rows, 2), dtype=np.int64)
    if nb > 1:  # which output rows (slices) each input row touches, to skip the rest
        spans_of = row_spans_2d if dims == 2 else row_spans_3d
        sp = src.shape[2:]
        spans_of(grid, theta, False, spans, *sp, out.shape[2], padding_mode, align_corners)
    else:
        spans[:, 0] = 0
        spans[:, 1] = out.shape[2] - 1
    if mode == BILINEAR:
        # The one-pass driver with point_grad=False reads only the shape of its input
        # argument, so ``out`` stands in for it: no array of the output's size is made.
        one_pass = backward_bilinear_2d_cpu if dims == 2 else backward_trilinear_3d_cpu
        acc = np.empty((0, dims * (dims + 1)), dtype=np.float64)
        ggrid = _placeholder(dtype, dims + 2)
        one_pass(False, padding_mode)(
            src, out, grid, theta, out, ggrid, acc, spans, nb, align_corners, True, False
        )
    else:
        scatter = scatter_2d_cpu if dims == 2 else scatter_3d_cpu
        scatter(False, mode, padding_mode)(src, grid, theta, out, spans, nb, align_corners)
