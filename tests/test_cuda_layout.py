"""Channels-last on the GPU (CUDA simulator, tiny shapes, small launches): NHWC / NDHWC
device results equal the CPU's, for NumPy arrays with device="cuda" and for device
arrays in and out (which stay channels-last on the device, with no transposed copy)."""

import numpy as np
import pytest
from conftest import random_theta, tol
from cuda_helpers import cuda, needs_cuda

import stn_numba as stn

pytestmark = [needs_cuda("tests/test_cuda_layout.py"), pytest.mark.usefixtures("small_launches")]

DT = np.float64


def last(a):
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def _ops(rng, dims):
    n = 2
    spatial = (3, 4) if dims == 2 else (2, 3, 3)
    size = (4, 3) if dims == 2 else (3, 2, 3)
    theta = random_theta(rng, n, dims, DT, strength=0.25)
    grid = rng.uniform(-1.2, 1.2, (n, *size, dims))
    sgrid = rng.uniform(-1.2, 1.2, (n, *spatial, dims))
    ops = {
        "grid_sample": (
            lambda x, **kw: stn.grid_sample(x, grid, **kw),
            lambda g, x, **kw: stn.grid_sample_backward(g, x, grid, **kw),
        ),
        "warp_affine": (
            lambda x, **kw: stn.warp_affine(x, theta, size, **kw),
            lambda g, x, **kw: stn.warp_affine_backward(g, x, theta, size, **kw),
        ),
        "warp_flow": (
            lambda x, **kw: stn.warp_flow(x, 2.0 * grid, **kw),
            lambda g, x, **kw: stn.warp_flow_backward(g, x, 2.0 * grid, **kw),
        ),
        "splat": (
            lambda x, **kw: stn.splat(x, sgrid, size, **kw),
            lambda g, x, **kw: stn.splat_backward(g, x, sgrid, **kw),
        ),
    }
    if dims == 2:
        H = np.concatenate([theta, np.tile([[[0.1, -0.2, 1.0]]], (n, 1, 1))], 1)
        ops["warp_perspective"] = (
            lambda x, **kw: stn.warp_perspective(x, H, size, **kw),
            lambda g, x, **kw: stn.warp_perspective_backward(g, x, H, size, **kw),
        )
    x = rng.standard_normal((n, 3, *spatial))
    return x, ops


@pytest.mark.parametrize(
    "dims,name",
    [(2, k) for k in ("grid_sample", "warp_affine", "warp_flow", "warp_perspective", "splat")]
    # 3-D under --all: its channels-last CPU references are compiled for this test alone
    + [pytest.param(3, k, marks=pytest.mark.slow) for k in ("grid_sample", "warp_affine", "splat")],
)
@pytest.mark.parametrize("deterministic", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_channels_last_gpu_equals_cpu(rng, dims, name, deterministic):
    # The CPU reference runs on the channels-first array: tests/test_layout.py shows
    # that the CPU's channels-last results equal it, and its drivers are the ones the
    # CPU tests compile (channels-last ones would be compiled for this test alone).
    x, ops = _ops(rng, dims)
    fwd, bwd = ops[name]
    layout = "NHWC" if dims == 2 else "NDHWC"
    kw = dict(mode="bilinear", padding_mode="zeros")
    xl = last(x)
    y = last(fwd(x, **kw))
    extra = {} if name != "splat" else {"deterministic": deterministic}
    np.testing.assert_allclose(fwd(xl, device="cuda", layout=layout, **extra, **kw), y, **tol(DT))
    g = last(rng.standard_normal(np.moveaxis(y, -1, 1).shape))
    gi, go = bwd(np.ascontiguousarray(np.moveaxis(g, -1, 1)), x, **kw)
    gig, gog = bwd(g, xl, device="cuda", deterministic=deterministic, layout=layout, **kw)
    assert gig.shape == xl.shape and gig.flags.c_contiguous
    np.testing.assert_allclose(gig, last(gi), **tol(DT, "grad"))
    np.testing.assert_allclose(gog, go, **tol(DT, "grad"))


def test_device_arrays_stay_channels_last(rng):
    x, ops = _ops(rng, 2)
    fwd, bwd = ops["warp_affine"]
    xl = last(x)
    dx = cuda.to_device(xl)
    dy = fwd(dx, layout="NHWC", mode="bicubic")
    assert not isinstance(dy, np.ndarray) and dy.is_c_contiguous()
    host = dy.copy_to_host()
    # the reference: the CPU on the channels-first array (as above)
    np.testing.assert_allclose(host, last(fwd(x, mode="bicubic")), **tol(DT))
    dgi, dgt = bwd(cuda.to_device(np.ones_like(host)), dx, layout="NHWC", mode="bicubic")
    assert dgi.shape == xl.shape and dgi.is_c_contiguous()
    gi, gt = bwd(np.ones_like(np.moveaxis(host, -1, 1)), x, mode="bicubic")
    np.testing.assert_allclose(dgi.copy_to_host(), last(gi), **tol(DT, "grad"))
    np.testing.assert_allclose(dgt.copy_to_host(), gt, **tol(DT, "grad"))
