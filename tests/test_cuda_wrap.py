"""GPU twin of tests/test_wrap.py: padding_mode="wrap" on the GPU equals the CPU (CUDA
simulator, tiny shapes, small launches), forward and backward, with the CPU drivers that
tests/test_wrap.py compiles; and the bicubic and nearest backwards, which have no CPU
test of their own there, against the GPU's zeros padding of the tiled image."""

import numpy as np
import pytest
from conftest import random_theta, tol
from cuda_helpers import needs_cuda
from test_wrap import FORWARD, IN_2D, IN_3D, fold3, tile3, wrap_grid

import stn_numba as stn
from stn_numba import _cpu

pytestmark = [needs_cuda("tests/test_cuda_wrap.py"), pytest.mark.usefixtures("small_launches")]

F32 = np.float32
KW = dict(padding_mode="wrap")


def _problem(rng, dims, n=2):
    in_shape = IN_2D if dims == 2 else IN_3D
    out_shape = (3, 4) if dims == 2 else (2, 2, 3)
    x = rng.standard_normal((n, 2, *in_shape)).astype(F32)
    gout = rng.standard_normal((n, 2, *out_shape)).astype(F32)
    return x, gout, in_shape, out_shape


@pytest.mark.parametrize("dims,mode", FORWARD, ids=lambda v: str(v))
def test_forward_gpu_equals_cpu(rng, dims, mode):
    x, _, in_shape, out_shape = _problem(rng, dims)
    for ac in (False, True):
        grid, _ = wrap_grid(rng, 2, out_shape, in_shape, ac, shift=1)
        kw = dict(KW, mode=mode, align_corners=ac)
        gpu = stn.grid_sample(x, grid, device="cuda", **kw)
        np.testing.assert_allclose(gpu, stn.grid_sample(x, grid, **kw), **tol(F32))


@pytest.mark.parametrize("dims", [2, 3])
def test_linear_backward_gpu_equals_cpu(rng, dims):
    x, gout, in_shape, out_shape = _problem(rng, dims)
    grid, _ = wrap_grid(rng, 2, out_shape, in_shape, False, shift=-1)
    gi_c, gg_c = stn.grid_sample_backward(gout, x, grid, **KW)
    gi, gg = stn.grid_sample_backward(gout, x, grid, device="cuda", **KW)
    np.testing.assert_allclose(gi, gi_c, **tol(F32, "grad"))
    np.testing.assert_allclose(gg, gg_c, **tol(F32, "grad"))


def test_warp_affine_backward_gpu_equals_cpu(rng, monkeypatch):
    x, gout, _, size = _problem(rng, 2, n=1)
    theta = random_theta(rng, 1, 2, F32, strength=0.4) * F32(1.6)
    monkeypatch.setattr(_cpu, "bands", lambda n, rows: 1)  # the one-pass CPU driver
    gi_c, gt_c = stn.warp_affine_backward(gout, x, theta, size, **KW)
    gi, gt = stn.warp_affine_backward(gout, x, theta, size, device="cuda", **KW)
    np.testing.assert_allclose(gi, gi_c, **tol(F32, "grad"))
    np.testing.assert_allclose(gt, gt_c, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("mode", ["bicubic", "nearest"])
def test_backward_gpu_equals_tiled_image(rng, mode, align_corners):
    """grad_input is the tiled image's folded back onto one period; grad_grid the tiled
    grid's times d(tiled grid value)/d(grid value), the same for every point."""
    x, gout, in_shape, out_shape = _problem(rng, 2)
    grid, tiled = wrap_grid(rng, 2, out_shape, in_shape, align_corners)
    kw = dict(mode=mode, align_corners=align_corners, device="cuda")
    np.testing.assert_allclose(
        stn.grid_sample(x, grid, padding_mode="wrap", **kw),
        stn.grid_sample(tile3(x), tiled, padding_mode="zeros", **kw),
        **tol(F32),
    )
    gi, gg = stn.grid_sample_backward(gout, x, grid, padding_mode="wrap", **kw)
    gi_t, gg_t = stn.grid_sample_backward(gout, tile3(x), tiled, padding_mode="zeros", **kw)
    np.testing.assert_allclose(gi, fold3(gi_t, in_shape), **tol(F32, "grad"))
    H, W = in_shape
    if align_corners:
        chain = np.array([(W - 1) / (3 * W - 1), (H - 1) / (3 * H - 1)])
    else:
        chain = np.array([1 / 3, 1 / 3])
    np.testing.assert_allclose(gg, gg_t * chain, **tol(F32, "grad"))
    if mode == "nearest":
        assert not gg.any()
    else:
        assert np.abs(gg).max() > 0.1
