"""GPU twins of tests/test_integer_fill.py: NumPy integer images and constant
fill with device="cuda" equal the CPU; integer device arrays and a nonzero fill with
device arrays are refused with a TypeError that says what to do.

Runs on a real GPU or under ``NUMBA_ENABLE_CUDASIM=1`` (tiny shapes, small launches).
"""

import numpy as np
import pytest
from conftest import tol
from cuda_helpers import cuda, needs_cuda

import stn_numba as stn

pytestmark = [
    needs_cuda("tests/test_cuda_integer_fill.py"),
    pytest.mark.usefixtures("small_launches"),
]


def _args(rng):
    x = rng.integers(0, 256, (1, 2, 3, 4)).astype(np.uint8)
    theta = (np.eye(2, 3) + 0.3 * rng.standard_normal((1, 2, 3))).astype(np.float32)
    return x, theta


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_numpy_uint8_on_cuda_equals_cpu(mode, rng):
    x, theta = _args(rng)
    kw = dict(mode=mode, padding_mode="constant", fill_value=[200.0, 7.0])
    want = stn.warp_affine(x, theta, output_dtype=np.uint8, **kw)
    got = stn.warp_affine(x, theta, output_dtype=np.uint8, device="cuda", **kw)
    assert isinstance(got, np.ndarray) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    want_f = stn.warp_affine(x, theta, **kw)
    got_f = stn.warp_affine(x, theta, device="cuda", **kw)
    np.testing.assert_allclose(got_f, want_f, **tol(np.float32))


def test_backward_constant_fill_on_cuda_equals_cpu(rng):
    x = rng.standard_normal((1, 2, 3, 4))
    grid = rng.uniform(-1.5, 1.5, (1, 2, 3, 2))
    go = rng.standard_normal((1, 2, 2, 3))
    kw = dict(padding_mode="constant", fill_value=[1.0, -3.0])
    want = stn.grid_sample_backward(go, x, grid, **kw)
    got = stn.grid_sample_backward(go, x, grid, device="cuda", **kw)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, **tol(np.float64, "grad"))


def test_device_arrays(rng):
    x, theta = _args(rng)
    dtheta = cuda.to_device(theta)
    with pytest.raises(TypeError, match="input is a GPU array of dtype uint8"):
        stn.warp_affine(cuda.to_device(x), dtheta)
    dx = cuda.to_device(x.astype(np.float32))
    with pytest.raises(TypeError, match="nonzero fill_value needs NumPy arrays"):
        stn.warp_affine(dx, dtheta, padding_mode="constant", fill_value=1.0)
    with pytest.raises(TypeError, match="output_dtype=uint8 needs NumPy arrays"):
        stn.warp_affine(dx, dtheta, output_dtype=np.uint8)
    # a zero fill is zeros padding: fine on device arrays
    got = stn.warp_affine(dx, dtheta, padding_mode="constant").copy_to_host()
    np.testing.assert_array_equal(got, stn.warp_affine(dx, dtheta).copy_to_host())
