"""B-spline interpolation, written once: the weights of orders 0-5 and the prefilter.

The one owner of the B-spline arithmetic, called by the normalised sampling kernels
(``mode="bspline2"`` ... ``"bspline5"``, :mod:`stn_numba._kernels`), their CUDA twins
(:mod:`stn_numba._cuda`) and :mod:`stn_numba.ndimage`. Everything is a scalar ``njit``
function using only :mod:`math` and array indexing, so the CPU and the GPU run the
same source, in the float type of its argument (float32 data in float32).

Interpolating with a B-spline of order ``k`` is two steps:

1. **Prefilter** (:func:`prefilter_line`, along every axis): the coefficients ``c`` whose
   spline passes through the samples, ``c = B⁻¹ s`` where ``B`` is the banded matrix
   of the spline's values at the integers. ``B⁻¹`` is a product of ``k // 2`` causal
   and anticausal first-order recursions (one per pole), whose first values depend on
   how the samples are extended beyond the ends (``boundary``: whole-sample mirror,
   half-sample mirror, periodic). It is linear, so the gradient of a loss through it
   is its transpose (:func:`prefilter_line_transpose`).
2. **Sample**: the value at ``x`` is ``Σ_j c[j] β_k(x - j)`` over the ``k + 1`` taps
   ``j`` around ``x`` (:func:`spline_weights`), with the indices outside the line
   mapped back by the same extension.

Orders 0 and 1 need no prefilter (``c = s``); order 0 rounds half up
(``floor(x + 0.5)``), order 1 is linear interpolation.
"""

import math

from ._coords import cast, floor
from ._jit import kernel, scalar

#: Prefilter boundaries: how a line of samples continues beyond its ends.
MIRROR = 0  # whole-sample symmetric: ... c b | a b c d | c b ... (about the end samples)
REFLECT = 1  # half-sample symmetric: ... b a | a b c d | d c ... (about the end edges)
PERIODIC = 2  # ... c d | a b c d | a b ...
#: scipy.ndimage's half-sample mirror ("reflect", "grid-mirror", "nearest"): REFLECT as
#: scipy computes it, which does not reproduce the samples of short lines. scipy sums
#: the causal start in place in c[0], so its last term reads the partial sum instead
#: of the sample c[0]; the difference is of the order of z**(2n-1), below float64
#: rounding from about 30 samples (order 3). Only :mod:`stn_numba.ndimage` uses it,
#: to give scipy's numbers; its transpose is not provided.
REFLECT_NDIMAGE = 3

#: The poles of the prefilter of each order (orders 2-5; 0 and 1 have none): the roots
#: in (-1, 0) of the polynomial whose coefficients are the spline's values at the
#: integers, e.g. order 3: z² + 4z + 1 = 0 -> z = √3 - 2.
POLES = {
    2: (math.sqrt(8.0) - 3.0,),
    3: (math.sqrt(3.0) - 2.0,),
    4: (
        math.sqrt(664.0 - math.sqrt(438976.0)) + math.sqrt(304.0) - 19.0,
        math.sqrt(664.0 + math.sqrt(438976.0)) - math.sqrt(304.0) - 19.0,
    ),
    5: (
        math.sqrt(67.5 - math.sqrt(4436.25)) + math.sqrt(26.25) - 6.5,
        math.sqrt(67.5 + math.sqrt(4436.25)) - math.sqrt(26.25) - 6.5,
    ),
}

_P2 = POLES[2][0]
_P3 = POLES[3][0]
_P4A, _P4B = POLES[4]
_P5A, _P5B = POLES[5]

#: Terms of a boundary sum whose weight ``|z|**i`` is below this are dropped: they are
#: below float64 rounding of the sum.
_NEGLIGIBLE = 1e-18


def zero_margin(order):
    """Pixels of zeros added around an image for ``padding_mode="zeros"`` B-splines.

    The spline of an image extended by zeros has coefficients (and values) that decay
    like ``|z|**distance`` beyond the image; on a margin of this many pixels the
    largest pole's ``|z|**margin`` is below float64 rounding (2**-53), and beyond it
    the coefficients are taken as 0.
    """
    if order < 2:
        return 0
    z = abs(POLES[order][0])
    return int(math.ceil(53 * math.log(2.0) / -math.log(z))) + order


# ----------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------


@kernel
def _b5_inner(u):
    """β₅(u) for 0 <= u <= 1."""
    t = u * u
    return t * (t * (cast(0.25, u) - u / cast(12, u)) - cast(0.5, u)) + cast(0.55, u)


@kernel
def _b5_mid(u):
    """β₅(u) for 1 <= u <= 2."""
    return u * (
        u * (u * (u * (u / cast(24, u) - cast(0.375, u)) + cast(1.25, u)) - cast(1.75, u))
        + cast(0.625, u)
    ) + cast(0.425, u)


@kernel
def _b4_mid(u):
    """β₄(u) for 0.5 <= u <= 1.5."""
    return u * (
        u * (u * (cast(5, u) - u) / cast(6, u) - cast(1.25, u)) + cast(5, u) / cast(24, u)
    ) + cast(55, u) / cast(96, u)


@scalar
def spline_start(x, order):
    """Index of the first of the ``order + 1`` taps of pixel coordinate ``x`` and the
    offset ``t`` of ``x`` from its middle knot: odd orders ``t = x - floor(x)`` in
    [0, 1), even orders ``t = x - floor(x + 0.5)`` in [-0.5, 0.5)."""
    if order % 2 == 1:
        f = floor(x)
    else:
        f = floor(x + cast(0.5, x))
    return int(f) - order // 2, x - f


@kernel
def spline_weights(x, order):
    """(first tap, weights of the ``order + 1`` taps, padded with zeros to 6) of the
    B-spline of ``order`` (0-5) at pixel coordinate ``x``, in x's float type."""
    i0, t = spline_start(x, order)
    zero = cast(0, x)
    one = cast(1, x)
    half = cast(0.5, x)
    if order == 0:
        return i0, (one, zero, zero, zero, zero, zero)
    if order == 1:
        return i0, (one - t, t, zero, zero, zero, zero)
    if order == 2:
        a = half - t
        b = half + t
        return i0, (half * a * a, cast(0.75, x) - t * t, half * b * b, zero, zero, zero)
    if order == 3:
        u = one - t
        six = cast(6, x)
        w1 = (t * t * (t - cast(2, x)) * cast(3, x) + cast(4, x)) / six
        w2 = (u * u * (u - cast(2, x)) * cast(3, x) + cast(4, x)) / six
        return i0, (u * u * u / six, w1, w2, t * t * t / six, zero, zero)
    if order == 4:
        a = half - t
        b = half + t
        q = t * t
        w2 = q * (q * cast(0.25, x) - cast(0.625, x)) + cast(115, x) / cast(192, x)
        c = cast(24, x)
        return i0, (
            a * a * a * a / c,
            _b4_mid(one + t),
            w2,
            _b4_mid(one - t),
            b * b * b * b / c,
            zero,
        )
    u = one - t
    c = cast(120, x)
    return i0, (
        u * u * u * u * u / c,
        _b5_mid(one + t),
        _b5_inner(t),
        _b5_inner(u),
        _b5_mid(cast(2, x) - t),
        t * t * t * t * t / c,
    )


@kernel
def spline_weight_grads(x, order):
    """d/dx of the weights of :func:`spline_weights` (orders 1-5), same taps.

    β_k'(u) = β_{k-1}(u + 1/2) - β_{k-1}(u - 1/2), and the order-(k-1) spline at
    ``x - 1/2`` has the same first tap, so ``dw[j] = v[j - 1] - v[j]`` with ``v`` its
    weights (``v[-1] = v[k] = 0``).
    """
    _, v = spline_weights(x - cast(0.5, x), order - 1)
    zero = cast(0, x)
    return (
        -v[0],
        v[0] - v[1] if order >= 1 else zero,
        v[1] - v[2] if order >= 2 else zero,
        v[2] - v[3] if order >= 3 else zero,
        v[3] - v[4] if order >= 4 else zero,
        v[4] - v[5] if order >= 5 else zero,
    )


# ----------------------------------------------------------------------------
# Prefilter
# ----------------------------------------------------------------------------


@scalar
def _pole(order, k, like):
    """Pole ``k`` of ``order`` as like's float type (0 when there is none)."""
    if order == 2:
        z = _P2 if k == 0 else 0.0
    elif order == 3:
        z = _P3 if k == 0 else 0.0
    elif order == 4:
        z = _P4A if k == 0 else _P4B
    elif order == 5:
        z = _P5A if k == 0 else _P5B
    else:
        z = 0.0
    return cast(z, like)


@kernel
def _causal_start(c, z, boundary):
    """First value of the causal recursion ``c[i] += z c[i-1]`` for ``boundary``."""
    n = c.shape[0]
    one = cast(1, z)
    if boundary == PERIODIC:
        # Σ_{i>=0} z^i c[-i mod n] / (1 - z^n)
        acc = c[0]
        zi = z
        full = True
        for i in range(1, n):
            if abs(zi) < _NEGLIGIBLE:
                full = False
                break
            acc += zi * c[n - i]
            zi *= z
        return acc / (one - zi) if full else acc
    if boundary == REFLECT or boundary == REFLECT_NDIMAGE:
        # Σ_{i>=0} z^i c[-1-i] over the half-sample mirror, folded back into [0, n)
        zn = z**n
        acc = c[0] + zn * c[n - 1]
        zi = z
        full = True
        for i in range(1, n):
            if abs(zi) < _NEGLIGIBLE:
                full = False
                break
            if boundary == REFLECT_NDIMAGE and i == n - 1:
                acc += zi * (c[i] + zn * acc)  # scipy's aliased read of c[0]
            else:
                acc += zi * (c[i] + zn * c[n - 1 - i])
            zi *= z
        if full:
            return c[0] + acc * z / (one - zn * zn)
        return c[0] + acc * z
    # MIRROR
    zn1 = z ** (n - 1)
    acc = c[0] + zn1 * c[n - 1]
    zi = z
    full = True
    for i in range(1, n - 1):
        if abs(zi) < _NEGLIGIBLE:
            full = False
            break
        acc += zi * (c[i] + zn1 * c[n - 1 - i])
        zi *= z
    return acc / (one - zn1 * zn1) if full else acc


@kernel
def _anticausal_start(c, z, boundary):
    """First value of the anticausal recursion ``c[i] = z (c[i+1] - c[i])``."""
    n = c.shape[0]
    one = cast(1, z)
    if boundary == PERIODIC:
        acc = c[n - 1]
        zi = z
        full = True
        for i in range(n - 1):
            if abs(zi) < _NEGLIGIBLE:
                full = False
                break
            acc += zi * c[i]
            zi *= z
        if full:
            return acc * z / (zi - one)
        return -acc * z
    if boundary == REFLECT or boundary == REFLECT_NDIMAGE:
        return c[n - 1] * z / (z - one)
    return (z * c[n - 2] + c[n - 1]) * z / (z * z - one)


@kernel
def _one_pole(c, z, boundary):
    n = c.shape[0]
    c[0] = _causal_start(c, z, boundary)
    for i in range(1, n):
        c[i] += z * c[i - 1]
    c[n - 1] = _anticausal_start(c, z, boundary)
    for i in range(n - 2, -1, -1):
        c[i] = z * (c[i + 1] - c[i])


@kernel
def prefilter_line(c, order, boundary):
    """Replace the samples of the 1-D array ``c`` by their B-spline coefficients of
    ``order``, in place, in c's float type (a line of one sample, or order < 2, is
    left as it is)."""
    n = c.shape[0]
    if order < 2 or n < 2:
        return
    like = c[0]
    poles = order // 2
    gain = cast(1, like)
    for k in range(poles):
        z = _pole(order, k, like)
        gain *= (cast(1, like) - z) * (cast(1, like) - cast(1, like) / z)
    for i in range(n):
        c[i] *= gain
    for k in range(poles):
        _one_pole(c, _pole(order, k, like), boundary)


@kernel
def prefilter_line_transpose(c, order, boundary):
    """Apply the transpose of :func:`prefilter_line`'s linear map to ``c``, in place.

    Periodic and half-sample-mirror prefilters are symmetric matrices. The
    whole-sample mirror's is ``P = S D`` with ``S`` symmetric and ``D`` = diag(1/2,
    1, ..., 1, 1/2) (the end coefficients have one mirror image, the others two),
    so ``Pᵀ = D P D⁻¹``: double the end values, prefilter, halve them.
    """
    n = c.shape[0]
    if order < 2 or n < 2:
        return
    two = cast(2, c[0])
    if boundary == MIRROR:
        c[0] *= two
        c[n - 1] *= two
    prefilter_line(c, order, boundary)
    if boundary == MIRROR:
        c[0] /= two
        c[n - 1] /= two


# ----------------------------------------------------------------------------
# Tap indices beyond the ends
# ----------------------------------------------------------------------------


@scalar
def fold_index(i, n, boundary):
    """Index ``i`` (any integer) of a line of ``n`` samples extended by ``boundary``,
    folded back into [0, n)."""
    if 0 <= i < n:
        return i
    if n == 1:
        return 0
    if boundary == PERIODIC:
        i = i % n
        return i
    if boundary == REFLECT or boundary == REFLECT_NDIMAGE:
        period = 2 * n
        i = i % period
        return i if i < n else period - 1 - i
    period = 2 * n - 2
    i = i % period
    return i if i < n else period - i
