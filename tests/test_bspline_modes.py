"""B-spline modes of the normalised API ("bspline2" ... "bspline5") against scipy.ndimage,
a round trip through the samples, and float64 finite differences.

Each (dtype, order, padding, point source) is a driver compiled on first use, so the
cases reuse a few: the forward of every order with border padding, order 3 with zeros
and reflection; gradients of every order on one padding each (orders 2 and 4 under
--all: their code is order 3's and 5's with other constants).
"""

import numpy as np
import pytest
import scipy.ndimage as ndi
from conftest import tol

import stn_numba as stn


def _pixels(g, size, align_corners):
    """Normalised grid values -> pixel coordinates (the unnormalisation of the docs)."""
    if align_corners:
        return (g + 1) / 2 * (size - 1)
    return ((g + 1) * size - 1) / 2


def _reflect(p, size, align_corners):
    lo, hi = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
    span = hi - lo
    q = np.abs(p - lo)
    flips, extra = np.floor(q / span), q % span
    return np.clip(np.where(flips % 2 == 0, extra + lo, span - extra + lo), 0, size - 1)


def _scipy_reference(x, grid, order, padding_mode, align_corners, cval=0.0):
    """scipy.ndimage.map_coordinates per (sample, channel), with our padding rule as
    coordinate arithmetic: border clips and reflection folds the point into the image,
    then the spline is the whole-sample mirror one (scipy's 'mirror'); zeros is scipy's
    'grid-constant' (the spline of the image extended by cval)."""
    dims = x.ndim - 2
    out = np.empty(x.shape[:2] + grid.shape[1:-1])
    for n in range(x.shape[0]):
        coords = []
        for axis in range(dims):  # grid's last axis is (x, y[, z]): reversed array axes
            size = x.shape[2 + axis]
            p = _pixels(grid[n, ..., dims - 1 - axis], size, align_corners)
            if padding_mode == "border":
                p = np.clip(p, 0, size - 1)
            elif padding_mode == "reflection":
                p = _reflect(p, size, align_corners)
            coords.append(p)
        mode = "grid-constant" if padding_mode in ("zeros", "constant") else "mirror"
        for c in range(x.shape[1]):
            out[n, c] = ndi.map_coordinates(x[n, c], coords, order=order, mode=mode, cval=cval)
    return out


CASES_2D = [(order, "border") for order in (2, 3, 4, 5)] + [(3, "zeros"), (3, "reflection")]


@pytest.mark.parametrize("order,padding_mode", CASES_2D)
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_equals_scipy(rng, order, padding_mode, align_corners):
    x = rng.standard_normal((2, 2, 7, 9))
    grid = rng.uniform(-1.4, 1.4, (2, 5, 6, 2))
    got = stn.grid_sample(x, grid, f"bspline{order}", padding_mode, align_corners)
    ref = _scipy_reference(x, grid, order, padding_mode, align_corners)
    # zeros: scipy extends the image by 12 pixels of cval before its prefilter, we by
    # more (to float64 rounding); order 3's difference is below 1e-7 relative.
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-7 if padding_mode == "zeros" else 1e-12)


def test_grid_sample_3d_equals_scipy(rng):
    x = rng.standard_normal((1, 2, 5, 6, 7))
    grid = rng.uniform(-1.3, 1.3, (1, 3, 4, 5, 3))
    got = stn.grid_sample(x, grid, "bspline3", "zeros", False)
    np.testing.assert_allclose(got, _scipy_reference(x, grid, 3, "zeros", False), atol=1e-7)


def test_constant_fill_is_the_spline_of_the_image_extended_by_the_fill(rng):
    # linear, and the spline of a constant is the constant: zeros padding of
    # (input - fill), plus fill; scipy's grid-constant with cval is the same spline
    x = rng.standard_normal((1, 2, 7, 9))
    grid = rng.uniform(-1.5, 1.5, (1, 4, 5, 2))
    got = stn.grid_sample(x, grid, "bspline3", "constant", fill_value=2.5)
    ref = _scipy_reference(x, grid, 3, "constant", False, cval=2.5)
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_samples_are_reproduced_at_pixel_centres_in_float32(rng):
    # the prefilter and the weights in float32: a spline passes through its samples
    x = rng.standard_normal((2, 3, 6, 8)).astype(np.float32)
    theta = np.tile(np.eye(2, 3, dtype=np.float32), (2, 1, 1))
    got = stn.warp_affine(x, theta, mode="bspline3", padding_mode="border")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, x, **tol(np.float32))


def test_nan_points_sample_zero_and_have_zero_gradients(rng):
    x = rng.standard_normal((1, 1, 5, 6))
    grid = rng.uniform(-1, 1, (1, 2, 3, 2))
    grid[0, 0, 1, 0] = np.nan
    out = stn.grid_sample(x, grid, "bspline3", "zeros", True)
    assert out[0, 0, 0, 1] == 0 and np.isfinite(out).all()
    gi, gg = stn.grid_sample_backward(np.ones_like(out), x, grid, "bspline3", "zeros", True)
    assert (gg[0, 0, 1] == 0).all() and np.isfinite(gi).all()


def _loss_grads(fn, args, go, i, h=1e-6):
    """Central difference of <fn(*args), go> with respect to args[i], every entry."""
    fd = np.zeros_like(args[i])
    for k in np.ndindex(fd.shape):
        hi, lo = [a.copy() for a in args], [a.copy() for a in args]
        hi[i][k] += h
        lo[i][k] -= h
        fd[k] = ((fn(*hi) - fn(*lo)) * go).sum() / (2 * h)
    return fd


@pytest.mark.parametrize(
    "order,padding_mode,align_corners",
    [
        pytest.param(2, "border", False, marks=pytest.mark.slow),
        (3, "zeros", True),
        pytest.param(4, "border", True, marks=pytest.mark.slow),
        (5, "border", False),
    ],
)
def test_grid_sample_gradients_match_finite_differences(rng, order, padding_mode, align_corners):
    x = rng.standard_normal((2, 2, 5, 6))
    grid = rng.uniform(-1.3, 1.3, (2, 3, 4, 2))
    kw = dict(mode=f"bspline{order}", padding_mode=padding_mode, align_corners=align_corners)
    go = rng.standard_normal((2, 2, 3, 4))
    gi, gg = stn.grid_sample_backward(go, x, grid, **kw)

    def f(a, b):
        return stn.grid_sample(a, b, **kw)

    np.testing.assert_allclose(gi, _loss_grads(f, (x, grid), go, 0), atol=1e-7)
    np.testing.assert_allclose(gg, _loss_grads(f, (x, grid), go, 1), atol=1e-6)


@pytest.mark.slow  # reflection's fold is the other modes' (tests/test_gradients.py)
def test_reflection_gradients_match_finite_differences(rng):
    x = rng.standard_normal((1, 2, 5, 6))
    grid = rng.uniform(-1.6, 1.6, (1, 3, 4, 2))
    kw = dict(mode="bspline3", padding_mode="reflection", align_corners=False)
    go = rng.standard_normal((1, 2, 3, 4))
    gi, gg = stn.grid_sample_backward(go, x, grid, **kw)

    def f(a, b):
        return stn.grid_sample(a, b, **kw)

    np.testing.assert_allclose(gi, _loss_grads(f, (x, grid), go, 0), atol=1e-7)
    np.testing.assert_allclose(gg, _loss_grads(f, (x, grid), go, 1), atol=1e-6)


def test_3d_gradients_match_finite_differences(rng):
    x = rng.standard_normal((1, 1, 4, 5, 4))
    grid = rng.uniform(-1.2, 1.2, (1, 2, 2, 3, 3))
    kw = dict(mode="bspline3", padding_mode="zeros", align_corners=False)
    go = rng.standard_normal((1, 1, 2, 2, 3))
    gi, gg = stn.grid_sample_backward(go, x, grid, **kw)

    def f(a, b):
        return stn.grid_sample(a, b, **kw)

    np.testing.assert_allclose(gi, _loss_grads(f, (x, grid), go, 0), atol=1e-7)
    np.testing.assert_allclose(gg, _loss_grads(f, (x, grid), go, 1), atol=1e-6)


def test_warp_affine_theta_gradient_matches_finite_differences(rng):
    x = rng.standard_normal((2, 2, 6, 7))
    theta = np.tile(np.eye(2, 3), (2, 1, 1)) + rng.normal(0, 0.1, (2, 2, 3))
    kw = dict(mode="bspline3", padding_mode="zeros")
    out = stn.warp_affine(x, theta, **kw)
    go = rng.standard_normal(out.shape)
    _, gt = stn.warp_affine_backward(go, x, theta, input_grad=False, **kw)

    def f(a, t):
        return stn.warp_affine(a, t, **kw)

    np.testing.assert_allclose(gt, _loss_grads(f, (x, theta), go, 1), atol=1e-6)


def test_splat_refuses_b_splines(rng):
    x = rng.standard_normal((1, 1, 3, 4))
    with pytest.raises(ValueError, match="splat's mode must be one of"):
        stn.splat(x, np.zeros((1, 3, 4, 2)), mode="bspline3")


def test_unknown_order_lists_the_modes():
    with pytest.raises(ValueError, match="'bspline5'; got 'bspline6'"):
        stn.grid_sample(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 1, 2)), mode="bspline6")
