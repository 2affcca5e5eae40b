"""GPU twins of the projective and flow warps equal the CPU (CUDA simulator, tiny shapes,
small launches so that several blocks, the grid-stride loops and the edge guards run)."""

import numpy as np
import pytest
from conftest import random_theta, tol
from cuda_helpers import cuda, needs_cuda

import stn_numba as stn

pytestmark = [needs_cuda("tests/test_cuda_warps.py"), pytest.mark.usefixtures("small_launches")]


def _homography(rng, n, dtype):
    H = np.zeros((n, 3, 3))
    H[:, :2] = random_theta(rng, n, 2, strength=0.2)
    H[:, 2, :2] = rng.uniform(-0.4, 0.4, (n, 2))
    H[:, 2, 2] = 1.0
    H[0, 2] = (1.5, 0.0, 0.5)  # sample 0 has points behind the camera
    return H.astype(dtype)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("dtype", [np.float32, pytest.param(np.float64, marks=pytest.mark.slow)])
def test_perspective_gpu_equals_cpu(rng, mode, dtype):
    x = rng.standard_normal((2, 2, 4, 5)).astype(dtype)
    H = _homography(rng, 2, dtype)
    v, g = tol(dtype), tol(dtype, "grad")
    kw = dict(mode=mode, padding_mode="border", align_corners=False)
    grid_cpu = stn.perspective_grid(H, (2, 1, 3, 6))
    grid_gpu = stn.perspective_grid(H, (2, 1, 3, 6), device="cuda")
    np.testing.assert_allclose(grid_gpu, grid_cpu, **v)  # NaN in the same places
    gg = np.nan_to_num(rng.standard_normal(grid_cpu.shape).astype(dtype))
    np.testing.assert_allclose(
        stn.perspective_grid_backward(gg, H, (2, 1, 3, 6), device="cuda"),
        stn.perspective_grid_backward(gg, H, (2, 1, 3, 6)),
        **g,
    )
    # The CPU reference: grid_sample at perspective_grid's points and perspective_grid's
    # backward, which tests/test_perspective_flow.py shows equal to warp_perspective (the
    # drivers of the CPU suite; warp_perspective's own, with border padding, would be
    # compiled for this test alone).
    out = stn.grid_sample(x, grid_cpu, **kw)
    np.testing.assert_allclose(stn.warp_perspective(x, H, (3, 6), device="cuda", **kw), out, **v)
    go = rng.standard_normal(out.shape).astype(dtype)
    gi_c, gp = stn.grid_sample_backward(go, x, grid_cpu, **kw)
    gH_c = stn.perspective_grid_backward(gp, H, (2, 1, 3, 6))
    gi, gH = stn.warp_perspective_backward(go, x, H, (3, 6), device="cuda", **kw)
    np.testing.assert_allclose(gi, gi_c, **g)
    np.testing.assert_allclose(gH, gH_c, **g)


def _homography_3d(rng, n, dtype):
    H = np.zeros((n, 4, 4))
    H[:, :3] = random_theta(rng, n, 3, strength=0.2)
    H[:, 3, :3] = rng.uniform(-0.4, 0.4, (n, 3))
    H[:, 3, 3] = 1.0
    H[0, 3] = (1.5, 0.0, 0.0, 0.5)  # sample 0 has points behind the camera
    return H.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_perspective_3d_gpu_equals_cpu(rng, dtype):
    x = rng.standard_normal((2, 2, 3, 4, 5)).astype(dtype)
    H = _homography_3d(rng, 2, dtype)
    v, g = tol(dtype), tol(dtype, "grad")
    kw = dict(mode="bilinear", padding_mode="border", align_corners=False)
    size = (2, 1, 2, 3, 4)
    grid_cpu = stn.perspective_grid(H, size)
    grid_gpu = stn.perspective_grid(H, size, device="cuda")
    assert np.isnan(grid_cpu).any()
    np.testing.assert_allclose(grid_gpu, grid_cpu, **v)  # NaN in the same places
    gg = np.nan_to_num(rng.standard_normal(grid_cpu.shape).astype(dtype))
    np.testing.assert_allclose(
        stn.perspective_grid_backward(gg, H, size, device="cuda"),
        stn.perspective_grid_backward(gg, H, size),
        **g,
    )
    out = stn.warp_perspective(x, H, size[2:], **kw)
    np.testing.assert_allclose(stn.warp_perspective(x, H, size[2:], device="cuda", **kw), out, **v)
    go = rng.standard_normal(out.shape).astype(dtype)
    gi_c, gH_c = stn.warp_perspective_backward(go, x, H, size[2:], **kw)
    gi, gH = stn.warp_perspective_backward(go, x, H, size[2:], device="cuda", **kw)
    assert gH.shape == (2, 4, 4)
    np.testing.assert_allclose(gi, gi_c, **g)
    np.testing.assert_allclose(gH, gH_c, **g)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flow_gpu_equals_cpu(rng, dims, dtype):
    sp_in = (3, 4, 5)[3 - dims :]
    sp_out = (2, 3, 4)[3 - dims :]
    x = rng.standard_normal((2, 2) + sp_in).astype(dtype)
    flow = rng.uniform(-1.5, 1.5, (2,) + sp_out + (dims,)).astype(dtype)
    v, g = tol(dtype), tol(dtype, "grad")
    for ac in (True, False):
        np.testing.assert_allclose(
            stn.flow_grid(flow, sp_in, ac, device="cuda"), stn.flow_grid(flow, sp_in, ac), **v
        )
        np.testing.assert_allclose(
            stn.flow_grid_backward(flow, sp_in, ac, device="cuda"),
            stn.flow_grid_backward(flow, sp_in, ac),
            **g,
        )
    kw = dict(padding_mode="reflection", align_corners=True)
    out = stn.warp_flow(x, flow, **kw)
    np.testing.assert_allclose(stn.warp_flow(x, flow, device="cuda", **kw), out, **v)
    go = rng.standard_normal(out.shape).astype(dtype)
    gi_c, gf_c = stn.warp_flow_backward(go, x, flow, **kw)
    gi, gf = stn.warp_flow_backward(go, x, flow, device="cuda", **kw)
    np.testing.assert_allclose(gi, gi_c, **g)
    np.testing.assert_allclose(gf, gf_c, **g)


def test_device_arrays_in_device_arrays_out(rng):
    x = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    H = _homography(rng, 2, np.float32)
    flow = rng.uniform(-1, 1, (2, 4, 4, 2)).astype(np.float32)
    dx, dH, df = cuda.to_device(x), cuda.to_device(H), cuda.to_device(flow)
    for res, ref in (
        (stn.warp_perspective(dx, dH), stn.warp_perspective(x, H)),
        (stn.warp_flow(dx, df), stn.warp_flow(x, flow)),
    ):
        assert not isinstance(res, np.ndarray)
        np.testing.assert_allclose(res.copy_to_host(), ref, **tol(np.float32))


@pytest.mark.parametrize("on_device", [False, True])
def test_broadcast_gpu_equals_cpu(rng, on_device):
    """One image with N θ, and N images with one unbatched θ, on the GPU: the CPU's
    numbers (NumPy arrays with device="cuda", and device arrays in and out)."""
    x = rng.standard_normal((3, 2, 4, 5)).astype(np.float32)
    theta = random_theta(rng, 3, 2, np.float32)
    go = rng.standard_normal((3, 2, 4, 5)).astype(np.float32)

    def gpu(a):
        return cuda.to_device(a) if on_device else a

    def host(a):
        return a.copy_to_host() if on_device else a

    for xa, ta in ((x[:1], theta), (x, theta[0])):
        kw = {} if on_device else {"device": "cuda"}
        out = stn.warp_affine(gpu(xa), gpu(ta), **kw)
        np.testing.assert_array_equal(host(out), stn.warp_affine(xa, ta))
        gi, gt = stn.warp_affine_backward(gpu(go), gpu(xa), gpu(ta), **kw)
        wi, wt = stn.warp_affine_backward(go, xa, ta)
        assert host(gi).shape == xa.shape and host(gt).shape == ta.shape
        np.testing.assert_allclose(host(gi), wi, **tol(np.float32, "grad"))
        np.testing.assert_allclose(host(gt), wt, **tol(np.float32, "grad"))
