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
# splat: forward warping, the adjoint of grid_sample w.r.t. its input (issue 5)
# ----------------------------------------------------------------------------

__all__ += ["splat", "splat_backward"]


def _check_splat_args(input, grid, mode, padding_mode, align_corners):
    """grid_sample's checks, plus: grid is on input's lattice (same spatial shape)."""
    checked = _check_sample_args(input, grid, mode, padding_mode, align_corners)
    spatial = tuple(input.shape[2:])
    if tuple(grid.shape[1:-1]) != spatial:
        dims = len(spatial)
        raise ValueError(
            f"grid must have shape {(input.shape[0],) + spatial + (dims,)} (one target point "
            f"per input pixel, on input's lattice); got {tuple(grid.shape)}"
        )
    return checked


def splat(
    input,
    grid,
    size=None,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    *,
    out=None,
    device=None,
    deterministic=True,
):
    """Forward warping: scatter every input pixel to its point of ``grid`` in the output.

    ``input[n, :, h, w]`` is added, with the interpolation weights of ``mode``, to the
    output pixels around the normalised point ``grid[n, h, w]`` of an output of spatial
    shape ``size``. This is exactly the adjoint of :func:`grid_sample` with respect to
    its input: for every x of shape (N, C, *size),
    ``<grid_sample(x, grid), input> == <x, splat(input, grid, size)>``, and
    ``splat(y, grid, size)`` equals ``grid_sample_backward(y, x, grid, ...)[0]``.
    PyTorch has no built-in for it. Uses: forward warping of a frame by an optical flow
    (frame interpolation: ``grid`` = the identity grid plus the flow in normalised
    units), rendering points or particles into an image, the transpose of a sampling
    operator in an inverse problem. For an average instead of a sum (normalised
    splatting), divide by ``splat(ones, grid, size)`` where it is positive.

    Conventions: grid's last axis is (x, y[, z]), normalised with respect to the
    *output* (-1 the left/top, +1 the right/bottom; ``align_corners`` as in
    :func:`grid_sample`). The weights are grid_sample's: ``zeros`` drops the taps that
    fall outside the output (their share is lost), ``border`` clips the point to the
    edge (mass piles up there), ``reflection`` folds it back inside. ``nearest`` sends
    each pixel whole to one output pixel (rounded half to even); ``bicubic`` spreads it
    over 4×4 pixels with Keys' weights (some negative).

    Parameters
    ----------
    input : ndarray, (N, C, H, W) or (N, C, D, H, W)
        Values to scatter, one per grid point, float32 or float64.
    grid : ndarray, (N, H, W, 2) or (N, D, H, W, 3)
        Target of each input pixel, normalised with respect to the output; same N and
        spatial shape as input, same dtype.
    size : sequence of int, optional
        Output spatial shape (H_out, W_out) or (D_out, H_out, W_out); None (default)
        keeps the input's spatial shape (same-size forward warping).
    mode : {"bilinear", "nearest", "bicubic"}
        Interpolation weights; "bilinear" is trilinear for 5-D input; "bicubic" 2-D only.
    padding_mode : {"zeros", "border", "reflection"}
        What happens to taps outside the output (see above).
    align_corners : bool, default False
        Whether ±1 are the centres (True) or outer edges (False) of the output's corner
        pixels.
    out : ndarray, optional
        Preallocated C-contiguous result of shape (N, C, *size); must not overlap input
        or grid. It is overwritten, not added to.
    device : {None, "cpu", "cuda"}
        Where to run; None picks "cuda" when an array argument is a GPU array.
    deterministic : bool, default True
        GPU only (the CPU is always deterministic): True accumulates in 64-bit fixed
        point with integer atomics, bit-identical from run to run; False uses float
        atomics (faster; the last bits vary between runs).

    Returns
    -------
    output : ndarray, (N, C, *size)
        input's dtype. On the CPU each output element receives its contributions in
        input raster order, summed in the output array: bit-identical for any number
        of threads. Extra memory: 16 bytes per input row on the CPU; on the GPU with
        ``deterministic=True``, an int64 accumulator of the output's size.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes, non-bool align_corners/deterministic, non-str modes,
        size not a sequence of ints.
    ValueError
        Wrong ndim, grid not on input's lattice (batch, spatial shape, last axis),
        size of the wrong length or with entries < 1, unknown mode or padding_mode,
        mode="bicubic" for 5-D input, a bad ``out``.

    See Also
    --------
    splat_backward : its gradients with respect to input and grid.

    Examples
    --------
    Move each pixel of a 1×3 row half a pixel to the right; the half of the last pixel
    that leaves the image is dropped (zeros padding):

    >>> import numpy as np, stn_numba as stn
    >>> x = np.array([[[[1.0, 2.0, 3.0]]]])                        # (N, C, H, W)
    >>> grid = np.array([[[[-0.5, 0.0], [0.5, 0.0], [1.5, 0.0]]]])  # (N, H, W, 2)
    >>> stn.splat(x, grid, align_corners=True)
    array([[[[0.5, 1.5, 2.5]]]])
    """
    given = {"input": input, "grid": grid}
    dev, backend, host_out, (input, grid) = _arrays(device, given)
    input, grid, dims, m, p, ac = _check_splat_args(input, grid, mode, padding_mode, align_corners)
    deterministic = check_bool(deterministic, "deterministic")
    size = tuple(input.shape[2:]) if size is None else as_int_tuple(size, "size", dims, 1)
    shape = tuple(input.shape[:2]) + size
    output, target = _output(out, shape, input.dtype, given, dev, backend)
    backend.run_splat(input, grid, output, m, p, ac, deterministic)
    return _finish(output, host_out, target)


def splat_backward(
    grad_output,
    input,
    grid,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    *,
    input_grad=True,
    grid_grad=True,
    deterministic=True,
    device=None,
):
    """Gradients of :func:`splat` with respect to input and grid.

    With ``L = <grad_output, splat(input, grid)> = <grid_sample(grad_output, grid), input>``
    (adjointness), the input gradient is the adjoint's adjoint,
    ``grad_input = grid_sample(grad_output, grid)``: each input pixel reads the output
    gradient at its target point. The grid gradient is that of grid_sample with the
    roles swapped: ``grid_sample_backward(input, grad_output, grid)``'s grad_grid, i.e.
    ``grad_grid[n, h, w] = Σ_c input[n, c, h, w] · ∂/∂grid[n, h, w] grid_sample(grad_output,
    grid)[n, c, h, w]``. Both are gathers (one thread per input pixel, no shared
    writes), so both are deterministic on every device. PyTorch has no built-in splat,
    so these are not available from its autograd either.

    Parameters
    ----------
    grad_output : ndarray, (N, C, *size)
        dL/doutput, the shape of the forward's output (its spatial shape is ``size``).
    input, grid, mode, padding_mode, align_corners
        As given to :func:`splat`.
    input_grad, grid_grad : bool, default True
        Which gradients to compute; one not asked for is not computed and comes back
        as None.
    deterministic : bool, default True
        Accepted for symmetry with the other backwards; both gradients are gathers and
        bit-identical from run to run either way.
    device : {None, "cpu", "cuda"}
        Where to run; None picks "cuda" when an array argument is a GPU array.

    Returns
    -------
    grad_input : ndarray or None
        dL/dinput, input's shape and dtype.
    grad_grid : ndarray or None
        dL/dgrid, grid's shape. Zero for mode="nearest", and zero where a coordinate
        was clipped by ``border``/``reflection`` padding (grid_sample's convention); at
        exact integer pixel coordinates, the one-sided derivative of §3 of the spec.

    Raises
    ------
    TypeError, ValueError
        As :func:`splat`; grad_output of the wrong ndim, batch, channels or dtype.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> x = np.array([[[[1.0, 2.0, 3.0]]]])
    >>> grid = np.array([[[[-0.5, 0.0], [0.5, 0.0], [1.5, 0.0]]]])
    >>> go = np.array([[[[1.0, 10.0, 100.0]]]])
    >>> gi, gg = stn.splat_backward(go, x, grid, align_corners=True)
    >>> gi                        # grad_output read at each target point
    array([[[[ 5.5, 55. , 50. ]]]])
    >>> gg[..., 0]                # d/dx of each target: input × slope (1 pixel per unit)
    array([[[   9.,  180., -300.]]])
    """
    dev, backend, host_out, (grad_output, input, grid) = _arrays(
        device, {"grad_output": grad_output, "input": input, "grid": grid}
    )
    input, grid, dims, m, p, ac = _check_splat_args(input, grid, mode, padding_mode, align_corners)
    input_grad = check_bool(input_grad, "input_grad")
    grid_grad = check_bool(grid_grad, "grid_grad")
    deterministic = check_bool(deterministic, "deterministic")
    check_input(grad_output, "grad_output")
    same_dtype("input", input, grad_output=grad_output)
    if grad_output.ndim != input.ndim or tuple(grad_output.shape[:2]) != tuple(input.shape[:2]):
        raise ValueError(
            f"grad_output must have shape {tuple(input.shape[:2])} + the output size "
            f"({dims} spatial axes); got {tuple(grad_output.shape)}"
        )
    if dev == "cuda":  # copy NumPy arrays to the device once for both gradients
        grad_output, input, grid = (backend.to_device(a) for a in (grad_output, input, grid))
    gi = gg = None
    if input_grad:
        gi = backend.empty(input.shape, input.dtype)
        backend.run_sample(grad_output, grid, None, gi, m, p, ac)
    if grid_grad:
        _, gg = backend.run_backward(
            input, grad_output, grid, None, m, p, ac, False, True, deterministic
        )
    return _finish(gi, host_out), _finish(gg, host_out)
