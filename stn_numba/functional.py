"""Public functions: validate, then dispatch to a driver.

Conventions shared by every function (SPEC §3, PyTorch's):

==================  ==========================================================
shapes              input (N, C, H, W) or (N, C, D, H, W); grid (N, H, W, 2) or
                    (N, D, H, W, 3); θ (N, 2, 3) or (N, 3, 4)
grid last axis      (x, y) or (x, y, z): x indexes W, y indexes H, z indexes D
normalised coords   -1 is the left/top edge, +1 the right/bottom edge
align_corners=True  ±1 are the centres of the corner pixels: i = (g + 1)/2 · (S - 1)
align_corners=False ±1 are the outer edges of the corner pixels: i = ((g + 1)·S - 1)/2
dtypes              float32 or float64, the same for every array; output = input's
==================  ==========================================================

Arrays of any strides and memory order are accepted; no argument is ever modified.
NaN grid values sample as 0 with zero gradient (every padding mode); ±inf and
values beyond 2**40 pixels are clamped there, so ``border`` reads the edge,
``reflection`` folds them inside and ``zeros`` gives 0.
"""

import math

import numba
import numpy as np

from . import _cpu
from ._modes import mode_code, padding_code
from ._validate import (
    as_float_array,
    as_int_tuple,
    check_batch,
    check_bool,
    check_device,
    check_input,
    check_ndim,
    check_out,
    check_shape,
    check_size,
    check_theta,
    same_dtype,
)

__all__ = [
    "affine_grid",
    "affine_grid_backward",
    "grid_sample",
    "grid_sample_backward",
    "warp_affine",
    "warp_affine_backward",
]


def _placeholder(dtype, ndim):
    """An empty array standing in for the unused grid or θ of a driver call."""
    return np.zeros((0,) * ndim, dtype=dtype)


def _bands(n, rows):
    """Bands of input rows per sample for the input-gradient scatter.

    Any value gives bit-identical results (see :mod:`stn_numba._cpu`), so it can
    follow the thread count: enough tasks to keep every thread busy.
    """
    threads = numba.get_num_threads()
    if n >= threads:
        return 1
    return max(1, min(rows, math.ceil(threads / max(n, 1))))


def _output(out, shape, dtype, args):
    if out is None:
        return np.empty(shape, dtype=dtype)
    return check_out(out, shape, dtype, args)


# ----------------------------------------------------------------------------
# affine_grid
# ----------------------------------------------------------------------------


def affine_grid(theta, size, align_corners=False, *, out=None, device=None):
    """Sampling grid of the affine maps θ (PyTorch's ``F.affine_grid``).

    Parameters
    ----------
    theta : ndarray, (N, 2, 3) or (N, 3, 4)
        Affine maps from output to input normalised coordinates, acting on
        (x, y, 1) or (x, y, z, 1).
    size : sequence of int
        Output size (N, C, H, W) or (N, C, D, H, W); N must equal θ's batch, C is
        ignored, spatial entries must be >= 1.
    align_corners : bool, default False
        Whether ±1 are the centres (True) or the outer edges (False) of the corner pixels.
    out : ndarray, optional
        Preallocated C-contiguous result of the right shape and dtype.
    device : {None, "cpu", "cuda"}
        Where to run; this version runs on the CPU.

    Returns
    -------
    grid : ndarray, (N, H, W, 2) or (N, D, H, W, 3)
        ``grid[n, h, w] = θ[n] @ (x_w, y_h, 1)`` with the base grid
        ``linspace(-1, 1, W)`` (times ``(W - 1)/W`` when align_corners is False;
        0 when W == 1). Last axis (x, y[, z]). Same dtype as θ.

    Raises
    ------
    TypeError
        θ not float32/float64, align_corners not a bool, size not a sequence of ints.
    ValueError
        θ of the wrong shape, size of the wrong length, batch or with entries < 1.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> theta = np.array([[[1.0, 0, 0], [0, 1, 0]]])
    >>> stn.affine_grid(theta, (1, 1, 2, 3), align_corners=True)[0, 0]
    array([[-1., -1.],
           [ 0., -1.],
           [ 1., -1.]])
    """
    check_device(device, {"theta": theta})
    theta = as_float_array(theta, "theta")
    dims = check_theta(theta)
    align_corners = check_bool(align_corners, "align_corners")
    size = check_size(size, "size", theta.shape[0], dims)
    shape = (size[0],) + size[2:] + (dims,)
    grid = _output(out, shape, theta.dtype, {"theta": theta})
    if dims == 2:
        _cpu.affine_grid_2d(theta, grid, align_corners)
    else:
        _cpu.affine_grid_3d(theta, grid, align_corners)
    return grid


def affine_grid_backward(grad_grid, size, align_corners=False, *, device=None):
    """Gradient of :func:`affine_grid` with respect to θ.

    Parameters
    ----------
    grad_grid : ndarray, (N, H, W, 2) or (N, D, H, W, 3)
        dL/dgrid.
    size : sequence of int
        The ``size`` given to the forward, (N, C, H, W) or (N, C, D, H, W).
    align_corners : bool, default False
        As in the forward.
    device : {None, "cpu", "cuda"}
        Where to run; this version runs on the CPU.

    Returns
    -------
    grad_theta : ndarray, (N, 2, 3) or (N, 3, 4)
        ``Σ_hw grad_grid[n, h, w] ⊗ (x_w, y_h, 1)``, summed in float64 in a fixed
        order (bit-identical for any thread count), returned in grad_grid's dtype.

    Raises
    ------
    TypeError, ValueError
        As :func:`affine_grid`; grad_grid whose shape does not match ``size``.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> g = np.ones((1, 2, 2, 2))
    >>> stn.affine_grid_backward(g, (1, 1, 2, 2), align_corners=True)
    array([[[0., 0., 4.],
            [0., 0., 4.]]])
    """
    check_device(device, {"grad_grid": grad_grid})
    grad_grid = as_float_array(grad_grid, "grad_grid")
    check_ndim(grad_grid, "grad_grid", (4, 5), "(N, H, W, 2) or (N, D, H, W, 3)")
    dims = grad_grid.ndim - 2
    align_corners = check_bool(align_corners, "align_corners")
    size = check_size(size, "size", grad_grid.shape[0], dims)
    check_shape(grad_grid, "grad_grid", (size[0],) + size[2:] + (dims,))
    rows = int(np.prod(grad_grid.shape[:-2]))
    acc = np.empty((rows, dims * (dims + 1)), dtype=np.float64)
    if dims == 2:
        _cpu.affine_grid_backward_2d(grad_grid, acc, align_corners)
    else:
        _cpu.affine_grid_backward_3d(grad_grid, acc, align_corners)
    return _reduce_rows(acc, size[0], dims, grad_grid.dtype)


def _reduce_rows(acc, n, dims, dtype):
    """Per-row θ partial sums -> (N, dims, dims + 1), in a fixed order."""
    acc = acc.reshape(n, -1, dims * (dims + 1))
    total = np.zeros((n, dims * (dims + 1)), dtype=np.float64)
    for r in range(acc.shape[1]):  # fixed order, independent of threads
        total += acc[:, r]
    return total.reshape(n, dims, dims + 1).astype(dtype)


# ----------------------------------------------------------------------------
# grid_sample
# ----------------------------------------------------------------------------


def _check_sample_args(input, grid, mode, padding_mode, align_corners):
    input = as_float_array(input, "input")
    grid = as_float_array(grid, "grid")
    dims = check_input(input)
    check_ndim(grid, "grid", (dims + 2,), f"(N, {'D, ' if dims == 3 else ''}H, W, {dims}) "
               f"to match the {input.ndim}-D input")  # fmt: skip
    if grid.shape[-1] != dims:
        raise ValueError(
            f"grid's last axis must have size {dims} ((x, y{', z' if dims == 3 else ''})); "
            f"got shape {grid.shape}"
        )
    check_batch(input.shape[0], "grid", grid, "input")
    same_dtype("input", input, grid=grid)
    return (
        input,
        grid,
        dims,
        mode_code(mode, dims),
        padding_code(padding_mode),
        check_bool(align_corners, "align_corners"),
    )


def grid_sample(
    input, grid, mode="bilinear", padding_mode="zeros", align_corners=False, *, out=None,
    device=None,
):  # fmt: skip
    """Sample ``input`` at the normalised points of ``grid`` (PyTorch's ``F.grid_sample``).

    Parameters
    ----------
    input : ndarray, (N, C, H_in, W_in) or (N, C, D_in, H_in, W_in)
        Images or volumes, float32 or float64.
    grid : ndarray, (N, H, W, 2) or (N, D, H, W, 3)
        Normalised source points, last axis (x, y[, z]); same dtype as input.
    mode : {"bilinear", "nearest", "bicubic"}
        Interpolation; "bilinear" is trilinear on 5-D input; "bicubic" is 2-D only
        (Keys, A = -0.75, padding applied to each of the 4×4 taps). "nearest" rounds
        half to even.
    padding_mode : {"zeros", "border", "reflection"}
        Values outside the input: 0, the edge, or the input reflected.
    align_corners : bool, default False
        Whether ±1 are the centres (True) or outer edges (False) of the corner pixels.
    out : ndarray, optional
        Preallocated C-contiguous result; must not overlap input or grid.
    device : {None, "cpu", "cuda"}
        Where to run; this version runs on the CPU.

    Returns
    -------
    output : ndarray, (N, C, H, W) or (N, C, D, H, W)
        input's dtype.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes, non-bool align_corners, non-str modes.
    ValueError
        Wrong ndim, batch mismatch, grid's last axis, unknown mode or padding_mode.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> x = np.arange(4.0).reshape(1, 1, 2, 2)
    >>> grid = np.array([[[[0.0, 0.0]]]])            # the centre of the image
    >>> stn.grid_sample(x, grid, align_corners=True)
    array([[[[1.5]]]])
    """
    check_device(device, {"input": input, "grid": grid})
    input, grid, dims, m, p, ac = _check_sample_args(input, grid, mode, padding_mode, align_corners)
    shape = input.shape[:2] + grid.shape[1:-1]
    output = _output(out, shape, input.dtype, {"input": input, "grid": grid})
    theta = _placeholder(input.dtype, 3)
    if dims == 2:
        _cpu.sample_2d_cpu(input, grid, theta, False, output, m, p, ac)
    else:
        _cpu.sample_3d_cpu(input, grid, theta, False, output, m, p, ac)
    return output


def grid_sample_backward(
    grad_output, input, grid, mode="bilinear", padding_mode="zeros", align_corners=False,
    input_grad=True, grid_grad=True, *, device=None,
):  # fmt: skip
    """Gradients of :func:`grid_sample` with respect to input and grid.

    Parameters
    ----------
    grad_output : ndarray, (N, C, H, W) or (N, C, D, H, W)
        dL/doutput, the shape of the forward's output.
    input, grid, mode, padding_mode, align_corners
        As given to :func:`grid_sample`.
    input_grad, grid_grad : bool, default True
        Which gradients to compute; one not asked for is not computed and comes back
        as None.
    device : {None, "cpu", "cuda"}
        Where to run; this version runs on the CPU.

    Returns
    -------
    grad_input : ndarray or None
        dL/dinput, input's shape and dtype. Deterministic: bit-identical for any
        number of threads and from run to run.
    grad_grid : ndarray or None
        dL/dgrid, grid's shape. Zero for mode="nearest"; zero where a coordinate was
        clipped by ``border``/``reflection`` padding (PyTorch's convention).

    Raises
    ------
    TypeError, ValueError
        As :func:`grid_sample`, and grad_output of the wrong shape or dtype.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> x = np.arange(4.0).reshape(1, 1, 2, 2)
    >>> grid = np.array([[[[0.0, 0.0]]]])
    >>> gi, gg = stn.grid_sample_backward(np.ones((1, 1, 1, 1)), x, grid, align_corners=True)
    >>> gi[0, 0]
    array([[0.25, 0.25],
           [0.25, 0.25]])
    >>> gg[0, 0, 0]      # d out / d (x, y): 1 per pixel step, half a width per unit
    array([0.5, 1. ])
    """
    check_device(device, {"grad_output": grad_output, "input": input, "grid": grid})
    input, grid, dims, m, p, ac = _check_sample_args(input, grid, mode, padding_mode, align_corners)
    input_grad = check_bool(input_grad, "input_grad")
    grid_grad = check_bool(grid_grad, "grid_grad")
    grad_output = as_float_array(grad_output, "grad_output")
    same_dtype("input", input, grad_output=grad_output)
    check_shape(grad_output, "grad_output", input.shape[:2] + grid.shape[1:-1])
    return _backward(grad_output, input, grid, None, dims, m, p, ac, input_grad, grid_grad)


def _backward(gout, input, grid, theta, dims, m, p, ac, input_grad, point_grad):
    """Shared by grid_sample_backward (grid given) and warp_affine_backward (θ given)."""
    fused = grid is None
    dtype = input.dtype
    if fused:
        grid = _placeholder(dtype, dims + 2)
    else:
        theta = _placeholder(dtype, 3)
    scatter = _cpu.scatter_2d_cpu if dims == 2 else _cpu.scatter_3d_cpu
    points = _cpu.grad_points_2d_cpu if dims == 2 else _cpu.grad_points_3d_cpu
    grad_input = grad_point = None
    if input_grad:
        grad_input = np.zeros(input.shape, dtype=dtype)
        bands = _bands(input.shape[0], input.shape[2])
        rows = int(np.prod(gout.shape[:1] + gout.shape[2:-1]))
        spans = np.empty((rows, 2), dtype=np.int64)
        if bands > 1:  # which input rows each output row touches, to skip the rest
            out_sp = gout.shape[2:]
            if dims == 2:
                _cpu.row_spans_2d(grid, theta, fused, spans, *out_sp, input.shape[2], p, ac)
            else:
                _cpu.row_spans_3d(grid, theta, fused, spans, *out_sp, input.shape[2], p, ac)
        else:
            spans[:, 0] = 0
            spans[:, 1] = input.shape[2] - 1
        scatter(gout, grid, theta, fused, grad_input, spans, bands, m, p, ac)
    if point_grad:
        n = input.shape[0]
        if fused:
            rows = n * int(np.prod(gout.shape[2:-1]))
            acc = np.empty((rows, dims * (dims + 1)), dtype=np.float64)
            ggrid = _placeholder(dtype, dims + 2)
            points(input, gout, grid, theta, True, ggrid, acc, m, p, ac)
            grad_point = _reduce_rows(acc, n, dims, dtype)
        else:
            grad_point = np.empty(grid.shape, dtype=dtype)
            acc = np.empty((0, 0), dtype=np.float64)
            points(input, gout, grid, theta, False, grad_point, acc, m, p, ac)
    return grad_input, grad_point


# ----------------------------------------------------------------------------
# warp_affine (fused affine_grid + grid_sample)
# ----------------------------------------------------------------------------


def _check_warp_args(input, theta, size, mode, padding_mode, align_corners):
    input = as_float_array(input, "input")
    theta = as_float_array(theta, "theta")
    dims = check_input(input)
    tdims = check_theta(theta)
    if tdims != dims:
        want = "(N, 2, 3)" if dims == 2 else "(N, 3, 4)"
        raise ValueError(f"theta must have shape {want} for {input.ndim}-D input; got {theta.shape}")
    check_batch(input.shape[0], "theta", theta, "input")
    same_dtype("input", input, theta=theta)
    if size is None:
        size = input.shape[2:]
    else:
        size = as_int_tuple(size, "size", dims, 1)
    return (
        input,
        theta,
        dims,
        tuple(size),
        mode_code(mode, dims),
        padding_code(padding_mode),
        check_bool(align_corners, "align_corners"),
    )


def warp_affine(
    input, theta, size=None, mode="bilinear", padding_mode="zeros", align_corners=False, *,
    out=None, device=None,
):  # fmt: skip
    """Warp ``input`` by the affine maps θ: ``grid_sample(input, affine_grid(θ, ...))`` fused.

    The source point of each output pixel is computed from θ inside the kernel; no
    grid array is allocated.

    Parameters
    ----------
    input : ndarray, (N, C, H_in, W_in) or (N, C, D_in, H_in, W_in)
        Images or volumes, float32 or float64.
    theta : ndarray, (N, 2, 3) or (N, 3, 4)
        Maps from output to input normalised coordinates (as in :func:`affine_grid`),
        same dtype as input.
    size : sequence of int, optional
        Output spatial shape (H, W) or (D, H, W); None keeps the input's.
    mode, padding_mode, align_corners
        As in :func:`grid_sample`.
    out : ndarray, optional
        Preallocated C-contiguous result; must not overlap input or θ.
    device : {None, "cpu", "cuda"}
        Where to run; this version runs on the CPU.

    Returns
    -------
    output : ndarray, (N, C, *size)
        input's dtype.

    Raises
    ------
    TypeError, ValueError
        As :func:`grid_sample` and :func:`affine_grid`; θ that does not match the
        input's dimensionality; size of the wrong length or with entries < 1.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> x = np.arange(6.0).reshape(1, 1, 2, 3)
    >>> flip = np.array([[[-1.0, 0, 0], [0, 1, 0]]])      # mirror left-right
    >>> stn.warp_affine(x, flip)[0, 0]
    array([[2., 1., 0.],
           [5., 4., 3.]])
    """
    check_device(device, {"input": input, "theta": theta})
    input, theta, dims, size, m, p, ac = _check_warp_args(
        input, theta, size, mode, padding_mode, align_corners
    )
    shape = input.shape[:2] + size
    output = _output(out, shape, input.dtype, {"input": input, "theta": theta})
    grid = _placeholder(input.dtype, dims + 2)
    if dims == 2:
        _cpu.sample_2d_cpu(input, grid, theta, True, output, m, p, ac)
    else:
        _cpu.sample_3d_cpu(input, grid, theta, True, output, m, p, ac)
    return output


def warp_affine_backward(
    grad_output, input, theta, size=None, mode="bilinear", padding_mode="zeros",
    align_corners=False, input_grad=True, theta_grad=True, *, device=None,
):  # fmt: skip
    """Gradients of :func:`warp_affine` with respect to input and θ.

    Parameters
    ----------
    grad_output : ndarray, (N, C, *size)
        dL/doutput.
    input, theta, size, mode, padding_mode, align_corners
        As given to :func:`warp_affine`.
    input_grad, theta_grad : bool, default True
        Which gradients to compute; one not asked for comes back as None.
    device : {None, "cpu", "cuda"}
        Where to run; this version runs on the CPU.

    Returns
    -------
    grad_input : ndarray or None
        dL/dinput; bit-identical for any number of threads.
    grad_theta : ndarray or None
        dL/dθ, (N, 2, 3) or (N, 3, 4): per-row partial sums in float64 reduced in a
        fixed order; no grid array is allocated.

    Raises
    ------
    TypeError, ValueError
        As :func:`warp_affine`, and grad_output of the wrong shape or dtype.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> x = np.random.default_rng(0).random((1, 1, 4, 4))
    >>> theta = np.array([[[1.0, 0, 0], [0, 1, 0]]])
    >>> gi, gt = stn.warp_affine_backward(np.ones((1, 1, 4, 4)), x, theta)
    >>> gi.shape, gt.shape
    ((1, 1, 4, 4), (1, 2, 3))
    """
    check_device(device, {"grad_output": grad_output, "input": input, "theta": theta})
    input, theta, dims, size, m, p, ac = _check_warp_args(
        input, theta, size, mode, padding_mode, align_corners
    )
    input_grad = check_bool(input_grad, "input_grad")
    theta_grad = check_bool(theta_grad, "theta_grad")
    grad_output = as_float_array(grad_output, "grad_output")
    same_dtype("input", input, grad_output=grad_output)
    check_shape(grad_output, "grad_output", input.shape[:2] + size)
    return _backward(grad_output, input, None, theta, dims, m, p, ac, input_grad, theta_grad)
