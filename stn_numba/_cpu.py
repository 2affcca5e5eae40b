"""CPU drivers: ``prange`` loops that run the per-pixel kernels of :mod:`stn_numba._kernels`.

Every driver parallelises over ``N × rows`` (``N × D × H`` in 3-D), so one large
image still uses every core. The arrays are contiguous and already validated by
:mod:`stn_numba.functional`; ``fused=True`` takes the sampling points from ``theta``
(warp_affine), otherwise from ``grid`` (the unused one is an empty placeholder).

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

import numba
import numpy as np
from numba import prange

from ._coords import base_coord
from ._jit import driver
from ._kernels import (
    accumulate_theta_2d,
    accumulate_theta_3d,
    grad_point_2d,
    grad_point_3d,
    grid_point_2d,
    grid_point_3d,
    row_span,
    sample_2d,
    sample_3d,
    scatter_2d,
    scatter_3d,
)

# ----------------------------------------------------------------------------
# affine_grid
# ----------------------------------------------------------------------------


@driver
def affine_grid_2d(theta, grid, align_corners):
    N, Ho, Wo = grid.shape[0], grid.shape[1], grid.shape[2]
    for job in prange(N * Ho):
        n = job // Ho
        h = job - n * Ho
        for w in range(Wo):
            gx, gy = grid_point_2d(grid, theta, True, n, h, w, Ho, Wo, align_corners)
            grid[n, h, w, 0] = gx
            grid[n, h, w, 1] = gy


@driver
def affine_grid_3d(theta, grid, align_corners):
    N, Do, Ho, Wo = grid.shape[0], grid.shape[1], grid.shape[2], grid.shape[3]
    for job in prange(N * Do * Ho):
        n = job // (Do * Ho)
        r = job - n * (Do * Ho)
        d = r // Ho
        h = r - d * Ho
        for w in range(Wo):
            gx, gy, gz = grid_point_3d(grid, theta, True, n, d, h, w, Do, Ho, Wo, align_corners)
            grid[n, d, h, w, 0] = gx
            grid[n, d, h, w, 1] = gy
            grid[n, d, h, w, 2] = gz


@driver
def affine_grid_backward_2d(ggrid, rowacc, align_corners):
    """rowacc[n * Ho + h] = Σ_w ggrid[n, h, w] ⊗ (x_w, y_h, 1), flattened to 6 values."""
    N, Ho, Wo = ggrid.shape[0], ggrid.shape[1], ggrid.shape[2]
    for job in prange(N * Ho):
        n = job // Ho
        h = job - n * Ho
        for k in range(6):
            rowacc[job, k] = 0.0
        for w in range(Wo):
            accumulate_theta_2d(
                rowacc, job, ggrid[n, h, w, 0], ggrid[n, h, w, 1], w, h, Wo, Ho, align_corners
            )


@driver
def affine_grid_backward_3d(ggrid, rowacc, align_corners):
    N, Do, Ho, Wo = ggrid.shape[0], ggrid.shape[1], ggrid.shape[2], ggrid.shape[3]
    for job in prange(N * Do * Ho):
        n = job // (Do * Ho)
        r = job - n * (Do * Ho)
        d = r // Ho
        h = r - d * Ho
        for k in range(12):
            rowacc[job, k] = 0.0
        for w in range(Wo):
            accumulate_theta_3d(
                rowacc,
                job,
                ggrid[n, d, h, w, 0],
                ggrid[n, d, h, w, 1],
                ggrid[n, d, h, w, 2],
                w,
                h,
                d,
                Wo,
                Ho,
                Do,
                align_corners,
            )


# ----------------------------------------------------------------------------
# grid_sample / warp_affine forward
# ----------------------------------------------------------------------------


@driver
def sample_2d_cpu(inp, grid, theta, fused, out, mode, padding_mode, align_corners):
    N, Ho, Wo = out.shape[0], out.shape[2], out.shape[3]
    for job in prange(N * Ho):
        n = job // Ho
        h = job - n * Ho
        for w in range(Wo):
            gx, gy = grid_point_2d(grid, theta, fused, n, h, w, Ho, Wo, align_corners)
            sample_2d(inp, out, n, h, w, gx, gy, mode, padding_mode, align_corners)


@driver
def sample_3d_cpu(inp, grid, theta, fused, out, mode, padding_mode, align_corners):
    N, Do, Ho, Wo = out.shape[0], out.shape[2], out.shape[3], out.shape[4]
    for job in prange(N * Do * Ho):
        n = job // (Do * Ho)
        r = job - n * (Do * Ho)
        d = r // Ho
        h = r - d * Ho
        for w in range(Wo):
            gx, gy, gz = grid_point_3d(grid, theta, fused, n, d, h, w, Do, Ho, Wo, align_corners)
            sample_3d(inp, out, n, d, h, w, gx, gy, gz, mode, padding_mode, align_corners)


# ----------------------------------------------------------------------------
# Backward: grid / θ gradient (gather, one task per output row)
# ----------------------------------------------------------------------------


@driver
def grad_points_2d_cpu(
    inp, gout, grid, theta, fused, ggrid, rowacc, mode, padding_mode, align_corners
):
    """Grid gradient into ``ggrid`` (grid path) or θ row sums into ``rowacc`` (fused)."""
    N, Ho, Wo = gout.shape[0], gout.shape[2], gout.shape[3]
    for job in prange(N * Ho):
        n = job // Ho
        h = job - n * Ho
        if fused:
            for k in range(6):
                rowacc[job, k] = 0.0
        for w in range(Wo):
            gx, gy = grid_point_2d(grid, theta, fused, n, h, w, Ho, Wo, align_corners)
            ggx, ggy = grad_point_2d(inp, gout, n, h, w, gx, gy, mode, padding_mode, align_corners)
            if fused:
                accumulate_theta_2d(rowacc, job, ggx, ggy, w, h, Wo, Ho, align_corners)
            else:
                ggrid[n, h, w, 0] = ggx
                ggrid[n, h, w, 1] = ggy


@driver
def grad_points_3d_cpu(
    inp, gout, grid, theta, fused, ggrid, rowacc, mode, padding_mode, align_corners
):
    N, Do, Ho, Wo = gout.shape[0], gout.shape[2], gout.shape[3], gout.shape[4]
    for job in prange(N * Do * Ho):
        n = job // (Do * Ho)
        r = job - n * (Do * Ho)
        d = r // Ho
        h = r - d * Ho
        if fused:
            for k in range(12):
                rowacc[job, k] = 0.0
        for w in range(Wo):
            gx, gy, gz = grid_point_3d(grid, theta, fused, n, d, h, w, Do, Ho, Wo, align_corners)
            ggx, ggy, ggz = grad_point_3d(
                inp, gout, n, d, h, w, gx, gy, gz, mode, padding_mode, align_corners
            )
            if fused:
                accumulate_theta_3d(rowacc, job, ggx, ggy, ggz, w, h, d, Wo, Ho, Do, align_corners)
            else:
                ggrid[n, d, h, w, 0] = ggx
                ggrid[n, d, h, w, 1] = ggy
                ggrid[n, d, h, w, 2] = ggz


# ----------------------------------------------------------------------------
# Backward: input gradient (banded scatter, deterministic)
# ----------------------------------------------------------------------------


@driver
def scatter_2d_cpu(gout, grid, theta, fused, gin, spans, bands, mode, padding_mode, align_corners):
    """gin (zeroed) += the input gradient; task (n, k) owns input rows of band k."""
    N, Hin = gin.shape[0], gin.shape[2]
    Ho, Wo = gout.shape[2], gout.shape[3]
    for job in prange(N * bands):
        n = job // bands
        k = job - n * bands
        r0 = (k * Hin) // bands
        r1 = ((k + 1) * Hin) // bands
        for h in range(Ho):
            if spans[n * Ho + h, 1] < r0 or spans[n * Ho + h, 0] >= r1:
                continue  # every tap of this output row misses the band
            for w in range(Wo):
                gx, gy = grid_point_2d(grid, theta, fused, n, h, w, Ho, Wo, align_corners)
                scatter_2d(
                    gin, gout, n, h, w, gx, gy, mode, padding_mode, align_corners, r0, r1, 1.0
                )


@driver
def scatter_3d_cpu(gout, grid, theta, fused, gin, spans, bands, mode, padding_mode, align_corners):
    """gin (zeroed) += the input gradient; task (n, k) owns input depth slices of band k."""
    N, Din = gin.shape[0], gin.shape[2]
    Do, Ho, Wo = gout.shape[2], gout.shape[3], gout.shape[4]
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
                    gx, gy, gz = grid_point_3d(
                        grid, theta, fused, n, d, h, w, Do, Ho, Wo, align_corners
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
            fixed = theta[n, 1, 1] * base_coord(h, Ho, align_corners) + theta[n, 1, 2]
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
        n = job // (Do * Ho)
        r = job - n * (Do * Ho)
        d = r // Ho
        h = r - d * Ho
        fixed = 0.0
        if fused:
            zb = base_coord(d, Do, align_corners)
            yb = base_coord(h, Ho, align_corners)
            fixed = theta[n, 2, 1] * yb + theta[n, 2, 2] * zb + theta[n, 2, 3]
        lo, hi = row_span(
            flat, theta, fused, n, job, 2, fixed, Wo, Din, padding_mode, align_corners
        )
        spans[job, 0] = lo
        spans[job, 1] = hi


# ----------------------------------------------------------------------------
# Host side: the backend interface shared with stn_numba._cuda
# ----------------------------------------------------------------------------


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


def _reduce(acc, n, dims, dtype):
    """Per-row θ partial sums -> (N, dims, dims + 1), in a fixed order."""
    if n == 0:
        return np.zeros((0, dims, dims + 1), dtype=dtype)
    acc = acc.reshape(n, -1, dims * (dims + 1))
    total = np.zeros((n, dims * (dims + 1)), dtype=np.float64)
    for r in range(acc.shape[1]):  # fixed order, independent of threads
        total += acc[:, r]
    return total.reshape(n, dims, dims + 1).astype(dtype)


def run_affine_grid(theta, grid, align_corners):
    if theta.shape[1] == 2:
        affine_grid_2d(theta, grid, align_corners)
    else:
        affine_grid_3d(theta, grid, align_corners)


def run_affine_grid_backward(ggrid, align_corners):
    dims = ggrid.shape[-1]
    rows = int(np.prod(ggrid.shape[:-2]))
    acc = np.empty((rows, dims * (dims + 1)), dtype=np.float64)
    if dims == 2:
        affine_grid_backward_2d(ggrid, acc, align_corners)
    else:
        affine_grid_backward_3d(ggrid, acc, align_corners)
    return _reduce(acc, ggrid.shape[0], dims, ggrid.dtype)


def run_sample(inp, grid, theta, out, mode, padding_mode, align_corners):
    """Forward; ``grid is None`` means fused (θ given)."""
    fused = grid is None
    dims = inp.ndim - 2
    grid = _placeholder(inp.dtype, dims + 2) if fused else grid
    theta = _placeholder(inp.dtype, 3) if not fused else theta
    if dims == 2:
        sample_2d_cpu(inp, grid, theta, fused, out, mode, padding_mode, align_corners)
    else:
        sample_3d_cpu(inp, grid, theta, fused, out, mode, padding_mode, align_corners)


def run_backward(
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
    dtype = inp.dtype
    grid = _placeholder(dtype, dims + 2) if fused else grid
    theta = _placeholder(dtype, 3) if not fused else theta
    n = inp.shape[0]
    args = (mode, padding_mode, align_corners)
    grad_input = grad_point = None
    if input_grad:
        grad_input = np.zeros(inp.shape, dtype=dtype)
        nb = bands(n, inp.shape[2])
        rows = n * int(np.prod(gout.shape[2:-1]))
        spans = np.empty((rows, 2), dtype=np.int64)
        if nb > 1:  # which input rows each output row touches, to skip the rest
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
        scatter = scatter_2d_cpu if dims == 2 else scatter_3d_cpu
        scatter(gout, grid, theta, fused, grad_input, spans, nb, *args)
    if point_grad:
        points = grad_points_2d_cpu if dims == 2 else grad_points_3d_cpu
        if fused:
            rows = n * int(np.prod(gout.shape[2:-1]))
            acc = np.empty((rows, dims * (dims + 1)), dtype=np.float64)
            points(inp, gout, grid, theta, True, _placeholder(dtype, dims + 2), acc, *args)
            grad_point = _reduce(acc, n, dims, dtype)
        else:
            grad_point = np.empty(grid.shape, dtype=dtype)
            acc = np.empty((0, 0), dtype=np.float64)
            points(inp, gout, grid, theta, False, grad_point, acc, *args)
    return grad_input, grad_point
