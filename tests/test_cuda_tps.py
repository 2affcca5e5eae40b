"""GPU twins of tps_grid / tps_grid_backward: numba.cuda equals the CPU.

Runs where ``numba.cuda`` is usable: on a real GPU, or under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_cuda_tps.py``). Tiny shapes and a
shrunk launch configuration (4 threads × at most 3 blocks), so that several blocks and
the grid-stride loops run.
"""

import numpy as np
import pytest
from conftest import tol
from cuda_helpers import cuda, needs_cuda

import stn_numba as stn

pytestmark = [needs_cuda("tests/test_cuda_tps.py"), pytest.mark.usefixtures("small_launches")]


SIZE = (2, 1, 3, 5)


def _points(rng, dtype, shared):
    src = np.array([[-0.8, -0.7], [0.9, -0.6], [-0.5, 0.8], [0.7, 0.6], [0.1, 0.05]])
    if not shared:
        src = np.stack([src, src[::-1] * 0.8])
    tgt = np.broadcast_to(src, (2, 5, 2)) + 0.2 * rng.standard_normal((2, 5, 2))
    return src.astype(dtype), tgt.astype(dtype)


@pytest.mark.parametrize(
    "dtype,shared,align_corners,lam",
    [(np.float32, True, False, 0.0), (np.float64, False, True, 0.3)],
    ids=["float32-shared", "float64-per-sample-regularized"],
)
def test_gpu_equals_cpu(rng, dtype, shared, align_corners, lam):
    src, tgt = _points(rng, dtype, shared)
    args = (src, tgt, SIZE, align_corners, lam)
    cpu = stn.tps_grid(*args)
    gpu = stn.tps_grid(*args, device="cuda")
    assert isinstance(gpu, np.ndarray) and gpu.dtype == dtype
    np.testing.assert_allclose(gpu, cpu, **tol(dtype))
    gout = rng.standard_normal(cpu.shape).astype(dtype)
    g_cpu = stn.tps_grid_backward(gout, *args)
    g_gpu = stn.tps_grid_backward(gout, *args, device="cuda")
    assert isinstance(g_gpu, np.ndarray) and g_gpu.dtype == dtype
    np.testing.assert_allclose(g_gpu, g_cpu, **tol(dtype, "grad"))


def test_device_arrays_in_device_arrays_out_and_deterministic(rng, small_launches, monkeypatch):
    src, tgt = _points(rng, np.float64, False)
    gout = rng.standard_normal((2, 3, 5, 2))
    dsrc, dtgt, dgout = cuda.to_device(src), cuda.to_device(tgt), cuda.to_device(gout)
    grid = stn.tps_grid(dsrc, dtgt, SIZE)  # device=None picks the GPU
    grad = stn.tps_grid_backward(dgout, dsrc, dtgt, SIZE)
    for r in (grid, grad):
        assert not isinstance(r, np.ndarray) and hasattr(r, "copy_to_host")
    np.testing.assert_allclose(grid.copy_to_host(), stn.tps_grid(src, tgt, SIZE), **tol(np.float64))
    first = grad.copy_to_host()
    np.testing.assert_allclose(
        first, stn.tps_grid_backward(gout, src, tgt, SIZE), **tol(np.float64, "grad")
    )
    monkeypatch.setattr(small_launches, "THREADS_PER_BLOCK", 3)
    monkeypatch.setattr(small_launches, "MAX_BLOCKS", 1)
    assert np.array_equal(stn.tps_grid_backward(gout, src, tgt, SIZE, device="cuda"), first)
    out = cuda.device_array((2, 3, 5, 2))
    assert stn.tps_grid(dsrc, dtgt, SIZE, out=out) is out


def test_gpu_errors_before_launch(rng):
    src, tgt = _points(rng, np.float64, True)
    with pytest.raises(ValueError, match="source_points has duplicate control points"):
        stn.tps_grid(
            cuda.to_device(np.concatenate([src, src[:1]])),
            np.concatenate([tgt, tgt[:, :1]], 1),
            SIZE,
        )
    with pytest.raises(TypeError, match="source_points is a GPU array but device='cpu'"):
        stn.tps_grid(cuda.to_device(src), tgt, SIZE, device="cpu")
