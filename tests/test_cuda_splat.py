"""GPU twins of splat / splat_backward: numba.cuda equals the CPU.

Runs where ``numba.cuda`` is usable: on a real GPU, or under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1`` set before Python starts). Tiny shapes; the launch
configuration is shrunk (4 threads × at most 3 blocks) so that several blocks, the
grid-stride loops and the edge guards all run.
"""

import numpy as np
import pytest
from conftest import DTYPES, PADDINGS, tol
from cuda_helpers import cuda, needs_cuda

import stn_numba as stn

pytestmark = [needs_cuda("tests/test_cuda_splat.py"), pytest.mark.usefixtures("small_launches")]


def _data(rng, dims, dtype, spread=1.4):
    if dims == 2:
        x = rng.standard_normal((2, 2, 3, 4))
        size = (4, 5)
    else:
        x = rng.standard_normal((2, 2, 2, 3, 2))
        size = (3, 2, 3)
    grid = rng.uniform(-spread, spread, (x.shape[0], *x.shape[2:], dims))
    return x.astype(dtype), grid.astype(dtype), size


CASES = [
    (dims, mode, padding, ac, dtype)
    for dims, mode in ((2, "bilinear"), (2, "nearest"), (2, "bicubic"), (3, "bilinear"))
    for padding in PADDINGS
    for ac in (True, False)
    for dtype in DTYPES
    # every padding × align_corners for bilinear; one dtype per case elsewhere
    if mode == "bilinear" or (dtype is np.float64) == ac
] + [(3, "nearest", "reflection", False, np.float32), (3, "nearest", "zeros", True, np.float64)]
IDS = [f"{d}d-{m}-{p}-ac{int(a)}-{np.dtype(t).name}" for d, m, p, a, t in CASES]


@pytest.mark.parametrize("dims,mode,padding,align_corners,dtype", CASES, ids=IDS)
def test_gpu_equals_cpu(rng, dims, mode, padding, align_corners, dtype):
    x, grid, size = _data(rng, dims, dtype)
    kw = dict(mode=mode, padding_mode=padding, align_corners=align_corners)
    g = tol(dtype, "grad")
    ref = stn.splat(x, grid, size, **kw)
    for det in (True, False):
        got = stn.splat(x, grid, size, device="cuda", deterministic=det, **kw)
        assert isinstance(got, np.ndarray) and got.dtype == dtype and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, **g)
    gout = rng.standard_normal(ref.shape).astype(dtype)
    gi_cpu, gg_cpu = stn.splat_backward(gout, x, grid, **kw)
    gi, gg = stn.splat_backward(gout, x, grid, device="cuda", **kw)
    np.testing.assert_allclose(gi, gi_cpu, **tol(dtype))
    np.testing.assert_allclose(gg, gg_cpu, **g)


@pytest.mark.parametrize("dims", [2, 3])
def test_deterministic_splat_is_bit_identical_across_launches(
    rng, dims, small_launches, monkeypatch
):
    x, grid, size = _data(rng, dims, np.float32)
    grid = (grid * 0.2).astype(np.float32)  # zoom out: many pixels land on the same ones
    first = stn.splat(x, grid, size, device="cuda")
    again = stn.splat(x, grid, size, device="cuda")
    monkeypatch.setattr(small_launches, "THREADS_PER_BLOCK", 7)
    monkeypatch.setattr(small_launches, "MAX_BLOCKS", 2)
    other = stn.splat(x, grid, size, device="cuda")
    monkeypatch.setattr(small_launches, "THREADS_PER_BLOCK", 3)
    monkeypatch.setattr(small_launches, "MAX_BLOCKS", 5)
    third = stn.splat(x, grid, size, device="cuda")
    for r in (again, other, third):
        np.testing.assert_array_equal(r, first)
    np.testing.assert_allclose(first, stn.splat(x, grid, size), **tol(np.float32, "grad"))


def test_device_arrays_in_device_arrays_out(rng, monkeypatch):
    x, grid, size = _data(rng, 2, np.float64)
    gout = rng.standard_normal(x.shape[:2] + size)
    dx, dgrid, dgout = cuda.to_device(x), cuda.to_device(grid), cuda.to_device(gout)
    cls = type(dx)
    real_copy = cls.copy_to_host

    def no_host_copy(*args, **kwargs):
        raise AssertionError("a device array was copied to the host")

    monkeypatch.setattr(cls, "copy_to_host", no_host_copy)
    out = stn.splat(dx, dgrid, size)  # device=None picks the GPU
    preset = cuda.device_array(x.shape[:2] + size, dtype=np.float64)
    res = stn.splat(dx, dgrid, size, out=preset, deterministic=False)
    gi, gg = stn.splat_backward(dgout, dx, dgrid)
    monkeypatch.setattr(cls, "copy_to_host", real_copy)
    assert res is preset
    for r in (out, gi, gg):
        assert not isinstance(r, np.ndarray) and hasattr(r, "copy_to_host")
    v, g = tol(np.float64), tol(np.float64, "grad")
    np.testing.assert_allclose(out.copy_to_host(), stn.splat(x, grid, size), **g)
    np.testing.assert_allclose(preset.copy_to_host(), stn.splat(x, grid, size), **g)
    ref_gi, ref_gg = stn.splat_backward(gout, x, grid)
    np.testing.assert_allclose(gi.copy_to_host(), ref_gi, **v)
    np.testing.assert_allclose(gg.copy_to_host(), ref_gg, **g)
    host = np.full(x.shape[:2] + size, 7.0)  # NumPy out with device="cuda": overwritten
    assert stn.splat(x, grid, size, device="cuda", out=host) is host
    np.testing.assert_allclose(host, stn.splat(x, grid, size), **g)


def test_empty_batch_on_gpu():
    x = np.zeros((0, 2, 3, 4), np.float32)
    g = np.zeros((0, 3, 4, 2), np.float32)
    assert stn.splat(x, g, (2, 2), device="cuda").shape == (0, 2, 2, 2)
    gi, gg = stn.splat_backward(np.zeros((0, 2, 2, 2), np.float32), x, g, device="cuda")
    assert gi.shape == x.shape and gg.shape == g.shape
