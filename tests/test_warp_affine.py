"""warp_affine and affine_grid: fused == unfused, scipy.ndimage.affine_transform parity,
known answers of the base grid."""

import numpy as np
import pytest
from conftest import DTYPES, MODES_2D, MODES_3D, PADDINGS, random_theta, tol
from scipy_ref import scipy_warp_affine

import stn_numba as stn


class TestAffineGrid:
    def test_identity_align_true(self):
        grid = stn.affine_grid(np.eye(2, 3)[None], (1, 1, 3, 5), align_corners=True)
        np.testing.assert_allclose(grid[0, :, :, 0], np.tile(np.linspace(-1, 1, 5), (3, 1)))
        np.testing.assert_allclose(grid[0, :, :, 1], np.tile(np.linspace(-1, 1, 3), (5, 1)).T)

    def test_identity_align_false_pixel_centres(self):
        grid = stn.affine_grid(np.eye(2, 3)[None], (1, 1, 2, 4), align_corners=False)
        np.testing.assert_allclose(grid[0, 0, :, 0], [-0.75, -0.25, 0.25, 0.75])
        np.testing.assert_allclose(grid[0, :, 0, 1], [-0.5, 0.5])

    @pytest.mark.parametrize("align_corners", [True, False])
    def test_size_one_axis_is_zero(self, align_corners):
        grid = stn.affine_grid(np.eye(3, 4)[None], (1, 1, 1, 1, 3), align_corners)
        np.testing.assert_array_equal(grid[0, 0, 0, :, 1:], 0.0)

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_matches_explicit_matmul(self, rng, dtype):
        theta = random_theta(rng, 3, 3, dtype)
        size = (3, 2, 4, 5, 6)
        grid = stn.affine_grid(theta, size, False)
        assert grid.shape == (3, 4, 5, 6, 3) and grid.dtype == dtype
        z, y, x = np.meshgrid(
            *[np.linspace(-1, 1, s) * (s - 1) / s for s in size[2:]], indexing="ij"
        )
        base = np.stack([x, y, z, np.ones_like(x)], -1)
        ref = np.einsum("dhwj,nij->ndhwi", base, theta.astype(np.float64))
        np.testing.assert_allclose(grid, ref, **tol(dtype))

    @pytest.mark.parametrize("dims", [2, 3])
    def test_backward_is_adjoint(self, rng, dims):
        """⟨affine_grid(θ), G⟩ = ⟨θ, affine_grid_backward(G)⟩ (the map is linear in θ)."""
        size = (2, 1, 3, 4) if dims == 2 else (2, 1, 3, 4, 2)
        theta = random_theta(rng, 2, dims)
        G = rng.standard_normal((2, *size[2:], dims))
        lhs = np.sum(stn.affine_grid(theta, size, True) * G)
        rhs = np.sum(theta * stn.affine_grid_backward(G, size, True))
        assert abs(lhs - rhs) < 1e-12 * max(1.0, abs(lhs))


class TestWarpAffine:
    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("padding", PADDINGS)
    @pytest.mark.parametrize("mode", MODES_2D)
    def test_equals_grid_sample_of_affine_grid_2d(self, rng, mode, padding, align_corners):
        x = rng.standard_normal((3, 2, 7, 5))
        theta = random_theta(rng, 3, 2, strength=0.5)
        size = (6, 9)
        grid = stn.affine_grid(theta, (3, 2, *size), align_corners)
        ref = stn.grid_sample(x, grid, mode, padding, align_corners)
        got = stn.warp_affine(x, theta, size, mode, padding, align_corners)
        np.testing.assert_array_equal(got, ref)  # float64: the very same arithmetic

    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("padding", PADDINGS)
    @pytest.mark.parametrize("mode", MODES_3D)
    def test_equals_grid_sample_of_affine_grid_3d(self, rng, mode, padding, align_corners):
        x = rng.standard_normal((2, 2, 4, 5, 3))
        theta = random_theta(rng, 2, 3, strength=0.5)
        size = (3, 4, 6)
        grid = stn.affine_grid(theta, (2, 2, *size), align_corners)
        ref = stn.grid_sample(x, grid, mode, padding, align_corners)
        got = stn.warp_affine(x, theta, size, mode, padding, align_corners)
        np.testing.assert_array_equal(got, ref)

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_float32_close_to_unfused(self, rng, dtype):
        x = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
        theta = random_theta(rng, 2, 2, dtype)
        grid = stn.affine_grid(theta, x.shape, False)
        np.testing.assert_allclose(
            stn.warp_affine(x, theta), stn.grid_sample(x, grid), **tol(dtype)
        )

    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("padding", PADDINGS)
    def test_scipy_affine_transform_2d(self, rng, padding, align_corners):
        x = rng.standard_normal((2, 2, 9, 7))
        theta = random_theta(rng, 2, 2, strength=0.4)
        size = (6, 10)
        ref = scipy_warp_affine(x, theta, size, padding, align_corners)
        got = stn.warp_affine(x, theta, size, "bilinear", padding, align_corners)
        np.testing.assert_allclose(got, ref, atol=1e-10)

    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("padding", PADDINGS)
    def test_scipy_affine_transform_3d(self, rng, padding, align_corners):
        x = rng.standard_normal((1, 2, 5, 6, 4))
        theta = random_theta(rng, 1, 3, strength=0.4)
        size = (4, 3, 5)
        ref = scipy_warp_affine(x, theta, size, padding, align_corners)
        got = stn.warp_affine(x, theta, size, "bilinear", padding, align_corners)
        np.testing.assert_allclose(got, ref, atol=1e-10)

    def test_size_none_keeps_input_size(self, rng):
        x = rng.standard_normal((1, 1, 5, 8))
        assert stn.warp_affine(x, random_theta(rng, 1, 2)).shape == x.shape

    def test_rotation_3d_about_z(self, rng):
        x = rng.standard_normal((1, 1, 3, 5, 5))
        theta = np.array([[[0.0, -1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]])
        out = stn.warp_affine(x, theta, align_corners=True)
        np.testing.assert_allclose(out, np.rot90(x, 1, axes=(3, 4)), atol=1e-12)
