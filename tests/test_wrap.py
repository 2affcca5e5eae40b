"""padding_mode="wrap": the image repeats with period W (H, D) pixels.

Independent references:

* the tiled image: wrap sampling of x at pixel p equals zeros sampling of
  ``np.tile(x, 3)`` (every spatial axis) at p + size, a point strictly inside the
  tiled image (every tap too), so the tiled padding plays no part;
* the plain-Python float64 oracle of tests/reference.py (every tap modulo the size),
  and its float64 central differences for the grid and θ gradients;
* ``scipy.ndimage.map_coordinates(..., mode="grid-wrap")`` for (bi/tri)linear.

Every test is float32 and reuses the same few compiled drivers (a driver per dtype,
mode, padding, point source and layout costs seconds of compiling): grid_sample 2-D
bilinear, nearest and bicubic forward, 3-D trilinear forward, the one-pass bilinear
and trilinear backwards of a grid, and warp_affine's one-pass bilinear backward.
The bicubic and nearest backwards are checked under the CUDA simulator
(tests/test_cuda_wrap.py), whose kernels run the same per-pixel code.

Sample points are kept 0.1 px from integers and half-integers (bilinear corners,
nearest's ties), some in the cell between the last and the first pixel.
"""

import numpy as np
import pytest
from conftest import random_theta, tol
from reference import ref_affine_grid, ref_grid_sample
from scipy import ndimage
from scipy_ref import normalize

import stn_numba as stn
from stn_numba import _coords, _cpu

F32 = np.float32
H_PT = 1e-6  # finite-difference step in normalised units (float64, see test_gradients.py)

IN_2D = (5, 7)  # (H, W)
IN_3D = (3, 4, 5)  # (D, H, W)


def wrap_pixels(rng, shape, size):
    """Pixel coordinates p with floor(p) in [2 - size, 2 * size - 4] (so that p + size
    and its bicubic taps lie inside a 3-size tiling) and fraction in [0.1, 0.4] ∪
    [0.6, 0.9]; the first three in the wrap cells (size - 1, size) and (-1, 0), the
    last two of them rounding to index size (nearest's wrapped index)."""
    base = rng.integers(2 - size, 2 * size - 3, shape)
    frac = rng.uniform(0.1, 0.4, shape) + 0.5 * rng.integers(0, 2, shape)
    p = (base + frac).reshape(-1)
    p[:3] = size - 0.7, size - 0.2, -0.3
    return p.reshape(shape)


def wrap_grid(rng, n, out_shape, in_shape, align_corners, shift=0):
    """(grid, tiled_grid): float32 normalised grids (n, *out_shape, dims) of the same
    points, for the input (in_shape) and for its 3× tiling (each pixel shifted by one
    period); ``shift`` periods are added to the first grid's pixels."""
    dims = len(in_shape)
    grid = np.empty((n, *out_shape, dims))
    tiled = np.empty_like(grid)
    for k in range(dims):  # k: x, y, z -> spatial axis dims - 1 - k
        size = in_shape[dims - 1 - k]
        p = wrap_pixels(rng, (n, *out_shape), size)
        grid[..., k] = normalize(p + shift * size, size, align_corners)
        tiled[..., k] = normalize(p + size, 3 * size, align_corners)
    return grid.astype(F32), tiled.astype(F32)


def tile3(x):
    return np.tile(x, (1, 1) + (3,) * (x.ndim - 2))


def fold3(g, in_shape):
    """Sum of the 3^dims tiles of a gradient of the tiled image: the gradient of x."""
    out = np.zeros(g.shape[:2] + tuple(in_shape), dtype=np.float64)
    for idx in np.ndindex(*(3,) * len(in_shape)):
        sl = tuple(slice(i * s, (i + 1) * s) for i, s in zip(idx, in_shape, strict=True))
        out += g[(slice(None), slice(None), *sl)]
    return out


def fd_points(f, gout, pts, h=H_PT):
    """dL/dpts of L = Σ gout · f(pts) by float64 central differences, per entry of the
    last axis of ``pts`` at once for a grid (each output pixel depends on its own point
    only), or entry by entry for θ (``gout`` None: f returns L itself)."""
    grad = np.empty_like(pts)
    if gout is None:
        for k in range(pts.size):
            p, m = pts.copy(), pts.copy()
            p.flat[k] += h
            m.flat[k] -= h
            grad.flat[k] = (f(p) - f(m)) / (p.flat[k] - m.flat[k])
        return grad
    for k in range(pts.shape[-1]):
        p, m = pts.copy(), pts.copy()
        p[..., k] += h
        m[..., k] -= h
        grad[..., k] = np.sum(gout * (f(p) - f(m)), axis=1) / (p[..., k] - m[..., k])
    return grad


def oracle_input_grad(x, grid, gout, mode, align_corners):
    """dL/dx of the float64 oracle, one unit image at a time (L is linear in x)."""
    g = np.zeros(x.shape)
    for k in range(x.size):
        e = np.zeros(x.shape)
        e.flat[k] = 1.0
        g.flat[k] = np.sum(gout * ref_grid_sample(e, grid, mode, "wrap", align_corners))
    return g


@pytest.fixture
def bands(monkeypatch):
    """Set the number of bands of input rows the CPU backward splits a sample into
    (it follows the thread count otherwise: see stn_numba._cpu.bands)."""

    def set_bands(k):
        monkeypatch.setattr(_cpu, "bands", lambda n, rows: min(rows, k))

    return set_bands


# ----------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------

FORWARD = [(2, m) for m in ("bilinear", "nearest", "bicubic")] + [(3, "bilinear")]


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("dims,mode", FORWARD, ids=lambda v: str(v))
def test_forward_equals_tiled_image(rng, dims, mode, align_corners):
    in_shape = IN_2D if dims == 2 else IN_3D
    out_shape = (4, 6) if dims == 2 else (2, 3, 4)
    x = rng.standard_normal((2, 2, *in_shape)).astype(F32)
    grid, tiled = wrap_grid(rng, 2, out_shape, in_shape, align_corners)
    kw = dict(mode=mode, align_corners=align_corners)
    out = stn.grid_sample(x, grid, padding_mode="wrap", **kw)
    expected = stn.grid_sample(tile3(x), tiled, padding_mode="zeros", **kw)
    np.testing.assert_allclose(out, expected, **tol(F32))
    # and a period further away on every axis: the same values
    far, _ = wrap_grid(np.random.default_rng(1), 2, out_shape, in_shape, align_corners, shift=-2)
    near, _ = wrap_grid(np.random.default_rng(1), 2, out_shape, in_shape, align_corners)
    np.testing.assert_allclose(
        stn.grid_sample(x, far, padding_mode="wrap", **kw),
        stn.grid_sample(x, near, padding_mode="wrap", **kw),
        **tol(F32),
    )


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("dims,mode", FORWARD, ids=lambda v: str(v))
def test_forward_equals_oracle(rng, dims, mode, align_corners):
    in_shape = IN_2D if dims == 2 else IN_3D
    out_shape = (4, 6) if dims == 2 else (2, 3, 4)
    x = rng.standard_normal((2, 2, *in_shape)).astype(F32)
    grid, _ = wrap_grid(rng, 2, out_shape, in_shape, align_corners, shift=1)
    out = stn.grid_sample(x, grid, mode=mode, padding_mode="wrap", align_corners=align_corners)
    ref = ref_grid_sample(x, grid.astype(np.float64), mode, "wrap", align_corners)
    np.testing.assert_allclose(out, ref, **tol(F32))


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("dims", [2, 3])
def test_linear_equals_scipy_grid_wrap(rng, dims, align_corners):
    """map_coordinates(order=1, mode="grid-wrap") on pixel coordinates (z, y, x)."""
    in_shape = IN_2D if dims == 2 else IN_3D
    out_shape = (4, 6) if dims == 2 else (2, 3, 4)
    x = rng.standard_normal((1, 2, *in_shape)).astype(F32)
    grid, _ = wrap_grid(rng, 1, out_shape, in_shape, align_corners, shift=-1)
    out = stn.grid_sample(x, grid, padding_mode="wrap", align_corners=align_corners)
    g = grid[0].astype(np.float64)
    coords = []
    for axis in range(dims):  # spatial axis -> grid component dims - 1 - axis
        size = in_shape[axis]
        v = g[..., dims - 1 - axis]
        coords.append((v + 1) / 2 * (size - 1) if align_corners else ((v + 1) * size - 1) / 2)
    for c in range(2):
        ref = ndimage.map_coordinates(
            x[0, c].astype(np.float64), coords, order=1, mode="grid-wrap", prefilter=False
        )
        np.testing.assert_allclose(out[0, c], ref, **tol(F32))


def test_bspline_is_the_periodic_spline(rng):
    """bspline3 with wrap: the periodic spline, prefilter included (scipy's grid-wrap)."""
    x = rng.standard_normal((1, 2, *IN_2D)).astype(F32)
    grid, _ = wrap_grid(rng, 1, (4, 6), IN_2D, False, shift=1)
    out = stn.grid_sample(x, grid, mode="bspline3", padding_mode="wrap")
    g = grid[0].astype(np.float64)
    coords = [((g[..., 1] + 1) * IN_2D[0] - 1) / 2, ((g[..., 0] + 1) * IN_2D[1] - 1) / 2]
    for c in range(2):
        ref = ndimage.map_coordinates(x[0, c].astype(np.float64), coords, order=3, mode="grid-wrap")
        np.testing.assert_allclose(out[0, c], ref, **tol(F32))


@pytest.mark.parametrize("align_corners", [False, True])
def test_axis_of_size_one_reads_its_one_pixel(rng, align_corners):
    """Period 1: every point of a width-1 image reads its column (both bilinear taps
    are column 0)."""
    x = rng.standard_normal((1, 2, 5, 1)).astype(F32)
    grid = np.stack(
        [rng.uniform(-3, 3, (1, 5, 6)), np.broadcast_to(np.linspace(-1, 1, 5)[:, None], (1, 5, 6))],
        axis=-1,
    ).astype(F32)
    grid[..., 1] = normalize(np.arange(5.0), 5, align_corners)[:, None]
    out = stn.grid_sample(x, grid, padding_mode="wrap", align_corners=align_corners)
    np.testing.assert_allclose(out, np.broadcast_to(x, out.shape), **tol(F32))


def test_wrap_coordinate_stays_below_the_size():
    """The padded coordinate lies in [0, size) and is x modulo size, also where the
    fold of a negative x rounds to the size itself (returned as column 0)."""
    size = 7
    xs = [0.0, 3.25, 6.75, 7.0, 20.5, -1e-9, -1e-30, -0.25, -7.0, -13.5, 2.0**40, -(2.0**40)]
    for x in xs:
        r, d = _coords.wrap_coordinate(F32(x), size)
        assert d == 1.0
        assert 0.0 <= r < size, x
        assert r == pytest.approx(x % size if x % size < size - 1e-6 else 0.0, abs=1e-6), x


def test_nonfinite_points():
    """NaN samples 0 with zero gradients; ±inf (and anything past 2**40 px) reads
    pixel ±2**40 modulo the size with zero gradient along that axis; a coordinate a
    hair below 0 reads (almost exactly) column 0."""
    H, W = IN_2D
    x = np.arange(H * W, dtype=F32).reshape(1, 1, H, W)
    row = 2
    gy = normalize(row, H, False)
    big = 2.0**40
    pts = [
        (np.nan, gy),
        (np.inf, gy),
        (-np.inf, gy),
        (1e30, gy),
        (normalize(-1e-9, W, False), gy),
    ]
    grid = np.array(pts, dtype=F32).reshape(1, 1, len(pts), 2)
    out = stn.grid_sample(x, grid, padding_mode="wrap")[0, 0, 0]
    expected = [0.0, x[0, 0, row, int(big % W)], x[0, 0, row, int(-big % W)]]
    expected += [expected[1], x[0, 0, row, 0]]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4)
    gout = np.ones((1, 1, 1, len(pts)), F32)
    gi, gg = stn.grid_sample_backward(gout, x, grid, padding_mode="wrap")
    assert np.all(np.isfinite(gi)) and np.all(np.isfinite(gg))
    np.testing.assert_array_equal(gg[0, 0, :4, 0], 0.0)  # NaN, ±inf, 1e30: no x gradient
    np.testing.assert_array_equal(gg[0, 0, 0], 0.0)  # NaN: no y gradient either
    assert gg[0, 0, 1, 1] != 0.0  # y is finite: its gradient is the image's slope
    assert gi.sum() == pytest.approx(len(pts) - 1)  # all but NaN's unit of mass lands


# ----------------------------------------------------------------------------
# backward
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("dims", [2, 3])
def test_backward_equals_oracle_differences(rng, bands, dims, align_corners):
    """grad_grid against float64 central differences of the oracle, grad_input against
    the oracle's transpose; the same (bit for bit) in 1 band and in 3 bands of input
    rows, where the output rows that straddle the last and first rows must reach
    both."""
    in_shape = IN_2D if dims == 2 else IN_3D
    out_shape = (4, 5) if dims == 2 else (2, 3, 4)
    x = rng.standard_normal((2, 2, *in_shape)).astype(F32)
    grid, _ = wrap_grid(rng, 2, out_shape, in_shape, align_corners)
    # The banded axis (y in 2-D, z in 3-D) nearly constant along each output row and
    # outside the image, so that each row's taps fall in a few wrapped rows only:
    # e.g. -2.3 reads rows 2 and 3 of 5, far from the unwrapped -3 .. -2.
    rows = int(np.prod(out_shape[:-1]))
    far = np.array([-2.3, 6.6, 8.2, -0.7, -3.8, 5.2])[:rows].reshape(out_shape[:-1])
    jitter = rng.uniform(-0.05, 0.05, (2, *out_shape))
    grid[..., dims - 1] = normalize(far[..., None] + jitter, in_shape[0], align_corners)
    gout = rng.standard_normal((2, 2, *out_shape)).astype(F32)
    kw = dict(mode="bilinear", padding_mode="wrap", align_corners=align_corners)
    bands(1)
    gi1, gg1 = stn.grid_sample_backward(gout, x, grid, **kw)
    bands(3)
    gi, gg = stn.grid_sample_backward(gout, x, grid, **kw)
    np.testing.assert_array_equal(gi, gi1)
    np.testing.assert_array_equal(gg, gg1)
    x64, g64, go64 = x.astype(np.float64), grid.astype(np.float64), gout.astype(np.float64)
    fd = fd_points(lambda g: ref_grid_sample(x64, g, "bilinear", "wrap", align_corners), go64, g64)
    np.testing.assert_allclose(gg, fd, **tol(F32, "grad"))
    ref_gi = oracle_input_grad(x64, g64, go64, "bilinear", align_corners)
    np.testing.assert_allclose(gi, ref_gi, **tol(F32, "grad"))


def test_splat_is_the_adjoint(rng, bands):
    """splat with wrap padding == grid_sample_backward's grad_input (same driver), and
    no mass is lost: every tap lands inside."""
    x = rng.standard_normal((1, 2, *IN_2D)).astype(F32)
    grid, _ = wrap_grid(rng, 1, IN_2D, IN_2D, False)
    bands(2)
    out = stn.splat(x, grid, IN_2D, padding_mode="wrap")
    gi, _ = stn.grid_sample_backward(x, np.zeros_like(x), grid, padding_mode="wrap")
    np.testing.assert_array_equal(out, gi)
    np.testing.assert_allclose(out.sum(axis=(2, 3)), x.sum(axis=(2, 3)), rtol=1e-5)


def _kink_free_theta(rng, in_spatial, out_spatial, margin=0.02):
    """θ (1, 2, 3) whose sample points (align_corners=False) lie ≥ margin px from every
    integer, some of them outside the image (so that wrap matters)."""
    H, W = in_spatial
    for _ in range(20000):
        theta = random_theta(rng, 1, 2, strength=0.25)
        theta[:, :, :2] *= 1.6
        grid = ref_affine_grid(theta, (1, 1, *out_spatial), False)
        px = ((grid[..., 0] + 1) * W - 1) / 2
        py = ((grid[..., 1] + 1) * H - 1) / 2
        pix = np.stack([px, py])
        if np.min(np.abs(pix - np.rint(pix))) < margin:
            continue
        if ((px < 0) | (px > W - 1) | (py < 0) | (py > H - 1)).any():
            return theta
    raise AssertionError("no kink-free theta found")  # pragma: no cover


def test_warp_affine_theta_gradient(rng, bands):
    """warp_affine_backward's θ gradient (one-pass bilinear driver) against float64
    central differences of the oracle at affine_grid(θ); grad_input against the oracle's
    transpose."""
    size = (4, 5)
    x = rng.standard_normal((1, 2, *IN_2D)).astype(F32)
    theta = _kink_free_theta(rng, IN_2D, size)
    theta32 = theta.astype(F32)
    gout = rng.standard_normal((1, 2, *size)).astype(F32)
    bands(1)  # θ's row sums need whole rows: one pass
    gi, gt = stn.warp_affine_backward(gout, x, theta32, size, padding_mode="wrap")
    x64, go64 = x.astype(np.float64), gout.astype(np.float64)
    t64 = theta32.astype(np.float64)

    def loss(t):
        g = ref_affine_grid(t, (1, 2, *size), False)
        return float(np.sum(go64 * ref_grid_sample(x64, g, "bilinear", "wrap", False)))

    fd = fd_points(loss, None, t64)
    np.testing.assert_allclose(gt, fd, rtol=1e-4, atol=1e-3)
    g64 = ref_affine_grid(t64, (1, 2, *size), False)
    np.testing.assert_allclose(
        gi, oracle_input_grad(x64, g64, go64, "bilinear", False), **tol(F32, "grad")
    )


# ----------------------------------------------------------------------------
# names and wrappers
# ----------------------------------------------------------------------------


def test_error_message_lists_wrap():
    x = np.zeros((1, 1, 2, 2), F32)
    g = np.zeros((1, 1, 1, 2), F32)
    with pytest.raises(ValueError, match="'reflection', 'wrap', 'constant'; got 'warp'"):
        stn.grid_sample(x, g, padding_mode="warp")


def test_dask_passes_wrap_through(rng):
    da = pytest.importorskip("dask.array")
    import stn_numba.dask as stnd

    x = rng.standard_normal((2, 2, *IN_2D)).astype(F32)
    grid, _ = wrap_grid(rng, 2, (4, 6), IN_2D, False)
    lazy = stnd.grid_sample(da.from_array(x, chunks=(1, 2, *IN_2D)), grid, padding_mode="wrap")
    np.testing.assert_array_equal(
        lazy.compute(scheduler="sync"), stn.grid_sample(x, grid, padding_mode="wrap")
    )
