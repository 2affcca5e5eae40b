"""GPU twins: every operation on numba.cuda equals the CPU one.

Runs where ``numba.cuda`` is usable: on a real GPU, or on the CPU under Numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1`` set before Python starts, as ``.ci/run`` does).
Shapes are tiny and the launch configuration is shrunk (4 threads × at most 3 blocks)
so that several blocks, the grid-stride loops and the edge guards all run.
"""

import numpy as np
import pytest
from conftest import DTYPES, MODES_2D, MODES_3D, PADDINGS, covering_pairs, random_theta, tol
from cuda_helpers import cuda, needs_cuda

import stn_numba as stn

pytestmark = [needs_cuda("tests/test_cuda.py"), pytest.mark.usefixtures("small_launches")]


def _data(rng, dims, dtype):
    if dims == 2:
        x = rng.standard_normal((2, 3, 4, 5))
        grid = rng.uniform(-1.6, 1.6, (2, 3, 5, 2))
        size = (5, 3)
    else:
        x = rng.standard_normal((2, 2, 3, 4, 3))
        grid = rng.uniform(-1.6, 1.6, (2, 2, 3, 3, 3))
        size = (2, 3, 4)
    theta = random_theta(rng, 2, dims, strength=0.4)
    return x.astype(dtype), grid.astype(dtype), theta.astype(dtype), size


#: Every (mode, padding) in float32, pairs covering each once in float64 (one dtype for
#: the broad matrix: the simulator runs each case's kernels in Python).
CASES = [
    (dims, mode, padding, ac, dtype)
    for dims, modes in ((2, MODES_2D), (3, MODES_3D))
    for dtype in DTYPES
    for mode, padding in (
        [(m, p) for m in modes for p in PADDINGS] if dtype == np.float32 else covering_pairs(dims)
    )
    for ac in (True, False)
]
IDS = [f"{d}d-{m}-{p}-ac{int(a)}-{np.dtype(t).name}" for d, m, p, a, t in CASES]


def _all_only(case):
    """float64 beyond bilinear/zeros (its CPU references would be compiled for this test
    alone) and align_corners=False (a runtime argument of the same kernels): --all."""
    return (case[4] == np.float64 and case[1:3] != ("bilinear", "zeros")) or not case[3]


#: The cases the default run keeps (see _all_only)
PARAMS = [
    pytest.param(
        *c,
        id=i,
        marks=[pytest.mark.slow] if _all_only(c) else [],
    )
    for c, i in zip(CASES, IDS)
]


def _warp_affine_cpu(x, theta, size, dims, **kw):
    """The CPU's warp_affine, and its backward: grad_output -> (input, θ) gradients.
    Beyond the covering pairs, as grid_sample at affine_grid's points and affine_grid's
    backward, which tests/test_warp_affine.py shows equal to it: the CPU suite compiles
    those drivers, where the fused ones would be compiled for this test alone."""
    if (kw["mode"], kw["padding_mode"]) in covering_pairs(dims):
        out = stn.warp_affine(x, theta, size, **kw)

        def backward(gw):
            return stn.warp_affine_backward(gw, x, theta, size, **kw)

    else:
        full = (x.shape[0], x.shape[1], *size)
        grid = stn.affine_grid(theta, full, kw["align_corners"])
        out = stn.grid_sample(x, grid, **kw)

        def backward(gw):
            gi, gg = stn.grid_sample_backward(gw, x, grid, **kw)
            return gi, stn.affine_grid_backward(gg, full, kw["align_corners"])

    return out, backward


@pytest.mark.parametrize("dims,mode,padding,align_corners,dtype", PARAMS)
def test_gpu_equals_cpu(rng, dims, mode, padding, align_corners, dtype):
    x, grid, theta, size = _data(rng, dims, dtype)
    kw = dict(mode=mode, padding_mode=padding, align_corners=align_corners)
    v, g = tol(dtype), tol(dtype, "grad")

    # grid_sample forward and backward (both accumulation modes)
    out_cpu = stn.grid_sample(x, grid, **kw)
    out_gpu = stn.grid_sample(x, grid, device="cuda", **kw)
    assert isinstance(out_gpu, np.ndarray) and out_gpu.dtype == dtype
    np.testing.assert_allclose(out_gpu, out_cpu, **v)
    go = rng.standard_normal(out_cpu.shape).astype(dtype)
    gi_cpu, gg_cpu = stn.grid_sample_backward(go, x, grid, **kw)
    for det in (True, False):
        gi, gg = stn.grid_sample_backward(go, x, grid, device="cuda", deterministic=det, **kw)
        np.testing.assert_allclose(gi, gi_cpu, **g)
        np.testing.assert_allclose(gg, gg_cpu, **g)

    # warp_affine forward and backward, output size != input size
    w_cpu, backward_cpu = _warp_affine_cpu(x, theta, size, dims, **kw)
    np.testing.assert_allclose(stn.warp_affine(x, theta, size, device="cuda", **kw), w_cpu, **v)
    gw = rng.standard_normal(w_cpu.shape).astype(dtype)
    wi_cpu, wt_cpu = backward_cpu(gw)
    wi, wt = stn.warp_affine_backward(gw, x, theta, size, device="cuda", **kw)
    np.testing.assert_allclose(wi, wi_cpu, **g)
    np.testing.assert_allclose(wt, wt_cpu, **g)

    # affine_grid and its backward
    full = (2, 1, *size)
    a_cpu = stn.affine_grid(theta, full, align_corners)
    np.testing.assert_allclose(
        stn.affine_grid(theta, full, align_corners, device="cuda"), a_cpu, **v
    )
    ga = rng.standard_normal(a_cpu.shape).astype(dtype)
    np.testing.assert_allclose(
        stn.affine_grid_backward(ga, full, align_corners, device="cuda"),
        stn.affine_grid_backward(ga, full, align_corners),
        **g,
    )


@pytest.mark.parametrize("dims", [2, 3])
def test_deterministic_backward_is_bit_identical(rng, dims, small_launches, monkeypatch):
    x, grid, theta, _ = _data(rng, dims, np.float32)
    # zoom in so many output pixels scatter into the same input pixels
    grid = (grid * 0.2).astype(np.float32)
    go = rng.standard_normal(x.shape[:2] + grid.shape[1:-1]).astype(np.float32)
    first = stn.grid_sample_backward(go, x, grid, device="cuda")
    again = stn.grid_sample_backward(go, x, grid, device="cuda")
    monkeypatch.setattr(small_launches, "THREADS_PER_BLOCK", 7)
    monkeypatch.setattr(small_launches, "MAX_BLOCKS", 2)
    other = stn.grid_sample_backward(go, x, grid, device="cuda")
    for a, b, c in zip(first, again, other):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    gw = rng.standard_normal(x.shape).astype(np.float32)
    w1 = stn.warp_affine_backward(gw, x, theta, device="cuda")
    monkeypatch.setattr(small_launches, "THREADS_PER_BLOCK", 3)
    w2 = stn.warp_affine_backward(gw, x, theta, device="cuda")
    for a, b in zip(w1, w2):
        assert np.array_equal(a, b)


def test_device_arrays_in_device_arrays_out(rng, monkeypatch):
    x, grid, theta, size = _data(rng, 2, np.float32)
    dx, dgrid, dtheta = cuda.to_device(x), cuda.to_device(grid), cuda.to_device(theta)
    ref = stn.grid_sample(x, grid)
    go = rng.standard_normal(ref.shape).astype(np.float32)
    dgo = cuda.to_device(go)
    cls = type(dx)
    real_copy = cls.copy_to_host

    def no_host_copy(*args, **kwargs):
        raise AssertionError("a device array was copied to the host")

    monkeypatch.setattr(cls, "copy_to_host", no_host_copy)
    out = stn.grid_sample(dx, dgrid)  # device=None picks the GPU
    gi, gg = stn.grid_sample_backward(dgo, dx, dgrid)
    w = stn.warp_affine(dx, dtheta, size)
    wi, wt = stn.warp_affine_backward(
        cuda.to_device(np.ones((2, 3, *size), np.float32)), dx, dtheta, size
    )
    a = stn.affine_grid(dtheta, (2, 3, *size))
    monkeypatch.setattr(cls, "copy_to_host", real_copy)
    for r in (out, gi, gg, w, wi, wt, a):
        assert not isinstance(r, np.ndarray) and hasattr(r, "copy_to_host")
    np.testing.assert_allclose(out.copy_to_host(), ref, **tol(np.float32))
    ref_gi, ref_gg = stn.grid_sample_backward(go, x, grid)
    np.testing.assert_allclose(gi.copy_to_host(), ref_gi, **tol(np.float32, "grad"))
    np.testing.assert_allclose(gg.copy_to_host(), ref_gg, **tol(np.float32, "grad"))


def test_device_out_argument(rng):
    x, grid, _, _ = _data(rng, 2, np.float64)
    out = cuda.device_array((2, 3, 3, 5), dtype=np.float64)
    res = stn.grid_sample(cuda.to_device(x), cuda.to_device(grid), out=out)
    assert res is out
    np.testing.assert_allclose(out.copy_to_host(), stn.grid_sample(x, grid), **tol(np.float64))
    host = np.empty((2, 3, 3, 5))
    assert stn.grid_sample(x, grid, device="cuda", out=host) is host
    np.testing.assert_allclose(host, stn.grid_sample(x, grid), **tol(np.float64))


def test_gpu_array_with_device_cpu_is_refused(rng):
    x, grid, _, _ = _data(rng, 2, np.float32)
    with pytest.raises(TypeError, match="input is a GPU array but device='cpu'"):
        stn.grid_sample(cuda.to_device(x), grid, device="cpu")


def test_empty_batch_on_gpu(rng):
    x = np.zeros((0, 2, 3, 4), np.float32)
    g = np.zeros((0, 2, 2, 2), np.float32)
    assert stn.grid_sample(x, g, device="cuda").shape == (0, 2, 2, 2)
    gi, gg = stn.grid_sample_backward(np.zeros((0, 2, 2, 2), np.float32), x, g, device="cuda")
    assert gi.shape == x.shape and gg.shape == g.shape
