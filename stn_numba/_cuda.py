"""CUDA drivers: launch configuration, the ``numba.cuda`` kernels and their host side.

Twins of :mod:`stn_numba._cpu`. Each kernel is a grid-stride loop over output
pixels (or rows) with 64-bit indices that calls the very same per-pixel functions
as the CPU (:mod:`stn_numba._kernels`, :mod:`stn_numba._coords`), so it computes in
the grid's float type as the CPU does: Numba compiles an ``njit`` function for the
device when a CUDA kernel calls it.

Specialised per use, as the CPU drivers are (:func:`stn_numba._jit.specialise`): the
sampling, gradient and scatter kernels are factories, ``k_sample_2d(source, mode,
padding)`` and so on, whose constants are free variables of the kernel. Numba prunes
the branches on them in the functions it inlines (``grid_point_*``, ``sample_*``) and
NVVM folds them in the rest, so a kernel's PTX holds only its own path, and a first
call compiles only the device functions that path calls. ``align_corners`` stays an
argument (a few instructions). Under the CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``) kernels run as Python, so they call pure
Python twins of those functions instead (:func:`stn_numba._compat.python_twins`): same
source.

Backward on the GPU:

* grid gradient: one thread per output pixel, no shared writes;
* θ gradient: one thread per output row sums its pixels (float64), then one thread
  per θ entry sums the rows in a fixed order — deterministic;
* input gradient, ``deterministic=False``: float atomics into grad_input (fast; the
  order of additions, hence the rounding, varies from run to run);
* input gradient, ``deterministic=True`` (the default): each contribution is rounded
  to a 64-bit fixed-point integer, ``round(v · 2**k)``, and added with an integer
  atomic. Integer addition is associative, so the sum is bit-identical whatever
  the order of the threads. ``2**k`` is the largest power of two with
  ``2**k · B <= 2**62``, where B bounds every sum (the sample's Σ|grad_output| times
  the interpolation's Σ|weights|): the result is exact to ``B · 2**-62`` per
  contribution, far below float32 rounding and ~1e-12 relative to B in float64.
"""

import math

import numba
import numpy as np
from numba import cuda
from numba.extending import overload

from . import _bspline, _coords, _jit, _kernels
from ._compat import python_twins as _python_twins
from ._jit import specialise
from ._layout import inverse, memory_order, permute, physical
from ._modes import AFFINE, BICUBIC, FLOW, GRID, spline_order

SIMULATOR = bool(numba.config.ENABLE_CUDASIM)

#: Launch configuration, in one place: threads per block, and a cap on the blocks
#: of a launch (the kernels loop grid-stride over the rest). Tests shrink both so
#: that several blocks, the grid-stride loop and the edge guards all run.
THREADS_PER_BLOCK = 128
MAX_BLOCKS = 65535


def launch_config(total):
    """(blocks, threads) for ``total`` work items."""
    blocks = max(1, min(MAX_BLOCKS, -(-int(total) // THREADS_PER_BLOCK)))
    return blocks, THREADS_PER_BLOCK


# ----------------------------------------------------------------------------
# The shared per-pixel functions, as the device (or the simulator) sees them
# ----------------------------------------------------------------------------


@overload(_jit.accumulate, target="cuda")
def _accumulate_cuda(arr, index, value, scale):
    if isinstance(arr.dtype, numba.types.Integer):

        def impl(arr, index, value, scale):
            cuda.atomic.add(arr, index, numba.int64(math.floor(value * scale + 0.5)))

    else:

        def impl(arr, index, value, scale):
            cuda.atomic.add(arr, index, value)

    return impl


def _accumulate_sim(arr, index, value, scale):
    """The simulator's twin of :func:`stn_numba._jit.accumulate` (the simulator runs
    Python bodies, not the ``target="cuda"`` overload above)."""
    if arr.dtype.kind == "i":
        cuda.atomic.add(arr, index, int(math.floor(value * scale + 0.5)))
    else:
        cuda.atomic.add(arr, index, value)


if SIMULATOR:
    K = _python_twins(_coords, _bspline, _kernels, replace={"accumulate": _accumulate_sim})
    B = K
    _cuda_jit = cuda.jit
else:
    K = _kernels
    B = _bspline
    _cuda_jit = cuda.jit(cache=True, fastmath=False)


# ----------------------------------------------------------------------------
# Kernels. Index decomposition only; the math is in K.
# ----------------------------------------------------------------------------


@_cuda_jit
def k_fill_zero(flat):
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < flat.shape[0]:
        flat[i] = 0
        i += stride


@_cuda_jit
def k_affine_grid_2d(theta, grid, align_corners):
    N, Ho, Wo = grid.shape[0], grid.shape[1], grid.shape[2]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * Ho * Wo:
        n, h, w = K.unravel_2d(i, Ho, Wo)
        gx, gy = K.grid_point_2d(grid, theta, True, n, h, w, Ho, Wo, align_corners)
        grid[n, h, w, 0] = gx
        grid[n, h, w, 1] = gy
        i += stride


@_cuda_jit
def k_affine_grid_3d(theta, grid, align_corners):
    N, Do, Ho, Wo = grid.shape[0], grid.shape[1], grid.shape[2], grid.shape[3]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * Do * Ho * Wo:
        n, d, h, w = K.unravel_3d(i, Do, Ho, Wo)
        gx, gy, gz = K.grid_point_3d(grid, theta, True, n, d, h, w, Do, Ho, Wo, align_corners)
        grid[n, d, h, w, 0] = gx
        grid[n, d, h, w, 1] = gy
        grid[n, d, h, w, 2] = gz
        i += stride


@_cuda_jit
def k_theta_rows_2d(ggrid, acc, align_corners):
    """acc[row] = Σ_w ggrid[n, h, w] ⊗ (x_w, y_h, 1) for each output row (n, h)."""
    N, Ho, Wo = ggrid.shape[0], ggrid.shape[1], ggrid.shape[2]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * Ho:
        n = i // Ho
        h = i - n * Ho
        for k in range(6):
            acc[i, k] = 0.0
        for w in range(Wo):
            K.accumulate_theta_2d(
                acc, i, ggrid[n, h, w, 0], ggrid[n, h, w, 1], w, h, Wo, Ho, align_corners
            )
        i += stride


@_cuda_jit
def k_theta_rows_3d(ggrid, acc, align_corners):
    N, Do, Ho, Wo = ggrid.shape[0], ggrid.shape[1], ggrid.shape[2], ggrid.shape[3]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * Do * Ho:
        n, d, h = K.unravel_2d(i, Do, Ho)
        for k in range(12):
            acc[i, k] = 0.0
        for w in range(Wo):
            K.accumulate_theta_3d(
                acc,
                i,
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
        i += stride


@_cuda_jit
def k_reduce_rows(acc, out, rows):
    """out[n, p] = Σ_r acc[n * rows + r, p], summed in r order (deterministic)."""
    N, P = out.shape[0], out.shape[1]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * P:
        n = i // P
        p = i - n * P
        s = 0.0
        for r in range(rows):
            s += acc[n * rows + r, p]
        out[n, p] = s
        i += stride


@specialise(_cuda_jit)
def k_sample_2d(source, mode, padding_mode):
    def k_sample_2d(inp, grid, theta, out, align_corners):
        N, Ho, Wo = out.shape[0], out.shape[2], out.shape[3]
        i = numba.int64(cuda.grid(1))
        stride = numba.int64(cuda.gridsize(1))
        while i < N * Ho * Wo:
            n, h, w = K.unravel_2d(i, Ho, Wo)
            gx, gy = K.grid_point_2d(grid, theta, source, n, h, w, Ho, Wo, align_corners)
            K.sample_2d(inp, out, n, h, w, gx, gy, mode, padding_mode, align_corners)
            i += stride

    return k_sample_2d


@specialise(_cuda_jit)
def k_sample_3d(source, mode, padding_mode):
    def k_sample_3d(inp, grid, theta, out, align_corners):
        N, Do, Ho, Wo = out.shape[0], out.shape[2], out.shape[3], out.shape[4]
        i = numba.int64(cuda.grid(1))
        stride = numba.int64(cuda.gridsize(1))
        while i < N * Do * Ho * Wo:
            n, d, h, w = K.unravel_3d(i, Do, Ho, Wo)
            gx, gy, gz = K.grid_point_3d(grid, theta, source, n, d, h, w, Do, Ho, Wo, align_corners)
            K.sample_3d(inp, out, n, d, h, w, gx, gy, gz, mode, padding_mode, align_corners)
            i += stride

    return k_sample_3d


@specialise(_cuda_jit)
def k_grad_grid_2d(mode, padding_mode):
    def k_grad_grid_2d(inp, gout, grid, theta, ggrid, align_corners):
        N, Ho, Wo = gout.shape[0], gout.shape[2], gout.shape[3]
        i = numba.int64(cuda.grid(1))
        stride = numba.int64(cuda.gridsize(1))
        while i < N * Ho * Wo:
            n, h, w = K.unravel_2d(i, Ho, Wo)
            gx, gy = K.grid_point_2d(grid, theta, GRID, n, h, w, Ho, Wo, align_corners)
            ggx, ggy = K.grad_point_2d(
                inp, gout, n, h, w, gx, gy, mode, padding_mode, align_corners
            )
            ggrid[n, h, w, 0] = ggx
            ggrid[n, h, w, 1] = ggy
            i += stride

    return k_grad_grid_2d


@specialise(_cuda_jit)
def k_grad_grid_3d(mode, padding_mode):
    def k_grad_grid_3d(inp, gout, grid, theta, ggrid, align_corners):
        N, Do, Ho, Wo = gout.shape[0], gout.shape[2], gout.shape[3], gout.shape[4]
        i = numba.int64(cuda.grid(1))
        stride = numba.int64(cuda.gridsize(1))
        while i < N * Do * Ho * Wo:
            n, d, h, w = K.unravel_3d(i, Do, Ho, Wo)
            gx, gy, gz = K.grid_point_3d(grid, theta, GRID, n, d, h, w, Do, Ho, Wo, align_corners)
            ggx, ggy, ggz = K.grad_point_3d(
                inp, gout, n, d, h, w, gx, gy, gz, mode, padding_mode, align_corners
            )
            ggrid[n, d, h, w, 0] = ggx
            ggrid[n, d, h, w, 1] = ggy
            ggrid[n, d, h, w, 2] = ggz
            i += stride

    return k_grad_grid_3d


@specialise(_cuda_jit)
def k_grad_theta_rows_2d(mode, padding_mode):
    def k_grad_theta_rows_2d(inp, gout, grid, theta, acc, align_corners):
        """acc[row] = θ-gradient of output row (n, h), summed over w in order."""
        N, Ho, Wo = gout.shape[0], gout.shape[2], gout.shape[3]
        i = numba.int64(cuda.grid(1))
        stride = numba.int64(cuda.gridsize(1))
        while i < N * Ho:
            n = i // Ho
            h = i - n * Ho
            for k in range(6):
                acc[i, k] = 0.0
            for w in range(Wo):
                gx, gy = K.grid_point_2d(grid, theta, AFFINE, n, h, w, Ho, Wo, align_corners)
                ggx, ggy = K.grad_point_2d(
                    inp, gout, n, h, w, gx, gy, mode, padding_mode, align_corners
                )
                K.accumulate_theta_2d(acc, i, ggx, ggy, w, h, Wo, Ho, align_corners)
            i += stride

    return k_grad_theta_rows_2d


@specialise(_cuda_jit)
def k_grad_theta_rows_3d(mode, padding_mode):
    def k_grad_theta_rows_3d(inp, gout, grid, theta, acc, align_corners):
        N, Do, Ho, Wo = gout.shape[0], gout.shape[2], gout.shape[3], gout.shape[4]
        i = numba.int64(cuda.grid(1))
        stride = numba.int64(cuda.gridsize(1))
        while i < N * Do * Ho:
            n, d, h = K.unravel_2d(i, Do, Ho)
            for k in range(12):
                acc[i, k] = 0.0
            for w in range(Wo):
                gx, gy, gz = K.grid_point_3d(
                    grid, theta, AFFINE, n, d, h, w, Do, Ho, Wo, align_corners
                )
                ggx, ggy, ggz = K.grad_point_3d(
                    inp, gout, n, d, h, w, gx, gy, gz, mode, padding_mode, align_corners
                )
                K.accumulate_theta_3d(acc, i, ggx, ggy, ggz, w, h, d, Wo, Ho, Do, align_corners)
            i += stride

    return k_grad_theta_rows_3d


@specialise(_cuda_jit)
def k_scatter_2d(source, mode, padding_mode):
    def k_scatter_2d(gout, grid, theta, gacc, scales, align_corners):
        """gacc += every output pixel's share, with atomics (float, or fixed point if int64)."""
        N, Ho, Wo = gout.shape[0], gout.shape[2], gout.shape[3]
        Hin = gacc.shape[2]
        i = numba.int64(cuda.grid(1))
        stride = numba.int64(cuda.gridsize(1))
        while i < N * Ho * Wo:
            n, h, w = K.unravel_2d(i, Ho, Wo)
            gx, gy = K.grid_point_2d(grid, theta, source, n, h, w, Ho, Wo, align_corners)
            K.scatter_2d(
                gacc, gout, n, h, w, gx, gy, mode, padding_mode, align_corners, 0, Hin, scales[n]
            )
            i += stride

    return k_scatter_2d


@specialise(_cuda_jit)
def k_scatter_3d(source, mode, padding_mode):
    def k_scatter_3d(gout, grid, theta, gacc, scales, align_corners):
        N, Do, Ho, Wo = gout.shape[0], gout.shape[2], gout.shape[3], gout.shape[4]
        Din = gacc.shape[2]
        i = numba.int64(cuda.grid(1))
        stride = numba.int64(cuda.gridsize(1))
        while i < N * Do * Ho * Wo:
            n, d, h, w = K.unravel_3d(i, Do, Ho, Wo)
            gx, gy, gz = K.grid_point_3d(grid, theta, source, n, d, h, w, Do, Ho, Wo, align_corners)
            K.scatter_3d(
                gacc,
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
                0,
                Din,
                scales[n],
            )
            i += stride

    return k_scatter_3d


# ----------------------------------------------------------------------------
# B-spline coefficients: embed the image in its margin, prefilter one axis's lines
# ----------------------------------------------------------------------------


@_cuda_jit
def k_spline_embed_2d(img, coef, margin, into_coef):
    """coef[n, c, y + m, x + m] = img[n, c, y, x] (``into_coef``), or the reverse (the
    backward's crop); one thread per image element. The margin is zeroed before."""
    N, C, H, W = img.shape[0], img.shape[1], img.shape[2], img.shape[3]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * C * H * W:
        n, c, y, x = K.unravel_3d(i, C, H, W)
        if into_coef:
            coef[n, c, y + margin, x + margin] = img[n, c, y, x]
        else:
            img[n, c, y, x] = coef[n, c, y + margin, x + margin]
        i += stride


@_cuda_jit
def k_spline_embed_3d(img, coef, margin, into_coef):
    """:func:`k_spline_embed_2d` in 3-D."""
    N, C, D, H, W = img.shape[0], img.shape[1], img.shape[2], img.shape[3], img.shape[4]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * C * D * H * W:
        q, y, x = K.unravel_2d(i, H, W)
        n, c, z = K.unravel_2d(q, C, D)
        if into_coef:
            coef[n, c, z + margin, y + margin, x + margin] = img[n, c, z, y, x]
        else:
            img[n, c, z, y, x] = coef[n, c, z + margin, y + margin, x + margin]
        i += stride


@_cuda_jit
def k_spline_filter_2d(coef, axis, order, boundary, transpose):
    """Prefilter (or its transpose) every line of ``coef`` along ``axis`` (2: y,
    3: x), one thread per line."""
    N, C, H, W = coef.shape[0], coef.shape[1], coef.shape[2], coef.shape[3]
    lines = W if axis == 2 else H
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * C * lines:
        n, c, k = K.unravel_2d(i, C, lines)
        line = coef[n, c, :, k] if axis == 2 else coef[n, c, k, :]
        if transpose:
            B.prefilter_line_transpose(line, order, boundary)
        else:
            B.prefilter_line(line, order, boundary)
        i += stride


@_cuda_jit
def k_spline_filter_3d(coef, axis, order, boundary, transpose):
    """:func:`k_spline_filter_2d` in 3-D (axis 2: z, 3: y, 4: x)."""
    D, H, W = coef.shape[2], coef.shape[3], coef.shape[4]
    a = H if axis == 2 else D  # the two other axes, outer first
    b = H if axis == 4 else W
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < coef.shape[0] * coef.shape[1] * a * b:
        q, j, k = K.unravel_2d(i, a, b)
        n = q // coef.shape[1]
        c = q - n * coef.shape[1]
        if axis == 2:
            line = coef[n, c, :, j, k]
        elif axis == 3:
            line = coef[n, c, j, :, k]
        else:
            line = coef[n, c, j, k, :]
        if transpose:
            B.prefilter_line_transpose(line, order, boundary)
        else:
            B.prefilter_line(line, order, boundary)
        i += stride


@_cuda_jit
def k_abs_row_sums(flat, sums):
    """sums[r] = Σ_j |flat[r, j]| in float64, one thread per row, j in order."""
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < flat.shape[0]:
        s = 0.0
        for j in range(flat.shape[1]):
            s += abs(float(flat[i, j]))
        sums[i, 0] = s
        i += stride


@_cuda_jit
def k_fixed_point_scales(totals, wmax, scales):
    """scales[n] = the largest 2**k with 2**k · totals[n] · wmax <= 2**62."""
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < scales.shape[0]:
        bound = totals[i, 0] * wmax
        if bound > 0.0 and bound < 1e300:
            scales[i] = 2.0 ** math.floor(62.0 - math.log2(bound))
        else:
            scales[i] = 1.0
        i += stride


@_cuda_jit
def k_fixed_to_float(acc, scales, out):
    """out[n, j] = acc[n, j] / scales[n] (exact power-of-two scaling)."""
    N, M = out.shape[0], out.shape[1]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * M:
        n = i // M
        j = i - n * M
        out[n, j] = acc[n, j] / scales[n]
        i += stride


# ----------------------------------------------------------------------------
# Projective and flow grids
# ----------------------------------------------------------------------------


@_cuda_jit
def k_perspective_grid_2d(theta, grid, align_corners):
    N, Ho, Wo = grid.shape[0], grid.shape[1], grid.shape[2]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * Ho * Wo:
        n, h, w = K.unravel_2d(i, Ho, Wo)
        gx, gy, _ = K.perspective_point_2d(theta, n, h, w, Ho, Wo, align_corners)
        grid[n, h, w, 0] = gx
        grid[n, h, w, 1] = gy
        i += stride


@_cuda_jit
def k_perspective_rows_2d(ggrid, theta, acc, align_corners):
    """acc[row] = dL/dθ[n] of output row (n, h), 9 values."""
    N, Ho, Wo = ggrid.shape[0], ggrid.shape[1], ggrid.shape[2]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * Ho:
        n = i // Ho
        h = i - n * Ho
        for k in range(9):
            acc[i, k] = 0.0
        for w in range(Wo):
            K.accumulate_perspective_2d(
                acc, i, ggrid[n, h, w, 0], ggrid[n, h, w, 1], theta, n, h, w, Ho, Wo,
                align_corners,
            )  # fmt: skip
        i += stride


@_cuda_jit
def k_perspective_grid_3d(theta, grid, align_corners):
    N, Do, Ho, Wo = grid.shape[0], grid.shape[1], grid.shape[2], grid.shape[3]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * Do * Ho * Wo:
        n, d, h, w = K.unravel_3d(i, Do, Ho, Wo)
        gx, gy, gz, _ = K.perspective_point_3d(theta, n, d, h, w, Do, Ho, Wo, align_corners)
        grid[n, d, h, w, 0] = gx
        grid[n, d, h, w, 1] = gy
        grid[n, d, h, w, 2] = gz
        i += stride


@_cuda_jit
def k_perspective_rows_3d(ggrid, theta, acc, align_corners):
    """acc[row] = dL/dθ[n] of output row (n, d, h), 16 values."""
    N, Do, Ho, Wo = ggrid.shape[0], ggrid.shape[1], ggrid.shape[2], ggrid.shape[3]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * Do * Ho:
        n, d, h = K.unravel_2d(i, Do, Ho)
        for k in range(16):
            acc[i, k] = 0.0
        for w in range(Wo):
            K.accumulate_perspective_3d(
                acc, i, ggrid[n, d, h, w, 0], ggrid[n, d, h, w, 1], ggrid[n, d, h, w, 2],
                theta, n, d, h, w, Do, Ho, Wo, align_corners,
            )  # fmt: skip
        i += stride


@_cuda_jit
def k_flow_grid_2d(flow, grid, Hin, Win, align_corners):
    N, Ho, Wo = flow.shape[0], flow.shape[1], flow.shape[2]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * Ho * Wo:
        n, h, w = K.unravel_2d(i, Ho, Wo)
        gx, gy = K.flow_point_2d(flow, n, h, w, Hin, Win, align_corners)
        grid[n, h, w, 0] = gx
        grid[n, h, w, 1] = gy
        i += stride


@_cuda_jit
def k_flow_grid_3d(flow, grid, Din, Hin, Win, align_corners):
    N, Do, Ho, Wo = flow.shape[0], flow.shape[1], flow.shape[2], flow.shape[3]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * Do * Ho * Wo:
        n, d, h, w = K.unravel_3d(i, Do, Ho, Wo)
        gx, gy, gz = K.flow_point_3d(flow, n, d, h, w, Din, Hin, Win, align_corners)
        grid[n, d, h, w, 0] = gx
        grid[n, d, h, w, 1] = gy
        grid[n, d, h, w, 2] = gz
        i += stride


@_cuda_jit
def k_scale_columns(src, scales, dst):
    """dst[i, j] = src[i, j] · scales[j] (in float64): the flow gradient."""
    R, P = src.shape[0], src.shape[1]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < R * P:
        r = i // P
        j = i - r * P
        dst[r, j] = float(src[r, j]) * scales[j]
        i += stride


# ----------------------------------------------------------------------------
# Host side: the backend interface shared with stn_numba._cpu
# ----------------------------------------------------------------------------


def _launch(kernel, total, *args):
    if total > 0:
        blocks, threads = launch_config(total)
        kernel[blocks, threads](*args)


def to_device(x):
    """Device view of a device array (zero copy), or a copy of a NumPy array that keeps
    its memory order (a channels-last view stays one: see :mod:`stn_numba._layout`)."""
    if isinstance(x, np.ndarray):
        order = memory_order(x)
        return permute(cuda.to_device(np.ascontiguousarray(permute(x, order))), inverse(order))
    return x  # already a Numba device array (see _validate.as_float_array)


def empty(shape, dtype):
    return cuda.device_array(shape, dtype=dtype)


def empty_like(x, dtype):
    """A new device array of x's shape, in x's memory order (channels-last stays so)."""
    order = memory_order(x)
    return permute(empty(tuple(x.shape[a] for a in order), dtype), inverse(order))


def zeros_like(x, dtype):
    arr = empty_like(x, dtype)
    if arr.size:
        _launch(k_fill_zero, arr.size, physical(arr).reshape(-1))
    return arr


def _rows(x, n):
    """(n, size // n) view of the memory of an image-like array whose batch axis is
    outermost (C order or channels-last): for the element-wise kernels."""
    return physical(x).reshape(n, x.size // n)


def zeros(shape, dtype):
    arr = cuda.device_array(shape, dtype=dtype)
    flat = arr.reshape(-1) if arr.size else arr
    _launch(k_fill_zero, arr.size, flat)
    return arr


def _placeholder(dtype, ndim):
    return cuda.device_array((0,) * ndim, dtype=dtype)


def run_affine_grid(theta, grid, align_corners):
    theta = to_device(theta)
    k = k_affine_grid_2d if theta.shape[1] == 2 else k_affine_grid_3d
    _launch(k, int(np.prod(grid.shape[:-1])), theta, grid, align_corners)


def _reduce(acc, n, dims, dtype, cols=None):
    cols = dims + 1 if cols is None else cols
    out = cuda.device_array((n, dims * cols), dtype=dtype)
    rows = acc.shape[0] // max(n, 1)
    _launch(k_reduce_rows, out.size, acc, out, rows)
    return out.reshape(n, dims, cols)


def run_affine_grid_backward(ggrid, align_corners):
    ggrid = to_device(ggrid)
    dims = ggrid.shape[ggrid.ndim - 1]
    rows = int(np.prod(ggrid.shape[:-2]))
    acc = cuda.device_array((rows, dims * (dims + 1)), dtype=np.float64)
    k = k_theta_rows_2d if dims == 2 else k_theta_rows_3d
    _launch(k, rows, ggrid, acc, align_corners)
    return _reduce(acc, ggrid.shape[0], dims, ggrid.dtype)


def _spline_filter(coef, transpose, mode, padding_mode):
    dims = coef.ndim - 2
    k = k_spline_filter_2d if dims == 2 else k_spline_filter_3d
    boundary = _kernels.spline_boundary(padding_mode)
    axes = range(dims + 1, 1, -1)  # x first, as the CPU
    for axis in reversed(axes) if transpose else axes:
        lines = coef.size // max(coef.shape[axis], 1)
        _launch(k, lines, coef, axis, spline_order(mode), boundary, transpose)


def spline_coefficients(inp, mode, padding_mode, dtype):
    """:func:`stn_numba._cpu.spline_coefficients` on the device."""
    m = _kernels.spline_margin(mode, padding_mode)
    shape = tuple(inp.shape[:2]) + tuple(s + 2 * m for s in inp.shape[2:])
    coef = zeros(shape, dtype)
    if inp.size:
        k = k_spline_embed_2d if coef.ndim == 4 else k_spline_embed_3d
        _launch(k, inp.size, inp, coef, m, True)
        _spline_filter(coef, False, mode, padding_mode)
    return coef


def spline_coefficients_backward(gcoef, like, mode, padding_mode):
    """:func:`stn_numba._cpu.spline_coefficients_backward` on the device."""
    gin = empty_like(like, gcoef.dtype)
    if gin.size:
        _spline_filter(gcoef, True, mode, padding_mode)
        k = k_spline_embed_2d if gin.ndim == 4 else k_spline_embed_3d
        _launch(k, gin.size, gin, gcoef, _kernels.spline_margin(mode, padding_mode), False)
    return gin


def run_sample(inp, grid, theta, out, mode, padding_mode, align_corners, source=None):
    """Forward; ``source`` as in :func:`stn_numba._cpu.run_sample`."""
    dims = len(inp.shape) - 2
    if source is None:
        source = AFFINE if grid is None else GRID
    if source == FLOW:
        theta = np.array(inp.shape[2:][::-1], dtype=grid.dtype).reshape(1, dims, 1)
    inp = to_device(inp)
    ct = (grid if grid is not None else theta).dtype  # the computation's float type
    grid = _placeholder(ct, dims + 2) if grid is None else to_device(grid)
    theta = _placeholder(ct, 3) if theta is None else to_device(theta)
    if spline_order(mode):
        inp = spline_coefficients(inp, mode, padding_mode, ct)
    k = (k_sample_2d if dims == 2 else k_sample_3d)(source, mode, padding_mode)
    total = out.shape[0] * int(np.prod(out.shape[2:]))
    _launch(k, total, inp, grid, theta, out, align_corners)


def run_backward(
    gout, inp, grid, theta, mode, padding_mode, align_corners, input_grad, point_grad, deterministic
):
    """(grad_input or None, grad_grid / grad_theta or None), as device arrays."""
    gout = to_device(gout)
    inp = to_device(inp)
    fused = grid is None
    dims = inp.ndim - 2
    dtype = (theta if fused else grid).dtype  # the computation's float type
    grid = _placeholder(dtype, dims + 2) if fused else to_device(grid)
    theta = _placeholder(dtype, 3) if not fused else to_device(theta)
    n = inp.shape[0]
    out_pixels = n * int(np.prod(gout.shape[2:]))
    grad_input = grad_point = None
    image = inp
    if spline_order(mode):  # B-splines sample (and scatter into) the coefficients
        inp = spline_coefficients(inp, mode, padding_mode, dtype)
    if input_grad:
        scatter = (k_scatter_2d if dims == 2 else k_scatter_3d)(
            AFFINE if fused else GRID, mode, padding_mode
        )
        if deterministic:
            scales = _fixed_point_scales(gout, mode)
            acc = zeros_like(inp, np.int64)
            _launch(scatter, out_pixels, gout, grid, theta, acc, scales, align_corners)
            grad_input = empty_like(inp, dtype)
            if grad_input.size:
                _launch(
                    k_fixed_to_float, grad_input.size, _rows(acc, n), scales, _rows(grad_input, n)
                )
        else:
            scales = cuda.to_device(np.ones(n))
            grad_input = zeros_like(inp, dtype)
            _launch(scatter, out_pixels, gout, grid, theta, grad_input, scales, align_corners)
        if spline_order(mode):
            grad_input = spline_coefficients_backward(grad_input, image, mode, padding_mode)
    if point_grad:
        if fused:
            rows = n * int(np.prod(gout.shape[2:-1]))
            acc = cuda.device_array((rows, dims * (dims + 1)), dtype=np.float64)
            k = (k_grad_theta_rows_2d if dims == 2 else k_grad_theta_rows_3d)(mode, padding_mode)
            _launch(k, rows, inp, gout, grid, theta, acc, align_corners)
            grad_point = _reduce(acc, n, dims, dtype)
        else:
            grad_point = cuda.device_array(grid.shape, dtype=dtype)
            k = (k_grad_grid_2d if dims == 2 else k_grad_grid_3d)(mode, padding_mode)
            _launch(k, out_pixels, inp, gout, grid, theta, grad_point, align_corners)
    return grad_input, grad_point


def _fixed_point_scales(gout, mode):
    """Per-sample power-of-two scale of the fixed-point accumulator (on the device)."""
    n = gout.shape[0]
    scales = cuda.device_array(n, dtype=np.float64)
    if n == 0:
        return scales
    rows = n * int(np.prod(gout.shape[1:-1]))
    sums = cuda.device_array((rows, 1), dtype=np.float64)
    if gout.size:
        _launch(k_abs_row_sums, rows, _rows(gout, rows), sums)
        totals = _reduce_flat(sums, n)
    else:
        totals = zeros((n, 1), np.float64)
    # Σ|weights| of one output pixel: 1 for (tri)linear and nearest; <= 1.375² for bicubic.
    wmax = 2.0 if mode == BICUBIC else 1.0
    _launch(k_fixed_point_scales, n, totals, wmax, scales)
    return scales


def _reduce_flat(sums, n):
    out = cuda.device_array((n, 1), dtype=np.float64)
    _launch(k_reduce_rows, n, sums, out, sums.shape[0] // n)
    return out


def run_perspective_grid(theta, grid, align_corners):
    theta = to_device(theta)
    k = k_perspective_grid_2d if theta.shape[1] == 3 else k_perspective_grid_3d
    _launch(k, int(np.prod(grid.shape[:-1])), theta, grid, align_corners)


def run_perspective_grid_backward(ggrid, theta, align_corners):
    ggrid = to_device(ggrid)
    theta = to_device(theta)
    k = theta.shape[1]  # 3 (2-D) or 4 (3-D): θ is k × k
    rows = int(np.prod(ggrid.shape[:-2]))
    acc = cuda.device_array((rows, k * k), dtype=np.float64)
    kernel = k_perspective_rows_2d if k == 3 else k_perspective_rows_3d
    _launch(kernel, rows, ggrid, theta, acc, align_corners)
    return _reduce(acc, ggrid.shape[0], k, ggrid.dtype, k)


def run_flow_grid(flow, grid, in_size, align_corners):
    flow = to_device(flow)
    k = k_flow_grid_2d if flow.ndim == 4 else k_flow_grid_3d
    _launch(k, int(np.prod(grid.shape[:-1])), flow, grid, *in_size, align_corners)


def run_flow_grid_backward(ggrid, scales):
    ggrid = to_device(ggrid)
    dims = ggrid.shape[ggrid.ndim - 1]
    out = cuda.device_array(ggrid.shape, dtype=ggrid.dtype)
    if ggrid.size:
        rows = ggrid.size // dims
        sc = cuda.to_device(np.asarray(scales, dtype=np.float64))
        _launch(k_scale_columns, ggrid.size, ggrid.reshape(rows, dims), sc, out.reshape(rows, dims))
    return out


# ----------------------------------------------------------------------------
# Thin-plate spline (tps_grid): coefficients solved on the host (stn_numba._tps)
# and copied in (a few hundred bytes); the kernels evaluate the spline per pixel,
# or sum its basis rows per output row (then k_reduce_rows, in a fixed order)
# ----------------------------------------------------------------------------


@_cuda_jit
def k_tps_grid_2d(coef, src, grid, align_corners):
    N, Ho, Wo = grid.shape[0], grid.shape[1], grid.shape[2]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * Ho * Wo:
        n, h, w = K.unravel_2d(i, Ho, Wo)
        xb = K.base_coord(w, Wo, align_corners, 0.0)
        yb = K.base_coord(h, Ho, align_corners, 0.0)
        gx, gy = K.tps_point(coef, src, n, xb, yb)
        grid[n, h, w, 0] = gx
        grid[n, h, w, 1] = gy
        i += stride


@_cuda_jit
def k_tps_rows_2d(ggrid, src, acc, align_corners):
    """acc[row] = Σ_w B[(n, h, w)] ⊗ ggrid[n, h, w] for each output row (n, h)."""
    N, Ho, Wo = ggrid.shape[0], ggrid.shape[1], ggrid.shape[2]
    i = numba.int64(cuda.grid(1))
    stride = numba.int64(cuda.gridsize(1))
    while i < N * Ho:
        n = i // Ho
        h = i - n * Ho
        for q in range(acc.shape[1]):
            acc[i, q] = 0.0
        yb = K.base_coord(h, Ho, align_corners, 0.0)
        for w in range(Wo):
            xb = K.base_coord(w, Wo, align_corners, 0.0)
            K.accumulate_tps(acc, i, src, n, xb, yb, ggrid[n, h, w, 0], ggrid[n, h, w, 1])
        i += stride


def run_tps_grid(coef, src, grid, align_corners):
    """grid (N, H, W, 2) on the device = the splines of ``coef`` (host, float64)."""
    total = int(np.prod(grid.shape[:-1]))
    _launch(k_tps_grid_2d, total, to_device(coef), to_device(src), grid, align_corners)


def run_tps_grid_backward(ggrid, src, align_corners):
    """G = Σ_p B[p]ᵀ ⊗ ggrid[p] per sample, (N, K + 3, 2) float64 on the host (it goes
    into the host solve), summed per row and then in row order: deterministic."""
    ggrid = to_device(ggrid)
    n, k3 = ggrid.shape[0], src.shape[1] + 3
    rows = n * ggrid.shape[1]
    if n == 0:
        return np.zeros((0, k3, 2))
    acc = cuda.device_array((rows, 2 * k3), dtype=np.float64)
    _launch(k_tps_rows_2d, rows, ggrid, to_device(src), acc, align_corners)
    out = cuda.device_array((n, 2 * k3), dtype=np.float64)
    _launch(k_reduce_rows, out.size, acc, out, rows // n)
    return out.copy_to_host().reshape(n, k3, 2)


# ----------------------------------------------------------------------------
# splat (forward warping): the input-gradient scatter on its own
# ----------------------------------------------------------------------------


def run_splat(src, grid, out, mode, padding_mode, align_corners, deterministic=True):
    """out (device, (N, C, *size)) = splat of ``src`` (on grid's lattice): the scatter of
    :func:`run_backward`'s input gradient with ``src`` as grad_output. Deterministic:
    an int64 fixed-point accumulator of out's size (8 bytes per output element) and
    one float64 per input row and channel; otherwise float atomics straight into ``out``."""
    src = to_device(src)
    grid = to_device(grid)
    dims = src.ndim - 2
    n = src.shape[0]
    theta = _placeholder(src.dtype, 3)
    scatter = (k_scatter_2d if dims == 2 else k_scatter_3d)(GRID, mode, padding_mode)
    total = n * int(np.prod(src.shape[2:]))
    if deterministic:
        scales = _fixed_point_scales(src, mode)
        acc = zeros_like(out, np.int64)
        _launch(scatter, total, src, grid, theta, acc, scales, align_corners)
        if out.size:
            _launch(k_fixed_to_float, out.size, _rows(acc, n), scales, _rows(out, n))
    else:
        if out.size:
            _launch(k_fill_zero, out.size, physical(out).reshape(-1))
        scales = cuda.to_device(np.ones(n))
        _launch(scatter, total, src, grid, theta, out, scales, align_corners)
