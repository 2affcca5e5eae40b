"""grid_sample: smoke, shapes, known answers, scipy.ndimage parity, bicubic reference."""

import numpy as np
import pytest
from conftest import DTYPES, MODES_2D, PADDINGS, tol
from scipy_ref import normalize, scipy_grid_sample

import stn_numba as stn


def grid_from_pixels(rng, n, out_shape, in_shape, align_corners, avoid_ties=False, reach=3.0):
    """Random grid whose pixel coordinates reach ``reach`` pixels outside the input.

    With ``avoid_ties`` the fractional parts stay out of [0.4, 0.6] so that nearest
    rounding never meets a .5 tie (scipy rounds ties up, we round to even).
    """
    dims = len(in_shape)
    grid = np.empty((n, *out_shape, dims))
    for k in range(dims):  # k: x, y, z -> array axis dims-1-k
        size = in_shape[dims - 1 - k]
        pix = rng.uniform(-reach, size - 1 + reach, (n, *out_shape))
        if avoid_ties:
            frac = pix - np.floor(pix)
            pix = np.where(np.abs(frac - 0.5) < 0.1, pix + 0.25, pix)
        grid[..., k] = normalize(pix, size, align_corners) if size > 1 or not align_corners else 0
    return grid


class TestSmoke:
    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("mode", MODES_2D)
    def test_shape_and_dtype_2d(self, rng, dtype, mode):
        x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
        g = rng.uniform(-1, 1, (2, 4, 6, 2)).astype(dtype)
        out = stn.grid_sample(x, g, mode=mode)
        assert out.shape == (2, 3, 4, 6) and out.dtype == dtype
        assert np.isfinite(out).all()

    @pytest.mark.parametrize(
        "in_shape,out_shape",
        [((1, 1, 1, 1), (1, 1)), ((3, 2, 9, 4), (2, 11)), ((1, 4, 16, 16), (33, 7))],
    )
    def test_shape_sweep(self, rng, in_shape, out_shape):
        x = rng.standard_normal(in_shape)
        g = rng.uniform(-1.2, 1.2, (in_shape[0], *out_shape, 2))
        ref = scipy_grid_sample(x, g, "bilinear", "zeros", False)
        np.testing.assert_allclose(stn.grid_sample(x, g), ref, **tol(np.float64))

    def test_out_argument(self, rng):
        x = rng.standard_normal((1, 2, 5, 5))
        g = rng.uniform(-1, 1, (1, 3, 3, 2))
        out = np.full((1, 2, 3, 3), np.nan)
        res = stn.grid_sample(x, g, out=out)
        assert res is out
        np.testing.assert_array_equal(out, stn.grid_sample(x, g))


class TestScipyParity:
    """order 1 / order 0 sampling of every plane equals map_coordinates."""

    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("padding", PADDINGS)
    @pytest.mark.parametrize("mode", ["bilinear", "nearest"])
    def test_2d(self, rng, mode, padding, align_corners):
        x = rng.standard_normal((2, 3, 6, 9))
        g = grid_from_pixels(rng, 2, (7, 5), (6, 9), align_corners, avoid_ties=mode == "nearest")
        ref = scipy_grid_sample(x, g, mode, padding, align_corners)
        np.testing.assert_allclose(
            stn.grid_sample(x, g, mode, padding, align_corners), ref, **tol(np.float64)
        )

    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("padding", PADDINGS)
    @pytest.mark.parametrize("mode", ["bilinear", "nearest"])
    def test_3d(self, rng, mode, padding, align_corners):
        x = rng.standard_normal((2, 2, 4, 5, 7))
        g = grid_from_pixels(
            rng, 2, (3, 6, 4), (4, 5, 7), align_corners, avoid_ties=mode == "nearest"
        )
        ref = scipy_grid_sample(x, g, mode, padding, align_corners)
        np.testing.assert_allclose(
            stn.grid_sample(x, g, mode, padding, align_corners), ref, **tol(np.float64)
        )

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_float32(self, rng, dtype):
        x = rng.standard_normal((1, 2, 8, 6)).astype(dtype)
        g = rng.uniform(-1.5, 1.5, (1, 5, 5, 2)).astype(dtype)
        ref = scipy_grid_sample(x, g, "bilinear", "reflection", False)
        np.testing.assert_allclose(
            stn.grid_sample(x, g, "bilinear", "reflection", False), ref, **tol(dtype)
        )


class TestKnownAnswers:
    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("mode", MODES_2D)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_identity(self, rng, dtype, mode, align_corners):
        x = rng.standard_normal((2, 3, 6, 7)).astype(dtype)
        theta = np.tile(np.eye(2, 3, dtype=dtype), (2, 1, 1))
        grid = stn.affine_grid(theta, x.shape, align_corners)
        np.testing.assert_allclose(
            stn.grid_sample(x, grid, mode, "zeros", align_corners), x, **tol(dtype)
        )

    @pytest.mark.parametrize("align_corners", [True, False])
    def test_identity_3d(self, rng, align_corners):
        x = rng.standard_normal((1, 2, 3, 4, 5))
        grid = stn.affine_grid(np.eye(3, 4)[None], x.shape, align_corners)
        for mode in ("bilinear", "nearest"):
            np.testing.assert_allclose(
                stn.grid_sample(x, grid, mode, "zeros", align_corners), x, **tol(np.float64)
            )

    @pytest.mark.parametrize("align_corners", [True, False])
    def test_translate_one_pixel(self, rng, align_corners):
        x = rng.standard_normal((1, 2, 5, 6))
        W = x.shape[-1]
        step = 2.0 / (W - 1) if align_corners else 2.0 / W
        theta = np.array([[[1.0, 0.0, step], [0.0, 1.0, 0.0]]])
        out = stn.warp_affine(x, theta, align_corners=align_corners)
        np.testing.assert_allclose(out[..., :-1], x[..., 1:], atol=1e-12)
        np.testing.assert_allclose(out[..., -1], 0.0, atol=1e-12)  # zeros padding
        out = stn.warp_affine(x, theta, padding_mode="border", align_corners=align_corners)
        np.testing.assert_allclose(out[..., -1], x[..., -1], atol=1e-12)

    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("mode", MODES_2D)
    def test_rotate_90(self, rng, mode, align_corners):
        x = rng.standard_normal((2, 3, 7, 7))
        theta = np.tile(np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]), (2, 1, 1))
        out = stn.warp_affine(x, theta, mode=mode, align_corners=align_corners)
        np.testing.assert_allclose(out, np.rot90(x, 1, axes=(2, 3)), atol=1e-12)

    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("shape", [(1, 2, 1, 6), (1, 2, 5, 1), (1, 1, 1, 1)])
    def test_single_row_or_column(self, rng, shape, align_corners):
        x = rng.standard_normal(shape)
        for mode in MODES_2D:
            out = stn.warp_affine(x, np.eye(2, 3)[None], mode=mode, align_corners=align_corners)
            np.testing.assert_allclose(out, x, atol=1e-12)
        g = rng.uniform(-1.3, 1.3, (1, 3, 4, 2))
        for padding in PADDINGS:
            ref = scipy_grid_sample(x, g, "bilinear", padding, align_corners)
            got = stn.grid_sample(x, g, "bilinear", padding, align_corners)
            np.testing.assert_allclose(got, ref, **tol(np.float64))

    def test_far_outside_is_zero(self, rng):
        x = rng.standard_normal((1, 1, 4, 4))
        g = np.full((1, 2, 2, 2), 5.0)
        for mode in MODES_2D:
            np.testing.assert_array_equal(stn.grid_sample(x, g, mode), 0.0)


class TestBicubicReference:
    """Bicubic against the naive NumPy loop in tests/reference.py."""

    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("padding", PADDINGS)
    def test_against_naive(self, rng, padding, align_corners):
        from reference import ref_grid_sample

        x = rng.standard_normal((2, 2, 5, 8))
        g = rng.uniform(-1.6, 1.6, (2, 4, 6, 2))
        ref = ref_grid_sample(x, g, "bicubic", padding, align_corners)
        got = stn.grid_sample(x, g, "bicubic", padding, align_corners)
        np.testing.assert_allclose(got, ref, **tol(np.float64))

    def test_interpolates_and_keeps_constants(self, rng):
        """Keys' kernel interpolates (integer points give the pixel) and its weights sum
        to 1 (a constant image stays constant away from zeros padding)."""
        x = rng.standard_normal((1, 1, 7, 9))
        pix = np.stack([rng.integers(0, 9, (4, 4)), rng.integers(0, 7, (4, 4))], -1)[None]
        g = normalize(pix.astype(np.float64), np.array([9, 7]), True)
        out = stn.grid_sample(x, g, "bicubic", "zeros", True)
        np.testing.assert_allclose(out[0, 0], x[0, 0, pix[0, ..., 1], pix[0, ..., 0]], atol=1e-12)
        const = np.full((1, 1, 7, 9), 2.5)
        g = rng.uniform(-1.5, 1.5, (1, 6, 6, 2))
        for padding in ("border", "reflection"):
            out = stn.grid_sample(const, g, "bicubic", padding, False)
            np.testing.assert_allclose(out, 2.5, atol=1e-12)
