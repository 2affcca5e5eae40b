"""Projective (homography) and dense-flow warps: perspective_grid, warp_perspective,
flow_grid, warp_flow and their backwards; 2-D (3×3 H) and 3-D (4×4 H, volumes).

References: affine_grid / warp_affine (a homography with last row (0, 0, 1), or
(0, 0, 0, 1) in 3-D, is an affine map), a NumPy homography +
scipy.ndimage.map_coordinates, pixel-shift known answers, and float64 central finite
differences.
"""

import numpy as np
import pytest
from conftest import PADDINGS, covering_pairs, random_theta, tol
from scipy_ref import scipy_grid_sample, unnormalize

import stn_numba as stn

FD_TOL = dict(rtol=1e-6, atol=1e-7)


def base(n, align_corners):
    if n == 1:
        return np.zeros(1)
    v = np.linspace(-1.0, 1.0, n)
    return v if align_corners else v * (n - 1) / n


def numpy_perspective_grid(H, size, align_corners):
    """(N, Ho, Wo, 2) in float64; NaN where Z <= 1e-12."""
    N, _, Ho, Wo = size
    xs = base(Wo, align_corners)[None, :].repeat(Ho, 0)
    ys = base(Ho, align_corners)[:, None].repeat(Wo, 1)
    pts = np.stack([xs, ys, np.ones_like(xs)], -1)  # (Ho, Wo, 3)
    XYZ = np.einsum("nij,hwj->nhwi", H.astype(np.float64), pts)
    Z = XYZ[..., 2:]
    with np.errstate(divide="ignore", invalid="ignore"):
        g = XYZ[..., :2] / Z
    g[np.repeat(Z <= 1e-12, 2, axis=-1)] = np.nan
    return g


def homography(rng, n, strength=0.15, persp=0.3):
    H = np.zeros((n, 3, 3))
    H[:, :2] = random_theta(rng, n, 2, strength=strength)
    H[:, 2, :2] = persp * rng.uniform(-1, 1, (n, 2))
    H[:, 2, 2] = 1.0
    return H


def as_h(theta):
    H = np.zeros((theta.shape[0], 3, 3), theta.dtype)
    H[:, :2] = theta
    H[:, 2, 2] = 1
    return H


# ----------------------------------------------------------------------------
# perspective_grid
# ----------------------------------------------------------------------------


class TestPerspectiveGrid:
    @pytest.mark.parametrize("ac", [True, False])
    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_affine_h_equals_affine_grid(self, rng, ac, dtype):
        theta = random_theta(rng, 3, 2, dtype)
        size = (3, 1, 5, 7)
        got = stn.perspective_grid(as_h(theta), size, ac)
        np.testing.assert_allclose(got, stn.affine_grid(theta, size, ac), **tol(dtype))
        assert got.dtype == dtype and got.shape == (3, 5, 7, 2)

    @pytest.mark.parametrize("ac", [True, False])
    def test_against_numpy(self, rng, ac):
        H = homography(rng, 2)
        size = (2, 3, 6, 9)
        np.testing.assert_allclose(
            stn.perspective_grid(H, size, ac),
            numpy_perspective_grid(H, size, ac),
            **tol(np.float64),
        )

    def test_behind_camera_is_nan(self):
        H = np.array([[[1.0, 0, 0], [0, 1, 0], [1.5, 0, 0.5]]])  # Z = 1.5 x + 0.5
        size = (1, 1, 4, 12)
        got = stn.perspective_grid(H, size, align_corners=True)
        want = numpy_perspective_grid(H, size, True)
        assert np.isnan(got).any() and np.isfinite(got).any()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], rtol=1e-12)

    @pytest.mark.parametrize("ac", [True, False])
    def test_backward_fd(self, rng, ac):
        H = homography(rng, 2)
        size = (2, 1, 4, 5)
        G = rng.standard_normal((2, 4, 5, 2))
        got = stn.perspective_grid_backward(G, H, size, ac)
        h = 1e-6
        want = np.zeros_like(H)
        for n in range(2):
            one = (1,) + size[1:]
            for k in range(9):
                Hp = H[n : n + 1].copy()
                Hm = H[n : n + 1].copy()
                Hp[0, k // 3, k % 3] += h
                Hm[0, k // 3, k % 3] -= h
                diff = stn.perspective_grid(Hp, one, ac) - stn.perspective_grid(Hm, one, ac)
                want[n, k // 3, k % 3] = np.sum(G[n] * diff[0]) / (2 * h)
        np.testing.assert_allclose(got, want, **FD_TOL)

    def test_backward_skips_invalid_points(self):
        H = np.array([[[1.0, 0, 0], [0, 1, 0], [1.5, 0, 0.5]]])
        G = np.ones((1, 3, 8, 2))
        gH = stn.perspective_grid_backward(G, H, (1, 1, 3, 8), True)
        assert np.all(np.isfinite(gH))

    def test_errors(self):
        H = np.eye(3)[None]
        with pytest.raises(ValueError, match=r"H must have shape \(N, 3, 3\)"):
            stn.perspective_grid(np.zeros((1, 2, 3)), (1, 1, 2, 2))
        with pytest.raises(ValueError, match="size"):
            stn.perspective_grid(H, (1, 1, 2))
        with pytest.raises(ValueError, match="batch"):
            stn.perspective_grid(H, (2, 1, 2, 2))
        with pytest.raises(TypeError, match="align_corners"):
            stn.perspective_grid(H, (1, 1, 2, 2), align_corners=1)
        with pytest.raises(TypeError, match="H must have dtype"):
            stn.perspective_grid(H.astype(int), (1, 1, 2, 2))
        with pytest.raises(ValueError, match="grad_grid"):
            stn.perspective_grid_backward(np.zeros((1, 2, 3, 2)), H, (1, 1, 2, 2))
        with pytest.raises(TypeError, match="grad_grid has dtype float32"):
            stn.perspective_grid_backward(np.zeros((1, 2, 2, 2), np.float32), H, (1, 1, 2, 2))


# ----------------------------------------------------------------------------
# warp_perspective
# ----------------------------------------------------------------------------


class TestWarpPerspective:
    @pytest.mark.parametrize("mode,padding", covering_pairs(2))  # each mode, each padding
    @pytest.mark.parametrize("ac", [True, False])
    def test_affine_h_equals_warp_affine(self, rng, mode, padding, ac):
        x = rng.standard_normal((2, 2, 5, 6))
        theta = random_theta(rng, 2, 2)
        got = stn.warp_perspective(x, as_h(theta), (4, 7), mode, padding, ac)
        want = stn.warp_affine(x, theta, (4, 7), mode, padding, ac)
        np.testing.assert_allclose(got, want, **tol(np.float64))

    def test_identity(self, rng):
        x = rng.standard_normal((1, 3, 4, 5)).astype(np.float32)
        H = np.eye(3, dtype=np.float32)[None]
        np.testing.assert_allclose(
            stn.warp_perspective(x, H, align_corners=True), x, **tol(np.float32)
        )

    @pytest.mark.parametrize("padding", ["border"])  # padding: grid_sample's tests
    @pytest.mark.parametrize("ac", [True, False])
    def test_pure_projective_against_scipy(self, rng, padding, ac):
        x = rng.standard_normal((2, 2, 7, 8))
        H = homography(rng, 2)
        got = stn.warp_perspective(x, H, (6, 9), "bilinear", padding, ac)
        grid = numpy_perspective_grid(H, (2, 2, 6, 9), ac)
        want = scipy_grid_sample(x, grid, "bilinear", padding, ac)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)

    # reflection under --all: its float64 drivers would be compiled for this test alone
    # (tests/test_nonfinite_warps.py runs NaN points through reflection in float32)
    @pytest.mark.parametrize(
        "padding",
        [p if p != "reflection" else pytest.param(p, marks=pytest.mark.slow) for p in PADDINGS],
    )
    def test_behind_camera_zero_and_finite(self, rng, padding):
        x = rng.random((1, 2, 6, 12)) + 1.0  # no zeros in the input
        H = np.array([[[1.0, 0, 0], [0, 1, 0], [1.5, 0, 0.5]]])  # Z <= 0 for x <= -1/3
        out = stn.warp_perspective(x, H, padding_mode=padding, align_corners=True)
        invalid = np.isnan(numpy_perspective_grid(H, (1, 2, 6, 12), True))[0, ..., 0]
        assert invalid.any() and (~invalid).any()
        assert np.all(np.isfinite(out))
        assert np.all(out[0][:, invalid] == 0)
        gi, gH = stn.warp_perspective_backward(
            np.ones_like(out), x, H, padding_mode=padding, align_corners=True
        )
        assert np.all(np.isfinite(gi)) and np.all(np.isfinite(gH))

    @pytest.mark.parametrize("padding", ["zeros", "border"])
    @pytest.mark.parametrize("ac", [True, False])
    def test_backward_fd(self, rng, padding, ac):
        x = rng.standard_normal((2, 2, 6, 7))
        size = (5, 6)
        for _ in range(50):  # a homography whose sample points all keep off the kinks
            H = homography(rng, 2)
            grid = numpy_perspective_grid(H, (2, 2) + size, ac)
            frac = np.stack(
                [np.mod(unnormalize(grid[..., k], S, ac), 1.0) for k, S in ((0, 7), (1, 6))]
            )
            if np.min(np.minimum(frac, 1 - frac)) > 1e-3:
                break
        else:
            raise AssertionError("no kink-free homography in 50 draws")
        gout = rng.standard_normal((2, 2) + size)
        gi, gH = stn.warp_perspective_backward(gout, x, H, size, "bilinear", padding, ac)

        def L(x_, H_):
            return float(np.sum(gout * stn.warp_perspective(x_, H_, size, "bilinear", padding, ac)))

        # the loss is linear in x: <gout, A x> == <gi, x> for any x
        x2 = rng.standard_normal(x.shape)
        np.testing.assert_allclose(L(x2, H), np.sum(gi * x2), rtol=1e-12)
        h = 1e-7
        want = np.zeros_like(H)
        for n in range(2):
            for k in range(9):
                Hp = H.copy()
                Hm = H.copy()
                Hp[n, k // 3, k % 3] += h
                Hm[n, k // 3, k % 3] -= h
                want[n, k // 3, k % 3] = (L(x, Hp) - L(x, Hm)) / (2 * h)
        np.testing.assert_allclose(gH, want, rtol=1e-5, atol=1e-6)

    def test_backward_affine_h_matches_warp_affine(self, rng):
        x = rng.standard_normal((2, 1, 5, 5))
        theta = random_theta(rng, 2, 2)
        gout = rng.standard_normal((2, 1, 5, 5))
        gi, gH = stn.warp_perspective_backward(gout, x, as_h(theta))
        gi2, gt = stn.warp_affine_backward(gout, x, theta)
        np.testing.assert_allclose(gi, gi2, **tol(np.float64, "grad"))
        np.testing.assert_allclose(gH[:, :2], gt, **tol(np.float64, "grad"))

    def test_options_and_errors(self, rng):
        x = rng.standard_normal((1, 1, 3, 3))
        H = np.eye(3)[None]
        gi, gH = stn.warp_perspective_backward(np.ones((1, 1, 3, 3)), x, H, input_grad=False)
        assert gi is None and gH.shape == (1, 3, 3)
        gi, gH = stn.warp_perspective_backward(np.ones((1, 1, 3, 3)), x, H, H_grad=False)
        assert gH is None and gi.shape == x.shape
        out = np.empty((1, 1, 3, 3))
        assert stn.warp_perspective(x, H, out=out) is out
        with pytest.raises(ValueError, match=r"\(N, 4, 4\).*got \(1, 3, 3\) with 5-D input"):
            stn.warp_perspective(np.zeros((1, 1, 2, 2, 2)), H)
        with pytest.raises(ValueError, match=r"H\.shape"):  # batches 2 and 3 (1 broadcasts)
            stn.warp_perspective(np.zeros((2, 1, 2, 2)), np.tile(H, (3, 1, 1)))
        with pytest.raises(TypeError, match="H has dtype float32"):
            stn.warp_perspective(x, H.astype(np.float32))
        with pytest.raises(ValueError, match="size"):
            stn.warp_perspective(x, H, size=(0, 3))
        with pytest.raises(ValueError, match="padding_mode"):
            stn.warp_perspective(x, H, padding_mode="zero")
        with pytest.raises(ValueError, match="grad_output"):
            stn.warp_perspective_backward(np.ones((1, 1, 2, 3)), x, H)
        with pytest.raises(TypeError, match="H_grad"):
            stn.warp_perspective_backward(np.ones((1, 1, 3, 3)), x, H, H_grad="yes")


# ----------------------------------------------------------------------------
# 3-D: 4×4 homographies on volumes
# ----------------------------------------------------------------------------


def numpy_perspective_grid_3d(H, size, align_corners):
    """(N, Do, Ho, Wo, 3) in float64: (X, Y, Z) / W; NaN where W <= 1e-12."""
    _, _, Do, Ho, Wo = size
    zs, ys, xs = np.meshgrid(
        base(Do, align_corners), base(Ho, align_corners), base(Wo, align_corners), indexing="ij"
    )
    pts = np.stack([xs, ys, zs, np.ones_like(xs)], -1)  # (Do, Ho, Wo, 4)
    XYZW = np.einsum("nij,dhwj->ndhwi", H.astype(np.float64), pts)
    W = XYZW[..., 3:]
    with np.errstate(divide="ignore", invalid="ignore"):
        g = XYZW[..., :3] / W
    g[np.repeat(W <= 1e-12, 3, axis=-1)] = np.nan
    return g


def homography_3d(rng, n, strength=0.15, persp=0.3):
    H = np.zeros((n, 4, 4))
    H[:, :3] = random_theta(rng, n, 3, strength=strength)
    H[:, 3, :3] = persp * rng.uniform(-1, 1, (n, 3))
    H[:, 3, 3] = 1.0
    return H


def as_h3(theta):
    H = np.zeros((theta.shape[0], 4, 4), theta.dtype)
    H[:, :3] = theta
    H[:, 3, 3] = 1
    return H


#: W = 1.5 x + 0.5: the points with x <= -1/3 are behind the camera.
BEHIND_3D = np.array([[[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1.5, 0, 0, 0.5]]])


def kink_free_homography_3d(rng, n, size, in_spatial, ac):
    """A random 4×4 H whose sample points all keep 1e-3 px off the integer coordinates
    (where bilinear interpolation has kinks), for finite differences."""
    for _ in range(50):
        H = homography_3d(rng, n)
        grid = numpy_perspective_grid_3d(H, (n, 1) + size, ac)
        frac = np.stack(
            [np.mod(unnormalize(grid[..., k], S, ac), 1.0) for k, S in enumerate(in_spatial[::-1])]
        )
        if np.min(np.minimum(frac, 1 - frac)) > 1e-3:
            return H
    raise AssertionError("no kink-free homography in 50 draws")


class TestPerspective3d:
    @pytest.mark.parametrize("ac", [True, False])
    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_3d_affine_h_equals_affine_grid(self, rng, ac, dtype):
        theta = random_theta(rng, 2, 3, dtype)
        size = (2, 1, 3, 4, 5)
        got = stn.perspective_grid(as_h3(theta), size, ac)
        assert got.dtype == dtype and got.shape == (2, 3, 4, 5, 3)
        np.testing.assert_allclose(got, stn.affine_grid(theta, size, ac), **tol(dtype))

    @pytest.mark.parametrize("mode,padding", covering_pairs(3))  # each mode, each padding
    @pytest.mark.parametrize("ac", [True, False])
    def test_3d_affine_h_equals_warp_affine(self, rng, mode, padding, ac):
        x = rng.standard_normal((2, 2, 3, 4, 5))
        theta = random_theta(rng, 2, 3)
        got = stn.warp_perspective(x, as_h3(theta), (2, 3, 4), mode, padding, ac)
        want = stn.warp_affine(x, theta, (2, 3, 4), mode, padding, ac)
        assert got.shape == (2, 2, 2, 3, 4)
        np.testing.assert_allclose(got, want, **tol(np.float64))

    def test_3d_backward_affine_h_matches_warp_affine(self, rng):
        x = rng.standard_normal((2, 2, 3, 4, 5))
        theta = random_theta(rng, 2, 3)
        gout = rng.standard_normal((2, 2, 3, 4, 5))
        gi, gH = stn.warp_perspective_backward(gout, x, as_h3(theta))
        gi2, gt = stn.warp_affine_backward(gout, x, theta)
        assert gH.shape == (2, 4, 4)
        np.testing.assert_allclose(gi, gi2, **tol(np.float64, "grad"))
        np.testing.assert_allclose(gH[:, :3], gt, **tol(np.float64, "grad"))

    @pytest.mark.parametrize("ac", [True, False])
    def test_3d_grid_against_numpy(self, rng, ac):
        H = homography_3d(rng, 2)
        size = (2, 3, 3, 4, 5)
        np.testing.assert_allclose(
            stn.perspective_grid(H, size, ac),
            numpy_perspective_grid_3d(H, size, ac),
            **tol(np.float64),
        )

    @pytest.mark.parametrize("ac", [True, False])
    def test_3d_pure_projective_against_scipy(self, rng, ac):
        x = rng.standard_normal((2, 2, 3, 4, 5))
        H = homography_3d(rng, 2)
        got = stn.warp_perspective(x, H, (2, 3, 4), "bilinear", "zeros", ac)
        grid = numpy_perspective_grid_3d(H, (2, 2, 2, 3, 4), ac)
        want = scipy_grid_sample(x, grid, "bilinear", "zeros", ac)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)

    @pytest.mark.parametrize("mode,padding", covering_pairs(3))
    def test_3d_behind_camera_nan_grid_zero_output_finite_grads(self, rng, mode, padding):
        size = (1, 2, 2, 3, 8)
        got = stn.perspective_grid(BEHIND_3D, size, align_corners=True)
        want = numpy_perspective_grid_3d(BEHIND_3D, size, True)
        invalid = np.isnan(want)[0, ..., 0]
        assert invalid.any() and (~invalid).any()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], rtol=1e-12)
        x = rng.random(size) + 1.0  # no zeros in the input
        out = stn.warp_perspective(x, BEHIND_3D, None, mode, padding, True)
        assert np.all(np.isfinite(out))
        assert np.all(out[0][:, invalid] == 0)
        gi, gH = stn.warp_perspective_backward(
            np.ones_like(out), x, BEHIND_3D, None, mode, padding, True
        )
        assert np.all(np.isfinite(gi)) and np.all(np.isfinite(gH))
        gg = stn.perspective_grid_backward(np.ones(got.shape), BEHIND_3D, size, True)
        assert np.all(np.isfinite(gg))

    @pytest.mark.parametrize("ac", [True, False])
    def test_3d_grid_backward_fd(self, rng, ac):
        H = homography_3d(rng, 2)
        size = (2, 1, 2, 3, 4)
        G = rng.standard_normal((2, 2, 3, 4, 3))
        got = stn.perspective_grid_backward(G, H, size, ac)
        h = 1e-6
        want = np.zeros_like(H)
        one = (1,) + size[1:]
        for n in range(2):
            for k in range(16):
                Hp = H[n : n + 1].copy()
                Hm = H[n : n + 1].copy()
                Hp[0, k // 4, k % 4] += h
                Hm[0, k // 4, k % 4] -= h
                diff = stn.perspective_grid(Hp, one, ac) - stn.perspective_grid(Hm, one, ac)
                want[n, k // 4, k % 4] = np.sum(G[n] * diff[0]) / (2 * h)
        np.testing.assert_allclose(got, want, **FD_TOL)

    @pytest.mark.parametrize("padding,ac", [("zeros", True), ("border", False)])
    def test_3d_backward_fd(self, rng, padding, ac):
        x = rng.standard_normal((2, 2, 3, 4, 5))
        size = (2, 3, 4)
        H = kink_free_homography_3d(rng, 2, size, x.shape[2:], ac)
        gout = rng.standard_normal((2, 2) + size)
        gi, gH = stn.warp_perspective_backward(gout, x, H, size, "bilinear", padding, ac)

        def L(x_, H_):
            return float(np.sum(gout * stn.warp_perspective(x_, H_, size, "bilinear", padding, ac)))

        # input: a central difference along a random direction (exact: L is linear in x)
        x2 = rng.standard_normal(x.shape)
        h = 1e-3
        np.testing.assert_allclose(
            (L(x + h * x2, H) - L(x - h * x2, H)) / (2 * h), np.sum(gi * x2), rtol=1e-9
        )
        h = 1e-7
        want = np.zeros_like(H)
        for n in range(2):
            for k in range(16):
                Hp = H.copy()
                Hm = H.copy()
                Hp[n, k // 4, k % 4] += h
                Hm[n, k // 4, k % 4] -= h
                want[n, k // 4, k % 4] = (L(x, Hp) - L(x, Hm)) / (2 * h)
        np.testing.assert_allclose(gH, want, rtol=1e-5, atol=1e-6)

    def test_3d_float32(self, rng):
        x = rng.standard_normal((2, 2, 3, 4, 5))
        H = homography_3d(rng, 2)
        x32, H32 = x.astype(np.float32), H.astype(np.float32)
        out = stn.warp_perspective(x32, H32, (2, 3, 4))
        assert out.dtype == np.float32
        want = stn.warp_perspective(x32.astype(np.float64), H32.astype(np.float64), (2, 3, 4))
        np.testing.assert_allclose(out, want, **tol(np.float32))
        gout = rng.standard_normal(out.shape).astype(np.float32)
        gi, gH = stn.warp_perspective_backward(gout, x32, H32, (2, 3, 4))
        wi, wH = stn.warp_perspective_backward(
            gout.astype(np.float64), x32.astype(np.float64), H32.astype(np.float64), (2, 3, 4)
        )
        assert gi.dtype == gH.dtype == np.float32
        np.testing.assert_allclose(gi, wi, **tol(np.float32, "grad"))
        np.testing.assert_allclose(gH, wH, rtol=1e-3, atol=1e-3)

    def test_3d_options_and_errors(self, rng):
        x = rng.standard_normal((1, 1, 2, 3, 3))
        H = np.eye(4)[None]
        np.testing.assert_allclose(stn.warp_perspective(x, H, align_corners=True), x, rtol=1e-15)
        np.testing.assert_array_equal(stn.warp_perspective(x, H[0]), stn.warp_perspective(x, H))
        gi, gH = stn.warp_perspective_backward(np.ones(x.shape), x, H, input_grad=False)
        assert gi is None and gH.shape == (1, 4, 4)
        out = np.empty((1, 5, 3, 3, 3))
        assert stn.perspective_grid(H, (1, 1, 5, 3, 3), out=out) is out
        shapes = r"H must have shape \(N, 3, 3\) for 2-D or \(N, 4, 4\) for 3-D; got "
        with pytest.raises(ValueError, match=shapes + r"\(1, 4, 4\) with 4-D input"):
            stn.warp_perspective(x[:, :, 0], H)
        with pytest.raises(ValueError, match=shapes + r"\(1, 3, 3\) with 5-D input"):
            stn.warp_perspective_backward(np.ones(x.shape), x, np.eye(3)[None])
        with pytest.raises(ValueError, match=shapes + r"\(1, 4, 4\) with a 4-entry size"):
            stn.perspective_grid(H, (1, 1, 3, 3))
        with pytest.raises(ValueError, match=shapes + r"\(1, 3, 3\) with a 5-entry size"):
            stn.perspective_grid(np.eye(3)[None], (1, 1, 2, 3, 3))
        with pytest.raises(ValueError, match=shapes + r"\(1, 4, 3\)"):
            stn.perspective_grid(np.zeros((1, 4, 3)), (1, 1, 2, 3, 3))
        with pytest.raises(ValueError, match="bicubic"):
            stn.warp_perspective(x, H, mode="bicubic")
        with pytest.raises(ValueError, match="size must have 3 entries"):
            stn.warp_perspective(x, H, size=(3, 3))
        with pytest.raises(ValueError, match="grad_grid"):
            stn.perspective_grid_backward(np.zeros((1, 2, 3, 3, 2)), H, (1, 1, 2, 3, 3))


# ----------------------------------------------------------------------------
# flow
# ----------------------------------------------------------------------------


def scipy_warp_flow(x, flow, padding, ac, order=1):
    """map_coordinates at (row + dy, col + dx) (2-D) / (plane + dz, row + dy, col + dx)."""
    dims = flow.shape[-1]
    sp = flow.shape[1:-1]
    idx = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in sp], indexing="ij")
    from scipy import ndimage
    from scipy_ref import SCIPY_MODE

    out = np.zeros(x.shape[:2] + sp)
    for n in range(x.shape[0]):
        coords = [idx[a] + flow[n, ..., dims - 1 - a] for a in range(dims)]
        for c in range(x.shape[1]):
            out[n, c] = ndimage.map_coordinates(
                x[n, c], coords, order=order, mode=SCIPY_MODE[(padding, ac)], prefilter=False
            )
    return out


class TestFlow:
    @pytest.mark.parametrize("ac", [True, False])
    @pytest.mark.parametrize("dims", [2, 3])
    def test_zero_flow_is_identity_grid(self, ac, dims):
        sp = (3, 4, 5)[3 - dims :]
        flow = np.zeros((2,) + sp + (dims,))
        theta = np.tile(np.eye(dims, dims + 1), (2, 1, 1))
        np.testing.assert_allclose(
            stn.flow_grid(flow, align_corners=ac),
            stn.affine_grid(theta, (2, 1) + sp, ac),
            rtol=0,
            atol=1e-15,
        )

    @pytest.mark.parametrize("padding", ["reflection"])  # padding: grid_sample's tests
    @pytest.mark.parametrize("ac", [True, False])
    def test_against_scipy_2d(self, rng, padding, ac):
        x = rng.standard_normal((2, 2, 6, 7))
        flow = rng.uniform(-2.5, 2.5, (2, 5, 8, 2))  # output 5×8 from a 6×7 input
        got = stn.warp_flow(x, flow, "bilinear", padding, ac)
        np.testing.assert_allclose(got, scipy_warp_flow(x, flow, padding, ac), atol=1e-12)
        assert got.shape == (2, 2, 5, 8)

    @pytest.mark.parametrize("ac", [True, False])
    def test_against_scipy_3d(self, rng, ac):
        x = rng.standard_normal((1, 2, 4, 5, 3))
        flow = rng.uniform(-1.5, 1.5, (1, 3, 4, 5, 3))
        got = stn.warp_flow(x, flow, "bilinear", "zeros", ac)
        np.testing.assert_allclose(got, scipy_warp_flow(x, flow, "zeros", ac), atol=1e-12)

    def test_integer_flow_shifts(self, rng):
        x = rng.standard_normal((1, 1, 4, 6)).astype(np.float32)
        flow = np.zeros((1, 4, 6, 2), np.float32)
        flow[..., 0] = 2.0  # read two pixels to the right
        flow[..., 1] = -1.0  # and one up
        out = stn.warp_flow(x, flow)
        want = np.zeros_like(x)
        want[0, 0, 1:, :4] = x[0, 0, :3, 2:]
        np.testing.assert_allclose(out, want, **tol(np.float32))

    @pytest.mark.parametrize("ac", [True, False])
    def test_flow_grid_backward_scale(self, rng, ac):
        G = rng.standard_normal((1, 3, 4, 2))
        got = stn.flow_grid_backward(G, (5, 9), ac)
        sx, sy = (2 / 8, 2 / 4) if ac else (2 / 9, 2 / 5)
        np.testing.assert_allclose(got[..., 0], G[..., 0] * sx, rtol=1e-15)
        np.testing.assert_allclose(got[..., 1], G[..., 1] * sy, rtol=1e-15)
        # and it is the derivative of flow_grid (linear: any step)
        f = rng.standard_normal((1, 3, 4, 2))
        d = stn.flow_grid(f + 1.0, (5, 9), ac) - stn.flow_grid(f, (5, 9), ac)
        np.testing.assert_allclose(d[..., 0], sx, rtol=1e-12)

    # the flow's own chain rule, once per dimensionality (paddings: grid_sample's tests)
    @pytest.mark.parametrize("dims,padding", [(2, "reflection"), (3, "border")])
    def test_backward_fd(self, rng, padding, dims):
        sp_in = (4, 5, 6)[3 - dims :]
        sp_out = (3, 4, 5)[3 - dims :]
        x = rng.standard_normal((2, 2) + sp_in)
        # fractional parts in [0.1, 0.9]: no step crosses a kink
        flow = rng.integers(-2, 2, (2,) + sp_out + (dims,)) + rng.uniform(0.1, 0.9)
        gout = rng.standard_normal((2, 2) + sp_out)
        gi, gf = stn.warp_flow_backward(gout, x, flow, "bilinear", padding, False)
        h = 1e-6
        want = np.empty_like(flow)
        for k in range(dims):  # each output pixel depends on its own flow vector only
            fp = flow.copy()
            fm = flow.copy()
            fp[..., k] += h
            fm[..., k] -= h
            diff = stn.warp_flow(x, fp, "bilinear", padding) - stn.warp_flow(
                x, fm, "bilinear", padding
            )
            want[..., k] = np.sum(gout * diff, axis=1) / (2 * h)
        np.testing.assert_allclose(gf, want, **FD_TOL)
        x2 = rng.standard_normal(x.shape)
        lhs = np.sum(gout * stn.warp_flow(x2, flow, "bilinear", padding))
        np.testing.assert_allclose(lhs, np.sum(gi * x2), rtol=1e-12)

    def test_options_and_errors(self, rng):
        x = rng.standard_normal((1, 1, 3, 3))
        flow = np.zeros((1, 3, 3, 2))
        gi, gf = stn.warp_flow_backward(np.ones((1, 1, 3, 3)), x, flow, flow_grad=False)
        assert gf is None
        with pytest.raises(ValueError, match="flow's last axis must have size 2"):
            stn.flow_grid(np.zeros((1, 3, 3, 3)))
        with pytest.raises(ValueError, match="flow must be 4"):
            stn.warp_flow(x, np.zeros((1, 3, 3, 3, 3)))
        with pytest.raises(ValueError, match="input_size"):
            stn.flow_grid(flow, input_size=(3,))
        with pytest.raises(ValueError, match=r"flow\.shape"):  # batches 2 and 3
            stn.warp_flow(np.zeros((2, 1, 3, 3)), np.tile(flow, (3, 1, 1, 1)))
        with pytest.raises(TypeError, match="flow has dtype float32"):
            stn.warp_flow(x, flow.astype(np.float32))
        with pytest.raises(ValueError, match="grad_output"):
            stn.warp_flow_backward(np.ones((1, 1, 2, 3)), x, flow)
