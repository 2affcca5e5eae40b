"""SpatialTransformer on the GPU (CUDA simulator): device="cuda" equals the CPU layer, and
device arrays in give device arrays out."""

import numpy as np
import pytest
from conftest import tol
from cuda_helpers import cuda, needs_cuda

from stn_numba import SpatialTransformer

pytestmark = [needs_cuda("tests/test_cuda_layers.py"), pytest.mark.usefixtures("small_launches")]

SRC = np.array([[-0.8, -0.7], [0.75, -0.8], [-0.7, 0.8], [0.8, 0.7], [0.05, 0.1]])


@pytest.mark.parametrize("transform", ["affine", "perspective", "tps"])
def test_layer_gpu_equals_cpu(rng, transform):
    kw = {"source_points": SRC} if transform == "tps" else {}
    cpu = SpatialTransformer(transform, (3, 4), **kw)
    gpu = SpatialTransformer(transform, (3, 4), device="cuda", **kw)
    x = rng.standard_normal((2, 2, 4, 5))
    theta = cpu.identity(2, np.float64)
    theta = theta + 0.1 * rng.standard_normal(theta.shape)
    g = rng.standard_normal((2, 2, 3, 4))
    out_c = cpu.forward(x, theta)
    out_g = gpu.forward(x, theta)
    assert isinstance(out_g, np.ndarray)
    np.testing.assert_allclose(out_g, out_c, **tol(np.float64))
    for a, b in zip(gpu.backward(g), cpu.backward(g), strict=True):
        np.testing.assert_allclose(a, b, **tol(np.float64, "grad"))


def test_device_arrays_in_device_arrays_out(rng):
    st = SpatialTransformer("affine")
    x = rng.standard_normal((2, 1, 4, 4))
    theta = st.identity(2, np.float64)
    out = st.forward(cuda.to_device(x), cuda.to_device(theta))
    assert not isinstance(out, np.ndarray)
    gx, gt = st.backward(cuda.to_device(np.ones((2, 1, 4, 4))))
    assert not isinstance(gx, np.ndarray) and not isinstance(gt, np.ndarray)
    np.testing.assert_allclose(out.copy_to_host(), x, **tol(np.float64))
