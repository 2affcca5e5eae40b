"""scipy.ndimage's interpolation functions, in parallel: same signatures, same numbers.

A drop-in for the spline interpolation of :mod:`scipy.ndimage` on 1-, 2- and 3-D
arrays: a ported call gives scipy's values (to float64 rounding), computed on every
core by Numba (:mod:`stn_numba._ndimage`) instead of on one.

=================================  ====================================================
scipy.ndimage                      stn_numba
=================================  ====================================================
``map_coordinates``                :func:`stn_numba.ndimage.map_coordinates`
``affine_transform``               :func:`stn_numba.ndimage.affine_transform` (all four
                                   matrix forms)
``shift``                          :func:`stn_numba.ndimage.shift`
``zoom`` (``grid_mode`` too)       :func:`stn_numba.ndimage.zoom`
``rotate``                         :func:`stn_numba.ndimage.rotate`
``spline_filter``                  :func:`stn_numba.ndimage.spline_filter`
``spline_filter1d``                :func:`stn_numba.ndimage.spline_filter1d`
``geometric_transform``            :func:`stn_numba.ndimage.geometric_transform`, with
                                   a ``numba.njit`` mapping (not a Python callable)
=================================  ====================================================

What is the same as scipy 1.17: the arguments and their defaults; ``order`` 0-5;
every ``mode`` (``'constant'``, ``'grid-constant'``, ``'nearest'``, ``'mirror'``,
``'reflect'`` / ``'grid-mirror'``, ``'wrap'``, ``'grid-wrap'``) with scipy's
semantics, including its ``'constant'`` (cval outside ``[0, n - 1]``, no blending
with cval near the edge; ``'grid-constant'`` blends), its ``'wrap'`` (period ``n -
1``) and the prefilter of ``'nearest'`` / ``'grid-constant'`` on a copy padded by 12
samples; the prefilter's numbers on short lines with ``'reflect'`` (scipy's
half-sample-mirror start, which does not reproduce the samples of lines of a few
samples, is reproduced); ``output`` as ``None`` (the input's dtype), a dtype or an
array, with scipy's conversion to integer outputs (rounded half away from zero,
clipped to the type's range; uint: negatives to 0); complex input (real and
imaginary parts separately).

What differs:

* Arrays of 1, 2 or 3 dimensions (``spline_filter*``: any number ≥ 1); others
  raise ``ValueError``.
* Bad arguments raise ``TypeError`` / ``ValueError`` naming the argument (scipy
  raises ``RuntimeError`` for several, e.g. ``order=6``).
* ``geometric_transform``'s ``mapping`` is a Numba-jitted function compiled into
  the kernel, ``mapping(out_index) -> in_coords`` with ``out_index`` a tuple of ints
  (one per output axis, as scipy passes it) and ``in_coords`` a tuple (or array) of
  floats, one per input axis; ``extra_arguments`` follow ``out_index``;
  ``extra_keywords`` is not supported (``TypeError``).
* An ``output`` array that shares memory with ``input`` (or with
  ``coordinates``), e.g. ``output=input``, gets the same numbers as a new output:
  what it overlaps is copied first (scipy reads it after writing it there).
* Non-finite coordinates give ``cval`` in every mode (scipy's result is undefined
  for most); integer outputs of NaN values are 0. float16 outputs are refused, as
  scipy does.
* ``affine_transform`` reads an axis that the matrix leaves unchanged (e.g. the
  stack axis of a batch of 2-D images) at its integer positions, without a prefilter
  along it: the same numbers, except that a non-finite input value no longer spreads
  along that axis (scipy's prefilter spreads it). Not for ``reflect``,
  ``grid-mirror`` and ``nearest`` at orders >= 2, whose scipy prefilter does not
  reproduce short lines.
  A stack transformed this way in one 3-D call (orders 1 and 3) computes each
  point's taps and weights once for all its planes: faster than a call per plane.
* Speed: a call of about 260,000 taps or more (a 256×256 image at order 1, a
  128×128 image at order 3; the prefilter from about 520,000 samples) runs in parts
  on Numba's thread count of threads (``numba.get_num_threads()``: the calling
  thread and helper threads of stn_numba's own, which run the compiled loops
  without the GIL); a smaller call runs on the calling thread alone, because
  handing a part to another thread would cost more than it saves. The numbers are
  the same either way. To put every core to work on many small images, transform
  them in one call where the function allows it (a stack of 2-D images with
  ``affine_transform``, the matrix leaving the stack axis unchanged), or make the
  calls from ``numba.get_num_threads()`` Python threads, each with
  ``numba.set_num_threads(1)`` (the loops release the GIL). See the benchmark page
  for the measured ratios against scipy.
"""

import math
import operator
import warnings

import numba
import numpy as np

from . import _ndimage as D
from . import _pool
from ._modes import (
    ND_GRID_CONSTANT,
    ND_NEAREST,
    ndimage_mode_code,
)

__all__ = [
    "affine_transform",
    "geometric_transform",
    "map_coordinates",
    "rotate",
    "shift",
    "spline_filter",
    "spline_filter1d",
    "zoom",
]

#: Samples of padding around the image before prefiltering for 'nearest' and
#: 'grid-constant' (scipy's ``_prepad_for_spline_filter``).
_NPAD = 12

#: Samples of padding around the image at order 1 for 'nearest' and 'grid-constant',
#: so that the sampling driver's vectorised loop takes every point (none needs a
#: prefilter).
_NPAD1 = 2

#: Coefficients of order 3 up to this size are padded by :func:`_fold_pad` for the
#: sampling driver: a point near the edge otherwise takes the per-point path (~190 ns
#: instead of ~10), and a 128² image has ~300 such points of 16 384 after a rotation;
#: the copy costs more than it saves beyond ~1000² (an edge band of 0.5 % of the points).
_FOLD_PAD_BYTES = 1 << 22

#: Points per task of the sampling driver, at most (and at least 1).
_BLOCK = 1024

_KINDS = "biufc"


# ----------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------


def _input(input, name="input", ndims=(1, 2, 3)):
    arr = np.asarray(input)
    if arr.dtype.kind not in _KINDS:
        raise TypeError(
            f"{name} must be an array of bool, int, uint, float or complex numbers; "
            f"got dtype {arr.dtype}"
        )
    if ndims is not None and arr.ndim not in ndims:
        raise ValueError(
            f"{name} must have 1, 2 or 3 dimensions (stn_numba.ndimage runs 1-D, 2-D "
            f"and 3-D arrays); got {arr.ndim}-D {name} of shape {arr.shape}"
        )
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least 1 dimension; got a 0-D array")
    if 0 in arr.shape:
        raise ValueError(f"{name} must have no empty axis; got shape {arr.shape}")
    return arr


def _order(order, low=0):
    try:
        value = operator.index(order)
    except TypeError:
        raise TypeError(f"order must be an int in {low}..5; got {order!r}") from None
    if not low <= value <= 5:
        raise ValueError(f"order must be an int in {low}..5 (spline order); got {value}")
    return value


def _cval(cval, complex_ok):
    if isinstance(cval, (bool, np.bool_)) or not isinstance(cval, (int, float, complex, np.number)):
        if not (isinstance(cval, np.ndarray) and cval.ndim == 0):
            raise TypeError(f"cval must be a number; got {type(cval).__name__} {cval!r}")
    value = complex(cval)
    if value.imag != 0 and not complex_ok:
        raise TypeError(f"cval must be real for real input; got {cval!r}")
    return value if complex_ok else value.real


def _check_out_dtype(dtype, complex_output):
    dtype = np.dtype(dtype)
    if dtype.kind not in _KINDS or dtype == np.float16 or dtype.itemsize > 16:
        raise TypeError(
            "output dtype must be bool, an int, uint, float32, float64 or complex "
            f"type; got {dtype}"
        )
    if dtype.kind == "c" and not complex_output:
        raise TypeError(f"output dtype must be real for real input; got {dtype}")
    return dtype


def _output(output, input, shape, complex_output=None):
    """The output array (new or the given one), as scipy's ``_get_output`` (a new one
    is left uninitialised: every point of it is written)."""
    if complex_output is None:
        complex_output = input.dtype.kind == "c"
    if output is None:
        return np.empty(shape, dtype=input.dtype)
    if isinstance(output, (type, np.dtype, str)):
        try:
            dtype = np.dtype(output)
        except TypeError:
            raise TypeError(f"output must be an array or a dtype; got {output!r}") from None
        if complex_output and dtype.kind != "c":
            warnings.warn("promoting specified output dtype to complex", stacklevel=3)
            dtype = np.promote_types(dtype, np.complex64)
        return np.empty(shape, dtype=_check_out_dtype(dtype, complex_output))
    if not isinstance(output, np.ndarray):
        raise TypeError(
            f"output must be None, a dtype or a numpy array; got {type(output).__name__}"
        )
    if output.shape != tuple(shape):
        raise ValueError(f"output must have shape {tuple(shape)}; got {output.shape}")
    if complex_output and output.dtype.kind != "c":
        raise TypeError(f"output must have a complex dtype for complex input; got {output.dtype}")
    _check_out_dtype(output.dtype, complex_output)
    if not output.flags.writeable:
        raise ValueError("output must be writeable; got a read-only array")
    return output


def _unshared(a, out, output):
    """``a``, or a copy of it where it may share memory with ``out``: an output that
    overlaps what a call reads would be read after it is written (scipy gives such a
    call wrong numbers). ``output`` is the caller's argument: an output that is not
    the caller's array was made by the call and shares nothing."""
    if not isinstance(output, np.ndarray):
        return a
    return a.copy() if np.may_share_memory(a, out) else a


def _store(values, out):
    """Write float64 ``values`` into ``out`` with scipy's conversion: integers are
    rounded half away from zero and clipped to the type's range (unsigned: negative
    values to 0), NaN to 0; bool is the truncated value's truth."""
    dtype = out.dtype
    if dtype.kind == "f":
        out[...] = values
        return
    if dtype.kind == "b":
        out[...] = np.trunc(values) != 0
        return
    info = np.iinfo(dtype)
    # the largest float64 that converts to the type (2**63 - 1 does not exist)
    top = float(info.max) if info.bits < 64 else np.nextafter(float(info.max), 0.0)
    if dtype.kind == "u":
        t = np.where(values > 0, values + 0.5, 0.0)
    else:
        t = np.where(values > 0, values + 0.5, values - 0.5)
    t = np.clip(t, float(info.min), top)
    t[np.isnan(t)] = 0.0
    out[...] = t.astype(dtype)


def _normalize(value, rank, name):
    if not isinstance(value, str) and np.iterable(value):
        seq = list(value)
        if len(seq) != rank:
            raise ValueError(
                f"{name} must be a number or a sequence of {rank} (one per axis); "
                f"got {len(seq)} values"
            )
        return seq
    return [value] * rank


def _floats(values, name, given=None):
    """``values`` as float64; real numbers only (a complex value is refused, not cut
    to its real part). ``given``: what the caller passed, for the message."""
    given = values if given is None else given
    try:
        arr = np.asarray(values)
        if arr.dtype.kind not in "biuf":
            raise TypeError
        arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        if isinstance(given, np.ndarray):
            given = f"an array of dtype {given.dtype} and shape {given.shape}"
        else:
            given = repr(given)
        raise TypeError(f"{name} must be real numbers; got {given}") from None
    return arr


# ----------------------------------------------------------------------------
# The computation
# ----------------------------------------------------------------------------


def _launch(driver, work, start, *args):
    """Run ``driver(*args, part, parts)`` over every part: on the calling thread below
    ``start`` units of ``work``, else on Numba's thread count of threads (one part per
    thread, four for a call of 16 times that work or more, so that a thread slowed by
    other work leaves its share to the others)."""
    threads = 1 if work < start else numba.get_num_threads()
    if threads == 1:
        driver(*args, 0, 1)
    else:
        parts = threads * (4 if work >= 16 * start else 1)
        _pool.run(driver, args, parts, threads)


def _prefilter(src, order, boundary, axes):
    """The float64 C-contiguous coefficients of ``src`` prefiltered along ``axes``.
    The first filtered axis reads ``src`` itself when it is float32 or float64 (the
    conversion is part of that pass, and its memory is first touched by the threads);
    ``src`` is not modified."""
    axes = [ax for ax in axes if src.shape[ax] >= 2]
    if not axes or src.dtype not in (np.float32, np.float64):
        c = np.array(src, dtype=np.float64, order="C")
        first = c
    else:
        first = np.ascontiguousarray(src)
        c = np.empty(src.shape)
    for ax in axes:
        n = src.shape[ax]
        outer = math.prod(src.shape[:ax])
        inner = math.prod(src.shape[ax + 1 :])
        block = D.COLUMN_BLOCK if inner > 1 else D.ROW_BLOCK
        _launch(
            D.prefilter_axis,
            c.size,
            D.PREFILTER_PARALLEL_FROM,
            c.reshape(-1),
            first.reshape(-1),
            outer,
            n,
            inner,
            order,
            boundary,
            block,
        )
        first = c
    return c


def _fold_pad(c, mode, axes):
    """``c`` (3-D) with 2 coefficients more at each end of ``axes``, folded by the
    extension that ``mode``'s taps use, and the padding per axis: every tap of an
    order-3 point in [0, n - 1] is then in the array (:func:`D.axis_taps`). None
    where ``mode`` does not fold its taps, or ``c`` is too large to be worth it."""
    if mode in (ND_NEAREST, ND_GRID_CONSTANT) or c.nbytes > _FOLD_PAD_BYTES:
        return None
    pad = [2 if ax in axes and c.shape[ax] >= 4 else 0 for ax in range(3)]
    if not any(pad):
        return None
    return _padded(c, pad, mode, 0.0), tuple(pad)


def _padded(c, width, mode, cval):
    """3-D ``c`` with ``width[k]`` more float64 values at each end of axis ``k``,
    folded as ``mode``'s taps are (cval for 'grid-constant'): :func:`D.fold_pad`."""
    p = np.empty(tuple(n + 2 * k for n, k in zip(c.shape, width, strict=True)))
    D.fold_pad(c, p, tuple(width), mode, cval)
    return p


def _coefficients(arr, order, mode, cval, prefilter, axes, fold=False):
    """(3-D coefficients, per-axis orders, per-axis padding, per-axis folded padding)
    of the real array ``arr`` for interpolating along ``axes`` (the other axes are
    read at integer points); ``fold``: pad order-3 coefficients (:func:`_fold_pad`)
    and order-1 'nearest' and 'grid-constant' images (by :data:`_NPAD1`)."""
    nd = arr.ndim
    npad = 0
    if prefilter and order > 1:
        if mode in (ND_NEAREST, ND_GRID_CONSTANT):
            npad = _NPAD
            width = [(npad, npad) if ax in axes else (0, 0) for ax in range(nd)]
            if mode == ND_NEAREST:
                arr = np.pad(arr, width, mode="edge")
            else:
                arr = np.pad(arr, width, mode="constant", constant_values=cval)
        c = _prefilter(arr, order, D.prefilter_boundary(mode), axes)
    elif arr.dtype == np.float32:
        # read as it is (each value converted to float64 where it is used, as scipy
        # does): a float64 copy would cost a pass over the image
        c = np.ascontiguousarray(arr)
    else:
        c = np.ascontiguousarray(arr, dtype=np.float64)
    off = 3 - nd
    coef = c.reshape((1,) * off + c.shape)
    axes3 = [off + ax for ax in axes]
    orders = [0, 0, 0]
    npads = [0, 0, 0]
    for ax in axes:
        orders[off + ax] = order
        npads[off + ax] = npad
    cpads = _NO_PAD
    if fold and order == 1 and mode in (ND_NEAREST, ND_GRID_CONSTANT):
        # the image with _NPAD1 more samples at each end of ``axes`` (copies of the edge,
        # or cval), read as the order-3 calls read theirs: the vectorised loop then
        # takes the points near and (mapped) beyond the edges
        npads = tuple(_NPAD1 if k in axes3 else 0 for k in range(3))
        coef = _padded(coef, npads, mode, float(cval))
    elif fold and order == 3:
        padded = _fold_pad(coef, mode, axes3)
        if padded is not None:
            coef, cpads = padded
    return coef, tuple(orders), tuple(npads), cpads


_NO_PAD = (0, 0, 0)
_EMPTY2 = np.zeros((3, 0))
_ZERO33 = np.zeros((3, 3))
_ZERO3 = np.zeros(3)


def _taps(orders):
    """Taps read per output point with the per-axis ``orders`` (of 3 axes)."""
    return (orders[0] + 1) * (orders[1] + 1) * (orders[2] + 1)


def _block(total, work):
    """Points per segment of the sampling driver: :data:`_BLOCK`, or fewer where a
    threaded call needs more segments to share (8 per thread)."""
    if work < D.PARALLEL_FROM:
        return _BLOCK
    return max(1, min(_BLOCK, total // (8 * numba.get_num_threads())))


def _sample(
    arr,
    out,
    order,
    mode,
    cval,
    prefilter,
    source,
    *,
    coords=None,
    matrix=None,
    shift=None,
    table=None,
    axes=None,
    shape=None,
):
    """Interpolate the real array ``arr`` at the points of ``source`` into ``out``."""
    axes = tuple(range(arr.ndim)) if axes is None else axes
    coef, orders, npads, cpads = _coefficients(
        arr, order, mode, cval, prefilter, axes, fold=source != D.TABLE
    )
    total = out.size
    if total == 0:
        return out
    shape3 = (1,) * (3 - len(shape)) + tuple(map(int, shape))
    # float32 outputs are written by the driver (rounded to nearest, as numpy's cast)
    direct = out.dtype.char in "fd" and out.flags.c_contiguous
    if coef.dtype == np.float32 and out.dtype != np.float32:
        coef = coef.astype(np.float64)  # one float32 driver: float32 in, float32 out
    flat = out.reshape(-1) if direct else np.empty(total)
    if source == D.TABLE:
        _launch(
            D.sample_separable,
            total * (orders[2] + 1),  # taps read (the other axes' are per row)
            D.PARALLEL_FROM,
            coef,
            flat,
            shape3,
            table,
            orders,
            npads,
            cpads,
            mode,
            float(cval),
        )
        if not direct:
            _store(flat.reshape(out.shape), out)
        return out
    work = total * _taps(orders)
    _launch(
        D.sample,
        work,
        D.PARALLEL_FROM,
        coef,
        flat,
        shape3,
        source,
        _EMPTY2 if coords is None else coords,
        _ZERO33 if matrix is None else matrix,
        _ZERO3 if shift is None else shift,
        _EMPTY2 if table is None else table,
        orders,
        npads,
        cpads,
        mode,
        float(cval),
        _block(total, work),
    )
    if not direct:
        _store(flat.reshape(out.shape), out)
    return out


def _split_complex(fn, arr, out, cval, **kwargs):
    """Run ``fn(real array, real out, real cval)`` on the real and imaginary parts."""
    for part, c in ((np.real, cval.real), (np.imag, cval.imag)):
        tmp = np.zeros(out.shape)
        fn(part(arr), tmp, c, **kwargs)
        if out.dtype.kind == "c":
            part_view = out.real if part is np.real else out.imag
            part_view[...] = tmp
    return out


# ----------------------------------------------------------------------------
# Public functions
# ----------------------------------------------------------------------------


def map_coordinates(
    input, coordinates, output=None, order=3, mode="constant", cval=0.0, prefilter=True
):
    """Interpolate ``input`` at the given coordinates, as ``scipy.ndimage.map_coordinates``.

    The value at output point ``p`` is the spline of ``order`` through ``input``
    (prefiltered unless ``prefilter=False``) at input coordinates
    ``coordinates[:, p]``; points outside are extended by ``mode``.

    Parameters
    ----------
    input : array_like
        1-, 2- or 3-D array of bool, int, uint, float or complex numbers.
    coordinates : array_like
        Input coordinates (in samples) of the output points: shape
        ``(input.ndim, *output_shape)``, any real dtype.
    output : ndarray or dtype, optional
        Array to write into (of shape ``coordinates.shape[1:]``) or the dtype of the
        new output; default: ``input.dtype``. Integer outputs are rounded half away
        from zero and clipped to the type's range.
    order : int, optional
        Spline order, 0-5 (default 3).
    mode : str, optional
        ``'constant'`` (default), ``'grid-constant'``, ``'nearest'``, ``'mirror'``,
        ``'reflect'``, ``'grid-mirror'``, ``'wrap'`` or ``'grid-wrap'``, as scipy.
    cval : float, optional
        Value outside the image for the constant modes (default 0).
    prefilter : bool, optional
        Spline-filter ``input`` first (default True); False when ``input`` already
        holds the coefficients (:func:`spline_filter`).

    Returns
    -------
    ndarray
        The interpolated values (``output`` itself when it is an array).

    Raises
    ------
    TypeError
        Non-numeric ``input``, complex ``coordinates``, an unsupported ``output``
        dtype, a non-int ``order`` or a non-str ``mode``.
    ValueError
        ``input`` not 1-3-D, ``coordinates.shape[0] != input.ndim``, ``order``
        outside 0-5, an unknown ``mode`` or an ``output`` of the wrong shape.

    Examples
    --------
    >>> import numpy as np
    >>> from stn_numba import ndimage
    >>> a = np.arange(12.0).reshape(4, 3)
    >>> ndimage.map_coordinates(a, [[0.5, 2.0], [0.5, 1.0]], order=1)
    array([2., 7.])
    """
    arr = _input(input)
    order = _order(order)
    code = ndimage_mode_code(mode)
    coords = np.asarray(coordinates)
    if coords.dtype.kind not in "biuf":
        raise TypeError(
            f"coordinates must be real numbers (bool, int, uint or float); got dtype {coords.dtype}"
        )
    if coords.ndim < 2 or coords.shape[0] != arr.ndim:
        raise ValueError(
            f"coordinates must have shape (input.ndim, *output_shape) = ({arr.ndim}, ...); "
            f"got shape {coords.shape}"
        )
    complex_input = arr.dtype.kind == "c"
    cval = _cval(cval, complex_input)
    out = _output(output, arr, coords.shape[1:])
    arr = _unshared(arr, out, output)
    flat = coords.reshape(arr.ndim, -1)
    if flat.dtype != np.float64 or not flat.flags.c_contiguous:
        flat = np.ascontiguousarray(flat, dtype=np.float64)
    flat = _unshared(flat, out, output)
    total = flat.shape[1]

    def run(a, o, c):
        return _sample(a, o, order, code, c, prefilter, D.COORDS, coords=flat, shape=(total,))

    if complex_input:
        return _split_complex(run, arr, out, cval)
    return run(arr, out, cval)


def _affine_parts(matrix, offset, nd, orank):
    """(1-D diagonal or 2-D (nd, orank) matrix, offset (nd,)) of affine_transform's
    ``matrix`` / ``offset`` in any of scipy's forms."""
    m = _floats(matrix, "matrix")
    if m.ndim not in (1, 2) or m.shape[0] < 1:
        raise ValueError(
            f"matrix must be 1-D (nd,) or 2-D (nd, nd), (nd, nd + 1), (nd + 1, nd + 1) "
            f"with nd = input.ndim = {nd}; got shape {m.shape}"
        )
    if m.ndim == 2 and m.shape[1] == nd + 1 and m.shape[0] in (nd, nd + 1):
        if m.shape[0] == nd + 1:
            expected = [0.0] * nd + [1.0]
            if m[nd].tolist() != expected:
                raise ValueError(
                    f"matrix of shape {m.shape} must be homogeneous: its bottom row "
                    f"must be {expected}; got {m[nd].tolist()}"
                )
        offset = m[:nd, nd]
        m = m[:nd, :nd]
    if m.shape[0] != nd:
        raise ValueError(f"matrix must have input.ndim = {nd} rows; got shape {m.shape}")
    if m.ndim == 2 and m.shape[1] != orank:
        raise ValueError(
            f"matrix must have one column per output axis ({orank}); got shape {m.shape}"
        )
    off = _floats(_normalize(offset, nd, "offset"), "offset", offset)
    if off.ndim != 1:
        raise ValueError(f"offset must be a number or {nd} numbers; got {offset!r}")
    return m, off


def _shape(shape, name):
    try:
        dims = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints; got {shape!r}") from None
    if not 1 <= len(dims) <= 3 or min(dims) < 1:
        raise ValueError(f"{name} must be 1 to 3 positive ints; got {dims}")
    return dims


def affine_transform(
    input,
    matrix,
    offset=0.0,
    output_shape=None,
    output=None,
    order=3,
    mode="constant",
    cval=0.0,
    prefilter=True,
):
    """Apply an affine transform, as ``scipy.ndimage.affine_transform``.

    The output point ``o`` takes the input's value at ``matrix @ o + offset`` (the
    pull convention: ``matrix`` maps output coordinates to input coordinates).

    Parameters
    ----------
    input : array_like
        1-, 2- or 3-D array of bool, int, uint, float or complex numbers.
    matrix : array_like
        ``(nd,)`` (a diagonal: each axis scaled, computed as scipy's separable
        path), ``(nd, orank)``, ``(nd, nd + 1)`` (``[A | offset]``) or ``(nd + 1, nd
        + 1)`` (homogeneous, bottom row ``[0, ..., 0, 1]``), ``nd = input.ndim``.
    offset : float or sequence, optional
        Added to ``matrix @ o`` (ignored with the last two matrix forms).
    output_shape : tuple of ints, optional
        Default: ``output.shape`` for an array ``output``, else ``input.shape``.
    output, order, mode, cval, prefilter
        As :func:`map_coordinates`.

    Returns
    -------
    ndarray
        The transformed array.

    Raises
    ------
    TypeError, ValueError
        As :func:`map_coordinates`, and for a matrix or offset of the wrong shape.

    Examples
    --------
    >>> import numpy as np
    >>> from stn_numba import ndimage
    >>> a = np.arange(9.0).reshape(3, 3)
    >>> ndimage.affine_transform(a, [[1, 0, 1], [0, 1, 0]], order=1)
    array([[3., 4., 5.],
           [6., 7., 8.],
           [0., 0., 0.]])
    """
    arr = _input(input)
    order = _order(order)
    code = ndimage_mode_code(mode)
    if output_shape is None:
        output_shape = output.shape if isinstance(output, np.ndarray) else arr.shape
    oshape = _shape(output_shape, "output_shape")
    complex_input = arr.dtype.kind == "c"
    cval = _cval(cval, complex_input)
    out = _output(output, arr, oshape)
    arr = _unshared(arr, out, output)
    m, off = _affine_parts(matrix, offset, arr.ndim, len(oshape))
    kwargs = _affine_kwargs(m, off, arr.ndim, oshape)
    kwargs["axes"] = _moved_axes(m, off, arr.shape, oshape, order, code)

    def run(a, o, c):
        return _sample(a, o, order, code, c, prefilter, **kwargs)

    if complex_input:
        return _split_complex(run, arr, out, cval)
    return run(arr, out, cval)


def _moved_axes(m, off, ishape, oshape, order, code):
    """The axes that ``matrix`` / ``offset`` move: an axis that maps each output index
    to the same input index (a stack of images transformed alike) is read at those
    integer points with order 0 and not prefiltered, as :func:`rotate` does. The
    values are scipy's to float rounding: scipy's spline along that axis,
    prefiltered, interpolates the samples at the integers, except for the
    half-sample-mirror prefilter of short lines ('reflect', 'grid-mirror',
    'nearest'), where the axis stays interpolated. Non-finite samples do not spread
    along such an axis (scipy's prefilter spreads them)."""
    nd = len(ishape)
    if m.ndim != 2 or len(oshape) != nd or nd < 2:
        return None
    if order > 1 and D.prefilter_boundary(code) not in (D.B.MIRROR, D.B.PERIODIC):
        return None
    rows = m.tolist()  # a few Python floats: cheaper to compare than arrays
    axes = []
    for k in range(nd):
        unit = [0.0] * nd
        unit[k] = 1.0
        same = (
            rows[k] == unit
            and [row[k] for row in rows] == unit
            and off[k] == 0.0
            and oshape[k] == ishape[k]
        )
        if not same:
            axes.append(k)
    return tuple(axes) if axes else None


def _affine_kwargs(m, off, nd, oshape):
    if m.ndim == 1:
        if len(oshape) != nd:
            raise ValueError(
                f"output_shape must have input.ndim = {nd} entries with a 1-D matrix; got {oshape}"
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            s = off / m
            rows = [(np.arange(n, dtype=np.float64) + s[k]) * m[k] for k, n in enumerate(oshape)]
        return dict(source=D.TABLE, table=_table(rows), shape=oshape)
    m3 = np.zeros((3, 3))
    m3[3 - nd :, 3 - len(oshape) :] = m
    s3 = np.zeros(3)
    s3[3 - nd :] = off
    return dict(source=D.MATRIX, matrix=m3, shift=s3, shape=oshape)


def _table(rows):
    """The (3, L) coordinate table of per-axis coordinates ``rows`` (the last
    ``len(rows)`` rows; leading rows of virtual axes are 0)."""
    table = np.zeros((3, max(len(r) for r in rows)))
    for k, r in enumerate(rows):
        table[3 - len(rows) + k, : len(r)] = r
    return table


def shift(input, shift, output=None, order=3, mode="constant", cval=0.0, prefilter=True):
    """Shift an array, as ``scipy.ndimage.shift``: output[o] = input[o - shift].

    Parameters
    ----------
    input : array_like
        1-, 2- or 3-D array.
    shift : float or sequence
        The shift along each axis (one number for all).
    output, order, mode, cval, prefilter
        As :func:`map_coordinates`.

    Returns
    -------
    ndarray
        The shifted array.

    Raises
    ------
    TypeError, ValueError
        As :func:`map_coordinates`, and for a ``shift`` of the wrong length.

    Examples
    --------
    >>> import numpy as np
    >>> from stn_numba import ndimage
    >>> ndimage.shift(np.arange(5.0), 1.5, order=1, mode="nearest")
    array([0. , 0. , 0.5, 1.5, 2.5])
    """
    arr = _input(input)
    order = _order(order)
    code = ndimage_mode_code(mode)
    complex_input = arr.dtype.kind == "c"
    cval = _cval(cval, complex_input)
    s = _floats(_normalize(shift, arr.ndim, "shift"), "shift", shift)
    out = _output(output, arr, arr.shape)
    arr = _unshared(arr, out, output)
    rows = [np.arange(n, dtype=np.float64) + (-s[k]) for k, n in enumerate(arr.shape)]
    table = _table(rows)

    def run(a, o, c):
        return _sample(a, o, order, code, c, prefilter, D.TABLE, table=table, shape=arr.shape)

    if complex_input:
        return _split_complex(run, arr, out, cval)
    return run(arr, out, cval)


def zoom(
    input, zoom, output=None, order=3, mode="constant", cval=0.0, prefilter=True, *, grid_mode=False
):
    """Zoom an array, as ``scipy.ndimage.zoom``.

    The output has ``round(input.shape[k] * zoom[k])`` samples along axis ``k``; with
    ``grid_mode=False`` the first and last samples of input and output coincide
    (factor ``(n_in - 1) / (n_out - 1)``), with ``grid_mode=True`` the edges of the
    pixels do (factor ``n_in / n_out``, half-pixel offsets).

    Parameters
    ----------
    input : array_like
        1-, 2- or 3-D array.
    zoom : float or sequence
        The zoom factor along each axis (one number for all).
    output, order, mode, cval, prefilter
        As :func:`map_coordinates`.
    grid_mode : bool, optional
        Pixel-edge alignment (default False); warns, as scipy, with ``'constant'`` or
        ``'wrap'`` (``'grid-constant'`` / ``'grid-wrap'`` are meant).

    Returns
    -------
    ndarray
        The zoomed array.

    Raises
    ------
    TypeError, ValueError
        As :func:`map_coordinates`, and for a ``zoom`` of the wrong length, not
        positive and finite, or giving an empty output.

    Examples
    --------
    >>> import numpy as np
    >>> from stn_numba import ndimage
    >>> ndimage.zoom(np.array([0.0, 1.0, 2.0]), 5 / 3, order=1)
    array([0. , 0.5, 1. , 1.5, 2. ])
    """
    arr = _input(input)
    order = _order(order)
    code = ndimage_mode_code(mode)
    if not isinstance(grid_mode, (bool, np.bool_)):
        raise TypeError(f"grid_mode must be a bool; got {grid_mode!r}")
    complex_input = arr.dtype.kind == "c"
    cval = _cval(cval, complex_input)
    factors = _floats(_normalize(zoom, arr.ndim, "zoom"), "zoom", zoom)
    if factors.ndim != 1 or not np.all(np.isfinite(factors) & (factors > 0)):
        raise ValueError(f"zoom must be positive finite numbers (one per axis); got {zoom!r}")
    oshape = tuple(int(round(n * z)) for n, z in zip(arr.shape, factors.tolist(), strict=True))
    if min(oshape) < 1:
        raise ValueError(
            f"zoom must give an output of at least 1 sample per axis; got zoom = {zoom!r} "
            f"for input of shape {arr.shape}, an output of shape {oshape}"
        )
    out = _output(output, arr, oshape)
    arr = _unshared(arr, out, output)
    if all(z == 1 for z in factors) and prefilter:
        out[...] = arr  # scipy returns the input unchanged (numpy's cast)
        return out
    if grid_mode and mode in ("constant", "wrap"):
        warnings.warn(
            f"It is recommended to use mode = grid-{mode} instead of {mode} when "
            "grid_mode is True.",
            stacklevel=2,
        )
    num = np.array(arr.shape)
    div = np.array(oshape)
    if not grid_mode:
        num = num - 1
        div = div - 1
    z = np.divide(num, div, out=np.ones(arr.ndim, dtype=np.float64), where=div != 0)
    rows = []
    for k, n in enumerate(oshape):
        kk = np.arange(n, dtype=np.float64)
        rows.append(((kk + 0.5) * z[k]) - 0.5 if grid_mode else kk * z[k])
    table = _table(rows)

    def run(a, o, c):
        return _sample(a, o, order, code, c, prefilter, D.TABLE, table=table, shape=oshape)

    if complex_input:
        return _split_complex(run, arr, out, cval)
    return run(arr, out, cval)


def rotate(
    input,
    angle,
    axes=(1, 0),
    reshape=True,
    output=None,
    order=3,
    mode="constant",
    cval=0.0,
    prefilter=True,
):
    """Rotate an array in the plane of two axes, as ``scipy.ndimage.rotate``.

    Parameters
    ----------
    input : array_like
        2- or 3-D array (3-D: every plane parallel to ``axes`` is rotated, in one
        parallel call).
    angle : float
        Rotation angle in degrees.
    axes : tuple of 2 ints, optional
        The plane of the rotation (default ``(1, 0)``).
    reshape : bool, optional
        Make the output large enough to hold the whole rotated input (default True).
    output, order, mode, cval, prefilter
        As :func:`map_coordinates`.

    Returns
    -------
    ndarray
        The rotated array.

    Raises
    ------
    TypeError, ValueError
        As :func:`map_coordinates`, and for 1-D input, bad ``axes`` or an ``angle``
        that is not one real number.

    Examples
    --------
    >>> import numpy as np
    >>> from stn_numba import ndimage
    >>> ndimage.rotate(np.arange(6.0).reshape(2, 3), 90, order=1)
    array([[2., 5.],
           [1., 4.],
           [0., 3.]])
    """
    from scipy import special

    arr = _input(input)
    nd = arr.ndim
    if nd < 2:
        raise ValueError(f"input must be 2-D or 3-D for rotate; got {nd}-D input")
    order = _order(order)
    code = ndimage_mode_code(mode)
    given = axes
    axes = list(axes) if np.iterable(axes) and not isinstance(axes, str) else [axes]
    try:
        axes = [operator.index(ax) for ax in axes]
    except TypeError:
        axes = []
    if len(axes) != 2:
        raise ValueError(f"axes must be two ints (the plane of the rotation); got {given!r}")
    axes = [ax + nd if ax < 0 else ax for ax in axes]
    if not all(0 <= ax < nd for ax in axes) or axes[0] == axes[1]:
        raise ValueError(
            f"axes must be two different axes of {nd}-D input, in [-{nd}, {nd - 1}]; got {given!r}"
        )
    axes.sort()
    complex_input = arr.dtype.kind == "c"
    cval = _cval(cval, complex_input)
    if isinstance(angle, (str, bytes)) or np.ndim(angle) != 0 or np.iscomplexobj(angle):
        raise TypeError(f"angle must be a real number (degrees); got {angle!r}")
    try:
        angle = float(angle)
    except (TypeError, ValueError):
        raise TypeError(f"angle must be a real number (degrees); got {angle!r}") from None
    c, s = special.cosdg(angle), special.sindg(angle)
    rot = np.array([[c, s], [-s, c]])
    img_shape = np.asarray(arr.shape)
    in_plane = img_shape[axes]
    if reshape:
        iy, ix = in_plane
        bounds = rot @ [[0, 0, iy, iy], [0, ix, 0, ix]]
        out_plane = (np.ptp(bounds, axis=1) + 0.5).astype(int)
    else:
        out_plane = img_shape[axes]
    out_center = rot @ ((out_plane - 1) / 2)
    in_center = (in_plane - 1) / 2
    offset = in_center - out_center
    oshape = img_shape.copy()
    oshape[axes] = out_plane
    oshape = tuple(int(n) for n in oshape)
    out = _output(output, arr, oshape)
    arr = _unshared(arr, out, output)
    if min(oshape) < 1:
        return out
    # the plane's matrix, identity along the other axis: that axis is read at its
    # integer points with order 0 and no prefilter, as scipy's per-plane calls
    m = np.eye(nd)
    m[np.ix_(axes, axes)] = rot
    off = np.zeros(nd)
    off[axes] = offset
    kwargs = _affine_kwargs(m, off, nd, oshape)

    def run(a, o, cv):
        return _sample(a, o, order, code, cv, prefilter, axes=tuple(axes), **kwargs)

    if complex_input:
        return _split_complex(run, arr, out, cval)
    return run(arr, out, cval)


def geometric_transform(
    input,
    mapping,
    output_shape=None,
    output=None,
    order=3,
    mode="constant",
    cval=0.0,
    prefilter=True,
    extra_arguments=(),
    extra_keywords=None,
):
    """Apply a general geometric transform, as ``scipy.ndimage.geometric_transform``,
    with the mapping compiled into the parallel kernel.

    Parameters
    ----------
    input : array_like
        1-, 2- or 3-D array.
    mapping : numba.njit function
        ``mapping(out_index, *extra_arguments) -> in_coords``: ``out_index`` is a
        tuple of ints (the output point's index, one per output axis),
        ``in_coords`` a tuple (or 1-D array) of ``input.ndim`` floats, the input
        coordinates to sample. It runs on every thread at once. A plain Python
        function is refused: decorate it with ``@numba.njit``.
    output_shape : tuple of ints, optional
        1 to 3 entries; default ``input.shape``.
    output, order, mode, cval, prefilter
        As :func:`map_coordinates`.
    extra_arguments : tuple, optional
        Passed to ``mapping`` after ``out_index`` (numbers, tuples, arrays).
    extra_keywords : dict, optional
        Not supported (Numba functions take no ``**kwargs``): ``None`` or ``{}``.

    Returns
    -------
    ndarray
        The transformed array.

    Raises
    ------
    TypeError
        ``mapping`` not a Numba function, or one that does not compile for
        ``(tuple of ints, *extra_arguments)``; non-empty ``extra_keywords``; and as
        :func:`map_coordinates`.
    ValueError
        As :func:`map_coordinates`.

    Examples
    --------
    >>> import numba
    >>> import numpy as np
    >>> from stn_numba import ndimage
    >>> @numba.njit
    ... def half_step(o):
    ...     return (o[0] - 0.5,)
    >>> ndimage.geometric_transform(np.arange(4.0), half_step, order=1)
    array([0. , 0.5, 1.5, 2.5])
    """
    from numba.core.dispatcher import Dispatcher
    from numba.core.errors import TypingError

    arr = _input(input)
    if not isinstance(mapping, Dispatcher):
        raise TypeError(
            "mapping must be a Numba-jitted function (decorate it with @numba.njit), "
            "mapping(out_index_tuple, *extra_arguments) -> input coordinates; got "
            f"{type(mapping).__name__} {getattr(mapping, '__name__', mapping)!r}. "
            "scipy.ndimage.geometric_transform takes Python callables."
        )
    if extra_keywords:
        raise TypeError(
            "extra_keywords is not supported (a Numba mapping takes no **kwargs); pass "
            f"them in extra_arguments; got {sorted(extra_keywords)}"
        )
    if not isinstance(extra_arguments, tuple):
        try:
            extra_arguments = tuple(extra_arguments)
        except TypeError:
            raise TypeError(
                f"extra_arguments must be a tuple; got {type(extra_arguments).__name__}"
            ) from None
    order = _order(order)
    code = ndimage_mode_code(mode)
    oshape = _shape(arr.shape if output_shape is None else output_shape, "output_shape")
    complex_input = arr.dtype.kind == "c"
    cval = _cval(cval, complex_input)
    out = _output(output, arr, oshape)
    arr = _unshared(arr, out, output)
    fn = D.geometric_driver(mapping, len(oshape), arr.ndim)
    shape3 = (1,) * (3 - len(oshape)) + oshape

    def run(a, o, cv):
        coef, orders, npads, cpads = _coefficients(
            a, order, code, cv, prefilter, tuple(range(a.ndim))
        )
        total = o.size
        flat = np.empty(total)
        work = total * _taps(orders)
        try:
            _launch(
                fn,
                work,
                D.PARALLEL_FROM,
                coef,
                flat,
                shape3,
                orders,
                npads,
                cpads,
                code,
                float(cv),
                _block(total, work),
                extra_arguments,
            )
        except TypingError as exc:
            raise TypeError(
                f"mapping must compile as mapping(tuple of {len(oshape)} ints, "
                f"*extra_arguments) -> {arr.ndim} floats: {str(exc).splitlines()[0]}"
            ) from exc
        _store(flat.reshape(o.shape), o)
        return o

    if complex_input:
        return _split_complex(run, arr, out, cval)
    return run(arr, out, cval)


def _axis(axis, nd):
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an int; got {axis!r}") from None
    if not -nd <= ax < nd:
        raise ValueError(f"axis must be in [-{nd}, {nd - 1}] for {nd}-D input; got {ax}")
    return ax % nd


def _filter_out(output, arr):
    return _output(output, arr, arr.shape)


def _store_filtered(values, out):
    """Write float64 ``values`` into ``out`` as scipy's line buffers do: a C cast
    (truncation toward zero for integers, NaN to 0)."""
    if out.dtype.kind in "iub":
        with np.errstate(invalid="ignore"):
            t = np.trunc(np.nan_to_num(values, nan=0.0))
        if out.dtype.kind == "b":
            out[...] = t != 0
        else:
            info = np.iinfo(out.dtype)
            top = float(info.max) if info.bits < 64 else np.nextafter(float(info.max), 0.0)
            out[...] = np.clip(t, float(info.min), top).astype(out.dtype)
    else:
        out[...] = values


def spline_filter1d(input, order=3, axis=-1, output=np.float64, mode="mirror"):
    """B-spline coefficients along one axis, as ``scipy.ndimage.spline_filter1d``.

    Parameters
    ----------
    input : array_like
        Array of 1 or more dimensions (bool, int, uint, float or complex).
    order : int, optional
        Spline order, 0-5 (0 and 1 copy the input).
    axis : int, optional
        The axis to filter (default the last).
    output : ndarray or dtype, optional
        Default float64; integer outputs take the truncated values (scipy's cast).
    mode : str, optional
        The extension the filter assumes (default ``'mirror'``): ``'grid-wrap'`` is
        periodic, ``'reflect'``/``'grid-mirror'``/``'nearest'`` the half-sample
        mirror, the others the whole-sample mirror.

    Returns
    -------
    ndarray
        The coefficients.

    Raises
    ------
    TypeError, ValueError
        Bad ``input``, ``order``, ``mode``, ``output``; ``axis`` out of range
        (``ValueError``).

    Examples
    --------
    >>> import numpy as np
    >>> from stn_numba import ndimage
    >>> ndimage.spline_filter1d(np.array([0.0, 6.0, 0.0]), order=3).round(6)
    array([-6., 12., -6.])
    """
    arr = _input(input, ndims=None)
    order = _order(order)
    code = ndimage_mode_code(mode)
    axis = _axis(axis, arr.ndim)
    out = _filter_out(output, arr)
    if arr.dtype.kind == "c":
        spline_filter1d(arr.real, order, axis, out.real, mode)
        spline_filter1d(arr.imag, order, axis, out.imag, mode)
        return out
    if order < 2:
        out[...] = np.array(arr)
        return out
    c = _prefilter(arr, order, D.prefilter_boundary(code), (axis,))
    _store_filtered(c, out)
    return out


def spline_filter(input, order=3, output=np.float64, mode="mirror"):
    """B-spline coefficients along every axis, as ``scipy.ndimage.spline_filter``.

    Parameters
    ----------
    input : array_like
        Array of 1 or more dimensions.
    order : int, optional
        Spline order, 2-5 (scipy refuses 0 and 1 here too).
    output : ndarray or dtype, optional
        Default float64. As scipy, a non-float64 output holds the result after each
        axis (integers truncated), which the next axis reads.
    mode : str, optional
        As :func:`spline_filter1d`.

    Returns
    -------
    ndarray
        The coefficients: :func:`map_coordinates` with ``prefilter=False`` on them
        interpolates the input.

    Raises
    ------
    TypeError, ValueError
        As :func:`spline_filter1d`; ``order`` outside 2-5.

    Examples
    --------
    >>> import numpy as np
    >>> from stn_numba import ndimage
    >>> a = np.arange(12.0).reshape(3, 4) ** 2
    >>> c = ndimage.spline_filter(a, order=3)
    >>> ndimage.map_coordinates(c, [[1.0], [2.0]], prefilter=False).round(12)
    array([36.])
    """
    arr = _input(input, ndims=None)
    order = _order(order, low=2)
    code = ndimage_mode_code(mode)
    out = _filter_out(output, arr)
    if arr.dtype.kind == "c":
        spline_filter(arr.real, order, out.real, mode)
        spline_filter(arr.imag, order, out.imag, mode)
        return out
    boundary = D.prefilter_boundary(code)
    if out.dtype == np.float64:
        out[...] = _prefilter(arr, order, boundary, range(arr.ndim))
        return out
    c = arr
    for ax in range(arr.ndim):  # scipy stores each axis' result in the output's type
        _store_filtered(_prefilter(c, order, boundary, (ax,)), out)
        c = out
    return out
