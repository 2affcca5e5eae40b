"""Every backward against central finite differences in float64, torch-free.

The loss is always ``L = Σ gout · forward(...)`` with a random ``gout``, so its
gradient is exactly what the backward functions return.

Two kinds of check:

* **linear arguments** (grid_sample / warp_affine in ``input``, affine_grid in θ):
  the loss is linear, so a central difference is exact for any step up to rounding.
  We use a large step (``H_LIN``) and the tight float64 ``"grad"`` tolerance of
  ``conftest.TOL``, plus the adjoint identity ``<gout, A x> == <Aᵀ gout, x>``.
* **point arguments** (grid, θ): sample points are kept at least 0.1 px (grid tests)
  or 0.02 px (θ tests) from every kink — integers (bilinear/bicubic corners,
  ``border`` clips, ``reflection`` folds with align_corners=True) and half-integers
  (nearest rounding, ``reflection`` folds at -0.5 and S - 0.5 with
  align_corners=False) — while a step of ``H_PT`` = 1e-6 in normalised units moves a
  pixel coordinate by at most ~1e-5 px, so no step crosses a kink. Within a cell
  (bi/tri)linear interpolation is linear in each coordinate (no truncation error)
  and bicubic is a cubic (truncation ~ h²·|f'''| ~ 1e-10); rounding costs
  ~ eps·|L_pixel| / h ~ 1e-9. ``rtol=1e-6, atol=1e-7`` thus leaves a margin of ~100
  while any real mistake (a missing ∂i/∂g factor, a reflection sign, a wrong tap)
  is off by O(1).
"""

import numpy as np
import pytest
from conftest import MODES_2D, MODES_3D, PADDINGS, covering_pairs, random_theta, tol
from scipy_ref import normalize, unnormalize

import stn_numba as stn

H_LIN = 0.5  # step for arguments the loss is linear in: any step is exact
H_PT = 1e-6  # step in normalised grid / θ units for the nonlinear arguments
FD_TOL = dict(rtol=1e-6, atol=1e-7)  # see the module docstring
LIN_TOL = tol(np.float64, "grad")


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def loss(gout, out):
    return float(np.sum(gout * out))


def fd_linear(f, x, h=H_LIN):
    """Central differences of the scalar ``f`` at ``x``, one entry at a time."""
    grad = np.zeros_like(x)
    for k in range(x.size):
        xp = x.copy()
        xm = x.copy()
        xp.flat[k] += h
        xm.flat[k] -= h
        grad.flat[k] = (f(xp) - f(xm)) / (xp.flat[k] - xm.flat[k])
    return grad


def fd_grid(sample, gout, grid, h=H_PT):
    """dL/dgrid by central differences.

    Output pixel p depends on grid[p] only, so one component of every grid point
    is perturbed at once and the difference is summed over channels per pixel:
    ``2 · dims`` forward calls for the whole gradient, each pixel's difference
    free of the rounding of the other pixels' terms.
    """
    dims = grid.shape[-1]
    grad = np.empty_like(grid)
    for k in range(dims):
        gp = grid.copy()
        gm = grid.copy()
        gp[..., k] += h
        gm[..., k] -= h
        diff = np.sum(gout * (sample(gp) - sample(gm)), axis=1)
        grad[..., k] = diff / (gp[..., k] - gm[..., k])  # the step as actually taken
    return grad


def kink_free_pixels(rng, shape, size, reach=2):
    """Pixel coordinates in [-reach, size - 1 + reach + 1) with fractional part in
    [0.1, 0.4] ∪ [0.6, 0.9]: ≥ 0.1 px from every integer and half-integer, some
    inside the input and some outside by up to ``reach`` pixels."""
    base = rng.integers(-reach, size + reach, shape)
    frac = rng.uniform(0.1, 0.4, shape) + 0.5 * rng.integers(0, 2, shape)
    return base + frac


def kink_free_grid(rng, n, out_shape, in_shape, align_corners):
    """Normalised grid (n, *out_shape, dims), last axis (x, y[, z]), of kink-free points."""
    dims = len(in_shape)
    grid = np.empty((n, *out_shape, dims))
    for k in range(dims):  # k: x, y, z -> spatial axis dims - 1 - k
        size = in_shape[dims - 1 - k]
        grid[..., k] = normalize(kink_free_pixels(rng, (n, *out_shape), size), size, align_corners)
    return grid


def base_grid(n, align_corners):
    """linspace(-1, 1, n), times (n - 1)/n when align_corners is False."""
    if n == 1:
        return np.zeros(1)
    b = np.linspace(-1.0, 1.0, n)
    return b if align_corners else b * (n - 1) / n


def theta_pixels(theta, in_spatial, out_spatial, align_corners):
    """Unnormalised source coordinates of warp_affine's output points: list per
    spatial axis (x, y[, z]) of arrays (N, *out_spatial)."""
    dims = len(in_spatial)
    axes = [base_grid(s, align_corners) for s in out_spatial]  # (z,) y, x order
    mesh = np.meshgrid(*axes, indexing="ij")
    hom = np.stack([*mesh[::-1], np.ones(mesh[0].shape)], axis=-1)  # (..., x, y[, z], 1)
    pts = np.einsum("nij,...j->n...i", theta, hom)
    return [unnormalize(pts[..., k], in_spatial[dims - 1 - k], align_corners) for k in range(dims)]


def kink_free_theta(rng, n, in_spatial, out_spatial, align_corners, margin=0.02, tries=20000):
    """Random affine θ whose every sample point lies ≥ ``margin`` px from every
    integer and half-integer, with points both inside and outside the input."""
    dims = len(in_spatial)
    for _ in range(tries):
        theta = random_theta(rng, n, dims, strength=0.25)
        theta[:, :, :dims] *= 1.4  # reach a little outside the input
        pix = theta_pixels(theta, in_spatial, out_spatial, align_corners)
        twice = np.stack(pix) * 2.0
        if np.min(np.abs(twice - np.rint(twice))) < 2 * margin:
            continue
        outside = np.zeros(pix[0].shape, dtype=bool)
        for k in range(dims):
            size = in_spatial[dims - 1 - k]
            outside |= (pix[k] < 0) | (pix[k] > size - 1)
        if outside.any() and not outside.all():
            return theta
    raise AssertionError("no kink-free theta found")  # pragma: no cover


# ----------------------------------------------------------------------------
# grid_sample_backward
# ----------------------------------------------------------------------------

CASES_2D = [
    (mode, padding, ac) for mode in MODES_2D for padding in PADDINGS for ac in (True, False)
]
CASES_3D = [
    (mode, padding, ac) for mode in MODES_3D for padding in PADDINGS for ac in (True, False)
]


def _fd_cases(dims):
    """(Bi/tri)linear with every padding (the fused warp_affine backward has a driver per
    padding, and the integer-coordinate checks below use them all), the other modes in
    pairs covering each mode and each padding once: every (mode, padding) is a float64
    driver to compile, and test_torch_parity compares each pair's gradients in float32."""
    cases = CASES_2D if dims == 2 else CASES_3D
    pairs = covering_pairs(dims)
    # 3-D trilinear beyond the covering pairs: under --all
    return [
        pytest.param(c, marks=[pytest.mark.slow] if _all_only(c, dims, pairs) else [])
        for c in cases
        if c[0] == "bilinear" or c[:2] in pairs
    ]


def _all_only(case, dims, pairs):
    """3-D trilinear beyond the covering pairs, and nearest (its grid gradient is 0; its
    scatter is checked against PyTorch in float32): under --all."""
    return (dims == 3 and case[:2] not in pairs) or case[0] == "nearest"


def _fused_cases(dims):
    """warp_affine: as _fd_cases, but in 3-D trilinear's fused backward over the
    covering pairs only (test_torch_parity checks every padding)."""
    if dims == 3:  # trilinear with reflection under --all
        return [
            pytest.param(c, marks=[pytest.mark.slow] if c[:2] == ("bilinear", "reflection") else [])
            for c in CASES_3D
            if c[:2] in covering_pairs(3)
        ]
    return _fd_cases(2)


def IDS(case):
    return f"{case[0]}-{case[1]}-ac{case[2]}"


def _grid_sample_checks(rng, x_shape, out_shape, mode, padding, align_corners):
    x = rng.standard_normal(x_shape)
    grid = kink_free_grid(rng, x_shape[0], out_shape, x_shape[2:], align_corners)
    gout = rng.standard_normal(x_shape[:2] + out_shape)

    def sample(xx, gg):
        return stn.grid_sample(xx, gg, mode, padding, align_corners)

    gi, gg = stn.grid_sample_backward(gout, x, grid, mode, padding, align_corners)
    assert gi.shape == x.shape and gg.shape == grid.shape

    # grad_input: adjoint identity with an independent random x, then differences.
    z = rng.standard_normal(x_shape)
    np.testing.assert_allclose(np.sum(gi * z), loss(gout, sample(z, grid)), rtol=1e-12, atol=1e-12)
    fd_in = fd_linear(lambda xx: loss(gout, sample(xx, grid)), x)
    np.testing.assert_allclose(gi, fd_in, **LIN_TOL)

    # grad_grid
    fd_g = fd_grid(lambda g: sample(x, g), gout, grid)
    if mode == "nearest":
        np.testing.assert_array_equal(gg, 0.0)  # piecewise constant: exactly zero
        np.testing.assert_array_equal(fd_g, 0.0)  # and no step crossed a rounding tie
    else:
        assert np.abs(gg).max() > 0.1  # the check is not vacuous
        np.testing.assert_allclose(gg, fd_g, **FD_TOL)


class TestGridSampleBackward:
    @pytest.mark.parametrize("case", _fd_cases(2), ids=IDS)
    def test_2d(self, rng, case):
        _grid_sample_checks(rng, (2, 2, 4, 5), (3, 4), *case)

    @pytest.mark.parametrize("case", _fd_cases(3), ids=IDS)
    def test_3d(self, rng, case):
        _grid_sample_checks(rng, (2, 2, 3, 4, 5), (2, 2, 3), *case)

    def test_points_straddle_the_border(self, rng):
        """The kink-free grids do put points outside the input (padding is exercised)."""
        pix = kink_free_pixels(rng, (2, 3, 4), 5)
        assert (pix < 0).any() and (pix > 4).any() and ((pix > 0) & (pix < 4)).any()


# ----------------------------------------------------------------------------
# affine_grid_backward
# ----------------------------------------------------------------------------


class TestAffineGridBackward:
    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("size", [(2, 3, 4, 5), (1, 1, 1, 6), (2, 1, 3, 1)])
    def test_2d(self, rng, size, align_corners):
        theta = random_theta(rng, size[0], 2)
        ggrid = rng.standard_normal((size[0], *size[2:], 2))
        got = stn.affine_grid_backward(ggrid, size, align_corners)
        fd = fd_linear(lambda t: loss(ggrid, stn.affine_grid(t, size, align_corners)), theta)
        np.testing.assert_allclose(got, fd, **LIN_TOL)

    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("size", [(2, 3, 2, 4, 5), (1, 2, 1, 3, 1)])
    def test_3d(self, rng, size, align_corners):
        theta = random_theta(rng, size[0], 3)
        ggrid = rng.standard_normal((size[0], *size[2:], 3))
        got = stn.affine_grid_backward(ggrid, size, align_corners)
        fd = fd_linear(lambda t: loss(ggrid, stn.affine_grid(t, size, align_corners)), theta)
        np.testing.assert_allclose(got, fd, **LIN_TOL)


# ----------------------------------------------------------------------------
# warp_affine_backward
# ----------------------------------------------------------------------------


def _warp_checks(rng, x_shape, size, mode, padding, align_corners):
    x = rng.standard_normal(x_shape)
    theta = kink_free_theta(rng, x_shape[0], x_shape[2:], size, align_corners)
    gout = rng.standard_normal(x_shape[:2] + size)
    kw = dict(size=size, mode=mode, padding_mode=padding, align_corners=align_corners)

    def warp(xx, tt):
        return stn.warp_affine(xx, tt, **kw)

    gi, gt = stn.warp_affine_backward(gout, x, theta, **kw)
    assert gi.shape == x.shape and gt.shape == theta.shape

    z = rng.standard_normal(x_shape)
    np.testing.assert_allclose(np.sum(gi * z), loss(gout, warp(z, theta)), rtol=1e-12, atol=1e-12)
    fd_in = fd_linear(lambda xx: loss(gout, warp(xx, theta)), x)
    np.testing.assert_allclose(gi, fd_in, **LIN_TOL)

    fd_t = fd_linear(lambda tt: loss(gout, warp(x, tt)), theta, h=H_PT)
    if mode == "nearest":
        np.testing.assert_array_equal(gt, 0.0)
        np.testing.assert_array_equal(fd_t, 0.0)
    else:
        assert np.abs(gt).max() > 0.1
        np.testing.assert_allclose(gt, fd_t, **FD_TOL)

    # The fused backward equals the chain rule through the unfused functions.
    grid = stn.affine_grid(theta, x_shape[:2] + size, align_corners)
    gi2, gg = stn.grid_sample_backward(gout, x, grid, mode, padding, align_corners)
    np.testing.assert_allclose(gi, gi2, **LIN_TOL)
    gt2 = stn.affine_grid_backward(gg, x_shape[:2] + size, align_corners)
    np.testing.assert_allclose(gt, gt2, **LIN_TOL)


class TestWarpAffineBackward:
    @pytest.mark.parametrize("case", _fused_cases(2), ids=IDS)
    def test_2d(self, rng, case):
        _warp_checks(rng, (2, 2, 4, 5), (3, 4), *case)

    @pytest.mark.parametrize("case", _fused_cases(3), ids=IDS)
    def test_3d(self, rng, case):
        _warp_checks(rng, (1, 2, 3, 4, 5), (2, 2, 3), *case)


# ----------------------------------------------------------------------------
# The one-sided convention at exactly integer coordinates
# ----------------------------------------------------------------------------


def _exact_grid_value(i, size, align_corners):
    """Grid value that unnormalises to exactly pixel ``i`` (checked)."""
    g = normalize(float(i), size, align_corners)
    assert unnormalize(g, size, align_corners) == i  # exact in binary for the sizes used
    return g


#: Input sizes where every integer pixel has an exactly representable grid value.
INTEGER_SIZE = {True: 5, False: 4}


class TestIntegerCoordinates:
    """Bilinear interpolation has a kink at every integer pixel coordinate. The library
    follows PyTorch (GridSampler.h): the corners are ``floor(i)`` and
    ``floor(i) + 1`` with weight 1 on ``floor(i)``, so at an exact integer the grid
    gradient is the one-sided difference toward ``floor(i) + 1`` — the right-hand
    derivative — times ∂i/∂g. Exception: ``border`` (and ``reflection``, which clips
    after folding) treats the edge coordinates 0 and S - 1 themselves as clipped, so
    the gradient there is 0 (PyTorch's ``clip_coordinates_set_grad``).

    Sizes are chosen so that every integer pixel has an exactly representable grid
    value: S = 5 with align_corners=True (g = i/2 - 1), S = 4 with False
    (g = (2i + 1)/4 - 1).
    """

    @staticmethod
    def _setup(align_corners):
        S = INTEGER_SIZE[align_corners]
        # A row and a column of distinct slopes: every left and right difference differs.
        v = np.array([0.5, 1.5, 4.5, 3.0, -2.0])[:S]
        x = (v[None, :] + 10.0 * v[:, None])[None, None]  # (1, 1, S, S)
        scale = (S - 1) / 2 if align_corners else S / 2
        return S, x, scale

    @staticmethod
    def _one_sided(x, grid, k, mode, padding, align_corners, side, h=1e-7):
        gp = grid.copy()
        gp[..., k] += side * h
        f0 = stn.grid_sample(x, grid, mode, padding, align_corners)[0, 0, 0, 0]
        f1 = stn.grid_sample(x, gp, mode, padding, align_corners)[0, 0, 0, 0]
        return (f1 - f0) / (gp[0, 0, 0, k] - grid[0, 0, 0, k])

    @pytest.mark.parametrize("padding", PADDINGS)
    @pytest.mark.parametrize("align_corners", [True, False])
    def test_interior_is_right_hand(self, padding, align_corners):
        S, x, scale = self._setup(align_corners)
        i, j = 2, 1  # x (column) and y (row) pixel coordinates, both interior integers
        grid = np.array(
            [[[[_exact_grid_value(i, S, align_corners), _exact_grid_value(j, S, align_corners)]]]]
        )
        gout = np.ones((1, 1, 1, 1))
        gi, gg = stn.grid_sample_backward(gout, x, grid, "bilinear", padding, align_corners)
        img = x[0, 0]
        want = np.array([scale * (img[j, i + 1] - img[j, i]), scale * (img[j + 1, i] - img[j, i])])
        np.testing.assert_allclose(gg[0, 0, 0], want, rtol=1e-14, atol=1e-14)
        for k in range(2):
            right = self._one_sided(x, grid, k, "bilinear", padding, align_corners, +1)
            left = self._one_sided(x, grid, k, "bilinear", padding, align_corners, -1)
            np.testing.assert_allclose(gg[0, 0, 0, k], right, rtol=1e-6)
            assert abs(right - left) > 0.5  # there is a kink, and we took its right side
        # The value, and so grad_input, puts all the weight on the pixel itself.
        expect = np.zeros_like(x)
        expect[0, 0, j, i] = 1.0
        np.testing.assert_array_equal(gi, expect)

    @pytest.mark.parametrize("align_corners", [True, False])
    def test_edges_zeros_padding_is_right_hand(self, align_corners):
        """Under zeros padding the edges follow the same rule: at S - 1 the right-hand
        neighbour is outside (0), so the gradient is -scale · v[S - 1]."""
        S, x, scale = self._setup(align_corners)
        img = x[0, 0]
        for i in (0, S - 1):
            g = _exact_grid_value(i, S, align_corners)
            grid = np.array([[[[g, g]]]])
            _, gg = stn.grid_sample_backward(
                np.ones((1, 1, 1, 1)), x, grid, "bilinear", "zeros", align_corners
            )
            nxt_x = img[i, i + 1] if i + 1 < S else 0.0
            nxt_y = img[i + 1, i] if i + 1 < S else 0.0
            want = [scale * (nxt_x - img[i, i]), scale * (nxt_y - img[i, i])]
            np.testing.assert_allclose(gg[0, 0, 0], want, rtol=1e-14, atol=1e-14)
            for k in range(2):
                right = self._one_sided(x, grid, k, "bilinear", "zeros", align_corners, +1)
                np.testing.assert_allclose(gg[0, 0, 0, k], right, rtol=1e-6)

    @pytest.mark.parametrize("padding", ["border", "reflection"])
    @pytest.mark.parametrize("align_corners", [True, False])
    def test_edges_clipped_are_zero(self, padding, align_corners):
        """At exactly 0 and S - 1, border/reflection padding count the coordinate as
        clipped: gradient 0, though at 0 the right-hand derivative is not."""
        S, x, scale = self._setup(align_corners)
        for i in (0, S - 1):
            g = _exact_grid_value(i, S, align_corners)
            grid = np.array([[[[g, g]]]])
            _, gg = stn.grid_sample_backward(
                np.ones((1, 1, 1, 1)), x, grid, "bilinear", padding, align_corners
            )
            np.testing.assert_array_equal(gg, 0.0)
        if padding == "border":  # the right side of 0 is not flat
            grid = np.array([[[[_exact_grid_value(0, S, align_corners)] * 2]]])
            right = self._one_sided(x, grid, 0, "bilinear", padding, align_corners, +1)
            assert abs(right) > 0.5

    @pytest.mark.parametrize("align_corners", [True, False])
    def test_trilinear_interior_is_right_hand(self, align_corners):
        S = INTEGER_SIZE[align_corners]
        v = np.array([0.5, 1.5, 4.5, 3.0, -2.0])[:S]
        x = (v[None, None, :] + 10.0 * v[None, :, None] + 100.0 * v[:, None, None])[None, None]
        scale = (S - 1) / 2 if align_corners else S / 2
        i, j, k = 2, 1, 2  # x, y, z
        grid = np.array([[[[[_exact_grid_value(c, S, align_corners) for c in (i, j, k)]]]]])
        _, gg = stn.grid_sample_backward(
            np.ones((1, 1, 1, 1, 1)), x, grid, "bilinear", "zeros", align_corners
        )
        vol = x[0, 0]
        want = scale * np.array(
            [
                vol[k, j, i + 1] - vol[k, j, i],
                vol[k, j + 1, i] - vol[k, j, i],
                vol[k + 1, j, i] - vol[k, j, i],
            ]
        )
        np.testing.assert_allclose(gg[0, 0, 0, 0], want, rtol=1e-14, atol=1e-14)
