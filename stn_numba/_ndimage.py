"""CPU drivers of :mod:`stn_numba.ndimage`: scipy.ndimage's spline interpolation as
loops over parts of the output.

Three layers, as in the rest of the package: the public functions
(:mod:`stn_numba.ndimage`) validate and dispatch; the drivers here
(:func:`sample`, :func:`prefilter_axis`, :func:`geometric_driver`) loop over part
``part`` of ``parts`` of the output (:mod:`stn_numba._pool` runs the parts on
threads); the per-point kernel :func:`point_value` maps one sampling
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
and 3-D images, every order and every mode (all runtime arguments). Order-3
coefficients of a small image carry two more at each end of the interpolated axes,
folded as the mode's taps are (:func:`fold_pad`), so that the vectorised loop also
takes the points near the edges; the arithmetic is on the image's coefficients
(:func:`axis_taps`), so the bits are the same. The modes that map a point beyond the
image back into it (mirror, reflect, wrap, grid-wrap) map a segment's points before
that loop, which then takes them too.
"""

import math

import numba
import numpy as np

from . import _bspline as B
from ._jit import JIT_OPTIONS, kernel, pooled, scalar
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

#: Lines that one task prefilters together, columns of a strided axis (one vector
#: loop per recursion step) or rows of the contiguous axis (independent recursions
#: that the core overlaps).
COLUMN_BLOCK = 64
ROW_BLOCK = 8

#: Output points that one task of the sampling driver covers, at least (whole
#: segments of a row; the unit that the parts of a call share).
TASK_POINTS = 4096

#: Coefficients up to this size that a call on one thread reads in order first
#: (:func:`warm`): within a core's L2 cache on current CPUs.
WARM_BYTES = 1 << 19

#: Work from which a call runs on threads: taps read by the sampling drivers
#: (a 256×256 image at order 1), samples per axis for the prefilter (a 724×724
#: image). A smaller call runs on the calling thread, because handing a part to
#: another thread costs more than it saves.
PARALLEL_FROM = 1 << 18
PREFILTER_PARALLEL_FROM = 1 << 19


@kernel
def share(n, part, parts):
    """The tasks ``lo .. hi - 1`` of part ``part`` of ``parts`` of ``n`` tasks (the
    parts split them evenly and cover each once)."""
    return part * n // parts, (part + 1) * n // parts


@scalar
def warm(a, sink):
    """Read one value per 64-byte line of C-contiguous ``a``, in order, and store
    their sum in ``sink[0]`` (so that the reads are kept). The hardware prefetcher
    follows such a pass, where it cannot follow the rows that a rotation or a
    coordinate array reads: a cold image costs one miss per line otherwise."""
    flat = a.reshape(a.size)
    step = max(1, 64 // flat.itemsize)
    t = 0.0
    for i in range(0, flat.size, step):
        t += flat[i]
    sink[0] = t


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
def axis_taps(x, n, order, mode, npad, cpad):
    """(inside, tap indices, tap weights) of coordinate ``x`` along an axis of ``n``
    coefficients: ``npad`` of them the prefiltered padding of the image
    (:data:`stn_numba.ndimage._NPAD`; ``x`` is shifted by it), ``cpad`` at each end
    the coefficients folded by the mode (:func:`stn_numba.ndimage._fold_pad`; the
    taps are read there, the arithmetic is on the ``n - 2 * cpad`` others).
    ``inside`` False means the point is cval (scipy's 'constant' outside the image,
    or a non-finite x)."""
    n = n - 2 * cpad
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
    if i0 >= -cpad and i0 + order < n + cpad:
        i = i0 + cpad
        return True, (i, i + 1, i + 2, i + 3, i + 4, i + 5), w
    # cpad is 0 for 'grid-constant', whose fold gives -1 beyond the ends; the taps
    # past ``order`` are never read (a fold costs a division)
    idx = (
        fold_tap(i0, n, mode) + cpad,
        fold_tap(i0 + 1, n, mode) + cpad if order >= 1 else 0,
        fold_tap(i0 + 2, n, mode) + cpad if order >= 2 else 0,
        fold_tap(i0 + 3, n, mode) + cpad if order >= 3 else 0,
        fold_tap(i0 + 4, n, mode) + cpad if order >= 4 else 0,
        fold_tap(i0 + 5, n, mode) + cpad if order >= 5 else 0,
    )
    return True, idx, w


@kernel
def fold_pad(c, p, pads, mode, cval):
    """Fill ``p`` with the 3-D ``c`` and ``pads[k]`` more values at each end of axis
    ``k``, those folded back as ``mode``'s taps are (:func:`fold_tap`; cval for
    'grid-constant')."""
    n0, n1, n2 = c.shape
    k0, k1, k2 = pads
    if mode == ND_GRID_CONSTANT:
        # a loop of its own: the tests of the one below kept its copy from vectorising
        p[:] = cval
        for a in range(n0):
            for b in range(n1):
                for j in range(n2):
                    p[k0 + a, k1 + b, k2 + j] = c[a, b, j]
        return
    for a in range(n0 + 2 * k0):
        sa = fold_tap(a - k0, n0, mode)
        for b in range(n1 + 2 * k1):
            sb = fold_tap(b - k1, n1, mode)
            for j in range(k2):
                p[a, b, j] = c[sa, sb, fold_tap(j - k2, n2, mode)]
                p[a, b, k2 + n2 + j] = c[sa, sb, fold_tap(n2 + j, n2, mode)]
            for j in range(n2):
                p[a, b, k2 + j] = c[sa, sb, j]


@kernel
def point_value(coef, x0, x1, x2, orders, npads, cpads, mode, cval):
    """The interpolated value at input coordinates (x0, x1, x2) of the 3-D
    coefficients ``coef``, with per-axis spline orders and padding (both kinds:
    :func:`axis_taps`)."""
    ok0, i0, w0 = axis_taps(x0, coef.shape[0], orders[0], mode, npads[0], cpads[0])
    ok1, i1, w1 = axis_taps(x1, coef.shape[1], orders[1], mode, npads[1], cpads[1])
    ok2, i2, w2 = axis_taps(x2, coef.shape[2], orders[2], mode, npads[2], cpads[2])
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


@scalar
def _stage_weights(cc, n, order, cpad):
    """(inside, first tap, 4 weights) of coefficient coordinate ``cc`` for odd
    ``order`` 1 or 3 on a line of ``n`` coefficients with ``cpad`` folded ones at
    each end (:func:`axis_taps`; order 3 only), written without calls or early exits so that a
    loop of them vectorises: ``inside`` is False (and the rest meaningless but
    finite) when ``cc`` is beyond [0, n - 1] or not finite, or a tap falls outside
    the padded line. The weights are scipy's (the last one ``1 -`` the others)."""
    inside = (cc >= 0.0) & (cc <= n - 1)
    c = cc if inside else 0.0
    f = math.floor(c)
    t = c - f
    if order == 1:
        # never padded (cpad is 0): with cpad in these two lines, the trilinear loop
        # ran at half speed
        i0 = int(f)
        inside = inside & (i0 + 1 < n)
        w0 = 1.0 - t
        return inside, i0, w0, 1.0 - w0, 0.0, 0.0
    i0 = int(f) - 1
    inside = inside & (i0 >= -cpad) & (i0 + 3 < n + cpad)
    u = 1.0 - t
    w0 = u * u * u / 6.0
    w1 = (t * t * (t - 2.0) * 3.0 + 4.0) / 6.0
    w2 = (u * u * (u - 2.0) * 3.0 + 4.0) / 6.0
    return inside, i0 + cpad, w0, w1, w2, ((1.0 - w0) - w1) - w2


@scalar
def _segment_weights(
    coef, source, coords, off, cbase, c0, c1, bases, steps, npads, cpads, order, three,
    idx, wts, inside, far, xs, mode,
):  # fmt: skip
    """The taps and weights along each interpolated axis of points ``c0 .. c1 - 1``
    of one output row (``coords[:, cbase + oc]``), for a literal ``order`` (1 or 3) and
    dimensionality, in a loop that vectorises: ``idx[k, q]`` the first tap and
    ``wts[k, :, q]`` the weights along axis ``k`` of point ``q``, ``inside[q]`` whether
    all its taps are in the array, ``far[q]`` whether it is one of scipy's
    ``'constant'`` points beyond the image (cval)."""
    m = c1 - c0
    first = 0 if three else 1
    constant = mode == ND_CONSTANT
    # written so that it vectorises: weights as (axis, tap, point), no calls taking
    # arrays, no short-circuit operators
    for k in range(first, 3):
        cp = cpads[k]
        nk = coef.shape[k] - 2 * cp
        hi = nk - 1
        b = bases[k]
        st = steps[k]
        pad = npads[k]
        # the coordinates first, so that the loop below has no branch on the source
        if source == MATRIX:
            for q in range(m):
                xs[q] = b + (c0 + q) * st
        else:
            seg = coords[max(k - off, 0), cbase + c0 : cbase + c1]  # from 0: in order
            for q in range(m):
                xs[q] = seg[q]
        for q in range(m):
            x = xs[q]
            ok, i0, w0, w1, w2, w3 = _stage_weights(x + pad, nk, order, cp)
            # scipy's 'constant': a coordinate beyond [0, n - 1] (or not finite) is cval
            beyond = constant & (not ((x >= 0.0) & (x <= hi)))
            if k == first:
                inside[q] = ok
                far[q] = beyond
            else:
                inside[q] = inside[q] & ok
                far[q] = far[q] | beyond
            idx[k, q] = i0
            wts[k, 0, q] = w0
            wts[k, 1, q] = w1
            if order == 3:
                wts[k, 2, q] = w2
                wts[k, 3, q] = w3


@scalar
def _segment_sums(coef, out, p0, m, order, three, a0, idx, wts, inside, far, cval):
    """Write the ``m`` points of :func:`_segment_weights` to flat ``out[p0 + q]``,
    those whose taps are all inside (from plane ``a0`` of axis 0 unless ``three``),
    and cval to scipy's ``'constant'`` points beyond the image; the others are the
    caller's. Per column of taps ``j``, ``v_j`` is the sum over the rows of taps of
    the row's weight times the tap, and the value is the sum over ``j`` of
    ``w_j * v_j`` (the same terms as scipy's, grouped by column: equal to float64
    rounding, with independent sums that the core overlaps)."""
    nt = order + 1
    n1 = coef.shape[1]
    n2 = coef.shape[2]
    s0 = n1 * n2
    flat = coef.reshape(coef.size)
    nh = nt if three else 1
    one = np.uint64(1)
    for q in range(m):
        if inside[q]:
            h0 = idx[0, q] if three else a0
            b = (h0 * n1 + idx[1, q]) * n2 + idx[2, q]
            v0 = 0.0
            v1 = 0.0
            v2 = 0.0
            v3 = 0.0
            for h in range(nh):
                for i in range(nt):
                    g = wts[0, h, q] * wts[1, i, q] if three else wts[1, i, q]
                    # unsigned: no wraparound test, and the four taps are adjacent
                    r = np.uint64(b + h * s0 + i * n2)
                    v0 += g * flat[r]
                    v1 += g * flat[r + one]
                    if order == 3:
                        v2 += g * flat[r + one + one]
                        v3 += g * flat[r + one + one + one]
            if order == 3:
                t = (wts[2, 0, q] * v0 + wts[2, 1, q] * v1) + (
                    wts[2, 2, q] * v2 + wts[2, 3, q] * v3
                )
            else:
                t = wts[2, 0, q] * v0 + wts[2, 1, q] * v1
            out[p0 + q] = t
        elif far[q]:
            out[p0 + q] = cval


@kernel
def _segment(
    coef, out, source, coords, off, cbase, p0, c0, c1, bases, steps, npads, cpads, order,
    three, planes, ostride, idx, wts, inside, far, xs, mode, cval,
):  # fmt: skip
    """Points ``c0 .. c1 - 1`` of one output row (flat ``p0 + oc``; coordinates
    ``coords[:, cbase + oc]`` from a coordinate source) whose taps are
    all inside, and scipy's ``'constant'`` points beyond the image; ``inside`` and
    ``far`` are left False for the others, which are the caller's (near an edge, or
    another mode beyond it). The taps and weights serve each entry of ``planes``:
    plane ``planes[ch]`` of axis 0 (unless it is interpolated) is written to flat
    ``p0 + ch * ostride``. ``order`` and ``three`` are made constants here: one loop
    per case, so that none of them branches on them per point."""
    m = c1 - c0
    if three:
        if order == 1:
            _segment_weights(
                coef, source, coords, off, cbase, c0, c1, bases, steps, npads, cpads, 1, True,
                idx, wts, inside, far, xs, mode,
            )  # fmt: skip
            _segment_sums(coef, out, p0 + c0, m, 1, True, 0, idx, wts, inside, far, cval)
        else:
            _segment_weights(
                coef, source, coords, off, cbase, c0, c1, bases, steps, npads, cpads, 3, True,
                idx, wts, inside, far, xs, mode,
            )  # fmt: skip
            _segment_sums(coef, out, p0 + c0, m, 3, True, 0, idx, wts, inside, far, cval)
    elif order == 1:
        _segment_weights(
            coef, source, coords, off, cbase, c0, c1, bases, steps, npads, cpads, 1, False, idx,
            wts, inside, far, xs, mode,
        )  # fmt: skip
        for ch in range(planes.shape[0]):
            _segment_sums(
                coef, out, p0 + ch * ostride + c0, m, 1, False, planes[ch], idx, wts, inside,
                far, cval,
            )  # fmt: skip
    else:
        _segment_weights(
            coef, source, coords, off, cbase, c0, c1, bases, steps, npads, cpads, 3, False, idx,
            wts, inside, far, xs, mode,
        )  # fmt: skip
        for ch in range(planes.shape[0]):
            _segment_sums(
                coef, out, p0 + ch * ostride + c0, m, 3, False, planes[ch], idx, wts, inside,
                far, cval,
            )  # fmt: skip


@kernel
def _premap(
    coef, source, coords, off, p0, c0, m, bases, steps, two_d, npads, cpads, orders, mode,
    gconst, clamps, mapped, gone,
):  # fmt: skip
    """The coordinates of a segment's ``m`` points (output row ``p0``, from column
    ``c0``) into ``mapped[k, :m]``, for the segment to read: those beyond the image
    mapped back into it as :func:`axis_taps` maps them; 'nearest' at order 1 clamped
    to -1 and n; for 'grid-constant', ``gone[q]``: whether every tap along an axis is
    beyond it. Not part of the segment's loop: there, it slowed that loop for every
    mode."""
    gone[:m] = False
    for k in range(1 if two_d else 0, 3):
        nk = coef.shape[k] - 2 * cpads[k]
        row = mapped[k]
        # one loop per case: simple loops vectorise
        if source == MATRIX:
            for q in range(m):
                row[q] = bases[k] + (c0 + q) * steps[k]
        elif k >= off:
            for q in range(m):
                row[q] = coords[k - off, p0 + c0 + q]
        else:
            row[:m] = 0.0
        if gconst:
            # every tap beyond the (padded) line: x + npad below -(order + 1) / 2 or
            # at least n + (order - 1) / 2
            lo = -0.5 * (orders[k] + 1) - npads[k]
            top = nk + 0.5 * (orders[k] - 1) - npads[k]
            for q in range(m):
                x = row[q]
                gone[q] = gone[q] | (x < lo) | (x >= top)
        elif clamps:
            # 'nearest' beyond the image is its edge, as at -1 and n (whose taps are
            # in the padding, copies of the edge)
            hi = float(nk - 2 * npads[k])
            for q in range(m):
                x = row[q]
                row[q] = -1.0 if x < -1.0 else (hi if x > hi else x)
        else:
            for q in range(m):
                x = row[q]
                if not ((x >= 0.0) & (x <= nk - 1)) and math.isfinite(x):
                    row[q] = map_point(min(max(x, -_FAR), _FAR), nk, mode)


@pooled
def sample(
    coef,
    out,
    shape,
    source,
    coords,
    matrix,
    shift,
    table,
    orders,
    npads,
    cpads,
    mode,
    cval,
    block,
    part,
    parts,
):
    """Fill ``out`` (flat float64 or float32, the C-order points of an output of 3-D
    ``shape``) with the interpolated values of the points of ``source``: the tasks of
    part ``part`` of ``parts``, a task being a few segments of at most ``block`` points
    of one output row (of each plane, for a stack of planes transformed alike)."""
    w = shape[2]
    nseg = (w + block - 1) // block
    off = 3 - coords.shape[0]
    o = orders[2]
    # axis 0 read at one index per row, order 0 (2-D images; an axis that an affine
    # map leaves as it is): only axes 1 and 2 are interpolated per point
    two_d = orders[0] == 0 and (coef.shape[0] == 1 or (source == MATRIX and matrix[0, 2] == 0.0))
    fast = (
        source != TABLE
        and (o == 1 or o == 3)
        and orders[1] == o
        and (two_d or orders[0] == o)
        # every tap of a point at the first sample is in the array
        and coef.shape[2] > o
        and coef.shape[1] > o
        and (two_d or coef.shape[0] > o)
    )
    # A stack of 2-D images transformed alike (axis 0 maps to itself, its plane
    # index independent of the row and column, and the plane's map independent of
    # the plane): each point's taps and weights serve every plane, so a task covers
    # a row of every plane.
    nplanes = 1
    stack = np.zeros(1, np.int64)
    if (
        fast
        and two_d
        and source == MATRIX
        and shape[0] > 1
        and matrix[0, 1] == 0.0
        and matrix[0, 2] == 0.0
        and matrix[1, 0] == 0.0
        and matrix[2, 0] == 0.0
    ):
        stack = np.empty(shape[0], np.int64)
        nplanes = shape[0]
        for oa in range(shape[0]):
            # orders[0] (0 here), not a literal 0: Numba would compile axis_taps once
            # more for the literal; this way point_value's compilation serves it
            ok0, t0, _ = axis_taps(
                shift[0] + oa * matrix[0, 0], coef.shape[0], orders[0], mode, npads[0], cpads[0]
            )
            stack[oa] = t0[0]
            if not ok0:
                nplanes = 1  # a plane beyond the image: cval, per plane
    rows = shape[0] * shape[1] // nplanes
    ostride = shape[1] * w
    nsegs = rows * nseg
    # a task (the unit that the parts share) is a few segments, TASK_POINTS points at least
    per_task = max(1, TASK_POINTS // (min(block, w) * nplanes))
    ntasks = (nsegs + per_task - 1) // per_task
    lo, hi = share(ntasks, part, parts)
    # (padded coefficients were just written: they are in the cache)
    if parts == 1 and coef.size * coef.itemsize <= WARM_BYTES and cpads[1] + cpads[2] == 0:
        warm(coef, np.empty(1))
    # scratch of the part's segments, allocated once (a new allocation of this size
    # can cost page faults)
    idx = np.empty((3, block), np.int64)
    wts = np.empty((3, 4, block))
    inside = np.empty(block, np.bool_)
    far = np.empty(block, np.bool_)
    xs = np.empty(block)
    # the modes that map a point beyond the image back into it (the segment's points
    # are mapped first, into ``mapped``)
    folds = mode != ND_CONSTANT and mode != ND_NEAREST and mode != ND_GRID_CONSTANT
    gconst = mode == ND_GRID_CONSTANT
    # 'nearest' at order 1 with its padding of 2 (stn_numba.ndimage._NPAD1)
    clamps = mode == ND_NEAREST and o == 1 and npads[1] >= 2 and npads[2] >= 2
    mapped = np.empty((3, block if folds or gconst or clamps else 0))
    gone = np.zeros(block, np.bool_)  # stays False but for 'grid-constant'
    planes = stack if nplanes > 1 else np.zeros(1, np.int64)  # read only if shared
    for task in range(lo, hi):
        for seg in range(task * per_task, min(task * per_task + per_task, nsegs)):
            r = seg // nseg
            c0 = (seg - r * nseg) * block
            c1 = min(c0 + block, w)
            oa = r // shape[1]
            ob = r - oa * shape[1]
            p0 = r * w
            if fast:
                # the row's part of scipy's affine sum, in its order: the offset, then the
                # terms of output axes 0 and 1 (axis 2's is added per point)
                bases = (
                    shift[0] + oa * matrix[0, 0] + ob * matrix[0, 1],
                    shift[1] + oa * matrix[1, 0] + ob * matrix[1, 1],
                    shift[2] + oa * matrix[2, 0] + ob * matrix[2, 1],
                )
                steps = (matrix[0, 2], matrix[1, 2], matrix[2, 2])
                m = c1 - c0
                if nplanes == 1 and two_d and coef.shape[0] > 1:
                    ok0, t0, _ = axis_taps(
                        bases[0], coef.shape[0], orders[0], mode, npads[0], cpads[0]
                    )
                    planes[0] = t0[0] if ok0 else -1
                if planes[0] >= 0 and (folds or gconst or clamps):
                    # the points' coordinates for the segment to read: those beyond the
                    # image mapped back into it as axis_taps maps them; for
                    # 'grid-constant', whether every tap along an axis is beyond it
                    # (done there, it slowed the segment's vector loops for every mode)
                    _premap(
                        coef, source, coords, off, p0, c0, m, bases, steps, two_d, npads,
                        cpads, orders, mode, gconst, clamps, mapped, gone,
                    )  # fmt: skip
                    if gconst:
                        for q in range(m):
                            if gone[q]:
                                for ch in range(nplanes):
                                    out[p0 + ch * ostride + c0 + q] = cval
                    seg_source, seg_coords, seg_off, seg_base = COORDS, mapped, 0, -c0
                else:
                    seg_source, seg_coords, seg_off, seg_base = source, coords, off, p0
                if planes[0] >= 0:
                    # one call, with the arguments of either case in variables of one
                    # type: a call with the constants would compile _segment once more
                    _segment(
                        coef, out, seg_source, seg_coords, seg_off, seg_base, p0, c0, c1, bases,
                        steps, npads, cpads, o, not two_d, planes, ostride, idx, wts, inside,
                        far, xs, mode, cval,
                    )  # fmt: skip
                    # the points left to the per-point path, counted in a vector loop
                    # (a scan for them costs ~5 % of a call that has none)
                    left = 0
                    for q in range(m):
                        done = inside[q] | far[q] | gone[q]
                        inside[q] = done
                        left += not done
                else:
                    inside[:m] = False
                    left = m
                for ch in range(nplanes if left > 0 else 0):
                    pc = p0 + ch * ostride
                    ac = oa + ch
                    for q in range(m):
                        if not inside[q]:
                            oc = c0 + q
                            p = pc + oc
                            x0 = _input_coord(
                                0, source, p, ac, ob, oc, coords, off, matrix, shift, table
                            )
                            x1 = _input_coord(
                                1, source, p, ac, ob, oc, coords, off, matrix, shift, table
                            )
                            x2 = _input_coord(
                                2, source, p, ac, ob, oc, coords, off, matrix, shift, table
                            )
                            out[p] = point_value(coef, x0, x1, x2, orders, npads, cpads, mode, cval)
            else:
                for oc in range(c0, c1):
                    p = p0 + oc
                    x0 = _input_coord(0, source, p, oa, ob, oc, coords, off, matrix, shift, table)
                    x1 = _input_coord(1, source, p, oa, ob, oc, coords, off, matrix, shift, table)
                    x2 = _input_coord(2, source, p, oa, ob, oc, coords, off, matrix, shift, table)
                    out[p] = point_value(coef, x0, x1, x2, orders, npads, cpads, mode, cval)


@kernel
def _axis_table(table, k, n, count, order, mode, npad, cpad):
    """(inside, tap indices, tap weights) of the first ``count`` coordinates of row
    ``k`` of ``table``: :func:`axis_taps` once per output index of one axis."""
    ok = np.empty(count, np.bool_)
    idx = np.empty((count, 6), np.int64)
    wts = np.empty((count, 6))
    for j in range(count):
        inside, i, w = axis_taps(table[k, j], n, order, mode, npad, cpad)
        ok[j] = inside
        for t in range(6):
            idx[j, t] = i[t]
            wts[j, t] = w[t]
    return ok, idx, wts


@pooled
def sample_separable(coef, out, shape, table, orders, npads, cpads, mode, cval, part, parts):
    """Fill ``out`` (flat, the C-order points of an output of 3-D ``shape``) with the
    values at the coordinates ``table[k, i_k]`` along each axis ``k`` (zoom, shift, a
    diagonal affine_transform), as scipy's ``NI_ZoomShift``: the taps and weights of
    each axis are computed once per output index, not once per point. Per output
    row, the two leading axes' taps are summed first into a line along axis 2
    (``tmp``, with the sum of the weights times cval for the taps beyond the end of
    'grid-constant' in its last slot), then each point sums its axis-2 taps of that
    line: the same terms as scipy's, grouped by axis (so equal to float64 rounding).
    ``cpads`` is (0, 0, 0): these coefficients are not padded (:func:`axis_taps`).
    Runs the output rows of part ``part`` of ``parts``."""
    n2 = coef.shape[2]
    ok0, i0, w0 = _axis_table(
        table, 0, coef.shape[0], shape[0], orders[0], mode, npads[0], cpads[0]
    )
    ok1, i1, w1 = _axis_table(
        table, 1, coef.shape[1], shape[1], orders[1], mode, npads[1], cpads[1]
    )
    ok2, i2, w2 = _axis_table(table, 2, n2, shape[2], orders[2], mode, npads[2], cpads[2])
    for c in range(shape[2]):
        for j in range(6):
            if i2[c, j] < 0:
                i2[c, j] = n2
    w = shape[2]
    nt0 = orders[0] + 1
    nt1 = orders[1] + 1
    nt2 = orders[2] + 1
    rows = shape[0] * shape[1]
    lo, hi = share(rows, part, parts)
    for r in range(lo, hi):
        a = r // shape[1]
        b = r - a * shape[1]
        p0 = r * w
        if not (ok0[a] and ok1[b]):
            for c in range(w):
                out[p0 + c] = cval
            continue
        tmp = np.zeros(n2 + 1)
        for h in range(nt0):
            ia = i0[a, h]
            for i in range(nt1):
                ib = i1[b, i]
                g = w0[a, h] * w1[b, i]
                if ia < 0 or ib < 0:
                    for x in range(n2):
                        tmp[x] += cval * g
                else:
                    for x in range(n2):
                        tmp[x] += coef[ia, ib, x] * g
                tmp[n2] += cval * g
        for c in range(w):
            if ok2[c]:
                t = 0.0
                for j in range(nt2):
                    t += tmp[i2[c, j]] * w2[c, j]
                out[p0 + c] = t
            else:
                out[p0 + c] = cval


@kernel
def _causal_start(c, b, s, n, z, boundary):
    """:func:`stn_numba._bspline._causal_start` of the line ``c[b + i * s]``,
    ``i < n``, with the same operations in the same order (so the same bits)."""
    one = 1.0
    if boundary == B.PERIODIC:
        acc = c[b]
        zi = z
        full = True
        for i in range(1, n):
            if abs(zi) < B._NEGLIGIBLE:
                full = False
                break
            acc += zi * c[b + (n - i) * s]
            zi *= z
        return acc / (one - zi) if full else acc
    if boundary == B.REFLECT or boundary == B.REFLECT_NDIMAGE:
        zn = z**n
        acc = c[b] + zn * c[b + (n - 1) * s]
        zi = z
        full = True
        for i in range(1, n):
            if abs(zi) < B._NEGLIGIBLE:
                full = False
                break
            if boundary == B.REFLECT_NDIMAGE and i == n - 1:
                acc += zi * (c[b + i * s] + zn * acc)
            else:
                acc += zi * (c[b + i * s] + zn * c[b + (n - 1 - i) * s])
            zi *= z
        if full:
            return c[b] + acc * z / (one - zn * zn)
        return c[b] + acc * z
    zn1 = z ** (n - 1)
    acc = c[b] + zn1 * c[b + (n - 1) * s]
    zi = z
    full = True
    for i in range(1, n - 1):
        if abs(zi) < B._NEGLIGIBLE:
            full = False
            break
        acc += zi * (c[b + i * s] + zn1 * c[b + (n - 1 - i) * s])
        zi *= z
    return acc / (one - zn1 * zn1) if full else acc


@kernel
def _anticausal_start(c, b, s, n, z, boundary):
    """:func:`stn_numba._bspline._anticausal_start` of the line ``c[b + i * s]``."""
    one = 1.0
    last = c[b + (n - 1) * s]
    if boundary == B.PERIODIC:
        acc = last
        zi = z
        full = True
        for i in range(n - 1):
            if abs(zi) < B._NEGLIGIBLE:
                full = False
                break
            acc += zi * c[b + i * s]
            zi *= z
        if full:
            return acc * z / (zi - one)
        return -acc * z
    if boundary == B.REFLECT or boundary == B.REFLECT_NDIMAGE:
        return last * z / (z - one)
    return (z * c[b + (n - 2) * s] + last) * z / (z * z - one)


@scalar
def _filter_lines(c, src, base, s_i, s_k, k0, k1, n, order, boundary):
    """:func:`stn_numba._bspline.prefilter_line` of the lines ``k0 .. k1 - 1`` of the
    flat ``src`` (element ``i`` of line ``k`` at ``base + i * s_i + k * s_k``) into the
    same places of the flat float64 ``c`` (``src`` may be ``c``: in place), all at
    once: each step of a recursion runs over the lines, which are independent (a
    vector loop where ``s_k`` is 1, independent chains of the latency-bound recursion
    where it is not)."""
    poles = order // 2
    gain = 1.0
    for p in range(poles):
        z = B._pole(order, p, 1.0)
        gain *= (1.0 - z) * (1.0 - 1.0 / z)
    # unsigned offsets: no negative-index test, so the loops over the lines are
    # vector loops where they are contiguous
    si = np.uint64(s_i)
    sk = np.uint64(s_k)
    ub = np.uint64(base)
    for i in range(n):
        row = ub + np.uint64(i) * si
        for k in range(k0, k1):
            kk = row + np.uint64(k) * sk
            c[kk] = src[kk] * gain
    # the previous value of each line is kept in ``prev`` (not read back from ``c``),
    # so that a step's loop over the lines has no dependence through ``c``
    prev = np.empty(k1 - k0)
    for p in range(poles):
        z = B._pole(order, p, 1.0)
        for k in range(k0, k1):
            v = _causal_start(c, base + k * s_k, s_i, n, z, boundary)
            c[ub + np.uint64(k) * sk] = v
            prev[k - k0] = v
        for i in range(1, n):
            row = ub + np.uint64(i) * si
            for k in range(k0, k1):
                kk = row + np.uint64(k) * sk
                v = c[kk] + z * prev[k - k0]
                c[kk] = v
                prev[k - k0] = v
        last = ub + np.uint64(n - 1) * si
        for k in range(k0, k1):
            v = _anticausal_start(c, base + k * s_k, s_i, n, z, boundary)
            c[last + np.uint64(k) * sk] = v
            prev[k - k0] = v
        for i in range(n - 2, -1, -1):
            row = ub + np.uint64(i) * si
            for k in range(k0, k1):
                kk = row + np.uint64(k) * sk
                v = z * (prev[k - k0] - c[kk])
                c[kk] = v
                prev[k - k0] = v


@pooled
def prefilter_axis(c, src, outer, n, inner, order, boundary, block, part, parts):
    """Prefilter the lines along axis 1 of the C-contiguous flat ``src`` seen as
    (outer, n, inner) into the float64 ``c`` of the same shape (``src`` may be ``c``;
    else the conversion to float64 is this pass's, not one more pass over memory). A
    task filters ``block`` neighbouring lines together: along axis 2 where
    ``inner > 1`` (a contiguous block of columns), else ``block`` consecutive lines
    of the (outer, n) rows. Runs the tasks of part ``part`` of ``parts``."""
    if inner > 1:
        nb = (inner + block - 1) // block
        lo, hi = share(outer * nb, part, parts)
        for task in range(lo, hi):
            o = task // nb
            k0 = (task - o * nb) * block
            k1 = min(k0 + block, inner)
            _filter_lines(c, src, o * n * inner, inner, 1, k0, k1, n, order, boundary)
    else:
        lo, hi = share((outer + block - 1) // block, part, parts)
        for task in range(lo, hi):
            k0 = task * block
            k1 = min(k0 + block, outer)
            _filter_lines(c, src, 0, 1, n, k0, k1, n, order, boundary)


_GEOMETRIC = {}


def geometric_driver(mapping, orank, irank):
    """The driver of :func:`stn_numba.ndimage.geometric_transform` for the jitted
    ``mapping`` from output index tuples of ``orank`` to input coordinates of
    ``irank``, compiled with the mapping inlined (one per mapping, kept)."""
    key = (mapping, orank, irank)
    fn = _GEOMETRIC.get(key)
    if fn is not None:
        return fn

    def run(coef, out, shape, orders, npads, cpads, mode, cval, block, extra, part, parts):
        sb = shape[1] * shape[2]
        total = out.shape[0]
        lo, hi = share((total + block - 1) // block, part, parts)
        for task in range(lo, hi):
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
                out[p] = point_value(coef, x0, x1, x2, orders, npads, cpads, mode, cval)
                oc += 1
                if oc == shape[2]:
                    oc = 0
                    ob += 1
                    if ob == shape[1]:
                        ob = 0
                        oa += 1

    # Not cached on disk: the mapping is a user's function, compiled in this process.
    fn = numba.njit(**{**JIT_OPTIONS, "cache": False})(run)
    _GEOMETRIC[key] = fn
    return fn
