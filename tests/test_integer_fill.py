"""Integer images (uint8/uint16/int16, output_dtype=) and padding_mode="constant" with
fill_value, for grid_sample, warp_affine, warp_perspective, warp_flow and their
backwards. Only float32/float64 kernel specialisations are used (the features are
translated at the boundary)."""

import numpy as np
import pytest
from conftest import tol
from scipy import ndimage
from scipy_ref import unnormalize

import stn_numba as stn

INTS = [np.uint8, np.uint16, np.int16]
MODES = ["bilinear", "nearest", "bicubic"]
FUNCS = ["grid_sample", "warp_affine", "warp_perspective", "warp_flow"]


def _second_arg(fname, rng, n, h, w, dtype, spread=0.4):
    """A valid grid / θ / H / flow for an (n, C, h, w) input (points inside and outside)."""
    if fname == "grid_sample":
        return rng.uniform(-1.0 - spread, 1.0 + spread, (n, h, w, 2)).astype(dtype)
    if fname == "warp_affine":
        theta = np.tile(np.eye(2, 3), (n, 1, 1)) + 0.3 * rng.standard_normal((n, 2, 3))
        return theta.astype(dtype)
    if fname == "warp_perspective":
        H = np.tile(np.eye(3), (n, 1, 1)) + 0.2 * rng.standard_normal((n, 3, 3))
        H[:, 2, :2] *= 0.3  # mild foreshortening: Z > 0 everywhere
        H[:, 2, 2] = 1.0
        return H.astype(dtype)
    return rng.uniform(-2.5, 2.5, (n, h, w, 2)).astype(dtype)  # flow in pixels


def _grid_of(fname, arg, x_shape, align_corners):
    """The normalised grid that function ``fname`` samples with (float64)."""
    n, c, h, w = x_shape
    arg = arg.astype(np.float64)
    if fname == "grid_sample":
        return arg
    if fname == "warp_affine":
        return stn.affine_grid(arg, (n, c, h, w), align_corners)
    if fname == "warp_perspective":
        return stn.perspective_grid(arg, (n, c, h, w), align_corners)
    return stn.flow_grid(arg, (h, w), align_corners)


def _random_image(rng, shape, dtype):
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape, endpoint=False).astype(dtype)


def _rint_saturate(values, dtype):
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


# ----------------------------------------------------------------------------
# Integer images
# ----------------------------------------------------------------------------


# Each function and each mode at least once (the conversion happens at the boundary,
# the same for every driver; each (function, mode) pair is a driver to compile).
FUNC_MODES = [("grid_sample", m) for m in MODES] + [(f, "bilinear") for f in FUNCS[1:]]


@pytest.mark.parametrize("fname,mode", FUNC_MODES)
@pytest.mark.parametrize("idt", INTS)
def test_integer_equals_float32_warp(fname, idt, mode, rng):
    """An integer image warps exactly as its float32 copy; output_dtype=idt rounds half to
    even and saturates that float32 warp (bicubic overshoots, so saturation happens)."""
    x = _random_image(rng, (2, 2, 5, 6), idt)
    arg = _second_arg(fname, rng, 2, 5, 6, np.float32)
    f = getattr(stn, fname)
    want = f(x.astype(np.float32), arg, mode=mode)
    got = f(x, arg, mode=mode)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    got_int = f(x, arg, mode=mode, output_dtype=idt)
    assert got_int.dtype == idt
    np.testing.assert_array_equal(got_int, _rint_saturate(want, idt))
    assert x.dtype == idt  # the caller's image is untouched


def test_integer_input_computed_in_the_grid_dtype(rng):
    x = _random_image(rng, (1, 1, 4, 5), np.uint16)
    theta = _second_arg("warp_affine", rng, 1, 4, 5, np.float64)
    got = stn.warp_affine(x, theta)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, stn.warp_affine(x.astype(np.float64), theta))
    # a float output dtype other than the compute dtype is a cast of the result
    got32 = stn.warp_affine(x, theta, output_dtype=np.float32)
    assert got32.dtype == np.float32
    np.testing.assert_array_equal(got32, got.astype(np.float32))


def _midpoints(values, dtype):
    """grid_sample (bilinear, align_corners=True) of a 1×W row at the midpoints of its
    neighbouring pixels: exactly (values[i] + values[i + 1]) / 2 (W - 1 a power of 2, so
    that the points are exact in float32)."""
    x = np.array(values, dtype=dtype)[None, None, None]
    w = x.shape[-1]
    gx = (2.0 * (np.arange(w - 1) + 0.5) / (w - 1) - 1.0).astype(np.float32)
    grid = np.stack([gx, np.zeros_like(gx)], -1)[None, None]
    return x, grid


def test_rounding_is_half_to_even():
    x, grid = _midpoints([0, 1, 2, 3, 4, 5, 10, 11, 12], np.uint8)
    assert np.array_equal(
        stn.grid_sample(x, grid, align_corners=True)[0, 0, 0],
        [0.5, 1.5, 2.5, 3.5, 4.5, 7.5, 10.5, 11.5],
    )
    got = stn.grid_sample(x, grid, align_corners=True, output_dtype=np.uint8)
    np.testing.assert_array_equal(got[0, 0, 0], [0, 2, 2, 4, 4, 8, 10, 12])  # ties to even
    x, grid = _midpoints([-1, -2, -3, -4, -5], np.int16)
    got = stn.grid_sample(x, grid, align_corners=True, output_dtype=np.int16)
    np.testing.assert_array_equal(got[0, 0, 0], [-2, -2, -4, -4])  # -1.5, -2.5, -3.5, -4.5


def _keys_midpoint(row):
    """Keys' bicubic (A = -0.75) at the midpoint of row[1] and row[2] (4 pixels)."""
    a = -0.75
    w_near = (a + 2) * 0.125 - (a + 3) * 0.25 + 1  # |t| = 0.5
    w_far = a * (3.375 - 5 * 2.25 + 8 * 1.5 - 4)  # |t| = 1.5
    return w_far * (row[0] + row[3]) + w_near * (row[1] + row[2])


@pytest.mark.parametrize(
    "row,idt,saturated",
    [
        ([0, 255, 255, 0], np.uint8, 255),  # 302.8 -> 255
        ([255, 0, 0, 255], np.uint8, 0),  # -47.8 -> 0
        ([0, 65535, 65535, 0], np.uint16, 65535),
        ([0, -32768, -32768, 0], np.int16, -32768),  # -38912 -> -32768
        ([0, 32767, 32767, 0], np.int16, 32767),
    ],
)
def test_saturation(row, idt, saturated):
    x = np.array(row, dtype=idt)[None, None, None]
    grid = np.zeros((1, 1, 1, 2))  # the centre: midway between pixels 1 and 2
    value = stn.grid_sample(x, grid, mode="bicubic", align_corners=True)
    np.testing.assert_allclose(value[0, 0, 0, 0], _keys_midpoint(row), **tol(np.float64))
    info = np.iinfo(idt)
    assert not info.min <= value[0, 0, 0, 0] <= info.max  # it does overshoot
    got = stn.grid_sample(x, grid, mode="bicubic", align_corners=True, output_dtype=idt)
    assert got.dtype == idt and got[0, 0, 0, 0] == saturated


def test_nan_becomes_zero_in_integer_output():
    x = np.full((1, 1, 2, 2), 9, np.uint8)
    grid = np.full((1, 1, 2, 2), np.nan, np.float32)
    got = stn.grid_sample(x, grid, output_dtype=np.uint8)
    np.testing.assert_array_equal(got, 0)


def test_out_with_output_dtype(rng):
    x = _random_image(rng, (1, 2, 4, 4), np.uint8)
    theta = _second_arg("warp_affine", rng, 1, 4, 4, np.float32)
    out = np.full((1, 2, 4, 4), 7, np.uint8)
    got = stn.warp_affine(x, theta, output_dtype=np.uint8, out=out)
    assert got is out
    np.testing.assert_array_equal(out, stn.warp_affine(x, theta, output_dtype=np.uint8))
    out32 = np.empty((1, 2, 4, 4), np.float32)
    assert stn.warp_affine(x, theta, out=out32) is out32
    with pytest.raises(ValueError, match="out must have the output dtype uint8"):
        stn.warp_affine(x, theta, output_dtype=np.uint8, out=out32)
    with pytest.raises(ValueError, match="out must have shape"):
        stn.warp_affine(x, theta, output_dtype=np.uint8, out=np.empty((1, 2, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="out must not overlap input"):
        stn.warp_affine(x, theta, output_dtype=np.uint8, out=x)


def test_integer_views_are_read_not_modified(rng):
    """Read-only, negative-strided HWC uint8 viewed as NCHW (the README example)."""
    hwc = _random_image(rng, (5, 6, 3), np.uint8)[::-1]
    hwc.flags.writeable = False
    nchw = hwc.transpose(2, 0, 1)[None]
    theta = _second_arg("warp_affine", rng, 1, 5, 6, np.float32)
    got = stn.warp_affine(nchw, theta, output_dtype=np.uint8)
    want = stn.warp_affine(np.ascontiguousarray(nchw, dtype=np.float32), theta)
    np.testing.assert_array_equal(got, _rint_saturate(want, np.uint8))


# ----------------------------------------------------------------------------
# Constant fill
# ----------------------------------------------------------------------------


def _scipy_constant(x, grid, order, fill, align_corners):
    """map_coordinates(mode="grid-constant", cval=fill[c]) per plane, float64."""
    n, c, h, w = x.shape
    out = np.empty((n, c) + grid.shape[1:3])
    for i in range(n):
        coords = [
            unnormalize(grid[i, ..., 1], h, align_corners),
            unnormalize(grid[i, ..., 0], w, align_corners),
        ]
        for k in range(c):
            out[i, k] = ndimage.map_coordinates(
                x[i, k], coords, order=order, mode="grid-constant", cval=fill[k], prefilter=False
            )
    return out


# warp_perspective's and warp_flow's points under --all (the fill is added at the
# boundary, the same for every point source; each source is float64 drivers to compile)
_ALL_ONLY = ("warp_perspective", "warp_flow")


def _by_default(*values):
    marks = [pytest.mark.slow] if values[0] in _ALL_ONLY else []
    return pytest.param(*values, marks=marks)


@pytest.mark.parametrize(
    "fname,mode,order",
    [_by_default(f, "bilinear", 1) for f in FUNCS] + [(f, "nearest", 0) for f in FUNCS[:2]],
)
@pytest.mark.parametrize("align_corners", [False, True])
def test_constant_fill_matches_scipy(fname, mode, order, align_corners, rng):
    x = rng.standard_normal((2, 3, 5, 6))
    arg = _second_arg(fname, rng, 2, 5, 6, np.float64, spread=0.8)
    fill = [2.5, -1.0, 40.0]
    got = getattr(stn, fname)(
        x, arg, mode=mode, padding_mode="constant", fill_value=fill, align_corners=align_corners
    )
    want = _scipy_constant(
        x, _grid_of(fname, arg, x.shape, align_corners), order, fill, align_corners
    )
    np.testing.assert_allclose(got, want, **tol(np.float64, "grad"))
    assert np.any(got == 40.0)  # some points do fall outside


def _canvas(x, fill, pad):
    """x embedded in a canvas ``pad`` pixels larger on each side, filled with ``fill``."""
    n, c, h, w = x.shape
    canvas = np.empty((n, c, h + 2 * pad, w + 2 * pad))
    canvas[...] = np.asarray(fill, float).reshape(1, -1, 1, 1)
    canvas[:, :, pad : pad + h, pad : pad + w] = x
    return canvas


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fill", [3.0, [1.5, -7.0]])
def test_constant_fill_equals_a_filled_canvas(mode, fill, rng):
    """Constant padding reads ``fill`` wherever a tap falls outside: the same points
    sampled in the image pasted on a large canvas of ``fill`` (taps all inside)."""
    x = rng.standard_normal((1, 2, 4, 5))
    pad = 5
    h, w = 4, 5
    # pixel coordinates up to 2.5 px outside: bicubic taps reach 4 px outside
    px = rng.uniform(-2.5, w + 1.5, (1, 3, 7))
    py = rng.uniform(-2.5, h + 1.5, (1, 3, 7))
    grid = np.stack([2 * px / (w - 1) - 1, 2 * py / (h - 1) - 1], -1)
    cw, ch = w + 2 * pad, h + 2 * pad
    cgrid = np.stack([2 * (px + pad) / (cw - 1) - 1, 2 * (py + pad) / (ch - 1) - 1], -1)
    got = stn.grid_sample(
        x, grid, mode, padding_mode="constant", fill_value=fill, align_corners=True
    )
    want = stn.grid_sample(
        _canvas(x, np.broadcast_to(fill, (2,)), pad), cgrid, mode, align_corners=True
    )
    np.testing.assert_allclose(got, want, **tol(np.float64, "grad"))


def test_constant_default_fill_is_zeros_padding(rng):
    x = rng.standard_normal((1, 2, 4, 5))
    grid = rng.uniform(-1.5, 1.5, (1, 3, 4, 2))
    np.testing.assert_array_equal(
        stn.grid_sample(x, grid, padding_mode="constant"), stn.grid_sample(x, grid)
    )
    np.testing.assert_array_equal(
        stn.grid_sample(x, grid, padding_mode="constant", fill_value=0),
        stn.grid_sample(x, grid),
    )


def test_nan_points_read_the_fill(rng):
    x = rng.standard_normal((1, 2, 3, 3))
    grid = np.full((1, 2, 2, 2), np.nan)
    for mode in MODES:
        got = stn.grid_sample(x, grid, mode, padding_mode="constant", fill_value=[4.0, -2.0])
        np.testing.assert_allclose(got[0, 0], 4.0, **tol(np.float64))
        np.testing.assert_allclose(got[0, 1], -2.0, **tol(np.float64))


def test_constant_fill_with_integer_output():
    x = np.array([[[[10, 20], [30, 40]]]], np.uint8)
    grid = np.array([[[[0.0, 0.0], [5.0, 5.0], [np.nan, 0.0]]]], np.float32)
    got = stn.grid_sample(x, grid, padding_mode="constant", fill_value=300.0, output_dtype="uint8")
    np.testing.assert_array_equal(got[0, 0, 0], [25, 255, 255])  # 300 saturates


# ----------------------------------------------------------------------------
# Gradients with constant fill (float64 central differences)
# ----------------------------------------------------------------------------


def _fd(f, a, eps=1e-6):
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        hi = f()
        flat[i] = old - eps
        lo = f()
        flat[i] = old
        gflat[i] = (hi - lo) / (2 * eps)
    return g


def _kink_free_grid(rng, shape, size, align_corners=False):
    """Normalised points (some outside) whose pixel coordinates are >= 0.1 from integers."""
    h, w = size
    px = rng.integers(-2, w + 1, shape) + rng.uniform(0.15, 0.85, shape)
    py = rng.integers(-2, h + 1, shape) + rng.uniform(0.15, 0.85, shape)
    return np.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], -1)


@pytest.mark.parametrize("mode", ["bilinear", pytest.param("bicubic", marks=pytest.mark.slow)])
def test_grid_sample_backward_constant_fill_fd(mode, rng):
    x = rng.standard_normal((1, 2, 3, 4))
    grid = _kink_free_grid(rng, (1, 2, 3), (3, 4))
    go = rng.standard_normal((1, 2, 2, 3))
    fill = [1.5, -4.0]
    kw = dict(mode=mode, padding_mode="constant", fill_value=fill)

    def loss():
        return float(np.sum(go * stn.grid_sample(x, grid, **kw)))

    gi, gg = stn.grid_sample_backward(go, x, grid, **kw)
    np.testing.assert_allclose(gg, _fd(loss, grid), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gi, _fd(loss, x), rtol=1e-6, atol=1e-6)
    gi0, _ = stn.grid_sample_backward(go, x, grid, mode=mode, grid_grad=False)
    np.testing.assert_array_equal(gi, gi0)  # grad_input is zeros padding's


@pytest.mark.parametrize(
    "fname", [_by_default(f) for f in ("warp_affine", "warp_perspective", "warp_flow")]
)
def test_warp_backward_constant_fill_fd(fname, rng):
    x = rng.standard_normal((1, 2, 4, 5))
    arg = _second_arg(fname, rng, 1, 4, 5, np.float64, spread=0.5)
    if fname == "warp_flow":
        arg = rng.integers(-2, 3, arg.shape) + rng.uniform(0.15, 0.85, arg.shape)
    go = rng.standard_normal((1, 2, 4, 5))
    kw = dict(padding_mode="constant", fill_value=[3.0, -2.0])
    f, fb = getattr(stn, fname), getattr(stn, fname + "_backward")

    def loss():
        return float(np.sum(go * f(x, arg, **kw)))

    gi, ga = fb(go, x, arg, **kw)
    np.testing.assert_allclose(ga, _fd(loss, arg), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gi, _fd(loss, x), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------


def _x():
    return np.zeros((1, 2, 3, 4))


def _g():
    return np.zeros((1, 3, 4, 2))


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(fill_value=1.0), ValueError, "fill_value is used only with padding_mode='constant'"),
        (dict(padding_mode="border", fill_value=0.0), ValueError, "fill_value is used only"),
        (dict(padding_mode="constant", fill_value=[1.0]), ValueError, "C = 2"),
        (dict(padding_mode="constant", fill_value=np.nan), ValueError, "finite"),
        (dict(padding_mode="constant", fill_value="1"), TypeError, "fill_value must be a real"),
        (dict(padding_mode="constant", fill_value=True), TypeError, "fill_value must be a real"),
        (dict(padding_mode="constnt"), ValueError, "did you mean 'constant'"),
        (dict(output_dtype=np.int32), TypeError, "output_dtype must be None, float32"),
        (dict(output_dtype="float16"), TypeError, "output_dtype must be None"),
        (dict(output_dtype="nonsense"), TypeError, "output_dtype must be None"),
    ],
)
def test_forward_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        stn.grid_sample(_x(), _g(), **kwargs)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.int8, np.bool_])
def test_other_integer_dtypes_refused(dtype):
    with pytest.raises(TypeError, match="float32, float64, uint8, uint16 or int16; got"):
        stn.warp_affine(_x().astype(dtype), np.eye(2, 3)[None])


@pytest.mark.parametrize("fname", FUNCS)
def test_no_integer_backward(fname):
    x = _x().astype(np.uint8)
    arg = _second_arg(fname, np.random.default_rng(0), 1, 3, 4, np.float64)
    go = np.zeros((1, 2, 3, 4))
    with pytest.raises(TypeError, match="no integer backward"):
        getattr(stn, fname + "_backward")(go, x, arg)


def test_backward_fill_errors():
    go = np.zeros((1, 2, 3, 4))
    with pytest.raises(ValueError, match="fill_value is used only"):
        stn.grid_sample_backward(go, _x(), _g(), fill_value=1.0)
    with pytest.raises(ValueError, match="C = 2"):
        stn.grid_sample_backward(go, _x(), _g(), padding_mode="constant", fill_value=[1, 2, 3])


def test_splat_does_not_take_constant():
    with pytest.raises(ValueError) as info:
        stn.splat(_x(), _g(), padding_mode="constant")
    assert "'constant'" not in str(info.value).split(";")[0]


def test_zero_d_fill_value_and_big_endian_output_dtype(rng):
    """fill_value as a 0-d array is its number; output_dtype in any byte order gives the
    native-order result (big-endian input is accepted likewise)."""
    x = _random_image(rng, (1, 2, 4, 5), np.uint16)
    theta = _second_arg("warp_affine", rng, 1, 4, 5, np.float32) * 1.5
    kw = dict(padding_mode="constant")
    want = stn.warp_affine(x, theta, fill_value=0.5, **kw)
    np.testing.assert_array_equal(stn.warp_affine(x, theta, fill_value=np.array(0.5), **kw), want)
    got = stn.warp_affine(x, theta, output_dtype=">u2")
    assert got.dtype == np.uint16 and got.dtype.isnative
    np.testing.assert_array_equal(got, stn.warp_affine(x, theta, output_dtype=np.uint16))


# ----------------------------------------------------------------------------
# Large fills: the pixels inside never depend on the fill
# ----------------------------------------------------------------------------

_HALF_TAPS = {"nearest": (0, 0), "bilinear": (0, 1), "bicubic": (-1, 2)}


def _taps_inside(coords, size, mode, margin=1e-3):
    """Whether every tap of each pixel coordinate lies inside [0, size - 1], judged in
    float64 and only where the answer is not within ``margin`` of changing."""
    lo, hi = _HALF_TAPS[mode]
    base = np.floor(coords + 0.5) if mode == "nearest" else np.floor(coords)
    frac = coords - np.floor(coords)
    safe = (frac > margin) & (frac < 1 - margin) & (np.abs(frac - 0.5) > margin)
    return safe & (base + lo >= 0) & (base + hi <= size - 1)


def _fills(dtype):
    return [-9999.0, 1e6, 1e30 if dtype == np.float32 else 1e300, float(np.finfo(dtype).max)]


@pytest.mark.parametrize(
    "dtype,mode,layout",
    [(np.float32, m, "NCHW") for m in MODES]
    + [(np.float32, "bilinear", "NHWC"), (np.float64, "bilinear", "NCHW")],
)
def test_large_fill_identity_and_far_outside_are_exact(dtype, mode, layout, rng):
    """An identity warp returns exactly what it returns with fill 0 (the input itself to
    float32 rounding: the coordinates are computed in float32, as PyTorch's, whose
    identity warp is not exact either), and a warp that moves every point outside
    returns the fill exactly, for the fills real data uses as "nodata" up to the
    dtype's largest."""
    x = rng.random((1, 2, 6, 7)).astype(dtype)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    identity = np.array([[[1.0, 0, 0], [0, 1, 0]]], dtype)
    far = np.array([[[1.0, 0, 5.0], [0, 1, 0]]], dtype)
    kw = dict(mode=mode, layout=layout, padding_mode="constant")
    for ac in (False, True):
        # the grids of the warps (warp_affine's fused points are the same numbers)
        ident, away = (stn.affine_grid(t, (1, 2, 6, 7), ac) for t in (identity, far))
        zero_fill = stn.grid_sample(x, ident, align_corners=ac, **kw)
        if dtype == np.float32:  # x in [0, 1): a few float32 ulps at most
            np.testing.assert_allclose(zero_fill, x, rtol=0, atol=8 * np.finfo(dtype).eps)
        for fill in _fills(dtype):
            got = stn.grid_sample(x, ident, align_corners=ac, fill_value=fill, **kw)
            np.testing.assert_array_equal(got, zero_fill)
            got = stn.grid_sample(x, away, align_corners=ac, fill_value=fill, **kw)
            assert np.all(got == dtype(fill)), (fill, got)


@pytest.mark.parametrize("mode", MODES)
def test_large_fill_zoom_interior_and_finite(mode, rng):
    """A 0.7 zoom-out in float32: every output whose taps are all inside equals the
    fill-0 result bit for bit, whatever the fill; the rest stays finite (bicubic with
    the largest float32 fill overflows only where the exact value is beyond it) and
    between the image's values and the fill (convex weights: nearest and bilinear)."""
    x = rng.random((1, 1, 6, 7)).astype(np.float32)
    theta = np.array([[[1 / 0.7, 0, 0.05], [0, 1 / 0.7, -0.1]]], np.float32)
    grid = stn.affine_grid(theta.astype(np.float64), (1, 1, 6, 7))
    inside = _taps_inside(unnormalize(grid[..., 0], 7, False), 7, mode) & _taps_inside(
        unnormalize(grid[..., 1], 6, False), 6, mode
    )
    assert inside.any() and (~inside).any()
    grid32 = stn.affine_grid(theta, (1, 1, 6, 7))  # warp_affine's points, as a grid
    base = stn.grid_sample(x, grid32, mode=mode, padding_mode="constant")
    for fill in _fills(np.float32):
        got = stn.grid_sample(x, grid32, mode=mode, padding_mode="constant", fill_value=fill)
        big = mode == "bicubic" and fill == float(np.finfo(np.float32).max)
        if big:  # Keys' negative lobes put > 1 of weight outside: overflow is IEEE's inf
            ref = stn.grid_sample(
                x.astype(np.float64), grid, mode=mode, padding_mode="constant", fill_value=fill
            )
            assert np.all(np.isfinite(got) | (np.abs(ref) > 0.999 * fill))
        else:
            assert np.all(np.isfinite(got)), fill
        np.testing.assert_array_equal(got[0, 0][inside[0]], base[0, 0][inside[0]])
        if mode != "bicubic":
            lo, hi = min(float(x.min()), fill), max(float(x.max()), fill)
            g = got.astype(np.float64)
            assert np.all((g >= lo - 1e-6 * abs(lo) - 1e-6) & (g <= hi + 1e-6 * abs(hi) + 1e-6))


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_large_fill_grid_gradient_inside_is_the_fill_free_one(mode, rng):
    """grad_grid at points whose taps are all inside does not depend on the fill, and
    grad_input is zeros padding's."""
    x = rng.standard_normal((1, 2, 5, 6))
    px = rng.uniform(-2.5, 7.5, (1, 4, 5))
    py = rng.uniform(-2.5, 6.5, (1, 4, 5))
    grid = np.stack([(2 * px + 1) / 6 - 1, (2 * py + 1) / 5 - 1], -1)
    inside = _taps_inside(px, 6, mode) & _taps_inside(py, 5, mode)
    assert inside.any() and (~inside).any()
    go = rng.standard_normal((1, 2, 4, 5))
    gi0, gg0 = stn.grid_sample_backward(go, x, grid, mode, padding_mode="constant")
    for fill in (-9999.0, 1e30, 1e300):
        gi, gg = stn.grid_sample_backward(
            go, x, grid, mode, padding_mode="constant", fill_value=fill
        )
        np.testing.assert_array_equal(gi, gi0)
        np.testing.assert_array_equal(gg[inside], gg0[inside])
        assert np.all(np.isfinite(gg))
