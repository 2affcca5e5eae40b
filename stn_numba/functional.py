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

Devices: every function takes ``device=None | "cpu" | "cuda"``. None runs on the GPU
when an array argument exposes ``__cuda_array_interface__`` (Numba device arrays,
CuPy, CUDA torch tensors: zero copy, C-contiguous) and returns Numba device arrays;
NumPy arrays with ``device="cuda"`` are copied in and the results copied back.
NaN grid values sample as 0 with zero gradient (every padding mode); ±inf and
values beyond 2**40 pixels are clamped there, so ``border`` reads the edge,
``reflection`` folds them inside and ``zeros`` gives 0.
"""

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
    is_gpu_array,
    same_dtype,
)

__all__ = [
    "affine_grid",
    "affine_grid_backward",
    "grid_sample",
    "grid_sample_backward",
    "tps_grid",
    "tps_grid_backward",
    "warp_affine",
    "warp_affine_backward",
]


def _backend(dev):
    """The module that runs on ``dev``: :mod:`._cpu` or :mod:`._cuda` (same interface)."""
    if dev == "cpu":
        return _cpu
    from . import _cuda

    return _cuda


def _arrays(device, names_values):
    """Resolve the device and convert every array argument.

    Returns (device, backend, host_out, arrays): ``host_out`` is True when no
    argument lives on the GPU, so that NumPy in gives NumPy out.
    """
    dev = check_device(device, names_values)
    host_out = not any(is_gpu_array(v) for v in names_values.values())
    arrays = [as_float_array(v, k) for k, v in names_values.items()]
    return dev, _backend(dev), host_out, arrays


def _output(out, shape, dtype, args, dev, backend):
    """(array the kernel writes, host array to copy it into afterwards or None)."""
    if out is None:
        return backend.empty(shape, dtype), None
    if dev == "cpu":
        return check_out(out, shape, dtype, args), None
    if isinstance(out, np.ndarray):
        check_out(out, shape, dtype, args)
        return backend.empty(shape, dtype), out
    out = as_float_array(out, "out")
    if tuple(out.shape) != tuple(shape) or out.dtype != dtype:
        raise ValueError(
            f"out must have shape {tuple(shape)} and dtype {dtype}; "
            f"got shape {tuple(out.shape)} and dtype {out.dtype}"
        )
    return out, None


def _finish(result, host_out, target=None):
    """Bring a device result home when the caller gave NumPy arrays."""
    if result is None or isinstance(result, np.ndarray):
        return result
    if target is not None:
        result.copy_to_host(target)
        return target
    return result.copy_to_host() if host_out else result


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
        Where to run; None picks "cuda" when an array argument is a GPU array.

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
    given = {"theta": theta}
    dev, backend, host_out, (theta,) = _arrays(device, given)
    dims = check_theta(theta)
    align_corners = check_bool(align_corners, "align_corners")
    size = check_size(size, "size", theta.shape[0], dims, "theta")
    shape = (size[0],) + size[2:] + (dims,)
    grid, target = _output(out, shape, theta.dtype, given, dev, backend)
    backend.run_affine_grid(theta, grid, align_corners)
    return _finish(grid, host_out, target)


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
        Where to run; None picks "cuda" when an array argument is a GPU array.

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
    dev, backend, host_out, (grad_grid,) = _arrays(device, {"grad_grid": grad_grid})
    check_ndim(grad_grid, "grad_grid", (4, 5), "(N, H, W, 2) or (N, D, H, W, 3)")
    dims = grad_grid.ndim - 2
    align_corners = check_bool(align_corners, "align_corners")
    size = check_size(size, "size", grad_grid.shape[0], dims, "grad_grid")
    check_shape(grad_grid, "grad_grid", (size[0],) + size[2:] + (dims,))
    return _finish(backend.run_affine_grid_backward(grad_grid, align_corners), host_out)


# ----------------------------------------------------------------------------
# grid_sample
# ----------------------------------------------------------------------------


def _check_sample_args(input, grid, mode, padding_mode, align_corners):
    dims = check_input(input)
    check_ndim(
        grid,
        "grid",
        (dims + 2,),
        f"(N, {'D, ' if dims == 3 else ''}H, W, {dims}) to match the {input.ndim}-D input",
    )
    if grid.shape[grid.ndim - 1] != dims:
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
    input,
    grid,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    *,
    out=None,
    device=None,
):
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
        Where to run; None picks "cuda" when an array argument is a GPU array.

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
    given = {"input": input, "grid": grid}
    dev, backend, host_out, (input, grid) = _arrays(device, given)
    input, grid, dims, m, p, ac = _check_sample_args(input, grid, mode, padding_mode, align_corners)
    shape = tuple(input.shape[:2]) + tuple(grid.shape[1:-1])
    output, target = _output(out, shape, input.dtype, given, dev, backend)
    backend.run_sample(input, grid, None, output, m, p, ac)
    return _finish(output, host_out, target)


def grid_sample_backward(
    grad_output,
    input,
    grid,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    input_grad=True,
    grid_grad=True,
    *,
    device=None,
    deterministic=True,
):
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
        Where to run; None picks "cuda" when an array argument is a GPU array.
    deterministic : bool, default True
        GPU only (the CPU backward is always deterministic): True accumulates
        grad_input in 64-bit fixed point with integer atomics, bit-identical from run
        to run; False uses float atomics (faster, last bits vary between runs).

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
    dev, backend, host_out, (grad_output, input, grid) = _arrays(
        device, {"grad_output": grad_output, "input": input, "grid": grid}
    )
    input, grid, dims, m, p, ac = _check_sample_args(input, grid, mode, padding_mode, align_corners)
    input_grad = check_bool(input_grad, "input_grad")
    grid_grad = check_bool(grid_grad, "grid_grad")
    deterministic = check_bool(deterministic, "deterministic")
    same_dtype("input", input, grad_output=grad_output)
    check_shape(grad_output, "grad_output", tuple(input.shape[:2]) + tuple(grid.shape[1:-1]))
    gi, gg = backend.run_backward(
        grad_output, input, grid, None, m, p, ac, input_grad, grid_grad, deterministic
    )
    return _finish(gi, host_out), _finish(gg, host_out)


# ----------------------------------------------------------------------------
# warp_affine (fused affine_grid + grid_sample)
# ----------------------------------------------------------------------------


def _check_warp_args(input, theta, size, mode, padding_mode, align_corners):
    dims = check_input(input)
    tdims = check_theta(theta)
    if tdims != dims:
        want = "(N, 2, 3)" if dims == 2 else "(N, 3, 4)"
        raise ValueError(
            f"theta must have shape {want} for {input.ndim}-D input; got {theta.shape}"
        )
    check_batch(input.shape[0], "theta", theta, "input")
    same_dtype("input", input, theta=theta)
    if size is None:
        size = tuple(input.shape[2:])
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
    input,
    theta,
    size=None,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    *,
    out=None,
    device=None,
):
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
        Where to run; None picks "cuda" when an array argument is a GPU array.

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
    given = {"input": input, "theta": theta}
    dev, backend, host_out, (input, theta) = _arrays(device, given)
    input, theta, dims, size, m, p, ac = _check_warp_args(
        input, theta, size, mode, padding_mode, align_corners
    )
    shape = tuple(input.shape[:2]) + size
    output, target = _output(out, shape, input.dtype, given, dev, backend)
    backend.run_sample(input, None, theta, output, m, p, ac)
    return _finish(output, host_out, target)


def warp_affine_backward(
    grad_output,
    input,
    theta,
    size=None,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    input_grad=True,
    theta_grad=True,
    *,
    device=None,
    deterministic=True,
):
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
        Where to run; None picks "cuda" when an array argument is a GPU array.
    deterministic : bool, default True
        As in :func:`grid_sample_backward` (GPU only; grad_theta is always
        deterministic).

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
    dev, backend, host_out, (grad_output, input, theta) = _arrays(
        device, {"grad_output": grad_output, "input": input, "theta": theta}
    )
    input, theta, dims, size, m, p, ac = _check_warp_args(
        input, theta, size, mode, padding_mode, align_corners
    )
    input_grad = check_bool(input_grad, "input_grad")
    theta_grad = check_bool(theta_grad, "theta_grad")
    deterministic = check_bool(deterministic, "deterministic")
    same_dtype("input", input, grad_output=grad_output)
    check_shape(grad_output, "grad_output", tuple(input.shape[:2]) + size)
    gi, gt = backend.run_backward(
        grad_output, input, None, theta, m, p, ac, input_grad, theta_grad, deterministic
    )
    return _finish(gi, host_out), _finish(gt, host_out)


# ----------------------------------------------------------------------------
# thin-plate spline (tps_grid)
# ----------------------------------------------------------------------------


def _check_tps_args(source_points, target_points, size, align_corners, regularization):
    from ._tps import check_points, check_regularization

    n, k = check_points(source_points, target_points)
    same_dtype("target_points", target_points, source_points=source_points)
    align_corners = check_bool(align_corners, "align_corners")
    lam = check_regularization(regularization)
    size = check_size(size, "size", n, 2, "target_points")
    return n, k, size, align_corners, lam


def tps_grid(
    source_points,
    target_points,
    size,
    align_corners=False,
    regularization=0.0,
    *,
    out=None,
    device=None,
):
    """Sampling grid of a thin-plate spline through K control points per sample.

    The spline ``f: R² -> R²`` maps ``source_points[n, k]`` onto ``target_points[n, k]``
    and ``grid[n, h, w] = f(x_w, y_h)`` at :func:`affine_grid`'s base grid, so the grid
    plugs into :func:`grid_sample`: the output pixel at ``source_points[k]`` samples the
    input at ``target_points[k]`` (a localisation net regresses the targets). Targets
    equal to the sources give the identity grid, and targets that are an affine map θ
    of the sources give ``affine_grid(θ)`` (to float64 rounding).

    The spline (one per output coordinate x, y)::

        f(p) = a_0 + a_1 x + a_2 y + Σ_k w_k U(|p - s_k|),   U(r) = r² log(r²),  U(0) = 0

    with ``Σ_k w_k = Σ_k w_k x_k = Σ_k w_k y_k = 0``: the coefficients solve the
    (K + 3) × (K + 3) system ``[[U(|s_j - s_k|) + λ δ_jk, P], [Pᵀ, 0]]`` (rows of P:
    ``(1, x_k, y_k)``) with right-hand side ``[t; 0]``, once per sample, in float64 on
    the host (``numpy.linalg.solve``); each pixel is then evaluated in float64 on the
    chosen device (cost O(K) per pixel).

    Parameters
    ----------
    source_points : ndarray, (N, K, 2) or (K, 2)
        Control points in the *output* image, normalised (x, y) as the base grid of
        :func:`affine_grid` (-1 left/top, +1 right/bottom; see ``align_corners``);
        (K, 2) is shared by every sample. K >= 3, not all on one line.
    target_points : ndarray, (N, K, 2)
        Where each control point samples the *input*, normalised (x, y). Same dtype as
        source_points.
    size : sequence of int
        Output size (N, C, H, W); N must equal target_points' batch, C is ignored.
    align_corners : bool, default False
        As in :func:`affine_grid`: whether the base grid reaches ±1 at the centres (True)
        or the outer edges (False) of the corner pixels.
    regularization : float, default 0.0
        λ >= 0 added to the diagonal of the kernel matrix. 0 interpolates the targets
        exactly; λ > 0 gives a smoother spline that only approximates them (large λ
        tends to the least-squares affine fit), and then duplicate source points are
        allowed. Its scale is tied to ``U(r) = r² log(r²)`` (not r² log r, which is
        half of it) and to normalised coordinates.
    out : ndarray, optional
        Preallocated C-contiguous result of the right shape and dtype.
    device : {None, "cpu", "cuda"}
        Where to run; None picks "cuda" when an array argument is a GPU array (the
        small solve always runs on the host: the control points are copied there).

    Returns
    -------
    grid : ndarray, (N, H, W, 2)
        Normalised source points of each output pixel, last axis (x, y); the dtype of
        the control points.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes, align_corners not a bool, regularization not a real
        number, size not a sequence of ints.
    ValueError
        Wrong shapes (K differing between the two, batch mismatch, size of the wrong
        length or with entries < 1), K < 3, non-finite control points, negative or
        non-finite regularization, and degenerate source points: all collinear (or all
        equal), or duplicated when regularization is 0.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> src = np.array([[-1.0, -1], [1, -1], [-1, 1], [1, 1], [0, 0]])
    >>> tgt = src[None] * 0.5                       # zoom in 2x about the centre
    >>> grid = stn.tps_grid(src, tgt, (1, 1, 3, 3), align_corners=True)
    >>> np.allclose(grid[0, 0], [[-0.5, -0.5], [0, -0.5], [0.5, -0.5]])
    True
    """
    from . import _tps

    given = {"source_points": source_points, "target_points": target_points}
    dev, backend, host_out, (source_points, target_points) = _arrays(device, given)
    n, k, size, align_corners, lam = _check_tps_args(
        source_points, target_points, size, align_corners, regularization
    )
    coef, src = _tps.prepare(source_points, target_points, lam)
    shape = (n, size[2], size[3], 2)
    grid, target = _output(out, shape, target_points.dtype, given, dev, backend)
    backend.run_tps_grid(coef, src, grid, align_corners)
    return _finish(grid, host_out, target)


def tps_grid_backward(
    grad_grid,
    source_points,
    target_points,
    size,
    align_corners=False,
    regularization=0.0,
    *,
    device=None,
):
    """Gradient of :func:`tps_grid` with respect to the target points.

    The grid is linear in the targets, ``grid[p] = B[p] · L⁻¹[:, :K] · t`` with
    ``B[p] = (U(|p - s_1|), ..., U(|p - s_K|), 1, x, y)``, so the gradient is exact:
    ``dL/dt = L⁻¹[:, :K]ᵀ · G`` with ``G = Σ_p B[p]ᵀ ⊗ grad_grid[p]``. G is summed per
    output row in float64 and then over the rows in a fixed order (bit-identical for any
    thread count and on the GPU from run to run); the solve with L runs in float64 on
    the host. The gradient with respect to the source points is not provided.

    Parameters
    ----------
    grad_grid : ndarray, (N, H, W, 2)
        dL/dgrid.
    source_points, target_points, size, align_corners, regularization
        As given to :func:`tps_grid`. The result does not depend on the values of
        target_points (the grid is linear in them); they are only checked (shape,
        dtype, finite).
    device : {None, "cpu", "cuda"}
        Where to run; None picks "cuda" when an array argument is a GPU array.

    Returns
    -------
    grad_target_points : ndarray, (N, K, 2)
        dL/dtarget_points, in grad_grid's dtype.

    Raises
    ------
    TypeError, ValueError
        As :func:`tps_grid`, and grad_grid of the wrong shape or dtype.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> src = np.array([[-1.0, -1], [1, -1], [-1, 1], [1, 1], [0, 0]])
    >>> tgt = src[None].copy()
    >>> g = stn.tps_grid_backward(np.ones((1, 4, 4, 2)), src, tgt, (1, 1, 4, 4))
    >>> g.shape, bool(np.isclose(g.sum(), 2 * 16))   # each grid value sums the targets
    ((1, 5, 2), True)
    """
    from . import _tps

    given = {"grad_grid": grad_grid, "source_points": source_points, "target_points": target_points}
    dev, backend, host_out, (grad_grid, source_points, target_points) = _arrays(device, given)
    n, k, size, align_corners, lam = _check_tps_args(
        source_points, target_points, size, align_corners, regularization
    )
    same_dtype("target_points", target_points, grad_grid=grad_grid)
    check_shape(grad_grid, "grad_grid", (n, size[2], size[3], 2))
    src = _tps.source_array(source_points, lam)
    _tps.check_finite(_tps.host(target_points), "target_points")
    G = backend.run_tps_grid_backward(grad_grid, src, align_corners)
    grad = _tps.target_gradient(G, src, lam).astype(grad_grid.dtype)
    if host_out:
        return grad
    return backend.to_device(grad)
