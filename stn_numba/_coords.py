"""The coordinate math, written once: grid value -> pixel coordinate -> taps and weights.

Every function here is a scalar ``njit`` function that uses only :mod:`math` and
NumPy scalars, so the CPU drivers and the CUDA kernels call the very same source.
The formulas follow PyTorch's ``aten/src/ATen/native/GridSampler.h`` in its order of
operations; the derivative each one returns is the factor by which it scales a
coordinate gradient (``d out / d in``).

Precision: every function computes in the float type of its coordinate argument
(float32 for float32 grids and θ, float64 for float64), as PyTorch does, so that
float32 results, nearest-neighbour ties included, are PyTorch's. Constants go
through :func:`cast`; a bare ``1.0`` would promote float32 arithmetic to float64.

Non-finite and huge values: a NaN coordinate is reported as *invalid* (the
sample is 0 and its gradients are 0, whatever the padding); ±inf and values
beyond ±2**40 pixels are clamped to ±2**40 (derivative 0), so that ``border``
clips them to the edge, ``reflection`` folds them back inside, ``wrap`` reads
pixel ±2**40 modulo the size (in [0, size)) and ``zeros`` leaves them outside. No float is ever
converted to an integer out of range.

docs/conventions.md describes these rules for users ("align_corners", "Padding",
"Interpolation").
"""

import math

from numba.extending import overload
from numba.np.numpy_support import as_dtype

from ._jit import JIT_OPTIONS, kernel, scalar
from ._modes import BORDER, REFLECTION, WRAP, ZEROS

#: Pixel coordinates are clamped to [-BIG, BIG]; far beyond any real image, and
#: exact in float32, float64 and int64.
BIG = 1099511627776.0  # 2**40


def cast(value, like):
    """``value`` as the float type of ``like`` (this body is what the CUDA simulator
    runs; compiled code uses the overload below, a no-op or one conversion)."""
    return type(like)(value)


@overload(cast, jit_options=JIT_OPTIONS)
def _cast(value, like):
    to = as_dtype(like).type

    def impl(value, like):
        return to(value)

    return impl


def zero_of(arr):
    """0 in the dtype of array ``arr`` (a compile-time constant: nothing is read, so
    an empty placeholder array serves as well)."""
    return arr.dtype.type(0)


@overload(zero_of, jit_options=JIT_OPTIONS)
def _zero_of(arr):
    to = as_dtype(arr.dtype).type

    def impl(arr):
        return to(0)

    return impl


@scalar
def floor(x):
    """``floor(x)`` in x's float type, for |x| <= 2**63 (``math.floor`` gives an int;
    numba-cuda 0.30.4 has no ``np.floor`` for device code: compile_ptx fails)."""
    return cast(math.floor(x), x)


@kernel
def base_coord(i, n, align_corners, like):
    """Normalised coordinate of pixel ``i`` of ``n`` in the base grid of ``affine_grid``,
    in the float type of ``like``: PyTorch's ``linspace(-1, 1, n)[i]``, times ``(n - 1)``
    and divided by ``n`` when ``align_corners`` is False; 0 when ``n == 1``.

    PyTorch's linspace fills the first half as ``start + step * i`` and the second as
    ``end - step * (n - 1 - i)``, each a fused multiply-add (one rounding). The
    float64 expression below is exact before its one rounding to float32, so float32
    base grids are PyTorch's bit for bit; float64 ones round twice (a last-bit
    difference at most).
    """
    one = cast(1, like)
    if n <= 1:
        return one - one
    step = float(cast(2, like) / cast(n - 1, like))
    if 2 * i + 1 < n:  # i < n // 2, without an integer division per pixel
        v = cast(-1.0 + step * i, like)
    else:
        v = cast(1.0 - step * (n - 1 - i), like)
    if not align_corners:
        v = (v * cast(n - 1, like)) / cast(n, like)
    return v


@scalar
def unnormalize(g, size, align_corners):
    """Grid value ``g`` -> (pixel coordinate, d coordinate / d g, valid), in g's type."""
    one = cast(1, g)
    two = cast(2, g)
    s = cast(size, g)
    if align_corners:
        scale = (s - one) / two
        x = ((g + one) / two) * (s - one)
    else:
        scale = s / two
        x = ((g + one) * s - one) / two
    big = cast(BIG, g)
    if x != x:  # NaN
        return cast(-100, g), one - one, False
    if x > big:
        return big, one - one, True
    if x < -big:
        return -big, one - one, True
    return x, scale, True


@kernel
def normalize(x, size, align_corners):
    """Pixel coordinate ``x`` -> grid value (the inverse of :func:`unnormalize`) and
    d grid value / d x, in x's type. With ``align_corners`` and ``size == 1`` every
    grid value maps to the single pixel: the result is 0 with derivative 0."""
    one = cast(1, x)
    two = cast(2, x)
    if align_corners:
        if size <= 1:
            return one - one, one - one
        scale = two / cast(size - 1, x)
        return x * scale - one, scale
    scale = two / cast(size, x)
    return (two * x + one) / cast(size, x) - one, scale


@scalar
def clip_coordinate(x, size):
    """Clip to [0, size - 1] -> (x, d); the border itself counts as clipped (PyTorch)."""
    zero = cast(0, x)
    if x <= zero:
        return zero, zero
    hi = cast(size - 1, x)
    if x >= hi:
        return hi, zero
    return x, cast(1, x)


@kernel
def reflect_coordinate(x, twice_low, twice_high):
    """Reflect ``x`` into [low, high] as often as needed -> (x, d = ±1)."""
    one = cast(1, x)
    if twice_low == twice_high:
        return one - one, one - one
    two = cast(2, x)
    lo = cast(twice_low, x) / two
    span = (cast(twice_high, x) - cast(twice_low, x)) / two
    x = x - lo
    sign = one
    if x < one - one:
        sign = -one
        x = -x
    extra = x % span  # == fmod(x, span) for x >= 0, span > 0 (exact)
    flips = floor(x / span)
    if flips - two * floor(flips / two) == one - one:
        return extra + lo, sign
    return span - extra + lo, -sign


@kernel
def wrap_coordinate(x, size):
    """``x`` modulo ``size`` -> (x in [0, size), d = 1): the image repeated with period
    ``size`` pixels, whatever ``align_corners``.

    ``%`` of non-negative floats is exact (an fmod), so the fraction of the result is
    x's own. A negative x is folded as ``size - (-x) % size``, whose one rounding can
    give ``size`` itself (x a hair below a multiple of size): that is column 0 of the
    next period, returned as 0 so that the result stays below ``size``. Within one
    period of the image (most points) the same values come without the division.
    """
    zero = cast(0, x)
    one = cast(1, x)
    s = cast(size, x)
    if x >= zero:
        if x < s:
            return x, one
        if x < s + s:
            return x - s, one  # exact (Sterbenz), as x % s
        return x % s, one
    if x >= -s:
        r = s + x  # as s - (-x) % s
    else:
        r = s - (-x) % s
    if r >= s:
        r = zero
    return r, one


@kernel
def pad_coordinate(x, size, padding_mode, align_corners):
    """Apply ``border``/``reflection``/``wrap`` padding to pixel coordinate ``x`` -> (x, d)."""
    if padding_mode == BORDER:
        return clip_coordinate(x, size)
    if padding_mode == WRAP:
        return wrap_coordinate(x, size)
    if padding_mode == REFLECTION:
        if align_corners:
            x, d = reflect_coordinate(x, 0, 2 * (size - 1))
        else:
            x, d = reflect_coordinate(x, -1, 2 * size - 1)
        x, dc = clip_coordinate(x, size)
        return x, d * dc
    return x, cast(1, x)


@scalar
def source_index(g, size, padding_mode, align_corners):
    """Grid value -> padded pixel coordinate (bilinear, nearest) -> (x, dx/dg, valid)."""
    x, d, valid = unnormalize(g, size, align_corners)
    if not valid:
        return x, d, False
    if padding_mode == ZEROS:  # no call on the common path
        return x, d, True
    x, dp = pad_coordinate(x, size, padding_mode, align_corners)
    return x, d * dp, True


@kernel
def tap_index(t, size, padding_mode, align_corners):
    """Integer tap position ``t`` (as a float) -> input index after padding, or -1 if outside.

    Used per tap by bicubic interpolation, where padding applies to each tap.
    """
    t, _ = pad_coordinate(t, size, padding_mode, align_corners)
    if t < cast(0, t) or t > cast(size - 1, t):
        return -1
    return int(t)


@scalar
def wrap_tap(i, size, padding_mode):
    """Index ``i`` of a tap right of (or at) a padded coordinate, after padding.

    For ``wrap`` the padded coordinate lies in [0, size), so its floor's next tap and
    its rounded index lie in [0, size]: ``size`` is column 0 again. The other paddings
    return ``i`` unchanged (their taps outside the image are skipped or read as 0 by
    the caller). NaN points (coordinate -100, see :func:`unnormalize`) keep their
    negative, outside, taps.
    """
    if padding_mode == WRAP and i >= size:
        return i - size
    return i


@scalar
def floor_index(x):
    """``floor(x)`` as an int64 and the fraction ``x - floor(x)``, in x's type."""
    f = floor(x)
    return int(f), x - f


@scalar
def nearest_index(x):
    """Round half to even (``np.rint``, as PyTorch's ``nearbyint``) -> int64."""
    f = floor(x)
    d = x - f
    half = cast(0.5, x)
    two = cast(2, x)
    if d > half or (d == half and f - two * floor(f / two) != cast(0, x)):
        f += cast(1, x)
    return int(f)


@scalar
def inside(i, size):
    return i >= 0 and i < size


# --- Keys cubic convolution, A = -0.75 (PyTorch's get_cubic_upsample_coefficients) ---

CUBIC_A = -0.75


@kernel
def _cc1(x):  # |x| <= 1
    A = cast(CUBIC_A, x)
    return ((A + cast(2, x)) * x - (A + cast(3, x))) * x * x + cast(1, x)


@kernel
def _cc2(x):  # 1 < |x| < 2
    A = cast(CUBIC_A, x)
    return ((A * x - cast(5, x) * A) * x + cast(8, x) * A) * x - cast(4, x) * A


@kernel
def _dcc1(x):
    A = cast(CUBIC_A, x)
    return (cast(3, x) * (A + cast(2, x)) * x - cast(2, x) * (A + cast(3, x))) * x


@kernel
def _dcc2(x):
    A = cast(CUBIC_A, x)
    return (cast(3, x) * A * x - cast(10, x) * A) * x + cast(8, x) * A


@kernel
def cubic_weights(t):
    """Weights of the taps at floor-1, floor, floor+1, floor+2 for fraction ``t``
    (PyTorch's order: the last two from ``1 - t``)."""
    one = cast(1, t)
    u = one - t
    return _cc2(t + one), _cc1(t), _cc1(u), _cc2(u + one)


@kernel
def cubic_weight_grads(t):
    """d/dt of :func:`cubic_weights`."""
    one = cast(1, t)
    two = cast(2, t)
    return _dcc2(t + one), _dcc1(t), -_dcc1(one - t), -_dcc2(two - t)
