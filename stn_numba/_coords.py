"""The coordinate math, written once: grid value -> pixel coordinate -> taps and weights.

Every function here is a scalar ``njit`` function that uses only :mod:`math`, so
the CPU drivers and the CUDA kernels call the very same source. The formulas
follow PyTorch's ``aten/src/ATen/native/GridSampler.h``; the
derivative each one returns is the factor by which it scales a coordinate
gradient (``d out / d in``).

Non-finite and huge values: a NaN coordinate is reported as *invalid* (the
sample is 0 and its gradients are 0, whatever the padding); ±inf and values
beyond ±2**40 pixels are clamped to ±2**40 (derivative 0), so that ``border``
clips them to the edge, ``reflection`` folds them back inside and ``zeros``
leaves them outside. No float is ever converted to an integer out of range.
"""

import math

from ._jit import kernel as scalar
from ._modes import BORDER, REFLECTION, ZEROS

#: Pixel coordinates are clamped to [-BIG, BIG]; far beyond any real image,
#: well inside the exact-integer range of float64 and of int64.
BIG = 1099511627776.0  # 2**40


@scalar
def base_coord(i, n, align_corners):
    """Normalised coordinate of pixel ``i`` of ``n`` in the base grid of ``affine_grid``.

    ``linspace(-1, 1, n)[i]``, times ``(n - 1) / n`` when ``align_corners`` is False;
    0 when ``n == 1`` (PyTorch's ``linspace_from_neg_one``).
    """
    if n <= 1:
        return 0.0
    step = 2.0 / (n - 1)
    # PyTorch's linspace fills the first half from the start, the second from the end.
    if 2 * i + 1 < n:  # i < n // 2, without an integer division per pixel
        v = -1.0 + step * i
    else:
        v = 1.0 - step * (n - 1 - i)
    if not align_corners:
        v = v * ((n - 1) / n)
    return v


@scalar
def unnormalize(g, size, align_corners):
    """Grid value ``g`` -> (pixel coordinate, d coordinate / d g, valid)."""
    if align_corners:
        scale = (size - 1) * 0.5
        x = (g + 1.0) * scale
    else:
        scale = size * 0.5
        x = ((g + 1.0) * size - 1.0) * 0.5
    if x != x:  # NaN
        return -100.0, 0.0, False
    if x > BIG:
        return BIG, 0.0, True
    if x < -BIG:
        return -BIG, 0.0, True
    return x, scale, True


@scalar
def normalize(x, size, align_corners):
    """Pixel coordinate ``x`` -> grid value (the inverse of :func:`unnormalize`) and
    d grid value / d x. With ``align_corners`` and ``size == 1`` every grid value maps
    to the single pixel: the result is 0 with derivative 0."""
    if align_corners:
        if size <= 1:
            return 0.0, 0.0
        scale = 2.0 / (size - 1)
        return x * scale - 1.0, scale
    scale = 2.0 / size
    return (2.0 * x + 1.0) / size - 1.0, scale


@scalar
def clip_coordinate(x, size):
    """Clip to [0, size - 1] -> (x, d); the border itself counts as clipped (PyTorch)."""
    if x <= 0.0:
        return 0.0, 0.0
    hi = size - 1.0
    if x >= hi:
        return hi, 0.0
    return x, 1.0


@scalar
def reflect_coordinate(x, twice_low, twice_high):
    """Reflect ``x`` into [low, high] as often as needed -> (x, d = ±1)."""
    if twice_low == twice_high:
        return 0.0, 0.0
    lo = twice_low * 0.5
    span = (twice_high - twice_low) * 0.5
    x = x - lo
    sign = 1.0
    if x < 0.0:
        sign = -1.0
        x = -x
    extra = x % span  # == fmod(x, span) for x >= 0, span > 0 (exact)
    flips = math.floor(x / span)
    if flips - 2.0 * math.floor(flips * 0.5) == 0.0:
        return extra + lo, sign
    return span - extra + lo, -sign


@scalar
def pad_coordinate(x, size, padding_mode, align_corners):
    """Apply ``border``/``reflection`` padding to pixel coordinate ``x`` -> (x, d)."""
    if padding_mode == BORDER:
        return clip_coordinate(x, size)
    if padding_mode == REFLECTION:
        if align_corners:
            x, d = reflect_coordinate(x, 0.0, 2.0 * (size - 1))
        else:
            x, d = reflect_coordinate(x, -1.0, 2.0 * size - 1.0)
        x, dc = clip_coordinate(x, size)
        return x, d * dc
    return x, 1.0


@scalar
def source_index(g, size, padding_mode, align_corners):
    """Grid value -> padded pixel coordinate (bilinear, nearest) -> (x, dx/dg, valid)."""
    x, d, valid = unnormalize(g, size, align_corners)
    if not valid:
        return x, 0.0, False
    if padding_mode == ZEROS:  # no call on the common path: keeps the pixel loop inlined
        return x, d, True
    x, dp = pad_coordinate(x, size, padding_mode, align_corners)
    return x, d * dp, True


@scalar
def tap_index(t, size, padding_mode, align_corners):
    """Integer tap position ``t`` (as a float) -> input index after padding, or -1 if outside.

    Used per tap by bicubic interpolation, where padding applies to each tap.
    """
    t, _ = pad_coordinate(t, size, padding_mode, align_corners)
    if t < 0.0 or t > size - 1.0:
        return -1
    return int(t)


@scalar
def floor_index(x):
    """``floor(x)`` as an int64 and the fraction ``x - floor(x)``."""
    f = math.floor(x)
    return int(f), x - f


@scalar
def nearest_index(x):
    """Round half to even (``np.rint``, as PyTorch's ``nearbyint``) -> int64."""
    f = math.floor(x)
    d = x - f
    if d > 0.5 or (d == 0.5 and f - 2.0 * math.floor(f * 0.5) != 0.0):
        f += 1.0
    return int(f)


@scalar
def inside(i, size):
    return i >= 0 and i < size


# --- Keys cubic convolution, A = -0.75 (PyTorch's get_cubic_upsample_coefficients) ---

CUBIC_A = -0.75


@scalar
def _cc1(x):  # |x| <= 1
    A = CUBIC_A
    return ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0


@scalar
def _cc2(x):  # 1 < |x| < 2
    A = CUBIC_A
    return ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A


@scalar
def _dcc1(x):
    A = CUBIC_A
    return (3.0 * (A + 2.0) * x - 2.0 * (A + 3.0)) * x


@scalar
def _dcc2(x):
    A = CUBIC_A
    return (3.0 * A * x - 10.0 * A) * x + 8.0 * A


@scalar
def cubic_weights(t):
    """Weights of the taps at floor-1, floor, floor+1, floor+2 for fraction ``t``."""
    return _cc2(t + 1.0), _cc1(t), _cc1(1.0 - t), _cc2(2.0 - t)


@scalar
def cubic_weight_grads(t):
    """d/dt of :func:`cubic_weights`."""
    return _dcc2(t + 1.0), _dcc1(t), -_dcc1(1.0 - t), -_dcc2(2.0 - t)
