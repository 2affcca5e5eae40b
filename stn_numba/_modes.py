"""Interpolation and padding modes: the one table that turns their names into codes."""

from numba.extending import register_jitable

# Interpolation codes (used inside the kernels).
BILINEAR = 0  # trilinear on 3-D input
NEAREST = 1
BICUBIC = 2
#: B-splines of order 2-5 (with the prefilter): codes BSPLINE2 .. BSPLINE2 + 3, so that
#: the order is ``mode - 1`` (:func:`spline_order`) and a constant of each driver.
BSPLINE2 = 3
BSPLINE3 = 4
BSPLINE4 = 5
BSPLINE5 = 6

# Padding codes.
ZEROS = 0
BORDER = 1
REFLECTION = 2
WRAP = 3  # periodic: the image repeats with period W (H, D) pixels

# Where the sampling points come from (the ``fused`` argument of the sample kernels).
GRID = 0  # read from a grid array
AFFINE = 1  # θ applied to the base grid (warp_affine)
PERSPECTIVE = 2  # a homography applied to the base grid, dehomogenised (warp_perspective)
FLOW = 3  # output position + a displacement in input pixels (warp_flow)

INTERPOLATION_MODES = {
    "bilinear": BILINEAR,
    "nearest": NEAREST,
    "bicubic": BICUBIC,
    "bspline2": BSPLINE2,
    "bspline3": BSPLINE3,
    "bspline4": BSPLINE4,
    "bspline5": BSPLINE5,
}


@register_jitable  # called from Python and from the kernels
def spline_order(mode):
    """The B-spline order of interpolation code ``mode`` (2-5), or 0 when it is not one."""
    return mode - 1 if mode >= BSPLINE2 else 0


PADDING_MODES = {"zeros": ZEROS, "border": BORDER, "reflection": REFLECTION, "wrap": WRAP}


def _lookup(table, value, name):
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be a str, one of {sorted(table)}; got {type(value).__name__} {value!r}"
        )
    try:
        return table[value]
    except KeyError:
        import difflib

        folded = {k.lower(): k for k in table}
        close = [folded[value.lower()]] if value.lower() in folded else []
        close = close or difflib.get_close_matches(value, list(table), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"{name} must be one of {', '.join(repr(k) for k in table)}; got {value!r}{hint}"
        ) from None


def mode_code(mode, spatial_dims):
    """Return the kernel code of interpolation ``mode`` for ``spatial_dims`` (2 or 3)."""
    code = _lookup(INTERPOLATION_MODES, mode, "mode")
    if code == BICUBIC and spatial_dims == 3:
        raise ValueError(
            "mode='bicubic' is defined for 4-D (N, C, H, W) input only; "
            "for 5-D input use 'bilinear' (trilinear), 'nearest' or a B-spline "
            "('bspline2' ... 'bspline5')"
        )
    return code


def padding_code(padding_mode):
    """Return the kernel code of ``padding_mode``."""
    return _lookup(PADDING_MODES, padding_mode, "padding_mode")


# ----------------------------------------------------------------------------
# padding_mode="constant": translated at the boundary, never a kernel code
# ----------------------------------------------------------------------------

#: The padding modes of the sampling functions (grid_sample, warp_*, their backwards):
#: the kernel's, plus "constant", which functional.py runs as "zeros" padding plus the
#: fill times the weight of the taps outside (see _intfill.py).
SAMPLING_PADDING_MODES = {**PADDING_MODES, "constant": None}


def sampling_padding(padding_mode):
    """(kernel padding mode name, True if "constant") of a sampling function's
    ``padding_mode``; unknown names raise with the list that includes "constant"."""
    _lookup(SAMPLING_PADDING_MODES, padding_mode, "padding_mode")
    if padding_mode == "constant":
        return "zeros", True
    return padding_mode, False


# ----------------------------------------------------------------------------
# Memory layouts of images: translated at the boundary (_layout.py)
# ----------------------------------------------------------------------------

#: layout name -> (channels last?, the ndim it is for; None: 4-D or 5-D). "NCHW", the
#: default, also names 5-D channels-first input (so the default fits 4-D and 5-D alike).
LAYOUTS = {
    "NCHW": (False, None),
    "NHWC": (True, 4),
    "NCDHW": (False, 5),
    "NDHWC": (True, 5),
}


def layout_code(layout):
    """(channels_last, ndim or None) of the image ``layout`` name."""
    return _lookup(LAYOUTS, layout, "layout")


# ----------------------------------------------------------------------------
# scipy.ndimage extension modes (stn_numba.ndimage)
# ----------------------------------------------------------------------------

# Codes as scipy.ndimage's C code numbers them ("grid-mirror" is "reflect" there).
ND_NEAREST = 0
ND_WRAP = 1  # period n - 1: the first and last samples coincide
ND_REFLECT = 2  # half-sample mirror, about the edges
ND_MIRROR = 3  # whole-sample mirror, about the end samples
ND_CONSTANT = 4  # cval beyond [0, n - 1]; no interpolation with cval near the edges
ND_GRID_WRAP = 5  # period n
ND_GRID_CONSTANT = 6  # the image extended by cval, interpolated

NDIMAGE_MODES = {
    "constant": ND_CONSTANT,
    "grid-constant": ND_GRID_CONSTANT,
    "nearest": ND_NEAREST,
    "mirror": ND_MIRROR,
    "reflect": ND_REFLECT,
    "grid-mirror": ND_REFLECT,
    "wrap": ND_WRAP,
    "grid-wrap": ND_GRID_WRAP,
}


def ndimage_mode_code(mode):
    """Return the kernel code of a scipy.ndimage ``mode`` name."""
    return _lookup(NDIMAGE_MODES, mode, "mode")
