"""CPU drivers of :mod:`stn_numba.ndimage`: scipy.ndimage's spline interpolation as
``prange`` loops.

Three layers, as in the rest of the package: the public functions
(:mod:`stn_numba.ndimage`) validate and dispatch; the drivers here
(:func:`sample`, :func:`prefilter_axis`, :func:`geometric_driver`) loop over the
output in parallel; the per-point kernel :func:`point_value` maps one sampling
point's coordinates, weights its taps and sums them. The B-spline weights and the
prefilter are :mod:`stn_numba._bspline`'s.

The arithmetic follows scipy.ndimage's C code (``NI_GeometricTransform``,
``NI_ZoomShift``, ``map_coordinate``) step by step, in float64 and in its order:
the coordinate of a point is mapped into the line by the mode (:func:`map_point`,
scipy's rules, e.g. ``'wrap'`` with period ``n - 1``), the taps beyond the ends
are folded back by the prefilter's extension (:func:`fold_tap`), the weights are
made to add to 1 with the last one, and each tap is summed as
``coefficient * w_axis0 * w_axis1 * w_axis2`` in row-major tap order. So the values
are scipy's to float rounding (the weight polynomials of orders 4 and 5 group a
few products differently).

Shapes: the coefficients are always a 3-D C-contiguous float64 array (1-D and 2-D
images get leading axes of length 1, sampled at coordinate 0 with order 0: one tap
of weight 1.0, which changes no bit of the sum), so one compiled driver serves 1-, 2-
and 3-D images, every order and every mode (all runtime arguments).
"""

import math

import numba
import numpy as np
from numba import prange

from . import _bspline as B
from ._jit import JIT_OPTIONS, driver, kernel, scalar
from ._modes import (
    ND_CONSTANT,
    ND_GRID_CONSTANT,
    ND_GRID_WRAP,
    ND_MIRROR,
    ND_NEAREST,
    ND_REFLECT,
    ND_WRAP,
)

#: Where the sampling points come from (``source`` of :func:`sample`).
COORDS = 0  # an array of input coordinates per output point (map_coordinates)
MATRIX = 1  # an affine map of the output index (affine_transform, rotate)
TABLE = 2  # one coordinate table per axis, separable (zoom, shift, diagonal affine)

#: Coordinates beyond this magnitude are clamped to it before they are mapped: the
#: mode arithmetic converts quotients to int64, and a finite point this far away
#: is outside every image (scipy's result there is undefined).
_FAR = 2.0**52

#: :func:`stn_numba._bspline.spline_weights` inlined by Numba into the fast paths: as
#: a call it costs as much as the rest of a bilinear point (measured: 2.5x slower).
_spline_weights = scalar(B.spline_weights.py_func)

#: Columns of a non-contiguous axis that one task prefilters together: the rows of
#: the block are read contiguously into lines, filtered, and written back.
COLUMN_BLOCK = 16


def prefilter_boundary(mode):
    """The :mod:`stn_numba._bspline` boundary of scipy's prefilter for ``mode``."""
    if mode == ND_GRID_WRAP:
        return B.PERIODIC
    if mode == ND_REFLECT or mode == ND_NEAREST:
        return B.REFLECT_NDIMAGE
    return B.MIRROR  # constant, grid-constant (on a padded copy), wrap, mirror


@kernel
def map_point(x, n, mode):
    """scipy's mapping of a coordinate ``x`` beyond [0, n - 1] back into the line of
    ``n`` samples (``map_coordinate`` in scipy's ni_interpolation.c); ``'constant'``
    gives -1 outside. Same float operations, so the same bits."""
    if x < 0:
        if n <= 1:
            return -1.0 if mode == ND_CONSTANT else 0.0
        if mode == ND_MIRROR:
            sz2 = 2 * n - 2
            x = float(sz2 * int(-x / sz2)) + x
            return x + sz2 if x <= 1 - n else -x
        if mode == ND_REFLECT:
            sz2 = 2 * n
            if x < -sz2:
                x = float(sz2 * int(-x / sz2)) + x
            if x < -n:
                return x + sz2
            # scipy keeps -x - 1 away from -1 (where 'constant' would apply)
            return (1e-15 if x > -1e-15 else -x) - 1.0
        if mode == ND_WRAP:
            sz = n - 1
            return x + float(sz * (int(-x / sz) + 1))
        if mode == ND_GRID_WRAP:
            return x + float(n * (int((-1.0 - x) / n) + 1))
        if mode == ND_NEAREST:
            return 0.0
        return -1.0  # constant
    if x > n - 1:
        if n <= 1:
            return -1.0 if mode == ND_CONSTANT else 0.0
        if mode == ND_MIRROR:
            sz2 = 2 * n - 2
            x -= float(sz2 * int(x / sz2))
            return sz2 - x if x >= n else x
        if mode == ND_REFLECT:
            sz2 = 2 * n
            x -= float(sz2 * int(x / sz2))
            return sz2 - x - 1.0 if x >= n else x
        if mode == ND_WRAP:
            sz = n - 1
            return x - float(sz * int(x / sz))
        if mode == ND_GRID_WRAP:
            return x - float(n * int(x / n))
        if mode == ND_NEAREST:
            return float(n - 1)
        return -1.0  # constant
    return x


@kernel
def fold_tap(i, n, mode):
    """Index of tap ``i`` of a line of ``n`` coefficients, folded back by the extension
    scipy's kernel uses for ``mode``'s taps; -1 (read as cval) for ``'grid-constant'``
    beyond the ends."""
    if mode == ND_GRID_CONSTANT:
        return i if 0 <= i < n else -1
    if mode == ND_NEAREST:
        return 0 if i < 0 else (n - 1 if i >= n else i)
    if mode == ND_GRID_WRAP:
        return B.fold_index(i, n, B.PERIODIC)
    if mode == ND_REFLECT:
        return B.fold_index(i, n, B.REFLECT)
    # mirror, and 'constant' and 'wrap', which scipy's kernel mirrors at the taps
    return B.fold_index(i, n, B.MIRROR)


@kernel
def axis_taps(x, n, order, mode, npad):
    """(inside, tap indices, tap weights) of coordinate ``x`` along an axis of ``n``
    coefficients (``npad`` of them padding before the image); ``inside`` False means
    the point is cval (scipy's 'constant' outside the image, or a non-finite x)."""
    cc = x + npad
    if not math.isfinite(cc):
        return False, (0, 0, 0, 0, 0, 0), (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    cc = min(max(cc, -_FAR), _FAR)
    if mode != ND_GRID_CONSTANT and mode != ND_NEAREST:
        cc = map_point(cc, n, mode)
        if not cc > -1.0:
            return False, (0, 0, 0, 0, 0, 0), (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    i0, w = B.spline_weights(cc, order)
    # scipy makes the weights add to 1 with the last one
    s = 1.0
    for j in range(order):
        s -= w[j]
    w = (
        s if order == 0 else w[0],
        s if order == 1 else w[1],
        s if order == 2 else w[2],
        s if order == 3 else w[3],
        s if order == 4 else w[4],
        s if order == 5 else w[5],
    )
    if i0 >= 0 and i0 + order < n:
        return True, (i0, i0 + 1, i0 + 2, i0 + 3, i0 + 4, i0 + 5), w
    idx = (
        fold_tap(i0, n, mode),
        fold_tap(i0 + 1, n, mode),
        fold_tap(i0 + 2, n, mode),
        fold_tap(i0 + 3, n, mode),
        fold_tap(i0 + 4, n, mode),
        fold_tap(i0 + 5, n, mode),
    )
    return True, idx, w


@kernel
def point_value(coef, x0, x1, x2, orders, npads, mode, cval):
    """The interpolated value at input coordinates (x0, x1, x2) of the 3-D
    coefficients ``coef``, with per-axis spline orders and padding."""
    ok0, i0, w0 = axis_taps(x0, coef.shape[0], orders[0], mode, npads[0])
    ok1, i1, w1 = axis_taps(x1, coef.shape[1], orders[1], mode, npads[1])
    ok2, i2, w2 = axis_taps(x2, coef.shape[2], orders[2], mode, npads[2])
    if not (ok0 and ok1 and ok2):
        return cval
    t = 0.0
    for a in range(orders[0] + 1):
        ia = i0[a]
        wa = w0[a]
        for b in range(orders[1] + 1):
            ib = i1[b]
            wb = w1[b]
            for c in range(orders[2] + 1):
                ic = i2[c]
                if ia < 0 or ib < 0 or ic < 0:
                    v = cval
                else:
                    v = coef[ia, ib, ic]
                t += v * wa * wb * w2[c]
    return t


@scalar
def _interior(x, n, order, npad):
    """(True, first tap, 4 weights) of a coordinate whose taps (odd ``order`` 1 or 3)
    all lie inside the line, where no mode applies; (False, ...) otherwise."""
    cc = x + npad
    if not (cc >= 0.0 and cc <= n - 1):
        return False, 0, (0.0, 0.0, 0.0, 0.0)
    i0, w = _spline_weights(cc, order)
    if i0 < 0 or i0 + order >= n:
        return False, 0, (0.0, 0.0, 0.0, 0.0)
    if order == 1:
        return True, i0, (w[0], 1.0 - w[0], 0.0, 0.0)
    return True, i0, (w[0], w[1], w[2], ((1.0 - w[0]) - w[1]) - w[2])


@scalar
def _interior_value(coef, x0, x1, x2, orders, npads):
    """(True, value) of a point all of whose taps are inside, for the orders with a
    fast path (1 and 3, 2-D or 3-D: unrolled, no mode arithmetic); (False, 0)
    otherwise. The same sum, in the same order, as :func:`point_value`."""
    o = orders[2]
    if not (o == 1 or o == 3) or orders[1] != o:
        return False, 0.0
    ok1, a1, u = _interior(x1, coef.shape[1], o, npads[1])
    ok2, a2, v = _interior(x2, coef.shape[2], o, npads[2])
    if not (ok1 and ok2):
        return False, 0.0
    if orders[0] == 0 and coef.shape[0] == 1:
        t = 0.0
        if o == 1:
            for i in range(2):
                for j in range(2):
                    t += coef[0, a1 + i, a2 + j] * u[i] * v[j]
        else:
            for i in range(4):
                for j in range(4):
                    t += coef[0, a1 + i, a2 + j] * u[i] * v[j]
        return True, t
    if orders[0] != o:
        return False, 0.0
    ok0, a0, w = _interior(x0, coef.shape[0], o, npads[0])
    if not ok0:
        return False, 0.0
    t = 0.0
    if o == 1:
        for h in range(2):
            for i in range(2):
                for j in range(2):
                    t += coef[a0 + h, a1 + i, a2 + j] * w[h] * u[i] * v[j]
    else:
        for h in range(4):
            for i in range(4):
                for j in range(4):
                    t += coef[a0 + h, a1 + i, a2 + j] * w[h] * u[i] * v[j]
    return True, t


@scalar
def _input_coord(k, source, p, oa, ob, oc, coords, off, matrix, shift, table):
    """Input coordinate along coefficient axis ``k`` of output point ``p`` (flat) at
    output index (oa, ob, oc)."""
    if source == COORDS:
        return coords[k - off, p] if k >= off else 0.0
    if source == MATRIX:
        # scipy's order: the offset, then each output axis' term
        t = shift[k]
        t += oa * matrix[k, 0]
        t += ob * matrix[k, 1]
        t += oc * matrix[k, 2]
        return t
    j = oa if k == 0 else (ob if k == 1 else oc)
    return table[k, j]


@driver
def sample(
    coef, out, shape, source, coords, matrix, shift, table, orders, npads, mode, cval, block
):
    """Fill ``out`` (flat float64, the C-order points of an output of 3-D ``shape``)
    with the interpolated values of the points of ``source``; ``block`` points per
    task."""
    sb = shape[1] * shape[2]
    total = out.shape[0]
    off = 3 - coords.shape[0]
    for task in prange((total + block - 1) // block):
        start = task * block
        stop = min(start + block, total)
        oa = start // sb
        rem = start - oa * sb
        ob = rem // shape[2]
        oc = rem - ob * shape[2]
        for p in range(start, stop):
            x0 = _input_coord(0, source, p, oa, ob, oc, coords, off, matrix, shift, table)
            x1 = _input_coord(1, source, p, oa, ob, oc, coords, off, matrix, shift, table)
            x2 = _input_coord(2, source, p, oa, ob, oc, coords, off, matrix, shift, table)
            ok, v = _interior_value(coef, x0, x1, x2, orders, npads)
            out[p] = v if ok else point_value(coef, x0, x1, x2, orders, npads, mode, cval)
            oc += 1
            if oc == shape[2]:
                oc = 0
                ob += 1
                if ob == shape[1]:
                    ob = 0
                    oa += 1


@driver
def prefilter_axis(c3, order, boundary, block):
    """Prefilter the lines along axis 1 of the 3-D C-contiguous float64 ``c3`` (outer,
    n, inner), in place: each task copies ``block`` neighbouring lines (contiguous
    along axis 2) into scratch lines, filters them and writes them back."""
    outer, n, inner = c3.shape
    nb = (inner + block - 1) // block
    for task in prange(outer * nb):
        o = task // nb
        k0 = (task - o * nb) * block
        k1 = min(k0 + block, inner)
        buf = np.empty((k1 - k0, n))
        for i in range(n):
            for k in range(k0, k1):
                buf[k - k0, i] = c3[o, i, k]
        for k in range(k1 - k0):
            B.prefilter_line(buf[k], order, boundary)
        for i in range(n):
            for k in range(k0, k1):
                c3[o, i, k] = buf[k - k0, i]


_GEOMETRIC = {}


def geometric_driver(mapping, orank, irank):
    """The driver of :func:`stn_numba.ndimage.geometric_transform` for the jitted
    ``mapping`` from output index tuples of ``orank`` to input coordinates of
    ``irank``, compiled with the mapping inlined (one per mapping, kept)."""
    key = (mapping, orank, irank)
    fn = _GEOMETRIC.get(key)
    if fn is not None:
        return fn

    def run(coef, out, shape, orders, npads, mode, cval, block, extra):
        sb = shape[1] * shape[2]
        total = out.shape[0]
        for task in prange((total + block - 1) // block):
            start = task * block
            stop = min(start + block, total)
            oa = start // sb
            rem = start - oa * sb
            ob = rem // shape[2]
            oc = rem - ob * shape[2]
            for p in range(start, stop):
                if orank == 1:
                    r = mapping((oc,), *extra)
                elif orank == 2:
                    r = mapping((ob, oc), *extra)
                else:
                    r = mapping((oa, ob, oc), *extra)
                if irank == 1:
                    x0, x1, x2 = 0.0, 0.0, float(r[0])
                elif irank == 2:
                    x0, x1, x2 = 0.0, float(r[0]), float(r[1])
                else:
                    x0, x1, x2 = float(r[0]), float(r[1]), float(r[2])
                out[p] = point_value(coef, x0, x1, x2, orders, npads, mode, cval)
                oc += 1
                if oc == shape[2]:
                    oc = 0
                    ob += 1
                    if ob == shape[1]:
                        ob = 0
                        oa += 1

    # Not cached on disk: the mapping is a user's function, compiled in this process.
    fn = numba.njit(parallel=True, **{**JIT_OPTIONS, "cache": False})(run)
    _GEOMETRIC[key] = fn
    return fn
