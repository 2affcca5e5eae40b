"""Public functions: validate, then dispatch to a driver.

Conventions shared by every function (PyTorch's):

=================== ==========================================================
shapes              input (N, C, H, W) or (N, C, D, H, W); grid (N, H, W, 2) or
                    (N, D, H, W, 3); θ (N, 2, 3) or (N, 3, 4)
grid last axis      (x, y) or (x, y, z): x indexes W, y indexes H, z indexes D
normalised coords   -1 is the left/top edge, +1 the right/bottom edge
align_corners=True  ±1 are the centres of the corner pixels: i = (g + 1)/2 · (S - 1)
align_corners=False ±1 are the outer edges of the corner pixels: i = ((g + 1)·S - 1)/2
layout=             "NCHW"/"NCDHW" (default) or channels-last "NHWC"/"NDHWC" images,
                    computed natively (no transposed copy); grids are unchanged
dtypes              float32 or float64, the same for every array; output = input's
                    (the sampling forwards also take uint8/uint16/int16 input,
                    computed in the grid's float dtype; output_dtype= converts)
=================== ==========================================================

Arrays of any strides and memory order are accepted; no argument is ever modified.

Batches: the warps (grid_sample, warp_affine, warp_perspective, warp_flow and their
backwards) broadcast the batch axis of the image and of the transform (grid, θ, H,
flow): one image (batch 1) with N transforms (augmentation, test-time transforms), or
N images with one transform (batch 1, or an unbatched θ (2, 3) / (3, 4) or H (3, 3) /
(4, 4)). The shared operand is not copied: each sample is one driver call into its slice of the
result, so the results equal the explicitly repeated batch's bit for bit. Backwards
return the shared operand's gradient in its own shape, summed over the samples in
sample order (``np.sum(axis=0)`` of the repeated batch's, bit for bit); on the GPU that
sum is taken on the host. Batches that differ and are both above 1 are a ValueError.
splat does not broadcast.

Devices: every function takes ``device=None | "cpu" | "cuda"``. None runs on the GPU
when an array argument exposes ``__cuda_array_interface__`` (Numba device arrays,
CuPy, CUDA torch tensors: zero copy, C-contiguous) and returns Numba device arrays;
NumPy arrays with ``device="cuda"`` are copied in and the results copied back.
NaN grid values sample as 0 (``fill_value`` with padding_mode="constant") with zero
gradient (every padding mode); ±inf and
values beyond ``2**40`` pixels are clamped there, so ``border`` reads the edge,
``reflection`` folds them inside, ``wrap`` reads pixel ±2**40 modulo the size and
``zeros`` gives 0.

The conventions in full (padding drawn per mode, nearest's ties, bicubic's taps,
precision, determinism): docs/conventions.md.
"""

from typing import NamedTuple

import numpy as np

from . import _cpu, _intfill
from ._layout import Layout
from ._modes import (
    AFFINE,
    BORDER,
    FLOW,
    GRID,
    PERSPECTIVE,
    ZEROS,
    mode_code,
    padding_code,
    spline_order,
)
from ._validate import (
    _is_sequence,
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

# ----------------------------------------------------------------------------
# Shared parameter texts (scipy.ndimage's docfiller): one source for the docstrings
# ----------------------------------------------------------------------------

_DOCS = {
    "device": """device : {None, "cpu", "cuda"}
        Where to run; None picks "cuda" when an array argument is a GPU array.""",
    "layout_forward": """layout : {"NCHW", "NHWC", "NCDHW", "NDHWC"}, default "NCHW"
        Memory layout of the images (input, out, output): channels first, or channels
        last, (N, H, W, C) / (N, D, H, W, C), computed natively with no transposed copy
        (see :func:`grid_sample`). "NCHW" also takes 5-D channels-first input.""",
    "layout_backward": """layout : {"NCHW", "NHWC", "NCDHW", "NDHWC"}, default "NCHW"
        Memory layout of the images (grad_output, input, grad_input): channels
        first, or channels last, (N, H, W, C) / (N, D, H, W, C), computed natively with
        no transposed copy
        (see :func:`grid_sample`). "NCHW" also takes 5-D channels-first input.""",
    "fill_value_backward": """fill_value : float or sequence of float, optional
        As given to the forward (``padding_mode="constant"``). grad_input is the one of
        zeros padding; the grid-like gradient adds ``fill_value`` times the gradient of
        the weight outside (0 where no tap is inside). There is no gradient with respect
        to fill_value. Integer ``input`` is a TypeError (no integer backward).""",
}


def _docfiller(fn):
    """Fill the ``%``-style placeholders of ``fn``'s docstring from :data:`_DOCS`."""
    fn.__doc__ = fn.__doc__ % _DOCS
    return fn


__all__ = [
    "affine_grid",
    "affine_grid_backward",
    "flow_grid",
    "flow_grid_backward",
    "grid_sample",
    "grid_sample_backward",
    "perspective_grid",
    "perspective_grid_backward",
    "splat",
    "splat_backward",
    "warp_affine",
    "warp_affine_backward",
    "warp_flow",
    "warp_flow_backward",
    "warp_perspective",
    "warp_perspective_backward",
]


def _backend(dev):
    """The module that runs on ``dev``: :mod:`._cpu` or :mod:`._cuda` (same interface)."""
    if dev == "cpu":
        return _cpu
    from . import _cuda

    return _cuda


def _arrays(device, names_values, layout=None, images=()):
    """Resolve the device and convert every array argument.

    Returns (device, backend, host_out, arrays): ``host_out`` is True when no
    argument lives on the GPU, so that NumPy in gives NumPy out. The arguments named
    in ``images`` are in the caller's ``layout`` and come back as the kernels'
    (N, C, ...) views of their memory (see :mod:`._layout`).
    """
    dev = check_device(device, names_values)
    host_out = not any(is_gpu_array(v) for v in names_values.values())
    arrays = []
    for k, v in names_values.items():
        if k in images:
            layout.check(v, k)
            arrays.append(layout.to_kernel(as_float_array(v, k)))
        else:
            arrays.append(as_float_array(v, k))
    return dev, _backend(dev), host_out, arrays


def _output(out, shape, dtype, args, dev, backend, layout=None):
    """(array the kernel writes, host array to copy it into afterwards or None).

    ``shape`` is in kernel order; with a ``layout``, the output is allocated (and
    ``out`` checked) in the caller's layout and returned as the kernels' view."""
    if layout is not None:
        arr, target = _output(out, layout.shape(shape), dtype, args, dev, backend)
        if dev == "cpu":
            target = arr  # what _finish returns: the array itself (``out`` when given)
        return layout.to_kernel(arr), target
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
        return result if target is None else target
    if target is not None:
        result.copy_to_host(target)
        return target
    return result.copy_to_host() if host_out else result


def _ones_like_plane(backend, input):
    """A one-channel image of ones with input's batch, spatial size and dtype."""
    ones = np.ones((input.shape[0], 1) + tuple(input.shape[2:]), input.dtype)
    return ones if backend is _cpu else backend.to_device(ones)


def _fill_split(backend, input, grid, theta, out_shape, m, ac, source=None):
    """(inside, outside) for a nonzero constant fill: per output point, the summed
    interpolation weight of the taps inside the input and of those outside it, as host
    arrays of shape (N, 1, ...) in kernel order (see :mod:`._intfill`)."""
    ones = _ones_like_plane(backend, input)
    shape = (input.shape[0], 1) + tuple(out_shape[2:])
    runs = []
    for pad in (ZEROS, BORDER):  # border: every tap reads 1; zeros: the inside ones only
        o = backend.empty(shape, input.dtype)
        backend.run_sample(ones, grid, theta, o, m, pad, ac, source=source)
        runs.append(_finish(o, True))
    inside, every = runs
    return inside, every - inside


def _sample(backend, pre, lay, input, grid, theta, output, m, p, ac, source=None):
    """The forward's backend run, plus the weights a nonzero constant fill needs."""
    backend.run_sample(input, grid, theta, output, m, p, ac, source=source)
    if pre.fill is not None:
        split = _fill_split(backend, input, grid, theta, output.shape, m, ac, source)
        pre.split = tuple(lay.from_kernel(a) for a in split)
        ct = (grid if grid is not None else theta).dtype  # the computation's float type
        pre.tau = _intfill.rounding_weight(input.shape[2:], ct)


def _backward(backend, fill, gout, input, grid, theta, m, p, ac, input_grad, point_grad, det):
    """The backward's backend run; a nonzero constant ``fill`` adds its share of the
    grid-like gradient: ``d(fill · outside) / d point``, zero where no tap is inside."""
    gi, gp = backend.run_backward(gout, input, grid, theta, m, p, ac, input_grad, point_grad, det)
    if fill is None or not point_grad:
        return gi, gp
    ones = _ones_like_plane(backend, input)
    g1 = np.einsum("nc...,c->n...", _finish(gout, True), fill)[:, None]
    inside = backend.empty(g1.shape, g1.dtype)
    backend.run_sample(ones, grid, theta, inside, m, ZEROS, ac)
    tau = _intfill.rounding_weight(input.shape[2:], (grid if grid is not None else theta).dtype)
    none_inside = np.abs(_finish(inside, True)) <= tau  # as the forward
    g1 = _to(backend, np.where(none_inside, 0, g1))  # the fill itself there: no gradient
    share = [
        _finish(backend.run_backward(g1, ones, grid, theta, m, pad, ac, False, True, det)[1], True)
        for pad in (BORDER, ZEROS)
    ]
    gp = _finish(gp, True) + (share[0] - share[1])
    return gi, _to(backend, gp)


def _to(backend, a):
    return a if backend is _cpu else backend.to_device(a)


# ----------------------------------------------------------------------------
# The sampling pipeline, written once: grid_sample and the warps differ only in where
# their points come from (a _Warp)
# ----------------------------------------------------------------------------


class _Checked(NamedTuple):
    """A warp's checked arguments: the output's spatial size and the kernel codes."""

    size: tuple
    mode: int
    padding: int
    align_corners: bool


class _Warp(NamedTuple):
    """Where the points of one sampling function come from.

    ``name`` is its points argument ("grid", "theta", "H", "flow"; its gradient flag is
    ``<name>_grad``). ``check(input, points, size, mode, padding_mode, align_corners)``
    validates and returns a :class:`_Checked`. ``forward(backend, input, points, c)`` and
    ``backward(...)`` give the backend's ``(grid, theta, source)``: the points as a grid,
    a matrix applied per pixel, or a flow (the backwards of the projective and flow warps
    differentiate a materialised grid). ``points_grad(backend, grad, input, points, c)``
    turns the gradient the backend returns into the points' gradient.
    """

    name: str
    check: object
    forward: object
    backward: object
    points_grad: object


def _run_forward(
    warp, input, points, size, mode, padding_mode, align_corners,
    layout, out, device, fill_value, output_dtype,
):  # fmt: skip
    """validate -> convert -> allocate -> sample -> finish, for every sampling forward."""
    lay = Layout(layout)
    pre = _intfill.Forward(
        input, points, padding_mode, fill_value, output_dtype, out, warp.name, lay.channel_axis
    )
    input, padding_mode, out = pre.input, pre.padding_mode, pre.out
    given = {"input": input, warp.name: points}
    dev, backend, host_out, (input, points) = _arrays(device, given, lay, ("input",))
    c = warp.check(input, points, size, mode, padding_mode, align_corners)
    shape = tuple(input.shape[:2]) + c.size
    output, target = _output(out, shape, input.dtype, given, dev, backend, lay)
    grid, theta, source = warp.forward(backend, input, points, c)
    m, p, ac = c.mode, c.padding, c.align_corners
    _sample(backend, pre, lay, input, grid, theta, output, m, p, ac, source)
    return pre.finish(_finish(lay.from_kernel(output), host_out, target))


def _run_backward(
    warp, grad_output, input, points, size, mode, padding_mode, align_corners,
    input_grad, points_grad, layout, device, deterministic, fill_value,
):  # fmt: skip
    """validate -> convert -> run the backward -> the points' gradient, for every
    sampling backward; returns (grad_input, grad_points), None for one not asked for."""
    lay = Layout(layout)
    input, padding_mode, fill = _intfill.backward(  # constant fill, integer input
        input,
        padding_mode,
        fill_value,
        {"grad_output": grad_output, "input": input, warp.name: points},
        lay.channel_axis,
    )
    given = {"grad_output": grad_output, "input": input, warp.name: points}
    dev, backend, host_out, (grad_output, input, points) = _arrays(
        device, given, lay, ("grad_output", "input")
    )
    c = warp.check(input, points, size, mode, padding_mode, align_corners)
    input_grad = check_bool(input_grad, "input_grad")
    points_grad = check_bool(points_grad, f"{warp.name}_grad")
    deterministic = check_bool(deterministic, "deterministic")
    same_dtype("input", input, grad_output=grad_output)
    lay.check_shape(grad_output, "grad_output", tuple(input.shape[:2]) + c.size)
    grid, theta, _ = warp.backward(backend, input, points, c)
    gi, gp = _backward(
        backend, fill, grad_output, input, grid, theta,
        c.mode, c.padding, c.align_corners, input_grad, points_grad, deterministic,
    )  # fmt: skip
    if gp is not None:
        gp = warp.points_grad(backend, gp, input, points, c)
    return _finish(lay.from_kernel(gi), host_out), _finish(gp, host_out)


def _as_grid(backend, input, points, c):
    return points, None, GRID


def _as_matrix(backend, input, points, c):
    return None, points, AFFINE


def _same(backend, grad, input, points, c):
    return grad


# ----------------------------------------------------------------------------
# Batch broadcasting of the warps: one image with N transforms, N images with one
# ----------------------------------------------------------------------------

#: Unbatched transform shapes each warp accepts for 4-D and 5-D input (as
#: theta_from_cv2 returns them).
_UNBATCHED = {"theta": {4: (2, 3), 5: (3, 4)}, "H": {4: (3, 3), 5: (4, 4)}, "grid": {}, "flow": {}}


def _shape_of(a):
    shape = getattr(a, "shape", None)
    return tuple(shape) if shape is not None else np.shape(a)


def _sliceable(a):
    """``a`` itself when it can be sliced along its batch axis (NumPy or GPU array)."""
    return a if hasattr(a, "shape") and hasattr(a, "__getitem__") else np.asarray(a)


def _with_batch_axis(points, name, input):
    """(points with a leading batch axis, whether one was added): an unbatched θ (2, 3)
    or (3, 4), or H (3, 3) or (4, 4), that fits the input's dimensionality becomes a batch-1 view
    (any other shape is left to validation)."""
    if _shape_of(points) == _UNBATCHED[name].get(len(_shape_of(input))):
        return _sliceable(points)[None], True
    return points, False


def _broadcast_batch(input, points, name):
    """The batch both broadcast to, or None when no broadcasting is needed (equal
    batches, or shapes that validation will refuse with its own message)."""
    sx, sp = _shape_of(input), _shape_of(points)
    if len(sx) not in (4, 5) or not _plausible(name, len(sx) - 2, sp):
        return None  # validation gives these shapes its own message
    nx, np_ = sx[0], sp[0]
    if nx == np_ or 1 not in (nx, np_):
        return None
    return 0 if 0 in (nx, np_) else max(nx, np_)  # NumPy's rule: 1 and 0 give 0


def _plausible(name, dims, sp):
    """Whether ``sp`` is a well-formed batched shape of ``name`` for ``dims``-D input."""
    if name == "theta":
        return sp[1:] == ((2, 3) if dims == 2 else (3, 4))
    if name == "H":
        return sp[1:] == ((3, 3) if dims == 2 else (4, 4))
    return len(sp) == dims + 2 and sp[-1] == dims


def _take(a, n, i):
    """Sample i of ``a``, whose batch is 1 (shared) or n."""
    return a if _shape_of(a)[0] == 1 else a[i : i + 1]


def _batch_sum(parts):
    """Σ over samples of per-sample gradients, in sample order (as ``np.sum(axis=0)`` of
    the stacked parts adds them), on the host; back on the GPU when they came from it."""
    if parts[0] is None:
        return None
    gpu = is_gpu_array(parts[0])
    acc = (parts[0].copy_to_host() if gpu else parts[0]).copy()
    for p in parts[1:]:
        acc += p.copy_to_host() if gpu else p
    return _gpu_backend().to_device(acc) if gpu else acc


def _zeros_of_one(g):
    """The gradient of a shared operand (batch 1) over no samples: zeros."""
    if g is None:
        return None
    zeros = np.zeros((1,) + tuple(g.shape[1:]), g.dtype)
    return _gpu_backend().to_device(zeros) if is_gpu_array(g) else zeros


def _batch_stack(parts):
    if parts[0] is None:
        return None
    if is_gpu_array(parts[0]):
        host = np.concatenate([p.copy_to_host() for p in parts])
        return _gpu_backend().to_device(host)
    return np.concatenate(parts)


def _gpu_backend():
    from . import _cuda

    return _cuda


def _forward_broadcast(fn, points_name):
    """Let ``fn`` (a warp: ``fn(input, points, ...)``) broadcast its batch axes: an
    unbatched transform is a batch of one, and a batch of one (image or transform) is
    shared by every sample of the other; one driver call per sample, writing into its
    slice of the result, so that no broadcast operand is copied."""
    import functools
    import inspect

    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def warp(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        a = bound.arguments
        a[points_name], _ = _with_batch_axis(a[points_name], points_name, a["input"])
        n = _broadcast_batch(a["input"], a[points_name], points_name)
        if n is None:
            return fn(*bound.args, **bound.kwargs)
        x, pts, out = _sliceable(a["input"]), _sliceable(a[points_name]), a.get("out")
        if n == 0:  # an empty batch: the empty result of the empty call
            a["input"], a[points_name] = x[:0], pts[:0]
            return fn(*bound.args, **bound.kwargs)
        result = out
        for i in range(n):
            a["input"], a[points_name] = _take(x, n, i), _take(pts, n, i)
            a["out"] = None if result is None else result[i : i + 1]
            r = fn(*bound.args, **bound.kwargs)
            if result is None:  # allocated from the first sample's result
                shape = (n,) + tuple(r.shape[1:])
                if is_gpu_array(r):
                    result = _gpu_backend().empty(shape, r.dtype)
                    result[0:1].copy_to_device(r)
                else:
                    result = np.empty(shape, r.dtype)
                    result[0:1] = r
        return result

    return warp


def _backward_broadcast(fn, points_name):
    """The backward of a broadcasting warp: per-sample gradients of a shared operand
    (batch 1, or an unbatched transform) are summed over the samples in sample order,
    so the result equals the explicitly repeated batch's gradients summed with
    ``np.sum(axis=0)``, bit for bit; an unbatched transform gets an unbatched
    gradient."""
    import functools
    import inspect

    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def backward(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        a = bound.arguments
        a[points_name], unbatched = _with_batch_axis(a[points_name], points_name, a["input"])
        n = _broadcast_batch(a["input"], a[points_name], points_name)
        if n is None:
            gi, gp = fn(*bound.args, **bound.kwargs)
            return gi, (gp[0] if unbatched and gp is not None else gp)
        gout = _sliceable(a["grad_output"])
        if _shape_of(gout)[:1] != (n,):
            raise ValueError(
                f"grad_output.shape[0] (batch) must be {n}, the batch of input "
                f"({_shape_of(a['input'])[0]}) broadcast with {points_name} "
                f"({_shape_of(a[points_name])[0]}); got {_shape_of(gout)}"
            )
        x, pts = _sliceable(a["input"]), _sliceable(a[points_name])
        if n == 0:  # no samples: the shared operand's gradient is zero
            a["grad_output"], a["input"], a[points_name] = gout[:0], x[:0], pts[:0]
            gi, gp = fn(*bound.args, **bound.kwargs)
            gi = _zeros_of_one(gi) if _shape_of(x)[0] == 1 else gi
            gp = _zeros_of_one(gp) if _shape_of(pts)[0] == 1 else gp
            return gi, (gp[0] if unbatched and gp is not None else gp)
        gis, gps = [], []
        for i in range(n):
            a["grad_output"] = gout[i : i + 1]
            a["input"], a[points_name] = _take(x, n, i), _take(pts, n, i)
            gi, gp = fn(*bound.args, **bound.kwargs)
            gis.append(gi)
            gps.append(gp)
        gi = _batch_sum(gis) if _shape_of(x)[0] == 1 else _batch_stack(gis)
        gp = _batch_sum(gps) if _shape_of(pts)[0] == 1 else _batch_stack(gps)
        return gi, (gp[0] if unbatched and gp is not None else gp)

    return backward


# ----------------------------------------------------------------------------
# affine_grid
# ----------------------------------------------------------------------------


@_docfiller
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
    %(device)s

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


@_docfiller
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
    %(device)s

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
    expected = (size[0],) + size[2:] + (dims,)
    if tuple(grad_grid.shape) != expected:
        image = "(N, C, H, W)" if dims == 2 else "(N, C, D, H, W)"
        spatial = tuple(grad_grid.shape[1:-1]) != size[2:]
        raise ValueError(
            f"grad_grid must have shape {expected} for size={size}; got "
            f"{tuple(grad_grid.shape)}"
            + (
                f". size is the image's {image}, as given to affine_grid (not the grid's shape)"
                if spatial
                else ""
            )
        )
    return _finish(backend.run_affine_grid_backward(grad_grid, align_corners), host_out)


# ----------------------------------------------------------------------------
# grid_sample
# ----------------------------------------------------------------------------


def _check_grid_sample(input, grid, size, mode, padding_mode, align_corners):
    return _check_sample_args(input, grid, mode, padding_mode, align_corners)


def _check_sample_args(input, grid, mode, padding_mode, align_corners, broadcast=True):
    """grid_sample's (and splat's) checks; the size is the grid's."""
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
    check_batch(input.shape[0], "grid", grid, "input", broadcast)
    same_dtype("input", input, grid=grid)
    return _Checked(
        tuple(grid.shape[1:-1]),
        mode_code(mode, dims),
        padding_code(padding_mode),
        check_bool(align_corners, "align_corners"),
    )


_GRID_SAMPLE = _Warp("grid", _check_grid_sample, _as_grid, _as_grid, _same)


@_docfiller
def grid_sample(
    input,
    grid,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    *,
    layout="NCHW",
    out=None,
    device=None,
    fill_value=None,
    output_dtype=None,
):
    """Sample ``input`` at the normalised points of ``grid`` (PyTorch's ``F.grid_sample``).

    Parameters
    ----------
    input : ndarray, (N, C, H_in, W_in) or (N, C, D_in, H_in, W_in)
        Images or volumes, float32 or float64, or uint8, uint16, int16 (see Notes).
    grid : ndarray, (N, H, W, 2) or (N, D, H, W, 3)
        Normalised source points, last axis (x, y[, z]); same dtype as input. A batch
        of 1 (of input or of grid) is shared by every sample of the other (see
        "Batches" in :mod:`stn_numba.functional`).
    mode : {"bilinear", "nearest", "bicubic", "bspline2", "bspline3", "bspline4", "bspline5"}
        Interpolation; "bilinear" is trilinear on 5-D input; "bicubic" is 2-D only
        (Keys, A = -0.75, padding applied to each of the 4×4 taps). "nearest" rounds
        half to even. "bsplineK" is the B-spline of order K through the samples (the
        input is prefiltered, as scipy.ndimage's ``order=K``), 2-D and 3-D, with
        gradients; "zeros" padding is the spline of the input extended by zeros
        (docs/conventions.md, "Interpolation").
    padding_mode : {"zeros", "border", "reflection", "wrap", "constant"}
        Values outside the input: 0, the edge, the input reflected, the input repeated
        with a period of its size in pixels (whatever ``align_corners``; every tap index
        is taken modulo the size; not in PyTorch), or ``fill_value``.
    align_corners : bool, default False
        Whether ±1 are the centres (True) or outer edges (False) of the corner pixels.
    out : ndarray, optional
        Preallocated C-contiguous result; must not overlap input or grid.
    %(layout_forward)s
    %(device)s
    fill_value : float or sequence of float, optional
        With ``padding_mode="constant"`` only (else a ValueError): the value of every
        point outside the input, a number or one per channel (length C); default 0.0.
    output_dtype : {None, float32, float64, uint8, uint16, int16}, optional
        The result's dtype; None: the compute dtype (see Notes). Integer results are
        rounded half to even (``np.rint``) and saturated to the type's range (NaN -> 0).

    Returns
    -------
    output : ndarray, (N, C, H, W) or (N, C, D, H, W)
        The compute dtype (input's, or grid's for integer input), or output_dtype.

    Notes
    -----
    Integer images: uint8, uint16 and int16 ``input`` are converted to the float dtype
    of ``grid`` (float32 or float64) at the boundary (one input-sized temporary) and
    computed in it; the result has that dtype unless ``output_dtype`` says otherwise
    (``out`` must then have the output dtype). Integer GPU arrays are refused (convert
    them on the device); NumPy integer input with ``device="cuda"`` is converted on the
    host. Other integer dtypes (int32, int64, ...) are a TypeError.

    Layouts: with ``layout="NHWC"`` (``"NDHWC"``) the images — input, out, the
    output, and in the backwards grad_output and grad_input — are (N, H, W, C)
    ((N, D, H, W, C)); grids, θ, H and flows are the same in every layout. The kernels
    index the channels-last memory directly (a permuted view, no transposed copy) and
    give the same numbers as channels-first, bit for bit; results are C-contiguous in
    the layout asked for. A channels-last GPU array must be C-contiguous as such.

    Constant fill: ``padding_mode="constant"`` is zeros padding plus ``fill_value``
    times the summed weight of the taps outside the input (found by sampling a
    one-channel image of ones). Every tap outside the input reads ``fill_value``;
    a point whose taps are all inside does not depend on the fill, however large (an
    identity warp returns what it returns with fill 0), and a point with no tap inside,
    NaN points included, is ``fill_value`` exactly. A summed tap weight below 4 · size ·
    eps(float64) counts as 0: the rounding of a coordinate on the edge makes such
    weights (an identity grid's first column lies ~1e-16 px outside). A nonzero
    fill needs NumPy arrays (the fill is added on the host; ``device="cuda"`` with NumPy
    arrays is fine).

    Raises
    ------
    TypeError
        Unsupported or mixed dtypes, non-bool align_corners, non-str modes, a bad
        output_dtype, a non-numeric fill_value, a nonzero fill with GPU arrays.
    ValueError
        Wrong ndim, batch mismatch, grid's last axis, unknown mode or padding_mode,
        fill_value of the wrong length, non-finite or without padding_mode="constant".

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> x = np.arange(4.0).reshape(1, 1, 2, 2)
    >>> grid = np.array([[[[0.0, 0.0]]]])            # the centre of the image
    >>> stn.grid_sample(x, grid, align_corners=True)
    array([[[[1.5]]]])
    >>> img = np.array([[[[10, 20], [30, 40]]]], dtype=np.uint8)
    >>> far = np.array([[[[0.0, 0.0], [5.0, 5.0]]]])      # the centre, and far outside
    >>> stn.grid_sample(img, far, padding_mode="constant", fill_value=255,
    ...                 output_dtype=np.uint8)
    array([[[[ 25, 255]]]], dtype=uint8)
    """
    return _run_forward(
        _GRID_SAMPLE, input, grid, None, mode, padding_mode, align_corners,
        layout, out, device, fill_value, output_dtype,
    )  # fmt: skip


@_docfiller
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
    layout="NCHW",
    device=None,
    deterministic=True,
    fill_value=None,
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
    %(layout_backward)s
    %(device)s
    deterministic : bool, default True
        GPU only (the CPU backward is always deterministic): True accumulates
        grad_input in 64-bit fixed point with integer atomics, bit-identical from run
        to run; False uses float atomics (faster, last bits vary between runs).

    %(fill_value_backward)s
    Returns
    -------
    grad_input : ndarray or None
        dL/dinput, input's shape and dtype. Deterministic: bit-identical for any
        number of threads and from run to run.
    grad_grid : ndarray or None
        dL/dgrid, grid's shape. Zero for mode="nearest"; zero where a coordinate was
        clipped by ``border``/``reflection`` padding (PyTorch's convention).

    Notes
    -----
    Memory besides the returned gradients: 16 bytes per output row on the CPU (the
    input rows each output row can touch) and, per running thread, scratch for one
    output row's points (72 bytes per output column in 2-D, 104 in 3-D); on the GPU
    with ``deterministic=True``, an int64 accumulator of input's size and one float64
    per row of grad_output.

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
    return _run_backward(
        _GRID_SAMPLE, grad_output, input, grid, None, mode, padding_mode, align_corners,
        input_grad, grid_grad, layout, device, deterministic, fill_value,
    )  # fmt: skip


# ----------------------------------------------------------------------------
# Projective transformations (homographies)
# ----------------------------------------------------------------------------


def _check_homography(H, dims=None, given=None):
    """The spatial dims of the homographies H: 2 for (N, 3, 3), 3 for (N, 4, 4); ``dims``
    (when not None) is what the input or size asks for, ``given`` names that."""
    ok = H.ndim == 3 and tuple(H.shape[1:]) in ((3, 3), (4, 4))
    if not ok or (dims is not None and H.shape[1] - 1 != dims):
        with_ = f" with {given} ({dims}-D)" if ok and given else ""
        raise ValueError(
            f"H must have shape (N, 3, 3) for 2-D or (N, 4, 4) for 3-D; got {tuple(H.shape)}{with_}"
        )
    return H.shape[1] - 1


def _homography_dims(H, size):
    """The spatial dims of perspective_grid's H, checked against the length of ``size``
    (4 or 5 entries; any other size is left to check_size)."""
    if _is_sequence(size) and len(size) in (4, 5):
        return _check_homography(H, len(size) - 2, f"a {len(size)}-entry size")
    return _check_homography(H)


@_docfiller
def perspective_grid(H, size, align_corners=False, *, out=None, device=None):
    """Sampling grid of the homographies ``H``: the projective twin of :func:`affine_grid`.

    Parameters
    ----------
    H : ndarray, (N, 3, 3) or (N, 4, 4)
        Homographies from output to input normalised coordinates. 2-D, acting on
        (x, y, 1): ``(X, Y, Z) = H[n] @ (x_w, y_h, 1)`` and the grid value is
        ``(X / Z, Y / Z)``; an affine θ is ``H = [[θ], [0, 0, 1]]``. 3-D (kornia's
        ``warp_perspective3d``), acting on (x, y, z, 1): ``(X, Y, Z, W) = H[n] @ (x_w,
        y_h, z_d, 1)`` and the grid value is ``(X / W, Y / W, Z / W)``; an affine θ is
        ``H = [[θ], [0, 0, 0, 1]]``. H and ``c·H`` (c > 0) are the same map.
    size : sequence of int
        Output size (N, C, H, W) for (N, 3, 3) H, (N, C, D, H, W) for (N, 4, 4); N must
        equal H's batch, C is ignored.
    align_corners : bool, default False
        As in :func:`affine_grid` (the base grid (x_w, y_h[, z_d]) is affine_grid's).
    out : ndarray, optional
        Preallocated C-contiguous result of shape (N, H, W, 2) or (N, D, H, W, 3) and
        H's dtype.
    %(device)s

    Returns
    -------
    grid : ndarray, (N, H, W, 2) or (N, D, H, W, 3)
        Last axis (x, y[, z]), normalised, H's dtype, computed in H's dtype. Where
        the homogeneous coordinate (Z in 2-D, W in 3-D) is ``<= 1e-12`` (the point is
        at infinity or behind the camera) the grid value is NaN: :func:`grid_sample`
        samples NaN points as 0 in every padding mode, with zero gradient, so such
        regions come out 0 and finite. Normalise H so that it is positive where the
        image should be seen (e.g. ``H[n, 2, 2] > 0``, ``H[n, 3, 3] > 0``): ``-H`` is the
        same projective map but has every point behind the camera.

    Raises
    ------
    TypeError
        H not float32/float64, align_corners not a bool, size not a sequence of ints.
    ValueError
        H neither (N, 3, 3) nor (N, 4, 4), or not the one that size's length asks for;
        size of the wrong length, batch, or with entries < 1.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> H = np.array([[[1.0, 0, 0], [0, 1, 0], [0.5, 0, 1]]])  # x-dependent foreshortening
    >>> stn.perspective_grid(H, (1, 1, 1, 3), align_corners=True)[0, 0]
    array([[-2.        ,  0.        ],
           [ 0.        ,  0.        ],
           [ 0.66666667,  0.        ]])
    >>> H3 = np.eye(4)[None]
    >>> H3[0, 3, 0] = 0.5                                   # the same, on a volume
    >>> stn.perspective_grid(H3, (1, 1, 1, 1, 3), align_corners=True)[0, 0, 0]
    array([[-2.        ,  0.        ,  0.        ],
           [ 0.        ,  0.        ,  0.        ],
           [ 0.66666667,  0.        ,  0.        ]])
    """
    given = {"H": H}
    dev, backend, host_out, (H,) = _arrays(device, given)
    dims = _homography_dims(H, size)
    align_corners = check_bool(align_corners, "align_corners")
    size = check_size(size, "size", H.shape[0], dims, "H")
    shape = (size[0],) + size[2:] + (dims,)
    grid, target = _output(out, shape, H.dtype, given, dev, backend)
    backend.run_perspective_grid(H, grid, align_corners)
    return _finish(grid, host_out, target)


@_docfiller
def perspective_grid_backward(grad_grid, H, size, align_corners=False, *, device=None):
    """Gradient of :func:`perspective_grid` with respect to H.

    Parameters
    ----------
    grad_grid : ndarray, (N, H, W, 2) or (N, D, H, W, 3)
        dL/dgrid.
    H, size, align_corners
        As given to the forward (the gradient depends on H, unlike affine_grid's on θ).
    %(device)s

    Returns
    -------
    grad_H : ndarray, (N, 3, 3) or (N, 4, 4)
        With b = (x_w, y_h, 1) and (gx, gy) = (X, Y)/Z: ``dL/dH[0] = Σ ggx·b/Z``,
        ``dL/dH[1] = Σ ggy·b/Z``, ``dL/dH[2] = -Σ (ggx·gx + ggy·gy)·b/Z``; in 3-D, with
        b = (x_w, y_h, z_d, 1) and (gx, gy, gz) = (X, Y, Z)/W, rows 0-2 are
        ``Σ gg·b/W`` per axis and ``dL/dH[3] = -Σ (ggx·gx + ggy·gy + ggz·gz)·b/W``.
        Points whose homogeneous coordinate is <= 1e-12 (NaN in the grid) or with a
        non-finite grid value (inf or NaN in H) contribute 0. Summed per row in
        float64, rows reduced in a fixed order: bit-identical for any thread count.

    Raises
    ------
    TypeError, ValueError
        As :func:`perspective_grid`; grad_grid whose shape does not match ``size``.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> H = np.eye(3)[None]
    >>> stn.perspective_grid_backward(np.ones((1, 1, 1, 2)), H, (1, 1, 1, 1))
    array([[[0., 0., 1.],
            [0., 0., 1.],
            [0., 0., 0.]]])
    """
    dev, backend, host_out, (grad_grid, H) = _arrays(device, {"grad_grid": grad_grid, "H": H})
    dims = _homography_dims(H, size)
    align_corners = check_bool(align_corners, "align_corners")
    same_dtype("H", H, grad_grid=grad_grid)
    size = check_size(size, "size", H.shape[0], dims, "H")
    check_shape(grad_grid, "grad_grid", (size[0],) + size[2:] + (dims,))
    return _finish(backend.run_perspective_grid_backward(grad_grid, H, align_corners), host_out)


def _check_perspective_args(input, H, size, mode, padding_mode, align_corners):
    dims = check_input(input)
    _check_homography(H, dims, f"{input.ndim}-D input")
    check_batch(input.shape[0], "H", H, "input", True)
    same_dtype("input", input, H=H)
    size = tuple(input.shape[2:]) if size is None else as_int_tuple(size, "size", dims, 1)
    return _Checked(
        size,
        mode_code(mode, dims),
        padding_code(padding_mode),
        check_bool(align_corners, "align_corners"),
    )


def _perspective_grid(backend, input, H, c):
    """The homography's grid, materialised (the backward, and 3-D forwards)."""
    grid = backend.empty((input.shape[0],) + c.size + (len(c.size),), H.dtype)
    backend.run_perspective_grid(H, grid, c.align_corners)
    return grid, None, GRID


def _perspective_points(backend, input, H, c):
    """2-D forward: the homography applied per pixel; 3-D: a materialised grid."""
    if len(c.size) == 2:
        return None, H, PERSPECTIVE
    return _perspective_grid(backend, input, H, c)


def _perspective_grad(backend, gg, input, H, c):
    return backend.run_perspective_grid_backward(gg, H, c.align_corners)


_WARP_PERSPECTIVE = _Warp(
    "H", _check_perspective_args, _perspective_points, _perspective_grid, _perspective_grad
)


@_docfiller
def warp_perspective(
    input,
    H,
    size=None,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    *,
    layout="NCHW",
    out=None,
    device=None,
    fill_value=None,
    output_dtype=None,
):
    """Warp ``input`` by the homographies H: ``grid_sample(input, perspective_grid(H))``.

    Parameters
    ----------
    input : ndarray, (N, C, H_in, W_in) or (N, C, D_in, H_in, W_in)
        Images or volumes, float32 or float64, or uint8, uint16, int16 (see
        :func:`grid_sample`).
    H : ndarray, (N, 3, 3) or (3, 3) for images, (N, 4, 4) or (4, 4) for volumes
        Homographies from output to input normalised coordinates (see
        :func:`perspective_grid`), same dtype as input. A batch of 1 (of input or of
        H) or an unbatched (3, 3) / (4, 4) is shared by every sample of the other (see
        "Batches" in :mod:`stn_numba.functional`).
    size : sequence of int, optional
        Output spatial shape (H, W) or (D, H, W); None keeps the input's.
    mode, padding_mode, align_corners
        As in :func:`grid_sample`.
    out : ndarray, optional
        Preallocated C-contiguous result; must not overlap input or H.
    %(layout_forward)s
    %(device)s
    fill_value, output_dtype : optional
        As in :func:`grid_sample` (``padding_mode="constant"``; integer results).

    Returns
    -------
    output : ndarray, ``(N, C, *size)``
        The compute dtype (input's, or H's for integer input), or
        output_dtype. Output pixels whose point is at infinity or behind the camera
        (homogeneous coordinate <= 1e-12) are 0 in every padding mode; the output is
        finite wherever the input is.

    Notes
    -----
    2-D is fused like :func:`warp_affine`: each output pixel's point is computed from H
    inside the sampler (the arithmetic of :func:`perspective_grid`), so no grid array
    is made. 3-D (kornia's ``warp_perspective3d``) materialises one grid: it is
    ``grid_sample(input, perspective_grid(H, size))``, with an (N, D, H, W, 3) grid of
    H's dtype as extra memory. A pixel-unit homography (OpenCV's ``warpPerspective``
    with ``WARP_INVERSE_MAP``) becomes a normalised one as ``U_in⁻¹·M·U_out`` with
    the pixel <-> normalised maps of the README's Conventions.

    Raises
    ------
    TypeError, ValueError
        As :func:`grid_sample` and :func:`perspective_grid`; H that does not match the
        input's dimensionality ((N, 3, 3) for 4-D input, (N, 4, 4) for 5-D).

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> x = np.arange(6.0).reshape(1, 1, 2, 3)
    >>> flip = np.array([[[-1.0, 0, 0], [0, 1, 0], [0, 0, 1]]])  # mirror left-right
    >>> stn.warp_perspective(x, flip)[0, 0]
    array([[2., 1., 0.],
           [5., 4., 3.]])
    >>> v = np.arange(6.0).reshape(1, 1, 1, 2, 3)                 # a volume, D = 1
    >>> stn.warp_perspective(v, np.diag([-1.0, 1, 1, 1]))[0, 0, 0]
    array([[2., 1., 0.],
           [5., 4., 3.]])
    """
    return _run_forward(
        _WARP_PERSPECTIVE, input, H, size, mode, padding_mode, align_corners,
        layout, out, device, fill_value, output_dtype,
    )  # fmt: skip


@_docfiller
def warp_perspective_backward(
    grad_output,
    input,
    H,
    size=None,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    input_grad=True,
    H_grad=True,
    *,
    layout="NCHW",
    device=None,
    deterministic=True,
    fill_value=None,
):
    """Gradients of :func:`warp_perspective` with respect to input and H.

    Parameters
    ----------
    grad_output : ndarray, ``(N, C, *size)``
        dL/doutput.
    input, H, size, mode, padding_mode, align_corners
        As given to :func:`warp_perspective`.
    input_grad, H_grad : bool, default True
        Which gradients to compute; one not asked for comes back as None.
    %(layout_backward)s
    %(device)s
    deterministic : bool, default True
        As in :func:`grid_sample_backward` (GPU only; grad_H is always deterministic).

    %(fill_value_backward)s
    Returns
    -------
    grad_input : ndarray or None
        dL/dinput; bit-identical for any number of threads.
    grad_H : ndarray or None
        dL/dH, (N, 3, 3) or (N, 4, 4): the grid gradient of
        :func:`grid_sample_backward` chained through :func:`perspective_grid_backward`.
        Extra memory: two grids, (N, H, W, 2) or (N, D, H, W, 3).

    Raises
    ------
    TypeError, ValueError
        As :func:`warp_perspective`, and grad_output of the wrong shape or dtype.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> x = np.random.default_rng(0).random((1, 1, 4, 4))
    >>> gi, gH = stn.warp_perspective_backward(np.ones((1, 1, 4, 4)), x, np.eye(3)[None])
    >>> gi.shape, gH.shape
    ((1, 1, 4, 4), (1, 3, 3))
    >>> v = np.random.default_rng(0).random((1, 1, 2, 3, 4))      # a volume
    >>> gi, gH = stn.warp_perspective_backward(np.ones((1, 1, 2, 3, 4)), v, np.eye(4))
    >>> gi.shape, gH.shape
    ((1, 1, 2, 3, 4), (4, 4))
    """
    return _run_backward(
        _WARP_PERSPECTIVE, grad_output, input, H, size, mode, padding_mode, align_corners,
        input_grad, H_grad, layout, device, deterministic, fill_value,
    )  # fmt: skip


# ----------------------------------------------------------------------------
# Dense displacement (optical flow)
# ----------------------------------------------------------------------------


def _check_flow(flow, input_size, name="flow"):
    check_ndim(flow, name, (4, 5), "(N, H, W, 2) or (N, D, H, W, 3)")
    dims = flow.ndim - 2
    if flow.shape[flow.ndim - 1] != dims:
        raise ValueError(
            f"{name}'s last axis must have size {dims} ((dx, dy{', dz' if dims == 3 else ''})) "
            f"for a {flow.ndim}-D flow; got shape {flow.shape}"
        )
    if input_size is None:
        return tuple(flow.shape[1:-1])
    return as_int_tuple(input_size, "input_size", dims, 1)


def _flow_scales(input_size, align_corners):
    """d grid / d flow per axis, in the grid's (x, y[, z]) order."""
    from ._coords import normalize

    return tuple(float(normalize(0.0, s, align_corners)[1]) for s in reversed(input_size))


@_docfiller
def flow_grid(flow, input_size=None, align_corners=False, *, out=None, device=None):
    """Sampling grid of a dense displacement field (optical-flow convention).

    Output pixel (h, w) reads the input at pixel (w + flow[n, h, w, 0], h + flow[n, h, w, 1]):
    ``output(p) = input(p + flow(p))``. With the flow from frame 1 to frame 2,
    ``warp_flow(frame2, flow)`` is frame 1 (backward warping), as ``cv2.remap`` with
    ``map = identity + flow``.

    Parameters
    ----------
    flow : ndarray, (N, H, W, 2) or (N, D, H, W, 3)
        Displacements in input pixels, last axis (dx, dy[, dz]) — x along W, y along H,
        z along D — on the output lattice (the output has flow's spatial shape).
    input_size : sequence of int, optional
        The input's spatial shape (H_in, W_in) or (D_in, H_in, W_in) used to normalise;
        None: flow's spatial shape.
    align_corners : bool, default False
        The normalisation convention of the returned grid. grid_sample with
        the same value reads exactly pixel p + flow(p) either way; it only changes how
        ``reflection`` padding folds and that, with True, an axis of size 1 maps every
        point onto its one pixel (its grid value is then 0 and its gradient 0).
    out : ndarray, optional
        Preallocated C-contiguous result of flow's shape and dtype.
    %(device)s

    Returns
    -------
    grid : ndarray, flow's shape
        Normalised grid, last axis (x, y[, z]), flow's dtype (computed in float64).

    Raises
    ------
    TypeError
        flow not float32/float64, align_corners not a bool, input_size not ints.
    ValueError
        flow not (N, H, W, 2) / (N, D, H, W, 3); input_size of the wrong length or < 1.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> flow = np.zeros((1, 1, 2, 2)); flow[..., 0] = 1.0     # read one pixel to the right
    >>> stn.flow_grid(flow, align_corners=True)[0, 0]
    array([[1., 0.],
           [3., 0.]])
    """
    given = {"flow": flow}
    dev, backend, host_out, (flow,) = _arrays(device, given)
    input_size = _check_flow(flow, input_size)
    align_corners = check_bool(align_corners, "align_corners")
    grid, target = _output(out, flow.shape, flow.dtype, given, dev, backend)
    backend.run_flow_grid(flow, grid, input_size, align_corners)
    return _finish(grid, host_out, target)


@_docfiller
def flow_grid_backward(grad_grid, input_size, align_corners=False, *, device=None):
    """Gradient of :func:`flow_grid` with respect to the flow.

    Parameters
    ----------
    grad_grid : ndarray, (N, H, W, 2) or (N, D, H, W, 3)
        dL/dgrid (flow's shape).
    input_size : sequence of int or None
        As given to the forward (None: grad_grid's spatial shape).
    align_corners : bool, default False
        As in the forward.
    %(device)s

    Returns
    -------
    grad_flow : ndarray, grad_grid's shape and dtype
        ``grad_grid`` times d grid / d flow, a constant per axis: 2 / S_in
        (align_corners False) or 2 / (S_in - 1) (True; 0 when S_in == 1).

    Raises
    ------
    TypeError, ValueError
        As :func:`flow_grid`.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> stn.flow_grid_backward(np.ones((1, 1, 1, 2)), (4, 8))[0, 0, 0]
    array([0.25, 0.5 ])
    """
    dev, backend, host_out, (grad_grid,) = _arrays(device, {"grad_grid": grad_grid})
    input_size = _check_flow(grad_grid, input_size, "grad_grid")
    align_corners = check_bool(align_corners, "align_corners")
    scales = _flow_scales(input_size, align_corners)
    return _finish(backend.run_flow_grid_backward(grad_grid, scales), host_out)


def _check_warp_flow_args(input, flow, size, mode, padding_mode, align_corners):
    """The flow gives the output size (``size`` is unused: the pipeline passes it)."""
    dims = check_input(input)
    check_ndim(
        flow,
        "flow",
        (dims + 2,),
        f"(N, {'D, ' if dims == 3 else ''}H, W, {dims}) to match the {input.ndim}-D input",
    )
    _check_flow(flow, None)
    check_batch(input.shape[0], "flow", flow, "input", True)
    same_dtype("input", input, flow=flow)
    return _Checked(
        tuple(flow.shape[1:-1]),
        mode_code(mode, dims),
        padding_code(padding_mode),
        check_bool(align_corners, "align_corners"),
    )


def _flow_points(backend, input, flow, c):
    return flow, None, FLOW


def _flow_as_grid(backend, input, flow, c):
    """The flow's grid, materialised (the backward differentiates it)."""
    grid = backend.empty(flow.shape, flow.dtype)
    backend.run_flow_grid(flow, grid, tuple(input.shape[2:]), c.align_corners)
    return grid, None, GRID


def _flow_grad(backend, gg, input, flow, c):
    scales = _flow_scales(tuple(input.shape[2:]), c.align_corners)
    return backend.run_flow_grid_backward(gg, scales)


_WARP_FLOW = _Warp("flow", _check_warp_flow_args, _flow_points, _flow_as_grid, _flow_grad)


@_docfiller
def warp_flow(
    input,
    flow,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    *,
    layout="NCHW",
    out=None,
    device=None,
    fill_value=None,
    output_dtype=None,
):
    """Warp ``input`` by a dense displacement field: ``output(p) = input(p + flow(p))``.

    ``grid_sample(input, flow_grid(flow, input.shape[2:]))``; the conventions are
    :func:`flow_grid`'s (flow in input pixels, last axis (dx, dy[, dz])).

    Parameters
    ----------
    input : ndarray, (N, C, H_in, W_in) or (N, C, D_in, H_in, W_in)
        Images or volumes, float32 or float64, or uint8, uint16, int16 (see :func:`grid_sample`).
    flow : ndarray, (N, H, W, 2) or (N, D, H, W, 3)
        Displacements in input pixels on the output lattice; same dtype as input. A
        batch of 1 (of input or of flow) is shared by every sample of the other (see
        "Batches" in :mod:`stn_numba.functional`).
    mode, padding_mode, align_corners
        As in :func:`grid_sample` (align_corners matters only for ``reflection``
        padding and for input axes of size 1; see :func:`flow_grid`).
    out : ndarray, optional
        Preallocated C-contiguous (N, C, H, W) result; must not overlap input or flow.
    %(layout_forward)s
    %(device)s
    fill_value, output_dtype : optional
        As in :func:`grid_sample` (``padding_mode="constant"``; integer results).

    Returns
    -------
    output : ndarray, (N, C, H, W) (flow's spatial shape)
        The compute dtype (input's, or flow's for integer input), or output_dtype.
        Fused: each pixel's point is computed from the flow inside the sampler (the
        arithmetic of :func:`flow_grid`); no grid array is made.

    Raises
    ------
    TypeError, ValueError
        As :func:`grid_sample` and :func:`flow_grid`.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> x = np.arange(4.0).reshape(1, 1, 1, 4)
    >>> flow = np.full((1, 1, 4, 2), 0.0); flow[..., 0] = 0.5   # half a pixel right
    >>> stn.warp_flow(x, flow, padding_mode="border")[0, 0]
    array([[0.5, 1.5, 2.5, 3. ]])
    """
    return _run_forward(
        _WARP_FLOW, input, flow, None, mode, padding_mode, align_corners,
        layout, out, device, fill_value, output_dtype,
    )  # fmt: skip


@_docfiller
def warp_flow_backward(
    grad_output,
    input,
    flow,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    input_grad=True,
    flow_grad=True,
    *,
    layout="NCHW",
    device=None,
    deterministic=True,
    fill_value=None,
):
    """Gradients of :func:`warp_flow` with respect to input and flow.

    Parameters
    ----------
    grad_output : ndarray, (N, C, H, W) or (N, C, D, H, W)
        dL/doutput.
    input, flow, mode, padding_mode, align_corners
        As given to :func:`warp_flow`.
    input_grad, flow_grad : bool, default True
        Which gradients to compute; one not asked for comes back as None.
    %(layout_backward)s
    %(device)s
    deterministic : bool, default True
        As in :func:`grid_sample_backward` (GPU only).

    %(fill_value_backward)s
    Returns
    -------
    grad_input : ndarray or None
        dL/dinput; bit-identical for any number of threads.
    grad_flow : ndarray or None
        dL/dflow, flow's shape: the grid gradient times 2 / S_in per axis (see
        :func:`flow_grid_backward`); 0 for ``nearest`` and where padding clipped.

    Raises
    ------
    TypeError, ValueError
        As :func:`warp_flow`, and grad_output of the wrong shape or dtype.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> x = np.arange(4.0).reshape(1, 1, 1, 4)
    >>> flow = np.zeros((1, 1, 4, 2)); flow[..., 0] = 0.25
    >>> gi, gf = stn.warp_flow_backward(np.ones((1, 1, 1, 4)), x, flow)
    >>> gf[0, 0, :, 0]              # d output / d dx: the slope; zeros padding past the end
    array([ 1.,  1.,  1., -3.])
    """
    return _run_backward(
        _WARP_FLOW, grad_output, input, flow, None, mode, padding_mode, align_corners,
        input_grad, flow_grad, layout, device, deterministic, fill_value,
    )  # fmt: skip


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
    check_batch(input.shape[0], "theta", theta, "input", True)
    same_dtype("input", input, theta=theta)
    size = tuple(input.shape[2:]) if size is None else as_int_tuple(size, "size", dims, 1)
    return _Checked(
        tuple(size),
        mode_code(mode, dims),
        padding_code(padding_mode),
        check_bool(align_corners, "align_corners"),
    )


_WARP_AFFINE = _Warp("theta", _check_warp_args, _as_matrix, _as_matrix, _same)


@_docfiller
def warp_affine(
    input,
    theta,
    size=None,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    *,
    layout="NCHW",
    out=None,
    device=None,
    fill_value=None,
    output_dtype=None,
):
    """Warp ``input`` by the affine maps θ: ``grid_sample(input, affine_grid(θ, ...))`` fused.

    The source point of each output pixel is computed from θ inside the kernel; no
    grid array is allocated.

    Parameters
    ----------
    input : ndarray, (N, C, H_in, W_in) or (N, C, D_in, H_in, W_in)
        Images or volumes, float32 or float64, or uint8, uint16, int16 (see :func:`grid_sample`).
    theta : ndarray, (N, 2, 3) or (N, 3, 4), or unbatched (2, 3) or (3, 4)
        Maps from output to input normalised coordinates (as in :func:`affine_grid`),
        same dtype as input. A batch of 1 (of input or of θ) or an unbatched θ (as
        :func:`theta_from_cv2` returns for one matrix) is shared by every sample of the
        other (see "Batches" in :mod:`stn_numba.functional`).
    size : sequence of int, optional
        Output spatial shape (H, W) or (D, H, W); None keeps the input's.
    mode, padding_mode, align_corners
        As in :func:`grid_sample`.
    out : ndarray, optional
        Preallocated C-contiguous result; must not overlap input or θ.
    %(layout_forward)s
    %(device)s
    fill_value, output_dtype : optional
        As in :func:`grid_sample` (``padding_mode="constant"``; integer results).

    Returns
    -------
    output : ndarray, ``(N, C, *size)``
        The compute dtype (input's, or theta's for integer input), or
        output_dtype.

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
    return _run_forward(
        _WARP_AFFINE, input, theta, size, mode, padding_mode, align_corners,
        layout, out, device, fill_value, output_dtype,
    )  # fmt: skip


@_docfiller
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
    layout="NCHW",
    device=None,
    deterministic=True,
    fill_value=None,
):
    """Gradients of :func:`warp_affine` with respect to input and θ.

    Parameters
    ----------
    grad_output : ndarray, ``(N, C, *size)``
        dL/doutput.
    input, theta, size, mode, padding_mode, align_corners
        As given to :func:`warp_affine`.
    input_grad, theta_grad : bool, default True
        Which gradients to compute; one not asked for comes back as None.
    %(layout_backward)s
    %(device)s
    deterministic : bool, default True
        As in :func:`grid_sample_backward` (GPU only; grad_theta is always
        deterministic).

    %(fill_value_backward)s
    Returns
    -------
    grad_input : ndarray or None
        dL/dinput; bit-identical for any number of threads.
    grad_theta : ndarray or None
        dL/dθ, (N, 2, 3) or (N, 3, 4): per-row partial sums in float64 reduced in a
        fixed order; no grid array is allocated.

    Notes
    -----
    Memory besides the returned gradients: 16 bytes (input-row spans) plus 8·6 (2-D) or
    8·12 (3-D) bytes of θ partial sums per output row on the CPU, and per running thread
    scratch for one output row's points (72 / 104 bytes per output column, 2-D / 3-D);
    on the GPU with
    ``deterministic=True`` also an int64 accumulator of input's size.

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
    return _run_backward(
        _WARP_AFFINE, grad_output, input, theta, size, mode, padding_mode, align_corners,
        input_grad, theta_grad, layout, device, deterministic, fill_value,
    )  # fmt: skip


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


@_docfiller
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
    %(device)s

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


# ----------------------------------------------------------------------------
# splat: forward warping, the adjoint of grid_sample w.r.t. its input
# ----------------------------------------------------------------------------


def _check_splat_args(input, grid, mode, padding_mode, align_corners):
    """grid_sample's checks, plus: grid is on input's lattice (same spatial shape)."""
    checked = _check_sample_args(input, grid, mode, padding_mode, align_corners, False)
    if spline_order(checked.mode):
        raise ValueError(
            f"splat's mode must be one of 'bilinear', 'nearest', 'bicubic'; got {mode!r} "
            "(B-spline splatting is not implemented)"
        )
    spatial = tuple(input.shape[2:])
    if tuple(grid.shape[1:-1]) != spatial:
        dims = len(spatial)
        raise ValueError(
            f"grid must have shape {(input.shape[0],) + spatial + (dims,)} (one target point "
            f"per input pixel, on input's lattice); got {tuple(grid.shape)}"
        )
    return checked


@_docfiller
def splat(
    input,
    grid,
    size=None,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    *,
    layout="NCHW",
    out=None,
    device=None,
    deterministic=True,
):
    """Forward warping: scatter every input pixel to its point of ``grid`` in the output.

    ``input[n, :, h, w]`` is added, with the interpolation weights of ``mode``, to the
    output pixels around the normalised point ``grid[n, h, w]`` of an output of spatial
    shape ``size``. This is exactly the adjoint of :func:`grid_sample` with respect to
    its input: for every x of shape ``(N, C, *size)``,
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
    edge (mass piles up there), ``reflection`` folds it back inside, ``wrap`` wraps
    each tap around (periodic output: no mass is lost). ``nearest`` sends
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
    padding_mode : {"zeros", "border", "reflection", "wrap"}
        What happens to taps outside the output (see above).
    align_corners : bool, default False
        Whether ±1 are the centres (True) or outer edges (False) of the output's corner
        pixels.
    out : ndarray, optional
        Preallocated C-contiguous result of shape ``(N, C, *size)``; must not overlap input
        or grid. It is overwritten, not added to.
    %(layout_forward)s
    %(device)s
    deterministic : bool, default True
        GPU only (the CPU is always deterministic): True accumulates in 64-bit fixed
        point with integer atomics, bit-identical from run to run; False uses float
        atomics (faster; the last bits vary between runs).

    Returns
    -------
    output : ndarray, ``(N, C, *size)``
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
    lay = Layout(layout)
    given = {"input": input, "grid": grid}
    dev, backend, host_out, (input, grid) = _arrays(device, given, lay, ("input",))
    _, m, p, ac = _check_splat_args(input, grid, mode, padding_mode, align_corners)
    dims = input.ndim - 2
    deterministic = check_bool(deterministic, "deterministic")
    size = tuple(input.shape[2:]) if size is None else as_int_tuple(size, "size", dims, 1)
    shape = tuple(input.shape[:2]) + size
    output, target = _output(out, shape, input.dtype, given, dev, backend, lay)
    backend.run_splat(input, grid, output, m, p, ac, deterministic)
    return _finish(lay.from_kernel(output), host_out, target)


@_docfiller
def splat_backward(
    grad_output,
    input,
    grid,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    *,
    layout="NCHW",
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
    grad_output : ndarray, ``(N, C, *size)``
        dL/doutput, the shape of the forward's output (its spatial shape is ``size``).
    input, grid, mode, padding_mode, align_corners
        As given to :func:`splat`.
    input_grad, grid_grad : bool, default True
        Which gradients to compute; one not asked for is not computed and comes back
        as None.
    deterministic : bool, default True
        Accepted for symmetry with the other backwards; both gradients are gathers and
        bit-identical from run to run either way.
    %(layout_backward)s
    %(device)s

    Returns
    -------
    grad_input : ndarray or None
        dL/dinput, input's shape and dtype.
    grad_grid : ndarray or None
        dL/dgrid, grid's shape. Zero for mode="nearest", and zero where a coordinate
        was clipped by ``border``/``reflection`` padding (grid_sample's convention); at
        exact integer pixel coordinates, the one-sided derivative (docs/conventions.md,
        "Interpolation").

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
    lay = Layout(layout)
    dev, backend, host_out, (grad_output, input, grid) = _arrays(
        device,
        {"grad_output": grad_output, "input": input, "grid": grid},
        lay,
        ("grad_output", "input"),
    )
    _, m, p, ac = _check_splat_args(input, grid, mode, padding_mode, align_corners)
    dims = input.ndim - 2
    input_grad = check_bool(input_grad, "input_grad")
    grid_grad = check_bool(grid_grad, "grid_grad")
    deterministic = check_bool(deterministic, "deterministic")
    check_input(grad_output, "grad_output")
    same_dtype("input", input, grad_output=grad_output)
    if grad_output.ndim != input.ndim or tuple(grad_output.shape[:2]) != tuple(input.shape[:2]):
        raise ValueError(
            f"grad_output must have input's batch and channels, {tuple(input.shape[:2])}, "
            f"and {dims} spatial axes (the output size), {lay.axes(input.ndim)}"
            f"; got {lay.shape(grad_output.shape)}"
            if lay.last
            else f"grad_output must have shape {tuple(input.shape[:2])} + the output size "
            f"({dims} spatial axes); got {tuple(grad_output.shape)}"
        )
    if dev == "cuda":  # copy NumPy arrays to the device once for both gradients
        grad_output, input, grid = (backend.to_device(a) for a in (grad_output, input, grid))
    gi = gg = None
    if input_grad:
        gi = lay.to_kernel(backend.empty(lay.shape(input.shape), input.dtype))
        backend.run_sample(grad_output, grid, None, gi, m, p, ac)
    if grid_grad:
        _, gg = backend.run_backward(
            input, grad_output, grid, None, m, p, ac, False, True, deterministic
        )
    return _finish(lay.from_kernel(gi), host_out), _finish(gg, host_out)


# The warps broadcast their batch axes (see _forward_broadcast).
grid_sample = _forward_broadcast(grid_sample, "grid")
grid_sample_backward = _backward_broadcast(grid_sample_backward, "grid")
warp_affine = _forward_broadcast(warp_affine, "theta")
warp_affine_backward = _backward_broadcast(warp_affine_backward, "theta")
warp_perspective = _forward_broadcast(warp_perspective, "H")
warp_perspective_backward = _backward_broadcast(warp_perspective_backward, "H")
warp_flow = _forward_broadcast(warp_flow, "flow")
warp_flow_backward = _backward_broadcast(warp_flow_backward, "flow")
